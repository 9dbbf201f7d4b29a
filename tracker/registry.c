/* Swarm membership and per-video statistics; see registry.h. */
#include "registry.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SLAB_BITS 16 /* records come in slabs of 65536, so growth never copies or doubles memory */
#define SLAB_SIZE (1u << SLAB_BITS)
#define MAX_REGIONS 4096
#define REGION_PINNED UINT32_MAX

struct pc_registry {
    pc_registry_config cfg;
    pc_peer_rec **slabs;
    uint32_t nslabs;
    uint32_t used;      /* records ever handed out (high-water mark) */
    uint32_t free_head; /* recycled records, chained through lnext */
    uint32_t npeers;
    uint32_t *tab; /* (key, swarm) → record index + 1; 0 = empty; linear probing */
    uint32_t tab_mask;
    uint32_t lhead, ltail; /* expiry list */
    pc_swarm *swarms;
    uint32_t nswarms, swarms_cap;
    uint32_t *stab; /* video → swarm index + 1 */
    uint32_t stab_mask;
    char (*regions)[PC_REGION_MAX + 1]; /* index 0 is ""; a freed name is "" too */
    uint32_t nregions;                  /* indexes ever handed out */
    uint32_t *rrefs;                    /* records holding each name; REGION_PINNED for the locality table's */
    uint16_t *rfree;                    /* indexes of freed names, to hand out again */
    uint32_t nrfree;
    uint16_t rtab[2 * MAX_REGIONS]; /* region name → index; 0 = empty */
    uint64_t gen; /* changes whenever anything a report shows may have */
    pc_vstats total;   /* every video's statistics summed, each sum capped as theirs are (stat_add) */
    uint32_t nseeders; /* live peers only seeding, all videos */
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static uint64_t hash_bytes(uint64_t seed, const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = mix64(h ^ w);
        s += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, len);
    return mix64(h ^ w ^ 0x5bd1e995);
}

static uint64_t peer_hash(const pc_registry *r, const uint8_t key[PC_ED25519_PK_LEN], uint32_t swarm)
{
    return hash_bytes(r->cfg.hash_seed ^ mix64(swarm + 1), key, PC_ED25519_PK_LEN);
}

static pc_peer_rec *rec(const pc_registry *r, uint32_t i)
{
    return &r->slabs[i >> SLAB_BITS][i & (SLAB_SIZE - 1)];
}

pc_registry *pc_registry_new(const pc_registry_config *cfg)
{
    pc_registry *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->cfg = *cfg;
    r->free_head = r->lhead = r->ltail = PC_NONE;
    r->tab_mask = 1023;
    r->tab = calloc(r->tab_mask + 1, sizeof(*r->tab));
    r->stab_mask = 63;
    r->stab = calloc(r->stab_mask + 1, sizeof(*r->stab));
    r->regions = calloc(MAX_REGIONS, sizeof(*r->regions));
    r->rrefs = calloc(MAX_REGIONS, sizeof(*r->rrefs));
    r->rfree = calloc(MAX_REGIONS, sizeof(*r->rfree));
    r->nregions = 1;
    if (r->tab == NULL || r->stab == NULL || r->regions == NULL || r->rrefs == NULL || r->rfree == NULL) {
        pc_registry_free(r);
        return NULL;
    }
    return r;
}

void pc_registry_free(pc_registry *r)
{
    if (r == NULL)
        return;
    for (uint32_t i = 0; i < r->nslabs; i++)
        free(r->slabs[i]);
    free(r->slabs);
    for (uint32_t i = 0; i < r->nswarms; i++)
        free(r->swarms[i].members);
    free(r->swarms);
    free(r->tab);
    free(r->stab);
    free(r->regions);
    free(r->rrefs);
    free(r->rfree);
    free(r);
}

/* ---- the (key, swarm) index ---- */

static uint32_t find_peer(const pc_registry *r, const uint8_t key[PC_ED25519_PK_LEN], uint32_t swarm)
{
    for (uint32_t i = (uint32_t)peer_hash(r, key, swarm) & r->tab_mask;; i = (i + 1) & r->tab_mask) {
        uint32_t v = r->tab[i];
        if (v == 0)
            return PC_NONE;
        const pc_peer_rec *p = rec(r, v - 1);
        if (p->swarm == swarm && memcmp(p->key, key, PC_ED25519_PK_LEN) == 0)
            return v - 1;
    }
}

static void tab_put(uint32_t *tab, uint32_t mask, uint64_t h, uint32_t idx)
{
    uint32_t i = (uint32_t)h & mask;
    while (tab[i] != 0)
        i = (i + 1) & mask;
    tab[i] = idx + 1;
}

static int grow_tab(pc_registry *r)
{
    uint32_t mask = r->tab_mask * 2 + 1;
    uint32_t *t = calloc((size_t)mask + 1, sizeof(*t));
    if (t == NULL)
        return PC_ENOMEM;
    for (uint32_t i = 0; i <= r->tab_mask; i++)
        if (r->tab[i] != 0) {
            const pc_peer_rec *p = rec(r, r->tab[i] - 1);
            tab_put(t, mask, peer_hash(r, p->key, p->swarm), r->tab[i] - 1);
        }
    free(r->tab);
    r->tab = t;
    r->tab_mask = mask;
    return 0;
}

/* Deletes with backward shifting, so probing never needs tombstones. */
static void tab_del(pc_registry *r, uint32_t idx)
{
    const pc_peer_rec *p = rec(r, idx);
    uint32_t i = (uint32_t)peer_hash(r, p->key, p->swarm) & r->tab_mask;
    while (r->tab[i] != idx + 1)
        i = (i + 1) & r->tab_mask;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & r->tab_mask;
        if (r->tab[j] == 0)
            break;
        const pc_peer_rec *q = rec(r, r->tab[j] - 1);
        uint32_t home = (uint32_t)peer_hash(r, q->key, q->swarm) & r->tab_mask;
        /* move q back to the hole at i unless its home lies cyclically in (i, j] */
        int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            r->tab[i] = r->tab[j];
            i = j;
        }
    }
    r->tab[i] = 0;
}

/* ---- swarms and interned names ---- */

static uint32_t find_swarm(const pc_registry *r, const char *video, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & r->stab_mask;; i = (i + 1) & r->stab_mask) {
        uint32_t v = r->stab[i];
        if (v == 0)
            return PC_NONE;
        if (strcmp(r->swarms[v - 1].video, video) == 0)
            return v - 1;
    }
}

static int add_swarm(pc_registry *r, const char *video, uint32_t *out)
{
    uint64_t h = hash_bytes(r->cfg.hash_seed, video, strlen(video));
    uint32_t s = find_swarm(r, video, h);
    if (s != PC_NONE) {
        *out = s;
        return 0;
    }
    if (r->nswarms >= r->cfg.max_swarms)
        return PC_ELIMIT;
    if (r->nswarms == r->swarms_cap) {
        uint32_t cap = r->swarms_cap ? r->swarms_cap * 2 : 16;
        pc_swarm *n = realloc(r->swarms, (size_t)cap * sizeof(*n));
        if (n == NULL)
            return PC_ENOMEM;
        r->swarms = n;
        r->swarms_cap = cap;
    }
    if ((r->nswarms + 1) * 2 > r->stab_mask + 1) {
        uint32_t mask = r->stab_mask * 2 + 1;
        uint32_t *t = calloc((size_t)mask + 1, sizeof(*t));
        if (t == NULL)
            return PC_ENOMEM;
        for (uint32_t i = 0; i < r->nswarms; i++)
            tab_put(t, mask, hash_bytes(r->cfg.hash_seed, r->swarms[i].video, strlen(r->swarms[i].video)), i);
        free(r->stab);
        r->stab = t;
        r->stab_mask = mask;
    }
    pc_swarm *sw = &r->swarms[r->nswarms];
    memset(sw, 0, sizeof(*sw));
    strcpy(sw->video, video);
    tab_put(r->stab, r->stab_mask, h, r->nswarms);
    *out = r->nswarms++;
    return 0;
}

/* Index of |name| among the swarm's renditions, or where it would go: a new slot, else one no live peer
 * uses (so names announced once cannot keep a video's real renditions out); PC_NONE when every one is
 * in use. */
static uint32_t rend_index(const pc_swarm *sw, const char *name)
{
    for (uint32_t i = 0; i < sw->nrend; i++)
        if (strcmp(sw->rend[i], name) == 0)
            return i;
    if (sw->nrend < PC_REND_MAX)
        return sw->nrend;
    for (uint32_t i = 0; i < sw->nrend; i++)
        if (sw->rend_peers[i] == 0)
            return i;
    return PC_NONE;
}

/* Counters only grow, and stop at 2^53 - 1, the largest integer every JSON reader holds exactly. */
#define STAT_MAX 9007199254740991ull

static void stat_add(uint64_t *x, uint64_t d)
{
    *x = d > STAT_MAX - *x ? STAT_MAX : *x + d;
}

/* Adds |d| to a video's sum |x| and what |x| grew by to the total's |t|, so the total is the capped sum
 * of the videos' sums. */
static void stat_add2(uint64_t *x, uint64_t *t, uint64_t d)
{
    uint64_t was = *x;
    stat_add(x, d);
    stat_add(t, *x - was);
}

static void hist_add(uint32_t *x, uint32_t d)
{
    *x = d > UINT32_MAX - *x ? UINT32_MAX : *x + d;
}

void pc_vstats_add(pc_vstats *t, const pc_vstats *v)
{
    stat_add(&t->bytes_cdn, v->bytes_cdn);
    stat_add(&t->bytes_p2p, v->bytes_p2p);
    stat_add(&t->bytes_up, v->bytes_up);
    stat_add(&t->stalls, v->stalls);
    stat_add(&t->stall_ms, v->stall_ms);
    stat_add(&t->played_ms, v->played_ms);
    stat_add(&t->viewers, v->viewers);
    stat_add(&t->announces, v->announces);
    for (int b = 0; b < PC_HIST_BUCKETS; b++)
        hist_add(&t->startup_hist[b], v->startup_hist[b]);
}

/* Region names are interned with a count of the records holding each: a name no record holds is forgotten,
 * so peers declaring ever new names (one peer can declare one at a time) cannot fill the table for good. The
 * locality table's names are pinned at start and never forgotten. */
static uint32_t region_slot(const pc_registry *r, const char *name)
{
    return (uint32_t)hash_bytes(r->cfg.hash_seed, name, strlen(name)) & (2 * MAX_REGIONS - 1);
}

/* Interned region id, counted as held once more (|pin|: for good); 0 for "" or when the table is full (the
 * region is then unknown). */
static uint16_t region_hold(pc_registry *r, const char *name, int pin)
{
    if (name[0] == '\0')
        return 0;
    uint32_t mask = 2 * MAX_REGIONS - 1;
    for (uint32_t i = region_slot(r, name);; i = (i + 1) & mask) {
        uint16_t v = r->rtab[i];
        if (v == 0) {
            if (r->nrfree > 0)
                v = r->rfree[--r->nrfree];
            else if (r->nregions < MAX_REGIONS)
                v = (uint16_t)r->nregions++;
            else
                return 0;
            strcpy(r->regions[v], name);
            r->rtab[i] = v;
            r->rrefs[v] = pin ? REGION_PINNED : 1;
            return v;
        }
        if (strcmp(r->regions[v], name) == 0) {
            if (pin)
                r->rrefs[v] = REGION_PINNED;
            else if (r->rrefs[v] != REGION_PINNED)
                r->rrefs[v]++;
            return v;
        }
    }
}

/* A record lets go of region |v|: forgotten when no record holds it (linear probing's deletion by moving
 * later entries of the run back, so that lookups never stop early). */
static void region_release(pc_registry *r, uint16_t v)
{
    if (v == 0 || r->rrefs[v] == REGION_PINNED || --r->rrefs[v] > 0)
        return;
    uint32_t mask = 2 * MAX_REGIONS - 1, i = region_slot(r, r->regions[v]);
    while (r->rtab[i] != v)
        i = (i + 1) & mask;
    for (uint32_t j = (i + 1) & mask; r->rtab[j] != 0; j = (j + 1) & mask) {
        uint32_t home = region_slot(r, r->regions[r->rtab[j]]);
        /* the entry at j may move to the hole at i unless its home lies cyclically in (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            r->rtab[i] = r->rtab[j];
            i = j;
        }
    }
    r->rtab[i] = 0;
    r->regions[v][0] = '\0';
    r->rfree[r->nrfree++] = v;
}

void pc_registry_pin_region(pc_registry *r, const char *name)
{
    (void)region_hold(r, name, 1);
}

const char *pc_registry_region(const pc_registry *r, uint16_t id)
{
    return id < r->nregions ? r->regions[id] : "";
}

/* ---- records ---- */

static uint32_t alloc_rec(pc_registry *r)
{
    if (r->free_head != PC_NONE) {
        uint32_t i = r->free_head;
        r->free_head = rec(r, i)->lnext;
        return i;
    }
    if ((r->used >> SLAB_BITS) == r->nslabs) {
        pc_peer_rec **s = realloc(r->slabs, (size_t)(r->nslabs + 1) * sizeof(*s));
        if (s == NULL)
            return PC_NONE;
        r->slabs = s;
        s[r->nslabs] = malloc((size_t)SLAB_SIZE * sizeof(pc_peer_rec));
        if (s[r->nslabs] == NULL)
            return PC_NONE;
        r->nslabs++;
    }
    return r->used++;
}

static void list_unlink(pc_registry *r, uint32_t i)
{
    pc_peer_rec *p = rec(r, i);
    if (p->lprev != PC_NONE)
        rec(r, p->lprev)->lnext = p->lnext;
    else
        r->lhead = p->lnext;
    if (p->lnext != PC_NONE)
        rec(r, p->lnext)->lprev = p->lprev;
    else
        r->ltail = p->lprev;
}

static void list_append(pc_registry *r, uint32_t i)
{
    pc_peer_rec *p = rec(r, i);
    p->lprev = r->ltail;
    p->lnext = PC_NONE;
    if (r->ltail != PC_NONE)
        rec(r, r->ltail)->lnext = i;
    else
        r->lhead = i;
    r->ltail = i;
}

static void remove_peer(pc_registry *r, uint32_t i)
{
    pc_peer_rec *p = rec(r, i);
    pc_swarm *sw = &r->swarms[p->swarm];
    uint32_t last = sw->members[--sw->nmembers];
    sw->members[p->slot] = last;
    rec(r, last)->slot = p->slot;
    if (p->flags & PC_PEER_SEEDING) {
        sw->seeders--;
        r->nseeders--;
    }
    if (p->flags & PC_PEER_REND)
        sw->rend_peers[p->rend]--;
    region_release(r, p->region);
    p->region = 0;
    tab_del(r, i);
    list_unlink(r, i);
    p->swarm = PC_NONE;
    p->lnext = r->free_head;
    r->free_head = i;
    r->npeers--;
}

static int regressed(const pc_peer_rec *p, const pc_counters *c)
{
    return c->bytes_cdn < p->bytes_cdn || c->bytes_p2p < p->bytes_p2p || c->bytes_up < p->bytes_up ||
           c->stalls < p->stalls || c->stall_ms < p->stall_ms || c->played_ms < p->played_ms ||
           (p->startup_ms != 0 && c->startup_ms != p->startup_ms);
}

/* Adds what the counters grew by since they were last counted, and remembers them. */
static void count(pc_registry *r, pc_swarm *sw, pc_peer_rec *p, const pc_counters *c)
{
    pc_vstats *st = &sw->st, *t = &r->total;
    stat_add2(&st->bytes_cdn, &t->bytes_cdn, c->bytes_cdn - p->bytes_cdn);
    stat_add2(&st->bytes_p2p, &t->bytes_p2p, c->bytes_p2p - p->bytes_p2p);
    stat_add2(&st->bytes_up, &t->bytes_up, c->bytes_up - p->bytes_up);
    stat_add2(&st->stalls, &t->stalls, c->stalls - p->stalls);
    stat_add2(&st->stall_ms, &t->stall_ms, c->stall_ms - p->stall_ms);
    stat_add2(&st->played_ms, &t->played_ms, c->played_ms - p->played_ms);
    if (p->startup_ms == 0 && c->startup_ms != 0) {
        stat_add2(&st->viewers, &t->viewers, 1);
        int b = pc_hist_bucket(c->startup_ms);
        uint32_t was = st->startup_hist[b];
        hist_add(&st->startup_hist[b], 1);
        hist_add(&t->startup_hist[b], st->startup_hist[b] - was);
    }
    p->bytes_cdn = c->bytes_cdn;
    p->bytes_p2p = c->bytes_p2p;
    p->bytes_up = c->bytes_up;
    p->stalls = (uint32_t)c->stalls;
    p->stall_ms = (uint32_t)c->stall_ms;
    p->startup_ms = (uint32_t)c->startup_ms;
    p->played_ms = (uint32_t)c->played_ms;
    sw->dirty = 1;
}

/* Sets the baseline without counting: what these counters say was counted elsewhere or lost. */
static void baseline(pc_peer_rec *p, const pc_counters *c)
{
    p->bytes_cdn = c->bytes_cdn;
    p->bytes_p2p = c->bytes_p2p;
    p->bytes_up = c->bytes_up;
    p->stalls = (uint32_t)c->stalls;
    p->stall_ms = (uint32_t)c->stall_ms;
    p->startup_ms = (uint32_t)c->startup_ms;
    p->played_ms = (uint32_t)c->played_ms;
}

static void set_position(pc_registry *r, pc_swarm *sw, pc_peer_rec *p, const pc_announce *a, uint32_t rend,
                         uint64_t now_us)
{
    if (rend == sw->nrend)
        sw->nrend++;
    if (strcmp(sw->rend[rend], a->rendition) != 0)
        strcpy(sw->rend[rend], a->rendition); /* a new name, or one taking over an unused slot */
    if (p->flags & PC_PEER_REND)
        sw->rend_peers[p->rend]--;
    sw->rend_peers[rend]++;
    p->flags |= PC_PEER_REND;
    p->rend = (uint8_t)rend;
    p->port = a->port;
    p->playhead_ms = a->playhead_ms;
    p->have_lo = a->have_lo;
    p->have_hi = a->have_hi;
    p->up_kbps = a->up_kbps;
    p->asn = a->asn;
    uint16_t was = p->region; /* held first, let go after: the same name is not forgotten in between */
    p->region = region_hold(r, a->region, 0);
    region_release(r, was);
    int seeding = a->seeding != 0;
    if (seeding != ((p->flags & PC_PEER_SEEDING) != 0)) {
        sw->seeders += seeding ? 1 : (uint32_t)-1;
        r->nseeders += seeding ? 1 : (uint32_t)-1;
        p->flags = (uint8_t)((p->flags & ~PC_PEER_SEEDING) | (seeding ? PC_PEER_SEEDING : 0));
    }
    p->last_seen_us = now_us;
}

/* A new record for |a| in swarm |s|; PC_NONE when out of memory or at the limit. */
static uint32_t insert_peer(pc_registry *r, uint32_t s, const pc_announce *a, uint32_t net)
{
    if (r->npeers >= r->cfg.max_peers)
        return PC_NONE;
    pc_swarm *sw = &r->swarms[s];
    if (sw->nmembers == sw->cap) {
        uint32_t cap = sw->cap ? sw->cap + sw->cap / 2 + 4 : 8;
        uint32_t *m = realloc(sw->members, (size_t)cap * sizeof(*m));
        if (m == NULL)
            return PC_NONE;
        sw->members = m;
        sw->cap = cap;
    }
    if ((uint64_t)(r->npeers + 1) * 10 > (uint64_t)(r->tab_mask + 1) * 7 && grow_tab(r) != 0)
        return PC_NONE;
    uint32_t i = alloc_rec(r);
    if (i == PC_NONE)
        return PC_NONE;
    pc_peer_rec *p = rec(r, i);
    memset(p, 0, sizeof(*p));
    memcpy(p->id, a->peer_id, PC_PEER_ID_LEN);
    memcpy(p->key, a->key, PC_ED25519_PK_LEN);
    memcpy(p->addr, a->addr, 16);
    p->net = net;
    p->swarm = s;
    p->slot = sw->nmembers;
    sw->members[sw->nmembers++] = i;
    tab_put(r->tab, r->tab_mask, peer_hash(r, p->key, s), i);
    list_append(r, i);
    r->npeers++;
    return i;
}

int pc_registry_announce(pc_registry *r, const pc_announce *a, uint32_t net, uint64_t now_us, uint32_t *self)
{
    r->gen++;
    *self = PC_NONE;
    uint32_t s = find_swarm(r, a->video, hash_bytes(r->cfg.hash_seed, a->video, strlen(a->video)));
    if (s == PC_NONE) {
        /* a video appears with its first peer: nothing to stop, and a refused announce adds none */
        if (a->event == PC_EV_STOPPED)
            return 0;
        if (r->npeers >= r->cfg.max_peers)
            return PC_ELIMIT;
        int rc = add_swarm(r, a->video, &s);
        if (rc != 0)
            return rc;
    }
    pc_swarm *sw = &r->swarms[s];
    uint32_t i = find_peer(r, a->key, s);
    pc_peer_rec *p = i != PC_NONE ? rec(r, i) : NULL;
    /* the same key under a new peer id is its holder restarting (proof or session checked) */
    int same = p != NULL && memcmp(p->id, a->peer_id, PC_PEER_ID_LEN) == 0;
    if (same && regressed(p, &a->counters))
        return PC_ECONFLICT;
    if (a->event == PC_EV_STOPPED) {
        stat_add2(&sw->st.announces, &r->total.announces, 1);
        sw->dirty = 1;
        if (same) {
            count(r, sw, p, &a->counters);
            remove_peer(r, i);
        }
        return 0;
    }
    uint32_t rend = rend_index(sw, a->rendition);
    if (rend == PC_NONE && p != NULL && (p->flags & PC_PEER_REND) && sw->rend_peers[p->rend] == 1)
        rend = p->rend; /* the only peer at its name switches: the new name takes that slot */
    if (rend == PC_NONE)
        return PC_ELIMIT;
    if (p == NULL) {
        if ((i = insert_peer(r, s, a, net)) == PC_NONE)
            return r->npeers >= r->cfg.max_peers ? PC_ELIMIT : PC_ENOMEM;
        p = rec(r, i);
    } else {
        list_unlink(r, i);
        list_append(r, i);
        memcpy(p->addr, a->addr, 16);
        p->net = net;
    }
    if (!same) {
        memcpy(p->id, a->peer_id, PC_PEER_ID_LEN);
        /* a fresh start counts from zero; a periodic announce from a peer we do not know (it
         * expired, or the tracker restarted without its state) only sets the baseline */
        pc_counters zero = {0};
        baseline(p, a->event == PC_EV_STARTED ? &zero : &a->counters);
    }
    stat_add2(&sw->st.announces, &r->total.announces, 1);
    count(r, sw, p, &a->counters);
    set_position(r, sw, p, a, rend, now_us);
    *self = i;
    return 0;
}

int pc_registry_restore_peer(pc_registry *r, const pc_announce *a, uint32_t net, uint32_t ticket_exp, uint64_t now_us)
{
    r->gen++;
    uint32_t s;
    int rc = add_swarm(r, a->video, &s);
    if (rc != 0)
        return rc;
    pc_swarm *sw = &r->swarms[s];
    uint32_t rend = rend_index(sw, a->rendition);
    if (rend == PC_NONE || find_peer(r, a->key, s) != PC_NONE)
        return PC_ELIMIT;
    uint32_t i = insert_peer(r, s, a, net);
    if (i == PC_NONE)
        return PC_ELIMIT;
    pc_peer_rec *p = rec(r, i);
    baseline(p, &a->counters);
    p->ticket_exp = ticket_exp;
    set_position(r, sw, p, a, rend, now_us);
    return 0;
}

int pc_registry_is_expired(const pc_registry *r, const pc_peer_rec *p, uint64_t now_us)
{
    return now_us >= p->last_seen_us + 2 * r->cfg.interval_us;
}

size_t pc_registry_expire(pc_registry *r, uint64_t now_us)
{
    size_t n = 0;
    while (r->lhead != PC_NONE && pc_registry_is_expired(r, rec(r, r->lhead), now_us)) {
        remove_peer(r, r->lhead);
        n++;
        r->gen++;
    }
    return n;
}

uint64_t pc_registry_next_expiry(const pc_registry *r)
{
    if (r->lhead == PC_NONE)
        return UINT64_MAX;
    return rec(r, r->lhead)->last_seen_us + 2 * r->cfg.interval_us;
}

uint64_t pc_registry_generation(const pc_registry *r)
{
    return r->gen;
}

size_t pc_registry_npeers(const pc_registry *r)
{
    return r->npeers;
}

size_t pc_registry_nswarms(const pc_registry *r)
{
    return r->nswarms;
}

const pc_peer_rec *pc_registry_peer(const pc_registry *r, uint32_t idx)
{
    return rec(r, idx);
}

void pc_registry_set_ticket_exp(pc_registry *r, uint32_t idx, uint32_t exp)
{
    rec(r, idx)->ticket_exp = exp;
}

const pc_swarm *pc_registry_swarm(const pc_registry *r, uint32_t idx)
{
    return idx < r->nswarms ? &r->swarms[idx] : NULL;
}

const pc_swarm *pc_registry_find_swarm(const pc_registry *r, const char *video)
{
    uint32_t s = find_swarm(r, video, hash_bytes(r->cfg.hash_seed, video, strlen(video)));
    return s != PC_NONE ? &r->swarms[s] : NULL;
}

const pc_peer_rec *pc_registry_find_peer(const pc_registry *r, const char *video, const uint8_t key[PC_ED25519_PK_LEN])
{
    uint32_t s = find_swarm(r, video, hash_bytes(r->cfg.hash_seed, video, strlen(video)));
    uint32_t p = s != PC_NONE ? find_peer(r, key, s) : PC_NONE;
    return p != PC_NONE ? rec(r, p) : NULL;
}

int pc_registry_remove(pc_registry *r, const char *video, const uint8_t key[PC_ED25519_PK_LEN])
{
    uint32_t s = find_swarm(r, video, hash_bytes(r->cfg.hash_seed, video, strlen(video)));
    uint32_t p = s != PC_NONE ? find_peer(r, key, s) : PC_NONE;
    if (p == PC_NONE)
        return 0;
    remove_peer(r, p);
    r->swarms[s].dirty = 1;
    r->gen++;
    return 1;
}

void pc_registry_clear_dirty(pc_registry *r)
{
    for (uint32_t i = 0; i < r->nswarms; i++)
        r->swarms[i].dirty = 0;
}

int pc_registry_restore_stats(pc_registry *r, const char *video, const pc_vstats *st)
{
    r->gen++;
    uint32_t s;
    int rc = add_swarm(r, video, &s);
    if (rc != 0)
        return rc;
    static const pc_vstats zero;
    int was_zero = memcmp(&r->swarms[s].st, &zero, sizeof(zero)) == 0;
    r->swarms[s].st = *st;
    if (was_zero) { /* a video's first restore, as at every start */
        pc_vstats_add(&r->total, st);
    } else { /* a capped total cannot take the old figures back out: sum again */
        memset(&r->total, 0, sizeof(r->total));
        for (uint32_t i = 0; i < r->nswarms; i++)
            pc_vstats_add(&r->total, &r->swarms[i].st);
    }
    return 0;
}

const pc_vstats *pc_registry_total(const pc_registry *r, uint64_t *peers, uint64_t *seeders)
{
    *peers = r->npeers;
    *seeders = r->nseeders;
    return &r->total;
}

/* ---- start-up histogram ---- */

int pc_hist_bucket(uint64_t ms)
{
    if (ms < 10)
        return 0;
    int b = 1 + (int)floor(log((double)ms / 10.0) / log(1.2));
    return b < PC_HIST_BUCKETS - 1 ? b : PC_HIST_BUCKETS - 1;
}

static double bucket_low(int b)
{
    return b == 0 ? 0.0 : 10.0 * pow(1.2, b - 1);
}

double pc_hist_quantile(const uint32_t *hist, double q)
{
    uint64_t total = 0;
    for (int b = 0; b < PC_HIST_BUCKETS; b++)
        total += hist[b];
    if (total == 0)
        return 0;
    double target = q * (double)total, cum = 0;
    for (int b = 0; b < PC_HIST_BUCKETS; b++) {
        if (hist[b] == 0)
            continue;
        if (cum + hist[b] >= target) {
            double lo = bucket_low(b), hi = b == 0 ? 10.0 : bucket_low(b) * 1.2;
            return lo + (hi - lo) * ((target - cum) / hist[b]);
        }
        cum += hist[b];
    }
    return bucket_low(PC_HIST_BUCKETS - 1);
}
