/* Instruction counter of the QEMU MPS2 boards. Under `qemu-system-arm -icount
 * shift=0` every instruction advances virtual time by 1 ns; the CMSDK APB
 * timer 0 runs at the 25 MHz system clock, so one tick is 40 instructions.
 * Without -icount the figure follows host time and is not repeatable. */
#include <stdint.h>

#include "board.h"

#define TIMER0 ((volatile uint32_t *)0x40000000u) /* CMSDK APB timer 0 */
#define TIMER_CTRL 0                              /* bit 0: enable */
#define TIMER_VALUE 1                             /* counts down */
#define TIMER_RELOAD 2
#define INSTRUCTIONS_PER_TICK 40u /* 1 ns per instruction, 25 MHz timer clock */

const char board_counter_unit[] = "instructions";

void board_counter_start(void) {
    TIMER0[TIMER_CTRL] = 0;
    TIMER0[TIMER_RELOAD] = 0xFFFFFFFFu;
    TIMER0[TIMER_VALUE] = 0xFFFFFFFFu;
    TIMER0[TIMER_CTRL] = 1;
}

uint64_t board_counter_read(void) {
    return (uint64_t)(0xFFFFFFFFu - TIMER0[TIMER_VALUE]) * INSTRUCTIONS_PER_TICK;
}
