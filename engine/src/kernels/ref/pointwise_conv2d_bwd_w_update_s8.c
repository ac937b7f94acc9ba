/* pointwise conv2d_bwd_w_update: the fused weight gradient and QAS update of
 * a 1x1 conv's trained input channels (NUMERICS.md 4-5), any stride, no
 * weight-gradient buffer. Reference kernel. */
#include "kernels-impl.h"

tte_status tte_pointwise_conv2d_bwd_w_update_s8(const tte_conv2d_params *p, tte_train_ctx *ctx,
                                                const tte_update_params *u, const int8_t *x_saved, const float *gh,
                                                const float *inv_w, int8_t *w_train, const tte_channel_band *gh_band) {
    int32_t out_h, out_w, begin, count;
    tte_status status =
        tte_conv2d_check_update(p, ctx, u, x_saved, gh, inv_w, w_train, gh_band, &out_h, &out_w, &begin, &count);
    if (status == TTE_OK && (p->kernel_h != 1 || p->kernel_w != 1 || p->padding != 0 || p->groups != 1)) {
        status = TTE_ERR_SHAPE;
    }
    if (status != TTE_OK) {
        return status;
    }
    if (!tte_update_gate(ctx, gh, (size_t)out_h * out_w * count)) {
        return TTE_OK;
    }
    const int32_t k = p->train_count;
    for (int32_t ol = 0; ol < count; ++ol) {
        const int32_t o = begin + ol;
        for (int32_t j = 0; j < k; ++j) {
            const float grad = tte_tap_weight_grad(p, out_h, out_w, x_saved, j, gh, count, ol, 0, 0);
            /* The element's index in the IR layout [O][C][1][1] names its rounding noise. */
            const uint32_t index = (uint32_t)o * (uint32_t)p->in_c + (uint32_t)p->train_channels[j];
            int8_t *wp = &w_train[(size_t)o * k + j];
            *wp = tte_weight_add(*wp, tte_qas_step(grad, inv_w[o], ctx, u, index));
        }
    }
    return TTE_OK;
}
