// A small deterministic random number generator (xoshiro256**, seeded by splitmix64) whose whole
// state can be saved and restored, so a resumed run draws the same numbers.
#ifndef MM_RNG_H
#define MM_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} mm_rng;

void rng_seed(mm_rng *r, uint64_t seed);
uint64_t rng_next(mm_rng *r);
// Uniform in [0, 1) with 24 random bits (exact in float).
float rng_uniform(mm_rng *r);
// Uniform integer in [0, n) without modulo bias; n > 0.
uint64_t rng_below(mm_rng *r, uint64_t n);

#endif
