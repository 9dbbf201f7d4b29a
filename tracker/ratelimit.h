/*
 * Per-address token buckets (pure: time is an argument). IPv4 addresses
 * are limited one by one, IPv6 per /64. A fixed table (two candidate slots
 * per address) bounds memory whatever the number of addresses; when both
 * slots are held by others, the one idle longest is taken over.
 */
#ifndef PC_TRACKER_RATELIMIT_H
#define PC_TRACKER_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct pc_ratelimit pc_ratelimit;

/* |rate| requests per second with bursts of |burst|; |slots| table entries (a power of two).
 * NULL on ENOMEM. */
pc_ratelimit *pc_ratelimit_new(double rate, double burst, size_t slots, uint64_t seed);
void pc_ratelimit_free(pc_ratelimit *rl);
/* 1 when |addr| (16-byte form) may make a request at |now_us| (and takes a token), else 0. */
int pc_ratelimit_take(pc_ratelimit *rl, const uint8_t addr[16], uint64_t now_us);

#endif
