/* conv2d_bwd_w_update: the fused weight gradient and QAS update of a dense
 * conv's trained input channels (NUMERICS.md 4-5). Each trained weight's
 * gradient is summed over the output positions and its rounded step applied
 * at once, so no weight-gradient buffer exists: at each tap, 4 x 4 blocks of
 * weights whose gradients share each gh value and each converted input code
 * (tte_weight_grad_block). The portable kernel of every target. */
#include "kernels-impl.h"

/* The gradients of a block of na x nb weights at tap (ky, kx): output channels begin + ol0 + a, trained
 * channels j0 + b (tte_weight_grad_block; na and nb are 1 or TTE_WG_BLOCK). */
TTE_FMA_CLONES
static void block_grads(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const int8_t *x_saved,
                        const float *gh, int32_t count, int32_t ol0, int32_t na, int32_t j0, int32_t nb, int32_t ky,
                        int32_t kx, float *g) {
    if (na == TTE_WG_BLOCK && nb == TTE_WG_BLOCK) {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, TTE_WG_BLOCK, gh, count, ol0, TTE_WG_BLOCK, ky, kx, g);
    } else if (na == TTE_WG_BLOCK) {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, 1, gh, count, ol0, TTE_WG_BLOCK, ky, kx, g);
    } else if (nb == TTE_WG_BLOCK) {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, TTE_WG_BLOCK, gh, count, ol0, 1, ky, kx, g);
    } else {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, 1, gh, count, ol0, 1, ky, kx, g);
    }
}

/* One pass over the trained slice, in blocks of output x trained channels at each tap, whose gradients
 * are summed together. apply 0: checks every live element's step value, failing the step at the first
 * non-finite one (returns 0); apply 1: writes every element's step (returns 1). */
static int sweep(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u, const int8_t *x_saved,
                 const float *gh, const float *inv_w, int8_t *w_train, int32_t out_h, int32_t out_w, int32_t begin,
                 int32_t count, int apply) {
    const int32_t k = p->train_count;
    const int32_t na = tte_block_size(count, TTE_WG_BLOCK), nb = tte_block_size(k, TTE_WG_BLOCK);
    float g[TTE_WG_BLOCK * TTE_WG_BLOCK] = {0.0f};
    for (int32_t o_done = 0; o_done < count;) {
        const int32_t ol0 = tte_block_start(o_done, count, na);
        int live = 0;
        for (int32_t a = 0; a < na; ++a) {
            live |= !tte_qas_frozen(inv_w[begin + ol0 + a]);
        }
        for (int32_t ky = 0; ky < p->kernel_h; ++ky) {
            for (int32_t kx = 0; kx < p->kernel_w; ++kx) {
                for (int32_t j_done = 0; j_done < k;) {
                    const int32_t j0 = tte_block_start(j_done, k, nb);
                    if (live) {
                        block_grads(p, out_h, out_w, x_saved, gh, count, ol0, na, j0, nb, ky, kx, g);
                    }
                    for (int32_t ol = o_done; ol < ol0 + na; ++ol) {
                        const int32_t o = begin + ol;
                        const int frozen = tte_qas_frozen(inv_w[o]);
                        if (frozen && !apply) {
                            continue;
                        }
                        for (int32_t j = j_done; j < j0 + nb; ++j) {
                            int32_t step = 0;
                            if (!frozen) {
                                const float v = tte_qas_value(g[(ol - ol0) * nb + (j - j0)], inv_w[o], ctx, u);
                                if (!apply) {
                                    if (!tte_step_value_ok(ctx, v)) {
                                        return 0;
                                    }
                                    continue;
                                }
                                /* The element's index in the IR layout [O][C][KH][KW] names its rounding noise. */
                                const uint32_t index =
                                    (((uint32_t)o * (uint32_t)p->in_c + (uint32_t)p->train_channels[j]) *
                                         (uint32_t)p->kernel_h +
                                     (uint32_t)ky) *
                                        (uint32_t)p->kernel_w +
                                    (uint32_t)kx;
                                step = tte_qas_round(v, ctx, u, index);
                            }
                            int8_t *wp = &w_train[(((size_t)o * p->kernel_h + ky) * p->kernel_w + kx) * k + j];
                            *wp = tte_weight_add(*wp, step);
                        }
                    }
                    j_done = j0 + nb;
                }
            }
        }
        o_done = ol0 + na;
    }
    return 1;
}

tte_status tte_conv2d_bwd_w_update_s8(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                                      const int8_t *x_saved, const float *gh, const float *inv_w, int8_t *w_train,
                                      const tte_channel_band *gh_band) {
    int32_t out_h, out_w, begin, count;
    tte_status status =
        tte_conv2d_check_update(p, ctx, u, x_saved, gh, inv_w, w_train, gh_band, &out_h, &out_w, &begin, &count);
    if (status == TTE_OK && p->groups != 1) {
        status = TTE_ERR_ARG; /* grouped convs other than depthwise do not train */
    }
    if (status != TTE_OK) {
        return status;
    }
    const size_t n = (size_t)out_h * out_w * count;
    if (!tte_update_gate(ctx, gh, n)) {
        return TTE_OK;
    }
    const int safe = tte_update_safe(ctx->lr[u->lr_group], tte_max_abs(gh, n), (int64_t)out_h * out_w, 255.0f,
                                     tte_max_inv(inv_w, begin, count));
    if (safe || sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 0)) {
        (void)sweep(p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count, 1);
    }
    return TTE_OK;
}
