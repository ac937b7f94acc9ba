/* The mini-batch update kernels (ref/ *_acc_*.c) run band by band against the whole tensor, over
 * one batch of BATCH samples: every band split must leave acc (after each sample) and the
 * parameters (at the batch's end) bit-identical to the untiled call. Prints one CHECK line per
 * (kernel, rounding, band size) and DONE with the failure count; tests/engine/test_batch_band_kernels.py
 * builds and runs it. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tte/tte_train.h"

#define BATCH 3
#define HW 6
#define MAX_C 8
#define MAX_SLICE (MAX_C * 9 * MAX_C)

static uint32_t rng_state = 12345u;

static uint32_t next_u32(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static float uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)(next_u32() & 0xffffu) / 65535.0f;
}

static int failures = 0;
static int checks = 0;

static void report(const char *name, int rounding, int tile, int ok) {
    ++checks;
    failures += ok ? 0 : 1;
    printf("CHECK %s rounding=%d tile=%d %s\n", name, rounding, tile, ok ? "PASS" : "FAIL");
}

/* gh's channels [begin, begin + count) as a band buffer [HW][HW][count]. */
static void cut_band(const float *gh, int32_t channels, int32_t begin, int32_t count, float *band) {
    for (int32_t i = 0; i < HW * HW; ++i) {
        for (int32_t j = 0; j < count; ++j) {
            band[i * count + j] = gh[i * channels + begin + j];
        }
    }
}

/* A stride-1 `kernel` x `kernel` convolution over the HW x HW input, padded to keep its size, with the
 * full int8 output range; `count` of its channels, `train`, train. */
static tte_conv2d_params same_conv(int32_t in_c, int32_t out_c, int32_t kernel, int32_t groups, int32_t x_zero,
                                   const int32_t *train, int32_t count) {
    tte_conv2d_params p = {0};
    p.in_h = p.in_w = HW;
    p.in_c = in_c;
    p.out_c = out_c;
    p.kernel_h = p.kernel_w = kernel;
    p.stride_h = p.stride_w = 1;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = kernel / 2;
    p.groups = groups;
    p.x_zero = x_zero;
    p.act_min = -128;
    p.act_max = 127;
    p.train_channels = train;
    p.train_count = count;
    return p;
}

/* The context of sample `s` of the batch: the batch ends after its last sample. */
static tte_train_ctx sample_ctx(int s) {
    const tte_train_ctx ctx = {
        .lr = {0.05f, 0.05f}, .step = 4u, .seed = 9u, .status = TTE_STEP_OK, .batch_end = s == BATCH - 1};
    return ctx;
}

/* The band of `tile` channels from `begin`, cut short at `channels`. */
static tte_channel_band band_at(int32_t begin, int32_t tile, int32_t channels) {
    const tte_channel_band band = {begin, begin + tile <= channels ? tile : channels - begin};
    return band;
}

typedef tte_status (*conv_acc_fn)(const tte_conv2d_params *, tte_train_ctx *, const tte_update_params *, int32_t,
                                  const int8_t *, const float *, const float *, float *, int8_t *,
                                  const tte_channel_band *);

/* One conv family: BATCH samples whole and in bands of `tile` rows / channels, compared. */
static void conv_case(const char *name, conv_acc_fn fn, const tte_conv2d_params *p, int depthwise, int rounding,
                      int32_t tile) {
    const int32_t oc = p->out_c, k = p->train_count;
    const size_t n = (size_t)(depthwise ? 1 : oc) * p->kernel_h * p->kernel_w * k;
    static int8_t x[BATCH][HW * HW * MAX_C];
    static float gh[BATCH][HW * HW * MAX_C], band_gh[HW * HW * MAX_C];
    float inv[MAX_C], acc_whole[MAX_SLICE] = {0}, acc_band[MAX_SLICE] = {0};
    int8_t w_start[MAX_SLICE], w_whole[MAX_SLICE], w_band[MAX_SLICE];
    const tte_update_params u = {(tte_rounding)rounding, TTE_LR_BODY, 77u};
    int ok = 1;
    for (int32_t o = 0; o < oc; ++o) {
        inv[o] = o == 1 ? 0.0f : uniform(20.0f, 200.0f); /* channel 1 frozen */
    }
    for (size_t i = 0; i < n; ++i) {
        w_start[i] = (int8_t)((int32_t)(next_u32() % 255u) - 127);
    }
    memcpy(w_whole, w_start, n);
    memcpy(w_band, w_start, n);
    for (int s = 0; s < BATCH; ++s) {
        for (int32_t i = 0; i < HW * HW * k; ++i) {
            x[s][i] = (int8_t)((int32_t)(next_u32() % 256u) - 128);
        }
        for (int32_t i = 0; i < HW * HW * oc; ++i) {
            gh[s][i] = uniform(-1e-3f, 1e-3f);
        }
    }
    for (int s = 0; s < BATCH; ++s) {
        tte_train_ctx whole = sample_ctx(s);
        tte_train_ctx banded = whole;
        ok &= fn(p, &whole, &u, BATCH, x[s], gh[s], inv, acc_whole, w_whole, NULL) == TTE_OK;
        for (int32_t c = 0; c < oc; c += tile) {
            const tte_channel_band band = band_at(c, tile, oc);
            cut_band(gh[s], oc, band.begin, band.count, band_gh);
            ok &= fn(p, &banded, &u, BATCH, x[s], band_gh, inv, acc_band, w_band, &band) == TTE_OK;
        }
        ok &= whole.status == TTE_STEP_OK && banded.status == TTE_STEP_OK;
        ok &= memcmp(acc_whole, acc_band, n * sizeof(float)) == 0;
    }
    ok &= memcmp(w_whole, w_band, n) == 0;
    ok &= memcmp(w_whole, w_start, n) != 0; /* the batch did move the slice */
    for (size_t i = 0; i < n; ++i) {
        ok &= acc_whole[i] == 0.0f; /* zeroed at the batch's end */
    }
    report(name, rounding, tile, ok);
}

static void bias_case(int rounding, int32_t tile) {
    enum { C = 7 };
    const tte_hwc_params p = {HW * HW, C};
    const tte_update_params u = {(tte_rounding)rounding, TTE_LR_BODY, 0x10007u};
    static float gh[BATCH][HW * HW * C], band_gh[HW * HW * C];
    float inv[C], acc_whole[C] = {0}, acc_band[C] = {0};
    int32_t b_start[C], b_whole[C], b_band[C];
    int ok = 1;
    for (int32_t o = 0; o < C; ++o) {
        inv[o] = o == 2 ? 0.0f : uniform(1e3f, 1e4f);
        b_start[o] = o == 4 ? INT32_MAX : (int32_t)(next_u32() % 20001u) - 10000; /* channel 4 dead */
    }
    memcpy(b_whole, b_start, sizeof b_start);
    memcpy(b_band, b_start, sizeof b_start);
    for (int s = 0; s < BATCH; ++s) {
        for (int32_t i = 0; i < HW * HW * C; ++i) {
            gh[s][i] = uniform(-1e-3f, 1e-3f);
        }
    }
    for (int s = 0; s < BATCH; ++s) {
        tte_train_ctx whole = sample_ctx(s);
        tte_train_ctx banded = whole;
        ok &= tte_bias_acc_s32(&p, &whole, &u, BATCH, gh[s], inv, acc_whole, b_whole, NULL) == TTE_OK;
        for (int32_t c = 0; c < C; c += tile) {
            const tte_channel_band band = band_at(c, tile, C);
            cut_band(gh[s], C, band.begin, band.count, band_gh);
            ok &= tte_bias_acc_s32(&p, &banded, &u, BATCH, band_gh, inv, acc_band, b_band, &band) == TTE_OK;
        }
        ok &= whole.status == TTE_STEP_OK && banded.status == TTE_STEP_OK;
        ok &= memcmp(acc_whole, acc_band, sizeof acc_whole) == 0;
    }
    ok &= memcmp(b_whole, b_band, sizeof b_whole) == 0 && memcmp(b_whole, b_start, sizeof b_whole) != 0;
    report("bias_acc_s32", rounding, tile, ok);
}

int main(void) {
    static const int32_t dense_ch[] = {0, 2}, dw_ch[] = {0, 2, 3}, pw_ch[] = {1, 3};
    const tte_conv2d_params dense = same_conv(3, 5, 3, 1, -3, dense_ch, 2);
    const tte_conv2d_params dw = same_conv(5, 5, 3, 5, 4, dw_ch, 3);
    const tte_conv2d_params pw = same_conv(4, 6, 1, 1, 0, pw_ch, 2);
    for (int rounding = 0; rounding < 2; ++rounding) {
        for (int32_t tile = 1; tile <= 4; ++tile) {
            conv_case("conv2d_bwd_w_acc_s8", tte_conv2d_bwd_w_acc_s8, &dense, 0, rounding, tile);
            conv_case("depthwise_conv2d_bwd_w_acc_s8", tte_depthwise_conv2d_bwd_w_acc_s8, &dw, 1, rounding, tile);
            conv_case("pointwise_conv2d_bwd_w_acc_s8", tte_pointwise_conv2d_bwd_w_acc_s8, &pw, 0, rounding, tile);
            bias_case(rounding, tile);
        }
    }
    printf("DONE checks=%d failed=%d\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
