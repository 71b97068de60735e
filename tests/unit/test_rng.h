/*
 * A fixed-seed xorshift64 for the unit tests' randomised sequences, so a
 * failing run is reproducible. Each test file that includes it has its own
 * state.
 */

#ifndef TEST_RNG_H
#define TEST_RNG_H

#include <stdint.h>

static uint64_t test_rng_state = 1;

static inline void
test_rng_seed(uint64_t seed)
{
    test_rng_state = seed ? seed : 1;
}

static inline uint64_t
test_rng(void)
{
    uint64_t x = test_rng_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    test_rng_state = x;
    return x;
}

#endif /* TEST_RNG_H */
