/* linear_f32_bwd_update: the fp32 classifier head's input gradient and plain
 * SGD step (NUMERICS.md 4-5), with fixed float orders so that the host and
 * every Cortex-M agree bit for bit. Reference kernel. */
#include "kernels-impl.h"

/* One pass of the SGD step. Without w_next (and b_next): checks that every
 * new value is finite, failing the step at the first that is not (returns 0);
 * with them: writes the new values (returns 1). The same operations in the
 * same order give the same bits in both passes. */
static int sgd_pass(const tte_linear_f32_params *p, float lr, tte_train_ctx *ctx, const int8_t *x, const float *g,
                    const float *w, const float *b, float *w_next, float *b_next) {
    const int32_t in = p->in_features;
    for (int32_t o = 0; o < p->out_features; ++o) {
        for (int32_t i = 0; i < in; ++i) {
            /* x_f as in tte_linear_fwd_f32: the same multiply gives the same bits. */
            const float xf = p->x_scale * (float)((int32_t)x[i] - p->x_zero);
            const float v = w[(size_t)o * in + i] - lr * (g[o] * xf);
            if (w_next != NULL) {
                w_next[(size_t)o * in + i] = v;
            } else if (!tte_step_value_ok(ctx, v)) {
                return 0;
            }
        }
        const float v = b[o] - lr * g[o];
        if (b_next != NULL) {
            b_next[o] = v;
        } else if (!tte_step_value_ok(ctx, v)) {
            return 0;
        }
    }
    return 1;
}

tte_status tte_linear_bwd_update_f32(const tte_linear_f32_params *p, tte_train_ctx *ctx, tte_lr_group lr_group,
                                     const int8_t *x, const float *g, const float *w, const float *b, float *w_next,
                                     float *b_next, float *gx) {
    if (p == NULL || ctx == NULL || x == NULL || g == NULL || w == NULL || b == NULL) {
        return TTE_ERR_NULL;
    }
    if ((w_next == NULL) != (b_next == NULL)) {
        return TTE_ERR_NULL; /* the weights and the bias update together */
    }
    if (p->in_features < 1 || p->out_features < 1 || (int64_t)p->in_features * p->out_features > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    if (!tte_int8_ok(p->x_zero)) {
        return TTE_ERR_QUANT;
    }
    if (lr_group != TTE_LR_BODY && lr_group != TTE_LR_HEAD) {
        return TTE_ERR_ARG;
    }
    const int32_t in = p->in_features;
    const int32_t out = p->out_features;
    if (gx != NULL) { /* first: with w_next == w the update below overwrites w */
        for (int32_t i = 0; i < in; ++i) {
            float sum = 0.0f;
            for (int32_t o = 0; o < out; ++o) {
                sum = sum + w[(size_t)o * in + i] * g[o];
            }
            gx[i] = p->x_scale * sum;
        }
    }
    if (w_next == NULL || !tte_update_gate(ctx, g, (size_t)out)) {
        return TTE_OK;
    }
    /* Every new value is checked before any is written: w_next may be w. */
    if (sgd_pass(p, ctx->lr[lr_group], ctx, x, g, w, b, NULL, NULL)) {
        (void)sgd_pass(p, ctx->lr[lr_group], ctx, x, g, w, b, w_next, b_next);
    }
    return TTE_OK;
}
