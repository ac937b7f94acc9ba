/* linear_acc: the mini-batch update of the fp32 classifier head (tte/tte_train.h,
 * "Mini-batch updates"): the sample's weight and bias gradients added to float32
 * accumulators, and at the batch's end one plain SGD step on their mean.
 * Reference kernel. */
#include "batch-impl.h"

/* One pass of the SGD step on the mean gradients: apply 0 checks that every new value is finite,
 * failing the step at the first that is not (returns 0); apply 1 writes them (returns 1). */
static int sgd_pass(const tte_linear_f32_params *p, float lr, float n, tte_train_ctx *ctx, const float *acc_w,
                    const float *acc_b, float *w, float *b, int apply) {
    const size_t size = (size_t)p->out_features * p->in_features;
    for (size_t k = 0; k < size; ++k) {
        const float v = w[k] - lr * (acc_w[k] / n);
        if (apply) {
            w[k] = v;
        } else if (!tte_step_value_ok(ctx, v)) {
            return 0;
        }
    }
    for (int32_t o = 0; o < p->out_features; ++o) {
        const float v = b[o] - lr * (acc_b[o] / n);
        if (apply) {
            b[o] = v;
        } else if (!tte_step_value_ok(ctx, v)) {
            return 0;
        }
    }
    return 1;
}

tte_status tte_linear_acc_f32(const tte_linear_f32_params *p, tte_train_ctx *ctx, tte_lr_group lr_group, int32_t batch,
                              const int8_t *x, const float *g, float *acc_w, float *acc_b, float *w, float *b) {
    if (p == NULL || ctx == NULL || x == NULL || g == NULL || acc_b == NULL || w == NULL || b == NULL) {
        return TTE_ERR_NULL;
    }
    const tte_status status = tte_batch_check(acc_w, batch);
    if (status != TTE_OK) {
        return status;
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
    if (tte_update_gate(ctx, g, (size_t)p->out_features)) {
        for (int32_t o = 0; o < p->out_features; ++o) {
            for (int32_t i = 0; i < in; ++i) {
                /* x_f as in tte_linear_fwd_f32: the same multiply gives the same bits. */
                const float xf = p->x_scale * (float)((int32_t)x[i] - p->x_zero);
                acc_w[(size_t)o * in + i] = acc_w[(size_t)o * in + i] + g[o] * xf;
            }
            acc_b[o] = acc_b[o] + g[o];
        }
    }
    if (!ctx->batch_end) {
        return TTE_OK;
    }
    const float lr = ctx->lr[lr_group];
    const float n = (float)batch;
    /* Every new value is checked before any is written. */
    if (ctx->status == TTE_STEP_OK && sgd_pass(p, lr, n, ctx, acc_w, acc_b, w, b, 0)) {
        (void)sgd_pass(p, lr, n, ctx, acc_w, acc_b, w, b, 1);
    }
    const size_t size = (size_t)p->out_features * in;
    for (size_t k = 0; k < size; ++k) {
        acc_w[k] = 0.0f;
    }
    for (int32_t o = 0; o < p->out_features; ++o) {
        acc_b[o] = 0.0f;
    }
    return TTE_OK;
}
