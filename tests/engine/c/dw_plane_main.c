/* The depthwise input gradient's plane paths (ref/depthwise_conv2d_bwd_x_f32.c, built with TTE_DW_PLANE=1 as on
 * Cortex-M; the host build's binding takes the general path) against the contract written out (NUMERICS.md 4):
 * each gx element from 0 or its entry value, fmaf(w, gh, gx) over its valid taps in ascending (u, v) order,
 * bit for bit, on the plane paths' shapes (stride 1: its band boundaries, row ends and paddings; stride 2: the
 * four parity classes of 3x3, 5x5 and 7x7, odd sizes, uneven paddings, overlapping last blocks, maps too large
 * for the plane), with a trained slice and with entry values (those, -0 included, take the general path). Prints
 * one CHECK line per case and DONE; tests/engine/test_train_kernels_blocks.py builds and runs it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tte/tte_train.h"

#define MAX_FLOATS 8192
#define MAX_W 512
#define GUARD 16 /* floats checked past gx */

typedef struct shape {
    int32_t c, k, top, left, bottom, right, in_h, in_w, stride;
} shape;

static const shape SHAPES[] = {
    {9, 3, 1, 1, 1, 1, 8, 8, 1},   {6, 5, 2, 2, 2, 2, 8, 8, 1},   {5, 7, 3, 3, 3, 3, 8, 8, 1},
    {3, 7, 3, 3, 3, 3, 7, 7, 1},   {4, 5, 2, 2, 2, 2, 9, 5, 1},   {3, 3, 1, 1, 1, 1, 40, 6, 1},
    {2, 7, 3, 3, 3, 3, 23, 10, 1}, {4, 3, 0, 2, 2, 1, 9, 10, 1},  {2, 7, 0, 0, 0, 0, 12, 10, 1},
    {2, 7, 6, 5, 4, 3, 8, 8, 1},   {3, 3, 1, 1, 1, 1, 4, 4, 1},   {5, 7, 3, 3, 3, 3, 8, 8, 2},
    {3, 3, 1, 1, 1, 1, 16, 16, 2}, {4, 5, 2, 2, 2, 2, 8, 8, 2},   {3, 3, 1, 1, 1, 1, 8, 8, 2},
    {2, 7, 2, 2, 3, 3, 8, 8, 2},   {3, 5, 2, 1, 1, 2, 9, 11, 2},  {2, 3, 0, 0, 0, 0, 9, 9, 2},
    {2, 7, 3, 3, 3, 3, 10, 13, 2}, {2, 7, 3, 3, 3, 3, 24, 24, 2}, {2, 7, 3, 3, 3, 3, 32, 32, 2},
    {3, 5, 2, 2, 2, 2, 7, 8, 2},   {2, 3, 0, 0, 1, 1, 16, 16, 2},
};

static uint32_t rng_state = 2468u;

static uint32_t next_u32(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static float gh[MAX_FLOATS], gx[MAX_FLOATS], expected[MAX_FLOATS];
static int8_t w[MAX_W], w_train[MAX_W];
static int failures = 0, checks = 0;

/* The contract: gx [H][W][C] from its entry (or 0), the valid taps of w [K][K][C] (channel c from w_train
 * [K][K][k] where c = channels[j]) in ascending (u, v) order. */
static void contract(const tte_conv2d_params *p, int32_t out_h, int32_t out_w, int accumulate) {
    const int32_t c_all = p->in_c, k = p->kernel_h;
    for (int32_t iy = 0; iy < p->in_h; ++iy) {
        for (int32_t ix = 0; ix < p->in_w; ++ix) {
            for (int32_t c = 0; c < c_all; ++c) {
                const size_t at = ((size_t)iy * p->in_w + ix) * c_all + c;
                float a = accumulate ? gx[at] : 0.0f;
                int32_t j = -1;
                for (int32_t i = 0; i < p->train_count; ++i) {
                    j = p->train_channels[i] == c ? i : j;
                }
                for (int32_t u = 0; u < k; ++u) {
                    for (int32_t v = 0; v < k; ++v) {
                        const int32_t ty = iy + p->pad_top - u, tx = ix + p->pad_left - v;
                        const int32_t oy = ty / p->stride_h, ox = tx / p->stride_w;
                        if (ty < 0 || tx < 0 || ty % p->stride_h || tx % p->stride_w || oy >= out_h || ox >= out_w) {
                            continue;
                        }
                        const int32_t tap = u * k + v;
                        const int8_t code = j < 0 ? w[tap * c_all + c] : w_train[tap * p->train_count + j];
                        a = fmaf((float)code, gh[((size_t)oy * out_w + ox) * c_all + c], a);
                    }
                }
                expected[at] = a;
            }
        }
    }
}

static void check(const shape *s, int sliced, int entry) {
    const int32_t channels[1] = {s->c - 1};
    tte_conv2d_params p;
    memset(&p, 0, sizeof p);
    p.in_h = s->in_h, p.in_w = s->in_w, p.in_c = s->c, p.out_c = s->c, p.groups = s->c;
    p.kernel_h = s->k, p.kernel_w = s->k, p.stride_h = s->stride, p.stride_w = s->stride;
    p.pad_top = s->top, p.pad_left = s->left, p.pad_bottom = s->bottom, p.pad_right = s->right;
    p.train_channels = sliced ? channels : NULL;
    p.train_count = sliced ? 1 : 0;
    const int32_t out_h = (s->in_h + s->top + s->bottom - s->k) / s->stride + 1;
    const int32_t out_w = (s->in_w + s->left + s->right - s->k) / s->stride + 1;
    const int32_t n_gh = out_h * out_w * s->c, n_gx = s->in_h * s->in_w * s->c;
    for (int32_t i = 0; i < n_gh; ++i) {
        gh[i] = (float)((int32_t)(next_u32() % 2001u) - 1000) * 1.25e-4f;
    }
    for (int32_t i = 0; i < s->k * s->k * s->c; ++i) {
        w[i] = (int8_t)(entry == 2 ? 1 + (int32_t)(next_u32() % 127u) : (int32_t)(next_u32() % 255u) - 127);
        w_train[i] = (int8_t)((int32_t)(next_u32() % 255u) - 127);
    }
    for (int32_t i = 0; i < n_gx; ++i) { /* entry 2: -0, kept where every product is -0 (w > 0, gh = -0) */
        gx[i] = entry == 1 ? (float)((int32_t)(next_u32() % 2001u) - 1000) * 1e-4f : -0.0f;
    }
    if (entry == 2) {
        for (int32_t i = 0; i < n_gh / 2; ++i) {
            gh[i] = -0.0f;
        }
    }
    for (int32_t i = n_gx; i < n_gx + GUARD; ++i) { /* nothing past gx is written */
        gx[i] = expected[i] = 12345.0f;
    }
    contract(&p, out_h, out_w, entry != 0);
    const tte_status status =
        tte_depthwise_conv2d_bwd_x_f32(&p, gh, w, sliced ? w_train : NULL, gx, entry != 0, NULL, NULL);
    const int ok = status == TTE_OK && memcmp(gx, expected, (size_t)(n_gx + GUARD) * sizeof gx[0]) == 0;
    ++checks;
    failures += !ok;
    printf("CHECK k=%d s=%d c=%d %dx%d pad=%d,%d,%d,%d sliced=%d entry=%d %s\n", s->k, s->stride, s->c, s->in_h,
           s->in_w, s->top, s->left, s->bottom, s->right, sliced, entry, ok ? "PASS" : "FAIL");
}

int main(void) {
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; ++i) {
        for (int sliced = 0; sliced < 2; ++sliced) {
            for (int entry = 0; entry < 3; ++entry) {
                check(&SHAPES[i], sliced, entry);
            }
        }
    }
    printf("DONE checks=%d failed=%d\n", checks, failures);
    return failures != 0;
}
