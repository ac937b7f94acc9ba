/* The public names of the kernels that have an optimized twin on some targets (tte/tte_ref.h), on a
 * build without those twins (TTE_ENGINE_ARM_KERNELS off): each calls its reference kernel. */
#include "kernels-impl.h"

size_t tte_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    return tte_ref_conv2d_fwd_s8_scratch_size(p);
}

tte_status tte_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w, const int8_t *w_train,
                             const int32_t *bias, const float *multiplier, int8_t *y, uint8_t *mask,
                             const tte_row_band *rows, void *scratch) {
    return tte_ref_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
}

size_t tte_depthwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    return tte_ref_depthwise_conv2d_fwd_s8_scratch_size(p);
}

tte_status tte_depthwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                       const int8_t *w_train, const int32_t *bias, const float *multiplier, int8_t *y,
                                       uint8_t *mask, const tte_row_band *rows, void *scratch) {
    return tte_ref_depthwise_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
}

size_t tte_pointwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    return tte_ref_pointwise_conv2d_fwd_s8_scratch_size(p);
}

tte_status tte_pointwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                       const int8_t *w_train, const int32_t *bias, const float *multiplier, int8_t *y,
                                       uint8_t *mask, const tte_row_band *rows, void *scratch) {
    return tte_ref_pointwise_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
}
