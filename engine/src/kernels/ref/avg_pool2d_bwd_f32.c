/* avg_pool_bwd: the gradient of an average pool, t = mask ? g * multiplier[count] : 0 added to each
 * of the window's input pixels in ascending (oy, ox) order (NUMERICS.md 4). Reference kernel. */
#include "pool2d-impl.h"

tte_status tte_avg_pool2d_bwd_f32(const tte_pool2d_params *p, const float *g, const uint8_t *mask,
                                  const float *multiplier, float *gx) {
    if (p == NULL || g == NULL || mask == NULL || multiplier == NULL || gx == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w;
    const tte_status status = tte_pool2d_check(p, &out_h, &out_w);
    if (status != TTE_OK) {
        return status;
    }
    const int32_t channels = p->in_c;
    const size_t in_size = (size_t)p->in_h * p->in_w * channels;
    for (size_t i = 0; i < in_size; ++i) {
        gx[i] = 0.0f;
    }
    for (int32_t oy = 0; oy < out_h; ++oy) {
        for (int32_t ox = 0; ox < out_w; ++ox) {
            const tte_pool2d_window win = tte_pool2d_window_at(p, oy, ox);
            const float m = multiplier[tte_pool2d_count(p, &win)];
            const int32_t out = (oy * out_w + ox) * channels;
            for (int32_t c = 0; c < channels; ++c) {
                const float t = tte_mask_get(mask, out + c) ? g[out + c] * m : 0.0f;
                for (int32_t iy = win.y_begin; iy < win.y_end; ++iy) {
                    for (int32_t ix = win.x_begin; ix < win.x_end; ++ix) {
                        gx[((size_t)iy * p->in_w + ix) * channels + c] += t;
                    }
                }
            }
        }
    }
    return TTE_OK;
}
