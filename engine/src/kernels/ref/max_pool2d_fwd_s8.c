/* Max pool over k x k windows, [H][W][C] -> [Ho][Wo][C] (NUMERICS.md 2): the largest code of each
 * window's input pixels, copied (no requantization), and optionally the arg-max's window offset.
 * Reference kernel. */
#include "pool2d-impl.h"

tte_status tte_max_pool2d_fwd_s8(const tte_pool2d_params *p, const int8_t *x, int8_t *y, uint8_t *index) {
    if (p == NULL || x == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w;
    const tte_status status = tte_pool2d_check(p, &out_h, &out_w);
    if (status != TTE_OK) {
        return status;
    }
    const int32_t channels = p->in_c;
    for (int32_t oy = 0; oy < out_h; ++oy) {
        for (int32_t ox = 0; ox < out_w; ++ox) {
            const tte_pool2d_window win = tte_pool2d_window_at(p, oy, ox);
            const size_t out = ((size_t)oy * out_w + ox) * channels;
            for (int32_t c = 0; c < channels; ++c) {
                int32_t best = INT32_MIN; /* below every code: padded taps are not read, so never win */
                int32_t best_tap = 0;
                for (int32_t iy = win.y_begin; iy < win.y_end; ++iy) {
                    for (int32_t ix = win.x_begin; ix < win.x_end; ++ix) {
                        const int32_t q = x[((size_t)iy * p->in_w + ix) * channels + c];
                        if (q > best) { /* strictly greater: a tie keeps the earlier tap */
                            best = q;
                            best_tap = (iy - win.y0) * p->kernel_w + (ix - win.x0);
                        }
                    }
                }
                y[out + c] = (int8_t)best;
                if (index != NULL) {
                    index[out + c] = (uint8_t)best_tap;
                }
            }
        }
    }
    return TTE_OK;
}
