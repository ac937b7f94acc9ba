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
 * measured by repainting the stack before each call (what a device without semihosting needs).
 *
 * Files go through open/read/write (semihosting calls), not stdio: a FILE and its buffer come from
 * newlib's heap, whose first sbrk rounds up to a 4 KB page and, with rdimon's _sbrk, may grow past
 * its reserve into the stack, which would spoil the stack measurement. The console is unbuffered.
 *
 * The model's API carries its name (`<name>_train_step`, from `tte generate --name`); this program
 * is written once for every model against the project's tte_model.h, whose macros map the fixed
 * names used here (`tte_model_train_step`) to the model's own. */
#define _POSIX_C_SOURCE 200112L /* open, read, write, close under -std=c99 */

#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "board.h"
#include "tte_model.h"
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

static int open_or_fail(const char *path, int flags) {
    const int fd = open(path, flags, 0644);
    if (fd < 0) {
        board_printf("FAIL cannot open %s\n", path);
    }
    return fd;
}

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

static void write_all(int fd, const void *data, size_t n) {
    for (const char *p = data; n > 0;) {
        const ssize_t put = write(fd, p, n);
        if (put <= 0) {
            return;
        }
        p += put;
        n -= (size_t)put;
    }
}

/* The training steps over every (image, label) pair; returns the number of steps or -1. */
static long train(int images, int labels, int losses, int statuses, const tte_model_lr *lr) {
    long steps = 0;
    int32_t label;
    while (read_exactly(labels, &label, sizeof label) == 0) {
        if (read_exactly(images, tte_model_input(), TTE_MODEL_INPUT_BYTES) != 0) {
            board_printf("FAIL tte_inputs.bin holds fewer images than tte_labels.bin has labels\n");
            return -1;
        }
        model_call_begin();
        const float loss = tte_model_train_step(tte_model_input(), label, lr);
        const uint64_t count = model_call_end();
        const int32_t status = (int32_t)tte_model_last_status();
        if (status == TTE_MODEL_STEP_ERROR) {
            board_printf("FAIL step %ld: %s\n", steps, tte_model_error());
            return -1;
        }
        uint32_t bits;
        memcpy(&bits, &loss, sizeof bits);
        board_printf("STEP %ld loss=%08lx status=%ld count=%llu\n", steps, (unsigned long)bits, (long)status,
                     (unsigned long long)count);
        write_all(losses, &loss, sizeof loss);
        write_all(statuses, &status, sizeof status);
        ++steps;
    }
    return steps;
}

/* The trained model's logits on the same images. */
static int infer(int images, int logits_file, long steps) {
    tte_model_logit logits[TTE_MODEL_CLASSES];
    for (long i = 0; i < steps; ++i) {
        if (read_exactly(images, tte_model_input(), TTE_MODEL_INPUT_BYTES) != 0) {
            board_printf("FAIL tte_inputs.bin changed while running\n");
            return 1;
        }
        model_call_begin();
        const tte_status s = tte_model_infer(tte_model_input(), logits);
        const uint64_t count = model_call_end();
        if (s != TTE_OK) {
            board_printf("FAIL infer %ld: %s\n", i, tte_model_error());
            return 1;
        }
        board_printf("INFER %ld count=%llu\n", i, (unsigned long long)count);
        write_all(logits_file, logits, sizeof logits);
    }
    return 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    tte_model_lr lr = tte_model_default_lr;
    const int lr_file = open("tte_lr.bin", O_RDONLY);
    if (lr_file >= 0) {
        float rates[2];
        if (read_exactly(lr_file, rates, sizeof rates) == 0) {
            lr.body = rates[0];
            lr.head = rates[1];
        }
        close(lr_file);
    }
    const int out = O_WRONLY | O_CREAT | O_TRUNC;
    const int images = open_or_fail("tte_inputs.bin", O_RDONLY);
    const int labels = open_or_fail("tte_labels.bin", O_RDONLY);
    const int losses = open_or_fail("tte_losses.bin", out);
    const int statuses = open_or_fail("tte_status.bin", out);
    if (images < 0 || labels < 0 || losses < 0 || statuses < 0) {
        return 1;
    }
    const long steps = train(images, labels, losses, statuses, &lr);
    close(labels);
    close(losses);
    close(statuses);
    if (steps < 0) {
        return 1;
    }
    const int logits = open_or_fail("tte_logits.bin", out);
    if (logits < 0 || lseek(images, 0, SEEK_SET) != 0) {
        return 1;
    }
    const int failed = infer(images, logits, steps);
    close(images);
    close(logits);
    if (failed) {
        return 1;
    }
    const int params = open_or_fail("tte_params.bin", out);
    if (params < 0) {
        return 1;
    }
    for (size_t i = 0; i < tte_model_param_count(); ++i) { /* streamed: no buffer of them all */
        size_t bytes = 0;
        const void *data = tte_model_param(i, &bytes);
        write_all(params, data, bytes);
    }
    close(params);
    board_printf("DONE steps=%ld macs_per_step=%lu unit=%s stack_high_water=%lu model_stack=%lu heap_used=%lu\n", steps,
                 (unsigned long)TTE_MODEL_MACS_PER_STEP, board_counter_unit,
                 (unsigned long)max_u32(program_stack, board_stack_high_water()), (unsigned long)model_stack,
                 (unsigned long)((char *)_sbrk(0) - end));
    return 0;
}
