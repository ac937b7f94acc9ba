/* Float32 classifier head on an int8 input (NUMERICS.md 2). The summation order
 * is fixed (ascending i), so the host and every Cortex-M give the same bits. */
#include "kernels-impl.h"

tte_status tte_linear_fwd_f32(const tte_linear_f32_params *p, const int8_t *x, const float *w, const float *bias,
                              float *y) {
    if (p == NULL || x == NULL || w == NULL || bias == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->in_features < 1 || p->out_features < 1 || (int64_t)p->in_features * p->out_features > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    if (!tte_int8_ok(p->x_zero)) {
        return TTE_ERR_QUANT;
    }
    for (int32_t o = 0; o < p->out_features; ++o) {
        const float *wp = w + (size_t)o * p->in_features; /* [I] */
        float sum = 0.0f;
        for (int32_t i = 0; i < p->in_features; ++i) {
            /* x_f is recomputed per output instead of kept in scratch: the same multiply gives the same bits. */
            const float xf = p->x_scale * (float)((int32_t)x[i] - p->x_zero);
            sum += wp[i] * xf;
        }
        y[o] = bias[o] + sum;
    }
    return TTE_OK;
}
