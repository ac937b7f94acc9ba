/* Dense int8 convolution (groups 1) for the host: each output pixel's patch (im2col, padded taps 0
 * after the zero point) as a row of the blocked matrix product of host-impl.h against the OHWI weight
 * rows, two pixels x four output channels per step; the MCUNet stem (3x3, 3 input channels: 27
 * codes padded to 32) is its commonest call. Results equal tte_ref_conv2d_fwd_s8's bit for bit. A
 * call with a trained slice, groups > 1 or a patch of more than TTE_HOST_ROW_CODES codes runs the
 * reference kernel. */
#include "host-impl.h"

size_t tte_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* the patches are on the stack: the host's size is the reference's, 0 */
    return 0;
}

typedef struct conv_call {
    const tte_conv2d_params *p;
    const int8_t *x, *w;
    int32_t stride_h, stride_w, pad_top, pad_left, out_w, oy_begin, x_row, taps, k_pad;
} conv_call;

/* Band pixel k's patch in weight order [ky][kx][c]. */
static void conv_row(const void *ctx, int32_t k, int16_t *row) {
    const conv_call *c = ctx;
    const tte_conv2d_params *p = c->p;
    const int32_t oy = c->oy_begin + k / c->out_w, ox = k % c->out_w;
    const int32_t iy0 = oy * c->stride_h - c->pad_top, ix0 = ox * c->stride_w - c->pad_left, in_c = p->in_c;
    const int32_t kw = p->kernel_w, row_codes = kw * in_c;
    int16_t *dst = row;
    for (int32_t ky = 0; ky < p->kernel_h; ++ky, dst += row_codes) {
        const int32_t iy = iy0 + ky;
        if (iy < 0 || iy >= p->in_h) {
            memset(dst, 0, (size_t)row_codes * sizeof dst[0]); /* padding: x - x_zero is 0 */
            continue;
        }
        const int8_t *line = c->x + (size_t)(iy - c->x_row) * p->in_w * in_c; /* input row iy, at ix 0 */
        if (ix0 >= 0 && ix0 + kw <= p->in_w) {
            tte_host_widen(line + (size_t)ix0 * in_c, row_codes, p->x_zero, row_codes, dst); /* the kernel row whole */
            continue;
        }
        for (int32_t kx = 0; kx < kw; ++kx) {
            const int32_t ix = ix0 + kx;
            if (ix < 0 || ix >= p->in_w) {
                memset(dst + kx * in_c, 0, (size_t)in_c * sizeof dst[0]);
            } else {
                tte_host_widen(line + (size_t)ix * in_c, in_c, p->x_zero, in_c, dst + kx * in_c);
            }
        }
    }
    memset(dst, 0, (size_t)(c->k_pad - c->taps) * sizeof dst[0]);
}

static void conv_weights(const void *ctx, int32_t o, int16_t *row) {
    const conv_call *c = ctx;
    tte_host_widen_weights(c->w + (size_t)o * c->taps, c->taps, c->k_pad, row);
}

static TTE_HOST_CLONES void conv_run(const conv_call *c, const tte_host_out *d, int32_t pixels) {
    tte_host_product(c, d, pixels, c->k_pad, conv_row, conv_weights);
}

tte_status tte_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w, const int8_t *w_train,
                             const int32_t *bias, const float *multiplier, int8_t *y, uint8_t *mask,
                             const tte_row_band *rows, void *scratch) {
    tte_conv2d_window win;
    const tte_status status = tte_conv2d_fwd_check(p, x, w, w_train, bias, multiplier, y, rows, TTE_CONV2D_DENSE, &win);
    if (status != TTE_OK) {
        return status;
    }
    const int32_t taps = p->kernel_h * p->kernel_w * p->in_c;
    const int32_t k_pad = tte_host_round_up(taps, TTE_HOST_LANES);
    if (p->train_count != 0 || p->groups != 1 || k_pad > TTE_HOST_ROW_CODES) {
        return tte_ref_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
    }
    const conv_call c = {
        p, x, w, p->stride_h, p->stride_w, p->pad_top, p->pad_left, win.out_w, win.oy_begin, win.x_row, taps, k_pad};
    const tte_host_out d = {p, bias, multiplier, p->out_c, y, mask, win.oy_begin * win.out_w};
    conv_run(&c, &d, (win.oy_end - win.oy_begin) * win.out_w);
    return TTE_OK;
}
