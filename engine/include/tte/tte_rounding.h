/* The counter-based hash of stochastic rounding (NUMERICS.md 5), written down once for C; mirrored
 * by tte_ir.rounding (numpy) and tte_algo (PyTorch), which give the same bits:
 *
 *     mix(x) = x ^= x >> SHIFT1; x *= MUL1; x ^= x >> SHIFT2; x *= MUL2; x ^= x >> SHIFT3   (uint32, wrapping)
 *     h      = mix(mix(mix(mix(seed) ^ step) ^ tensor_id) ^ element_index)
 *     u      = float32(h >> UNIFORM_SHIFT) * UNIFORM_SCALE                    (in [0, 1), exact in float32)
 *
 * with the TTE_HASH_* numbers of the generated tte/tte_ops.h, which come from tte_ir.constants (one
 * definition for Python and C; a test compares this hash with tte_ir.rounding's).
 *
 * element_index is the element's flat index in the parameter's IR layout ([O][C/groups][KH][KW]
 * row-major for a weight, [O] for a bias), whatever layout the engine stores it in, so an element
 * gets the same u on every implementation. Counter-based: no state, any order, any tiling. */
#ifndef TTE_TTE_ROUNDING_H
#define TTE_TTE_ROUNDING_H

#include <stdint.h>

#include "tte/tte_ops.h"

static inline uint32_t tte_hash_mix(uint32_t x) {
    x ^= x >> TTE_HASH_SHIFT1;
    x *= TTE_HASH_MUL1;
    x ^= x >> TTE_HASH_SHIFT2;
    x *= TTE_HASH_MUL2;
    x ^= x >> TTE_HASH_SHIFT3;
    return x;
}

/* h(seed, step, tensor_id, element_index). */
static inline uint32_t tte_round_hash(uint32_t seed, uint32_t step, uint32_t tensor_id, uint32_t element_index) {
    return tte_hash_mix(tte_hash_mix(tte_hash_mix(tte_hash_mix(seed) ^ step) ^ tensor_id) ^ element_index);
}

/* u in [0, 1): the top bits of the hash, as many as float32 holds exactly. */
static inline float tte_round_uniform(uint32_t seed, uint32_t step, uint32_t tensor_id, uint32_t element_index) {
    return (float)(tte_round_hash(seed, step, tensor_id, element_index) >> TTE_HASH_UNIFORM_SHIFT) *
           TTE_HASH_UNIFORM_SCALE;
}

#endif /* TTE_TTE_ROUNDING_H */
