/*
 * The peer engine: every decision a viewer makes about where its bytes come from, as pure code.
 *
 * No sockets, no clock, no threads: each entry point takes |now| (microseconds, caller's clock), the
 * engine says when it next wants to be called (pc_engine_expiry) and emits actions the caller carries
 * out (pc_engine_next_action): fetch a byte range of a segment from the CDN or from a peer, cancel a
 * transfer, a segment is verified and playable, ban or drop a peer, serve or refuse an upload request.
 * The real peer drives it from libuv callbacks, the simulator from a virtual clock; randomness comes
 * from a seeded generator owned by the engine.
 *
 * Policies (docs/engine.md gives their parameters, defaults and reasons):
 * - start-up: the first |startup_cdn_us| of content (and after a seek) comes from the CDN;
 * - urgent window: segments whose deadline is within |urgent_us| go to the source with the earliest
 *   expected completion (outstanding bytes ÷ measured rate + RTT), the CDN counted as one source;
 * - prefetch: beyond it, up to |prefetch_us| ahead, peers only, rarest first among deadlines in the
 *   same |rarest_bucket_us| bucket;
 * - rescue: a peer transfer without bytes for that peer's adaptive timeout, or projected to miss its
 *   deadline minus |safety_us|, moves to the CDN from the bytes already received; repeat offenders are
 *   dropped;
 * - mode: P2P throughput over a sliding window against the bitrate being played, with hysteresis:
 *   below |low_water| the urgent window is served by the CDN (and widened), above |high_water| not;
 * - ABR: pc_abr over the combined throughput; integrity: a segment counts only when its BLAKE2b-256
 *   matches the manifest, else the segment is refetched and its peer banned (of a copy several peers
 *   sent, each becomes a suspect, whose bytes are never mixed with another peer's again);
 * - uploads: pc_upload (deadline order, cap, per-peer fairness, refusal with a reason).
 *
 * Byte ranges: FETCH(segment, offset O) means "keep the first O bytes you hold of it, write the rest
 * from O". A FETCH at O = 0 therefore also discards anything held.
 */
#ifndef PC_ENGINE_H
#define PC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "pc_abr.h"
#include "pc_error.h"
#include "pc_player.h"
#include "pc_upload.h"

#define PC_SRC_CDN UINT32_MAX   /* the source of a CDN transfer */
#define PC_SEG_INIT UINT32_MAX  /* segment index of a rung's init segment */
#define PC_ENGINE_SEGMENTS_MAX 100000
#define PC_ENGINE_PEERS_MAX 256

/* The media, borrowed: it must outlive the engine (the simulator shares one among many engines). */
typedef struct pc_media_rung {
    uint32_t bandwidth;            /* bits per second, ascending across rungs */
    uint32_t init_size;
    const uint8_t *init_hash;      /* 32 bytes */
    const uint32_t *seg_size;      /* n_segments */
    const uint8_t *seg_hash;       /* 32 × n_segments */
} pc_media_rung;

typedef struct pc_media {
    uint32_t n_rungs, n_segments;
    const uint32_t *seg_dur_us;    /* n_segments, shared by every rung (segments align) */
    /* Optional: n_segments + 1 content start times, 0 then the running sum of seg_dur_us (pc_engine_new
     * checks it). Engines of one media then share it instead of each computing its own copy; the
     * simulator's thousands of engines per video read it from the cache. NULL: each engine has its own. */
    const uint64_t *seg_start_us;
    pc_media_rung rung[PC_RUNGS_MAX];
} pc_media;

/* Fills |out| (n + 1 entries) with the start times seg_start_us expects: 0, then the running sum. */
void pc_media_start_times(const uint32_t *seg_dur_us, uint32_t n, uint64_t *out);

typedef struct pc_engine_config {
    uint64_t seed;
    uint64_t id;               /* this viewer's identity in the swarm, as its peers know it (the peer client: the
                                * first 8 bytes of its Ed25519 key; the simulator: its viewer number). Volunteers
                                * are drawn from it, so every viewer of a group draws everyone's the same way. */
    uint64_t startup_cdn_us;   /* 8 s */
    uint64_t start_buffer_us;  /* player starts with this much buffered (4 s) */
    uint64_t resume_buffer_us; /* and resumes after a stall with this much (4 s) */
    uint64_t urgent_us;        /* 8 s */
    uint64_t cdn_urgent_us;    /* urgent window in CDN mode (12 s) */
    uint64_t prefetch_us;      /* 60 s */
    uint64_t rarest_bucket_us; /* 8 s */
    uint64_t safety_us;        /* 1 s */
    uint64_t check_us;         /* re-evaluation period while peer transfers are in flight (250 ms) */
    uint64_t first_byte_us;    /* a peer request may wait this long in the uploader's queue (5 s) */
    uint64_t have_batch_us;    /* new peer holdings are evaluated together, at most this often (500 ms) */
    uint64_t idle_check_us;    /* ... while other work is pending (1 s) */
    uint64_t mode_window_us;   /* P2P throughput window for the mode (10 s) */
    uint64_t tput_window_us;   /* combined throughput window for ABR (3 s) */
    uint64_t discover_us;      /* after play, no peer yet is not a weak swarm for this long (2 s) */
    uint64_t volunteer_us;     /* a segment no peer holds, this far past the urgent window, is fetched from the
                                * CDN early by one viewer of each group, for the others (24 s; 0 = never) */
    double low_water, high_water; /* P2P throughput ÷ playing bitrate: 0.9, 1.2 */
    uint32_t peer_inflight;    /* requests outstanding per peer (2) */
    uint32_t prefetch_inflight;/* prefetch requests outstanding in all (16) */
    uint32_t cdn_inflight;     /* CDN transfers at once (2) */
    uint32_t max_fails;        /* failures before a peer is dropped (3) */
    uint64_t start_bps;        /* throughput estimate for the first rung; 0 = conservative default */
    uint64_t cdn_bps_guess;    /* CDN rate before any measurement (8 Mbit/s) */
    uint64_t cdn_rtt_us;       /* 50 ms */
    uint64_t upload_bps;       /* upload cap, 0 = no uploads */
    uint32_t upload_slots;     /* 2 */
    uint64_t upload_wait_us;   /* a request we queue can start within this (1.5 s; 0 = any wait) */
    int cdn_only;              /* never use peers (the CDN-only baseline) */
    int p2p_only;              /* no CDN after start-up, no rescue (the P2P-only baseline) */
    int pinned_rung;           /* -1 = ABR */
    pc_abr_config abr;
} pc_engine_config;

typedef enum {
    PC_ACT_FETCH,    /* transfer, peer (or PC_SRC_CDN), rung, segment, offset, length, deadline */
    PC_ACT_CANCEL,   /* transfer */
    PC_ACT_READY,    /* rung, segment: verified, playable, may be shared */
    PC_ACT_BAN,      /* peer: sent data that failed verification */
    PC_ACT_DROP,     /* peer: failed too often */
    PC_ACT_SERVE,    /* request: send it now */
    PC_ACT_REFUSE,   /* request, reason */
    PC_ACT_ENDED,    /* playback reached the end */
    PC_ACT_SUSPECT,  /* peer: sent part of a copy, another peer the rest, and the copy failed verification:
                        not banned (either could have sent the bad bytes), but never mixed again */
} pc_action_type;

typedef struct pc_action {
    pc_action_type type;
    uint64_t transfer;     /* FETCH, CANCEL */
    uint64_t request;      /* SERVE, REFUSE */
    uint32_t peer;         /* FETCH (PC_SRC_CDN for the CDN), BAN, DROP, SUSPECT */
    uint32_t rung, segment;/* FETCH, READY (segment PC_SEG_INIT: the rung's init segment) */
    uint32_t offset, length;
    uint64_t deadline;     /* FETCH: when playback needs it, on our clock (PC_NEVER for init segments) */
    pc_refuse_reason reason;
} pc_action;

typedef enum { PC_SOURCE_NONE, PC_SOURCE_CDN, PC_SOURCE_P2P, PC_SOURCE_MIXED } pc_source;
const char *pc_source_name(pc_source s); /* "none", "cdn", "p2p", "mixed" */

typedef struct pc_segment_info {
    int ready;
    int inflight; /* a copy is on its way (at |rung|) */
    uint32_t rung;
    pc_source source;
    uint32_t bytes_cdn, bytes_p2p;  /* received for the copy that was kept */
    uint64_t requested_at, ready_at;
} pc_segment_info;

typedef struct pc_engine_stats {
    uint64_t bytes_cdn, bytes_p2p, bytes_up; /* everything received (wasted included) and sent */
    uint64_t startup_us;                     /* PC_NEVER until playback starts */
    uint32_t stalls, seeks, rung_switches, banned, dropped, rejected_segments, rescues;
    uint32_t yields;                         /* prefetches cancelled for an urgent CDN transfer running late */
    uint32_t suspects;                       /* peers made suspects (PC_ACT_SUSPECT) */
    uint64_t stall_us, played_us, seek_wait_us; /* up to the time asked for; an open stall or wait counted so far */
    uint64_t playhead_us;                    /* content time, at the time asked for */
    uint32_t rung;                           /* current ABR rung */
    int cdn_mode;                            /* 1 while the urgent window is on the CDN */
    double p2p_bps, total_bps;               /* current estimates */
    pc_player_state player;
} pc_engine_stats;

typedef struct pc_engine pc_engine;

void pc_engine_config_default(pc_engine_config *c);
/* Validates |m| (rungs 1..PC_RUNGS_MAX ascending, segments 1..PC_ENGINE_SEGMENTS_MAX, non-zero
 * durations and sizes). PC_EINVAL, PC_ENOMEM. */
int pc_engine_new(const pc_media *m, const pc_engine_config *c, pc_engine **out) PC_MUST_CHECK;
void pc_engine_free(pc_engine *e);

/* The viewer presses play. */
void pc_engine_play(pc_engine *e, uint64_t now);
void pc_engine_seek(pc_engine *e, uint64_t pos_us, uint64_t now);
/* A real player (the local HLS endpoint) asks for segment |i| of |rung| now. Content before it is no
 * longer wanted: the scheduling window starts at |i|, so it is due at once, and it is fetched at |rung|
 * (a copy of another rung, held, coming or begun, is dropped). A segment before the window, or any once
 * the model has ended, means the player is behind the model: the model seeks there first, keeping the
 * player's other demands (a copy of another rung is dropped before it moves, so the model waits for the
 * new copy as a seek, not a stall), and a demanded segment left behind the window is fetched before the
 * window's.
 * A seek (pc_engine_seek) forgets demands. Out-of-range values,
 * and calls before play or after quit, are ignored. Cannot fail. */
void pc_engine_demand(pc_engine *e, uint32_t rung, uint32_t i, uint64_t now);
/* The player no longer waits for segment |i| (its request went away, timed out or was answered): if it
 * lies behind the window it is not fetched for the player any more. Cannot fail. */
void pc_engine_undemand(pc_engine *e, uint32_t i);
/* The viewer leaves: in-flight downloads are canceled; uploads go on until pc_engine_free. */
void pc_engine_quit(pc_engine *e, uint64_t now);
/* -1 returns to ABR. */
void pc_engine_pin_rung(pc_engine *e, int rung, uint64_t now);
/* A real player wants |rung|'s init segment: fetched from the CDN now if it is not held or coming,
 * whatever the model's state (once the model has ended, schedule() starts nothing). */
void pc_engine_demand_init(pc_engine *e, uint32_t rung, uint64_t now);

/* Peers: |peer| is the caller's handle (any value but PC_SRC_CDN: PC_EINVAL); |id| its identity in the
 * swarm (what that viewer's own engine has as its config's id); |up_bps| advertised upload (0 = unknown).
 * PC_ELIMIT past PC_ENGINE_PEERS_MAX, PC_EEXIST for a known or banned handle. */
int pc_engine_peer_add(pc_engine *e, uint32_t peer, uint64_t id, uint64_t up_bps, uint64_t now) PC_MUST_CHECK;
/* Gone (disconnected): its transfers are rescheduled, keeping the bytes received. */
void pc_engine_peer_remove(pc_engine *e, uint32_t peer, uint64_t now);
/* It holds segments lo..hi (inclusive) of |rung|. Unknown peers and out-of-range values are ignored.
 * Does not evaluate at once: when one of them is a segment the engine could fetch now, pc_engine_expiry()
 * comes at most have_batch_us after the last evaluation, so a burst of these costs one pass. Returns 1
 * when this call moved pc_engine_expiry() (the caller re-reads it), 0 when it did not. */
int pc_engine_peer_have(pc_engine *e, uint32_t peer, uint32_t rung, uint32_t lo, uint32_t hi, uint64_t now);
void pc_engine_peer_rtt(pc_engine *e, uint32_t peer, uint64_t rtt_us);
/* Cache hints for a caller that delivers one HAVE to many engines (the simulator): it first touches
 * every engine's first cache line, then calls pc_engine_prefetch_index for each, then
 * pc_engine_prefetch_have, then pc_engine_peer_have, so the cache misses of all the engines overlap
 * instead of following one another. They change nothing and may be skipped. */
void pc_engine_prefetch_index(const pc_engine *e, uint32_t peer);
void pc_engine_prefetch_have(const pc_engine *e, uint32_t peer, uint32_t rung, uint32_t segment);
/* Likewise for a caller about to hand |e| an event: requests the engine's lines after its first (which
 * the caller touched, or requested itself). */
void pc_engine_prefetch(const pc_engine *e);

/* Transfers: |bytes| more arrived (in order, from the current offset). */
void pc_engine_on_data(pc_engine *e, uint64_t transfer, uint32_t bytes, uint64_t now);
/* The segment is complete; |hash| is the BLAKE2b-256 of all its bytes. */
void pc_engine_on_done(pc_engine *e, uint64_t transfer, const uint8_t hash[32], uint64_t now);
/* The transfer failed. |reason| PC_EAGAIN: the peer refused for capacity or deadline (no fault: it is
 * left alone for a second); anything else (reset, timeout, HTTP error, refused as not held) counts
 * against a peer, and makes the CDN back off (0.2 s doubling to 6.4 s). The caller applies its own
 * CDN timeouts (libcurl low-speed limits) and reports them here. */
void pc_engine_on_fail(pc_engine *e, uint64_t transfer, int reason, uint64_t now);
/* (PC_EPARSE from the CDN: the answer's bytes were not the segment's; they are dropped, and the segment
 * is fetched again from its start rather than resumed.) */

/* Upload side: a peer asks for |len| bytes of a segment from |offset|, needed by |deadline| (our clock). */
void pc_engine_on_request(pc_engine *e, uint64_t request, uint32_t peer, uint32_t rung, uint32_t segment,
                          uint32_t offset, uint32_t len, uint64_t deadline, uint64_t now);
/* A SERVE's bytes wait behind its link's write queue (|held| 1: the requester reads slowly) or flow again
 * (0). A held serve leaves its upload slot to others (pc_upload_held). */
void pc_engine_serve_held(pc_engine *e, uint64_t request, int held, uint64_t now);
/* A SERVE finished (or its link died) with |bytes_sent| of it sent, which is what bytes_up counts; a
 * queued request was withdrawn (0). */
void pc_engine_on_served(pc_engine *e, uint64_t request, uint64_t bytes_sent, uint64_t now);

/* Timers. */
uint64_t pc_engine_expiry(const pc_engine *e);
void pc_engine_on_timeout(pc_engine *e, uint64_t now);

/* Pulls the next action; 1 when one was written. */
int pc_engine_next_action(pc_engine *e, pc_action *a);
/* Whether actions wait to be pulled. */
int pc_engine_has_actions(const pc_engine *e);
/* PC_ENOMEM once an action could not be queued for lack of memory: the engine's view no longer matches
 * the caller's, so the caller must stop using it (free it, fail the viewer). 0 otherwise. */
int pc_engine_error(const pc_engine *e);

/* The counters, and the player as it stands at |now| (an earlier time counts as the engine's last
 * input): played time, a stall or seek wait still under way, the playhead. Changes nothing. */
void pc_engine_get_stats(const pc_engine *e, uint64_t now, pc_engine_stats *s);
/* |i| < n_segments. */
void pc_engine_segment(const pc_engine *e, uint32_t i, pc_segment_info *out);
/* A seeder that already has the whole video verified (a disk cache, an origin-side seed): every segment
 * of every rung counts as held and may be served. Cannot fail. */
void pc_engine_hold_all(pc_engine *e);
/* 1 when we hold (verified) segment |i| of |rung|. */
int pc_engine_holds(const pc_engine *e, uint32_t rung, uint32_t i);
/* The client's store no longer has segment |i| of |rung| (its memory cap let it go): not held any more,
 * so the engine fetches it again when it is wanted (and stops offering it). */
void pc_engine_forget(pc_engine *e, uint32_t rung, uint32_t i);
/* The first run of held segments of |rung| at or after segment |from|: returns its first segment and
 * sets *end one past its last; UINT32_MAX when there is none (what a new link is told we hold). */
uint32_t pc_engine_held_run(const pc_engine *e, uint32_t rung, uint32_t from, uint32_t *end);
/* Playhead (content µs) and buffer ahead of it. */
uint64_t pc_engine_playhead(const pc_engine *e);
uint64_t pc_engine_buffer(const pc_engine *e);
const pc_player *pc_engine_player(const pc_engine *e);
/* What an announce reports for |rung|: the first segment from the viewer's position on that is not
 * held (|*need|), and the run of held segments that reaches furthest (|*lo| … |*hi|); UINT32_MAX where
 * there is none. Cannot fail. */
void pc_engine_holdings(const pc_engine *e, uint32_t rung, uint32_t *need, uint32_t *lo, uint32_t *hi);

#endif
