/* tte_fmaf_soft (math.c) against the host's fmaf, correctly rounded (glibc: the FMA instruction or its
 * exact software path), bit for bit: random bit patterns (every class: NaN, infinities, subnormals), and
 * products within 2^-29 of half an ulp of c, where the double sum lands on a float midpoint and rounding
 * it again (newlib's fmaf) gives the wrong neighbour. The naive double-rounded sum is counted too, so a
 * run shows that its inputs reach those cases. Prints CHECK lines, then DONE. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tte/tte_train.h"

static uint64_t state = 0x9E3779B97F4A7C15u;

static uint32_t next_u32(void) { /* xorshift64 */
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (uint32_t)(state >> 16);
}

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

static int same(float x, float y) {
    return to_bits(x) == to_bits(y) || (isnan(x) && isnan(y));
}

/* a = (2^23 + i) 2^(ea-23), b = +-(2^24 - j) 2^(h-ea-24), h the exponent of half an ulp of c: the product
 * is 2^h (1 + (2^24 i - 2^23 j - i j) / 2^47), within 2^-29 of 2^h for j near 2i. */
static void midpoint_triple(float *a, float *b, float *c) {
    const uint32_t cb = next_u32() % 0x7F000000u; /* finite */
    *c = from_bits(cb | (next_u32() & 0x80000000u));
    int e;
    frexpf(*c, &e);
    const int h = *c == 0.0f || e - 25 < -150 ? -150 : e - 25;
    const int i = (int)(next_u32() % 4097u);
    const int j = (next_u32() & 1u) ? 2 * i - 1 : 2 * i + (int)(next_u32() % 5u) - 2;
    const int ea = (int)(next_u32() % 61u) - 30;
    *a = ldexpf((float)(8388608 + i), ea - 23);
    *b = ldexpf((float)(16777216 - j), h - ea - 24) * ((next_u32() & 1u) ? -1.0f : 1.0f);
}

int main(void) {
    const long count = 2000000;
    int failed = 0;
    for (int kind = 0; kind < 2; ++kind) {
        long wrong = 0, naive_wrong = 0;
        for (long n = 0; n < count; ++n) {
            float a, b, c;
            if (kind == 0) {
                a = from_bits(next_u32());
                b = from_bits(next_u32());
                c = from_bits(next_u32());
            } else {
                midpoint_triple(&a, &b, &c);
            }
            const float want = fmaf(a, b, c);
            const float got = tte_fmaf_soft(a, b, c);
            if (!same(got, want)) {
                if (wrong < 5) {
                    printf("MISMATCH %a * %a + %a: %a, fmaf %a\n", a, b, c, got, want);
                }
                ++wrong;
            }
            naive_wrong += !same((float)((double)a * (double)b + (double)c), want);
        }
        printf("CHECK %s count=%ld wrong=%ld naive_wrong=%ld\n", kind == 0 ? "random" : "midpoints", count, wrong,
               naive_wrong);
        failed += wrong != 0;
    }
    printf("DONE failed=%d\n", failed);
    return failed != 0;
}
