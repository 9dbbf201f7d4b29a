/*
 * Simulator scenarios: a JSON document (docs/sim.md) parsed strictly — unknown keys, wrong types and
 * out-of-range values are errors with the path of the offending field.
 */
#ifndef SIM_SCENARIO_H
#define SIM_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include "pc_engine.h"
#include "pc_rng.h"

#define SIM_SCENARIO_MAX_BYTES (4 << 20)
#define SIM_TABLE_MAX 64
#define SIM_REGIONS_MAX 16
#define SIM_LIST_MAX 1000000
#define SIM_SEED_MAX 9007199254740991ull /* 2^53 - 1: summary.json records the seed as a JSON number */
#define SIM_VIEWERS_MAX 5000000  /* arrivals plus seeders in one run */
#define SIM_COPIES_MAX 50000000  /* videos x segments x rungs in the catalog */
#define SIM_SEEDER_ANNOUNCES_MAX 1e9 /* seeders x videos x duration / announce interval */

typedef enum { SIM_DIST_FIXED, SIM_DIST_UNIFORM, SIM_DIST_LOGNORMAL, SIM_DIST_TABLE } sim_dist_kind;

/* A distribution of non-negative values. */
typedef struct sim_dist {
    sim_dist_kind kind;
    double a, b;                       /* fixed: a; uniform: [a, b]; lognormal: median a, sigma b */
    double min, max;                   /* clamp (lognormal); defaults 0, +inf */
    uint32_t n;                        /* table */
    double values[SIM_TABLE_MAX], cum[SIM_TABLE_MAX];
} sim_dist;

double sim_dist_draw(const sim_dist *d, pc_rng *r);
double sim_dist_mean(const sim_dist *d); /* for reports */

typedef enum { SIM_MODE_HYBRID, SIM_MODE_CDN_ONLY, SIM_MODE_P2P_ONLY } sim_mode;
const char *sim_mode_name(sim_mode m); /* "hybrid", "cdn-only", "p2p-only" */

typedef enum { SIM_ARR_POISSON, SIM_ARR_FLASH, SIM_ARR_LIST } sim_arrival_kind;

typedef struct sim_scenario {
    char name[64];
    uint64_t seed;
    double duration_s;                 /* simulated time */
    sim_mode mode;
    /* media */
    uint32_t n_rungs;
    uint32_t ladder_kbps[PC_RUNGS_MAX];
    double segment_s;
    uint32_t videos;
    sim_dist video_duration_s;
    double zipf;                       /* popularity exponent; 0 = uniform */
    /* workload */
    sim_arrival_kind arrivals;
    double rate_per_s;                 /* poisson */
    uint32_t flash_count;              /* flash crowd: count viewers over [at, at + over] */
    double flash_at_s, flash_over_s;
    double *list_s;                    /* explicit arrival times */
    uint32_t nlist;
    uint32_t max_viewers;              /* cap on arrivals (0 = none) */
    sim_dist up_kbps, down_kbps;
    sim_dist watch_fraction;           /* of the video, 0..1 */
    double seek_probability;
    sim_dist seed_after_s;
    double abrupt_leave_probability;   /* leave without a "stopped" announce or goodbye */
    uint32_t n_regions;
    char region_name[SIM_REGIONS_MAX][16];
    double region_weight[SIM_REGIONS_MAX];
    /* network */
    double latency_ms[SIM_REGIONS_MAX][SIM_REGIONS_MAX];
    double cdn_latency_ms;
    double cdn_capacity_mbps;          /* 0 = unlimited */
    /* tracker */
    double announce_interval_s;
    uint32_t numwant, max_neighbours;
    int engine_set;               /* the scenario has an engine block (emulation notes it is not passed on) */
    /* always-on seeders per video (an origin-side seed), present from the start, holding everything */
    uint32_t seeders;
    double seeder_up_kbps;
    /* engine overrides */
    pc_engine_config engine;
    /* reporting */
    double cost_per_gb;
    double timeseries_s;
} sim_scenario;

/* Parses |len| bytes of JSON. On error returns PC_EPARSE (or PC_ETOOBIG, PC_ENOMEM) and writes one
 * sentence naming the field to |err|. */
int sim_scenario_parse(const char *buf, size_t len, sim_scenario *out, char *err, size_t errlen) PC_MUST_CHECK;
/* Reads and parses the file at |path|. With |text| non-NULL, the bytes read are handed over in *text (NUL-ended,
 * the caller frees them) and their length in *len, so that a caller can go back to the very scenario it ran
 * even if the file changes meanwhile; on error *text is NULL. */
int sim_scenario_load(const char *path, sim_scenario *out, char **text, size_t *len, char *err, size_t errlen) PC_MUST_CHECK;
void sim_scenario_clear(sim_scenario *s);
/* A --seed argument: a decimal integer 0 … 2^53 − 1 (exact in a JSON number). PC_EINVAL otherwise. */
int sim_seed_parse(const char *s, uint64_t *out) PC_MUST_CHECK;

#endif
