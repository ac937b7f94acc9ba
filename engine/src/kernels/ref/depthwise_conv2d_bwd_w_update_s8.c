/* depthwise conv2d_bwd_w_update: the fused weight gradient and QAS update of
 * a depthwise conv's trained channels (NUMERICS.md 4-5), no weight-gradient
 * buffer. With a gh band, only the trained channels inside it update. Each
 * tap's gradient is one chain (tte_weight_grad_block), its bounds computed
 * once. The portable kernel of every target. */
#include "kernels-impl.h"

/* One pass over the trained channels inside the band. apply 0: checks every
 * live element's step value, failing the step at the first non-finite one
 * (returns 0); apply 1: writes every element's step (returns 1). */
static int sweep(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u, const int8_t *x_saved,
                 const float *gh, const float *inv_w, int8_t *w_train, int32_t out_h, int32_t out_w, int32_t begin,
                 int32_t count, int apply) {
    const int32_t k = p->train_count;
    for (int32_t j = 0; j < k; ++j) {
        const int32_t c = p->train_channels[j];
        if (c < begin || c >= begin + count) {
            continue; /* another band's channel */
        }
        const int frozen = tte_qas_frozen(inv_w[c]);
        if (frozen && !apply) {
            continue;
        }
        for (int32_t ky = 0; ky < p->kernel_h; ++ky) {
            for (int32_t kx = 0; kx < p->kernel_w; ++kx) {
                int32_t step = 0;
                if (!frozen) {
                    float grad;
                    tte_weight_grad_block(p, out_h, out_w, x_saved, j, 1, gh, count, c - begin, 1, ky, kx, &grad);
                    const float v = tte_qas_value(grad, inv_w[c], ctx, u);
                    if (!apply) {
                        if (!tte_step_value_ok(ctx, v)) {
                            return 0;
                        }
                        continue;
                    }
                    /* The element's index in the IR layout [C][1][KH][KW] names its rounding noise. */
                    const uint32_t index =
                        ((uint32_t)c * (uint32_t)p->kernel_h + (uint32_t)ky) * (uint32_t)p->kernel_w + (uint32_t)kx;
                    step = tte_qas_round(v, ctx, u, index);
                }
                int8_t *wp = &w_train[((size_t)ky * p->kernel_w + kx) * k + j];
                *wp = tte_weight_add(*wp, step);
            }
        }
    }
    return 1;
}

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
    const size_t n = (size_t)out_h * out_w * count;
    float gh_max;
    if (!tte_update_gate_max(ctx, gh, n, &gh_max)) {
        return TTE_OK;
    }
    const int safe = tte_update_safe(ctx->lr[u->lr_group], gh_max, (int64_t)out_h * out_w, 255.0f,
                                     tte_max_inv(inv_w, begin, count));
    if (safe || sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 0)) {
        (void)sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 1);
    }
    return TTE_OK;
}
