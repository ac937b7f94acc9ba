/* Dispatch of a step to its kernel (see steps.h). The reference conv kernels
 * need no scratch, so none is passed. */
#include "steps.h"

tte_status step_run(const step *s, const int8_t *x, const int8_t *x2, void *y, uint8_t *mask) {
    switch (s->kind) {
    case STEP_CONV2D:
        return tte_conv2d_fwd_s8(&s->p.conv, x, s->w, NULL, s->bias, s->multiplier, y, mask, NULL, NULL);
    case STEP_DEPTHWISE_CONV2D:
        return tte_depthwise_conv2d_fwd_s8(&s->p.conv, x, s->w, NULL, s->bias, s->multiplier, y, mask, NULL, NULL);
    case STEP_POINTWISE_CONV2D:
        return tte_pointwise_conv2d_fwd_s8(&s->p.conv, x, s->w, NULL, s->bias, s->multiplier, y, mask, NULL, NULL);
    case STEP_ADD:
        return tte_add_fwd_s8(&s->p.add, x, x2, y, mask);
    case STEP_GLOBAL_AVG_POOL:
        return tte_global_avg_pool_fwd_s8(&s->p.pool, x, y, mask);
    case STEP_LINEAR_S8:
        return tte_linear_fwd_s8(&s->p.linear, x, s->w, s->bias, s->multiplier, y, mask);
    case STEP_LINEAR_F32:
        return tte_linear_fwd_f32(&s->p.linear_f32, x, s->w, s->bias, y);
    }
    return TTE_ERR_SHAPE;
}
