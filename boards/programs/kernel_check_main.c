/* Checks the optimized forward kernels (tte_<kernel>, src/kernels/arm on ARMv7E-M) against their
 * reference twins (tte_ref_<kernel>, tte/tte_ref.h) on the shapes of kernel_shapes, several
 * variants each: random data and zero points, the extreme zero points -128 and 127, rounding ties
 * (power-of-two multipliers), biases of +-2^31, huge and non-finite multipliers, narrow clamps,
 * masks, row bands and trained slices, and fixed-point requantization (NUMERICS.md 2b: random and
 * extreme multipliers and shifts, no float multipliers at all; and the single rounding of a linear
 * layer's TTE_REQUANT_FIXED_SINGLE). Both kernels start from the same
 * output and mask contents; statuses, outputs and masks must agree byte for byte. Prints, for
 * tests/engine/test_arm_kernels.py: CHECK <shape> <variant> PASS CHECK <shape> <variant> FAIL <what differs> DONE
 * passed=<n> failed=<n> The exit status is 0 only when every check passed. */
#include <math.h> /* INFINITY, NAN (macros only) */
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "kernel_shapes.h"
#include "tte/tte.h"
#include "tte/tte_ref.h"

#define VARIANTS 11
#define MAX_BYTES (192 * 1024) /* any activation or weight tensor of a checked shape */
#define MAX_CHANNELS 1024

typedef tte_status (*conv_kernel)(const tte_conv2d_params *, const int8_t *, const int8_t *, const int8_t *,
                                  const int32_t *, const float *, int8_t *, uint8_t *, const tte_row_band *, void *);

static int8_t x[MAX_BYTES], w[MAX_BYTES], w_train[MAX_BYTES];
static int8_t y_ref[MAX_BYTES], y_opt[MAX_BYTES];
static uint8_t mask_ref[MAX_BYTES / 8 + 1], mask_opt[MAX_BYTES / 8 + 1];
static int32_t bias[MAX_CHANNELS], train_channels[MAX_CHANNELS];
static float multiplier[MAX_CHANNELS];
static int32_t qmult[MAX_CHANNELS], qshift[MAX_CHANNELS];
static uint32_t rng = 0x9e3779b9u;

static uint32_t next(void) { /* xorshift32 */
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static int32_t uniform(int32_t lo, int32_t hi) { /* [lo, hi] */
    return lo + (int32_t)(next() % (uint32_t)(hi - lo + 1));
}

static int32_t floor_log2(int32_t v) { /* v >= 1 */
    int32_t k = 0;
    while (v > 1) {
        v >>= 1;
        ++k;
    }
    return k;
}

/* Fixed-point requantization with multipliers in [2^30, 2^31) and shifts that spread the outputs over
 * the int8 range (like the float multipliers above), no float multipliers. */
static void use_fixed(tte_conv2d_params *p, int32_t taps) {
    p->requant = TTE_REQUANT_FIXED;
    p->qmult = qmult;
    p->qshift = qshift;
    for (int32_t o = 0; o < p->out_c; ++o) {
        qmult[o] = (int32_t)(0x40000000u | (next() & 0x3fffffffu));
        qshift[o] = -4 - floor_log2(taps + 64) - uniform(0, 4);
    }
}

static void fill(int8_t *v, int32_t n) {
    for (int32_t i = 0; i < n; ++i) {
        v[i] = (int8_t)uniform(-128, 127);
    }
}

/* One variant of one shape: the descriptor and data, both kernels, the comparison. NULL: they agree. */
static const char *check(const kernel_shape *s, int variant) {
    const int depthwise = s->kind == KERNEL_DEPTHWISE, dense = s->kind == KERNEL_DENSE;
    tte_conv2d_params p = {
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
        .x_zero = uniform(-128, 127),
        .y_zero = uniform(-128, 127),
        .act_min = -128,
        .act_max = 127,
    };
    const int32_t out_h = tte_conv2d_out_dim(p.in_h, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom);
    const int32_t out_w = tte_conv2d_out_dim(p.in_w, p.kernel_w, p.stride_w, p.pad_left, p.pad_right);
    const int32_t window = p.kernel_h * p.kernel_w; /* 1 for pointwise */
    /* the products summed per output, and the weights of one output channel */
    const int32_t taps = depthwise ? window : window * (p.in_c / p.groups);
    const int32_t weights = depthwise ? taps * p.in_c : p.out_c * taps;
    const int32_t outputs = out_h * out_w * p.out_c;
    if (p.in_h * p.in_w * p.in_c > MAX_BYTES || weights > MAX_BYTES || outputs > MAX_BYTES || p.out_c > MAX_CHANNELS) {
        return "shape too large for the check's buffers";
    }
    fill(x, p.in_h * p.in_w * p.in_c);
    fill(w, weights);
    for (int32_t o = 0; o < p.out_c; ++o) {
        bias[o] = uniform(-40000, 40000);
        /* about 2^-(7 + log2 reduction): outputs spread over the int8 range */
        multiplier[o] = (float)uniform(1, 1000) * (1.0f / 65536.0f) * (128.0f / (float)(taps + 64));
    }
    uint8_t *mask = NULL;
    const float *mp = multiplier;
    tte_row_band band, *rows = NULL;
    switch (variant) {
    case 1: /* extreme zero points, a narrow clamp, saturating biases, huge multipliers */
        p.x_zero = -128;
        p.y_zero = 127;
        p.act_min = -20;
        p.act_max = 90;
        bias[0] = INT32_MIN;
        bias[p.out_c - 1] = INT32_MAX;
        multiplier[p.out_c / 2] = 1e30f;
        mask = mask_opt;
        break;
    case 2: /* rounding ties: power-of-two multipliers put v on k + 0.5 for odd sums */
        p.x_zero = 127;
        p.y_zero = -128;
        for (int32_t o = 0; o < p.out_c; ++o) {
            multiplier[o] = 1.0f / (float)(2 << (o % 8));
            bias[o] = uniform(-300, 300);
        }
        mask = mask_opt;
        break;
    case 3: /* a row band in the middle of the output, with its halo rows of x */
        if (out_h >= 3) {
            band.y_row = out_h / 3;
            band.y_rows = out_h / 3 + 1;
            const int32_t first = band.y_row * p.stride_h - p.pad_top;
            const int32_t last = (band.y_row + band.y_rows - 1) * p.stride_h - p.pad_top + p.kernel_h;
            band.x_row = first < 0 ? 0 : first;
            band.x_rows = (last > p.in_h ? p.in_h : last) - band.x_row;
            rows = &band;
        }
        mask = mask_opt;
        break;
    case 4: /* a trained slice: every third channel from SRAM (a grouped conv has none) */
        if (p.groups != 1 && !depthwise) {
            break;
        }
        p.train_count = 0;
        for (int32_t c = 0; c < p.in_c; c += 3) {
            train_channels[p.train_count++] = c;
        }
        p.train_channels = train_channels;
        fill(w_train, (depthwise ? taps : p.out_c * window) * p.train_count);
        mask = mask_opt;
        break;
    case 5: /* a non-finite multiplier */
        multiplier[p.out_c / 3] = -INFINITY;
        multiplier[0] = NAN;
        break;
    case 6: /* fixed requantization: extreme zero points, a narrow clamp, saturating biases */
        use_fixed(&p, taps);
        mp = NULL;
        p.x_zero = -128;
        p.y_zero = 127;
        p.act_min = -20;
        p.act_max = 90;
        bias[0] = INT32_MIN;
        bias[p.out_c - 1] = INT32_MAX;
        mask = mask_opt;
        break;
    case 7: /* fixed: the extreme shifts and multipliers (left shifts that wrap, 0, 2^31 - 1, 2^30) */
        use_fixed(&p, taps);
        mp = NULL;
        for (int32_t o = 0; o < p.out_c; ++o) {
            static const int32_t shifts[] = {-31, -1, 0, 1, 30};
            static const int32_t mults[] = {0, INT32_MAX, 0x40000000, 0x40000001};
            if (o % 3 == 0) {
                qshift[o] = shifts[(o / 3) % 5];
            }
            if (o % 4 == 1) {
                qmult[o] = mults[(o / 4) % 4];
            }
        }
        mask = mask_opt;
        break;
    case 8: /* fixed, with a row band and a trained slice where the conv has one */
        use_fixed(&p, taps);
        if (out_h >= 2) {
            band.y_row = out_h / 2;
            band.y_rows = out_h - out_h / 2;
            const int32_t first = band.y_row * p.stride_h - p.pad_top;
            const int32_t last = (band.y_row + band.y_rows - 1) * p.stride_h - p.pad_top + p.kernel_h;
            band.x_row = first < 0 ? 0 : first;
            band.x_rows = (last > p.in_h ? p.in_h : last) - band.x_row;
            rows = &band;
        }
        if (p.groups == 1 || depthwise) {
            p.train_count = 0;
            for (int32_t c = 1; c < p.in_c; c += 2) {
                train_channels[p.train_count++] = c;
            }
            p.train_channels = p.train_count > 0 ? train_channels : NULL;
            fill(w_train, (depthwise ? taps : p.out_c * window) * p.train_count);
        }
        mask = mask_opt;
        break;
    case 9: /* the single rounding of a linear layer's 1x1 conv, any kernel: random shifts, a mask */
        use_fixed(&p, taps);
        p.requant = TTE_REQUANT_FIXED_SINGLE;
        mp = NULL;
        p.y_zero = -5;
        mask = mask_opt;
        break;
    case 10: /* fixed, every shift negative (the ARM kernels' own fixed epilogue, tte_arm_fixed_multiply), the
              * extreme ones and multipliers, saturating biases, the full clamp without a mask (SSAT) */
        use_fixed(&p, taps);
        mp = NULL;
        for (int32_t o = 0; o < p.out_c; ++o) {
            static const int32_t shifts[] = {-31, -1, -2, -30};
            static const int32_t mults[] = {0, INT32_MAX, 0x40000000, 1};
            if (o % 3 == 0) {
                qshift[o] = shifts[(o / 3) % 4];
            }
            if (o % 4 == 1) {
                qmult[o] = mults[(o / 4) % 4];
            }
        }
        bias[0] = INT32_MIN;
        bias[p.out_c - 1] = INT32_MAX;
        break;
    default:
        break;
    }
    const int32_t band_rows = rows != NULL ? rows->y_rows : out_h;
    const int8_t *xb = x + (rows != NULL ? (size_t)rows->x_row * p.in_w * p.in_c : 0);
    const int8_t *wt = p.train_count > 0 ? w_train : NULL;
    const int32_t written = band_rows * out_w * p.out_c;
    fill(y_ref, written);
    memcpy(y_opt, y_ref, (size_t)written);
    fill((int8_t *)mask_ref, outputs / 8 + 1);
    memcpy(mask_opt, mask_ref, (size_t)outputs / 8 + 1);
    const conv_kernel ref = dense       ? tte_ref_conv2d_fwd_s8
                            : depthwise ? tte_ref_depthwise_conv2d_fwd_s8
                                        : tte_ref_pointwise_conv2d_fwd_s8;
    const conv_kernel opt = dense       ? tte_conv2d_fwd_s8
                            : depthwise ? tte_depthwise_conv2d_fwd_s8
                                        : tte_pointwise_conv2d_fwd_s8;
    const tte_status sr = ref(&p, xb, w, wt, bias, mp, y_ref, mask != NULL ? mask_ref : NULL, rows, NULL);
    const tte_status so = opt(&p, xb, w, wt, bias, mp, y_opt, mask, rows, NULL);
    if (sr != TTE_OK) {
        return tte_status_str(sr);
    }
    if (so != sr) {
        return "status differs";
    }
    if (memcmp(y_ref, y_opt, (size_t)written) != 0) {
        return "y differs";
    }
    if (memcmp(mask_ref, mask_opt, (size_t)outputs / 8 + 1) != 0) {
        return "mask differs";
    }
    return NULL;
}

int main(void) {
    uint32_t passed = 0, failed = 0;
    for (uint32_t i = 0; i < kernel_shape_count; ++i) {
        for (int v = 0; v < VARIANTS; ++v) {
            const char *why = check(&kernel_shapes[i], v);
            if (why == NULL) {
                board_printf("CHECK %s %d PASS\n", kernel_shapes[i].name, v);
                ++passed;
            } else {
                board_printf("CHECK %s %d FAIL %s\n", kernel_shapes[i].name, v, why);
                ++failed;
            }
        }
    }
    board_printf("DONE passed=%lu failed=%lu\n", (unsigned long)passed, (unsigned long)failed);
    return failed == 0 ? 0 : 1;
}
