/*
 * Upload policy: which incoming segment requests this peer serves, and when.
 *
 * Requests are admitted only if they can make the requester's deadline: the time to send everything
 * queued before it (in deadline order) plus the request itself at the upload cap must end before the
 * deadline; otherwise the request is refused at once with a reason, so the requester can go elsewhere
 * instead of waiting. Admitted requests are served in deadline order, |slots| at a time, with per-peer
 * fairness (a requester may have at most |per_peer| requests queued, and while others wait it gets one
 * serve at a time). The cap is honoured by a token bucket at request granularity: a serve of L bytes
 * starts only when the bucket is not in debt, and takes L from it; it refills at the cap, so over any
 * interval the bytes started are at most cap × interval + one request. Optionally a request must also be
 * able to start within a bound (pc_upload_set_max_wait). Pure code; time is passed in.
 */
#ifndef PC_UPLOAD_H
#define PC_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "pc_error.h"

typedef enum { PC_REFUSE_NONE, PC_REFUSE_NOT_HELD, PC_REFUSE_DEADLINE, PC_REFUSE_BUSY, PC_REFUSE_DISABLED }
    pc_refuse_reason;
/* "not_held", "cannot_meet_deadline", "busy", "upload_disabled" */
const char *pc_refuse_reason_name(pc_refuse_reason r);

typedef struct pc_upload_req {
    uint64_t id;        /* the caller's request id */
    uint32_t peer;      /* the caller's handle for the requester */
    uint32_t len;       /* bytes to send */
    uint64_t deadline;  /* on our clock */
    uint64_t seq;       /* arrival order, for ties */
    int serving;        /* 0 waiting; 1 sending; 2 sending, held up by its link (not counted in the slots) */
} pc_upload_req;

typedef struct pc_upload {
    uint64_t cap_bps;   /* 0 = upload disabled */
    uint32_t slots, per_peer, max_queue;
    uint64_t max_wait_us; /* 0 = a request may wait until its deadline allows */
    double tokens;      /* bytes; negative = debt */
    uint64_t t_us;
    pc_upload_req *q;   /* unsorted; small */
    size_t n, cap;
    uint64_t seq;
    uint64_t bytes_started, served, refused;
} pc_upload;

/* |cap_bps| bits per second (0 disables uploads); |slots| ≥ 1 concurrent serves; |per_peer| ≥ 1
 * queued requests per requester; at most |max_queue| queued in all. Cannot fail (allocates lazily). */
void pc_upload_init(pc_upload *u, uint64_t cap_bps, uint32_t slots, uint32_t per_peer, uint32_t max_queue);
void pc_upload_clear(pc_upload *u);
/* A request is queued only if it can start within |us| (0: no limit, the default): a requester that
 * hears nothing for a while takes its request elsewhere and counts that against us, so one that would
 * wait longer is refused as busy, to go elsewhere at once. The bound is checked on arrival: a later
 * request with an earlier deadline still goes first (deadlines matter more than the wait). */
void pc_upload_set_max_wait(pc_upload *u, uint64_t us);
/* A request for |len| bytes by |deadline|. |held| says whether we hold the segment. Returns
 * PC_REFUSE_NONE when queued, else why not. PC_ENOMEM is reported as BUSY. */
pc_refuse_reason pc_upload_request(pc_upload *u, uint64_t id, uint32_t peer, uint32_t len, int held,
                                   uint64_t deadline, uint64_t now);
/* The next request to start sending now, if any (deadline order, fairness, slots, cap): writes its id
 * and length and returns 1, else 0. The caller calls pc_upload_done when it has been sent. */
int pc_upload_next(pc_upload *u, uint64_t now, uint64_t *id, uint32_t *len);
/* Serving request |id| is held up (|held| 1) by its link's write queue, or goes on (0): a held one does
 * not count in the slots, so a requester that reads slowly cannot keep the others waiting. */
void pc_upload_held(pc_upload *u, uint64_t id, int held);
/* A served request is finished (sent, or the link went away); a queued one is withdrawn. */
void pc_upload_done(pc_upload *u, uint64_t id);
/* Withdraws everything of |peer| (it disconnected). */
void pc_upload_drop_peer(pc_upload *u, uint32_t peer);
/* When pc_upload_next might next return something because the bucket refills, or UINT64_MAX. */
uint64_t pc_upload_expiry(const pc_upload *u);

#endif
