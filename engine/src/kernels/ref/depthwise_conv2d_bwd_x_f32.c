/* depthwise conv2d_bwd_x: the input gradient of a depthwise conv, channel by
 * channel (NUMERICS.md 4): each gx element starts at 0 (or its entry value)
 * and adds fmaf(w[u][v][c], gh[oy][ox][c], gx) over its taps in ascending
 * (u, v) order. Channel-separable, so a band of gh gives the same band of gx.
 * Blocked: DW_CB channels at a time, their weights converted to float once per
 * call (in tiles of DW_TAPS taps), each pixel's valid taps found once (no
 * per-tap bounds tests). The portable kernel of every target. */
#include "kernels-impl.h"

#define DW_CB 8    /* channels per block */
#define DW_TAPS 32 /* taps per weight tile: wf holds DW_TAPS x DW_CB floats (1 KB of stack) */

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

/* The cb (1 or DW_CB) channels from column `col` of gx and gh, taps [t0, t0 + nt) of the kernel; wf
 * [nt][cb]. zero: start at 0 instead of gx's value. Channels from `keep` on are written back (those
 * before it belong to the block before, which this one overlaps). */
TTE_ALWAYS_INLINE void dw_block(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const float *gh, float *gx,
                                int32_t count, int32_t col, int32_t cb, int32_t keep, const float *wf, int32_t t0,
                                int32_t nt, int zero) {
    const int32_t s = p->stride, kw = p->kernel_w;
    for (int32_t iy = 0; iy < p->in_h; ++iy) {
        int32_t ky_lo, ky_hi;
        taps_of(iy, out_h, s, p->padding, p->kernel_h, &ky_lo, &ky_hi);
        for (int32_t ix = 0; ix < p->in_w; ++ix) {
            int32_t kx_lo, kx_hi;
            taps_of(ix, out_w, s, p->padding, kw, &kx_lo, &kx_hi);
            float *out = gx + ((size_t)iy * p->in_w + ix) * count + col;
            float a[DW_CB];
            for (int32_t ci = 0; ci < cb; ++ci) {
                a[ci] = zero ? 0.0f : out[ci];
            }
            for (int32_t ky = ky_lo; ky < ky_hi; ky += s) {
                /* This row's taps inside the tile. */
                const int32_t row = ky * kw - t0;
                int32_t lo = kx_lo, hi = kx_hi;
                if (row + lo < 0) {
                    lo += (-(row + lo) + s - 1) / s * s;
                }
                if (row + hi > nt) {
                    hi = nt - row;
                }
                if (lo >= hi) {
                    continue;
                }
                const int32_t oy = (iy + p->padding - ky) / s;
                const float *g = gh + ((size_t)oy * out_w + (ix + p->padding - lo) / s) * count + col;
                const float *wp = wf + (size_t)(row + lo) * cb;
                for (int32_t kx = lo; kx < hi; kx += s, g -= count, wp += (size_t)s * cb) {
                    for (int32_t ci = 0; ci < cb; ++ci) {
                        a[ci] = tte_fma(wp[ci], g[ci], a[ci]);
                    }
                }
            }
            for (int32_t ci = keep; ci < cb; ++ci) {
                out[ci] = a[ci];
            }
        }
    }
}

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
    const int32_t taps = p->kernel_h * p->kernel_w;
    const int32_t cb = tte_block_size(count, DW_CB);
    float wf[DW_TAPS * DW_CB];
    for (int32_t done = 0; done < count;) {
        const int32_t col = tte_block_start(done, count, cb);
        /* Channel c's filter: column c of w [KH][KW][C], or column j of w_train [KH][KW][k]. */
        const int8_t *wc[DW_CB];
        size_t wstride[DW_CB];
        int32_t next = 0;
        for (int32_t ci = 0; ci < cb; ++ci) {
            const int32_t c = begin + col + ci;
            const int32_t j = tte_slice_index(p->train_channels, p->train_count, c, &next);
            wc[ci] = j < 0 ? w + c : w_train + j;
            wstride[ci] = j < 0 ? (size_t)p->in_c : (size_t)p->train_count;
        }
        for (int32_t t0 = 0; t0 < taps; t0 += DW_TAPS) {
            const int32_t nt = taps - t0 < DW_TAPS ? taps - t0 : DW_TAPS;
            for (int32_t t = 0; t < nt; ++t) {
                for (int32_t ci = 0; ci < cb; ++ci) {
                    wf[t * cb + ci] = (float)wc[ci][(size_t)(t0 + t) * wstride[ci]];
                }
            }
            const int zero = !accumulate && t0 == 0;
            if (cb == DW_CB) {
                dw_block(p, out_h, out_w, gh, gx, count, col, DW_CB, done - col, wf, t0, nt, zero);
            } else {
                dw_block(p, out_h, out_w, gh, gx, count, col, 1, 0, wf, t0, nt, zero);
            }
        }
        done = col + cb;
    }
    return TTE_OK;
}
