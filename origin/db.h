/*
 * The origin's metadata store and task queue, on SQLite in WAL mode.
 *
 * This is one of the scale-out seams: uploads, videos and tasks are reached
 * only through these functions, whose SQL maps one-to-one onto PostgreSQL
 * (the claim is a single UPDATE ... WHERE id = (SELECT ... LIMIT 1)
 * RETURNING, which becomes FOR UPDATE SKIP LOCKED there). One pc_db handle is
 * used from one thread (the origin's event loop); worker threads never touch it.
 *
 * Times: *_ms fields are unix milliseconds; upload expiry is unix seconds.
 */
#ifndef PC_ORIGIN_DB_H
#define PC_ORIGIN_DB_H

#include <stddef.h>
#include <stdint.h>

#include "pc_error.h"

#define PC_ID_LEN 20 /* random base32 ids of uploads and videos */

/* 1 when |s| (|len| bytes) is a well-formed id: exactly PC_ID_LEN characters of [a-z2-7]. */
int pc_id_valid(const char *s, size_t len);

typedef struct pc_db pc_db;

/* Opens (creating and migrating) the database at |path|. PC_EDB on failure. */
int pc_db_open(const char *path, pc_db **out) PC_MUST_CHECK;
void pc_db_close(pc_db *db);
/* How long a statement waits for another program's lock (PC_SQLITE_BUSY_MS after open; the origin waits
 * PC_ORIGIN_SERVE_BUSY_MS while it serves, since the loop waits with it). */
void pc_db_busy_wait(pc_db *db, int ms);
/* Whether a statement gave up on another program's lock since the last call (clears it). */
int pc_db_took_busy(pc_db *db);
#define PC_ORIGIN_SERVE_BUSY_MS 25
/* Transactions nest: inner begin/commit pairs become savepoints. Each begin ends in commit or rollback;
 * a failed commit leaves the transaction open for the caller to roll back. */
int pc_db_begin(pc_db *db) PC_MUST_CHECK;
int pc_db_commit(pc_db *db) PC_MUST_CHECK;
void pc_db_rollback(pc_db *db);

/* ---- uploads (tus) ---- */

enum pc_upload_kind { PC_UPLOAD_SINGLE = 0, PC_UPLOAD_PARTIAL = 1, PC_UPLOAD_FINAL = 2 };

typedef struct pc_upload {
    char id[PC_ID_LEN + 1];
    int64_t length;
    int64_t offset;
    int kind;
    char *metadata; /* raw Upload-Metadata value or NULL (owned) */
    char *parts;    /* final uploads: space-separated partial ids (owned) */
    int64_t created;
    int64_t expires; /* unix seconds */
    int completed;
} pc_upload;

void pc_upload_clear(pc_upload *u);
int pc_db_upload_insert(pc_db *db, const pc_upload *u) PC_MUST_CHECK;
/* PC_ENOENT when absent. */
int pc_db_upload_get(pc_db *db, const char *id, pc_upload *out) PC_MUST_CHECK;
/* The final upload the partial uploads |parts| ("ID ID ...", in order) were joined into; PC_ENOENT if none. */
int pc_db_upload_final_of(pc_db *db, const char *parts, pc_upload *out) PC_MUST_CHECK;
int pc_db_upload_set_offset(pc_db *db, const char *id, int64_t offset, int completed) PC_MUST_CHECK;
int pc_db_upload_delete(pc_db *db, const char *id) PC_MUST_CHECK;
/* Bytes promised to unfinished uploads that have not expired by |now_s| and not yet written
 * (Σ length − offset): an expired one can take no more. PC_EDB. */
int pc_db_upload_pending(pc_db *db, int64_t now_s, int64_t *bytes) PC_MUST_CHECK;
/*
 * Ids of uploads to forget, at most |max|: unfinished and partial ones whose
 * expiry passed, and completed single/final ones |keep_done_s| after their
 * expiry. Returns the count or <0.
 */
int pc_db_upload_expired(pc_db *db, int64_t now_s, int64_t keep_done_s, char (*ids)[PC_ID_LEN + 1], int max);

/* ---- videos ---- */

typedef struct pc_video {
    int64_t seq;
    char id[PC_ID_LEN + 1];
    char *title;
    char state[16]; /* queued | processing | ready | failed */
    char *error_code, *error_message;
    char *source; /* path of the original upload */
    int64_t source_size;
    char *info;   /* probe result JSON or NULL */
    char *plan;   /* ladder plan JSON or NULL */
    char *result; /* published description JSON or NULL */
    int64_t created_ms, updated_ms;
} pc_video;

void pc_video_clear(pc_video *v);
/* Creates the video and its first tasks (probe → plan) in one transaction. */
int pc_db_video_create(pc_db *db, const char *id, const char *title, const char *source, int64_t source_size,
                       int64_t now_ms) PC_MUST_CHECK;
int pc_db_video_get(pc_db *db, const char *id, pc_video *out) PC_MUST_CHECK;
#define PC_TITLE_MAX 511 /* bytes of a video's title (UTF-8) */
/* The length in bytes of a character a title may not hold at |s| (|left| bytes from there), else 0: C0
 * and C1 controls, DEL, the line and paragraph separators and the bidi embeddings, overrides and
 * isolates (U+202A-U+202E, U+2066-U+2069), which would break a catalog page's layout, reorder what is
 * shown around the title, or a log line. */
size_t pc_title_banned_at(const char *s, size_t left);
/* Renames video |id|: PC_ENOENT when there is none (deleted meanwhile), PC_EDB. */
int pc_db_video_set_title(pc_db *db, const char *id, const char *title, int64_t now_ms) PC_MUST_CHECK;
/*
 * Lists videos newest first, starting after |after_seq| (0 for the first
 * page). Fills up to |max| entries into |out| and returns the count or <0.
 */
int pc_db_video_list(pc_db *db, int64_t after_seq, pc_video *out, int max);
int pc_db_video_count(pc_db *db, int64_t *count) PC_MUST_CHECK;
/* Videos (|tasks| 0) or unfinished tasks (|tasks| 1: blocked, ready or running) by state: |fn| runs once
 * for each state that has any. PC_EDB. */
int pc_db_state_counts(pc_db *db, int tasks, void (*fn)(void *arg, const char *state, int64_t n), void *arg)
    PC_MUST_CHECK;
int pc_db_video_set_state(pc_db *db, const char *id, const char *state, int64_t now_ms) PC_MUST_CHECK;
int pc_db_video_set_field(pc_db *db, const char *id, const char *field, const char *json, int64_t now_ms) PC_MUST_CHECK;
/* Marks the video failed with |code| and |message| and cancels its unfinished tasks. */
/* Sets (or with NULLs clears) the error of a video that stays in its state: a ready video whose revision
 * failed (its publication serves on). */
int pc_db_video_note(pc_db *db, const char *id, const char *code, const char *message, int64_t now_ms) PC_MUST_CHECK;
int pc_db_video_fail(pc_db *db, const char *id, const char *code, const char *message, int64_t now_ms) PC_MUST_CHECK;
/* Queues a failed video again from its kept original: its tasks are replaced by new first tasks (probe →
 * plan), its error, probe, plan and result cleared, in one transaction. PC_ECONFLICT unless it is failed. */
int pc_db_video_retry(pc_db *db, const char *id, int64_t now_ms) PC_MUST_CHECK;
/* Deletes the video row and its tasks. PC_ENOENT when absent. */
int pc_db_video_delete(pc_db *db, const char *id) PC_MUST_CHECK;

/* ---- tasks ---- */

enum pc_task_class { PC_TASK_LIGHT = 0, PC_TASK_HEAVY = 1 };

typedef struct pc_task {
    int64_t id;
    char video_id[PC_ID_LEN + 1];
    char kind[16];
    int arg;
    int attempts;
    int max_attempts;
    double weight;
    int interrupted; /* earlier runs cut short by the process dying */
} pc_task;

typedef struct pc_task_spec {
    const char *kind;
    int arg;
    int cls;
    int priority;
    double weight; /* share of the video's processing, for progress */
} pc_task_spec;

/* Adds a task that becomes ready once every task in |deps| is done. */
int pc_taskq_add(pc_db *db, const char *video_id, const pc_task_spec *spec, const int64_t *deps, size_t ndeps,
                 int64_t now_ms, int64_t *id_out) PC_MUST_CHECK;
/*
 * Claims the highest-priority ready task of class |cls| whose backoff has
 * passed, leasing it to |owner| until now+lease. PC_ENOENT when none.
 */
int pc_taskq_claim(pc_db *db, int cls, const char *owner, int64_t now_ms, int64_t lease_ms, pc_task *out) PC_MUST_CHECK;
/* The same among the tasks whose runs were cut short at least |min_interrupted| times. */
int pc_taskq_claim_interrupted(pc_db *db, int cls, const char *owner, int64_t now_ms, int64_t lease_ms, int min_interrupted,
                               pc_task *out) PC_MUST_CHECK;
/* Ready tasks whose runs were cut short at least |min| times. */
int pc_taskq_count_interrupted(pc_db *db, int min);
/* Forgets a task's interruptions (it ran to an end, alone, without the process dying). */
int pc_taskq_clear_interrupted(pc_db *db, int64_t id) PC_MUST_CHECK;
/* Marks done (storing |result| JSON, may be NULL) and readies dependents whose deps are all done. */
/* PC_ECONFLICT (nothing changed) when task |id| is not running: reclaimed, released, canceled or done. */
int pc_taskq_complete(pc_db *db, int64_t id, const char *result, int64_t now_ms) PC_MUST_CHECK;
/* Back to ready after |not_before_ms| (recoverable failure), remembering the error. */
int pc_taskq_retry(pc_db *db, int64_t id, int64_t not_before_ms, const char *code, const char *message,
                   int64_t now_ms) PC_MUST_CHECK;
/* Back to ready without counting the attempt (interrupted by shutdown). */
int pc_taskq_release(pc_db *db, int64_t id, int64_t now_ms) PC_MUST_CHECK;
/* Extends the lease of task |id| if |owner| is running it. Only tasks a worker holds are renewed: one whose
 * completion could not be recorded (a full disk) then expires and is reclaimed, rather than staying
 * 'running' for ever. */
int pc_taskq_renew(pc_db *db, int64_t id, const char *owner, int64_t now_ms, int64_t lease_ms) PC_MUST_CHECK;
/*
 * Returns running tasks whose lease expired to ready (all running tasks when
 * |all| is set, used when the data-directory lock proves no other process
 * runs them), except the |nkeep| tasks in |keep|: this process still runs or
 * records them (a lease it could not renew while another process held the
 * database locked is not a task to run twice). Returns the number reclaimed or <0.
 */
int pc_taskq_reclaim(pc_db *db, int64_t now_ms, int all, const int64_t *keep, size_t nkeep);
/* Result JSON of the done task |kind|/|arg| of |video| (malloc'd) or NULL. */
char *pc_taskq_result(pc_db *db, const char *video_id, const char *kind, int arg);
/* {"kind:arg": result, ...} of the done dependencies of task |id| (malloc'd JSON) or NULL. */
char *pc_taskq_dep_results(pc_db *db, int64_t id);
/* Sum of weights of |video|'s tasks and of the done ones: its probe and plan (|first|), or the others. */
int pc_taskq_weights(pc_db *db, const char *video_id, int first, double *done, double *total) PC_MUST_CHECK;
/* Counts tasks of |video| in |state|. */
int pc_taskq_count(pc_db *db, const char *video_id, const char *state, int64_t *n) PC_MUST_CHECK;
/* Tasks of |video| that are not done (whatever else their state). */
int pc_taskq_unfinished(pc_db *db, const char *video_id, int64_t *n) PC_MUST_CHECK;
/* The newest done package task of |video| (highest arg: 0, or the revision that made it): its id and arg,
 * and the id of the video's thumbs task. PC_ENOENT when there is none. */
int pc_taskq_last_package(pc_db *db, const char *video_id, int64_t *package_id, int *arg,
                          int64_t *thumbs_id) PC_MUST_CHECK;
/* Up to |max| dependencies of task |id| other than those of kind |except| into |ids|, their number in |n|
 * (PC_ETOOBIG when there are more). */
int pc_taskq_deps_of(pc_db *db, int64_t id, const char *except, int64_t *ids, size_t max, size_t *n) PC_MUST_CHECK;
/* Removes the tasks of revision |arg| of |video| (its subtitles, package, sign and publish). */
int pc_taskq_drop_revision(pc_db *db, const char *video_id, int arg) PC_MUST_CHECK;

#endif
