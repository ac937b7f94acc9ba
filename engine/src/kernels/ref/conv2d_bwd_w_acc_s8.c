/* conv2d_bwd_w_acc: the mini-batch weight update of a dense conv's trained
 * slice (tte/tte_train.h, "Mini-batch updates"): the sample's weight gradient
 * added to a float32 accumulator, and at the batch's end the QAS step of its
 * mean (tte_conv2d_acc_finish). Each weight's gradient is tte_batch_tap_grad's
 * sum, computed at each tap by tte_grad_block (not fused) for AC_NA x AC_NB blocks of weights that share each
 * gh value and each converted input code, over the output positions the tap
 * reads (no bounds test per position). The portable kernel of every target. */
#include "batch-impl.h"

/* Output channels x trained channels per block (as the fused update, conv2d_bwd_w_update_s8.c). */
#define AC_NA 8
#define AC_NB 3

/* acc += the sample's gradient, for the live output channels begin .. begin + count - 1 (gh's band). */
static void accumulate(const tte_conv2d_params *p, const int8_t *x_saved, const float *gh, const float *inv_w,
                       float *acc, int32_t out_h, int32_t out_w, int32_t begin, int32_t count) {
    const int32_t k = p->train_count;
    const int32_t na = tte_block_size(count, AC_NA), nb = tte_block_size(k, AC_NB);
    float g[AC_NA * AC_NB];
    for (int32_t o_done = 0; o_done < count;) {
        const int32_t ol0 = tte_block_start(o_done, count, na);
        int live = 0;
        for (int32_t a = 0; a < na; ++a) {
            live |= !tte_qas_frozen(inv_w[begin + ol0 + a]);
        }
        for (int32_t t = 0; live && t < p->kernel_h * p->kernel_w; ++t) {
            const int32_t ky = t / p->kernel_w, kx = t % p->kernel_w;
            for (int32_t j_done = 0; j_done < k;) {
                const int32_t j0 = tte_block_start(j_done, k, nb);
                if (na == AC_NA && nb == AC_NB) {
                    tte_grad_block(p, out_h, out_w, x_saved, j0, AC_NB, gh, count, ol0, AC_NA, ky, kx, 0, g);
                } else if (na == AC_NA) {
                    tte_grad_block(p, out_h, out_w, x_saved, j0, 1, gh, count, ol0, AC_NA, ky, kx, 0, g);
                } else if (nb == AC_NB) {
                    tte_grad_block(p, out_h, out_w, x_saved, j0, AC_NB, gh, count, ol0, 1, ky, kx, 0, g);
                } else {
                    tte_grad_block(p, out_h, out_w, x_saved, j0, 1, gh, count, ol0, 1, ky, kx, 0, g);
                }
                for (int32_t ol = o_done; ol < ol0 + na; ++ol) {
                    const int32_t o = begin + ol;
                    if (tte_qas_frozen(inv_w[o])) {
                        continue;
                    }
                    float *row = &acc[((size_t)o * p->kernel_h * p->kernel_w + (size_t)t) * k];
                    for (int32_t j = j_done; j < j0 + nb; ++j) {
                        row[j] = row[j] + g[(ol - ol0) * nb + (j - j0)];
                    }
                }
                j_done = j0 + nb;
            }
        }
        o_done = ol0 + na;
    }
}

tte_status tte_conv2d_bwd_w_acc_s8(const tte_conv2d_params *p, tte_train_ctx *ctx, const tte_update_params *u,
                                   int32_t batch, const int8_t *x_saved, const float *gh, const float *inv_w,
                                   float *acc, int8_t *w_train, const tte_channel_band *gh_band) {
    int32_t out_h, out_w, begin, count;
    tte_status status =
        tte_conv2d_check_update(p, ctx, u, x_saved, gh, inv_w, w_train, gh_band, &out_h, &out_w, &begin, &count);
    if (status == TTE_OK) {
        status = tte_batch_check(acc, batch);
    }
    if (status == TTE_OK && (p->groups != 1)) {
        status = TTE_ERR_ARG; /* grouped convs other than depthwise do not train */
    }
    if (status != TTE_OK) {
        return status;
    }
    if (tte_update_gate(ctx, gh, (size_t)out_h * out_w * count)) {
        accumulate(p, x_saved, gh, inv_w, acc, out_h, out_w, begin, count);
    }
    tte_conv2d_acc_finish(p, ctx, u, batch, inv_w, acc, w_train, begin, count, 0);
    return TTE_OK;
}
