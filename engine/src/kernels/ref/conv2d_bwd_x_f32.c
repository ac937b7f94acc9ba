/* conv2d_bwd_x: the input gradient of a dense conv, any kernel size, stride,
 * padding and group count: the transposed convolution of gh with the weights
 * (NUMERICS.md 4), written as a gather so that each gx element adds its terms
 * fmaf(w, gh, gx) in ascending (o, u, v) order. Only the stem is dense, and
 * no input gradient flows into it: this kernel stays simple. The portable
 * kernel of every target. */
#include "kernels-impl.h"

TTE_FMA_CLONES
tte_status tte_conv2d_bwd_x_f32(const tte_conv2d_params *p, const float *gh, const int8_t *w, const int8_t *w_train,
                                float *gx, int accumulate, const tte_channel_band *gh_band,
                                const tte_channel_band *gx_band) {
    if (p == NULL || gh == NULL || w == NULL || gx == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w, hb, hn, xb, xn;
    tte_status status = tte_conv2d_check_geometry(p, &out_h, &out_w);
    if (status == TTE_OK && p->train_count != 0 && p->groups != 1) {
        status = TTE_ERR_ARG; /* only a groups-1 dense conv trains a slice of input channels */
    }
    if (status == TTE_OK) {
        status = tte_conv2d_check_slice(p, w_train, p->in_c);
    }
    if (status == TTE_OK && (tte_band_window(gh_band, p->out_c, &hb, &hn) != TTE_OK ||
                             tte_band_window(gx_band, p->in_c, &xb, &xn) != TTE_OK)) {
        status = TTE_ERR_ARG;
    }
    if (status != TTE_OK) {
        return status;
    }
    const int32_t group_in = p->in_c / p->groups;
    const int32_t group_out = p->out_c / p->groups;
    for (int32_t iy = 0; iy < p->in_h; ++iy) {
        for (int32_t ix = 0; ix < p->in_w; ++ix) {
            int32_t next = 0;
            for (int32_t jl = 0; jl < xn; ++jl) {
                const int32_t c = xb + jl;
                const int32_t group = c / group_in;
                const int32_t ci = c - group * group_in; /* c's index inside its group: the weight's last axis */
                const int32_t j = tte_slice_index(p->train_channels, p->train_count, ci, &next);
                /* o runs over c's group, restricted to the output channels gh holds. */
                const int32_t o_lo = group * group_out > hb ? group * group_out : hb;
                const int32_t o_hi = (group + 1) * group_out < hb + hn ? (group + 1) * group_out : hb + hn;
                float *out = &gx[((size_t)iy * p->in_w + ix) * xn + jl];
                float acc = accumulate ? *out : 0.0f;
                for (int32_t o = o_lo; o < o_hi; ++o) {
                    for (int32_t ky = 0; ky < p->kernel_h; ++ky) {
                        const int32_t ty = iy + p->pad_top - ky; /* = oy * stride_h for the output row reading iy */
                        if (ty < 0 || ty % p->stride_h != 0 || ty / p->stride_h >= out_h) {
                            continue;
                        }
                        for (int32_t kx = 0; kx < p->kernel_w; ++kx) {
                            const int32_t tx = ix + p->pad_left - kx;
                            if (tx < 0 || tx % p->stride_w != 0 || tx / p->stride_w >= out_w) {
                                continue;
                            }
                            const size_t tap = ((size_t)o * p->kernel_h + ky) * p->kernel_w + kx;
                            const int32_t wv = j < 0 ? w[tap * group_in + ci] : w_train[tap * p->train_count + j];
                            const size_t at = ((size_t)(ty / p->stride_h) * out_w + tx / p->stride_w) * hn + (o - hb);
                            acc = tte_fma((float)wv, gh[at], acc);
                        }
                    }
                }
                *out = acc;
            }
        }
    }
    return TTE_OK;
}
