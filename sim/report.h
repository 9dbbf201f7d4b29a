/*
 * Simulator outputs: summary.json (depends only on scenario and seed), run.json (wall time, events),
 * timeseries.csv and three SVG plots. docs/sim.md defines every field.
 */
#ifndef SIM_REPORT_H
#define SIM_REPORT_H

#include <jansson.h>

#include "sim.h"

/* The summary document; NULL on ENOMEM. */
json_t *sim_summary(const sim_scenario *sc, uint64_t seed, const sim_result *r);
/* The files sim_write_outputs writes into its |dir|, NULL-terminated. */
extern const char *const sim_output_files[];
/* Writes summary.json, run.json, timeseries.csv, viewers.csv, offload.svg, startup_cdf.svg and swarm.svg
 * into |dir| (created if missing). PC_EIO with |err| naming the file. */
int sim_write_outputs(const char *dir, const sim_scenario *sc, uint64_t seed, const sim_result *r, char *err,
                      size_t errlen) PC_MUST_CHECK;

/* One line of the side-by-side table `run --compare` and `emulate` print, and its header. */
void sim_print_header(void);
void sim_print_row(const char *label, json_t *summary);

#endif
