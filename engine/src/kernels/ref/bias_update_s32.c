/* bias_update: dL/db[o] = sum of gh over the output positions, then at once
 * the QAS step of b[o] (NUMERICS.md 5): no gradient buffer. Reference kernel. */
#include "kernels-impl.h"

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
    if (!tte_update_gate(ctx, gh, (size_t)p->pixels * count)) {
        return TTE_OK;
    }
    for (int32_t j = 0; j < count; ++j) {
        const int32_t o = begin + j;
        float grad = 0.0f;
        for (int32_t i = 0; i < p->pixels; ++i) {
            grad = grad + gh[(size_t)i * count + j];
        }
        /* A dead channel (bias saturated at an int32 limit) is frozen. */
        const int dead = b[o] == INT32_MIN || b[o] == INT32_MAX;
        const int32_t step = dead ? 0 : tte_qas_step(grad, inv_b[o], ctx, u, (uint32_t)o);
        b[o] = tte_sat32_add(b[o], step);
    }
    return TTE_OK;
}
