/* depthwise conv2d_bwd_x: the input gradient of a depthwise conv, channel by
 * channel (NUMERICS.md 4); each gx element sums its terms in ascending (u, v)
 * order. Channel-separable, so a band of gh gives the same band of gx.
 * Reference kernel. */
#include "kernels-impl.h"

/* The depthwise kernel reads and writes the same channels: its two bands must agree. */
static int same_band(const tte_channel_band *a, const tte_channel_band *b) {
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return a->begin == b->begin && a->count == b->count;
}

tte_status tte_depthwise_conv2d_bwd_x_f32(const tte_conv2d_params *p, const float *gh, const int8_t *w,
                                          const int8_t *w_train, float *gx, int accumulate,
                                          const tte_channel_band *gh_band, const tte_channel_band *gx_band) {
    if (p == NULL || gh == NULL || w == NULL || gx == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w, begin, count;
    tte_status status = tte_conv2d_check_geometry(p, &out_h, &out_w);
    if (status == TTE_OK && (p->groups != p->in_c || p->out_c != p->in_c)) {
        status = TTE_ERR_SHAPE;
    }
    if (status == TTE_OK) {
        status = tte_conv2d_check_slice(p, w_train, p->in_c);
    }
    if (status == TTE_OK &&
        (!same_band(gh_band, gx_band) || tte_band_window(gh_band, p->in_c, &begin, &count) != TTE_OK)) {
        status = TTE_ERR_ARG;
    }
    if (status != TTE_OK) {
        return status;
    }
    for (int32_t iy = 0; iy < p->in_h; ++iy) {
        for (int32_t ix = 0; ix < p->in_w; ++ix) {
            int32_t next = 0;
            for (int32_t jl = 0; jl < count; ++jl) {
                const int32_t c = begin + jl;
                /* Channel c's filter: column c of w [KH][KW][C], or column j of w_train [KH][KW][k]. */
                const int32_t j = tte_slice_index(p->train_channels, p->train_count, c, &next);
                const int8_t *wc = j < 0 ? w + c : w_train + j;
                const int32_t wstride = j < 0 ? p->in_c : p->train_count;
                float *out = &gx[((size_t)iy * p->in_w + ix) * count + jl];
                float acc = accumulate ? *out : 0.0f;
                for (int32_t ky = 0; ky < p->kernel_h; ++ky) {
                    const int32_t ty = iy + p->padding - ky; /* = oy * stride for the output row reading iy */
                    if (ty < 0 || ty % p->stride != 0 || ty / p->stride >= out_h) {
                        continue;
                    }
                    for (int32_t kx = 0; kx < p->kernel_w; ++kx) {
                        const int32_t tx = ix + p->padding - kx;
                        if (tx < 0 || tx % p->stride != 0 || tx / p->stride >= out_w) {
                            continue;
                        }
                        const size_t at = ((size_t)(ty / p->stride) * out_w + tx / p->stride) * count + jl;
                        acc = acc + (float)wc[((size_t)ky * p->kernel_w + kx) * wstride] * gh[at];
                    }
                }
                *out = acc;
            }
        }
    }
    return TTE_OK;
}
