/* Dense int8 convolution, any kernel size, stride, padding and group count
 * (NUMERICS.md 2), optionally with a trained weight slice and on a row band.
 * Reference kernel: written to be read, not to be fast. */
#include "kernels-impl.h"

size_t tte_ref_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* the reference kernel reads x in place: no scratch */
    return 0;
}

tte_status tte_ref_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w, const int8_t *w_train,
                                 const int32_t *bias, const float *multiplier, int8_t *y, uint8_t *mask,
                                 const tte_row_band *rows, void *scratch) {
    (void)scratch; /* size 0, see tte_ref_conv2d_fwd_s8_scratch_size */
    tte_conv2d_window win;
    const tte_status status = tte_conv2d_fwd_check(p, x, w, w_train, bias, multiplier, y, rows, TTE_CONV2D_DENSE, &win);
    if (status != TTE_OK) {
        return status;
    }
    const int32_t out_w = win.out_w, oy_begin = win.oy_begin, oy_end = win.oy_end, x_row = win.x_row;
    const int32_t group_in = p->in_c / p->groups;   /* input channels per group */
    const int32_t group_out = p->out_c / p->groups; /* output channels per group */
    for (int32_t oy = oy_begin; oy < oy_end; ++oy) {
        for (int32_t ox = 0; ox < out_w; ++ox) {
            for (int32_t o = 0; o < p->out_c; ++o) {
                const int32_t c0 = (o / group_out) * group_in; /* first input channel of o's group */
                int32_t acc = 0;
                for (int32_t ky = 0; ky < p->kernel_h; ++ky) {
                    const int32_t iy = oy * p->stride_h + ky - p->pad_top;
                    if (iy < 0 || iy >= p->in_h) {
                        continue; /* padded row: contributes 0 */
                    }
                    for (int32_t kx = 0; kx < p->kernel_w; ++kx) {
                        const int32_t ix = ox * p->stride_w + kx - p->pad_left;
                        if (ix < 0 || ix >= p->in_w) {
                            continue;
                        }
                        const size_t tap = ((size_t)o * p->kernel_h + ky) * p->kernel_w + kx;
                        const int8_t *xp = x + ((size_t)(iy - x_row) * p->in_w + ix) * p->in_c + c0; /* [group_in] */
                        const int8_t *wp = w + tap * group_in;                                       /* [group_in] */
                        const int8_t *tp = tte_slice_at(w_train, tap * (size_t)p->train_count);      /* [train_count] */
                        int32_t next = 0;
                        for (int32_t c = 0; c < group_in; ++c) {
                            const int32_t j = tte_slice_index(p->train_channels, p->train_count, c, &next);
                            acc += ((int32_t)xp[c] - p->x_zero) * (j < 0 ? wp[c] : tp[j]);
                        }
                    }
                }
                const int32_t index = (oy * out_w + ox) * p->out_c + o;
                tte_conv_epilogue(p, o, acc, bias, multiplier, &y[index - oy_begin * out_w * p->out_c], mask, index);
            }
        }
    }
    return TTE_OK;
}
