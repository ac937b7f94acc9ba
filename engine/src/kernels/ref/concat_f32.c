/* concat on float32 gradients: y[p] = a[p] then b[p] along channels (NUMERICS.md 2). Reference kernel. */
#include "channel-impl.h"

tte_status tte_concat_f32(const tte_concat_params *p, const float *a, const float *b, float *y) {
    return tte_concat_bytes(p, a, b, y, sizeof *y);
}
