/* Fully connected int8 layer (NUMERICS.md 2 and 2b): a pointwise convolution on
 * a 1x1 map, so it delegates to that kernel and shares its arithmetic exactly. */
#include "kernels-impl.h"

tte_status tte_linear_fwd_s8(const tte_linear_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                             const float *multiplier, int8_t *y, uint8_t *mask) {
    if (p == NULL) {
        return TTE_ERR_NULL;
    }
    const tte_conv2d_params conv = {
        .in_h = 1,
        .in_w = 1,
        .in_c = p->in_features,
        .out_c = p->out_features,
        .kernel_h = 1,
        .kernel_w = 1,
        .stride_h = 1,
        .stride_w = 1,
        .groups = 1,
        .x_zero = p->x_zero,
        .y_zero = p->y_zero,
        .act_min = p->act_min,
        .act_max = p->act_max,
        .requant = p->requant,
        .qmult = p->qmult,
        .qshift = p->qshift,
    };
    return tte_pointwise_conv2d_fwd_s8(&conv, x, w, NULL, bias, multiplier, y, mask, NULL, NULL);
}
