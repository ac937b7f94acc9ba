/* mul_bwd: the gradients of both inputs of the channel-wise multiply, with
 * gm = mask ? g * m : 0: ga = gm * (b[c] - b_zero) and gb[c] = the sum over
 * pixels, ascending from 0, of gm * (a - a_zero) (NUMERICS.md 4). Reference kernel. */
#include "kernels-impl.h"

tte_status tte_mul_bwd_f32(const tte_mul_params *p, const float *g, const uint8_t *mask, const int8_t *a,
                           const int8_t *b, float *ga, float *gb) {
    if (p == NULL || g == NULL || mask == NULL || a == NULL || b == NULL || (ga == NULL && gb == NULL)) {
        return TTE_ERR_NULL;
    }
    if (p->pixels < 1 || p->channels < 1 || (int64_t)p->pixels * p->channels > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    if (!tte_int8_ok(p->a_zero) || !tte_int8_ok(p->b_zero)) { /* y_zero and the clamp are the forward's */
        return TTE_ERR_QUANT;
    }
    if (gb != NULL) {
        for (int32_t c = 0; c < p->channels; ++c) {
            gb[c] = 0.0f;
        }
    }
    for (int32_t i = 0; i < p->pixels; ++i) {
        for (int32_t c = 0; c < p->channels; ++c) {
            const int32_t at = i * p->channels + c;
            const float gm = tte_mask_get(mask, at) ? g[at] * p->m : 0.0f; /* read before ga (may be g) is written */
            if (gb != NULL) {
                gb[c] = gb[c] + gm * (float)((int32_t)a[at] - p->a_zero);
            }
            if (ga != NULL) {
                ga[at] = gm * (float)((int32_t)b[c] - p->b_zero);
            }
        }
    }
    return TTE_OK;
}
