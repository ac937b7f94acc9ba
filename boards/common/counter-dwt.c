/* Cycle counter of a real Cortex-M7/M4 (the DWT's CYCCNT), for boards run on
 * hardware. 32 bits: it wraps after 2^32 cycles (about 20 s at 216 MHz). */
#include <stdint.h>

#include "board.h"

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u) /* software lock on the Cortex-M7 */

const char board_counter_unit[] = "cycles";

void board_counter_start(void) {
    DEMCR |= 1u << 24; /* TRCENA: power the DWT */
    DWT_LAR = 0xC5ACCE55u;
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u; /* CYCCNTENA */
}

uint64_t board_counter_read(void) {
    return DWT_CYCCNT;
}
