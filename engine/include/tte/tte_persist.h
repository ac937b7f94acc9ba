/* tte persistence: trained parameters kept in flash across resets and power cuts.
 *
 * Overview
 * --------
 * A save goes to one of two flash slots, the two taking turns; a restore takes
 * the newest slot whose header and CRC-32 check. A save never touches the slot
 * that holds the newest valid save, and it writes its own slot in an order that
 * leaves it invalid until the last byte is in place:
 *
 *   1. erase the slot's sectors (the older save goes),
 *   2. program the payload after the header area,
 *   3. program the header (magic, version, digest, sequence, length, CRC) last,
 *   4. read the slot back and check it.
 *
 * A power cut during 1-3 leaves a slot without a complete header, or with one
 * whose CRC (over the header fields and the payload) does not match what the
 * flash holds, so restore passes over it and returns the previous save. A cut
 * after 3 leaves the new save complete. Either way restore yields the previous
 * parameters or the new ones, never a mix.
 *
 * The board describes its flash with tte_flash: three functions (erase one
 * sector, program, read), the program unit (1, 2, 4, 8 or 32 bytes: programs
 * start and end on unit boundaries, and a unit is programmed once between
 * erases), and the two slots (each a whole number of equal sectors; the two may
 * have different sector sizes, e.g. 32 KB and 256 KB sectors of an STM32F7).
 * Nothing here allocates, keeps state or calls the C library; the caller owns
 * every buffer.
 *
 * Usage
 * -----
 *     // flash: from the board (boards/common/flash.h); params: the model's export
 *     tte_persist_status s = tte_persist_save(flash, MODEL_DIGEST, params, MODEL_PARAM_BYTES);
 *     ...after a reset...
 *     uint32_t length;
 *     s = tte_persist_restore(flash, MODEL_DIGEST, params, sizeof params, &length);
 *     if (s == TTE_PERSIST_OK) { model_import_params(params, length); }
 *     else if (s != TTE_PERSIST_EMPTY) { puts(tte_persist_status_str(s)); }
 *
 * Slot format (little-endian, TTE_PERSIST_HEADER_BYTES at the slot's start)
 * --------------------------------------------------------------------------
 *   offset  0  u32 magic TTE_PERSIST_MAGIC ("TTEP")
 *   offset  4  u32 format version TTE_PERSIST_VERSION
 *   offset  8  u64 model digest (the generated model's, from its graph)
 *   offset 16  u32 sequence number (the newer of two saves has the higher one,
 *              compared modulo 2^32, so the counter may wrap)
 *   offset 20  u32 payload length in bytes
 *   offset 24  u32 CRC-32 (tte_crc32) of bytes 0..23 followed by the payload
 *   offset 28  u32 0xFFFFFFFF (unprogrammed)
 * The payload starts at TTE_PERSIST_HEADER_BYTES; the tail of its last program
 * unit is padded with 0xFF.
 */
#ifndef TTE_TTE_PERSIST_H
#define TTE_TTE_PERSIST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TTE_PERSIST_MAGIC 0x50455454u /* "TTEP" in memory order */
#define TTE_PERSIST_VERSION 1u
/* A multiple of every program unit, so the payload starts on a unit boundary. */
#define TTE_PERSIST_HEADER_BYTES 32u

/* Every result of tte_persist_save and tte_persist_restore. */
typedef enum tte_persist_status {
    TTE_PERSIST_OK = 0,
    /* restore: neither slot holds a complete save (blank flash, or the only save was cut off). */
    TTE_PERSIST_EMPTY = 1,
    /* restore: the newest valid save has another model digest (another model's parameters);
     * nothing is copied. */
    TTE_PERSIST_OTHER_MODEL = 2,
    /* save: the payload does not fit the smaller slot after the header;
     * restore: the newest valid save is longer than the caller's capacity (nothing copied). */
    TTE_PERSIST_TOO_LARGE = 3,
    /* a NULL pointer, or a tte_flash whose geometry is invalid: program unit not 1, 2, 4, 8 or 32,
     * a sector size of 0 or not a multiple of the unit, a slot not a whole number of its sectors,
     * smaller than the header, overlapping the other slot or running past 2^32. */
    TTE_PERSIST_BAD_ARGUMENT = 4,
    /* a flash function returned nonzero (the driver's error: locked, protection, power). */
    TTE_PERSIST_FLASH_ERROR = 5,
    /* save: reading the slot back after programming did not give the header and CRC just
     * written (a worn or faulty sector); the slot's first sector is erased again, so restore
     * returns the previous save. */
    TTE_PERSIST_VERIFY_FAILED = 6
} tte_persist_status;

/* One slot: `size` bytes from `address`, erased as size / sector_size sectors. */
typedef struct tte_flash_slot {
    uint32_t address;
    uint32_t size;
    uint32_t sector_size;
} tte_flash_slot;

/* The board's flash. Each function returns 0 on success, nonzero on failure.
 *   erase_sector: erase the sector that starts at `address` (every byte reads 0xFF after).
 *   program: write `length` bytes (a multiple of program_unit, `address` aligned to it) to erased flash.
 *   read: copy `length` bytes from `address`. */
typedef struct tte_flash {
    void *ctx;
    int (*erase_sector)(void *ctx, uint32_t address);
    int (*program)(void *ctx, uint32_t address, const uint8_t *data, uint32_t length);
    int (*read)(void *ctx, uint32_t address, uint8_t *buffer, uint32_t length);
    uint32_t program_unit;
    tte_flash_slot slots[2];
} tte_flash;

/* Save `length` bytes of `payload` as model `model_digest` into the slot that does not hold the
 * newest valid save, with the next sequence number (1 on flash without a valid save). On any status
 * but TTE_PERSIST_OK the other slot is untouched and restore returns the save made before this
 * call, except after a TTE_PERSIST_FLASH_ERROR from the header's program or later, when it may
 * return the new one (complete, since its header and CRC check). */
tte_persist_status tte_persist_save(const tte_flash *flash, uint64_t model_digest, const uint8_t *payload,
                                    uint32_t length);

/* Copy the newest valid save into `payload` (capacity bytes) and its length into *length, when it
 * belongs to `model_digest`. `payload` is written only when the newest valid save's digest matches
 * and it fits; its contents are unspecified unless the status is TTE_PERSIST_OK. *length is set
 * for TTE_PERSIST_OK and TTE_PERSIST_TOO_LARGE (the stored length), 0 otherwise. */
tte_persist_status tte_persist_restore(const tte_flash *flash, uint64_t model_digest, uint8_t *payload,
                                       uint32_t capacity, uint32_t *length);

/* One line describing a status, for logs. */
const char *tte_persist_status_str(tte_persist_status status);

/* The standard CRC-32 (reflected, polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF), as
 * zlib's crc32() computes it: tte_crc32(0, data, n) over a whole buffer, or chained,
 * tte_crc32(tte_crc32(0, a, n), b, m) == tte_crc32(0, a followed by b, n + m). */
uint32_t tte_crc32(uint32_t crc, const uint8_t *data, uint32_t length);

#ifdef __cplusplus
}
#endif

#endif /* TTE_TTE_PERSIST_H */
