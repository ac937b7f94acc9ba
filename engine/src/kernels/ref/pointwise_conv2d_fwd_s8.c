/* Pointwise (1x1) int8 convolution, any stride (NUMERICS.md 2). Reference kernel. */
#include "kernels-impl.h"

size_t tte_pointwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* the reference kernel reads x in place: no scratch */
    return 0;
}

tte_status tte_pointwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                       const int32_t *bias, const float *multiplier, int8_t *y, uint8_t *mask,
                                       void *scratch) {
    (void)scratch; /* size 0, see tte_pointwise_conv2d_fwd_s8_scratch_size */
    if (p == NULL || x == NULL || w == NULL || bias == NULL || multiplier == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w;
    const tte_status status = tte_conv2d_check(p, &out_h, &out_w);
    if (status != TTE_OK) {
        return status;
    }
    if (p->kernel_h != 1 || p->kernel_w != 1 || p->padding != 0 || p->groups != 1) {
        return TTE_ERR_SHAPE;
    }
    for (int32_t oy = 0; oy < out_h; ++oy) {
        for (int32_t ox = 0; ox < out_w; ++ox) {
            const int8_t *xp = x + ((size_t)oy * p->stride * p->in_w + (size_t)ox * p->stride) * p->in_c; /* [in_c] */
            for (int32_t o = 0; o < p->out_c; ++o) {
                const int8_t *wp = w + (size_t)o * p->in_c; /* [in_c] */
                int32_t acc = 0;
                for (int32_t c = 0; c < p->in_c; ++c) {
                    acc += ((int32_t)xp[c] - p->x_zero) * wp[c];
                }
                const int32_t index = (oy * out_w + ox) * p->out_c + o;
                tte_conv_store(acc, bias[o], multiplier[o], p->y_zero, p->act_min, p->act_max, y, mask, index);
            }
        }
    }
    return TTE_OK;
}
