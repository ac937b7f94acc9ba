/* Private helpers of the mini-batch update kernels (ref/ *_acc_*.c, tte/tte_train.h "Mini-batch
 * updates"): the weight gradient of one trained-slice element, the slice's element walk, and the
 * accumulate-then-apply rule the three conv families share. Not installed. */
#ifndef TTE_BATCH_IMPL_H
#define TTE_BATCH_IMPL_H

#include "kernels-impl.h"

/* dL/dw of one weight tap of trained input channel j (NUMERICS.md 4): the sum from 0, over output
 * positions (oy, ox) ascending row-major, of gh[oy][ox][gh_col] * float32(x - x_zero), one rounding per
 * multiply and per add, padded taps skipped: tte_ir.reference_train.conv2d_weight_grad's order, bit for
 * bit. x_saved [in_h][in_w][train_count]; gh [out_h][out_w][gh_stride]. */
static inline float tte_batch_tap_grad(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, const int8_t *x_saved,
                                       int32_t j, const float *gh, int32_t gh_stride, int32_t gh_col, int32_t ky,
                                       int32_t kx) {
    const int32_t k = p->train_count;
    float grad = 0.0f;
    for (int32_t oy = 0; oy < out_h; ++oy) {
        const int32_t iy = oy * p->stride_h + ky - p->pad_top;
        if (iy < 0 || iy >= p->in_h) {
            continue;
        }
        for (int32_t ox = 0; ox < out_w; ++ox) {
            const int32_t ix = ox * p->stride_w + kx - p->pad_left;
            if (ix < 0 || ix >= p->in_w) {
                continue;
            }
            const int32_t xv = (int32_t)x_saved[((size_t)iy * p->in_w + ix) * k + j] - p->x_zero;
            grad = grad + gh[((size_t)oy * out_w + ox) * gh_stride + gh_col] * (float)xv;
        }
    }
    return grad;
}

/* One element of a conv's trained slice, found from its position in w_train (and in acc, which has
 * the slice's layout): `row` indexes inv_w and gh's channels (the output channel of a dense or
 * pointwise conv, the channel of a depthwise one), j the trained channel, (ky, kx) the tap, and
 * `index` the element's index in the IR layout [O][C/groups][KH][KW] of the full weight, which names
 * its rounding noise (as in the fused update kernels). */
typedef struct tte_slice_element {
    int32_t row, j, ky, kx;
    uint32_t index;
} tte_slice_element;

static inline tte_slice_element tte_slice_at_position(const tte_conv2d_params *p, int depthwise, size_t pos) {
    tte_slice_element e;
    const size_t k = (size_t)p->train_count;
    e.j = (int32_t)(pos % k);
    size_t r = pos / k;
    e.kx = (int32_t)(r % (size_t)p->kernel_w);
    r /= (size_t)p->kernel_w;
    e.ky = (int32_t)(r % (size_t)p->kernel_h);
    const int32_t c = p->train_channels[e.j];
    e.row = depthwise ? c : (int32_t)(r / (size_t)p->kernel_h);
    const uint32_t channel = depthwise ? (uint32_t)c : (uint32_t)e.row * (uint32_t)p->in_c + (uint32_t)c;
    e.index = (channel * (uint32_t)p->kernel_h + (uint32_t)e.ky) * (uint32_t)p->kernel_w + (uint32_t)e.kx;
    return e;
}

/* The end of a conv family's mini-batch weight update (tte_conv2d_acc_apply), once the sample's gradient
 * is in acc: at a batch's end apply the QAS step of acc / batch (all elements checked before any is
 * written) and zero acc. Only elements whose row is inside gh's band [begin, begin + count) take part. */
static inline void tte_conv2d_acc_finish(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                                         int32_t batch, const float *inv_w, float *acc, int8_t *w_train, int32_t begin,
                                         int32_t count, int depthwise) {
    if (!ctx->batch_end) {
        return;
    }
    const size_t rows = depthwise ? 1u : (size_t)p->out_c;
    const size_t n = rows * (size_t)p->kernel_h * (size_t)p->kernel_w * (size_t)p->train_count;
    const float b = (float)batch;
    int ok = ctx->status == TTE_STEP_OK;
    for (size_t pos = 0; ok && pos < n; ++pos) {
        const tte_slice_element e = tte_slice_at_position(p, depthwise, pos);
        if (e.row >= begin && e.row < begin + count && !tte_qas_frozen(inv_w[e.row])) {
            ok = tte_step_value_ok(ctx, tte_qas_value(acc[pos] / b, inv_w[e.row], ctx, u));
        }
    }
    for (size_t pos = 0; pos < n; ++pos) {
        const tte_slice_element e = tte_slice_at_position(p, depthwise, pos);
        if (e.row < begin || e.row >= begin + count) {
            continue;
        }
        if (ok) {
            int32_t step = 0;
            if (!tte_qas_frozen(inv_w[e.row])) {
                step = tte_qas_round(tte_qas_value(acc[pos] / b, inv_w[e.row], ctx, u), ctx, u, e.index);
            }
            w_train[pos] = tte_weight_add(w_train[pos], step);
        }
        acc[pos] = 0.0f;
    }
}

/* The whole of a conv family's mini-batch weight update, after the kernel checked its kind: add the
 * gradient to acc (gated like every update), one element at a time, then tte_conv2d_acc_finish. Only
 * elements whose row is inside gh's band take part. */
static inline void tte_conv2d_acc_apply(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                                        int32_t batch, const int8_t *x_saved, const float *gh, const float *inv_w,
                                        float *acc, int8_t *w_train, int32_t out_h, int32_t out_w, int32_t begin,
                                        int32_t count, int depthwise) {
    const size_t rows = depthwise ? 1u : (size_t)p->out_c;
    const size_t n = rows * (size_t)p->kernel_h * (size_t)p->kernel_w * (size_t)p->train_count;
    if (tte_update_gate(ctx, gh, (size_t)out_h * out_w * count)) {
        for (size_t pos = 0; pos < n; ++pos) {
            const tte_slice_element e = tte_slice_at_position(p, depthwise, pos);
            if (e.row >= begin && e.row < begin + count && !tte_qas_frozen(inv_w[e.row])) {
                acc[pos] =
                    acc[pos] + tte_batch_tap_grad(p, out_h, out_w, x_saved, e.j, gh, count, e.row - begin, e.ky, e.kx);
            }
        }
    }
    tte_conv2d_acc_finish(p, ctx, u, batch, inv_w, acc, w_train, begin, count, depthwise);
}

/* Checks a mini-batch kernel's own arguments: the accumulator and a batch of at least one sample. */
static inline tte_status tte_batch_check(const float *acc, int32_t batch) {
    if (acc == NULL) {
        return TTE_ERR_NULL;
    }
    return batch >= 1 ? TTE_OK : TTE_ERR_ARG;
}

#endif /* TTE_BATCH_IMPL_H */
