/* peercdn-sim: run a scenario on the real engine and tracker code; see docs/sim.md. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pc_cli.h"
#include "report.h"
#include "scenario.h"
#include "sim.h"

static const char usage[] =
    "usage: peercdn-sim run SCENARIO --out DIR [--seed N] [--mode hybrid|cdn-only|p2p-only] [--compare] [--quiet]\n"
    "\n"
    "Simulates the viewers of SCENARIO (JSON, docs/sim.md) on the real engine and tracker code under a\n"
    "virtual clock, and writes DIR/summary.json, DIR/run.json, DIR/timeseries.csv and SVG plots.\n"
    "  --seed N      overrides the scenario's seed (same scenario and seed: identical summary.json)\n"
    "  --mode M      overrides the scenario's mode\n"
    "  --compare     runs hybrid, cdn-only and p2p-only on the same workload into DIR/<mode>/ and\n"
    "                prints them side by side (DIR/compare.json)\n"
    "  --quiet       no progress bar\n";

static int parse_mode(const char *s, sim_mode *m)
{
    if (strcmp(s, "hybrid") == 0)
        *m = SIM_MODE_HYBRID;
    else if (strcmp(s, "cdn-only") == 0)
        *m = SIM_MODE_CDN_ONLY;
    else if (strcmp(s, "p2p-only") == 0)
        *m = SIM_MODE_P2P_ONLY;
    else
        return -1;
    return 0;
}

static void print_row(const char *label, json_t *s)
{
    json_t *su = json_object_get(s, "startup_ms");
    printf("%-10s %8" PRId64 " %8.1f%% %8.1f%% %12.2f %10.2f %9.0f %9.0f %10.3f%% %9.2f %9.0f\n", label,
           (int64_t)json_integer_value(json_object_get(s, "viewers")),
           100 * json_real_value(json_object_get(s, "offload")), 100 * json_real_value(json_object_get(s, "offload_bound")),
           (double)json_integer_value(json_object_get(s, "bytes_cdn")) / 1e9,
           json_real_value(json_object_get(s, "cdn_cost")), json_real_value(json_object_get(su, "p50")),
           json_real_value(json_object_get(su, "p95")), 100 * json_real_value(json_object_get(s, "rebuffer_ratio")),
           json_real_value(json_object_get(s, "stalls_per_viewer_hour")),
           json_real_value(json_object_get(s, "mean_bitrate_kbps")));
}

static void print_header(void)
{
    printf("%-10s %8s %9s %9s %12s %10s %9s %9s %11s %9s %9s\n", "mode", "viewers", "offload", "bound", "CDN GB",
           "CDN $", "p50 ms", "p95 ms", "rebuffer", "stalls/h", "kbit/s");
}

static int run_one(const sim_scenario *sc, sim_mode mode, uint64_t seed, const char *dir, int quiet, json_t **summary)
{
    sim_result r;
    int rc = sim_run(sc, mode, seed, quiet || !isatty(2) ? NULL : stderr, &r);
    if (rc != 0) {
        fprintf(stderr, "peercdn-sim: the simulation failed: %s\n", pc_strerror(rc));
        return 1;
    }
    char err[512];
    rc = sim_write_outputs(dir, sc, seed, &r, err, sizeof(err));
    if (rc == 0 && summary != NULL)
        *summary = sim_summary(sc, seed, &r);
    sim_result_clear(&r);
    if (rc != 0) {
        fprintf(stderr, "peercdn-sim: %s\n", err);
        return 1;
    }
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    const char *out = NULL, *seed_s = NULL, *mode_s = NULL;
    int compare = 0, quiet = 0;
    enum { O_OUT = 1, O_SEED, O_MODE, O_COMPARE, O_QUIET, O_HELP };
    static const struct option opts[] = {{"out", required_argument, NULL, O_OUT},
                                         {"seed", required_argument, NULL, O_SEED},
                                         {"mode", required_argument, NULL, O_MODE},
                                         {"compare", no_argument, NULL, O_COMPARE},
                                         {"quiet", no_argument, NULL, O_QUIET},
                                         {"help", no_argument, NULL, O_HELP},
                                         {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case O_OUT: out = optarg; break;
        case O_SEED: seed_s = optarg; break;
        case O_MODE: mode_s = optarg; break;
        case O_COMPARE: compare = 1; break;
        case O_QUIET: quiet = 1; break;
        case O_HELP: fputs(usage, stdout); return 0;
        default: pc_cli_usage("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        pc_cli_usage("run takes one SCENARIO file");
    if (out == NULL)
        pc_cli_usage("run needs --out DIR");
    sim_scenario sc;
    char err[512];
    int rc = sim_scenario_load(argv[optind], &sc, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "peercdn-sim: %s\n", err);
        return 1;
    }
    uint64_t seed = sc.seed;
    if (seed_s != NULL) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(seed_s, &end, 10);
        if (errno != 0 || *end != '\0' || end == seed_s || seed_s[0] == '-') {
            sim_scenario_clear(&sc);
            pc_cli_usage("--seed takes a non-negative integer");
        }
        seed = v;
    }
    sim_mode mode = sc.mode;
    if (mode_s != NULL && parse_mode(mode_s, &mode) != 0) {
        sim_scenario_clear(&sc);
        pc_cli_usage("--mode takes hybrid, cdn-only or p2p-only");
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "peercdn-sim: cannot create %s: %s\n", out, strerror(errno));
        sim_scenario_clear(&sc);
        return 1;
    }
    int status = 0;
    if (!compare) {
        json_t *s = NULL;
        status = run_one(&sc, mode, seed, out, quiet, &s);
        if (status == 0 && s != NULL) {
            print_header();
            print_row(sim_mode_name(mode), s);
        }
        json_decref(s);
    } else {
        static const sim_mode modes[3] = {SIM_MODE_HYBRID, SIM_MODE_CDN_ONLY, SIM_MODE_P2P_ONLY};
        json_t *all = json_object(), *sums[3] = {NULL, NULL, NULL};
        for (int i = 0; i < 3 && status == 0; i++) {
            char dir[4096];
            snprintf(dir, sizeof(dir), "%s/%s", out, sim_mode_name(modes[i]));
            status = run_one(&sc, modes[i], seed, dir, quiet, &sums[i]);
            if (sums[i] != NULL)
                json_object_set(all, sim_mode_name(modes[i]), sums[i]);
        }
        if (status == 0) {
            print_header();
            for (int i = 0; i < 3; i++)
                print_row(sim_mode_name(modes[i]), sums[i]);
            char path[4096];
            snprintf(path, sizeof(path), "%s/compare.json", out);
            if (json_dump_file(all, path, JSON_INDENT(2) | JSON_REAL_PRECISION(12)) != 0) {
                fprintf(stderr, "peercdn-sim: cannot write %s\n", path);
                status = 1;
            }
        }
        for (int i = 0; i < 3; i++)
            json_decref(sums[i]);
        json_decref(all);
    }
    sim_scenario_clear(&sc);
    return status;
}

int main(int argc, char **argv)
{
    pc_cli_init("peercdn-sim");
    if (argc < 2)
        pc_cli_usage("missing command: run");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    pc_cli_usage("unknown command '%s' (run)", argv[1]);
}
