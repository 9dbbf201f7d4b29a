/* Byte-budgeted LRU of reference-counted blobs; see pc_blobcache.h. */
#include "pc_blobcache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Blobs out of the index that holders still reference: counted apart, in a record that outlives the
 * cache while any of them does. */
struct held {
    size_t bytes, refs; /* refs: the cache, and each such blob */
};

struct entry {
    pc_blob pub; /* first: a pc_blob * is an entry * */
    struct entry *hnext;
    struct entry *lprev, *lnext; /* most recent at head */
    uint64_t hash;
    size_t refs; /* holders, plus one while indexed */
    size_t keylen;
    struct held *held; /* set once out of the index with holders left */
    size_t mapped;     /* its mapping's length, 0 when malloc'ed */
    char key[];        /* then the data */
};

/* Entries this large get a mapping of their own, returned to the system when freed: on the heap, the holes
 * evictions left kept the memory (an origin at 2.1 GB after a flood of readers had gone; found by review) */
#define MAP_MIN ((size_t)128 * 1024)

struct pc_blobcache {
    struct entry **buckets;
    size_t nbuckets; /* power of two */
    struct entry *head, *tail;
    size_t budget, max_blob;
    pc_blobcache_stats st;
    struct held *held;
    pc_blobcache_evict_fn evict_fn;
    void *evict_arg;
};

void pc_blobcache_on_evict(pc_blobcache *c, pc_blobcache_evict_fn fn, void *arg)
{
    c->evict_fn = fn;
    c->evict_arg = arg;
}

static uint64_t hash_key(const char *k, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h;
}

size_t pc_blobcache_max_blob(const pc_blobcache *c)
{
    return c->max_blob;
}

pc_blobcache *pc_blobcache_new(size_t budget, size_t max_blob)
{
    pc_blobcache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->nbuckets = 64;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    c->held = calloc(1, sizeof(*c->held));
    if (c->buckets == NULL || c->held == NULL) {
        free(c->buckets);
        free(c->held);
        free(c);
        return NULL;
    }
    c->held->refs = 1;
    c->budget = budget;
    c->max_blob = max_blob < budget ? max_blob : budget;
    return c;
}

static void held_unref(struct held *h)
{
    if (--h->refs == 0)
        free(h);
}

static void entry_unref(struct entry *e)
{
    if (--e->refs != 0)
        return;
    if (e->held != NULL) {
        e->held->bytes -= e->pub.len;
        held_unref(e->held);
    }
    if (e->mapped > 0)
        munmap(e, e->mapped);
    else
        free(e);
}

static void unlink_entry(pc_blobcache *c, struct entry *e)
{
    struct entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->lprev != NULL)
        e->lprev->lnext = e->lnext;
    else
        c->head = e->lnext;
    if (e->lnext != NULL)
        e->lnext->lprev = e->lprev;
    else
        c->tail = e->lprev;
    c->st.entries--;
    c->st.bytes -= e->pub.len;
    if (e->refs > 1) { /* out of the budget, still in memory */
        e->held = c->held;
        e->held->refs++;
        e->held->bytes += e->pub.len;
    }
    entry_unref(e);
}

size_t pc_blobcache_held_out(const pc_blobcache *c)
{
    return c->held->bytes;
}

void pc_blobcache_free(pc_blobcache *c)
{
    if (c == NULL)
        return;
    while (c->head != NULL)
        unlink_entry(c, c->head);
    free(c->buckets);
    held_unref(c->held);
    free(c);
}

static void to_front(pc_blobcache *c, struct entry *e)
{
    if (c->head == e)
        return;
    e->lprev->lnext = e->lnext; /* not the head, so it has a predecessor */
    if (e->lnext != NULL)
        e->lnext->lprev = e->lprev;
    else
        c->tail = e->lprev;
    e->lprev = NULL;
    e->lnext = c->head;
    c->head->lprev = e;
    c->head = e;
}

static struct entry *find(pc_blobcache *c, const char *key, size_t keylen, uint64_t h)
{
    for (struct entry *e = c->buckets[h & (c->nbuckets - 1)]; e != NULL; e = e->hnext)
        if (e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
            return e;
    return NULL;
}

pc_blob *pc_blobcache_get(pc_blobcache *c, const char *key, size_t keylen)
{
    struct entry *e = find(c, key, keylen, hash_key(key, keylen));
    if (e == NULL) {
        c->st.misses++;
        return NULL;
    }
    c->st.hits++;
    to_front(c, e);
    e->refs++;
    return &e->pub;
}

static void grow(pc_blobcache *c)
{
    size_t n = c->nbuckets * 2;
    struct entry **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct entry *e = c->buckets[i];
        while (e != NULL) {
            struct entry *next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

pc_blob *pc_blobcache_put(pc_blobcache *c, const char *key, size_t keylen, const void *data, size_t len, const void *aux,
                          size_t auxlen)
{
    if (len > c->max_blob || keylen > PC_BLOB_KEY_MAX || auxlen > PC_BLOB_AUX_MAX)
        return NULL;
    size_t keyspace = (keylen + 1 + 15) & ~(size_t)15, total = sizeof(struct entry) + keyspace + len;
    struct entry *e;
    if (total >= MAP_MIN) {
        void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        e = m == MAP_FAILED ? NULL : m;
    } else {
        e = malloc(total);
    }
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->mapped = total >= MAP_MIN ? total : 0;
    e->keylen = keylen;
    memcpy(e->key, key, keylen);
    e->key[keylen] = '\0';
    uint8_t *d = (uint8_t *)e->key + keyspace;
    if (len > 0)
        memcpy(d, data, len);
    e->pub.data = d;
    e->pub.len = len;
    if (auxlen > 0)
        memcpy(e->pub.aux, aux, auxlen);
    e->hash = hash_key(key, keylen);

    struct entry *old = find(c, key, keylen, e->hash);
    if (old != NULL)
        unlink_entry(c, old);
    while (c->tail != NULL && c->st.bytes + len > c->budget) {
        if (c->evict_fn != NULL)
            c->evict_fn(c->evict_arg, c->tail->key, c->tail->keylen);
        unlink_entry(c, c->tail);
        c->st.evictions++;
    }
    if (c->st.entries + 1 > c->nbuckets)
        grow(c);
    size_t b = e->hash & (c->nbuckets - 1);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    e->lnext = c->head;
    if (c->head != NULL)
        c->head->lprev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
    e->refs = 2; /* the index and the caller */
    c->st.entries++;
    c->st.bytes += len;
    return &e->pub;
}

void pc_blob_release(pc_blob *b)
{
    if (b != NULL)
        entry_unref((struct entry *)b);
}

size_t pc_blobcache_forget_prefix(pc_blobcache *c, const char *prefix, size_t len)
{
    size_t n = 0;
    struct entry *e = c->head;
    while (e != NULL) {
        struct entry *next = e->lnext;
        if (e->keylen >= len && memcmp(e->key, prefix, len) == 0) {
            unlink_entry(c, e);
            n++;
        }
        e = next;
    }
    return n;
}

void pc_blobcache_get_stats(const pc_blobcache *c, pc_blobcache_stats *out)
{
    *out = c->st;
}
