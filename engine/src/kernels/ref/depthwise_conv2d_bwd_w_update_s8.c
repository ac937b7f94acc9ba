/* depthwise conv2d_bwd_w_update: the fused weight gradient and QAS update of
 * a depthwise conv's trained channels (NUMERICS.md 4-5), no weight-gradient
 * buffer. With a gh band, only the trained channels inside it update. Each
 * tap's gradient is one chain (tte_weight_grad_block's order); the taps of a
 * kernel row are summed side by side, by classes kx mod stride_w, over a
 * window of registers: on small layers from planes of the channel's input
 * codes converted once with zero padding, several kernel rows at a time
 * (channel_grads_padded), else from x and gh directly (channel_grads). Each
 * weight's step is then written by the exact fast passes of the pointwise
 * kernel (one per rounding mode and clamp). The portable kernel of every
 * target. */
#include "kernels-impl.h"

/* The most taps of one side-by-side sum (dw_class_grads), and of a channel's gradients on the stack. */
#define DW_ROW_MAX 7
#define DW_TAPS_MAX (DW_ROW_MAX * DW_ROW_MAX)

/* One step of dw_class_grads, r steps after a multiple of T from its first: `fresh` (the gh value of the
 * step's output column, or a zero) enters window slot r, and every tap t adds win[(r - t) mod T], the gh
 * value of output column u - t, times the input code xf. */
TTE_ALWAYS_INLINE void dw_step(float *win, float *acc, int32_t T, int32_t r, float fresh, float xf) {
    win[r] = fresh;
#pragma GCC unroll 7
    for (int32_t t = 0; t < T; ++t) {
        acc[t] = tte_fma(win[(r - t + T) % T], xf, acc[t]);
    }
}

/* The gradients g[t] of the T taps kx = q + s*t of kernel row ky of trained channel j (gh column col),
 * s = stride_w: the same chains as tte_weight_grad_block. Tap t at output column ox reads input column
 * s*u + q - pad_left with u = ox + t, so the taps of one class q share the input codes x'[u] of every
 * s-th column: walking u ascending walks each tap's ox = u - t ascending too, and every tap still adds
 * its positions in row-major order. Each input code is converted once and each gh value loaded once for
 * the T taps that read them: the window win holds the gh values of output columns u .. u - T + 1, its
 * slots named by the step's number mod T (the loop takes T steps at a time, so every slot index is a
 * constant and the window stays in registers). Where a tap's output column lies outside [0, out_w) the
 * window holds +0: the chain adds fmaf(+0, x, acc) = acc exactly (x finite; acc is never -0, since every
 * chain starts at +0 and a sum of products of floats and integer codes rounds to zero only when it is
 * exactly zero), so these padded steps change no bit and need no test. */
TTE_ALWAYS_INLINE void dw_class_grads(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const int8_t *x_saved,
                                      int32_t j, const float *gh, int32_t count, int32_t col, int32_t ky, int32_t q,
                                      int32_t T, float *g) {
    float acc[DW_ROW_MAX], win[DW_ROW_MAX];
#pragma GCC unroll 7
    for (int32_t t = 0; t < T; ++t) {
        acc[t] = 0.0f;
    }
    int32_t oy_lo, oy_hi;
    tte_tap_range(p->in_h, out_h, p->stride_h, p->pad_top, ky, &oy_lo, &oy_hi);
    const int32_t k = p->train_count, s = p->stride_w, x_zero = p->x_zero;
    /* Steps u in [u_lo, u_hi): the input column s*u + q - pad lies in the row, and some tap's output
     * column u - t in [0, out_w) (a step before column 0 or after the last adds only zeros). Steps
     * u < n_load bring in gh column u, the later ones a zero. */
    const int32_t first = p->pad_left - q;
    int32_t u_lo = first <= 0 ? 0 : (first + s - 1) / s;
    int32_t u_hi = (p->in_w + first + s - 1) / s;
    u_hi = u_hi < out_w + T - 1 ? u_hi : out_w + T - 1;
    u_lo = u_lo < u_hi ? u_lo : u_hi;
    const int32_t n_load = u_hi < out_w ? u_hi : out_w;
    const ptrdiff_t x_step = (ptrdiff_t)s * k;
    for (int32_t oy = oy_lo; oy < oy_hi; ++oy) {
        const int8_t *xr = x_saved + (size_t)(oy * p->stride_h + ky - p->pad_top) * p->in_w * k + j;
        const float *gr = gh + (size_t)oy * out_w * count + col;
        /* Before the first step, slot T - m holds gh column u_lo - m (m = 1 .. T - 1). */
#pragma GCC unroll 7
        for (int32_t m = 1; m < T; ++m) {
            const int32_t ox = u_lo - m;
            win[T - m] = ox >= 0 && ox < out_w ? gr[(size_t)ox * count] : 0.0f;
        }
        int32_t u = u_lo;
        const int8_t *xp = xr + (ptrdiff_t)(s * u_lo - first) * k;
        const float *gp = gr + (size_t)u_lo * count;
        for (; u + T <= n_load; u += T) {
#pragma GCC unroll 7
            for (int32_t r = 0; r < T; ++r, xp += x_step, gp += count) {
                dw_step(win, acc, T, r, *gp, (float)((int32_t)*xp - x_zero));
            }
        }
        for (; u < u_hi; u += T) {
#pragma GCC unroll 7
            for (int32_t r = 0; r < T; ++r) {
                if (u + r < u_hi) {
                    const float xf = (float)((int32_t)xr[(ptrdiff_t)(s * (u + r) - first) * k] - x_zero);
                    dw_step(win, acc, T, r, u + r < n_load ? gr[(size_t)(u + r) * count] : 0.0f, xf);
                }
            }
        }
    }
#pragma GCC unroll 7
    for (int32_t t = 0; t < T; ++t) {
        g[t] = acc[t];
    }
}

/* One function per class size, so that each gets the registers to itself. */
#if defined(__GNUC__)
#define DW_NOINLINE __attribute__((noinline))
#else
#define DW_NOINLINE
#endif
#define DW_CLASS(T)                                                                                                    \
    TTE_FMA_CLONES DW_NOINLINE static void dw_class_grads_##T(                                                         \
        const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const int8_t *x_saved, int32_t j, const float *gh,   \
        int32_t count, int32_t col, int32_t ky, int32_t q, float *g) {                                                 \
        dw_class_grads(p, out_h, out_w, x_saved, j, gh, count, col, ky, q, T, g);                                      \
    }
DW_CLASS(2)
DW_CLASS(3)
DW_CLASS(4)
DW_CLASS(5)
DW_CLASS(7)

/* The gradients g [KH][KW] of every tap of trained channel j (gh column col): each kernel row's taps by
 * classes kx mod stride_w (dw_class_grads) where a class has 2 to 5 or 7 taps, else tap by tap. */
TTE_FMA_CLONES
static void channel_grads(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const int8_t *x_saved, int32_t j,
                          const float *gh, int32_t count, int32_t col, float *g) {
    const int32_t K = p->kernel_w, s = p->stride_w;
    for (int32_t ky = 0; ky < p->kernel_h; ++ky) {
        float *row = g + (size_t)ky * K;
        for (int32_t q = 0; q < s && q < K; ++q) {
            const int32_t T = (K - q + s - 1) / s;
            float c[DW_ROW_MAX];
            if (T == 2) {
                dw_class_grads_2(p, out_h, out_w, x_saved, j, gh, count, col, ky, q, c);
            } else if (T == 3) {
                dw_class_grads_3(p, out_h, out_w, x_saved, j, gh, count, col, ky, q, c);
            } else if (T == 4) {
                dw_class_grads_4(p, out_h, out_w, x_saved, j, gh, count, col, ky, q, c);
            } else if (T == 5) {
                dw_class_grads_5(p, out_h, out_w, x_saved, j, gh, count, col, ky, q, c);
            } else if (T == 7) {
                dw_class_grads_7(p, out_h, out_w, x_saved, j, gh, count, col, ky, q, c);
            } else {
                for (int32_t t = 0; t < T; ++t) {
                    tte_weight_grad_block(p, out_h, out_w, x_saved, j, 1, gh, count, col, 1, ky, q + s * t, &c[t]);
                }
            }
            for (int32_t t = 0; t < T; ++t) {
                row[q + s * t] = c[t];
            }
        }
    }
}

/* The padded path, for layers whose converted input fits DW_PAD_FLOATS floats (the small late layers that
 * sparse updates train): each input code of the channel is converted once for all its taps into xb, one
 * plane per class q = kx mod stride_w, plane row oy*stride_h + ky holding the codes that kernel row ky
 * reads at output row oy, plane column ox + t the code that tap kx = q + s*t reads at output column ox,
 * +0 where that is padding. Every tap then reads a whole plane row for every output row, with no bounds:
 * where it reads padding it adds fmaf(gh, +0, acc) = acc exactly (gh finite; acc never -0, see
 * dw_class_grads), so the chains keep their bits. */
#define DW_PAD_FLOATS 256

/* The planes of channel j into xb: `rows` rows of `width` columns per class. Only the codes are written:
 * the padding, the same for every channel, is zeroed once before the first (sweep). */
TTE_ALWAYS_INLINE void dw_pad_planes(const tte_conv2d_params *p, const int8_t *x_saved, int32_t j, int32_t classes,
                                     int32_t rows, int32_t width, float *xb) {
    const int32_t k = p->train_count, s = p->stride_w, in_w = p->in_w, x_zero = p->x_zero;
    const size_t x_step = (size_t)s * k;
    for (int32_t q = 0; q < classes; ++q, xb += (size_t)rows * width) {
        /* Columns m in [m_lo, m_hi) read input column s*m + q - pad_left inside the row; rows r in
         * [pad_top, pad_top + in_h) input row r - pad_top. */
        const int32_t first = p->pad_left - q;
        int32_t m_lo = first <= 0 ? 0 : (first + s - 1) / s;
        int32_t m_hi = (in_w + first + s - 1) / s;
        m_hi = m_hi < width ? m_hi : width;
        m_lo = m_lo < m_hi ? m_lo : m_hi;
        const int32_t r_hi = p->pad_top + p->in_h < rows ? p->pad_top + p->in_h : rows;
        for (int32_t r = p->pad_top; r < r_hi; ++r) {
            const int8_t *xp = x_saved + ((size_t)(r - p->pad_top) * in_w + (size_t)(s * m_lo - first)) * k + j;
            float *xr = xb + (size_t)r * width;
            for (int32_t m = m_lo; m < m_hi; ++m, xp += x_step) {
                xr[m] = (float)((int32_t)*xp - x_zero);
            }
        }
    }
}

/* The gradients g[rho * g_row + t * g_tap] of the T taps of class q (kx = q + s*t) of kernel rows
 * ky0 + rho (rho < R) from plane xq (width columns): for each output row, a gh value is loaded once for all
 * R*T taps, and each plane row's codes enter a window of T registers one at a time, slots named by the
 * step's number mod T (as in dw_class_grads; the loop takes T steps at a time, and the last, partial group
 * tests each step). */
TTE_ALWAYS_INLINE void dw_pad_rows(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const float *xq,
                                   int32_t width, const float *gh, int32_t count, int32_t col, int32_t ky0, int32_t T,
                                   int32_t R, float *g, int32_t g_row, int32_t g_tap) {
    float acc[DW_ROW_MAX * 3], win[DW_ROW_MAX * 3];
#pragma GCC unroll 21
    for (int32_t i = 0; i < R * T; ++i) {
        acc[i] = 0.0f;
    }
    const int32_t sh = p->stride_h;
    for (int32_t oy = 0; oy < out_h; ++oy) {
        const float *gp = gh + (size_t)oy * out_w * count + col;
        const float *xr = xq + (size_t)(oy * sh + ky0) * width;
#pragma GCC unroll 3
        for (int32_t rho = 0; rho < R; ++rho) {
#pragma GCC unroll 7
            for (int32_t m = 0; m + 1 < T; ++m) {
                win[rho * T + m] = xr[(size_t)rho * width + m];
            }
        }
        int32_t i = 0;
        for (; i + T <= out_w; i += T, gp += (size_t)T * count, xr += T) {
#pragma GCC unroll 7
            for (int32_t r = 0; r < T; ++r) {
                const float gv = gp[(size_t)r * count];
#pragma GCC unroll 3
                for (int32_t rho = 0; rho < R; ++rho) {
                    win[rho * T + (r + T - 1) % T] = xr[(size_t)rho * width + r + T - 1];
#pragma GCC unroll 7
                    for (int32_t t = 0; t < T; ++t) {
                        acc[rho * T + t] = tte_fma(gv, win[rho * T + (r + t) % T], acc[rho * T + t]);
                    }
                }
            }
        }
        if (i < out_w) {
#pragma GCC unroll 7
            for (int32_t r = 0; r + 1 < T; ++r) {
                if (i + r < out_w) {
                    const float gv = gp[(size_t)r * count];
#pragma GCC unroll 3
                    for (int32_t rho = 0; rho < R; ++rho) {
                        win[rho * T + (r + T - 1) % T] = xr[(size_t)rho * width + r + T - 1];
#pragma GCC unroll 7
                        for (int32_t t = 0; t < T; ++t) {
                            acc[rho * T + t] = tte_fma(gv, win[rho * T + (r + t) % T], acc[rho * T + t]);
                        }
                    }
                }
            }
        }
    }
#pragma GCC unroll 3
    for (int32_t rho = 0; rho < R; ++rho) {
#pragma GCC unroll 7
        for (int32_t t = 0; t < T; ++t) {
            g[(size_t)rho * g_row + (size_t)t * g_tap] = acc[rho * T + t];
        }
    }
}

#define DW_PAD(T, R)                                                                                                   \
    TTE_FMA_CLONES DW_NOINLINE static void dw_pad_rows_##T##_##R(                                                      \
        const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const float *xq, int32_t width, const float *gh,     \
        int32_t count, int32_t col, int32_t ky0, float *g, int32_t g_row, int32_t g_tap) {                             \
        dw_pad_rows(p, out_h, out_w, xq, width, gh, count, col, ky0, T, R, g, g_row, g_tap);                           \
    }
DW_PAD(1, 1)
DW_PAD(2, 1)
DW_PAD(3, 1)
DW_PAD(4, 1)
DW_PAD(5, 1)
DW_PAD(6, 1)
DW_PAD(7, 1)
DW_PAD(2, 3)
DW_PAD(3, 3)
DW_PAD(4, 2)
DW_PAD(5, 2)

/* The padded path's plane size for p (0 where it does not apply: a class of more than DW_ROW_MAX taps, or
 * planes over DW_PAD_FLOATS floats); *rows and *width its plane geometry. */
static int32_t dw_pad_size(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, int32_t *rows, int32_t *width) {
    const int32_t s = p->stride_w, K = p->kernel_w, taps = (K + s - 1) / s;
    if (taps > DW_ROW_MAX) {
        return 0;
    }
    const int64_t h = (int64_t)(out_h - 1) * p->stride_h + p->kernel_h, w = (int64_t)out_w - 1 + taps;
    const int64_t size = (int64_t)(s < K ? s : K) * h * w;
    if (size > DW_PAD_FLOATS) {
        return 0;
    }
    *rows = (int32_t)h;
    *width = (int32_t)w;
    return (int32_t)size;
}

/* channel_grads by the padded path: g [KH][KW] of trained channel j, xb the planes' room. */
TTE_FMA_CLONES
static void channel_grads_padded(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const int8_t *x_saved,
                                 int32_t j, const float *gh, int32_t count, int32_t col, int32_t rows, int32_t width,
                                 float *xb, float *g) {
    const int32_t K = p->kernel_w, KH = p->kernel_h, s = p->stride_w, classes = s < K ? s : K;
    dw_pad_planes(p, x_saved, j, classes, rows, width, xb);
    for (int32_t q = 0; q < classes; ++q) {
        const int32_t T = (K - q + s - 1) / s;
        const float *xq = xb + (size_t)q * rows * width;
        for (int32_t ky = 0; ky < KH;) {
            float *gq = g + (size_t)ky * K + q;
            int32_t R = 1;
            if (T == 3 && ky + 3 <= KH) {
                dw_pad_rows_3_3(p, out_h, out_w, xq, width, gh, count, col, ky, gq, K, s);
                R = 3;
            } else if (T == 2 && ky + 3 <= KH) {
                dw_pad_rows_2_3(p, out_h, out_w, xq, width, gh, count, col, ky, gq, K, s);
                R = 3;
            } else if (T == 4 && ky + 2 <= KH) {
                dw_pad_rows_4_2(p, out_h, out_w, xq, width, gh, count, col, ky, gq, K, s);
                R = 2;
            } else if (T == 5 && ky + 2 <= KH) {
                dw_pad_rows_5_2(p, out_h, out_w, xq, width, gh, count, col, ky, gq, K, s);
                R = 2;
            } else if (T == 1) {
                dw_pad_rows_1_1(p, out_h, out_w, xq, width, gh, count, col, ky, gq, K, s);
            } else if (T == 2) {
                dw_pad_rows_2_1(p, out_h, out_w, xq, width, gh, count, col, ky, gq, K, s);
            } else if (T == 3) {
                dw_pad_rows_3_1(p, out_h, out_w, xq, width, gh, count, col, ky, gq, K, s);
            } else if (T == 4) {
                dw_pad_rows_4_1(p, out_h, out_w, xq, width, gh, count, col, ky, gq, K, s);
            } else if (T == 5) {
                dw_pad_rows_5_1(p, out_h, out_w, xq, width, gh, count, col, ky, gq, K, s);
            } else if (T == 6) {
                dw_pad_rows_6_1(p, out_h, out_w, xq, width, gh, count, col, ky, gq, K, s);
            } else {
                dw_pad_rows_7_1(p, out_h, out_w, xq, width, gh, count, col, ky, gq, K, s);
            }
            ky += R;
        }
    }
}

/* Writes the steps of one live channel's taps from their gradients g (tte_qas_value with the channel's
 * inv), w the channel's first code in w_train (taps k apart), by the rounding mode (`stochastic`) and
 * clamp (sweep); `index` the IR index of the channel's first element, which with the tap names each
 * element's rounding noise. */
TTE_ALWAYS_INLINE void apply_channel(const tte_train_ctx *c, const tte_update_params *uc, float inv, const float *g,
                                     int32_t taps, int8_t *w, size_t k, uint32_t index, int stochastic, int clamp) {
    const float lr = c->lr[uc->lr_group];
    for (int32_t t = 0; t < taps; ++t, w += k) {
        const float value = (-(lr * g[t])) * inv; /* tte_qas_value */
        const float v = clamp ? tte_qas_weight_clamp(value) : value;
        if (stochastic) {
            *w = tte_qas_weight_stochastic(*w, v, tte_round_uniform(c->seed, c->step, uc->tensor_id, index + t));
        } else {
            *w = tte_qas_weight_nearest(*w, v);
        }
    }
}

/* One pass over the trained channels inside the band. apply 0: checks every live element's step value,
 * failing the step at the first non-finite one (returns 0); apply 1: writes every element's step (returns
 * 1), rounded by `stochastic` and with the step value clamped to +-512 where `clamp` (leaving it out only
 * where tte_update_bound shows every step value small), as the pointwise kernel's passes. apply, stochastic
 * and clamp are constants at each call, so that no weight tests them. Kernels of more than DW_TAPS_MAX taps
 * take the taps one chain at a time. */
TTE_ALWAYS_INLINE int sweep(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                            const int8_t *x_saved, const float *gh, const float *inv_w, int8_t *w_train, int32_t out_h,
                            int32_t out_w, int32_t begin, int32_t count, int apply, int stochastic, int clamp) {
    const int32_t k = p->train_count, taps = p->kernel_h * p->kernel_w;
    const int32_t *train_channels = p->train_channels;
    /* Local copies: the weight stores below are int8 stores, which may alias any object whose address
     * escapes, so the compiler would reload every field after each one. */
    const tte_train_ctx c = *ctx;
    const tte_update_params uc = *u;
    float g[DW_TAPS_MAX], xb[DW_PAD_FLOATS];
    int32_t rows = 0, width = 0;
    const int32_t pad_size = taps <= DW_TAPS_MAX ? dw_pad_size(p, out_h, out_w, &rows, &width) : 0;
    const int padded = pad_size > 0;
    if (padded) {
        memset(xb, 0, (size_t)pad_size * sizeof *xb);
    }
    for (int32_t j = 0; j < k; ++j) {
        const int32_t ch = train_channels[j];
        if (ch < begin || ch >= begin + count) {
            continue; /* another band's channel */
        }
        const float inv = inv_w[ch];
        int8_t *w = w_train + j;
        if (tte_qas_frozen(inv)) {
            if (apply) {
                for (int32_t t = 0; t < taps; ++t) {
                    w[(size_t)t * k] = tte_weight_add(w[(size_t)t * k], 0);
                }
            }
            continue;
        }
        /* The element's index in the IR layout [C][1][KH][KW] names its rounding noise. */
        const uint32_t index = (uint32_t)ch * (uint32_t)taps;
        if (taps > DW_TAPS_MAX) {
            for (int32_t t = 0; t < taps; ++t) {
                tte_weight_grad_block(p, out_h, out_w, x_saved, j, 1, gh, count, ch - begin, 1, t / p->kernel_w,
                                      t % p->kernel_w, g);
                if (!apply) {
                    if (!tte_step_value_ok(ctx, tte_qas_value(g[0], inv, &c, &uc))) {
                        return 0;
                    }
                } else {
                    apply_channel(&c, &uc, inv, g, 1, w + (size_t)t * k, (size_t)k, index + (uint32_t)t, stochastic,
                                  clamp);
                }
            }
            continue;
        }
        if (padded) {
            channel_grads_padded(p, out_h, out_w, x_saved, j, gh, count, ch - begin, rows, width, xb, g);
        } else {
            channel_grads(p, out_h, out_w, x_saved, j, gh, count, ch - begin, g);
        }
        if (!apply) {
            for (int32_t t = 0; t < taps; ++t) {
                if (!tte_step_value_ok(ctx, tte_qas_value(g[t], inv, &c, &uc))) {
                    return 0;
                }
            }
        } else {
            apply_channel(&c, &uc, inv, g, taps, w, (size_t)k, index, stochastic, clamp);
        }
    }
    return 1;
}

tte_status tte_depthwise_conv2d_bwd_w_update_s8(const tte_conv2d_params *p, tte_train_ctx *ctx,
                                                const tte_update_params *u, const int8_t *x_saved, const float *gh,
                                                const float *inv_w, int8_t *w_train, const tte_channel_band *gh_band) {
    int32_t out_h, out_w, begin, count;
    tte_status status =
        tte_conv2d_check_update(p, ctx, u, x_saved, gh, inv_w, w_train, gh_band, &out_h, &out_w, &begin, &count);
    if (status == TTE_OK && (p->groups != p->in_c || p->out_c != p->in_c)) {
        status = TTE_ERR_SHAPE;
    }
    if (status != TTE_OK) {
        return status;
    }
    return tte_conv2d_update_passes(sweep, p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count);
}
