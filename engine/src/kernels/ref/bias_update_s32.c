/* bias_update: dL/db[o] = sum of gh over the output positions, then at once
 * the QAS step of b[o] (NUMERICS.md 5): no gradient buffer. Reference kernel. */
#include "kernels-impl.h"

/* One pass over the band's biases. apply 0: checks every live bias's step
 * value, failing the step at the first non-finite one (returns 0); apply 1:
 * writes every step (returns 1). A dead channel (bias saturated at an int32
 * limit) is frozen, like one whose inv_b is. */
static int sweep(const tte_hwc_params *p, tte_train_ctx *ctx, const tte_update_params *u, const float *gh,
                 const float *inv_b, int32_t *b, int32_t begin, int32_t count, int apply) {
    for (int32_t j = 0; j < count; ++j) {
        const int32_t o = begin + j;
        if (b[o] == INT32_MIN || b[o] == INT32_MAX || tte_qas_frozen(inv_b[o])) {
            continue;
        }
        float grad = 0.0f;
        for (int32_t i = 0; i < p->pixels; ++i) {
            grad = grad + gh[(size_t)i * count + j];
        }
        const float v = tte_qas_value(grad, inv_b[o], ctx, u);
        if (!apply) {
            if (!tte_step_value_ok(ctx, v)) {
                return 0;
            }
            continue;
        }
        b[o] = tte_sat32_add(b[o], tte_qas_round(v, ctx, u, (uint32_t)o));
    }
    return 1;
}

tte_status tte_bias_update_s32(const tte_hwc_params *p, tte_train_ctx *ctx, const tte_update_params *u, const float *gh,
                               const float *inv_b, int32_t *b, const tte_channel_band *band) {
    if (p == NULL || gh == NULL || inv_b == NULL || b == NULL) {
        return TTE_ERR_NULL;
    }
    const tte_status status = tte_update_check(ctx, u);
    if (status != TTE_OK) {
        return status;
    }
    if (p->pixels < 1 || p->channels < 1 || (int64_t)p->pixels * p->channels > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    int32_t begin, count;
    if (tte_band_window(band, p->channels, &begin, &count) != TTE_OK) {
        return TTE_ERR_ARG;
    }
    const size_t n = (size_t)p->pixels * count;
    if (!tte_update_gate(ctx, gh, n)) {
        return TTE_OK;
    }
    const int safe =
        tte_update_safe(ctx->lr[u->lr_group], tte_max_abs(gh, n), p->pixels, 1.0f, tte_max_inv(inv_b, begin, count));
    if (safe || sweep(p, ctx, u, gh, inv_b, b, begin, count, 0)) {
        (void)sweep(p, ctx, u, gh, inv_b, b, begin, count, 1);
    }
    return TTE_OK;
}
