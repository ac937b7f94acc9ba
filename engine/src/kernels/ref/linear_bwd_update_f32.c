/* linear_f32_bwd_update: the fp32 classifier head's input gradient and plain
 * SGD step (NUMERICS.md 4-5), with fixed float orders so that the host and
 * every Cortex-M agree bit for bit. Reference kernel. */
#include "kernels-impl.h"

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
    const float lr = ctx->lr[lr_group];
    for (int32_t o = 0; o < out; ++o) {
        for (int32_t i = 0; i < in; ++i) {
            /* x_f as in tte_linear_fwd_f32: the same multiply gives the same bits. */
            const float xf = p->x_scale * (float)((int32_t)x[i] - p->x_zero);
            w_next[(size_t)o * in + i] = w[(size_t)o * in + i] - lr * (g[o] * xf);
        }
        b_next[o] = b[o] - lr * g[o];
    }
    return TTE_OK;
}
