/*
 * A byte-budgeted LRU cache of immutable blobs keyed by strings: the origin
 * keeps hot segments here so a request is one write from memory instead of
 * open + read + write, and the peer's segment store keeps verified segments.
 *
 * Entries are reference counted. A blob handed out by get/put stays valid
 * until released, even if it is evicted or forgotten meanwhile (it then
 * leaves the index at once and is freed on the last release), so a response
 * still being written never sees its bytes disappear. The budget counts
 * indexed entries only; what holders keep of the others is counted apart
 * (pc_blobcache_held_out). Single-threaded: one owner, no locking.
 */
#ifndef PC_BLOBCACHE_H
#define PC_BLOBCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "pc_error.h"

#define PC_BLOB_AUX_MAX 64   /* caller metadata stored with each blob */
#define PC_BLOB_KEY_MAX 4096 /* longest key */

typedef struct pc_blobcache pc_blobcache;

typedef struct pc_blob {
    const uint8_t *data;
    size_t len;
    unsigned char aux[PC_BLOB_AUX_MAX]; /* what the caller stored with it */
} pc_blob;

typedef struct pc_blobcache_stats {
    size_t entries;
    size_t bytes;     /* sum of indexed blob lengths, <= budget */
    uint64_t hits, misses, evictions;
} pc_blobcache_stats;

/* A cache holding at most |budget| bytes of blobs; a single blob may take at most |max_blob|
 * (<= budget). NULL when out of memory. */
pc_blobcache *pc_blobcache_new(size_t budget, size_t max_blob);
/* The largest blob the cache takes (max_blob, or the budget if smaller). */
size_t pc_blobcache_max_blob(const pc_blobcache *c);
/* Frees the cache. Blobs still referenced stay valid until released (release them with
 * pc_blob_release, which needs no cache). */
void pc_blobcache_free(pc_blobcache *c);
/* The blob under |key| with a reference taken, marked most recently used; NULL when absent. */
pc_blob *pc_blobcache_get(pc_blobcache *c, const char *key, size_t keylen);
/* Stores |len| bytes (copied) under |key|, replacing an older blob (which stays valid for its
 * holders), evicting least recently used blobs to stay within the budget. |aux| (|auxlen| <=
 * PC_BLOB_AUX_MAX, may be NULL) is copied into the blob. Returns the new blob with a reference
 * taken, or NULL: larger than max_blob, key longer than PC_BLOB_KEY_MAX, or out of memory. */
pc_blob *pc_blobcache_put(pc_blobcache *c, const char *key, size_t keylen, const void *data, size_t len, const void *aux,
                          size_t auxlen);
/* Drops a reference taken by get or put. Cannot fail. */
void pc_blob_release(pc_blob *b);
/* Calls |fn| with the key of each blob the budget evicts from now on (not one replaced or forgotten), as
 * it leaves the index; |fn| must not use the cache. NULL: none. */
typedef void (*pc_blobcache_evict_fn)(void *arg, const char *key, size_t keylen);
void pc_blobcache_on_evict(pc_blobcache *c, pc_blobcache_evict_fn fn, void *arg);
/* Removes every blob whose key starts with |prefix|; returns how many. */
size_t pc_blobcache_forget_prefix(pc_blobcache *c, const char *prefix, size_t len);
void pc_blobcache_get_stats(const pc_blobcache *c, pc_blobcache_stats *out);
/* Bytes of blobs evicted, replaced or forgotten that holders still reference: in memory, outside the
 * budget. */
size_t pc_blobcache_held_out(const pc_blobcache *c);

#endif
