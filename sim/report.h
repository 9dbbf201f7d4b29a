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
/* Writes timeseries.csv, viewers.csv, offload.svg, startup_cdf.svg and swarm.svg, then run.json, then
 * summary.json into |dir| (created if missing), each whole or not at all (a new file renamed into place: a
 * symbolic link in the way is replaced, not followed). An earlier run's summary.json and run.json are
 * removed first, so a failure half way leaves none. Non-zero with |err| naming the file. */
int sim_write_outputs(const char *dir, const sim_scenario *sc, uint64_t seed, const sim_result *r, char *err,
                      size_t errlen) PC_MUST_CHECK;
/* Removes |dir|'s summary.json and run.json (a run's result, as compare reads it). */
int sim_forget_result(const char *dir, char *err, size_t errlen) PC_MUST_CHECK;
/* DIR/NAME as JSON (json_dumps |flags|), written whole or not at all like the outputs above. */
int sim_write_json(const char *dir, const char *name, json_t *doc, size_t flags, char *err, size_t errlen) PC_MUST_CHECK;
/* Why pc_mkdirs failed with |mk| (|err|: errno right after it, more precise: EACCES, EROFS), for
 * "cannot create DIR: ...". */
const char *sim_mkdirs_reason(int mk, int err);

/* One line of the side-by-side table `run --compare` and `emulate` print, and its header. */
void sim_print_header(void);
void sim_print_row(const char *label, json_t *summary);

#endif
