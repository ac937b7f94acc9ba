/* Depthwise int8 convolution (one filter per channel), any kernel size and
 * stride (NUMERICS.md 2). Reference kernel. */
#include "kernels-impl.h"

size_t tte_depthwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* the reference kernel reads x in place: no scratch */
    return 0;
}

tte_status tte_depthwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                       const int32_t *bias, const float *multiplier, int8_t *y, uint8_t *mask,
                                       void *scratch) {
    (void)scratch; /* size 0, see tte_depthwise_conv2d_fwd_s8_scratch_size */
    if (p == NULL || x == NULL || w == NULL || bias == NULL || multiplier == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w;
    const tte_status status = tte_conv2d_check(p, &out_h, &out_w);
    if (status != TTE_OK) {
        return status;
    }
    if (p->groups != p->in_c || p->out_c != p->in_c) {
        return TTE_ERR_SHAPE;
    }
    const int32_t channels = p->in_c;
    for (int32_t oy = 0; oy < out_h; ++oy) {
        for (int32_t ox = 0; ox < out_w; ++ox) {
            for (int32_t c = 0; c < channels; ++c) {
                int32_t acc = 0;
                for (int32_t ky = 0; ky < p->kernel_h; ++ky) {
                    const int32_t iy = oy * p->stride + ky - p->padding;
                    if (iy < 0 || iy >= p->in_h) {
                        continue; /* padded row: contributes 0 */
                    }
                    for (int32_t kx = 0; kx < p->kernel_w; ++kx) {
                        const int32_t ix = ox * p->stride + kx - p->padding;
                        if (ix < 0 || ix >= p->in_w) {
                            continue;
                        }
                        const int32_t xv = x[((size_t)iy * p->in_w + ix) * channels + c];
                        acc += (xv - p->x_zero) * w[((size_t)ky * p->kernel_w + kx) * channels + c];
                    }
                }
                const int32_t index = (oy * out_w + ox) * channels + c;
                tte_conv_store(acc, bias[c], multiplier[c], p->y_zero, p->act_min, p->act_max, y, mask, index);
            }
        }
    }
    return TTE_OK;
}
