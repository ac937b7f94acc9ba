/* Flash driver of the STM32F746 (RM0385 section 3, "Embedded Flash memory"),
 * register-level, no vendor HAL: the board's tte_flash for parameter
 * persistence (board_flash(), flash.h).
 *
 * Geometry of the 1 MB single-bank part (RM0385 table 3), AXIM addresses:
 *   sectors 0-3   32 KB  0x08000000 0x08008000 0x08010000 0x08018000
 *   sector  4    128 KB  0x08020000
 *   sectors 5-7  256 KB  0x08040000 0x08080000 0x080C0000
 *
 * The two slots:
 *   slot 0 = sectors 1-2 (64 KB at 0x08008000, two 32 KB sectors),
 *   slot 1 = sector 7 (256 KB at 0x080C0000).
 * The MCUNet-5fps training image is about 615 KB, more than sectors 0-5 (512 KB)
 * hold, so sectors 6 and 7 cannot both be slots; the 32 KB sectors 1-3 (96 KB)
 * cannot hold two slots of its 36.9 KB parameters either. Sector 0 stays the
 * boot sector (the vector table at 0x08000000, where the part boots by default),
 * sectors 3-6 (672 KB from 0x08018000) hold the rest of the image: this board's
 * CMakeLists gives the linker script BOOT = sector 0 and FLASH = sectors 3-6, so
 * the image never lies in a slot. A save therefore fits in 64 KB - 32 B.
 *
 * Every erase and program runs with PSIZE x32 (RM0385 table 4: 2.7-3.6 V, the
 * Discovery board's 3.3 V), program unit 4 bytes. The CPU stalls on flash reads
 * while an operation runs (one bank), which is all the test programs need; code
 * that must keep interrupts serviced would run these functions from RAM. With
 * the Cortex-M7 D-cache enabled (the startup leaves it off), a caller would
 * invalidate the slot's lines after an erase or program before reading it. */
#include <stdint.h>

#include "flash.h"

#define FLASH_R ((volatile uint32_t *)0x40023C00u) /* flash interface registers (RM0385 3.7) */
#define KEYR (0x04u / 4u)
#define SR (0x0Cu / 4u)
#define CR (0x10u / 4u)

#define KEY1 0x45670123u /* FLASH_KEYR unlock sequence (RM0385 3.3.3) */
#define KEY2 0xCDEF89ABu

#define SR_EOP (1u << 0)
#define SR_OPERR (1u << 1)
#define SR_WRPERR (1u << 4) /* write protection */
#define SR_PGAERR (1u << 5) /* programming alignment */
#define SR_PGPERR (1u << 6) /* programming parallelism (PSIZE) */
#define SR_ERSERR (1u << 7) /* erase sequence */
#define SR_BSY (1u << 16)
#define SR_ERRORS (SR_OPERR | SR_WRPERR | SR_PGAERR | SR_PGPERR | SR_ERSERR)

#define CR_PG (1u << 0)
#define CR_SER (1u << 1)
#define CR_SNB_SHIFT 3u        /* SNB[3:0], bits 6:3 */
#define CR_PSIZE_X32 (2u << 8) /* PSIZE[1:0] = 10 */
#define CR_STRT (1u << 16)
#define CR_LOCK (1u << 31)

#define SLOT0_ADDRESS 0x08008000u
#define SLOT1_ADDRESS 0x080C0000u

static const uint32_t sector_start[9] = {0x08000000u, 0x08008000u, 0x08010000u, 0x08018000u, 0x08020000u,
                                         0x08040000u, 0x08080000u, 0x080C0000u, 0x08100000u};

/* 1 when [address, address + length) lies in one slot: the driver touches nothing else, the image least. */
static int in_slot(uint32_t address, uint32_t length) {
    const tte_flash *f = board_flash();
    for (int i = 0; i < 2; ++i) {
        const tte_flash_slot *s = &f->slots[i];
        if (address >= s->address && address - s->address <= s->size && length <= s->size - (address - s->address)) {
            return 1;
        }
    }
    return 0;
}

static void unlock(void) {
    if (FLASH_R[CR] & CR_LOCK) {
        FLASH_R[KEYR] = KEY1;
        FLASH_R[KEYR] = KEY2;
    }
}

/* Waits for the end of the operation; clears and reports its error flags (nonzero on error). */
static int finish(void) {
    __asm__ volatile("dsb" ::: "memory"); /* the last write has reached the flash interface */
    while (FLASH_R[SR] & SR_BSY) {
    }
    uint32_t errors = FLASH_R[SR] & SR_ERRORS;
    FLASH_R[SR] = errors | SR_EOP; /* rc_w1 flags */
    return errors != 0;
}

static int stm32_erase_sector(void *ctx, uint32_t address) {
    (void)ctx;
    uint32_t sector = 0;
    while (sector < 8 && sector_start[sector] != address) {
        ++sector;
    }
    if (sector == 8 || !in_slot(address, sector_start[sector + 1] - address)) {
        return -1;
    }
    unlock();
    while (FLASH_R[SR] & SR_BSY) {
    }
    FLASH_R[SR] = SR_ERRORS | SR_EOP; /* stale flags would fail this operation */
    FLASH_R[CR] = CR_PSIZE_X32 | CR_SER | (sector << CR_SNB_SHIFT);
    FLASH_R[CR] |= CR_STRT;
    int error = finish();
    FLASH_R[CR] = CR_LOCK;
    return error ? -1 : 0;
}

static int stm32_program(void *ctx, uint32_t address, const uint8_t *data, uint32_t length) {
    (void)ctx;
    if (address % 4u != 0 || length % 4u != 0 || !in_slot(address, length)) {
        return -1;
    }
    unlock();
    while (FLASH_R[SR] & SR_BSY) {
    }
    FLASH_R[SR] = SR_ERRORS | SR_EOP;
    FLASH_R[CR] = CR_PSIZE_X32 | CR_PG;
    int error = 0;
    for (uint32_t i = 0; i < length && !error; i += 4) {
        /* assembled from bytes: the caller's buffer need not be word-aligned */
        uint32_t word =
            (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16 | (uint32_t)data[i + 3] << 24;
        *(volatile uint32_t *)(uintptr_t)(address + i) = word;
        error = finish();
    }
    FLASH_R[CR] = CR_LOCK;
    return error ? -1 : 0;
}

static int stm32_read(void *ctx, uint32_t address, uint8_t *buffer, uint32_t length) {
    (void)ctx;
    if (!in_slot(address, length)) {
        return -1;
    }
    const volatile uint8_t *src = (const volatile uint8_t *)(uintptr_t)address;
    for (uint32_t i = 0; i < length; ++i) {
        buffer[i] = src[i];
    }
    return 0;
}

static const tte_flash stm32f7_flash = {
    .ctx = 0,
    .erase_sector = stm32_erase_sector,
    .program = stm32_program,
    .read = stm32_read,
    .program_unit = 4,
    .slots = {{SLOT0_ADDRESS, 2u * 32u * 1024u, 32u * 1024u}, {SLOT1_ADDRESS, 256u * 1024u, 256u * 1024u}},
};

const tte_flash *board_flash(void) {
    return &stm32f7_flash;
}
