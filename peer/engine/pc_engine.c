/* The peer engine; see pc_engine.h and docs/engine.md. */
#include "pc_engine.h"

#include <endian.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "pc_rng.h"

#define XFERS_MAX 64
/* The received-bytes meter counts every moment a transfer is in flight, the wait for a first byte
 * included; until it has this much behind it in all, that wait weighs too much (20 ms of CDN latency
 * against 1 ms of bytes read as a twentieth of the link), and the start estimate stands. */
#define TPUT_TRUST_US 500000.0
/* The downlink's peak is read off the meter once its window holds this much activity (a single fast
 * burst reads as a rate the link cannot keep up). */
#define DOWN_PEAK_ACTIVE_US 500000.0
/* a CDN transfer times the link (link_rate) if its data spans at least this */
#define LINK_SPAN_US 200000.0
#define BUSY_BACKOFF_US 1000000 /* a peer that refused for capacity is left alone this long, */
#define BUSY_STREAK_MAX 3        /* doubled for each refusal in a row, up to 4 s */
#define NOT_HELD_MAX 8           /* not_held refusals in a row that count as one failure */

enum { SEG_NONE, SEG_INFLIGHT, SEG_READY };
#define GONE_MAX 64        /* departed peers whose identity a handle still finds (a ring) */
#define CLOG_MAX 4096      /* senders past a copy's second remembered; past it a bad copy names fewer suspects */
#define NCONTRIB_MAX 255

/* What a pass reads of each segment in its window: 8 bytes, so a window of 15 segments is two cache
 * lines (the accounting below, read only as data arrives and at verification, is kept apart). */
typedef struct seg {
    uint8_t state, rung;
    uint8_t demanded;             /* a real player asked for this rung of it (pc_engine_demand) */
    uint8_t ncontrib;             /* peers that sent bytes of this copy: acct's contrib, then e->clog */
    uint32_t got;                 /* bytes held, contiguous from 0 */
} seg;

typedef struct seg_acct {
    uint64_t requested_at, ready_at;
    uint32_t bytes_cdn, bytes_p2p;/* of the copy being assembled / kept */
    uint32_t contrib[2];          /* the first two peers (handles) that sent bytes of this copy */
} seg_acct;

typedef struct xfer {
    uint64_t id;
    uint32_t src;                 /* peer slot, or PC_SRC_CDN */
    uint32_t rung, seg;           /* seg PC_SEG_INIT: init of rung */
    uint32_t offset, len, got;
    uint64_t started, first_byte, last_data;
    uint64_t rx_mark, mark_t;     /* CDN: bytes received from every source before the report of its first
                                     byte, and since when the bytes of that report arrived (link_rate) */
    int prefetch;
} xfer;

/* One cache line a peer (the slot array is 64-byte aligned): a pass reads the records of the peers it
 * ranks, and the rescue timers those of the peers sending. */
typedef struct epeer {
    double rate;                  /* bytes/s estimate */
    double outstanding;           /* bytes still to come on its transfers */
    double gap_mean, gap_var;     /* µs between data events (first byte included) */
    uint64_t rtt;
    uint64_t busy_until;          /* it refused for lack of capacity: not asked again before this */
    uint32_t handle;
    uint32_t fails, inflight;
    unsigned used : 1, gap_known : 1;
    unsigned busy_streak : 8;     /* refusals for capacity since it last sent us data (up to BUSY_STREAK_MAX) */
    unsigned heard : 1;           /* it has told us of a holding (volunteers wait for it: see quiet_peer) */
    unsigned not_held : 8;        /* not_held refusals since it last sent us a whole copy (NOT_HELD_MAX) */
} epeer;
_Static_assert(sizeof(epeer) == 64, "a peer's record is one cache line");

typedef struct meter {
    double bytes, active;         /* exponentially weighted bytes and active µs */
    double ever;                  /* active µs since the start, not weighted */
    uint64_t t;
} meter;

/* An entry of the handle → slot index: open addressing, linear probing; handle PC_SRC_CDN is empty. */
typedef struct pidx {
    uint32_t handle, slot;
} pidx;

struct pc_engine {
    /* What a peer's HAVE reads comes first, in one cache line (the engine is 64-byte aligned): the
     * simulator delivers HAVEs to engines nothing else touched lately, and every line is a cache miss.
     * What the peers hold is kept per copy rather than per peer: the scheduler asks "which free peer
     * holds (rung, i)", one set of hw words per copy, bit k for slot k. */
    uint64_t *holders;            /* n_rungs × n_segments × hw words */
    seg *segs;
    pidx *idx;                    /* handle → slot of every connected peer */
    uint64_t now;
    uint32_t n_rungs, n_segments; /* of m */
    uint32_t hw;                  /* words per set: npeer_slots / 64, rounded up */
    uint32_t idx_bits;            /* the index has 2^idx_bits entries, at least twice npeer_slots */
    uint32_t win_lo, win_hi;      /* the segments the scheduler looks at, as of the last pass */
    int dirty;                    /* inputs arrived that want an evaluation (pc_engine_expiry = now) */
    uint8_t haves_seen;           /* a peer has told us what it holds */
    uint16_t nquiet;              /* connected peers not yet heard (epeer.heard): volunteers wait */
    /* (64 bytes) */
    epeer *peers;                 /* npeer_slots slots, grown on demand (up to PC_ENGINE_PEERS_MAX) */
    uint32_t npeer_slots;
    uint32_t npeers;              /* slots in use: connected peers */
    const pc_media *m;
    pc_engine_config cfg;
    pc_rng rng;
    pc_player player;
    pc_abr abr;
    pc_upload up;
    const uint64_t *start;        /* n_segments + 1 content start times: m->seg_start_us, or own_start */
    uint64_t *own_start;
    seg_acct *acct;               /* n_segments: where each copy's bytes came from, and when */
    uint8_t *held;                /* n_rungs bitmaps: verified copies we can share */
    uint8_t init_state[PC_RUNGS_MAX];
    xfer *x;                      /* transfers in flight: xcap slots, grown up to XFERS_MAX */
    size_t nx, xcap;
    uint32_t npeer_xfers;         /* of those, from peers */
    uint64_t next_xfer;
    /* Slots that can take a request (used, a free request slot, not backing off), kept up to date as
     * transfers start and end; the ones backing off are looked at again at a pass once busy_min has
     * passed. */
    uint64_t freem[PC_ENGINE_PEERS_MAX / 64], busym[PC_ENGINE_PEERS_MAX / 64];
    uint64_t busy_min;            /* no slot in busym stops backing off before this (a lower bound) */
    uint32_t *banned;             /* up to PC_ENGINE_PEERS_MAX handles, grown on demand */
    size_t nbanned, cbanned;
    struct {
        uint32_t seg, handle;
    } *clog;                      /* the third and later peers that sent bytes of a copy being assembled
                                     (slow uploaders handing a long segment on), up to CLOG_MAX */
    size_t nclog, cclog;
    uint64_t *suspects;           /* swarm identities of suspects, so that one that comes back (under a
                                     new handle) is one still; up to PC_ENGINE_PEERS_MAX, grown on demand */
    size_t nsuspects, csuspects;
    struct {
        uint32_t handle;          /* PC_SRC_CDN: unused */
        uint64_t id;
    } gone[GONE_MAX];             /* the identities of the last peers to leave: senders of copies still
                                     held are named by handle, and a liar may leave before the verdict */
    uint32_t gone_next;
    double cdn_rate;              /* bytes/s */
    double cdn_outstanding;       /* bytes still to come on CDN transfers */
    int cdn_measured;             /* cdn_rate comes from a transfer, not the configured guess */
    double link_rate;             /* bytes/s from all sources together while CDN transfers ran */
    int link_measured;
    uint64_t rx_t, rx_t_prev;     /* when bytes were last reported, and the report time before that */
    uint64_t rx_before;           /* bytes received in the reports before rx_t */
    uint32_t cdn_fails;
    uint64_t cdn_retry_at;
    uint64_t startup_end;         /* content time before which the CDN serves (start, seek) */
    uint64_t played_at;           /* when play was pressed */
    uint64_t demand_pos;          /* a real player asked for the segment starting here (pc_engine_demand) */
    uint32_t ndemanded;           /* segments whose |demanded| is set (none in the simulator, which has no
                                     real player) */
    int cdn_mode;
    int yielding;                 /* prefetches wait: an urgent CDN transfer runs late (yield_to_urgent) */
    uint32_t yield_seg;           /* while yielding: the earliest segment on the CDN; peers wait after it */
    meter m_p2p, m_all;
    double down_peak;             /* the highest combined receive rate measured, bytes/s (downlink_cap) */
    uint64_t stepped_at;
    int p2p_wanted;               /* peers are fetching, or there is work peers could take */
    uint64_t buf_end;             /* contiguous playable content, as of the last pass */
    uint32_t pos_seg;             /* the segment at the viewer's position, as of the last pass (a hint) */
    int quit, ended_sent;
    /* actions */
    pc_action *q;
    size_t qh, qn, qcap;
    int oom;
    pc_engine_stats st;
    /* volunteers (cold: read only for segments no peer holds) */
    struct {
        uint64_t id;              /* its identity in the swarm */
        uint64_t joined;          /* when it connected */
    } *pinfo;                     /* npeer_slots, beside peers */
    uint32_t peers_gen;           /* counts changes of the set of peers (the cache below) */
    struct {
        uint32_t seg, gen;        /* segment, peers_gen of the answer; gen 0: empty */
        uint32_t yes;
    } vol[8];                     /* volunteers(), by segment modulo 8: a pass asks again for the same few */
};
_Static_assert(offsetof(struct pc_engine, peers) == 64, "what a HAVE reads fills the first cache line");

/* ---- small helpers ---- */

const char *pc_source_name(pc_source s)
{
    switch (s) {
    case PC_SOURCE_CDN: return "cdn";
    case PC_SOURCE_P2P: return "p2p";
    case PC_SOURCE_MIXED: return "mixed";
    default: return "none";
    }
}

void pc_engine_config_default(pc_engine_config *c)
{
    *c = (pc_engine_config){
        .seed = 1,
        .startup_cdn_us = 8000000,
        .start_buffer_us = 4000000,
        .resume_buffer_us = 4000000,
        .urgent_us = 8000000,
        .cdn_urgent_us = 12000000,
        .prefetch_us = 60000000,
        .rarest_bucket_us = 8000000,
        .safety_us = 1000000,
        .check_us = 250000,
        .first_byte_us = 5000000,
        .have_batch_us = 500000,
        .idle_check_us = 1000000,
        .mode_window_us = 10000000,
        .tput_window_us = 3000000,
        .discover_us = 2000000,
        .volunteer_us = 24000000,
        .low_water = 0.9,
        .high_water = 1.2,
        .peer_inflight = 2,
        .prefetch_inflight = 16,
        .cdn_inflight = 2,
        .max_fails = 3,
        .cdn_bps_guess = 8000000,
        .cdn_rtt_us = 50000,
        .upload_slots = 2,
        .upload_wait_us = 1500000,
        .pinned_rung = -1,
    };
    pc_abr_config_default(&c->abr);
}

static size_t bitmap_bytes(const pc_engine *e)
{
    return (e->m->n_segments + 7) / 8;
}

static int bit_get(const uint8_t *b, uint32_t i)
{
    return (b[i / 8] >> (i % 8)) & 1;
}

static void bit_clear(uint8_t *b, uint32_t i)
{
    b[i / 8] &= (uint8_t)~(1u << (i % 8));
}

static void bit_set(uint8_t *b, uint32_t i)
{
    b[i / 8] |= (uint8_t)(1u << (i % 8));
}

static uint32_t seg_size(const pc_engine *e, uint32_t rung, uint32_t i)
{
    return i == PC_SEG_INIT ? e->m->rung[rung].init_size : e->m->rung[rung].seg_size[i];
}

static const uint8_t *seg_hash(const pc_engine *e, uint32_t rung, uint32_t i)
{
    return i == PC_SEG_INIT ? e->m->rung[rung].init_hash : e->m->rung[rung].seg_hash + 32 * (size_t)i;
}

static void emit(pc_engine *e, pc_action a)
{
    if (e->qn == e->qcap) {
        size_t cap = e->qcap ? e->qcap * 2 : 32;
        pc_action *q = malloc(cap * sizeof(*q));
        if (q == NULL) {
            e->oom = 1; /* an action is lost: the engine is broken from here on (pc_engine_error) */
            return;
        }
        for (size_t i = 0; i < e->qn; i++)
            q[i] = e->q[(e->qh + i) % e->qcap];
        free(e->q);
        e->q = q;
        e->qh = 0;
        e->qcap = cap;
    }
    e->q[(e->qh + e->qn) % e->qcap] = a;
    e->qn++;
}

int pc_engine_error(const pc_engine *e)
{
    return e->oom ? PC_ENOMEM : 0;
}

int pc_engine_next_action(pc_engine *e, pc_action *a)
{
    if (e->qn == 0)
        return 0;
    *a = e->q[e->qh];
    e->qh = (e->qh + 1) % e->qcap;
    e->qn--;
    return 1;
}

int pc_engine_has_actions(const pc_engine *e)
{
    return e->qn > 0;
}

/* ---- meters ---- */

static void meter_advance(meter *m, uint64_t now, int active, double tau)
{
    if (now <= m->t)
        return;
    double dt = (double)(now - m->t);
    double decay = exp(-dt / tau);
    m->bytes *= decay;
    m->active = m->active * decay + (active ? tau * (1 - decay) : 0);
    m->ever += active ? dt : 0;
    m->t = now;
}

/* The weight of bytes reported at once that arrived evenly over the last |dt| µs, in a meter whose
 * weights decay with |tau|: the mean of the decay over that span. A caller that reports often (the
 * peer client, per frame) gets about 1; one that reports what arrived over a second at once (the
 * simulator, at its viewer's next event) would otherwise count those bytes as if they had all just
 * arrived, and read a rate up to a sixth above the link's. */
static double lump_weight(double dt, double tau)
{
    double r = dt / tau;
    return r < 1e-3 ? 1 - r / 2 : (1 - exp(-r)) / r;
}

static double meter_rate(const meter *m)
{
    return m->active > 0 ? m->bytes / m->active * 1e6 : 0; /* bytes per second */
}

/* Every change to the set of transfers or their bytes first brings the meters to |now|. */
static void meters_to(pc_engine *e, uint64_t now)
{
    double tau = (double)e->cfg.mode_window_us;
    meter_advance(&e->m_p2p, now, e->p2p_wanted || e->npeer_xfers > 0, tau);
    meter_advance(&e->m_all, now, e->nx > 0, (double)e->cfg.tput_window_us);
}

/* ---- peers ---- */

static uint32_t idx_home(const pc_engine *e, uint32_t h)
{
    return (h * 0x9e3779b1u) >> (32 - e->idx_bits);
}

/* The slot of the peer with handle |h|, or PC_SRC_CDN. */
static uint32_t slot_of(const pc_engine *e, uint32_t h)
{
    if (h == PC_SRC_CDN || e->idx == NULL)
        return PC_SRC_CDN; /* no peer has it: it marks empty entries */
    uint32_t mask = (1u << e->idx_bits) - 1;
    for (uint32_t k = idx_home(e, h);; k = (k + 1) & mask) { /* the index is at most half full */
        if (e->idx[k].handle == h)
            return e->idx[k].slot;
        if (e->idx[k].handle == PC_SRC_CDN)
            return PC_SRC_CDN;
    }
}

static epeer *peer_by_handle(pc_engine *e, uint32_t h, uint32_t *slot)
{
    uint32_t k = slot_of(e, h);
    if (k == PC_SRC_CDN)
        return NULL;
    if (slot != NULL)
        *slot = k;
    return &e->peers[k];
}

static void idx_insert(pc_engine *e, uint32_t h, uint32_t slot)
{
    uint32_t mask = (1u << e->idx_bits) - 1, k = idx_home(e, h);
    while (e->idx[k].handle != PC_SRC_CDN)
        k = (k + 1) & mask;
    e->idx[k] = (pidx){.handle = h, .slot = slot};
}

/* Removes |h|, shifting back the entries after it that probed past its place, so no probe sequence
 * is cut short by the hole. */
static void idx_remove(pc_engine *e, uint32_t h)
{
    uint32_t mask = (1u << e->idx_bits) - 1, k = idx_home(e, h);
    while (e->idx[k].handle != h) {
        if (e->idx[k].handle == PC_SRC_CDN)
            return;
        k = (k + 1) & mask;
    }
    for (uint32_t j = (k + 1) & mask; e->idx[j].handle != PC_SRC_CDN; j = (j + 1) & mask) {
        uint32_t home = idx_home(e, e->idx[j].handle);
        /* the entry at j may move to k when its home is not in (k, j], going round */
        if (((j - home) & mask) >= ((j - k) & mask)) {
            e->idx[k] = e->idx[j];
            k = j;
        }
    }
    e->idx[k].handle = PC_SRC_CDN;
}

/* The set of slots holding (rung, i). */
static uint64_t *holders_of(const pc_engine *e, uint32_t rung, uint32_t i)
{
    return e->holders + ((size_t)rung * e->n_segments + i) * e->hw;
}

/* How many connected peers hold (rung, i). */
static uint32_t avail(const pc_engine *e, uint32_t rung, uint32_t i)
{
    if (e->hw == 0)
        return 0;
    const uint64_t *h = holders_of(e, rung, i);
    uint32_t n = 0;
    for (uint32_t w = 0; w < e->hw; w++)
        n += (uint32_t)__builtin_popcountll(h[w]);
    return n;
}

/* Brings slot |k|'s bits in freem and busym up to date with its state. */
static void peer_update_free(pc_engine *e, uint32_t k)
{
    const epeer *p = &e->peers[k];
    uint64_t bit = 1ull << (k % 64);
    int busy = p->used && p->busy_until > e->now;
    int can = p->used && !busy && p->inflight < e->cfg.peer_inflight;
    e->freem[k / 64] = can ? e->freem[k / 64] | bit : e->freem[k / 64] & ~bit;
    e->busym[k / 64] = busy ? e->busym[k / 64] | bit : e->busym[k / 64] & ~bit;
    if (busy && p->busy_until < e->busy_min)
        e->busy_min = p->busy_until;
}

static uint64_t stall_timeout(const epeer *p)
{
    double t = p->gap_known ? p->gap_mean + 4 * sqrt(p->gap_var) : 2000000.0;
    t += (double)p->rtt;
    if (t < 300000)
        t = 300000;
    if (t > 5000000)
        t = 5000000;
    return (uint64_t)t;
}

static void peer_gap(epeer *p, double gap)
{
    if (!p->gap_known) {
        p->gap_mean = gap;
        p->gap_var = gap * gap / 4;
        p->gap_known = 1;
        return;
    }
    double d = gap - p->gap_mean;
    p->gap_mean += d / 8;
    p->gap_var += (fabs(d) * fabs(d) - p->gap_var) / 4; /* variance of the gap, smoothed */
}

/* ---- transfers ---- */

static xfer *xfer_by_id(pc_engine *e, uint64_t id)
{
    for (size_t i = 0; i < e->nx; i++)
        if (e->x[i].id == id)
            return &e->x[i];
    return NULL;
}

static double *outstanding_of(pc_engine *e, uint32_t src)
{
    return src == PC_SRC_CDN ? &e->cdn_outstanding : &e->peers[src].outstanding;
}

static void xfer_remove(pc_engine *e, xfer *x)
{
    *outstanding_of(e, x->src) -= (double)(x->len - x->got);
    if (x->src != PC_SRC_CDN) {
        e->peers[x->src].inflight--;
        e->npeer_xfers--;
        peer_update_free(e, x->src);
    }
    *x = e->x[--e->nx];
}

/* Transfer |x| ends without its copy: the segment (or init) goes back to the scheduler, keeping the bytes
 * received to resume from. */
static void unclaim(pc_engine *e, const xfer *x)
{
    if (x->seg == PC_SEG_INIT)
        e->init_state[x->rung] = SEG_NONE;
    else
        e->segs[x->seg].state = SEG_NONE;
}

/* Where the viewer is: the model's playhead, or further on when a real player asked for a later segment. */
static uint64_t content_pos(const pc_engine *e)
{
    return e->demand_pos > e->player.pos_us ? e->demand_pos : e->player.pos_us;
}

/* How far segment |i| starts ahead of content position |pos|. */
static uint64_t ahead_at(const pc_engine *e, uint64_t pos, uint32_t i)
{
    return e->start[i] > pos ? e->start[i] - pos : 0;
}

static uint64_t ahead_of(const pc_engine *e, uint32_t i)
{
    return ahead_at(e, content_pos(e), i);
}

/* Forgets the third and later senders of segment |i|'s copy. */
static void forget_senders(pc_engine *e, uint32_t i)
{
    for (size_t k = 0; k < e->nclog;)
        if (e->clog[k].seg == i)
            e->clog[k] = e->clog[--e->nclog];
        else
            k++;
}

/* Forgets the bytes of segment |i|'s copy (held and accounted), to fetch it from the start. */
static void seg_drop_bytes(pc_engine *e, uint32_t i)
{
    if (e->segs[i].ncontrib > 2)
        forget_senders(e, i);
    e->segs[i].got = 0;
    e->segs[i].ncontrib = 0;
    e->acct[i].bytes_cdn = e->acct[i].bytes_p2p = 0;
}

/* Segment |i|'s copy gives way to another (another rung, or the store let it go): its bytes go, and so
 * do its request and ready times, since the next copy's time (the report's "requested to verified")
 * counts from its own request. A copy refetched at the same rung (failed, cancelled) keeps its request
 * time: it is the same wait. */
static void seg_drop_copy(pc_engine *e, uint32_t i)
{
    seg_drop_bytes(e, i);
    e->acct[i].requested_at = e->acct[i].ready_at = 0;
}

/* The |k|th peer (handle) that sent bytes of segment |i|'s copy, k < ncontrib; PC_SRC_CDN past what
 * the log kept. */
static uint32_t sender(const pc_engine *e, uint32_t i, uint32_t k)
{
    if (k < 2)
        return e->acct[i].contrib[k];
    for (size_t j = 0, n = 2; j < e->nclog; j++)
        if (e->clog[j].seg == i && n++ == k)
            return e->clog[j].handle;
    return PC_SRC_CDN;
}

/* Whether peer |h| sent bytes of segment |i|'s copy. */
static int contributed(const pc_engine *e, uint32_t i, uint32_t h)
{
    uint32_t n = e->segs[i].ncontrib;
    if ((n > 0 && e->acct[i].contrib[0] == h) || (n > 1 && e->acct[i].contrib[1] == h))
        return 1;
    for (size_t j = 0; n > 2 && j < e->nclog; j++)
        if (e->clog[j].seg == i && e->clog[j].handle == h)
            return 1;
    return 0;
}

/* Peer |h| sends bytes of segment |i|'s copy. */
static void add_sender(pc_engine *e, uint32_t i, uint32_t h)
{
    seg *s = &e->segs[i];
    if (contributed(e, i, h) || s->ncontrib == NCONTRIB_MAX)
        return;
    if (s->ncontrib >= 2) {
        if (e->nclog == e->cclog && e->cclog < CLOG_MAX) {
            size_t cap = e->cclog ? e->cclog * 2 : 8;
            void *nl = realloc(e->clog, cap * sizeof(*e->clog));
            if (nl != NULL) {
                e->clog = nl;
                e->cclog = cap;
            }
        }
        if (e->nclog == e->cclog)
            return; /* not remembered: no suspect should the copy fail */
        e->clog[e->nclog].seg = i;
        e->clog[e->nclog++].handle = h;
    } else {
        e->acct[i].contrib[s->ncontrib] = h;
    }
    s->ncontrib++;
}

/* The swarm identity of peer |handle|, linked or among the last GONE_MAX to leave: 1, or 0 when unknown. */
static int identity_of(const pc_engine *e, uint32_t handle, uint64_t *id)
{
    uint32_t slot = slot_of(e, handle);
    if (slot != PC_SRC_CDN) {
        *id = e->pinfo[slot].id;
        return 1;
    }
    for (size_t k = 0; handle != PC_SRC_CDN && k < GONE_MAX; k++)
        if (e->gone[k].handle == handle) {
            *id = e->gone[k].id;
            return 1;
        }
    return 0;
}

static int suspect_id(const pc_engine *e, uint64_t id)
{
    for (size_t k = 0; k < e->nsuspects; k++)
        if (e->suspects[k] == id)
            return 1;
    return 0;
}

/* Whether peer |slot| may send the rest of segment |i|'s copy, begun by others (docs/engine.md,
 * "Integrity"): a suspect's bytes are never mixed with another peer's, so a bad copy a suspect sent part
 * of is its own; a sender that has left is looked up by its identity (a liar that leaves half way through
 * and comes back is still one). Else the copy starts again from its first byte. */
static int may_join(const pc_engine *e, uint32_t i, uint32_t slot)
{
    const seg *s = &e->segs[i];
    if (e->nsuspects == 0 || s->ncontrib == 0 || contributed(e, i, e->peers[slot].handle))
        return 1;
    if (suspect_id(e, e->pinfo[slot].id))
        return 0;
    for (uint32_t k = 0; k < s->ncontrib; k++) {
        uint64_t id;
        if (identity_of(e, sender(e, i, k), &id) && suspect_id(e, id))
            return 0;
    }
    return 1;
}

/* When a request for segment |i| is due. A P2P-only viewer has nowhere else to turn: its requests carry
 * no deadline, so an uploader queues them after those with one instead of refusing them as late (once
 * its player stalled, every deadline was "now", and a slow uploader refused the segment for good). */
static uint64_t deadline_of(const pc_engine *e, uint32_t i, uint64_t now)
{
    return e->cfg.p2p_only ? PC_NEVER : now + ahead_of(e, i);
}

/* Room for |n| more transfers (most engines never need many: the array grows on demand). */
static int xfer_room(pc_engine *e, size_t n)
{
    if (e->nx + n <= e->xcap)
        return 1;
    if (e->nx + n > XFERS_MAX)
        return 0;
    size_t cap = e->xcap ? e->xcap * 2 : 8; /* n <= 2: one doubling is room enough */
    if (cap > XFERS_MAX)
        cap = XFERS_MAX;
    xfer *x = realloc(e->x, cap * sizeof(*x));
    if (x == NULL) {
        e->oom = 1; /* pc_engine_error */
        return 0;
    }
    e->x = x;
    e->xcap = cap;
    return 1;
}

static int start_xfer(pc_engine *e, uint32_t src, uint32_t rung, uint32_t i, int prefetch, uint64_t now)
{
    if (!xfer_room(e, 1))
        return 0;
    meters_to(e, now);
    uint32_t offset = 0;
    if (i == PC_SEG_INIT) {
        e->init_state[rung] = SEG_INFLIGHT;
    } else {
        seg *s = &e->segs[i];
        seg_acct *a = &e->acct[i];
        if (s->rung != rung)
            seg_drop_copy(e, i); /* a copy begun at another rung, fetched whole at this one */
        else if (s->got == 0 || s->got >= seg_size(e, rung, i) || (src != PC_SRC_CDN && !may_join(e, i, src)))
            seg_drop_bytes(e, i);
        s->rung = (uint8_t)rung;
        s->state = SEG_INFLIGHT;
        if (a->requested_at == 0)
            a->requested_at = now + 1; /* +1: 0 means "never" */
        offset = s->got;
    }
    if (i != PC_SEG_INIT && e->init_state[rung] == SEG_NONE && xfer_room(e, 2))
        start_xfer(e, PC_SRC_CDN, rung, PC_SEG_INIT, 0, now); /* a segment is playable with its init */
    xfer *x = &e->x[e->nx++];
    *x = (xfer){.id = ++e->next_xfer, .src = src, .rung = rung, .seg = i, .offset = offset,
                .len = seg_size(e, rung, i) - offset, .started = now, .last_data = now, .prefetch = prefetch};
    e->npeer_xfers += src != PC_SRC_CDN;
    if (src != PC_SRC_CDN) {
        e->peers[src].inflight++;
        peer_update_free(e, src);
    }
    *outstanding_of(e, src) += (double)x->len;
    emit(e, (pc_action){.type = PC_ACT_FETCH, .transfer = x->id,
                        .peer = src == PC_SRC_CDN ? PC_SRC_CDN : e->peers[src].handle, .rung = rung, .segment = i,
                        .offset = offset, .length = x->len,
                        .deadline = i == PC_SEG_INIT ? PC_NEVER : deadline_of(e, i, now)});
    return 1;
}

static uint32_t cdn_busy(const pc_engine *e)
{
    uint32_t n = 0;
    for (size_t i = 0; i < e->nx; i++)
        n += e->x[i].src == PC_SRC_CDN && e->x[i].seg != PC_SEG_INIT;
    return n;
}

/* Expected completion (µs from now) of |bytes| more from |src|. */
static double eta(const pc_engine *e, uint32_t src, double bytes)
{
    if (src == PC_SRC_CDN)
        return (e->cdn_outstanding + bytes) / e->cdn_rate * 1e6 + (double)e->cfg.cdn_rtt_us;
    const epeer *p = &e->peers[src];
    return (p->outstanding + bytes) / p->rate * 1e6 + (double)p->rtt;
}

/* The peers that can take a request now (a free slot, not recently busy); refreshed at each pass. */
static void refresh_free(pc_engine *e)
{
    /* only the end of a backoff changes with time (the rest is updated as it changes), and each busy
     * slot's peer record is a cache line of its own: not read again before the earliest end */
    if (e->now < e->busy_min)
        return;
    e->busy_min = UINT64_MAX;
    for (uint32_t w = 0; w < e->hw; w++)
        for (uint64_t m = e->busym[w]; m != 0; m &= m - 1)
            peer_update_free(e, w * 64 + (uint32_t)__builtin_ctzll(m));
}

static int any_free(const pc_engine *e)
{
    for (uint32_t w = 0; w < e->hw; w++)
        if (e->freem[w] != 0)
            return 1;
    return 0;
}

/* Whether a peer that can take a request now holds (rung, i). */
static int free_holder(const pc_engine *e, uint32_t rung, uint32_t i)
{
    const uint64_t *h = e->hw > 0 ? holders_of(e, rung, i) : NULL;
    for (uint32_t w = 0; w < e->hw; w++)
        if (h[w] & e->freem[w])
            return 1;
    return 0;
}

/* Of the free peers holding (rung, i), the one with the earliest expected completion. */
static uint32_t best_peer(const pc_engine *e, uint32_t rung, uint32_t i, double bytes, double *best_eta)
{
    uint32_t best = PC_SRC_CDN;
    if (e->hw == 0)
        return best;
    const uint64_t *h = holders_of(e, rung, i);
    for (uint32_t w = 0; w < e->hw; w++) {
        for (uint64_t m = h[w] & e->freem[w]; m != 0; m &= m - 1) {
            uint32_t k = w * 64 + (uint32_t)__builtin_ctzll(m);
            /* failures slow a peer down in the ranking before it is dropped */
            double t = eta(e, k, bytes) * (1.0 + e->peers[k].fails);
            if (best == PC_SRC_CDN || t < *best_eta) {
                best = k;
                *best_eta = t;
            }
        }
    }
    return best;
}

/* ---- buffer and player ---- */

static uint32_t seg_at(const pc_engine *e, uint64_t pos)
{
    /* the position moves little between passes: the segment found last time, or one of the next */
    uint32_t g = e->pos_seg, n = e->m->n_segments;
    if (g < n && e->start[g] <= pos)
        for (uint32_t k = 0; k < 4 && g < n; k++, g++)
            if (g + 1 == n || e->start[g + 1] > pos)
                return g;
    /* binary search: the last i with start[i] <= pos */
    uint32_t lo = 0, hi = n;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (e->start[mid] <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* The earliest segment in flight (only on the CDN if |cdn_only|) that the player still waits for: not
 * behind the playhead, where a real player's jump can leave a transfer running; UINT32_MAX if none (init
 * segments, PC_SEG_INIT, never count). */
static uint32_t first_in_flight(const pc_engine *e, int cdn_only)
{
    uint32_t first = UINT32_MAX, from = UINT32_MAX;
    for (size_t k = 0; k < e->nx; k++)
        if ((!cdn_only || e->x[k].src == PC_SRC_CDN) && e->x[k].seg < first) {
            if (from == UINT32_MAX)
                from = seg_at(e, content_pos(e));
            if (e->x[k].seg >= from)
                first = e->x[k].seg;
        }
    return first;
}

/* Whether a transfer for a segment before |i|, from any source, is in flight: the ones a transfer for
 * |i| could crowd off the downlink. One for a later segment (a rescued prefetch) is not held up for. */
static int earlier_in_flight(const pc_engine *e, uint32_t i)
{
    return first_in_flight(e, 0) < i;
}

static int playable(const pc_engine *e, uint32_t i)
{
    return e->segs[i].state == SEG_READY && e->init_state[e->segs[i].rung] == SEG_READY;
}

static uint64_t buffer_end(const pc_engine *e)
{
    uint32_t n = e->m->n_segments;
    uint64_t pos = content_pos(e);
    uint32_t first = seg_at(e, pos), i = first;
    while (i < n && playable(e, i))
        i++;
    return i == first ? pos : e->start[i];
}

/* Where the viewer is: the segment at its position, and the segments a new holding can make worth a
 * pass (pc_engine_peer_have): not behind the position (start[i+1] > pos) and within the prefetch
 * window (ahead_of(i) < prefetch_us). */
static void locate(pc_engine *e)
{
    uint64_t pos = content_pos(e), end = pos + e->cfg.prefetch_us;
    uint32_t n = e->n_segments, lo = e->pos_seg = seg_at(e, pos);
    if (e->start[lo + 1] <= pos || e->cfg.prefetch_us == 0) {
        e->win_lo = e->win_hi = lo; /* at the end, or no window: none */
        return;
    }
    /* from the last pass's end: the position moves little between passes (start[lo] <= pos < end) */
    uint32_t hi = e->win_hi > lo ? e->win_hi : lo + 1;
    while (e->start[hi - 1] >= end)
        hi--;
    while (hi < n && e->start[hi] < end)
        hi++;
    e->win_lo = lo;
    e->win_hi = hi;
}

static void update_player(pc_engine *e, uint64_t now)
{
    /* the position as of now, not of the last pass: a copy let go since (pc_engine_forget, a demand at
     * another rung) that the model has played past must not shorten the buffer behind it */
    pc_player_advance(&e->player, now);
    locate(e);
    e->buf_end = buffer_end(e);
    pc_player_set_buffer(&e->player, e->buf_end, now);
    if (e->player.state == PC_PLAYER_ENDED && !e->ended_sent) {
        e->ended_sent = 1;
        emit(e, (pc_action){.type = PC_ACT_ENDED});
    }
}

uint64_t pc_engine_playhead(const pc_engine *e)
{
    return e->player.pos_us;
}

uint64_t pc_engine_buffer(const pc_engine *e)
{
    uint64_t end = buffer_end(e), pos = content_pos(e);
    return end > pos ? end - pos : 0;
}

void pc_engine_holdings(const pc_engine *e, uint32_t rung, uint32_t *need, uint32_t *lo, uint32_t *hi)
{
    uint32_t n = e->m->n_segments;
    *need = *lo = *hi = UINT32_MAX;
    for (uint32_t i = seg_at(e, content_pos(e)); i < n; i++)
        if (!pc_engine_holds(e, rung, i)) {
            *need = i;
            break;
        }
    for (uint32_t i = n; i-- > 0;) {
        if (pc_engine_holds(e, rung, i)) {
            if (*hi == UINT32_MAX)
                *hi = i;
            *lo = i;
        } else if (*hi != UINT32_MAX) {
            break;
        }
    }
}

const pc_player *pc_engine_player(const pc_engine *e)
{
    return &e->player;
}

/* ---- peer removal, bans, drops ---- */

static void detach_peer(pc_engine *e, uint32_t slot)
{
    epeer *p = &e->peers[slot];
    meters_to(e, e->now);
    for (size_t i = 0; i < e->nx;) {
        xfer *x = &e->x[i];
        if (x->src == slot) {
            unclaim(e, x); /* keeps the bytes received: resumed elsewhere */
            xfer_remove(e, x);
        } else {
            i++;
        }
    }
    e->gone[e->gone_next].handle = p->handle;
    e->gone[e->gone_next].id = e->pinfo[slot].id;
    e->gone_next = (e->gone_next + 1) % GONE_MAX;
    uint64_t bit = 1ull << (slot % 64);
    size_t sets = (size_t)e->m->n_rungs * e->m->n_segments;
    for (size_t k = 0; k < sets; k++)
        e->holders[k * e->hw + slot / 64] &= ~bit;
    pc_upload_drop_peer(&e->up, p->handle);
    idx_remove(e, p->handle);
    e->nquiet -= !p->heard;
    memset(p, 0, sizeof(*p));
    e->npeers--;
    e->peers_gen++;
    peer_update_free(e, slot);
}

static void cancel_peer_xfers(pc_engine *e, uint32_t slot)
{
    for (size_t i = 0; i < e->nx; i++)
        if (e->x[i].src == slot)
            emit(e, (pc_action){.type = PC_ACT_CANCEL, .transfer = e->x[i].id});
}

/* The bytes peer |handle| sent of copies not yet verified are no better than its bad ones: those copies
 * start again, and a transfer finishing one from another source is cancelled (before, the CDN finished
 * a banned peer's copy from its offset, the copy failed, and the segment came too late). */
static void drop_copies_of(pc_engine *e, uint32_t handle)
{
    uint64_t id;
    int known = identity_of(e, handle, &id); /* the same peer under an earlier handle too */
    for (uint32_t i = 0; i < e->m->n_segments; i++) {
        if (e->segs[i].state == SEG_READY || e->segs[i].ncontrib == 0)
            continue;
        int its = contributed(e, i, handle);
        for (uint32_t k = 0; !its && known && k < e->segs[i].ncontrib; k++) {
            uint64_t other;
            its = identity_of(e, sender(e, i, k), &other) && other == id;
        }
        if (!its)
            continue;
        for (size_t k = 0; k < e->nx; k++)
            if (e->x[k].seg == i) {
                emit(e, (pc_action){.type = PC_ACT_CANCEL, .transfer = e->x[k].id});
                unclaim(e, &e->x[k]);
                xfer_remove(e, &e->x[k]);
                break;
            }
        seg_drop_bytes(e, i);
    }
}

static void ban(pc_engine *e, uint32_t handle)
{
    uint32_t slot;
    if (peer_by_handle(e, handle, &slot) != NULL) {
        cancel_peer_xfers(e, slot);
        detach_peer(e, slot);
    }
    drop_copies_of(e, handle);
    for (size_t i = 0; i < e->nbanned; i++)
        if (e->banned[i] == handle)
            return;
    if (e->nbanned == e->cbanned && e->cbanned < PC_ENGINE_PEERS_MAX) {
        size_t cap = e->cbanned ? e->cbanned * 2 : 4;
        uint32_t *b = realloc(e->banned, cap * sizeof(*b));
        if (b != NULL) {
            e->banned = b;
            e->cbanned = cap;
        } else {
            e->oom = 1; /* the ban could not be remembered: pc_engine_error */
        }
    }
    if (e->nbanned < e->cbanned)
        e->banned[e->nbanned++] = handle;
    e->st.banned++;
    emit(e, (pc_action){.type = PC_ACT_BAN, .peer = handle});
}

/* Peer |handle| sent part of a copy that failed verification, and another peer (or two) the rest: it is
 * not banned, since it may be the one that sent good bytes, but no copy will mix its bytes with another
 * peer's again (may_join), so a bad copy it sends next gets it banned. Remembered by its identity in the
 * swarm, which a peer that comes back keeps (one that has left is found among the last GONE_MAX to go). */
static void suspect(pc_engine *e, uint32_t handle)
{
    uint64_t id;
    if (handle == PC_SRC_CDN || !identity_of(e, handle, &id) || suspect_id(e, id))
        return; /* a sender the log had no room for, one gone too long ago, or one suspected already */
    if (e->nsuspects == e->csuspects && e->csuspects < PC_ENGINE_PEERS_MAX) {
        size_t cap = e->csuspects ? e->csuspects * 2 : 4;
        uint64_t *ns = realloc(e->suspects, cap * sizeof(*ns));
        if (ns != NULL) { /* else not remembered: one that comes back may mix again, and be suspected again */
            e->suspects = ns;
            e->csuspects = cap;
        }
    }
    if (e->nsuspects < e->csuspects)
        e->suspects[e->nsuspects++] = id;
    e->st.suspects++;
    emit(e, (pc_action){.type = PC_ACT_SUSPECT, .peer = handle});
}

static void peer_failed(pc_engine *e, uint32_t slot)
{
    epeer *p = &e->peers[slot];
    if (++p->fails < e->cfg.max_fails)
        return;
    uint32_t h = p->handle;
    cancel_peer_xfers(e, slot);
    detach_peer(e, slot);
    e->st.dropped++;
    emit(e, (pc_action){.type = PC_ACT_DROP, .peer = h});
}

static void cdn_failed(pc_engine *e)
{
    uint64_t backoff = 200000ull << (e->cdn_fails < 5 ? e->cdn_fails : 5);
    e->cdn_fails++;
    e->cdn_retry_at = e->now + backoff;
}

/* Bytes the transfers in flight still have to receive. */
static double bytes_in_flight(const pc_engine *e)
{
    double b = 0;
    for (size_t k = 0; k < e->nx; k++)
        b += (double)(e->x[k].len - e->x[k].got);
    return b;
}

/* What the downlink is known to carry (bytes/s): the fastest combined rate measured, or the CDN's
 * per-transfer rate if higher; 0 before either was measured. */
static double downlink_cap(const pc_engine *e)
{
    double cap = e->down_peak;
    if (e->cdn_measured && e->cdn_rate > cap)
        cap = e->cdn_rate;
    return cap;
}

/* What the sources of the transfers in flight are expected to send together (bytes/s), or HUGE_VAL while
 * a CDN transfer for a segment runs: it takes whatever the other sources leave of the link, so the link
 * is full (its rate, measured while it shared the link with peer transfers or another CDN transfer, is
 * only a share of the link). */
static double rates_in_flight(const pc_engine *e)
{
    double r = 0;
    for (size_t k = 0; k < e->nx; k++) {
        const xfer *x = &e->x[k];
        if (x->src == PC_SRC_CDN && x->seg != PC_SEG_INIT)
            return HUGE_VAL;
        r += x->src == PC_SRC_CDN ? e->cdn_rate : e->peers[x->src].rate;
    }
    return r;
}

/* Whether the |flying| bytes still to come and |bytes| more are more than the downlink receives before the
 * |buffered| µs of content run out, less safety_us. Never before the link was measured, nor for a P2P-only
 * viewer, which has no CDN to rescue the segments due first (as with the yield). */
static int over_budget(const pc_engine *e, uint64_t buffered, double flying, double bytes)
{
    double cap = e->cfg.p2p_only ? 0 : downlink_cap(e);
    if (cap <= 0)
        return 0;
    double budget = cap * (double)(buffered > e->cfg.safety_us ? buffered - e->cfg.safety_us : 0) / 1e6;
    return flying + bytes > budget;
}

/* Whether one more transfer, of |bytes| from a peer expected at |rate| bytes/s, would crowd the segments
 * due first off the downlink (docs/engine.md, "Prefetches fit the downlink"): the link is full (the
 * sources in flight, |rates| together, and it would send more than the link carries) and the buffer is
 * short (over_budget). A CDN transfer takes whatever the other sources leave of the link, so while one
 * runs the link is full (rates_in_flight), and for a new CDN transfer only the budget counts (cdn_may_take,
 * rescue_crowds). */
static int crowds_downlink(const pc_engine *e, uint64_t buffered, double flying, double rates, double bytes,
                           double rate)
{
    return rates + rate > downlink_cap(e) && over_budget(e, buffered, flying, bytes);
}

/* Whether a new transfer of |bytes| for segment |i|, from a source expected at |rate| bytes/s, would make
 * a transfer in flight for an earlier segment late: the link is full (as in crowds_downlink), and with
 * the downlink shared equally among the transfers (processor sharing: one with r bytes left finishes once
 * every other one has received min(its own bytes left, r)) that transfer would not finish safety_us
 * before its segment is due. (A slow source takes less than an equal share: the test errs towards
 * holding.) Never before the link was measured, nor for a P2P-only viewer. */
static int delays_earlier(const pc_engine *e, uint32_t i, double bytes, double rate)
{
    double cap = e->cfg.p2p_only ? 0 : downlink_cap(e);
    if (cap <= 0 || rates_in_flight(e) + rate <= cap)
        return 0;
    uint32_t from = seg_at(e, content_pos(e)); /* transfers behind the playhead are not waited for */
    for (size_t k = 0; k < e->nx; k++) {
        const xfer *x = &e->x[k];
        if (x->seg >= i || x->seg < from) /* PC_SEG_INIT is never below i */
            continue;
        double left = (double)(x->len - x->got), sum = left < bytes ? left : bytes;
        for (size_t j = 0; j < e->nx; j++) {
            double o = (double)(e->x[j].len - e->x[j].got);
            sum += o < left ? o : left;
        }
        if (sum / cap * 1e6 > (double)ahead_of(e, x->seg) - (double)e->cfg.safety_us)
            return 1;
    }
    return 0;
}

/* ---- rescue ---- */

static uint64_t urgent_us(const pc_engine *e)
{
    return e->cdn_mode ? e->cfg.cdn_urgent_us : e->cfg.urgent_us;
}

/* Moves transfer |x| (from a peer) away: to the CDN from its offset when |to_cdn|, else back to the
 * scheduler. */
static void rescue(pc_engine *e, xfer *x, int stalled, int to_cdn, uint64_t now)
{
    uint32_t slot = x->src, i = x->seg, rung = x->rung;
    meters_to(e, now);
    emit(e, (pc_action){.type = PC_ACT_CANCEL, .transfer = x->id});
    xfer_remove(e, x);
    if (i != PC_SEG_INIT)
        e->segs[i].state = SEG_NONE;
    e->st.rescues++;
    if (stalled)
        peer_failed(e, slot);
    if (to_cdn && i != PC_SEG_INIT)
        start_xfer(e, PC_SRC_CDN, rung, i, 0, now);
}

/* When urgent peer transfer |x|, with no byte yet, is given up (check_rescues): once its first byte is
 * overdue (an uploader queues a request only if it can start it within upload_wait_us, and the data then
 * takes a round trip: it is gone, or lost it, or its queue is slower than it said), and the CDN, asked
 * now, would only just bring the segment before it is due less safety_us. Waiting on to the first-byte
 * timeout, or until the peer's expected rate could no longer make it, could leave too little time for the
 * CDN; giving up as soon as it is overdue took a flash crowd's queued requests to the CDN. */
static uint64_t give_up_at(const pc_engine *e, const xfer *x)
{
    /* upload_wait_us 0: uploaders queue without limit, and only the first-byte timeout says a request is lost */
    uint64_t wait = e->cfg.upload_wait_us > 0 ? e->cfg.upload_wait_us : e->cfg.first_byte_us;
    uint64_t overdue = x->started + e->peers[x->src].rtt + wait;
    double last = (double)(e->stepped_at + ahead_of(e, x->seg)) - (double)e->cfg.safety_us -
                  eta(e, PC_SRC_CDN, (double)(x->len - x->got));
    return last > (double)overdue ? (uint64_t)last : overdue;
}

/* How long before its deadline (minus safety_us) transfer |x| is projected to finish, as of e->now: at
 * its own rate once it has run 200 ms, before that at its source's estimate. Negative: it will be late.
 * (The playhead is as of the last pass, stepped_at.) */
static double deadline_slack(const pc_engine *e, const xfer *x)
{
    double rate = x->src == PC_SRC_CDN ? e->cdn_rate : e->peers[x->src].rate;
    if (x->got > 0 && e->now - x->first_byte >= 200000)
        rate = (double)x->got / (double)(e->now - x->first_byte) * 1e6;
    double finish = (double)e->now + (double)(x->len - x->got) / rate * 1e6;
    double due = (double)(e->stepped_at + ahead_of(e, x->seg)) - (double)e->cfg.safety_us;
    return due - finish;
}

/* An urgent CDN transfer that has run 200 ms and is projected late. A segment due now (ahead 0) is late
 * while the player stalls for it; a real player's demand is also due now, but it says nothing of that
 * player's buffer, so it is not. */
static int cdn_late(const pc_engine *e, const xfer *x)
{
    if (x->src != PC_SRC_CDN || x->seg == PC_SEG_INIT || x->got == 0 || e->now - x->first_byte < 200000)
        return 0;
    uint64_t ahead = ahead_of(e, x->seg);
    if (ahead == 0)
        return e->demand_pos == 0 && e->player.state == PC_PLAYER_STALLED;
    return ahead < urgent_us(e) && deadline_slack(e, x) < 0;
}

/* Prefetches yield to an urgent CDN transfer running late: they share the viewer's downlink with it
 * (where the downlink is the bottleneck, each of ten prefetches takes as much of it as the segment due
 * next). They are cancelled, their bytes kept to resume from, and none starts until no urgent segment
 * is on the CDN any more (released as soon as the late one sped up, they took the link back at once).
 * Peer transfers for segments after the earliest one on the CDN yield too, urgent ones included, and
 * the pass gives no peer such a segment meanwhile (yield_seg). */
static void yield_to_urgent(pc_engine *e)
{
    if (e->cfg.p2p_only || !pc_player_active(&e->player)) {
        e->yielding = 0;
        return;
    }
    uint64_t uw = urgent_us(e);
    if (e->yielding) {
        e->yielding = 0;
        for (size_t k = 0; k < e->nx && !e->yielding; k++)
            e->yielding = e->x[k].src == PC_SRC_CDN && e->x[k].seg != PC_SEG_INIT && ahead_of(e, e->x[k].seg) < uw;
    }
    if (!e->yielding && e->npeer_xfers > 0)
        for (size_t k = 0; k < e->nx && !e->yielding; k++)
            e->yielding = cdn_late(e, &e->x[k]);
    if (!e->yielding)
        return;
    e->yield_seg = first_in_flight(e, 1);
    for (size_t k = 0; k < e->nx;) {
        xfer *x = &e->x[k];
        if (x->src != PC_SRC_CDN && x->seg != PC_SEG_INIT && (ahead_of(e, x->seg) >= uw || x->seg > e->yield_seg)) {
            emit(e, (pc_action){.type = PC_ACT_CANCEL, .transfer = x->id});
            unclaim(e, x);
            xfer_remove(e, x);
            e->st.yields++;
        } else {
            k++;
        }
    }
}

/* Whether the CDN may take segment |i| (|bytes| left) now: a request slot for it is free, and it would
 * not crowd a transfer for an earlier segment off the downlink. */
static int cdn_may_take(const pc_engine *e, uint32_t i, uint64_t buffered, double bytes)
{
    return cdn_busy(e) < e->cfg.cdn_inflight &&
           !(earlier_in_flight(e, i) && over_budget(e, buffered, bytes_in_flight(e), bytes));
}

/* Whether moving peer transfer |x| to the CDN now would take the link from an earlier segment: one that
 * nothing fetches yet (held for the CDN, or waiting for a CDN slot or backoff: the pass, which comes
 * next, serves it first when it can, and the late transfer stays on its peer meanwhile), or a CDN
 * transfer for an earlier segment that it would crowd off the downlink (cdn_may_take's test). The pass
 * fetches in deadline order; a rescue picks whichever transfer is late, and must not get round it. */
static int rescue_crowds(const pc_engine *e, const xfer *x, uint64_t buffered)
{
    for (uint32_t i = seg_at(e, content_pos(e)); i < x->seg; i++)
        if (e->segs[i].state == SEG_NONE)
            return 1;
    if (!earlier_in_flight(e, x->seg))
        return 0;
    double left = (double)(x->len - x->got);
    return over_budget(e, buffered, bytes_in_flight(e) - left, left);
}

/* Whether peer transfer |x| is for a segment the position has passed that no real player asked for: a
 * player that jumped ahead (pc_engine_demand) leaves its prefetches running (only a seek cancels them),
 * and nobody will play them, so they are never urgent. Counted urgent (ahead 0), every one of them
 * went to the CDN in the pass after the jump, beside the segment the player waited for (8 of them,
 * 1.4 MB, in a unit test: the demanded segment came 1.4 s later on 8 Mbit/s; found by review). */
static int passed_by(const pc_engine *e, const xfer *x)
{
    return x->seg != PC_SEG_INIT && x->seg < e->pos_seg && !e->segs[x->seg].demanded;
}

/* |buffered|: µs of content buffered ahead of the playhead, as the pass measured it. */
static void check_rescues(pc_engine *e, uint64_t buffered, uint64_t now)
{
    for (size_t k = 0; k < e->nx;) {
        xfer *x = &e->x[k];
        if (x->src == PC_SRC_CDN || x->seg == PC_SEG_INIT) {
            k++;
            continue;
        }
        epeer *p = &e->peers[x->src];
        uint64_t ahead = ahead_of(e, x->seg);
        int urgent = ahead < urgent_us(e) && !passed_by(e, x);
        /* not while the CDN backs off after a failure: the transfer went back and forth between its peer and
         * a CDN that failed again, 5 s a round with a black-holed one (found by review) */
        int cdn_ok = !e->cfg.p2p_only && now >= e->cdn_retry_at;
        int timed_out = now - x->last_data >= (x->got > 0 ? stall_timeout(p) : e->cfg.first_byte_us);
        if (timed_out || (urgent && cdn_ok && x->got == 0 && now >= give_up_at(e, x))) {
            int to_cdn = urgent && cdn_ok && !rescue_crowds(e, x, buffered);
            /* timed out: while the CDN may not take it, back to the pass, which fetches in deadline order.
             * Given up (no byte yet): only to the CDN, since the rule is that the CDN can still bring it in
             * time; while the CDN may not take it, it waits on for its first byte. */
            if (timed_out || to_cdn) {
                rescue(e, x, 1, to_cdn, now);
                continue; /* x now holds another transfer */
            }
        }
        /* late, but still coming: it stays on its peer while the CDN may not take it, and while the CDN
         * has failed twice in a row (an outage: the pass gave it to the peer however late) */
        if (urgent && cdn_ok && e->cdn_fails < 2 && pc_player_active(&e->player) && deadline_slack(e, x) < 0 &&
            !rescue_crowds(e, x, buffered)) {
            rescue(e, x, 0, 1, now);
            continue;
        }
        k++;
    }
    yield_to_urgent(e);
}

/* ---- mode ---- */

static double playing_bps(const pc_engine *e)
{
    return (double)e->m->rung[e->abr.cur].bandwidth;
}

static void update_mode(pc_engine *e, int swarm_lacks)
{
    if (e->cfg.cdn_only || e->cfg.p2p_only)
        return;
    double need = playing_bps(e) / 8.0;
    double ratio;
    if (swarm_lacks)
        ratio = 0; /* no connected peer holds the next segment: the swarm cannot keep up, whatever it did */
    else if (e->m_p2p.active >= 2e5)
        ratio = meter_rate(&e->m_p2p) / need;
    else
        return;
    if (!e->cdn_mode && ratio < e->cfg.low_water)
        e->cdn_mode = 1;
    else if (e->cdn_mode && ratio > e->cfg.high_water)
        e->cdn_mode = 0;
}

/* ---- scheduling ---- */

typedef struct cand {
    uint32_t i, rung, rarity;
    uint64_t bucket;
} cand;

/* Whether a peer that connected within QUIET_US has not yet told us of any holding: it may hold what
 * the others lack (a seeder whose HAVE waits behind a download cap: its viewer fetched the whole video
 * early from the CDN before reading it), so nobody volunteers meanwhile. In step, every peer holds its
 * start-up segments within a second or two; one that never tells (it uploads nothing) stops blocking
 * after QUIET_US. */
#define QUIET_US 10000000u
static int quiet_peer(const pc_engine *e, uint64_t now)
{
    for (uint32_t s = 0; e->nquiet > 0 && s < e->npeer_slots; s++)
        if (e->peers[s].used && !e->peers[s].heard && now < e->pinfo[s].joined + QUIET_US)
            return 1;
    return 0;
}

/* A viewer's draw for segment |i|: a hash of its identity in the swarm and |i|, the same in every engine. */
static uint64_t draw(uint64_t id, uint32_t i)
{
    return pc_rng_hash(id * 0x9e3779b97f4a7c15ULL + i);
}

/* Whether this viewer fetches segment |i| early from the CDN when no peer holds it: the one of the group
 * (itself and its connected peers) with the lowest draw (ties: the lower identity). Viewers in step (a
 * premiere, everyone pressing play at once) never hold a segment before the others need it, so without a
 * volunteer each of them fetches every segment from the CDN. Every viewer draws everyone's the same way,
 * so in a group where all know each other exactly one volunteers, and the others take the copy from it;
 * where groups overlap, about one in each neighbourhood. */
static int volunteers(pc_engine *e, uint32_t i)
{
    if (e->npeers == 0)
        return 0;
    uint32_t gen = e->peers_gen ? e->peers_gen : 1; /* 0 marks an empty entry */
    if (e->vol[i & 7].seg == i && e->vol[i & 7].gen == gen)
        return (int)e->vol[i & 7].yes;
    uint64_t mine = draw(e->cfg.id, i);
    int yes = 1;
    for (uint32_t s = 0; s < e->npeer_slots && yes; s++) {
        if (!e->peers[s].used)
            continue;
        uint64_t theirs = draw(e->pinfo[s].id, i);
        yes = theirs > mine || (theirs == mine && e->pinfo[s].id > e->cfg.id);
    }
    e->vol[i & 7].seg = i;
    e->vol[i & 7].gen = gen;
    e->vol[i & 7].yes = (uint32_t)yes;
    return yes;
}

/* Sooner bucket first, then rarer, then earlier segment. */
static int cand_less(const cand *x, const cand *y)
{
    if (x->bucket != y->bucket)
        return x->bucket < y->bucket;
    if (x->rarity != y->rarity)
        return x->rarity < y->rarity;
    return x->i < y->i;
}

static uint32_t swarm_holds_mask(const pc_engine *e, uint32_t i)
{
    uint32_t mask = 0;
    for (uint32_t r = 0; r < e->m->n_rungs; r++)
        if (avail(e, r, i) > 0)
            mask |= 1u << r;
    return mask;
}

static uint32_t prefetch_busy(const pc_engine *e)
{
    uint32_t n = 0;
    for (size_t i = 0; i < e->nx; i++)
        n += e->x[i].src != PC_SRC_CDN && e->x[i].prefetch;
    return n;
}

/* What CDN and swarm can deliver together (bits/s): the CDN's measured transfer rate plus the P2P
 * throughput, at most the downlink's rate, or what was actually received if that is more. A P2P-only
 * viewer counts no CDN. Measuring only what arrives would understate it: a viewer fed by slow peers
 * receives just what it asks for. The cap: the two rates share one downlink, and each measured on its
 * own (the CDN's after a seek, the swarm's while the buffer filled) can be the whole link, so their sum
 * can be twice what the viewer receives. */
static double abr_throughput(const pc_engine *e)
{
    double all = e->m_all.ever >= TPUT_TRUST_US && e->m_all.active >= 2e4 ? meter_rate(&e->m_all) * 8 : 0;
    if (e->cfg.p2p_only || !e->cdn_measured)
        return all;
    double p2p = e->m_p2p.active >= 2e5 ? meter_rate(&e->m_p2p) * 8 : 0;
    /* CDN transfers in flight for half a second tell the present rate before they complete */
    double cdn = e->cdn_rate, seen = 0;
    int observed = 0;
    for (size_t k = 0; k < e->nx; k++) {
        const xfer *x = &e->x[k];
        if (x->src == PC_SRC_CDN && x->got > 0 && e->now - x->first_byte >= 500000) {
            seen += (double)x->got / (double)(e->now - x->first_byte) * 1e6;
            observed = 1;
        }
    }
    if (observed && seen < cdn)
        cdn = seen;
    double cap = cdn * 8 + p2p;
    if (e->link_measured) {
        double link = (e->link_rate > cdn ? e->link_rate : cdn) * 8;
        if (cap > link)
            cap = link;
    }
    return cap > all ? cap : all;
}

/* The rung to prefetch segment |i| at, |ahead| µs before it plays: the rung the ABR is projected to have
 * reached by then (it climbs one rung per up_hold_us towards its target), or the highest below that a
 * free peer holds, down to |rung|, the one now chosen. Prefetching at the rung of the moment filled a
 * minute of buffer with the start rung while the ABR climbed (docs/engine.md). A P2P-only viewer stays
 * at the rung of the moment: with no CDN to rescue a late copy, a bigger one is a bet it cannot cover. */
static uint32_t prefetch_rung(const pc_engine *e, uint32_t rung, uint32_t i, uint64_t ahead)
{
    if (e->cfg.p2p_only)
        return rung;
    uint32_t r = pc_abr_projected(&e->abr, ahead);
    while (r > rung && !free_holder(e, r, i))
        r--;
    return r;
}

/* The rung to fetch segment |i| at, |want| being the rung the scheduler would choose: the one a real
 * player asked for; else the rung of a copy begun (resumed from its bytes: a prefetch that yielded, a
 * rescue) unless finishing it takes more bytes than a whole copy at |want| (the ABR went down since);
 * else |want|. */
static uint32_t fetch_rung(const pc_engine *e, uint32_t i, uint32_t want)
{
    const seg *s = &e->segs[i];
    if (s->demanded)
        return s->rung;
    if (s->got > 0 && (s->rung <= want || seg_size(e, s->rung, i) - s->got <= seg_size(e, want, i)))
        return s->rung;
    return want;
}

/* Bytes still to fetch for segment |i| at rung |r|: what a copy begun at that rung lacks, or all of it. */
static double bytes_left(const pc_engine *e, uint32_t r, uint32_t i)
{
    const seg *s = &e->segs[i];
    return (double)(seg_size(e, r, i) - (r == s->rung ? s->got : 0));
}

static void schedule(pc_engine *e, uint64_t now)
{
    e->p2p_wanted = 0;
    if (e->quit || !pc_player_active(&e->player))
        return;
    /* the buffer as update_player measured it at the start of this pass */
    uint64_t pos = content_pos(e), buffered = e->buf_end > pos ? e->buf_end - pos : 0;
    check_rescues(e, buffered, now);
    refresh_free(e);
    uint32_t n = e->m->n_segments;
    uint32_t first = seg_at(e, pos);
    /* the next segment to fetch decides the rung */
    uint32_t next = first;
    while (next < n && e->segs[next].state != SEG_NONE)
        next++;
    int swarm_lacks = 0;
    /* a viewer that has just pressed play and has heard no peer's holdings yet is still finding its
     * peers (the tracker's answer, the links' handshakes, their HAVEs): that is no evidence of a weak
     * swarm */
    int discovering = !e->haves_seen && now - e->played_at < e->cfg.discover_us;
    if (next < n && e->start[next] >= e->startup_end && ahead_of(e, next) < e->cfg.prefetch_us && !discovering)
        swarm_lacks = avail(e, e->abr.cur, next) == 0;
    update_mode(e, swarm_lacks);
    meters_to(e, now);
    if (e->m_all.active >= DOWN_PEAK_ACTIVE_US && meter_rate(&e->m_all) > e->down_peak)
        e->down_peak = meter_rate(&e->m_all);
    double tput = abr_throughput(e);
    uint32_t rung = pc_abr_decide(&e->abr, buffered, tput, next < n ? swarm_holds_mask(e, next) : 0, now);
    if (e->init_state[rung] == SEG_NONE && now >= e->cdn_retry_at)
        start_xfer(e, PC_SRC_CDN, rung, PC_SEG_INIT, 0, now);
    int cdn_allowed = now >= e->cdn_retry_at;
    /* the CDN failed twice in a row and is backing off: an outage, not a hiccup. The segments it was to
     * bring (the start-up window, the urgent ones) go to a peer that holds them, however late */
    int cdn_down = !cdn_allowed && e->cdn_fails >= 2 && !e->cfg.cdn_only;
    /* while the player waits to start (or for a seek), the CDN start-up has the link to itself */
    int waiting = e->player.state == PC_PLAYER_STARTING || e->player.state == PC_PLAYER_SEEKING;
    /* While the player waits, the segments it needs to start are due now, and together: they share the
     * link (one after the other, it would idle for a round trip between them). Any other waits while it
     * would crowd them, if it can still come in time after the start: alone on the link, within the
     * start buffer less safety_us. */
    uint64_t start_end = pos + e->player.start_us;
    double after_start = waiting ? downlink_cap(e) * (double)(e->player.start_us > e->cfg.safety_us
                                                                  ? e->player.start_us - e->cfg.safety_us
                                                                  : 0) / 1e6
                                 : 0;
    /* Segments a real player asked for that lie behind the content position: its loaders run in parallel
     * (or two players share the endpoint), and a request for a later segment moved the position past
     * one still waited for, which the window below no longer sees. The player waits for them now: they
     * go first, from the CDN (from a peer when the CDN is down). */
    for (uint32_t i = 0; e->ndemanded > 0 && i < first; i++) {
        seg *s = &e->segs[i];
        if (!s->demanded || s->state != SEG_NONE)
            continue;
        if (cdn_allowed && cdn_busy(e) < e->cfg.cdn_inflight) {
            if (e->init_state[s->rung] == SEG_NONE)
                start_xfer(e, PC_SRC_CDN, s->rung, PC_SEG_INIT, 0, now);
            start_xfer(e, PC_SRC_CDN, s->rung, i, 0, now);
        } else if (!cdn_allowed) {
            double peta = 0;
            uint32_t pk = best_peer(e, s->rung, i, bytes_left(e, s->rung, i), &peta);
            if (pk != PC_SRC_CDN)
                start_xfer(e, pk, s->rung, i, 0, now);
        }
    }
    int cdn_held = 0; /* a segment waits for the CDN: none after it takes the CDN in this pass */
    cand cands[256];
    size_t nc = 0;
    int wanted = 0;
    uint64_t uw = urgent_us(e); /* neither it nor pos changes during the pass */
    /* A viewer whose CDN transfers run slower than the rung it plays (its downlink is the limit) has
     * nothing to spare: one segment at a time, the next one due, so that a prefetch does not slow it. */
    int starved = !e->cfg.cdn_only && e->cdn_measured && e->cdn_rate * 8 < playing_bps(e);
    size_t nx0 = e->nx;
    int unheld = 0; /* an earlier segment of the prefetch window that no peer holds and nobody fetches */
    for (uint32_t i = first; i < n; i++) {
        uint64_t ahead = ahead_at(e, pos, i);
        /* a CDN-only viewer buffers as a hybrid one with no peers would: the CDN-mode urgent window */
        if (ahead >= (e->cfg.cdn_only ? e->cfg.cdn_urgent_us : e->cfg.prefetch_us))
            break;
        seg *s = &e->segs[i];
        if (starved && (s->state == SEG_INFLIGHT || e->nx > nx0))
            break; /* the earliest segment missing is on its way (or just asked for) */
        if (s->state != SEG_NONE) {
            /* a copy at a rung whose init failed (a prefetch above the current rung): fetch it again, or
             * the copy would never play */
            if (e->init_state[s->rung] == SEG_NONE && cdn_allowed)
                start_xfer(e, PC_SRC_CDN, s->rung, PC_SEG_INIT, 0, now);
            continue;
        }
        uint32_t r = fetch_rung(e, i, rung);
        double bytes = bytes_left(e, r, i);
        int startup = e->start[i] < e->startup_end;
        if (cdn_down && startup) {
            double peta = 0;
            uint32_t pk = best_peer(e, r, i, bytes, &peta);
            if (pk != PC_SRC_CDN)
                start_xfer(e, pk, r, i, 0, now);
            continue;
        }
        if (e->cfg.cdn_only || startup) {
            int together = waiting && (e->start[i] < start_end || bytes > after_start);
            if (cdn_allowed && !cdn_held &&
                (together ? cdn_busy(e) < e->cfg.cdn_inflight : cdn_may_take(e, i, waiting ? 0 : buffered, bytes)))
                start_xfer(e, PC_SRC_CDN, r, i, 0, now);
            else
                cdn_held = 1;
            continue;
        }
        if (waiting)
            break;
        if (ahead < uw) {
            double peta = 0;
            uint32_t pk = e->cfg.cdn_only ? PC_SRC_CDN : best_peer(e, r, i, bytes, &peta);
            if (e->cfg.p2p_only) {
                if (pk != PC_SRC_CDN)
                    start_xfer(e, pk, r, i, 0, now);
                continue;
            }
            if (e->yielding && i > e->yield_seg)
                pk = PC_SRC_CDN; /* no peer takes the link from a late CDN segment before it */
            if (pk != PC_SRC_CDN && delays_earlier(e, i, bytes, e->peers[pk].rate))
                pk = PC_SRC_CDN; /* no peer takes the link from a segment due before it either */
            double ceta = eta(e, PC_SRC_CDN, bytes);
            double due = (double)ahead - (double)e->cfg.safety_us;
            int cdn_free = cdn_allowed && !cdn_held && cdn_may_take(e, i, buffered, bytes);
            /* a peer only while the CDN could still bring the segment once that peer's first byte were
             * overdue (give_up_at): a thin buffer, as after a seek, leaves no time to find out */
            if (pk != PC_SRC_CDN && cdn_free && due - ceta < (double)(e->cfg.upload_wait_us + e->peers[pk].rtt))
                pk = PC_SRC_CDN;
            if (pk != PC_SRC_CDN && !e->cdn_mode && (peta <= due || peta <= ceta || !cdn_free))
                start_xfer(e, pk, r, i, 0, now);
            else if (cdn_free)
                start_xfer(e, PC_SRC_CDN, r, i, 0, now);
            else if (pk != PC_SRC_CDN && (peta <= due || cdn_down))
                start_xfer(e, pk, r, i, 0, now);
            cdn_held |= s->state == SEG_NONE;
            continue;
        }
        /* peers could take it; but only one with a free request slot can now, and none of the urgent
         * segments (all before this one) takes a slot after this, so the others need no ranking */
        wanted = 1;
        if (!s->demanded)
            r = fetch_rung(e, i, prefetch_rung(e, rung, i, ahead));
        uint32_t held = avail(e, r, i);
        /* a volunteer copy leaves a CDN slot to a segment before it that no peer holds: that one needs the
         * CDN within seconds, when it turns urgent */
        if (ahead < uw + e->cfg.volunteer_us && !e->cfg.p2p_only && !discovering && !starved && cdn_allowed &&
            !cdn_held && held == 0 && !quiet_peer(e, now) && volunteers(e, i) &&
            cdn_may_take(e, i, buffered, bytes_left(e, r, i)) && (!unheld || cdn_busy(e) + 1 < e->cfg.cdn_inflight)) {
            /* at the rung the ABR is heading for, not the projection of the moment, when the link can
             * take it: the copy is the group's for half a minute ahead, and a volunteer that has just
             * started would otherwise fetch it at its lowest rung, which every peer then takes (a
             * prefetch falls back to the highest rung a free peer holds) */
            if (!s->demanded && s->got == 0 && e->abr.pinned < 0 && e->abr.target > r &&
                cdn_may_take(e, i, buffered, (double)seg_size(e, e->abr.target, i)))
                r = e->abr.target;
            start_xfer(e, PC_SRC_CDN, r, i, 1, now);
            continue;
        }
        unheld |= held == 0;
        if (nc < sizeof(cands) / sizeof(cands[0]) && free_holder(e, r, i))
            cands[nc++] = (cand){.i = i, .rung = r, .rarity = held,
                                 .bucket = ahead / e->cfg.rarest_bucket_us};
    }
    e->p2p_wanted = wanted && !e->cfg.cdn_only && !e->yielding && !discovering; /* not a weak swarm */
    if (nc == 0 || e->cfg.cdn_only || e->yielding)
        return;
    /* insertion sort: the candidates come in segment order, so their buckets already ascend and only
     * rarity moves them, within a bucket */
    for (size_t k = 1; k < nc; k++) {
        cand c = cands[k];
        size_t j = k;
        for (; j > 0 && cand_less(&c, &cands[j - 1]); j--)
            cands[j] = cands[j - 1];
        cands[j] = c;
    }
    double flying = bytes_in_flight(e), rates = rates_in_flight(e);
    for (size_t k = 0; k < nc && prefetch_busy(e) < e->cfg.prefetch_inflight && any_free(e); k++) {
        uint32_t i = cands[k].i, r = cands[k].rung;
        double peta = 0, bytes = bytes_left(e, r, i);
        uint32_t pk = best_peer(e, r, i, bytes, &peta);
        if (pk == PC_SRC_CDN)
            continue;
        if (crowds_downlink(e, buffered, flying, rates, bytes, e->peers[pk].rate)) {
            e->p2p_wanted = 0; /* held back by the downlink, as when yielding: not a weak swarm */
            break;
        }
        start_xfer(e, pk, r, i, 1, now);
        flying += bytes;
        rates += e->peers[pk].rate;
    }
}

/* Starts the queued uploads the upload policy lets go now. */
static void pump_uploads(pc_engine *e)
{
    uint64_t id;
    uint32_t len;
    while (pc_upload_next(&e->up, e->now, &id, &len)) {
        emit(e, (pc_action){.type = PC_ACT_SERVE, .request = id, .length = len});
    }
}

/* Requests from memory what a pass reads beyond the engine itself, before it reads any of it: the last
 * pass's window of segment states, start times and holder sets at the current rung, the transfers and
 * their peers. An engine that is not the last one run is all cache misses, and these overlap. */
static void prefetch_pass(const pc_engine *e)
{
    uint32_t lo = e->win_lo, hi = e->win_hi < e->n_segments ? e->win_hi + 1 : e->n_segments;
    for (const char *p = (const char *)&e->segs[lo], *end = (const char *)&e->segs[hi]; p < end; p += 64)
        __builtin_prefetch(p);
    for (const char *p = (const char *)&e->start[lo], *end = (const char *)&e->start[hi + 1]; p < end; p += 64)
        __builtin_prefetch(p);
    if (e->hw > 0 && e->abr.cur < e->n_rungs && lo < hi)
        for (const char *p = (const char *)holders_of(e, e->abr.cur, lo),
                        *end = (const char *)holders_of(e, e->abr.cur, hi); p < end; p += 64)
            __builtin_prefetch(p);
    for (size_t k = 0; k < e->nx; k++) {
        __builtin_prefetch(&e->x[k]);
        if (e->x[k].src != PC_SRC_CDN)
            __builtin_prefetch(&e->peers[e->x[k].src]);
    }
}

/* Every entry point that can change what to download ends here: bring the player to |now|, react,
 * schedule, then serve. (Upload-side events only pump the uploads: they change nothing the download
 * side decides on.) */
static void step(pc_engine *e, uint64_t now)
{
    prefetch_pass(e);
    if (now > e->now)
        e->now = now;
    e->stepped_at = e->now;
    e->dirty = 0;
    meters_to(e, e->now);
    update_player(e, e->now);
    schedule(e, e->now);
    pump_uploads(e);
}

/* ---- lifecycle ---- */

void pc_media_start_times(const uint32_t *seg_dur_us, uint32_t n, uint64_t *out)
{
    out[0] = 0;
    for (uint32_t i = 0; i < n; i++)
        out[i + 1] = out[i] + seg_dur_us[i];
}

int pc_engine_new(const pc_media *m, const pc_engine_config *c, pc_engine **out)
{
    *out = NULL;
    if (m->n_rungs == 0 || m->n_rungs > PC_RUNGS_MAX || m->n_segments == 0 || m->n_segments > PC_ENGINE_SEGMENTS_MAX)
        return PC_EINVAL;
    for (uint32_t r = 0; r < m->n_rungs; r++) {
        if (m->rung[r].bandwidth == 0 || (r > 0 && m->rung[r].bandwidth < m->rung[r - 1].bandwidth) ||
            m->rung[r].init_size == 0 || m->rung[r].seg_size == NULL || m->rung[r].seg_hash == NULL ||
            m->rung[r].init_hash == NULL)
            return PC_EINVAL;
        for (uint32_t i = 0; i < m->n_segments; i++)
            if (m->rung[r].seg_size[i] == 0)
                return PC_EINVAL;
    }
    for (uint32_t i = 0; i < m->n_segments; i++)
        if (m->seg_dur_us[i] == 0 ||
            (m->seg_start_us != NULL && m->seg_start_us[i + 1] != m->seg_start_us[i] + m->seg_dur_us[i]))
            return PC_EINVAL;
    if (m->seg_start_us != NULL && m->seg_start_us[0] != 0)
        return PC_EINVAL;
    pc_engine *e = aligned_alloc(64, (sizeof(*e) + 63) / 64 * 64);
    if (e == NULL)
        return PC_ENOMEM;
    memset(e, 0, sizeof(*e));
    e->m = m;
    e->n_rungs = m->n_rungs;
    e->n_segments = m->n_segments;
    e->cfg = *c;
    size_t n = m->n_segments;
    if (m->seg_start_us == NULL)
        e->own_start = malloc((n + 1) * sizeof(*e->own_start));
    e->start = m->seg_start_us != NULL ? m->seg_start_us : e->own_start;
    for (size_t k = 0; k < GONE_MAX; k++)
        e->gone[k].handle = PC_SRC_CDN;
    e->segs = calloc(n, sizeof(*e->segs));
    e->acct = calloc(n, sizeof(*e->acct));
    e->held = calloc(m->n_rungs, (n + 7) / 8);
    if (e->start == NULL || e->segs == NULL || e->acct == NULL || e->held == NULL) {
        pc_engine_free(e);
        return PC_ENOMEM;
    }
    if (e->own_start != NULL)
        pc_media_start_times(m->seg_dur_us, m->n_segments, e->own_start);
    pc_rng_init(&e->rng, c->seed);
    pc_player_init(&e->player, e->start[n], c->start_buffer_us, c->resume_buffer_us);
    uint32_t bw[PC_RUNGS_MAX];
    for (uint32_t r = 0; r < m->n_rungs; r++)
        bw[r] = m->rung[r].bandwidth;
    pc_abr_init(&e->abr, &c->abr, m->n_rungs, bw, c->start_bps);
    pc_abr_pin(&e->abr, c->pinned_rung);
    if (c->pinned_rung >= 0 && (uint32_t)c->pinned_rung < m->n_rungs)
        e->abr.cur = (uint32_t)c->pinned_rung;
    pc_upload_init(&e->up, c->upload_bps, c->upload_slots, 2, 32);
    pc_upload_set_max_wait(&e->up, c->upload_wait_us);
    e->cdn_rate = (double)(c->cdn_bps_guess ? c->cdn_bps_guess : 8000000) / 8.0;
    e->st.startup_us = PC_NEVER;
    *out = e;
    return 0;
}

void pc_engine_free(pc_engine *e)
{
    if (e == NULL)
        return;
    free(e->peers);
    free(e->pinfo);
    free(e->idx);
    free(e->holders);
    free(e->x);
    free(e->banned);
    free(e->suspects);
    free(e->clog);
    pc_upload_clear(&e->up);
    free(e->own_start);
    free(e->segs);
    free(e->acct);
    free(e->held);
    free(e->q);
    free(e);
}

void pc_engine_play(pc_engine *e, uint64_t now)
{
    if (e->player.state != PC_PLAYER_IDLE)
        return;
    e->now = now;
    e->m_p2p.t = e->m_all.t = now;
    e->startup_end = e->cfg.startup_cdn_us;
    e->played_at = now;
    pc_player_play(&e->player, now);
    step(e, now);
}

/* |clear|: the viewer seeks (not a real player's request behind the window, whose other requests
 * still wait for their segments) */
static void seek_to(pc_engine *e, uint64_t pos_us, uint64_t now, int clear)
{
    if (e->quit || e->player.state == PC_PLAYER_IDLE)
        return;
    if (now > e->now)
        e->now = now;
    pc_player_seek(&e->player, pos_us, e->now);
    e->demand_pos = 0;
    /* a viewer's seek forgets what was asked for; a real player's request behind the window does not:
     * its other requests still wait (schedule fetches those left behind the new position first) */
    int keep = !clear;
    for (uint32_t i = 0; !keep && i < e->m->n_segments; i++)
        e->segs[i].demanded = 0;
    if (!keep)
        e->ndemanded = 0;
    e->ended_sent = 0; /* a seek to the end ends playback: ENDED goes out at the next pass */
    uint32_t first = seg_at(e, content_pos(e));
    e->startup_end = e->start[first] + e->cfg.startup_cdn_us;
    /* cancel what the new position does not need, and (hybrid) whatever would share the link with its
     * start-up: every peer transfer, and CDN ones past the start-up window. A prefetch from a peer that
     * was ahead of the old position may now be the segment the player waits for, and a slow peer would
     * keep it (up to 9 s against the CDN's 0.5 s, in the simulator); the bytes received are kept and
     * the fetch resumes from them. Without a CDN (p2p-only) the peers are all there is. */
    clear = clear && !e->cfg.p2p_only && !e->cfg.cdn_only;
    meters_to(e, e->now);
    for (size_t k = 0; k < e->nx;) {
        xfer *x = &e->x[k];
        if (x->seg != PC_SEG_INIT && !(keep && e->segs[x->seg].demanded) &&
            (x->seg < first || ahead_of(e, x->seg) >= e->cfg.prefetch_us ||
             (clear && (x->src != PC_SRC_CDN || e->start[x->seg] >= e->startup_end)))) {
            emit(e, (pc_action){.type = PC_ACT_CANCEL, .transfer = x->id});
            e->segs[x->seg].state = SEG_NONE;
            xfer_remove(e, x);
        } else {
            k++;
        }
    }
    step(e, e->now);
}

void pc_engine_seek(pc_engine *e, uint64_t pos_us, uint64_t now)
{
    seek_to(e, pos_us, now, 1);
}

void pc_engine_demand(pc_engine *e, uint32_t rung, uint32_t i, uint64_t now)
{
    if (e->quit || e->player.state == PC_PLAYER_IDLE || i >= e->m->n_segments || rung >= e->m->n_rungs)
        return;
    if (now > e->now)
        e->now = now;
    meters_to(e, e->now);
    seg *s = &e->segs[i];
    /* the model plays the copy the real player now asks for at another rung: the player never had it (it
     * would not ask), so the model was ahead of it; it follows the player there as after a seek (below),
     * and the new copy's wait is a seek's. Dropped under a playing model, the copy used to count a stall
     * that never happened (a player that starts above the lowest rendition, as hls.js may; found by
     * review) */
    int under = s->rung != rung && s->state == SEG_READY && e->player.state == PC_PLAYER_PLAYING &&
                i == seg_at(e, e->player.pos_us);
    if (s->rung != rung) {
        /* the player wants another rung than the copy held, coming or begun (or the one a fetch cancelled
         * before a byte came asked for): drop that copy, and its times. Before the model follows the
         * player back (below): seeking first, the model started playing the copy held there, and dropping
         * it then left the playhead on nothing, a stall counted where the player had sought */
        for (size_t k = 0; k < e->nx; k++)
            if (e->x[k].seg == i) {
                emit(e, (pc_action){.type = PC_ACT_CANCEL, .transfer = e->x[k].id});
                xfer_remove(e, &e->x[k]);
                break;
            }
        if (s->state == SEG_READY)
            bit_clear(e->held + (size_t)s->rung * bitmap_bytes(e), i);
        s->state = SEG_NONE;
        seg_drop_copy(e, i);
        s->rung = (uint8_t)rung;
    }
    /* asked for before the move below, whose pass would otherwise fetch it at the ABR's rung */
    e->ndemanded += !s->demanded;
    s->demanded = 1;
    if (e->player.state == PC_PLAYER_ENDED || i < seg_at(e, content_pos(e)))
        /* the real player is behind the window (it went back, or the model played on to the end while
         * it paused): nothing there would be fetched, so the model follows it, as after a seek (which
         * forgets the demands before this one) */
        seek_to(e, e->start[i], e->now, 0);
    else if (under)
        seek_to(e, e->player.pos_us, e->now, 0);
    if (e->start[i] > e->demand_pos)
        e->demand_pos = e->start[i];
    step(e, e->now);
}

void pc_engine_undemand(pc_engine *e, uint32_t i)
{
    if (i < e->m->n_segments && e->segs[i].demanded) {
        e->segs[i].demanded = 0;
        e->ndemanded--;
    }
}

void pc_engine_quit(pc_engine *e, uint64_t now)
{
    if (e->quit)
        return;
    if (now > e->now)
        e->now = now;
    meters_to(e, e->now);
    pc_player_quit(&e->player, e->now);
    locate(e);
    e->quit = 1;
    while (e->nx > 0) {
        xfer *x = &e->x[0];
        emit(e, (pc_action){.type = PC_ACT_CANCEL, .transfer = x->id});
        unclaim(e, x);
        xfer_remove(e, x);
    }
}

void pc_engine_pin_rung(pc_engine *e, int rung, uint64_t now)
{
    pc_abr_pin(&e->abr, rung);
    step(e, now);
}

void pc_engine_demand_init(pc_engine *e, uint32_t rung, uint64_t now)
{
    if (e->quit || rung >= e->m->n_rungs)
        return;
    if (now > e->now)
        e->now = now;
    if (e->init_state[rung] == SEG_NONE && e->now >= e->cdn_retry_at)
        start_xfer(e, PC_SRC_CDN, rung, PC_SEG_INIT, 0, e->now);
}

/* ---- peers ---- */

/* Room for |cap| peer slots: the slot arrays, and wider holder sets when they need more words. */
static int grow_peers(pc_engine *e, uint32_t cap)
{
    epeer *np = aligned_alloc(64, cap * sizeof(*np)); /* each record on a line of its own */
    if (np == NULL)
        return PC_ENOMEM;
    if (e->npeer_slots > 0)
        memcpy(np, e->peers, e->npeer_slots * sizeof(*np));
    memset(np + e->npeer_slots, 0, (cap - e->npeer_slots) * sizeof(*np));
    free(e->peers);
    e->peers = np;
    void *npi = realloc(e->pinfo, cap * sizeof(*e->pinfo));
    if (npi == NULL)
        return PC_ENOMEM;
    e->pinfo = npi;
    uint32_t bits = 1;
    while ((1u << bits) < 2 * cap)
        bits++;
    pidx *ni = malloc(((size_t)1 << bits) * sizeof(*ni));
    if (ni == NULL)
        return PC_ENOMEM;
    for (size_t k = 0; k < (size_t)1 << bits; k++)
        ni[k].handle = PC_SRC_CDN;
    free(e->idx);
    e->idx = ni;
    e->idx_bits = bits;
    for (uint32_t k = 0; k < e->npeer_slots; k++)
        if (np[k].used)
            idx_insert(e, np[k].handle, k);
    uint32_t hw = (cap + 63) / 64;
    if (hw != e->hw) {
        size_t sets = (size_t)e->m->n_rungs * e->m->n_segments;
        uint64_t *h = calloc(sets * hw, sizeof(*h));
        if (h == NULL)
            return PC_ENOMEM;
        for (size_t k = 0; k < sets && e->hw > 0; k++)
            memcpy(h + k * hw, e->holders + k * e->hw, e->hw * sizeof(*h));
        free(e->holders);
        e->holders = h;
        e->hw = hw;
    }
    e->npeer_slots = cap;
    return 0;
}

int pc_engine_peer_add(pc_engine *e, uint32_t peer, uint64_t id, uint64_t up_bps, uint64_t now)
{
    if (peer == PC_SRC_CDN)
        return PC_EINVAL;
    for (size_t i = 0; i < e->nbanned; i++)
        if (e->banned[i] == peer)
            return PC_EEXIST;
    if (peer_by_handle(e, peer, NULL) != NULL)
        return PC_EEXIST;
    uint32_t i = 0;
    while (i < e->npeer_slots && e->peers[i].used)
        i++;
    if (i == e->npeer_slots) {
        if (e->npeer_slots == PC_ENGINE_PEERS_MAX)
            return PC_ELIMIT;
        uint32_t cap = e->npeer_slots ? e->npeer_slots * 2 : 8;
        if (cap > PC_ENGINE_PEERS_MAX)
            cap = PC_ENGINE_PEERS_MAX;
        if (grow_peers(e, cap) != 0)
            return PC_ENOMEM;
    }
    epeer *p = &e->peers[i];
    idx_insert(e, peer, i);
    p->used = 1;
    e->npeers++;
    e->peers_gen++;
    p->handle = peer;
    e->pinfo[i].id = id;
    e->pinfo[i].joined = now > e->now ? now : e->now;
    e->nquiet++;
    p->rate = (double)(up_bps ? up_bps : 1000000) / 8.0;
    p->rtt = 50000;
    peer_update_free(e, i);
    step(e, now);
    return 0;
}

void pc_engine_peer_remove(pc_engine *e, uint32_t peer, uint64_t now)
{
    uint32_t slot;
    if (peer_by_handle(e, peer, &slot) == NULL)
        return;
    if (now > e->now)
        e->now = now;
    detach_peer(e, slot);
    step(e, now);
}

int pc_engine_peer_have(pc_engine *e, uint32_t peer, uint32_t rung, uint32_t lo, uint32_t hi, uint64_t now)
{
    uint32_t slot = slot_of(e, peer);
    if (slot == PC_SRC_CDN || rung >= e->n_rungs || lo > hi || lo >= e->n_segments)
        return 0;
    if (hi >= e->n_segments)
        hi = e->n_segments - 1;
    e->haves_seen = 1;
    if (e->nquiet > 0 && !e->peers[slot].heard) { /* the peer's line only while some peer is unheard */
        e->peers[slot].heard = 1;
        e->nquiet--;
    }
    int useful = 0;
    uint64_t bit = 1ull << (slot % 64);
    for (uint32_t i = lo; i <= hi; i++) {
        uint64_t *h = holders_of(e, rung, i) + slot / 64;
        if (!(*h & bit)) {
            *h |= bit;
            /* worth an evaluation: a segment the scheduler would look at now (not behind the playhead,
             * within the prefetch window) that has no copy coming */
            if (!useful && !e->dirty && i >= e->win_lo && i < e->win_hi && e->segs[i].state == SEG_NONE)
                useful = 1;
        }
    }
    /* holdings arrive in bursts (a HAVE per segment per peer): evaluate once, at the next expiry. The
     * others only update the counts: the next evaluation reads them. */
    if (now > e->now)
        e->now = now;
    if (!useful)
        return 0;
    e->dirty = 1;
    return 1;
}

void pc_engine_prefetch(const pc_engine *e)
{
    const char *p = (const char *)e;
    for (size_t o = 64; o < sizeof(*e); o += 64)
        __builtin_prefetch(p + o);
}

void pc_engine_prefetch_index(const pc_engine *e, uint32_t peer)
{
    if (e->idx != NULL)
        __builtin_prefetch(&e->idx[idx_home(e, peer)]);
}

void pc_engine_prefetch_have(const pc_engine *e, uint32_t peer, uint32_t rung, uint32_t segment)
{
    uint32_t slot = slot_of(e, peer);
    if (slot == PC_SRC_CDN || rung >= e->n_rungs || segment >= e->n_segments)
        return;
    __builtin_prefetch(holders_of(e, rung, segment) + slot / 64);
    __builtin_prefetch(&e->segs[segment]);
}

void pc_engine_peer_rtt(pc_engine *e, uint32_t peer, uint64_t rtt_us)
{
    epeer *p = peer_by_handle(e, peer, NULL);
    if (p != NULL)
        p->rtt = rtt_us;
}

/* ---- transfer events ---- */

void pc_engine_on_data(pc_engine *e, uint64_t transfer, uint32_t bytes, uint64_t now)
{
    xfer *x = xfer_by_id(e, transfer);
    if (x == NULL || bytes == 0)
        return;
    if (now > e->now)
        e->now = now;
    meters_to(e, e->now);
    if (bytes > x->len - x->got)
        bytes = x->len - x->got;
    if (e->now > e->rx_t) {
        e->rx_before = e->st.bytes_cdn + e->st.bytes_p2p;
        e->rx_t_prev = e->rx_t;
        e->rx_t = e->now;
    }
    if (x->got == 0)
        x->first_byte = e->now;
    double span = (double)(e->now - x->last_data); /* what these bytes arrived over */
    if (x->src != PC_SRC_CDN) {
        peer_gap(&e->peers[x->src], span);
        e->peers[x->src].busy_streak = 0;
        e->st.bytes_p2p += bytes;
        e->m_p2p.bytes += bytes * lump_weight(span, (double)e->cfg.mode_window_us);
    } else {
        e->st.bytes_cdn += bytes;
        if (x->got == 0) {
            /* the bytes reported with its first ones arrived since the report before, or since it began */
            x->rx_mark = e->rx_before;
            x->mark_t = e->rx_t_prev > x->started ? e->rx_t_prev : x->started;
        }
    }
    e->m_all.bytes += bytes * lump_weight(span, (double)e->cfg.tput_window_us);
    x->got += bytes;
    *outstanding_of(e, x->src) -= (double)bytes;
    x->last_data = e->now;
    if (x->seg != PC_SEG_INIT) {
        seg *s = &e->segs[x->seg];
        seg_acct *a = &e->acct[x->seg];
        s->got += bytes;
        if (x->src == PC_SRC_CDN) {
            a->bytes_cdn += bytes;
        } else {
            a->bytes_p2p += bytes;
            add_sender(e, x->seg, e->peers[x->src].handle);
        }
    }
    /* no step here: data is frequent; rescue and scheduling run on completion and on timers */
}

void pc_engine_on_done(pc_engine *e, uint64_t transfer, const uint8_t hash[32], uint64_t now)
{
    xfer *x = xfer_by_id(e, transfer);
    if (x == NULL)
        return;
    if (x->got < x->len)
        pc_engine_on_data(e, transfer, x->len - x->got, now);
    if (now > e->now)
        e->now = now;
    x = xfer_by_id(e, transfer);
    uint32_t src = x->src, rung = x->rung, i = x->seg;
    double secs = (double)(e->now - x->started) / 1e6;
    uint32_t x_len = x->len;
    uint64_t mark_t = x->mark_t, rx_mark = x->rx_mark;
    double r = secs > 0 ? (double)x_len / secs : (double)x_len * 1e6;
    meters_to(e, e->now);
    xfer_remove(e, x);
    if (src == PC_SRC_CDN) {
        /* The link's rate, which eta() adds the round trip to: the request's round trip is taken out of
         * the time (at most half of it, should the configured RTT be too long). An init segment is too
         * small to time a link by: its time is mostly the round trip. */
        if (i != PC_SEG_INIT) {
            double t = secs - (double)e->cfg.cdn_rtt_us / 1e6;
            t = t > secs / 2 ? t : secs / 2;
            double rc = t > 0 ? (double)x_len / t : (double)x_len * 1e6;
            e->cdn_rate = e->cdn_measured ? e->cdn_rate * 0.7 + rc * 0.3 : rc;
            e->cdn_measured = 1;
            /* A CDN transfer takes what the other sources leave of the downlink: what all of them
             * delivered together meanwhile is the link's rate (abr_throughput). */
            double span = (double)(e->now - mark_t);
            if (span >= LINK_SPAN_US) {
                double rl = (double)(e->st.bytes_cdn + e->st.bytes_p2p - rx_mark) / span * 1e6;
                e->link_rate = e->link_measured ? e->link_rate * 0.7 + rl * 0.3 : rl;
                e->link_measured = 1;
            }
        }
    } else {
        epeer *p = &e->peers[src];
        p->rate = p->rate * 0.7 + r * 0.3;
    }
    int ok = memcmp(hash, seg_hash(e, rung, i), 32) == 0;
    if (src != PC_SRC_CDN && ok)
        e->peers[src].not_held = 0;
    if (src == PC_SRC_CDN && ok)
        e->cdn_fails = 0; /* a CDN that keeps sending a bad copy keeps backing off longer */
    if (i == PC_SEG_INIT) {
        e->init_state[rung] = ok ? SEG_READY : SEG_NONE;
        if (ok) {
            emit(e, (pc_action){.type = PC_ACT_READY, .rung = rung, .segment = PC_SEG_INIT});
        } else {
            e->st.rejected_segments++;
            cdn_failed(e);
        }
        step(e, now);
        return;
    }
    seg *s = &e->segs[i];
    seg_acct *a = &e->acct[i];
    if (!ok) {
        e->st.rejected_segments++;
        uint32_t nb = s->ncontrib;
        s->state = SEG_NONE;
        if (nb == 1)
            ban(e, a->contrib[0]); /* the peer's bytes, and perhaps the CDN's: the peer sent the bad ones */
        for (uint32_t k = 0; nb >= 2 && k < nb; k++)
            suspect(e, sender(e, i, k)); /* any of them could have: none is banned */
        seg_drop_bytes(e, i);
        if (nb == 0)
            cdn_failed(e); /* the CDN's copy does not match the signed manifest: back off, then retry */
        step(e, now);
        return;
    }
    s->state = SEG_READY;
    if (s->ncontrib > 2) { /* the senders of a good copy are no longer needed */
        forget_senders(e, i);
        s->ncontrib = 2;
    }
    a->ready_at = e->now;
    bit_set(e->held + rung * bitmap_bytes(e), i);
    emit(e, (pc_action){.type = PC_ACT_READY, .rung = rung, .segment = i});
    step(e, now);
}

void pc_engine_on_fail(pc_engine *e, uint64_t transfer, int reason, uint64_t now)
{
    xfer *x = xfer_by_id(e, transfer);
    if (x == NULL)
        return;
    if (now > e->now)
        e->now = now;
    meters_to(e, e->now);
    uint32_t src = x->src, si = x->seg, rung = x->rung;
    int prefetch = x->prefetch;
    unclaim(e, x);
    xfer_remove(e, x);
    if (src == PC_SRC_CDN) {
        cdn_failed(e);
        /* the CDN's answer was not the segment's bytes (an error page sent as 200, a body that ended
         * short): what it brought is dropped, not resumed from by a peer whose honest rest would then
         * fail the hash with it, and be banned for it */
        if (reason == PC_EPARSE && si != PC_SEG_INIT)
            seg_drop_bytes(e, si);
    } else if (reason == PC_EAGAIN) {
        /* a refusal for capacity is no fault, but one in a row after another says the peer is sought
         * after: ask it less often */
        epeer *p = &e->peers[src];
        if (p->busy_streak < BUSY_STREAK_MAX)
            p->busy_streak++;
        p->busy_until = e->now + ((uint64_t)BUSY_BACKOFF_US << (p->busy_streak - 1));
        peer_update_free(e, src);
        if (prefetch) {
            /* a prefetch has time: it is placed again with the next batch, not by a pass of its own */
            e->dirty = 1;
            return;
        }
    } else if (reason == PC_ENOENT && si != PC_SEG_INIT) {
        /* the peer no longer holds that copy (its store let it go, past its memory cap): no longer a
         * holder of it, and no fault. (It counted as a failure: a seeder whose memory held part of the
         * video was dropped by every viewer three refusals in, dialled again at the next announce, and
         * dropped again, every 2 s; found by review.) A peer that lies about what it holds is no worse
         * off for it: each lie costs it a HAVE and a refusal, and gets it no bytes counted. */
        holders_of(e, rung, si)[src / 64] &= ~(1ull << (src % 64));
        /* but a peer that refuses everything it offered, and offers it again, only wastes our requests and
         * keeps its link: eight in a row, with no copy sent between, count as one failure (found by
         * review: a liar was asked 151 times and never dropped) */
        epeer *p = &e->peers[src];
        if (++p->not_held >= NOT_HELD_MAX) {
            p->not_held = 0;
            peer_failed(e, src);
        }
    } else {
        peer_failed(e, src);
    }
    step(e, now);
}

/* ---- upload side ---- */

void pc_engine_on_request(pc_engine *e, uint64_t request, uint32_t peer, uint32_t rung, uint32_t segment,
                          uint32_t offset, uint32_t len, uint64_t deadline, uint64_t now)
{
    if (now > e->now)
        e->now = now;
    int held = rung < e->m->n_rungs && segment < e->m->n_segments &&
               bit_get(e->held + rung * bitmap_bytes(e), segment) && offset <= seg_size(e, rung, segment) &&
               len <= seg_size(e, rung, segment) - offset;
    pc_refuse_reason why = pc_upload_request(&e->up, request, peer, len, held, deadline, e->now);
    if (why != PC_REFUSE_NONE) {
        emit(e, (pc_action){.type = PC_ACT_REFUSE, .request = request, .peer = peer, .reason = why});
        return;
    }
    pump_uploads(e);
}

void pc_engine_serve_held(pc_engine *e, uint64_t request, int held, uint64_t now)
{
    if (now > e->now)
        e->now = now;
    pc_upload_held(&e->up, request, held);
    pump_uploads(e);
}

void pc_engine_on_served(pc_engine *e, uint64_t request, uint64_t bytes_sent, uint64_t now)
{
    /* what went out, not what the serve was for: a requester that cancels, a link that dies, a copy the
     * store no longer had (0) send less, and bytes_up goes to the tracker and the report as sent */
    e->st.bytes_up += bytes_sent;
    if (now > e->now)
        e->now = now;
    pc_upload_done(&e->up, request);
    pump_uploads(e);
}

/* ---- timers ---- */

/* When to look at urgent peer transfer |x| again. At a steady rate its projected finish and its due
 * time both stay put as the clock runs, so what a check can catch is the rate falling; if the data
 * stopped outright, the finish would slide by the time elapsed. So while the slack is large the next
 * check comes after half of it (half is still left to rescue in), and every check_us once it is small. */
static uint64_t deadline_check_at(const pc_engine *e, const xfer *x)
{
    double half = deadline_slack(e, x) / 2;
    return half > (double)e->cfg.check_us ? e->now + (uint64_t)half : e->stepped_at + e->cfg.check_us;
}

uint64_t pc_engine_expiry(const pc_engine *e)
{
    uint64_t t = pc_player_next_event(&e->player);
    if (e->dirty) {
        /* new holdings are looked at together, at most every have_batch_us */
        uint64_t d = e->stepped_at + e->cfg.have_batch_us > e->now ? e->stepped_at + e->cfg.have_batch_us : e->now;
        t = d < t ? d : t;
    }
    uint64_t u = pc_upload_expiry(&e->up);
    if (u < t)
        t = u;
    if (e->quit || !pc_player_active(&e->player))
        return t;
    /* ticks count from the last full evaluation: data events move e->now but do not evaluate */
    int work = e->nx > 0;
    for (size_t k = 0; k < e->nx; k++) {
        const xfer *x = &e->x[k];
        if (x->src != PC_SRC_CDN) {
            uint64_t s = x->last_data + (x->got > 0 ? stall_timeout(&e->peers[x->src]) : e->cfg.first_byte_us);
            if (s < t)
                t = s;
            /* deadline checks matter once its segment is urgent: until then, wake when it becomes so */
            uint64_t ahead = x->seg == PC_SEG_INIT ? 0 : ahead_of(e, x->seg), uw = urgent_us(e);
            uint64_t c;
            if (passed_by(e, x))
                c = UINT64_MAX; /* never urgent: only the stall timers above */
            else if (e->player.state != PC_PLAYER_PLAYING || x->seg == PC_SEG_INIT)
                c = e->stepped_at + e->cfg.check_us;
            else if (ahead >= uw)
                c = e->now + (ahead - uw) + 1;
            else if (e->cfg.p2p_only)
                c = UINT64_MAX; /* no deadline rescue without a CDN: only the stall timers above */
            else
                c = deadline_check_at(e, x);
            /* an urgent transfer with no byte yet is given up then (check_rescues) */
            if (x->got == 0 && x->seg != PC_SEG_INIT && ahead < uw && !e->cfg.p2p_only && !passed_by(e, x)) {
                uint64_t g = give_up_at(e, x);
                g = g >= e->now ? g + 1 : e->stepped_at + e->cfg.check_us; /* past: while the CDN is held */
                if (g < c)
                    c = g;
            }
            if (c < t)
                t = c;
        }
    }
    if (!work) {
        /* segments that are missing within the window, or will enter it while playing */
        uint32_t n = e->m->n_segments;
        for (uint32_t i = seg_at(e, content_pos(e)); i < n; i++) {
            if (e->segs[i].state == SEG_NONE) {
                work = 1;
                break;
            }
        }
    }
    if (e->cdn_retry_at > e->now && e->cdn_retry_at < t)
        t = e->cdn_retry_at;
    if (e->abr.up_since != PC_NEVER && e->abr.up_since + e->abr.cfg.up_hold_us < t)
        t = e->abr.up_since + e->abr.cfg.up_hold_us;
    if (work && e->stepped_at + e->cfg.idle_check_us < t)
        t = e->stepped_at + e->cfg.idle_check_us;
    return t;
}

void pc_engine_on_timeout(pc_engine *e, uint64_t now)
{
    step(e, now);
}

/* ---- queries ---- */

void pc_engine_get_stats(const pc_engine *e, uint64_t now, pc_engine_stats *s)
{
    pc_player p;
    pc_player_view(&e->player, now, &p);
    *s = e->st;
    s->startup_us = p.startup_us;
    s->stalls = p.stalls;
    s->stall_us = p.stall_us;
    s->played_us = p.played_us;
    s->playhead_us = p.pos_us;
    s->seeks = p.seeks;
    s->seek_wait_us = p.seek_wait_us;
    s->rung = e->abr.cur;
    s->rung_switches = e->abr.switches;
    s->cdn_mode = e->cdn_mode;
    s->p2p_bps = meter_rate(&e->m_p2p) * 8;
    s->total_bps = meter_rate(&e->m_all) * 8;
    s->player = p.state;
}

void pc_engine_segment(const pc_engine *e, uint32_t i, pc_segment_info *out)
{
    const seg *s = &e->segs[i];
    const seg_acct *a = &e->acct[i];
    *out = (pc_segment_info){.ready = s->state == SEG_READY, .inflight = s->state == SEG_INFLIGHT, .rung = s->rung,
                             .bytes_cdn = a->bytes_cdn,
                             .bytes_p2p = a->bytes_p2p,
                             .requested_at = a->requested_at ? a->requested_at - 1 : 0, .ready_at = a->ready_at};
    if (a->bytes_cdn > 0 && a->bytes_p2p > 0)
        out->source = PC_SOURCE_MIXED;
    else if (a->bytes_p2p > 0)
        out->source = PC_SOURCE_P2P;
    else if (a->bytes_cdn > 0)
        out->source = PC_SOURCE_CDN;
}

void pc_engine_hold_all(pc_engine *e)
{
    memset(e->held, 0xff, e->m->n_rungs * bitmap_bytes(e));
    for (uint32_t r = 0; r < e->m->n_rungs; r++)
        e->init_state[r] = SEG_READY;
    /* the bits past n_segments are never read: every reader bounds i by n_segments */
}

int pc_engine_holds(const pc_engine *e, uint32_t rung, uint32_t i)
{
    return rung < e->m->n_rungs && i < e->m->n_segments && bit_get(e->held + rung * bitmap_bytes(e), i);
}

void pc_engine_forget(pc_engine *e, uint32_t rung, uint32_t i)
{
    if (rung >= e->m->n_rungs || i >= e->m->n_segments)
        return;
    bit_clear(e->held + (size_t)rung * bitmap_bytes(e), i);
    seg *s = &e->segs[i];
    if (s->state == SEG_READY && s->rung == rung) {
        s->state = SEG_NONE;
        seg_drop_copy(e, i);
    }
}

/* The first segment at or after |i| (up to n) whose held bit is |want|, 64 at a time. */
static uint32_t held_scan(const uint8_t *b, uint32_t i, uint32_t n, int want)
{
    while (i < n) {
        uint64_t w = 0;
        uint32_t base = i & ~63u, bytes = (n - base + 7) / 8;
        if (bytes >= 8) { /* bit k of w is segment base + k: the bitmap's bytes, little-endian */
            memcpy(&w, b + base / 8, 8);
            w = le64toh(w);
        } else {
            for (uint32_t k = 0; k < bytes; k++)
                w |= (uint64_t)b[base / 8 + k] << (8 * k);
        }
        if (!want)
            w = ~w;
        w &= ~0ull << (i - base);
        if (w != 0) {
            uint32_t k = base + (uint32_t)__builtin_ctzll(w);
            return k < n ? k : n;
        }
        i = base + 64;
    }
    return n;
}

uint32_t pc_engine_held_run(const pc_engine *e, uint32_t rung, uint32_t from, uint32_t *end)
{
    uint32_t n = e->m->n_segments;
    if (rung >= e->m->n_rungs || from >= n)
        return UINT32_MAX;
    const uint8_t *b = e->held + rung * bitmap_bytes(e);
    uint32_t lo = held_scan(b, from, n, 1);
    if (lo == n)
        return UINT32_MAX;
    *end = held_scan(b, lo, n, 0);
    return lo;
}
