/* stm32-learn: a bare-metal firmware that learns on the device and keeps what it learned.
 *
 * At boot it restores the newest save of its trained parameters from flash (tte/tte_persist.h: two
 * slots in turn, so a power cut during a save loses at most that save). Then it measures its
 * accuracy on held-out samples, learns from labelled samples one at a time as they arrive (one
 * training step each), saves its parameters every LEARN_SAVE_EVERY steps and once more when the
 * samples end, and measures its accuracy again.
 *
 * The samples come over semihosting, from files in the debugger's or QEMU's working folder (on a
 * product they would come from a sensor and a button or a radio; make_model.py writes these):
 *     learn.bin   the stream to learn from: per sample an int32 label (little-endian), then
 *                 DIGITS_INPUT_BYTES int8 codes of the image (HWC); absent: nothing to learn
 *     test.bin    held-out samples, same format
 *     out: params.bin  the parameters at the end, as digits_export_params writes them
 * The flash:
 *     stm32f746g-disco: the part's own flash through boards/stm32f746g-disco/flash_stm32f7.c
 *                       (slot 0 = sectors 1-2, slot 1 = sector 7; the linker script keeps the image
 *                       out of them).
 *     QEMU (mps2-an500): the RAM model of NOR flash (boards/common/flash.h), whose contents this
 *                       program loads from flash.bin at boot and writes back after every save: the
 *                       next run of the image is the board after a reset, its flash as it was left.
 * It prints, one line each:
 *     BOOT restore=<tte_persist status> import=<digits import status, -1: nothing restored> step=<n>
 *     ACCURACY phase=<boot|learned> correct=<n> total=<n>
 *     SAVE step=<n> status=<tte_persist status>
 *     DONE learned=<steps this run> step=<step counter> saves=<n>
 * and exits 0 when every model call, save and file went well. */
#define _POSIX_C_SOURCE 200112L /* open, read, write, close under -std=c99 */

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "flash.h"
#include "model.h"
#include "tte/tte_persist.h"

#ifndef LEARN_SAVE_EVERY
#define LEARN_SAVE_EVERY 50
#endif

/* A save: the export (header with digest and CRC, then the parameters) and the step counter, so
 * that the stochastic rounding goes on where it stopped instead of repeating its sequence. */
#define SAVE_BYTES (DIGITS_EXPORT_BYTES + 4u)
static uint8_t save_buffer[SAVE_BYTES];

/* Reads exactly n bytes; 0 when they were all there. */
static int read_exactly(int fd, void *data, size_t n) {
    for (char *p = data; n > 0;) {
        const ssize_t got = read(fd, p, n);
        if (got <= 0) {
            return -1;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Writes all n bytes; 0 when they all went. */
static int write_all(int fd, const void *data, size_t n) {
    for (const char *p = data; n > 0;) {
        const ssize_t put = write(fd, p, n);
        if (put <= 0) {
            return -1;
        }
        p += put;
        n -= (size_t)put;
    }
    return 0;
}

#ifdef TTE_BOARD_HAS_FLASH
static const tte_flash *flash_open(void) {
    return board_flash();
}

static void flash_keep(void) {}
#else
/* The RAM flash model: two slots of whole 2 KB sectors, program unit 4 bytes (as the STM32F7's). */
#define SECTOR 2048u
#define SLOT ((TTE_PERSIST_HEADER_BYTES + SAVE_BYTES + SECTOR - 1u) / SECTOR * SECTOR)
#define FLASH_BASE 0x08000000u
static uint8_t flash_memory[2u * SLOT];
static flash_ram ram;
static tte_flash ram_flash;

/* The model with the contents flash.bin holds (blank flash without it). */
static const tte_flash *flash_open(void) {
    flash_ram_init(&ram, &ram_flash, flash_memory, FLASH_BASE, sizeof flash_memory, SECTOR, 4u);
    ram_flash.slots[0] = (tte_flash_slot){FLASH_BASE, SLOT, SECTOR};
    ram_flash.slots[1] = (tte_flash_slot){FLASH_BASE + SLOT, SLOT, SECTOR};
    const int fd = open("flash.bin", O_RDONLY);
    if (fd < 0 || read_exactly(fd, flash_memory, sizeof flash_memory) != 0) {
        flash_ram_erase_all(&ram);
    }
    if (fd >= 0) {
        close(fd);
    }
    return &ram_flash;
}

/* What the flash holds survives the reset: written out whole after each save. */
static void flash_keep(void) {
    const int fd = open("flash.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        (void)write_all(fd, flash_memory, sizeof flash_memory);
        close(fd);
    }
}
#endif

/* The next sample of a file into the model's input slot; 0 when there was one. */
static int next_sample(int fd, int32_t *label) {
    if (fd < 0 || read_exactly(fd, label, sizeof *label) != 0) {
        return -1;
    }
    return read_exactly(fd, digits_input(), DIGITS_INPUT_BYTES);
}

/* Correct predictions over test.bin; -1 after a failed inference. */
static long accuracy(const char *phase) {
    const int fd = open("test.bin", O_RDONLY);
    long correct = 0, total = 0;
    int32_t label;
    digits_logit logits[DIGITS_CLASSES];
    while (next_sample(fd, &label) == 0) {
        if (digits_infer(digits_input(), logits) != TTE_OK) {
            printf("FAIL infer: %s\n", digits_error());
            close(fd);
            return -1;
        }
        int best = 0;
        for (int c = 1; c < DIGITS_CLASSES; ++c) {
            best = logits[c] > logits[best] ? c : best;
        }
        correct += best == label;
        ++total;
    }
    if (fd >= 0) {
        close(fd);
    }
    printf("ACCURACY phase=%s correct=%ld total=%ld\n", phase, correct, total);
    return total > 0 ? correct : -1;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int k = 0; k < 4; ++k) {
        p[k] = (uint8_t)(v >> (8 * k));
    }
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static tte_persist_status save(const tte_flash *flash) {
    if (digits_export_params(save_buffer, sizeof save_buffer) != DIGITS_EXPORT_BYTES) {
        return TTE_PERSIST_BAD_ARGUMENT;
    }
    put_u32(save_buffer + DIGITS_EXPORT_BYTES, digits_step());
    const tte_persist_status s = tte_persist_save(flash, DIGITS_DIGEST, save_buffer, SAVE_BYTES);
    flash_keep();
    printf("SAVE step=%lu status=%d\n", (unsigned long)digits_step(), (int)s);
    return s;
}

/* The newest save, if any, into the model: the persistence checks the slot's CRC and digest, the
 * import checks the export inside (digest, CRC, finite values) before it touches a parameter. */
static int restore(const tte_flash *flash) {
    uint32_t length = 0;
    const tte_persist_status r = tte_persist_restore(flash, DIGITS_DIGEST, save_buffer, sizeof save_buffer, &length);
    digits_import_status imported = DIGITS_IMPORT_BAD_LENGTH;
    if (r == TTE_PERSIST_OK && length == SAVE_BYTES) {
        imported = digits_import_params(save_buffer, DIGITS_EXPORT_BYTES);
        if (imported == DIGITS_IMPORT_OK) {
            digits_set_step(get_u32(save_buffer + DIGITS_EXPORT_BYTES));
        }
    }
    printf("BOOT restore=%d import=%d step=%lu\n", (int)r, r == TTE_PERSIST_OK ? (int)imported : -1,
           (unsigned long)digits_step());
    if (r != TTE_PERSIST_OK && r != TTE_PERSIST_EMPTY) {
        printf("NOTE restore: %s; starting from the generated parameters\n", tte_persist_status_str(r));
    } else if (r == TTE_PERSIST_OK && imported != DIGITS_IMPORT_OK) {
        printf("NOTE import: %s; starting from the generated parameters\n", digits_import_status_str(imported));
    }
    return r == TTE_PERSIST_FLASH_ERROR;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const tte_flash *flash = flash_open();
    int failed = restore(flash);
    failed |= accuracy("boot") < 0;

    const int learn = open("learn.bin", O_RDONLY);
    long learned = 0, saves = 0;
    int32_t label;
    while (!failed && next_sample(learn, &label) == 0) {
        (void)digits_train_step(digits_input(), label, NULL);
        if (digits_last_status() == DIGITS_STEP_ERROR) {
            printf("FAIL step %ld: %s\n", learned, digits_error());
            failed = 1;
            break;
        }
        ++learned;
        if (learned % LEARN_SAVE_EVERY == 0) {
            failed |= save(flash) != TTE_PERSIST_OK;
            ++saves;
        }
    }
    if (learn >= 0) {
        close(learn);
    }
    if (!failed && learned % LEARN_SAVE_EVERY != 0) {
        failed |= save(flash) != TTE_PERSIST_OK;
        ++saves;
    }
    if (!failed && learned > 0) {
        failed |= accuracy("learned") < 0;
    }

    const int out = open("params.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const size_t exported = digits_export_params(save_buffer, sizeof save_buffer);
    if (out < 0 || exported != DIGITS_EXPORT_BYTES || write_all(out, save_buffer, exported) != 0) {
        failed = 1;
    }
    if (out >= 0) {
        close(out);
    }
    printf("DONE learned=%ld step=%lu saves=%ld\n", learned, (unsigned long)digits_step(), saves);
    return failed;
}
