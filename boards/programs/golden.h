/* Golden kernel cases, written as C by `boards/tools/firmware_data.py golden`:
 * one function per case that sets up its buffers, calls its kernel (descriptor
 * and arguments spelled from tte_ir.kernels) and compares every buffer it
 * changed, and the step status, with the expected contents (the numpy
 * reference for the forward kernels, the host engine for the training
 * kernels); it returns NULL when all agree, else why not. */
#ifndef TTE_GOLDEN_H
#define TTE_GOLDEN_H

#include <stdint.h>

#include "tte/tte.h"
#include "tte/tte_train.h"

typedef struct golden_case {
    const char *name;
    const char *(*run)(void);
} golden_case;

extern const golden_case golden_cases[];
extern const uint32_t golden_case_count;

#endif /* TTE_GOLDEN_H */
