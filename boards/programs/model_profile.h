/* Included before a generated model.c in a profiling build (board.cmake, TTE_PROFILE_MODEL=ON): the
 * model's TTE_MODEL_PROFILE hook, called after each forward block with the name of its first node,
 * becomes a call of bench_block(), which bench_main.c defines (it reads the board's counter). */
#ifndef TTE_MODEL_PROFILE_H
#define TTE_MODEL_PROFILE_H

void bench_block(const char *block);

#define TTE_MODEL_PROFILE(block) bench_block(block)

#endif /* TTE_MODEL_PROFILE_H */
