/*
 * GET /metrics: the origin's counters and gauges in Prometheus text format (docs/origin.md, "Metrics").
 * The document is built at most once a second and shared by every answer in that second, so a poller
 * cannot make the loop count the catalog's states over and over.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "media.h"
#include "origin.h"
#include "pc_http_util.h"
#include "pc_log.h"
#include "pipeline.h"

#define METRICS_MAX (1u << 20)

struct states {
    pc_buf *o;
    const char *name;
    const char *const *known; /* always listed, 0 when absent */
    size_t nknown;
    int64_t counts[8];
    int rc;
};

static void on_state(void *arg, const char *state, int64_t n)
{
    struct states *s = arg;
    for (size_t i = 0; i < s->nknown; i++)
        if (strcmp(state, s->known[i]) == 0) {
            s->counts[i] = n;
            return;
        }
    /* a state this build does not know (a newer one's database): listed as it is, if it is a plain word */
    if (s->rc == 0 && state[strspn(state, "abcdefghijklmnopqrstuvwxyz_")] == '\0')
        s->rc = pc_buf_printf(s->o, "%s{state=\"%s\"} %" PRId64 "\n", s->name, state, n);
}

static int state_gauge(pc_origin *o, pc_buf *b, int tasks, const char *name, const char *help,
                       const char *const *known, size_t nknown)
{
    struct states s = {.o = b, .name = name, .known = known, .nknown = nknown};
    int rc = pc_http_metric_head(b, name, "gauge", help);
    if (rc == 0 && pc_db_state_counts(o->db, tasks, on_state, &s) != 0)
        PC_LOGW("origin", "/metrics: cannot count %s by state", tasks ? "tasks" : "videos");
    rc = rc ? rc : s.rc;
    for (size_t i = 0; rc == 0 && i < nknown; i++)
        rc = pc_buf_printf(b, "%s{state=\"%s\"} %" PRId64 "\n", name, known[i], s.counts[i]);
    return rc;
}

static int build(pc_origin *o, pc_buf *b)
{
    static const char *const video_states[] = {"queued", "processing", "ready", "failed"};
    static const char *const task_states[] = {"blocked", "ready", "running"};
    static const char *const pools[2] = {"light", "heavy"}; /* PC_TASK_LIGHT, PC_TASK_HEAVY */
    pc_tus_stats ts;
    pc_tus_stats_get(o->tus, &ts);
    pc_pipeline_stats ps;
    pc_pipeline_stats_get(o->pipeline, &ps);
    pc_blobcache_stats cs;
    size_t held = 0;
    pc_media_cache_stats(o->media, &cs, &held);
    int64_t pending = 0;
    int have_pending = pc_db_upload_pending(o->db, (int64_t)time(NULL), &pending) == 0;

    int rc = pc_http_metric_head(b, "peercdn_origin_start_time_seconds", "gauge", "When the process started (unix time).");
    rc = rc ? rc : pc_buf_printf(b, "peercdn_origin_start_time_seconds %" PRId64 "\n", o->started_s);
    rc = rc ? rc : state_gauge(o, b, 0, "peercdn_origin_videos", "Videos, by state.", video_states, 4);
    rc = rc ? rc : state_gauge(o, b, 1, "peercdn_origin_tasks",
                                   "Pipeline tasks not yet done, by state (ready: waiting for a worker or a retry's "
                                   "time; blocked: for the tasks before it).",
                                   task_states, 3);
    rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_tasks_finished_total", "counter",
                                       "Tasks finished since start, by kind and outcome (retried: failed and scheduled "
                                       "again; failed: their video failed; runs cancelled by a stop or a deletion are not "
                                       "counted).");
    for (int k = 0; rc == 0 && k < PC_PIPELINE_KINDS; k++)
        rc = pc_buf_printf(b,
                           "peercdn_origin_tasks_finished_total{kind=\"%s\",outcome=\"done\"} %" PRIu64 "\n"
                           "peercdn_origin_tasks_finished_total{kind=\"%s\",outcome=\"retried\"} %" PRIu64 "\n"
                           "peercdn_origin_tasks_finished_total{kind=\"%s\",outcome=\"failed\"} %" PRIu64 "\n",
                           ps.kinds[k], ps.done[k], ps.kinds[k], ps.retried[k], ps.kinds[k], ps.failed[k]);
    rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_task_seconds_total", "counter",
                                       "Wall time tasks ran on workers, by kind.");
    for (int k = 0; rc == 0 && k < PC_PIPELINE_KINDS; k++)
        rc = pc_buf_printf(b, "peercdn_origin_task_seconds_total{kind=\"%s\"} %.3f\n", ps.kinds[k], ps.seconds[k]);
    rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_workers", "gauge", "Worker threads, by pool.");
    for (int c = 0; rc == 0 && c < 2; c++)
        rc = pc_buf_printf(b, "peercdn_origin_workers{pool=\"%s\"} %d\n", pools[c], ps.workers[c]);
    rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_workers_busy", "gauge", "Worker threads running a task, by pool.");
    for (int c = 0; rc == 0 && c < 2; c++)
        rc = pc_buf_printf(b, "peercdn_origin_workers_busy{pool=\"%s\"} %d\n", pools[c], ps.busy[c]);
    rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_uploads_created_total", "counter",
                                       "tus uploads created since start (single, partial and final).");
    rc = rc ? rc : pc_buf_printf(b, "peercdn_origin_uploads_created_total %" PRIu64 "\n", ts.created);
    rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_uploads_completed_total", "counter",
                                       "Uploads completed since start, each becoming a video.");
    rc = rc ? rc : pc_buf_printf(b, "peercdn_origin_uploads_completed_total %" PRIu64 "\n", ts.completed);
    rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_upload_bytes_total", "counter",
                                       "Upload body bytes written and committed since start.");
    rc = rc ? rc : pc_buf_printf(b, "peercdn_origin_upload_bytes_total %" PRIu64 "\n", ts.bytes);
    if (have_pending) {
        rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_upload_pending_bytes", "gauge",
                                           "Bytes unfinished uploads (not expired) announced and have not sent yet.");
        rc = rc ? rc : pc_buf_printf(b, "peercdn_origin_upload_pending_bytes %" PRId64 "\n", pending);
    }
    struct statvfs vfs;
    if (statvfs(o->cfg.data_dir, &vfs) == 0) {
        rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_data_free_bytes", "gauge",
                                           "Free bytes on the data directory's file system (for this user).");
        rc = rc ? rc : pc_buf_printf(b, "peercdn_origin_data_free_bytes %" PRIu64 "\n", (uint64_t)vfs.f_bavail * vfs.f_frsize);
    }
    rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_cache_entries", "gauge", "Files in the memory cache.");
    rc = rc ? rc : pc_buf_printf(b, "peercdn_origin_cache_entries %zu\n", cs.entries);
    rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_cache_bytes", "gauge", "Bytes in the memory cache.");
    rc = rc ? rc : pc_buf_printf(b, "peercdn_origin_cache_bytes %zu\n", cs.bytes);
    rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_cache_held_out_bytes", "gauge",
                                       "Bytes of evicted copies that answers still being written hold.");
    rc = rc ? rc : pc_buf_printf(b, "peercdn_origin_cache_held_out_bytes %zu\n", held);
    rc = rc ? rc : pc_http_metric_head(b, "peercdn_origin_cache_lookups_total", "counter",
                                       "Memory cache lookups, by result.");
    rc = rc ? rc : pc_buf_printf(b, "peercdn_origin_cache_lookups_total{result=\"hit\"} %" PRIu64 "\n"
                                    "peercdn_origin_cache_lookups_total{result=\"miss\"} %" PRIu64 "\n",
                                 cs.hits, cs.misses);
    rc = rc ? rc : pc_http_server_metrics(o->http, "peercdn_origin", b);
    return rc;
}

int pc_origin_metrics_route(void *user, h2o_req_t *req)
{
    pc_origin *o = user;
    h2o_iovec_t path = pc_http_req_path(req);
    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/metrics")))
        return -1;
    if (pc_http_get_only(req, "", "this resource takes GET"))
        return 0;
    uint64_t now = uv_now(o->loop);
    if (o->metrics_body == NULL || now >= o->metrics_built_ms + 1000) {
        pc_buf b;
        pc_buf_init(&b, METRICS_MAX);
        void *body = build(o, &b) == 0 ? h2o_mem_alloc_shared(NULL, b.len, NULL) : NULL;
        if (body == NULL) {
            pc_buf_clear(&b);
            pc_http_respond_error(req, 500, "out_of_memory", "out of memory");
            return 0;
        }
        memcpy(body, b.data, b.len);
        pc_origin_metrics_free(o);
        o->metrics_body = body;
        o->metrics_len = b.len;
        pc_buf_clear(&b);
        o->metrics_built_ms = now;
    }
    pc_http_respond_shared(req, 200, "text/plain; version=0.0.4; charset=utf-8", o->metrics_body, o->metrics_len);
    return 0;
}

void pc_origin_metrics_free(pc_origin *o)
{
    if (o->metrics_body != NULL)
        h2o_mem_release_shared(o->metrics_body);
    o->metrics_body = NULL;
}
