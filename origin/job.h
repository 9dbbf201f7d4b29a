/*
 * A job: one task's self-contained work order, run on a worker thread.
 * The scheduler fills the inputs (copies of what the task needs from SQLite),
 * the task function fills the outputs. Task functions never touch the
 * database or the event loop; they poll |cancel| between units of work and
 * publish their progress (permille) through |progress|.
 */
#ifndef PC_ORIGIN_JOB_H
#define PC_ORIGIN_JOB_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "db.h"
#include "pc_crypto.h"

typedef struct pc_job_env {
    const char *preset;     /* x264 preset */
    double segment_seconds; /* CMAF segment target (multiple of gop_seconds) */
    double gop_seconds;     /* forced IDR interval */
    int workers;            /* heavy worker threads (chunking target) */
    int x264_threads;       /* threads per x264 encoder */
    double crf;             /* > 0: capped CRF; 0: ABR at the rung's bitrate */
    const uint8_t *origin_sk;
    const uint8_t *origin_pk;
    const char *tracker_url;     /* or NULL */
    const char *tracker_key_b64; /* or NULL: fetched from the tracker */
    const char *media_key_id;    /* signed-media mode: pc_media_key_id of the media key; else NULL */
} pc_job_env;

typedef struct pc_job {
    /* inputs */
    int64_t task_id;
    char video_id[PC_ID_LEN + 1];
    char kind[16];
    int arg;
    int attempt;
    int64_t dispatched_ms; /* when the scheduler handed it to a worker (loop thread only) */
    double weight;
    char *source;   /* original upload */
    char *work_dir; /* DATA/work/<id> */
    char *out_dir;  /* DATA/work/<id>/out: what publish moves to DATA/media/<id> */
    char *media_dir; /* DATA/media/<id> */
    char *info;     /* probe result JSON */
    char *plan;     /* plan JSON */
    char *inputs;   /* {"kind:arg": result, ...} of the task's dependencies */
    const pc_job_env *env;
    atomic_int cancel;
    atomic_int progress; /* permille */
    /* outputs */
    int err;       /* 0 or PC_E* */
    int permanent; /* the input is at fault: fail the video, keep the upload */
    char err_code[48];
    char err_msg[256];
    char *result; /* JSON */
    int swap;     /* a revision's publish: the loop swaps out_dir in (pc_media_swap_in) before recording it */
    int record_tries; /* the loop's attempts to record its completion (pipeline.c, complete_job) */
    int record_locked; /* its completion waits for another program's lock on the database (said once) */
    struct pc_job *next;
} pc_job;

/* Records a failure; returns |err| for convenience. */
int pc_job_fail(pc_job *j, int err, int permanent, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static inline int pc_job_canceled(pc_job *j)
{
    return atomic_load(&j->cancel) != 0;
}

/* A task of a revision: a file added to a published video makes the subtitles, package, sign and
 * publish tasks again, with the revision's number (1, 2...) as their arg, on a copy of the publication. */
static inline int pc_job_is_revision(const pc_job *j)
{
    return j->arg > 0 && (strcmp(j->kind, "subtitles") == 0 || strcmp(j->kind, "package") == 0 ||
                          strcmp(j->kind, "sign") == 0 || strcmp(j->kind, "publish") == 0);
}

/* Task functions (one per kind); return 0 or the error also stored in the job. */
int pc_task_probe(pc_job *j);
int pc_task_plan(pc_job *j);
int pc_task_encode(pc_job *j);
int pc_task_audio(pc_job *j);
int pc_task_package(pc_job *j);
int pc_task_thumbs(pc_job *j);
int pc_task_sign(pc_job *j);
int pc_task_publish(pc_job *j);

#endif
