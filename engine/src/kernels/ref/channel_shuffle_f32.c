/* channel_shuffle on float32 gradients: y[p][j*groups + i] = x[p][i*(C/groups) + j] (NUMERICS.md 2).
 * Reference kernel. */
#include "channel-impl.h"

tte_status tte_channel_shuffle_f32(const tte_channel_shuffle_params *p, const float *x, float *y) {
    return tte_channel_shuffle_bytes(p, x, y, sizeof *y);
}
