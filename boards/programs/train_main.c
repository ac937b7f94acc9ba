/* Trains a generated model (tte-codegen's model.h) on a board, with data and results passed as files
 * over semihosting (paths relative to the emulator's or debugger's working directory):
 *     in:  tte_inputs.bin   N images, TTE_MODEL_INPUT_BYTES int8 codes each ([H][W][C]), read
 *                           straight into the model's input slot in its arena (tte_model_input())
 *          tte_labels.bin   N int32 labels (little endian)
 *          tte_lr.bin       optional: two float32, the body and head learning rates
 *     out: tte_losses.bin   N float32 losses, one per training step
 *          tte_status.bin   N int32 step statuses (tte_model_step_status)
 *          tte_params.bin   the trained parameters after the N steps (tte_model_export_params)
 *          tte_logits.bin   N x TTE_MODEL_CLASSES logits of the trained model on the same images
 * and prints, for the host to parse:
 *     STEP <i> loss=<float32 bits, 8 hex digits> status=<s> count=<counter ticks of the step>
 *     INFER <i> count=<counter ticks>
 *     DONE steps=<N> macs_per_step=<n> unit=<counter unit> stack_high_water=<bytes> model_stack=<bytes>
 *          heap_used=<bytes of newlib's heap in use, which must stay within TTE_HEAP_SIZE>
 * The counter brackets the model calls only, not the file transfers. stack_high_water is the whole
 * program's (semihosting stdio included); model_stack the deepest stack of the model calls alone,
 * measured by repainting the stack before each call (what a device without semihosting needs). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "model.h"
#include "stack-impl.h"

/* Deepest stack use of the model calls, and of the whole program so far, in bytes. */
static uint32_t model_stack, program_stack;

static uint32_t max_u32(uint32_t a, uint32_t b) {
    return a > b ? a : b;
}

/* Repaint the unused stack (after recording the program's use so far) and start the counter: the
 * next model call is measured alone. */
static void model_call_begin(void) {
    program_stack = max_u32(program_stack, board_stack_high_water());
    stack_paint();
    board_counter_start();
}

/* The counter ticks of the model call since model_call_begin(); records its stack depth. */
static uint64_t model_call_end(void) {
    const uint64_t count = board_counter_read();
    model_stack = max_u32(model_stack, board_stack_high_water());
    return count;
}

/* newlib's heap: it starts at `end` (linker script); _sbrk(0) is its top. */
extern char end[];
extern void *_sbrk(ptrdiff_t increment);

/* Files unbuffered: stdio buffers would come from the heap, whose reserve (TTE_HEAP_SIZE) is small,
 * and rdimon's _sbrk lets the heap grow on into the stack, corrupting the stack measurement. */
static FILE *open_or_fail(const char *path, const char *mode) {
    FILE *f = fopen(path, mode);
    if (f == NULL) {
        printf("FAIL cannot open %s\n", path);
    } else {
        setvbuf(f, NULL, _IONBF, 0);
    }
    return f;
}

/* The training steps over every (image, label) pair; returns the number of steps or -1. */
static long train(FILE *images, FILE *labels, FILE *losses, FILE *statuses, const tte_model_lr *lr) {
    long steps = 0;
    int32_t label;
    while (fread(&label, sizeof label, 1, labels) == 1) {
        if (fread(tte_model_input(), 1, TTE_MODEL_INPUT_BYTES, images) != TTE_MODEL_INPUT_BYTES) {
            printf("FAIL tte_inputs.bin holds fewer images than tte_labels.bin has labels\n");
            return -1;
        }
        model_call_begin();
        const float loss = tte_model_train_step(tte_model_input(), label, lr);
        const uint64_t count = model_call_end();
        const int32_t status = (int32_t)tte_model_last_status();
        if (status == TTE_MODEL_STEP_ERROR) {
            printf("FAIL step %ld: %s\n", steps, tte_model_error());
            return -1;
        }
        uint32_t bits;
        memcpy(&bits, &loss, sizeof bits);
        printf("STEP %ld loss=%08lx status=%ld count=%llu\n", steps, (unsigned long)bits, (long)status,
               (unsigned long long)count);
        fwrite(&loss, sizeof loss, 1, losses);
        fwrite(&status, sizeof status, 1, statuses);
        ++steps;
    }
    return steps;
}

/* The trained model's logits on the same images. */
static int infer(FILE *images, FILE *logits_file, long steps) {
    tte_model_logit logits[TTE_MODEL_CLASSES];
    for (long i = 0; i < steps; ++i) {
        if (fread(tte_model_input(), 1, TTE_MODEL_INPUT_BYTES, images) != TTE_MODEL_INPUT_BYTES) {
            printf("FAIL tte_inputs.bin changed while running\n");
            return 1;
        }
        model_call_begin();
        const tte_status s = tte_model_infer(tte_model_input(), logits);
        const uint64_t count = model_call_end();
        if (s != TTE_OK) {
            printf("FAIL infer %ld: %s\n", i, tte_model_error());
            return 1;
        }
        printf("INFER %ld count=%llu\n", i, (unsigned long long)count);
        fwrite(logits, sizeof logits, 1, logits_file);
    }
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    tte_model_lr lr = tte_model_default_lr;
    FILE *lr_file = fopen("tte_lr.bin", "rb");
    if (lr_file != NULL) {
        float rates[2];
        if (fread(rates, sizeof rates, 1, lr_file) == 1) {
            lr.body = rates[0];
            lr.head = rates[1];
        }
        fclose(lr_file);
    }
    FILE *images = open_or_fail("tte_inputs.bin", "rb");
    FILE *labels = open_or_fail("tte_labels.bin", "rb");
    FILE *losses = open_or_fail("tte_losses.bin", "wb");
    FILE *statuses = open_or_fail("tte_status.bin", "wb");
    if (images == NULL || labels == NULL || losses == NULL || statuses == NULL) {
        return 1;
    }
    const long steps = train(images, labels, losses, statuses, &lr);
    fclose(labels);
    fclose(losses);
    fclose(statuses);
    if (steps < 0) {
        return 1;
    }
    FILE *logits = open_or_fail("tte_logits.bin", "wb");
    if (logits == NULL) {
        return 1;
    }
    rewind(images);
    const int failed = infer(images, logits, steps);
    fclose(images);
    fclose(logits);
    if (failed) {
        return 1;
    }
    FILE *params = open_or_fail("tte_params.bin", "wb");
    if (params == NULL) {
        return 1;
    }
    for (size_t i = 0; i < tte_model_param_count(); ++i) { /* streamed: no buffer of them all */
        size_t bytes = 0;
        const void *data = tte_model_param(i, &bytes);
        fwrite(data, 1, bytes, params);
    }
    fclose(params);
    printf("DONE steps=%ld macs_per_step=%lu unit=%s stack_high_water=%lu model_stack=%lu heap_used=%lu\n", steps,
           (unsigned long)TTE_MODEL_MACS_PER_STEP, board_counter_unit,
           (unsigned long)max_u32(program_stack, board_stack_high_water()), (unsigned long)model_stack,
           (unsigned long)((char *)_sbrk(0) - end));
    return 0;
}
