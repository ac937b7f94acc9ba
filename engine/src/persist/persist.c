/* Two-slot, power-safe persistence of trained parameters (tte/tte_persist.h has
 * the format and the order of writes). Slots are read through small stack
 * buffers, so a save or restore needs no scratch from the caller. */
#include <stddef.h>

#include "tte/tte_persist.h"

/* Bytes read per flash read while a slot streams through the CRC (stack). */
#define CHUNK_BYTES 256u
/* Header bytes the CRC covers: everything before the CRC field. */
#define HEADER_CRC_OFFSET 24u
#define HEADER_USED_BYTES 28u

typedef struct slot_header {
    uint8_t bytes[TTE_PERSIST_HEADER_BYTES]; /* as read from (or written to) flash */
    uint64_t digest;
    uint32_t sequence;
    uint32_t length;
    uint32_t crc;
    int plausible; /* magic and version right, the length fits the slot: worth a CRC check */
} slot_header;

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t slot_capacity(const tte_flash_slot *slot) {
    return slot->size - TTE_PERSIST_HEADER_BYTES;
}

static int valid_unit(uint32_t unit) {
    return unit == 1 || unit == 2 || unit == 4 || unit == 8 || unit == 32;
}

static int valid_slot(const tte_flash_slot *slot, uint32_t unit) {
    return slot->sector_size != 0 && slot->sector_size % unit == 0 && slot->address % unit == 0 &&
           slot->size >= TTE_PERSIST_HEADER_BYTES && slot->size % slot->sector_size == 0 &&
           slot->size - 1u <= UINT32_MAX - slot->address;
}

static int valid_flash(const tte_flash *flash) {
    if (flash == NULL || flash->erase_sector == NULL || flash->program == NULL || flash->read == NULL ||
        !valid_unit(flash->program_unit)) {
        return 0;
    }
    const tte_flash_slot *a = &flash->slots[0], *b = &flash->slots[1];
    if (!valid_slot(a, flash->program_unit) || !valid_slot(b, flash->program_unit)) {
        return 0;
    }
    /* 64-bit ends: a slot may end exactly at 2^32. */
    uint64_t a_end = (uint64_t)a->address + a->size, b_end = (uint64_t)b->address + b->size;
    return a_end <= b->address || b_end <= a->address;
}

static tte_persist_status read_header(const tte_flash *flash, const tte_flash_slot *slot, slot_header *h) {
    if (flash->read(flash->ctx, slot->address, h->bytes, TTE_PERSIST_HEADER_BYTES) != 0) {
        return TTE_PERSIST_FLASH_ERROR;
    }
    h->digest = (uint64_t)get_u32(h->bytes + 8) | ((uint64_t)get_u32(h->bytes + 12) << 32);
    h->sequence = get_u32(h->bytes + 16);
    h->length = get_u32(h->bytes + 20);
    h->crc = get_u32(h->bytes + HEADER_CRC_OFFSET);
    /* A torn or corrupted length could point past the slot: such a slot is never read further. */
    h->plausible = get_u32(h->bytes) == TTE_PERSIST_MAGIC && get_u32(h->bytes + 4) == TTE_PERSIST_VERSION &&
                   h->length <= slot_capacity(slot);
    return TTE_PERSIST_OK;
}

/* The CRC of a slot whose header is `h`: the header fields, then h->length payload bytes read from
 * flash, into `dst` when it is not NULL, else through a stack buffer. */
static tte_persist_status slot_crc(const tte_flash *flash, const tte_flash_slot *slot, const slot_header *h,
                                   uint8_t *dst, uint32_t *crc) {
    uint8_t chunk[CHUNK_BYTES];
    uint32_t c = tte_crc32(0, h->bytes, HEADER_CRC_OFFSET);
    uint32_t address = slot->address + TTE_PERSIST_HEADER_BYTES;
    for (uint32_t done = 0; done < h->length;) {
        uint32_t n = h->length - done;
        uint8_t *buffer = chunk;
        if (dst != NULL) {
            buffer = dst + done;
        } else if (n > CHUNK_BYTES) {
            n = CHUNK_BYTES;
        }
        if (flash->read(flash->ctx, address + done, buffer, n) != 0) {
            return TTE_PERSIST_FLASH_ERROR;
        }
        c = tte_crc32(c, buffer, n);
        done += n;
    }
    *crc = c;
    return TTE_PERSIST_OK;
}

/* Is `a` newer than `b`? Sequence numbers compared modulo 2^32 (serial number arithmetic): the
 * counter wraps after 2^32 saves and the two slots' numbers differ by far less than 2^31. */
static int newer(uint32_t a, uint32_t b) {
    return a != b && (uint32_t)(a - b) < 0x80000000u;
}

/* Reads both headers and orders the plausible slots newest first into order[0..*count). */
static tte_persist_status scan(const tte_flash *flash, slot_header h[2], int order[2], int *count) {
    for (int i = 0; i < 2; ++i) {
        tte_persist_status s = read_header(flash, &flash->slots[i], &h[i]);
        if (s != TTE_PERSIST_OK) {
            return s;
        }
    }
    *count = 0;
    if (h[0].plausible && h[1].plausible) {
        int first = newer(h[1].sequence, h[0].sequence) ? 1 : 0;
        order[0] = first;
        order[1] = 1 - first;
        *count = 2;
    } else if (h[0].plausible || h[1].plausible) {
        order[0] = h[0].plausible ? 0 : 1;
        *count = 1;
    }
    return TTE_PERSIST_OK;
}

/* The index of the newest slot whose CRC checks, or -1 when neither does. */
static tte_persist_status newest_valid(const tte_flash *flash, slot_header h[2], int *newest) {
    int order[2], count;
    tte_persist_status s = scan(flash, h, order, &count);
    *newest = -1;
    for (int k = 0; s == TTE_PERSIST_OK && k < count; ++k) {
        uint32_t crc;
        s = slot_crc(flash, &flash->slots[order[k]], &h[order[k]], NULL, &crc);
        if (s == TTE_PERSIST_OK && crc == h[order[k]].crc) {
            *newest = order[k];
            break;
        }
    }
    return s;
}

static tte_persist_status program_payload(const tte_flash *flash, const tte_flash_slot *slot, const uint8_t *payload,
                                          uint32_t length) {
    const uint32_t unit = flash->program_unit;
    const uint32_t whole = length - length % unit;
    const uint32_t address = slot->address + TTE_PERSIST_HEADER_BYTES;
    if (whole > 0 && flash->program(flash->ctx, address, payload, whole) != 0) {
        return TTE_PERSIST_FLASH_ERROR;
    }
    if (whole < length) {
        uint8_t tail[32]; /* the largest program unit */
        for (uint32_t i = 0; i < unit; ++i) {
            tail[i] = whole + i < length ? payload[whole + i] : 0xFFu;
        }
        if (flash->program(flash->ctx, address + whole, tail, unit) != 0) {
            return TTE_PERSIST_FLASH_ERROR;
        }
    }
    return TTE_PERSIST_OK;
}

/* A save that read back wrong may still pass the checks on a later read (a marginal cell): its
 * header sector goes, so restore keeps returning the previous save. */
static tte_persist_status discard(const tte_flash *flash, const tte_flash_slot *slot) {
    if (flash->erase_sector(flash->ctx, slot->address) != 0) {
        return TTE_PERSIST_FLASH_ERROR;
    }
    return TTE_PERSIST_VERIFY_FAILED;
}

tte_persist_status tte_persist_save(const tte_flash *flash, uint64_t model_digest, const uint8_t *payload,
                                    uint32_t length) {
    if (!valid_flash(flash) || payload == NULL) {
        return TTE_PERSIST_BAD_ARGUMENT;
    }
    uint32_t room = slot_capacity(&flash->slots[0]);
    if (slot_capacity(&flash->slots[1]) < room) {
        room = slot_capacity(&flash->slots[1]);
    }
    if (length > room) {
        return TTE_PERSIST_TOO_LARGE;
    }
    slot_header h[2];
    int newest;
    tte_persist_status s = newest_valid(flash, h, &newest);
    if (s != TTE_PERSIST_OK) {
        return s;
    }
    const int target = newest == 0 ? 1 : 0;
    const tte_flash_slot *slot = &flash->slots[target];
    const uint32_t sequence = newest < 0 ? 1u : h[newest].sequence + 1u;

    for (uint32_t offset = 0; offset < slot->size; offset += slot->sector_size) {
        if (flash->erase_sector(flash->ctx, slot->address + offset) != 0) {
            return TTE_PERSIST_FLASH_ERROR;
        }
    }
    s = program_payload(flash, slot, payload, length);
    if (s != TTE_PERSIST_OK) {
        return s;
    }

    slot_header w;
    for (uint32_t i = 0; i < TTE_PERSIST_HEADER_BYTES; ++i) {
        w.bytes[i] = 0xFFu;
    }
    put_u32(w.bytes, TTE_PERSIST_MAGIC);
    put_u32(w.bytes + 4, TTE_PERSIST_VERSION);
    put_u32(w.bytes + 8, (uint32_t)model_digest);
    put_u32(w.bytes + 12, (uint32_t)(model_digest >> 32));
    put_u32(w.bytes + 16, sequence);
    put_u32(w.bytes + 20, length);
    const uint32_t crc = tte_crc32(tte_crc32(0, w.bytes, HEADER_CRC_OFFSET), payload, length);
    put_u32(w.bytes + HEADER_CRC_OFFSET, crc);
    /* The header goes last: until this program completes, the slot's magic, length or CRC is wrong. */
    if (flash->program(flash->ctx, slot->address, w.bytes, TTE_PERSIST_HEADER_BYTES) != 0) {
        return TTE_PERSIST_FLASH_ERROR;
    }

    slot_header back;
    uint32_t back_crc;
    s = read_header(flash, slot, &back);
    if (s != TTE_PERSIST_OK) {
        return s;
    }
    for (uint32_t i = 0; i < HEADER_USED_BYTES; ++i) {
        if (back.bytes[i] != w.bytes[i]) {
            return discard(flash, slot);
        }
    }
    s = slot_crc(flash, slot, &back, NULL, &back_crc);
    if (s != TTE_PERSIST_OK || back_crc == crc) {
        return s;
    }
    return discard(flash, slot);
}

tte_persist_status tte_persist_restore(const tte_flash *flash, uint64_t model_digest, uint8_t *payload,
                                       uint32_t capacity, uint32_t *length) {
    if (length != NULL) {
        *length = 0;
    }
    if (!valid_flash(flash) || payload == NULL || length == NULL) {
        return TTE_PERSIST_BAD_ARGUMENT;
    }
    slot_header h[2];
    int order[2], count;
    tte_persist_status s = scan(flash, h, order, &count);
    for (int k = 0; s == TTE_PERSIST_OK && k < count; ++k) {
        const slot_header *c = &h[order[k]];
        /* Only the right model's parameters that fit are read into the caller's buffer; the others
         * stream through the CRC, which still decides whether they are the newest valid save. */
        const int wanted = c->digest == model_digest && c->length <= capacity;
        uint32_t crc;
        s = slot_crc(flash, &flash->slots[order[k]], c, wanted ? payload : NULL, &crc);
        if (s != TTE_PERSIST_OK || crc != c->crc) {
            continue;
        }
        if (c->digest != model_digest) {
            return TTE_PERSIST_OTHER_MODEL;
        }
        *length = c->length;
        return wanted ? TTE_PERSIST_OK : TTE_PERSIST_TOO_LARGE;
    }
    return s == TTE_PERSIST_OK ? TTE_PERSIST_EMPTY : s;
}

const char *tte_persist_status_str(tte_persist_status status) {
    switch (status) {
    case TTE_PERSIST_OK:
        return "ok";
    case TTE_PERSIST_EMPTY:
        return "no complete save in either slot";
    case TTE_PERSIST_OTHER_MODEL:
        return "the newest save holds another model's parameters (model digest differs)";
    case TTE_PERSIST_TOO_LARGE:
        return "the parameters do not fit (the slot on save, the caller's buffer on restore)";
    case TTE_PERSIST_BAD_ARGUMENT:
        return "a NULL pointer or an invalid flash geometry (program unit, sectors, slots)";
    case TTE_PERSIST_FLASH_ERROR:
        return "the flash driver reported an error";
    case TTE_PERSIST_VERIFY_FAILED:
        return "the slot read back differs from what was programmed";
    }
    return "unknown persistence status";
}
