/* accumulate: y = acc + g, the sum of a tensor's fan-out gradients
 * (NUMERICS.md 4; the operand order is the IR's). Reference kernel. */
#include "kernels-impl.h"

tte_status tte_accumulate_f32(int32_t size, const float *acc, const float *g, float *y) {
    if (acc == NULL || g == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    if (size < 1) {
        return TTE_ERR_SHAPE;
    }
    for (int32_t i = 0; i < size; ++i) {
        y[i] = acc[i] + g[i];
    }
    return TTE_OK;
}
