/* depthwise conv2d_bwd_x: the input gradient of a depthwise conv, channel by
 * channel (NUMERICS.md 4): each gx element starts at 0 (or its entry value)
 * and adds fmaf(w[u][v][c], gh[oy][ox][c], gx) over its taps in ascending
 * (u, v) order. Channel-separable, so a band of gh gives the same band of gx.
 * Blocked: DW_CB channels at a time (then DW_CB / 2, then 1), their weights converted to float once per
 * call (in tiles of whole kernel rows), each pixel's valid taps found once (no
 * per-tap bounds tests). With stride_h s > 1 an input row reads only the kernel rows of one class
 * ky = c (mod s); where the kernel would take several tiles but one class fits a tile, each tile holds
 * one class and visits only the input rows that read it, so each pixel is visited once with all its
 * taps (7x7 stride 2: four rows per class). The portable kernel of every target. */
#include "kernels-impl.h"

#define DW_CB 8    /* channels per block */
#define DW_TAPS 32 /* taps per weight tile: wf holds DW_TAPS x DW_CB floats (1 KB of stack) */
#define DW_WIDE 16 /* channels per block where a kernel row fits DW_TAPS / 2 taps (rows then take more tiles) */

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
    /* Whole kernel rows per weight tile: DW_CB channels while a row fits DW_TAPS taps, else one channel
     * (rows up to DW_TAPS * DW_CB taps); wider rows convert each weight where it is used. */
    if (p->kernel_w > DW_TAPS * DW_CB) {
        dw_plain(p, out_h, out_w, gh, w, w_train, gx, begin, count, accumulate);
        return TTE_OK;
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
    return TTE_OK;
}
