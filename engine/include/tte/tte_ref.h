/* The reference kernels under their own names, for checking optimized kernels against them.
 *
 * Every kernel of tte.h has a reference implementation in src/kernels/ref/, written to be read,
 * always built, and the oracle of the optimized ones. Where a target has optimized kernels
 * (src/kernels/arm/ on ARMv7E-M, CMake option TTE_ENGINE_ARM_KERNELS), the public name
 * (tte_pointwise_conv2d_fwd_s8) is the optimized kernel and the reference stays callable as
 * tte_ref_pointwise_conv2d_fwd_s8, with the same signature and the same results bit for bit;
 * elsewhere the public name calls the reference (src/kernels/portable.c). Only the kernels that have
 * an optimized twin somewhere are listed here. */
#ifndef TTE_TTE_REF_H
#define TTE_TTE_REF_H

#include "tte/tte.h"

#ifdef __cplusplus
extern "C" {
#endif

size_t tte_ref_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p);
tte_status tte_ref_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w, const int8_t *w_train,
                                 const int32_t *bias, const float *multiplier, int8_t *y, uint8_t *mask,
                                 const tte_row_band *rows, void *scratch);

size_t tte_ref_depthwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p);
tte_status tte_ref_depthwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                           const int8_t *w_train, const int32_t *bias, const float *multiplier,
                                           int8_t *y, uint8_t *mask, const tte_row_band *rows, void *scratch);

size_t tte_ref_pointwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p);
tte_status tte_ref_pointwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                           const int8_t *w_train, const int32_t *bias, const float *multiplier,
                                           int8_t *y, uint8_t *mask, const tte_row_band *rows, void *scratch);

#ifdef __cplusplus
}
#endif

#endif /* TTE_TTE_REF_H */
