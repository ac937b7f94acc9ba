/* Cortex-M startup shared by every board: the vector table, the reset handler
 * (FPU on where there is one, .data copied, .bss zeroed, stack painted, semihosting opened) and a
 * fault handler that ends the program instead of hanging the emulator. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "board.h"
#include "stack-impl.h"

/* Defined by the linker script (cortex-m.ld). */
extern uint32_t __data_load__[], __data_start__[], __data_end__[], __bss_start__[], __bss_end__[];
extern uint32_t __stack_top__[];

/* newlib's rdimon: opens the semihosting stdin/stdout/stderr; it must run before the first printf. */
extern void initialise_monitor_handles(void);

int main(void);

void Reset_Handler(void);
void Fault_Handler(void);

/* Linking with -nostartfiles leaves out crt0 and crti/crtn; newlib's exit()
 * still calls _fini, and C programs have no constructors for _init to run. */
void _init(void) {}
void _fini(void) {}

__attribute__((noreturn)) void Reset_Handler(void) {
#if defined(__ARM_FP)
    /* Full access to CP10/CP11 (the FPU) in CPACR, before any float instruction. A core without an FPU
     * (Cortex-M3: software float) has no coprocessor to enable. */
    volatile uint32_t *const cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif

    for (uint32_t *src = __data_load__, *dst = __data_start__; dst < __data_end__;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = __bss_start__; dst < __bss_end__;) {
        *dst++ = 0;
    }
    stack_paint();
    initialise_monitor_handles();
    exit(main());
}

/* Any fault ends the run with a distinct exit status (semihosting SYS_EXIT). */
void Fault_Handler(void) {
    _exit(3);
}

typedef void (*vector)(void);

/* The 16 Cortex-M system vectors; interrupts are not used by the test programs. */
__attribute__((section(".vectors"), used)) static const vector vectors[16] = {
    (vector)(uintptr_t)__stack_top__, /* initial main stack pointer */
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
};
