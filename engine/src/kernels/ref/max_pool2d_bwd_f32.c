/* max_pool_bwd: the gradient of a max pool routed to each window's saved arg-max, summed where
 * windows overlap in ascending (oy, ox) order (NUMERICS.md 4). Reference kernel. */
#include "pool2d-impl.h"

tte_status tte_max_pool2d_bwd_f32(const tte_pool2d_params *p, const float *g, const uint8_t *index, float *gx) {
    if (p == NULL || g == NULL || index == NULL || gx == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w;
    const tte_status status = tte_pool2d_check(p, &out_h, &out_w);
    if (status != TTE_OK) {
        return status;
    }
    const int32_t channels = p->in_c;
    /* Every index must name an input pixel of its window; checked before gx is written. */
    for (int32_t oy = 0; oy < out_h; ++oy) {
        for (int32_t ox = 0; ox < out_w; ++ox) {
            const tte_pool2d_window win = tte_pool2d_window_at(p, oy, ox);
            const size_t out = ((size_t)oy * out_w + ox) * channels;
            for (int32_t c = 0; c < channels; ++c) {
                const int32_t tap = index[out + c];
                const int32_t iy = win.y0 + tap / p->kernel_w, ix = win.x0 + tap % p->kernel_w;
                if (tap >= p->kernel_h * p->kernel_w || iy < win.y_begin || iy >= win.y_end || ix < win.x_begin ||
                    ix >= win.x_end) {
                    return TTE_ERR_ARG;
                }
            }
        }
    }
    const size_t in_size = (size_t)p->in_h * p->in_w * channels;
    for (size_t i = 0; i < in_size; ++i) {
        gx[i] = 0.0f;
    }
    for (int32_t oy = 0; oy < out_h; ++oy) {
        for (int32_t ox = 0; ox < out_w; ++ox) {
            const tte_pool2d_window win = tte_pool2d_window_at(p, oy, ox);
            const size_t out = ((size_t)oy * out_w + ox) * channels;
            for (int32_t c = 0; c < channels; ++c) {
                const int32_t tap = index[out + c];
                const int32_t iy = win.y0 + tap / p->kernel_w, ix = win.x0 + tap % p->kernel_w;
                gx[((size_t)iy * p->in_w + ix) * channels + c] += g[out + c];
            }
        }
    }
    return TTE_OK;
}
