/* depthwise conv2d_bwd_w_update: the fused weight gradient and QAS update of
 * a depthwise conv's trained channels (NUMERICS.md 4-5), no weight-gradient
 * buffer. With a gh band, only the trained channels inside it update.
 * Reference kernel. */
#include "kernels-impl.h"

tte_status tte_depthwise_conv2d_bwd_w_update_s8(const tte_conv2d_params *p, tte_train_ctx *ctx,
                                                const tte_update_params *u, const int8_t *x_saved, const float *gh,
                                                const float *inv_w, int8_t *w_train, const tte_channel_band *gh_band) {
    int32_t out_h, out_w, begin, count;
    tte_status status =
        tte_conv2d_check_update(p, ctx, u, x_saved, gh, inv_w, w_train, gh_band, &out_h, &out_w, &begin, &count);
    if (status == TTE_OK && (p->groups != p->in_c || p->out_c != p->in_c)) {
        status = TTE_ERR_SHAPE;
    }
    if (status != TTE_OK) {
        return status;
    }
    if (!tte_update_gate(ctx, gh, (size_t)out_h * out_w * count)) {
        return TTE_OK;
    }
    const int32_t k = p->train_count;
    for (int32_t j = 0; j < k; ++j) {
        const int32_t c = p->train_channels[j];
        if (c < begin || c >= begin + count) {
            continue; /* another band's channel */
        }
        for (int32_t ky = 0; ky < p->kernel_h; ++ky) {
            for (int32_t kx = 0; kx < p->kernel_w; ++kx) {
                const float grad = tte_tap_weight_grad(p, out_h, out_w, x_saved, j, gh, count, c - begin, ky, kx);
                /* The element's index in the IR layout [C][1][KH][KW] names its rounding noise. */
                const uint32_t index =
                    ((uint32_t)c * (uint32_t)p->kernel_h + (uint32_t)ky) * (uint32_t)p->kernel_w + (uint32_t)kx;
                int8_t *wp = &w_train[((size_t)ky * p->kernel_w + kx) * k + j];
                *wp = tte_weight_add(*wp, tte_qas_step(grad, inv_w[c], ctx, u, index));
            }
        }
    }
    return TTE_OK;
}
