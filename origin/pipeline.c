/*
 * Scheduler and worker pools; see pipeline.h.
 *
 * Two pools: heavy workers (decode/encode: probe, encode, audio; one per CPU
 * by default) and one light worker (plan, thumbs, package, sign, publish,
 * subtitles),
 * so bookkeeping never waits behind an encode. A slot is claimed from the
 * queue only when a worker of its class is idle, so the lease clock starts
 * when work starts.
 */
#include "pipeline.h"
#include "subs_text.h"
#include "subtitles.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "media.h"
#include "pc_fs.h"
#include "pc_json.h"
#include "pc_log.h"
#include "pc_media_token.h"

#define MAX_BACKOFF_MS (5 * 60 * 1000)
#define BASE_BACKOFF_MS 2000
#define SUSPECT_INTERRUPTED 2 /* runs of one task cut short by the process dying before it runs alone */
#define MAX_INTERRUPTED 5     /* ... and before its video fails */

struct pool {
    pthread_t *threads;
    int n;
    int busy; /* loop thread's view: jobs dispatched and not yet completed */
    pc_job *head, *tail; /* pending, guarded by mu */
};

#define MAX_RUNNING 256
#define RECORD_TRIES 30 /* ticks a finished job's completion may wait for a failing database before it runs again (a
                         * lock another program holds is waited out however long it lasts) */

struct pc_pipeline {
    pc_origin *o;
    char media_key_id[17];        /* env.media_key_id's storage */
    pc_job *running[MAX_RUNNING]; /* dispatched jobs, loop thread only */
    pc_job *alone;                /* a task that runs with nothing beside it (dispatch) */
    int suspects;                 /* ready tasks cut short SUSPECT_INTERRUPTED times or more */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pool pools[2];
    pc_job *done; /* completed, guarded by mu */
    pc_job *later; /* completed, whose recording waits for the database (loop thread only; still tracked) */
    int stopping; /* guarded by mu for workers */
    uv_async_t async;
    uv_timer_t tick;
    uv_timer_t kick;
    pc_job_env env;
    uint64_t last_renew;
    void (*stop_cb)(void *);
    void *stop_arg;
    int handles_open;
    int started;
    pc_pipeline_stats stats; /* loop thread only */
};


static int64_t now_ms(void)
{
    return pc_origin_now_ms();
}

int pc_job_fail(pc_job *j, int err, int permanent, const char *code, const char *fmt, ...)
{
    j->err = err != 0 ? err : PC_EINTERNAL;
    j->permanent = permanent;
    snprintf(j->err_code, sizeof(j->err_code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err_msg, sizeof(j->err_msg), fmt, ap);
    va_end(ap);
    return j->err;
}

static void job_free(pc_job *j)
{
    if (j == NULL)
        return;
    free(j->source);
    free(j->work_dir);
    free(j->out_dir);
    free(j->media_dir);
    free(j->info);
    free(j->plan);
    free(j->inputs);
    free(j->result);
    free(j);
}

static int task_class(const char *kind)
{
    return strcmp(kind, "plan") == 0 || strcmp(kind, "package") == 0 || strcmp(kind, "sign") == 0 ||
                   strcmp(kind, "publish") == 0 || strcmp(kind, "thumbs") == 0 || strcmp(kind, "subtitles") == 0
               ? PC_TASK_LIGHT
               : PC_TASK_HEAVY;
}

static const struct {
    const char *kind;
    int (*fn)(pc_job *);
} tasks[PC_PIPELINE_KINDS] = {
    {"probe", pc_task_probe},     {"plan", pc_task_plan},       {"encode", pc_task_encode},
    {"audio", pc_task_audio},     {"package", pc_task_package}, {"thumbs", pc_task_thumbs},
    {"sign", pc_task_sign},       {"publish", pc_task_publish}, {"subtitles", pc_task_subtitles},
};

/* The index of |kind| in tasks[], or -1. */
static int kind_index(const char *kind)
{
    for (int i = 0; i < PC_PIPELINE_KINDS; i++)
        if (strcmp(tasks[i].kind, kind) == 0)
            return i;
    return -1;
}

static int run_job(pc_job *j)
{
    int k = kind_index(j->kind);
    if (k >= 0)
        return tasks[k].fn(j);
    return pc_job_fail(j, PC_EINTERNAL, 1, "internal_error", "unknown task kind '%s'", j->kind);
}

struct worker_arg {
    pc_pipeline *p;
    int cls;
};

static void *worker_main(void *arg)
{
    struct worker_arg *wa = arg;
    pc_pipeline *p = wa->p;
    struct pool *pool = &p->pools[wa->cls];
    int cls = wa->cls;
    free(wa);
    /* tests: a job waits this long in the queue before a worker takes it (a stop then finds it there) */
    const char *delay = getenv("PEERCDN_TEST_PICKUP_DELAY_MS");
    int delay_ms = delay != NULL ? atoi(delay) : 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (pool->head == NULL && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (pool->head == NULL && p->stopping)
            break;
        if (delay_ms > 0) {
            pthread_mutex_unlock(&p->mu);
            usleep((useconds_t)delay_ms * 1000);
            pthread_mutex_lock(&p->mu);
            if (pool->head == NULL)
                continue;
        }
        pc_job *j = pool->head;
        pool->head = j->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        j->next = NULL;
        pthread_mutex_unlock(&p->mu);
        if (!pc_job_canceled(j))
            run_job(j);
        else /* never ran: released, not completed (complete_job), so it runs after a restart */
            pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled before it started");
        pthread_mutex_lock(&p->mu);
        j->next = p->done;
        p->done = j;
        uv_async_send(&p->async);
        if (cls == PC_TASK_HEAVY && pool->head == NULL) {
            /* a decode and six encoders of a large source leave hundreds of MB free in this thread's arena,
             * which glibc keeps (an origin idle after one 8K upload stayed at 400 MB resident): handed back
             * once the job is, and not between the chunks of a busy queue, since it takes every arena's lock */
            pthread_mutex_unlock(&p->mu);
            malloc_trim(0);
            pthread_mutex_lock(&p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

pc_pipeline *pc_pipeline_new(pc_origin *o)
{
    pc_pipeline *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->o = o;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->env.preset = o->cfg.preset;
    p->env.segment_seconds = o->cfg.segment_seconds;
    p->env.gop_seconds = 2.0;
    p->env.workers = o->cfg.workers;
    p->env.x264_threads = o->cfg.x264_threads > 0 ? o->cfg.x264_threads : 1;
    p->env.crf = o->cfg.crf;
    p->env.origin_sk = o->origin_sk;
    p->env.origin_pk = o->origin_pk;
    p->env.tracker_url = o->cfg.tracker_url;
    p->env.tracker_key_b64 = o->cfg.tracker_key;
    if (o->cfg.signed_media) {
        pc_media_key_id(o->media_key, p->media_key_id);
        p->env.media_key_id = p->media_key_id;
    }
    p->pools[PC_TASK_HEAVY].n = o->cfg.workers;
    p->pools[PC_TASK_LIGHT].n = 1;
    return p;
}

static void track(pc_pipeline *p, pc_job *j)
{
    for (int i = 0; i < MAX_RUNNING; i++)
        if (p->running[i] == NULL) {
            p->running[i] = j;
            return;
        }
}

static void untrack(pc_pipeline *p, pc_job *j)
{
    for (int i = 0; i < MAX_RUNNING; i++)
        if (p->running[i] == j)
            p->running[i] = NULL;
}

static char *path_join(const char *a, const char *b, const char *c)
{
    char *s = NULL;
    if (asprintf(&s, "%s/%s%s%s", a, b, c != NULL ? "/" : "", c != NULL ? c : "") < 0)
        return NULL;
    return s;
}

static void fail_video(pc_pipeline *p, pc_job *j, const char *code, const char *msg);

/* Builds the job for a claimed task; NULL if the video vanished. */
static pc_job *make_job(pc_pipeline *p, const pc_task *t)
{
    pc_origin *o = p->o;
    pc_video v;
    if (pc_db_video_get(o->db, t->video_id, &v) != 0)
        return NULL;
    pc_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        pc_video_clear(&v);
        return NULL;
    }
    j->task_id = t->id;
    memcpy(j->video_id, t->video_id, sizeof(j->video_id));
    snprintf(j->kind, sizeof(j->kind), "%s", t->kind);
    j->arg = t->arg;
    j->attempt = t->attempts;
    j->weight = t->weight;
    j->env = &p->env;
    j->source = v.source;
    v.source = NULL;
    j->info = v.info;
    v.info = NULL;
    j->plan = v.plan;
    v.plan = NULL;
    j->work_dir = path_join(o->paths_work, t->video_id, NULL);
    j->out_dir = path_join(o->paths_work, t->video_id, "out");
    j->media_dir = path_join(o->paths_media, t->video_id, NULL);
    j->inputs = pc_taskq_dep_results(o->db, t->id);
    if (strcmp(v.state, "queued") == 0 && pc_db_video_set_state(o->db, t->video_id, "processing", now_ms()) != 0)
        PC_LOGW("pipeline", "cannot mark %s processing", t->video_id);
    pc_video_clear(&v);
    return j;
}

static int running_count(const pc_pipeline *p)
{
    int n = 0;
    for (int i = 0; i < MAX_RUNNING; i++)
        n += p->running[i] != NULL;
    return n;
}

/* Hands the claimed task |t| to a worker of |cls| (|alone|: nothing else runs beside it). 0, or -1 when it
 * could not (try again later). */
static int start_claimed(pc_pipeline *p, int cls, const pc_task *t, int alone)
{
    struct pool *pool = &p->pools[cls];
    pc_job *j = make_job(p, t);
    if (j == NULL) {
        /* the video vanished or memory ran out: try again on a later tick, not in a tight loop */
        if (pc_taskq_retry(p->o->db, t->id, now_ms() + BASE_BACKOFF_MS, "internal_error", "job not built", now_ms()) != 0)
            PC_LOGW("pipeline", "cannot release task %" PRId64, t->id);
        return -1;
    }
    j->dispatched_ms = now_ms();
    if (t->interrupted >= MAX_INTERRUPTED) {
        /* the origin died while this ran alone, again and again: the task itself kills it (a decoder crash
         * on this input, say); the video fails instead of taking the origin down at every start */
        char msg[256];
        snprintf(msg, sizeof(msg), "the origin stopped %d times while %s %d ran (%d of them with nothing else running)",
                 t->interrupted, t->kind, t->arg, MAX_INTERRUPTED - SUSPECT_INTERRUPTED);
        fail_video(p, j, "interrupted", msg);
        job_free(j);
        return 0;
    }
    if (alone)
        PC_LOGW("pipeline", "video %s: %s %d runs alone: the origin stopped %d times while it ran", t->video_id, t->kind,
                t->arg, t->interrupted);
    else if (strcmp(t->kind, "encode") == 0)
        PC_LOGI("pipeline", "video %s: encode chunk %d started (attempt %d)", t->video_id, t->arg, t->attempts);
    else
        PC_LOGI("pipeline", "video %s: %s started (attempt %d)", t->video_id, t->kind, t->attempts);
    if (alone)
        p->alone = j;
    pool->busy++;
    track(p, j);
    pthread_mutex_lock(&p->mu);
    if (pool->tail != NULL)
        pool->tail->next = j;
    else
        pool->head = j;
    pool->tail = j;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static void dispatch(pc_pipeline *p)
{
    if (p->stopping || p->alone != NULL)
        return;
    /* A start counts an interruption against every task that was running (the process died: one of them
     * may be why). A task cut short SUSPECT_INTERRUPTED times runs alone, once what runs has finished, so
     * that a death while it runs is its own: one that kills the process is failed after MAX_INTERRUPTED,
     * and the tasks beside it at the first deaths are not blamed (they were, before: 5 deaths failed every
     * video being processed). */
    if (p->suspects > 0) {
        if (running_count(p) > 0)
            return;
        for (int cls = 0; cls < 2; cls++) {
            pc_task t;
            if (pc_taskq_claim_interrupted(p->o->db, cls, p->o->instance, now_ms(), p->o->cfg.lease_ms,
                                           SUSPECT_INTERRUPTED, &t) == 0) {
                p->suspects--;
                if (start_claimed(p, cls, &t, 1) == 0 && p->alone != NULL)
                    return;
            }
        }
        if (p->alone != NULL)
            return;
        p->suspects = pc_taskq_count_interrupted(p->o->db, SUSPECT_INTERRUPTED);
        if (p->suspects > 0)
            return; /* not ready yet */
    }
    for (int cls = 0; cls < 2; cls++) {
        struct pool *pool = &p->pools[cls];
        while (pool->busy < pool->n) {
            pc_task t;
            if (pc_taskq_claim(p->o->db, cls, p->o->instance, now_ms(), p->o->cfg.lease_ms, &t) != 0 ||
                start_claimed(p, cls, &t, 0) != 0)
                break;
        }
    }
}

/* Expands the DAG after the plan: encode chunks, audio, thumbs → package → sign → publish. */
static int expand_plan(pc_pipeline *p, const char *video, const char *plan_json, int64_t now)
{
    json_t *plan = json_loads(plan_json, 0, NULL);
    if (plan == NULL)
        return PC_EPARSE;
    pc_db *db = p->o->db;
    json_t *chunks = json_object_get(plan, "chunks");
    size_t nchunks = json_array_size(chunks);
    double pixels = 0;
    json_t *r;
    size_t i;
    json_array_foreach(json_object_get(plan, "rungs"), i, r)
    {
        pixels += (double)json_integer_value(json_object_get(r, "width")) * (double)json_integer_value(json_object_get(r, "height"));
    }
    double dur = json_number_value(json_object_get(plan, "duration"));
    int64_t *deps = calloc(nchunks + 3, sizeof(int64_t));
    if (deps == NULL) {
        json_decref(plan);
        return PC_ENOMEM;
    }
    size_t nd = 0;
    int rc = 0;
    json_t *c;
    json_array_foreach(chunks, i, c)
    {
        double cd = json_number_value(json_object_get(c, "duration"));
        pc_task_spec s = {"encode", (int)i, PC_TASK_HEAVY, 30, cd * pixels / (1280.0 * 720.0) + 0.1};
        if (rc == 0)
            rc = pc_taskq_add(db, video, &s, NULL, 0, now, &deps[nd++]);
    }
    /* thumbnails are captured by the encode chunks; the thumbs task only assembles them */
    int64_t thumbs = 0, package = 0, sign = 0, publish = 0;
    pc_task_spec ts = {"thumbs", 0, PC_TASK_LIGHT, 45, dur * 0.005 + 0.2};
    if (rc == 0)
        rc = pc_taskq_add(db, video, &ts, deps, nd, now, &thumbs);
    if (rc == 0 && json_is_object(json_object_get(plan, "audio"))) {
        pc_task_spec s = {"audio", 0, PC_TASK_HEAVY, 40, dur * 0.05 + 0.1};
        rc = pc_taskq_add(db, video, &s, NULL, 0, now, &deps[nd++]);
    }
    if (rc == 0 && json_array_size(json_object_get(plan, "subtitles")) > 0) {
        pc_task_spec s = {"subtitles", 0, PC_TASK_LIGHT, 40, dur * 0.002 + 0.1};
        rc = pc_taskq_add(db, video, &s, NULL, 0, now, &deps[nd++]);
    }
    pc_task_spec ps = {"package", 0, PC_TASK_LIGHT, 45, dur * 0.01 + 0.2};
    pc_task_spec ss = {"sign", 0, PC_TASK_LIGHT, 45, dur * 0.01 + 0.2};
    pc_task_spec us = {"publish", 0, PC_TASK_LIGHT, 45, 0.2};
    if (rc == 0)
        rc = pc_taskq_add(db, video, &ps, deps, nd, now, &package);
    /* sign hashes every published file, thumbnails included */
    int64_t sign_deps[2] = {package, thumbs};
    if (rc == 0)
        rc = pc_taskq_add(db, video, &ss, sign_deps, 2, now, &sign);
    if (rc == 0)
        rc = pc_taskq_add(db, video, &us, &sign, 1, now, &publish);
    free(deps);
    json_decref(plan);
    return rc;
}

/* Counts a finished job of its kind under |outcome| (done, retried or failed), with the time it ran. */
static void count_job(pc_pipeline *p, const pc_job *j, uint64_t *outcome)
{
    int k = kind_index(j->kind);
    if (k < 0)
        return;
    outcome[k]++;
    int64_t ran = now_ms() - j->dispatched_ms;
    p->stats.seconds[k] += ran > 0 ? (double)ran / 1000 : 0;
}

/* A revision that cannot finish is given up: the video stays ready with the publication it has, the
 * tracks the revision would have added leave the plan (their files removed), one it would have removed
 * stays, and the error is noted on
 * the video (the API shows it). Its copy of the publication stays in the work directory until the next
 * revision or publish clears it. */
static void fail_revision(pc_pipeline *p, pc_job *j, const char *code, const char *msg)
{
    pc_db *db = p->o->db;
    PC_LOGW("pipeline", "video %s: revision %d failed in %s: %s (%s); the video keeps its publication", j->video_id,
            j->arg, j->kind, msg, code);
    pc_video v;
    int r = pc_db_begin(db);
    if (r == 0 && (r = pc_db_video_get(db, j->video_id, &v)) == 0) {
        json_t *plan = v.plan != NULL ? json_loads(v.plan, 0, NULL) : NULL;
        json_t *subs = json_object_get(plan, "subtitles"), *kept = json_array();
        json_t *e;
        size_t i;
        json_array_foreach(subs, i, e)
        {
            if (pc_json_int(e, "removed", 0) == j->arg) /* a removal given up: the track stays */
                json_object_del(e, "removed");
            if (pc_json_int(e, "added", 0) != j->arg)
                json_array_append(kept, e);
            else if (unlink(json_string_value(json_object_get(e, "file"))) != 0 && errno != ENOENT)
                PC_LOGW("pipeline", "cannot remove %s", json_string_value(json_object_get(e, "file")));
        }
        char *text = NULL;
        if (plan == NULL || json_object_set(plan, "subtitles", kept) != 0 || (text = pc_json_dump(plan)) == NULL)
            r = PC_ENOMEM;
        if (r == 0)
            r = pc_db_video_set_field(db, j->video_id, "plan", text, now_ms());
        if (r == 0)
            r = pc_taskq_drop_revision(db, j->video_id, j->arg);
        if (r == 0)
            r = pc_db_video_note(db, j->video_id, code, msg, now_ms());
        free(text);
        json_decref(kept);
        json_decref(plan);
        pc_video_clear(&v);
    }
    if (r == 0)
        r = pc_db_commit(db);
    if (r != 0) {
        pc_db_rollback(db);
        PC_LOGE("pipeline", "cannot give up revision %d of %s: %s", j->arg, j->video_id, pc_strerror(r));
    }
}

static void fail_video(pc_pipeline *p, pc_job *j, const char *code, const char *msg)
{
    count_job(p, j, p->stats.failed);
    if (pc_job_is_revision(j)) {
        fail_revision(p, j, code, msg);
        return;
    }
    PC_LOGW("pipeline", "video %s failed in %s: %s (%s)", j->video_id, j->kind, msg, code);
    if (pc_db_video_fail(p->o->db, j->video_id, code, msg, now_ms()) != 0)
        PC_LOGE("pipeline", "cannot record the failure of %s", j->video_id);
    pc_pipeline_cancel_video(p, j->video_id); /* its other tasks stop wasting workers */
}

/* 1 when |j|'s video was deleted while the job ran, after removing what the job may have written after
 * the DELETE's own removal: a chunk makes its rung directories as it starts, a publish renames the output
 * into media/. Nothing would remove those before the next start. */
static int video_gone(pc_pipeline *p, const pc_job *j)
{
    pc_video v;
    int r = pc_db_video_get(p->o->db, j->video_id, &v);
    if (r == 0)
        pc_video_clear(&v);
    if (r != PC_ENOENT)
        return 0;
    if (pc_media_clear_outputs(p->o->media, j->video_id) != 0)
        PC_LOGW("pipeline", "cannot remove what deleted video %s left", j->video_id);
    return 1;
}

/* Records finished job |j| (its result, or its failure); 1 when that must be tried again later (the
 * database locked), |j| kept. */
static int complete_job(pc_pipeline *p, pc_job *j)
{
    pc_db *db = p->o->db;
    int64_t now = now_ms();
    if (pc_job_canceled(j) && video_gone(p, j))
        return 0; /* its rows are gone: nothing to record */
    if (pc_job_canceled(j) && j->err != 0) {
        /* interrupted by a shutdown (re-run after restart); a job that finished despite the flag is
         * recorded below, its work is not thrown away */
        if (pc_taskq_release(db, j->task_id, now) != 0)
            PC_LOGW("pipeline", "cannot release task %" PRId64, j->task_id);
        return 0;
    }
    /* a revision's copy takes the publication's place here, on the loop, with the media caches dropped in
     * the same step: a request sees the old publication or the new one, never new files with old ETags
     * (a crash before the completion is recorded: publish runs again and finds the swap done) */
    if (j->err == 0 && j->swap) {
        int sr = pc_media_swap_in(p->o->media, j->video_id, j->out_dir, j->work_dir);
        if (sr != 0)
            pc_job_fail(j, sr, 0, "io_error", "cannot swap the revision in: %s", pc_strerror(sr));
        j->swap = 0; /* done: a completion recorded later (below) must not swap it back */
    }
    if (j->err != 0) {
        if (j->permanent) {
            fail_video(p, j, j->err_code, j->err_msg);
            return 0;
        }
        pc_task t;
        memset(&t, 0, sizeof(t));
        if (j->attempt >= 5) {
            char msg[400];
            snprintf(msg, sizeof(msg), "%s failed %d times; last error: %s", j->kind, j->attempt, j->err_msg);
            fail_video(p, j, j->err_code, msg);
            return 0;
        }
        int64_t backoff = (int64_t)BASE_BACKOFF_MS << (j->attempt - 1 < 8 ? j->attempt - 1 : 8);
        if (backoff > MAX_BACKOFF_MS)
            backoff = MAX_BACKOFF_MS;
        PC_LOGW("pipeline", "video %s: %s %d failed (%s: %s); retrying in %" PRId64 " ms", j->video_id, j->kind,
                j->arg, j->err_code, j->err_msg, backoff);
        count_job(p, j, p->stats.retried);
        if (pc_taskq_retry(db, j->task_id, now + backoff, j->err_code, j->err_msg, now) != 0)
            PC_LOGE("pipeline", "cannot schedule a retry of task %" PRId64, j->task_id);
        return 0;
    }
    int rc = pc_db_begin(db);
    if (rc == 0) {
        if (strcmp(j->kind, "probe") == 0)
            rc = pc_db_video_set_field(db, j->video_id, "info", j->result, now);
        else if (strcmp(j->kind, "plan") == 0) {
            rc = pc_db_video_set_field(db, j->video_id, "plan", j->result, now);
            if (rc == 0)
                rc = expand_plan(p, j->video_id, j->result, now);
        } else if (strcmp(j->kind, "publish") == 0) {
            rc = pc_db_video_set_field(db, j->video_id, "result", j->result, now);
            if (rc == 0)
                rc = pc_db_video_set_state(db, j->video_id, "ready", now);
            if (rc == 0 && pc_job_is_revision(j)) /* a revision that failed before this one is history */
                rc = pc_db_video_note(db, j->video_id, NULL, NULL, now);
        }
        if (rc == 0)
            rc = pc_taskq_complete(db, j->task_id, strcmp(j->kind, "plan") == 0 || strcmp(j->kind, "probe") == 0 ? NULL : j->result, now);
        if (rc == 0)
            rc = pc_db_commit(db);
        if (rc != 0)
            pc_db_rollback(db);
    }
    if (rc == PC_ECONFLICT) {
        /* the task is no longer running: its video failed or was retried, or (a bug) it was reclaimed; its
         * result, and a plan's DAG, are not recorded a second time */
        PC_LOGW("pipeline", "video %s: %s %d finished, but the task is no longer running; its result is dropped",
                j->video_id, j->kind, j->arg);
        return 0;
    }
    if (rc != 0 && pc_db_took_busy(db)) {
        /* another program holds the lock (an operator's sqlite3, a backup): the result waits in memory for as
         * long as the lock lasts, the task still leased to us, and is recorded at a later tick */
        if (!j->record_locked)
            PC_LOGW("pipeline", "task %" PRId64 " finished; its completion waits for the database, which another "
                                "program holds locked", j->task_id);
        j->record_locked = 1;
        return 1;
    }
    if (rc != 0 && ++j->record_tries < RECORD_TRIES) {
        /* the database is locked (an operator's sqlite3, a backup) or failing: the result waits in memory
         * and is recorded at a later tick, the task still leased to us. Before, the task ran again. */
        PC_LOGW("pipeline", "cannot record completion of task %" PRId64 " yet (try %d); trying again at the next tick",
                j->task_id, j->record_tries);
        return 1;
    }
    if (rc != 0) {
        PC_LOGE("pipeline", "cannot record completion of task %" PRId64 "; it will run again", j->task_id);
        if (pc_taskq_retry(db, j->task_id, now + BASE_BACKOFF_MS, "database_error", "completion not recorded", now) != 0)
            PC_LOGE("pipeline", "cannot reschedule task %" PRId64, j->task_id);
        return 0;
    }
    count_job(p, j, p->stats.done);
    if (strcmp(j->kind, "publish") == 0) {
        pc_media_forget(p->o->media, j->video_id);
        if (video_gone(p, j)) /* deleted while publishing: the rename may have landed after the deletion's */
            return 0;
        PC_LOGI("pipeline", "video %s is ready", j->video_id);
    }
    return 0;
}

static void finish_stop(pc_pipeline *p);

/* Records untracked job |j| and frees it, or, when the database will not take it yet, keeps it tracked
 * (still ours: its lease is renewed and nobody reclaims it) in p->later for the next tick. */
static void record(pc_pipeline *p, pc_job *j)
{
    if (complete_job(p, j) != 0) {
        track(p, j);
        j->next = p->later;
        p->later = j;
    } else {
        job_free(j);
    }
}

/* Records the jobs waiting in p->later; those the database still refuses wait on. */
static void record_later(pc_pipeline *p)
{
    pc_job *list = p->later;
    p->later = NULL;
    while (list != NULL) {
        pc_job *j = list;
        list = j->next;
        untrack(p, j);
        record(p, j);
    }
}

static void on_async(uv_async_t *a)
{
    pc_pipeline *p = a->data;
    pthread_mutex_lock(&p->mu);
    pc_job *list = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->mu);
    while (list != NULL) {
        pc_job *j = list;
        list = j->next;
        untrack(p, j);
        p->pools[task_class(j->kind)].busy--;
        if (j == p->alone) {
            p->alone = NULL;
            /* it ran alone to an end without the process dying: not what killed it (a stop cut it short:
             * no verdict) */
            if (!(pc_job_canceled(j) && j->err != 0) && pc_taskq_clear_interrupted(p->o->db, j->task_id) != 0)
                PC_LOGW("pipeline", "cannot clear the interruptions of task %" PRId64, j->task_id);
        }
        record(p, j);
    }
    if (p->stopping) {
        if (p->pools[0].busy == 0 && p->pools[1].busy == 0)
            finish_stop(p);
        return;
    }
    dispatch(p);
}

static void on_tick(uv_timer_t *t)
{
    pc_pipeline *p = t->data;
    uint64_t now = (uint64_t)now_ms();
    if (now - p->last_renew >= (uint64_t)p->o->cfg.lease_ms / 3) {
        p->last_renew = now;
        for (int i = 0; i < MAX_RUNNING; i++)
            if (p->running[i] != NULL &&
                pc_taskq_renew(p->o->db, p->running[i]->task_id, p->o->instance, (int64_t)now, p->o->cfg.lease_ms) != 0 &&
                !pc_db_took_busy(p->o->db)) /* a lock another program holds: the claims say so, once */
                PC_LOGW("pipeline", "cannot renew the lease of task %" PRId64, p->running[i]->task_id);
        int64_t keep[MAX_RUNNING];
        size_t nkeep = 0;
        for (int i = 0; i < MAX_RUNNING; i++)
            if (p->running[i] != NULL)
                keep[nkeep++] = p->running[i]->task_id;
        int n = pc_taskq_reclaim(p->o->db, (int64_t)now, 0, keep, nkeep);
        if (n > 0)
            PC_LOGW("pipeline", "reclaimed %d tasks whose lease expired", n);
    }
    if (p->later != NULL)
        record_later(p);
    dispatch(p);
}

int pc_pipeline_start(pc_pipeline *p)
{
    /* the data-directory lock proves no other origin runs these tasks: reclaim them all now */
    int n = pc_taskq_reclaim(p->o->db, now_ms(), 1, NULL, 0);
    if (n > 0)
        PC_LOGI("pipeline", "resuming %d tasks interrupted by a previous run", n);
    p->suspects = pc_taskq_count_interrupted(p->o->db, SUSPECT_INTERRUPTED);
    if (uv_async_init(p->o->loop, &p->async, on_async) != 0)
        return PC_EINTERNAL;
    p->async.data = p;
    uv_timer_init(p->o->loop, &p->tick);
    p->tick.data = p;
    uv_timer_init(p->o->loop, &p->kick);
    p->kick.data = p;
    p->handles_open = 3;
    /* started from here: a start that fails below is stopped as any other (pc_pipeline_stop), which
     * joins the threads it made and closes the handles (before, its caller's loop waited on them for
     * good, and the pool was freed under the threads; found by review) */
    p->started = 1;
    int want[2] = {p->pools[0].n, p->pools[1].n};
    p->pools[0].n = p->pools[1].n = 0; /* threads made so far */
    for (int cls = 0; cls < 2; cls++)
        if ((p->pools[cls].threads = calloc((size_t)want[cls], sizeof(pthread_t))) == NULL)
            return PC_ENOMEM;
    for (int cls = 0; cls < 2; cls++) {
        struct pool *pool = &p->pools[cls];
        while (pool->n < want[cls]) {
            struct worker_arg *wa = malloc(sizeof(*wa));
            if (wa == NULL)
                return PC_ENOMEM;
            wa->p = p;
            wa->cls = cls;
            int rc = pthread_create(&pool->threads[pool->n], NULL, worker_main, wa);
            if (rc != 0) {
                free(wa);
                pc_err_detail_set("cannot start %s worker thread %d of %d: %s", cls == PC_TASK_HEAVY ? "heavy" : "light",
                                  pool->n + 1, want[cls], strerror(rc));
                return PC_EINTERNAL;
            }
            pool->n++;
        }
    }
    uv_timer_start(&p->tick, on_tick, 250, 250);
    dispatch(p);
    return 0;
}

static void on_kick(uv_timer_t *t)
{
    dispatch(t->data);
}

/* A subtitle change in the making: the video, its plan, the last package task (its id and arg: the
 * revision before) and the thumbs task. */
typedef struct revision {
    pc_video v;
    json_t *plan; /* with a "subtitles" array */
    int64_t pkg, thumbs;
    int last;
} revision;

static void revision_clear(revision *rv)
{
    json_decref(rv->plan);
    rv->plan = NULL;
    pc_video_clear(&rv->v);
}

/* What adding and removing a subtitle track share: video |id| loaded into |rv| and checked (ready, no
 * revision under way). 0, or an error with |code| and |msg| (|rv| then cleared). */
static int revision_begin(pc_pipeline *p, const char *id, revision *rv, const char **code, char *msg, size_t msglen)
{
    pc_db *db = p->o->db;
    int64_t unfinished = 0;
    pc_video *v = &rv->v;
    json_t **plan = &rv->plan;
    *plan = NULL;
    int r = pc_db_video_get(db, id, v);
    if (r != 0) {
        *code = r == PC_ENOENT ? "not_found" : "database_error";
        snprintf(msg, msglen, r == PC_ENOENT ? "no such video" : "cannot read the video");
        return r;
    }
    if (strcmp(v->state, "ready") != 0) {
        *code = "not_ready";
        snprintf(msg, msglen, "subtitle tracks change on a ready video; this one is %s", v->state);
        r = PC_ECONFLICT;
    } else if ((r = pc_taskq_unfinished(db, id, &unfinished)) != 0 ||
               (r = pc_taskq_last_package(db, id, &rv->pkg, &rv->last, &rv->thumbs)) != 0) {
        *code = "database_error";
        snprintf(msg, msglen, "cannot read the video's tasks");
    } else if (unfinished > 0 || pc_pipeline_video_busy(p, id)) {
        *code = "busy";
        snprintf(msg, msglen, "the video is being published again (a change before); retry once it is done");
        r = PC_ECONFLICT;
    } else if ((*plan = v->plan != NULL ? json_loads(v->plan, 0, NULL) : NULL) == NULL) {
        *code = "internal_error";
        snprintf(msg, msglen, "the video has no plan");
        r = PC_EINTERNAL;
    } else if (!json_is_array(json_object_get(*plan, "subtitles")) &&
               json_object_set_new(*plan, "subtitles", json_array()) != 0) {
        *code = "out_of_memory";
        snprintf(msg, msglen, "out of memory");
        r = PC_ENOMEM;
    }
    if (r != 0)
        revision_clear(rv);
    return r;
}

/* Stores |plan| and queues revision |rev| of video |id| in one transaction: the subtitles task, then
 * package with the last package's inputs (encoded chunks, audio) but the new subtitles task in place of
 * its own, sign with the thumbnails as before, publish. */
static int revision_queue(pc_pipeline *p, const char *id, const revision *rv, const char **code, char *msg, size_t msglen)
{
    const json_t *plan = rv->plan;
    int64_t pkg = rv->pkg, thumbs = rv->thumbs;
    int rev = rv->last + 1;
    pc_db *db = p->o->db;
    size_t nchunks = json_array_size(json_object_get(plan, "chunks")), nd = 0;
    int64_t *deps = calloc(nchunks + 4, sizeof(*deps));
    char *text = pc_json_dump(plan);
    if (deps == NULL || text == NULL) {
        free(deps);
        free(text);
        *code = "out_of_memory";
        snprintf(msg, msglen, "out of memory");
        return PC_ENOMEM;
    }
    double dur = pc_json_num(plan, "duration", 0);
    pc_task_spec ss = {"subtitles", rev, PC_TASK_LIGHT, 40, dur * 0.002 + 0.1};
    pc_task_spec ps = {"package", rev, PC_TASK_LIGHT, 45, dur * 0.01 + 0.2};
    pc_task_spec gs = {"sign", rev, PC_TASK_LIGHT, 45, dur * 0.01 + 0.2};
    pc_task_spec us = {"publish", rev, PC_TASK_LIGHT, 45, 0.2};
    int64_t now = now_ms(), st_id = 0, pk_id = 0, sg_id = 0;
    int r = pc_db_begin(db);
    if (r == 0)
        r = pc_taskq_deps_of(db, pkg, "subtitles", deps, nchunks + 3, &nd);
    if (r == 0)
        r = pc_db_video_set_field(db, id, "plan", text, now);
    if (r == 0)
        r = pc_taskq_add(db, id, &ss, NULL, 0, now, &st_id);
    if (r == 0) {
        deps[nd++] = st_id;
        r = pc_taskq_add(db, id, &ps, deps, nd, now, &pk_id);
    }
    int64_t sign_deps[2] = {pk_id, thumbs};
    if (r == 0)
        r = pc_taskq_add(db, id, &gs, sign_deps, 2, now, &sg_id);
    if (r == 0)
        r = pc_taskq_add(db, id, &us, &sg_id, 1, now, NULL);
    if (r == 0)
        r = pc_db_commit(db);
    if (r != 0) {
        pc_db_rollback(db);
        *code = "database_error";
        snprintf(msg, msglen, "cannot queue the revision");
    }
    free(deps);
    free(text);
    if (r == 0)
        pc_pipeline_kick(p);
    return r;
}

int pc_pipeline_add_subtitles(pc_pipeline *p, const char *id, const void *body, size_t len, const char *language,
                              const char *title, const char **code, char *msg, size_t msglen)
{
    revision rv;
    json_t *entry = NULL;
    int r = revision_begin(p, id, &rv, code, msg, msglen);
    if (r != 0)
        return r;
    char path[4200] = "";
    json_t *subs = json_object_get(rv.plan, "subtitles"), *e;
    size_t i, live = 0;
    json_array_foreach(subs, i, e)
        live += json_object_get(e, "removed") == NULL;
    if (live >= PC_SUBS_MAX || json_array_size(subs) >= 4 * PC_SUBS_MAX) {
        *code = "too_many_subtitles";
        if (live >= PC_SUBS_MAX)
            snprintf(msg, msglen, "the video has %d subtitle tracks, the most it can have", PC_SUBS_MAX);
        else
            snprintf(msg, msglen, "the video's plan has had %d subtitle tracks, taken-out ones included, the most it "
                                  "can have", 4 * PC_SUBS_MAX);
        r = PC_ECONFLICT;
        goto out;
    }
    const char *problem = pc_subs_body_problem(body, len);
    if (problem != NULL) {
        *code = "bad_subtitles";
        snprintf(msg, msglen, "%s", problem);
        r = PC_EINVAL;
        goto out;
    }
    int rev = rv.last + 1;
    /* kept beside the original upload (DELETE removes both); checked before anything is queued */
    snprintf(path, sizeof(path), "%s.sub%d", rv.v.source, rev);
    if ((r = pc_write_file(path, body, len)) != 0) {
        *code = "io_error";
        snprintf(msg, msglen, "cannot store the file: %s", pc_strerror(r));
        path[0] = '\0';
        goto out;
    }
    char why[160];
    json_t *live_subs = json_array(); /* the name is unique among the tracks the video keeps */
    json_array_foreach(subs, i, e)
        if (json_object_get(e, "removed") == NULL)
            json_array_append(live_subs, e);
    entry = pc_subs_added_entry(live_subs, path, language, title, rev, rv.plan, why, sizeof(why));
    json_decref(live_subs);
    if (entry == NULL) {
        *code = "bad_subtitles";
        snprintf(msg, msglen, "%s", why);
        r = PC_EINVAL;
        goto out;
    }
    if (json_array_append(subs, entry) != 0) {
        *code = "out_of_memory";
        snprintf(msg, msglen, "out of memory");
        r = PC_ENOMEM;
        goto out;
    }
    if ((r = revision_queue(p, id, &rv, code, msg, msglen)) != 0)
        goto out;
    PC_LOGI("pipeline", "video %s: subtitle file added (%s, \"%s\"); revision %d queued", id,
            json_string_value(json_object_get(entry, "language")), json_string_value(json_object_get(entry, "name")), rev);
    path[0] = '\0'; /* kept */
out:
    if (path[0] != '\0' && unlink(path) != 0 && errno != ENOENT)
        PC_LOGW("pipeline", "cannot remove %s", path);
    json_decref(entry);
    revision_clear(&rv);
    return r;
}

int pc_pipeline_remove_subtitles(pc_pipeline *p, const char *id, const char *track, const char **code, char *msg,
                                 size_t msglen)
{
    revision rv;
    json_t *res = NULL;
    int r = revision_begin(p, id, &rv, code, msg, msglen);
    if (r != 0)
        return r;
    /* the published track's entry in the plan: the last subtitles task says which (a track that could
     * not be read has none, so ids and entries need not line up) */
    char *text = pc_taskq_result(p->o->db, id, "subtitles", rv.last);
    res = text != NULL ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_t *t, *subs = json_object_get(rv.plan, "subtitles"), *e = NULL;
    size_t i;
    json_array_foreach(json_object_get(res, "tracks"), i, t)
    {
        const char *tid = json_string_value(json_object_get(t, "id"));
        json_t *en = json_object_get(t, "entry");
        if (tid != NULL && strcmp(tid, track) == 0 && json_is_integer(en))
            e = json_array_get(subs, (size_t)json_integer_value(en));
    }
    if (e == NULL || json_object_get(e, "removed") != NULL) {
        *code = "not_found";
        snprintf(msg, msglen, "the video has no subtitle track %s", track);
        r = PC_ENOENT;
        goto out;
    }
    /* marked, not dropped: a revision that fails puts it back (fail_revision) */
    int rev = rv.last + 1;
    if (json_object_set_new(e, "removed", json_integer(rev)) != 0) {
        *code = "out_of_memory";
        snprintf(msg, msglen, "out of memory");
        r = PC_ENOMEM;
        goto out;
    }
    if ((r = revision_queue(p, id, &rv, code, msg, msglen)) == 0)
        PC_LOGI("pipeline", "video %s: subtitle track %s removed; revision %d queued", id, track, rev);
out:
    json_decref(res);
    revision_clear(&rv);
    return r;
}

void pc_pipeline_kick(pc_pipeline *p)
{
    /* on the next loop iteration: the caller may be inside a transaction that has yet to commit */
    if (p->started && !p->stopping)
        uv_timer_start(&p->kick, on_kick, 0, 0);
}

double pc_pipeline_progress(pc_pipeline *p, const char *video_id, int planned)
{
    /* probe and plan are the first 5%, the DAG they plan the rest: weighed together, the plan's tasks
     * joining the total made the figure fall back (0.04 to 0.003; found by review) */
    double done = 0, total = 0;
    if (pc_taskq_weights(p->o->db, video_id, !planned, &done, &total) != 0 || total <= 0)
        return planned ? 0.05 : 0;
    for (int i = 0; i < MAX_RUNNING; i++) {
        pc_job *j = p->running[i];
        int first = j != NULL && (strcmp(j->kind, "probe") == 0 || strcmp(j->kind, "plan") == 0);
        if (j != NULL && strcmp(j->video_id, video_id) == 0 && first == !planned)
            done += j->weight * (double)atomic_load(&j->progress) / 1000.0;
    }
    double pr = planned ? 0.05 + 0.95 * done / total : 0.05 * done / total;
    return pr > 0.999 ? 0.999 : pr;
}

int pc_pipeline_video_busy(pc_pipeline *p, const char *video_id)
{
    for (int i = 0; i < MAX_RUNNING; i++)
        if (p->running[i] != NULL && strcmp(p->running[i]->video_id, video_id) == 0)
            return 1;
    return 0;
}

void pc_pipeline_cancel_video(pc_pipeline *p, const char *video_id)
{
    for (int i = 0; i < MAX_RUNNING; i++) {
        pc_job *j = p->running[i];
        if (j != NULL && strcmp(j->video_id, video_id) == 0)
            atomic_store(&j->cancel, 1);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    pc_pipeline *p = h->data;
    if (--p->handles_open == 0 && p->stop_cb != NULL)
        p->stop_cb(p->stop_arg);
}

static void finish_stop(pc_pipeline *p)
{
    if (!p->started) {
        if (p->stop_cb != NULL)
            p->stop_cb(p->stop_arg);
        return;
    }
    p->started = 0;
    /* completions still waiting for the database: once more, then left to the restart (their tasks are
     * still running in the database, so they are run again then) */
    record_later(p);
    while (p->later != NULL) {
        pc_job *j = p->later;
        p->later = j->next;
        untrack(p, j);
        job_free(j);
    }
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int cls = 0; cls < 2; cls++)
        for (int i = 0; i < p->pools[cls].n; i++)
            pthread_join(p->pools[cls].threads[i], NULL);
    uv_timer_stop(&p->tick);
    uv_close((uv_handle_t *)&p->tick, on_handle_closed);
    uv_timer_stop(&p->kick);
    uv_close((uv_handle_t *)&p->kick, on_handle_closed);
    uv_close((uv_handle_t *)&p->async, on_handle_closed);
}

void pc_pipeline_stop(pc_pipeline *p, void (*cb)(void *arg), void *arg)
{
    p->stop_cb = cb;
    p->stop_arg = arg;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    /* jobs not yet picked up go straight to done, canceled and failed as such: released, so they run after
     * a restart (with no error, one was recorded done without running: a video published without its
     * sound, or failed for a missing chunk) */
    for (int cls = 0; cls < 2; cls++) {
        while (p->pools[cls].head != NULL) {
            pc_job *j = p->pools[cls].head;
            p->pools[cls].head = j->next;
            atomic_store(&j->cancel, 1);
            pc_job_fail(j, PC_ECANCELED, 0, "canceled", "canceled before it started");
            j->next = p->done;
            p->done = j;
        }
        p->pools[cls].tail = NULL;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < MAX_RUNNING; i++)
        if (p->running[i] != NULL)
            atomic_store(&p->running[i]->cancel, 1);
    if (!p->started) {
        finish_stop(p);
        return;
    }
    uv_async_send(&p->async);
}

void pc_pipeline_stats_get(const pc_pipeline *p, pc_pipeline_stats *out)
{
    *out = p->stats;
    for (int i = 0; i < PC_PIPELINE_KINDS; i++)
        out->kinds[i] = tasks[i].kind;
    for (int cls = 0; cls < 2; cls++) {
        out->workers[cls] = p->pools[cls].n;
        out->busy[cls] = p->pools[cls].busy;
    }
}

void pc_pipeline_free(pc_pipeline *p)
{
    if (p == NULL)
        return;
    for (int cls = 0; cls < 2; cls++)
        free(p->pools[cls].threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
