/*
 * Peers the tracker no longer vouches for (pure: no I/O, no clock).
 *
 * A viewer bans a peer whose data failed the signed manifest's hashes, and tells the tracker in its
 * next announce ("banned", docs/protocol.md). Once reporters from |threshold| distinct networks have
 * reported a key for a video, that key is distrusted there: the tracker lists it to no one and refuses
 * its announces, so it gets no new ticket and learns no new viewer. A ban is per viewer and per run;
 * this spreads the verdict to viewers that never met the peer. Reporters count by network (the
 * tracker passes a hash of the address the announce came from, /24 or /48), not by key: keys cost
 * nothing to make, so one host could otherwise report an honest peer under as many keys as it takes.
 *
 * A fixed table bounds memory whatever is reported: entries are (video, key), placed by a keyed hash
 * (SipHash-2-4, libsodium's crypto_shorthash, with a key drawn at start) of the two together, so no
 * one can choose keys that land beside another's. When the neighbourhood of a new entry is full, the
 * pending entry there (reports not yet at the threshold) with the fewest reporters, the oldest of those,
 * is forgotten, so a flood of reports about throwaway keys cannot stop real reports for long. Entries
 * age out: a pending one an hour after its last report (keys last one run of a peer), a verdict after a
 * day; a report with no room (every entry around a living verdict) is dropped and counted. The tracker
 * only passes reports of keys that are members of the video's swarm. In memory only: a restart forgets
 * them, as viewers forget their bans.
 */
#ifndef PC_TRACKER_DISTRUST_H
#define PC_TRACKER_DISTRUST_H

#include <stddef.h>
#include <stdint.h>

#include "pc_error.h"

#define PC_DISTRUST_THRESHOLD_MAX 8
#define PC_DISTRUST_PENDING_S 3600  /* a pending entry lives this long after its last report */
#define PC_DISTRUST_VERDICT_S 86400 /* a verdict lives this long after it was reached */

typedef struct pc_distrust pc_distrust;

/* |threshold| 1..PC_DISTRUST_THRESHOLD_MAX distinct reporters; |slots| entries (a power of two).
 * NULL on ENOMEM. */
pc_distrust *pc_distrust_new(uint32_t threshold, size_t slots);
void pc_distrust_free(pc_distrust *d);
/* A reporter from network |reporter| banned |key| in |video|. 1 when this report made |key| distrusted
 * there, 0 when it was counted, -1 when not (a repeat from that network, a verdict reached already, or
 * no room: every entry around is a verdict). */
int pc_distrust_report(pc_distrust *d, const char *video, uint64_t reporter, const uint8_t key[32]);
/* Whether |key| is distrusted in |video|. */
int pc_distrust_is(const pc_distrust *d, const char *video, const uint8_t key[32]);
/* The same for many keys of one video (a selection's candidates): |video| hashed once, by
 * pc_distrust_video. */
uint64_t pc_distrust_video(const pc_distrust *d, const char *video);
int pc_distrust_is_in(const pc_distrust *d, uint64_t video, const uint8_t key[32]);
/* Verdicts reached, in every video (expired ones included). */
uint32_t pc_distrust_total(const pc_distrust *d);
/* Reports dropped for want of room (every entry around a living verdict). */
uint64_t pc_distrust_dropped(const pc_distrust *d);
/* The clock, in seconds, by which entries age (the caller's: the table reads none). */
void pc_distrust_tick(pc_distrust *d, uint64_t now_s);

#endif
