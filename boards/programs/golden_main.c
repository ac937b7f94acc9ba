/* Runs every golden kernel case and prints one line per case, which the host
 * test (tests/engine/test_qemu.py) parses:
 *     CASE <name> PASS
 *     CASE <name> FAIL <reason>
 *     DONE passed=<n> failed=<n> stack_high_water=<bytes>
 * The exit status is 0 only when every case passed. */
#include <stdio.h>

#include "board.h"
#include "golden.h"

int main(void) {
    uint32_t failed = 0;
    for (uint32_t i = 0; i < golden_case_count; ++i) {
        const char *why = golden_cases[i].run();
        if (why == NULL) {
            board_printf("CASE %s PASS\n", golden_cases[i].name);
        } else {
            board_printf("CASE %s FAIL %s\n", golden_cases[i].name, why);
            ++failed;
        }
    }
    board_printf("DONE passed=%lu failed=%lu stack_high_water=%lu\n", (unsigned long)(golden_case_count - failed),
                 (unsigned long)failed, (unsigned long)board_stack_high_water());
    return failed == 0 ? 0 : 1;
}
