/*
 * The processing pipeline: a scheduler on the event loop that claims tasks
 * from the persisted queue and hands them to worker threads, expands the DAG
 * as tasks finish, retries recoverable failures with backoff, renews leases,
 * and publishes finished videos.
 *
 * Worker threads receive a self-contained job (paths and JSON inputs copied
 * from SQLite) and return a result JSON; they never touch the database or
 * the loop. Hand-over is explicit: a mutex-protected queue in, a completion
 * queue plus uv_async out.
 */
#ifndef PC_ORIGIN_PIPELINE_H
#define PC_ORIGIN_PIPELINE_H

#include "origin.h"

pc_pipeline *pc_pipeline_new(pc_origin *o);
/* Reclaims abandoned tasks, starts the workers and begins scheduling. */
int pc_pipeline_start(pc_pipeline *p) PC_MUST_CHECK;
/* New tasks may be ready (an upload completed); they are dispatched on the next loop iteration. */
void pc_pipeline_kick(pc_pipeline *p);
/* 0..1 progress of |video_id| including the running tasks' fractions; |planned| once the plan exists. */
double pc_pipeline_progress(pc_pipeline *p, const char *video_id, int planned);
/* 1 while a task of |video_id| is still running on a worker (a cancelled one included). */
int pc_pipeline_video_busy(pc_pipeline *p, const char *video_id);
/* Asks running tasks of |video_id| to stop (deletion). */
void pc_pipeline_cancel_video(pc_pipeline *p, const char *video_id);
/* Adds the subtitle file |body| (|len| bytes: SubRip, WebVTT or ASS/SSA) to the ready video |id| as a new
 * track (|language|, |title|: as given, cleaned; either may be NULL) and queues the revision that
 * publishes the video again with it; the current publication serves until the new one replaces it in
 * one step. 0, or an error with |code| and |msg| for the API: PC_ENOENT (not_found), PC_ECONFLICT
 * (not_ready, busy: a revision is under way, too_many_subtitles), PC_EINVAL (bad_subtitles), or another
 * (the origin's own trouble). */
int pc_pipeline_add_subtitles(pc_pipeline *p, const char *id, const void *body, size_t len, const char *language,
                              const char *title, const char **code, char *msg, size_t msglen) PC_MUST_CHECK;
/* Takes the published subtitle track |track| ("s1") out of the ready video |id| the same way (a revision;
 * the track's entry stays in the plan, marked removed, and its file with the video). The same errors,
 * PC_ENOENT also for no such track. */
int pc_pipeline_remove_subtitles(pc_pipeline *p, const char *id, const char *track, const char **code, char *msg,
                                 size_t msglen) PC_MUST_CHECK;
/* Stops: running tasks are cancelled and released (re-run after restart); |cb| runs when threads joined. */
void pc_pipeline_stop(pc_pipeline *p, void (*cb)(void *arg), void *arg);
void pc_pipeline_free(pc_pipeline *p);

/* Since start, by task kind: tasks finished (done), failed and scheduled again (retried), failed for good
 * (failed: their video failed), and the seconds they ran; and the workers of each class (PC_TASK_HEAVY,
 * PC_TASK_LIGHT) and how many are busy. For /metrics. */
#define PC_PIPELINE_KINDS 9
typedef struct pc_pipeline_stats {
    const char *kinds[PC_PIPELINE_KINDS];
    uint64_t done[PC_PIPELINE_KINDS], retried[PC_PIPELINE_KINDS], failed[PC_PIPELINE_KINDS];
    double seconds[PC_PIPELINE_KINDS];
    int workers[2], busy[2];
} pc_pipeline_stats;
void pc_pipeline_stats_get(const pc_pipeline *p, pc_pipeline_stats *out);

#endif
