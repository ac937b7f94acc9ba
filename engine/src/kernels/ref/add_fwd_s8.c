/* Quantized residual add (NUMERICS.md 2; TFLite's int8 ADD under 2b). Reference kernel. */
#include "kernels-impl.h"

tte_status tte_add_fwd_s8(const tte_add_params *p, const int8_t *x1, const int8_t *x2, int8_t *y, uint8_t *mask) {
    if (p == NULL || x1 == NULL || x2 == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->size < 1) {
        return TTE_ERR_SHAPE;
    }
    if (!tte_int8_ok(p->z1) || !tte_int8_ok(p->z2) || !tte_int8_ok(p->y_zero) ||
        !tte_act_range_ok(p->act_min, p->act_max)) {
        return TTE_ERR_QUANT;
    }
    if (p->requant == TTE_REQUANT_FIXED) {
        if (p->left_shift < 0 || p->left_shift > 20 || !tte_fixed_ok(p->qm1, p->sh1) || !tte_fixed_ok(p->qm2, p->sh2) ||
            !tte_fixed_ok(p->qmy, p->shy) || p->sh1 > 0 || p->sh2 > 0 || p->shy > 0) {
            return TTE_ERR_QUANT;
        }
        for (int32_t i = 0; i < p->size; ++i) {
            /* TFLite's AddFunc: |q - z| <= 255, so the left shift by at most 20 stays in int32. */
            const int32_t a = tte_fixed_multiply(((int32_t)x1[i] - p->z1) * (1 << p->left_shift), p->qm1, p->sh1);
            const int32_t b = tte_fixed_multiply(((int32_t)x2[i] - p->z2) * (1 << p->left_shift), p->qm2, p->sh2);
            int8_t q;
            const int in_range = tte_requantize_fixed(a + b, p->qmy, p->shy, p->y_zero, p->act_min, p->act_max, &q);
            y[i] = q;
            tte_mask_put(mask, i, in_range);
        }
        return TTE_OK;
    }
    if (p->requant != TTE_REQUANT_FLOAT) {
        return TTE_ERR_QUANT;
    }
    for (int32_t i = 0; i < p->size; ++i) {
        /* Two float32 products, then one add: -ffp-contract=off keeps it from becoming an FMA. */
        const float a = p->m1 * (float)((int32_t)x1[i] - p->z1);
        const float b = p->m2 * (float)((int32_t)x2[i] - p->z2);
        int8_t q;
        const int in_range = tte_requantize(a + b, p->y_zero, p->act_min, p->act_max, &q);
        y[i] = q;
        tte_mask_put(mask, i, in_range);
    }
    return TTE_OK;
}
