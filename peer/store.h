/*
 * The peer's segment store: verified composite segments (media.h) in memory, least recently used
 * evicted past a byte cap, optionally mirrored in a disk directory that outlives the process. What it
 * holds is served to the local player and to other peers.
 *
 * Blobs are reference counted (common/pc_blobcache.h): one handed out stays valid until released, even
 * when evicted meanwhile, so an upload in progress never loses its bytes. A copy read back from disk is
 * checked with the caller's verifier before it is used: the directory is not trusted.
 */
#ifndef PC_STORE_H
#define PC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "pc_blobcache.h"
#include "pc_error.h"

typedef struct pc_store pc_store;
/* 1 when |len| bytes are the right content of segment |seg| of |rung|. */
typedef int (*pc_store_verify_fn)(void *arg, uint32_t rung, uint32_t seg, const uint8_t *data, size_t len);

/* |mem_cap| bytes in memory (a segment larger than it is not kept); |dir| NULL for memory only, else a
 * directory (created if missing) for |video|'s files. PC_ENOMEM, PC_EIO when |dir| is unusable. */
int pc_store_new(size_t mem_cap, const char *dir, const char *video, pc_store_verify_fn verify, void *arg,
                 pc_store **out) PC_MUST_CHECK;
void pc_store_free(pc_store *s);
/* Keeps a verified copy (copied). PC_ENOMEM or PC_ETOOBIG (larger than the cap); a disk write that
 * fails is logged and ignored (memory still has it). */
int pc_store_put(pc_store *s, uint32_t rung, uint32_t seg, const uint8_t *data, size_t len) PC_MUST_CHECK;
/* The copy of |seg| of |rung| with a reference taken (release with pc_blob_release), from memory or
 * verified from disk; NULL when neither has a good one. |expect_len| is the composite size. */
pc_blob *pc_store_get(pc_store *s, uint32_t rung, uint32_t seg, size_t expect_len);
/* 1 when memory holds it (no disk access). */
int pc_store_has(pc_store *s, uint32_t rung, uint32_t seg);
/* 1 when memory holds it or the disk directory has a file of |expect_len| bytes for it (verified when it
 * is read: pc_store_get). */
int pc_store_holds(pc_store *s, uint32_t rung, uint32_t seg, size_t expect_len);
/* Calls |fn| for each copy the memory cap lets go that the disk directory does not have (no directory,
 * or its write failed): the store no longer holds it. |fn| must not use the store. */
typedef void (*pc_store_lost_fn)(void *arg, uint32_t rung, uint32_t seg);
void pc_store_on_lost(pc_store *s, pc_store_lost_fn fn, void *arg);
void pc_store_stats(const pc_store *s, pc_blobcache_stats *out);
/* Bytes of copies the memory cap let go that answers (to peers, to the local player) still hold. */
size_t pc_store_held_out(const pc_store *s);
/* Copies the disk directory failed to take (only the first is logged). */
uint64_t pc_store_write_failures(const pc_store *s);

#endif
