/* offload_bound, shared by the simulator and the emulation; the derivation is in docs/sim.md. */
#include "bound.h"

#include <stdlib.h>
#include <string.h>

#define S_US 1000000.0

typedef struct span {
    uint64_t a, d;
    uint32_t vi;
} span;

static int span_cmp(const void *x, const void *y)
{
    const span *p = x, *q = y;
    if (p->a != q->a)
        return p->a < q->a ? -1 : 1;
    return p->vi < q->vi ? -1 : (p->vi > q->vi);
}

typedef struct bp {
    uint64_t t;
    int d;
} bp;

static int bp_cmp(const void *x, const void *y)
{
    const bp *p = x, *q = y;
    if (p->t != q->t)
        return p->t < q->t ? -1 : 1;
    return p->d - q->d;
}

/* The time seeders (|sd|, |ns| of them) are present within [a, d], weighted by their capacity: what they
 * could upload then (bytes). */
static double seeders_within(const span *sd, const double *up, uint32_t ns, uint64_t a, uint64_t d)
{
    double bytes = 0;
    for (uint32_t s = 0; s < ns; s++) {
        uint64_t lo = sd[s].a > a ? sd[s].a : a, hi = sd[s].d < d ? sd[s].d : d;
        if (hi > lo)
            bytes += up[s] * (double)(hi - lo) / S_US;
    }
    return bytes;
}

/* Bytes that must come from the CDN for one video: one copy per (rung, segment) received by each group
 * of overlapping viewers (|sp| sorted by arrival), less what the video's seeders could upload while the
 * group is there (they hold everything, so they can provide first copies instead). */
static int cdn_copies(const pc_media *m, const sim_bound_viewer *v, const span *sp, uint32_t n, const span *sd,
                      const double *sup, uint32_t ns, double *needed)
{
    size_t bb = (m->n_segments + 7) / 8;
    uint8_t *grp = calloc(m->n_rungs, bb);
    if (grp == NULL)
        return PC_ENOMEM;
    uint64_t gstart = 0, gend = 0;
    for (uint32_t j = 0; j <= n; j++) {
        if (j == n || (j > 0 && sp[j].a > gend)) { /* the group of overlapping viewers is complete */
            double copies = 0;
            for (uint32_t q = 0; q < m->n_rungs; q++)
                for (size_t k = 0; k < bb; k++) /* a byte at a time: a group holds few of them */
                    for (unsigned bits = grp[q * bb + k]; bits != 0; bits &= bits - 1) {
                        size_t i = k * 8 + (unsigned)__builtin_ctz(bits);
                        if (i < m->n_segments) /* the last byte's spare bits count nothing */
                            copies += m->rung[q].seg_size[i];
                    }
            copies -= seeders_within(sd, sup, ns, gstart, gend);
            *needed += copies > 0 ? copies : 0;
            memset(grp, 0, m->n_rungs * bb);
            if (j == n)
                break;
            gend = 0;
        }
        if (gend == 0)
            gstart = sp[j].a;
        const sim_bound_viewer *x = &v[sp[j].vi];
        if (x->got != NULL)
            for (size_t k = 0; k < m->n_rungs * bb; k++)
                grp[k] |= x->got[k];
        if (sp[j].d > gend)
            gend = sp[j].d;
    }
    free(grp);
    return 0;
}

/* A viewer's watching time ends at |watched|, clamped to [arrive, left]. */
static uint64_t watch_end(const sim_bound_viewer *x)
{
    return x->watched < x->arrive ? x->arrive : x->watched > x->left ? x->left : x->watched;
}

/* The time up to |t| covered by at least one (|cum1|) or two (|cum2|) of the intervals whose ends are
 * |b| (|nb| of them, sorted), by binary search: |t| must be one of the points in |b|. */
static void covered(const bp *b, size_t nb, const double *cum1, const double *cum2, uint64_t t, double *c1,
                    double *c2)
{
    size_t lo = 0, hi = nb;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (b[mid].t <= t)
            lo = mid;
        else
            hi = mid;
    }
    *c1 = cum1[lo];
    *c2 = cum2[lo];
}

/* Usable upload for one video: each viewer's capacity × the time at least one other viewer is watching
 * while it is there, and each seeder's × the time at least one viewer is watching (|sp| sorted by
 * arrival). A viewer receives only while it watches: seeding after watching, it takes nothing, so its
 * stay counts from arrival to departure as an uploader's and only to the end of its watching as a
 * receiver's. */
static double usable_upload(const sim_bound_viewer *v, const span *sp, uint32_t n, const span *sd,
                            const double *sup, uint32_t ns, bp *b, double *cum1, double *cum2)
{
    double seeders = 0;
    for (uint32_t j = 0, k; j < n; j = k) { /* the union of the watching times, interval by interval */
        uint64_t a = sp[j].a, d = watch_end(&v[sp[j].vi]);
        for (k = j + 1; k < n && sp[k].a <= d; k++) {
            uint64_t e = watch_end(&v[sp[k].vi]);
            d = e > d ? e : d;
        }
        seeders += seeders_within(sd, sup, ns, a, d);
    }
    size_t nb = 0;
    for (uint32_t j = 0; j < n; j++) {
        b[nb++] = (bp){sp[j].a, +1};
        b[nb++] = (bp){watch_end(&v[sp[j].vi]), -1};
        b[nb++] = (bp){sp[j].d, 0}; /* no change: a point to look the departure up at */
    }
    qsort(b, nb, sizeof(*b), bp_cmp);
    int cov = 0;
    cum1[0] = cum2[0] = 0;
    for (size_t j = 0; j < nb; j++) {
        if (j > 0) {
            double dt = (double)(b[j].t - b[j - 1].t);
            cum1[j] = cum1[j - 1] + (cov >= 1 ? dt : 0);
            cum2[j] = cum2[j - 1] + (cov >= 2 ? dt : 0);
        }
        cov += b[j].d;
    }
    double usable = 0;
    for (uint32_t j = 0; j < n; j++) {
        /* while it watches, another is watching where two are; after, while it seeds, where one is */
        const sim_bound_viewer *x = &v[sp[j].vi];
        uint64_t at[3] = {sp[j].a, watch_end(x), sp[j].d};
        double c1[3], c2[3];
        for (int s = 0; s < 3; s++)
            covered(b, nb, cum1, cum2, at[s], &c1[s], &c2[s]);
        usable += x->up * ((c2[1] - c2[0]) + (c1[2] - c1[1])) / S_US;
    }
    return usable + seeders;
}

int sim_bound_compute(const pc_media *const *media, uint32_t nvideos, const sim_bound_viewer *v, uint32_t n,
                      uint64_t end, sim_bound *out)
{
    double demand = 0, needed = 0, usable = 0;
    for (uint32_t i = 0; i < n; i++)
        demand += v[i].bytes;
    span *sp = malloc(((size_t)n + 1) * sizeof(*sp)), *sd = malloc(((size_t)n + 1) * sizeof(*sd));
    double *sup = malloc(((size_t)n + 1) * sizeof(*sup));
    bp *b = malloc((3 * (size_t)n + 1) * sizeof(*b)); /* each viewer's arrival, end of watching, departure */
    double *cum1 = malloc((3 * (size_t)n + 1) * sizeof(*cum1)), *cum2 = malloc((3 * (size_t)n + 1) * sizeof(*cum2));
    /* the viewers grouped by video, each group in index order (a counting sort): one pass over the
     * viewers in all, not one per video */
    uint32_t *first = calloc((size_t)nvideos + 1, sizeof(*first)), *by = malloc(((size_t)n + 1) * sizeof(*by));
    int rc = sp == NULL || sd == NULL || sup == NULL || b == NULL || cum1 == NULL || cum2 == NULL || first == NULL || by == NULL
                 ? PC_ENOMEM
                 : 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        if (v[i].video >= nvideos)
            rc = PC_EINVAL;
        else
            first[v[i].video + 1]++;
    }
    for (uint32_t k = 0; k < nvideos && rc == 0; k++)
        first[k + 1] += first[k];
    for (uint32_t i = 0; i < n && rc == 0; i++)
        by[first[v[i].video]++] = i;
    for (uint32_t k = nvideos; k > 0 && rc == 0; k--) /* back to each group's start */
        first[k] = first[k - 1];
    if (rc == 0)
        first[0] = 0;
    for (uint32_t k = 0; k < nvideos && rc == 0; k++) {
        /* the video's viewers, and its seeders apart: they receive nothing, so only a viewer makes
         * their upload (or a viewer's own) worth anything */
        uint32_t m = 0, ns = 0;
        for (uint32_t g = first[k]; g < first[k + 1]; g++) {
            uint32_t i = by[g];
            if (v[i].seeder) {
                sd[ns] = (span){.a = v[i].arrive, .d = v[i].left > v[i].arrive ? v[i].left : end, .vi = i};
                sup[ns++] = v[i].up;
            } else {
                sp[m++] = (span){.a = v[i].arrive, .d = v[i].left, .vi = i};
            }
        }
        if (m == 0)
            continue;
        qsort(sp, m, sizeof(*sp), span_cmp);
        rc = cdn_copies(media[k], v, sp, m, sd, sup, ns, &needed);
        if (rc == 0)
            usable += usable_upload(v, sp, m, sd, sup, ns, b, cum1, cum2);
    }
    free(sp), free(sd), free(sup), free(b), free(cum1), free(cum2), free(first), free(by);
    if (rc != 0)
        return rc;
    out->demand_bytes = demand;
    out->cdn_needed_bytes = needed;
    out->usable_upload_bytes = usable;
    double floor_cdn = needed > demand - usable ? needed : demand - usable;
    out->offload_bound = demand > 0 ? 1.0 - floor_cdn / demand : 0;
    if (out->offload_bound < 0)
        out->offload_bound = 0;
    return 0;
}
