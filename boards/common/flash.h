/* The board's flash for parameter persistence (tte/tte_persist.h), and a RAM
 * model of NOR flash for the host and QEMU tests.
 *
 * A board with flash of its own (stm32f746g-disco: flash_stm32f7.c) defines
 * board_flash() and compiles with TTE_BOARD_HAS_FLASH; the QEMU boards have no
 * programmable flash and use the RAM model. */
#ifndef TTE_BOARD_FLASH_H
#define TTE_BOARD_FLASH_H

#include <stdint.h>

#include "tte/tte_persist.h"

/* The board's flash, slots included; the linker script keeps the image out of the slots. */
const tte_flash *board_flash(void);

/* RAM-backed NOR flash: `size` bytes of `memory` seen at flash address `base`, uniform sectors.
 * Like NOR flash, an erase sets a sector to 0xFF and a program only clears bits (new = old AND
 * data), whole program units at a time; programming a unit that is not erased is an error, as on
 * flash with ECC or a program-once rule (the STM32's PGSERR), so a save that forgets an erase fails.
 *
 * Fault injection: with cut_operation = N (1-based, counting erases and programs together) the
 * power goes during operation N after cut_bytes of it: an erase leaves bytes [0, cut_bytes) of its
 * sector at 0xFF and the rest as they were; a program writes bytes [0, cut_bytes) and half of byte
 * cut_bytes (its low nibble's bits cleared, the high nibble's not), nothing after. From then on
 * every call fails, until flash_ram_power_on(). */
typedef struct flash_ram {
    uint8_t *memory;
    uint32_t base;
    uint32_t size;
    uint32_t sector_size;
    uint32_t program_unit;
    uint32_t operations;    /* erases and programs started since init or the last power on */
    uint32_t cut_operation; /* 0: never cut */
    uint32_t cut_bytes;
    int powered;
} flash_ram;

/* Sets up the model (memory left as it is: call flash_ram_erase_all for blank flash) and binds
 * `flash` to it: ctx, the three functions and the program unit. The caller sets flash->slots. */
void flash_ram_init(flash_ram *ram, tte_flash *flash, uint8_t *memory, uint32_t base, uint32_t size,
                    uint32_t sector_size, uint32_t program_unit);

/* Every byte to 0xFF (a factory-blank part); not counted as an operation. */
void flash_ram_erase_all(flash_ram *ram);

/* Power back: calls work again, the operation count restarts at 0 and no cut is armed. */
void flash_ram_power_on(flash_ram *ram);

#endif /* TTE_BOARD_FLASH_H */
