/* xoshiro256** (Blackman and Vigna), seeded with splitmix64; see pc_rng.h. */
#include "pc_rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t pc_rng_hash(uint64_t x)
{
    return splitmix64(&x);
}

void pc_rng_init(pc_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t pc_rng_next(pc_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint64_t pc_rng_below(pc_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* rejection keeps every value equally likely */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = pc_rng_next(r);
    while (x >= limit);
    return x % n;
}

double pc_rng_double(pc_rng *r)
{
    return (double)(pc_rng_next(r) >> 11) * 0x1.0p-53;
}
