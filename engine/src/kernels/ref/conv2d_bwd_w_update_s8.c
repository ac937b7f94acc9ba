/* conv2d_bwd_w_update: the fused weight gradient and QAS update of a dense
 * conv's trained input channels (NUMERICS.md 4-5). Each trained weight's
 * gradient is summed over the output positions and its rounded step applied
 * at once, so no weight-gradient buffer exists: at each tap, WG_NA x WG_NB blocks
 * of weights whose gradients share each gh value and each converted input code
 * (tte_weight_grad_block). The portable kernel of every target. */
#include "kernels-impl.h"

/* Output channels x trained channels per block: 24 accumulators, each converted input code shared by 8
 * of them, each gh value by 3 (fewer conversions per MAC than 4 x 4 at the same register count). */
#define WG_NA 8
#define WG_NB 3

/* The gradients of a block of na x nb weights at tap (ky, kx): output channels begin + ol0 + a, trained
 * channels j0 + b (tte_weight_grad_block; na is 1 or WG_NA, nb 1 or WG_NB). */
TTE_FMA_CLONES
static void block_grads(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const int8_t *x_saved,
                        const float *gh, int32_t count, int32_t ol0, int32_t na, int32_t j0, int32_t nb, int32_t ky,
                        int32_t kx, float *g) {
    if (na == WG_NA && nb == WG_NB) {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, WG_NB, gh, count, ol0, WG_NA, ky, kx, g);
    } else if (na == WG_NA) {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, 1, gh, count, ol0, WG_NA, ky, kx, g);
    } else if (nb == WG_NB) {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, WG_NB, gh, count, ol0, 1, ky, kx, g);
    } else {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, 1, gh, count, ol0, 1, ky, kx, g);
    }
}

/* Writes the steps of weights j_done .. j0 + nb - 1 at tap (ky, kx) of one live output channel o from their
 * gradients g (trained channels j0 ...), by the rounding mode (`stochastic`); `clamp` 0 where the update's
 * bound shows every step value small (tte_update_bound). wrow: the tap's row of w_train. */
TTE_ALWAYS_INLINE void apply_row(const tte_train_ctx *c, const tte_update_params *uc, const tte_conv2d_params *p,
                                 int32_t o, int32_t ky, int32_t kx, float inv, const float *g, int32_t j_done,
                                 int32_t j0, int32_t nb, int8_t *wrow, int stochastic, int clamp) {
    for (int32_t j = j_done; j < j0 + nb; ++j) {
        const float value = tte_qas_value(g[j - j0], inv, c, uc);
        const float v = clamp ? tte_qas_weight_clamp(value) : value;
        if (stochastic) {
            /* The element's index in the IR layout [O][C][KH][KW] names its rounding noise. */
            const uint32_t index =
                (((uint32_t)o * (uint32_t)p->in_c + (uint32_t)p->train_channels[j]) * (uint32_t)p->kernel_h +
                 (uint32_t)ky) *
                    (uint32_t)p->kernel_w +
                (uint32_t)kx;
            wrow[j] = tte_qas_weight_stochastic(wrow[j], v, tte_round_uniform(c->seed, c->step, uc->tensor_id, index));
        } else {
            wrow[j] = tte_qas_weight_nearest(wrow[j], v);
        }
    }
}

/* One pass over the trained slice, in blocks of output x trained channels at each tap, whose gradients
 * are summed together. apply 0: checks every live element's step value, failing the step at the first
 * non-finite one (returns 0); apply 1: writes every element's step (returns 1). apply, stochastic (the
 * rounding mode) and clamp (apply_row) are constants at each call, so that no weight or row tests them. */
TTE_ALWAYS_INLINE int sweep(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                            const int8_t *x_saved, const float *gh, const float *inv_w, int8_t *w_train, int32_t out_h,
                            int32_t out_w, int32_t begin, int32_t count, int apply, int stochastic, int clamp) {
    const int32_t k = p->train_count;
    const int32_t na = tte_block_size(count, WG_NA), nb = tte_block_size(k, WG_NB);
    /* Local copies: the weight stores below are int8 stores, which may alias any object whose address
     * escapes, so the compiler would reload every field after each one. */
    const tte_train_ctx c = *ctx;
    const tte_update_params uc = *u;
    const tte_conv2d_params pc = *p;
    float g[WG_NA * WG_NB] = {0.0f};
    for (int32_t o_done = 0; o_done < count;) {
        const int32_t ol0 = tte_block_start(o_done, count, na);
        int live = 0;
        for (int32_t a = 0; a < na; ++a) {
            live |= !tte_qas_frozen(inv_w[begin + ol0 + a]);
        }
        for (int32_t ky = 0; ky < pc.kernel_h; ++ky) {
            for (int32_t kx = 0; kx < pc.kernel_w; ++kx) {
                for (int32_t j_done = 0; j_done < k;) {
                    const int32_t j0 = tte_block_start(j_done, k, nb);
                    if (live) {
                        block_grads(&pc, out_h, out_w, x_saved, gh, count, ol0, na, j0, nb, ky, kx, g);
                    }
                    for (int32_t ol = o_done; ol < ol0 + na; ++ol) {
                        const int32_t o = begin + ol;
                        const float inv = inv_w[o];
                        int8_t *wrow = &w_train[(((size_t)o * pc.kernel_h + ky) * pc.kernel_w + kx) * k];
                        const float *grow = &g[(ol - ol0) * nb];
                        if (tte_qas_frozen(inv)) {
                            if (apply) {
                                for (int32_t j = j_done; j < j0 + nb; ++j) {
                                    wrow[j] = tte_weight_add(wrow[j], 0);
                                }
                            }
                        } else if (!apply) {
                            for (int32_t j = j_done; j < j0 + nb; ++j) {
                                if (!tte_step_value_ok(ctx, tte_qas_value(grow[j - j0], inv, &c, &uc))) {
                                    return 0;
                                }
                            }
                        } else if (j_done == j0 && nb == WG_NB) { /* a whole row of the block: unrolled */
                            apply_row(&c, &uc, &pc, o, ky, kx, inv, grow, j0, j0, WG_NB, wrow, stochastic, clamp);
                        } else {
                            apply_row(&c, &uc, &pc, o, ky, kx, inv, grow, j_done, j0, nb, wrow, stochastic, clamp);
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
    return tte_conv2d_update_passes(sweep, p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count);
}
