/* depthwise conv2d_bwd_w_update: the fused weight gradient and QAS update of
 * a depthwise conv's trained channels (NUMERICS.md 4-5), no weight-gradient
 * buffer. With a gh band, only the trained channels inside it update. Each
 * tap's gradient is one chain (tte_weight_grad_block), its bounds computed
 * once; at stride_w 1 with kernels 3, 5 or 7 wide a kernel row's taps are
 * summed side by side instead (dw_row_grads), each input code converted once
 * for the row's taps. The portable kernel of every target. */
#include "kernels-impl.h"

/* The gradients g[kx] of kernel row ky's K taps of trained channel j (gh column col), stride_w 1: the same
 * chains as tte_weight_grad_block. Walking the input row ix ascending walks each tap's output column
 * ox = ix + pad_left - kx ascending too, so every tap still adds its positions in row-major order; an
 * input code x[iy][ix] is converted once for the K taps that read it. Interior columns (all K taps read
 * an output column) run without tests. */
TTE_ALWAYS_INLINE void dw_row_grads(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const int8_t *x_saved,
                                    int32_t j, const float *gh, int32_t count, int32_t col, int32_t ky, int32_t K,
                                    float *g) {
    float acc[7];
    for (int32_t kx = 0; kx < K; ++kx) {
        acc[kx] = 0.0f;
    }
    int32_t oy_lo, oy_hi;
    tte_tap_range(p->in_h, out_h, p->stride_h, p->pad_top, ky, &oy_lo, &oy_hi);
    const int32_t k = p->train_count, pad = p->pad_left, in_w = p->in_w;
    /* Columns whose K output columns ix + pad - kx all lie in [0, out_w). */
    int32_t lo = K - 1 - pad, hi = out_w - pad;
    lo = lo < 0 ? 0 : (lo > in_w ? in_w : lo);
    hi = hi > in_w ? in_w : (hi < lo ? lo : hi);
    for (int32_t oy = oy_lo; oy < oy_hi; ++oy) {
        const int8_t *xr = x_saved + (size_t)(oy * p->stride_h + ky - p->pad_top) * in_w * k + j;
        const float *gr = gh + (size_t)oy * out_w * count + col;
        for (int32_t ix = 0; ix < lo; ++ix) {
            const float xf = (float)((int32_t)xr[(size_t)ix * k] - p->x_zero);
            for (int32_t kx = 0; kx < K; ++kx) {
                const int32_t ox = ix + pad - kx;
                if (ox >= 0 && ox < out_w) {
                    acc[kx] = tte_fma(gr[(size_t)ox * count], xf, acc[kx]);
                }
            }
        }
        const int8_t *xp = xr + (size_t)lo * k;
        const float *gp = gr + (size_t)(lo + pad) * count;
        for (int32_t ix = lo; ix < hi; ++ix, xp += k, gp += count) {
            const float xf = (float)((int32_t)*xp - p->x_zero);
            for (int32_t kx = 0; kx < K; ++kx) {
                acc[kx] = tte_fma(gp[-(ptrdiff_t)kx * count], xf, acc[kx]);
            }
        }
        for (int32_t ix = hi; ix < in_w; ++ix) {
            const float xf = (float)((int32_t)xr[(size_t)ix * k] - p->x_zero);
            for (int32_t kx = 0; kx < K; ++kx) {
                const int32_t ox = ix + pad - kx;
                if (ox >= 0 && ox < out_w) {
                    acc[kx] = tte_fma(gr[(size_t)ox * count], xf, acc[kx]);
                }
            }
        }
    }
    for (int32_t kx = 0; kx < K; ++kx) {
        g[kx] = acc[kx];
    }
}

/* Tap (ky, kx)'s gradient of trained channel j: from the row's side-by-side sums where they apply
 * (row ky's taps summed into g when kx is 0), else its own chain. */
TTE_FMA_CLONES
static float tap_grad(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const int8_t *x_saved, int32_t j,
                      const float *gh, int32_t count, int32_t col, int32_t ky, int32_t kx, float *g) {
    const int32_t K = p->kernel_w;
    if (p->stride_w == 1 && (K == 3 || K == 5 || K == 7)) {
        if (kx == 0) {
            if (K == 3) {
                dw_row_grads(p, out_h, out_w, x_saved, j, gh, count, col, ky, 3, g);
            } else if (K == 5) {
                dw_row_grads(p, out_h, out_w, x_saved, j, gh, count, col, ky, 5, g);
            } else {
                dw_row_grads(p, out_h, out_w, x_saved, j, gh, count, col, ky, 7, g);
            }
        }
        return g[kx];
    }
    float grad;
    tte_weight_grad_block(p, out_h, out_w, x_saved, j, 1, gh, count, col, 1, ky, kx, &grad);
    return grad;
}

/* One pass over the trained channels inside the band. apply 0: checks every
 * live element's step value, failing the step at the first non-finite one
 * (returns 0); apply 1: writes every element's step (returns 1). */
static int sweep(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u, const int8_t *x_saved,
                 const float *gh, const float *inv_w, int8_t *w_train, int32_t out_h, int32_t out_w, int32_t begin,
                 int32_t count, int apply) {
    const int32_t k = p->train_count;
    float row[7]; /* a kernel row's gradients (tap_grad) */
    for (int32_t j = 0; j < k; ++j) {
        const int32_t c = p->train_channels[j];
        if (c < begin || c >= begin + count) {
            continue; /* another band's channel */
        }
        const int frozen = tte_qas_frozen(inv_w[c]);
        if (frozen && !apply) {
            continue;
        }
        for (int32_t ky = 0; ky < p->kernel_h; ++ky) {
            for (int32_t kx = 0; kx < p->kernel_w; ++kx) {
                int32_t step = 0;
                if (!frozen) {
                    const float grad = tap_grad(p, out_h, out_w, x_saved, j, gh, count, c - begin, ky, kx, row);
                    const float v = tte_qas_value(grad, inv_w[c], ctx, u);
                    if (!apply) {
                        if (!tte_step_value_ok(ctx, v)) {
                            return 0;
                        }
                        continue;
                    }
                    /* The element's index in the IR layout [C][1][KH][KW] names its rounding noise. */
                    const uint32_t index =
                        ((uint32_t)c * (uint32_t)p->kernel_h + (uint32_t)ky) * (uint32_t)p->kernel_w + (uint32_t)kx;
                    step = tte_qas_round(v, ctx, u, index);
                }
                int8_t *wp = &w_train[((size_t)ky * p->kernel_w + kx) * k + j];
                *wp = tte_weight_add(*wp, step);
            }
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
    const size_t n = (size_t)out_h * out_w * count;
    float gh_max;
    if (!tte_update_gate_max(ctx, gh, n, &gh_max)) {
        return TTE_OK;
    }
    const int safe =
        tte_update_safe(ctx->lr[u->lr_group], gh_max, (int64_t)out_h * out_w, 255.0f, tte_max_inv(inv_w, begin, count));
    if (safe || sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 0)) {
        (void)sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 1);
    }
    return TTE_OK;
}
