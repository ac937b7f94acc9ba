/* Softmax cross-entropy on int8 logits (NUMERICS.md 3): an int8 head's logits
 * are dequantized first, f = s_y * (q - z_y), and the gradient is taken with
 * respect to the codes. Reference kernel. */
#include "kernels-impl.h"

tte_status tte_softmax_ce_s8(const tte_softmax_ce_params *p, tte_train_ctx *ctx, const int8_t *logits,
                             const int32_t *label, float *loss, float *g) {
    if (p == NULL || logits == NULL || label == NULL || loss == NULL || g == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->classes < 1) {
        return TTE_ERR_SHAPE;
    }
    if (!tte_int8_ok(p->zero)) {
        return TTE_ERR_QUANT;
    }
    if (*label < 0 || *label >= p->classes) {
        return TTE_ERR_ARG;
    }
    for (int32_t j = 0; j < p->classes; ++j) {
        g[j] = p->scale * (float)((int32_t)logits[j] - p->zero); /* g holds f until the core overwrites it */
    }
    tte_softmax_ce_core(p->classes, ctx, g, *label, loss, g);
    for (int32_t j = 0; j < p->classes; ++j) {
        g[j] = g[j] * p->scale; /* dL/dq = dL/df * s_y */
    }
    return TTE_OK;
}
