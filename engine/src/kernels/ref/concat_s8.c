/* concat on int8 codes: y[p] = a[p] then b[p] along channels (NUMERICS.md 2). Reference kernel. */
#include "channel-impl.h"

tte_status tte_concat_s8(const tte_concat_params *p, const int8_t *a, const int8_t *b, int8_t *y) {
    return tte_concat_bytes(p, a, b, y, sizeof *y);
}
