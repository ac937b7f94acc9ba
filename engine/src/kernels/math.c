/* The engine's own expf and logf (tte_train.h): every target runs this code,
 * so the softmax loss and gradient agree bit for bit between the host and
 * Cortex-M, where libm implementations differ. Also tte_fmaf_soft, the fused
 * multiply-add of the cores without one (last in this file). The algorithms and constants
 * are those of fdlibm's e_expf.c and e_logf.c (Sun Microsystems, freely
 * redistributable): range reduction by ln 2 with a two-part constant, then a
 * short rational or polynomial approximation, each operation a single float32
 * rounding (-ffp-contract=off). */
#include "kernels-impl.h"

static float from_bits(uint32_t bits) {
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static uint32_t to_bits(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

/* 2^k for -126 <= k <= 127, built from its exponent bits. */
static float pow2(int32_t k) {
    return from_bits((uint32_t)(k + 127) << 23);
}

static const float ln2_hi = 6.9314575195e-01f; /* 0x3f317200: k * ln2_hi is exact for |k| < 2^9 */
static const float ln2_lo = 1.4286067653e-06f; /* 0x35bfbe8e: ln 2 - ln2_hi */

float tte_expf(float x) {
    if (x != x) {
        return x;
    }
    if (x > 89.0f) {
        return from_bits(0x7f800000u); /* e^89 > FLT_MAX */
    }
    if (x < -104.0f) {
        return 0.0f; /* e^-104 < 2^-150, below half the smallest subnormal */
    }
    /* x = k ln 2 + r with |r| <= ln2/2 (a little more where k rounds), k in [-150, 129]. */
    const float k = tte_rne_small(x * 1.4426950216e+00f);
    const float hi = x - k * ln2_hi;
    const float lo = k * ln2_lo;
    const float r = hi - lo;
    /* e^r = 1 + r + r*c / (2 - c) with c = r - r^2 P(r^2), P fdlibm's Remez fit; evaluated around hi and lo. */
    const float t = r * r;
    const float c =
        r - t * (1.6666667163e-01f +
                 t * (-2.7777778450e-03f + t * (6.6137559770e-05f + t * (-1.6533901999e-06f + t * 4.1381369442e-08f))));
    const float y = 1.0f - ((lo - (r * c) / (2.0f - c)) - hi);
    /* y * 2^k in two exact-or-once-rounded steps: y * 2^(k-64) stays normal and exact for every
     * k here, then the multiply by 2^64 rounds once (to a subnormal, or overflows to infinity). */
    const int32_t ki = (int32_t)k;
    if (ki >= -125 && ki <= 127) {
        return y * pow2(ki);
    }
    return ki > 0 ? (y * pow2(ki - 64)) * pow2(64) : (y * pow2(ki + 64)) * pow2(-64);
}

float tte_logf(float x) {
    const float sqrt2 = 1.4142135624e+00f;
    uint32_t bits = to_bits(x);
    if (x != x || bits == 0x7f800000u) {
        return x; /* NaN, +inf */
    }
    if (x == 0.0f) {
        return from_bits(0xff800000u); /* -inf */
    }
    if (x < 0.0f) {
        return from_bits(0x7fc00000u); /* NaN */
    }
    int32_t e = 0;
    if (bits < 0x00800000u) {
        x *= 33554432.0f; /* a subnormal times 2^25 is normal and exact */
        bits = to_bits(x);
        e = -25;
    }
    /* x = 2^e * m with m in [sqrt(2)/2, sqrt(2)). */
    e += (int32_t)(bits >> 23) - 127;
    float m = from_bits((bits & 0x007fffffu) | 0x3f800000u);
    if (m >= sqrt2) {
        m *= 0.5f;
        e += 1;
    }
    /* log m = f - f^2/2 + s(f^2/2 + R(s^2)) with f = m - 1 (exact) and s = f / (2 + f). */
    const float f = m - 1.0f;
    const float s = f / (2.0f + f);
    const float z = s * s;
    const float w = z * z;
    const float t1 = w * (4.0000000596e-01f + w * 2.2222198546e-01f);
    const float t2 = z * (6.6666668653e-01f + w * 2.8571429849e-01f);
    const float r = t2 + t1;
    const float hfsq = 0.5f * f * f;
    const float dk = (float)e;
    return dk * ln2_hi - ((hfsq - (s * (hfsq + r) + dk * ln2_lo)) - f);
}

/* The product of two floats (24-bit significands) is exact in double; the sum s is rounded to nearest
 * there, and rounding s again to float gives the correctly rounded a * b + c except where s lands on a
 * float midpoint (a tie of the float rounding) while the exact sum does not. Every float midpoint, normal
 * or subnormal, and the overflow threshold have their low 28 significand bits zero in double, so any other
 * s rounds right as it is. Otherwise the sum is rounded to odd: s moved one double ulp towards the exact
 * sum where it is inexact (its exact error from TwoSum), and a value rounded to odd with 29 spare bits
 * rounds to float as the exact value would. The same rule as tte_ir.reference_train's _fmaf, which rounds
 * every sum to odd (the same result: moving an s that is not a midpoint leaves its float rounding as is). */
float tte_fmaf_soft(float a, float b, float c) {
    const double p = (double)a * (double)b;
    const double z = (double)c;
    const double s = p + z;
    uint64_t bits;
    memcpy(&bits, &s, sizeof bits);
    const uint64_t exponent = UINT64_C(0x7ff0000000000000);
    if ((bits & UINT64_C(0x0fffffff)) != 0 || (bits & exponent) == exponent) {
        return (float)s; /* not a midpoint, or an infinity or NaN */
    }
    const double back = s - z;
    const double error = (p - back) + (z - (s - back));
    if (error != 0.0) {
        /* s is nonzero here (an exact sum that is not zero is at least 2^-298 in magnitude). */
        bits = ((error > 0.0) == (s > 0.0)) ? bits + 1u : bits - 1u;
    }
    double odd;
    memcpy(&odd, &bits, sizeof odd);
    return (float)odd;
}
