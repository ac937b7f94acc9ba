/* pool_bwd: the gradient of a global average pool, spread evenly over the
 * map, gx[h][w][c] = mask[c] ? g[c] * m : 0 (NUMERICS.md 4). Reference kernel. */
#include "kernels-impl.h"

tte_status tte_global_avg_pool_bwd_f32(const tte_global_avg_pool_bwd_params *p, const float *g, const uint8_t *mask,
                                       float *gx) {
    if (p == NULL || g == NULL || mask == NULL || gx == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->in_h < 1 || p->in_w < 1 || p->in_c < 1 || (int64_t)p->in_h * p->in_w * p->in_c > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    const int32_t pixels = p->in_h * p->in_w;
    for (int32_t c = 0; c < p->in_c; ++c) {
        const float v = tte_mask_get(mask, c) ? g[c] * p->multiplier : 0.0f;
        for (int32_t i = 0; i < pixels; ++i) {
            gx[(size_t)i * p->in_c + c] = v;
        }
    }
    return TTE_OK;
}
