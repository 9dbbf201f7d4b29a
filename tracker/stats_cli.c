/* peercdn-tracker stats: GET /stats printed as a table for a person; see tracker.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pc_cli.h"
#include "pc_buf.h"
#include "pc_http_client.h"
#include "pc_json.h"
#include "pc_ticket.h"
#include "tracker.h"

#define STATS_MAX (1024u << 20) /* the tracker's /stats of its largest catalog (--max-videos: ~257 MB) */

static void human_bytes(double b, char *out, size_t len)
{
    const char *u[] = {"B", "KB", "MB", "GB", "TB", "PB"};
    int i = 0;
    while (b >= 1000 && i < 5) {
        b /= 1000;
        i++;
    }
    snprintf(out, len, i == 0 ? "%.0f %s" : "%.1f %s", b, u[i]);
}

static void row(const char *name, const json_t *e)
{
    char cdn[24], p2p[24];
    human_bytes(pc_json_num(e, "bytes_cdn", 0), cdn, sizeof(cdn));
    human_bytes(pc_json_num(e, "bytes_p2p", 0), p2p, sizeof(p2p));
    const json_t *su = json_object_get(e, "startup_ms");
    printf("%-22.22s %7lld %8lld %10s %10s %7.1f%% %7.0f %7.0f %8.2f %8.2f%%\n", name,
           (long long)pc_json_int(e, "peers", 0), (long long)pc_json_int(e, "viewers", 0), cdn, p2p,
           100 * pc_json_num(e, "offload", 0), pc_json_num(su, "p50", 0), pc_json_num(su, "p95", 0),
           pc_json_num(e, "stalls_per_viewer_hour", 0), 100 * pc_json_num(e, "rebuffer_ratio", 0));
}

/* Whether a row's figures are within their ranges (a counter or a quantile of a tracker never is
 * negative, a share never outside 0..1); JSON's NaN cannot occur, a missing one reads 0. */
static int figures_ok(const json_t *e)
{
    const json_t *su = json_object_get(e, "startup_ms");
    double off = pc_json_num(e, "offload", 0), reb = pc_json_num(e, "rebuffer_ratio", 0);
    return json_is_object(e) && pc_json_int(e, "peers", 0) >= 0 && pc_json_int(e, "viewers", 0) >= 0 &&
           pc_json_num(e, "bytes_cdn", 0) >= 0 && pc_json_num(e, "bytes_p2p", 0) >= 0 && off >= 0 && off <= 1 &&
           reb >= 0 && reb <= 1 && pc_json_num(e, "stalls_per_viewer_hour", 0) >= 0 &&
           pc_json_num(su, "p50", 0) >= 0 && pc_json_num(su, "p95", 0) >= 0;
}

/* What makes a statistics document unfit for the table (NULL: nothing): a video name a tracker never
 * accepts (names go to the terminal: no escape sequences, no line breaks), or an entry that is not an
 * object of figures within their ranges. */
static const char *bad_entry(const json_t *doc)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(doc, "videos"), k, v) {
        if (!pc_video_id_valid(k, strlen(k)))
            return "a video name that is not a video id";
        if (!figures_ok(v))
            return "a video's entry is not an object of figures within their ranges";
    }
    return figures_ok(json_object_get(doc, "total")) ? NULL : "the total is not an object of figures within their ranges";
}

int pc_tracker_stats_cli(const char *url, const char *video, int json)
{
    char full[2048];
    pc_buf body;
    pc_buf_init(&body, STATS_MAX);
    long status = 0;
    const char *why = "";
    char path[PC_VIDEO_ID_MAX + 32] = "stats";
    if (video != NULL) /* one video's document: a catalog of many is not fetched for one row */
        snprintf(path, sizeof(path), "stats?video=%s", video);
    int cc = pc_http_get_blocking(url, path, 30, &body, &status, full, sizeof(full), &why);
    int rc = 1;
    json_t *doc = NULL;
    char err[160];
    if (cc != 0) {
        pc_cli_error("cannot reach %s: %s", full, why);
    } else if (status != 200) {
        pc_cli_error("%s answered HTTP %ld", full, status);
    } else if (pc_json_parse_object(body.data, body.len, STATS_MAX, &doc, err, sizeof(err)) != 0) {
        pc_cli_error("%s did not answer with statistics: %s", full, err);
    } else if (!json_is_object(json_object_get(doc, "videos")) || !json_is_object(json_object_get(doc, "total"))) {
        pc_cli_error("%s did not answer with statistics: no \"videos\" and \"total\" objects",
                full);
    } else if ((why = bad_entry(doc)) != NULL) {
        pc_cli_error("%s did not answer with statistics: %s", full, why);
    } else if (video != NULL && json_object_get(json_object_get(doc, "videos"), video) == NULL) {
        pc_cli_error("the tracker has no statistics for video %s", video);
    } else if (json) {
        fwrite(body.data, 1, body.len, stdout);
        putchar('\n');
        rc = 0;
    } else {
        const json_t *videos = json_object_get(doc, "videos");
        printf("%-22s %7s %8s %10s %10s %8s %7s %7s %8s %9s\n", "video", "peers", "viewers", "from CDN", "from P2P",
               "offload", "p50 ms", "p95 ms", "stalls/h", "rebuffer");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)videos, k, v) {
            if (video == NULL || strcmp(k, video) == 0)
                row(k, v);
        }
        if (video == NULL)
            row("TOTAL", json_object_get(doc, "total"));
        rc = 0;
    }
    json_decref(doc);
    pc_buf_clear(&body);
    return rc;
}
