/* pointwise conv2d_bwd_w_update: the fused weight gradient and QAS update of
 * a 1x1 conv's trained input channels (NUMERICS.md 4-5), any stride, no
 * weight-gradient buffer. Reference kernel. */
#include "kernels-impl.h"

/* One pass over the trained slice. apply 0: checks every live element's step
 * value, failing the step at the first non-finite one (returns 0); apply 1:
 * writes every element's step (returns 1). */
static int sweep(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u, const int8_t *x_saved,
                 const float *gh, const float *inv_w, int8_t *w_train, int32_t out_h, int32_t out_w, int32_t begin,
                 int32_t count, int apply) {
    const int32_t k = p->train_count;
    for (int32_t ol = 0; ol < count; ++ol) {
        const int32_t o = begin + ol;
        const int frozen = tte_qas_frozen(inv_w[o]);
        if (frozen && !apply) {
            continue;
        }
        for (int32_t j = 0; j < k; ++j) {
            int32_t step = 0;
            if (!frozen) {
                const float grad = tte_tap_weight_grad(p, out_h, out_w, x_saved, j, gh, count, ol, 0, 0);
                const float v = tte_qas_value(grad, inv_w[o], ctx, u);
                if (!apply) {
                    if (!tte_step_value_ok(ctx, v)) {
                        return 0;
                    }
                    continue;
                }
                /* The element's index in the IR layout [O][C][1][1] names its rounding noise. */
                step = tte_qas_round(v, ctx, u, (uint32_t)o * (uint32_t)p->in_c + (uint32_t)p->train_channels[j]);
            }
            int8_t *wp = &w_train[(size_t)o * k + j];
            *wp = tte_weight_add(*wp, step);
        }
    }
    return 1;
}

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
    const size_t n = (size_t)out_h * out_w * count;
    if (!tte_update_gate(ctx, gh, n)) {
        return TTE_OK;
    }
    const int safe = tte_update_safe(ctx->lr[u->lr_group], tte_max_abs(gh, n), (int64_t)out_h * out_w, 255.0f,
                                     tte_max_inv(inv_w, begin, count));
    if (safe || sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 0)) {
        (void)sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 1);
    }
    return TTE_OK;
}
