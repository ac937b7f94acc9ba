/* RAM model of NOR flash with power-cut injection (flash.h), for the host and
 * for Cortex-M alike. */
#include <string.h>

#include "flash.h"

/* 1 when [address, address + length) lies inside the model; sets *offset to its start in memory. */
static int locate(const flash_ram *ram, uint32_t address, uint32_t length, uint32_t *offset) {
    if (address < ram->base || address - ram->base > ram->size || length > ram->size - (address - ram->base)) {
        return 0;
    }
    *offset = address - ram->base;
    return 1;
}

/* Starts one erase or program; 1 when the power holds for all of it, 0 when the cut is this one. */
static int operation_survives(flash_ram *ram) {
    ram->operations += 1;
    if (ram->cut_operation != 0 && ram->operations == ram->cut_operation) {
        ram->powered = 0;
        return 0;
    }
    return 1;
}

static int ram_erase_sector(void *ctx, uint32_t address) {
    flash_ram *ram = ctx;
    uint32_t offset;
    if (!ram->powered || !locate(ram, address, ram->sector_size, &offset) || offset % ram->sector_size != 0) {
        return -1;
    }
    uint32_t n = ram->sector_size;
    int survives = operation_survives(ram);
    if (!survives && ram->cut_bytes < n) {
        n = ram->cut_bytes;
    }
    memset(ram->memory + offset, 0xFF, n);
    return survives ? 0 : -1;
}

static int ram_program(void *ctx, uint32_t address, const uint8_t *data, uint32_t length) {
    flash_ram *ram = ctx;
    const uint32_t unit = ram->program_unit;
    uint32_t offset;
    if (!ram->powered || !locate(ram, address, length, &offset) || offset % unit != 0 || length % unit != 0) {
        return -1;
    }
    for (uint32_t i = 0; i < length; ++i) {
        if (ram->memory[offset + i] != 0xFFu) {
            return -1; /* checked before anything is written, as the controller refuses the whole program */
        }
    }
    int survives = operation_survives(ram);
    uint32_t n = length;
    if (!survives && ram->cut_bytes < n) {
        n = ram->cut_bytes;
    }
    for (uint32_t i = 0; i < n; ++i) {
        ram->memory[offset + i] &= data[i];
    }
    if (!survives && n < length) {
        ram->memory[offset + n] &= (uint8_t)(data[n] | 0xF0u);
    }
    return survives ? 0 : -1;
}

static int ram_read(void *ctx, uint32_t address, uint8_t *buffer, uint32_t length) {
    flash_ram *ram = ctx;
    uint32_t offset;
    if (!ram->powered || !locate(ram, address, length, &offset)) {
        return -1;
    }
    memcpy(buffer, ram->memory + offset, length);
    return 0;
}

void flash_ram_init(flash_ram *ram, tte_flash *flash, uint8_t *memory, uint32_t base, uint32_t size,
                    uint32_t sector_size, uint32_t program_unit) {
    ram->memory = memory;
    ram->base = base;
    ram->size = size;
    ram->sector_size = sector_size;
    ram->program_unit = program_unit;
    flash_ram_power_on(ram);
    flash->ctx = ram;
    flash->erase_sector = ram_erase_sector;
    flash->program = ram_program;
    flash->read = ram_read;
    flash->program_unit = program_unit;
}

void flash_ram_erase_all(flash_ram *ram) {
    memset(ram->memory, 0xFF, ram->size);
}

void flash_ram_power_on(flash_ram *ram) {
    ram->operations = 0;
    ram->cut_operation = 0;
    ram->cut_bytes = 0;
    ram->powered = 1;
}
