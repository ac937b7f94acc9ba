/* Runs every golden kernel case and prints one line per case, which the host
 * test (tests/engine/test_qemu.py) parses:
 *     CASE <name> PASS
 *     CASE <name> FAIL <reason>
 *     DONE passed=<n> failed=<n> stack_high_water=<bytes>
 * The exit status is 0 only when every case passed. */
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "golden.h"

/* NULL when the case passed, else why it failed. */
static const char *run_case(const golden_case *c) {
    if (c->out_bytes > golden_out_capacity || c->mask_bytes > golden_mask_capacity) {
        return "output larger than the buffers";
    }
    memset(golden_out, 0, c->out_bytes);
    memset(golden_mask, 0, c->mask_bytes);
    const tte_status status = step_run(&c->step, c->x, c->x2, golden_out, c->expected_mask ? golden_mask : NULL);
    if (status != TTE_OK) {
        return tte_status_str(status);
    }
    if (memcmp(golden_out, c->expected, c->out_bytes) != 0) {
        return "output differs";
    }
    if (c->expected_mask != NULL && memcmp(golden_mask, c->expected_mask, c->mask_bytes) != 0) {
        return "mask differs";
    }
    return NULL;
}

/* Prints the case's line; returns 1 when it failed. */
static uint32_t report(const char *name, const char *why) {
    if (why == NULL) {
        printf("CASE %s PASS\n", name);
        return 0;
    }
    printf("CASE %s FAIL %s\n", name, why);
    return 1;
}

int main(void) {
    uint32_t failed = 0;
    for (uint32_t i = 0; i < golden_case_count; ++i) {
        failed += report(golden_cases[i].name, run_case(&golden_cases[i]));
    }
    for (uint32_t i = 0; i < golden_call_case_count; ++i) {
        failed += report(golden_call_cases[i].name, golden_call_cases[i].run());
    }
    const uint32_t total = golden_case_count + golden_call_case_count;
    printf("DONE passed=%lu failed=%lu stack_high_water=%lu\n", (unsigned long)(total - failed), (unsigned long)failed,
           (unsigned long)board_stack_high_water());
    return failed == 0 ? 0 : 1;
}
