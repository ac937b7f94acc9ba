/* Pointwise (1x1) int8 convolution for ARMv7E-M: a register-blocked matrix product, two output
 * pixels x two output channels per step, four input channels per load, two MACs per SMLAD; the input
 * zero point enters as -x_zero * sum(w[o]) per output channel, summed once per output channel pair.
 * With stride 1 on both axes the two pixels, like the two weight rows, lie in_c bytes apart, so one register
 * offset reaches both and the step fits the 14 registers in assembly (20 instructions per 16 MACs);
 * other strides and the odd last pixel or channel run the same product in C. Results equal
 * tte_ref_pointwise_conv2d_fwd_s8's bit for bit (the int32 sums are exact in any order; the epilogue
 * is tte_arm_requantize). With a trained slice each output channel pair's two weight rows are first
 * merged with their slices on the stack (2 * TTE_ARM_PW_SLICE_CHANNELS bytes, kept off planned
 * scratch because the planner sizes scratch from the host build). The epilogue kind (tte_arm_kind) is
 * chosen once per call, each kind a copy of the loops. A call with scales tte_arm_scales_supported
 * refuses, or a trained slice on more than TTE_ARM_PW_SLICE_CHANNELS input channels, runs the
 * reference kernel. */
#include "arm-impl.h"

/* The most input channels of a call with a trained slice that this kernel runs itself. */
#define TTE_ARM_PW_SLICE_CHANNELS 384

size_t tte_pointwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* x and w are read in place */
    return 0;
}

/* The four sums of products of pixels xa, xb [in_c] with the rows wa, wb [in_c] of w, added to acc
 * (which holds the input zero point's part): acc += {xa.wa, xa.wb, xb.wa, xb.wb}. */
static void dot_2x2(const int8_t *xa, const int8_t *xb, const int8_t *wa, const int8_t *wb, int32_t in_c,
                    int32_t acc[4]) {
    int32_t aa = acc[0], ab = acc[1], ba = acc[2], bb = acc[3];
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

/* One group of four input channels of the stride-1 2x2 product: pixel a from xa, b from xa + off
 * after xa's post-increment (off = in_c - 4), rows a and b of w likewise from wa; two MACs per
 * SMLAD into aa, ab, ba, bb. 20 instructions, 13 registers and the count. */
#define PW_GROUP                                                                                                       \
    "ldr %[x0], [%[xa]], #4\n\t"                                                                                       \
    "ldr %[x1], [%[xa], %[off]]\n\t"                                                                                   \
    "sxtb16 %[x2], %[x0]\n\t"                                                                                          \
    "sxtb16 %[x0], %[x0], ror #8\n\t"                                                                                  \
    "sxtb16 %[x3], %[x1]\n\t"                                                                                          \
    "sxtb16 %[x1], %[x1], ror #8\n\t"                                                                                  \
    "ldr %[w], [%[wa]], #4\n\t"                                                                                        \
    "sxtb16 %[t], %[w]\n\t"                                                                                            \
    "smlad %[aa], %[x2], %[t], %[aa]\n\t"                                                                              \
    "smlad %[ba], %[x3], %[t], %[ba]\n\t"                                                                              \
    "sxtb16 %[w], %[w], ror #8\n\t"                                                                                    \
    "smlad %[aa], %[x0], %[w], %[aa]\n\t"                                                                              \
    "smlad %[ba], %[x1], %[w], %[ba]\n\t"                                                                              \
    "ldr %[w], [%[wa], %[off]]\n\t"                                                                                    \
    "sxtb16 %[t], %[w]\n\t"                                                                                            \
    "smlad %[ab], %[x2], %[t], %[ab]\n\t"                                                                              \
    "smlad %[bb], %[x3], %[t], %[bb]\n\t"                                                                              \
    "sxtb16 %[w], %[w], ror #8\n\t"                                                                                    \
    "smlad %[ab], %[x0], %[w], %[ab]\n\t"                                                                              \
    "smlad %[bb], %[x1], %[w], %[bb]\n\t"

#define PW_OPERANDS                                                                                                    \
    [aa] "+r"(aa), [ab] "+r"(ab), [ba] "+r"(ba), [bb] "+r"(bb), [xa] "+r"(xa), [wa] "+r"(wa), [x0] "=&r"(x0),          \
        [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3), [w] "=&r"(w), [t] "=&r"(t)

/* dot_2x2 for pixels xa, xa + in_c and rows wa, wa + in_c, the sums starting from acc. */
static inline __attribute__((always_inline)) void dot_2x2_adjacent(const int8_t *xa, const int8_t *wa, int32_t in_c,
                                                                   int32_t acc[4]) {
    int32_t aa = acc[0], ab = acc[1], ba = acc[2], bb = acc[3];
    int32_t x0, x1, x2, x3, w, t;
    const int32_t off = in_c - 4;
    int32_t pairs = in_c >> 3;
    if (pairs > 0) {
        __asm__("1:\n\t" PW_GROUP PW_GROUP "subs %[n], %[n], #1\n\t"
                "bne 1b\n\t"
                : PW_OPERANDS, [n] "+r"(pairs)
                : [off] "r"(off)
                : "cc", "memory");
    }
    if (in_c & 4) {
        __asm__(PW_GROUP : PW_OPERANDS : [off] "r"(off) : "memory");
    }
    for (int32_t c = 0; c < (in_c & 3); ++c) {
        const int32_t xac = xa[c], xbc = xa[in_c + c], wac = wa[c], wbc = wa[in_c + c];
        aa += xac * wac;
        ab += xac * wbc;
        ba += xbc * wac;
        bb += xbc * wbc;
    }
    acc[0] = aa;
    acc[1] = ab;
    acc[2] = ba;
    acc[3] = bb;
}

/* -x_zero * sum(w_row [in_c]): the input zero point's part of every sum of products of output
 * channel w_row (|sum| <= 127 * TTE_MAX_REDUCTION, so the product fits int32). */
static int32_t zero_term(const int8_t *w_row, int32_t in_c, int32_t x_zero) {
    const int16x2_t ones = 0x00010001; /* SMLAD by it adds both halves: four codes in four instructions */
    int32_t sum = 0, c = 0;
    for (; c + 4 <= in_c; c += 4) {
        const int8x4_t v = tte_arm_read4(w_row + c);
        sum = __smlad(__sxtb16(v), ones, sum);
        sum = __smlad(tte_arm_sxtb16_odd(v), ones, sum);
    }
    for (; c < in_c; ++c) {
        sum += w_row[c];
    }
    return -x_zero * sum;
}

/* The input pixel k of the band (in y's order) [in_c]. */
static inline const int8_t *pixel_at(const tte_conv2d_params *p, const tte_conv2d_window *win, const int8_t *x,
                                     int32_t k) {
    const int32_t oy = win->oy_begin + k / win->out_w, ox = k % win->out_w;
    return x + ((size_t)(oy * p->stride_h - win->x_row) * p->in_w + (size_t)ox * p->stride_w) * p->in_c;
}

/* One output channel's weights [in_c] with its trained slice [train_count] in place of the listed
 * channels: the weights tte_ref_pointwise_conv2d_fwd_s8 reads. */
static void merge_row(const tte_conv2d_params *p, const int8_t *w_row, const int8_t *slice, int8_t *row) {
    memcpy(row, w_row, (size_t)p->in_c);
    for (int32_t j = 0; j < p->train_count; ++j) {
        row[p->train_channels[j]] = slice[j];
    }
}

/* Output channels o, ob (o or o + 1) of every pixel of the band; `kind` as tte_arm_store_2x2's,
 * constant in each copy. */
static inline __attribute__((always_inline)) void channel_pair(const tte_conv2d_params *p, const tte_conv2d_window *win,
                                                               const tte_arm_out *d, const int8_t *x, const int8_t *w,
                                                               const int8_t *w_train, int32_t o, int32_t ob, int kind,
                                                               int8_t *y) {
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const int32_t pixels = (win->oy_end - win->oy_begin) * win->out_w;
    const int32_t first = win->oy_begin * win->out_w; /* the whole output's pixel index of y's first pixel */
    const int8_t *wa = w + (size_t)o * in_c, *wb = w + (size_t)ob * in_c;
    int8_t merged[2 * TTE_ARM_PW_SLICE_CHANNELS];
    if (p->train_count != 0) {
        /* Rows o and ob with the trained channels from w_train, side by side as the adjacent step reads them. */
        merge_row(p, wa, w_train + (size_t)o * p->train_count, merged);
        merge_row(p, wb, w_train + (size_t)ob * p->train_count, merged + in_c);
        wa = merged;
        wb = ob == o ? merged : merged + in_c;
    }
    const int32_t za = zero_term(wa, in_c, p->x_zero), zb = ob == o ? za : zero_term(wb, in_c, p->x_zero);
    const tte_arm_channel ca = tte_arm_channel_of(&d->scales, d->bias, kind, o);
    const tte_arm_channel cb = tte_arm_channel_of(&d->scales, d->bias, kind, ob);
    int32_t k = 0;
    if (p->stride_h == 1 && p->stride_w == 1 && ob == o + 1) { /* consecutive pixels lie in_c bytes apart */
        const int8_t *xa = pixel_at(p, win, x, 0);
        for (; k + 1 < pixels; k += 2, xa += 2 * in_c) {
            int32_t acc[4] = {za, zb, za, zb};
            dot_2x2_adjacent(xa, wa, in_c, acc);
            tte_arm_store_2x2(d, &ca, &cb, acc, o, ob, kind, y + (size_t)k * out_c, y + (size_t)(k + 1) * out_c,
                              first + k, first + k + 1);
        }
    }
    for (; k < pixels; k += 2) {
        const int32_t kb = k + 1 < pixels ? k + 1 : k;
        int32_t acc[4] = {za, zb, za, zb};
        dot_2x2(pixel_at(p, win, x, k), pixel_at(p, win, x, kb), wa, wb, in_c, acc);
        tte_arm_store_2x2(d, &ca, &cb, acc, o, ob, kind, y + (size_t)k * out_c, y + (size_t)kb * out_c, first + k,
                          first + kb);
    }
}

/* channel_pair's copy for each epilogue kind, indexed by tte_arm_kind. */
#define CHANNEL_PAIR_COPY(suffix, kind)                                                                                \
    static void channel_pair##suffix(const tte_conv2d_params *p, const tte_conv2d_window *win, const tte_arm_out *d,   \
                                     const int8_t *x, const int8_t *w, const int8_t *w_train, int32_t o, int32_t ob,   \
                                     int8_t *y) {                                                                      \
        channel_pair(p, win, d, x, w, w_train, o, ob, kind, y);                                                        \
    }

#if TTE_ENGINE_REQUANT_FLOAT
CHANNEL_PAIR_COPY(_float, 0)
CHANNEL_PAIR_COPY(_float_plain, TTE_ARM_PLAIN)
#endif
#if TTE_ENGINE_REQUANT_FIXED
CHANNEL_PAIR_COPY(_fixed, TTE_ARM_FIXED)
CHANNEL_PAIR_COPY(_fixed_plain, TTE_ARM_FIXED | TTE_ARM_PLAIN)
#endif

typedef void (*channel_pair_fn)(const tte_conv2d_params *p, const tte_conv2d_window *win, const tte_arm_out *d,
                                const int8_t *x, const int8_t *w, const int8_t *w_train, int32_t o, int32_t ob,
                                int8_t *y);
/* NULL: a mode the build does not carry */
static const channel_pair_fn channel_pair_of[4] = {
    TTE_ARM_FLOAT_COPY(channel_pair_float), TTE_ARM_FLOAT_COPY(channel_pair_float_plain),
    TTE_ARM_FIXED_COPY(channel_pair_fixed), TTE_ARM_FIXED_COPY(channel_pair_fixed_plain)};

tte_status tte_pointwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                       const int8_t *w_train, const int32_t *bias, const float *multiplier, int8_t *y,
                                       uint8_t *mask, const tte_row_band *rows, void *scratch) {
    tte_conv2d_window win;
    const tte_status status =
        tte_conv2d_fwd_check(p, x, w, w_train, bias, multiplier, y, rows, TTE_CONV2D_POINTWISE, &win);
    if (status != TTE_OK) {
        return status;
    }
    if (p->requant == TTE_REQUANT_FIXED_SINGLE) { /* a linear layer's single rounding: the reference's epilogue */
        return tte_ref_pointwise_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
    }
    if (p->in_c > TTE_ARM_PW_SLICE_CHANNELS && p->train_count != 0) {
        return tte_ref_pointwise_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
    }
    if (!tte_arm_scales_supported(p, multiplier, p->out_c)) {
        return tte_ref_pointwise_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
    }
    const tte_arm_out d = {bias, tte_arm_scales_of(p, multiplier), p->y_zero, p->act_min, p->act_max, p->out_c, mask};
    const channel_pair_fn pair = channel_pair_of[tte_arm_kind(p, mask)];
    /* Output channels two by two, outermost, so that each pair's zero-point terms are summed once;
     * inside, pixels two by two. An odd last channel or pixel is paired with itself. */
    for (int32_t o = 0; o < p->out_c; o += 2) {
        pair(p, &win, &d, x, w, w_train, o, o + 1 < p->out_c ? o + 1 : o, y);
    }
    return TTE_OK;
}
