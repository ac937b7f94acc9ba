/* pointwise conv2d_bwd_w_update: the fused weight gradient and QAS update of
 * a 1x1 conv's trained input channels (NUMERICS.md 4-5), any stride, no
 * weight-gradient buffer: PW_NA x PW_NB blocks of weights whose gradients share each
 * gh value and each converted input code (tte_weight_grad_block), then each
 * weight's step. The portable kernel of every target. */
#include "kernels-impl.h"

/* Output channels x trained channels per block: 24 accumulators, each converted input code shared by 8
 * of them, each gh value by 3 (fewer conversions per MAC than 4 x 4 at the same register count). */
#define PW_NA 8
#define PW_NB 3

/* The gradients of a block of na x nb weights: output channels begin + ol0 + a, trained channels j0 + b
 * (tte_weight_grad_block; na is 1 or PW_NA, nb 1 or PW_NB). */
TTE_FMA_CLONES
static void block_grads(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const int8_t *x_saved,
                        const float *gh, int32_t count, int32_t ol0, int32_t na, int32_t j0, int32_t nb, float *g) {
    if (na == PW_NA && nb == PW_NB) {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, PW_NB, gh, count, ol0, PW_NA, 0, 0, g);
    } else if (na == PW_NA) {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, 1, gh, count, ol0, PW_NA, 0, 0, g);
    } else if (nb == PW_NB) {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, PW_NB, gh, count, ol0, 1, 0, 0, g);
    } else {
        tte_weight_grad_block(p, out_h, out_w, x_saved, j0, 1, gh, count, ol0, 1, 0, 0, g);
    }
}

/* Writes the steps of weights j_done .. j0 + nb - 1 of one live output channel o's row from their gradients
 * g (trained channels j0 ...), by the rounding mode (`stochastic`); `clamp` 0 where the update's bound shows
 * every step value small (tte_update_bound). */
TTE_ALWAYS_INLINE void apply_row(const tte_train_ctx *c, const tte_update_params *uc, const int32_t *train_channels,
                                 uint32_t in_c, int32_t o, float inv, const float *g, int32_t j_done, int32_t j0,
                                 int32_t nb, int8_t *wrow, int stochastic, int clamp) {
    for (int32_t j = j_done; j < j0 + nb; ++j) {
        const float value = tte_qas_value(g[j - j0], inv, c, uc);
        const float v = clamp ? tte_qas_weight_clamp(value) : value;
        if (stochastic) {
            /* The element's index in the IR layout [O][C][1][1] names its rounding noise. */
            const uint32_t index = (uint32_t)o * in_c + (uint32_t)train_channels[j];
            wrow[j] = tte_qas_weight_stochastic(wrow[j], v, tte_round_uniform(c->seed, c->step, uc->tensor_id, index));
        } else {
            wrow[j] = tte_qas_weight_nearest(wrow[j], v);
        }
    }
}

/* One pass over the trained slice, in blocks of output x trained channels whose gradients are summed
 * together. apply 0: checks every live element's step value, failing the step at the first non-finite
 * one (returns 0); apply 1: writes every element's step (returns 1). apply, stochastic (the rounding mode)
 * and clamp (apply_row) are constants at each call, so that no weight or row tests them. */
TTE_ALWAYS_INLINE int sweep(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                            const int8_t *x_saved, const float *gh, const float *inv_w, int8_t *w_train, int32_t out_h,
                            int32_t out_w, int32_t begin, int32_t count, int apply, int stochastic, int clamp) {
    const int32_t k = p->train_count;
    const int32_t na = tte_block_size(count, PW_NA), nb = tte_block_size(k, PW_NB);
    /* Local copies: the weight stores below are int8 stores, which may alias any object whose address
     * escapes, so the compiler would reload every field after each one. */
    const tte_train_ctx c = *ctx;
    const tte_update_params uc = *u;
    const int32_t *train_channels = p->train_channels;
    const uint32_t in_c = (uint32_t)p->in_c;
    float g[PW_NA * PW_NB] = {0.0f};
    for (int32_t o_done = 0; o_done < count;) {
        const int32_t ol0 = tte_block_start(o_done, count, na);
        int live = 0;
        for (int32_t a = 0; a < na; ++a) {
            live |= !tte_qas_frozen(inv_w[begin + ol0 + a]);
        }
        for (int32_t j_done = 0; j_done < k;) {
            const int32_t j0 = tte_block_start(j_done, k, nb);
            if (live) {
                block_grads(p, out_h, out_w, x_saved, gh, count, ol0, na, j0, nb, g);
            }
            for (int32_t ol = o_done; ol < ol0 + na; ++ol) {
                const int32_t o = begin + ol;
                const float inv = inv_w[o];
                int8_t *wrow = &w_train[(size_t)o * k];
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
                } else if (j_done == j0 && nb == PW_NB) { /* a whole row of the block: unrolled */
                    apply_row(&c, &uc, train_channels, in_c, o, inv, grow, j0, j0, PW_NB, wrow, stochastic, clamp);
                } else {
                    apply_row(&c, &uc, train_channels, in_c, o, inv, grow, j_done, j0, nb, wrow, stochastic, clamp);
                }
            }
            j_done = j0 + nb;
        }
        o_done = ol0 + na;
    }
    return 1;
}

tte_status tte_pointwise_conv2d_bwd_w_update_s8(const tte_conv2d_params *p, tte_train_ctx *ctx,
                                                const tte_update_params *u, const int8_t *x_saved, const float *gh,
                                                const float *inv_w, int8_t *w_train, const tte_channel_band *gh_band) {
    int32_t out_h, out_w, begin, count;
    tte_status status =
        tte_conv2d_check_update(p, ctx, u, x_saved, gh, inv_w, w_train, gh_band, &out_h, &out_w, &begin, &count);
    if (status == TTE_OK && (p->kernel_h != 1 || p->kernel_w != 1 || !tte_conv2d_unpadded(p) || p->groups != 1)) {
        status = TTE_ERR_SHAPE;
    }
    if (status != TTE_OK) {
        return status;
    }
    return tte_conv2d_update_passes(sweep, p, ctx, u, x_saved, gh, inv_w, w_train, out_h, out_w, begin, count);
}
