/* bias_acc: the mini-batch update of a bias (tte/tte_train.h, "Mini-batch
 * updates"): the sample's bias gradient added to a float32 accumulator, and at
 * the batch's end the QAS step of its mean. Reference kernel. */
#include "batch-impl.h"

/* A bias takes part unless its channel is frozen (inv_b) or dead (at an int32 limit). */
static int live(const float *inv_b, const int32_t *b, int32_t o) {
    return b[o] != INT32_MIN && b[o] != INT32_MAX && !tte_qas_frozen(inv_b[o]);
}

tte_status tte_bias_acc_s32(const tte_hwc_params *p, tte_train_ctx *ctx, const tte_update_params *u, int32_t batch,
                            const float *gh, const float *inv_b, float *acc, int32_t *b, const tte_channel_band *band) {
    if (p == NULL || gh == NULL || inv_b == NULL || b == NULL) {
        return TTE_ERR_NULL;
    }
    tte_status status = tte_update_check(ctx, u);
    if (status == TTE_OK) {
        status = tte_batch_check(acc, batch);
    }
    if (status != TTE_OK) {
        return status;
    }
    if (p->pixels < 1 || p->channels < 1 || (int64_t)p->pixels * p->channels > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    int32_t begin, count;
    if (tte_band_window(band, p->channels, &begin, &count) != TTE_OK) {
        return TTE_ERR_ARG;
    }
    if (tte_update_gate(ctx, gh, (size_t)p->pixels * count)) {
        for (int32_t j = 0; j < count; ++j) {
            const int32_t o = begin + j;
            if (!live(inv_b, b, o)) {
                continue;
            }
            float grad = 0.0f; /* the pixels in ascending order, as tte_bias_update_s32 */
            for (int32_t i = 0; i < p->pixels; ++i) {
                grad = grad + gh[(size_t)i * count + j];
            }
            acc[o] = acc[o] + grad;
        }
    }
    if (!ctx->batch_end) {
        return TTE_OK;
    }
    const float n = (float)batch;
    int ok = ctx->status == TTE_STEP_OK;
    for (int32_t o = begin; ok && o < begin + count; ++o) {
        if (live(inv_b, b, o)) {
            ok = tte_step_value_ok(ctx, tte_qas_value(acc[o] / n, inv_b[o], ctx, u));
        }
    }
    for (int32_t o = begin; o < begin + count; ++o) {
        if (ok && live(inv_b, b, o)) {
            b[o] = tte_sat32_add(b[o], tte_qas_round(tte_qas_value(acc[o] / n, inv_b[o], ctx, u), ctx, u, (uint32_t)o));
        }
        acc[o] = 0.0f;
    }
    return TTE_OK;
}
