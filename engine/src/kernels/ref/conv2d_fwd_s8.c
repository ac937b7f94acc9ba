/* Dense int8 convolution, any kernel size, stride, padding and group count
 * (NUMERICS.md 2). Reference kernel: written to be read, not to be fast. */
#include "kernels-impl.h"

size_t tte_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* the reference kernel reads x in place: no scratch */
    return 0;
}

tte_status tte_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                             const float *multiplier, int8_t *y, uint8_t *mask, void *scratch) {
    (void)scratch; /* size 0, see tte_conv2d_fwd_s8_scratch_size */
    if (p == NULL || x == NULL || w == NULL || bias == NULL || multiplier == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w;
    const tte_status status = tte_conv2d_check(p, &out_h, &out_w);
    if (status != TTE_OK) {
        return status;
    }
    const int32_t group_in = p->in_c / p->groups;   /* input channels per group */
    const int32_t group_out = p->out_c / p->groups; /* output channels per group */
    for (int32_t oy = 0; oy < out_h; ++oy) {
        for (int32_t ox = 0; ox < out_w; ++ox) {
            for (int32_t o = 0; o < p->out_c; ++o) {
                const int32_t c0 = (o / group_out) * group_in; /* first input channel of o's group */
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
                        const int8_t *xp = x + ((size_t)iy * p->in_w + ix) * p->in_c + c0; /* [group_in] */
                        const int8_t *wp =
                            w + (((size_t)o * p->kernel_h + ky) * p->kernel_w + kx) * group_in; /* [group_in] */
                        for (int32_t c = 0; c < group_in; ++c) {
                            acc += ((int32_t)xp[c] - p->x_zero) * wp[c];
                        }
                    }
                }
                const int32_t index = (oy * out_w + ox) * p->out_c + o;
                tte_conv_store(acc, bias[o], multiplier[o], p->y_zero, p->act_min, p->act_max, y, mask, index);
            }
        }
    }
    return TTE_OK;
}
