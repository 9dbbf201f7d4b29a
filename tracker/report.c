/* /stats and /metrics rendering; see report.h. */
#include "report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pc_http_util.h"

static const char *const reject_names[] = {
#define PC_XX(sym, name) name,
    PC_REJECT_MAP(PC_XX)
#undef PC_XX
};

int pc_reject_of(const char *code)
{
    for (int i = 0; i < PC_REJECT_N; i++)
        if (strcmp(reject_names[i], code) == 0)
            return i;
    return PC_REJECT_INTERNAL;
}

void pc_report_figures(const pc_vstats *st, pc_figures *out)
{
    memset(out, 0, sizeof(*out));
    double bytes = (double)st->bytes_cdn + (double)st->bytes_p2p; /* each below 2^53: no wrap */
    if (bytes > 0)
        out->offload = (double)st->bytes_p2p / bytes;
    out->startup_p50_ms = pc_hist_quantile(st->startup_hist, 0.5);
    out->startup_p95_ms = pc_hist_quantile(st->startup_hist, 0.95);
    double watched_ms = (double)st->played_ms + (double)st->stall_ms;
    out->viewer_hours = watched_ms / 3.6e6;
    if (watched_ms > 0) {
        out->stalls_per_viewer_hour = (double)st->stalls / out->viewer_hours;
        out->rebuffer_ratio = (double)st->stall_ms / watched_ms;
    }
}

static json_t *entry(const pc_vstats *st, uint64_t peers, uint64_t seeders)
{
    pc_figures f;
    pc_report_figures(st, &f);
    return json_pack("{sI sI sI sI sI sI sf s{sf sf sI} sI sI sf sf sf sI}", "peers", (json_int_t)peers, "seeders",
                     (json_int_t)seeders, "viewers", (json_int_t)st->viewers, "bytes_cdn", (json_int_t)st->bytes_cdn,
                     "bytes_p2p", (json_int_t)st->bytes_p2p, "bytes_up", (json_int_t)st->bytes_up, "offload",
                     f.offload, "startup_ms", "p50", f.startup_p50_ms, "p95", f.startup_p95_ms, "count",
                     (json_int_t)st->viewers, "stalls", (json_int_t)st->stalls, "stall_ms", (json_int_t)st->stall_ms,
                     "viewer_hours", f.viewer_hours, "stalls_per_viewer_hour", f.stalls_per_viewer_hour,
                     "rebuffer_ratio", f.rebuffer_ratio, "announces", (json_int_t)st->announces);
}

static int add_video(json_t *videos, const pc_swarm *sw)
{
    json_t *e = entry(&sw->st, sw->nmembers, sw->seeders);
    return e != NULL && json_object_set_new(videos, sw->video, e) == 0 ? 0 : -1;
}

json_t *pc_report_stats(const pc_registry *r, int64_t now_s, const char *only)
{
    uint64_t peers, seeders;
    const pc_vstats *total = pc_registry_total(r, &peers, &seeders);
    json_t *videos = json_object();
    json_t *doc = json_pack("{sI so so}", "time", (json_int_t)now_s, "total", entry(total, peers, seeders), "videos",
                            videos);
    if (doc == NULL)
        return NULL;
    int rc = 0;
    if (only != NULL) {
        const pc_swarm *sw = pc_registry_find_swarm(r, only);
        rc = sw != NULL ? add_video(videos, sw) : 0;
    } else {
        for (size_t i = 0; i < pc_registry_nswarms(r) && rc == 0; i++)
            rc = add_video(videos, pc_registry_swarm(r, (uint32_t)i));
    }
    if (rc != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static int cmp_peers_desc(const void *a, const void *b, void *ctx)
{
    const pc_registry *r = ctx;
    uint32_t x = pc_registry_swarm(r, *(const uint32_t *)a)->nmembers;
    uint32_t y = pc_registry_swarm(r, *(const uint32_t *)b)->nmembers;
    return x < y ? 1 : x > y ? -1 : 0;
}

int pc_report_metrics(const pc_registry *r, const pc_tmetrics *m, size_t top, pc_buf *o)
{
    uint64_t peers, seeders;
    const pc_vstats *t = pc_registry_total(r, &peers, &seeders);
    pc_figures f;
    pc_report_figures(t, &f);
    size_t n = pc_registry_nswarms(r);
    uint32_t *order = malloc((n > 0 ? n : 1) * sizeof(*order));
    if (order == NULL)
        return PC_ENOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    qsort_r(order, n, sizeof(*order), cmp_peers_desc, (void *)r);
    if (top > n)
        top = n;
    int rc = pc_http_metric_head(o, "peercdn_tracker_peers", "gauge", "Live peers, all videos.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_peers %" PRIu64 "\n", peers);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_seeders", "gauge", "Live peers only seeding.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_seeders %" PRIu64 "\n", seeders);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_videos", "gauge", "Videos with statistics.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_videos %zu\n", n);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_bytes_total", "counter", "Bytes viewers received, by source.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_bytes_total{source=\"cdn\"} %" PRIu64 "\n", t->bytes_cdn);
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_bytes_total{source=\"p2p\"} %" PRIu64 "\n", t->bytes_p2p);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_uploaded_bytes_total", "counter", "Bytes peers uploaded to peers.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_uploaded_bytes_total %" PRIu64 "\n", t->bytes_up);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_offload_ratio", "gauge", "bytes_p2p / (bytes_p2p + bytes_cdn).");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_offload_ratio %.6f\n", f.offload);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_stalls_total", "counter", "Playback stalls reported by viewers.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_stalls_total %" PRIu64 "\n", t->stalls);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_stall_seconds_total", "counter", "Time viewers spent stalled.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_stall_seconds_total %.3f\n", (double)t->stall_ms / 1000);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_played_seconds_total", "counter", "Media time viewers played.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_played_seconds_total %.3f\n", (double)t->played_ms / 1000);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_startup_seconds", "summary", "Start-up delay reported by viewers.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_startup_seconds{quantile=\"0.5\"} %.3f\n", f.startup_p50_ms / 1000);
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_startup_seconds{quantile=\"0.95\"} %.3f\n", f.startup_p95_ms / 1000);
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_startup_seconds_count %" PRIu64 "\n", t->viewers);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_announces_total", "counter", "Announces accepted, by event.");
    for (int e = 0; rc == 0 && e < 3; e++)
        rc = pc_buf_printf(o, "peercdn_tracker_announces_total{event=\"%s\"} %" PRIu64 "\n", pc_event_name(e),
                           m->announces[e]);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_rejects_total", "counter", "Requests refused, by reason.");
    for (int i = 0; rc == 0 && i < PC_REJECT_N; i++)
        rc = pc_buf_printf(o, "peercdn_tracker_rejects_total{code=\"%s\"} %" PRIu64 "\n", reject_names[i], m->rejects[i]);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_tickets_issued_total", "counter", "Peer tickets signed.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_tickets_issued_total %" PRIu64 "\n", m->tickets);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_ban_reports_total", "counter",
                                       "Reports that a viewer banned a peer of its video, counted once per network and peer.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_ban_reports_total %" PRIu64 "\n", m->ban_reports);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_distrusted_total", "counter",
                                       "Peers no longer listed in a video: reported banned from --distrust-reports networks.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_distrusted_total %" PRIu64 "\n", m->distrusted);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_ban_reports_dropped_total", "counter",
                                       "Ban reports dropped: every entry around was a verdict still in force.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_ban_reports_dropped_total %" PRIu64 "\n", m->ban_reports_dropped);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_documents", "gauge",
                                       "Copies of the /stats and /metrics documents in memory: kept, or held by answers still "
                                       "being sent (at most 4).");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_documents %" PRIu64 "\n", m->documents);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_peers_expired_total", "counter", "Peers dropped for missing announces.");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_peers_expired_total %" PRIu64 "\n", m->expired);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_origin_lookups_total", "counter",
                                       "New videos the origin was asked about (--origin).");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_origin_lookups_total %" PRIu64 "\n", m->admit_lookups);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_origin_refusals_total", "counter",
                                       "Of them, videos the origin does not publish (or not yet).");
    rc = rc ? rc : pc_buf_printf(o, "peercdn_tracker_origin_refusals_total %" PRIu64 "\n", m->admit_refused);
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_video_peers", "gauge", "Live peers per video (busiest videos).");
    for (size_t i = 0; rc == 0 && i < top; i++) {
        const pc_swarm *sw = pc_registry_swarm(r, order[i]);
        rc = pc_buf_printf(o, "peercdn_tracker_video_peers{video=\"%s\"} %u\n", sw->video, sw->nmembers);
    }
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_video_bytes_total", "counter", "Bytes per video (busiest), by source.");
    for (size_t i = 0; rc == 0 && i < top; i++) {
        const pc_swarm *sw = pc_registry_swarm(r, order[i]);
        rc = pc_buf_printf(o,
                           "peercdn_tracker_video_bytes_total{video=\"%s\",source=\"cdn\"} %" PRIu64 "\n"
                           "peercdn_tracker_video_bytes_total{video=\"%s\",source=\"p2p\"} %" PRIu64 "\n",
                           sw->video, sw->st.bytes_cdn, sw->video, sw->st.bytes_p2p);
    }
    rc = rc ? rc : pc_http_metric_head(o, "peercdn_tracker_video_offload_ratio", "gauge", "Offload per video (busiest).");
    for (size_t i = 0; rc == 0 && i < top; i++) {
        const pc_swarm *sw = pc_registry_swarm(r, order[i]);
        pc_figures vf;
        pc_report_figures(&sw->st, &vf);
        rc = pc_buf_printf(o, "peercdn_tracker_video_offload_ratio{video=\"%s\"} %.6f\n", sw->video, vf.offload);
    }
    free(order);
    return rc;
}
