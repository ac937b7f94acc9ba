/* A model forward as a table of steps over one static arena, written by
 * `boards/tools/firmware_data.py forward` from a tte_ir graph. */
#ifndef TTE_FORWARD_H
#define TTE_FORWARD_H

#include <stdint.h>

#include "steps.h"

typedef struct forward_layer {
    const char *name; /* the IR node */
    step step;
    uint32_t in, in2; /* byte offsets of the inputs in forward_arena (in2: add only) */
    uint32_t out;     /* byte offset of the output */
    uint32_t out_bytes;
    uint32_t macs; /* multiply-accumulates of the step */
} forward_layer;

extern const forward_layer forward_layers[];
extern const uint32_t forward_layer_count;

extern uint8_t forward_arena[]; /* [forward_arena_bytes], 8-byte aligned */
extern const uint32_t forward_arena_bytes;
extern const int8_t forward_input[]; /* [forward_input_bytes] the fixed test input, HWC */
extern const uint32_t forward_input_bytes, forward_input_offset;

#endif /* TTE_FORWARD_H */
