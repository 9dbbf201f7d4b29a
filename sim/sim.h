/*
 * The simulator: thousands of viewers, each running the real engine (peer/engine) under a virtual
 * clock, meeting through the real tracker registry and peer selection (tracker/), over a flow-level
 * network model. docs/sim.md describes the model and its simplifications.
 */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <stdint.h>
#include <stdio.h>

#include "scenario.h"

/* One row of the time series (cumulative values at t). */
typedef struct sim_sample {
    double t_s;
    uint32_t watching, seeding;
    uint64_t bytes_cdn, bytes_p2p;
    uint32_t stalls;
} sim_sample;

/* What one viewer experienced. */
typedef struct sim_viewer_result {
    int seeder;                         /* an always-on seeder, not a viewer: left out of viewer figures */
    uint32_t video, region;             /* catalog index, scenario region index */
    double up_kbps, down_kbps;          /* its link */
    double arrive_s, leave_s;
    int started;
    double startup_ms, stall_ms, played_ms;
    double seek_wait_ms;                /* time to play again after its seeks (not stalls) */
    uint32_t stalls, switches, swarm;   /* swarm: viewers of the same video present at arrival */
    uint32_t seeks;
    uint64_t bytes_cdn, bytes_p2p, bytes_up;
    double bitrate_kbps;                /* mean bitrate of the segments it played */
} sim_viewer_result;

typedef struct sim_result {
    sim_mode mode;
    uint32_t viewers;
    sim_viewer_result *v;
    sim_sample *ts;
    uint32_t nts;
    uint64_t bytes_cdn, bytes_p2p, bytes_up;
    double offload_bound, cdn_needed_bytes, usable_upload_bytes, demand_bytes;
    uint64_t events, engine_calls;
    uint64_t announces;                 /* announces the tracker accepted (a simulation's; not an emulation's) */
    uint64_t peer_lists;                /* ... that it answered with a peer search (watchers asking for peers) */
    uint64_t numwant0;                  /* ... that asked for no peers: every link of the viewer was taken */
    uint64_t links, links_in_region;    /* peers added to a viewer's engine; ... of the viewer's own region */
    uint32_t threads;                   /* worlds the run was split into */
    double wall_s;
    size_t peak_rss_kib;
    const char *kind;                   /* run.json's "kind": NULL = "simulation", or "emulation" */
    int interrupted;                    /* stopped by a signal before its end (run.json says so) */
} sim_result;

/* Runs |sc| in |mode| (overriding the scenario's) with |seed| on up to |threads| threads (1…8; 0 = 1):
 * videos are split between them, unless a CDN capacity couples the swarms. The results do not depend
 * on |threads|. |progress| (may be NULL) gets a bar. */
int sim_run(const sim_scenario *sc, sim_mode mode, uint64_t seed, uint32_t threads, FILE *progress,
            sim_result *out) PC_MUST_CHECK;
void sim_result_clear(sim_result *r);
/* This process's peak resident memory in KiB (VmHWM; getrusage where /proc is missing). Cannot fail. */
size_t sim_peak_rss_kib(void);

#endif
