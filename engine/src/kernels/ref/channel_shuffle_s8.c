/* channel_shuffle on int8 codes: y[p][j*groups + i] = x[p][i*(C/groups) + j] (NUMERICS.md 2).
 * Reference kernel. */
#include "channel-impl.h"

tte_status tte_channel_shuffle_s8(const tte_channel_shuffle_params *p, const int8_t *x, int8_t *y) {
    return tte_channel_shuffle_bytes(p, x, y, sizeof *y);
}
