/* Per-address token buckets; see ratelimit.h. */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

#define UNIT 1000000 /* tokens are counted in millionths, so refills are exact */

struct bucket {
    uint8_t addr[16];
    uint64_t tokens;
    uint64_t last_us;
    int used;
};

struct pc_ratelimit {
    double rate;
    uint64_t burst;
    size_t mask;
    uint64_t seed;
    struct bucket *b;
};

pc_ratelimit *pc_ratelimit_new(double rate, double burst, size_t slots, uint64_t seed)
{
    pc_ratelimit *rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return NULL;
    rl->b = calloc(slots, sizeof(*rl->b));
    if (rl->b == NULL) {
        free(rl);
        return NULL;
    }
    rl->rate = rate;
    rl->burst = (uint64_t)(burst * UNIT);
    rl->mask = slots - 1;
    rl->seed = seed;
    return rl;
}

void pc_ratelimit_free(pc_ratelimit *rl)
{
    if (rl != NULL) {
        free(rl->b);
        free(rl);
    }
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ULL;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dULL;
    return x ^ (x >> 33);
}

int pc_ratelimit_take(pc_ratelimit *rl, const uint8_t addr[16], uint64_t now_us)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t key[16];
    memcpy(key, addr, 16);
    if (memcmp(addr, mapped, 12) != 0)
        memset(key + 8, 0, 8); /* IPv6: the /64 */
    uint64_t w0, w1;
    memcpy(&w0, key, 8);
    memcpy(&w1, key + 8, 8);
    uint64_t h = mix(rl->seed ^ w0) ^ mix(w1 + 0x9e3779b97f4a7c15ULL);
    struct bucket *c[2] = {&rl->b[h & rl->mask], &rl->b[(h >> 32) & rl->mask]};
    struct bucket *e = NULL;
    for (int i = 0; i < 2 && e == NULL; i++)
        if (c[i]->used && memcmp(c[i]->addr, key, 16) == 0)
            e = c[i];
    if (e == NULL) {
        e = !c[0]->used ? c[0] : !c[1]->used ? c[1] : c[0]->last_us <= c[1]->last_us ? c[0] : c[1];
        memcpy(e->addr, key, 16);
        e->tokens = rl->burst;
        e->last_us = now_us;
        e->used = 1;
    }
    if (now_us > e->last_us) {
        double add = (double)(now_us - e->last_us) * rl->rate; /* microseconds × tokens/s = millionths */
        e->tokens = add >= (double)(rl->burst - e->tokens) ? rl->burst : e->tokens + (uint64_t)add;
        e->last_us = now_us;
    }
    if (e->tokens < UNIT)
        return 0;
    e->tokens -= UNIT;
    return 1;
}
