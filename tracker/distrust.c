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
    uint32_t seq;                               /* when it was made (pending entries: the oldest goes first) */
};

struct pc_distrust {
    uint32_t threshold;
    size_t mask;
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    struct entry *e;
    uint32_t total, seq;
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

static uint64_t hash(const pc_distrust *d, const void *data, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, data, len, d->hkey);
    uint64_t h;
    memcpy(&h, out, sizeof(h));
    return h != 0 ? h : 1; /* 0 marks an empty slot */
}

static size_t home(const pc_distrust *d, uint64_t video, const uint8_t key[32])
{
    uint64_t k;
    memcpy(&k, key, sizeof(k)); /* keys are public keys: their bytes are as good as random, */
    return (size_t)((k ^ video) & d->mask); /* and |video| is keyed */
}

/* The entry of (|video|, |key|), or NULL; |*room| where a new one would go (NULL if nowhere): the first
 * empty slot on the way, else the oldest pending entry there (a verdict is never taken over). */
static struct entry *find(const pc_distrust *d, uint64_t video, const uint8_t key[32], struct entry **room)
{
    size_t h = home(d, video, key);
    struct entry *empty = NULL, *oldest = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        struct entry *e = &d->e[(h + i) & d->mask];
        if (e->video == 0) {
            if (empty == NULL)
                empty = e;
            continue; /* a slot may be emptied or taken later than a farther one */
        }
        if (e->video == video && memcmp(e->key, key, 32) == 0)
            return e;
        if (!e->distrusted && (oldest == NULL || d->seq - e->seq > d->seq - oldest->seq))
            oldest = e;
    }
    if (room != NULL)
        *room = empty != NULL ? empty : oldest;
    return NULL;
}

int pc_distrust_report(pc_distrust *d, const char *video, uint64_t reporter, const uint8_t key[32])
{
    uint64_t v = pc_distrust_video(d, video);
    struct entry *room, *e = find(d, v, key, &room);
    if (e == NULL) {
        if (room == NULL)
            return -1;
        e = room; /* empty, or the oldest pending report there, forgotten */
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
