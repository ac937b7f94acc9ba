/* tte - the Tiny Training Engine: int8 CNN kernels for microcontrollers.
 *
 * Overview
 * --------
 * The engine is a set of plain C99 kernels with no allocation, no global state
 * and no libm. The caller (generated code, a test, the Python binding) owns
 * every buffer, including kernel scratch, whose size it asks from the
 * `..._scratch_size()` twin of a kernel. Kernels implement the math of
 * NUMERICS.md section 2 exactly: int32 sums of products, a saturating bias add,
 * one float32 multiply by a precomputed multiplier, round half to even, clamp.
 * Results are bit-exact with the numpy reference (tte_ir.reference) on the host
 * and on Cortex-M, provided everything is built with -ffp-contract=off and
 * without -ffast-math (the CMake target adds the former to its users).
 *
 * Fixed-point requantization (NUMERICS.md section 2b): a descriptor whose
 * `requant` field is TTE_REQUANT_FIXED computes TensorFlow Lite's reference
 * integer arithmetic instead (QuantizeMultiplier's multipliers and shifts,
 * gemmlowp's rounding doubling high multiply and rounding right shift), with
 * no floating point in the forward; TTE_REQUANT_FLOAT (0, a zeroed descriptor)
 * is the float32 rounding above.
 *
 * Memory layouts (batch 1, row-major, last index fastest)
 * -------------------------------------------------------
 *   activations          [H][W][C]            int8   (HWC)
 *   dense conv weights   [O][KH][KW][C/groups] int8  (OHWI)
 *   depthwise weights    [KH][KW][C]          int8
 *   pointwise weights    [O][C]               int8
 *   linear weights       [O][I]               int8 or float32
 *   bias                 [O]                  int32 (float32 for linear f32)
 *   multipliers M        [O]                  float32, M[o] = s_x*s_w[o]/s_y
 *   clamp mask           [ceil(n/8)]          uint8, bit-packed: element i of the
 *       output (in the output's memory order) is bit (i % 8) of byte i / 8;
 *       the bit is 1 when act_min <= rne(v) + y_zero <= act_max (not clamped).
 *       Kernels write it only when given a non-NULL pointer; unused trailing
 *       bits of the last byte are left as they were.
 *
 * Usage
 * -----
 *     // x: [32][32][16] int8, w: [16][3][3][16] int8, b: [16] int32, m: [16] float
 *     tte_conv2d_params p = {
 *         .in_h = 32, .in_w = 32, .in_c = 16, .out_c = 16,
 *         .kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1,
 *         .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1, .groups = 1,
 *         .x_zero = -3, .y_zero = -128, .act_min = -128, .act_max = 127,
 *     };
 *     static int8_t y[32 * 32 * 16];                   // [32][32][16] int8
 *     // scratch: tte_conv2d_fwd_s8_scratch_size(&p) bytes; NULL is fine when that is 0
 *     tte_status s = tte_conv2d_fwd_s8(&p, x, w, NULL, b, m, y, NULL, NULL, NULL);
 *     if (s != TTE_OK) { puts(tte_status_str(s)); }
 *
 * Every kernel checks its descriptor and pointers and returns a status instead
 * of computing garbage; outputs are untouched when the status is not TTE_OK.
 *
 * Training (loss, backward, QAS updates, the step context, channel tiles) is in
 * tte/tte_train.h, included below; the stochastic-rounding hash in tte/tte_rounding.h.
 */
#ifndef TTE_TTE_H
#define TTE_TTE_H

#include <stddef.h>
#include <stdint.h>

#include "tte/tte_ops.h" /* op and dtype ids shared with tte_ir (generated) */

#ifdef __cplusplus
extern "C" {
#endif

/* Outcome of a kernel call. */
typedef enum tte_status {
    TTE_OK = 0,
    TTE_ERR_NULL = 1,  /* a required pointer is NULL */
    TTE_ERR_SHAPE = 2, /* a size, stride, padding or group count is invalid or inconsistent */
    TTE_ERR_QUANT = 3, /* a zero point or activation range outside int8, or a bad requantization */
    TTE_ERR_ARG = 4    /* an argument value is invalid: a label, channel list, band, round mode or lr group */
} tte_status;

/* A static, human-readable description of a status. */
const char *tte_status_str(tte_status status);

/* The longest reduction (C/groups * KH * KW, or I) a kernel accepts: the int32
 * sum of products cannot overflow while K * 255 * 128 < 2^31 (NUMERICS.md 2). */
#define TTE_MAX_REDUCTION 65793

/* Output extent of a convolution or pool along one axis, (in + pad_before + pad_after - kernel) / stride + 1;
 * < 1 when the kernel does not fit. */
int32_t tte_conv2d_out_dim(int32_t in, int32_t kernel, int32_t stride, int32_t pad_before, int32_t pad_after);

/* The requantization of a forward kernel's descriptor (its `requant` field, NUMERICS.md 2 and 2b):
 * FLOAT, one float32 multiply and round half to even; FIXED, TFLite's integer arithmetic
 *     v = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^max(shift, 0), qmult), max(-shift, 0))
 * (MultiplyByQuantizedMultiplier; the left shift wraps in int32), y = clamp(v + y_zero, lo, hi), and
 * the mask bit [lo <= v + y_zero <= hi]; FIXED_SINGLE (conv-family and linear descriptors only), TFLite's
 * single-rounding MultiplyByQuantizedMultiplier of its int8 FULLY_CONNECTED instead,
 *     v = (int32)((x * qmult + 2^(30 - shift)) >> (31 - shift))   (in int64; the cast wraps)
 * Other values are TTE_ERR_QUANT. */
enum { TTE_REQUANT_FLOAT = 0, TTE_REQUANT_FIXED = 1, TTE_REQUANT_FIXED_SINGLE = 2 };

/* One descriptor for the dense, depthwise and pointwise int8 convolutions.
 * Output: [out_h][out_w][out_c] with out_h = tte_conv2d_out_dim(in_h, kernel_h, stride_h, pad_top,
 * pad_bottom) and out_w = tte_conv2d_out_dim(in_w, kernel_w, stride_w, pad_left, pad_right): output
 * (oy, ox) reads input rows oy*stride_h - pad_top + [0, kernel_h) and columns
 * ox*stride_w - pad_left + [0, kernel_w). TFLite's SAME padding at stride 2 is the asymmetric case
 * (one more row or column at the bottom or right). */
typedef struct tte_conv2d_params {
    int32_t in_h, in_w, in_c;      /* input x: [in_h][in_w][in_c] */
    int32_t out_c;                 /* output channels O */
    int32_t kernel_h, kernel_w;    /* KH, KW, any sizes */
    int32_t stride_h, stride_w;    /* along H and W, >= 1 */
    int32_t pad_top, pad_left;     /* zero padding before the first row / column, >= 0 */
    int32_t pad_bottom, pad_right; /* after the last row / column, >= 0; padded taps contribute 0 */
    int32_t groups;                /* divides in_c and out_c (depthwise: in_c; pointwise: 1) */
    int32_t x_zero, y_zero;        /* zero points, [-128, 127] */
    int32_t act_min, act_max;      /* output clamp, -128 <= act_min <= act_max <= 127 */
    /* Channels whose weights train (tte_train.h): they are read from the SRAM slice w_train instead
     * of w. Ascending indices of input channels (dense with groups 1, pointwise) or of channels
     * (depthwise). NULL and 0 when the conv has no trained slice. */
    const int32_t *train_channels;
    int32_t train_count;
    /* Forward only: TTE_REQUANT_FLOAT (multiplier[o] used) or TTE_REQUANT_FIXED(_SINGLE), which uses
     * qmult[O] and qshift[O] (TFLite's per-channel QuantizeMultiplier of s_x*s_w[o]/s_y in float64,
     * qshift in [-31, 30]) instead, with acc + bias as x; NULL under FLOAT. */
    int32_t requant;
    const int32_t *qmult;
    const int32_t *qshift;
} tte_conv2d_params;

/* A band of output rows, for row-tiled execution of the frozen forward prefix (tte_ir.tiling,
 * axis "rows"): the kernel computes output rows [y_row, y_row + y_rows) and writes them from y[0]
 * on; x holds rows [x_row, x_row + x_rows) of the whole input (p->in_h rows), which must cover
 * every unpadded input row those outputs read (else TTE_ERR_ARG). Mask bits, when kept, go to the
 * whole output's element indices. Int8 results are exact, so recomputed halo rows are identical. */
typedef struct tte_row_band {
    int32_t x_row, x_rows;
    int32_t y_row, y_rows;
} tte_row_band;

/* Dense KH x KW convolution, any strides, padding and group count.
 * x [in_h][in_w][in_c] int8; w [O][KH][KW][in_c/groups] int8; w_train NULL, or the trained slice
 * [O][KH][KW][train_count] (groups 1) replacing channels p->train_channels of w; bias [O] int32;
 * multiplier [O] float32; y [out_h][out_w][O] int8; mask NULL or bit-packed
 * [ceil(out_h*out_w*O/8)]; rows NULL (the whole output) or a row band, x and y then holding only
 * its rows; scratch of tte_conv2d_fwd_s8_scratch_size() bytes. */
size_t tte_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p);
tte_status tte_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w, const int8_t *w_train,
                             const int32_t *bias, const float *multiplier, int8_t *y, uint8_t *mask,
                             const tte_row_band *rows, void *scratch);

/* Depthwise convolution (groups == in_c == out_c), any kernel size, strides and padding.
 * w [KH][KW][C] int8; w_train NULL or [KH][KW][train_count]; other buffers as tte_conv2d_fwd_s8. */
size_t tte_depthwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p);
tte_status tte_depthwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                       const int8_t *w_train, const int32_t *bias, const float *multiplier, int8_t *y,
                                       uint8_t *mask, const tte_row_band *rows, void *scratch);

/* Pointwise (1x1) convolution: kernel 1x1, padding 0 on every side, groups 1, any strides.
 * w [O][in_c] int8; w_train NULL or [O][train_count]; other buffers as tte_conv2d_fwd_s8. */
size_t tte_pointwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p);
tte_status tte_pointwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                       const int8_t *w_train, const int32_t *bias, const float *multiplier, int8_t *y,
                                       uint8_t *mask, const tte_row_band *rows, void *scratch);

/* Quantized residual add of two int8 tensors of `size` elements (any layout,
 * the same for both): v = m1*(q1 - z1) + m2*(q2 - z2) in float32. Under TTE_REQUANT_FIXED, TFLite's
 * int8 ADD (MBQM is MultiplyByQuantizedMultiplier, every value int32):
 *     a = MBQM((q1 - z1) << left_shift, qm1, sh1); b = MBQM((q2 - z2) << left_shift, qm2, sh2)
 *     v = MBQM(a + b, qmy, shy) */
typedef struct tte_add_params {
    int32_t size;             /* elements of x1, x2 and y */
    float m1, m2;             /* float32(s1/s_y), float32(s2/s_y) */
    int32_t z1, z2, y_zero;   /* zero points, [-128, 127] */
    int32_t act_min, act_max; /* output clamp */
    int32_t requant;          /* TTE_REQUANT_FLOAT or TTE_REQUANT_FIXED */
    int32_t left_shift;       /* FIXED: 20 (tte_ir.quant.add_fixed_params), shifts in [-31, 0] */
    int32_t qm1, sh1, qm2, sh2, qmy, shy;
} tte_add_params;

/* x1, x2, y [size] int8; mask NULL or bit-packed [ceil(size/8)]. */
tte_status tte_add_fwd_s8(const tte_add_params *p, const int8_t *x1, const int8_t *x2, int8_t *y, uint8_t *mask);

/* Global average pool [H][W][C] -> [C]: v = float32(sum(q - x_zero)) * multiplier. Under
 * TTE_REQUANT_FIXED, TFLite's int8 MEAN over H and W: v = MBQM(sum(q - x_zero), qm, sh), with 1/(H*W)
 * folded into qm and sh (tte_ir.quant.mean_fixed_multiplier). */
typedef struct tte_global_avg_pool_params {
    int32_t in_h, in_w, in_c; /* input x: [in_h][in_w][in_c] */
    float multiplier;         /* float32(s_x / (s_y*H*W)) */
    int32_t x_zero, y_zero;   /* zero points; the output clamp is [-128, 127] */
    int32_t requant;          /* TTE_REQUANT_FLOAT or TTE_REQUANT_FIXED */
    int32_t qm, sh;           /* FIXED: sh in [-31, 30] */
} tte_global_avg_pool_params;

/* x [in_h][in_w][in_c] int8; y [in_c] int8; mask NULL or bit-packed [ceil(in_c/8)]. */
tte_status tte_global_avg_pool_fwd_s8(const tte_global_avg_pool_params *p, const int8_t *x, int8_t *y, uint8_t *mask);

/* Fully connected int8 layer: a 1x1 convolution on a 1x1 map. */
typedef struct tte_linear_params {
    int32_t in_features, out_features; /* I, O */
    int32_t x_zero, y_zero;            /* zero points, [-128, 127] */
    int32_t act_min, act_max;          /* output clamp */
    int32_t requant;                   /* as tte_conv2d_params: FIXED uses qmult[O], qshift[O] */
    const int32_t *qmult;
    const int32_t *qshift;
} tte_linear_params;

/* x [I] int8; w [O][I] int8; bias [O] int32; multiplier [O] float32; y [O] int8;
 * mask NULL or bit-packed [ceil(O/8)]. */
tte_status tte_linear_fwd_s8(const tte_linear_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                             const float *multiplier, int8_t *y, uint8_t *mask);

/* Float32 classifier head on an int8 input: x_f[i] = x_scale*float32(x[i] - x_zero),
 * y[o] = bias[o] + (sum over ascending i of w[o][i]*x_f[i]), all in float32, no FMA. */
typedef struct tte_linear_f32_params {
    int32_t in_features, out_features; /* I, O */
    float x_scale;                     /* s_x > 0 */
    int32_t x_zero;                    /* [-128, 127] */
} tte_linear_f32_params;

/* x [I] int8; w [O][I] float32; bias [O] float32; y [O] float32. */
tte_status tte_linear_fwd_f32(const tte_linear_f32_params *p, const int8_t *x, const float *w, const float *bias,
                              float *y);

/* Elementwise int8 activation by table (hard-swish, hard-sigmoid, sigmoid): y[i] = table[x[i] + 128].
 * The table is a compile-time constant (tte_ir.quant.lut_tables) holding the activation, both
 * tensors' quantization and the output clamp; it needs no clamp mask. */
typedef struct tte_lut_params {
    int32_t size; /* elements of x and y (any layout, the same for both) */
} tte_lut_params;

/* x, y [size] int8 (y may equal x); table [256] int8, entry q + 128 for input code q. */
tte_status tte_lut_s8(const tte_lut_params *p, const int8_t *x, const int8_t *table, int8_t *y);

/* Channel-wise multiply of a map by a vector (squeeze-and-excite):
 *     v = m * float32((a[p][c] - a_zero) * (b[c] - b_zero))
 * the product exact in int32 (|product| <= 255*255), then one float32 multiply, requantized as a conv.
 * Under TTE_REQUANT_FIXED, TFLite's int8 MUL: v = MBQM((a[p][c] - a_zero) * (b[c] - b_zero), qm, sh). */
typedef struct tte_mul_params {
    int32_t pixels, channels;       /* a and y: [pixels][channels]; b: [channels] */
    float m;                        /* float32(s_a*s_b/s_y) */
    int32_t a_zero, b_zero, y_zero; /* zero points, [-128, 127] */
    int32_t act_min, act_max;       /* output clamp */
    int32_t requant;                /* TTE_REQUANT_FLOAT or TTE_REQUANT_FIXED */
    int32_t qm, sh;                 /* FIXED: sh in [-31, 30] */
} tte_mul_params;

/* a [pixels][channels] int8; b [channels] int8; y [pixels][channels] int8 (y may equal a);
 * mask NULL or bit-packed [ceil(pixels*channels/8)]. */
tte_status tte_mul_fwd_s8(const tte_mul_params *p, const int8_t *a, const int8_t *b, int8_t *y, uint8_t *mask);

/* Pooling over kernel_h x kernel_w windows (max_pool, avg_pool and their backward kernels, NUMERICS.md 2
 * and 4). Window (oy, ox) covers input rows oy*stride_h - pad_top + [0, kernel_h) and columns
 * ox*stride_w - pad_left + [0, kernel_w); out_h = (in_h + pad_top + pad_bottom - kernel_h) / stride_h + 1,
 * likewise out_w with pad_left, pad_right and stride_w. At most 256 taps (kernel_h*kernel_w), pad_top and
 * pad_bottom <= kernel_h/2, pad_left and pad_right <= kernel_w/2, so every window holds at least one
 * input pixel; padded taps are never read. */
typedef struct tte_pool2d_params {
    int32_t in_h, in_w, in_c;      /* input x: [in_h][in_w][in_c] */
    int32_t kernel_h, kernel_w;    /* window */
    int32_t stride_h, stride_w;    /* along H and W, >= 1 */
    int32_t pad_top, pad_left;     /* before the first row / column, >= 0 */
    int32_t pad_bottom, pad_right; /* after the last row / column, >= 0 */
    int32_t count_include_pad;     /* avg: 1 divides by kernel_h*kernel_w, 0 by the window's input pixels */
    int32_t x_zero, y_zero;        /* avg: zero points, [-128, 127]; the output clamp is [-128, 127] */
    /* avg, forward: TTE_REQUANT_FLOAT (the multiplier table) or TTE_REQUANT_FIXED: with qmult NULL,
     * TFLite's int8 AVERAGE_POOL_2D (x and y share scale and zero point): v = the codes' sum s divided
     * by count, rounded half away from zero ((s + count/2)/count, or (s - count/2)/count for s <= 0, C
     * division), y = clamp(v); else v = MBQM(sum(q - x_zero), qmult[count], qshift[count]) and
     * y = clamp(v + y_zero) (tables [kernel_h*kernel_w + 1], tte_ir.quant.avg_pool_fixed_multipliers). */
    int32_t requant;
    const int32_t *qmult;
    const int32_t *qshift;
} tte_pool2d_params;

/* Max pool: y = the largest code of each window (codes are copied: y has x's scale and zero point).
 * x [in_h][in_w][in_c] int8; y [out_h][out_w][in_c] int8; index NULL or [out_h][out_w][in_c] uint8,
 * the window offset u*kernel_w + v of the first largest tap in row-major window order (ties go to the
 * earliest tap), kept for backward. */
tte_status tte_max_pool2d_fwd_s8(const tte_pool2d_params *p, const int8_t *x, int8_t *y, uint8_t *index);

/* Average pool: v = float32(sum over the window's input pixels of (q - x_zero)) * multiplier[count],
 * count = kernel_h*kernel_w (count_include_pad) or the window's input pixels, then requantized to
 * [-128, 127] with y_zero. multiplier [kernel_h*kernel_w + 1] float32, entry n = float32(s_x/(s_y*n));
 * y [out_h][out_w][in_c] int8; mask NULL or bit-packed [ceil(out_h*out_w*in_c/8)]. */
tte_status tte_avg_pool2d_fwd_s8(const tte_pool2d_params *p, const int8_t *x, const float *multiplier, int8_t *y,
                                 uint8_t *mask);

/* Channel ops (ShuffleNet; NUMERICS.md 2 and 4): codes, or float32 gradients in a training step, copied
 * unchanged between [pixels][channels] buffers (a map of one pixel is a [C] vector). Each has an int8
 * (_s8) and a float32 (_f32) twin; int8 inputs and outputs share one scale and zero point. Outputs must
 * not overlap inputs (a code generator runs a concat or split of one-pixel maps as a view instead:
 * tte_ir.views). */
typedef struct tte_concat_params {
    int32_t pixels;                 /* H*W of a, b and y */
    int32_t a_channels, b_channels; /* a [pixels][a_channels], b [pixels][b_channels] */
} tte_concat_params;

/* concat: y [pixels][a_channels + b_channels], y[p] = a[p] then b[p]. */
tte_status tte_concat_s8(const tte_concat_params *p, const int8_t *a, const int8_t *b, int8_t *y);
tte_status tte_concat_f32(const tte_concat_params *p, const float *a, const float *b, float *y);

typedef struct tte_channel_split_params {
    int32_t pixels;       /* H*W */
    int32_t in_c;         /* channels of the whole map */
    int32_t start, count; /* the range [start, start + count) inside [0, in_c) */
} tte_channel_split_params;

/* channel_split: x [pixels][in_c]; y [pixels][count], y[p][k] = x[p][start + k]. */
tte_status tte_channel_split_s8(const tte_channel_split_params *p, const int8_t *x, int8_t *y);
tte_status tte_channel_split_f32(const tte_channel_split_params *p, const float *x, float *y);

typedef struct tte_channel_shuffle_params {
    int32_t pixels, channels; /* x and y: [pixels][channels] */
    int32_t groups;           /* >= 1, divides channels */
} tte_channel_shuffle_params;

/* channel_shuffle: y[p][j*groups + i] = x[p][i*(channels/groups) + j] (PyTorch's
 * view(N, g, C/g, H, W).transpose(1, 2)); the shuffle with channels/groups groups is its inverse. */
tte_status tte_channel_shuffle_s8(const tte_channel_shuffle_params *p, const int8_t *x, int8_t *y);
tte_status tte_channel_shuffle_f32(const tte_channel_shuffle_params *p, const float *x, float *y);

#ifdef __cplusplus
}
#endif

#include "tte/tte_train.h" /* loss, backward and update kernels */

#endif /* TTE_TTE_H */
