/* peercdn-sim: run a scenario on the real engine and tracker code; see docs/sim.md. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emulate.h"
#include "pc_cli.h"
#include "pc_fs.h"
#include "report.h"
#include "scenario.h"
#include "sim.h"

#define SIM_OUT_MAX 3800

static const char usage[] =
    "usage: peercdn-sim run SCENARIO --out DIR [--seed N] [--mode hybrid|cdn-only|p2p-only] [--compare] [--threads N]\n"
    "                                [--quiet]\n"
    "       peercdn-sim emulate SCENARIO --out DIR [--seed N] [--network auto|netns|loopback] [--keep] ...\n"
    "       peercdn-sim compare DIR_A DIR_B\n"
    "\n"
    "Simulates the viewers of SCENARIO (JSON, docs/sim.md) on the real engine and tracker code under a\n"
    "virtual clock, and writes DIR/summary.json, DIR/run.json, DIR/timeseries.csv, DIR/viewers.csv (a row\n"
    "per viewer) and SVG plots.\n"
    "  --seed N      overrides the scenario's seed (same scenario and seed: identical summary.json)\n"
    "  --mode M      overrides the scenario's mode\n"
    "  --compare     runs hybrid, cdn-only and p2p-only on the same workload into DIR/<mode>/ and\n"
    "                prints them side by side (DIR/compare.json); either kind replaces the other's\n"
    "                outputs in DIR, and a DIR holding an emulation is refused\n"
    "  --threads N   threads to split the videos between (1-8; default: the CPUs online, at most 8);\n"
    "                the results are the same for any N\n"
    "  --quiet       no progress bar\n"
    "\n"
    "emulate runs the scenario with real tracker, origin and peer processes (see `emulate --help`);\n"
    "compare prints two runs' summary.json side by side (a simulation and an emulation, say).\n";

/* ---- compare ---- */

#define SUMMARY_MAX (1 << 20)

/* DIR/NAME as a JSON object; NULL (with one line on stderr unless |quiet|) when it cannot be read. */
static json_t *load_json(const char *dir, const char *name, int quiet)
{
    char path[4096], *txt = NULL;
    size_t n = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int rc = pc_read_file(path, SUMMARY_MAX, &txt, &n);
    json_t *o = rc == 0 ? json_loadb(txt, n, 0, NULL) : NULL;
    free(txt);
    if (!json_is_object(o)) {
        json_decref(o);
        if (!quiet)
            pc_cli_error("cannot read %s: %s", path, rc != 0 ? rc == PC_EINVAL ? "not a regular file" : pc_strerror(rc) : "not a JSON object");
        return NULL;
    }
    return o;
}

/* "simulation" or "emulation", from DIR/run.json (older runs have no kind: simulations). */
static void run_kind(const char *dir, char *kind, size_t len)
{
    json_t *run = load_json(dir, "run.json", 1);
    const char *k = json_string_value(json_object_get(run, "kind"));
    /* an emulation stopped by a signal: its column is not the scenario's whole run (found by review) */
    snprintf(kind, len, "%s%s", k != NULL ? k : "simulation",
             json_is_true(json_object_get(run, "interrupted")) ? ", interrupted" : "");
    json_decref(run);
}

static double num_at(json_t *o, const char *key, const char *sub, int *ok)
{
    json_t *v = json_object_get(o, key);
    if (sub != NULL)
        v = json_object_get(v, sub);
    *ok = json_is_number(v);
    return json_number_value(v);
}

/* DIR/summary.json, which must at least count viewers and give an offload: any other JSON object (a
 * run.json, a scenario) is refused instead of printed as a column of "-". */
static json_t *load_summary(const char *dir)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/summary.json", dir);
    if (stat(path, &st) != 0 && errno == ENOENT) {
        snprintf(path, sizeof(path), "%s/compare.json", dir);
        if (stat(path, &st) == 0) {
            pc_cli_error("%s holds a --compare run: compare %s/hybrid, %s/cdn-only or %s/p2p-only",
                    dir, dir, dir, dir);
            return NULL;
        }
    }
    json_t *o = load_json(dir, "summary.json", 0);
    if (o != NULL && !(json_is_integer(json_object_get(o, "viewers")) && json_is_number(json_object_get(o, "offload")))) {
        pc_cli_error("%s/summary.json is not a run's summary (it has no viewers or offload)", dir);
        json_decref(o);
        o = NULL;
    }
    return o;
}

static int cmd_compare(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs("usage: peercdn-sim compare DIR_A DIR_B\n\nPrints the summary.json of two runs (of `run` or "
              "`emulate`) side by side, with B - A.\n",
              stdout);
        return 0;
    }
    if (argc != 3)
        pc_cli_usage("compare takes two run directories");
    json_t *a = load_summary(argv[1]), *b = a ? load_summary(argv[2]) : NULL;
    if (a == NULL || b == NULL) {
        json_decref(a);
        return 1;
    }
    char ka[32], kb[32];
    run_kind(argv[1], ka, sizeof(ka));
    run_kind(argv[2], kb, sizeof(kb));
    static const struct {
        const char *key, *sub, *label;
        double scale;
        int prec;
        const char *unit, *dunit;
    } rows[] = {
        {"viewers", NULL, "viewers", 1, 0, "", ""},
        {"offload", NULL, "offload", 100, 2, "%", " pp"},
        {"offload_bound", NULL, "offload bound", 100, 2, "%", " pp"},
        {"bytes_cdn", NULL, "CDN bytes", 1e-6, 2, " MB", " MB"},
        {"bytes_p2p", NULL, "P2P bytes", 1e-6, 2, " MB", " MB"},
        {"cdn_peak_mbps", NULL, "CDN peak", 1, 2, " Mbit/s", " Mbit/s"},
        {"cdn_cost", NULL, "CDN cost", 1, 6, " $", " $"},
        {"startup_ms", "p50", "start-up p50", 1, 0, " ms", " ms"},
        {"startup_ms", "p95", "start-up p95", 1, 0, " ms", " ms"},
        {"rebuffer_ratio", NULL, "rebuffer ratio", 100, 3, "%", " pp"},
        {"stalls", NULL, "stalls", 1, 0, "", ""},
        {"viewers_stalled", NULL, "viewers stalled", 1, 0, "", ""},
        {"stalls_per_viewer_hour", NULL, "stalls / viewer-hour", 1, 2, "", ""},
        {"mean_bitrate_kbps", NULL, "mean bitrate", 1, 0, " kbit/s", " kbit/s"},
        {"rung_switches", NULL, "rung switches", 1, 0, "", ""},
        {"tracker", "announces_per_s", "tracker announces", 1, 2, "/s", "/s"},
    };
    const char *sa = json_string_value(json_object_get(a, "scenario")), *sb = json_string_value(json_object_get(b, "scenario"));
    printf("%-22s %22s %22s %14s\n", "", ka, kb, "B - A");
    printf("%-22s %22.22s %22.22s\n", "scenario", sa ? sa : "?", sb ? sb : "?");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int oka, okb;
        double x = num_at(a, rows[i].key, rows[i].sub, &oka), y = num_at(b, rows[i].key, rows[i].sub, &okb);
        char cx[48] = "-", cy[48] = "-", cd[48] = "";
        int prec = rows[i].prec;
        if (oka)
            snprintf(cx, sizeof(cx), "%.*f%s", prec, x * rows[i].scale, rows[i].unit);
        if (okb)
            snprintf(cy, sizeof(cy), "%.*f%s", prec, y * rows[i].scale, rows[i].unit);
        if (oka && okb)
            snprintf(cd, sizeof(cd), "%+.*f%s", prec, (y - x) * rows[i].scale, rows[i].dunit);
        printf("%-22s %22s %22s %14s\n", rows[i].label, cx, cy, cd);
    }
    json_decref(a);
    json_decref(b);
    return 0;
}

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

/* Under a sanitizer, which reserves terabytes of address space for its shadow memory: gcc says so with
 * __SANITIZE_*__, clang only through __has_feature (a clang build limited its data and failed every run
 * at start; found by review) */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SIM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define SIM_SANITIZED 1
#endif
#endif

#ifndef SIM_SANITIZED
/* MemAvailable from /proc/meminfo (PEERCDN_SIM_MEMINFO names another file: a test aid), in bytes; 0 when
 * it cannot be read. */
static uint64_t mem_available(void)
{
    const char *path = getenv("PEERCDN_SIM_MEMINFO");
    FILE *f = fopen(path != NULL && path[0] != '\0' ? path : "/proc/meminfo", "r");
    char line[256];
    unsigned long long kib = 0;
    int found = 0;
    while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
        found = sscanf(line, "MemAvailable: %llu kB", &kib) == 1;
    if (f != NULL)
        fclose(f);
    return found && kib > 0 && kib < UINT64_MAX / 1024 ? (uint64_t)kib * 1024 : 0;
}
#endif

#define MEM_SHARE 0.85 /* of MemAvailable: the page cache and other processes keep the rest */

/* A run larger than the machine can hold fails with "out of memory" (every allocation is checked) instead
 * of swapping or being killed: its data (RLIMIT_DATA) is limited, once per process, to 85% of the memory
 * available when the first run starts (MemAvailable; the physical memory when that cannot be read). A
 * limit at the physical memory let the kernel's OOM killer end the run first, since other processes and
 * the page cache hold part of it. Returns the limit (0: none set, e.g. under the sanitizers, which reserve
 * terabytes of address space for their shadow memory, or when the limit was already as tight) and says
 * what it is in |what|. */
static uint64_t limit_memory(const char **what)
{
    static int done;
    static uint64_t limit;
    static const char *said = "";
    *what = said;
    if (done)
        return limit;
    done = 1;
#ifdef SIM_SANITIZED
    return 0;
#else
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t avail = mem_available();
    struct rlimit rl;
    if (getrlimit(RLIMIT_DATA, &rl) != 0)
        return 0;
    rlim_t cap;
    if (avail > 0) {
        cap = (rlim_t)((double)avail * MEM_SHARE);
        said = "85% of the memory available, ";
    } else if (pages > 0 && page > 0) {
        cap = (rlim_t)pages * (rlim_t)page;
        said = "the machine's ";
    } else {
        return 0;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur <= cap)
        return 0; /* already as tight */
    rl.rlim_cur = cap;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
        rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_DATA, &rl) != 0)
        return 0;
    limit = (uint64_t)rl.rlim_cur;
    *what = said;
    return limit;
#endif
}

static int run_one(const sim_scenario *sc, sim_mode mode, uint64_t seed, uint32_t threads, const char *dir, int quiet,
                   json_t **summary)
{
    sim_result r;
    const char *what;
    char err[512];
    /* before the run, not only when writing: a run that fails (out of memory) must not leave the last
     * run's summary.json looking like its own (found by review) */
    if (sim_forget_result(dir, err, sizeof(err)) != 0) {
        pc_cli_error("%s", err);
        return 1;
    }
    uint64_t limit = limit_memory(&what);
    int rc = sim_run(sc, mode, seed, threads, quiet || !isatty(2) ? NULL : stderr, &r);
    if (rc == PC_ENOMEM && limit > 0) {
        pc_cli_error("the simulation failed: out of memory (this scenario needs more than %s%.1f GiB)", what,
                     (double)limit / (1 << 30));
        return 1;
    }
    if (rc != 0) {
        pc_cli_error("the simulation failed: %s", pc_strerror(rc));
        return 1;
    }
    rc = sim_write_outputs(dir, sc, seed, &r, err, sizeof(err));
    if (rc == 0 && summary != NULL)
        *summary = sim_summary(sc, seed, &r);
    sim_result_clear(&r);
    if (rc != 0) {
        pc_cli_error("%s", err);
        return 1;
    }
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    const char *out = NULL, *seed_s = NULL, *mode_s = NULL;
    int compare = 0, quiet = 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (uint32_t)cpus;
    enum { O_OUT = PC_CLI_LONG_FIRST, O_SEED, O_MODE, O_COMPARE, O_QUIET, O_THREADS, O_HELP };
    static const struct option opts[] = {{"out", required_argument, NULL, O_OUT},
                                         {"seed", required_argument, NULL, O_SEED},
                                         {"mode", required_argument, NULL, O_MODE},
                                         {"compare", no_argument, NULL, O_COMPARE},
                                         {"quiet", no_argument, NULL, O_QUIET},
                                         {"threads", required_argument, NULL, O_THREADS},
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
        case O_THREADS: threads = (uint32_t)pc_cli_int(optarg, "--threads", 1, 8); break;
        case O_HELP: fputs(usage, stdout); return 0;
        default: pc_cli_bad_option(argv);
        }
    }
    if (optind != argc - 1)
        pc_cli_usage("run takes one SCENARIO file");
    if (out == NULL)
        pc_cli_usage("run needs --out DIR");
    if (compare && mode_s != NULL)
        pc_cli_usage("--compare runs all three modes: it takes no --mode");
    if (strlen(out) > SIM_OUT_MAX) /* the files' names and --compare's DIR/<mode> must fit their buffers */
        pc_cli_usage("--out: a path of at most %d characters", SIM_OUT_MAX);
    sim_scenario sc;
    char err[512];
    int rc = sim_scenario_load(argv[optind], &sc, NULL, NULL, err, sizeof(err));
    if (rc != 0) {
        pc_cli_error("%s", err);
        return 1;
    }
    uint64_t seed = sc.seed;
    if (seed_s != NULL && sim_seed_parse(seed_s, &seed) != 0) {
        sim_scenario_clear(&sc);
        pc_cli_usage("--seed takes an integer from 0 to 2^53 - 1");
    }
    sim_mode mode = sc.mode;
    if (mode_s != NULL && parse_mode(mode_s, &mode) != 0) {
        sim_scenario_clear(&sc);
        pc_cli_usage("--mode takes hybrid, cdn-only or p2p-only");
    }
    int mk = pc_mkdirs(out); /* with its parents, as mkdir -p */
    if (mk != 0) {
        pc_cli_error("cannot create %s: %s", out, sim_mkdirs_reason(mk, errno));
        sim_scenario_clear(&sc);
        return 1;
    }
    /* a run of the other kind in the same DIR: its top-level outputs go, so that what DIR holds is one run
     * (compare.json beside a single run's summary.json would be taken for it, and the reverse) */
    static const char *const multi[] = {"compare.json", NULL};
    static const sim_mode modes[3] = {SIM_MODE_HYBRID, SIM_MODE_CDN_ONLY, SIM_MODE_P2P_ONLY};
    for (int i = -1; i < (compare ? 3 : 0); i++) { /* DIR, and with --compare the runs it writes below */
        char dir[4096], kind[32];
        snprintf(dir, sizeof(dir), "%s%s%s", out, i < 0 ? "" : "/", i < 0 ? "" : sim_mode_name(modes[i]));
        run_kind(dir, kind, sizeof(kind));
        if (strcmp(kind, "emulation") == 0) { /* minutes of real processes: not overwritten by a simulation */
            pc_cli_error("%s holds an emulation (its run.json says so): give run another --out", dir);
            sim_scenario_clear(&sc);
            return 1;
        }
    }
    json_t *earlier = load_json(out, compare ? "run.json" : "compare.json", 1); /* only when it is ours */
    int ours = json_object_get(earlier, compare ? "wall_s" : "hybrid") != NULL;
    json_decref(earlier);
    for (const char *const *f = compare ? sim_output_files : multi; ours && *f != NULL; f++) {
        char stale[4096];
        snprintf(stale, sizeof(stale), "%s/%s", out, *f);
        if (unlink(stale) != 0 && errno != ENOENT)
            pc_cli_error("note: cannot remove %s, left from an earlier run: %s", stale, strerror(errno));
    }
    if (compare) { /* an earlier --compare's table: written again only if every mode succeeds (found by review) */
        json_t *prev = load_json(out, "compare.json", 1);
        int mine = json_object_get(prev, "hybrid") != NULL;
        json_decref(prev);
        char stale[4096];
        snprintf(stale, sizeof(stale), "%s/compare.json", out);
        if (mine && unlink(stale) != 0 && errno != ENOENT) {
            pc_cli_error("cannot remove %s, left from an earlier run: %s", stale, strerror(errno));
            sim_scenario_clear(&sc);
            return 1;
        }
    }
    int status = 0;
    if (!compare) {
        json_t *s = NULL;
        status = run_one(&sc, mode, seed, threads, out, quiet, &s);
        if (status == 0 && s != NULL) {
            sim_print_header();
            sim_print_row(sim_mode_name(mode), s);
        }
        json_decref(s);
    } else {
        json_t *all = json_object(), *sums[3] = {NULL, NULL, NULL};
        for (int i = 0; i < 3 && status == 0; i++) {
            char dir[4096];
            snprintf(dir, sizeof(dir), "%s/%s", out, sim_mode_name(modes[i]));
            status = run_one(&sc, modes[i], seed, threads, dir, quiet, &sums[i]);
            if (sums[i] != NULL)
                json_object_set(all, sim_mode_name(modes[i]), sums[i]);
        }
        if (status == 0) {
            sim_print_header();
            for (int i = 0; i < 3; i++)
                sim_print_row(sim_mode_name(modes[i]), sums[i]);
            char why[4200];
            if (sim_write_json(out, "compare.json", all, JSON_INDENT(2) | JSON_REAL_PRECISION(12), why, sizeof(why)) != 0) {
                pc_cli_error("%s", why);
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
        pc_cli_usage("missing command: run, emulate or compare");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(argv[1], "emulate") == 0)
        return sim_emulate_main(argc - 1, argv + 1, argv[0]);
    if (strcmp(argv[1], "compare") == 0)
        return cmd_compare(argc - 1, argv + 1);
    pc_cli_usage("unknown command '%s' (run, emulate, compare)", argv[1]);
}
