/* mul: a feature map times a per-channel vector (squeeze-and-excite),
 * v = m * float32((a - a_zero) * (b[c] - b_zero)), requantized as a conv
 * (NUMERICS.md 2); TFLite's int8 MUL under 2b. Reference kernel. */
#include "kernels-impl.h"

tte_status tte_mul_fwd_s8(const tte_mul_params *p, const int8_t *a, const int8_t *b, int8_t *y, uint8_t *mask) {
    if (p == NULL || a == NULL || b == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->pixels < 1 || p->channels < 1 || (int64_t)p->pixels * p->channels > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    if (!tte_int8_ok(p->a_zero) || !tte_int8_ok(p->b_zero) || !tte_int8_ok(p->y_zero) ||
        !tte_act_range_ok(p->act_min, p->act_max) ||
        (p->requant != TTE_REQUANT_FLOAT && (p->requant != TTE_REQUANT_FIXED || !tte_fixed_ok(p->qm, p->sh)))) {
        return TTE_ERR_QUANT;
    }
    for (int32_t i = 0; i < p->pixels; ++i) {
        for (int32_t c = 0; c < p->channels; ++c) {
            const int32_t at = i * p->channels + c;
            /* The int32 product is exact (|product| <= 255 * 255 < 2^24), so its float32 is too. */
            const int32_t product = ((int32_t)a[at] - p->a_zero) * ((int32_t)b[c] - p->b_zero);
            int8_t q;
            const int in_range =
                p->requant == TTE_REQUANT_FIXED
                    ? tte_requantize_fixed(product, p->qm, p->sh, p->y_zero, p->act_min, p->act_max, &q)
                    : tte_requantize(p->m * (float)product, p->y_zero, p->act_min, p->act_max, &q);
            y[at] = q;
            tte_mask_put(mask, at, in_range);
        }
    }
    return TTE_OK;
}
