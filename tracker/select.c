/* Useful-peer selection; see select.h. */
#include "select.h"

#include <string.h>

uint32_t pc_select_score(const pc_peer_rec *self, uint32_t need, const pc_peer_rec *c)
{
    uint32_t s = 0;
    if (c->rend == self->rend) {
        if (need != PC_NONE && c->have_hi != PC_NONE && c->have_lo <= need && need <= c->have_hi)
            s += 64;
        else if (c->playhead_ms >= self->playhead_ms)
            s += 32;
        if (c->playhead_ms >= self->playhead_ms && c->playhead_ms - self->playhead_ms <= PC_SELECT_AHEAD_MS)
            s += 16;
    }
    if (c->up_kbps > 0)
        s += 8;
    if (c->net == self->net)
        s += 8;
    else if (c->asn != 0 && c->asn == self->asn)
        s += 6;
    else if (c->region != 0 && c->region == self->region)
        s += 4;
    return s;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Min-heap of (rank, index) holding the best |cap| seen so far. */
struct best {
    uint64_t rank[PC_NUMWANT_MAX];
    uint32_t idx[PC_NUMWANT_MAX];
    size_t n, cap;
};

static void sift_down(struct best *b, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < b->n && b->rank[l] < b->rank[m])
            m = l;
        if (l + 1 < b->n && b->rank[l + 1] < b->rank[m])
            m = l + 1;
        if (m == i)
            return;
        uint64_t tr = b->rank[i];
        uint32_t ti = b->idx[i];
        b->rank[i] = b->rank[m];
        b->idx[i] = b->idx[m];
        b->rank[m] = tr;
        b->idx[m] = ti;
        i = m;
    }
}

static void offer(struct best *b, uint64_t rank, uint32_t idx)
{
    if (b->n < b->cap) {
        size_t i = b->n++;
        b->rank[i] = rank;
        b->idx[i] = idx;
        while (i > 0 && b->rank[(i - 1) / 2] > b->rank[i]) { /* sift up */
            size_t p = (i - 1) / 2;
            uint64_t tr = b->rank[i];
            uint32_t ti = b->idx[i];
            b->rank[i] = b->rank[p];
            b->idx[i] = b->idx[p];
            b->rank[p] = tr;
            b->idx[p] = ti;
            i = p;
        }
    } else if (rank > b->rank[0]) {
        b->rank[0] = rank;
        b->idx[0] = idx;
        sift_down(b, 0);
    }
}

#define PREFETCH_AHEAD 8

/* (pos + stride) mod n, for pos, stride < n */
static uint64_t next_pos(uint64_t pos, uint64_t stride, uint64_t n)
{
    pos += stride;
    return pos >= n ? pos - n : pos;
}

/* Requests the lines of a record that scoring reads (it spans three). */
static void prefetch_rec(const pc_registry *r, uint32_t i)
{
    const char *p = (const char *)pc_registry_peer(r, i);
    __builtin_prefetch(p);
    __builtin_prefetch(p + 64);
    __builtin_prefetch(p + sizeof(pc_peer_rec) - 1);
}

size_t pc_select_peers(const pc_registry *r, uint32_t self, uint32_t need, uint32_t numwant, uint32_t scan_max,
                       uint64_t now_us, pc_rng *rng, pc_select_skip skip, void *skip_arg, uint32_t *out)
{
    const pc_peer_rec *me = pc_registry_peer(r, self);
    const pc_swarm *sw = pc_registry_swarm(r, me->swarm);
    struct best b = {.n = 0, .cap = numwant < PC_NUMWANT_MAX ? numwant : PC_NUMWANT_MAX};
    uint64_t n = sw->nmembers;
    if (b.cap == 0 || n < 2)
        return 0;
    uint64_t visits = n, start = 0, stride = 1;
    if (scan_max > 0 && n > scan_max) {
        visits = scan_max;
        start = pc_rng_below(rng, n);
        do
            stride = 1 + pc_rng_below(rng, n - 1);
        while (gcd(stride, n) != 1);
    }
    /* The visits are known in advance, and each reads a record no other visit touched lately: the
     * records PREFETCH_AHEAD visits on are requested early, so their cache misses overlap. */
    uint64_t pos = start, ahead = start;
    for (uint64_t v = 0; v < PREFETCH_AHEAD && v < visits; v++) {
        prefetch_rec(r, sw->members[ahead]);
        ahead = next_pos(ahead, stride, n);
    }
    for (uint64_t v = 0; v < visits; v++, pos = next_pos(pos, stride, n)) {
        if (v + PREFETCH_AHEAD < visits) {
            prefetch_rec(r, sw->members[ahead]);
            ahead = next_pos(ahead, stride, n);
        }
        uint32_t i = sw->members[pos];
        if (i == self)
            continue;
        const pc_peer_rec *c = pc_registry_peer(r, i);
        if (memcmp(c->key, me->key, sizeof(c->key)) == 0 || pc_registry_is_expired(r, c, now_us) ||
            (skip != NULL && skip(skip_arg, c)))
            continue;
        /* score in the high bits, a random tie-break below */
        offer(&b, ((uint64_t)pc_select_score(me, need, c) << 32) | (pc_rng_next(rng) >> 32), i);
    }
    /* best first: pop the heap from the back */
    size_t k = b.n;
    while (b.n > 0) {
        out[b.n - 1] = b.idx[0];
        b.rank[0] = b.rank[b.n - 1];
        b.idx[0] = b.idx[b.n - 1];
        b.n--;
        sift_down(&b, 0);
    }
    return k;
}
