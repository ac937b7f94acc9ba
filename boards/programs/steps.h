/* One kernel call described as data: the test programs (golden cases and model
 * forwards) are tables of steps written by boards/tools/firmware_data.py. */
#ifndef TTE_STEPS_H
#define TTE_STEPS_H

#include "tte/tte.h"

typedef enum step_kind {
    STEP_CONV2D,
    STEP_DEPTHWISE_CONV2D,
    STEP_POINTWISE_CONV2D,
    STEP_ADD,
    STEP_GLOBAL_AVG_POOL,
    STEP_LINEAR_S8,
    STEP_LINEAR_F32
} step_kind;

typedef struct step {
    step_kind kind;
    union {
        tte_conv2d_params conv;           /* the three convs */
        tte_add_params add;               /* STEP_ADD */
        tte_global_avg_pool_params pool;  /* STEP_GLOBAL_AVG_POOL */
        tte_linear_params linear;         /* STEP_LINEAR_S8 */
        tte_linear_f32_params linear_f32; /* STEP_LINEAR_F32 */
    } p;
    const void *w;           /* int8 weights (float32 for STEP_LINEAR_F32), engine layout; NULL when none */
    const void *bias;        /* [O] int32 (float32 for STEP_LINEAR_F32); NULL when none */
    const float *multiplier; /* [O] float32; NULL when none */
} step;

/* Runs s on x (and x2 for an add) into y: int8 output, float32 for
 * STEP_LINEAR_F32. mask: NULL, or the bit-packed clamp mask of an int8 output. */
tte_status step_run(const step *s, const int8_t *x, const int8_t *x2, void *y, uint8_t *mask);

#endif /* TTE_STEPS_H */
