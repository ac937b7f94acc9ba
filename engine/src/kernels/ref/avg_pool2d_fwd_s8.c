/* Average pool over k x k windows, [H][W][C] -> [Ho][Wo][C] (NUMERICS.md 2):
 * v = float32(sum(q - x_zero)) * multiplier[count], requantized; under fixed requantization (2b)
 * TFLite's int8 AVERAGE_POOL_2D, or MultiplyByQuantizedMultiplier by the count's multiplier
 * (tte/tte.h, tte_pool2d_params). Reference kernel. */
#include "pool2d-impl.h"

tte_status tte_avg_pool2d_fwd_s8(const tte_pool2d_params *p, const int8_t *x, const float *multiplier, int8_t *y,
                                 uint8_t *mask) {
    if (p == NULL || x == NULL || y == NULL || (multiplier == NULL && p->requant != TTE_REQUANT_FIXED)) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w;
    const tte_status status = tte_pool2d_check(p, &out_h, &out_w);
    if (status != TTE_OK) {
        return status;
    }
    if (!tte_int8_ok(p->x_zero) || !tte_int8_ok(p->y_zero)) {
        return TTE_ERR_QUANT;
    }
    /* FIXED without tables: TFLite's AVERAGE_POOL_2D, on the codes themselves. */
    const int divide = p->requant == TTE_REQUANT_FIXED && p->qmult == NULL && p->qshift == NULL;
    if (!divide) {
        const tte_status requant = tte_requant_check(p->requant, p->qmult, p->qshift, p->kernel_h * p->kernel_w + 1);
        if (requant != TTE_OK) {
            return requant;
        }
    }
    const int32_t channels = p->in_c;
    for (int32_t oy = 0; oy < out_h; ++oy) {
        for (int32_t ox = 0; ox < out_w; ++ox) {
            const tte_pool2d_window win = tte_pool2d_window_at(p, oy, ox);
            const int32_t count = tte_pool2d_count(p, &win);
            const int32_t out = (oy * out_w + ox) * channels;
            for (int32_t c = 0; c < channels; ++c) {
                int32_t sum = 0; /* at most 256 taps of magnitude <= 255: exact, and exact in float32 */
                for (int32_t iy = win.y_begin; iy < win.y_end; ++iy) {
                    for (int32_t ix = win.x_begin; ix < win.x_end; ++ix) {
                        sum += (int32_t)x[((size_t)iy * p->in_w + ix) * channels + c] - (divide ? 0 : p->x_zero);
                    }
                }
                int8_t q;
                int in_range;
                if (divide) {
                    const int32_t v = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                    in_range = tte_store_fixed(v, 0, -128, 127, &q);
                } else if (p->requant == TTE_REQUANT_FIXED) {
                    in_range = tte_requantize_fixed(sum, p->qmult[count], p->qshift[count], p->y_zero, -128, 127, &q);
                } else {
                    in_range = tte_requantize((float)sum * multiplier[count], p->y_zero, -128, 127, &q);
                }
                y[out + c] = q;
                tte_mask_put(mask, out + c, in_range);
            }
        }
    }
    return TTE_OK;
}
