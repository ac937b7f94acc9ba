/* Depthwise int8 convolution (one filter per channel), any kernel size and
 * stride (NUMERICS.md 2), optionally with a trained weight slice and on a row
 * band. Reference kernel. */
#include "kernels-impl.h"

size_t tte_ref_depthwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* the reference kernel reads x in place: no scratch */
    return 0;
}

tte_status tte_ref_depthwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                           const int8_t *w_train, const int32_t *bias, const float *multiplier,
                                           int8_t *y, uint8_t *mask, const tte_row_band *rows, void *scratch) {
    (void)scratch; /* size 0, see tte_ref_depthwise_conv2d_fwd_s8_scratch_size */
    tte_conv2d_window win;
    const tte_status status =
        tte_conv2d_fwd_check(p, x, w, w_train, bias, multiplier, y, rows, TTE_CONV2D_DEPTHWISE, &win);
    if (status != TTE_OK) {
        return status;
    }
    const int32_t out_w = win.out_w, oy_begin = win.oy_begin, oy_end = win.oy_end, x_row = win.x_row;
    const int32_t channels = p->in_c;
    for (int32_t oy = oy_begin; oy < oy_end; ++oy) {
        for (int32_t ox = 0; ox < out_w; ++ox) {
            int32_t next = 0;
            for (int32_t c = 0; c < channels; ++c) {
                /* Channel c's filter: column c of w [KH][KW][C], or column j of w_train [KH][KW][k]. */
                const int32_t j = tte_slice_index(p->train_channels, p->train_count, c, &next);
                const int8_t *wc = j < 0 ? w + c : w_train + j;
                const int32_t wstride = j < 0 ? channels : p->train_count;
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
                        const int32_t xv = x[((size_t)(iy - x_row) * p->in_w + ix) * channels + c];
                        acc += (xv - p->x_zero) * wc[((size_t)ky * p->kernel_w + kx) * wstride];
                    }
                }
                const int32_t index = (oy * out_w + ox) * channels + c;
                tte_conv_epilogue(p, c, acc, bias, multiplier, &y[index - oy_begin * out_w * channels], mask, index);
            }
        }
    }
    return TTE_OK;
}
