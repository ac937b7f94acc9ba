/* channel_split on float32 gradients: y[p][k] = x[p][start + k] (NUMERICS.md 2). Reference kernel. */
#include "channel-impl.h"

tte_status tte_channel_split_f32(const tte_channel_split_params *p, const float *x, float *y) {
    return tte_channel_split_bytes(p, x, y, sizeof *y);
}
