/* channel_split on int8 codes: y[p][k] = x[p][start + k] (NUMERICS.md 2). Reference kernel. */
#include "channel-impl.h"

tte_status tte_channel_split_s8(const tte_channel_split_params *p, const int8_t *x, int8_t *y) {
    return tte_channel_split_bytes(p, x, y, sizeof *y);
}
