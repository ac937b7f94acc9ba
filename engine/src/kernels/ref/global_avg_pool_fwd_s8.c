/* Global average pool [H][W][C] -> [C] (NUMERICS.md 2; TFLite's int8 MEAN under 2b). Reference kernel. */
#include "kernels-impl.h"

tte_status tte_global_avg_pool_fwd_s8(const tte_global_avg_pool_params *p, const int8_t *x, int8_t *y, uint8_t *mask) {
    if (p == NULL || x == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    /* The int32 sum of H*W terms of magnitude <= 255 must not overflow. */
    if (p->in_h < 1 || p->in_w < 1 || p->in_c < 1 || (int64_t)p->in_h * p->in_w > INT32_MAX / 255 ||
        (int64_t)p->in_h * p->in_w * p->in_c > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    if (!tte_int8_ok(p->x_zero) || !tte_int8_ok(p->y_zero) ||
        (p->requant != TTE_REQUANT_FLOAT && (p->requant != TTE_REQUANT_FIXED || !tte_fixed_ok(p->qm, p->sh)))) {
        return TTE_ERR_QUANT;
    }
    const int32_t pixels = p->in_h * p->in_w;
    for (int32_t c = 0; c < p->in_c; ++c) {
        int32_t sum = 0;
        for (int32_t i = 0; i < pixels; ++i) {
            sum += (int32_t)x[(size_t)i * p->in_c + c] - p->x_zero;
        }
        int8_t q;
        const int in_range = p->requant == TTE_REQUANT_FIXED
                                 ? tte_requantize_fixed(sum, p->qm, p->sh, p->y_zero, -128, 127, &q)
                                 : tte_requantize((float)sum * p->multiplier, p->y_zero, -128, 127, &q);
        y[c] = q;
        tte_mask_put(mask, c, in_range);
    }
    return TTE_OK;
}
