/* Peers the tracker no longer vouches for; see distrust.h. */
#include "distrust.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define PROBE 8 /* slots looked at from an entry's home: a full neighbourhood drops the report */

struct entry {
    uint64_t video;                             /* keyed hash of the video id; 0: empty slot */
    uint8_t key[32];
    uint64_t reporter[PC_DISTRUST_THRESHOLD_MAX]; /* distinct reporters' networks */
    uint8_t nreporters, distrusted;
    uint32_t seq;                               /* when it was made (the oldest pending entry goes first) */
    uint32_t at_s;                              /* the clock (pc_distrust_tick) at its last report */
};

struct pc_distrust {
    uint32_t threshold;
    size_t mask;
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    struct entry *e;
    uint32_t total, seq, now_s;
    uint64_t dropped;
};

pc_distrust *pc_distrust_new(uint32_t threshold, size_t slots)
{
    if (threshold < 1 || threshold > PC_DISTRUST_THRESHOLD_MAX || slots < PROBE || (slots & (slots - 1)) != 0)
        return NULL;
    pc_distrust *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->e = calloc(slots, sizeof(*d->e));
    if (d->e == NULL) {
        free(d);
        return NULL;
    }
    d->threshold = threshold;
    d->mask = slots - 1;
    randombytes_buf(d->hkey, sizeof(d->hkey));
    return d;
}

void pc_distrust_free(pc_distrust *d)
{
    if (d != NULL) {
        free(d->e);
        free(d);
    }
}

void pc_distrust_tick(pc_distrust *d, uint64_t now_s)
{
    d->now_s = (uint32_t)now_s;
}

static uint64_t hash(const pc_distrust *d, const void *data, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, data, len, d->hkey);
    uint64_t h;
    memcpy(&h, out, sizeof(h));
    return h != 0 ? h : 1; /* 0 marks an empty slot */
}

/* The slot an entry starts its search from: a keyed hash of the video and the key together. Keys are
 * chosen by their holders (a peer can make thousands a second until their bits fall where it likes), so
 * they must not place themselves: one that took its bits from a bad key's, and was reported with them,
 * could push that key's reports out of a full neighbourhood, or never let them in. */
static size_t home(const pc_distrust *d, uint64_t video, const uint8_t key[32])
{
    uint8_t in[8 + 32];
    memcpy(in, &video, 8);
    memcpy(in + 8, key, 32);
    return (size_t)(hash(d, in, sizeof(in)) & d->mask);
}

/* An entry past its time counts as an empty slot: a pending one after PC_DISTRUST_PENDING_S without a
 * report (keys last one run of a peer), a verdict after PC_DISTRUST_VERDICT_S. */
static int live(const pc_distrust *d, const struct entry *e)
{
    return e->video != 0 &&
           d->now_s - e->at_s < (e->distrusted ? (uint32_t)PC_DISTRUST_VERDICT_S : (uint32_t)PC_DISTRUST_PENDING_S);
}

/* The entry of (|video|, |key|), or NULL; |*room| where a new one would go (NULL if nowhere): the first
 * empty (or dead) slot on the way, else the pending entry there with the fewest reporters, the oldest
 * of those (a verdict is never taken over while it lives). */
static struct entry *find(const pc_distrust *d, uint64_t video, const uint8_t key[32], struct entry **room)
{
    size_t h = home(d, video, key);
    struct entry *empty = NULL, *weakest = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        struct entry *e = &d->e[(h + i) & d->mask];
        if (!live(d, e)) {
            if (empty == NULL)
                empty = e;
            continue; /* a slot may be emptied or taken later than a farther one */
        }
        if (e->video == video && memcmp(e->key, key, 32) == 0)
            return e;
        if (!e->distrusted &&
            (weakest == NULL || e->nreporters < weakest->nreporters ||
             (e->nreporters == weakest->nreporters && d->seq - e->seq > d->seq - weakest->seq)))
            weakest = e;
    }
    if (room != NULL)
        *room = empty != NULL ? empty : weakest;
    return NULL;
}

int pc_distrust_report(pc_distrust *d, const char *video, uint64_t reporter, const uint8_t key[32])
{
    uint64_t v = pc_distrust_video(d, video);
    struct entry *room, *e = find(d, v, key, &room);
    if (e == NULL) {
        if (room == NULL) {
            d->dropped++; /* every entry around is a living verdict */
            return -1;
        }
        e = room; /* empty, or the weakest pending report there, forgotten */
        memset(e, 0, sizeof(*e));
        e->video = v;
        e->seq = d->seq++;
        memcpy(e->key, key, 32);
    }
    if (e->distrusted)
        return -1;
    for (uint32_t i = 0; i < e->nreporters; i++)
        if (e->reporter[i] == reporter)
            return -1;
    e->reporter[e->nreporters++] = reporter;
    e->at_s = d->now_s;
    if (e->nreporters < d->threshold)
        return 0;
    e->distrusted = 1;
    d->total++;
    return 1;
}

uint64_t pc_distrust_video(const pc_distrust *d, const char *video)
{
    return hash(d, video, strlen(video));
}

int pc_distrust_is_in(const pc_distrust *d, uint64_t video, const uint8_t key[32])
{
    const struct entry *e = d->total > 0 ? find(d, video, key, NULL) : NULL;
    return e != NULL && e->distrusted;
}

int pc_distrust_is(const pc_distrust *d, const char *video, const uint8_t key[32])
{
    return d->total > 0 && pc_distrust_is_in(d, pc_distrust_video(d, video), key);
}

uint32_t pc_distrust_total(const pc_distrust *d)
{
    return d->total;
}

uint64_t pc_distrust_dropped(const pc_distrust *d)
{
    return d->dropped;
}
