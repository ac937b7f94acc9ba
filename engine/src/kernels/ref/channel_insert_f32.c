/* channel_insert: a channel split's backward (NUMERICS.md 4). gx[p][start + k] = g[p][k] on the
 * split's channels and 0 elsewhere, or, with accumulate, gx[p][start + k] += g[p][k] (one float32 add
 * per element) with gx holding the gradient so far. Reference kernel. */
#include "channel-impl.h"

tte_status tte_channel_insert_f32(const tte_channel_split_params *p, const float *g, float *gx, int accumulate) {
    if (p == NULL || g == NULL || gx == NULL) {
        return TTE_ERR_NULL;
    }
    const tte_status status = tte_channel_range_check(p);
    if (status != TTE_OK) {
        return status;
    }
    for (int32_t i = 0; i < p->pixels; ++i) {
        float *row = gx + (size_t)i * (size_t)p->in_c;
        const float *src = g + (size_t)i * (size_t)p->count;
        if (!accumulate) {
            for (int32_t c = 0; c < p->in_c; ++c) {
                row[c] = 0.0f;
            }
            memcpy(row + p->start, src, (size_t)p->count * sizeof *src);
            continue;
        }
        for (int32_t k = 0; k < p->count; ++k) {
            row[p->start + k] = row[p->start + k] + src[k];
        }
    }
    return TTE_OK;
}
