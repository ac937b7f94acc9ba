/* depthwise conv2d_bwd_x: the input gradient of a depthwise conv, channel by
 * channel (NUMERICS.md 4): each gx element starts at 0 (or its entry value)
 * and adds fmaf(w[u][v][c], gh[oy][ox][c], gx) over its taps in ascending
 * (u, v) order. Channel-separable, so a band of gh gives the same band of gx.
 * Three paths, the same chains. The plane path (stride 1, 3x3 / 5x5 / 7x7, maps up to DW_PW - k + 1 wide: the
 * MCUNet layers at 8x8) copies one channel's gh (a band of rows) once into a zero-padded plane of constant row
 * length on the stack, so every tap of a pixel is an immediate offset and DW_RUN pixels of a row share each
 * weight and gh load; a padded position's taps read zeros (fmaf(w, +0, a) = a, since a chain started at +0
 * never holds -0). The stride-2 plane path (3x3 / 5x5 / 7x7, the whole gh in the plane) splits gx into its four
 * parity classes (iy mod 2, ix mod 2): a class reads every other kernel row and column, a 4x4, 4x3, 3x4 or 3x3
 * sub-kernel of 7x7, and is a stride-1 correlation of the plane with it, in DW_RUN x DW_RUN pixel blocks whose
 * chains stay in registers, each weight converted once per block. The general path, everywhere else:
 * Blocked: DW_CB channels at a time (then DW_CB / 2, then 1), their weights converted to float once per
 * call (in tiles of whole kernel rows), each pixel's valid taps found once (no
 * per-tap bounds tests). With stride_h s > 1 an input row reads only the kernel rows of one class
 * ky = c (mod s); where the kernel would take several tiles but one class fits a tile, each tile holds
 * one class and visits only the input rows that read it, so each pixel is visited once with all its
 * taps (7x7 stride 2: four rows per class). The portable kernel of every target. */
#include "kernels-impl.h"

#define DW_CB 8            /* channels per block */
#define DW_TAPS 32         /* taps per weight tile: wf holds DW_TAPS x DW_CB floats (1 KB of stack) */
#define DW_WIDE 16         /* channels per block where a kernel row fits DW_TAPS / 2 taps (rows then take more tiles) */
#define DW_KMAX 7          /* the largest kernel side of the plane path */
#define DW_PW 16           /* floats per plane row: a constant, so a tap's plane row is an immediate offset */
#define DW_PH 16           /* plane rows (DW_PH x DW_PW floats: 1 KB of stack) */
#define DW_RUN 4           /* pixels per block of the plane path */
#define DW_SUB 4           /* the most taps per row of a stride-2 class's sub-kernel (7x7: 4) */
#define DW_UNROLL_ROWS 4   /* blocks of kernels of at most this many rows unroll whole */
#define DW_MIN_MACS 512    /* the plane path's least forward MACs per channel */
#define DW_MIN_MACS_S2 256 /* the stride-2 plane path's (8x8 5x5, 400, gains; 8x8 3x3, 144, loses) */
/* The plane path pays on cores without a vector unit (Cortex-M: 32-bit Arm without NEON). Elsewhere (x86-64,
 * AArch64) the general path's channel blocks vectorize, 4 to 8 channels per instruction, and stay faster (x86-64
 * with the x86-64-v3 copy: 0.8 against 2.1 instructions per MAC on the 8x8 layers). -DTTE_DW_PLANE=1 builds it
 * anywhere (tests/engine/c/dw_plane_main.c checks it on the host). */
#ifndef TTE_DW_PLANE
#if defined(__arm__) && !defined(__ARM_NEON)
#define TTE_DW_PLANE 1
#else
#define TTE_DW_PLANE 0
#endif
#endif
/* The plane path's blocks unroll whole (the kernel side is a constant), past GCC's default limits; its rows
 * are a function of their own (inlined, their registers would spill across the channel loop). In the stride-2
 * blocks (no instruction either): DW_OPAQUE(p) hides a pointer's value from the optimizer for one step, else
 * GCC -O3 keeps the plane rows that the next kernel row reads again in registers (predictive commoning) and
 * spills the chains; DW_FENCE() keeps loads after it, else GCC for Cortex-M4 hoists a block row's plane loads
 * above the row before and spills. */
#if defined(__GNUC__) && !defined(__clang__)
#define DW_UNROLL _Pragma("GCC unroll 8")
#define DW_NO_UNROLL _Pragma("GCC unroll 1")
#define DW_UNROLL_COPY _Pragma("GCC unroll 4")
#define DW_NOINLINE __attribute__((noinline))
#define DW_OPAQUE(x) __asm__("" : "+r"(x))
#define DW_FENCE() __asm__ volatile("" ::: "memory")
#elif defined(__clang__)
#define DW_UNROLL _Pragma("unroll")
#define DW_NO_UNROLL _Pragma("nounroll")
#define DW_UNROLL_COPY _Pragma("unroll 4")
#define DW_NOINLINE __attribute__((noinline))
#define DW_OPAQUE(x) __asm__("" : "+r"(x))
#define DW_FENCE() __asm__ volatile("" ::: "memory")
#else
#define DW_UNROLL
#define DW_NO_UNROLL
#define DW_UNROLL_COPY
#define DW_NOINLINE
#define DW_OPAQUE(x) (void)(x)
#define DW_FENCE() (void)0
#endif

/* The depthwise kernel reads and writes the same channels: its two bands must agree. */
static int same_band(const tte_channel_band *a, const tte_channel_band *b) {
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return a->begin == b->begin && a->count == b->count;
}

/* The kernel taps k (ascending, step stride) through which input position i is read by an output
 * position o = (i + pad - k) / stride in [0, n_out): [*lo, *hi). */
static inline void taps_of(int32_t i, int32_t n_out, int32_t stride, int32_t pad, int32_t kernel, int32_t *lo,
                           int32_t *hi) {
    const int32_t t = i + pad;        /* k = t - o * stride */
    const int32_t o_max = t / stride; /* k >= 0 */
    const int32_t o_last = o_max < n_out - 1 ? o_max : n_out - 1;
    int32_t first = t - o_last * stride; /* the smallest tap, o as large as allowed */
    int32_t end = t + 1;                 /* k <= t */
    end = end < kernel ? end : kernel;
    *lo = first;
    *hi = first < end ? end : first;
}

/* The cb (1, DW_CB / 2, DW_CB or DW_WIDE) channels from column `col` of gx and gh, kernel rows r0, r0 + step,
 * ... below r1 (wf [rows][kw][cb]; step 1, or the stride for one class of rows, whose input rows alone are
 * visited). zero: start at 0 instead of gx's value. A pixel's taps in a row are consecutive kx of one
 * parity class, visited ascending: the gh pointer steps back one column and the weight pointer stride_w taps
 * ahead; rows step back one gh row and stride_h kernel rows ahead, so no index is recomputed inside a pixel. */
TTE_ALWAYS_INLINE void dw_block(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const float *gh, float *gx,
                                int32_t count, int32_t col, int32_t cb, const float *wf, int32_t r0, int32_t r1,
                                int32_t step, int zero) {
    const int32_t s = p->stride_h, sw = p->stride_w, kw = p->kernel_w;
    const size_t g_row = (size_t)out_w * count, w_row = (size_t)(s / step) * kw * cb, w_col = (size_t)sw * cb;
    /* The input rows iy that read kernel row r0's class: iy + pad_top = r0 (mod s). */
    const int32_t iy_first = step == 1 ? 0 : ((r0 - p->pad_top) % s + s) % s;
    for (int32_t iy = iy_first; iy < p->in_h; iy += step) {
        int32_t ky_lo, ky_hi;
        taps_of(iy, out_h, s, p->pad_top, p->kernel_h, &ky_lo, &ky_hi);
        if (ky_lo < r0) { /* the first row of the tile in this pixel row's parity class */
            ky_lo += (r0 - ky_lo + s - 1) / s * s;
        }
        ky_hi = ky_hi < r1 ? ky_hi : r1;
        const int32_t oy0 = (iy + p->pad_top - ky_lo) / s;
        float *out = gx + (size_t)iy * p->in_w * count + col;
        for (int32_t ix = 0; ix < p->in_w; ++ix, out += count) {
            int32_t kx_lo, kx_hi;
            taps_of(ix, out_w, sw, p->pad_left, kw, &kx_lo, &kx_hi);
            float a[DW_WIDE];
            for (int32_t ci = 0; ci < cb; ++ci) {
                a[ci] = zero ? 0.0f : out[ci];
            }
            const int32_t ntx = (kx_hi - kx_lo + sw - 1) / sw;
            const float *g_first = gh + ((size_t)oy0 * out_w + (ix + p->pad_left - kx_lo) / sw) * count + col;
            const float *w_first = wf + ((size_t)((ky_lo - r0) / step) * kw + kx_lo) * cb;
            for (int32_t ky = ky_lo; ky < ky_hi; ky += s, g_first -= g_row, w_first += w_row) {
                const float *g = g_first, *wp = w_first;
                for (int32_t t = 0; t < ntx; ++t, g -= count, wp += w_col) {
                    for (int32_t ci = 0; ci < cb; ++ci) {
                        a[ci] = tte_fma(wp[ci], g[ci], a[ci]);
                    }
                }
            }
            for (int32_t ci = 0; ci < cb; ++ci) {
                out[ci] = a[ci];
            }
        }
    }
}

/* One channel at a time, each weight converted where it is used: the same chains as dw_block, for kernel
 * rows too wide for its weight tile. */
TTE_FMA_CLONES
static void dw_plain(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const float *gh, const int8_t *w,
                     const int8_t *w_train, float *gx, int32_t begin, int32_t count, int accumulate) {
    const int32_t sh = p->stride_h, sw = p->stride_w;
    int32_t next = 0;
    for (int32_t col = 0; col < count; ++col) {
        const int32_t c = begin + col;
        const int32_t j = tte_slice_index(p->train_channels, p->train_count, c, &next);
        const int8_t *wc = j < 0 ? w + c : w_train + j;
        const size_t wstride = j < 0 ? (size_t)p->in_c : (size_t)p->train_count;
        for (int32_t iy = 0; iy < p->in_h; ++iy) {
            int32_t ky_lo, ky_hi;
            taps_of(iy, out_h, sh, p->pad_top, p->kernel_h, &ky_lo, &ky_hi);
            for (int32_t ix = 0; ix < p->in_w; ++ix) {
                int32_t kx_lo, kx_hi;
                taps_of(ix, out_w, sw, p->pad_left, p->kernel_w, &kx_lo, &kx_hi);
                float *out = gx + ((size_t)iy * p->in_w + ix) * count + col;
                float a = accumulate ? *out : 0.0f;
                for (int32_t ky = ky_lo; ky < ky_hi; ky += sh) {
                    const int32_t oy = (iy + p->pad_top - ky) / sh;
                    for (int32_t kx = kx_lo; kx < kx_hi; kx += sw) {
                        const float g = gh[((size_t)oy * out_w + (ix + p->pad_left - kx) / sw) * count + col];
                        a = tte_fma((float)wc[((size_t)ky * p->kernel_w + kx) * wstride], g, a);
                    }
                }
                *out = a;
            }
        }
    }
}

/* DW_RUN pixels of an input row, step floats apart in gx from out, from 0: pixel m adds, for kernel rows j < k
 * and columns t < k (ascending), wf[j k + t] times the plane value g[m + k - 1 - t - j DW_PW]. */
TTE_ALWAYS_INLINE void dw_pixels(const float *g, const float *wf, int32_t k, float *out, size_t step) {
    float a[DW_RUN] = {0.0f};
    if (k <= DW_UNROLL_ROWS) { /* every tap of the block unrolled: the weights stay in registers */
        DW_UNROLL
        for (int32_t j = 0; j < k; ++j) {
            DW_UNROLL
            for (int32_t t = 0; t < k; ++t) {
                for (int32_t m = 0; m < DW_RUN; ++m) {
                    a[m] = tte_fma(wf[j * k + t], g[m + k - 1 - t - j * DW_PW], a[m]);
                }
            }
        }
    } else { /* one kernel row at a time: its weights loaded once per block */
        for (int32_t j = 0; j < k; ++j) {
            DW_UNROLL
            for (int32_t t = 0; t < k; ++t) {
                for (int32_t m = 0; m < DW_RUN; ++m) {
                    a[m] = tte_fma(wf[j * k + t], g[m + k - 1 - t - j * DW_PW], a[m]);
                }
            }
        }
    }
    for (int32_t m = 0; m < DW_RUN; ++m) {
        out[m * step] = a[m];
    }
}

/* `rows` input rows of n >= DW_RUN pixels (gx from out, row_step floats between rows, step between pixels), the
 * plane value of the first pixel's tap (0, k - 1) at g, the next row's one plane row down. Whole blocks; the
 * last one may overlap the one before (its pixels computed again from 0: the same bits). */
TTE_ALWAYS_INLINE void dw_rows_k(const float *g, const float *wf, int32_t k, int32_t rows, int32_t n, float *out,
                                 size_t row_step, size_t step) {
    for (int32_t r = 0; r < rows; ++r, g += DW_PW, out += row_step) {
        for (int32_t m = 0; m < n; m += DW_RUN) {
            const int32_t at = m + DW_RUN <= n ? m : n - DW_RUN;
            dw_pixels(g + at, wf, k, out + at * step, step);
        }
    }
}

/* dw_rows_k with the kernel side a constant (3, 5 or 7: dw_planes takes no other), so the blocks unroll. */
TTE_FMA_CLONES DW_NOINLINE static void dw_rows(const float *g, const float *wf, int32_t k, int32_t rows, int32_t n,
                                               float *out, size_t row_step, size_t step) {
    if (k == 3) {
        dw_rows_k(g, wf, 3, rows, n, out, row_step, step);
    } else if (k == 5) {
        dw_rows_k(g, wf, 5, rows, n, out, row_step, step);
    } else {
        dw_rows_k(g, wf, 7, rows, n, out, row_step, step);
    }
}

/* The plane path (stride 1, a k x k kernel, k in {3, 5, 7}, in_w + k - 1 <= DW_PW, no entry gx): bands of input
 * rows whose gh rows fit the plane, then channel by channel: its weights as floats and its gh band copied into
 * the zero-padded plane once (plane column 0 is output column x_lo = pad_left - k + 1), then every row. */
static void dw_planes(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const float *gh, const int8_t *w,
                      const int8_t *w_train, float *gx, int32_t begin, int32_t count) {
    const int32_t k = p->kernel_h, x_lo = p->pad_left - k + 1;
    const int32_t cx0 = x_lo > 0 ? x_lo : 0, cx1 = p->in_w + p->pad_left < out_w ? p->in_w + p->pad_left : out_w;
    float plane[DW_PH * DW_PW], wf[DW_KMAX * DW_KMAX];
    for (int32_t iy0 = 0, iy1; iy0 < p->in_h; iy0 = iy1) {
        /* Input rows [iy0, iy1) read gh rows [lo, iy1 - 1 + pad_top]: k - 1 more. */
        iy1 = iy0 + DW_PH - k + 1 < p->in_h ? iy0 + DW_PH - k + 1 : p->in_h;
        const int32_t lo = iy0 + p->pad_top - k + 1, hi = iy1 - 1 + p->pad_top;
        memset(plane, 0, (size_t)(hi - lo + 1) * DW_PW * sizeof plane[0]);
        const int32_t cy0 = lo > 0 ? lo : 0, cy1 = hi + 1 < out_h ? hi + 1 : out_h;
        int32_t next = 0;
        for (int32_t col = 0; col < count; ++col) {
            /* Channel c's filter: column c of w [KH][KW][C], or column j of w_train [KH][KW][k]. */
            const int32_t c = begin + col;
            const int32_t j = tte_slice_index(p->train_channels, p->train_count, c, &next);
            const int8_t *wc = j < 0 ? w + c : w_train + j;
            const size_t wstride = j < 0 ? (size_t)p->in_c : (size_t)p->train_count;
            DW_NO_UNROLL
            for (int32_t t = 0; t < k * k; ++t) {
                wf[t] = (float)wc[(size_t)t * wstride];
            }
            for (int32_t oy = cy0; oy < cy1; ++oy) {
                const float *src = gh + ((size_t)oy * out_w + cx0) * count + col;
                float *dst = plane + (size_t)(oy - lo) * DW_PW + (cx0 - x_lo);
                DW_UNROLL_COPY
                for (int32_t ox = cx0; ox < cx1; ++ox, src += count) {
                    *dst++ = *src;
                }
            }
            dw_rows(plane + (k - 1) * DW_PW, wf, k, iy1 - iy0, p->in_w, gx + (size_t)iy0 * p->in_w * count + col,
                    (size_t)p->in_w * count, (size_t)count);
        }
    }
}

/* One block of the stride-2 path: DW_RUN x DW_RUN pixels of one parity class (gx from out, row_step floats
 * between its rows, step between its pixels), from 0. The class reads kernel rows u0, u0 + 2, ... (rows of them)
 * and columns v0, v0 + 2, ... (n of them): a stride-1 correlation of the plane with that sub-kernel, so pixel
 * (r, m) adds, for sub-kernel rows j < rows and columns t < n (ascending), the code at wc + j w_row + t w_step
 * times g[(r - j) DW_PW + m - t]. All DW_RUN x DW_RUN chains stay in registers, so each weight is converted
 * once per block and shared by its DW_RUN x DW_RUN pixels. */
TTE_ALWAYS_INLINE void dw_class_block(const float *g, const int8_t *wc, size_t w_step, size_t w_row, int32_t rows,
                                      int32_t n, float *out, size_t row_step, size_t step) {
    float a[DW_RUN][DW_RUN] = {{0.0f}};
    for (const int8_t *end = wc + (size_t)rows * w_row; wc != end; g -= DW_PW, wc += w_row) {
        DW_OPAQUE(g);
        float wr[DW_SUB];
        DW_UNROLL
        for (int32_t t = 0; t < n; ++t) {
            wr[t] = (float)wc[(size_t)t * w_step];
        }
        DW_UNROLL
        for (int32_t r = 0; r < DW_RUN; ++r) {
            DW_FENCE();
            DW_UNROLL
            for (int32_t t = 0; t < n; ++t) {
                DW_UNROLL
                for (int32_t m = 0; m < DW_RUN; ++m) {
                    a[r][m] = tte_fma(wr[t], g[r * DW_PW + m - t], a[r][m]);
                }
            }
        }
    }
    DW_UNROLL
    for (int32_t r = 0; r < DW_RUN; ++r, out += row_step) {
        float *o = out;
        DW_UNROLL
        for (int32_t m = 0; m < DW_RUN; ++m, o += step) {
            *o = a[r][m];
        }
    }
}

/* A class of n_i x n_j >= DW_RUN x DW_RUN pixels in whole blocks; the last block of a row or column may overlap
 * the one before (its pixels computed again from 0: the same bits). g: the plane value of pixel (0, 0)'s tap
 * (0, 0); a class pixel row is two gx rows, a class pixel two gx pixels. */
TTE_ALWAYS_INLINE void dw_class_n(const float *g, const int8_t *wc, size_t w_step, size_t w_row, int32_t rows,
                                  int32_t n, int32_t n_i, int32_t n_j, float *out, size_t row_step, size_t step) {
    for (int32_t i = DW_RUN;; i += DW_RUN) {
        const float *gb = g;
        float *ob = out;
        for (int32_t jx = DW_RUN;; jx += DW_RUN) {
            dw_class_block(gb, wc, w_step, w_row, rows, n, ob, row_step, step);
            if (jx >= n_j) {
                break;
            }
            const int32_t by = n_j - jx < DW_RUN ? n_j - jx : DW_RUN;
            gb += by, ob += (size_t)by * step;
        }
        if (i >= n_i) {
            break;
        }
        const int32_t by = n_i - i < DW_RUN ? n_i - i : DW_RUN;
        g += by * DW_PW, out += (size_t)by * row_step;
    }
}

/* One parity class (qy, qx) of the stride-2 path: rows x taps kernel taps, n_i x n_j pixels; g: the plane value
 * of its pixel (0, 0)'s tap (0, 0); w_tap: its first kernel tap; out: its pixel (0, 0) in gx (floats from the
 * channel's). */
typedef struct dw_class_of {
    const float *g;
    size_t out;
    int32_t w_tap, rows, taps, n_i, n_j;
} dw_class_of;

/* An axis's class q: its input positions 2 i + q (count of them) read the kernel taps first, first + 2, ... (taps
 * of them), tap first + 2 t through output position i + d - t. */
static void dw_parity(int32_t q, int32_t pad, int32_t k, int32_t n_in, int32_t *first, int32_t *taps, int32_t *d,
                      int32_t *count) {
    *first = (q + pad) & 1;
    *taps = (k - *first + 1) / 2;
    *d = (q + pad - *first) / 2;
    *count = (n_in - q + 1) / 2;
}

/* The output positions [*lo, *hi] that an axis's two classes read (the plane's rows or columns; those out of
 * range are zeros in the plane). */
static void dw_parity_span(int32_t pad, int32_t k, int32_t n_in, int32_t *lo, int32_t *hi) {
    *lo = INT32_MAX, *hi = INT32_MIN;
    for (int32_t q = 0; q < 2; ++q) {
        int32_t first, taps, d, count;
        dw_parity(q, pad, k, n_in, &first, &taps, &d, &count);
        *lo = d - taps + 1 < *lo ? d - taps + 1 : *lo;
        *hi = count - 1 + d > *hi ? count - 1 + d : *hi;
    }
}

/* rows x n floats from src (count floats apart, skip more between rows) into the plane from dst: a function of its
 * own, so its loop keeps its pointers in registers. */
DW_NOINLINE
static void dw_copy_plane(float *dst, const float *src, int32_t rows, int32_t n, size_t count, size_t skip) {
    for (int32_t r = 0; r < rows; ++r, src += skip, dst += DW_PW - n) {
        for (const float *end = src + (size_t)n * count; src != end; src += count) {
            *dst++ = *src;
        }
    }
}

/* The stride-2 plane path (a k x k kernel, k in {3, 5, 7}, in_h, in_w >= 2 DW_RUN, plane rows [y_lo, y_hi] and
 * columns [x_lo, x_hi] within the plane, no entry gx): channel by channel, its gh copied into the zero-padded
 * plane once (plane (0, 0) is output position (y_lo, x_lo)), then the four parity classes (iy mod 2, ix mod 2),
 * each a stride-1 correlation of the plane with its sub-kernel. */
TTE_FMA_CLONES DW_NOINLINE static void dw_planes_s2(const tte_conv2d_params *p, int32_t out_h, int32_t out_w,
                                                    const float *gh, const int8_t *w, const int8_t *w_train, float *gx,
                                                    int32_t begin, int32_t count, int32_t y_lo, int32_t y_hi,
                                                    int32_t x_lo, int32_t x_hi) {
    const int32_t k = p->kernel_h;
    float plane[DW_PH * DW_PW];
    dw_class_of classes[4];
    for (int32_t q = 0; q < 4; ++q) {
        int32_t first_y, first_x, d_y, d_x;
        dw_class_of *c = &classes[q];
        dw_parity(q >> 1, p->pad_top, k, p->in_h, &first_y, &c->rows, &d_y, &c->n_i);
        dw_parity(q & 1, p->pad_left, k, p->in_w, &first_x, &c->taps, &d_x, &c->n_j);
        c->g = plane + (d_y - y_lo) * DW_PW + (d_x - x_lo);
        c->w_tap = first_y * k + first_x;
        c->out = ((size_t)(q >> 1) * p->in_w + (q & 1)) * count;
    }
    const int32_t cy0 = y_lo > 0 ? y_lo : 0, cy1 = y_hi + 1 < out_h ? y_hi + 1 : out_h;
    const int32_t cx0 = x_lo > 0 ? x_lo : 0, cx1 = x_hi + 1 < out_w ? x_hi + 1 : out_w;
    memset(plane, 0, (size_t)(y_hi - y_lo + 1) * DW_PW * sizeof plane[0]);
    const size_t row_step = (size_t)2 * p->in_w * count, step = (size_t)2 * count;
    const size_t skip = (size_t)(out_w - (cx1 - cx0)) * count; /* from a copied gh row's end to the next's start */
    int32_t next = 0;
    for (int32_t col = 0; col < count; ++col) {
        /* Channel c's filter: column c of w [KH][KW][C], or column j of w_train [KH][KW][k]. */
        const int32_t c = begin + col;
        const int32_t j = tte_slice_index(p->train_channels, p->train_count, c, &next);
        const int8_t *wc = j < 0 ? w + c : w_train + j;
        const size_t wstride = j < 0 ? (size_t)p->in_c : (size_t)p->train_count;
        dw_copy_plane(plane + (size_t)(cy0 - y_lo) * DW_PW + (cx0 - x_lo),
                      gh + ((size_t)cy0 * out_w + cx0) * count + col, cy1 - cy0, cx1 - cx0, (size_t)count, skip);
        DW_NO_UNROLL
        for (int32_t q = 0; q < 4; ++q) {
            const dw_class_of *cl = &classes[q];
            const float *g = cl->g;
            const int8_t *wq = wc + (size_t)cl->w_tap * wstride;
            float *out = gx + cl->out + col;
            const size_t w_step = 2 * wstride, w_row = (size_t)2 * k * wstride;
            if (cl->taps == 4) { /* 7x7 first: the layer this path is for */
                dw_class_n(g, wq, w_step, w_row, cl->rows, 4, cl->n_i, cl->n_j, out, row_step, step);
            } else if (cl->taps == 3) {
                dw_class_n(g, wq, w_step, w_row, cl->rows, 3, cl->n_i, cl->n_j, out, row_step, step);
            } else if (cl->taps == 2) {
                dw_class_n(g, wq, w_step, w_row, cl->rows, 2, cl->n_i, cl->n_j, out, row_step, step);
            } else {
                dw_class_n(g, wq, w_step, w_row, cl->rows, 1, cl->n_i, cl->n_j, out, row_step, step);
            }
        }
    }
}

/* The blocked path of every shape (valid taps only): DW_CB or DW_WIDE channels at a time in registers. */
TTE_FMA_CLONES
static void dw_general(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const float *gh, const int8_t *w,
                       const int8_t *w_train, float *gx, int32_t begin, int32_t count, int accumulate) {
    /* Whole kernel rows per weight tile: DW_CB channels while a row fits DW_TAPS taps, else one channel
     * (rows up to DW_TAPS * DW_CB taps); wider rows convert each weight where it is used. */
    if (p->kernel_w > DW_TAPS * DW_CB) {
        dw_plain(p, out_h, out_w, gh, w, w_train, gx, begin, count, accumulate);
        return;
    }
    float wf[DW_TAPS * DW_CB];
    int32_t next = 0;
    const int32_t s = p->stride_h, class_rows = (p->kernel_h + s - 1) / s; /* the most kernel rows of one class */
    for (int32_t col = 0, cb; col < count; col += cb) {
        /* DW_WIDE or DW_CB channels while they last, then DW_CB / 2, then one: no block overlaps another;
         * DW_CB rather than DW_WIDE where only the narrower tile holds the kernel or one class whole. */
        const int32_t left = count - col;
        if (p->kernel_w > DW_TAPS) {
            cb = 1;
        } else if (left >= DW_WIDE && p->kernel_w <= DW_TAPS * DW_CB / DW_WIDE &&
                   (s == 1 || DW_TAPS * DW_CB / DW_WIDE / p->kernel_w >= class_rows ||
                    DW_TAPS / p->kernel_w < class_rows)) {
            cb = DW_WIDE;
        } else {
            cb = left >= DW_CB ? DW_CB : (left >= DW_CB / 2 ? DW_CB / 2 : 1);
        }
        const int32_t rows = DW_TAPS * DW_CB / cb / p->kernel_w;
        /* One class of rows per tile (step s) where consecutive rows would take several tiles. */
        const int32_t step = s > 1 && rows < p->kernel_h && rows >= class_rows ? s : 1;
        /* Channel c's filter: column c of w [KH][KW][C], or column j of w_train [KH][KW][k]. */
        const int8_t *wc[DW_WIDE];
        size_t wstride[DW_WIDE];
        int sliced = 0; /* whether a channel of the block reads w_train */
        for (int32_t ci = 0; ci < cb; ++ci) {
            const int32_t c = begin + col + ci;
            const int32_t j = tte_slice_index(p->train_channels, p->train_count, c, &next);
            wc[ci] = j < 0 ? w + c : w_train + j;
            wstride[ci] = j < 0 ? (size_t)p->in_c : (size_t)p->train_count;
            sliced |= j >= 0;
        }
        /* Tiles: consecutive rows [r0, r1), or (step s) class r0's rows r0, r0 + s, ... below r1. */
        for (int32_t r0 = 0; r0 < (step == 1 ? p->kernel_h : s); r0 += (step == 1 ? rows : 1)) {
            const int32_t r1 = step != 1 ? p->kernel_h : (r0 + rows < p->kernel_h ? r0 + rows : p->kernel_h);
            int32_t t = 0;
            for (int32_t ky = r0; ky < r1; ky += step) {
                for (int32_t kx = 0; kx < p->kernel_w; ++kx, ++t) {
                    const size_t tap = (size_t)ky * p->kernel_w + kx;
                    if (!sliced) { /* the block's codes side by side in w: one address per tap */
                        const int8_t *src = wc[0] + tap * p->in_c;
                        for (int32_t ci = 0; ci < cb; ++ci) {
                            wf[t * cb + ci] = (float)src[ci];
                        }
                        continue;
                    }
                    for (int32_t ci = 0; ci < cb; ++ci) {
                        wf[t * cb + ci] = (float)wc[ci][tap * wstride[ci]];
                    }
                }
            }
            /* Each pixel's first tile starts it: the first of consecutive tiles, its only class tile. */
            const int zero = !accumulate && (step != 1 || r0 == 0);
            if (cb == DW_WIDE) {
                dw_block(p, out_h, out_w, gh, gx, count, col, DW_WIDE, wf, r0, r1, step, zero);
            } else if (cb == DW_CB) {
                dw_block(p, out_h, out_w, gh, gx, count, col, DW_CB, wf, r0, r1, step, zero);
            } else if (cb == DW_CB / 2) {
                dw_block(p, out_h, out_w, gh, gx, count, col, DW_CB / 2, wf, r0, r1, step, zero);
            } else {
                dw_block(p, out_h, out_w, gh, gx, count, col, 1, wf, r0, r1, step, zero);
            }
        }
    }
}

TTE_FMA_CLONES
tte_status tte_depthwise_conv2d_bwd_x_f32(const tte_conv2d_params *p, const float *gh, const int8_t *w,
                                          const int8_t *w_train, float *gx, int accumulate,
                                          const tte_channel_band *gh_band, const tte_channel_band *gx_band) {
    if (p == NULL || gh == NULL || w == NULL || gx == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w, begin, count;
    tte_status status = tte_conv2d_check_geometry(p, &out_h, &out_w);
    if (status == TTE_OK && (p->groups != p->in_c || p->out_c != p->in_c)) {
        status = TTE_ERR_SHAPE;
    }
    if (status == TTE_OK) {
        status = tte_conv2d_check_slice(p, w_train, p->in_c);
    }
    if (status == TTE_OK &&
        (!same_band(gh_band, gx_band) || tte_band_window(gh_band, p->in_c, &begin, &count) != TTE_OK)) {
        status = TTE_ERR_ARG;
    }
    if (status != TTE_OK) {
        return status;
    }
    /* The plane path where it pays (measured on the MCUNet layers, QEMU Cortex-M7 and M4: 8x8 maps): a channel's
     * plane copy and weight conversion take at least DW_MIN_MACS forward MACs (fewer: 4x4 maps, where the general
     * path's valid-taps-only blocks win); stride 2 from DW_MIN_MACS_S2. Entry values stay on the general path:
     * the padded plane's zero taps would turn an entry of -0 into +0. */
    const int32_t k = p->kernel_h;
    if (TTE_DW_PLANE && !accumulate && p->stride_h == 1 && p->stride_w == 1 && p->kernel_w == k &&
        (k == 3 || k == 5 || k == 7) && p->in_w >= DW_RUN && p->in_w + k - 1 <= DW_PW &&
        (int64_t)out_h * out_w * k * k >= DW_MIN_MACS) {
        dw_planes(p, out_h, out_w, gh, w, w_train, gx, begin, count);
        return TTE_OK;
    }
    if (TTE_DW_PLANE && !accumulate && p->stride_h == 2 && p->stride_w == 2 && p->kernel_w == k &&
        (k == 3 || k == 5 || k == 7) && p->in_h >= 2 * DW_RUN && p->in_w >= 2 * DW_RUN &&
        (int64_t)out_h * out_w * k * k >= DW_MIN_MACS_S2) {
        int32_t y_lo, y_hi, x_lo, x_hi;
        dw_parity_span(p->pad_top, k, p->in_h, &y_lo, &y_hi);
        dw_parity_span(p->pad_left, k, p->in_w, &x_lo, &x_hi);
        if (y_hi - y_lo < DW_PH && x_hi - x_lo < DW_PW) {
            dw_planes_s2(p, out_h, out_w, gh, w, w_train, gx, begin, count, y_lo, y_hi, x_lo, x_hi);
            return TTE_OK;
        }
    }
    dw_general(p, out_h, out_w, gh, w, w_train, gx, begin, count, accumulate);
    return TTE_OK;
}
