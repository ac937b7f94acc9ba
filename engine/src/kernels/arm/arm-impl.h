/* Helpers of the ARMv7E-M kernels (Cortex-M4 and M7): the DSP extension through ACLE, the FPU's
 * rounding conversion, and the requantization epilogue, which gives exactly tte_conv_store's result
 * (NUMERICS.md 2) in a dozen instructions. Not installed; the kernels of this folder include it. */
#ifndef TTE_ARM_IMPL_H
#define TTE_ARM_IMPL_H

#if !defined(__ARM_FEATURE_DSP) || !defined(__ARM_FP)
#error "src/kernels/arm needs ARMv7E-M with the DSP extension and an FPU (Cortex-M4F/M7): configure with TTE_ENGINE_ARM_KERNELS=OFF"
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

/* tte_conv_store's result and mask bit from the exact sum of products `acc`. The reference clamps v
 * to one code beyond [lo, hi] before it rounds; rounding first and clamping the integer gives the same
 * code and bit for every non-NaN v, because rounding is monotone and the bounds are integers: VCVTR
 * saturates huge v and QADD keeps r + y_zero on the same side of the range. A NaN v (a NaN or
 * infinite multiplier) would differ: tte_arm_multipliers_finite sends such calls to the reference. */
static inline int tte_arm_requantize(int32_t acc, int32_t bias, float multiplier, int32_t y_zero, int32_t lo,
                                     int32_t hi, int8_t *y) {
    const int32_t s = __qadd(tte_arm_rne((float)__qadd(acc, bias) * multiplier), y_zero);
    const int32_t q = s < lo ? lo : (s > hi ? hi : s);
    *y = (int8_t)q;
    return q == s;
}

/* Whether every multiplier [n] is finite, read from the exponent bits (the compiler never writes
 * another; a call with one runs the reference kernel). */
static inline int tte_arm_multipliers_finite(const float *multiplier, int32_t n) {
    for (int32_t i = 0; i < n; ++i) {
        if (!tte_isfinite(multiplier[i])) {
            return 0;
        }
    }
    return 1;
}

#endif /* TTE_ARM_IMPL_H */
