/* Depthwise int8 convolution for ARMv7E-M: four channels per load (the HWC layout keeps a pixel's
 * channels together), one MAC per SMLABB/SMLATT on SXTAB16-expanded halves, and no per-tap bounds
 * test: each output pixel reads the rectangle of its taps that lies inside the input, computed once
 * per pixel. Interior pixels of 3x3, 5x5 and 7x7 kernels (any strides and padding) run a copy of the loop
 * with the kernel size a constant, fully unrolled; border pixels and other kernel sizes (non-square ones
 * included) the same loop with
 * run-time bounds; each in a copy per epilogue kind (tte_arm_kind: float or fixed, and whether the
 * clamp is one SSAT), chosen once per call. Results
 * equal tte_ref_depthwise_conv2d_fwd_s8's bit for bit (exact int32 sums, tte_arm_requantize). A call with a trained
 * slice, or scales tte_arm_scales_supported refuses, runs the reference kernel. */
#include "arm-impl.h"

size_t tte_depthwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* x and w are read in place; the zero point is added while x is sign-extended */
    return 0;
}

/* What every output pixel of one call shares. */
typedef struct dw_call {
    int32_t channels; /* C */
    int32_t x_row;    /* bytes from one input row to the next: in_w * C */
    int32_t w_row;    /* bytes from one weight row to the next: kernel_w * C */
    int32_t x_zero, y_zero, lo, hi;
    const int32_t *bias;
    tte_arm_scales scales;
    uint8_t *mask;
} dw_call;

/* One output pixel: the taps [rows) x [cols) of each channel, x at its first tap, w at the weights of
 * that tap; y the pixel's C outputs, mask_index its first mask bit. Inlined with constant rows and
 * cols for the interior of the common kernels, and with the epilogue `kind` (tte_arm_kind) constant. */
static inline __attribute__((always_inline)) void dw_pixel(const dw_call *d, const int8_t *x, const int8_t *w,
                                                           int32_t rows, int32_t cols, int kind, int8_t *y,
                                                           int32_t mask_index) {
    const int32_t channels = d->channels;
    const int16x2_t zero = tte_arm_zero_pair(d->x_zero);
    /* in locals: an int8 store to y may alias *d, which would be read again after each */
    const int32_t x_row = d->x_row, w_row = d->w_row, y_zero = d->y_zero, lo = d->lo, hi = d->hi;
    uint8_t *mask = d->mask;
    int32_t c = 0;
    for (; c + 4 <= channels; c += 4) {
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0; /* channels c, c+1, c+2, c+3 */
        const int8_t *xr = x + c, *wr = w + c;
        for (int32_t ky = 0; ky < rows; ++ky) {
            for (int32_t kx = 0; kx < cols; ++kx) {
                const int8x4_t xv = tte_arm_read4(xr + kx * channels), wv = tte_arm_read4(wr + kx * channels);
                const int16x2_t xe = __sxtab16(zero, xv), we = __sxtb16(wv);                     /* channels c, c+2 */
                const int16x2_t xo = tte_arm_sxtab16_odd(zero, xv), wo = tte_arm_sxtb16_odd(wv); /* c+1, c+3 */
                a0 = __smlabb(xe, we, a0);
                a2 = __smlatt(xe, we, a2);
                a1 = __smlabb(xo, wo, a1);
                a3 = __smlatt(xo, wo, a3);
            }
            xr += x_row;
            wr += w_row;
        }
        const int32_t acc[4] = {a0, a1, a2, a3};
        tte_arm_channel k[4];
        for (int32_t i = 0; i < 4; ++i) {
            k[i] = tte_arm_channel_of(&d->scales, d->bias, kind, c + i);
        }
        for (int32_t i = 0; i < 4; ++i) {
            if (kind & TTE_ARM_PLAIN) {
                tte_arm_requantize_plain(&k[i], kind, acc[i], y_zero, &y[c + i]);
                continue;
            }
            const int in_range = tte_arm_requantize(&k[i], kind, acc[i], y_zero, lo, hi, &y[c + i]);
            if (mask != NULL) {
                tte_mask_put(mask, mask_index + c + i, in_range);
            }
        }
    }
    for (; c < channels; ++c) {
        int32_t acc = 0;
        for (int32_t ky = 0; ky < rows; ++ky) {
            for (int32_t kx = 0; kx < cols; ++kx) {
                const int32_t xv = x[ky * x_row + kx * channels + c];
                acc += (xv - d->x_zero) * w[ky * w_row + kx * channels + c];
            }
        }
        const tte_arm_channel k = tte_arm_channel_of(&d->scales, d->bias, kind, c);
        const int in_range = tte_arm_requantize(&k, kind, acc, y_zero, lo, hi, &y[c]);
        if (mask != NULL) {
            tte_mask_put(mask, mask_index + c, in_range);
        }
    }
}

/* The taps [*first, *end) of a kernel of size k whose first tap lands at input index `at` that lie
 * inside [0, size). */
static inline void dw_taps(int32_t at, int32_t k, int32_t size, int32_t *first, int32_t *end) {
    *first = at < 0 ? -at : 0;
    *end = size - at < k ? size - at : k;
}

/* Every pixel of the band, each by `square_pixel` (the interior of a kernel of size `square`, 3, 5
 * or 7, a constant; 0: none) or `any_pixel`. */
#define DW_PIXELS(p, win, d, x, w, y, square, square_pixel, any_pixel)                                                 \
    do {                                                                                                               \
        /* in locals: y's int8 stores may alias *p, so its fields would be read again each pixel */                    \
        const int32_t channels = (d)->channels, kh = (p)->kernel_h, kw = (p)->kernel_w, in_h = (p)->in_h;              \
        const int32_t in_w = (p)->in_w, stride_h = (p)->stride_h, stride_w = (p)->stride_w;                            \
        const int32_t pad_top = (p)->pad_top, pad_left = (p)->pad_left, out_w = (win)->out_w;                          \
        for (int32_t oy = (win)->oy_begin; oy < (win)->oy_end; ++oy) {                                                 \
            const int32_t iy = oy * stride_h - pad_top;                                                                \
            int32_t ky0, ky1;                                                                                          \
            dw_taps(iy, kh, in_h, &ky0, &ky1);                                                                         \
            const int8_t *x_line = (x) + (size_t)(iy + ky0 - (win)->x_row) * (d)->x_row;                               \
            int8_t *y_line = (y) + (size_t)(oy - (win)->oy_begin) * out_w * channels;                                  \
            for (int32_t ox = 0; ox < out_w; ++ox) {                                                                   \
                const int32_t ix = ox * stride_w - pad_left;                                                           \
                int32_t kx0, kx1;                                                                                      \
                dw_taps(ix, kw, in_w, &kx0, &kx1);                                                                     \
                const int8_t *xp = x_line + (ix + kx0) * channels;                                                     \
                const int8_t *wp = (w) + (ky0 * kw + kx0) * channels;                                                  \
                int8_t *yp = y_line + ox * channels;                                                                   \
                const int32_t mask_index = (oy * out_w + ox) * channels;                                               \
                if ((square) != 0 && ky0 == 0 && ky1 == kh && kx0 == 0 && kx1 == kw) {                                 \
                    square_pixel(d, xp, wp, yp, mask_index);                                                           \
                } else {                                                                                               \
                    any_pixel(d, xp, wp, ky1 - ky0, kx1 - kx0, yp, mask_index);                                        \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

/* For one epilogue kind: the interior pixel of a square kernel of size 3, 5 and 7, any pixel, and
 * the band's loop over pixels by kernel size. */
#define DW_COPIES(suffix, kind)                                                                                        \
    static void dw_pixel_3##suffix(const dw_call *d, const int8_t *x, const int8_t *w, int8_t *y,                      \
                                   int32_t mask_index) {                                                               \
        dw_pixel(d, x, w, 3, 3, kind, y, mask_index);                                                                  \
    }                                                                                                                  \
    static void dw_pixel_5##suffix(const dw_call *d, const int8_t *x, const int8_t *w, int8_t *y,                      \
                                   int32_t mask_index) {                                                               \
        dw_pixel(d, x, w, 5, 5, kind, y, mask_index);                                                                  \
    }                                                                                                                  \
    static void dw_pixel_7##suffix(const dw_call *d, const int8_t *x, const int8_t *w, int8_t *y,                      \
                                   int32_t mask_index) {                                                               \
        dw_pixel(d, x, w, 7, 7, kind, y, mask_index);                                                                  \
    }                                                                                                                  \
    static void dw_pixel_any##suffix(const dw_call *d, const int8_t *x, const int8_t *w, int32_t rows, int32_t cols,   \
                                     int8_t *y, int32_t mask_index) {                                                  \
        dw_pixel(d, x, w, rows, cols, kind, y, mask_index);                                                            \
    }                                                                                                                  \
    static void dw_run##suffix(const tte_conv2d_params *p, const tte_conv2d_window *win, const dw_call *d,             \
                               const int8_t *x, const int8_t *w, int32_t square, int8_t *y) {                          \
        if (square == 3) {                                                                                             \
            DW_PIXELS(p, win, d, x, w, y, 3, dw_pixel_3##suffix, dw_pixel_any##suffix);                                \
        } else if (square == 5) {                                                                                      \
            DW_PIXELS(p, win, d, x, w, y, 5, dw_pixel_5##suffix, dw_pixel_any##suffix);                                \
        } else if (square == 7) {                                                                                      \
            DW_PIXELS(p, win, d, x, w, y, 7, dw_pixel_7##suffix, dw_pixel_any##suffix);                                \
        } else {                                                                                                       \
            DW_PIXELS(p, win, d, x, w, y, 0, dw_pixel_3##suffix, dw_pixel_any##suffix);                                \
        }                                                                                                              \
    }

#if TTE_ENGINE_REQUANT_FLOAT
DW_COPIES(_float, 0)
DW_COPIES(_float_plain, TTE_ARM_PLAIN)
#endif
#if TTE_ENGINE_REQUANT_FIXED
DW_COPIES(_fixed, TTE_ARM_FIXED)
DW_COPIES(_fixed_plain, TTE_ARM_FIXED | TTE_ARM_PLAIN)
#endif

typedef void (*dw_run_fn)(const tte_conv2d_params *p, const tte_conv2d_window *win, const dw_call *d, const int8_t *x,
                          const int8_t *w, int32_t square, int8_t *y);
/* [tte_arm_kind]; NULL: a mode the build does not carry */
static const dw_run_fn dw_run_of[4] = {TTE_ARM_FLOAT_COPY(dw_run_float), TTE_ARM_FLOAT_COPY(dw_run_float_plain),
                                       TTE_ARM_FIXED_COPY(dw_run_fixed), TTE_ARM_FIXED_COPY(dw_run_fixed_plain)};

tte_status tte_depthwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                       const int8_t *w_train, const int32_t *bias, const float *multiplier, int8_t *y,
                                       uint8_t *mask, const tte_row_band *rows, void *scratch) {
    tte_conv2d_window win;
    const tte_status status =
        tte_conv2d_fwd_check(p, x, w, w_train, bias, multiplier, y, rows, TTE_CONV2D_DEPTHWISE, &win);
    if (status != TTE_OK) {
        return status;
    }
    if (p->requant == TTE_REQUANT_FIXED_SINGLE) { /* a linear layer's single rounding: the reference's epilogue */
        return tte_ref_depthwise_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
    }
    if (p->train_count != 0 || !tte_arm_scales_supported(p, multiplier, p->in_c)) {
        return tte_ref_depthwise_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
    }
    const int32_t channels = p->in_c, kh = p->kernel_h, kw = p->kernel_w;
    const dw_call d = {
        .channels = channels,
        .x_row = p->in_w * channels,
        .w_row = kw * channels,
        .x_zero = p->x_zero,
        .y_zero = p->y_zero,
        .lo = p->act_min,
        .hi = p->act_max,
        .bias = bias,
        .scales = tte_arm_scales_of(p, multiplier),
        .mask = mask,
    };
    const int32_t square = kh == kw && (kh == 3 || kh == 5 || kh == 7) ? kh : 0;
    dw_run_of[tte_arm_kind(p, mask)](p, &win, &d, x, w, square, y);
    return TTE_OK;
}
