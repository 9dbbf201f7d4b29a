/*
 * Seeded pseudo-random generator (xoshiro256**, seeded through splitmix64).
 * Pure code takes a pc_rng * from its caller instead of reaching for a
 * global or the OS, so the simulator replays a run exactly from its seed.
 * Not for secrets: keys and tokens come from libsodium.
 */
#ifndef PC_RNG_H
#define PC_RNG_H

#include <stdint.h>

typedef struct pc_rng {
    uint64_t s[4];
} pc_rng;

/* Caller-owned storage; any seed (0 included) gives a usable state. Cannot fail. */
void pc_rng_init(pc_rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t pc_rng_next(pc_rng *r);
/* Uniform in [0, n); n = 0 gives 0. Unbiased. */
uint64_t pc_rng_below(pc_rng *r, uint64_t n);
/* Uniform in [0, 1) with 53 random bits. */
double pc_rng_double(pc_rng *r);
/* A stateless draw: 64 well-mixed bits of |x| (one splitmix64 step from state |x|), for a value that must
 * be the same every time it is asked for, e.g. a hash of a seed and an index. */
uint64_t pc_rng_hash(uint64_t x);

#endif
