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
 * infinite multiplier) would differ: tte_arm_multipliers_finite sends such calls to the reference. */
static inline int32_t tte_arm_scale(int32_t acc, int32_t bias, float multiplier, int32_t y_zero) {
    return __qadd(tte_arm_rne((float)__qadd(acc, bias) * multiplier), y_zero);
}

/* The fixed-point twin of tte_arm_scale (NUMERICS.md 2b): TFLite's MultiplyByQuantizedMultiplier of
 * sat32(acc + bias) (SMULL and shifts, tte_fixed_multiply), then + y_zero with QADD, whose saturation
 * keeps the sum on the same side of [lo, hi] as the reference's int64 sum. */
static inline int32_t tte_arm_scale_fixed(int32_t acc, int32_t bias, int32_t qmult, int32_t qshift, int32_t y_zero) {
    return __qadd(tte_fixed_multiply(__qadd(acc, bias), qmult, qshift), y_zero);
}

/* The constants of a conv's epilogue: float32 multipliers, or (qmult not NULL) fixed ones. */
typedef struct tte_arm_scales {
    const float *multiplier;
    const int32_t *qmult, *qshift;
} tte_arm_scales;

/* The scales of a call: its fixed tables under TTE_REQUANT_FIXED, else its float multipliers. */
static inline tte_arm_scales tte_arm_scales_of(const tte_conv2d_params *p, const float *multiplier) {
    const int fixed = p->requant == TTE_REQUANT_FIXED;
    const tte_arm_scales s = {multiplier, fixed ? p->qmult : NULL, fixed ? p->qshift : NULL};
    return s;
}

/* Output channel o's code before the clamp (tte_arm_scale or tte_arm_scale_fixed). */
static inline int32_t tte_arm_scale_at(const tte_arm_scales *m, int32_t o, int32_t acc, int32_t bias, int32_t y_zero) {
    if (m->qmult != NULL) {
        return tte_arm_scale_fixed(acc, bias, m->qmult[o], m->qshift[o], y_zero);
    }
    return tte_arm_scale(acc, bias, m->multiplier[o], y_zero);
}

static inline int tte_arm_requantize(const tte_arm_scales *m, int32_t o, int32_t acc, int32_t bias, int32_t y_zero,
                                     int32_t lo, int32_t hi, int8_t *y) {
    const int32_t s = tte_arm_scale_at(m, o, acc, bias, y_zero);
    const int32_t q = s < lo ? lo : (s > hi ? hi : s);
    *y = (int8_t)q;
    return q == s;
}

/* Whether every multiplier [n] is finite, read from the exponent bits (the compiler never writes
 * another; a call with one runs the reference kernel); always under fixed requantization, which reads none. */
static inline int tte_arm_multipliers_finite(const tte_conv2d_params *p, const float *multiplier, int32_t n) {
    if (p->requant == TTE_REQUANT_FIXED) {
        return 1;
    }
    for (int32_t i = 0; i < n; ++i) {
        if (!tte_isfinite(multiplier[i])) {
            return 0;
        }
    }
    return 1;
}

/* tte_arm_requantize for the full clamp [-128, 127] without a mask: SSAT is that clamp. */
static inline void tte_arm_requantize_plain(const tte_arm_scales *m, int32_t o, int32_t acc, int32_t bias,
                                            int32_t y_zero, int8_t *y) {
    *y = (int8_t)__ssat(tte_arm_scale_at(m, o, acc, bias, y_zero), 8);
}

/* What the epilogue of a 2x2 block needs: the conv's output constants. */
typedef struct tte_arm_out {
    const int32_t *bias;
    tte_arm_scales scales;
    int32_t y_zero, lo, hi;
    int32_t out_c; /* y's pixel stride and the mask's */
    uint8_t *mask; /* NULL: no mask */
} tte_arm_out;

/* Output channels o and ob (o, or o + 1) of pixels a and b (ya, yb: their outputs; ia, ib: their
 * whole-output pixel indices, for the mask) from acc = {a.o, a.ob, b.o, b.ob}. With `plain`
 * constant 1 (the clamp is [-128, 127] and there is no mask) each output costs a dozen
 * instructions. */
static inline __attribute__((always_inline)) void tte_arm_store_2x2(const tte_arm_out *d, const int32_t acc[4],
                                                                    int32_t o, int32_t ob, int plain, int8_t *ya,
                                                                    int8_t *yb, int32_t ia, int32_t ib) {
    const int32_t bias_a = d->bias[o], bias_b = d->bias[ob], y_zero = d->y_zero;
    const tte_arm_scales *m = &d->scales;
    if (plain) {
        tte_arm_requantize_plain(m, o, acc[0], bias_a, y_zero, &ya[o]);
        tte_arm_requantize_plain(m, ob, acc[1], bias_b, y_zero, &ya[ob]);
        tte_arm_requantize_plain(m, o, acc[2], bias_a, y_zero, &yb[o]);
        tte_arm_requantize_plain(m, ob, acc[3], bias_b, y_zero, &yb[ob]);
        return;
    }
    const int in_aa = tte_arm_requantize(m, o, acc[0], bias_a, y_zero, d->lo, d->hi, &ya[o]);
    const int in_ab = tte_arm_requantize(m, ob, acc[1], bias_b, y_zero, d->lo, d->hi, &ya[ob]);
    const int in_ba = tte_arm_requantize(m, o, acc[2], bias_a, y_zero, d->lo, d->hi, &yb[o]);
    const int in_bb = tte_arm_requantize(m, ob, acc[3], bias_b, y_zero, d->lo, d->hi, &yb[ob]);
    if (d->mask != NULL) {
        tte_mask_put(d->mask, ia * d->out_c + o, in_aa);
        tte_mask_put(d->mask, ia * d->out_c + ob, in_ab);
        tte_mask_put(d->mask, ib * d->out_c + o, in_ba);
        tte_mask_put(d->mask, ib * d->out_c + ob, in_bb);
    }
}

#endif /* TTE_ARM_IMPL_H */
