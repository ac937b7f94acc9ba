/* lut_bwd: the input gradient of a table activation, gx = g * slope[x + 128],
 * slope the compile-time derivative table over the input codes (0 where the
 * forward clamps). Reference kernel. */
#include "kernels-impl.h"

tte_status tte_lut_bwd_f32(const tte_lut_params *p, const float *g, const int8_t *x, const float *slope, float *gx) {
    if (p == NULL || g == NULL || x == NULL || slope == NULL || gx == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->size < 1) {
        return TTE_ERR_SHAPE;
    }
    for (int32_t i = 0; i < p->size; ++i) {
        gx[i] = g[i] * slope[(int32_t)x[i] + 128]; /* gx may be g: element i is read before it is written */
    }
    return TTE_OK;
}
