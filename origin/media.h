/*
 * /v/{id}/... served as a CDN origin would: strong content-hash ETags,
 * If-None-Match / If-Modified-Since (304), single byte ranges with If-Range
 * (206, 416), immutable caching for segments and init segments, short
 * max-age for playlists and manifests, CORS with Content-Range and
 * Content-Length exposed, gzip for text formats, and an optional signed-URL
 * mode: every request needs ?exp=E&sig=S (S = base64url HMAC-SHA256 of
 * "media\n<id>\nE"), else 403, and playlists are rewritten so the player's
 * follow-up requests carry the same token.
 */
#ifndef PC_ORIGIN_MEDIA_H
#define PC_ORIGIN_MEDIA_H

#include "origin.h"
#include "pc_blobcache.h"

pc_media *pc_media_new(pc_origin *o);
void pc_media_free(pc_media *m);
/* The /v/ route handler. */
int pc_media_route(void *user, h2o_req_t *req);
int pc_media_signed_mode(const pc_media *m);
/* "exp=E&sig=S" granting access to |id| for the configured TTL. */
int pc_media_sign_query(pc_media *m, const char *id, char *out, size_t outlen) PC_MUST_CHECK;
/* Removes a video's published files and work files (a failed video run again), keeping the original. */
int pc_media_clear_outputs(pc_media *m, const char *id) PC_MUST_CHECK;
/* Removes a video's published files, work files and original (|source| may be NULL). */
int pc_media_remove(pc_media *m, const char *id, const char *source) PC_MUST_CHECK;
/* Forgets cached ETags and cached segments of |id| (after publishing it anew, or deleting it). */
void pc_media_forget(pc_media *m, const char *id);
/* Hot-segment cache figures (all zero when the cache is disabled). Cannot fail. */
/* The memory cache's figures, and the bytes of evicted copies that answers still hold. */
void pc_media_cache_stats(const pc_media *m, pc_blobcache_stats *out, size_t *held_out);
/* Removes a directory tree (synchronously). 0 or PC_EIO. */
/* In a revision's copy of the publication (work/<id>/out, subtitles.c): its number. Only a copy so marked
 * is swapped in. */
#define PC_STAGED_MARK ".staged"
/* The loop's part of a revision's publish: the staged copy |staged| takes the place of video |id|'s
 * publication in one rename (RENAME_EXCHANGE; a file system without it: the old one moved aside first),
 * the media caches of the video are dropped in the same step, so that no request sees the new files
 * with the old ETags, and the replaced publication goes to the trash with the work directory |work|. */
int pc_media_swap_in(pc_media *m, const char *id, const char *staged, const char *work) PC_MUST_CHECK;
int pc_rmtree(const char *path) PC_MUST_CHECK;

#endif
