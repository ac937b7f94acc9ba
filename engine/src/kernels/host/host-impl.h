/* Helpers of the host kernels (src/kernels/host: x86-64 and other 64-bit hosts): plain C loops that
 * GCC and Clang vectorize (int8 codes widened to int16, products summed into int32), and on x86-64
 * with GNU ifunc a second copy of each kernel for AVX2 picked at load time. Not installed; the kernels
 * of this folder include it.
 *
 * The products: (x - x_zero) is in [-255, 255] and a weight in [-128, 127], so each product fits
 * int16 exactly (|p| <= 32640) and two of them an int32 (PMADDWD); the int32 sums are exact in any
 * order (|sum| <= TTE_MAX_REDUCTION * 32640 < 2^31), so results equal the reference kernels' bit for
 * bit; every output goes through tte_conv_epilogue, the reference's epilogue (float or fixed-point
 * requantization, NUMERICS.md 2 and 2b), one call each. */
#ifndef TTE_HOST_IMPL_H
#define TTE_HOST_IMPL_H

#include "kernels-impl.h"

/* An AVX2 copy beside the baseline one (x86-64 SSE2), chosen once by the loader (GNU ifunc): measured
 * faster on the pointwise and depthwise kernels; elsewhere the one baseline copy. */
#ifndef TTE_HOST_CLONES
#if defined(__x86_64__) && defined(__ELF__) && defined(__linux__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define TTE_HOST_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#endif
#ifndef TTE_HOST_CLONES
#define TTE_HOST_CLONES /* one copy; also what a build defining it empty gets (the tests' baseline check) */
#endif

/* Rows of the matrix product are padded with zero codes to a multiple of TTE_HOST_LANES (one AVX2
 * vector of int16), so the vector loops need no scalar tail. */
#define TTE_HOST_LANES 16
/* The most codes (padded) of one row: input channels of a pointwise conv, kernel_h * kernel_w * in_c
 * of a dense one; a call with more runs the reference kernel. */
#define TTE_HOST_ROW_CODES 4096
/* int16 codes of the weight rows converted at a time (32 KB of stack): all output channels of
 * MCUNet's convs, at least 4 rows of the longest. */
#define TTE_HOST_WEIGHT_CODES 16384
/* Output channels x pixels of one step of the product (TTE_HOST_OUT x 2 int32 sums). */
#define TTE_HOST_OUT 4

/* n rounded up to a multiple of m. */
static inline int32_t tte_host_round_up(int32_t n, int32_t m) {
    return (n + m - 1) / m * m;
}

/* The sums of products of rows a0, a1 [k] with weight rows w [TTE_HOST_OUT][k]:
 * acc[j] = a0 . w[j], acc[TTE_HOST_OUT + j] = a1 . w[j]. k is a multiple of TTE_HOST_LANES. The loop
 * over codes is the vectorized one (PMADDWD), its eight sums in registers. */
TTE_ALWAYS_INLINE void tte_host_dot(const int16_t *a0, const int16_t *a1, const int16_t *w, int32_t k,
                                    int32_t acc[2 * TTE_HOST_OUT]) {
    int32_t s[2 * TTE_HOST_OUT] = {0};
    const int32_t n = k / TTE_HOST_LANES * TTE_HOST_LANES; /* k itself, written so GCC sees it needs no tail */
    for (int32_t c = 0; c < n; ++c) {
        for (int32_t j = 0; j < TTE_HOST_OUT; ++j) {
            s[j] += (int32_t)a0[c] * (int32_t)w[(size_t)j * k + c];
            s[TTE_HOST_OUT + j] += (int32_t)a1[c] * (int32_t)w[(size_t)j * k + c];
        }
    }
    for (int32_t j = 0; j < 2 * TTE_HOST_OUT; ++j) {
        acc[j] = s[j];
    }
}

/* What the matrix product of a pointwise or dense conv shares: the output constants and where the
 * band's pixels go. */
typedef struct tte_host_out {
    const tte_conv2d_params *p; /* zero points, clamp and requantization */
    const int32_t *bias;
    const float *multiplier;
    int32_t out_c;
    int8_t *y;     /* the band's first output pixel */
    uint8_t *mask; /* NULL: none */
    int32_t first; /* the whole output's pixel index of y's first pixel */
} tte_host_out;

/* Outputs [o, o + n) of one pixel (y, whole-output element index of y[0]: index) from sums acc[j], j < n:
 * tte_conv_epilogue each. It reads a copy of the descriptor: every int8 store may alias *p, and would
 * make the compiler read its fields again for each output. Under float requantization without a mask the
 * loop is a copy that GCC vectorizes (eight outputs per AVX2 step; the host
 * kernels are built with -fno-trapping-math, which lets it turn the epilogue's float compares into
 * selects and changes no value). */
TTE_ALWAYS_INLINE void tte_host_epilogue(const tte_conv2d_params *p, const int32_t *bias, const float *multiplier,
                                         int32_t o, int32_t n, const int32_t *acc, int8_t *y, uint8_t *mask,
                                         int32_t index) {
    const tte_conv2d_params pc = *p;
    if (mask == NULL && pc.requant == TTE_REQUANT_FLOAT) { /* the requantization known inside the loop */
        for (int32_t j = 0; j < n; ++j) {
            tte_conv_epilogue(&pc, o + j, acc[j], bias, multiplier, &y[j], NULL, 0);
        }
        return;
    }
    for (int32_t j = 0; j < n; ++j) {
        tte_conv_epilogue(&pc, o + j, acc[j], bias, multiplier, &y[j], mask, index + j);
    }
}

/* Output channels [o, o + n) of band pixel k from sums acc[j], j < n. */
TTE_ALWAYS_INLINE void tte_host_store(const tte_host_out *d, int32_t k, int32_t o, int32_t n, const int32_t *acc) {
    tte_host_epilogue(d->p, d->bias, d->multiplier, o, n, acc, d->y + (size_t)k * d->out_c + o, d->mask,
                      (d->first + k) * d->out_c + o);
}

/* The band's `pixels` output pixels of a conv as a matrix product: row k of the left matrix is band
 * pixel k's (x - x_zero) codes in weight order, written by fill_row(ctx, k, row) ([k_pad] codes, zero
 * past the real ones); output channel o's weights [k_pad] by fill_weights(ctx, o, row). Weights are
 * converted a chunk of output channels at a time (TTE_HOST_WEIGHT_CODES), the rows of a pixel pair
 * once per chunk. Inlined with constant callbacks into each kernel. */
TTE_ALWAYS_INLINE void tte_host_product(const void *ctx, const tte_host_out *d, int32_t pixels, int32_t k_pad,
                                        void (*fill_row)(const void *, int32_t, int16_t *),
                                        void (*fill_weights)(const void *, int32_t, int16_t *)) {
    int16_t w16[TTE_HOST_WEIGHT_CODES];
    int16_t a[2][TTE_HOST_ROW_CODES];
    int32_t sums[2][TTE_HOST_WEIGHT_CODES / TTE_HOST_LANES]; /* a chunk's channels (k_pad >= TTE_HOST_LANES) */
    const int32_t out_c = d->out_c;
    const int32_t chunk = TTE_HOST_WEIGHT_CODES / k_pad / TTE_HOST_OUT * TTE_HOST_OUT; /* >= TTE_HOST_OUT */
    for (int32_t o0 = 0; o0 < out_c; o0 += chunk) {
        const int32_t n_o = out_c - o0 < chunk ? out_c - o0 : chunk;
        const int32_t n_pad = tte_host_round_up(n_o, TTE_HOST_OUT);
        for (int32_t j = 0; j < n_pad; ++j) {
            if (j < n_o) {
                fill_weights(ctx, o0 + j, w16 + (size_t)j * k_pad);
            } else {
                memset(w16 + (size_t)j * k_pad, 0, (size_t)k_pad * sizeof w16[0]);
            }
        }
        for (int32_t k = 0; k < pixels; k += 2) {
            const int32_t pair = k + 1 < pixels;
            fill_row(ctx, k, a[0]);
            if (pair) {
                fill_row(ctx, k + 1, a[1]);
            } else {
                memcpy(a[1], a[0], (size_t)k_pad * sizeof a[0][0]);
            }
            /* Both pixels' sums over the chunk's channels, then each pixel's epilogue in one loop. */
            for (int32_t j = 0; j < n_pad; j += TTE_HOST_OUT) {
                int32_t acc[2 * TTE_HOST_OUT];
                tte_host_dot(a[0], a[1], w16 + (size_t)j * k_pad, k_pad, acc);
                for (int32_t q = 0; q < TTE_HOST_OUT; ++q) {
                    sums[0][j + q] = acc[q];
                    sums[1][j + q] = acc[TTE_HOST_OUT + q];
                }
            }
            tte_host_store(d, k, o0, n_o, sums[0]);
            if (pair) {
                tte_host_store(d, k + 1, o0, n_o, sums[1]);
            }
        }
    }
}

/* n codes (x - x_zero) as int16, then zeros up to n_pad. */
static inline void tte_host_widen(const int8_t *x, int32_t n, int32_t x_zero, int32_t n_pad, int16_t *row) {
    const int16_t z = (int16_t)x_zero;
    for (int32_t c = 0; c < n; ++c) {
        row[c] = (int16_t)(x[c] - z);
    }
    for (int32_t c = n; c < n_pad; ++c) {
        row[c] = 0;
    }
}

/* n weight codes as int16, then zeros up to n_pad. */
static inline void tte_host_widen_weights(const int8_t *w, int32_t n, int32_t n_pad, int16_t *row) {
    for (int32_t c = 0; c < n; ++c) {
        row[c] = w[c];
    }
    for (int32_t c = n; c < n_pad; ++c) {
        row[c] = 0;
    }
}

#endif /* TTE_HOST_IMPL_H */
