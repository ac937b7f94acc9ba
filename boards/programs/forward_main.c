/* Runs a model forward on the fixed input and prints, for the host test to
 * compare with the host engine (tests/engine/test_qemu.py):
 *     LAYER <name> fnv1a=<hash of the output bytes, 8 hex digits> count=<counter ticks of the step>
 *     LOGIT <i> <float32 bits, 8 hex digits>      (when the last output is float32)
 *     COUNT <n> <board_counter_unit> macs=<n>
 *     DONE layers=<n> stack_high_water=<bytes>
 * The counter brackets the kernels only, not the printing. */
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "forward.h"

/* FNV-1a, 32 bit: a cheap fingerprint of a layer's output. */
static uint32_t fnv1a(const uint8_t *p, uint32_t n) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; ++i) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

int main(void) {
    memcpy(forward_arena + forward_input_offset, forward_input, forward_input_bytes);
    uint64_t counted = 0;
    uint64_t macs = 0;
    for (uint32_t i = 0; i < forward_layer_count; ++i) {
        const forward_layer *l = &forward_layers[i];
        board_counter_start();
        const tte_status status = step_run(&l->step, (const int8_t *)(forward_arena + l->in),
                                           (const int8_t *)(forward_arena + l->in2), forward_arena + l->out, NULL);
        const uint64_t count = board_counter_read();
        counted += count;
        macs += l->macs;
        if (status != TTE_OK) {
            printf("FAIL layer %s: %s\n", l->name, tte_status_str(status));
            return 1;
        }
        printf("LAYER %s fnv1a=%08lx count=%llu\n", l->name, (unsigned long)fnv1a(forward_arena + l->out, l->out_bytes),
               (unsigned long long)count);
    }
    const forward_layer *last = &forward_layers[forward_layer_count - 1];
    if (last->step.kind == STEP_LINEAR_F32) {
        for (uint32_t o = 0; o * 4 < last->out_bytes; ++o) {
            uint32_t bits;
            memcpy(&bits, forward_arena + last->out + 4 * o, 4);
            printf("LOGIT %lu %08lx\n", (unsigned long)o, (unsigned long)bits);
        }
    }
    printf("COUNT %llu %s macs=%llu\n", (unsigned long long)counted, board_counter_unit, (unsigned long long)macs);
    printf("DONE layers=%lu stack_high_water=%lu\n", (unsigned long)forward_layer_count,
           (unsigned long)board_stack_high_water());
    return 0;
}
