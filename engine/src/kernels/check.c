/* Argument checks shared by the kernels, and the small public helpers that go
 * with them (status strings, output sizes). */
#include "kernels-impl.h"

const char *tte_status_str(tte_status status) {
    switch (status) {
    case TTE_OK:
        return "ok";
    case TTE_ERR_NULL:
        return "a required pointer is NULL";
    case TTE_ERR_SHAPE:
        return "invalid or inconsistent sizes, stride, padding or groups";
    case TTE_ERR_QUANT:
        return "zero point or activation range outside int8";
    }
    return "unknown status";
}

int32_t tte_conv2d_out_dim(int32_t in, int32_t kernel, int32_t stride, int32_t padding) {
    if (in < 1 || kernel < 1 || stride < 1 || padding < 0) {
        return 0;
    }
    /* int64: in + 2*padding may exceed int32 for absurd paddings. */
    const int64_t span = (int64_t)in + 2 * (int64_t)padding - kernel;
    if (span < 0) {
        return 0;
    }
    const int64_t out = span / stride + 1;
    return out > INT32_MAX ? 0 : (int32_t)out;
}

/* Element counts of every buffer must fit int32, so kernels index with int32. */
static int fits_int32(int64_t a, int64_t b, int64_t c) {
    return a * b <= INT32_MAX && a * b * c <= INT32_MAX;
}

tte_status tte_conv2d_check(const tte_conv2d_params *p, int32_t *out_h, int32_t *out_w) {
    if (p->in_h < 1 || p->in_w < 1 || p->in_c < 1 || p->out_c < 1 || p->kernel_h < 1 || p->kernel_w < 1 ||
        p->stride < 1 || p->padding < 0 || p->groups < 1) {
        return TTE_ERR_SHAPE;
    }
    if (p->in_c % p->groups != 0 || p->out_c % p->groups != 0) {
        return TTE_ERR_SHAPE;
    }
    const int32_t oh = tte_conv2d_out_dim(p->in_h, p->kernel_h, p->stride, p->padding);
    const int32_t ow = tte_conv2d_out_dim(p->in_w, p->kernel_w, p->stride, p->padding);
    const int64_t reduction = (int64_t)(p->in_c / p->groups) * p->kernel_h * p->kernel_w;
    if (oh < 1 || ow < 1 || reduction > TTE_MAX_REDUCTION || !fits_int32(p->in_h, p->in_w, p->in_c) ||
        !fits_int32(oh, ow, p->out_c) || !fits_int32(p->out_c, reduction, 1)) {
        return TTE_ERR_SHAPE;
    }
    if (!tte_int8_ok(p->x_zero) || !tte_int8_ok(p->y_zero) || !tte_act_range_ok(p->act_min, p->act_max)) {
        return TTE_ERR_QUANT;
    }
    *out_h = oh;
    *out_w = ow;
    return TTE_OK;
}
