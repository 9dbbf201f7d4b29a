/* Simulator outputs; see report.h. */
#include "report.h"

#include "pc_fs.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank quantile of sorted |v|. */
static double quantile(const double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)ceil(q * (double)n);
    return v[k == 0 ? 0 : k - 1];
}

/* Rounds to 6 significant decimals so the document reads well (and stays deterministic). */
static json_t *real(double x)
{
    if (!isfinite(x))
        x = 0;
    return json_real(round(x * 1e6) / 1e6);
}

/* Over whole intervals of |interval_s|: a last one cut short by the run's end is counted as a whole one
 * (its bytes over the full interval). Taken at its own length, 7.5 MB in the last 0.05 s of a run read
 * as a 498 Mbit/s peak (found by review). */
static double cdn_peak_mbps(const sim_result *r, double interval_s)
{
    double peak = 0;
    for (uint32_t i = 1; i < r->nts; i++) {
        double dt = r->ts[i].t_s - r->ts[i - 1].t_s;
        if (dt <= 0)
            continue;
        if (dt < interval_s)
            dt = interval_s;
        double mbps = (double)(r->ts[i].bytes_cdn - r->ts[i - 1].bytes_cdn) * 8 / dt / 1e6;
        peak = mbps > peak ? mbps : peak;
    }
    return peak;
}

json_t *sim_summary(const sim_scenario *sc, uint64_t seed, const sim_result *r)
{
    double *st = malloc((r->viewers + 1) * sizeof(double)), *sk = malloc((r->viewers + 1) * sizeof(double));
    if (st == NULL || sk == NULL) {
        free(st), free(sk);
        return NULL;
    }
    size_t ns = 0, nk = 0;
    uint64_t seeks = 0;
    double stall_ms = 0, played_ms = 0, bitrate_w = 0, bitrate = 0;
    uint64_t stalls = 0, switches = 0, stalled_viewers = 0;
    uint32_t viewers = 0;
    for (uint32_t i = 0; i < r->viewers; i++) {
        const sim_viewer_result *v = &r->v[i];
        if (v->seeder)
            continue;
        viewers++;
        if (v->started)
            st[ns++] = v->startup_ms;
        if (v->seeks > 0)
            sk[nk++] = v->seek_wait_ms;
        seeks += v->seeks;
        stall_ms += v->stall_ms;
        played_ms += v->played_ms;
        stalls += v->stalls;
        switches += v->switches;
        stalled_viewers += v->stalls > 0;
        bitrate += v->bitrate_kbps * v->played_ms;
        bitrate_w += v->played_ms;
    }
    qsort(st, ns, sizeof(double), dbl_cmp);
    qsort(sk, nk, sizeof(double), dbl_cmp);
    double total = (double)(r->bytes_cdn + r->bytes_p2p);
    double hours = (played_ms + stall_ms) / 3.6e6;
    json_t *s = json_object();
    json_object_set_new(s, "scenario", json_string(sc->name));
    json_object_set_new(s, "mode", json_string(sim_mode_name(r->mode)));
    json_object_set_new(s, "seed", json_integer((json_int_t)seed));
    json_object_set_new(s, "simulated_s", real(sc->duration_s));
    json_object_set_new(s, "viewers", json_integer(viewers));
    json_object_set_new(s, "viewers_started", json_integer((json_int_t)ns));
    json_object_set_new(s, "offload", real(total > 0 ? (double)r->bytes_p2p / total : 0));
    json_object_set_new(s, "offload_bound", real(r->offload_bound));
    json_object_set_new(s, "bytes_cdn", json_integer((json_int_t)r->bytes_cdn));
    json_object_set_new(s, "bytes_p2p", json_integer((json_int_t)r->bytes_p2p));
    json_object_set_new(s, "bytes_up", json_integer((json_int_t)r->bytes_up));
    json_object_set_new(s, "cdn_peak_mbps", real(cdn_peak_mbps(r, sc->timeseries_s)));
    json_object_set_new(s, "cost_per_gb", real(sc->cost_per_gb));
    json_object_set_new(s, "cdn_cost", real((double)r->bytes_cdn / 1e9 * sc->cost_per_gb));
    json_object_set_new(s, "cdn_only_cost", real(total / 1e9 * sc->cost_per_gb));
    json_object_set_new(s, "savings", real((double)r->bytes_p2p / 1e9 * sc->cost_per_gb));
    json_t *su = json_object();
    json_object_set_new(su, "p50", real(quantile(st, ns, 0.50)));
    json_object_set_new(su, "p95", real(quantile(st, ns, 0.95)));
    json_object_set_new(su, "p99", real(quantile(st, ns, 0.99)));
    json_object_set_new(s, "startup_ms", su);
    json_t *sw = json_object();
    json_object_set_new(sw, "p50", real(quantile(sk, nk, 0.50)));
    json_object_set_new(sw, "p95", real(quantile(sk, nk, 0.95)));
    json_object_set_new(s, "seeks", json_integer((json_int_t)seeks));
    json_object_set_new(s, "seek_wait_ms", sw);
    json_object_set_new(s, "rebuffer_ratio", real(played_ms + stall_ms > 0 ? stall_ms / (played_ms + stall_ms) : 0));
    json_object_set_new(s, "stalls", json_integer((json_int_t)stalls));
    json_object_set_new(s, "viewers_stalled", json_integer((json_int_t)stalled_viewers));
    json_object_set_new(s, "stalls_per_viewer_hour", real(hours > 0 ? (double)stalls / hours : 0));
    json_object_set_new(s, "viewer_hours", real(hours));
    json_object_set_new(s, "mean_bitrate_kbps", real(bitrate_w > 0 ? bitrate / bitrate_w : 0));
    json_object_set_new(s, "rung_switches", json_integer((json_int_t)switches));
    json_t *b = json_object();
    json_object_set_new(b, "demand_bytes", real(r->demand_bytes));
    json_object_set_new(b, "cdn_copies_bytes", real(r->cdn_needed_bytes));
    json_object_set_new(b, "usable_upload_bytes", real(r->usable_upload_bytes));
    json_object_set_new(s, "bound", b);
    if (r->kind == NULL) {
        /* a simulation's tracker load, for sizing it: announces per second, and how many needed a peer
         * search (an emulation's tracker reports its own /stats, in emulation.json) */
        json_t *t = json_object();
        json_object_set_new(t, "announces", json_integer((json_int_t)r->announces));
        json_object_set_new(t, "announces_per_s", real(sc->duration_s > 0 ? (double)r->announces / sc->duration_s : 0));
        json_object_set_new(t, "peer_lists", json_integer((json_int_t)r->peer_lists));
        json_object_set_new(t, "numwant_0", json_integer((json_int_t)r->numwant0));
        json_object_set_new(t, "links", json_integer((json_int_t)r->links));
        json_object_set_new(t, "links_in_region", json_integer((json_int_t)r->links_in_region));
        json_object_set_new(s, "tracker", t);
    }
    free(st);
    free(sk);
    return s;
}

int sim_write_json(const char *dir, const char *name, json_t *doc, size_t flags, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *txt = json_dumps(doc, flags);
    int rc = txt == NULL ? PC_ENOMEM : pc_replace_file(path, txt, strlen(txt));
    free(txt);
    if (rc != 0)
        snprintf(err, errlen, "cannot write %s: %s", path, pc_strerror(rc));
    return rc;
}

static int write_json(const char *dir, const char *name, json_t *doc, char *err, size_t errlen)
{
    return sim_write_json(dir, name, doc, JSON_INDENT(2) | JSON_REAL_PRECISION(12), err, errlen);
}

/* DIR/NAME written whole or not at all: into a new temporary file of this process's own (pc_open_tmp; its
 * name in |tmp|), which finish() renames over NAME. Its path in |path|; NULL with the reason in |err|. */
static FILE *create(const char *dir, const char *name, char path[4096], char tmp[PC_TMP_PATH_MAX], char *err,
                    size_t errlen)
{
    snprintf(path, 4096, "%s/%s", dir, name);
    int fd = pc_open_tmp(path, tmp, 0644);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
    if (f == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", path, fd < 0 ? pc_strerror(fd) : strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
    }
    return f;
}

/* Closes what create() opened and puts it in place: PC_EIO with the reason in |err| when the bytes did not
 * all get written (NAME is then left as it was). */
static int finish(FILE *f, const char *path, const char *tmp, char *err, size_t errlen)
{
    int bad = ferror(f), e = errno; /* a failed fwrite's errno, or fclose's */
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        e = errno;
    }
    if (!bad)
        return 0;
    unlink(tmp);
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
    return PC_EIO;
}

/* ---- SVG: a small line chart writer ---- */

typedef struct series {
    const char *name, *color;
    const double *x, *y;
    size_t n;
    int right; /* plotted against the right axis */
} series;

static double nice_max(double v)
{
    if (v <= 0)
        return 1;
    double p = pow(10, floor(log10(v)));
    for (int k = 1; k <= 10; k++)
        if (k * p >= v)
            return k * p;
    return 10 * p;
}

static int chart(const char *dir, const char *name, char *err, size_t errlen, const char *title, const char *xlabel,
                 const char *ylabel, const char *y2label, const series *s, size_t ns, const char *const *xticks,
                 size_t nxt)
{
    char path[4096];
    char tmp[PC_TMP_PATH_MAX];
    FILE *f = create(dir, name, path, tmp, err, errlen);
    if (f == NULL)
        return PC_EIO;
    const double W = 720, H = 400, L = 70, R = 70, T = 40, B = 60;
    double xmax = 0, ymax[2] = {0, 0};
    for (size_t i = 0; i < ns; i++)
        for (size_t k = 0; k < s[i].n; k++) {
            xmax = s[i].x[k] > xmax ? s[i].x[k] : xmax;
            ymax[s[i].right] = s[i].y[k] > ymax[s[i].right] ? s[i].y[k] : ymax[s[i].right];
        }
    xmax = xticks != NULL ? (double)(nxt > 1 ? nxt - 1 : 1) : nice_max(xmax);
    ymax[0] = nice_max(ymax[0]);
    ymax[1] = nice_max(ymax[1]);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(f, "<text x=\"%.0f\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n", W / 2, title);
    double pw = W - L - R, ph = H - T - B;
    for (int k = 0; k <= 5; k++) { /* grid and y ticks */
        double y = T + ph - ph * k / 5;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, y, L + pw, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 6, y + 4, ymax[0] * k / 5);
        if (y2label != NULL)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%g</text>\n", L + pw + 6, y + 4, ymax[1] * k / 5);
    }
    for (int k = 0; k <= 5 && xticks == NULL; k++) {
        double x = L + pw * k / 5;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", x, T + ph + 18, xmax * k / 5);
    }
    for (size_t k = 0; xticks != NULL && k < nxt; k++) {
        double x = L + pw * (double)k / xmax;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, T + ph + 18, xticks[k]);
    }
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#333\"/>\n", L, T, pw,
            ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", L + pw / 2, H - 18, xlabel);
    fprintf(f, "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", T + ph / 2,
            ylabel);
    if (y2label != NULL)
        fprintf(f, "<text transform=\"translate(%.1f %.1f) rotate(90)\" text-anchor=\"middle\">%s</text>\n", W - 14,
                T + ph / 2, y2label);
    for (size_t i = 0; i < ns; i++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", s[i].color);
        for (size_t k = 0; k < s[i].n; k++)
            fprintf(f, "%.1f,%.1f ", L + pw * s[i].x[k] / xmax, T + ph - ph * s[i].y[k] / ymax[s[i].right]);
        fprintf(f, "\"/>\n");
        if (xticks != NULL)
            for (size_t k = 0; k < s[i].n; k++)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", L + pw * s[i].x[k] / xmax,
                        T + ph - ph * s[i].y[k] / ymax[s[i].right], s[i].color);
        fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"14\" height=\"4\" fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                L + 10 + 190 * (double)i, T + 8, s[i].color, L + 28 + 190 * (double)i, T + 13, s[i].name);
    }
    fprintf(f, "</svg>\n");
    return finish(f, path, tmp, err, errlen);
}

/* Points per line at most: two per pixel of the plot's width. Longer series are merged (over time) or
 * sampled at evenly spaced quantiles (a CDF), so that a month-long run or five million viewers still make
 * a plot a browser opens at once. */
#define PLOT_POINTS 1200

static int plots(const char *dir, const sim_result *r, char *err, size_t errlen)
{
    int rc = 0;
    /* offload and CDN Mbps over time, per interval */
    size_t n = r->nts > 1 ? r->nts - 1 : 0;
    double *t = calloc(n + 1, sizeof(double)), *off = calloc(n + 1, sizeof(double)), *cdn = calloc(n + 1, sizeof(double));
    if (t == NULL || off == NULL || cdn == NULL) {
        free(t), free(off), free(cdn);
        return PC_ENOMEM;
    }
    /* a long run's intervals are merged, |step| at a time, so that the plot keeps at most PLOT_POINTS */
    size_t step = n > PLOT_POINTS ? (n + PLOT_POINTS - 1) / PLOT_POINTS : 1, np = 0;
    for (size_t i = 0; i < n; i += step) {
        const sim_sample *a = &r->ts[i], *b = &r->ts[i + step < n ? i + step : n];
        double dc = (double)(b->bytes_cdn - a->bytes_cdn), dp = (double)(b->bytes_p2p - a->bytes_p2p);
        double dt = b->t_s - a->t_s;
        t[np] = b->t_s;
        off[np] = dc + dp > 0 ? 100 * dp / (dc + dp) : 0;
        cdn[np++] = dt > 0 ? dc * 8 / dt / 1e6 : 0;
    }
    series s1[2] = {{"offload (%)", "#1f77b4", t, off, np, 0}, {"CDN Mbit/s", "#d62728", t, cdn, np, 1}};
    rc = chart(dir, "offload.svg", err, errlen, "Offload and CDN traffic over time", "time (s)", "offload (%)", "CDN Mbit/s", s1, 2, NULL, 0);
    free(t), free(off), free(cdn);
    if (rc != 0)
        return rc;
    /* start-up CDF */
    double *su = malloc((r->viewers + 1) * sizeof(double)), *fr = malloc((r->viewers + 1) * sizeof(double));
    if (su == NULL || fr == NULL) {
        free(su), free(fr);
        return PC_ENOMEM;
    }
    size_t ns = 0;
    for (uint32_t i = 0; i < r->viewers; i++)
        if (r->v[i].started && !r->v[i].seeder)
            su[ns++] = r->v[i].startup_ms;
    qsort(su, ns, sizeof(double), dbl_cmp);
    if (ns > PLOT_POINTS) { /* the fastest, then PLOT_POINTS - 1 evenly spaced quantiles up to the slowest */
        const size_t q = PLOT_POINTS - 1;
        fr[0] = 1.0 / (double)ns;
        for (size_t k = 1; k <= q; k++) {
            size_t idx = (k * ns + q - 1) / q - 1; /* > k - 1: read before written */
            su[k] = su[idx];
            fr[k] = (double)(idx + 1) / (double)ns;
        }
        ns = PLOT_POINTS;
    } else {
        for (size_t i = 0; i < ns; i++)
            fr[i] = (double)(i + 1) / (double)ns;
    }
    series s2[1] = {{"viewers", "#2ca02c", su, fr, ns, 0}};
    rc = chart(dir, "startup_cdf.svg", err, errlen, "Start-up delay (CDF)", "start-up (ms)", "fraction of viewers", NULL, s2, 1, NULL, 0);
    free(su), free(fr);
    if (rc != 0)
        return rc;
    /* offload and rebuffering against swarm size (viewers of the same video present at arrival) */
    enum { NB = 12 };
    double bx[NB], boff[NB], breb[NB], cdn_b[NB] = {0}, p2p_b[NB] = {0}, st_b[NB] = {0}, pl_b[NB] = {0};
    static const char *const ticks[NB] = {"1", "2", "3-4", "5-8", "9-16", "17-32", "33-64", "65-128", "129-256",
                                          "257-512", "513-1k", ">1k"};
    int used[NB] = {0};
    for (uint32_t i = 0; i < r->viewers; i++) {
        if (r->v[i].seeder)
            continue;
        uint32_t sz = r->v[i].swarm + 1, b = 0;
        while (b + 1 < NB && sz > (1u << b))
            b++;
        cdn_b[b] += (double)r->v[i].bytes_cdn;
        p2p_b[b] += (double)r->v[i].bytes_p2p;
        st_b[b] += r->v[i].stall_ms;
        pl_b[b] += r->v[i].played_ms;
        used[b] = 1;
    }
    size_t nb = 0, last = 0;
    for (size_t b = 0; b < NB; b++)
        if (used[b])
            last = b + 1;
    for (size_t b = 0; b < last; b++) {
        bx[nb] = (double)b;
        boff[nb] = cdn_b[b] + p2p_b[b] > 0 ? 100 * p2p_b[b] / (cdn_b[b] + p2p_b[b]) : 0;
        breb[nb] = st_b[b] + pl_b[b] > 0 ? 100 * st_b[b] / (st_b[b] + pl_b[b]) : 0;
        nb++;
    }
    series s3[2] = {{"offload (%)", "#1f77b4", bx, boff, nb, 0}, {"rebuffering (%)", "#ff7f0e", bx, breb, nb, 1}};
    return chart(dir, "swarm.svg", err, errlen, "Offload and rebuffering against swarm size", "viewers of the video present at arrival",
                 "offload (%)", "rebuffering (% of viewing time)", s3, 2, ticks, last > 1 ? last : 2);
}

/* viewers.csv: one row per viewer (seeders left out), in arrival order, by its index in the run. */
static int write_viewers(const char *dir, const sim_scenario *sc, const sim_result *r, char *err, size_t errlen)
{
    char path[4096];
    char tmp[PC_TMP_PATH_MAX];
    FILE *f = create(dir, "viewers.csv", path, tmp, err, errlen);
    if (f == NULL)
        return PC_EIO;
    fprintf(f, "viewer,arrival,video,region,up_kbps,down_kbps,arrive_s,leave_s,started,startup_ms,stalls,stall_ms,"
               "played_s,seeks,seek_wait_ms,bitrate_kbps,rung_switches,swarm,bytes_cdn,bytes_p2p,bytes_up\n");
    uint32_t arrival = 0;
    for (uint32_t i = 0; i < r->viewers; i++) {
        const sim_viewer_result *v = &r->v[i];
        if (v->seeder)
            continue;
        /* a region's name is the scenario's, any characters: quoted, its quotes doubled */
        const char *region = v->region < sc->n_regions ? sc->region_name[v->region] : "";
        char q[2 * sizeof(sc->region_name[0]) + 3], *o = q;
        *o++ = '"';
        for (const char *c = region; *c != '\0'; c++) {
            if (*c == '"')
                *o++ = '"';
            *o++ = *c;
        }
        *o++ = '"';
        *o = '\0';
        fprintf(f, "%u,%u,%u,%s,%.0f,%.0f,%.3f,%.3f,%d,%.1f,%u,%.1f,%.3f,%u,%.1f,%.1f,%u,%u,%llu,%llu,%llu\n", i, arrival++,
                v->video, q, v->up_kbps, v->down_kbps, v->arrive_s, v->leave_s, v->started, v->startup_ms,
                v->stalls, v->stall_ms, v->played_ms / 1000, v->seeks, v->seek_wait_ms, v->bitrate_kbps, v->switches,
                v->swarm, (unsigned long long)v->bytes_cdn, (unsigned long long)v->bytes_p2p,
                (unsigned long long)v->bytes_up);
    }
    return finish(f, path, tmp, err, errlen);
}

const char *const sim_output_files[] = {"summary.json", "run.json", "timeseries.csv", "viewers.csv",
                                        "offload.svg", "startup_cdf.svg", "swarm.svg", NULL};

const char *sim_mkdirs_reason(int mk, int err)
{
    return mk == PC_EEXIST ? "a file that is not a directory is in the way" : mk == PC_ETOOBIG ? pc_strerror(mk) : strerror(err);
}

int sim_write_outputs(const char *dir, const sim_scenario *sc, uint64_t seed, const sim_result *r, char *err,
                      size_t errlen)
{
    int rc = pc_mkdirs(dir);
    if (rc != 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, sim_mkdirs_reason(rc, errno));
        return rc;
    }
    /* summary.json and run.json, which compare reads, come last: until then an earlier run's are gone, so a
     * write that fails half way leaves no result that looks whole */
    rc = sim_forget_result(dir, err, errlen);
    if (rc != 0)
        return rc;
    char path[4096];
    char tmp[PC_TMP_PATH_MAX];
    FILE *f = create(dir, "timeseries.csv", path, tmp, err, errlen);
    if (f == NULL)
        return PC_EIO;
    fprintf(f, "t_s,watching,seeding,cdn_mbps,p2p_mbps,offload,offload_cumulative,stalls\n");
    for (uint32_t i = 0; i < r->nts; i++) {
        const sim_sample *b = &r->ts[i];
        double dc = 0, dp = 0, dt = 0;
        if (i > 0) {
            dc = (double)(b->bytes_cdn - r->ts[i - 1].bytes_cdn);
            dp = (double)(b->bytes_p2p - r->ts[i - 1].bytes_p2p);
            dt = b->t_s - r->ts[i - 1].t_s;
        }
        double tot = (double)(b->bytes_cdn + b->bytes_p2p);
        fprintf(f, "%.3f,%u,%u,%.3f,%.3f,%.4f,%.4f,%u\n", b->t_s, b->watching, b->seeding,
                dt > 0 ? dc * 8 / dt / 1e6 : 0, dt > 0 ? dp * 8 / dt / 1e6 : 0, dc + dp > 0 ? dp / (dc + dp) : 0,
                tot > 0 ? (double)b->bytes_p2p / tot : 0, b->stalls);
    }
    rc = finish(f, path, tmp, err, errlen);
    rc = rc ? rc : write_viewers(dir, sc, r, err, errlen);
    if (rc == 0) {
        rc = plots(dir, r, err, errlen);
        if (rc == PC_ENOMEM)
            snprintf(err, errlen, "out of memory");
    }
    if (rc != 0)
        return rc;
    json_t *run = json_object();
    json_object_set_new(run, "kind", json_string(r->kind != NULL ? r->kind : "simulation"));
    json_object_set_new(run, "wall_s", json_real(r->wall_s));
    json_object_set_new(run, "events", json_integer((json_int_t)r->events));
    json_object_set_new(run, "engine_calls", json_integer((json_int_t)r->engine_calls));
    json_object_set_new(run, "events_per_s", json_real(r->wall_s > 0 ? (double)r->events / r->wall_s : 0));
    json_object_set_new(run, "peak_rss_mib", json_real((double)r->peak_rss_kib / 1024));
    if (r->threads > 0)
        json_object_set_new(run, "threads", json_integer(r->threads));
    if (r->interrupted)
        json_object_set_new(run, "interrupted", json_true());
    rc = write_json(dir, "run.json", run, err, errlen);
    json_decref(run);
    if (rc != 0)
        return rc;
    json_t *s = sim_summary(sc, seed, r);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return PC_ENOMEM;
    }
    rc = write_json(dir, "summary.json", s, err, errlen);
    json_decref(s);
    return rc;
}

int sim_forget_result(const char *dir, char *err, size_t errlen)
{
    static const char *const names[] = {"summary.json", "run.json"};
    for (size_t k = 0; k < 2; k++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[k]);
        if (unlink(path) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot remove %s, left from an earlier run: %s", path, strerror(errno));
            return PC_EIO;
        }
    }
    return 0;
}

void sim_print_row(const char *label, json_t *s)
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

void sim_print_header(void)
{
    printf("%-10s %8s %9s %9s %12s %10s %9s %9s %11s %9s %9s\n", "mode", "viewers", "offload", "bound", "CDN GB",
           "CDN $", "p50 ms", "p95 ms", "rebuffer", "stalls/h", "kbit/s");
}
