/* Private helpers shared by the kernels: the rounding and saturation rules of
 * NUMERICS.md section 2 (written once, here) and argument checks.
 * Not installed; kernels include it as "kernels-impl.h". */
#ifndef TTE_KERNELS_IMPL_H
#define TTE_KERNELS_IMPL_H

/* NUMERICS.md section 4: every float multiply and add is rounded on its own (no fused multiply-add), so
 * the host and the MCU compute the same bits even where these sources are built without the CMake
 * target's -ffp-contract=off (copied into another project). GCC ignores the standard pragma and takes
 * the optimize pragma, which applies to every function defined after it; Clang honours the standard one. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#else
#pragma STDC FP_CONTRACT OFF
#endif

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tte/tte.h"
#include "tte/tte_ref.h"
#include "tte/tte_rounding.h"

/* The magic-number rounding below is exact only when float expressions are
 * evaluated in float (SSE on x86-64, FPv4/FPv5 or soft float on Cortex-M). x87
 * extended precision would round twice. */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "tte needs FLT_EVAL_METHOD == 0 (float arithmetic evaluated in float)"
#endif

/* A fused multiply-add where a kernel asks for one (NUMERICS.md 4): a * b + c rounded once, so the same
 * bits on an FPU with VFMA (Cortex-M4/M7: GCC and Clang expand fmaf to vfma.f32), on x86-64 (glibc's
 * fmaf: the FMA instruction where the core has it, else a correctly rounded software fmaf) and anywhere
 * fmaf is correctly rounded. newlib's software fmaf, which an Arm core without VFMA would call, rounds
 * twice (through double, e.g. on Cortex-M3): there the engine's own tte_fmaf_soft (tte_train.h) stands in. */
static inline float tte_fma(float a, float b, float c) {
#if defined(__arm__) && !defined(__FP_FAST_FMAF)
    return tte_fmaf_soft(a, b, c);
#else
    return fmaf(a, b, c);
#endif
}

/* On x86-64 with GCC and GNU ifunc, the float kernels' hot functions also get an x86-64-v3 copy (AVX2 and
 * FMA) that the loader picks where the core has them: there fmaf is one VFMADD instead of a call into libm,
 * and the loops may use vectors lane by lane, with the same bits (each fmaf rounds once either way, every
 * chain keeps its order: NUMERICS.md 4). One copy elsewhere (a Cortex-M core has VFMA or tte_fmaf_soft). */
#if defined(__x86_64__) && defined(__ELF__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) &&       \
    !defined(TTE_FMA_CLONES)
#define TTE_FMA_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#ifndef TTE_FMA_CLONES
#define TTE_FMA_CLONES
#endif

/* The blocked float kernels' inner blocks are written as loops over small constant counts: inlined at
 * each call, they unroll into register accumulators. */
#if defined(__GNUC__)
#define TTE_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define TTE_ALWAYS_INLINE static inline
#endif

/* sat32(a + b): real models carry biases of exactly +-2^31 in dead channels,
 * where a plain int32 add would overflow (undefined behaviour in C). */
static inline int32_t tte_sat32_add(int32_t a, int32_t b) {
    const int64_t s = (int64_t)a + (int64_t)b;
    if (s > INT32_MAX) {
        return INT32_MAX;
    }
    if (s < INT32_MIN) {
        return INT32_MIN;
    }
    return (int32_t)s;
}

/* Round half to even for |v| < 2^22, without libm: adding 1.5*2^23 moves v into
 * [2^23, 2^24), where the spacing of floats is exactly 1, so the FPU's default
 * round-to-nearest-even mode rounds it; subtracting the constant is then exact.
 * Valid only with -ffp-contract=off and without -ffast-math (which may fold the
 * two operations away); the engine's CMakeLists enforces both. */
static inline float tte_rne_small(float v) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (v + magic) - magic;
}

/* Writes clamp(rne(v) + y_zero, lo, hi) to *y and returns the clamp-mask bit
 * [lo <= rne(v) + y_zero <= hi]. v is first clamped to one code beyond the
 * range on either side: huge v then cannot overflow the conversion, and a v
 * outside the range still rounds outside it, so the mask bit stays exact. A NaN
 * (valid multipliers never produce one) lands on the low side. */
static inline int tte_requantize(float v, int32_t y_zero, int32_t lo, int32_t hi, int8_t *y) {
    const float vmin = (float)(lo - y_zero - 1);
    const float vmax = (float)(hi - y_zero + 1);
    const float vc = v > vmin ? (v < vmax ? v : vmax) : vmin;
    const int32_t r = (int32_t)tte_rne_small(vc) + y_zero;
    const int32_t q = r < lo ? lo : (r > hi ? hi : r);
    *y = (int8_t)q;
    return r == q;
}

/* ---- fixed-point requantization (NUMERICS.md 2b): TFLite's reference integer arithmetic ---------
 * These compute gemmlowp's and TFLite's functions exactly, in int64 where a product needs it. They
 * assume what GCC, Clang and every Arm and x86 compiler do: an int32 right shift of a negative value
 * is arithmetic, and a uint32 converted to int32 wraps. tte_ir.fixedpoint is their numpy twin. */

/* SaturatingRoundingDoublingHighMul(a, b): a*b / 2^31 to the nearest integer, ties toward +infinity
 * (gemmlowp adds 2^30, or 1 - 2^30 to a negative product, and truncates toward zero), INT32_MAX for
 * the one overflow, INT32_MIN squared. */
static inline int32_t tte_fixed_high_mul(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t half = -(int64_t)INT32_MIN / 2; /* 2^30, gemmlowp's nudge */
    /* Truncating (ab + nudge) / 2^31 toward zero is a shift of its magnitude: (2^30 - ab - 1) for ab < 0. */
    return ab >= 0 ? (int32_t)((ab + half) >> 31) : (int32_t)(-((-ab + half - 1) >> 31));
}

/* RoundingDivideByPOT(x, exponent): x / 2^exponent rounded half away from zero, exponent in [0, 31]. */
static inline int32_t tte_fixed_divide_pot(int32_t x, int32_t exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier(x, qmult, shift), shift in [-31, 30]: the left shift wraps in int32
 * as TFLite's does on these compilers. */
static inline int32_t tte_fixed_multiply(int32_t x, int32_t qmult, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return tte_fixed_divide_pot(tte_fixed_high_mul(shifted, qmult), shift > 0 ? 0 : -shift);
}

/* TFLite's single-rounding MultiplyByQuantizedMultiplier(x, qmult, shift) (its int8 FULLY_CONNECTED's),
 * shift in [-31, 30]: (x*qmult + 2^(30 - shift)) >> (31 - shift) in int64 (|x*qmult| < 2^62), one rounding,
 * half toward +infinity; the int32 cast wraps as TFLite's does (it only DCHECKs the range). */
static inline int32_t tte_fixed_multiply_single(int32_t x, int32_t qmult, int32_t shift) {
    const int32_t total = 31 - shift;
    const int64_t product = (int64_t)x * (int64_t)qmult;
    return (int32_t)(uint32_t)(uint64_t)((product + ((int64_t)1 << (total - 1))) >> total);
}

/* Writes clamp(v + y_zero, lo, hi) to *y and returns the mask bit [lo <= v + y_zero <= hi] of an
 * int32 v from tte_fixed_multiply (the sum in int64, so no y_zero overflows it). */
static inline int tte_store_fixed(int32_t v, int32_t y_zero, int32_t lo, int32_t hi, int8_t *y) {
    const int64_t r = (int64_t)v + y_zero;
    const int64_t q = r < lo ? lo : (r > hi ? hi : r);
    *y = (int8_t)q;
    return r == q;
}

/* tte_store_fixed of MultiplyByQuantizedMultiplier(x, qmult, shift): the whole fixed epilogue. */
static inline int tte_requantize_fixed(int32_t x, int32_t qmult, int32_t shift, int32_t y_zero, int32_t lo, int32_t hi,
                                       int8_t *y) {
    return tte_store_fixed(tte_fixed_multiply(x, qmult, shift), y_zero, lo, hi, y);
}

/* Checks the requantization of a descriptor with `n` per-channel multipliers and shifts (a conv or
 * linear layer's, or an average pool's count table): FLOAT, or FIXED with both tables given,
 * every qmult >= 0 and every shift in [-31, 30]. */
tte_status tte_requant_check(int32_t requant, const int32_t *qmult, const int32_t *qshift, int32_t n);

/* Whether one fixed multiplier and shift are valid (qmult >= 0, shift in [-31, 30]). */
static inline int tte_fixed_ok(int32_t qmult, int32_t shift) {
    return qmult >= 0 && shift >= -31 && shift <= 30;
}

/* Sets bit `index` of a bit-packed clamp mask (bit index%8 of byte index/8,
 * see tte.h); a NULL mask means the caller does not keep one. */
static inline void tte_mask_put(uint8_t *mask, int32_t index, int bit) {
    if (mask != NULL) {
        const uint8_t b = (uint8_t)(1u << (index & 7));
        if (bit) {
            mask[index >> 3] |= b;
        } else {
            mask[index >> 3] &= (uint8_t)~b;
        }
    }
}

/* The conv/linear epilogue: *y from the exact sum of products `acc`, one
 * float32 multiply by M[o], then requantization; also the mask bit at
 * `mask_index` (the whole output's element index, which differs from y's
 * position in a row band). */
static inline void tte_conv_store(int32_t acc, int32_t bias, float multiplier, int32_t y_zero, int32_t lo, int32_t hi,
                                  int8_t *y, uint8_t *mask, int32_t mask_index) {
    const float v = (float)tte_sat32_add(acc, bias) * multiplier;
    const int in_range = tte_requantize(v, y_zero, lo, hi, y);
    tte_mask_put(mask, mask_index, in_range);
}

/* The epilogue of a conv-family output (o: its channel) under the descriptor's requantization:
 * tte_conv_store (FLOAT) or TFLite's MultiplyByQuantizedMultiplier of sat32(acc + bias) (FIXED; its
 * single-rounding variant under FIXED_SINGLE). */
static inline void tte_conv_epilogue(const tte_conv2d_params *p, int32_t o, int32_t acc, const int32_t *bias,
                                     const float *multiplier, int8_t *y, uint8_t *mask, int32_t mask_index) {
    if (p->requant == TTE_REQUANT_FIXED) {
        const int in_range = tte_requantize_fixed(tte_sat32_add(acc, bias[o]), p->qmult[o], p->qshift[o], p->y_zero,
                                                  p->act_min, p->act_max, y);
        tte_mask_put(mask, mask_index, in_range);
        return;
    }
    if (p->requant == TTE_REQUANT_FIXED_SINGLE) {
        const int32_t v = tte_fixed_multiply_single(tte_sat32_add(acc, bias[o]), p->qmult[o], p->qshift[o]);
        tte_mask_put(mask, mask_index, tte_store_fixed(v, p->y_zero, p->act_min, p->act_max, y));
        return;
    }
    tte_conv_store(acc, bias[o], multiplier[o], p->y_zero, p->act_min, p->act_max, y, mask, mask_index);
}

/* Reads bit `index` of a bit-packed mask. */
static inline int tte_mask_get(const uint8_t *mask, int32_t index) {
    return (mask[index >> 3] >> (index & 7)) & 1;
}

/* Whether a conv has no padding on any side (a pointwise conv's requirement). */
static inline int tte_conv2d_unpadded(const tte_conv2d_params *p) {
    return p->pad_top == 0 && p->pad_left == 0 && p->pad_bottom == 0 && p->pad_right == 0;
}

/* Checks a conv descriptor shared by the three conv kernels and writes the
 * output size. Kernel-specific constraints (depthwise, pointwise) are checked
 * by the kernel itself. */
tte_status tte_conv2d_check(const tte_conv2d_params *p, int32_t *out_h, int32_t *out_w);

/* The geometry part of tte_conv2d_check (no zero points or clamp), for the
 * backward kernels, which use neither. */
tte_status tte_conv2d_check_geometry(const tte_conv2d_params *p, int32_t *out_h, int32_t *out_w);

/* A channel list is ascending and unique inside [0, limit), with count >= 1. */
int tte_channel_list_ok(const int32_t *channels, int32_t count, int32_t limit);

/* Where a forward conv kernel writes: the output size and the output rows of its row band, and the
 * whole-input row held in x's first row. */
typedef struct tte_conv2d_window {
    int32_t out_h, out_w;
    int32_t oy_begin, oy_end;
    int32_t x_row;
} tte_conv2d_window;

/* Which forward conv kernel tte_conv2d_fwd_check checks for. */
typedef enum tte_conv2d_kind { TTE_CONV2D_DENSE, TTE_CONV2D_DEPTHWISE, TTE_CONV2D_POINTWISE } tte_conv2d_kind;

/* Every check of a forward conv kernel (pointers, descriptor, the kind's constraints, trained slice,
 * row band), in one order, so that the reference and the optimized kernels (src/kernels/arm) return
 * the same status for the same bad call; fills *win when it returns TTE_OK. */
tte_status tte_conv2d_fwd_check(const tte_conv2d_params *p, const int8_t *x, const int8_t *w, const int8_t *w_train,
                                const int32_t *bias, const float *multiplier, const int8_t *y, const tte_row_band *rows,
                                tte_conv2d_kind kind, tte_conv2d_window *win);

/* Checks the trained slice of p against w_train: none (train_count 0, w_train
 * NULL), or a valid channel list over the conv's `limit` channels (in_c/groups
 * of a groups-1 conv, or in_c of a depthwise one) and a w_train pointer. */
tte_status tte_conv2d_check_slice(const tte_conv2d_params *p, const int8_t *w_train, int32_t limit);

/* Output rows [*oy_begin, *oy_end) and the whole-input row held in x's first
 * row, for a row band (NULL: every row, x whole). */
tte_status tte_conv2d_row_window(const tte_conv2d_params *p, int32_t out_h, const tte_row_band *rows, int32_t *oy_begin,
                                 int32_t *oy_end, int32_t *x_row);

/* Checks a channel band over `channels` channels (NULL: all of them) and
 * writes its first channel and count. */
tte_status tte_band_window(const tte_channel_band *band, int32_t channels, int32_t *begin, int32_t *count);

/* w_train + offset, or NULL without a slice (offsetting NULL is undefined). */
static inline const int8_t *tte_slice_at(const int8_t *w_train, size_t offset) {
    return w_train == NULL ? NULL : w_train + offset;
}

/* The position of channel c in an ascending channel list, starting the search
 * at *next (callers visit channels in ascending order, so the search is
 * amortized O(1)); -1 when c is not listed. Advances *next past c. */
static inline int32_t tte_slice_index(const int32_t *channels, int32_t count, int32_t c, int32_t *next) {
    while (*next < count && channels[*next] < c) {
        ++*next;
    }
    if (*next < count && channels[*next] == c) {
        return (*next)++;
    }
    return -1;
}

/* Zero points are int8 codes. */
static inline int tte_int8_ok(int32_t v) {
    return v >= -128 && v <= 127;
}

/* An output clamp is a non-empty sub-range of int8. */
static inline int tte_act_range_ok(int32_t act_min, int32_t act_max) {
    return -128 <= act_min && act_min <= act_max && act_max <= 127;
}

/* ---- training (NUMERICS.md 3-5) ---------------------------------------- */

/* Whether v is neither NaN nor infinite, read from its exponent bits, so that
 * no compiler option or libm can change the answer. */
static inline int tte_isfinite(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & 0x7f800000u) != 0x7f800000u;
}

/* Whether all n values are finite. */
static inline int tte_all_finite(const float *v, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        if (!tte_isfinite(v[i])) {
            return 0;
        }
    }
    return 1;
}

/* Round half to even for |v| <= 2^30 (QAS steps): floats from 2^23 up are
 * integers already; between 2^22 and 2^23, shifting by the even 2^22 brings v
 * into tte_rne_small's range exactly and keeps the parity of the result. */
static inline float tte_rne_wide(float v) {
    const float big = 4194304.0f; /* 2^22 */
    if (v >= 2.0f * big || v <= -2.0f * big) {
        return v;
    }
    if (v >= big) {
        return tte_rne_small(v - big) + big;
    }
    if (v <= -big) {
        return tte_rne_small(v + big) - big;
    }
    return tte_rne_small(v);
}

/* Checks the pointers and enums of an update kernel's context and attributes. */
static inline tte_status tte_update_check(const tte_train_ctx *ctx, const tte_update_params *u) {
    if (ctx == NULL || u == NULL) {
        return TTE_ERR_NULL;
    }
    if ((u->rounding != TTE_ROUND_NEAREST && u->rounding != TTE_ROUND_STOCHASTIC) ||
        (u->lr_group != TTE_LR_BODY && u->lr_group != TTE_LR_HEAD)) {
        return TTE_ERR_ARG;
    }
    return TTE_OK;
}

/* Whether an update reading the gradient g [n] may run: not after a failed
 * step, and not on a non-finite gradient, which fails the step instead. */
static inline int tte_update_gate(tte_train_ctx *ctx, const float *g, size_t n) {
    if (ctx->status != TTE_STEP_OK) {
        return 0;
    }
    if (!tte_all_finite(g, n)) {
        ctx->status = TTE_STEP_NONFINITE_GRAD;
        return 0;
    }
    return 1;
}

/* The QAS step value -(lr * grad) * inv of one live parameter element
 * (NUMERICS.md 5), before its clamp and rounding. Not finite when lr, grad or
 * their product with inv overflows or is NaN: see tte_update_safe. */
static inline float tte_qas_value(float grad, float inv, const tte_train_ctx *ctx, const tte_update_params *u) {
    return (-(ctx->lr[u->lr_group] * grad)) * inv;
}

/* Whether an element is frozen: inv 0 (tte_ir's mark) or not finite. */
static inline int tte_qas_frozen(float inv) {
    return inv == 0.0f || !tte_isfinite(inv);
}

/* The bound |lr| * g_max * terms * x_max * inv_max of tte_update_safe (NaN or infinite where that is, and
 * infinite for more than 2^20 terms): with the 7% of a sum's rounding and those of the products, every
 * |step value| stays below twice it. */
#define TTE_UPDATE_SAFE_BOUND (FLT_MAX / 16.0f)
static inline float tte_update_bound(float lr, float g_max, int64_t terms, float x_max, float inv_max) {
    if (terms > ((int64_t)1 << 20)) {
        return INFINITY;
    }
    const float lr_abs = lr < 0.0f ? -lr : lr;
    return (((lr_abs * g_max) * (float)terms) * x_max) * inv_max;
}

/* Whether every step value of an update is certainly finite, so that its
 * check pass can be left out. Each gradient is a float sum of at most `terms`
 * products |g| * |coefficient| <= g_max * x_max; for up to 2^20 terms rounding
 * grows such a sum by under 7%, so |step value| stays below the bound
 * |lr| * g_max * terms * x_max * inv_max, here required below FLT_MAX / 16.
 * False for a NaN or infinite lr or bound and for more than 2^20 terms: the
 * kernel then checks every element's value before writing any. */
static inline int tte_update_safe(float lr, float g_max, int64_t terms, float x_max, float inv_max) {
    return tte_update_bound(lr, g_max, terms, x_max, inv_max) <= TTE_UPDATE_SAFE_BOUND; /* false for NaN */
}

/* The largest |v[i]| of n finite values (tte_update_gate has checked them). */
static inline float tte_max_abs(const float *v, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; ++i) {
        const float a = v[i] < 0.0f ? -v[i] : v[i];
        m = a > m ? a : m;
    }
    return m;
}

/* tte_update_gate and tte_max_abs in one pass: |v| as the bits of v without the sign orders like an
 * unsigned integer, and a non-finite v has the largest (exponent all ones), so one integer maximum
 * tells both whether every value is finite and, if so, the largest |v|, written to *max. */
static inline int tte_update_gate_max(tte_train_ctx *ctx, const float *g, size_t n, float *max) {
    if (ctx->status != TTE_STEP_OK) {
        return 0;
    }
    uint32_t m = 0;
    for (size_t i = 0; i < n; ++i) {
        uint32_t bits;
        memcpy(&bits, &g[i], sizeof bits);
        bits &= 0x7fffffffu;
        m = bits > m ? bits : m;
    }
    if (m >= 0x7f800000u) {
        ctx->status = TTE_STEP_NONFINITE_GRAD;
        return 0;
    }
    memcpy(max, &m, sizeof *max);
    return 1;
}

/* The largest finite |inv[o]| over channels [begin, begin + count) (frozen ones give step 0). */
static inline float tte_max_inv(const float *inv, int32_t begin, int32_t count) {
    float m = 0.0f;
    for (int32_t o = begin; o < begin + count; ++o) {
        if (!tte_qas_frozen(inv[o])) {
            const float a = inv[o] < 0.0f ? -inv[o] : inv[o];
            m = a > m ? a : m;
        }
    }
    return m;
}

/* Fails the step on a non-finite step value (TTE_STEP_NONFINITE_GRAD, as for a
 * non-finite gradient) and returns 0; returns 1 for a finite one. */
static inline int tte_step_value_ok(tte_train_ctx *ctx, float v) {
    if (tte_isfinite(v)) {
        return 1;
    }
    ctx->status = TTE_STEP_NONFINITE_GRAD;
    return 0;
}

/* The integer QAS step of one live parameter element from its finite step
 * value v (tte_qas_value): round(clamp(v, -2^30, 2^30)), by the node's round
 * mode, u from the hash of the element's IR index; the clamp is
 * TTE_QAS_STEP_CLAMP of the generated tte/tte_ops.h. */
static inline int32_t tte_qas_round(float v, const tte_train_ctx *ctx, const tte_update_params *u,
                                    uint32_t element_index) {
    const float limit = TTE_QAS_STEP_CLAMP;
    v = v > limit ? limit : (v < -limit ? -limit : v);
    if (u->rounding == TTE_ROUND_NEAREST) {
        return (int32_t)tte_rne_wide(v);
    }
    /* floor(float32(v + u)): round, then step down where rounding went up. */
    const float s = v + tte_round_uniform(ctx->seed, ctx->step, u->tensor_id, element_index);
    const float r = tte_rne_wide(s);
    return (int32_t)(r > s ? r - 1.0f : r);
}

/* The output positions o in [*lo, *hi) whose tap k reads an input position o*stride + k - pad inside
 * [0, n_in): the bounds of a tap computed once, so that the loops over positions test nothing. */
static inline void tte_tap_range(int32_t n_in, int32_t n_out, int32_t stride, int32_t pad, int32_t k, int32_t *lo,
                                 int32_t *hi) {
    const int32_t first = pad - k;           /* o * stride >= first */
    const int32_t last = n_in - 1 + pad - k; /* o * stride <= last */
    int32_t h = last < 0 ? 0 : last / stride + 1;
    h = h < n_out ? h : n_out;
    const int32_t l = first <= 0 ? 0 : (first + stride - 1) / stride;
    *lo = l < h ? l : h;
    *hi = h;
}

/* Output channels x trained input channels per block of the dense weight gradient; a block of
 * tte_weight_grad_block holds at most TTE_WG_ACC accumulators and TTE_WG_X converted input codes. */
#define TTE_WG_BLOCK 4
#define TTE_WG_ACC 24
#define TTE_WG_X 4

/* dL/dw of a block of na x nb weights at tap (ky, kx) (NUMERICS.md 4): for gh columns col0 + a (a < na)
 * and trained input channels j0 + b (b < nb),
 *     g[a * nb + b] = sum over output positions (oy, ox), ascending row-major, from 0, of
 *                     fmaf(gh[oy][ox][col0 + a], float32(x[iy][ix][j0 + b] - x_zero), partial sum)
 * (iy = oy*stride_h + ky - pad_top, ix = ox*stride_w + kx - pad_left); positions whose tap is padding are skipped. Each
 * weight is one chain, so any blocking gives the same bits: fused, one rounding per step (the updates); not fused,
 * the mini-batch's partial sum + gh * x, one rounding per multiply and per add (tte_conv2d_acc_apply's chain). x_saved
 * [in_h][in_w][train_count] holds only the trained channels; gh is [out_h][out_w][gh_stride]. na and nb (na * nb <=
 * TTE_WG_ACC, nb <= TTE_WG_X) are constants at every call, so the loops unroll into na*nb register accumulators that
 * share each gh value and each converted x value. Written once for the weight-update and mini-batch kernels. */
TTE_ALWAYS_INLINE void tte_grad_block(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const int8_t *x_saved,
                                      int32_t j0, int32_t nb, const float *gh, int32_t gh_stride, int32_t col0,
                                      int32_t na, int32_t ky, int32_t kx, int fused, float *g) {
    float acc[TTE_WG_ACC];
    for (int32_t i = 0; i < na * nb; ++i) {
        acc[i] = 0.0f;
    }
    int32_t oy_lo, oy_hi, ox_lo, ox_hi;
    tte_tap_range(p->in_h, out_h, p->stride_h, p->pad_top, ky, &oy_lo, &oy_hi);
    tte_tap_range(p->in_w, out_w, p->stride_w, p->pad_left, kx, &ox_lo, &ox_hi);
    const int32_t k = p->train_count;
    const size_t x_step = (size_t)p->stride_w * k;
    for (int32_t oy = oy_lo; oy < oy_hi; ++oy) {
        const int32_t iy = oy * p->stride_h + ky - p->pad_top;
        const int8_t *xp = x_saved + ((size_t)iy * p->in_w + (ox_lo * p->stride_w + kx - p->pad_left)) * k + j0;
        const float *gp = gh + ((size_t)oy * out_w + ox_lo) * gh_stride + col0;
        for (int32_t ox = ox_lo; ox < ox_hi; ++ox, xp += x_step, gp += gh_stride) {
            float xf[TTE_WG_X];
            for (int32_t b = 0; b < nb; ++b) {
                xf[b] = (float)((int32_t)xp[b] - p->x_zero);
            }
            for (int32_t a = 0; a < na; ++a) {
                const float gv = gp[a];
                for (int32_t b = 0; b < nb; ++b) {
                    acc[a * nb + b] = fused ? tte_fma(gv, xf[b], acc[a * nb + b]) : acc[a * nb + b] + gv * xf[b];
                }
            }
        }
    }
    for (int32_t i = 0; i < na * nb; ++i) {
        g[i] = acc[i];
    }
}

/* The fused chains of the three weight-update kernels (fmaf, one rounding per step). */
TTE_ALWAYS_INLINE void tte_weight_grad_block(const tte_conv2d_params *p, int32_t out_h, int32_t out_w,
                                             const int8_t *x_saved, int32_t j0, int32_t nb, const float *gh,
                                             int32_t gh_stride, int32_t col0, int32_t na, int32_t ky, int32_t kx,
                                             float *g) {
    tte_grad_block(p, out_h, out_w, x_saved, j0, nb, gh, gh_stride, col0, na, ky, kx, 1, g);
}

/* The blocks along one axis of n elements (the blocked float kernels): block size `block` when n holds
 * one, else 1; a loop covers [0, n) with whole blocks, the last one starting at n - size, overlapping
 * the one before it. tte_block_start gives the block that covers elements [done, ...): the elements of
 * [start, done) it overlaps are computed again but not written twice. */
static inline int32_t tte_block_size(int32_t n, int32_t block) {
    return n >= block ? block : 1;
}
static inline int32_t tte_block_start(int32_t done, int32_t n, int32_t size) {
    return done + size <= n ? done : n - size;
}

/* An int8 weight code after a step: clamp(w + step, -127, 127) (|step| <= 2^30, no overflow). */
static inline int8_t tte_weight_add(int8_t w, int32_t step) {
    const int32_t v = (int32_t)w + step;
    return (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
}

/* A weight code's QAS step is only ever added to the code and clamped to [-127, 127] (tte_weight_add), so any
 * step of 254 or more gives 127 and any of -254 or less gives -127. Clamping the step value to +-512 first keeps
 * every final code: rounding is monotone, v = 512 rounds (with or without noise in [0, 1)) to at least 512 and
 * v = -512 to at most -511. A clamped value, or one known to be small (tte_update_bound), lies far inside
 * tte_rne_small's range, which drops tte_rne_wide's four range tests and the clamp to 2^30 from every weight. */
#define TTE_QAS_WEIGHT_LIMIT 512.0f

/* The largest tte_update_bound under which a weight kernel may leave tte_qas_weight_clamp out: step values
 * then stay below 2^22, where tte_rne_small rounds exactly, noise included. */
#define TTE_QAS_SMALL_BOUND 2097152.0f /* 2^21 */

static inline float tte_qas_weight_clamp(float v) {
    return v > TTE_QAS_WEIGHT_LIMIT ? TTE_QAS_WEIGHT_LIMIT : (v < -TTE_QAS_WEIGHT_LIMIT ? -TTE_QAS_WEIGHT_LIMIT : v);
}

/* tte_weight_add(w, tte_qas_round(v, ...)) of nearest rounding, bit for bit, for a finite step value v that is
 * clamped (tte_qas_weight_clamp) or below 2^22 in magnitude. */
static inline int8_t tte_qas_weight_nearest(int8_t w, float v) {
    return tte_weight_add(w, (int32_t)tte_rne_small(v));
}

/* tte_weight_add(w, tte_qas_round(v, ...)) of stochastic rounding, bit for bit, for v as in
 * tte_qas_weight_nearest and the element's noise (tte_round_uniform): floor(float32(v + noise)) as
 * tte_qas_round computes it. */
static inline int8_t tte_qas_weight_stochastic(int8_t w, float v, float noise) {
    const float s = v + noise;
    const float r = tte_rne_small(s);
    return tte_weight_add(w, (int32_t)(r > s ? r - 1.0f : r));
}

/* A fused conv weight-gradient + QAS update kernel's own pass over its trained weights, with the rounding mode
 * and the step clamp constant in each copy: apply 0 only checks that every step value is finite (0 where one is
 * not), apply 1 computes the gradients again and writes the updates. */
typedef int (*tte_update_sweep)(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                                const int8_t *x_saved, const float *gh, const float *inv_w, int8_t *w_train,
                                int32_t out_h, int32_t out_w, int32_t begin, int32_t count, int apply, int stochastic,
                                int clamp);

/* What the fused conv weight-gradient + update kernels do around their pass (NUMERICS.md 5): the non-finite gate
 * over gh, the update bound, a checking pass where the bound is not safe (a non-finite step leaves every weight
 * as it was), then one of four copies of the writing pass, one per rounding mode and clamp (a NaN bound clamps).
 * Inlined with the kernel's constant `sweep`, so each copy is that pass with its flags constant. */
TTE_ALWAYS_INLINE tte_status tte_conv2d_update_passes(tte_update_sweep sweep, const tte_conv2d_params *p,
                                                      tte_train_ctx *ctx, const tte_update_params *u,
                                                      const int8_t *x_saved, const float *gh, const float *inv_w,
                                                      int8_t *w_train, int32_t out_h, int32_t out_w, int32_t begin,
                                                      int32_t count) {
    const size_t n = (size_t)out_h * out_w * count;
    float gh_max;
    if (!tte_update_gate_max(ctx, gh, n, &gh_max)) {
        return TTE_OK;
    }
    const float inv_max = tte_max_inv(inv_w, begin, count);
    const float bound = tte_update_bound(ctx->lr[u->lr_group], gh_max, (int64_t)out_h * out_w, 255.0f, inv_max);
    if (!(bound <= TTE_UPDATE_SAFE_BOUND) &&
        !sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 0, 0, 1)) {
        return TTE_OK;
    }
    const int stochastic = u->rounding != TTE_ROUND_NEAREST, clamp = !(bound <= TTE_QAS_SMALL_BOUND);
    if (stochastic && clamp) {
        (void)sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 1, 1, 1);
    } else if (stochastic) {
        (void)sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 1, 1, 0);
    } else if (clamp) {
        (void)sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 1, 0, 1);
    } else {
        (void)sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 1, 0, 0);
    }
    return TTE_OK;
}

/* Checks what the three conv weight-update kernels share: pointers, the
 * context and attributes, the geometry, x_zero, the trained channels (over
 * in_c) and gh's band over the output channels, which it writes to *begin and
 * *count. The kernel checks its own kind (dense, depthwise, pointwise). */
tte_status tte_conv2d_check_update(const tte_conv2d_params *p, const tte_train_ctx *ctx, const tte_update_params *u,
                                   const int8_t *x_saved, const float *gh, const float *inv_w, const int8_t *w_train,
                                   const tte_channel_band *gh_band, int32_t *out_h, int32_t *out_w, int32_t *begin,
                                   int32_t *count);

/* The softmax cross-entropy of float32 logits f [n], shared by the two
 * softmax_ce kernels; g may equal f. Arguments are checked by the caller. */
void tte_softmax_ce_core(int32_t n, tte_train_ctx *ctx, const float *f, int32_t label, float *loss, float *g);

#endif /* TTE_KERNELS_IMPL_H */
