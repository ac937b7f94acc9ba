/* The blocked dense mini-batch kernel (ref/conv2d_bwd_w_acc_s8.c) against the per-element walk it replaced,
 * which the other conv families still run (batch-impl.h: tte_conv2d_acc_apply, each weight's gradient by
 * tte_batch_tap_grad): acc after a sample and at the batch's end, and the slice after it, bit for bit, on
 * random dense shapes (kh != kw, strides and padding per axis and side, 1-20 output channels, 1-7 trained
 * channels, so that blocks of 8 x 3 and the overlapping last ones both run), frozen channels, gh bands and
 * both roundings. Prints one CHECK line per case and DONE with the failure count;
 * tests/engine/test_dense_acc_kernel.py builds and runs it. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "batch-impl.h"

#define CASES 60
#define MAX_O 20
#define MAX_K 7
#define MAX_SIDE 9
#define MAX_SLICE (MAX_O * 25 * MAX_K)

static uint32_t rng_state = 2024u;

static uint32_t next_u32(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static int32_t between(int32_t lo, int32_t hi) { /* [lo, hi] */
    return lo + (int32_t)(next_u32() % (uint32_t)(hi - lo + 1));
}

static float uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)(next_u32() & 0xffffu) / 65535.0f;
}

int main(void) {
    static int8_t x[MAX_SIDE * MAX_SIDE * MAX_K], w_new[MAX_SLICE], w_old[MAX_SLICE];
    static float gh[MAX_SIDE * MAX_SIDE * MAX_O], acc_new[MAX_SLICE], acc_old[MAX_SLICE];
    static int32_t channels[MAX_K * 2];
    float inv[MAX_O];
    int failures = 0;
    for (int i = 0; i < CASES; ++i) {
        tte_conv2d_params p = {0};
        p.kernel_h = between(1, 5);
        p.kernel_w = between(1, 5);
        p.stride_h = between(1, 2);
        p.stride_w = between(1, 2);
        p.pad_top = between(0, p.kernel_h / 2 + 1);
        p.pad_bottom = between(0, p.kernel_h / 2 + 1);
        p.pad_left = between(0, p.kernel_w / 2 + 1);
        p.pad_right = between(0, p.kernel_w / 2 + 1);
        const int32_t min_h = p.kernel_h - p.pad_top - p.pad_bottom, min_w = p.kernel_w - p.pad_left - p.pad_right;
        p.in_h = between(min_h > 1 ? min_h : 1, MAX_SIDE);
        p.in_w = between(min_w > 1 ? min_w : 1, MAX_SIDE);
        p.out_c = between(1, MAX_O);
        p.in_c = between(1, 2 * MAX_K);
        p.groups = 1;
        p.x_zero = between(-128, 127);
        p.act_min = -128;
        p.act_max = 127;
        int32_t k = 0; /* every channel with probability 1/2, at least one, at most MAX_K */
        for (int32_t c = 0; c < p.in_c && k < MAX_K; ++c) {
            if (next_u32() % 2u || (k == 0 && c == p.in_c - 1)) {
                channels[k++] = c;
            }
        }
        p.train_channels = channels;
        p.train_count = k;
        const int32_t out_h = tte_conv2d_out_dim(p.in_h, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom);
        const int32_t out_w = tte_conv2d_out_dim(p.in_w, p.kernel_w, p.stride_w, p.pad_left, p.pad_right);
        const size_t n = (size_t)p.out_c * p.kernel_h * p.kernel_w * k;
        const int banded = i % 3 == 2;
        const int32_t begin = banded ? between(0, p.out_c - 1) : 0;
        const int32_t count = banded ? between(1, p.out_c - begin) : p.out_c;
        const tte_channel_band band = {begin, count};
        for (int32_t o = 0; o < p.out_c; ++o) {
            inv[o] = next_u32() % 7u == 0 ? (o % 2 ? 0.0f : INFINITY) : uniform(20.0f, 2000.0f); /* frozen */
        }
        for (size_t e = 0; e < n; ++e) {
            w_new[e] = w_old[e] = (int8_t)((int32_t)(next_u32() % 255u) - 127);
            acc_new[e] = acc_old[e] = uniform(-1e-2f, 1e-2f);
        }
        for (int32_t e = 0; e < p.in_h * p.in_w * k; ++e) {
            x[e] = (int8_t)((int32_t)(next_u32() % 256u) - 128);
        }
        for (int32_t e = 0; e < out_h * out_w * count; ++e) {
            gh[e] = uniform(-1e-3f, 1e-3f);
        }
        const tte_update_params u = {i % 2 ? TTE_ROUND_STOCHASTIC : TTE_ROUND_NEAREST, TTE_LR_BODY, 5u};
        int ok = 1;
        for (int end = 0; end < 2; ++end) { /* a sample inside the batch, then its last one */
            tte_train_ctx c_new = {
                .lr = {0.05f, 0.05f}, .step = 3u, .seed = 8u, .status = TTE_STEP_OK, .batch_end = end};
            tte_train_ctx c_old = c_new;
            ok &=
                tte_conv2d_bwd_w_acc_s8(&p, &c_new, &u, 2, x, gh, inv, acc_new, w_new, banded ? &band : NULL) == TTE_OK;
            tte_conv2d_acc_apply(&p, &c_old, &u, 2, x, gh, inv, acc_old, w_old, out_h, out_w, begin, count, 0);
            ok &= c_new.status == c_old.status;
            ok &= memcmp(acc_new, acc_old, n * sizeof(float)) == 0 && memcmp(w_new, w_old, n) == 0;
        }
        printf("CHECK case%d o=%d k=%d %dx%d s%dx%d band=%d %s\n", i, (int)p.out_c, (int)k, (int)p.kernel_h,
               (int)p.kernel_w, (int)p.stride_h, (int)p.stride_w, banded, ok ? "PASS" : "FAIL");
        failures += !ok;
    }
    printf("DONE checks=%d failed=%d\n", CASES, failures);
    return failures == 0 ? 0 : 1;
}
