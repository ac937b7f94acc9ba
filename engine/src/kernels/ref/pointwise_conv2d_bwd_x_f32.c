/* pointwise conv2d_bwd_x: the input gradient of a 1x1 conv, any stride
 * (NUMERICS.md 4): gx[c] sums w[o][c] * gh[o] in ascending o at the input
 * pixels a stride-s output reads, and is 0 (or its entry value) elsewhere.
 * Reference kernel. */
#include "kernels-impl.h"

tte_status tte_pointwise_conv2d_bwd_x_f32(const tte_conv2d_params *p, const float *gh, const int8_t *w,
                                          const int8_t *w_train, float *gx, int accumulate,
                                          const tte_channel_band *gh_band, const tte_channel_band *gx_band) {
    if (p == NULL || gh == NULL || w == NULL || gx == NULL) {
        return TTE_ERR_NULL;
    }
    int32_t out_h, out_w, hb, hn, xb, xn;
    tte_status status = tte_conv2d_check_geometry(p, &out_h, &out_w);
    if (status == TTE_OK && (p->kernel_h != 1 || p->kernel_w != 1 || p->padding != 0 || p->groups != 1)) {
        status = TTE_ERR_SHAPE;
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
    for (int32_t iy = 0; iy < p->in_h; ++iy) {
        for (int32_t ix = 0; ix < p->in_w; ++ix) {
            /* Only pixels on the stride grid are read by an output (oy = iy / stride < out_h always). */
            const int read = iy % p->stride == 0 && ix % p->stride == 0;
            const float *gp = gh + ((size_t)(iy / p->stride) * out_w + ix / p->stride) * hn; /* [hn] */
            int32_t next = 0;
            for (int32_t jl = 0; jl < xn; ++jl) {
                const int32_t c = xb + jl;
                const int32_t j = tte_slice_index(p->train_channels, p->train_count, c, &next);
                float *out = &gx[((size_t)iy * p->in_w + ix) * xn + jl];
                float acc = accumulate ? *out : 0.0f;
                for (int32_t o = hb; read && o < hb + hn; ++o) {
                    const int32_t wv = j < 0 ? w[(size_t)o * p->in_c + c] : w_train[(size_t)o * p->train_count + j];
                    acc = acc + (float)wv * gp[o - hb];
                }
                *out = acc;
            }
        }
    }
    return TTE_OK;
}
