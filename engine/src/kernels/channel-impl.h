/* Private helpers of the channel ops (concat, channel split, channel shuffle, NUMERICS.md 2 and 4):
 * element copies between [pixels][channels] buffers, the same for int8 codes and float32 gradients
 * (element size `size` bytes), so the _s8 and _f32 kernels are one body. Outputs must not overlap
 * inputs. Not installed. */
#ifndef TTE_CHANNEL_IMPL_H
#define TTE_CHANNEL_IMPL_H

#include "kernels-impl.h"

/* y[p] = a[p] then b[p], pixel by pixel. */
static inline tte_status tte_concat_bytes(const tte_concat_params *p, const void *a, const void *b, void *y,
                                          size_t size) {
    if (p == NULL || a == NULL || b == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->pixels < 1 || p->a_channels < 1 || p->b_channels < 1) {
        return TTE_ERR_SHAPE;
    }
    const size_t a_row = (size_t)p->a_channels * size, b_row = (size_t)p->b_channels * size;
    const uint8_t *pa = (const uint8_t *)a, *pb = (const uint8_t *)b;
    uint8_t *py = (uint8_t *)y;
    for (int32_t i = 0; i < p->pixels; ++i) {
        memcpy(py, pa + (size_t)i * a_row, a_row);
        memcpy(py + a_row, pb + (size_t)i * b_row, b_row);
        py += a_row + b_row;
    }
    return TTE_OK;
}

static inline tte_status tte_channel_range_check(const tte_channel_split_params *p) {
    if (p->pixels < 1 || p->in_c < 1 || p->start < 0 || p->count < 1 || p->count > p->in_c - p->start) {
        return TTE_ERR_SHAPE;
    }
    return TTE_OK;
}

/* y[p][k] = x[p][start + k]. */
static inline tte_status tte_channel_split_bytes(const tte_channel_split_params *p, const void *x, void *y,
                                                 size_t size) {
    if (p == NULL || x == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    const tte_status status = tte_channel_range_check(p);
    if (status != TTE_OK) {
        return status;
    }
    const size_t in_row = (size_t)p->in_c * size, out_row = (size_t)p->count * size;
    const uint8_t *px = (const uint8_t *)x + (size_t)p->start * size;
    uint8_t *py = (uint8_t *)y;
    for (int32_t i = 0; i < p->pixels; ++i) {
        memcpy(py + (size_t)i * out_row, px + (size_t)i * in_row, out_row);
    }
    return TTE_OK;
}

/* y[p][j*groups + i] = x[p][i*(channels/groups) + j]. */
static inline tte_status tte_channel_shuffle_bytes(const tte_channel_shuffle_params *p, const void *x, void *y,
                                                   size_t size) {
    if (p == NULL || x == NULL || y == NULL) {
        return TTE_ERR_NULL;
    }
    if (p->pixels < 1 || p->channels < 1 || p->groups < 1 || p->channels % p->groups != 0) {
        return TTE_ERR_SHAPE;
    }
    const int32_t per_group = p->channels / p->groups;
    const size_t row = (size_t)p->channels * size;
    const uint8_t *px = (const uint8_t *)x;
    uint8_t *py = (uint8_t *)y;
    for (int32_t i = 0; i < p->pixels; ++i) {
        for (int32_t g = 0; g < p->groups; ++g) {
            for (int32_t j = 0; j < per_group; ++j) {
                memcpy(py + ((size_t)j * (size_t)p->groups + (size_t)g) * size,
                       px + ((size_t)g * (size_t)per_group + (size_t)j) * size, size);
            }
        }
        px += row;
        py += row;
    }
    return TTE_OK;
}

#endif /* TTE_CHANNEL_IMPL_H */
