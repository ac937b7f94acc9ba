/* What the four pooling kernels (the max_pool2d and avg_pool2d files of src/kernels/ref) share:
 * the descriptor's checks and each window's input pixels. Private to the engine. */
#ifndef TTE_POOL2D_IMPL_H
#define TTE_POOL2D_IMPL_H

#include "kernels-impl.h"

/* At most this many taps per window: a max pool's saved arg-max is one byte (tte_ir.ops.MAX_POOL_TAPS). */
#define TTE_POOL2D_MAX_TAPS 256

/* Checks p (tte/tte.h, tte_pool2d_params) and writes the output size: TTE_ERR_SHAPE for a size below 1,
 * more than TTE_POOL2D_MAX_TAPS taps, padding above half the kernel on any side (a window of only
 * padding), a kernel larger than the padded input or more than INT32_MAX input or output elements; TTE_ERR_ARG for a
 * count_include_pad other than 0 or 1. */
static inline tte_status tte_pool2d_check(const tte_pool2d_params *p, int32_t *out_h, int32_t *out_w) {
    if (p->in_h < 1 || p->in_w < 1 || p->in_c < 1 || p->kernel_h < 1 || p->kernel_w < 1 || p->stride_h < 1 ||
        p->stride_w < 1 || p->pad_top < 0 || p->pad_left < 0 || p->pad_bottom < 0 || p->pad_right < 0 ||
        p->kernel_h > TTE_POOL2D_MAX_TAPS || p->kernel_w > TTE_POOL2D_MAX_TAPS ||
        p->kernel_h * p->kernel_w > TTE_POOL2D_MAX_TAPS || p->pad_top > p->kernel_h / 2 ||
        p->pad_bottom > p->kernel_h / 2 || p->pad_left > p->kernel_w / 2 || p->pad_right > p->kernel_w / 2) {
        return TTE_ERR_SHAPE;
    }
    const int64_t span_h = (int64_t)p->in_h + (int64_t)p->pad_top + (int64_t)p->pad_bottom - p->kernel_h;
    const int64_t span_w = (int64_t)p->in_w + (int64_t)p->pad_left + (int64_t)p->pad_right - p->kernel_w;
    if (span_h < 0 || span_w < 0 || (int64_t)p->in_h * p->in_w * p->in_c > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    if (p->count_include_pad != 0 && p->count_include_pad != 1) {
        return TTE_ERR_ARG;
    }
    const int64_t rows = span_h / p->stride_h + 1, cols = span_w / p->stride_w + 1;
    if (rows * cols * p->in_c > INT32_MAX) {
        return TTE_ERR_SHAPE;
    }
    *out_h = (int32_t)rows;
    *out_w = (int32_t)cols;
    return TTE_OK;
}

/* The input pixels of window (oy, ox): rows [y_begin, y_end), columns [x_begin, x_end), and the
 * window's first tap (y0, x0), which may lie in the padding. */
typedef struct tte_pool2d_window {
    int32_t y0, x0;
    int32_t y_begin, y_end, x_begin, x_end;
} tte_pool2d_window;

static inline tte_pool2d_window tte_pool2d_window_at(const tte_pool2d_params *p, int32_t oy, int32_t ox) {
    tte_pool2d_window win;
    win.y0 = oy * p->stride_h - p->pad_top;
    win.x0 = ox * p->stride_w - p->pad_left;
    win.y_begin = win.y0 < 0 ? 0 : win.y0;
    win.x_begin = win.x0 < 0 ? 0 : win.x0;
    win.y_end = win.y0 + p->kernel_h < p->in_h ? win.y0 + p->kernel_h : p->in_h;
    win.x_end = win.x0 + p->kernel_w < p->in_w ? win.x0 + p->kernel_w : p->in_w;
    return win;
}

/* The divisor of window win: every tap (count_include_pad) or its input pixels. */
static inline int32_t tte_pool2d_count(const tte_pool2d_params *p, const tte_pool2d_window *win) {
    if (p->count_include_pad) {
        return p->kernel_h * p->kernel_w;
    }
    return (win->y_end - win->y_begin) * (win->x_end - win->x_begin);
}

#endif /* TTE_POOL2D_IMPL_H */
