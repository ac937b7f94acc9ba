/* Dense int8 convolution (groups 1) for ARMv7E-M: im2col of two output pixels at a time into a patch
 * on the stack, then a matrix product against the OHWI weights, two pixels x two output channels
 * per step, two MACs per SMLAD. The patch holds (x - x_zero) as halfwords, already sign-extended and
 * in SXTB16's order (codes k, k+2 in one word, k+1, k+3 in the next), so each step loads it with
 * two LDRDs and spends its extensions on the weights alone; padded taps and the last group's unused
 * places hold 0. The MCUNet stem (3x3 kernel, 3 input channels) runs a copy with those sizes
 * constant. A patch of more than TTE_ARM_CONV_PATCH codes, or a call with a trained slice, runs the
 * chunked copy: the reduction is cut into chunks of at most TTE_ARM_CONV_PATCH codes whose int32 sums
 * add up per block of TTE_ARM_CONV_BLOCK output channels, and a trained slice is a second matrix
 * product (w_train is [out_c][kh * kw * train_count], the trained channels' codes its patch) while the
 * first one reads the trained channels as x_zero. Results equal tte_ref_conv2d_fwd_s8's bit for bit
 * (exact int32 sums, in any order; tte_arm_requantize; the epilogue kind chosen once per call). Groups > 1
 * or scales tte_arm_scales_supported refuses run the reference kernel.
 *
 * The patch lives on the stack, not in planned scratch: the planner asks the host build for
 * scratch sizes (tte_ir.scratch), so scratch only this build needs would be planned wrong. Its bound
 * costs about 5 * TTE_ARM_CONV_PATCH bytes of stack (the patch and one pixel's codes), and the chunked
 * copy 8 * TTE_ARM_CONV_BLOCK more (its sums). */
#include "arm-impl.h"

/* The most codes (kernel_h * kernel_w * in_c) of a patch this kernel takes: a 7x7 kernel on 3
 * channels, 3x3 on 17. */
#define TTE_ARM_CONV_PATCH 160
#define TTE_ARM_CONV_GROUPS ((TTE_ARM_CONV_PATCH + 3) / 4)
/* Output channels whose sums the chunked copy keeps across chunks (even: whole pairs): each chunk's
 * patch is gathered once per block, so ResNet-8's 64-channel convs gather theirs twice. */
#define TTE_ARM_CONV_BLOCK 32

/* A weight row's last group is read as 4 codes from 4 * (quads - 1), up to 3 past the row, into
 * the next rows (where the patch is 0); for the last TAIL_ROWS rows, which 4 codes would carry past
 * the end of w even when K is 1, it is read from a padded copy. */
#define TAIL_ROWS 4

size_t tte_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* the patch is on the stack (see above), so the host's size holds on every target */
    return 0;
}

/* One matrix product of the chunked copy: weights [out_c][taps] and the last group of their last
 * TAIL_ROWS rows, padded; `channels`: the input channel of each of a tap's `width` codes (NULL: all
 * in_c in order, those of `zeroed`, zeroed_count of them, read as x_zero). */
typedef struct conv_product {
    const int8_t *w;
    int32_t taps, width;
    const int32_t *channels, *zeroed;
    int32_t zeroed_count;
    const int8_t *tail[TAIL_ROWS];
} conv_product;

/* What every pixel pair of one call shares. */
typedef struct conv_call {
    int32_t in_h, in_w, in_c, kh, kw, x_row; /* x_row: the whole-input row of x[0] */
    int32_t stride_h, stride_w, pad_top, pad_left;
    int32_t taps;  /* K = kh * kw * in_c, codes per patch */
    int32_t quads; /* ceil(K / 4): groups of four codes */
    int32_t out_c, out_w, x_zero;
    const int8_t *x, *w;
    tte_arm_out out;
    conv_product product[2]; /* w (the chunked copy zeroes its trained channels), then w_train */
    int32_t products;        /* 1, or 2 with a trained slice */
} conv_call;

/* One pixel's codes, in K order, with x_zero at padded taps and past K up to 4 * quads (both
 * become 0 in the patch): kernel rows that lie inside x are copied whole. */
static inline __attribute__((always_inline)) void gather(const conv_call *c, int32_t oy, int32_t ox, int32_t kh,
                                                         int32_t kw, int32_t in_c, int32_t quads, int8_t *codes) {
    const int32_t iy0 = oy * c->stride_h - c->pad_top, ix0 = ox * c->stride_w - c->pad_left;
    const int32_t row = kw * in_c;
    const int8_t z = (int8_t)c->x_zero;
    int8_t *dst = codes;
    for (int32_t ky = 0; ky < kh; ++ky, dst += row) {
        const int32_t iy = iy0 + ky;
        if (iy < 0 || iy >= c->in_h) {
            memset(dst, z, (size_t)row);
            continue;
        }
        const int8_t *line = c->x + (size_t)(iy - c->x_row) * c->in_w * in_c; /* input row iy, at ix 0 */
        if (ix0 >= 0 && ix0 + kw <= c->in_w) {
            memcpy(dst, line + ix0 * in_c, (size_t)row);
            continue;
        }
        for (int32_t kx = 0; kx < kw; ++kx) {
            const int32_t ix = ix0 + kx;
            if (ix < 0 || ix >= c->in_w) {
                memset(dst + kx * in_c, z, (size_t)in_c);
            } else {
                memcpy(dst + kx * in_c, line + ix * in_c, (size_t)in_c);
            }
        }
    }
    memset(dst, z, (size_t)(4 * quads - kh * row));
}

/* One pixel's words of the patch from its codes: per group of four, (x - x_zero) of codes {0, 2}
 * then {1, 3}, at patch[4 * g], patch[4 * g + 1] (the other pixel's words take the two after). */
static inline __attribute__((always_inline)) void expand(const int8_t *codes, int32_t quads, int16x2_t zero,
                                                         int16x2_t *patch) {
    for (int32_t g = 0; g < quads; ++g) {
        const int8x4_t v = tte_arm_read4(codes + 4 * g);
        patch[4 * g] = __sxtab16(zero, v);
        patch[4 * g + 1] = tte_arm_sxtab16_odd(zero, v);
    }
}

/* One group of four codes of the 2x2 product: the patch words of pixels a and b from q (post-
 * incremented by 16), the weights of row a from wa (post-incremented by 4) and of row b from
 * wa + off after that increment; two MACs per SMLAD into aa, ab, ba, bb. 16 instructions, 13
 * registers: written in assembly because GCC spilled here. */
#define CONV_GROUP                                                                                                     \
    "ldrd %[p2], %[p3], [%[q], #8]\n\t"                                                                                \
    "ldrd %[p0], %[p1], [%[q]], #16\n\t"                                                                               \
    "ldr %[w], [%[wa]], #4\n\t"                                                                                        \
    "sxtb16 %[t], %[w]\n\t"                                                                                            \
    "smlad %[aa], %[p0], %[t], %[aa]\n\t"                                                                              \
    "smlad %[ba], %[p2], %[t], %[ba]\n\t"                                                                              \
    "sxtb16 %[w], %[w], ror #8\n\t"                                                                                    \
    "smlad %[aa], %[p1], %[w], %[aa]\n\t"                                                                              \
    "smlad %[ba], %[p3], %[w], %[ba]\n\t"                                                                              \
    "ldr %[w], [%[wa], %[off]]\n\t"                                                                                    \
    "sxtb16 %[t], %[w]\n\t"                                                                                            \
    "smlad %[ab], %[p0], %[t], %[ab]\n\t"                                                                              \
    "smlad %[bb], %[p2], %[t], %[bb]\n\t"                                                                              \
    "sxtb16 %[w], %[w], ror #8\n\t"                                                                                    \
    "smlad %[ab], %[p1], %[w], %[ab]\n\t"                                                                              \
    "smlad %[bb], %[p3], %[w], %[bb]\n\t"

#define CONV_OPERANDS                                                                                                  \
    [aa] "+r"(aa), [ab] "+r"(ab), [ba] "+r"(ba), [bb] "+r"(bb), [q] "+r"(q), [wa] "+r"(wa), [p0] "=&r"(p0),            \
        [p1] "=&r"(p1), [p2] "=&r"(p2), [p3] "=&r"(p3), [w] "=&r"(w), [t] "=&r"(t)

/* The four sums of products of the patches of pixels a, b (interleaved: a's two words of a group,
 * then b's) with weight rows wa and wa + row over `quads` groups of four codes:
 * acc = {a.wa, a.wb, b.wa, b.wb}. The
 * last group's weights are read from ta and ta + tail_row (TAIL_ROWS), or, when tail is 0, in
 * place like the others. */
static inline __attribute__((always_inline)) void dot_2x2(const int16x2_t *q, const int8_t *wa, int32_t row,
                                                          int32_t quads, int tail, const int8_t *ta, int32_t tail_row,
                                                          int32_t acc[4]) {
    int32_t aa = 0, ab = 0, ba = 0, bb = 0;
    int32_t p0, p1, p2, p3, w, t;
    const int32_t off = row - 4, direct = tail ? quads - 1 : quads;
    int32_t pairs = direct >> 1;
    if (pairs > 0) {
        __asm__("1:\n\t" CONV_GROUP CONV_GROUP "subs %[n], %[n], #1\n\t"
                "bne 1b\n\t"
                : CONV_OPERANDS, [n] "+r"(pairs)
                : [off] "r"(off)
                : "cc", "memory");
    }
    if (direct & 1) {
        __asm__(CONV_GROUP : CONV_OPERANDS : [off] "r"(off) : "memory");
    }
    if (tail) {
        wa = ta;
        __asm__(CONV_GROUP : CONV_OPERANDS : [off] "r"(tail_row - 4) : "memory");
    }
    acc[0] = aa;
    acc[1] = ab;
    acc[2] = ba;
    acc[3] = bb;
}

/* Output pixels a (whole-output index ia: row oya, column oxa) and b of one call, stored at ya, yb:
 * both patches, then every output channel pair. Inlined with constant sizes for the stem, and with
 * the epilogue `kind` (tte_arm_kind) constant. */
static inline __attribute__((always_inline)) void pixel_pair(const conv_call *c, int32_t kh, int32_t kw, int32_t in_c,
                                                             int32_t quads, int kind, int32_t oya, int32_t oxa,
                                                             int32_t oyb, int32_t oxb, int8_t *ya, int8_t *yb,
                                                             int32_t ia, int32_t ib) {
    int8_t codes[4 * TTE_ARM_CONV_GROUPS];
    int16x2_t patch[4 * TTE_ARM_CONV_GROUPS];
    const int16x2_t zero = tte_arm_zero_pair(c->x_zero);
    gather(c, oya, oxa, kh, kw, in_c, quads, codes);
    expand(codes, quads, zero, patch);
    gather(c, oyb, oxb, kh, kw, in_c, quads, codes);
    expand(codes, quads, zero, patch + 2);
    const int32_t out_c = c->out_c, taps = kh * kw * in_c, last = 4 * (quads - 1);
    const int8_t *wa = c->w;
    int32_t o = 0;
    /* Pairs whose rows are all before the last TAIL_ROWS: every group read in place. */
    for (; o + 1 + TAIL_ROWS < out_c; o += 2, wa += 2 * taps) {
        int32_t acc[4];
        dot_2x2(patch, wa, taps, quads, 0, NULL, 0, acc);
        const tte_arm_channel ca = tte_arm_channel_of(&c->out.scales, c->out.bias, kind, o);
        const tte_arm_channel cb = tte_arm_channel_of(&c->out.scales, c->out.bias, kind, o + 1);
        tte_arm_store_2x2(&c->out, &ca, &cb, acc, o, o + 1, kind, ya, yb, ia, ib);
    }
    for (; o < out_c; o += 2, wa += 2 * taps) {
        const int32_t ob = o + 1 < out_c ? o + 1 : o;
        const int32_t row = ob == o ? 0 : taps; /* row ob of w from row o */
        const int8_t *ta = o + TAIL_ROWS < out_c ? wa + last : c->product[0].tail[o + TAIL_ROWS - out_c];
        const int8_t *tb = ob + TAIL_ROWS < out_c ? wa + row + last : c->product[0].tail[ob + TAIL_ROWS - out_c];
        int32_t acc[4];
        dot_2x2(patch, wa, row, quads, 1, ta, (int32_t)((uintptr_t)tb - (uintptr_t)ta), acc);
        const tte_arm_channel ca = tte_arm_channel_of(&c->out.scales, c->out.bias, kind, o);
        const tte_arm_channel cb = tte_arm_channel_of(&c->out.scales, c->out.bias, kind, ob);
        tte_arm_store_2x2(&c->out, &ca, &cb, acc, o, ob, kind, ya, yb, ia, ib);
    }
}

/* The codes of tap `tap` (a kernel position) of pixel (oy, ox): x at its input pixel, or NULL where
 * the tap is padding. */
static inline const int8_t *tap_codes(const conv_call *c, int32_t oy, int32_t ox, int32_t tap) {
    const int32_t iy = oy * c->stride_h - c->pad_top + tap / c->kw, ix = ox * c->stride_w - c->pad_left + tap % c->kw;
    if (iy < 0 || iy >= c->in_h || ix < 0 || ix >= c->in_w) {
        return NULL;
    }
    return c->x + ((size_t)(iy - c->x_row) * c->in_w + ix) * c->in_c;
}

/* Codes [k0, k0 + len) of product m's patch of pixel (oy, ox), in K order (tap, then m's codes of a
 * tap), with x_zero at padded taps, at zeroed channels and past len up to a whole group. */
static void gather_chunk(const conv_call *c, const conv_product *m, int32_t oy, int32_t ox, int32_t k0, int32_t len,
                         int8_t *codes) {
    const int8_t z = (int8_t)c->x_zero;
    const int32_t width = m->width;
    int32_t tap = k0 / width, at = k0 % width;
    for (int32_t done = 0; done < len; ++tap, at = 0) {
        const int32_t n = width - at < len - done ? width - at : len - done;
        const int8_t *src = tap_codes(c, oy, ox, tap);
        int8_t *dst = codes + done;
        if (src == NULL) {
            memset(dst, z, (size_t)n);
        } else if (m->channels != NULL) {
            for (int32_t i = 0; i < n; ++i) {
                dst[i] = src[m->channels[at + i]];
            }
        } else {
            memcpy(dst, src + at, (size_t)n);
            for (int32_t j = 0; j < m->zeroed_count; ++j) {
                const int32_t i = m->zeroed[j] - at;
                if (i >= 0 && i < n) {
                    dst[i] = z;
                }
            }
        }
        done += n;
    }
    memset(codes + len, z, (size_t)(4 * ((len + 3) / 4) - len));
}

/* The sums of output channels [o0, o0 + n) (n even, or odd at the last channel) of pixels a, b over
 * every chunk of every product, four per channel pair as tte_arm_store_2x2 reads them. Independent of
 * the epilogue kind, so one copy serves them all. */
static __attribute__((noinline)) void block_sums(const conv_call *c, int32_t oya, int32_t oxa, int32_t oyb, int32_t oxb,
                                                 int32_t o0, int32_t n, int32_t *sums) {
    int8_t codes[4 * TTE_ARM_CONV_GROUPS];
    int16x2_t patch[4 * TTE_ARM_CONV_GROUPS];
    const int16x2_t zero = tte_arm_zero_pair(c->x_zero);
    const int32_t out_c = c->out_c;
    memset(sums, 0, sizeof(int32_t) * 2 * (size_t)(n + 1));
    for (int32_t mi = 0; mi < c->products; ++mi) {
        const conv_product *m = &c->product[mi];
        const int32_t taps = m->taps;
        for (int32_t k0 = 0; k0 < taps; k0 += TTE_ARM_CONV_PATCH) {
            const int32_t len = taps - k0 < TTE_ARM_CONV_PATCH ? taps - k0 : TTE_ARM_CONV_PATCH;
            const int32_t quads = (len + 3) / 4, last = 4 * (quads - 1);
            const int final = k0 + len == taps; /* only the last chunk reads past a row (TAIL_ROWS) */
            gather_chunk(c, m, oya, oxa, k0, len, codes);
            expand(codes, quads, zero, patch);
            gather_chunk(c, m, oyb, oxb, k0, len, codes);
            expand(codes, quads, zero, patch + 2);
            for (int32_t i = 0; 2 * i < n; ++i) {
                const int32_t o = o0 + 2 * i, ob = o + 1 < out_c ? o + 1 : o;
                const int32_t row = ob == o ? 0 : taps;
                const int8_t *wa = m->w + (size_t)o * taps + k0;
                int32_t acc[4];
                if (final && ob + TAIL_ROWS >= out_c) {
                    const int8_t *ta = o + TAIL_ROWS < out_c ? wa + last : m->tail[o + TAIL_ROWS - out_c];
                    const int8_t *tb = ob + TAIL_ROWS < out_c ? wa + row + last : m->tail[ob + TAIL_ROWS - out_c];
                    dot_2x2(patch, wa, row, quads, 1, ta, (int32_t)((uintptr_t)tb - (uintptr_t)ta), acc);
                } else {
                    dot_2x2(patch, wa, row, quads, 0, NULL, 0, acc);
                }
                for (int32_t j = 0; j < 4; ++j) {
                    sums[4 * i + j] += acc[j];
                }
            }
        }
    }
}

/* Pixel pairs of the band as PIXEL_PAIRS walks them, by blocks of output channels (block_sums), with
 * the epilogue `kind` constant. */
static inline __attribute__((always_inline)) void chunked_pairs(const conv_call *c, int kind, int8_t *y, int32_t first,
                                                                int32_t pixels) {
    const int32_t out_c = c->out_c, out_w = c->out_w;
    for (int32_t k = 0; k < pixels; k += 2) {
        const int32_t kb = k + 1 < pixels ? k + 1 : k;
        const int32_t ia = first + k, ib = first + kb;
        int8_t *ya = y + (size_t)k * out_c, *yb = y + (size_t)kb * out_c;
        for (int32_t o0 = 0; o0 < out_c; o0 += TTE_ARM_CONV_BLOCK) {
            const int32_t n = out_c - o0 < TTE_ARM_CONV_BLOCK ? out_c - o0 : TTE_ARM_CONV_BLOCK;
            int32_t sums[2 * TTE_ARM_CONV_BLOCK + 2];
            block_sums(c, ia / out_w, ia % out_w, ib / out_w, ib % out_w, o0, n, sums);
            for (int32_t i = 0; 2 * i < n; ++i) {
                const int32_t o = o0 + 2 * i, ob = o + 1 < out_c ? o + 1 : o;
                const tte_arm_channel ca = tte_arm_channel_of(&c->out.scales, c->out.bias, kind, o);
                const tte_arm_channel cb = tte_arm_channel_of(&c->out.scales, c->out.bias, kind, ob);
                tte_arm_store_2x2(&c->out, &ca, &cb, sums + 4 * i, o, ob, kind, ya, yb, ia, ib);
            }
        }
    }
}

/* Pixel pairs [k, k + 1] of the band's `pixels` (an odd last pixel paired with itself), the band's
 * first pixel being whole-output pixel `first`; each variant a copy of pixel_pair. */
#define PIXEL_PAIRS(c, kh, kw, in_c, quads, kind, y, first, pixels)                                                    \
    for (int32_t k = 0; k < (pixels); k += 2) {                                                                        \
        const int32_t kb = k + 1 < (pixels) ? k + 1 : k;                                                               \
        const int32_t ia = (first) + k, ib = (first) + kb, out_w = (c)->out_w;                                         \
        pixel_pair(c, kh, kw, in_c, quads, kind, ia / out_w, ia % out_w, ib / out_w, ib % out_w,                       \
                   (y) + (size_t)k * (c)->out_c, (y) + (size_t)kb * (c)->out_c, ia, ib);                               \
    }

/* The stem's copy (3x3 kernel on 3 channels, constant), the general one and the chunked one, for each
 * epilogue kind. */
#define RUN_COPIES(suffix, kind)                                                                                       \
    static __attribute__((noinline)) void run_stem##suffix(const conv_call *c, int8_t *y, int32_t first,               \
                                                           int32_t pixels) {                                           \
        PIXEL_PAIRS(c, 3, 3, 3, 7, kind, y, first, pixels)                                                             \
    }                                                                                                                  \
    static __attribute__((noinline)) void run_any##suffix(const conv_call *c, int8_t *y, int32_t first,                \
                                                          int32_t pixels) {                                            \
        PIXEL_PAIRS(c, c->kh, c->kw, c->in_c, c->quads, kind, y, first, pixels)                                        \
    }                                                                                                                  \
    static __attribute__((noinline)) void run_chunked##suffix(const conv_call *c, int8_t *y, int32_t first,            \
                                                              int32_t pixels) {                                        \
        chunked_pairs(c, kind, y, first, pixels);                                                                      \
    }

#if TTE_ENGINE_REQUANT_FLOAT
RUN_COPIES(_float, 0)
RUN_COPIES(_float_plain, TTE_ARM_PLAIN)
#endif
#if TTE_ENGINE_REQUANT_FIXED
RUN_COPIES(_fixed, TTE_ARM_FIXED)
RUN_COPIES(_fixed_plain, TTE_ARM_FIXED | TTE_ARM_PLAIN)
#endif

typedef void (*run_fn)(const conv_call *c, int8_t *y, int32_t first, int32_t pixels);
/* [copy: RUN_ANY, RUN_STEM, RUN_CHUNKED][tte_arm_kind]; NULL: a mode the build does not carry */
enum { RUN_ANY, RUN_STEM, RUN_CHUNKED };
static const run_fn run_of[3][4] = {
    {TTE_ARM_FLOAT_COPY(run_any_float), TTE_ARM_FLOAT_COPY(run_any_float_plain), TTE_ARM_FIXED_COPY(run_any_fixed),
     TTE_ARM_FIXED_COPY(run_any_fixed_plain)},
    {TTE_ARM_FLOAT_COPY(run_stem_float), TTE_ARM_FLOAT_COPY(run_stem_float_plain), TTE_ARM_FIXED_COPY(run_stem_fixed),
     TTE_ARM_FIXED_COPY(run_stem_fixed_plain)},
    {TTE_ARM_FLOAT_COPY(run_chunked_float), TTE_ARM_FLOAT_COPY(run_chunked_float_plain),
     TTE_ARM_FIXED_COPY(run_chunked_fixed), TTE_ARM_FIXED_COPY(run_chunked_fixed_plain)},
};

/* The padded last group of each of the last TAIL_ROWS rows of weights [out_c][taps] into tails, and
 * tail[i] at each. */
static void fill_tails(const int8_t *w, int32_t out_c, int32_t taps, int8_t tails[TAIL_ROWS][4],
                       const int8_t *tail[TAIL_ROWS]) {
    const int32_t first = 4 * ((taps + 3) / 4 - 1);
    for (int32_t i = 0; i < TAIL_ROWS; ++i) {
        const int32_t o = out_c - TAIL_ROWS + i;
        memset(tails[i], 0, sizeof tails[i]);
        if (o >= 0) {
            memcpy(tails[i], w + (size_t)o * taps + first, (size_t)(taps - first));
        }
        tail[i] = tails[i];
    }
}

tte_status tte_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w, const int8_t *w_train,
                             const int32_t *bias, const float *multiplier, int8_t *y, uint8_t *mask,
                             const tte_row_band *rows, void *scratch) {
    tte_conv2d_window win;
    const tte_status status = tte_conv2d_fwd_check(p, x, w, w_train, bias, multiplier, y, rows, TTE_CONV2D_DENSE, &win);
    if (status != TTE_OK) {
        return status;
    }
    if (p->requant == TTE_REQUANT_FIXED_SINGLE) { /* a linear layer's single rounding: the reference's epilogue */
        return tte_ref_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
    }
    const int32_t taps = p->kernel_h * p->kernel_w * p->in_c;
    if (p->groups != 1 || !tte_arm_scales_supported(p, multiplier, p->out_c)) {
        return tte_ref_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
    }
    conv_call c = {
        .in_h = p->in_h,
        .in_w = p->in_w,
        .in_c = p->in_c,
        .kh = p->kernel_h,
        .kw = p->kernel_w,
        .x_row = win.x_row,
        .stride_h = p->stride_h,
        .stride_w = p->stride_w,
        .pad_top = p->pad_top,
        .pad_left = p->pad_left,
        .taps = taps,
        .quads = (taps + 3) / 4,
        .out_c = p->out_c,
        .out_w = win.out_w,
        .x_zero = p->x_zero,
        .x = x,
        .w = w,
        .out = {bias, tte_arm_scales_of(p, multiplier), p->y_zero, p->act_min, p->act_max, p->out_c, mask},
    };
    /* product[0] is the whole weight tensor for every copy (its tails are the general copy's too) */
    conv_product *plain = &c.product[0], *slice = &c.product[1];
    int8_t tails[TAIL_ROWS][4], train_tails[TAIL_ROWS][4];
    plain->w = w;
    plain->taps = taps;
    plain->width = p->in_c;
    plain->zeroed = p->train_channels;
    plain->zeroed_count = p->train_count;
    fill_tails(w, p->out_c, taps, tails, plain->tail);
    c.products = 1;
    if (p->train_count != 0) {
        slice->w = w_train;
        slice->taps = p->kernel_h * p->kernel_w * p->train_count;
        slice->width = p->train_count;
        slice->channels = p->train_channels;
        fill_tails(w_train, p->out_c, slice->taps, train_tails, slice->tail);
        c.products = 2;
        if (p->train_count == p->in_c) { /* every channel trained: w's product would add zeros alone */
            c.product[0] = *slice;
            c.products = 1;
        }
    }
    const int chunked = p->train_count != 0 || taps > TTE_ARM_CONV_PATCH;
    const int copy = chunked ? RUN_CHUNKED : (c.kh == 3 && c.kw == 3 && c.in_c == 3 ? RUN_STEM : RUN_ANY);
    const int32_t first = win.oy_begin * win.out_w, pixels = (win.oy_end - win.oy_begin) * win.out_w;
    run_of[copy][tte_arm_kind(p, mask)](&c, y, first, pixels);
    return TTE_OK;
}
