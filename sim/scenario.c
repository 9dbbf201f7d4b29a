/* Scenario parsing; see scenario.h and docs/sim.md. */
#include "scenario.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_fs.h"
#include "pc_json.h"
#include "pc_num.h"

typedef struct perr {
    char *buf;
    size_t len;
} perr;

__attribute__((format(printf, 2, 3))) static int fail(perr *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->buf, e->len, fmt, ap);
    va_end(ap);
    return PC_EPARSE;
}

/* Every key of |o| must be in the NULL-terminated |allowed| list. */
static int only_keys(const json_t *o, const char *path, const char *const *allowed, perr *e)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        int ok = 0;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(k, allowed[i]) == 0;
        if (!ok)
            return fail(e, "%s.%s: unknown field", path, k);
    }
    return 0;
}

static int num(const json_t *o, const char *path, const char *key, double lo, double hi, double *out, perr *e)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return 0; /* keeps the default */
    if (!json_is_number(v))
        return fail(e, "%s.%s: must be a number", path, key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return fail(e, "%s.%s: must be from %g to %g", path, key, lo, hi);
    *out = x;
    return 0;
}

static int u32(const json_t *o, const char *path, const char *key, uint32_t lo, uint32_t hi, uint32_t *out, perr *e)
{
    double x = *out;
    int r = num(o, path, key, lo, hi, &x, e);
    if (r == 0 && x != floor(x))
        return fail(e, "%s.%s: must be an integer", path, key);
    *out = (uint32_t)x;
    return r;
}

/* A string field: absent keeps |*out| (NULL), anything but a string is an error. */
static int str(const json_t *o, const char *path, const char *key, const char **out, perr *e)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return fail(e, "%s.%s: must be a string", path, key);
    *out = json_string_value(v);
    return 0;
}

static int object(const json_t *o, const char *path, const char *key, json_t **out, perr *e)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        return fail(e, "%s.%s: must be an object", path, key);
    *out = v;
    return 0;
}

/* A distribution: a number (fixed) or {"dist": fixed|uniform|lognormal|table, ...}. */
static int dist(const json_t *o, const char *path, const char *key, double lo, double hi, sim_dist *d, perr *e)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return 0;
    char p[96];
    snprintf(p, sizeof(p), "%s.%s", path, key);
    if (json_is_number(v)) {
        double x = json_number_value(v);
        if (!(x >= lo && x <= hi))
            return fail(e, "%s: must be from %g to %g", p, lo, hi);
        *d = (sim_dist){.kind = SIM_DIST_FIXED, .a = x, .min = lo, .max = hi};
        return 0;
    }
    if (!json_is_object(v))
        return fail(e, "%s: must be a number or a distribution object", p);
    const char *kind = NULL;
    if (str(v, p, "dist", &kind, e) != 0 || kind == NULL)
        return fail(e, "%s.dist: must be one of fixed, uniform, lognormal, table", p);
    *d = (sim_dist){.min = lo, .max = hi};
    int r;
    if (strcmp(kind, "fixed") == 0) {
        static const char *const k[] = {"dist", "value", NULL};
        d->kind = SIM_DIST_FIXED;
        if ((r = only_keys(v, p, k, e)) || (r = num(v, p, "value", lo, hi, &d->a, e)))
            return r;
        if (json_object_get(v, "value") == NULL)
            return fail(e, "%s.value: missing", p);
    } else if (strcmp(kind, "uniform") == 0) {
        static const char *const k[] = {"dist", "min", "max", NULL};
        d->kind = SIM_DIST_UNIFORM;
        d->a = lo, d->b = lo;
        if ((r = only_keys(v, p, k, e)) || (r = num(v, p, "min", lo, hi, &d->a, e)) ||
            (r = num(v, p, "max", lo, hi, &d->b, e)))
            return r;
        if (json_object_get(v, "min") == NULL || json_object_get(v, "max") == NULL)
            return fail(e, "%s.%s: missing", p, json_object_get(v, "min") == NULL ? "min" : "max");
        if (d->b < d->a)
            return fail(e, "%s: max must be at least min", p);
    } else if (strcmp(kind, "lognormal") == 0) {
        static const char *const k[] = {"dist", "median", "sigma", "min", "max", NULL};
        d->kind = SIM_DIST_LOGNORMAL;
        d->a = 1, d->b = 0.5;
        if ((r = only_keys(v, p, k, e)) || (r = num(v, p, "median", lo > 0 ? lo : 1e-9, hi, &d->a, e)) ||
            (r = num(v, p, "sigma", 0, 5, &d->b, e)) || (r = num(v, p, "min", lo, hi, &d->min, e)) ||
            (r = num(v, p, "max", lo, hi, &d->max, e)))
            return r;
        if (json_object_get(v, "median") == NULL) /* a default would be 1 of whatever unit the field has */
            return fail(e, "%s.median: missing", p);
        if (d->a <= 0)
            return fail(e, "%s.median: must be positive", p);
        if (json_object_get(v, "min") != NULL && json_object_get(v, "max") != NULL && d->max < d->min)
            return fail(e, "%s: max must be at least min", p);
    } else if (strcmp(kind, "table") == 0) {
        static const char *const k[] = {"dist", "values", "weights", NULL};
        d->kind = SIM_DIST_TABLE;
        if ((r = only_keys(v, p, k, e)))
            return r;
        json_t *vals = json_object_get(v, "values"), *w = json_object_get(v, "weights");
        size_t n = json_array_size(vals);
        if (!json_is_array(vals) || n == 0 || n > SIM_TABLE_MAX)
            return fail(e, "%s.values: must be an array of 1 to %d numbers", p, SIM_TABLE_MAX);
        if (w != NULL && (!json_is_array(w) || json_array_size(w) != n))
            return fail(e, "%s.weights: must be an array as long as values", p);
        double total = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_array_get(vals, i), *y = w != NULL ? json_array_get(w, i) : NULL;
            if (!json_is_number(x) || json_number_value(x) < lo || json_number_value(x) > hi)
                return fail(e, "%s.values[%zu]: must be a number from %g to %g", p, i, lo, hi);
            if (y != NULL && (!json_is_number(y) || json_number_value(y) < 0))
                return fail(e, "%s.weights[%zu]: must be a non-negative number", p, i);
            d->values[i] = json_number_value(x);
            total += y != NULL ? json_number_value(y) : 1;
            d->cum[i] = total;
        }
        if (!(total > 0) || !isfinite(total))
            return fail(e, "%s.weights: must not all be 0, and must add up to a finite number", p);
        for (size_t i = 0; i < n; i++)
            d->cum[i] /= total;
        d->n = (uint32_t)n;
    } else {
        return fail(e, "%s.dist: must be one of fixed, uniform, lognormal, table", p);
    }
    return 0;
}

double sim_dist_draw(const sim_dist *d, pc_rng *r)
{
    double x;
    switch (d->kind) {
    case SIM_DIST_UNIFORM: x = d->a + (d->b - d->a) * pc_rng_double(r); break;
    case SIM_DIST_LOGNORMAL: {
        /* Box-Muller from two uniforms in (0, 1] */
        double u1 = 1.0 - pc_rng_double(r), u2 = pc_rng_double(r);
        double z = sqrt(-2.0 * log(u1)) * cos(2 * M_PI * u2);
        x = d->a * exp(d->b * z);
        break;
    }
    case SIM_DIST_TABLE: {
        double u = pc_rng_double(r);
        uint32_t i = 0;
        while (i + 1 < d->n && u >= d->cum[i])
            i++;
        x = d->values[i];
        break;
    }
    default: x = d->a; break;
    }
    if (x < d->min)
        x = d->min;
    if (x > d->max)
        x = d->max;
    return x;
}

double sim_dist_mean(const sim_dist *d)
{
    switch (d->kind) {
    case SIM_DIST_UNIFORM: return (d->a + d->b) / 2;
    case SIM_DIST_LOGNORMAL: return d->a * exp(d->b * d->b / 2);
    case SIM_DIST_TABLE: {
        double m = 0, prev = 0;
        for (uint32_t i = 0; i < d->n; i++) {
            m += d->values[i] * (d->cum[i] - prev);
            prev = d->cum[i];
        }
        return m;
    }
    default: return d->a;
    }
}

const char *sim_mode_name(sim_mode m)
{
    return m == SIM_MODE_CDN_ONLY ? "cdn-only" : m == SIM_MODE_P2P_ONLY ? "p2p-only" : "hybrid";
}

static void defaults(sim_scenario *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "unnamed");
    s->seed = 1;
    s->duration_s = 600;
    s->n_rungs = 3;
    s->ladder_kbps[0] = 730, s->ladder_kbps[1] = 2000, s->ladder_kbps[2] = 3000;
    s->segment_s = 4;
    s->videos = 1;
    s->video_duration_s = (sim_dist){.kind = SIM_DIST_FIXED, .a = 600, .max = INFINITY};
    s->arrivals = SIM_ARR_POISSON;
    s->rate_per_s = 1;
    s->up_kbps = (sim_dist){.kind = SIM_DIST_FIXED, .a = 5000, .max = INFINITY};
    s->down_kbps = (sim_dist){.kind = SIM_DIST_FIXED, .a = 50000, .max = INFINITY};
    s->watch_fraction = (sim_dist){.kind = SIM_DIST_FIXED, .a = 1, .max = 1};
    s->seed_after_s = (sim_dist){.kind = SIM_DIST_FIXED, .a = 0, .max = INFINITY};
    s->n_regions = 1;
    snprintf(s->region_name[0], sizeof(s->region_name[0]), "default");
    s->region_weight[0] = 1;
    for (int i = 0; i < SIM_REGIONS_MAX; i++)
        for (int j = 0; j < SIM_REGIONS_MAX; j++)
            s->latency_ms[i][j] = 40;
    s->cdn_latency_ms = 30;
    s->announce_interval_s = 30;
    s->numwant = 20;
    s->max_neighbours = 40;
    pc_engine_config_default(&s->engine);
    s->seeder_up_kbps = 20000;
    s->cost_per_gb = 0.02;
    s->timeseries_s = 10;
}

/* The largest value |d| can take. */
static double dist_upper(const sim_dist *d)
{
    switch (d->kind) {
    case SIM_DIST_FIXED: return d->a;
    case SIM_DIST_UNIFORM: return d->b;
    case SIM_DIST_LOGNORMAL: return d->max;
    default: {
        double m = 0;
        for (uint32_t i = 0; i < d->n; i++)
            m = d->values[i] > m ? d->values[i] : m;
        return m;
    }
    }
}

/* Each field has its own range, but their products size the run: bounded here, before anything is
 * allocated, so that a scenario too large for any machine is an error and not an out-of-memory kill. */
static int totals(const sim_scenario *s, perr *e)
{
    double viewers = s->arrivals == SIM_ARR_POISSON ? s->rate_per_s * s->duration_s
                     : s->arrivals == SIM_ARR_FLASH ? (double)s->flash_count
                                                    : (double)s->nlist;
    if (s->max_viewers > 0 && viewers > s->max_viewers)
        viewers = s->max_viewers;
    viewers += (double)s->seeders * s->videos;
    if (viewers > SIM_VIEWERS_MAX)
        return fail(e, "scenario: about %.0f viewers and seeders in all (arrivals plus seeders x videos); at most %d",
                    viewers, SIM_VIEWERS_MAX);
    /* always-on seeders announce every interval for the whole run: a month of them at a 1 s interval
     * would be a run of years, not an answer */
    double seeder_announces = (double)s->seeders * s->videos * s->duration_s / s->announce_interval_s;
    if (seeder_announces > SIM_SEEDER_ANNOUNCES_MAX)
        return fail(e, "scenario: the seeders would announce about %.3g times (seeders x videos x duration_s / "
                       "tracker.interval_s); at most %.0e",
                    seeder_announces, SIM_SEEDER_ANNOUNCES_MAX);
    /* and so do viewers while they watch and seed after: 10 000 viewers seeding a day at 1 s were 36 M
     * events from a 130-byte scenario (found by review). Their longest possible stay: the longest video
     * (stalls aside) and the longest seeding time, within the run */
    double stay = dist_upper(&s->video_duration_s) + dist_upper(&s->seed_after_s);
    if (!(stay < s->duration_s))
        stay = s->duration_s;
    double announces = seeder_announces + (viewers - (double)s->seeders * s->videos) * stay / s->announce_interval_s;
    if (announces > SIM_SEEDER_ANNOUNCES_MAX)
        return fail(e, "scenario: viewers and seeders would announce up to about %.3g times (arrivals x the longest "
                       "stay, video and seed_after_s, within duration_s, plus seeders x videos x duration_s, over "
                       "tracker.interval_s); at most %.0e",
                    announces, SIM_SEEDER_ANNOUNCES_MAX);
    double copies = (double)s->videos * ceil(dist_upper(&s->video_duration_s) / s->segment_s) * s->n_rungs;
    if (copies > SIM_COPIES_MAX)
        return fail(e, "scenario: the catalog has up to %.0f segment copies (videos x segments x rungs); at most %d",
                    copies, SIM_COPIES_MAX);
    return 0;
}

static int parse_root(const json_t *root, sim_scenario *s, perr *e)
{
    static const char *const top[] = {"name", "seed", "duration_s", "mode", "media", "catalog", "arrivals", "viewers",
                                      "seeders", "network", "tracker", "engine", "report", NULL};
    int r;
    if ((r = only_keys(root, "scenario", top, e)))
        return r;
    const char *name = NULL, *mode = NULL;
    if ((r = str(root, "scenario", "name", &name, e)) || (r = str(root, "scenario", "mode", &mode, e)))
        return r;
    if (name != NULL && strlen(name) >= sizeof(s->name))
        return fail(e, "scenario.name: at most %zu bytes", sizeof(s->name) - 1);
    if (name != NULL)
        snprintf(s->name, sizeof(s->name), "%s", name);
    double seed = (double)s->seed;
    if ((r = num(root, "scenario", "seed", 0, (double)SIM_SEED_MAX, &seed, e)) ||
        (r = num(root, "scenario", "duration_s", 1, 30 * 86400, &s->duration_s, e)))
        return r;
    if (seed != floor(seed))
        return fail(e, "scenario.seed: must be an integer");
    s->seed = (uint64_t)seed;
    if (mode != NULL) {
        if (strcmp(mode, "hybrid") == 0)
            s->mode = SIM_MODE_HYBRID;
        else if (strcmp(mode, "cdn-only") == 0)
            s->mode = SIM_MODE_CDN_ONLY;
        else if (strcmp(mode, "p2p-only") == 0)
            s->mode = SIM_MODE_P2P_ONLY;
        else
            return fail(e, "scenario.mode: must be hybrid, cdn-only or p2p-only");
    }
    json_t *o;
    /* media */
    if ((r = object(root, "scenario", "media", &o, e)))
        return r;
    if (o != NULL) {
        static const char *const k[] = {"ladder_kbps", "segment_s", NULL};
        if ((r = only_keys(o, "scenario.media", k, e)) || (r = num(o, "scenario.media", "segment_s", 0.5, 60, &s->segment_s, e)))
            return r;
        json_t *l = json_object_get(o, "ladder_kbps");
        if (l != NULL) {
            size_t n = json_array_size(l);
            if (!json_is_array(l) || n == 0 || n > PC_RUNGS_MAX)
                return fail(e, "scenario.media.ladder_kbps: must be 1 to %d bitrates, ascending", PC_RUNGS_MAX);
            for (size_t i = 0; i < n; i++) {
                json_t *x = json_array_get(l, i);
                double v = json_number_value(x); /* 730.0 is 730, as in every other field */
                if (!json_is_number(x) || !(v >= 50 && v <= 100000) || v != floor(v) ||
                    (i > 0 && v <= s->ladder_kbps[i - 1]))
                    return fail(e, "scenario.media.ladder_kbps[%zu]: must be an integer from 50 to 100000, ascending", i);
                s->ladder_kbps[i] = (uint32_t)v;
            }
            s->n_rungs = (uint32_t)n;
        }
    }
    if ((r = object(root, "scenario", "catalog", &o, e)))
        return r;
    if (o != NULL) {
        static const char *const k[] = {"videos", "duration_s", "zipf", NULL};
        if ((r = only_keys(o, "scenario.catalog", k, e)) || (r = u32(o, "scenario.catalog", "videos", 1, 100000, &s->videos, e)) ||
            (r = dist(o, "scenario.catalog", "duration_s", 4, 6 * 3600, &s->video_duration_s, e)) ||
            (r = num(o, "scenario.catalog", "zipf", 0, 5, &s->zipf, e)))
            return r;
    }
    if ((r = object(root, "scenario", "arrivals", &o, e)))
        return r;
    if (o != NULL) {
        static const char *const k[] = {"kind", "rate_per_s", "count", "at_s", "over_s", "times_s", "max_viewers", NULL};
        if ((r = only_keys(o, "scenario.arrivals", k, e)))
            return r;
        const char *kind = NULL;
        if ((r = str(o, "scenario.arrivals", "kind", &kind, e)))
            return r;
        /* a key of another kind of arrivals would be ignored: refused, so a mistyped kind shows */
        static const char *const poisson[] = {"kind", "rate_per_s", "max_viewers", NULL};
        static const char *const flash[] = {"kind", "count", "at_s", "over_s", "max_viewers", NULL};
        static const char *const list[] = {"kind", "times_s", "max_viewers", NULL};
        const char *const *own = kind == NULL || strcmp(kind, "poisson") == 0 ? poisson
                                 : strcmp(kind, "flash") == 0                  ? flash
                                 : strcmp(kind, "list") == 0                   ? list
                                                                               : k;
        const char *key;
        json_t *val;
        json_object_foreach(o, key, val) {
            int found = 0;
            for (size_t i = 0; own[i] != NULL && !found; i++)
                found = strcmp(own[i], key) == 0;
            if (!found)
                return fail(e, "scenario.arrivals.%s: not a setting of %s arrivals", key, kind ? kind : "poisson");
        }
        if (kind == NULL || strcmp(kind, "poisson") == 0) {
            s->arrivals = SIM_ARR_POISSON;
            if ((r = num(o, "scenario.arrivals", "rate_per_s", 0.0001, 100000, &s->rate_per_s, e)))
                return r;
        } else if (strcmp(kind, "flash") == 0) {
            s->arrivals = SIM_ARR_FLASH;
            s->flash_count = 100;
            if ((r = u32(o, "scenario.arrivals", "count", 1, SIM_LIST_MAX, &s->flash_count, e)) ||
                (r = num(o, "scenario.arrivals", "at_s", 0, 30 * 86400, &s->flash_at_s, e)) ||
                (r = num(o, "scenario.arrivals", "over_s", 0, 86400, &s->flash_over_s, e)))
                return r;
        } else if (strcmp(kind, "list") == 0) {
            s->arrivals = SIM_ARR_LIST;
            json_t *t = json_object_get(o, "times_s");
            size_t n = json_array_size(t);
            if (!json_is_array(t) || n == 0 || n > SIM_LIST_MAX)
                return fail(e, "scenario.arrivals.times_s: must be an array of 1 to %d times", SIM_LIST_MAX);
            s->list_s = malloc(n * sizeof(double));
            if (s->list_s == NULL)
                return PC_ENOMEM;
            for (size_t i = 0; i < n; i++) {
                json_t *x = json_array_get(t, i);
                if (!json_is_number(x) || json_number_value(x) < 0 || json_number_value(x) > 30 * 86400 ||
                    (i > 0 && json_number_value(x) < s->list_s[i - 1]))
                    return fail(e, "scenario.arrivals.times_s[%zu]: must be ascending, from 0 to 2592000 (30 days)", i);
                s->list_s[i] = json_number_value(x);
            }
            s->nlist = (uint32_t)n;
        } else {
            return fail(e, "scenario.arrivals.kind: must be poisson, flash or list");
        }
        if ((r = u32(o, "scenario.arrivals", "max_viewers", 0, 10000000, &s->max_viewers, e)))
            return r;
    }
    if ((r = object(root, "scenario", "viewers", &o, e)))
        return r;
    if (o != NULL) {
        static const char *const k[] = {"up_kbps", "down_kbps", "watch_fraction", "seek_probability", "seed_after_s",
                                        "abrupt_leave_probability", "regions", NULL};
        const char *p = "scenario.viewers";
        if ((r = only_keys(o, p, k, e)) || (r = dist(o, p, "up_kbps", 0, 10000000, &s->up_kbps, e)) ||
            (r = dist(o, p, "down_kbps", 100, 10000000, &s->down_kbps, e)) ||
            (r = dist(o, p, "watch_fraction", 0, 1, &s->watch_fraction, e)) ||
            (r = num(o, p, "seek_probability", 0, 1, &s->seek_probability, e)) ||
            (r = dist(o, p, "seed_after_s", 0, 86400, &s->seed_after_s, e)) ||
            (r = num(o, p, "abrupt_leave_probability", 0, 1, &s->abrupt_leave_probability, e)))
            return r;
        json_t *reg = json_object_get(o, "regions");
        if (reg != NULL) {
            size_t n = json_object_size(reg);
            if (!json_is_object(reg) || n == 0 || n > SIM_REGIONS_MAX)
                return fail(e, "%s.regions: must be an object of 1 to %d region: weight pairs", p, SIM_REGIONS_MAX);
            const char *rname;
            json_t *w;
            uint32_t i = 0;
            json_object_foreach(reg, rname, w) {
                if (!json_is_number(w) || json_number_value(w) < 0 || strlen(rname) == 0 || strlen(rname) >= 16 ||
                    strchr(rname, '-') != NULL)
                    return fail(e, "%s.regions.%.32s: a name of 1 to 15 characters without '-' (latency pairs are "
                                   "\"a-b\") with a non-negative weight", p, rname);
                snprintf(s->region_name[i], sizeof(s->region_name[i]), "%s", rname);
                s->region_weight[i++] = json_number_value(w);
            }
            s->n_regions = i;
            double total = 0;
            for (uint32_t q = 0; q < i; q++)
                total += s->region_weight[q];
            if (!(total > 0) || !isfinite(total))
                return fail(e, "%s.regions: the weights must not all be 0, and must add up to a finite number", p);
        }
    }
    if ((r = object(root, "scenario", "seeders", &o, e)))
        return r;
    if (o != NULL) {
        static const char *const k[] = {"per_video", "up_kbps", NULL};
        const char *p = "scenario.seeders";
        if ((r = only_keys(o, p, k, e)) || (r = u32(o, p, "per_video", 0, 1000, &s->seeders, e)) ||
            (r = num(o, p, "up_kbps", 1, 1e8, &s->seeder_up_kbps, e)))
            return r;
    }
    if ((r = object(root, "scenario", "network", &o, e)))
        return r;
    if (o != NULL) {
        static const char *const k[] = {"latency_ms", "cdn_latency_ms", "cdn_capacity_mbps", NULL};
        const char *p = "scenario.network";
        if ((r = only_keys(o, p, k, e)) || (r = num(o, p, "cdn_latency_ms", 0, 10000, &s->cdn_latency_ms, e)) ||
            (r = num(o, p, "cdn_capacity_mbps", 0, 1e9, &s->cdn_capacity_mbps, e)))
            return r;
        json_t *lat = json_object_get(o, "latency_ms");
        if (lat != NULL && json_is_number(lat)) {
            double v = json_number_value(lat);
            if (v < 0 || v > 10000)
                return fail(e, "%s.latency_ms: must be from 0 to 10000", p);
            for (int i = 0; i < SIM_REGIONS_MAX; i++)
                for (int j = 0; j < SIM_REGIONS_MAX; j++)
                    s->latency_ms[i][j] = v;
        } else if (lat != NULL) {
            /* {"default": ms, "A-B": ms, ...} between region names (symmetric) */
            if (!json_is_object(lat))
                return fail(e, "%s.latency_ms: must be a number or an object of \"REGION-REGION\": ms", p);
            const char *key;
            json_t *v;
            json_t *def = json_object_get(lat, "default");
            if (def != NULL) {
                if (!json_is_number(def) || json_number_value(def) < 0 || json_number_value(def) > 10000)
                    return fail(e, "%s.latency_ms.default: must be from 0 to 10000", p);
                for (int i = 0; i < SIM_REGIONS_MAX; i++)
                    for (int j = 0; j < SIM_REGIONS_MAX; j++)
                        s->latency_ms[i][j] = json_number_value(def);
            }
            uint8_t set[SIM_REGIONS_MAX][SIM_REGIONS_MAX] = {{0}};
            json_object_foreach(lat, key, v) {
                if (strcmp(key, "default") == 0)
                    continue;
                const char *dash = strchr(key, '-');
                int a = -1, b = -1;
                for (uint32_t i = 0; dash != NULL && i < s->n_regions; i++) {
                    if (strlen(s->region_name[i]) == (size_t)(dash - key) &&
                        strncmp(key, s->region_name[i], (size_t)(dash - key)) == 0)
                        a = (int)i;
                    if (strcmp(dash + 1, s->region_name[i]) == 0)
                        b = (int)i;
                }
                if (a < 0 || b < 0 || !json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 10000)
                    return fail(e, "%s.latency_ms.%s: must name two regions of viewers.regions, 0 to 10000 ms", p, key);
                if (set[a][b])
                    return fail(e, "%s.latency_ms.%s: that pair is given twice (a-b and b-a are one pair)", p, key);
                set[a][b] = set[b][a] = 1;
                s->latency_ms[a][b] = s->latency_ms[b][a] = json_number_value(v);
            }
        }
    }
    if ((r = object(root, "scenario", "tracker", &o, e)))
        return r;
    if (o != NULL) {
        static const char *const k[] = {"interval_s", "numwant", "max_neighbours", NULL};
        const char *p = "scenario.tracker";
        if ((r = only_keys(o, p, k, e)) || (r = num(o, p, "interval_s", 1, 3600, &s->announce_interval_s, e)) ||
            (r = u32(o, p, "numwant", 0, 50, &s->numwant, e)) ||
            (r = u32(o, p, "max_neighbours", 1, PC_ENGINE_PEERS_MAX, &s->max_neighbours, e)))
            return r;
    }
    if ((r = object(root, "scenario", "engine", &o, e)))
        return r;
    if (o != NULL) {
        static const char *const k[] = {"startup_cdn_s", "urgent_s", "cdn_urgent_s", "prefetch_s", "safety_s",
                                        "check_ms", "low_water", "high_water", "prefetch_inflight", "peer_inflight",
                                        "start_kbps", "prefer_held_rung", "volunteer_s", NULL};
        const char *p = "scenario.engine";
        double v[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
        pc_engine_config *c = &s->engine;
        /* a start-up window or a prefetch window of 0 fetches nothing, ever: no viewer started, and the summary
         * read like a clean run (found by review) */
        if ((r = only_keys(o, p, k, e)) || (r = num(o, p, "startup_cdn_s", 0.001, 600, &v[0], e)) ||
            (r = num(o, p, "urgent_s", 0, 600, &v[1], e)) || (r = num(o, p, "cdn_urgent_s", 0, 600, &v[2], e)) ||
            (r = num(o, p, "prefetch_s", 0.001, 3600, &v[3], e)) || (r = num(o, p, "safety_s", 0, 60, &v[4], e)) ||
            (r = num(o, p, "check_ms", 10, 10000, &v[5], e)) || (r = num(o, p, "start_kbps", 0, 1e7, &v[6], e)) ||
            (r = num(o, p, "volunteer_s", 0, 3600, &v[7], e)) ||
            (r = num(o, p, "low_water", 0, 10, &c->low_water, e)) ||
            (r = num(o, p, "high_water", 0, 10, &c->high_water, e)) ||
            (r = u32(o, p, "prefetch_inflight", 1, 64, &c->prefetch_inflight, e)) ||
            (r = u32(o, p, "peer_inflight", 1, 16, &c->peer_inflight, e)))
            return r;
        json_t *ph = json_object_get(o, "prefer_held_rung");
        if (ph != NULL && !json_is_boolean(ph))
            return fail(e, "%s.prefer_held_rung: must be true or false", p);
        if (ph != NULL)
            c->abr.prefer_held = json_is_true(ph);
        uint64_t *dst[6] = {&c->startup_cdn_us, &c->urgent_us, &c->cdn_urgent_us, &c->prefetch_us, &c->safety_us,
                            &c->check_us};
        for (int i = 0; i < 6; i++)
            if (v[i] >= 0)
                *dst[i] = (uint64_t)(v[i] * (i == 5 ? 1e3 : 1e6));
        if (v[7] >= 0)
            c->volunteer_us = (uint64_t)(v[7] * 1e6);
        if (v[6] >= 0)
            c->start_bps = (uint64_t)(v[6] * 1000);
        if (c->high_water < c->low_water)
            return fail(e, "%s.high_water: must be at least low_water", p);
        s->engine_set = json_object_size(o) > 0;
    }
    if ((r = object(root, "scenario", "report", &o, e)))
        return r;
    if (o != NULL) {
        static const char *const k[] = {"cost_per_gb", "timeseries_s", NULL};
        const char *p = "scenario.report";
        if ((r = only_keys(o, p, k, e)) || (r = num(o, p, "cost_per_gb", 0, 1000, &s->cost_per_gb, e)) ||
            (r = num(o, p, "timeseries_s", 1, 86400, &s->timeseries_s, e)))
            return r;
    }
    return totals(s, e);
}

int sim_scenario_parse(const char *buf, size_t len, sim_scenario *out, char *err, size_t errlen)
{
    perr e = {err, errlen};
    defaults(out);
    json_t *root = NULL;
    char jerr[200];
    int r = pc_json_parse_object(buf, len, SIM_SCENARIO_MAX_BYTES, &root, jerr, sizeof(jerr));
    if (r != 0) {
        snprintf(err, errlen, "%s", r == PC_ETOOBIG ? "the scenario is larger than 4 MiB" : jerr);
        return r;
    }
    r = parse_root(root, out, &e);
    json_decref(root);
    if (r != 0)
        sim_scenario_clear(out);
    return r;
}

int sim_scenario_load(const char *path, sim_scenario *out, char **text, size_t *len, char *err, size_t errlen)
{
    char *buf = NULL;
    if (text != NULL)
        *text = NULL;
    size_t n = 0;
    int r = pc_read_file(path, SIM_SCENARIO_MAX_BYTES, &buf, &n); /* a FIFO or a directory: refused at once */
    if (r == PC_ETOOBIG)
        snprintf(err, errlen, "%s: larger than 4 MiB", path);
    else if (r == PC_EINVAL)
        snprintf(err, errlen, "%s: not a regular file", path);
    else if (r != 0)
        snprintf(err, errlen, "%s: %s", path, pc_strerror(r));
    else {
        char e2[256];
        r = sim_scenario_parse(buf, n, out, e2, sizeof(e2));
        if (r != 0)
            snprintf(err, errlen, "%s: %s", path, e2);
        else if (text != NULL) {
            *text = buf;
            *len = n;
            buf = NULL;
        }
    }
    free(buf);
    return r;
}

void sim_scenario_clear(sim_scenario *s)
{
    free(s->list_s);
    s->list_s = NULL;
    s->nlist = 0;
}

int sim_seed_parse(const char *s, uint64_t *out)
{
    int64_t v;
    if (pc_parse_int_str(s, 0, (int64_t)SIM_SEED_MAX, 0, &v) != 0)
        return PC_EINVAL;
    *out = (uint64_t)v;
    return 0;
}
