/*
 * A small world for engine tests: a CDN and fake peers with set rates, a viewer's downlink, and an
 * explicit clock advanced in fixed steps. It carries out the engine's actions the way the real peer and
 * the simulator do (byte progress, completion with the segment's hash, cancellations) and lets a test
 * script failures: a peer that stops sending after some bytes, one that corrupts, one that leaves.
 */
#ifndef ENGINE_WORLD_H
#define ENGINE_WORLD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_engine.h"

#define W_SEGS_MAX 200
#define W_PEERS_MAX 32
#define W_XFERS_MAX 64
#define W_STEP_US 10000

typedef struct w_media {
    pc_media m;
    uint32_t dur[W_SEGS_MAX];
    uint32_t size[PC_RUNGS_MAX][W_SEGS_MAX];
    uint8_t hash[PC_RUNGS_MAX][W_SEGS_MAX * 32];
    uint8_t ihash[PC_RUNGS_MAX][32];
} w_media;

/* |n| segments of |seg_s| seconds; rung r at bw[r] bits/s; sizes vary ±10% around bw × duration. */
static void w_media_init(w_media *wm, uint32_t n, uint32_t seg_s, uint32_t nr, const uint32_t *bw)
{
    memset(wm, 0, sizeof(*wm));
    wm->m.n_rungs = nr;
    wm->m.n_segments = n;
    wm->m.seg_dur_us = wm->dur;
    for (uint32_t i = 0; i < n; i++)
        wm->dur[i] = seg_s * 1000000;
    for (uint32_t r = 0; r < nr; r++) {
        pc_media_rung *mr = &wm->m.rung[r];
        mr->bandwidth = bw[r];
        mr->init_size = 800;
        mr->init_hash = wm->ihash[r];
        mr->seg_size = wm->size[r];
        mr->seg_hash = wm->hash[r];
        for (int k = 0; k < 32; k++)
            wm->ihash[r][k] = (uint8_t)(r * 7 + k);
        for (uint32_t i = 0; i < n; i++) {
            double f = 0.9 + 0.2 * (double)((i * 37 + r * 11) % 10) / 10.0;
            wm->size[r][i] = (uint32_t)((double)bw[r] / 8.0 * seg_s * f);
            for (int k = 0; k < 32; k++)
                wm->hash[r][i * 32 + k] = (uint8_t)(i * 31 + r * 17 + k);
        }
    }
}

typedef struct w_peer {
    int present, added;
    uint32_t handle;
    uint64_t id; /* its identity in the swarm (the handle) */
    double rate;               /* bytes/s upload */
    uint32_t have_lo, have_hi; /* all rungs */
    int holds;
    uint64_t stall_after;      /* never sends a segment's bytes past this offset (0 = no limit) */
    int stall_seg;             /* only on this segment (-1: any) */
    int corrupt;               /* sends bytes whose hash does not match */
    uint64_t leave_at, join_at;/* µs; 0 = never / from the start */
    uint64_t have_at;          /* its holdings reach the engine then (0: as it joins), as a HAVE read late */
    int told;
    uint64_t silent_from;      /* requests from this time on are never answered (0 = never): it vanished
                                  without closing the link */
    uint64_t sent;
    uint32_t suspected;        /* times the engine made it a suspect */
} w_peer;

typedef struct w_xfer {
    uint64_t id;
    uint32_t peer, rung, seg;
    uint32_t offset, len, done;
    uint32_t unreported;       /* received but not yet given to the engine (w_world.report_steps) */
    uint64_t start_at;         /* after RTT */
    int stuck;
} w_xfer;

typedef struct w_world {
    w_media *wm;
    pc_engine *e;
    uint64_t now;
    double cdn_rate;           /* bytes/s */
    double down_rate;          /* viewer downlink bytes/s, 0 = unlimited */
    uint64_t rtt_us;
    uint32_t report_steps;     /* bytes go to the engine every this many steps (0, 1: every step), as the
                                  simulator reports them at its viewer's next event */
    uint64_t steps;
    w_peer peers[W_PEERS_MAX];
    uint32_t npeers;
    w_xfer x[W_XFERS_MAX];
    uint32_t nx;
    uint8_t tainted[PC_RUNGS_MAX][W_SEGS_MAX]; /* a corrupting peer sent bytes of the copy being assembled */
    /* what the test looks at */
    uint32_t cancels, bans, drops, fetch_cdn, fetch_p2p, ready, serves, refuses, ended;
    uint64_t cdn_bytes_requested, init_bytes_requested;
    uint32_t banned_handle;
    uint32_t suspects;
    uint64_t ban_at;
    uint64_t quit_inflight_bytes;   /* bytes still outstanding when the viewer quit */
    uint64_t wasted_after_quit;
    int quitted;
    void (*on_action)(struct w_world *, const pc_action *);
} w_world;

static w_peer *w_add_peer(w_world *w, double mbps, uint32_t lo, uint32_t hi)
{
    w_peer *p = &w->peers[w->npeers];
    memset(p, 0, sizeof(*p));
    p->handle = 100 + w->npeers;
    p->id = p->handle;
    p->rate = mbps * 1e6 / 8;
    p->have_lo = lo;
    p->have_hi = hi;
    p->holds = 1;
    p->stall_seg = -1;
    p->present = 1;
    w->npeers++;
    return p;
}

static w_peer *w_peer_of(w_world *w, uint32_t handle);

static void w_handle_actions(w_world *w)
{
    pc_action a;
    while (pc_engine_next_action(w->e, &a)) {
        if (w->on_action != NULL)
            w->on_action(w, &a);
        switch (a.type) {
        case PC_ACT_FETCH: {
            if (w->nx == W_XFERS_MAX)
                abort();
            w_xfer *x = &w->x[w->nx++];
            *x = (w_xfer){.id = a.transfer, .peer = a.peer, .rung = a.rung, .seg = a.segment, .offset = a.offset, .len = a.length,
                          .start_at = w->now + w->rtt_us};
            const w_peer *p = a.peer == PC_SRC_CDN ? NULL : w_peer_of(w, a.peer);
            x->stuck = p != NULL && p->silent_from > 0 && w->now >= p->silent_from;
            if (a.segment != PC_SEG_INIT && a.offset == 0)
                w->tainted[a.rung][a.segment] = 0; /* FETCH at 0 discards what was held */
            if (a.peer == PC_SRC_CDN) {
                w->fetch_cdn++;
                w->cdn_bytes_requested += a.length;
                if (a.segment == PC_SEG_INIT)
                    w->init_bytes_requested += a.length;
            } else {
                w->fetch_p2p++;
            }
            break;
        }
        case PC_ACT_CANCEL:
            w->cancels++;
            for (uint32_t i = 0; i < w->nx; i++) {
                if (w->x[i].id == a.transfer) {
                    if (w->quitted)
                        w->quit_inflight_bytes += w->x[i].len - w->x[i].done;
                    w->x[i] = w->x[--w->nx];
                    break;
                }
            }
            break;
        case PC_ACT_BAN:
        case PC_ACT_DROP:
            if (a.type == PC_ACT_BAN) {
                w->bans++;
                w->banned_handle = a.peer;
                w->ban_at = w->now;
            } else {
                w->drops++;
            }
            for (uint32_t i = 0; i < w->nx;)
                if (w->x[i].peer == a.peer)
                    w->x[i] = w->x[--w->nx];
                else
                    i++;
            break;
        case PC_ACT_READY: w->ready++; break;
        case PC_ACT_SERVE: w->serves++; break;
        case PC_ACT_REFUSE: w->refuses++; break;
        case PC_ACT_ENDED: w->ended++; break;
        case PC_ACT_SUSPECT: {
            w->suspects++;
            w_peer *p = w_peer_of(w, a.peer);
            if (p != NULL)
                p->suspected++;
            break;
        }
        }
    }
}

static w_peer *w_peer_of(w_world *w, uint32_t handle)
{
    for (uint32_t i = 0; i < w->npeers; i++)
        if (w->peers[i].handle == handle)
            return &w->peers[i];
    return NULL;
}

/* Peers join and leave on schedule. */
static void w_membership(w_world *w)
{
    for (uint32_t i = 0; i < w->npeers; i++) {
        w_peer *p = &w->peers[i];
        int want = w->now >= p->join_at && (p->leave_at == 0 || w->now < p->leave_at);
        if (want && !p->added) {
            if (pc_engine_peer_add(w->e, p->handle, p->id, (uint64_t)(p->rate * 8), w->now) == 0)
                p->added = 1;
        }
        if (want && p->added && !p->told && w->now >= p->have_at) {
            p->told = 1;
            for (uint32_t r = 0; r < w->wm->m.n_rungs && p->holds; r++)
                pc_engine_peer_have(w->e, p->handle, r, p->have_lo, p->have_hi, w->now);
        } else if (!want && p->added) {
            p->added = 0;
            p->told = 0;
            p->join_at = UINT64_MAX; /* once gone, back only if the test says so */
            for (uint32_t k = 0; k < w->nx;)
                if (w->x[k].peer == p->handle)
                    w->x[k] = w->x[--w->nx];
                else
                    k++;
            pc_engine_peer_remove(w->e, p->handle, w->now);
        }
    }
}

/* Each transfer's rate (bytes/s): its source's, shared among that source's transfers, and where the
 * viewer's downlink is the limit a max-min fair share of it, as in the simulator: what the slower
 * sources leave of the link goes to the others (water-filling). */
static void w_rates(w_world *w, double *rate)
{
    int open[W_XFERS_MAX];
    uint32_t nopen = 0;
    for (uint32_t i = 0; i < w->nx; i++) {
        const w_xfer *x = &w->x[i];
        rate[i] = 0;
        open[i] = 0;
        if (w->now < x->start_at || x->stuck)
            continue;
        uint32_t same = 0;
        for (uint32_t k = 0; k < w->nx; k++)
            same += w->x[k].peer == x->peer && w->now >= w->x[k].start_at && !w->x[k].stuck;
        const w_peer *p = x->peer == PC_SRC_CDN ? NULL : w_peer_of(w, x->peer);
        rate[i] = (p == NULL ? w->cdn_rate : p->rate) / same;
        open[i] = 1;
        nopen++;
    }
    double left = w->down_rate;
    while (w->down_rate > 0 && nopen > 0) {
        double share = left / nopen;
        int below = 0;
        for (uint32_t i = 0; i < w->nx; i++)
            if (open[i] && rate[i] <= share) { /* it sends less than a fair share: it keeps its rate */
                left -= rate[i];
                open[i] = 0;
                nopen--;
                below = 1;
            }
        if (!below) /* the rest are capped at an equal share of what is left */
            for (uint32_t i = 0; i < w->nx; i++)
                if (open[i]) {
                    rate[i] = share;
                    open[i] = 0;
                    nopen--;
                }
    }
}

/* One step of W_STEP_US: bytes flow, completions are reported, timers fire. */
static void w_step(w_world *w)
{
    w->now += W_STEP_US;
    w->steps++;
    int report = w->report_steps <= 1 || w->steps % w->report_steps == 0;
    w_membership(w);
    w_handle_actions(w);
    double dt = W_STEP_US / 1e6;
    double rate[W_XFERS_MAX];
    w_rates(w, rate);
    for (uint32_t i = 0; i < w->nx; i++) {
        w_xfer *x = &w->x[i];
        if (w->now < x->start_at || x->stuck)
            continue;
        w_peer *p = x->peer == PC_SRC_CDN ? NULL : w_peer_of(w, x->peer);
        uint32_t b = (uint32_t)(rate[i] * dt);
        if (b > x->len - x->done)
            b = x->len - x->done;
        if (p != NULL && p->stall_after > 0 && (p->stall_seg < 0 || (uint32_t)p->stall_seg == x->seg) &&
            x->offset + x->done + b >= p->stall_after) {
            uint64_t at = x->offset + x->done;
            b = at < p->stall_after ? (uint32_t)(p->stall_after - at) : 0;
            x->stuck = 1;
        }
        if (b > 0) {
            x->done += b;
            x->unreported += b;
            if (p != NULL)
                p->sent += b;
        }
        if (x->unreported > 0 && (report || x->done == x->len || x->stuck)) {
            if (p != NULL && p->corrupt && x->seg != PC_SEG_INIT)
                w->tainted[x->rung][x->seg] = 1;
            pc_engine_on_data(w->e, x->id, x->unreported, w->now);
            x->unreported = 0;
        }
    }
    for (uint32_t i = 0; i < w->nx;) {
        w_xfer *x = &w->x[i];
        if (x->done == x->len && !x->stuck) {
            uint8_t h[32];
            const pc_media_rung *mr = &w->wm->m.rung[x->rung];
            memcpy(h, x->seg == PC_SEG_INIT ? mr->init_hash : mr->seg_hash + 32 * (size_t)x->seg, 32);
            w_peer *p = x->peer == PC_SRC_CDN ? NULL : w_peer_of(w, x->peer);
            /* a copy is bad if a corrupting peer sent any of its bytes, whoever sent the last ones */
            if (x->seg == PC_SEG_INIT ? p != NULL && p->corrupt : w->tainted[x->rung][x->seg])
                h[0] ^= 0xff;
            uint64_t id = x->id;
            *x = w->x[--w->nx];
            pc_engine_on_done(w->e, id, h, w->now);
            w_handle_actions(w);
        } else {
            i++;
        }
    }
    if (pc_engine_expiry(w->e) <= w->now) {
        pc_engine_on_timeout(w->e, w->now);
        /* the engine's contract: once stepped at |now|, its next timer lies after |now| (a client re-arming
         * a timer for a time already past would call it again and again) */
        if (pc_engine_expiry(w->e) <= w->now)
            fail_msg("at %llu us, just stepped, the engine asks to be stepped again at %llu us",
                     (unsigned long long)w->now, (unsigned long long)pc_engine_expiry(w->e));
    }
    w_handle_actions(w);
}

static void w_init(w_world *w, w_media *wm, const pc_engine_config *c, double cdn_mbps)
{
    memset(w, 0, sizeof(*w));
    w->wm = wm;
    w->cdn_rate = cdn_mbps * 1e6 / 8;
    w->rtt_us = 20000;
    if (pc_engine_new(&wm->m, c, &w->e) != 0)
        abort();
}

static void w_run_until(w_world *w, uint64_t t)
{
    while (w->now < t)
        w_step(w);
}

static void w_start(w_world *w)
{
    w_membership(w);
    pc_engine_play(w->e, w->now);
    w_handle_actions(w);
}

/* Runs until playback ends (or |limit_us|). */
static void w_play(w_world *w, uint64_t limit_us)
{
    w_start(w);
    while (w->now < limit_us && pc_engine_player(w->e)->state != PC_PLAYER_ENDED)
        w_step(w);
}

static void w_free(w_world *w)
{
    pc_engine_free(w->e);
    w->e = NULL;
}

#endif
