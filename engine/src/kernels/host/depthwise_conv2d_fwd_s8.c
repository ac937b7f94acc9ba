/* Depthwise int8 convolution for the host: the vectorized loop runs over a pixel's channels (NHWC
 * keeps them together), one kernel row of taps per pass summed in int32 into the pixel's sums, and
 * no per-tap bounds test: each output pixel reads the rectangle of its taps inside the input,
 * computed once per pixel. Interior pixels of 3x3, 5x5 and 7x7 kernels (any strides) run a copy with
 * the kernel width a constant, border pixels and other kernels the same loop with run-time bounds.
 * With a trained slice the weights are first merged with it on the stack (at most
 * TTE_HOST_DW_MERGED bytes). Results equal tte_ref_depthwise_conv2d_fwd_s8's bit for bit
 * (host-impl.h). A call with more than TTE_HOST_DW_CHANNELS channels, or a slice and more than
 * TTE_HOST_DW_MERGED weights, runs the reference kernel. */
#include "host-impl.h"

/* The most channels this kernel takes (its sums are on the stack). */
#define TTE_HOST_DW_CHANNELS 4096
/* The most weights (kernel_h * kernel_w * C) of a call with a trained slice. */
#define TTE_HOST_DW_MERGED 16384

size_t tte_depthwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* the sums are on the stack: the host's size is the reference's, 0 */
    return 0;
}

typedef struct dw_call {
    const tte_conv2d_params *p;     /* zero points, clamp and requantization */
    int32_t channels, x_row, w_row; /* C; bytes from one input row, one weight row, to the next */
    int32_t x_zero;
    const int32_t *bias;
    const float *multiplier;
    uint8_t *mask;
} dw_call;

/* acc[c] += sum over the `cols` taps of one kernel row of (x - x_zero) * w, channel by channel; x and
 * w at the row's first tap. Each product is exact in int16 (host-impl.h). With cols a constant the
 * taps unroll inside the loop over channels (one pass over acc per row); otherwise one pass per tap,
 * so that the loop over channels is still the vectorized one. */
TTE_ALWAYS_INLINE void dw_row(int32_t *acc, const int8_t *x, const int8_t *w, int32_t cols, int32_t channels,
                              int16_t x_zero, int constant) {
    if (constant) {
        for (int32_t c = 0; c < channels; ++c) {
            int32_t s = 0;
            for (int32_t kx = 0; kx < cols; ++kx) {
                const int16_t d = (int16_t)(x[kx * channels + c] - x_zero);
                s += (int16_t)(d * w[kx * channels + c]);
            }
            acc[c] += s;
        }
        return;
    }
    for (int32_t kx = 0; kx < cols; ++kx) {
        const int8_t *xk = x + kx * channels, *wk = w + kx * channels;
        for (int32_t c = 0; c < channels; ++c) {
            const int16_t d = (int16_t)(xk[c] - x_zero);
            acc[c] += (int16_t)(d * wk[c]);
        }
    }
}

/* One output pixel from its taps [rows) x [cols), x and w at the first of them; y its C outputs,
 * mask_index its first mask bit. Inlined with constant cols (`constant` 1) for the pixels whose kernel
 * rows lie whole inside the input, for the common kernels. */
TTE_ALWAYS_INLINE void dw_pixel(const dw_call *d, const int8_t *x, const int8_t *w, int32_t rows, int32_t cols,
                                int constant, int8_t *y, int32_t mask_index) {
    int32_t acc[TTE_HOST_DW_CHANNELS];
    const int32_t channels = d->channels;
    const int16_t x_zero = (int16_t)d->x_zero;
    memset(acc, 0, (size_t)channels * sizeof acc[0]);
    for (int32_t ky = 0; ky < rows; ++ky) {
        dw_row(acc, x + (size_t)ky * d->x_row, w + (size_t)ky * d->w_row, cols, channels, x_zero, constant);
    }
    tte_host_epilogue(d->p, d->bias, d->multiplier, 0, channels, acc, y, d->mask, mask_index);
}

/* The taps [*first, *end) of a kernel of size k whose first tap lands at input index `at` that lie
 * inside [0, size). */
static void dw_taps(int32_t at, int32_t k, int32_t size, int32_t *first, int32_t *end) {
    *first = at < 0 ? -at : 0;
    *end = size - at < k ? size - at : k;
}

/* Output rows [oy_begin, oy_end) of the band (x's first row is input row x_row). */
static TTE_HOST_CLONES void dw_run(const tte_conv2d_params *p, const dw_call *d, const tte_conv2d_window *win,
                                   const int8_t *x, const int8_t *w, int8_t *y) {
    const int32_t channels = p->in_c, kh = p->kernel_h, kw = p->kernel_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, pad_top = p->pad_top, pad_left = p->pad_left;
    const int32_t square = kh == kw && (kh == 3 || kh == 5 || kh == 7) ? kh : 0;
    for (int32_t oy = win->oy_begin; oy < win->oy_end; ++oy) {
        const int32_t iy = oy * stride_h - pad_top;
        int32_t ky0, ky1;
        dw_taps(iy, kh, p->in_h, &ky0, &ky1);
        const int8_t *x_line = x + (size_t)(iy + ky0 - win->x_row) * d->x_row;
        int8_t *y_line = y + (size_t)(oy - win->oy_begin) * win->out_w * channels;
        for (int32_t ox = 0; ox < win->out_w; ++ox) {
            const int32_t ix = ox * stride_w - pad_left;
            int32_t kx0, kx1;
            dw_taps(ix, kw, p->in_w, &kx0, &kx1);
            const int8_t *xp = x_line + (ix + kx0) * channels;
            const int8_t *wp = w + (ky0 * kw + kx0) * channels;
            int8_t *yp = y_line + ox * channels;
            const int32_t mask_index = (oy * win->out_w + ox) * channels, rows = ky1 - ky0;
            const int full_width = kx0 == 0 && kx1 == kw;
            if (full_width && square == 3) {
                dw_pixel(d, xp, wp, rows, 3, 1, yp, mask_index);
            } else if (full_width && square == 5) {
                dw_pixel(d, xp, wp, rows, 5, 1, yp, mask_index);
            } else if (full_width && square == 7) {
                dw_pixel(d, xp, wp, rows, 7, 1, yp, mask_index);
            } else {
                dw_pixel(d, xp, wp, rows, kx1 - kx0, 0, yp, mask_index);
            }
        }
    }
}

tte_status tte_depthwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                       const int8_t *w_train, const int32_t *bias, const float *multiplier, int8_t *y,
                                       uint8_t *mask, const tte_row_band *rows, void *scratch) {
    tte_conv2d_window win;
    const tte_status status =
        tte_conv2d_fwd_check(p, x, w, w_train, bias, multiplier, y, rows, TTE_CONV2D_DEPTHWISE, &win);
    if (status != TTE_OK) {
        return status;
    }
    const int32_t taps = p->kernel_h * p->kernel_w;
    if (p->in_c > TTE_HOST_DW_CHANNELS || (p->train_count != 0 && taps * p->in_c > TTE_HOST_DW_MERGED)) {
        return tte_ref_depthwise_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
    }
    int8_t merged[TTE_HOST_DW_MERGED];
    if (p->train_count != 0) {
        /* w [KH][KW][C] with column train_channels[j] from column j of w_train [KH][KW][train_count]. */
        memcpy(merged, w, (size_t)taps * p->in_c);
        for (int32_t t = 0; t < taps; ++t) {
            for (int32_t j = 0; j < p->train_count; ++j) {
                merged[t * p->in_c + p->train_channels[j]] = w_train[t * p->train_count + j];
            }
        }
        w = merged;
    }
    const dw_call d = {
        .p = p,
        .channels = p->in_c,
        .x_row = p->in_w * p->in_c,
        .w_row = p->kernel_w * p->in_c,
        .x_zero = p->x_zero,
        .bias = bias,
        .multiplier = multiplier,
        .mask = mask,
    };
    dw_run(p, &d, &win, x, w, y);
    return TTE_OK;
}
