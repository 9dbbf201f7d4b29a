/*
 * The workload of a scenario: its catalog (video lengths) and its viewers (arrival time, video,
 * region, capacities, how much they watch, seeks, seeding, abrupt leaves), drawn from the scenario's
 * distributions in one fixed order. The simulator and the emulation both draw from here, so the same
 * scenario and seed give the same catalog and viewers in a simulation and in an emulation with real
 * processes.
 */
#ifndef SIM_WORKLOAD_H
#define SIM_WORKLOAD_H

#include <stdint.h>

#include "pc_rng.h"
#include "scenario.h"

/* Video |k|'s length in seconds, drawn in catalog order from |r| (seeded with sim_catalog_seed):
 * call it for k = 0, 1, … in turn. |factor| (may be NULL) receives |*n| segment-size factors in
 * [0.8, 1.2], the simulator's stand-in for encoder variation; they are drawn either way. |*n| =
 * segments (1…PC_ENGINE_SEGMENTS_MAX). |factor| must hold PC_ENGINE_SEGMENTS_MAX values. */
double sim_catalog_next(const sim_scenario *sc, pc_rng *r, double *factor, uint32_t *n);
/* The duration in µs of segment |i| of the |n| of a video |len| seconds long (the last takes the rest,
 * at least 1 µs). */
uint32_t sim_segment_us(const sim_scenario *sc, double len, uint32_t n, uint32_t i);
/* The catalog's seed. The catalog depends on the run's seed (the scenario's `seed`, or --seed when given)
 * and not on the mode: |sc|->seed must be the run's seed (`run` and `emulate` both set it to --seed's),
 * so that a scenario.json written with the run's seed rebuilds the same catalog. */
uint64_t sim_catalog_seed(const sim_scenario *sc);

typedef struct sim_arrival {
    uint64_t at;                 /* µs from the start */
    uint32_t video, region;
    double up_kbps, down_kbps;
    double watch;                /* fraction of the video watched, 0..1 (1 = to the end) */
    int seeks;
    double seek_u, seek_pos;     /* seek at watch × length × seek_u, to seek_pos × length */
    double seed_after_s;
    int abrupt;
} sim_arrival;

typedef struct sim_workload {
    const sim_scenario *sc;
    pc_rng rng;
    double *zipf_cum;
    uint32_t flash_left, list_next;
    uint64_t last;               /* time of the previous arrival */
} sim_workload;

/* PC_ENOMEM. */
int sim_workload_init(sim_workload *w, const sim_scenario *sc, uint64_t seed) PC_MUST_CHECK;
void sim_workload_clear(sim_workload *w);
/* The next arrival's time, drawn now; |present| = viewers so far, seeders included (for the
 * scenario's max_viewers). PC_ENOENT when no more arrive. */
int sim_workload_next_time(sim_workload *w, uint32_t present, uint64_t *at) PC_MUST_CHECK;
/* Who arrives at |at|, drawn when it arrives. Cannot fail. */
void sim_workload_viewer(sim_workload *w, uint64_t at, sim_arrival *a);

#endif
