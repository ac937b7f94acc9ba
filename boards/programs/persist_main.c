/* Power-cut test of the engine's persistence (tte/tte_persist.h) on the RAM
 * flash model (flash.h), for the host and for QEMU; tests/engine/test_persist.py
 * builds it both ways and parses its lines:
 *     CRC <length> <crc32 of pattern bytes 0..length-1, hex>
 *     CHECK <name> PASS
 *     CHECK <name> FAIL <what>
 *     CUTS scenario=<s> erases=<n> programs=<n> tried=<n> torn=<n> old=<n> new=<n> empty=<n>
 *     DONE checks=<n> failed=<n> tried=<n> torn=<n>
 * A cut point is one (operation, bytes done) pair of a save; after the cut the
 * power comes back and restore must give exactly the previous save or the new
 * one ("old", "new"; "empty" where there was no previous save); anything else
 * is a torn restore. The exit status is 0 only with every check passed and no
 * torn restore.
 *
 * Compile-time settings: PERSIST_PAYLOAD_BYTES (the parameter blob), PERSIST_UNIT
 * (the program unit), PERSIST_SECTOR (the model's sector size), PERSIST_STRIDE
 * (in the steady-state save, cut every PERSIST_STRIDE-th byte inside a payload
 * program, 1: every byte; the header's program is always cut at every byte). */
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "flash.h"
#include "tte/tte_persist.h"

#ifndef PERSIST_PAYLOAD_BYTES
#define PERSIST_PAYLOAD_BYTES 36904u /* MCUNet-5fps under the seed scheme "49kb" */
#endif
#ifndef PERSIST_UNIT
#define PERSIST_UNIT 4u
#endif
#ifndef PERSIST_SECTOR
#define PERSIST_SECTOR 2048u
#endif
#ifndef PERSIST_STRIDE
#define PERSIST_STRIDE 1u
#endif

/* The first and second saves (onto blank flash, onto one save) cut at least this sparsely; the steady
 * state, a save over the older of two, is the one cut at PERSIST_STRIDE. */
#define SPARSE_STRIDE 97u
#define PAYLOAD PERSIST_PAYLOAD_BYTES
#define SLOT_BYTES ((TTE_PERSIST_HEADER_BYTES + PAYLOAD + PERSIST_SECTOR - 1u) / PERSIST_SECTOR * PERSIST_SECTOR)
#define FLASH_BYTES (2u * SLOT_BYTES)
#define FLASH_BASE 0x08000000u
#define MAX_OPS 256u
#define DIGEST 0x0123456789ABCDEFull
#define OTHER_DIGEST 0x0123456789ABCDEEull

static uint8_t memory[FLASH_BYTES];   /* the flash model's array */
static uint8_t snapshot[FLASH_BYTES]; /* the flash before the save under test */
static uint8_t params[3][PAYLOAD];    /* successive saves' parameters (3 fit the 320 KB RAM) */
static uint8_t restored[PAYLOAD + 1];

static flash_ram ram;
static tte_flash ram_flash;

/* The flash the saves see: the RAM model behind a recorder of each operation's kind and length, and
 * an optional read fault (a bit flipped at one address) to make a save's read-back differ. */
typedef struct recorder {
    uint32_t ops;
    uint32_t length[MAX_OPS]; /* bytes the operation covers */
    char kind[MAX_OPS];       /* 'e' erase, 'p' program */
    uint32_t flip_address;    /* 0: reads are faithful */
} recorder;

static recorder rec;
static tte_flash flash;

static int rec_erase(void *ctx, uint32_t address) {
    recorder *r = ctx;
    if (r->ops < MAX_OPS) {
        r->kind[r->ops] = 'e';
        r->length[r->ops] = PERSIST_SECTOR;
    }
    r->ops += 1;
    return ram_flash.erase_sector(ram_flash.ctx, address);
}

static int rec_program(void *ctx, uint32_t address, const uint8_t *data, uint32_t length) {
    recorder *r = ctx;
    if (r->ops < MAX_OPS) {
        r->kind[r->ops] = 'p';
        r->length[r->ops] = length;
    }
    r->ops += 1;
    return ram_flash.program(ram_flash.ctx, address, data, length);
}

static int rec_read(void *ctx, uint32_t address, uint8_t *buffer, uint32_t length) {
    recorder *r = ctx;
    int status = ram_flash.read(ram_flash.ctx, address, buffer, length);
    if (r->flip_address != 0 && address <= r->flip_address && r->flip_address - address < length) {
        buffer[r->flip_address - address] ^= 1u;
    }
    return status;
}

static uint32_t checks, failed;

static void check(const char *name, int ok, const char *what) {
    ++checks;
    if (ok) {
        board_printf("CHECK %s PASS\n", name);
    } else {
        ++failed;
        board_printf("CHECK %s FAIL %s\n", name, what);
    }
}

static int same(const uint8_t *a, const uint8_t *b, uint32_t n) {
    return memcmp(a, b, n) == 0;
}

/* Blank flash, then `saves` saves of params[0], params[1], ...; the recorder restarts. */
static void prepare(int saves) {
    flash_ram_erase_all(&ram);
    flash_ram_power_on(&ram);
    for (int i = 0; i < saves; ++i) {
        (void)tte_persist_save(&flash, DIGEST, params[i], PAYLOAD);
    }
    rec.ops = 0;
    rec.flip_address = 0;
}

/* What restore gives now: 0 the previous save (params[previous]), 1 the new one, 2 nothing saved
 * (only right when previous < 0), -1 anything else (a torn restore). */
static int outcome(int previous, int fresh) {
    uint32_t length = 0;
    tte_persist_status s = tte_persist_restore(&flash, DIGEST, restored, sizeof restored, &length);
    if (s == TTE_PERSIST_EMPTY) {
        return previous < 0 ? 2 : -1;
    }
    if (s != TTE_PERSIST_OK || length != PAYLOAD) {
        return -1;
    }
    if (previous >= 0 && same(restored, params[previous], PAYLOAD)) {
        return 0;
    }
    return same(restored, params[fresh], PAYLOAD) ? 1 : -1;
}

static uint32_t total_tried, total_torn;

/* The cut point after `done` bytes of an operation of `length` bytes: `step` on, but never past the
 * last byte, then the operation's end (length + 1 stops the loop). */
static uint32_t next_cut(uint32_t done, uint32_t step, uint32_t length) {
    if (done + 1 >= length) {
        return done + 1;
    }
    return done + step < length - 1 ? done + step : length - 1;
}

/* Cuts the power at every cut point of one save of params[fresh] made after `saves` saves (the
 * previous one params[saves - 1]): every erase at 0, half, all but one and all of its sector; every
 * program at every `stride`-th byte and its last (the header's at every byte) and at its end. After each cut,
 * restore must give the previous save or the new one; at each operation's start, a save made after
 * the cut must also succeed and be restored. */
static void cut_everywhere(const char *scenario, int saves, uint32_t stride) {
    const int previous = saves - 1, fresh = saves, later = (saves + 1) % 3;
    prepare(saves);
    memcpy(snapshot, memory, FLASH_BYTES);
    tte_persist_status s = tte_persist_save(&flash, DIGEST, params[fresh], PAYLOAD);
    const uint32_t ops = rec.ops;
    uint32_t erases = 0, programs = 0, tried = 0, torn = 0, counts[3] = {0, 0, 0};
    if (s != TTE_PERSIST_OK || ops > MAX_OPS || outcome(previous, fresh) != 1) {
        check(scenario, 0, "the save without a cut did not restore");
        return;
    }
    recorder plan = rec;
    for (uint32_t op = 0; op < ops; ++op) {
        const uint32_t length = plan.length[op];
        const int header = op + 1 == ops;
        erases += plan.kind[op] == 'e';
        programs += plan.kind[op] == 'p';
        uint32_t step = stride;
        if (plan.kind[op] == 'e') {
            step = length / 2;
        } else if (header) {
            step = 1;
        }
        for (uint32_t done = 0; done <= length; done = next_cut(done, step, length)) {
            memcpy(memory, snapshot, FLASH_BYTES);
            flash_ram_power_on(&ram);
            ram.cut_operation = op + 1;
            ram.cut_bytes = done;
            s = tte_persist_save(&flash, DIGEST, params[fresh], PAYLOAD);
            flash_ram_power_on(&ram);
            int got = s == TTE_PERSIST_FLASH_ERROR ? outcome(previous, fresh) : -1;
            ++tried;
            if (got < 0) {
                ++torn;
                board_printf("TORN scenario=%s op=%lu kind=%c bytes=%lu status=%d\n", scenario, (unsigned long)(op + 1),
                             plan.kind[op], (unsigned long)done, (int)s);
            } else {
                counts[got] += 1;
            }
            if (done == 0 && got >= 0) {
                s = tte_persist_save(&flash, DIGEST, params[later], PAYLOAD);
                uint32_t length_back = 0;
                tte_persist_status r = tte_persist_restore(&flash, DIGEST, restored, sizeof restored, &length_back);
                if (s != TTE_PERSIST_OK || r != TTE_PERSIST_OK || !same(restored, params[later], PAYLOAD)) {
                    ++torn;
                    board_printf("TORN scenario=%s op=%lu: the save after the cut failed (save %d, restore %d)\n",
                                 scenario, (unsigned long)(op + 1), (int)s, (int)r);
                }
            }
        }
    }
    board_printf("CUTS scenario=%s erases=%lu programs=%lu tried=%lu torn=%lu old=%lu new=%lu empty=%lu\n", scenario,
                 (unsigned long)erases, (unsigned long)programs, (unsigned long)tried, (unsigned long)torn,
                 (unsigned long)counts[0], (unsigned long)counts[1], (unsigned long)counts[2]);
    total_tried += tried;
    total_torn += torn;
    check(scenario, torn == 0 && tried > ops, "torn restores (TORN lines)");
}

/* Rewrites a slot's header field at `offset` and, when `recrc`, its CRC to match (a save of the
 * edited header, as an older or buggy writer could have left it). */
static void edit_header(int slot, uint32_t offset, uint32_t value, int recrc) {
    uint8_t *h = memory + (uint32_t)slot * SLOT_BYTES;
    for (int i = 0; i < 4; ++i) {
        h[offset + (uint32_t)i] = (uint8_t)(value >> (8 * i));
    }
    if (recrc) {
        uint32_t length = (uint32_t)h[20] | (uint32_t)h[21] << 8 | (uint32_t)h[22] << 16 | (uint32_t)h[23] << 24;
        if (length > SLOT_BYTES - TTE_PERSIST_HEADER_BYTES) {
            length = 0;
        }
        uint32_t crc = tte_crc32(tte_crc32(0, h, 24), h + TTE_PERSIST_HEADER_BYTES, length);
        for (int i = 0; i < 4; ++i) {
            h[24 + i] = (uint8_t)(crc >> (8 * i));
        }
    }
}

static tte_persist_status restore_into(uint32_t capacity, uint32_t *length) {
    return tte_persist_restore(&flash, DIGEST, restored, capacity, length);
}

static int restores(int which) {
    uint32_t length = 0;
    return restore_into(sizeof restored, &length) == TTE_PERSIST_OK && length == PAYLOAD &&
           same(restored, params[which], PAYLOAD);
}

static void refusals(void) {
    uint32_t length = 99;
    prepare(0);
    check("blank_is_empty", restore_into(sizeof restored, &length) == TTE_PERSIST_EMPTY && length == 0, "status");

    prepare(2); /* slot 0: params[0] sequence 1; slot 1: params[1] sequence 2 */
    check("newest_restored", restores(1), "not params[1]");
    memory[SLOT_BYTES + TTE_PERSIST_HEADER_BYTES + PAYLOAD / 2] ^= 0x10u;
    check("flipped_payload_bit_refused", restores(0), "the corrupted slot was taken");
    memory[TTE_PERSIST_HEADER_BYTES] ^= 0x01u;
    check("both_corrupted_empty", restore_into(sizeof restored, &length) == TTE_PERSIST_EMPTY, "status");

    prepare(2);
    memory[SLOT_BYTES + 9] ^= 0x80u; /* the digest field, CRC left as it was */
    check("flipped_header_bit_refused", restores(0), "the corrupted header was taken");

    prepare(2);
    edit_header(1, 20, SLOT_BYTES - TTE_PERSIST_HEADER_BYTES + 1u, 1);
    check("length_beyond_slot_refused", restores(0), "the slot with a length past its end was taken");
    prepare(2);
    edit_header(1, 20, 0xFFFFFFF0u, 1);
    check("huge_length_refused", restores(0), "taken");
    prepare(2);
    edit_header(1, 20, PAYLOAD - 1u, 0);
    check("truncated_length_refused", restores(0), "the shortened save was taken");

    prepare(2);
    uint8_t sentinel = restored[0] = (uint8_t)~params[0][0];
    check("other_model_save_ok", tte_persist_save(&flash, OTHER_DIGEST, params[2], PAYLOAD) == TTE_PERSIST_OK,
          "the other model's save failed");
    check("other_model_refused",
          restore_into(sizeof restored, &length) == TTE_PERSIST_OTHER_MODEL && length == 0 && restored[0] == sentinel,
          "another model's parameters were accepted or copied");
    check("other_model_then_own_save",
          tte_persist_save(&flash, DIGEST, params[0], PAYLOAD) == TTE_PERSIST_OK && restores(0),
          "the own model's save after it was not restored");

    prepare(2);
    check("small_buffer_too_large", restore_into(PAYLOAD - 1u, &length) == TTE_PERSIST_TOO_LARGE && length == PAYLOAD,
          "status or length");
    rec.ops = 0;
    check("oversized_save_refused",
          tte_persist_save(&flash, DIGEST, params[2], SLOT_BYTES - TTE_PERSIST_HEADER_BYTES + 1u) ==
                  TTE_PERSIST_TOO_LARGE &&
              rec.ops == 0 && restores(1),
          "status, or the flash was touched");

    /* Sequence numbers wrap: 0 is newer than 0xFFFFFFFF, and a save after it takes 1. */
    prepare(2);
    edit_header(0, 16, 0xFFFFFFFFu, 1);
    edit_header(1, 16, 0u, 1);
    check("wrapped_sequence_newest", restores(1), "the slot with 0xFFFFFFFF was taken");
    edit_header(1, 16, 0xFFFFFFFEu, 1);
    check("sequence_order", restores(0), "the older slot was taken");
    edit_header(1, 16, 0u, 1);
    check("save_after_wrap",
          tte_persist_save(&flash, DIGEST, params[2], PAYLOAD) == TTE_PERSIST_OK && restores(2) && memory[16] == 1u &&
              memory[17] == 0u,
          "the save did not go to slot 0 with sequence 1");

    prepare(1);
    rec.flip_address = FLASH_BASE + SLOT_BYTES + TTE_PERSIST_HEADER_BYTES + 5u;
    check("read_back_mismatch", tte_persist_save(&flash, DIGEST, params[1], PAYLOAD) == TTE_PERSIST_VERIFY_FAILED,
          "a save whose read-back differs was reported saved");
    rec.flip_address = 0;
    check("read_back_mismatch_keeps_previous", restores(0), "the save that failed its read-back was taken");

    prepare(2);
    ram.powered = 0;
    check("flash_error", restore_into(sizeof restored, &length) == TTE_PERSIST_FLASH_ERROR, "status");
    check("flash_error_save", tte_persist_save(&flash, DIGEST, params[2], PAYLOAD) == TTE_PERSIST_FLASH_ERROR,
          "a save on unpowered flash did not fail");
    flash_ram_power_on(&ram);

    tte_flash bad = flash;
    bad.program_unit = 3;
    check("bad_unit", tte_persist_save(&bad, DIGEST, params[0], PAYLOAD) == TTE_PERSIST_BAD_ARGUMENT,
          "program unit 3 accepted");
    bad = flash;
    bad.slots[1].address = bad.slots[0].address + PERSIST_SECTOR;
    check("overlapping_slots_refused",
          tte_persist_restore(&bad, DIGEST, restored, sizeof restored, &length) == TTE_PERSIST_BAD_ARGUMENT,
          "overlapping slots accepted");
    bad = flash;
    bad.slots[0].size = SLOT_BYTES - 1u;
    check("partial_sector_refused", tte_persist_save(&bad, DIGEST, params[0], PAYLOAD) == TTE_PERSIST_BAD_ARGUMENT,
          "a slot of a sector and a half accepted");
    check("null_refused",
          tte_persist_save(NULL, DIGEST, params[0], PAYLOAD) == TTE_PERSIST_BAD_ARGUMENT &&
              tte_persist_save(&flash, DIGEST, NULL, PAYLOAD) == TTE_PERSIST_BAD_ARGUMENT &&
              tte_persist_restore(&flash, DIGEST, NULL, 1, &length) == TTE_PERSIST_BAD_ARGUMENT &&
              tte_persist_restore(&flash, DIGEST, restored, 1, NULL) == TTE_PERSIST_BAD_ARGUMENT,
          "a NULL pointer accepted");

    /* The model itself: a second program of the same unit fails, as on the STM32. */
    prepare(0);
    uint8_t zero[32] = {0};
    check("model_refuses_reprogram",
          ram_flash.program(ram_flash.ctx, FLASH_BASE, zero, PERSIST_UNIT) == 0 &&
              ram_flash.program(ram_flash.ctx, FLASH_BASE, zero, PERSIST_UNIT) != 0,
          "the model let a unit be programmed twice");
}

#ifdef TTE_BOARD_HAS_FLASH
/* The board's own flash: one save and restore through its driver (it erases the slots' sectors). */
static void board_round_trip(void) {
    uint32_t length = 0;
    const tte_flash *board = board_flash();
    check("board_flash_save", tte_persist_save(board, DIGEST, params[0], PAYLOAD) == TTE_PERSIST_OK,
          "the save through the board's driver failed");
    check("board_flash_restore",
          tte_persist_restore(board, DIGEST, restored, sizeof restored, &length) == TTE_PERSIST_OK &&
              length == PAYLOAD && same(restored, params[0], PAYLOAD),
          "the board's flash did not give the save back");
}
#endif

int main(void) {
    static const uint32_t crc_lengths[] = {0, 1, 3, 9, 1000};
    static uint8_t pattern[1000];
    for (uint32_t i = 0; i < sizeof pattern; ++i) {
        pattern[i] = (uint8_t)(i * 131u + 7u);
    }
    for (uint32_t i = 0; i < sizeof crc_lengths / sizeof crc_lengths[0]; ++i) {
        board_printf("CRC %lu %08lx\n", (unsigned long)crc_lengths[i],
                     (unsigned long)tte_crc32(0, pattern, crc_lengths[i]));
    }
    check("crc_chained", tte_crc32(tte_crc32(0, pattern, 400), pattern + 400, 600) == tte_crc32(0, pattern, 1000),
          "chained CRC differs from the whole buffer's");

    uint32_t state = 12345u; /* xorshift32: distinct parameters for every save */
    for (uint32_t k = 0; k < 3; ++k) {
        for (uint32_t i = 0; i < PAYLOAD; ++i) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            params[k][i] = (uint8_t)state;
        }
    }
    flash_ram_init(&ram, &ram_flash, memory, FLASH_BASE, FLASH_BYTES, PERSIST_SECTOR, PERSIST_UNIT);
    flash = ram_flash;
    flash.ctx = &rec;
    flash.erase_sector = rec_erase;
    flash.program = rec_program;
    flash.read = rec_read;
    flash.slots[0] = (tte_flash_slot){FLASH_BASE, SLOT_BYTES, PERSIST_SECTOR};
    flash.slots[1] = (tte_flash_slot){FLASH_BASE + SLOT_BYTES, SLOT_BYTES, PERSIST_SECTOR};

    refusals();
    cut_everywhere("steady", 2, PERSIST_STRIDE);
    cut_everywhere("first", 0, PERSIST_STRIDE > SPARSE_STRIDE ? PERSIST_STRIDE : SPARSE_STRIDE);
    cut_everywhere("second", 1, PERSIST_STRIDE > SPARSE_STRIDE ? PERSIST_STRIDE : SPARSE_STRIDE);
#ifdef TTE_BOARD_HAS_FLASH
    board_round_trip();
#endif
    board_printf("DONE checks=%lu failed=%lu tried=%lu torn=%lu\n", (unsigned long)checks, (unsigned long)failed,
                 (unsigned long)total_tried, (unsigned long)total_torn);
    return failed == 0 && total_torn == 0 ? 0 : 1;
}
