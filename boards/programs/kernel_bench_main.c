/* Counts one call of each forward conv kernel on the shapes of kernel_shapes: the reference kernel
 * (tte_ref_<kernel>), the kernel the build selected (tte_<kernel>: src/kernels/arm on ARMv7E-M) and,
 * built with TTE_BENCH_CMSIS_NN, CMSIS-NN's wrapper for the same layer (arm_convolve_wrapper_s8,
 * arm_depthwise_conv_wrapper_s8), compiled from ../shared/anchors/cmsis-nn by the board build, for
 * measurement only. Data are random; CMSIS-NN gets fixed-point multipliers of the same magnitude.
 * On the shapes marked backward, also one call of each portable fp32 backward kernel (the same code on
 * every target, so there is no reference twin to count): the input gradient and the fused weight gradient
 * + QAS update of every other input channel (a trained slice of half the channels), nearest rounding.
 * Prints, for boards/tools/kernel_bench.py:
 *     BENCH <shape> kind=<pointwise|depthwise|dense> macs=<n> ref=<count> tte=<count> cmsis=<count or ->
 *     BWD <shape> kind=<bwd_x|bwd_w_update> macs=<n> count=<count>
 *     DONE unit=<counter unit> */
#include <stdio.h>

#include "board.h"
#include "kernel_shapes.h"
#include "tte/tte.h"
#include "tte/tte_ref.h"
#include "tte/tte_train.h"

#ifdef TTE_BENCH_CMSIS_NN
#include "arm_nnfunctions.h"
#endif

#define MAX_BYTES (192 * 1024)
#define MAX_CHANNELS 1024
#define MAX_FLOATS (96 * 1024) /* gh and gx of a backward layer */

typedef tte_status (*conv_kernel)(const tte_conv2d_params *, const int8_t *, const int8_t *, const int8_t *,
                                  const int32_t *, const float *, int8_t *, uint8_t *, const tte_row_band *, void *);

static int8_t x[MAX_BYTES], w[MAX_BYTES], y[MAX_BYTES];
static int32_t bias[MAX_CHANNELS], shift[MAX_CHANNELS], fixed_multiplier[MAX_CHANNELS];
static float multiplier[MAX_CHANNELS];
static float gh[MAX_FLOATS], gx[MAX_FLOATS], inv_w[MAX_CHANNELS];
static int32_t train_channels[MAX_CHANNELS];
static uint32_t rng = 0x2545f491u;

#ifdef TTE_BENCH_CMSIS_NN
static int8_t cmsis_buffer[MAX_BYTES];
#endif

static uint32_t next(void) { /* xorshift32 */
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static uint64_t count_tte(conv_kernel kernel, const tte_conv2d_params *p) {
    board_counter_start();
    const tte_status status = kernel(p, x, w, NULL, bias, multiplier, y, NULL, NULL, NULL);
    const uint64_t count = board_counter_read();
    if (status != TTE_OK) {
        board_printf("FAIL %s\n", tte_status_str(status));
    }
    return count;
}

#ifdef TTE_BENCH_CMSIS_NN
/* CMSIS-NN's call of the same layer; 0 when it refuses the shape. */
static uint64_t count_cmsis(const kernel_shape *s, const tte_conv2d_params *p, int32_t out_h, int32_t out_w) {
    const cmsis_nn_dims input = {1, s->in_h, s->in_w, s->in_c};
    const cmsis_nn_dims output = {1, out_h, out_w, s->out_c};
    const cmsis_nn_dims bias_dims = {1, 1, 1, s->out_c};
    const cmsis_nn_per_channel_quant_params quant = {fixed_multiplier, shift};
    /* {w, h}; CMSIS-NN pads pad_left / pad_top before and takes the rest from the output size */
    const cmsis_nn_tile stride = {s->stride_w, s->stride_h}, padding = {s->pad_left, s->pad_top}, dilation = {1, 1};
    const cmsis_nn_activation activation = {p->act_min, p->act_max};
    cmsis_nn_context ctx = {cmsis_buffer, 0};
    arm_cmsis_nn_status status;
    uint64_t count;
    if (s->kind == KERNEL_DEPTHWISE) {
        const cmsis_nn_dims filter = {1, s->kernel_h, s->kernel_w, s->out_c};
        const cmsis_nn_dw_conv_params dw = {-p->x_zero, p->y_zero, 1, stride, padding, dilation, activation};
        ctx.size = arm_depthwise_conv_wrapper_s8_get_buffer_size(&dw, &input, &filter, &output);
        if (ctx.size > (int32_t)sizeof cmsis_buffer) {
            return 0;
        }
        board_counter_start();
        status = arm_depthwise_conv_wrapper_s8(&ctx, &dw, &quant, &input, x, &filter, w, &bias_dims, bias, &output, y);
        count = board_counter_read();
    } else {
        const cmsis_nn_dims filter = {s->out_c, s->kernel_h, s->kernel_w, s->in_c};
        const cmsis_nn_conv_params conv = {-p->x_zero, p->y_zero, stride, padding, dilation, activation};
        ctx.size = arm_convolve_wrapper_s8_get_buffer_size(&conv, &input, &filter, &output);
        if (ctx.size > (int32_t)sizeof cmsis_buffer) {
            return 0;
        }
        board_counter_start();
        status = arm_convolve_wrapper_s8(&ctx, &conv, &quant, &input, x, &filter, w, &bias_dims, bias, &output, y);
        count = board_counter_read();
    }
    return status == ARM_CMSIS_NN_SUCCESS ? count : 0;
}
#endif

/* The layer's input gradient and weight gradient + update (trained slice: every other input channel;
 * its codes are the first ones of w). MACs: those of the forward conv, and of its trained weights. */
static void count_backward(const kernel_shape *s, tte_conv2d_params p, int32_t out_h, int32_t out_w) {
    const int depthwise = s->kind == KERNEL_DEPTHWISE, dense = s->kind == KERNEL_DENSE;
    const int32_t window = s->kernel_h * s->kernel_w;
    if ((int64_t)out_h * out_w * s->out_c > MAX_FLOATS || (int64_t)s->in_h * s->in_w * s->in_c > MAX_FLOATS) {
        board_printf("FAIL %s too large for the bench's float buffers\n", s->name);
        return;
    }
    for (int32_t j = 0; j < out_h * out_w * s->out_c; ++j) {
        gh[j] = (float)((int32_t)(next() % 2001u) - 1000) * 1e-6f;
    }
    for (int32_t o = 0; o < s->out_c; ++o) {
        inv_w[o] = 1000.0f + (float)o;
    }
    const int32_t k = (s->in_c + 1) / 2;
    for (int32_t j = 0; j < k; ++j) {
        train_channels[j] = 2 * j;
    }
    const uint64_t macs = (uint64_t)out_h * out_w * s->out_c * window * (depthwise ? 1 : s->in_c / s->groups);
    board_counter_start();
    tte_status status = depthwise ? tte_depthwise_conv2d_bwd_x_f32(&p, gh, w, NULL, gx, 0, NULL, NULL)
                        : dense   ? tte_conv2d_bwd_x_f32(&p, gh, w, NULL, gx, 0, NULL, NULL)
                                  : tte_pointwise_conv2d_bwd_x_f32(&p, gh, w, NULL, gx, 0, NULL, NULL);
    uint64_t count = board_counter_read();
    board_printf("BWD %s kind=bwd_x macs=%lu count=%lu\n", s->name, (unsigned long)macs, (unsigned long)count);
    p.train_channels = train_channels;
    p.train_count = k;
    tte_train_ctx ctx = {.lr = {0.01f, 0.01f}, .step = 1, .seed = 11, .status = TTE_STEP_OK};
    const tte_update_params u = {TTE_ROUND_NEAREST, TTE_LR_BODY, 7};
    board_counter_start();
    const tte_status update = depthwise ? tte_depthwise_conv2d_bwd_w_update_s8(&p, &ctx, &u, x, gh, inv_w, w, NULL)
                              : dense   ? tte_conv2d_bwd_w_update_s8(&p, &ctx, &u, x, gh, inv_w, w, NULL)
                                        : tte_pointwise_conv2d_bwd_w_update_s8(&p, &ctx, &u, x, gh, inv_w, w, NULL);
    count = board_counter_read();
    const uint64_t w_macs = (uint64_t)out_h * out_w * window * k * (depthwise ? 1 : s->out_c);
    board_printf("BWD %s kind=bwd_w_update macs=%lu count=%lu\n", s->name, (unsigned long)w_macs, (unsigned long)count);
    if (status != TTE_OK || update != TTE_OK || ctx.status != TTE_STEP_OK) {
        board_printf("FAIL %s %s %s\n", s->name, tte_status_str(status != TTE_OK ? status : update),
                     ctx.status != TTE_STEP_OK ? "step failed" : "");
    }
}

int main(void) {
    for (uint32_t i = 0; i < kernel_shape_count; ++i) {
        const kernel_shape *s = &kernel_shapes[i];
        const int depthwise = s->kind == KERNEL_DEPTHWISE, dense = s->kind == KERNEL_DENSE;
        const tte_conv2d_params p = {
            .in_h = s->in_h,
            .in_w = s->in_w,
            .in_c = s->in_c,
            .out_c = s->out_c,
            .kernel_h = s->kernel_h,
            .kernel_w = s->kernel_w,
            .stride_h = s->stride_h,
            .stride_w = s->stride_w,
            .pad_top = s->pad_top,
            .pad_left = s->pad_left,
            .pad_bottom = s->pad_bottom,
            .pad_right = s->pad_right,
            .groups = s->groups,
            .x_zero = -5,
            .y_zero = 3,
            .act_min = -128,
            .act_max = 127,
        };
        const int32_t out_h = tte_conv2d_out_dim(s->in_h, s->kernel_h, s->stride_h, s->pad_top, s->pad_bottom);
        const int32_t out_w = tte_conv2d_out_dim(s->in_w, s->kernel_w, s->stride_w, s->pad_left, s->pad_right);
        const int32_t window = s->kernel_h * s->kernel_w; /* 1 for pointwise */
        const int32_t reduction = depthwise ? window : window * (s->in_c / s->groups);
        const int32_t weights = depthwise ? window * s->in_c : s->out_c * reduction;
        if (s->in_h * s->in_w * s->in_c > MAX_BYTES || out_h * out_w * s->out_c > MAX_BYTES || weights > MAX_BYTES ||
            s->out_c > MAX_CHANNELS) {
            board_printf("FAIL %s too large for the bench's buffers\n", s->name);
            return 1;
        }
        for (int32_t j = 0; j < s->in_h * s->in_w * s->in_c; ++j) {
            x[j] = (int8_t)next();
        }
        for (int32_t j = 0; j < weights; ++j) {
            w[j] = (int8_t)next();
        }
        for (int32_t o = 0; o < s->out_c; ++o) {
            bias[o] = (int32_t)(next() % 20001u) - 10000;
            multiplier[o] = 1.0f / 4096.0f;
            fixed_multiplier[o] = 1 << 30; /* 0.5 * 2^-11 = 2^-12 */
            shift[o] = -11;
        }
        const uint64_t macs = (uint64_t)out_h * out_w * s->out_c * reduction;
        const conv_kernel ref = dense       ? tte_ref_conv2d_fwd_s8
                                : depthwise ? tte_ref_depthwise_conv2d_fwd_s8
                                            : tte_ref_pointwise_conv2d_fwd_s8;
        const conv_kernel opt = dense       ? tte_conv2d_fwd_s8
                                : depthwise ? tte_depthwise_conv2d_fwd_s8
                                            : tte_pointwise_conv2d_fwd_s8;
        const uint64_t count_ref = count_tte(ref, &p);
        const uint64_t count_opt = count_tte(opt, &p);
        board_printf("BENCH %s kind=%s macs=%lu ref=%lu tte=%lu cmsis=", s->name,
                     dense       ? "dense"
                     : depthwise ? "depthwise"
                                 : "pointwise",
                     (unsigned long)macs, (unsigned long)count_ref, (unsigned long)count_opt);
#ifdef TTE_BENCH_CMSIS_NN
        const uint64_t count_nn = count_cmsis(s, &p, out_h, out_w);
        if (count_nn > 0) {
            board_printf("%lu\n", (unsigned long)count_nn);
        } else {
            board_printf("-\n");
        }
#else
        board_printf("-\n");
#endif
        if (kernel_shape_backward[i]) {
            count_backward(s, p, out_h, out_w);
        }
    }
    board_printf("DONE unit=%s\n", board_counter_unit);
    return 0;
}
