/* pointwise_conv2d_bwd_w_acc: the mini-batch weight update of a pointwise (1x1) conv's trained
 * slice (tte/tte_train.h, "Mini-batch updates"): the sample's weight gradient
 * added to a float32 accumulator, and at the batch's end the QAS step of its
 * mean. Reference kernel. */
#include "batch-impl.h"

tte_status tte_pointwise_conv2d_bwd_w_acc_s8(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                                             int32_t batch, const int8_t *x_saved, const float *gh, const float *inv_w,
                                             float *acc, int8_t *w_train, const tte_channel_band *gh_band) {
    int32_t out_h, out_w, begin, count;
    tte_status status =
        tte_conv2d_check_update(p, ctx, u, x_saved, gh, inv_w, w_train, gh_band, &out_h, &out_w, &begin, &count);
    if (status == TTE_OK) {
        status = tte_batch_check(acc, batch);
    }
    if (status == TTE_OK && (p->kernel_h != 1 || p->kernel_w != 1 || !tte_conv2d_unpadded(p) || p->groups != 1)) {
        status = TTE_ERR_SHAPE; /* not a pointwise conv */
    }
    if (status != TTE_OK) {
        return status;
    }
    tte_conv2d_acc_apply(p, ctx, u, batch, x_saved, gh, inv_w, acc, w_train, out_h, out_w, begin, count, 0);
    return TTE_OK;
}
