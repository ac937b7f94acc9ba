/* tte training kernels: loss, backward and the fused QAS updates of NUMERICS.md sections 3-5.
 * Included by tte/tte.h; the conventions of that header (HWC layouts, status codes, no allocation,
 * bit-packed masks in the engine's element order) hold here too.
 *
 * Conventions
 * -----------
 * - Gradients are float32, with respect to integer codes, in the layout of the tensor they belong
 *   to: [H][W][C] for a feature map, [C] for a vector. One kernel call is one tte_ir training node.
 * - Float sums run in one fixed order, stated per kernel (ascending index), and every target builds
 *   with -ffp-contract=off: the host and every Cortex-M give the same bits. Where a kernel says
 *   "fmaf", that step is a fused multiply-add the source asks for explicitly (rounded once: the same
 *   bits on VFMA, x86 FMA and a correct software fmaf, NUMERICS.md 4). The blocked kernels keep one
 *   chain per output element, so no blocking or band split changes a bit. numpy may sum in another
 *   order: compare with it by tolerance (NUMERICS.md 7), except where a kernel says it is bit-exact.
 *   The one exception between targets: a NaN result's sign and payload are the FPU's choice (x86
 *   and Arm differ); that a value is NaN is the same everywhere.
 * - In place: where the IR writes an output over an input (mask_scale, add_bwd, accumulate, the
 *   accumulating input gradient, every update), the output pointer may equal that input pointer.
 *   No other buffers may overlap.
 * - Trained weight slices (w_train): the SRAM copy of the trained channels of a conv, listed in
 *   tte_conv2d_params.train_channels (ascending). Its layout is the full weight's engine layout with
 *   the channel axis cut to the train_count listed channels, in list order:
 *       dense      [O][KH][KW][k]   (trained input channels)
 *       pointwise  [O][k]           (trained input channels)
 *       depthwise  [KH][KW][k]      (trained channels)
 *   Kernels reading weights take w (flash, never written) and w_train, and use w_train for the
 *   listed channels. The update kernels write w_train only.
 * - Step context (tte_train_ctx): one per training step, shared by the loss and every update
 *   kernel of the step. Set status to TTE_STEP_OK and advance step before each step. An update
 *   kernel writes nothing when the status is not OK; when its input gradient holds a non-finite
 *   value it sets TTE_STEP_NONFINITE_GRAD and writes nothing; the loss sets
 *   TTE_STEP_NONFINITE_LOSS when the loss is not finite. The first failure sticks. Updates that ran
 *   before a failure in the same step stay applied (each update runs as soon as its gradient exists).
 * - No update writes a value computed from a non-finite one. The rule is checked on the value an
 *   update computes, not only on its gradient: a live element's QAS step value -(lr * grad) * inv,
 *   and the fp32 head's new w - lr * (g * x_f) and b - lr * g. If any of them is NaN or infinite
 *   (a NaN or infinite lr, or lr, a gradient sum or the product overflowing float32: lr = 3.4e38)
 *   the kernel writes nothing at all and sets TTE_STEP_NONFINITE_GRAD, exactly as for a non-finite
 *   gradient; a huge finite step value is clamped and rounded as below. An update kernel first
 *   bounds its step values from max |g|, lr and inv; only when that bound may overflow does it
 *   check every value in a pass that writes nothing before the pass that writes (NUMERICS.md 7:
 *   tte_ir.reference_train applies the same rule).
 * - QAS update (NUMERICS.md 5): step = round(clamp(-(lr * grad) * inv[o], -2^30, 2^30)), rounded
 *   to nearest even or stochastically (floor(v + u), u from tte/tte_rounding.h with the element's
 *   index in the IR layout [O][C/groups][KH][KW] of the full weight, or [O] for a bias), then
 *   added in integer arithmetic: weights clamp to [-127, 127], biases saturate to int32. A frozen
 *   channel (inv 0 or not finite, or for a bias a value at an int32 limit) gets step 0 whatever lr
 *   and its gradient are.
 * - Channel-tiled execution (tte_ir.tiling, axis "channels"): kernels that take a
 *   `const tte_channel_band *band` run on `count` channels [begin, begin + count) of a tensor, held
 *   in a band buffer [H][W][count]; per-channel constants (scale, inv, bias, weights, mask bits)
 *   are still indexed by the full tensor's channel. NULL means the whole tensor. Tiling keeps every
 *   float sum in its order, so the tiled result is bit-identical to the untiled one.
 * - Row-tiled execution (axis "rows") concerns the frozen forward prefix: see tte_row_band in tte.h.
 * - Mini-batch updates (a scheme's batch B > 1): each update kernel above has an accumulating twin
 *   (*_bwd_w_acc_s8, bias_acc_s32, linear_acc_f32) that keeps a float32 accumulator acc of its
 *   parameter's gradient, in the parameter's layout, zero at the start, persistent across steps.
 *   Each call adds this sample's gradient: acc = acc + grad, one rounding, the gradient summed in
 *   the order stated per kernel (frozen and dead channels accumulate nothing); the call is gated
 *   like every update (nothing added after a failure or on a non-finite gradient, which fails the
 *   step). When ctx->batch_end is set (the batch's last sample), it then applies the update from the
 *   mean acc / B (one float32 division, exact for a power of two) by the rules above, unless the
 *   step has failed, all values checked before any is written, and sets acc back to 0 in every case.
 *   The step counter ctx->step is the update's index t = samples / B (NUMERICS.md 5), not the sample's.
 *
 * A training step, as generated code runs it (buffers from the planned arena):
 *
 *     tte_train_ctx ctx = {.lr = {0.01f, 0.01f}, .step = t, .seed = 0, .status = TTE_STEP_OK, .batch_end = 1};
 *     ... forward kernels, saving masks and tte_gather_channels_s8 of trained inputs ...
 *     tte_softmax_ce_f32(&ce, &ctx, logits, label, &loss, g_logits);
 *     tte_linear_bwd_update_f32(&head, &ctx, TTE_LR_HEAD, x_head, g_logits, w_head, b_head,
 *                               w_head, b_head, g_pool);
 *     tte_global_avg_pool_bwd_f32(&pool, g_pool, pool_mask, g_feat);
 *     tte_mask_scale_f32(&hwc, g_feat, conv_mask, conv_m, g_feat, NULL);     // in place
 *     tte_bias_update_s32(&hwc, &ctx, &bias_u, g_feat, inv_b, bias, NULL);
 *     tte_pointwise_conv2d_bwd_w_update_s8(&conv, &ctx, &w_u, x_saved, g_feat, inv_w, w_train, NULL);
 *     if (ctx.status != TTE_STEP_OK) { report(tte_step_status_str(ctx.status)); }
 */
#ifndef TTE_TTE_TRAIN_H
#define TTE_TTE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "tte/tte.h" /* tte_status, tte_conv2d_params, tte_linear_f32_params */

#ifdef __cplusplus
extern "C" {
#endif

/* Round mode of the QAS step (the IR's `rounding` attribute). */
typedef enum tte_rounding {
    TTE_ROUND_NEAREST = 0,   /* round half to even */
    TTE_ROUND_STOCHASTIC = 1 /* floor(v + u), u from the counter-based hash (tte/tte_rounding.h) */
} tte_rounding;

/* Learning-rate group of an update (the IR's `lr_group`). */
typedef enum tte_lr_group { TTE_LR_BODY = 0, TTE_LR_HEAD = 1 } tte_lr_group;
#define TTE_LR_GROUPS 2

/* Outcome of a training step so far. */
typedef enum tte_step_status {
    TTE_STEP_OK = 0,
    TTE_STEP_NONFINITE_LOSS = 1, /* the loss was NaN or infinite: no update ran */
    TTE_STEP_NONFINITE_GRAD = 2  /* an update's gradient, or a value it would write, held NaN or infinity: it and all
                                    later updates were skipped */
} tte_step_status;

/* A static, human-readable description of a step status. */
const char *tte_step_status_str(tte_step_status status);

/* The step context: what every update of one training step shares. */
typedef struct tte_train_ctx {
    float lr[TTE_LR_GROUPS]; /* learning rate per tte_lr_group (body, head) */
    uint32_t step;           /* training-step counter t of the rounding hash */
    uint32_t seed;           /* seed of the rounding hash (the scheme's seed) */
    tte_step_status status;  /* TTE_STEP_OK at the start of a step */
    int32_t batch_end;       /* nonzero on a mini-batch's last sample: the accumulating updates apply */
} tte_train_ctx;

/* The attributes of one update node (conv2d_bwd_w_update, bias_update). */
typedef struct tte_update_params {
    tte_rounding rounding;
    tte_lr_group lr_group;
    uint32_t tensor_id; /* tte_ir.rounding.weight_tensor_id / bias_tensor_id of the parameter */
} tte_update_params;

/* Channels [begin, begin + count) of a tensor, held in a band buffer [H][W][count]. */
typedef struct tte_channel_band {
    int32_t begin, count;
} tte_channel_band;

/* A [pixels][channels] tensor: a feature map [H][W][C] with pixels = H*W, or a vector [C] with pixels = 1. */
typedef struct tte_hwc_params {
    int32_t pixels, channels;
} tte_hwc_params;

/* The engine's own exponential and logarithm: the same code, hence the same bits, on every target
 * (libm differs between the host and newlib). Both are fdlibm's algorithms, faithfully rounded:
 * the error against the exact value is below 1 ulp (measured by the tests: at most 0.89 ulp for
 * expf, 0.84 ulp for logf), so they may differ from a correctly rounded libm, and from numpy, in the
 * last bit. expf(-inf) = 0, expf(+inf) = +inf, logf(0) = -inf, logf(x < 0) = NaN; NaN propagates. */
float tte_expf(float x);
float tte_logf(float x);

/* a * b + c rounded once to float32 (round to nearest even), computed in double arithmetic only: no fused
 * instruction and no floating-point environment. The kernels' fused multiply-adds (tte_fma) on an Arm core
 * without VFMA (Cortex-M3, software float), where newlib's fmaf rounds twice (through double); the same
 * bits as a correctly rounded fmaf (VFMA, x86-64 glibc) on every input, NaN and infinities included. */
float tte_fmaf_soft(float a, float b, float c);

/* gather_channels: y = the listed channels of x, saved for a weight update.
 * x [pixels][in_c] int8; y [pixels][count] int8. */
typedef struct tte_gather_params {
    int32_t pixels, in_c;
    const int32_t *channels; /* [count] ascending, unique, in [0, in_c) */
    int32_t count;
} tte_gather_params;
tte_status tte_gather_channels_s8(const tte_gather_params *p, const int8_t *x, int8_t *y);

/* softmax_ce: loss = log(sum_j exp(f_j - m)) - (f_label - m) with m = max_j f_j, and
 * g = dL/dlogits = softmax(f) - onehot(label), float32. The exponentials (tte_expf) are summed in
 * ascending class index. The _s8 variant dequantizes int8 logits first, f = scale * float32(q - zero),
 * and returns the gradient with respect to the codes (g * scale). ctx may be NULL (evaluation);
 * otherwise a non-finite loss sets TTE_STEP_NONFINITE_LOSS. A label outside [0, classes) is
 * TTE_ERR_ARG. logits [classes] float32 (int8 for _s8); label [1] int32; loss [1] float32; g [classes]. */
typedef struct tte_softmax_ce_params {
    int32_t classes; /* N >= 1 */
    float scale;     /* _s8 only: s_y of the logits */
    int32_t zero;    /* _s8 only: z_y of the logits */
} tte_softmax_ce_params;
tte_status tte_softmax_ce_f32(const tte_softmax_ce_params *p, tte_train_ctx *ctx, const float *logits,
                              const int32_t *label, float *loss, float *g);
tte_status tte_softmax_ce_s8(const tte_softmax_ce_params *p, tte_train_ctx *ctx, const int8_t *logits,
                             const int32_t *label, float *loss, float *g);

/* mask_scale: gh = mask ? g * scale[c] : 0, the gradient through a clamp and an output multiplier
 * (a conv: scale = M; one side of an add: a constant m). g, gh [pixels][channels] float32 (band:
 * [pixels][band->count]), gh may equal g; mask: the whole tensor's bit-packed clamp mask
 * [ceil(pixels*channels/8)]; scale [channels] float32. */
tte_status tte_mask_scale_f32(const tte_hwc_params *p, const float *g, const uint8_t *mask, const float *scale,
                              float *gh, const tte_channel_band *band);

/* add_bwd: ga = mask ? g * m1 : 0, gb = mask ? g * m2 : 0. g, ga, gb [size] float32 in any layout
 * (the add's), ga may equal g; mask [ceil(size/8)]. */
typedef struct tte_add_bwd_params {
    int32_t size;
    float m1, m2; /* the add's multipliers float32(s1/s_y), float32(s2/s_y) */
} tte_add_bwd_params;
tte_status tte_add_bwd_f32(const tte_add_bwd_params *p, const float *g, const uint8_t *mask, float *ga, float *gb);

/* pool_bwd: gx[h][w][c] = mask[c] ? g[c] * multiplier : 0. g [in_c] float32; mask [ceil(in_c/8)];
 * gx [in_h][in_w][in_c] float32. */
typedef struct tte_global_avg_pool_bwd_params {
    int32_t in_h, in_w, in_c;
    float multiplier; /* the forward's float32(s_x / (s_y*H*W)) */
} tte_global_avg_pool_bwd_params;
tte_status tte_global_avg_pool_bwd_f32(const tte_global_avg_pool_bwd_params *p, const float *g, const uint8_t *mask,
                                       float *gx);

/* conv2d_bwd_x: the input gradient gx = conv_transpose(gh, w) of a conv described by p (the forward's
 * descriptor; zero points and clamp are not used). Each gx[y][x][c] starts at 0, or at its value on
 * entry when `accumulate` (fan-out sums: gx then holds the other contribution, the IR's `acc`), and
 * adds w[o][c][u][v] * gh[oy][ox][o] in ascending (o, u, v) order, each step gx = fmaf(w, gh, gx)
 * (one rounding); padded taps are skipped. Channel tiles: gh_band says which output channels gh holds
 * (gh [out_h][out_w][gh_band->count]; only their contributions are added), gx_band which input
 * channels gx holds (gx [in_h][in_w][gx_band->count]). Running the gh bands of a tensor in
 * ascending order with accumulate set for every band after the first (or for all, with `acc`)
 * gives the untiled result bit for bit. The depthwise kernel needs gh_band == gx_band (both NULL or
 * the same channels).
 * gh [out_h][out_w][O] float32; w (flash) and w_train (NULL when p->train_count == 0) in the
 * forward kernel's layouts; gx [in_h][in_w][in_c] float32. */
tte_status tte_conv2d_bwd_x_f32(const tte_conv2d_params *p, const float *gh, const int8_t *w, const int8_t *w_train,
                                float *gx, int accumulate, const tte_channel_band *gh_band,
                                const tte_channel_band *gx_band);
tte_status tte_depthwise_conv2d_bwd_x_f32(const tte_conv2d_params *p, const float *gh, const int8_t *w,
                                          const int8_t *w_train, float *gx, int accumulate,
                                          const tte_channel_band *gh_band, const tte_channel_band *gx_band);
tte_status tte_pointwise_conv2d_bwd_x_f32(const tte_conv2d_params *p, const float *gh, const int8_t *w,
                                          const int8_t *w_train, float *gx, int accumulate,
                                          const tte_channel_band *gh_band, const tte_channel_band *gx_band);

/* conv2d_bwd_w_update: for every weight of the trained slice, its gradient
 *     dL/dw[o][c][u][v] = sum over output positions (oy, ox) (ascending, row-major) of
 *         gh[oy][ox][o] * (x[oy*stride_h + u - pad_top][ox*stride_w + v - pad_left][c] - x_zero)
 * from 0, each step g = fmaf(gh, float32(x - x_zero), g) (padded taps skipped), then at once the
 * QAS step of that weight (see Conventions); no gradient
 * buffer. p: the forward's descriptor with train_channels (x_zero is x_saved's zero point). Channel
 * tiles: gh_band says which output channels gh holds (dense/pointwise: those rows of w_train
 * update; depthwise: the trained channels inside the band update).
 * x_saved [in_h][in_w][train_count] int8 (the trained input channels, tte_gather_channels_s8);
 * gh [out_h][out_w][O] float32 (band: [out_h][out_w][gh_band->count]); inv_w [O] float32
 * (float32(1/s_w[o]^2), 0 for frozen channels); w_train in/out, the slice layout. */
tte_status tte_conv2d_bwd_w_update_s8(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                                      const int8_t *x_saved, const float *gh, const float *inv_w, int8_t *w_train,
                                      const tte_channel_band *gh_band);
tte_status tte_depthwise_conv2d_bwd_w_update_s8(const tte_conv2d_params *p, tte_train_ctx *ctx,
                                                const tte_update_params *u, const int8_t *x_saved, const float *gh,
                                                const float *inv_w, int8_t *w_train, const tte_channel_band *gh_band);
tte_status tte_pointwise_conv2d_bwd_w_update_s8(const tte_conv2d_params *p, tte_train_ctx *ctx,
                                                const tte_update_params *u, const int8_t *x_saved, const float *gh,
                                                const float *inv_w, int8_t *w_train, const tte_channel_band *gh_band);

/* bias_update: dL/db[o] = sum over pixels p (ascending) of gh[p][o], then the QAS step of b[o]
 * (int32 saturating add; frozen: inv_b[o] not finite or b[o] at an int32 limit). gh [pixels][channels]
 * float32 (band: [pixels][band->count]); inv_b [channels] float32; b [channels] int32, in/out. */
tte_status tte_bias_update_s32(const tte_hwc_params *p, tte_train_ctx *ctx, const tte_update_params *u, const float *gh,
                               const float *inv_b, int32_t *b, const tte_channel_band *band);

/* linear_f32_bwd_update: the fp32 head's backward and plain SGD step, with x_f[i] = x_scale*float32(x[i] - x_zero):
 *     gx[i] = x_scale * (sum over ascending o of w[o][i] * g[o])        (old weights; when gx != NULL)
 *     w[o][i] -= lr * (g[o] * x_f[i]);  b[o] -= lr * g[o]              (when w_next != NULL)
 * lr = ctx->lr[lr_group]. x [I] int8; g [O] float32; w [O][I], b [O] float32 (read); w_next, b_next
 * NULL (no update: a frozen head) or the updated parameters, which may equal w and b (in place);
 * gx NULL or [I] float32. The update follows the step-context rules (a non-finite new value: no
 * parameter written, TTE_STEP_NONFINITE_GRAD); gx is computed regardless. */
tte_status tte_linear_bwd_update_f32(const tte_linear_f32_params *p, tte_train_ctx *ctx, tte_lr_group lr_group,
                                     const int8_t *x, const float *g, const float *w, const float *b, float *w_next,
                                     float *b_next, float *gx);

/* accumulate: y = acc + g (fan-out sum, in that operand order). acc, g, y [size] float32; y may equal acc. */
tte_status tte_accumulate_f32(int32_t size, const float *acc, const float *g, float *y);

/* max_pool_bwd: gx = the gradient of a max pool (p: the forward's descriptor). Every gx[y][x][c]
 * starts at 0 and adds g[oy][ox][c] of each window (oy, ox) whose saved arg-max (index, from
 * tte_max_pool2d_fwd_s8) it is, in ascending (oy, ox) order. g, index [out_h][out_w][in_c];
 * gx [in_h][in_w][in_c] float32. An index outside its window's input pixels: TTE_ERR_ARG, nothing written. */
tte_status tte_max_pool2d_bwd_f32(const tte_pool2d_params *p, const float *g, const uint8_t *index, float *gx);

/* avg_pool_bwd: gx = the gradient of an average pool (p: the forward's descriptor, zero points unused).
 * Every gx[y][x][c] starts at 0 and adds t = mask ? g[oy][ox][c] * multiplier[count] : 0 (one rounding)
 * of each window (oy, ox) holding it, in ascending (oy, ox) order. g [out_h][out_w][in_c] float32;
 * mask bit-packed [ceil(out_h*out_w*in_c/8)]; multiplier: the forward's; gx [in_h][in_w][in_c] float32. */
tte_status tte_avg_pool2d_bwd_f32(const tte_pool2d_params *p, const float *g, const uint8_t *mask,
                                  const float *multiplier, float *gx);

/* lut_bwd: the input gradient of a table activation, gx[i] = g[i] * slope[x[i] + 128] (one float32
 * multiply). slope [256] float32 is the compile-time table of d y_real / d x_real * s_x / s_y at each
 * input code, 0 where the forward clamps (tte_ir.quant.lut_tables). g, gx [size] float32 (gx may
 * equal g); x [size] int8, the forward's input codes. */
tte_status tte_lut_bwd_f32(const tte_lut_params *p, const float *g, const int8_t *x, const float *slope, float *gx);

/* mul_bwd: the gradients of both inputs of tte_mul_fwd_s8 (p: the forward's descriptor; y_zero and
 * the clamp are not used). With gm = mask[p][c] ? g[p][c] * m : 0,
 *     ga[p][c] = gm * float32(b[c] - b_zero)
 *     gb[c]    = sum over pixels p (ascending, from 0) of gm * float32(a[p][c] - a_zero)
 * one float32 rounding per multiply and per add. g, ga [pixels][channels] float32 (ga may equal g);
 * mask [ceil(pixels*channels/8)]; a [pixels][channels], b [channels] int8, the forward's inputs;
 * gb [channels] float32. ga or gb may be NULL (that input needs no gradient), not both. */
tte_status tte_mul_bwd_f32(const tte_mul_params *p, const float *g, const uint8_t *mask, const int8_t *a,
                           const int8_t *b, float *ga, float *gb);

/* conv2d_bwd_w_acc: the mini-batch twin of conv2d_bwd_w_update (see Conventions, "Mini-batch
 * updates"). The gradient of each trained weight is summed from 0 over the output positions (ascending,
 * row-major) of gh[p][o] * float32(x - x_zero), one rounding per multiply and per add, padded taps
 * skipped (tte_ir.reference_train.conv2d_weight_grad's order, bit for bit), and added to acc; at a
 * batch's end the QAS step of acc / batch is applied (element indices as conv2d_bwd_w_update's) and acc
 * is zeroed. Arguments as conv2d_bwd_w_update's, plus batch (B >= 1) and acc, float32 in w_train's
 * slice layout, in/out. With a gh band only the band's rows (dense, pointwise) or the trained channels
 * inside it (depthwise) take part. */
tte_status tte_conv2d_bwd_w_acc_s8(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                                   int32_t batch, const int8_t *x_saved, const float *gh, const float *inv_w,
                                   float *acc, int8_t *w_train, const tte_channel_band *gh_band);
tte_status tte_depthwise_conv2d_bwd_w_acc_s8(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                                             int32_t batch, const int8_t *x_saved, const float *gh, const float *inv_w,
                                             float *acc, int8_t *w_train, const tte_channel_band *gh_band);
tte_status tte_pointwise_conv2d_bwd_w_acc_s8(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                                             int32_t batch, const int8_t *x_saved, const float *gh, const float *inv_w,
                                             float *acc, int8_t *w_train, const tte_channel_band *gh_band);

/* bias_acc: the mini-batch twin of bias_update: acc[o] += (the sum over pixels, ascending, of
 * gh[p][o]); at a batch's end the QAS step of acc[o] / batch, then acc = 0. Arguments as bias_update's,
 * plus batch (B >= 1) and acc [channels] float32, in/out. */
tte_status tte_bias_acc_s32(const tte_hwc_params *p, tte_train_ctx *ctx, const tte_update_params *u, int32_t batch,
                            const float *gh, const float *inv_b, float *acc, int32_t *b, const tte_channel_band *band);

/* linear_acc: the mini-batch twin of the fp32 head's update (its input gradient stays with
 * linear_f32_bwd_update, without update): acc_w[o][i] += g[o] * x_f[i], acc_b[o] += g[o]; at a batch's
 * end, with lr = ctx->lr[lr_group], w[o][i] -= lr * (acc_w[o][i] / batch) and b[o] -= lr * (acc_b[o] /
 * batch) (all new values checked finite before any is written), then both accumulators = 0.
 * x [I] int8; g [O] float32; acc_w, w [O][I] and acc_b, b [O] float32, in/out. */
tte_status tte_linear_acc_f32(const tte_linear_f32_params *p, tte_train_ctx *ctx, tte_lr_group lr_group, int32_t batch,
                              const int8_t *x, const float *g, float *acc_w, float *acc_b, float *w, float *b);

/* channel_insert: a channel split's backward (p: the split's descriptor). g [pixels][count] float32;
 * gx [pixels][in_c] float32. accumulate 0: gx[p][start + k] = g[p][k], 0 on every other channel;
 * accumulate 1: gx holds the gradient so far and gx[p][start + k] += g[p][k] (one float32 add each). */
tte_status tte_channel_insert_f32(const tte_channel_split_params *p, const float *g, float *gx, int accumulate);

#ifdef __cplusplus
}
#endif

#endif /* TTE_TTE_TRAIN_H */
