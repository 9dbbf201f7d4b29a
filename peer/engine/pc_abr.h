/*
 * Adaptive bitrate: which rung the next segment is fetched at.
 *
 * A throughput rule with buffer guards, in the spirit of BBA (Huang et al., SIGCOMM 2014) and dash.js's
 * DYNAMIC: the target is the highest rung whose bandwidth is at most |safety| × the combined CDN + P2P
 * throughput. Down-switches happen at once, as soon as the throughput no longer sustains the rung (so
 * before the buffer drains into a stall), unless |down_hold_us| or more is buffered and the throughput still
 * carries the current rung without the safety margin: that buffer is not draining, and a viewer whose
 * estimate straddles a rung's threshold would otherwise switch at every wobble. Up-switches go one rung at a time, only with at least
 * |reservoir_us| buffered and after the higher target has held for |up_hold_us| (hysteresis against
 * oscillation). All else equal, a rung the swarm holds is preferred to the next one up that it does not
 * (|prefer_held|: offload before bitrate).
 * A viewer may pin a rung. Pure code; time is passed in. A hybrid viewer's buffer is short by design
 * (the CDN serves only the urgent window), which is why the buffer gates up-switches rather than
 * mapping onto the ladder as in BBA proper.
 */
#ifndef PC_ABR_H
#define PC_ABR_H

#include <stdint.h>

#define PC_RUNGS_MAX 8

typedef struct pc_abr_config {
    uint64_t reservoir_us;    /* below it: no up-switch (default 6 s) */
    double safety;            /* a rung needs bandwidth ≤ safety × throughput (0.8) */
    uint64_t up_hold_us;      /* a higher target must hold this long before switching up (6 s) */
    int prefer_held;          /* all else equal, a rung the swarm holds over the next one up (1) */
    uint64_t down_hold_us;    /* with this much buffered, no down-switch while the throughput carries the
                                 current rung (20 s; 0: none) */
} pc_abr_config;

typedef struct pc_abr {
    pc_abr_config cfg;
    uint32_t n;                     /* rungs, ascending bandwidth */
    uint32_t bw[PC_RUNGS_MAX];      /* bits per second */
    int pinned;                     /* rung index, or -1 */
    uint32_t cur;
    uint32_t target;                /* the last decision's target: cur, or the rung it climbs towards */
    uint64_t up_since;              /* when the target first exceeded cur, PC_NEVER when it does not */
    uint32_t switches;
} pc_abr;

void pc_abr_config_default(pc_abr_config *c);
/* |n| in 1..PC_RUNGS_MAX, |bw| ascending. The first rung is the highest with bandwidth ≤ safety ×
 * |start_bps| (the lowest when none, or when |start_bps| is 0: a conservative default). */
void pc_abr_init(pc_abr *a, const pc_abr_config *c, uint32_t n, const uint32_t *bw, uint64_t start_bps);
/* Pins rung |r| (or unpins with -1). */
void pc_abr_pin(pc_abr *a, int r);
/* The rung for the next segment. |buffer_us|: playable buffer ahead of the playhead; |tput_bps|: the
 * combined throughput estimate (0 = unknown: the current rung stays); |swarm_holds|: bit r set when some
 * peer holds the next segment at rung r. Updates the current rung and returns it. */
uint32_t pc_abr_decide(pc_abr *a, uint64_t buffer_us, double tput_bps, uint32_t swarm_holds, uint64_t now);
/* The rung the ABR is projected to play content |ahead_us| from now: climbing one rung per up_hold_us
 * towards the last target, never past it (the current rung when pinned or not climbing). */
uint32_t pc_abr_projected(const pc_abr *a, uint64_t ahead_us);

#endif
