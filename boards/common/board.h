/* What a test program needs from a board: a counter for benchmarks and the
 * stack high-water mark. Startup (startup.c) initialises memory, the FPU and
 * semihosting before main(), and exits through semihosting after it. */
#ifndef TTE_BOARD_H
#define TTE_BOARD_H

#include <stdint.h>
#include <stdio.h>

/* The programs print through board_printf: on a board, newlib's integer-only iprintf (it keeps %llu),
 * because printf's float formatting (_vfprintf_r, _dtoa_r, ...: 16 KB of flash) would be linked into
 * every image though the programs print floats only as their bits (%08lx); board.cmake defines
 * _DEFAULT_SOURCE, without which -std=c99 hides iprintf. A host build of a program (the tests' kernel
 * and power-cut checks) uses its C library's printf. */
#ifdef __NEWLIB__
#define board_printf iprintf
#else
#define board_printf printf
#endif

/* Starts the board's free-running counter from zero. */
void board_counter_start(void);

/* Counter value since board_counter_start(), in board_counter_unit. */
uint64_t board_counter_read(void);

/* What the counter counts, e.g. "instructions" (QEMU with -icount shift=0) or "cycles". */
extern const char board_counter_unit[];

/* Bytes of stack used so far: the deepest word below the top of the stack that
 * no longer holds the paint pattern written at reset. */
uint32_t board_stack_high_water(void);

/* Bytes reserved for the stack by the linker script. */
uint32_t board_stack_size(void);

#endif /* TTE_BOARD_H */
