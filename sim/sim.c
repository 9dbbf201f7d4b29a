/* The simulator's world; see sim.h and docs/sim.md. */
#include "sim.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "announce.h"
#include "bound.h"
#include "evq.h"
#include "locality.h"
#include "pc_engine.h"
#include "pc_num.h"
#include "registry.h"
#include "select.h"
#include "workload.h"

#define NONE UINT32_MAX
#define CDN UINT32_MAX
#define S_US 1000000.0

enum { EV_ARRIVE, EV_ENGINE, EV_FLOW, EV_ANNOUNCE, EV_LEAVE, EV_DEPART, EV_SEEK, EV_SAMPLE, EV_SWEEP, EV_LINKDOWN,
       EV_CDN_SHARE, EV_START };

#define SWEEP_US 1000000 /* the tracker removes expired peers this often */
#define LINK_SILENCE_US 30000000 /* a peer link silent this long is closed (docs/protocol.md, keep-alive) */
#define CDN_SHARE_US 100000     /* a capacity-limited CDN's flows are shared out again this often */
#define PARTS_MAX 8
enum { V_WAITING, V_WATCHING, V_LEAVING, V_SEEDING, V_GONE }; /* LEAVING: done watching, departs now */

typedef struct video {
    pc_media m;
    uint32_t *dur, *sizes;
    uint64_t *start;              /* n + 1 content start times, shared by the video's engines */
    uint32_t n;
    uint32_t present;
    uint32_t part;                /* the world that runs its swarm */
    pc_rng sel;                   /* the tracker's random choices in its swarm */
    char id[16];
} video;

typedef struct flow {
    uint32_t src, dst;
    uint64_t xfer, req;
    double total, done, rate;
    uint64_t t_last, start_at;
    uint32_t credited, ver, gen;
    uint8_t used, active;         /* active: served (linked at its sender), perhaps not started yet */
    uint8_t sharing;              /* started: its first byte is due, it holds a share of both links */
    uint32_t up_next, up_prev, dn_next, dn_prev;
} flow;

typedef struct viewer {
    pc_engine *e;
    uint32_t video, region;
    double up, down;              /* bytes/s */
    uint8_t state, abrupt, queued, seeder, mine, reshared;
    uint64_t arrive, seed_for;
    uint64_t timer_t;
    uint32_t timer_ver;
    uint32_t up_head, dn_head, n_up, n_dn; /* n_up, n_dn: its started (sharing) flows */
    uint32_t *nbr, *wat;
    uint16_t nnbr, cnbr, nwat, cwat;
    uint32_t rec;
    uint32_t swarm_at_arrival;
    uint64_t bytes_cdn, bytes_p2p, bytes_up;
    uint8_t *got;                 /* rungs × n bits received, kept after departure for the bound */
    uint64_t left;                /* when it departed (or the end) */
    uint64_t watched;             /* when it stopped watching (or the end): the bound's receiving time */
} viewer;

/*
 * Swarms of different videos never interact (unless the CDN's capacity is shared), so a run is split
 * into worlds, each with its own videos, viewers, tracker and event queue, run on their own threads.
 * Every random draw and every tie in the event order is per video, so the results do not depend on how
 * many worlds there are (a test checks it).
 */
typedef struct world {
    const sim_scenario *sc;
    sim_mode mode;
    uint32_t part;                /* this world's number: it runs the videos with video.part == part */
    const sim_arrival *arr;       /* the run's arrivals, in order (shared, read-only) */
    uint32_t narr, base;          /* base: viewer index of arrival 0 (the seeders come first) */
    uint64_t now, end;
    sim_evq q;
    video *videos;                /* shared; a world touches only its own */
    const uint8_t *zeros;
    flow *flows;
    uint32_t nflows, cflows, free_flow;
    /* every viewer of the run, shared by the worlds: a world reads and writes only its own viewers'
     * entries (those of its videos: its links, requests, events and prefetches never name another's) */
    viewer *v;
    pc_engine **watching_e;       /* v[i].e while v[i] is V_WATCHING, else NULL: what a HAVE needs, packed */
    uint32_t nv;
    uint32_t *own, nown;          /* this world's viewers (seeders, then arrivals), ascending */
    uint32_t *work;
    size_t nwork, cwork;
    pc_registry *reg;
    uint32_t n_cdn_flows, cdn_head; /* started CDN flows; the active ones, linked through up_next/up_prev */
    double cdn_used;              /* with a CDN capacity: the started CDN flows' rates added up (bytes/s) */
    uint32_t watching, seeding;
    uint64_t total_cdn, total_p2p, total_up, stalls_gone;
    sim_viewer_result *rv;        /* shared; a world writes only its viewers' entries */
    sim_sample *ts;               /* shared by the worlds, which add their counts into it (sample()) */
    uint32_t nts, cts;            /* this world's samples so far; the array's length */
    uint64_t last_sample;         /* when this world last sampled */
    uint64_t events, engine_calls;
    uint64_t announces, peer_lists, numwant0; /* what the tracker heard and did */
    uint64_t links, links_in_region;          /* engines that added a peer; ... of their own region */
    int oom;                      /* the run stops: out of memory, or |err| */
    int err;                      /* what stopped it when not memory: a PC_E* code */
    uint32_t trace;               /* PEERCDN_SIM_TRACE=viewer: its actions on stderr (development aid) */
    FILE *progress;               /* a single world draws its own progress bar */
    _Atomic uint64_t pub_now;     /* for the progress bar of a split run */
    _Atomic uint32_t pub_watching, pub_seeding;
    _Atomic int done;
} world;

/* ---- events (evq.c) ---- */

static void push(world *w, uint64_t t, uint32_t kind, uint32_t id, uint32_t ver)
{
    sim_evq_push(&w->q, t, kind, id, ver); /* a time already past is raised to the last event's */
    w->oom |= w->q.oom;
}

/* ---- small arrays ---- */

/* At most UINT16_MAX entries (the caller checks): the counts are 16 bits to keep viewers small. */
static int arr_add(uint32_t **a, uint16_t *n, uint16_t *c, uint32_t x)
{
    if (*n == UINT16_MAX)
        return -1;
    if (*n == *c) {
        uint16_t nc = *c == 0 ? 8 : *c > UINT16_MAX / 2 ? UINT16_MAX : (uint16_t)(*c * 2);
        uint32_t *p = realloc(*a, nc * sizeof(*p));
        if (p == NULL)
            return -1;
        *a = p;
        *c = nc;
    }
    (*a)[(*n)++] = x;
    return 0;
}

static void arr_del(uint32_t *a, uint16_t *n, uint32_t x)
{
    for (uint16_t i = 0; i < *n; i++) {
        if (a[i] == x) {
            a[i] = a[--*n];
            return;
        }
    }
}

static int arr_has(const uint32_t *a, uint16_t n, uint32_t x)
{
    for (uint16_t i = 0; i < n; i++)
        if (a[i] == x)
            return 1;
    return 0;
}

/* ---- media ---- */

static int make_videos(const sim_scenario *sc, uint64_t seed, video **out, uint8_t **zeros)
{
    video *videos = *out = calloc(sc->videos, sizeof(video));
    double *factor = malloc(PC_ENGINE_SEGMENTS_MAX * sizeof(double));
    if (videos == NULL || factor == NULL) {
        free(factor);
        return PC_ENOMEM;
    }
    uint32_t nmax = 1;
    pc_rng r;
    pc_rng_init(&r, sim_catalog_seed(sc)); /* sc->seed is the run's: the catalog does not depend on the mode */
    for (uint32_t k = 0; k < sc->videos; k++) {
        video *vd = &videos[k];
        pc_rng_init(&vd->sel, (seed ^ 0x7261636b6572ULL) + 0x9e3779b97f4a7c15ULL * (k + 1));
        uint32_t n;
        double len = sim_catalog_next(sc, &r, factor, &n);
        vd->n = n;
        nmax = n > nmax ? n : nmax;
        snprintf(vd->id, sizeof(vd->id), "v%u", k);
        vd->dur = malloc(n * sizeof(uint32_t));
        vd->start = malloc(((size_t)n + 1) * sizeof(uint64_t));
        vd->sizes = malloc((size_t)n * sc->n_rungs * sizeof(uint32_t));
        if (vd->dur == NULL || vd->start == NULL || vd->sizes == NULL) {
            free(factor);
            return PC_ENOMEM;
        }
        for (uint32_t i = 0; i < n; i++) {
            vd->dur[i] = sim_segment_us(sc, len, n, i);
            double d = vd->dur[i] / (double)S_US;
            /* sizes vary ±20% around the nominal bitrate, like encoded segments */
            for (uint32_t q = 0; q < sc->n_rungs; q++) {
                double sz = sc->ladder_kbps[q] * 1000.0 / 8 * d * factor[i];
                vd->sizes[(size_t)q * n + i] = sz < 1 ? 1 : (uint32_t)sz;
            }
        }
        vd->m.n_rungs = sc->n_rungs;
        vd->m.n_segments = n;
        vd->m.seg_dur_us = vd->dur;
        pc_media_start_times(vd->dur, n, vd->start);
        vd->m.seg_start_us = vd->start;
        for (uint32_t q = 0; q < sc->n_rungs; q++) {
            vd->m.rung[q].bandwidth = sc->ladder_kbps[q] * 1000;
            vd->m.rung[q].init_size = 900;
            vd->m.rung[q].seg_size = vd->sizes + (size_t)q * n;
        }
    }
    free(factor);
    *zeros = calloc((size_t)nmax, 32); /* the simulator delivers exact bytes: every hash matches */
    if (*zeros == NULL)
        return PC_ENOMEM;
    for (uint32_t k = 0; k < sc->videos; k++)
        for (uint32_t q = 0; q < sc->n_rungs; q++) {
            videos[k].m.rung[q].init_hash = *zeros;
            videos[k].m.rung[q].seg_hash = *zeros;
        }
    return 0;
}

/* ---- flows ---- */

static uint32_t flow_new(world *w)
{
    if (w->free_flow != NONE) {
        uint32_t i = w->free_flow;
        w->free_flow = w->flows[i].up_next;
        uint32_t gen = w->flows[i].gen + 1, ver = w->flows[i].ver;
        memset(&w->flows[i], 0, sizeof(flow));
        w->flows[i].gen = gen;
        w->flows[i].ver = ver + 1;
        w->flows[i].used = 1;
        return i;
    }
    if (w->nflows == w->cflows) {
        uint32_t c = w->cflows ? w->cflows * 2 : 1024;
        flow *f = realloc(w->flows, c * sizeof(*f));
        if (f == NULL) {
            w->oom = 1;
            return NONE;
        }
        w->flows = f;
        w->cflows = c;
    }
    uint32_t i = w->nflows++;
    memset(&w->flows[i], 0, sizeof(flow));
    w->flows[i].used = 1;
    return i;
}

static double one_way_us(const world *w, uint32_t a, uint32_t b)
{
    return w->sc->latency_ms[w->v[a].region][w->v[b].region] * 1000.0 / 2;
}

/* The bytes |f| has delivered by now (it moves at its rate from its last update or its start). */
static double done_now(const world *w, const flow *f)
{
    uint64_t from = f->t_last > f->start_at ? f->t_last : f->start_at;
    double done = f->done;
    if (w->now > from && f->active) {
        done += f->rate * (double)(w->now - from) / S_US;
        if (done > f->total)
            done = f->total;
    }
    return done;
}

static void advance(world *w, flow *f)
{
    f->done = done_now(w, f);
    if (w->now > f->t_last)
        f->t_last = w->now;
}

/* Bytes |f| delivered that its receiver has not been told of (credit). */
static uint32_t uncredited(const world *w, const flow *f)
{
    uint32_t d = f->active ? (uint32_t)done_now(w, f) : 0;
    return d > f->credited ? d - f->credited : 0;
}

/* What peer flow |f| could get if the receiver's downlink were no limit: an equal share of the sender's
 * uplink. (A CDN flow's is rerate_dn's: none, or a share of the CDN's capacity.) */
static double up_limit(const world *w, const flow *f)
{
    const viewer *s = &w->v[f->src];
    return s->up / (s->n_up ? s->n_up : 1);
}

/* Gives |f| the rate |r| (bytes/s, any r ≥ 0: a CDN capacity of a few bits a second shared out gives
 * less than a byte a second): its bytes so far are counted at the old rate, and a new completion event
 * replaces the old one only when the rate changed (a new flow's rate is 0: never set). A flow that
 * cannot complete by the end of the run at its rate gets no event (such an event would never be
 * popped, and at a rate near 0 its time would not fit in 64 bits); the next change of rate gives it one.
 * (Rates used to be floored at 1 B/s, so a near-zero CDN capacity sent a byte a second per flow: 72
 * times a 1 bit/s capacity with three viewers.) */
static void set_rate(world *w, uint32_t fi, double r)
{
    flow *f = &w->flows[fi];
    if (!(r > 0))
        r = 0; /* (a NaN too) */
    if (r == f->rate)
        return;
    advance(w, f);
    if (f->src == CDN && w->sc->cdn_capacity_mbps > 0)
        w->cdn_used += r - f->rate;
    f->rate = r;
    f->ver++;
    uint64_t from = w->now > f->start_at ? w->now : f->start_at;
    double us = r > 0 ? ceil((f->total - f->done) / r * S_US) : HUGE_VAL;
    if (from <= w->end && us <= (double)(w->end - from))
        push(w, from + (uint64_t)us, EV_FLOW, fi, f->ver);
}

typedef struct share {
    double limit;
    uint32_t fi, src;
    uint64_t xfer;
} share;

static int share_less(const share *a, const share *b)
{
    if (a->limit != b->limit)
        return a->limit < b->limit;
    if (a->src != b->src)
        return a->src < b->src;
    return a->xfer < b->xfer;
}

/* Shares |d|'s downlink between its started flows max-min fairly, as TCP flows on one bottleneck roughly
 * do: a flow held below an equal share by its sender's uplink keeps what it gets there, and what it
 * leaves is split between the others. (Uplinks are split equally: an uplink's leftover is not handed
 * on.) The order is by limit, then sender and transfer, so the result does not depend on list order. */
static void rerate_dn(world *w, uint32_t d)
{
    viewer *v = &w->v[d];
    share buf[64], *sh = buf;
    uint32_t n = 0;
    if (v->n_dn > sizeof(buf) / sizeof(buf[0])) {
        sh = malloc(v->n_dn * sizeof(*sh));
        if (sh == NULL) {
            w->oom = 1;
            return;
        }
    }
    /* with a CDN capacity, this downlink's CDN flows together take no more than the capacity the
     * others leave: a flow that starts between two resharings (cdn_reshare) takes capacity ÷ flows as
     * they are, or what is free if that is less, so the CDN never sends more than its capacity */
    double cdn_lim = HUGE_VAL;
    if (w->sc->cdn_capacity_mbps > 0) {
        double mine = 0;
        uint32_t m = 0;
        for (uint32_t i = v->dn_head, k = 0; i != NONE && k < v->n_dn; i = w->flows[i].dn_next)
            if (w->flows[i].sharing) {
                k++;
                if (w->flows[i].src == CDN) {
                    m++;
                    mine += w->flows[i].rate;
                }
            }
        double cap = w->sc->cdn_capacity_mbps * 1e6 / 8, free = cap - (w->cdn_used - mine);
        cdn_lim = cap / (w->n_cdn_flows ? w->n_cdn_flows : 1);
        if (m > 0 && free / m < cdn_lim)
            cdn_lim = free > 0 ? free / m : 0;
    }
    for (uint32_t i = v->dn_head; i != NONE && n < v->n_dn; i = w->flows[i].dn_next)
        if (w->flows[i].sharing)
            sh[n++] = (share){.limit = w->flows[i].src == CDN ? cdn_lim : up_limit(w, &w->flows[i]), .fi = i,
                              .src = w->flows[i].src, .xfer = w->flows[i].xfer};
    for (uint32_t k = 1; k < n; k++) { /* insertion sort: a downlink has few flows */
        share x = sh[k];
        uint32_t j = k;
        for (; j > 0 && share_less(&x, &sh[j - 1]); j--)
            sh[j] = sh[j - 1];
        sh[j] = x;
    }
    double left = v->down;
    for (uint32_t k = 0; k < n; k++) {
        double fair = left / (double)(n - k), r = sh[k].limit < fair ? sh[k].limit : fair;
        left -= r;
        set_rate(w, sh[k].fi, r);
    }
    if (sh != buf)
        free(sh);
}

/* After a flow started or ended at |up_of|'s uplink (a viewer, or CDN) and |dn_of|'s downlink: the
 * downlinks of the flows leaving a viewer |up_of| are shared again (their limits changed), and |dn_of|'s.
 * The CDN's flows are not: without a capacity their limit does not move, and with one every CDN flow's
 * share moves at every start and end, so they are shared out again every CDN_SHARE_US instead
 * (cdn_reshare; between two, a new flow takes capacity ÷ flows as they are, or what is free if less). */
static void rerate(world *w, uint32_t up_of, uint32_t dn_of)
{
    if (up_of != CDN)
        for (uint32_t i = w->v[up_of].up_head; i != NONE; i = w->flows[i].up_next)
            if (w->flows[i].sharing && w->flows[i].dst != dn_of)
                rerate_dn(w, w->flows[i].dst);
    if (dn_of != NONE)
        rerate_dn(w, dn_of);
}

/* Every downlink with a CDN flow, once each, shared again: the CDN's capacity ÷ its flows as they are.
 * The downlinks whose CDN flows must slow down go first, so that those that may speed up find the
 * capacity the others freed (a flow never takes more than is free: rerate_dn). */
static void cdn_reshare(world *w)
{
    double used = 0, each = w->sc->cdn_capacity_mbps * 1e6 / 8 / (w->n_cdn_flows ? w->n_cdn_flows : 1);
    for (uint32_t i = w->cdn_head; i != NONE; i = w->flows[i].up_next)
        if (w->flows[i].sharing)
            used += w->flows[i].rate;
    w->cdn_used = used; /* no drift from adding up rate changes */
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = w->cdn_head; i != NONE; i = w->flows[i].up_next) {
            viewer *d = &w->v[w->flows[i].dst];
            if (!d->reshared && (pass == 1 || w->flows[i].rate > each)) {
                d->reshared = 1;
                rerate_dn(w, w->flows[i].dst);
            }
        }
    for (uint32_t i = w->cdn_head; i != NONE; i = w->flows[i].up_next)
        w->v[w->flows[i].dst].reshared = 0;
}

static void link_dn(world *w, uint32_t fi)
{
    flow *f = &w->flows[fi];
    viewer *d = &w->v[f->dst];
    f->dn_prev = NONE;
    f->dn_next = d->dn_head;
    if (d->dn_head != NONE)
        w->flows[d->dn_head].dn_prev = fi;
    d->dn_head = fi;
    f->up_next = f->up_prev = NONE;
}

/* |fi|'s first byte is due: it takes a share of its sender's uplink and its receiver's downlink, and
 * the flows sharing either are rated again. */
static void start(world *w, uint32_t fi)
{
    flow *f = &w->flows[fi];
    f->sharing = 1;
    w->v[f->dst].n_dn++;
    if (f->src == CDN)
        w->n_cdn_flows++;
    else
        w->v[f->src].n_up++;
    rerate(w, f->src, f->dst);
}

/* |fi| is served: linked at its sender now, and started at |start_at| (a round trip, or the CDN's
 * latency, later). Until then it carries nothing and takes no share of either link (until 2026-11-24
 * it took a full one from its request on). */
static void activate(world *w, uint32_t fi, uint64_t start_at)
{
    flow *f = &w->flows[fi];
    f->active = 1;
    f->start_at = start_at;
    f->t_last = w->now;
    uint32_t *head = f->src == CDN ? &w->cdn_head : &w->v[f->src].up_head;
    f->up_prev = NONE;
    f->up_next = *head;
    if (*head != NONE)
        w->flows[*head].up_prev = fi;
    *head = fi;
    if (start_at <= w->now)
        start(w, fi);
    else
        push(w, start_at, EV_START, fi, f->ver);
}

/* Counts |f|'s bytes delivered since it was last counted (to its ends and the world's totals) and
 * returns them; the receiver's engine is not told here. */
static uint32_t carry(world *w, flow *f)
{
    if (!f->active)
        return 0;
    advance(w, f);
    uint32_t now_done = (uint32_t)f->done;
    if (now_done <= f->credited)
        return 0;
    uint32_t d = now_done - f->credited;
    f->credited = now_done;
    viewer *v = &w->v[f->dst];
    if (f->src == CDN) {
        v->bytes_cdn += d;
        w->total_cdn += d;
    } else {
        v->bytes_p2p += d;
        w->v[f->src].bytes_up += d;
        w->total_p2p += d;
        w->total_up += d;
    }
    return d;
}

/* Unlinks and frees |fi|; re-rates the flows that shared an end with it. Bytes it carried that its
 * receiver was not told of still count: they crossed the network (the CDN is paid for them). */
static void flow_end(world *w, uint32_t fi)
{
    flow *f = &w->flows[fi];
    (void)carry(w, f);
    viewer *d = &w->v[f->dst];
    if (f->dn_prev != NONE)
        w->flows[f->dn_prev].dn_next = f->dn_next;
    else
        d->dn_head = f->dn_next;
    if (f->dn_next != NONE)
        w->flows[f->dn_next].dn_prev = f->dn_prev;
    uint32_t src = f->src;
    if (f->sharing) {
        d->n_dn--;
        if (src == CDN) {
            w->n_cdn_flows--;
            if (w->sc->cdn_capacity_mbps > 0)
                w->cdn_used -= f->rate;
        } else
            w->v[src].n_up--;
    }
    if (f->active) {
        uint32_t *head = src == CDN ? &w->cdn_head : &w->v[src].up_head;
        if (f->up_prev != NONE)
            w->flows[f->up_prev].up_next = f->up_next;
        else
            *head = f->up_next;
        if (f->up_next != NONE)
            w->flows[f->up_next].up_prev = f->up_prev;
    }
    int was_sharing = f->sharing; /* one that had not started moved no one's share */
    uint32_t dst = f->dst;
    f->used = 0;
    f->active = 0;
    f->sharing = 0;
    f->ver++;
    f->up_next = w->free_flow;
    w->free_flow = fi;
    if (was_sharing)
        rerate(w, src, dst);
}

/* ---- engines ---- */

static void touch(world *w, uint32_t vi)
{
    viewer *v = &w->v[vi];
    if (v->queued || v->e == NULL)
        return;
    if (w->nwork == w->cwork) {
        size_t c = w->cwork ? w->cwork * 2 : 256;
        uint32_t *p = realloc(w->work, c * sizeof(*p));
        if (p == NULL) {
            w->oom = 1;
            return;
        }
        w->work = p;
        w->cwork = c;
    }
    v->queued = 1;
    w->work[w->nwork++] = vi;
}

/* Bytes that arrived on |vi|'s incoming flows since they were last reported. */
static void credit(world *w, uint32_t vi)
{
    viewer *v = &w->v[vi];
    for (uint32_t i = v->dn_head; i != NONE; i = w->flows[i].dn_next) {
        flow *f = &w->flows[i];
        uint32_t d = carry(w, f);
        if (d > 0) {
            pc_engine_on_data(v->e, f->xfer, d, w->now);
            w->engine_calls++;
        }
    }
}

static uint32_t find_dn_flow(world *w, uint32_t vi, uint64_t xfer)
{
    for (uint32_t i = w->v[vi].dn_head; i != NONE; i = w->flows[i].dn_next)
        if (w->flows[i].xfer == xfer)
            return i;
    return NONE;
}

static void disconnect(world *w, uint32_t a, uint32_t b); /* a drops b from its engine */

static void give_holdings(world *w, uint32_t to, uint32_t from)
{
    viewer *t = &w->v[to], *f = &w->v[from];
    const video *vd = &w->videos[f->video];
    for (uint32_t q = 0; q < vd->m.n_rungs; q++)
        for (uint32_t lo, end = 0; (lo = pc_engine_held_run(f->e, q, end, &end)) != UINT32_MAX;)
            (void)pc_engine_peer_have(t->e, from, q, lo, end - 1, w->now); /* connect1 touches |to| */
}

/* |a| adds |b| to its engine (it may download from b). */
static int connect1(world *w, uint32_t a, uint32_t b)
{
    viewer *va = &w->v[a], *vb = &w->v[b];
    if (a == b || va->e == NULL || vb->e == NULL || va->state != V_WATCHING || vb->state == V_GONE ||
        va->nnbr >= w->sc->max_neighbours || vb->nwat == UINT16_MAX || arr_has(va->nbr, va->nnbr, b))
        return 0; /* (a peer known to 65535 viewers takes no more) */
    if (pc_engine_peer_add(va->e, b, b, (uint64_t)(vb->up * 8), w->now) != 0)
        return 0;
    w->links++;
    w->links_in_region += va->region == vb->region;
    /* the link's round trip, which the peer client measures at its handshake and passes on */
    pc_engine_peer_rtt(va->e, b, (uint64_t)(2 * one_way_us(w, a, b)));
    w->engine_calls++;
    if (arr_add(&va->nbr, &va->nnbr, &va->cnbr, b) != 0 || arr_add(&vb->wat, &vb->nwat, &vb->cwat, a) != 0) {
        w->oom = 1;
        return 0;
    }
    give_holdings(w, a, b);
    touch(w, a);
    return 1;
}

static void disconnect(world *w, uint32_t a, uint32_t b)
{
    arr_del(w->v[a].nbr, &w->v[a].nnbr, b);
    arr_del(w->v[b].wat, &w->v[b].nwat, a);
}

/* |vi|'s HAVE of (rung, seg) to every viewer that may fetch from it. Most of its cost is cache misses,
 * three lines per watcher (the watcher's engine, its handle index, the holder-set word), each known only
 * once the one before it arrived; so each step is first requested for every watcher, then taken, and
 * the misses of all the watchers overlap instead of following one another. The watchers' engines come
 * from a packed array (8 bytes a viewer, it stays in the cache) rather than their viewer records. */
static void deliver_have(world *w, uint32_t vi, uint32_t rung, uint32_t seg)
{
    const viewer *v = &w->v[vi];
    pc_engine *const *we = w->watching_e;
    uint16_t n = v->nwat;
    for (uint16_t k = 0; k < n; k++)
        if (we[v->wat[k]] != NULL)
            __builtin_prefetch(we[v->wat[k]]);
    for (uint16_t k = 0; k < n; k++)
        if (we[v->wat[k]] != NULL)
            pc_engine_prefetch_index(we[v->wat[k]], vi);
    for (uint16_t k = 0; k < n; k++)
        if (we[v->wat[k]] != NULL)
            pc_engine_prefetch_have(we[v->wat[k]], vi, rung, seg);
    for (uint16_t k = 0; k < n; k++) {
        /* a HAVE that does not move the watcher's timer needs no look at its actions or expiry */
        pc_engine *e = we[v->wat[k]];
        if (e != NULL && pc_engine_peer_have(e, vi, rung, seg, seg, w->now))
            touch(w, v->wat[k]);
    }
}

static void depart(world *w, uint32_t vi);
static void finish_watching(world *w, uint32_t vi);

static void handle(world *w, uint32_t vi, const pc_action *a)
{
    viewer *v = &w->v[vi];
    if (w->trace == vi) {
        static const char *const names[] = {"FETCH", "CANCEL", "READY", "BAN", "DROP", "SERVE", "REFUSE", "ENDED", "SUSPECT"};
        fprintf(stderr, "%10.3f v%u %-6s xfer=%llu req=%llu peer=%d rung=%u seg=%d off=%u len=%u pos=%.2f buf=%.2f\n",
                (double)w->now / S_US, vi, (size_t)a->type < sizeof(names) / sizeof(names[0]) ? names[a->type] : "?", (unsigned long long)a->transfer,
                (unsigned long long)a->request, (int)a->peer, a->rung, (int)a->segment, a->offset, a->length,
                (double)pc_engine_playhead(v->e) / S_US, (double)pc_engine_buffer(v->e) / S_US);
    }
    switch (a->type) {
    case PC_ACT_FETCH: {
        uint32_t fi = flow_new(w);
        if (fi == NONE)
            return;
        flow *f = &w->flows[fi];
        f->src = a->peer;
        f->dst = vi;
        f->xfer = a->transfer;
        f->total = a->length;
        link_dn(w, fi);
        if (a->peer == CDN) {
            activate(w, fi, w->now + (uint64_t)(w->sc->cdn_latency_ms * 1000));
            return;
        }
        viewer *u = a->peer < w->nv ? &w->v[a->peer] : NULL;
        if (u != NULL && u->state == V_GONE && u->abrupt)
            return; /* into a link whose other end vanished: no answer (the engine's first-byte timeout) */
        if (u == NULL || u->e == NULL || u->state == V_GONE) {
            flow_end(w, fi);
            pc_engine_on_fail(v->e, a->transfer, PC_ENET, w->now);
            w->engine_calls++;
            return;
        }
        f->req = ((uint64_t)f->gen << 32) | fi;
        pc_engine_on_request(u->e, f->req, vi, a->rung, a->segment, a->offset, a->length, a->deadline, w->now);
        w->engine_calls++;
        touch(w, a->peer);
        return;
    }
    case PC_ACT_CANCEL: {
        uint32_t fi = find_dn_flow(w, vi, a->transfer);
        if (fi == NONE)
            return;
        flow *f = &w->flows[fi];
        if (f->src != CDN && w->v[f->src].e != NULL) {
            pc_engine_on_served(w->v[f->src].e, f->req, (uint64_t)f->done, w->now);
            w->engine_calls++;
            touch(w, f->src);
        }
        flow_end(w, fi);
        return;
    }
    case PC_ACT_READY:
        if (a->segment == PC_SEG_INIT)
            return;
        deliver_have(w, vi, a->rung, a->segment);
        return;
    case PC_ACT_BAN:
    case PC_ACT_DROP:
        disconnect(w, vi, a->peer);
        return;
    case PC_ACT_SERVE: {
        uint32_t fi = (uint32_t)(a->request & 0xffffffffu);
        if (fi >= w->nflows || !w->flows[fi].used || w->flows[fi].req != a->request)
            return;
        flow *f = &w->flows[fi];
        /* the first byte arrives a round trip after the request: the request's way (the uploader's engine
         * hears of it at once, a simplification) and the data's */
        activate(w, fi, w->now + (uint64_t)(2 * one_way_us(w, vi, f->dst)));
        return;
    }
    case PC_ACT_REFUSE: {
        uint32_t fi = (uint32_t)(a->request & 0xffffffffu);
        if (fi >= w->nflows || !w->flows[fi].used || w->flows[fi].req != a->request)
            return;
        flow *f = &w->flows[fi];
        uint32_t dst = f->dst;
        uint64_t xfer = f->xfer;
        flow_end(w, fi);
        if (w->v[dst].e != NULL) {
            pc_engine_on_fail(w->v[dst].e, xfer, a->reason == PC_REFUSE_NOT_HELD ? PC_ENOENT : PC_EAGAIN, w->now);
            w->engine_calls++;
            touch(w, dst);
        }
        return;
    }
    case PC_ACT_ENDED:
        finish_watching(w, vi);
        return;
    case PC_ACT_SUSPECT: /* the simulator's peers send good bytes */
        return;
    }
}

/* Cache hints for a batch of actions: the viewers the FETCHes go to, then their engines, which the
 * requests wake. */
static void prefetch_peers(const world *w, const pc_action *a, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (a[k].type == PC_ACT_FETCH && a[k].peer < w->nv)
            __builtin_prefetch(&w->v[a[k].peer]);
    for (size_t k = 0; k < n; k++)
        if (a[k].type == PC_ACT_FETCH && a[k].peer < w->nv && w->v[a[k].peer].e != NULL)
            pc_engine_prefetch(w->v[a[k].peer].e);
}

static void drain(world *w)
{
    while (w->nwork > 0 && !w->oom) {
        uint32_t vi = w->work[--w->nwork];
        viewer *v = &w->v[vi];
        v->queued = 0;
        if (v->e == NULL)
            continue;
        /* actions in batches: the peers a batch asks for segments are requested from memory together */
        pc_action a[16];
        size_t na;
        do {
            na = 0;
            while (na < 16 && pc_engine_next_action(v->e, &a[na]))
                na++;
            prefetch_peers(w, a, na);
            for (size_t k = 0; k < na && v->e != NULL; k++)
                handle(w, vi, &a[k]);
        } while (na == 16 && v->e != NULL);
        if (v->e == NULL)
            continue;
        if (pc_engine_error(v->e) != 0)
            w->oom = 1;
        uint64_t t = pc_engine_expiry(v->e);
        if (t != UINT64_MAX && t != v->timer_t) {
            v->timer_t = t;
            push(w, t, EV_ENGINE, vi, ++v->timer_ver);
        } else if (t == UINT64_MAX) {
            v->timer_t = t;
            v->timer_ver++;
        }
    }
}

/* ---- tracker ---- */

static void fill_announce(world *w, uint32_t vi, int event, pc_announce *an)
{
    viewer *v = &w->v[vi];
    memset(an, 0, sizeof(*an));
    for (int k = 0; k < 4; k++)
        an->peer_id[12 + k] = (uint8_t)(vi >> (24 - 8 * k));
    an->peer_id[0] = 0x50;
    for (int k = 0; k < 4; k++)
        an->key[k] = (uint8_t)(vi >> (24 - 8 * k));
    an->key[31] = 0x4b;
    /* a network of its own for each viewer (a /48 of fd00::/8), as real viewers rarely share one: the
     * tracker ranks a peer on the same network above one in the same region, and with 10.x.y.z addresses
     * every 256 viewers in a row shared a /24, so arrival order decided who was near, not the regions
     * (42% of the links within a region in a three-region run, 92% now; found by review) */
    an->has_addr = 1;
    an->addr[0] = 0xfd;
    for (int k = 0; k < 4; k++)
        an->addr[1 + k] = (uint8_t)(vi >> (24 - 8 * k));
    an->port = 4000;
    snprintf(an->video, sizeof(an->video), "%s", w->videos[v->video].id);
    pc_engine_stats st;
    pc_engine_get_stats(v->e, w->now, &st);
    snprintf(an->rendition, sizeof(an->rendition), "r%u", st.rung);
    an->playhead_ms = (uint32_t)(pc_engine_playhead(v->e) / 1000);
    pc_engine_holdings(v->e, st.rung, &an->need, &an->have_lo, &an->have_hi);
    an->up_kbps = (uint32_t)(v->up * 8 / 1000);
    snprintf(an->region, sizeof(an->region), "%s", w->sc->region_name[v->region]);
    an->event = event;
    /* a viewer with every neighbour slot taken would link to none of them (the client does not dial
     * then): it asks for none, and the tracker does not search */
    an->numwant = v->nnbr >= w->sc->max_neighbours ? 0 : w->sc->numwant;
    an->seeding = v->state == V_SEEDING;
    an->counters.bytes_cdn = st.bytes_cdn;
    an->counters.bytes_p2p = st.bytes_p2p;
    an->counters.bytes_up = st.bytes_up;
    an->counters.stalls = st.stalls;
    an->counters.stall_ms = st.stall_us / 1000;
    an->counters.startup_ms = st.startup_us != PC_NEVER ? st.startup_us / 1000 : 0;
    an->counters.played_ms = st.played_us / 1000;
}

static void announce(world *w, uint32_t vi, int event)
{
    viewer *v = &w->v[vi];
    if (w->mode == SIM_MODE_CDN_ONLY || v->e == NULL)
        return;
    pc_announce an;
    fill_announce(w, vi, event, &an);
    uint32_t self = PC_NONE;
    if (pc_registry_announce(w->reg, &an, pc_locality_net(an.addr), w->now, &self) != 0)
        return;
    w->announces++; /* a stopped one too: the tracker accepted it, and removed the peer (self = none) */
    if (self == PC_NONE)
        return;
    w->numwant0 += an.numwant == 0;
    if (v->state != V_WATCHING || an.numwant == 0)
        return;
    w->peer_lists++;
    uint32_t picked[PC_NUMWANT_MAX];
    size_t n = pc_select_peers(w->reg, self, an.need, an.numwant, PC_SELECT_SCAN_DEFAULT, w->now,
                                &w->videos[v->video].sel, NULL, NULL, picked);
    for (size_t k = 0; k < n; k++) {
        const pc_peer_rec *p = pc_registry_peer(w->reg, picked[k]);
        uint32_t u = (uint32_t)p->id[12] << 24 | (uint32_t)p->id[13] << 16 | (uint32_t)p->id[14] << 8 | p->id[15];
        if (u >= w->nv)
            continue;
        connect1(w, vi, u);
        connect1(w, u, vi); /* links are two-way: the other end may fetch from us too */
    }
}

/* ---- viewers ---- */

static void record(world *w, uint32_t vi);

static void finish_watching(world *w, uint32_t vi)
{
    viewer *v = &w->v[vi];
    if (v->state != V_WATCHING)
        return;
    w->watching--;
    v->watched = w->now;
    if (v->seed_for > 0 && w->mode != SIM_MODE_CDN_ONLY) {
        v->state = V_SEEDING;
        w->watching_e[vi] = NULL;
        w->seeding++;
        /* a seeder downloads nothing: drop the peers in its engine */
        while (v->nnbr > 0) {
            uint32_t u = v->nbr[0];
            pc_engine_peer_remove(v->e, u, w->now);
            disconnect(w, vi, u);
        }
        push(w, w->now + v->seed_for, EV_DEPART, vi, 0);
        announce(w, vi, PC_EV_PERIODIC);
    } else {
        v->state = V_LEAVING;
        push(w, w->now, EV_DEPART, vi, 0);
    }
}

/* Sets up viewer slot |vi| as this world's. */
static viewer *own_viewer(world *w, uint32_t vi)
{
    viewer *v = &w->v[vi];
    memset(v, 0, sizeof(*v));
    v->up_head = v->dn_head = NONE;
    v->rec = PC_NONE;
    v->timer_t = UINT64_MAX;
    v->mine = 1;
    return v;
}

/* Arrival |k| of the run (viewer base + k) starts watching. */
static void arrive(world *w, uint32_t k)
{
    const sim_scenario *sc = w->sc;
    const sim_arrival *ar = &w->arr[k];
    uint32_t vi = w->base + k;
    viewer *v = own_viewer(w, vi);
    v->video = ar->video;
    v->region = ar->region;
    v->up = ar->up_kbps * 1000 / 8;
    v->down = ar->down_kbps * 1000 / 8;
    v->seed_for = (uint64_t)(ar->seed_after_s * S_US);
    v->abrupt = ar->abrupt;
    v->arrive = w->now;
    video *vd = &w->videos[v->video];
    v->swarm_at_arrival = vd->present;
    vd->present++;
    pc_engine_config c = sc->engine;
    c.seed = sc->seed * 1000003ULL + vi;
    c.id = vi; /* the handle its peers' engines know it by */
    c.cdn_only = w->mode == SIM_MODE_CDN_ONLY;
    c.p2p_only = w->mode == SIM_MODE_P2P_ONLY;
    c.upload_bps = w->mode == SIM_MODE_CDN_ONLY ? 0 : (uint64_t)(v->up * 8);
    c.cdn_rtt_us = (uint64_t)(sc->cdn_latency_ms * 1000);
    int er = pc_engine_new(&vd->m, &c, &v->e);
    if (er != 0) { /* the engine refused the scenario's media or configuration: say what it said */
        w->err = er != PC_ENOMEM ? er : w->err;
        w->oom = 1;
        return;
    }
    v->state = V_WATCHING;
    w->watching_e[vi] = v->e;
    w->watching++;
    pc_engine_play(v->e, w->now);
    w->engine_calls++;
    touch(w, vi);
    double dur_s = (double)vd->start[vd->n] / S_US; /* the video's length (its last segment may be short) */
    if (ar->watch < 1)
        push(w, w->now + (uint64_t)(ar->watch * dur_s * S_US), EV_LEAVE, vi, 0);
    if (ar->seeks) {
        double at = ar->watch * dur_s * ar->seek_u;
        push(w, w->now + (uint64_t)(at * S_US), EV_SEEK, vi, (uint32_t)(ar->seek_pos * 1e6));
    }
    announce(w, vi, PC_EV_STARTED);
    if (w->mode != SIM_MODE_CDN_ONLY)
        push(w, w->now + (uint64_t)(sc->announce_interval_s * S_US), EV_ANNOUNCE, vi, 0);
}

/* Always-on seeders: they hold the whole video from the start, announce as seeding and never leave.
 * Seeder j of video k is viewer k × seeders + j. */
static void add_seeders(world *w)
{
    const sim_scenario *sc = w->sc;
    if (w->mode == SIM_MODE_CDN_ONLY)
        return;
    for (uint32_t k = 0; k < sc->videos; k++) {
        if (w->videos[k].part != w->part)
            continue;
        for (uint32_t j = 0; j < sc->seeders; j++) {
            uint32_t vi = k * sc->seeders + j;
            viewer *v = own_viewer(w, vi);
            v->video = k;
            v->up = sc->seeder_up_kbps * 1000 / 8;
            v->down = v->up;
            v->seeder = 1;
            pc_engine_config c = sc->engine;
            c.upload_bps = (uint64_t)(v->up * 8);
            c.upload_slots = 8;
            if (pc_engine_new(&w->videos[k].m, &c, &v->e) != 0) {
                w->oom = 1;
                return;
            }
            pc_engine_hold_all(v->e);
            v->state = V_SEEDING;
            announce(w, vi, PC_EV_STARTED);
            push(w, w->now + (uint64_t)(sc->announce_interval_s * S_US), EV_ANNOUNCE, vi, 0);
        }
    }
}

static void record(world *w, uint32_t vi)
{
    viewer *v = &w->v[vi];
    sim_viewer_result *r = &w->rv[vi];
    pc_engine_stats st;
    pc_engine_get_stats(v->e, w->now, &st); /* a stall still under way at the end counts up to it */
    const video *vd = &w->videos[v->video];
    r->seeder = v->seeder;
    r->video = v->video;
    r->region = v->region;
    r->up_kbps = v->up * 8 / 1000;
    r->down_kbps = v->down * 8 / 1000;
    r->arrive_s = (double)v->arrive / S_US;
    r->leave_s = (double)w->now / S_US;
    r->started = st.startup_us != PC_NEVER;
    r->startup_ms = r->started ? (double)st.startup_us / 1000 : 0;
    r->stall_ms = (double)st.stall_us / 1000;
    r->played_ms = (double)st.played_us / 1000;
    r->stalls = st.stalls;
    r->seeks = st.seeks;
    r->seek_wait_ms = (double)st.seek_wait_us / 1000;
    r->switches = st.rung_switches;
    r->swarm = v->swarm_at_arrival;
    r->bytes_cdn = v->bytes_cdn;
    r->bytes_p2p = v->bytes_p2p;
    r->bytes_up = v->bytes_up;
    /* mean bitrate over the segments it played, and what it received, for the bound */
    uint64_t pos = st.playhead_us, acc = 0;
    double wsum = 0, bsum = 0;
    size_t bb = (vd->n + 7) / 8;
    v->got = calloc(vd->m.n_rungs, bb);
    if (v->got == NULL)
        w->oom = 1; /* the bound needs it: fail the run rather than under-count */
    for (uint32_t i = 0; i < vd->n; i++) {
        pc_segment_info si;
        pc_engine_segment(v->e, i, &si);
        if (si.ready && v->got != NULL)
            v->got[si.rung * bb + i / 8] |= (uint8_t)(1u << (i % 8));
        if (si.ready && acc < pos) {
            wsum += vd->dur[i];
            bsum += (double)vd->dur[i] * vd->m.rung[si.rung].bandwidth / 1000.0;
        }
        acc += vd->dur[i];
    }
    r->bitrate_kbps = wsum > 0 ? bsum / wsum : 0;
    v->left = w->now;
    if (v->state == V_WATCHING)
        v->watched = w->now; /* still watching at the end */
}

/* |x|'s link to |gone| is closed: its requests there that were never answered end, and its engine,
 * told first of the bytes that arrived, drops the peer. */
static void close_link(world *w, uint32_t x, uint32_t gone)
{
    viewer *v = &w->v[x];
    if (v->e == NULL)
        return;
    credit(w, x);
    for (uint32_t f = v->dn_head, next; f != NONE; f = next) {
        next = w->flows[f].dn_next;
        if (w->flows[f].src == gone)
            flow_end(w, f);
    }
    pc_engine_peer_remove(v->e, gone, w->now);
    w->engine_calls++;
    touch(w, x);
}

static void depart(world *w, uint32_t vi)
{
    viewer *v = &w->v[vi];
    if (v->state == V_GONE || v->e == NULL)
        return;
    if (v->state == V_WATCHING)
        w->watching--;
    else if (v->state == V_SEEDING)
        w->seeding--;
    credit(w, vi);
    record(w, vi);
    w->stalls_gone += w->rv[vi].stalls;
    if (!v->abrupt)
        announce(w, vi, PC_EV_STOPPED);
    v->state = V_GONE;
    w->watching_e[vi] = NULL;
    w->videos[v->video].present--;
    /* its uploads end: the downloaders' engines are first told of the bytes that arrived (flow_end
     * counts them to the receiver; untold, its engine would fetch them again), then hear it as a lost
     * peer (or, after an abrupt leave, notice by their timeouts) */
    while (v->up_head != NONE) {
        uint32_t d = w->flows[v->up_head].dst;
        if (w->v[d].e != NULL) {
            credit(w, d);
            touch(w, d);
        }
        flow_end(w, v->up_head);
    }
    while (v->dn_head != NONE) {
        uint32_t fi = v->dn_head;
        flow *f = &w->flows[fi];
        if (f->src != CDN && w->v[f->src].e != NULL) {
            pc_engine_on_served(w->v[f->src].e, f->req, (uint64_t)f->done, w->now);
            touch(w, f->src);
        }
        flow_end(w, fi);
    }
    /* A viewer leaving normally closes its links, and its peers drop it at once. One that vanishes (an
     * abrupt leave: a phone losing its signal) says nothing: its transfers stop where they are, which
     * its peers' engines notice by their stall and first-byte timeouts, requests to it go unanswered,
     * and each link is closed after LINK_SILENCE_US without a keep-alive. */
    while (v->nwat > 0) {
        uint32_t x = v->wat[0];
        if (v->abrupt) {
            push(w, w->now + LINK_SILENCE_US, EV_LINKDOWN, x, vi);
            arr_del(v->wat, &v->nwat, x);
            continue;
        }
        close_link(w, x, vi);
        disconnect(w, x, vi);
    }
    while (v->nnbr > 0)
        disconnect(w, vi, v->nbr[0]);
    pc_engine_free(v->e);
    v->e = NULL;
    free(v->nbr);
    free(v->wat);
    v->nbr = v->wat = NULL;
    v->cnbr = v->cwat = 0;
}

/* ---- the bound (sim/bound.c) ---- */

/* The bound over every world's viewers: viewer i is in the world that runs its video. */
static int bound(world *ws, sim_result *res)
{
    const world *w0 = &ws[0];
    const sim_scenario *sc = w0->sc;
    sim_bound_viewer *bv = malloc(((size_t)w0->nv + 1) * sizeof(*bv));
    const pc_media **media = malloc(((size_t)sc->videos + 1) * sizeof(*media));
    sim_bound out;
    int rc = 0;
    if (bv == NULL || media == NULL) {
        free(bv), free(media);
        return PC_ENOMEM;
    }
    for (uint32_t k = 0; k < sc->videos; k++)
        media[k] = &w0->videos[k].m;
    uint32_t n = 0;
    for (uint32_t i = 0; i < w0->nv; i++) {
        const viewer *v = &w0->v[i]; /* one array, shared by the worlds */
        if (!v->mine)
            continue; /* never arrived (the run failed) */
        bv[n++] = (sim_bound_viewer){.video = v->video, .arrive = v->arrive, .left = v->left,
                                     .watched = v->watched, .up = v->up,
                                     .seeder = v->seeder, .bytes = (double)(v->bytes_cdn + v->bytes_p2p),
                                     .got = v->got};
    }
    if (sim_bound_compute(media, sc->videos, bv, n, w0->end, &out) != 0) {
        rc = PC_ENOMEM;
    } else {
        res->demand_bytes = out.demand_bytes;
        res->cdn_needed_bytes = out.cdn_needed_bytes;
        res->usable_upload_bytes = out.usable_upload_bytes;
        res->offload_bound = out.offload_bound;
    }
    free(bv), free(media);
    return rc;
}

/* ---- the run ---- */

/* Adds this world's counts to the shared sample of its index: every world samples at the same instants (0,
 * each timeseries_s, the end), so the k-th samples of all the worlds are one. One array for them all:
 * with one each, a month at 1 s took 113 MB on one thread and 846 MB on eight (found by review). The sums
 * are of integers, so they do not depend on the order the worlds add them in. */
static void sample(world *w)
{
    if (w->nts == w->cts) { /* sized in sim_run for every instant: not reached */
        w->oom = 1;
        return;
    }
    /* A sample only looks: the bytes still in flight are counted as they stand, not handed to the
     * engines (that would change what they do, and so the results would depend on the sampling period). */
    uint64_t stalls = w->stalls_gone, cdn = w->total_cdn, p2p = w->total_p2p;
    for (uint32_t j = 0; j < w->nown; j++) {
        uint32_t i = w->own[j];
        if (w->v[i].e != NULL) {
            for (uint32_t f = w->v[i].dn_head; f != NONE; f = w->flows[f].dn_next) {
                uint32_t d = uncredited(w, &w->flows[f]);
                *(w->flows[f].src == CDN ? &cdn : &p2p) += d;
            }
            pc_engine_stats st;
            pc_engine_get_stats(w->v[i].e, w->now, &st);
            stalls += st.stalls;
        }
    }
    sim_sample *s = &w->ts[w->nts++];
    double t = (double)w->now / S_US;
    __atomic_store(&s->t_s, &t, __ATOMIC_RELAXED); /* the same value from every world */
    __atomic_fetch_add(&s->watching, w->watching, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->seeding, w->seeding, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->bytes_cdn, cdn, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->bytes_p2p, p2p, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->stalls, (uint32_t)stalls, __ATOMIC_RELAXED);
    w->last_sample = w->now;
}

static void progress_bar(FILE *out, sim_mode mode, uint64_t now, uint64_t end, uint32_t watching, uint32_t seeding,
                         int final)
{
    double f = (double)now / (double)end;
    int n = (int)(f * 30);
    fprintf(out, "\r%s [", sim_mode_name(mode));
    for (int i = 0; i < 30; i++)
        fputc(i < n ? '#' : '.', out);
    /* a terminal's (the bar is drawn only on one): \033[K clears what a longer frame left */
    if (final)
        fprintf(out, "] %3.0f%%  t=%.0f/%.0f s  done\033[K\n", f * 100, (double)now / S_US, (double)end / S_US);
    else
        fprintf(out, "] %3.0f%%  t=%.0f/%.0f s  %u watching  %u seeding\033[K", f * 100, (double)now / S_US,
                (double)end / S_US, watching, seeding);
    fflush(out);
}

/* Events whose id is a viewer (an arrival's is its place in the arrival list). */
static int names_viewer(uint32_t kind)
{
    return kind == EV_ENGINE || kind == EV_ANNOUNCE || kind == EV_LEAVE || kind == EV_DEPART || kind == EV_SEEK ||
           kind == EV_LINKDOWN;
}

/* Cache hints for the events due next (the run is bound by memory latency: most events wake a viewer
 * nothing touched for a while). Each pop requests the viewer or flow of the next few events, and, for
 * the very next one, whose viewer or flow was requested a pop earlier, the lines one step further on. */
static void prefetch_ahead(const world *w)
{
    const sim_ev *a;
    size_t n = sim_evq_ahead(&w->q, &a, 5);
    for (size_t k = 0; k < n; k++) {
        if (a[k].kind == EV_FLOW || a[k].kind == EV_START)
            __builtin_prefetch(&w->flows[a[k].id]);
        else if (names_viewer(a[k].kind) && a[k].id < w->nv)
            __builtin_prefetch(&w->v[a[k].id]);
    }
    if (n == 0)
        return;
    const viewer *v = NULL;
    if (a[0].kind == EV_FLOW) {
        const flow *f = &w->flows[a[0].id];
        if (f->used && f->ver == a[0].ver) {
            v = &w->v[f->dst];
            __builtin_prefetch(v);
            __builtin_prefetch(&w->v[f->src == CDN ? f->dst : f->src]);
        }
    } else if (a[0].kind == EV_ENGINE) {
        v = &w->v[a[0].id];
        if (v->timer_ver != a[0].ver)
            v = NULL;
    }
    if (v != NULL && v->e != NULL)
        pc_engine_prefetch(v->e);
}

/* One world's whole run: its seeders and arrivals, the event loop to the end, the last records. */
static void *world_run(void *arg)
{
    world *w = arg;
    const sim_scenario *sc = w->sc;
    uint32_t nown = 0, nseed = w->mode == SIM_MODE_CDN_ONLY ? 0 : sc->seeders;
    for (uint32_t k = 0; k < sc->videos; k++)
        nown += w->videos[k].part == w->part ? nseed : 0;
    for (uint32_t k = 0; k < w->narr; k++)
        nown += w->videos[w->arr[k].video].part == w->part;
    if ((w->own = malloc(((size_t)nown + 1) * sizeof(*w->own))) == NULL)
        w->oom = 1;
    for (uint32_t k = 0; k < sc->videos && !w->oom; k++)
        for (uint32_t j = 0; j < nseed && w->videos[k].part == w->part; j++)
            w->own[w->nown++] = k * sc->seeders + j; /* add_seeders' numbering */
    for (uint32_t k = 0; k < w->narr && !w->oom; k++)
        if (w->videos[w->arr[k].video].part == w->part)
            w->own[w->nown++] = w->base + k;
    pc_registry_config rc_cfg = {.interval_us = (uint64_t)(sc->announce_interval_s * S_US), .max_peers = 20000000,
                                 .max_swarms = sc->videos + 16, .hash_seed = sc->seed};
    if (!w->oom && (w->reg = pc_registry_new(&rc_cfg)) == NULL)
        w->oom = 1;
    if (!w->oom)
        add_seeders(w);
    /* every arrival is queued first, in order: an arrival comes before anything else at the same instant */
    for (uint32_t k = 0; k < w->narr && !w->oom; k++)
        if (w->videos[w->arr[k].video].part == w->part)
            push(w, w->arr[k].at, EV_ARRIVE, k, 0);
    push(w, 0, EV_SAMPLE, 0, 0);
    if (w->mode != SIM_MODE_CDN_ONLY)
        push(w, SWEEP_US, EV_SWEEP, 0, 0);
    if (sc->cdn_capacity_mbps > 0)
        push(w, CDN_SHARE_US, EV_CDN_SHARE, 0, 0);
    uint64_t next_progress = 0;
    sim_ev e;
    while (!w->oom && sim_evq_pop(&w->q, &e)) {
        if (e.t > w->end)
            break;
        w->now = e.t;
        w->events++;
        prefetch_ahead(w);
        switch (e.kind) {
        case EV_ARRIVE:
            arrive(w, e.id);
            break;
        case EV_ENGINE: {
            viewer *v = &w->v[e.id];
            if (v->e == NULL || e.ver != v->timer_ver)
                break;
            v->timer_t = UINT64_MAX;
            credit(w, e.id);
            pc_engine_on_timeout(v->e, w->now);
            w->engine_calls++;
            touch(w, e.id);
            break;
        }
        case EV_FLOW: {
            flow *f = &w->flows[e.id];
            if (!f->used || !f->active || e.ver != f->ver)
                break;
            advance(w, f);
            f->done = f->total;
            viewer *d = &w->v[f->dst];
            credit(w, f->dst);
            uint32_t src = f->src, to = f->dst;
            uint64_t xfer = f->xfer, req = f->req;
            double total = f->total;
            flow_end(w, e.id);
            pc_engine_on_done(d->e, xfer, w->zeros, w->now);
            w->engine_calls++;
            touch(w, to);
            if (src != CDN && w->v[src].e != NULL) {
                pc_engine_on_served(w->v[src].e, req, (uint64_t)total, w->now);
                w->engine_calls++;
                touch(w, src);
            }
            break;
        }
        case EV_ANNOUNCE: {
            viewer *v = &w->v[e.id];
            if (v->e == NULL || v->state == V_GONE)
                break;
            credit(w, e.id);
            announce(w, e.id, PC_EV_PERIODIC);
            push(w, w->now + (uint64_t)(sc->announce_interval_s * S_US), EV_ANNOUNCE, e.id, 0);
            break;
        }
        case EV_LEAVE: {
            viewer *v = &w->v[e.id];
            if (v->e == NULL || v->state != V_WATCHING)
                break;
            credit(w, e.id);
            pc_engine_quit(v->e, w->now);
            touch(w, e.id);
            finish_watching(w, e.id);
            break;
        }
        case EV_SEEK: {
            viewer *v = &w->v[e.id];
            if (v->e == NULL || v->state != V_WATCHING)
                break;
            const video *vd = &w->videos[v->video];
            double dur = (double)vd->start[vd->n] / S_US;
            credit(w, e.id);
            pc_engine_seek(v->e, (uint64_t)((double)e.ver / 1e6 * dur * 0.9 * S_US), w->now);
            touch(w, e.id);
            break;
        }
        case EV_DEPART:
            depart(w, e.id);
            break;
        case EV_SAMPLE:
            sample(w);
            push(w, w->now + (uint64_t)(sc->timeseries_s * S_US), EV_SAMPLE, 0, 0);
            break;
        case EV_CDN_SHARE:
            cdn_reshare(w);
            push(w, w->now + CDN_SHARE_US, EV_CDN_SHARE, 0, 0);
            break;
        case EV_START: {
            flow *f = &w->flows[e.id];
            if (f->used && f->active && !f->sharing && e.ver == f->ver)
                start(w, e.id);
            break;
        }
        case EV_SWEEP:
            /* peers that stopped announcing without saying so (abrupt leavers) */
            pc_registry_expire(w->reg, w->now);
            push(w, w->now + SWEEP_US, EV_SWEEP, 0, 0);
            break;
        case EV_LINKDOWN: {
            /* viewer e.id's link to e.ver, which vanished, has been silent too long: closed */
            viewer *v = &w->v[e.id];
            if (v->e == NULL || !arr_has(v->nbr, v->nnbr, e.ver))
                break;
            close_link(w, e.id, e.ver);
            arr_del(v->nbr, &v->nnbr, e.ver);
            break;
        }
        }
        drain(w);
        if (w->now >= next_progress) {
            next_progress = w->now + w->end / 100;
            if (w->progress != NULL)
                progress_bar(w->progress, w->mode, w->now, w->end, w->watching, w->seeding, 0);
            atomic_store_explicit(&w->pub_now, w->now, memory_order_relaxed);
            atomic_store_explicit(&w->pub_watching, w->watching, memory_order_relaxed);
            atomic_store_explicit(&w->pub_seeding, w->seeding, memory_order_relaxed);
        }
    }
    if (!w->oom) {
        w->now = w->end;
        if (w->nts == 0 || w->last_sample < w->end)
            sample(w); /* unless a sample fell on the end itself */
        for (uint32_t j = 0; j < w->nown; j++)
            if (w->v[w->own[j]].e != NULL) {
                credit(w, w->own[j]);
                record(w, w->own[j]);
            }
        /* what a viewer uploaded after its row was written (flows it was still sending on when it
         * left, the last crediting above) */
        for (uint32_t j = 0; j < w->nown; j++)
            if (w->v[w->own[j]].mine)
                w->rv[w->own[j]].bytes_up = w->v[w->own[j]].bytes_up;
    }
    atomic_store_explicit(&w->pub_now, w->end, memory_order_relaxed);
    atomic_store(&w->done, 1);
    return NULL;
}

static void world_free(world *w)
{
    for (uint32_t j = 0; w->v != NULL && j < w->nown; j++) {
        viewer *v = &w->v[w->own[j]];
        pc_engine_free(v->e);
        free(v->nbr);
        free(v->wat);
        free(v->got);
    }
    free(w->own);
    free(w->flows);
    free(w->work);
    sim_evq_clear(&w->q);
    pc_registry_free(w->reg);
}

/* Every arrival up to the end, drawn in the workload's fixed order (before any world runs, so the
 * viewers do not depend on the split). */
static int draw_arrivals(const sim_scenario *sc, uint64_t seed, uint32_t first, uint64_t end, sim_arrival **out,
                         uint32_t *n)
{
    sim_workload wl;
    *out = NULL;
    *n = 0;
    int rc = sim_workload_init(&wl, sc, seed);
    if (rc != 0)
        return rc;
    uint32_t cap = 0;
    uint64_t at, last = 0;
    while (sim_workload_next_time(&wl, *n, &at) == 0) { /* max_viewers counts arrivals, not seeders */
        if (at < last)
            at = last; /* as the event queue would have it */
        if (at > end || *n == UINT32_MAX - first)
            break;
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            sim_arrival *p = realloc(*out, cap * sizeof(*p));
            if (p == NULL) {
                rc = PC_ENOMEM;
                break;
            }
            *out = p;
        }
        sim_workload_viewer(&wl, at, &(*out)[(*n)++]);
        last = at;
    }
    sim_workload_clear(&wl);
    return rc;
}

/* Videos to |parts| worlds, heaviest first to the least loaded (load: viewers, seeders included). */
/* Heaviest first by |load|; ties in video order, so the split does not depend on qsort's. */
static int heavier_first(const void *a, const void *b, void *load)
{
    const uint64_t *l = load;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (l[x] != l[y])
        return l[x] > l[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void split(const sim_scenario *sc, video *videos, const sim_arrival *arr, uint32_t narr, uint32_t parts)
{
    uint64_t *load = calloc(sc->videos, sizeof(*load));
    uint32_t *order = malloc(sc->videos * sizeof(*order));
    uint64_t sum[PARTS_MAX] = {0};
    if (load == NULL || order == NULL || parts <= 1) {
        for (uint32_t k = 0; k < sc->videos; k++)
            videos[k].part = parts <= 1 ? 0 : k % parts; /* no memory to weigh: round robin */
        free(load), free(order);
        return;
    }
    for (uint32_t i = 0; i < narr; i++)
        load[arr[i].video]++;
    for (uint32_t k = 0; k < sc->videos; k++) {
        load[k] += sc->seeders;
        order[k] = k;
    }
    qsort_r(order, sc->videos, sizeof(*order), heavier_first, load);
    for (uint32_t i = 0; i < sc->videos; i++) {
        uint32_t best = 0;
        for (uint32_t p = 1; p < parts; p++)
            if (sum[p] < sum[best])
                best = p;
        videos[order[i]].part = best;
        sum[best] += load[order[i]];
    }
    free(load), free(order);
}

int sim_run(const sim_scenario *sc, sim_mode mode, uint64_t seed, uint32_t threads, FILE *progress, sim_result *out)
{
    memset(out, 0, sizeof(*out));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sim_scenario local = *sc;
    local.seed = seed;
    out->mode = mode;
    uint64_t end = (uint64_t)(sc->duration_s * S_US);
    uint32_t nseed = mode == SIM_MODE_CDN_ONLY ? 0 : sc->seeders * sc->videos;
    sim_arrival *arr = NULL;
    uint32_t narr = 0;
    video *videos = NULL;
    uint8_t *zeros = NULL;
    /* a shared CDN capacity couples every swarm: one world then */
    uint32_t parts = threads == 0 ? 1 : threads;
    if (parts > PARTS_MAX)
        parts = PARTS_MAX;
    if (parts > sc->videos) /* a world holds whole swarms: at most one per video */
        parts = sc->videos;
    if (sc->cdn_capacity_mbps > 0)
        parts = 1;
    world *ws = calloc(parts, sizeof(*ws));
    viewer *vs = NULL;            /* the worlds' viewers: one array, each world uses its own entries */
    pc_engine **watching_e = NULL;
    int rc = ws == NULL ? PC_ENOMEM : draw_arrivals(&local, seed, nseed, end, &arr, &narr);
    if (rc == 0)
        rc = make_videos(&local, seed, &videos, &zeros);
    uint32_t nv = nseed + narr;
    if (rc == 0) {
        split(&local, videos, arr, narr, parts);
        out->v = calloc((size_t)nv + 1, sizeof(*out->v));
        vs = calloc((size_t)nv + 1, sizeof(*vs));
        watching_e = calloc((size_t)nv + 1, sizeof(*watching_e));
        if (out->v == NULL || vs == NULL || watching_e == NULL)
            rc = PC_ENOMEM;
    }
    /* the time series: one sample at 0, at each timeseries_s after, and at the end */
    uint64_t ts_us = (uint64_t)(sc->timeseries_s * S_US);
    uint64_t nts64 = (ts_us > 0 ? end / ts_us : 0) + 2;
    sim_sample *shared_ts = NULL;
    if (rc == 0 && (ts_us == 0 || nts64 > UINT32_MAX || (shared_ts = calloc((size_t)nts64, sizeof(*shared_ts))) == NULL))
        rc = PC_ENOMEM;
    const char *trace_s = getenv("PEERCDN_SIM_TRACE");
    int64_t trace;
    if (trace_s == NULL || pc_parse_int_str(trace_s, 0, UINT32_MAX - 1, 0, &trace) != 0)
        trace = NONE; /* unset, or not a viewer's number */
    for (uint32_t p = 0; rc == 0 && p < parts; p++) {
        world *w = &ws[p];
        *w = (world){.sc = &local, .mode = mode, .part = p, .arr = arr, .narr = narr, .base = nseed, .end = end,
                     .videos = videos, .zeros = zeros, .free_flow = NONE, .cdn_head = NONE, .nv = nv, .rv = out->v,
                     .v = vs, .watching_e = watching_e,
                     .trace = (uint32_t)trace, .ts = shared_ts, .cts = (uint32_t)nts64,
                     .progress = parts == 1 ? progress : NULL};
    }
    pthread_t tid[PARTS_MAX];
    uint32_t started = 0;
    if (rc == 0 && parts == 1) {
        world_run(&ws[0]);
    } else if (rc == 0) {
        /* 2 MiB stacks, not the 8 MiB default: a world's calls go a few frames deep (no recursion), and each
         * stack counts in full against the run's memory limit (main.c), used or not */
        pthread_attr_t attr;
        int have_attr = pthread_attr_init(&attr) == 0;
        if (have_attr && pthread_attr_setstacksize(&attr, (size_t)2 << 20) != 0) {
            pthread_attr_destroy(&attr);
            have_attr = 0;
        }
        for (; started < parts; started++)
            if (pthread_create(&tid[started], have_attr ? &attr : NULL, world_run, &ws[started]) != 0)
                break;
        if (have_attr)
            pthread_attr_destroy(&attr);
        for (uint32_t p = started; p < parts; p++)
            world_run(&ws[p]); /* no thread for it: run it here */
        while (progress != NULL) {
            uint64_t now = end;
            uint32_t watching = 0, seeding = 0;
            int all = 1;
            for (uint32_t p = 0; p < parts; p++) {
                all &= atomic_load(&ws[p].done);
                uint64_t t = atomic_load_explicit(&ws[p].pub_now, memory_order_relaxed);
                now = t < now ? t : now;
                watching += atomic_load_explicit(&ws[p].pub_watching, memory_order_relaxed);
                seeding += atomic_load_explicit(&ws[p].pub_seeding, memory_order_relaxed);
            }
            if (all)
                break;
            progress_bar(progress, mode, now, end, watching, seeding, 0);
            nanosleep(&(struct timespec){.tv_nsec = 200000000}, NULL);
        }
        for (uint32_t p = 0; p < started; p++)
            pthread_join(tid[p], NULL);
    }
    for (uint32_t p = 0; p < parts && ws != NULL; p++)
        if (ws[p].oom)
            rc = ws[p].err != 0 ? ws[p].err : PC_ENOMEM;
    if (rc == 0) {
        /* the worlds sampled at the same instants, into the one array */
        out->ts = shared_ts;
        out->nts = ws[0].nts;
        shared_ts = NULL;
        for (uint32_t p = 0; p < parts; p++) {
            out->bytes_cdn += ws[p].total_cdn;
            out->bytes_p2p += ws[p].total_p2p;
            out->bytes_up += ws[p].total_up;
            out->events += ws[p].events;
            out->engine_calls += ws[p].engine_calls;
            out->announces += ws[p].announces;
            out->peer_lists += ws[p].peer_lists;
            out->numwant0 += ws[p].numwant0;
            out->links += ws[p].links;
            out->links_in_region += ws[p].links_in_region;
        }
        out->viewers = nv;
        out->threads = parts;
        rc = bound(ws, out);
        if (progress != NULL)
            progress_bar(progress, mode, end, end, 0, 0, 1);
    }
    for (uint32_t p = 0; ws != NULL && p < parts; p++)
        world_free(&ws[p]);
    free(ws);
    free(shared_ts); /* NULL once out has it */
    free(vs);
    free(watching_e);
    for (uint32_t k = 0; videos != NULL && k < sc->videos; k++) {
        free(videos[k].dur);
        free(videos[k].start);
        free(videos[k].sizes);
    }
    free(videos);
    free(zeros);
    free(arr);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out->wall_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    out->peak_rss_kib = sim_peak_rss_kib();
    if (rc != 0)
        sim_result_clear(out);
    return rc;
}

size_t sim_peak_rss_kib(void)
{
    /* VmHWM, this process image's own: getrusage's ru_maxrss keeps what the process held before its exec,
     * so a run started by a large parent (a test holding 1.5 GB of parsed CSV) reported the parent's size */
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    unsigned long kib = 0;
    int found = 0;
    while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL)
        found = sscanf(line, "VmHWM: %lu kB", &kib) == 1;
    if (f != NULL)
        fclose(f);
    if (found)
        return (size_t)kib;
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (size_t)ru.ru_maxrss : 0;
}

void sim_result_clear(sim_result *r)
{
    free(r->v);
    free(r->ts);
    r->v = NULL;
    r->ts = NULL;
    r->nts = 0;
}
