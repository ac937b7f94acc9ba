/* bias_update: dL/db[o] = sum of gh over the output positions, then at once
 * the QAS step of b[o] (NUMERICS.md 5): no gradient buffer; four channels'
 * sums run side by side, each in its own order. The portable kernel of every
 * target. */
#include "kernels-impl.h"

#define BIAS_BLOCK 4 /* channels summed together: independent chains that share the loop */

/* dL/db of the n (1 or BIAS_BLOCK) channels j0 + b of the band: each the sum over pixels, ascending, from
 * 0, one rounding per add. */
TTE_ALWAYS_INLINE void bias_grads(const tte_hwc_params *p, const float *gh, int32_t count, int32_t j0, int32_t n,
                                  float *g) {
    float acc[BIAS_BLOCK];
    for (int32_t b = 0; b < n; ++b) {
        acc[b] = 0.0f;
    }
    const float *gp = gh + j0;
    for (int32_t i = 0; i < p->pixels; ++i, gp += count) {
        for (int32_t b = 0; b < n; ++b) {
            acc[b] = acc[b] + gp[b];
        }
    }
    for (int32_t b = 0; b < n; ++b) {
        g[b] = acc[b];
    }
}

/* One pass over the band's biases, BIAS_BLOCK channels at a time. apply 0: checks every live bias's
 * step value, failing the step at the first non-finite one (returns 0); apply 1: writes every step
 * (returns 1). A dead channel (bias saturated at an int32 limit) is frozen, like one whose inv_b is. */
static int sweep(const tte_hwc_params *p, tte_train_ctx *ctx, const tte_update_params *u, const float *gh,
                 const float *inv_b, int32_t *b, int32_t begin, int32_t count, int apply) {
    const int32_t n = tte_block_size(count, BIAS_BLOCK);
    float g[BIAS_BLOCK];
    for (int32_t done = 0; done < count;) {
        const int32_t j0 = tte_block_start(done, count, n);
        if (n == BIAS_BLOCK) {
            bias_grads(p, gh, count, j0, BIAS_BLOCK, g);
        } else {
            bias_grads(p, gh, count, j0, 1, g);
        }
        for (int32_t j = done; j < j0 + n; ++j) {
            const int32_t o = begin + j;
            if (b[o] == INT32_MIN || b[o] == INT32_MAX || tte_qas_frozen(inv_b[o])) {
                continue;
            }
            const float v = tte_qas_value(g[j - j0], inv_b[o], ctx, u);
            if (!apply) {
                if (!tte_step_value_ok(ctx, v)) {
                    return 0;
                }
                continue;
            }
            b[o] = tte_sat32_add(b[o], tte_qas_round(v, ctx, u, (uint32_t)o));
        }
        done = j0 + n;
    }
    return 1;
}

tte_status tte_bias_update_s32(const tte_hwc_params *p, tte_train_ctx *ctx, const tte_update_params *u, const float *gh,
                               const float *inv_b, int32_t *b, const tte_channel_band *band) {
    if (p == NULL || gh == NULL || inv_b == NULL || b == NULL) {
        return TTE_ERR_NULL;
    }
    const tte_status status = tte_update_check(ctx, u);
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
    const size_t n = (size_t)p->pixels * count;
    if (!tte_update_gate(ctx, gh, n)) {
        return TTE_OK;
    }
    const int safe =
        tte_update_safe(ctx->lr[u->lr_group], tte_max_abs(gh, n), p->pixels, 1.0f, tte_max_inv(inv_b, begin, count));
    if (safe || sweep(p, ctx, u, gh, inv_b, b, begin, count, 0)) {
        (void)sweep(p, ctx, u, gh, inv_b, b, begin, count, 1);
    }
    return TTE_OK;
}
