/* Golden kernel cases: inputs and expected outputs computed by the numpy
 * reference (int8) or the host engine (float32, and every training kernel),
 * written as C data by `boards/tools/firmware_data.py golden`. */
#ifndef TTE_GOLDEN_H
#define TTE_GOLDEN_H

#include <stdint.h>

#include "steps.h"

typedef struct golden_case {
    const char *name;
    step step;
    const int8_t *x;      /* first input, engine layout */
    const int8_t *x2;     /* second input of an add, else NULL */
    const void *expected; /* [out_bytes] expected output bytes */
    uint32_t out_bytes;
    const uint8_t *expected_mask; /* [mask_bytes] bit-packed, unused bits 0; NULL for float outputs */
    uint32_t mask_bytes;
} golden_case;

extern const golden_case golden_cases[];
extern const uint32_t golden_case_count;

/* A training-kernel case (boards/tools/train_cases.py): `run` sets up its
 * buffers, calls the kernel and compares every buffer it changed, and the step
 * status, with the host engine's; it returns NULL when all agree, else why not. */
typedef struct golden_call_case {
    const char *name;
    const char *(*run)(void);
} golden_call_case;

extern const golden_call_case golden_call_cases[];
extern const uint32_t golden_call_case_count;

/* Output buffers sized for the largest case. */
extern uint8_t golden_out[];  /* [golden_out_capacity] */
extern uint8_t golden_mask[]; /* [golden_mask_capacity] */
extern const uint32_t golden_out_capacity, golden_mask_capacity;

#endif /* TTE_GOLDEN_H */
