/*
 * A token bucket: the upload and download caps of a peer, so tests on loopback can emulate residential
 * links. Pure code: time is passed in (µs). A rate of 0 means no limit.
 */
#ifndef PC_TBUCKET_H
#define PC_TBUCKET_H

#include <stdint.h>

typedef struct pc_tbucket {
    double rate;   /* bytes per second, 0 = unlimited */
    double burst;  /* most tokens held */
    double tokens; /* may go negative: a taker that could not wait borrowed */
    uint64_t t;
} pc_tbucket;

/* |rate| bytes/s; |burst| bytes (at least one message's worth). Starts full. Cannot fail. */
void pc_tbucket_init(pc_tbucket *b, double rate, double burst, uint64_t now);
/* Up to |want| bytes allowed now (all of it when unlimited); takes them. */
uint64_t pc_tbucket_take(pc_tbucket *b, uint64_t want, uint64_t now);
/* Takes |n| bytes that already happened, borrowing if needed. */
void pc_tbucket_charge(pc_tbucket *b, uint64_t n, uint64_t now);
/* µs until at least |want| (≤ burst) tokens are there; 0 when they are now. */
uint64_t pc_tbucket_wait(pc_tbucket *b, uint64_t want, uint64_t now);

#endif
