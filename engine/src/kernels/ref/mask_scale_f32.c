/* mask_scale: the gradient through an output clamp and multiplier,
 * gh = mask ? g * scale[c] : 0 (NUMERICS.md 4). Reference kernel. */
#include "kernels-impl.h"

tte_status tte_mask_scale_f32(const tte_hwc_params *p, const float *g, const uint8_t *mask, const float *scale,
                              float *gh, const tte_channel_band *band) {
    if (p == NULL || g == NULL || mask == NULL || scale == NULL || gh == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->pixels < 1 || p->channels < 1 || (int64_t)p->pixels * p->channels > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    int32_t begin, count;
    if (tte_band_window(band, p->channels, &begin, &count) != TTE_OK) {
        return TTE_ERR_ARG;
    }
    for (int32_t i = 0; i < p->pixels; ++i) {
        for (int32_t j = 0; j < count; ++j) {
            const int32_t c = begin + j;
            const size_t at = (size_t)i * count + j;
            gh[at] = tte_mask_get(mask, i * p->channels + c) ? g[at] * scale[c] : 0.0f;
        }
    }
    return TTE_OK;
}
