/*
 * The simulator's event queue: events come out in (t, seq) order, seq being the order they were
 * pushed, exactly as from one heap; but most of them are due within a few seconds, so they wait in a
 * wheel of short time buckets instead:
 *
 *   near   a small 4-ary heap of the events in the current bucket (it stays in the L1/L2 cache);
 *   wheel  EVQ_BUCKETS buckets of EVQ_BUCKET_US each after the current one, appended to unsorted;
 *   far    a 4-ary heap of what lies beyond the wheel (announces, departures).
 *
 * When the near heap runs dry the next bucket that holds anything (found from a bitmap), and the far
 * events of that bucket, move into it. A push costs an append; a pop sifts a heap of a bucket's size.
 * With one heap of every pending event, nearly every sift touched cold cache lines at 100k viewers.
 */
#ifndef PC_SIM_EVQ_H
#define PC_SIM_EVQ_H

#include <stddef.h>
#include <stdint.h>

#define EVQ_BUCKET_SHIFT 10 /* 1.024 ms buckets */
#define EVQ_BUCKETS 4096    /* a wheel of about 4.2 s */

typedef struct sim_ev {
    uint64_t t, seq;
    uint32_t kind, id, ver;
} sim_ev;

typedef struct evq_vec {
    sim_ev *a;
    uint32_t n, cap;
} evq_vec;

typedef struct sim_evq {
    evq_vec near, far;            /* heaps */
    evq_vec wheel[EVQ_BUCKETS];   /* bucket b (absolute number t >> EVQ_BUCKET_SHIFT) at b % EVQ_BUCKETS */
    uint64_t used[EVQ_BUCKETS / 64]; /* wheel buckets holding events */
    uint64_t cur;                 /* the near heap's bucket: every queued event in it or before is there */
    uint64_t now;                 /* the last event's time */
    uint64_t seq;
    size_t n;                     /* events queued in all */
    int oom;
} sim_evq;

void sim_evq_init(sim_evq *q);
void sim_evq_clear(sim_evq *q);
/* Queues an event at |t| (never before the last one popped: an earlier |t| is raised to it). Sets
 * q->oom and drops the event when memory runs out. */
void sim_evq_push(sim_evq *q, uint64_t t, uint32_t kind, uint32_t id, uint32_t ver);
/* The earliest event (ties in push order) into |out|; 0 when the queue is empty. */
int sim_evq_pop(sim_evq *q, sim_ev *out);
/* Some of the events due next, for cache hints: the first is the next pop when the current bucket
 * still holds events; the others come soon after, in no particular order. Returns how many (≤ max). */
size_t sim_evq_ahead(const sim_evq *q, const sim_ev **out, size_t max);

#endif
