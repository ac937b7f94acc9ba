/* conv2d_bwd_x: the input gradient of a dense conv, any kernel size, stride,
 * padding and group count: the transposed convolution of gh with the weights
 * (NUMERICS.md 4), written as a gather so that each gx element starts at 0 (or
 * its entry value) and adds its terms fmaf(w, gh, gx) in ascending (o, u, v)
 * order. Blocked: DX_CB input channels of one group x DX_PB input pixels of one
 * row held in registers while o runs over a tile of weights converted to float
 * once per call ([o][u][v][DX_CB], whole filters). The pixels of a block share
 * their taps: with stride_w s, pixels ix, ix + s, ... of the row's interior
 * (every tap of their stride class inside the output) read consecutive output
 * columns through the same kernel columns; a row's kernel rows are found once,
 * the border pixels' taps once per pixel, so no tap is tested. Filters too
 * large for a tile take the plain gather. The portable kernel of every target. */
#include "kernels-impl.h"

#define DX_CB 4     /* input channels per block */
#define DX_PB 4     /* pixels per block */
#define DX_TILE 256 /* floats of the weight tile (1 KB of stack): whole filters of DX_CB channels */
#define DX_NT 3     /* the most kernel columns of a stride class that dx_slide takes (3x3 kernels, 5x5 at stride 2) */

/* The kernel taps k (ascending, step stride) through which input position i is read by an output
 * position o = (i + pad - k) / stride in [0, n_out): [*lo, *hi). */
static inline void taps_of(int32_t i, int32_t n_out, int32_t stride, int32_t pad, int32_t kernel, int32_t *lo,
                           int32_t *hi) {
    const int32_t t = i + pad;        /* k = t - o * stride */
    const int32_t o_max = t / stride; /* k >= 0 */
    const int32_t o_last = o_max < n_out - 1 ? o_max : n_out - 1;
    const int32_t first = t - o_last * stride; /* the smallest tap, o as large as allowed */
    int32_t end = t + 1;                       /* k <= t */
    end = end < kernel ? end : kernel;
    *lo = first;
    *hi = first < end ? end : first;
}

/* The window of one block: kernel rows ky_lo, ky_lo + stride_h, ... below ky_hi and columns kx_lo,
 * kx_lo + stride_w, ... below kx_hi, read through gh at g (the first tap's output pixel for the block's
 * first pixel, at the tile's first column). */
typedef struct dx_window {
    int32_t ky_lo, ky_hi, kx_lo, kx_hi;
    const float *g;
} dx_window;

/* One block: pb pixels (gh pixel i at g + i * hn, gx pixel i at x + i * x_pix) x DX_CB columns of gx, of
 * which store_c are written (the others repeat a column of the tile); wf [no][kh][kw][DX_CB]. Each
 * element's chain runs o, then its kernel rows, then its columns, ascending. */
TTE_ALWAYS_INLINE void dx_block(const tte_conv2d_params *p, size_t hn, size_t g_row, const float *wf, int32_t no,
                                const dx_window *win, float *x, size_t x_pix, int32_t pb, int32_t store_c) {
    const int32_t sh = p->stride_h, sw = p->stride_w, kw = p->kernel_w;
    const size_t w_o = (size_t)p->kernel_h * kw * DX_CB, w_row = (size_t)sh * kw * DX_CB, w_col = (size_t)sw * DX_CB;
    const int32_t nty = (win->ky_hi - win->ky_lo + sh - 1) / sh, ntx = (win->kx_hi - win->kx_lo + sw - 1) / sw;
    float a[DX_PB][DX_CB];
    for (int32_t i = 0; i < pb; ++i) {
        for (int32_t ci = 0; ci < DX_CB; ++ci) {
            a[i][ci] = x[i * x_pix + (ci < store_c ? ci : store_c - 1)];
        }
    }
    const float *w_first = wf + ((size_t)win->ky_lo * kw + win->kx_lo) * DX_CB;
    const float *g_first = win->g;
    for (int32_t o = 0; o < no; ++o, w_first += w_o, ++g_first) {
        const float *wr = w_first, *gr = g_first;
        for (int32_t ty = 0; ty < nty; ++ty, wr += w_row, gr -= g_row) {
            const float *wp = wr, *g = gr;
            for (int32_t tx = 0; tx < ntx; ++tx, wp += w_col, g -= hn) {
                for (int32_t i = 0; i < pb; ++i) {
                    const float gv = g[i * hn];
                    for (int32_t ci = 0; ci < DX_CB; ++ci) {
                        a[i][ci] = tte_fma(wp[ci], gv, a[i][ci]);
                    }
                }
            }
        }
    }
    for (int32_t i = 0; i < pb; ++i) {
        for (int32_t ci = 0; ci < store_c; ++ci) {
            x[i * x_pix + ci] = a[i][ci];
        }
    }
}

/* A block of DX_PB pixels of the row's interior whose class has nt kernel columns, stride_w sw (both
 * constants, so that every weight's offset is one): pixel i reads through column t the output column
 * i - t of the first tap's, so one row's gh values q serve every column; otherwise dx_block's chains, in
 * its order. */
TTE_ALWAYS_INLINE void dx_slide(const tte_conv2d_params *p, size_t hn, size_t g_row, const float *wf, int32_t no,
                                const dx_window *win, float *x, size_t x_pix, int32_t store_c, int32_t nt, int32_t sw) {
    const int32_t sh = p->stride_h, kw = p->kernel_w;
    const size_t w_o = (size_t)p->kernel_h * kw * DX_CB, w_row = (size_t)sh * kw * DX_CB;
    const size_t w_col = (size_t)sw * DX_CB;
    const int32_t nty = (win->ky_hi - win->ky_lo + sh - 1) / sh;
    float a[DX_PB][DX_CB];
    for (int32_t i = 0; i < DX_PB; ++i) {
        for (int32_t ci = 0; ci < DX_CB; ++ci) {
            a[i][ci] = x[i * x_pix + (ci < store_c ? ci : store_c - 1)];
        }
    }
    const float *w_first = wf + ((size_t)win->ky_lo * kw + win->kx_lo) * DX_CB;
    /* q[m] is the output column m - (nt - 1) from the first tap's: the first reads nt - 1 columns back */
    const float *g_first = win->g - (size_t)(nt - 1) * hn;
    for (int32_t o = 0; o < no; ++o, w_first += w_o, ++g_first) {
        const float *wr = w_first, *gr = g_first;
        for (int32_t ty = 0; ty < nty; ++ty, wr += w_row, gr -= g_row) {
            float q[DX_PB + DX_NT - 1];
            const float *gq = gr; /* one step of hn per value: one register for every offset */
            for (int32_t m = 0; m < DX_PB + nt - 1; ++m, gq += hn) {
                q[m] = *gq;
            }
            for (int32_t t = 0; t < nt; ++t) {
                const float *wp = wr + t * w_col;
                for (int32_t ci = 0; ci < DX_CB; ++ci) {
                    const float wv = wp[ci];
                    for (int32_t i = 0; i < DX_PB; ++i) {
                        a[i][ci] = tte_fma(wv, q[i - t + nt - 1], a[i][ci]);
                    }
                }
            }
        }
    }
    for (int32_t i = 0; i < DX_PB; ++i) {
        for (int32_t ci = 0; ci < store_c; ++ci) {
            x[i * x_pix + ci] = a[i][ci];
        }
    }
}

/* The blocks of every input row for one channel block and weight tile (output channels o0 .. o0 + no - 1
 * of gh's columns, gx columns col .. col + store_c - 1). */
TTE_FMA_CLONES
static void dx_tile(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const float *gh, int32_t hn, int32_t o0,
                    float *gx, int32_t xn, int32_t col, int32_t store_c, const float *wf, int32_t no) {
    const int32_t sh = p->stride_h, sw = p->stride_w, kw = p->kernel_w;
    const size_t g_row = (size_t)out_w * hn, x_pix = (size_t)sw * xn;
    /* The row's interior [ix_a, ix_b): t = ix + pad_left reads every tap of its class, t >= kw - 1 and
     * t / sw <= out_w - 1. */
    int32_t ix_a = kw - 1 - p->pad_left, ix_b = out_w * sw - p->pad_left;
    ix_a = ix_a > 0 ? ix_a : 0;
    ix_b = ix_b < p->in_w ? ix_b : p->in_w;
    for (int32_t iy = 0; iy < p->in_h; ++iy) {
        dx_window win;
        taps_of(iy, out_h, sh, p->pad_top, p->kernel_h, &win.ky_lo, &win.ky_hi);
        if (win.ky_lo >= win.ky_hi) {
            continue;
        }
        const float *g_row0 = gh + (size_t)((iy + p->pad_top - win.ky_lo) / sh) * g_row + o0;
        float *x_row = gx + (size_t)iy * p->in_w * xn + col;
        for (int32_t ix = 0; ix < p->in_w; ++ix) {
            if (ix >= ix_a && ix < ix_b) {
                continue; /* the interior's blocks below */
            }
            taps_of(ix, out_w, sw, p->pad_left, kw, &win.kx_lo, &win.kx_hi);
            if (win.kx_lo < win.kx_hi) {
                win.g = g_row0 + (size_t)((ix + p->pad_left - win.kx_lo) / sw) * hn;
                dx_block(p, (size_t)hn, g_row, wf, no, &win, x_row + (size_t)ix * xn, x_pix, 1, store_c);
            }
        }
        /* Each stride class of the interior: pixels s0, s0 + sw, ... read columns kx = (s0 + pad_left) mod
         * sw, + sw, ... below kw, through consecutive output columns. */
        for (int32_t s0 = ix_a; s0 < ix_a + sw && s0 < ix_b; ++s0) {
            win.kx_lo = (s0 + p->pad_left) % sw;
            win.kx_hi = kw;
            int32_t ix = s0;
            const int32_t nt = (kw - win.kx_lo + sw - 1) / sw;
            for (; ix + (DX_PB - 1) * sw < ix_b; ix += DX_PB * sw) {
                win.g = g_row0 + (size_t)((ix + p->pad_left - win.kx_lo) / sw) * hn;
                float *x_at = x_row + (size_t)ix * xn;
                if (nt == 3 && sw == 1) { /* 3x3 and 3-wide kernels, stride 1 */
                    dx_slide(p, (size_t)hn, g_row, wf, no, &win, x_at, x_pix, store_c, 3, 1);
                } else if (nt == 2 && sw == 2) { /* 3x3 stride 2, even columns */
                    dx_slide(p, (size_t)hn, g_row, wf, no, &win, x_at, x_pix, store_c, 2, 2);
                } else if (nt == 1) { /* the odd column of 3x3 stride 2, 1xN, ... */
                    dx_slide(p, (size_t)hn, g_row, wf, no, &win, x_at, x_pix, store_c, 1, 1);
                } else {
                    dx_block(p, (size_t)hn, g_row, wf, no, &win, x_at, x_pix, DX_PB, store_c);
                }
            }
            if (ix + sw < ix_b) {
                win.g = g_row0 + (size_t)((ix + p->pad_left - win.kx_lo) / sw) * hn;
                dx_block(p, (size_t)hn, g_row, wf, no, &win, x_row + (size_t)ix * xn, x_pix, 2, store_c);
                ix += 2 * sw;
            }
            if (ix < ix_b) {
                win.g = g_row0 + (size_t)((ix + p->pad_left - win.kx_lo) / sw) * hn;
                dx_block(p, (size_t)hn, g_row, wf, no, &win, x_row + (size_t)ix * xn, x_pix, 1, store_c);
            }
        }
    }
}

/* The plain gather, each weight converted where it is used: filters larger than a weight tile. */
TTE_FMA_CLONES
static void dx_plain(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const float *gh, int32_t hb, int32_t hn,
                     const int8_t *w, const int8_t *w_train, float *gx, int32_t xb, int32_t xn) {
    const int32_t group_in = p->in_c / p->groups;
    const int32_t group_out = p->out_c / p->groups;
    for (int32_t iy = 0; iy < p->in_h; ++iy) {
        int32_t ky_lo, ky_hi;
        taps_of(iy, out_h, p->stride_h, p->pad_top, p->kernel_h, &ky_lo, &ky_hi);
        for (int32_t ix = 0; ix < p->in_w; ++ix) {
            int32_t kx_lo, kx_hi;
            taps_of(ix, out_w, p->stride_w, p->pad_left, p->kernel_w, &kx_lo, &kx_hi);
            int32_t next = 0;
            for (int32_t jl = 0; jl < xn; ++jl) {
                const int32_t c = xb + jl;
                const int32_t group = c / group_in;
                const int32_t ci = c - group * group_in; /* c's index inside its group: the weight's last axis */
                const int32_t j = tte_slice_index(p->train_channels, p->train_count, ci, &next);
                /* o runs over c's group, restricted to the output channels gh holds. */
                const int32_t o_lo = group * group_out > hb ? group * group_out : hb;
                const int32_t o_hi = (group + 1) * group_out < hb + hn ? (group + 1) * group_out : hb + hn;
                float *out = &gx[((size_t)iy * p->in_w + ix) * xn + jl];
                float acc = *out;
                for (int32_t o = o_lo; o < o_hi; ++o) {
                    for (int32_t ky = ky_lo; ky < ky_hi; ky += p->stride_h) {
                        const int32_t oy = (iy + p->pad_top - ky) / p->stride_h;
                        for (int32_t kx = kx_lo; kx < kx_hi; kx += p->stride_w) {
                            const size_t tap = ((size_t)o * p->kernel_h + ky) * p->kernel_w + kx;
                            const int32_t wv = j < 0 ? w[tap * group_in + ci] : w_train[tap * p->train_count + j];
                            const size_t at = ((size_t)oy * out_w + (ix + p->pad_left - kx) / p->stride_w) * hn;
                            acc = tte_fma((float)wv, gh[at + (size_t)(o - hb)], acc);
                        }
                    }
                }
                *out = acc;
            }
        }
    }
}

tte_status tte_conv2d_bwd_x_f32(const tte_conv2d_params *p, const float *gh, const int8_t *w, const int8_t *w_train,
                                float *gx, int accumulate, const tte_channel_band *gh_band,
                                const tte_channel_band *gx_band) {
    if (p == NULL || gh == NULL || w == NULL || gx == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w, hb, hn, xb, xn;
    tte_status status = tte_conv2d_check_geometry(p, &out_h, &out_w);
    if (status == TTE_OK && p->train_count != 0 && p->groups != 1) {
        status = TTE_ERR_ARG; /* only a groups-1 dense conv trains a slice of input channels */
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
    if (!accumulate) {
        /* Every chain then adds onto its element's 0: the same bits as starting from 0, and the elements
         * no tap or output channel reaches keep it. */
        memset(gx, 0, (size_t)p->in_h * p->in_w * xn * sizeof *gx);
    }
    const int32_t taps = p->kernel_h * p->kernel_w;
    if (taps * DX_CB > DX_TILE) {
        dx_plain(p, out_h, out_w, gh, hb, hn, w, w_train, gx, xb, xn);
        return TTE_OK;
    }
    const int32_t group_in = p->in_c / p->groups, group_out = p->out_c / p->groups;
    const int32_t tile_o = DX_TILE / (taps * DX_CB);
    float wf[DX_TILE];
    int32_t next = 0;
    for (int32_t col = 0, nc; col < xn; col += nc) {
        const int32_t c0 = xb + col, group = c0 / group_in;
        /* The block's channels stay inside c0's group, which fixes its output channels. */
        const int32_t group_left = (group + 1) * group_in - c0;
        nc = xn - col < DX_CB ? xn - col : DX_CB;
        nc = nc < group_left ? nc : group_left;
        const int32_t o_lo = group * group_out > hb ? group * group_out : hb;
        const int32_t o_hi = (group + 1) * group_out < hb + hn ? (group + 1) * group_out : hb + hn;
        /* Each column's filter: column ci of w [O][KH][KW][group_in], or column j of w_train [O][KH][KW][k];
         * the block's missing columns repeat its last one. */
        const int8_t *src[DX_CB];
        size_t step[DX_CB];
        for (int32_t b = 0; b < DX_CB; ++b) {
            if (b < nc) {
                const int32_t ci = c0 + b - group * group_in;
                const int32_t j = tte_slice_index(p->train_channels, p->train_count, ci, &next);
                src[b] = j < 0 ? w + ci : w_train + j;
                step[b] = j < 0 ? (size_t)group_in : (size_t)p->train_count;
            } else {
                src[b] = src[nc - 1];
                step[b] = step[nc - 1];
            }
        }
        for (int32_t o0 = o_lo; o0 < o_hi; o0 += tile_o) {
            const int32_t no = o_hi - o0 < tile_o ? o_hi - o0 : tile_o;
            for (int32_t t = 0; t < no * taps; ++t) {
                const size_t at = (size_t)o0 * taps + (size_t)t; /* (o, u, v) of the filters */
                for (int32_t b = 0; b < DX_CB; ++b) {
                    wf[t * DX_CB + b] = (float)src[b][at * step[b]];
                }
            }
            dx_tile(p, out_h, out_w, gh, hn, o0 - hb, gx, xn, col, nc, wf, no);
        }
    }
    return TTE_OK;
}
