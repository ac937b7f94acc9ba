/* pointwise conv2d_bwd_x: the input gradient of a 1x1 conv, any stride
 * (NUMERICS.md 4): gx[c] = fmaf(w[o][c], gh[o], gx[c]) for o ascending at the
 * input pixels a strided output reads, starting at 0 (or its entry value);
 * 0 (or its entry value) elsewhere. Blocked: PW_CB input channels x PW_PB
 * pixels held in registers while o runs over a tile of weights converted to
 * float once per call. The portable kernel of every target. */
#include "kernels-impl.h"

/* On x86-64 hosts with FMA, pw_block_fma holds each pixel's PW_CB channels in one SSE register and adds
 * VFMADD lane by lane: each lane rounds once, as fmaf does, and keeps its own o order, so the bits are those
 * of pw_block. GCC does not keep pw_block's accumulators in vector registers by itself (about 6 instructions
 * per MAC under callgrind). Chosen at run time: a host without FMA runs pw_block. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PW_FMA_LANES 1
#include <immintrin.h>
#endif

#define PW_CB 4  /* input channels per block */
#define PW_PB 4  /* pixels per block */
#define PW_OT 64 /* output channels per weight tile: wf holds PW_OT x PW_CB floats (1 KB of stack) */

/* The input pixel that output pixel q reads. */
static inline size_t in_pixel(const tte_conv2d_params *p, int32_t out_w, int32_t q) {
    if (p->stride_h == 1 && p->stride_w == 1) {
        return (size_t)q;
    }
    return (size_t)(q / out_w) * p->stride_h * p->in_w + (size_t)(q % out_w) * p->stride_w;
}

/* One block: PW_PB pixels' rows of gh (g[i] [no]) and gx (x[i] [PW_CB]), `store` of them written back
 * (the others duplicate a pixel to fill the block), `store_c` channels of each; wf [no][PW_CB]. */
TTE_FMA_CLONES
static void pw_block(const float *wf, int32_t no, const float *const *g, float *const *x, int32_t store,
                     int32_t store_c, int zero) {
    float a[PW_PB][PW_CB];
    for (int32_t i = 0; i < PW_PB; ++i) {
        for (int32_t ci = 0; ci < PW_CB; ++ci) {
            a[i][ci] = zero ? 0.0f : x[i][ci < store_c ? ci : store_c - 1];
        }
    }
    for (int32_t o = 0; o < no; ++o, wf += PW_CB) {
        for (int32_t i = 0; i < PW_PB; ++i) {
            const float gv = g[i][o];
            for (int32_t ci = 0; ci < PW_CB; ++ci) {
                a[i][ci] = tte_fma(wf[ci], gv, a[i][ci]);
            }
        }
    }
    for (int32_t i = 0; i < store; ++i) {
        for (int32_t ci = 0; ci < store_c; ++ci) {
            x[i][ci] = a[i][ci];
        }
    }
}

#ifdef PW_FMA_LANES
__attribute__((target("avx2,fma"))) static void pw_block_fma(const float *wf, int32_t no, const float *const *g,
                                                             float *const *x, int32_t store, int32_t store_c,
                                                             int zero) {
    __m128 a[PW_PB];
    for (int32_t i = 0; i < PW_PB; ++i) {
        float start[PW_CB];
        for (int32_t ci = 0; ci < PW_CB; ++ci) {
            start[ci] = zero ? 0.0f : x[i][ci < store_c ? ci : store_c - 1];
        }
        a[i] = _mm_loadu_ps(start);
    }
    for (int32_t o = 0; o < no; ++o, wf += PW_CB) {
        const __m128 wv = _mm_loadu_ps(wf);
        for (int32_t i = 0; i < PW_PB; ++i) {
            a[i] = _mm_fmadd_ps(wv, _mm_set1_ps(g[i][o]), a[i]);
        }
    }
    for (int32_t i = 0; i < store; ++i) {
        float sums[PW_CB];
        _mm_storeu_ps(sums, a[i]);
        for (int32_t ci = 0; ci < store_c; ++ci) {
            x[i][ci] = sums[ci];
        }
    }
}
#endif

tte_status tte_pointwise_conv2d_bwd_x_f32(const tte_conv2d_params *p, const float *gh, const int8_t *w,
                                          const int8_t *w_train, float *gx, int accumulate,
                                          const tte_channel_band *gh_band, const tte_channel_band *gx_band) {
    if (p == NULL || gh == NULL || w == NULL || gx == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w, hb, hn, xb, xn;
    tte_status status = tte_conv2d_check_geometry(p, &out_h, &out_w);
    if (status == TTE_OK && (p->kernel_h != 1 || p->kernel_w != 1 || !tte_conv2d_unpadded(p) || p->groups != 1)) {
        status = TTE_ERR_SHAPE;
    }
    if (status == TTE_OK) {
        status = tte_conv2d_check_slice(p, w_train, p->in_c);
    }
    if (status == TTE_OK && (tte_band_window(gh_band, p->out_c, &hb, &hn) != TTE_OK ||
                             tte_band_window(gx_band, p->in_c, &xb, &xn) != TTE_OK)) {
        status = TTE_ERR_ARG;
    }
    if (status != TTE_OK) {
        return status;
    }
    if (!accumulate && (p->stride_h > 1 || p->stride_w > 1)) {
        /* Pixels off the stride grid get 0; the grid's are then accumulated onto 0, which adds the same
         * bits as starting from 0. */
        memset(gx, 0, (size_t)p->in_h * p->in_w * xn * sizeof *gx);
        accumulate = 1;
    }
    const int32_t pixels = out_h * out_w;
#ifdef PW_FMA_LANES
    const int fma_lanes = __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
#endif
    float wf[PW_OT * PW_CB];
    int32_t next = 0;
    for (int32_t c0 = 0; c0 < xn; c0 += PW_CB) {
        const int32_t nc = xn - c0 < PW_CB ? xn - c0 : PW_CB;
        /* Each column's weights: column c of w [O][in_c], or column j of w_train [O][k]; the block's
         * missing columns repeat its last one. */
        const int8_t *src[PW_CB];
        size_t step[PW_CB];
        for (int32_t ci = 0; ci < PW_CB; ++ci) {
            if (ci < nc) {
                const int32_t c = xb + c0 + ci;
                const int32_t j = tte_slice_index(p->train_channels, p->train_count, c, &next);
                src[ci] = j < 0 ? w + c : w_train + j;
                step[ci] = j < 0 ? (size_t)p->in_c : (size_t)p->train_count;
            } else {
                src[ci] = src[nc - 1];
                step[ci] = step[nc - 1];
            }
        }
        for (int32_t o0 = 0; o0 < hn; o0 += PW_OT) {
            const int32_t no = hn - o0 < PW_OT ? hn - o0 : PW_OT;
            for (int32_t ol = 0; ol < no; ++ol) {
                for (int32_t ci = 0; ci < PW_CB; ++ci) {
                    wf[ol * PW_CB + ci] = (float)src[ci][(size_t)(hb + o0 + ol) * step[ci]];
                }
            }
            const int zero = !accumulate && o0 == 0;
            for (int32_t q = 0; q < pixels; q += PW_PB) {
                const float *g[PW_PB];
                float *x[PW_PB];
                const int32_t store = pixels - q < PW_PB ? pixels - q : PW_PB;
                for (int32_t i = 0; i < PW_PB; ++i) {
                    const int32_t qi = q + (i < store ? i : store - 1);
                    g[i] = gh + (size_t)qi * hn + o0;
                    x[i] = gx + in_pixel(p, out_w, qi) * xn + c0;
                }
#ifdef PW_FMA_LANES
                if (fma_lanes) {
                    pw_block_fma(wf, no, g, x, store, nc, zero);
                    continue;
                }
#endif
                pw_block(wf, no, g, x, store, nc, zero);
            }
        }
    }
    return TTE_OK;
}
