/* lut: an elementwise int8 activation by table, y = table[x + 128]; the
 * table (tte_ir.quant.lut_tables) holds the activation, both quantizations and
 * the output clamp. Reference kernel. */
#include "kernels-impl.h"

tte_status tte_lut_s8(const tte_lut_params *p, const int8_t *x, const int8_t *table, int8_t *y) {
    if (p == NULL || x == NULL || table == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->size < 1) {
        return TTE_ERR_SHAPE;
    }
    for (int32_t i = 0; i < p->size; ++i) {
        y[i] = table[(int32_t)x[i] + 128];
    }
    return TTE_OK;
}
