/* add_bwd: the gradients of a quantized residual add's two inputs,
 * ga = mask ? g*m1 : 0 and gb = mask ? g*m2 : 0 (NUMERICS.md 4). Reference kernel. */
#include "kernels-impl.h"

tte_status tte_add_bwd_f32(const tte_add_bwd_params *p, const float *g, const uint8_t *mask, float *ga, float *gb) {
    if (p == NULL || g == NULL || mask == NULL || ga == NULL || gb == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->size < 1) {
        return TTE_ERR_SHAPE;
    }
    for (int32_t i = 0; i < p->size; ++i) {
        const float gi = g[i]; /* ga may be g */
        const int live = tte_mask_get(mask, i);
        ga[i] = live ? gi * p->m1 : 0.0f;
        gb[i] = live ? gi * p->m2 : 0.0f;
    }
    return TTE_OK;
}
