/*
 * The client's state, shared by its files: client.c (engine, links, uploads, tracker), cdn.c (CDN
 * fetches), hls.c (local HLS endpoint) and report.c (status line, JSON report). Single-threaded: every
 * function runs on the client's libuv loop.
 */
#ifndef PC_CLIENT_INTERNAL_H
#define PC_CLIENT_INTERNAL_H

#include <curl/curl.h>
#include <uv.h>

#include "client.h"
#include "link.h"
#include "media.h"
#include "pc_buf.h"
#include "pc_engine.h"
#include "pc_http_client.h"
#include "pc_manifest.h"
#include "store.h"
#include "tbucket.h"
#include "tracker_client.h"

/* Accepted connections still in the handshake, at most; beyond it the oldest is closed, so connections
 * that never finish a handshake cannot take the slots real peers need. */
#define PC_CLIENT_PENDING_MAX 16
#define PC_CLIENT_AUTH_WAIT_MS 3000 /* from accept: a handshake not done by then is the first to give way */
#define PC_CLIENT_HIGH_MARK (1024u * 1024) /* a link's write queue above this gets no more DATA */
#define PC_CLIENT_MQ_CHECK_MS 2000         /* --media-query-file is read again this often */
/* what a link queues at most (its DATA up to the mark, one more record, answers) stays under its limit */
_Static_assert(PC_CLIENT_HIGH_MARK + PC_WIRE_RECORD_MAX + 512u * 1024 <= PC_LINK_QUEUE_MAX, "the link limit");
#define PC_CLIENT_GIVE_WAY_MS 20000 /* an accepted link silent this long may give way to a new one (on_up) */
#define PC_CANCELLED_MAX 16 /* cancelled requests a link remembers by id (client.c, on_data_msg) */
#define PC_BANNED_MAX 4096 /* keys a viewer bans in a run (128 KiB); docs/peer.md, "Limitations" */
#define PC_DEPARTED_MAX 64 /* peers whose links closed, remembered for a ban the engine decides later */
/* peers a dial did not reach (refused, timed out, closed before the handshake ended): not dialled again for
 * 10 s, then 20, 40... up to 5 min after each failure in a row */
#define PC_UNREACHABLE_MAX 64
#define PC_UNREACHABLE_FIRST_MS 10000u
#define PC_UNREACHABLE_LAST_MS 300000u

typedef struct client client;
typedef struct plink plink;

/* A peer link and what the client knows about it. */
struct plink {
    client *c;
    pc_link *link;
    uint32_t handle;          /* the engine's name for it */
    int in_engine;
    uint8_t key[32];
    int has_key;              /* known (connect: from the tracker; accept: after the handshake) */
    enum { PL_UNCOUNTED, PL_PENDING, PL_LINKED } budget; /* PENDING: accepted, in the handshake (npending);
                                                          * LINKED: dialled or through it (nlinks);
                                                          * UNCOUNTED: being closed before either */
    uint32_t next_id;         /* our request ids on this link */
    int dialled;              /* we dialled it (the dialling budget, ndialled) */
    uint64_t up_ms, active_ms; /* when it came up; when it last sent a HAVE, REQUEST or DATA */
    uint8_t came_up;           /* its handshake ended and on_up took it */
    char dial_addr[46];        /* a dialled link: where it went */
    uint16_t dial_port;
    struct {
        uint32_t id, left;    /* a request we cancelled, and the bytes of it that may still arrive (0: free) */
    } cancelled[PC_CANCELLED_MAX];
    uint32_t cancelled_next;  /* the slot the next cancel takes (the oldest, when all are used) */
    uint64_t unwanted;        /* what cancelled requests pushed out of |cancelled| may still send */
    plink *next;
};

/* Assembly of one segment (or init segment) being downloaded. */
typedef struct asmbuf {
    uint8_t *buf;
    uint32_t rung, size;
} asmbuf;

/* A download the engine asked for. */
typedef struct dl {
    uint64_t transfer;
    uint32_t rung, seg, offset, len, got;
    plink *pl;                /* NULL: from the CDN */
    uint32_t wire_id;
    asmbuf *buf;              /* where the bytes go */
    /* CDN */
    client *c;
    CURL *easy;
    struct curl_slist *headers;
    uint32_t part_start, part_end; /* composite offsets of the current request */
    int ranged;
    uint64_t started_us;      /* seed: when it was requested */
    int checked;              /* the answer's status (and Content-Range) matched the request */
    uint64_t range_first, range_last; /* the part's bytes a ranged request asks for */
    uint64_t cr_first, cr_last, cr_total; /* Content-Range of the answer (UINT64_MAX: none; cr_total also for "*") */
    uint64_t clen;            /* Content-Length of the answer (UINT64_MAX: none) */
    int encoded;              /* the answer has a Content-Encoding other than identity */
    uint32_t part_size;       /* the size of the file the current request reads (a part of the composite) */
    uint64_t skip;            /* a ranged request answered with the whole file (200): its bytes to pass over */
    int paused;               /* its next Range request waits (the download cap, or a seed's retry) */
    uint64_t resume_at_us;    /* until then (client clock) */
    char err[CURL_ERROR_SIZE];
    int seed;                 /* seed-mode fetch, not the engine's: |buf| is its own (several rungs of one
                               * segment index may be in flight at once, unlike the engine's transfers) */
    int failures;             /* seed: failed attempts so far (SEED_ATTEMPTS in all) */
} dl;

/* An upload request from a peer. */
typedef struct up {
    uint64_t request;
    plink *pl;
    uint32_t wire_id, rung, seg, offset, len, sent;
    pc_blob *blob;            /* while serving */
    int serving;
    int held;                 /* its link's write queue is full: the engine lets its slot go (pump) */
} up;

typedef struct hls hls;

struct client {
    const pc_client_config *cfg;
    uv_loop_t loop;
    uv_timer_t engine_timer, kick, upload_timer, announce_timer, status_timer, cdn_resume, mq_timer;
    uv_prepare_t settle; /* before the loop waits: no action left in the engine (on_settle) */
    uv_signal_t sigint, sigterm, sighup; /* SIGHUP: the terminal went away; stopped as for SIGTERM */
    uv_tcp_t server;
    int server_open;
    uint64_t t0_us;
    pc_http_client *http;
    /* trust and media */
    uint8_t origin_pk[32];
    int origin_pk_pinned;     /* it came from the pin file (not --origin-key, not fetched this run) */
    char pin_b64[128];        /* fetched this run: pinned once the whole start has succeeded ("" none) */
    int repin;                /* pin_b64 replaces a loopback origin's stale pin (repin_loopback) */
    char *manifest_json;
    pc_manifest *mf;
    pc_peer_media pm;
    char base[PC_CLIENT_URL_MAX + PC_VIDEO_ID_MAX + 8]; /* origin + "/v/" + video + "/" */
    char mq[PC_CLIENT_QUERY_MAX + 2];                    /* "?" + --media-query, or "": ends every /v/ URL */
    char mq_why[160];                                    /* why --media-query-file was last not taken ("" it was) */
    int said_403;                                        /* the CDN's first 403 since the query changed was logged */
    int tracker_refused_token;                           /* the tracker refused the query: asked again when it changes */
    char last_cdn_error[160];                            /* the last CDN fetch that failed, and why */
    char tracker_url[PC_MANIFEST_MAX_TRACKER_URL + 1];   /* the manifest's, or --tracker */
    /* engine */
    pc_engine *e;
    int driving, kicked, engine_failed;
    /* downloads, uploads, assembly */
    dl **dls;
    size_t ndls, cdls;
    up **ups;
    size_t nups, cups;
    uint64_t next_request;
    asmbuf *asm_seg;          /* n_segments */
    asmbuf asm_init[PC_RUNGS_MAX];
    uint8_t *init[PC_RUNGS_MAX];
    pc_store *store;
    pc_tbucket upb, downb;
    int upload_waiting;
    /* peers */
    pc_link_identity id;
    plink *links;
    uint32_t nlinks;          /* links dialled, or accepted and through the handshake (at most 2 × --max-links) */
    uint32_t ndialled;        /* of those, dialled (at most --max-links): accepted ones do not stop us dialling */
    uint32_t npending;        /* accepted connections still in the handshake (at most PC_CLIENT_PENDING_MAX) */
    uint32_t next_handle;
    uint8_t banned[PC_BANNED_MAX][32];
    uint32_t nbanned;
    uint32_t nbanned_told;     /* banned[0 .. this) reached the tracker (an announce it took) */
    uint32_t nbanned_telling;  /* how many the announce in flight carries */
    struct {
        uint32_t handle;
        uint8_t used;
        uint8_t key[32];
    } departed[PC_DEPARTED_MAX]; /* the last links to close, a ring */
    uint32_t ndeparted;
    struct {
        uint8_t key[32];
        char addr[46];     /* where the dials went: a peer listed at another address is dialled there */
        uint16_t port;
        uint64_t until_ms; /* not dialled before (0: a free entry) */
        uint32_t fails;    /* in a row */
    } unreachable[PC_UNREACHABLE_MAX];
    char listen_bound[64];
    char announce_from[64];    /* CURLOPT_INTERFACE of the announces ("host!ADDR"), or "": any */
    uint16_t port;
    /* pending HAVEs to tell every link, flushed after each pass */
    pc_wire_range *have_q;
    uint32_t nhave_q, chave_q;
    /* tracker */
    pc_tc_state ts;
    char session[64];
    pc_buf announce_body;
    pc_tc_call *announce_call;
    uint32_t announces_ok, announces_failed;
    int tracker_done;          /* the tracker answered 403 distrusted or refused the media token: no more announces */
    /* The counters an announce carries, as this run has them: those of the announce in flight, of the
     * latest one the tracker may have counted (it took it, or no answer came: lost, timed out, cancelled;
     * counters only grow), and what it may have counted when this run last started over under a new peer
     * id (after a 403 cleared the session: the tracker may have forgotten it, and a "started" from a key
     * it does not know counts from zero, so the run's whole counters were counted twice; found by
     * review). Announces carry the counters less the base: a gap may go uncounted, nothing twice. */
    struct tc_ctr {
        uint64_t bytes_cdn, bytes_p2p, bytes_up, stalls, stall_ms, startup_ms, played_ms;
    } ctr_sent, ctr_counted, ctr_base;
    int sent_once;             /* some announce of this run may have been counted */
    int restart_pending;       /* a 403 cleared the session: the next "started" is under a new peer id */
    double interval_s;         /* the tracker's announce interval (0 before its first answer) */
    char mq_sent[PC_CLIENT_QUERY_MAX + 2]; /* the media query the announce in flight carries */
    /* lifecycle */
    int ended, seeding, stopping, exit_code;
    uint64_t ended_at_us;
    uint32_t seed_pending, seed_next_rung, seed_next_seg, seed_failures;
    struct seed_seg {             /* seed: each (rung, segment) stored, for the report */
        uint64_t at_us;           /* verified (or read from the disk cache) */
        uint32_t ms;              /* requested to verified */
        uint8_t from;             /* 0 not held, 1 the CDN, 2 the disk cache */
    } *seed_segs;                 /* n_rungs × n_segments */
    uint8_t *relost;              /* n_rungs × n_segments: a copy ahead the store let go, forgotten once */
    uint64_t last_hls_us;
    hls *hls;
    uint64_t bytes_cdn_total, bytes_p2p_total; /* as received on the wire, for the tracker */
};

uint64_t pc_client_now(const client *c);
/* Something for the engine happened: drive it from the loop soon. */
/* Carries out the engine's pending actions now (a verified copy reaching the store), as the loop would
 * at its next turn. */
void pc_client_settle(client *c);
void pc_client_kick(client *c);
/* The assembly buffer of |seg| (PC_SEG_INIT: the init segment) for |rung|. One already there for that
 * rung is returned as it is: a FETCH from offset O relies on its first O bytes. Another rung's is
 * replaced (the engine restarts such a copy from 0). NULL on ENOMEM. */
asmbuf *pc_client_asm(client *c, uint32_t rung, uint32_t seg);

/* cdn.c */
int pc_cdn_start(client *c, dl *d) PC_MUST_CHECK;
/* Starts |d|'s next request, or schedules it when the download cap is in debt. */
int pc_cdn_next(client *c, dl *d) PC_MUST_CHECK;
void pc_cdn_cancel(client *c, dl *d);
/* The options every GET from the origin shares (timeouts, redirects, http(s) only). */
void pc_cdn_easy_defaults(CURL *e);
/* |n| more bytes of |d| arrived (inside libcurl's write callback: no transfer may be canceled here). */
void pc_client_cdn_bytes(client *c, dl *d, uint32_t n);
/* |n| bytes arrived from the CDN that no segment keeps (a whole file's bytes before the range asked
 * for): counted as received and charged to the download cap, never given to the engine. */
void pc_client_cdn_passed_over(client *c, uint32_t n);
/* The download cap is in debt: |d|'s next request starts in |wait_us| (pc_cdn_next). */
void pc_client_cdn_pause(client *c, dl *d, uint64_t wait_us);
/* A CDN transfer finished its last part, or failed; the client reports it to the engine (or seed). */
void pc_client_cdn_done(client *c, dl *d, int err);

/* hls.c */
/* What the real player behind the local HLS endpoint got from it: its init and media segment requests
 * (playlists apart), and how long those not answered on arrival waited. */
typedef struct pc_hls_stats {
    uint32_t requests;
    uint32_t at_once;     /* answered from the store on arrival */
    uint32_t waited;      /* answered once the segment was verified */
    uint64_t wait_us;     /* their total wait */
    uint64_t wait_max_us; /* the longest */
    uint32_t abandoned;   /* the player went away first (a seek, a switch) */
    uint32_t timed_out;   /* 504 after PC_HLS_WAIT_S */
    uint32_t refused;     /* 503: too many waiting, evicted, shutting down */
    uint32_t waiting;     /* still waiting */
} pc_hls_stats;
/* -1 without an endpoint. */
int pc_hls_stats_get(const client *c, pc_hls_stats *out);
int pc_hls_start(client *c, const char *hostport, char *bound, size_t boundlen) PC_MUST_CHECK;
void pc_hls_on_ready(client *c, uint32_t rung, uint32_t seg);
/* Segment |seg| of |rung| was verified but is larger than the store: its waiters are told (503). */
void pc_hls_on_unkept(client *c, uint32_t rung, uint32_t seg);
void pc_hls_stop(client *c);
void pc_hls_free(client *c);

/* report.c */
void pc_report_status_line(client *c);
int pc_report_write(client *c, const char *path) PC_MUST_CHECK;

#endif
