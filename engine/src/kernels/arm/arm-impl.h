/* Helpers of the ARMv7E-M kernels (Cortex-M4 and M7): the DSP extension through ACLE, the FPU's
 * rounding conversion, and the requantization epilogue, which gives exactly tte_conv_epilogue's result
 * (NUMERICS.md 2; 2b for fixed requantization) in a dozen instructions. Not installed; the kernels of this
 * folder include it. */
#ifndef TTE_ARM_IMPL_H
#define TTE_ARM_IMPL_H

#if !defined(__ARM_FEATURE_DSP) || !defined(__ARM_FP)
#error                                                                                                                 \
    "src/kernels/arm needs ARMv7E-M with the DSP extension and an FPU (Cortex-M4F/M7): configure with TTE_ENGINE_ARM_KERNELS=OFF"
#endif

#include <arm_acle.h>

#include "kernels-impl.h"

/* Four int8 codes from any address (Cortex-M4/M7 load a word unaligned; memcpy keeps the compiler
 * from pairing two such loads into an LDRD, which must be aligned). */
static inline int8x4_t tte_arm_read4(const int8_t *p) {
    int8x4_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Bytes 1 and 3 of v sign-extended to halfwords (SXTB16 with ROR #8; GCC does not fold a C rotate
 * into it). */
static inline int16x2_t tte_arm_sxtb16_odd(int8x4_t v) {
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* a + bytes 1 and 3 of v sign-extended, halfword by halfword (SXTAB16 with ROR #8). */
static inline int16x2_t tte_arm_sxtab16_odd(int16x2_t a, int8x4_t v) {
    int16x2_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}

/* The input zero point as two halfwords of -x_zero: SXTAB16 with it turns int8 codes into
 * (x - x_zero) in [-255, 255] while it sign-extends them, so the zero point costs nothing. */
static inline int16x2_t tte_arm_zero_pair(int32_t x_zero) {
    const uint32_t h = (uint32_t)(-x_zero) & 0xffffu;
    return (int16x2_t)(h | (h << 16));
}

/* rne(v) saturated to int32 (VCVTR rounds by FPSCR's mode, round to nearest even after reset; both
 * FPv4 and FPv5 have it; lrintf would be a libm call). NaN gives 0: callers exclude it. */
static inline int32_t tte_arm_rne(float v) {
    float r;
    __asm__("vcvtr.s32.f32 %0, %1" : "=t"(r) : "t"(v));
    int32_t i;
    memcpy(&i, &r, sizeof i);
    return i;
}

/* tte_conv_store's result and mask bit from the exact sum of products `acc` (tte_arm_scale: the code
 * before the clamp, rne(v) + y_zero saturated to int32). The reference clamps v
 * to one code beyond [lo, hi] before it rounds; rounding first and clamping the integer gives the same
 * code and bit for every non-NaN v, because rounding is monotone and the bounds are integers: VCVTR
 * saturates huge v and QADD keeps r + y_zero on the same side of the range. A NaN v (a NaN or
 * infinite multiplier) would differ: tte_arm_scales_supported sends such calls to the reference. */
static inline int32_t tte_arm_scale(int32_t acc, int32_t bias, float multiplier, int32_t y_zero) {
    return __qadd(tte_arm_rne((float)__qadd(acc, bias) * multiplier), y_zero);
}

/* The epilogue of a kernel call, chosen once per call and passed as a constant to each copy of a
 * kernel's loop (so that a copy holds one epilogue and no per-output test): TTE_ARM_PLAIN when the clamp
 * is [-128, 127] and there is no mask (SSAT is the clamp), TTE_ARM_FIXED under fixed requantization. */
#define TTE_ARM_PLAIN 1
#define TTE_ARM_FIXED 2

/* TFLite's MultiplyByQuantizedMultiplier(x, qmult, shift) (tte_fixed_multiply) for shift <= -1 and
 * qmult >= 0, in one SMLAL and three shifts; e1 = -shift - 1, half = 2^e1. With e = -shift the result is
 * RoundingDivideByPOT(t, e) of t = SaturatingRoundingDoublingHighMul(x, qmult) = floor((x*qmult +
 * 2^30) / 2^31), which is floor((t + 2^(e-1) - [t < 0]) / 2^e); nested floors by powers of two make it
 * floor((x*qmult + 2^30 + K*2^31) / 2^(32+e1)) with K = 2^(e-1) - [t < 0], the high word of the
 * int64 sum shifted right by e1. [t < 0] may read [x < 0]: they differ only where t = 0 and x < 0,
 * and there K = 2^(e-1) and K = 2^(e-1) - 1 both give 0. |x*qmult| < 2^62 and |K| <= 2^30 keep the sum in
 * int64 and its high word in int32. */
static inline int32_t tte_arm_fixed_multiply(int32_t x, int32_t qmult, int32_t half, int32_t e1) {
    const int32_t k = half + (x >> 31);
    const uint32_t lo = 0x40000000u | ((uint32_t)k << 31); /* 2^30 + K*2^31, low word */
    const int64_t rounding = (int64_t)(((uint64_t)(uint32_t)(k >> 1) << 32) | lo);
    const int64_t sum = rounding + (int64_t)x * qmult; /* SMLAL */
    return (int32_t)(sum >> 32) >> e1;
}

/* The constants of a conv's epilogue: float32 multipliers, or (under TTE_ARM_FIXED) fixed ones. */
typedef struct tte_arm_scales {
    const float *multiplier;
    const int32_t *qmult, *qshift;
} tte_arm_scales;

/* The scales of a call: its fixed tables and its float multipliers. */
static inline tte_arm_scales tte_arm_scales_of(const tte_conv2d_params *p, const float *multiplier) {
    const tte_arm_scales s = {multiplier, p->qmult, p->qshift};
    return s;
}

/* The epilogue kind of a call (TTE_ARM_PLAIN, TTE_ARM_FIXED). */
static inline int tte_arm_kind(const tte_conv2d_params *p, const uint8_t *mask) {
    const int plain = mask == NULL && p->act_min == -128 && p->act_max == 127;
    return (plain ? TTE_ARM_PLAIN : 0) | (p->requant == TTE_REQUANT_FIXED ? TTE_ARM_FIXED : 0);
}

/* One output channel's epilogue constants, read into locals before any output is stored (an int8
 * store may alias the tables, so a constant read after one is read again): its bias and, by the
 * epilogue kind, its float multiplier or its fixed multiplier with half = 2^e1, e1 = -qshift - 1. */
typedef struct tte_arm_channel {
    int32_t bias;
    float multiplier;
    int32_t qmult, half, e1;
} tte_arm_channel;

static inline __attribute__((always_inline)) tte_arm_channel tte_arm_channel_of(const tte_arm_scales *m,
                                                                                const int32_t *bias, int kind,
                                                                                int32_t o) {
    tte_arm_channel c = {bias[o], 0.0f, 0, 0, 0};
    if (kind & TTE_ARM_FIXED) {
        c.qmult = m->qmult[o];
        c.e1 = ~m->qshift[o];
        c.half = (int32_t)1 << c.e1;
    } else {
        c.multiplier = m->multiplier[o];
    }
    return c;
}

/* The code before the clamp of sum of products `acc` of channel c (tte_arm_scale, or
 * tte_arm_scale_fixed by tte_arm_fixed_multiply). */
static inline __attribute__((always_inline)) int32_t tte_arm_scale_at(const tte_arm_channel *c, int kind, int32_t acc,
                                                                      int32_t y_zero) {
    if (kind & TTE_ARM_FIXED) {
        return __qadd(tte_arm_fixed_multiply(__qadd(acc, c->bias), c->qmult, c->half, c->e1), y_zero);
    }
    return tte_arm_scale(acc, c->bias, c->multiplier, y_zero);
}

static inline __attribute__((always_inline)) int tte_arm_requantize(const tte_arm_channel *c, int kind, int32_t acc,
                                                                    int32_t y_zero, int32_t lo, int32_t hi, int8_t *y) {
    const int32_t s = tte_arm_scale_at(c, kind, acc, y_zero);
    const int32_t q = s < lo ? lo : (s > hi ? hi : s);
    *y = (int8_t)q;
    return q == s;
}

/* The requantization modes whose epilogue copies this build carries (engine CMake TTE_ENGINE_REQUANT, 1 or
 * 0 each): a generated project lists its graph's modes only, because the four copies of every loop would
 * not fit a 1 MB board's image beside MCUNet's weights. Compiled outside CMake: both. */
#ifndef TTE_ENGINE_REQUANT_FLOAT
#define TTE_ENGINE_REQUANT_FLOAT 1
#endif
#ifndef TTE_ENGINE_REQUANT_FIXED
#define TTE_ENGINE_REQUANT_FIXED 1
#endif

/* A copy of a float (fixed) epilogue kind in a kernel's table of copies, or NULL in a build that does
 * not carry that mode (tte_arm_scales_supported then sends its calls to the reference kernel). */
#if TTE_ENGINE_REQUANT_FLOAT
#define TTE_ARM_FLOAT_COPY(copy) copy
#else
#define TTE_ARM_FLOAT_COPY(copy) NULL
#endif
#if TTE_ENGINE_REQUANT_FIXED
#define TTE_ARM_FIXED_COPY(copy) copy
#else
#define TTE_ARM_FIXED_COPY(copy) NULL
#endif

/* Whether this folder's kernels run the call's epilogue: the build carries its mode, and every float
 * multiplier [n] is finite (read from the exponent bits; the compiler never writes another), or under
 * fixed requantization every shift negative (tte_arm_fixed_multiply; a multiplier of 0.5 or more, rare
 * in a conv, has shift >= 0). A call they do not run runs the reference kernel. */
static inline int tte_arm_scales_supported(const tte_conv2d_params *p, const float *multiplier, int32_t n) {
    if (p->requant == TTE_REQUANT_FIXED ? !TTE_ENGINE_REQUANT_FIXED : !TTE_ENGINE_REQUANT_FLOAT) {
        return 0;
    }
    for (int32_t i = 0; i < n; ++i) {
        if (p->requant == TTE_REQUANT_FIXED ? p->qshift[i] >= 0 : !tte_isfinite(multiplier[i])) {
            return 0;
        }
    }
    return 1;
}

/* tte_arm_requantize for the full clamp [-128, 127] without a mask: SSAT is that clamp. */
static inline __attribute__((always_inline)) void tte_arm_requantize_plain(const tte_arm_channel *c, int kind,
                                                                           int32_t acc, int32_t y_zero, int8_t *y) {
    *y = (int8_t)__ssat(tte_arm_scale_at(c, kind, acc, y_zero), 8);
}

/* What the epilogue of a 2x2 block needs: the conv's output constants. */
typedef struct tte_arm_out {
    const int32_t *bias;
    tte_arm_scales scales;
    int32_t y_zero, lo, hi;
    int32_t out_c; /* y's pixel stride and the mask's */
    uint8_t *mask; /* NULL: no mask */
} tte_arm_out;

/* Output channels o and ob (o, or o + 1; ca, cb: their constants, tte_arm_channel_of) of pixels a and
 * b (ya, yb: their outputs; ia, ib: their whole-output pixel indices, for the mask) from
 * acc = {a.o, a.ob, b.o, b.ob}, by the constant epilogue `kind` (tte_arm_kind). Under TTE_ARM_PLAIN
 * each output costs about ten instructions. */
static inline __attribute__((always_inline)) void tte_arm_store_2x2(const tte_arm_out *d, const tte_arm_channel *ca,
                                                                    const tte_arm_channel *cb, const int32_t acc[4],
                                                                    int32_t o, int32_t ob, int kind, int8_t *ya,
                                                                    int8_t *yb, int32_t ia, int32_t ib) {
    const int32_t y_zero = d->y_zero;
    if (kind & TTE_ARM_PLAIN) {
        tte_arm_requantize_plain(ca, kind, acc[0], y_zero, &ya[o]);
        tte_arm_requantize_plain(cb, kind, acc[1], y_zero, &ya[ob]);
        tte_arm_requantize_plain(ca, kind, acc[2], y_zero, &yb[o]);
        tte_arm_requantize_plain(cb, kind, acc[3], y_zero, &yb[ob]);
        return;
    }
    const int32_t lo = d->lo, hi = d->hi, out_c = d->out_c;
    uint8_t *mask = d->mask;
    const int in_aa = tte_arm_requantize(ca, kind, acc[0], y_zero, lo, hi, &ya[o]);
    const int in_ab = tte_arm_requantize(cb, kind, acc[1], y_zero, lo, hi, &ya[ob]);
    const int in_ba = tte_arm_requantize(ca, kind, acc[2], y_zero, lo, hi, &yb[o]);
    const int in_bb = tte_arm_requantize(cb, kind, acc[3], y_zero, lo, hi, &yb[ob]);
    if (mask != NULL) {
        tte_mask_put(mask, ia * out_c + o, in_aa);
        tte_mask_put(mask, ia * out_c + ob, in_ab);
        tte_mask_put(mask, ib * out_c + o, in_ba);
        tte_mask_put(mask, ib * out_c + ob, in_bb);
    }
}

#endif /* TTE_ARM_IMPL_H */
