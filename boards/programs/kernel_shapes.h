/* Conv layer shapes for the kernel programs (kernel_check_main.c, kernel_bench_main.c), written by
 * boards/tools/kernel_bench.py as a C file that defines kernel_shapes and kernel_shape_count. */
#ifndef TTE_KERNEL_SHAPES_H
#define TTE_KERNEL_SHAPES_H

#include <stdint.h>

typedef enum kernel_kind { KERNEL_POINTWISE = 0, KERNEL_DEPTHWISE = 1, KERNEL_DENSE = 2 } kernel_kind;

typedef struct kernel_shape {
    const char *name;
    kernel_kind kind;
    int32_t in_h, in_w, in_c, out_c;
    int32_t kernel_h, kernel_w;                       /* pointwise: 1, 1 */
    int32_t stride_h, stride_w;                       /* >= 1 */
    int32_t pad_top, pad_left, pad_bottom, pad_right; /* pointwise: 0 */
    int32_t groups;                                   /* dense: divides in_c and out_c; pointwise 1, depthwise in_c */
} kernel_shape;

extern const kernel_shape kernel_shapes[];
extern const uint32_t kernel_shape_count;
/* Per shape: nonzero where kernel_bench_main.c also counts the layer's fp32 backward kernels. */
extern const uint8_t kernel_shape_backward[];

#endif /* TTE_KERNEL_SHAPES_H */
