/* Counts one inference of a generated model (tte-codegen's tte_model.h) block by block. The image is
 * read over semihosting from tte_inputs.bin (TTE_MODEL_INPUT_BYTES int8 codes, [H][W][C]) straight
 * into the model's input slot; the program prints, for boards/tools/firmware.py to parse:
 *     BLOCK <first node of the block> count=<counter ticks since the previous block ended>
 *     INFER count=<counter ticks of the whole tte_model_infer call> unit=<counter unit> macs=<n>
 *     LOGIT <i> <value bits, 8 hex digits>
 *     DONE blocks=<n> stack_high_water=<bytes>
 * The model is built with model_profile.h, so its forward calls bench_block() after every block;
 * the counter runs on through it: the block counts add up to the inference but for the copy of the
 * logits. Recording a block costs a few instructions, counted in the next block. */
#define _POSIX_C_SOURCE 200112L /* open, read, close under -std=c99 */

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "board.h"
#include "model_profile.h"
#include "tte_model.h"

#define MAX_BLOCKS 512

static const char *block_names[MAX_BLOCKS];
static uint64_t block_counts[MAX_BLOCKS];
static uint32_t blocks, dropped;
static uint64_t block_start;

void bench_block(const char *block) {
    const uint64_t now = board_counter_read();
    if (blocks < MAX_BLOCKS) {
        block_names[blocks] = block;
        block_counts[blocks] = now - block_start;
        ++blocks;
    } else {
        ++dropped;
    }
    block_start = now;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const int images = open("tte_inputs.bin", O_RDONLY);
    if (images < 0 || read(images, tte_model_input(), TTE_MODEL_INPUT_BYTES) != TTE_MODEL_INPUT_BYTES) {
        board_printf("FAIL cannot read one image from tte_inputs.bin\n");
        return 1;
    }
    close(images);
    tte_model_logit logits[TTE_MODEL_CLASSES];
    block_start = 0;
    board_counter_start();
    const tte_status s = tte_model_infer(tte_model_input(), logits);
    const uint64_t count = board_counter_read();
    if (s != TTE_OK) {
        board_printf("FAIL infer: %s\n", tte_model_error());
        return 1;
    }
    if (dropped != 0) {
        board_printf("FAIL the forward has more than %d blocks\n", MAX_BLOCKS);
        return 1;
    }
    for (uint32_t i = 0; i < blocks; ++i) {
        board_printf("BLOCK %s count=%llu\n", block_names[i], (unsigned long long)block_counts[i]);
    }
    board_printf("INFER count=%llu unit=%s macs=%lu\n", (unsigned long long)count, board_counter_unit,
                 (unsigned long)TTE_MODEL_MACS_PER_INFER);
    for (uint32_t i = 0; i < TTE_MODEL_CLASSES; ++i) {
        uint32_t bits = 0;
        memcpy(&bits, &logits[i], sizeof logits[i]);
        board_printf("LOGIT %lu %08lx\n", (unsigned long)i, (unsigned long)bits);
    }
    board_printf("DONE blocks=%lu stack_high_water=%lu\n", (unsigned long)blocks,
                 (unsigned long)board_stack_high_water());
    return 0;
}
