/* Pointwise (1x1) int8 convolution for ARMv7E-M: a register-blocked matrix product, two output
 * pixels x two output channels per step, four input channels per load, two MACs per SMLAD; the input
 * zero point enters as -x_zero * sum(w[o]) per output channel, summed once per call. Results equal
 * tte_ref_pointwise_conv2d_fwd_s8's bit for bit (the int32 sums are exact in any order; the epilogue
 * is tte_arm_requantize). A call with a trained slice or a non-finite multiplier runs the
 * reference kernel. */
#include "arm-impl.h"

size_t tte_pointwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* x and w are read in place */
    return 0;
}

/* The four sums of products of pixels xa, xb [in_c] with the rows wa, wb [in_c] of w, without the
 * input zero point (the caller adds it per output channel): acc = {xa.wa, xa.wb, xb.wa, xb.wb}. */
static void dot_2x2(const int8_t *xa, const int8_t *xb, const int8_t *wa, const int8_t *wb, int32_t in_c,
                    int32_t acc[4]) {
    int32_t aa = 0, ab = 0, ba = 0, bb = 0;
    int32_t n = in_c >> 2;
    while (n-- > 0) {
        /* Channels {c, c+2} in the even halves, {c+1, c+3} in the odd ones, for x and w alike. */
        const int8x4_t x0 = tte_arm_read4(xa), x1 = tte_arm_read4(xb);
        const int8x4_t w0 = tte_arm_read4(wa), w1 = tte_arm_read4(wb);
        xa += 4;
        xb += 4;
        wa += 4;
        wb += 4;
        const int16x2_t x0e = __sxtb16(x0), x1e = __sxtb16(x1), w0e = __sxtb16(w0), w1e = __sxtb16(w1);
        aa = __smlad(x0e, w0e, aa);
        ba = __smlad(x1e, w0e, ba);
        ab = __smlad(x0e, w1e, ab);
        bb = __smlad(x1e, w1e, bb);
        const int16x2_t x0o = tte_arm_sxtb16_odd(x0), x1o = tte_arm_sxtb16_odd(x1);
        const int16x2_t w0o = tte_arm_sxtb16_odd(w0), w1o = tte_arm_sxtb16_odd(w1);
        aa = __smlad(x0o, w0o, aa);
        ba = __smlad(x1o, w0o, ba);
        ab = __smlad(x0o, w1o, ab);
        bb = __smlad(x1o, w1o, bb);
    }
    for (int32_t c = 0; c < (in_c & 3); ++c) {
        aa += xa[c] * wa[c];
        ab += xa[c] * wb[c];
        ba += xb[c] * wa[c];
        bb += xb[c] * wb[c];
    }
    acc[0] = aa;
    acc[1] = ab;
    acc[2] = ba;
    acc[3] = bb;
}

/* -x_zero * sum(w_row [in_c]): the input zero point's part of every sum of products of output
 * channel w_row (|sum| <= 127 * TTE_MAX_REDUCTION, so the product fits int32). */
static int32_t zero_term(const int8_t *w_row, int32_t in_c, int32_t x_zero) {
    int32_t sum = 0;
    for (int32_t c = 0; c < in_c; ++c) {
        sum += w_row[c];
    }
    return -x_zero * sum;
}

/* The input pixel k of the band (in y's order) [in_c]. */
static inline const int8_t *pixel_at(const tte_conv2d_params *p, const tte_conv2d_window *win, const int8_t *x,
                                     int32_t k) {
    const int32_t oy = win->oy_begin + k / win->out_w, ox = k % win->out_w;
    return x + ((size_t)(oy * p->stride - win->x_row) * p->in_w + (size_t)ox * p->stride) * p->in_c;
}

tte_status tte_pointwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                       const int8_t *w_train, const int32_t *bias, const float *multiplier, int8_t *y,
                                       uint8_t *mask, const tte_row_band *rows, void *scratch) {
    tte_conv2d_window win;
    const tte_status status =
        tte_conv2d_fwd_check(p, x, w, w_train, bias, multiplier, y, rows, TTE_CONV2D_POINTWISE, &win);
    if (status != TTE_OK) {
        return status;
    }
    if (p->train_count != 0 || !tte_arm_multipliers_finite(multiplier, p->out_c)) {
        return tte_ref_pointwise_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
    }
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const int32_t y_zero = p->y_zero, lo = p->act_min, hi = p->act_max;
    const int32_t pixels = (win.oy_end - win.oy_begin) * win.out_w;
    const int32_t first = win.oy_begin * win.out_w; /* the whole output's pixel index of y's first pixel */
    /* Output channels two by two, outermost, so that each pair's zero-point terms are summed once;
     * inside, pixels two by two. An odd last channel or pixel is paired with itself. */
    for (int32_t o = 0; o < out_c; o += 2) {
        const int32_t ob = o + 1 < out_c ? o + 1 : o;
        const int8_t *wa = w + (size_t)o * in_c, *wb = w + (size_t)ob * in_c;
        const int32_t za = zero_term(wa, in_c, p->x_zero), zb = ob == o ? za : zero_term(wb, in_c, p->x_zero);
        const int32_t bias_a = bias[o], bias_b = bias[ob];
        const float m_a = multiplier[o], m_b = multiplier[ob];
        for (int32_t k = 0; k < pixels; k += 2) {
            const int32_t kb = k + 1 < pixels ? k + 1 : k;
            const int8_t *xa = pixel_at(p, &win, x, k), *xb = pixel_at(p, &win, x, kb);
            int32_t acc[4];
            dot_2x2(xa, xb, wa, wb, in_c, acc);
            int8_t *ya = y + (size_t)k * out_c, *yb = y + (size_t)kb * out_c;
            const int in_aa = tte_arm_requantize(acc[0] + za, bias_a, m_a, y_zero, lo, hi, &ya[o]);
            const int in_ab = tte_arm_requantize(acc[1] + zb, bias_b, m_b, y_zero, lo, hi, &ya[ob]);
            const int in_ba = tte_arm_requantize(acc[2] + za, bias_a, m_a, y_zero, lo, hi, &yb[o]);
            const int in_bb = tte_arm_requantize(acc[3] + zb, bias_b, m_b, y_zero, lo, hi, &yb[ob]);
            if (mask != NULL) {
                const int32_t mask_a = (first + k) * out_c, mask_b = (first + kb) * out_c;
                tte_mask_put(mask, mask_a + o, in_aa);
                tte_mask_put(mask, mask_a + ob, in_ab);
                tte_mask_put(mask, mask_b + o, in_ba);
                tte_mask_put(mask, mask_b + ob, in_bb);
            }
        }
    }
    return TTE_OK;
}
