/*
 * Video admission (--origin URL): a video the tracker does not know yet gets a swarm only once the
 * origin says it publishes it (GET URL/api/videos/ID answers 200 with state "ready"), so that
 * announces for invented video ids cannot fill --max-videos or /stats. Videos the registry already
 * holds (restored ones included) are not asked about again.
 *
 * One lookup per unknown video, however many announces wait for it. A refusal is remembered for a
 * while (ADMIT_MISSING_S, ADMIT_NOT_READY_S, ADMIT_ERROR_S) so that repeated announces cost nothing;
 * an admission only until the announces that waited for it were handled (the swarm they make is the
 * record from then on). Announces that wait are parked (their requests guarded: a client that goes
 * away is forgotten) and resumed through |resume| when the answer comes, at most ADMIT_WAIT_S later.
 * Lookups in flight and parked announces are bounded (ADMIT_FETCH_MAX, ADMIT_PARKED_MAX: past them an
 * announce is told to retry, PC_ELIMIT); remembered answers too (ADMIT_TABLE_MAX: past it a new one
 * replaces one of them in turn, a clock hand over the table).
 */
#ifndef PC_TRACKER_ADMIT_H
#define PC_TRACKER_ADMIT_H

#include <h2o.h>
#include <stdint.h>
#include <uv.h>

#include "pc_error.h"

#define ADMIT_MISSING_S 60     /* 404 or 410: no such video */
#define ADMIT_NOT_READY_S 10   /* 200, but still processing (or failed) */
#define ADMIT_ERROR_S 5        /* the origin did not answer usefully */
#define ADMIT_WAIT_S 5         /* a lookup's time limit */
#define ADMIT_FETCH_MAX 16
#define ADMIT_PARKED_MAX 1024
#define ADMIT_TABLE_MAX 4096
#define ADMIT_BODY_MAX (64 << 10)

typedef struct pc_admit pc_admit;

/* Runs for each parked announce once its video's answer came: handle |req| again from the start. */
typedef void (*pc_admit_resume_fn)(void *arg, h2o_req_t *req);

/* |origin| is an http(s) base URL (a trailing '/' is not doubled). NULL on ENOMEM. */
pc_admit *pc_admit_new(uv_loop_t *loop, const char *origin, pc_admit_resume_fn resume, void *arg);
/* Cancels lookups (their handles close on the loop's next turns) and hands every parked announce back
 * through |resume|, which must answer it without calling pc_admit_check (the tracker is stopping). */
void pc_admit_free(pc_admit *a);

/*
 * May an announce for |video| (not in the registry) create its swarm? 0 yes; PC_ENOENT the origin does
 * not publish it (or it is not ready); PC_ENET the origin could not be asked; PC_EAGAIN the announce was
 * parked (|req| is resumed later; respond nothing now); PC_ELIMIT too many lookups or parked announces
 * (retry in a second); PC_ENOMEM.
 */
int pc_admit_check(pc_admit *a, const char *video, h2o_req_t *req, uint64_t now_us) PC_MUST_CHECK;

/* Counters for /metrics: lookups made, and of them videos refused. */
void pc_admit_counts(const pc_admit *a, uint64_t *lookups, uint64_t *refused);

#endif
