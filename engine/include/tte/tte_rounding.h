/* The counter-based hash of stochastic rounding (NUMERICS.md 5), written down once for C; mirrored
 * by tte_ir.rounding (numpy) and tte_algo (PyTorch), which give the same bits:
 *
 *     mix(x) = x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16   (uint32, wrapping)
 *     h      = mix(mix(mix(mix(seed) ^ step) ^ tensor_id) ^ element_index)
 *     u      = float32(h >> 8) * 2^-24                                  (in [0, 1), exact in float32)
 *
 * element_index is the element's flat index in the parameter's IR layout ([O][C/groups][KH][KW]
 * row-major for a weight, [O] for a bias), whatever layout the engine stores it in, so an element
 * gets the same u on every implementation. Counter-based: no state, any order, any tiling. */
#ifndef TTE_TTE_ROUNDING_H
#define TTE_TTE_ROUNDING_H

#include <stdint.h>

static inline uint32_t tte_hash_mix(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* h(seed, step, tensor_id, element_index). */
static inline uint32_t tte_round_hash(uint32_t seed, uint32_t step, uint32_t tensor_id, uint32_t element_index) {
    return tte_hash_mix(tte_hash_mix(tte_hash_mix(tte_hash_mix(seed) ^ step) ^ tensor_id) ^ element_index);
}

/* u in [0, 1): the top 24 bits of the hash, which float32 holds exactly. */
static inline float tte_round_uniform(uint32_t seed, uint32_t step, uint32_t tensor_id, uint32_t element_index) {
    return (float)(tte_round_hash(seed, step, tensor_id, element_index) >> 8) * (1.0f / 16777216.0f);
}

#endif /* TTE_TTE_ROUNDING_H */
