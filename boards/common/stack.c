/* Stack painting and high-water readback: the measured stack is part of the
 * firmware RAM figure (ARCHITECTURE.md, memory accounting). */
#include <stdint.h>

#include "board.h"
#include "stack-impl.h"

#define STACK_PAINT 0xC0DEC0DEu

/* Defined by the linker script: the stack occupies [__stack_limit__, __stack_top__). */
extern uint32_t __stack_limit__[], __stack_top__[];

void stack_paint(void) {
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    /* Everything below the current stack pointer is unused yet. */
    for (volatile uint32_t *p = __stack_limit__; p < (volatile uint32_t *)sp; ++p) {
        *p = STACK_PAINT;
    }
}

uint32_t board_stack_high_water(void) {
    const volatile uint32_t *p = __stack_limit__;
    while (p < (const volatile uint32_t *)__stack_top__ && *p == STACK_PAINT) {
        ++p;
    }
    return (uint32_t)((uintptr_t)__stack_top__ - (uintptr_t)p);
}

uint32_t board_stack_size(void) {
    return (uint32_t)((uintptr_t)__stack_top__ - (uintptr_t)__stack_limit__);
}
