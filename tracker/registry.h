/*
 * Swarm membership (pure: no I/O, no clock; time is an argument).
 *
 * The registry holds every live peer of every video: one compact record per
 * peer (about 170 bytes with its index entries; docs/tracker.md), found by
 * (key, video). Announces update records and per-video statistics; peers
 * that do not announce for two intervals expire — exactly at last announce +
 * 2 × interval — and an expiry list kept in last-announce order makes that
 * O(1) per peer. Peer selection (select.h) reads the records; the tracker's
 * HTTP shell and the simulator drive the same code.
 *
 * Statistics are cumulative per video and survive peers leaving; deltas of
 * each peer's cumulative counters are added as they arrive, and counters
 * that go backwards are refused.
 */
#ifndef PC_TRACKER_REGISTRY_H
#define PC_TRACKER_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "announce.h"
#include "pc_error.h"
#include "pc_rng.h"

#define PC_REND_MAX 32 /* renditions per video */
#define PC_HIST_BUCKETS 64

enum { PC_PEER_SEEDING = 1, PC_PEER_REND = 2 /* counted in its swarm's rend_peers */ };

/* One live peer. Fields are public for reading (selection, responses, persistence). */
typedef struct pc_peer_rec {
    uint8_t id[PC_PEER_ID_LEN];
    uint8_t key[PC_ED25519_PK_LEN];
    uint8_t addr[16];
    uint64_t last_seen_us;
    uint64_t bytes_cdn, bytes_p2p, bytes_up; /* counters as last counted */
    uint32_t stalls, stall_ms, startup_ms, played_ms;
    uint32_t swarm, slot;   /* video, and position in its member list */
    uint32_t lprev, lnext;  /* expiry list, oldest first */
    uint32_t playhead_ms, have_lo, have_hi, up_kbps;
    uint32_t asn, net;      /* net: hash of the address's /24 (IPv4) or /48 (IPv6) */
    uint32_t ticket_exp;    /* unix seconds; 0 before a ticket was issued */
    uint16_t port, region;  /* region: interned name, 0 = unknown */
    uint8_t rend, flags;
} pc_peer_rec;

/* Cumulative statistics of one video. */
typedef struct pc_vstats {
    uint64_t bytes_cdn, bytes_p2p, bytes_up;
    uint64_t stalls, stall_ms, played_ms;
    uint64_t viewers;   /* peers that reported a start-up time */
    uint64_t announces;
    uint32_t startup_hist[PC_HIST_BUCKETS]; /* see pc_hist_bucket */
} pc_vstats;

typedef struct pc_swarm {
    char video[PC_VIDEO_ID_MAX + 1];
    char rend[PC_REND_MAX][PC_REND_ID_MAX + 1];
    uint32_t rend_peers[PC_REND_MAX]; /* live peers at each; a name none uses is replaced when all are taken */
    uint32_t nrend;
    uint32_t *members; /* record indices */
    uint32_t nmembers, cap;
    uint32_t seeders;
    pc_vstats st;
    int dirty; /* statistics changed since pc_registry_clear_dirty */
} pc_swarm;

typedef struct pc_registry pc_registry;

typedef struct pc_registry_config {
    uint64_t interval_us; /* announce interval; expiry after two */
    uint32_t max_peers;   /* live peers in all swarms */
    uint32_t max_swarms;  /* videos with statistics */
    uint64_t hash_seed;   /* secret seed for the index hash */
} pc_registry_config;

/* NULL on ENOMEM. */
pc_registry *pc_registry_new(const pc_registry_config *cfg);
void pc_registry_free(pc_registry *r);

/*
 * Applies an authenticated announce at |now_us| (never earlier than a previous call's) and sets
 * |*self| to the peer's record (PC_NONE after "stopped"). The caller has filled |a->addr| (from
 * the connection when the peer gave none) and passes |net|, its locality hash. Errors change
 * nothing: PC_ECONFLICT counters went backwards; PC_ELIMIT peers, videos or renditions are at
 * their limit; PC_ENOMEM.
 */
int pc_registry_announce(pc_registry *r, const pc_announce *a, uint32_t net, uint64_t now_us, uint32_t *self) PC_MUST_CHECK;
/* Removes peers with now_us >= last announce + 2 × interval; returns how many. */
size_t pc_registry_expire(pc_registry *r, uint64_t now_us);
/* When the oldest peer expires; UINT64_MAX with no peers. */
uint64_t pc_registry_next_expiry(const pc_registry *r);
/* 1 when the record would be expired at |now_us|. */
int pc_registry_is_expired(const pc_registry *r, const pc_peer_rec *p, uint64_t now_us);

size_t pc_registry_npeers(const pc_registry *r);
/* A number that changes whenever peers or statistics may have (announces, expiry, restores). */
uint64_t pc_registry_generation(const pc_registry *r);
size_t pc_registry_nswarms(const pc_registry *r);
const pc_peer_rec *pc_registry_peer(const pc_registry *r, uint32_t idx);
void pc_registry_set_ticket_exp(pc_registry *r, uint32_t idx, uint32_t exp);
/* Swarms by index (0 .. nswarms-1) or by video (NULL when unknown). */
const pc_swarm *pc_registry_swarm(const pc_registry *r, uint32_t idx);
const pc_swarm *pc_registry_find_swarm(const pc_registry *r, const char *video);
/* The live record of |key| in |video|, or NULL. */
const pc_peer_rec *pc_registry_find_peer(const pc_registry *r, const char *video, const uint8_t key[PC_ED25519_PK_LEN]);
/* Removes that peer's record (a key the tracker stopped vouching for): 1, or 0 when there was none. Its
 * counters stay counted. */
int pc_registry_remove(pc_registry *r, const char *video, const uint8_t key[PC_ED25519_PK_LEN]);
/* A region name that stays interned for good (the locality table's), whatever peers declare. */
void pc_registry_pin_region(pc_registry *r, const char *name);
/* Interned region name; "" for 0. */
const char *pc_registry_region(const pc_registry *r, uint16_t id);
void pc_registry_clear_dirty(pc_registry *r);

/* Every video's statistics summed (each sum capped at 2^53 - 1 as a video's are), live peers and
 * seeders in all videos; kept up to date by announces and restores, so O(1). */
const pc_vstats *pc_registry_total(const pc_registry *r, uint64_t *peers, uint64_t *seeders);
/* |t| += |v|, field by field, each sum capped as the registry's are. */
void pc_vstats_add(pc_vstats *t, const pc_vstats *v);

/* Restores a video's statistics (after a restart). PC_ELIMIT. */
int pc_registry_restore_stats(pc_registry *r, const char *video, const pc_vstats *st) PC_MUST_CHECK;
/* Restores a peer saved at shutdown as if it had just announced: |a| carries identity, address,
 * position and counters (counted already: statistics do not change). PC_ELIMIT. */
int pc_registry_restore_peer(pc_registry *r, const pc_announce *a, uint32_t net, uint32_t ticket_exp, uint64_t now_us) PC_MUST_CHECK;

/* Start-up histogram: bucket 0 holds < 10 ms, bucket b ≥ 1 holds [10·1.2^(b-1), 10·1.2^b) ms, the
 * last bucket everything above. */
int pc_hist_bucket(uint64_t ms);
/* The |q| quantile (0..1) of a histogram, interpolated inside its bucket; 0 when empty. */
double pc_hist_quantile(const uint32_t *hist, double q);

#endif
