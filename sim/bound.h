/*
 * offload_bound: the best any scheduler could do on a workload (docs/sim.md, "The bound"). Each
 * (rung, segment) received by a group of overlapping viewers of a video must come from the CDN at
 * least once (always-on seeders may provide those first copies, up to what they can upload while the
 * group is there), and viewers cannot upload more than capacity × the time another viewer of the video
 * is watching (seeding after watching receives nothing; seeders: × the time a viewer is watching):
 *   offload ≤ 1 − max(CDN copies needed, Σ demand − Σ usable upload) ÷ Σ demand.
 * The simulator and the emulation (real processes) both compute it here, from what each viewer
 * actually received.
 */
#ifndef SIM_BOUND_H
#define SIM_BOUND_H

#include <stdint.h>

#include "pc_engine.h"

typedef struct sim_bound_viewer {
    uint32_t video;          /* index into the media array */
    uint64_t arrive, left;   /* µs on one clock; left ≥ arrive */
    uint64_t watched;        /* when it stopped watching (receiving): arrive ≤ watched ≤ left (clamped);
                              * from then to |left| it only seeds */
    double up;               /* upload capacity, bytes/s */
    int seeder;              /* always on, holds everything: provides first copies */
    double bytes;            /* bytes received (its demand) */
    const uint8_t *got;      /* rungs × ceil(n_segments / 8) bits: segments received; may be NULL */
} sim_bound_viewer;

typedef struct sim_bound {
    double offload_bound, cdn_needed_bytes, usable_upload_bytes, demand_bytes;
} sim_bound;

/* Computes the bound for |n| viewers of |nvideos| videos; seeders count up to |end|. PC_ENOMEM. */
int sim_bound_compute(const pc_media *const *media, uint32_t nvideos, const sim_bound_viewer *v, uint32_t n,
                      uint64_t end, sim_bound *out) PC_MUST_CHECK;

#endif
