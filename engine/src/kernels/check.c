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
        return "zero point, activation range or fixed-point multiplier out of range";
    case TTE_ERR_ARG:
        return "invalid argument value (label, channel list, band, round mode or lr group)";
    }
    return "unknown status";
}

const char *tte_step_status_str(tte_step_status status) {
    switch (status) {
    case TTE_STEP_OK:
        return "ok";
    case TTE_STEP_NONFINITE_LOSS:
        return "non-finite loss: the step was skipped";
    case TTE_STEP_NONFINITE_GRAD:
        return "non-finite gradient or update value: the remaining updates of the step were skipped";
    }
    return "unknown step status";
}

int32_t tte_conv2d_out_dim(int32_t in, int32_t kernel, int32_t stride, int32_t pad_before, int32_t pad_after) {
    if (in < 1 || kernel < 1 || stride < 1 || pad_before < 0 || pad_after < 0) {
        return 0;
    }
    /* int64: in + the paddings may exceed int32 for absurd paddings. */
    const int64_t span = (int64_t)in + (int64_t)pad_before + (int64_t)pad_after - kernel;
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

tte_status tte_conv2d_check_geometry(const tte_conv2d_params *p, int32_t *out_h, int32_t *out_w) {
    if (p->in_h < 1 || p->in_w < 1 || p->in_c < 1 || p->out_c < 1 || p->kernel_h < 1 || p->kernel_w < 1 ||
        p->stride_h < 1 || p->stride_w < 1 || p->pad_top < 0 || p->pad_left < 0 || p->pad_bottom < 0 ||
        p->pad_right < 0 || p->groups < 1) {
        return TTE_ERR_SHAPE;
    }
    if (p->in_c % p->groups != 0 || p->out_c % p->groups != 0) {
        return TTE_ERR_SHAPE;
    }
    const int32_t oh = tte_conv2d_out_dim(p->in_h, p->kernel_h, p->stride_h, p->pad_top, p->pad_bottom);
    const int32_t ow = tte_conv2d_out_dim(p->in_w, p->kernel_w, p->stride_w, p->pad_left, p->pad_right);
    const int64_t reduction = (int64_t)(p->in_c / p->groups) * p->kernel_h * p->kernel_w;
    if (oh < 1 || ow < 1 || reduction > TTE_MAX_REDUCTION || !fits_int32(p->in_h, p->in_w, p->in_c) ||
        !fits_int32(oh, ow, p->out_c) || !fits_int32(p->out_c, reduction, 1)) {
        return TTE_ERR_SHAPE;
    }
    *out_h = oh;
    *out_w = ow;
    return TTE_OK;
}

tte_status tte_conv2d_check(const tte_conv2d_params *p, int32_t *out_h, int32_t *out_w) {
    const tte_status status = tte_conv2d_check_geometry(p, out_h, out_w);
    if (status != TTE_OK) {
        return status;
    }
    if (!tte_int8_ok(p->x_zero) || !tte_int8_ok(p->y_zero) || !tte_act_range_ok(p->act_min, p->act_max)) {
        return TTE_ERR_QUANT;
    }
    return TTE_OK;
}

int tte_channel_list_ok(const int32_t *channels, int32_t count, int32_t limit) {
    if (channels == NULL || count < 1 || count > limit) {
        return 0;
    }
    for (int32_t j = 0; j < count; ++j) {
        if (channels[j] < 0 || channels[j] >= limit || (j > 0 && channels[j] <= channels[j - 1])) {
            return 0;
        }
    }
    return 1;
}

tte_status tte_conv2d_check_slice(const tte_conv2d_params *p, const int8_t *w_train, int32_t limit) {
    if (p->train_count == 0) {
        return w_train == NULL && p->train_channels == NULL ? TTE_OK : TTE_ERR_ARG;
    }
    if (w_train == NULL) {
        return TTE_ERR_NULL;
    }
    return tte_channel_list_ok(p->train_channels, p->train_count, limit) ? TTE_OK : TTE_ERR_ARG;
}

tte_status tte_conv2d_row_window(const tte_conv2d_params *p, int32_t out_h, const tte_row_band *rows, int32_t *oy_begin,
                                 int32_t *oy_end, int32_t *x_row) {
    if (rows == NULL) {
        *oy_begin = 0;
        *oy_end = out_h;
        *x_row = 0;
        return TTE_OK;
    }
    if (rows->y_row < 0 || rows->y_rows < 1 || rows->y_rows > out_h - rows->y_row || rows->x_row < 0 ||
        rows->x_rows < 1 || rows->x_rows > p->in_h - rows->x_row) {
        return TTE_ERR_ARG;
    }
    /* The unpadded input rows the band's outputs read: [first, last). */
    const int64_t first = (int64_t)rows->y_row * p->stride_h - p->pad_top;
    const int64_t last = ((int64_t)rows->y_row + rows->y_rows - 1) * p->stride_h - p->pad_top + p->kernel_h;
    const int64_t lo = first < 0 ? 0 : first;
    const int64_t hi = last > p->in_h ? p->in_h : last;
    if (lo < rows->x_row || hi > (int64_t)rows->x_row + rows->x_rows) {
        return TTE_ERR_ARG;
    }
    *oy_begin = rows->y_row;
    *oy_end = rows->y_row + rows->y_rows;
    *x_row = rows->x_row;
    return TTE_OK;
}

tte_status tte_band_window(const tte_channel_band *band, int32_t channels, int32_t *begin, int32_t *count) {
    if (band == NULL) {
        *begin = 0;
        *count = channels;
        return TTE_OK;
    }
    if (band->begin < 0 || band->count < 1 || band->count > channels - band->begin) {
        return TTE_ERR_ARG;
    }
    *begin = band->begin;
    *count = band->count;
    return TTE_OK;
}

tte_status tte_conv2d_check_update(const tte_conv2d_params *p, const tte_train_ctx *ctx, const tte_update_params *u,
                                   const int8_t *x_saved, const float *gh, const float *inv_w, const int8_t *w_train,
                                   const tte_channel_band *gh_band, int32_t *out_h, int32_t *out_w, int32_t *begin,
                                   int32_t *count) {
    if (p == NULL || x_saved == NULL || gh == NULL || inv_w == NULL || w_train == NULL) {
        return TTE_ERR_NULL;
    }
    tte_status status = tte_update_check(ctx, u);
    if (status == TTE_OK) {
        status = tte_conv2d_check_geometry(p, out_h, out_w);
    }
    if (status == TTE_OK && !tte_int8_ok(p->x_zero)) {
        status = TTE_ERR_QUANT;
    }
    if (status == TTE_OK && (!tte_channel_list_ok(p->train_channels, p->train_count, p->in_c) ||
                             tte_band_window(gh_band, p->out_c, begin, count) != TTE_OK)) {
        status = TTE_ERR_ARG;
    }
    return status;
}

tte_status tte_conv2d_fwd_check(const tte_conv2d_params *p, const int8_t *x, const int8_t *w, const int8_t *w_train,
                                const int32_t *bias, const float *multiplier, const int8_t *y, const tte_row_band *rows,
                                tte_conv2d_kind kind, tte_conv2d_window *win) {
    if (p == NULL) {
        return TTE_ERR_NULL;
    }
    /* FIXED_SINGLE (the conv family's alone) reads the same tables as FIXED */
    const int32_t requant = p->requant == TTE_REQUANT_FIXED_SINGLE ? TTE_REQUANT_FIXED : p->requant;
    if (x == NULL || w == NULL || bias == NULL || y == NULL || (multiplier == NULL && requant != TTE_REQUANT_FIXED)) {
        return TTE_ERR_NULL;
    }
    tte_status status = tte_conv2d_check(p, &win->out_h, &win->out_w);
    if (status == TTE_OK) {
        status = tte_requant_check(requant, p->qmult, p->qshift, p->out_c);
    }
    if (status == TTE_OK && kind == TTE_CONV2D_POINTWISE &&
        (p->kernel_h != 1 || p->kernel_w != 1 || !tte_conv2d_unpadded(p) || p->groups != 1)) {
        status = TTE_ERR_SHAPE;
    }
    if (status == TTE_OK && kind == TTE_CONV2D_DEPTHWISE && (p->groups != p->in_c || p->out_c != p->in_c)) {
        status = TTE_ERR_SHAPE;
    }
    if (status == TTE_OK && kind == TTE_CONV2D_DENSE && p->train_count != 0 && p->groups != 1) {
        status = TTE_ERR_ARG; /* only a groups-1 dense conv trains a slice of input channels */
    }
    if (status == TTE_OK) {
        status = tte_conv2d_check_slice(p, w_train, p->in_c);
    }
    if (status == TTE_OK) {
        status = tte_conv2d_row_window(p, win->out_h, rows, &win->oy_begin, &win->oy_end, &win->x_row);
    }
    return status;
}

tte_status tte_requant_check(int32_t requant, const int32_t *qmult, const int32_t *qshift, int32_t n) {
    if (requant == TTE_REQUANT_FLOAT) {
        return TTE_OK;
    }
    if (requant != TTE_REQUANT_FIXED) {
        return TTE_ERR_QUANT;
    }
    if (qmult == NULL || qshift == NULL) {
        return TTE_ERR_NULL;
    }
    for (int32_t i = 0; i < n; ++i) {
        if (!tte_fixed_ok(qmult[i], qshift[i])) {
            return TTE_ERR_QUANT;
        }
    }
    return TTE_OK;
}
