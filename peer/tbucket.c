/* Token bucket (tbucket.h). */
#include "tbucket.h"

void pc_tbucket_init(pc_tbucket *b, double rate, double burst, uint64_t now)
{
    b->rate = rate;
    b->burst = burst;
    b->tokens = burst;
    b->t = now;
}

static void refill(pc_tbucket *b, uint64_t now)
{
    if (now > b->t) {
        b->tokens += b->rate * (double)(now - b->t) / 1e6;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->t = now;
    }
}

uint64_t pc_tbucket_take(pc_tbucket *b, uint64_t want, uint64_t now)
{
    if (b->rate <= 0)
        return want;
    refill(b, now);
    if (b->tokens < 1)
        return 0;
    uint64_t n = b->tokens < (double)want ? (uint64_t)b->tokens : want;
    b->tokens -= (double)n;
    return n;
}

void pc_tbucket_charge(pc_tbucket *b, uint64_t n, uint64_t now)
{
    if (b->rate <= 0)
        return;
    refill(b, now);
    b->tokens -= (double)n;
}

uint64_t pc_tbucket_wait(pc_tbucket *b, uint64_t want, uint64_t now)
{
    if (b->rate <= 0)
        return 0;
    refill(b, now);
    double w = (double)want > b->burst ? b->burst : (double)want;
    if (b->tokens >= w)
        return 0;
    return (uint64_t)((w - b->tokens) / b->rate * 1e6) + 1;
}
