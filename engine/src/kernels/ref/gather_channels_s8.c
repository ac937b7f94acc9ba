/* gather_channels: the trained input channels of a conv, saved for its weight
 * update (only those are kept alive until the backward). Reference kernel. */
#include "kernels-impl.h"

tte_status tte_gather_channels_s8(const tte_gather_params *p, const int8_t *x, int8_t *y) {
    if (p == NULL || x == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->pixels < 1 || p->in_c < 1 || (int64_t)p->pixels * p->in_c > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    if (!tte_channel_list_ok(p->channels, p->count, p->in_c)) {
        return TTE_ERR_ARG;
    }
    for (int32_t i = 0; i < p->pixels; ++i) {
        const int8_t *xp = x + (size_t)i * p->in_c; /* [in_c] */
        int8_t *yp = y + (size_t)i * p->count;      /* [count] */
        for (int32_t j = 0; j < p->count; ++j) {
            yp[j] = xp[p->channels[j]];
        }
    }
    return TTE_OK;
}
