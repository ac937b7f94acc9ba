/* host_learn: the generated C API on a PC, linked against an installed tte engine.
 *
 *     host_learn LEARN.bin TEST.bin PARAMS.bin
 *
 * Loads PARAMS.bin when it exists (an export of this model: digits_import_params checks its
 * length, model digest, CRC and values and refuses anything else), prints the accuracy on TEST.bin,
 * trains one step per sample of LEARN.bin (the stm32-learn example's sample format: an int32 label,
 * then the HWC int8 image; make_model.py writes both files), prints the accuracy again and writes the
 * parameters back to PARAMS.bin, through a temporary file and a rename so that an interrupted run
 * leaves the previous file whole. Lines printed:
 *     IMPORT status=<digits_import_status> (<what it means>)      only when PARAMS.bin exists
 *     ACCURACY phase=<start|learned> correct=<n> total=<n>
 *     DONE learned=<steps> step=<step counter>
 * Exit status: 0 on success, 1 when a file or a model call failed, 2 on a bad command line. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

static unsigned char blob[DIGITS_EXPORT_BYTES];

/* The next sample of f into the model's input slot; 0 when there was one. */
static int next_sample(FILE *f, int32_t *label) {
    unsigned char raw[4];
    if (fread(raw, 1, sizeof raw, f) != sizeof raw) {
        return -1;
    }
    *label = (int32_t)((uint32_t)raw[0] | (uint32_t)raw[1] << 8 | (uint32_t)raw[2] << 16 | (uint32_t)raw[3] << 24);
    return fread(digits_input(), 1, DIGITS_INPUT_BYTES, f) == DIGITS_INPUT_BYTES ? 0 : -1;
}

/* Correct predictions over the test file; -1 when it cannot be read or an inference fails. */
static long accuracy(const char *path, const char *phase) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "host_learn: cannot open %s\n", path);
        return -1;
    }
    long correct = 0, total = 0;
    int32_t label;
    digits_logit logits[DIGITS_CLASSES];
    while (next_sample(f, &label) == 0) {
        if (digits_infer(digits_input(), logits) != TTE_OK) {
            fprintf(stderr, "host_learn: inference failed: %s\n", digits_error());
            fclose(f);
            return -1;
        }
        int best = 0;
        for (int c = 1; c < DIGITS_CLASSES; ++c) {
            best = logits[c] > logits[best] ? c : best;
        }
        correct += best == label;
        ++total;
    }
    fclose(f);
    printf("ACCURACY phase=%s correct=%ld total=%ld\n", phase, correct, total);
    return correct;
}

/* PARAMS.bin into the model, if it exists; 0 unless it exists and was refused. */
static int load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return 0;
    }
    const size_t got = fread(blob, 1, sizeof blob, f);
    const int longer = fgetc(f) != EOF; /* a longer file is another model's: the import sees its length */
    fclose(f);
    const digits_import_status s = digits_import_params(blob, longer ? sizeof blob + 1 : got);
    printf("IMPORT status=%d (%s)\n", (int)s, digits_import_status_str(s));
    return s != DIGITS_IMPORT_OK;
}

static int store(const char *path) {
    char temporary[4096];
    if (snprintf(temporary, sizeof temporary, "%s.tmp", path) >= (int)sizeof temporary) {
        return 1;
    }
    const size_t n = digits_export_params(blob, sizeof blob);
    FILE *f = fopen(temporary, "wb");
    if (f == NULL || n != sizeof blob) {
        fprintf(stderr, "host_learn: cannot write %s\n", temporary);
        return 1;
    }
    const int written = fwrite(blob, 1, n, f) == n;
    if (fclose(f) != 0 || !written || rename(temporary, path) != 0) {
        fprintf(stderr, "host_learn: cannot write %s\n", path);
        remove(temporary);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: host_learn LEARN.bin TEST.bin PARAMS.bin\n");
        return 2;
    }
    if (load(argv[3]) != 0) {
        fprintf(stderr, "host_learn: %s was refused; delete it to start from the generated parameters\n", argv[3]);
        return 1;
    }
    if (accuracy(argv[2], "start") < 0) {
        return 1;
    }
    FILE *learn = fopen(argv[1], "rb");
    if (learn == NULL) {
        fprintf(stderr, "host_learn: cannot open %s\n", argv[1]);
        return 1;
    }
    long learned = 0;
    int32_t label;
    while (next_sample(learn, &label) == 0) {
        (void)digits_train_step(digits_input(), label, NULL);
        if (digits_last_status() == DIGITS_STEP_ERROR) {
            fprintf(stderr, "host_learn: step %ld failed: %s\n", learned, digits_error());
            fclose(learn);
            return 1;
        }
        ++learned;
    }
    fclose(learn);
    if (accuracy(argv[2], "learned") < 0 || store(argv[3]) != 0) {
        return 1;
    }
    printf("DONE learned=%ld step=%lu\n", learned, (unsigned long)digits_step());
    return 0;
}
