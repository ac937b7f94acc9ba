/* Softmax cross-entropy on float32 logits (NUMERICS.md 3), with the engine's
 * own expf and logf. Reference kernel; also the core of tte_softmax_ce_s8. */
#include "kernels-impl.h"

void tte_softmax_ce_core(int32_t n, tte_train_ctx *ctx, const float *f, int32_t label, float *loss, float *g) {
    float m = f[0];
    for (int32_t j = 1; j < n; ++j) {
        m = f[j] > m ? f[j] : m;
    }
    const float shifted_label = f[label] - m; /* read before g (which may be f) is written */
    float total = 0.0f;
    for (int32_t j = 0; j < n; ++j) {
        g[j] = tte_expf(f[j] - m);
        total = total + g[j];
    }
    for (int32_t j = 0; j < n; ++j) {
        g[j] = g[j] / total;
    }
    g[label] = g[label] - 1.0f;
    *loss = tte_logf(total) - shifted_label;
    if (ctx != NULL && ctx->status == TTE_STEP_OK && !tte_isfinite(*loss)) {
        ctx->status = TTE_STEP_NONFINITE_LOSS;
    }
}

tte_status tte_softmax_ce_f32(const tte_softmax_ce_params *p, tte_train_ctx *ctx, const float *logits,
                              const int32_t *label, float *loss, float *g) {
    if (p == NULL || logits == NULL || label == NULL || loss == NULL || g == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->classes < 1) {
        return TTE_ERR_SHAPE;
    }
    if (*label < 0 || *label >= p->classes) {
        return TTE_ERR_ARG;
    }
    tte_softmax_ce_core(p->classes, ctx, logits, *label, loss, g);
    return TTE_OK;
}
