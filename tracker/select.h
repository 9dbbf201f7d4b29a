/*
 * Useful-peer selection (pure: time and randomness are arguments).
 *
 * Random sampling (opentracker, bittorrent-tracker) hands a viewer peers
 * that may hold nothing it needs. Knowing playheads, we rank candidates:
 *
 *   holds the requester's next segment, same rendition      +64
 *   else: same rendition and playhead at or ahead            +32
 *   same rendition and at most PC_SELECT_AHEAD_MS ahead      +16 (they keep
 *                                                             fetching what it needs next)
 *   spare upload capacity                                     +8
 *   same network (/24, /48) +8, else same ASN +6, else same region +4
 *
 * then take the best |numwant|, breaking ties at random so load spreads
 * and copies diversify. Never the requester itself (by record or by key),
 * never a peer already expired at |now_us|. Swarms larger than |scan_max|
 * are sampled: |scan_max| distinct members visited along a random
 * coprime stride, so the cost per announce is bounded.
 */
#ifndef PC_TRACKER_SELECT_H
#define PC_TRACKER_SELECT_H

#include <stddef.h>
#include <stdint.h>

#include "pc_rng.h"
#include "registry.h"

#define PC_SELECT_AHEAD_MS 60000
#define PC_SELECT_SCAN_DEFAULT 512

/* The score of |cand| for |self| needing segment |need| (PC_NONE: unknown); see above. */
uint32_t pc_select_score(const pc_peer_rec *self, uint32_t need, const pc_peer_rec *cand);
/* Writes up to |numwant| (≤ PC_NUMWANT_MAX) record indices, best first, to |out|; returns how many.
 * Candidates for which |skip| (when not NULL) returns non-zero are left out (the tracker's distrusted
 * peers). */
typedef int (*pc_select_skip)(void *arg, const pc_peer_rec *cand);
size_t pc_select_peers(const pc_registry *r, uint32_t self, uint32_t need, uint32_t numwant, uint32_t scan_max,
                       uint64_t now_us, pc_rng *rng, pc_select_skip skip, void *skip_arg, uint32_t *out);

#endif
