/* Pointwise (1x1) int8 convolution for the host: a blocked matrix product (tte_host_product), two
 * output pixels x four output channels per step over int16 codes, any stride, row bands, masks and
 * trained slices (merged into each weight row as it is converted). Results equal
 * tte_ref_pointwise_conv2d_fwd_s8's bit for bit (host-impl.h). A call with more than
 * TTE_HOST_ROW_CODES input channels runs the reference kernel. */
#include "host-impl.h"

size_t tte_pointwise_conv2d_fwd_s8_scratch_size(const tte_conv2d_params *p) {
    (void)p; /* the converted rows are on the stack: the host's size is the reference's, 0 */
    return 0;
}

typedef struct pw_call {
    const tte_conv2d_params *p;
    const int8_t *x, *w, *w_train;
    int32_t stride_h, stride_w, out_w, oy_begin, x_row, k_pad;
} pw_call;

/* Band pixel k's input channels. */
static void pw_row(const void *ctx, int32_t k, int16_t *row) {
    const pw_call *c = ctx;
    const int32_t oy = c->oy_begin + k / c->out_w, ox = k % c->out_w;
    const int32_t in_c = c->p->in_c;
    const int8_t *xp = c->x + ((size_t)(oy * c->stride_h - c->x_row) * c->p->in_w + (size_t)ox * c->stride_w) * in_c;
    tte_host_widen(xp, in_c, c->p->x_zero, c->k_pad, row);
}

/* Output channel o's weights, its trained slice in place of the listed channels. */
static void pw_weights(const void *ctx, int32_t o, int16_t *row) {
    const pw_call *c = ctx;
    const tte_conv2d_params *p = c->p;
    tte_host_widen_weights(c->w + (size_t)o * p->in_c, p->in_c, c->k_pad, row);
    for (int32_t j = 0; j < p->train_count; ++j) {
        row[p->train_channels[j]] = c->w_train[(size_t)o * p->train_count + j];
    }
}

static TTE_HOST_CLONES void pw_run(const pw_call *c, const tte_host_out *d, int32_t pixels) {
    tte_host_product(c, d, pixels, c->k_pad, pw_row, pw_weights);
}

tte_status tte_pointwise_conv2d_fwd_s8(const tte_conv2d_params *p, const int8_t *x, const int8_t *w,
                                       const int8_t *w_train, const int32_t *bias, const float *multiplier, int8_t *y,
                                       uint8_t *mask, const tte_row_band *rows, void *scratch) {
    tte_conv2d_window win;
    const tte_status status =
        tte_conv2d_fwd_check(p, x, w, w_train, bias, multiplier, y, rows, TTE_CONV2D_POINTWISE, &win);
    if (status != TTE_OK) {
        return status;
    }
    const int32_t k_pad = tte_host_round_up(p->in_c, TTE_HOST_LANES);
    if (k_pad > TTE_HOST_ROW_CODES) {
        return tte_ref_pointwise_conv2d_fwd_s8(p, x, w, w_train, bias, multiplier, y, mask, rows, scratch);
    }
    const pw_call c = {p, x, w, w_train, p->stride_h, p->stride_w, win.out_w, win.oy_begin, win.x_row, k_pad};
    const tte_host_out d = {p, bias, multiplier, p->out_c, y, mask, win.oy_begin * win.out_w};
    pw_run(&c, &d, (win.oy_end - win.oy_begin) * win.out_w);
    return TTE_OK;
}
