/*
 * The video API: GET /api/videos (paginated catalog), GET/DELETE
 * /api/videos/{id}, POST /api/videos/{id}/retry, POST /api/videos/{id}/subtitles, GET /api/origin-key,
 * GET /api/health.
 */
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "media.h"
#include "origin.h"
#include "pc_json.h"
#include "pc_log.h"
#include "pc_num.h"
#include "pipeline.h"

#define LIST_MAX 100

static void set_paths(json_t *o, const char *id)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "/v/%s/master.m3u8", id);
    json_object_set_new(o, "hls", json_string(buf));
    snprintf(buf, sizeof(buf), "/v/%s/manifest.mpd", id);
    json_object_set_new(o, "dash", json_string(buf));
    snprintf(buf, sizeof(buf), "/v/%s/p2p.json", id);
    json_object_set_new(o, "p2p", json_string(buf));
    /* the thumbnails track (WebVTT cues pointing into the scrubbing sprite), a URL path as DESIGN.md has
     * it; the posters beside it */
    snprintf(buf, sizeof(buf), "/v/%s/thumbs/sprite.vtt", id);
    json_object_set_new(o, "thumbnails", json_string(buf));
    json_t *po = json_object();
    snprintf(buf, sizeof(buf), "/v/%s/thumbs/poster-16x9.webp", id);
    json_object_set_new(po, "16x9", json_string(buf));
    snprintf(buf, sizeof(buf), "/v/%s/thumbs/poster-2x3.webp", id);
    json_object_set_new(po, "2x3", json_string(buf));
    json_object_set_new(o, "posters", po);
}

/* A database failure: when another program (an operator's sqlite3, a backup) held the lock past the serving
 * wait, 503 with Retry-After (nothing is wrong; retry), else 500 with |message|. */
static void respond_db_error(pc_origin *o, h2o_req_t *req, const char *code, const char *message)
{
    if (pc_db_took_busy(o->db)) {
        pc_http_add_header(req, "retry-after", "1");
        pc_http_respond_error(req, 503, "database_busy", "the database is locked by another program; retry shortly");
        return;
    }
    pc_http_respond_error(req, 500, code, message);
}

/* Appends ?exp&sig to every path in |o| (signed-media mode, for authorized callers). */
static void sign_paths(pc_origin *o, json_t *v, const char *id)
{
    char q[160];
    if (pc_media_sign_query(o->media, id, q, sizeof(q)) != 0)
        return;
    const char *keys[] = {"hls", "dash", "p2p", "thumbnails"};
    for (size_t i = 0; i < 4; i++) {
        char buf[320];
        snprintf(buf, sizeof(buf), "%s?%s", json_string_value(json_object_get(v, keys[i])), q);
        json_object_set_new(v, keys[i], json_string(buf));
    }
    json_t *th = json_object_get(v, "posters");
    const char *k;
    json_t *val;
    json_object_foreach(th, k, val)
    {
        char buf[320];
        snprintf(buf, sizeof(buf), "%s?%s", json_string_value(val), q);
        json_object_set_new(th, k, json_string(buf));
    }
    size_t i;
    json_array_foreach(json_object_get(v, "subtitles"), i, th)
    {
        const char *sk[] = {"hls", "vtt"};
        for (size_t n = 0; n < 2; n++) {
            char buf[320];
            snprintf(buf, sizeof(buf), "%s?%s", json_string_value(json_object_get(th, sk[n])), q);
            json_object_set_new(th, sk[n], json_string(buf));
        }
    }
}

static json_t *video_json(pc_origin *o, const pc_video *v, int authorized)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_string(v->id));
    json_object_set_new(j, "title", json_string(v->title != NULL ? v->title : ""));
    json_object_set_new(j, "state", json_string(v->state));
    double progress = 0;
    if (strcmp(v->state, "ready") == 0)
        progress = 1;
    else if (strcmp(v->state, "queued") != 0 && strcmp(v->state, "failed") != 0)
        progress = pc_pipeline_progress(o->pipeline, v->id, v->plan != NULL);
    json_object_set_new(j, "progress", json_real((double)(int)(progress * 1000) / 1000));
    json_object_set_new(j, "created", json_integer(v->created_ms / 1000));
    json_object_set_new(j, "updated", json_integer(v->updated_ms / 1000));
    json_object_set_new(j, "source_size", json_integer(v->source_size));
    json_object_set_new(j, "duration", json_null()); /* until the probe has run (or for good when it failed) */
    if (strcmp(v->state, "ready") == 0) {
        /* a file added to it is being published (its tracks listed once that is done); or failed to be */
        int64_t n = 0;
        json_object_set_new(j, "updating", json_boolean(pc_taskq_unfinished(o->db, v->id, &n) == 0 && n > 0));
        if (v->error_code != NULL)
            json_object_set_new(j, "update_error", json_pack("{s:s, s:s}", "code", v->error_code, "message",
                                                             v->error_message != NULL ? v->error_message : ""));
    }
    if (strcmp(v->state, "failed") == 0)
        json_object_set_new(j, "error", json_pack("{s:s, s:s}", "code", v->error_code != NULL ? v->error_code : "failed",
                                                  "message", v->error_message != NULL ? v->error_message : ""));
    json_t *result = v->result != NULL ? json_loads(v->result, 0, NULL) : NULL;
    json_t *plan = v->plan != NULL ? json_loads(v->plan, 0, NULL) : NULL;
    json_t *info = v->info != NULL ? json_loads(v->info, 0, NULL) : NULL;
    if (result != NULL) {
        json_object_set(j, "duration", json_object_get(result, "duration"));
        json_object_set(j, "renditions", json_object_get(result, "renditions"));
        if (json_object_get(result, "audio") != NULL)
            json_object_set(j, "audio", json_object_get(result, "audio"));
        json_object_set(j, "segment_duration", json_object_get(result, "segment_duration"));
        /* text tracks, with the URL paths of their HLS playlist and whole WebVTT file */
        json_t *subs = json_array(), *e;
        size_t k;
        json_array_foreach(json_object_get(result, "subtitles"), k, e)
        {
            json_t *c = json_deep_copy(e);
            char buf[128];
            const char *sid = json_string_value(json_object_get(e, "id"));
            snprintf(buf, sizeof(buf), "/v/%s/%s/index.m3u8", v->id, sid != NULL ? sid : "");
            json_object_set_new(c, "hls", json_string(buf));
            snprintf(buf, sizeof(buf), "/v/%s/%s/all.vtt", v->id, sid != NULL ? sid : "");
            json_object_set_new(c, "vtt", json_string(buf));
            json_array_append_new(subs, c);
        }
        json_object_set_new(j, "subtitles", subs);
        /* frames the decoder could not give, each shown as a copy of the one before (videos published
         * before this was counted have none listed: 0) */
        json_t *cf = json_object_get(result, "concealed_frames");
        json_object_set_new(j, "concealed_frames", json_integer(json_is_integer(cf) ? json_integer_value(cf) : 0));
    } else {
        if (info != NULL && json_object_get(info, "duration") != NULL)
            json_object_set(j, "duration", json_object_get(info, "duration"));
        json_t *rs = json_array();
        json_t *r;
        size_t i;
        json_array_foreach(json_object_get(plan, "rungs"), i, r)
        {
            json_array_append_new(rs, json_pack("{s:O, s:O, s:O, s:O}", "id", json_object_get(r, "id"), "width",
                                                json_object_get(r, "width"), "height", json_object_get(r, "height"),
                                                "bandwidth", json_object_get(r, "bitrate")));
        }
        json_object_set_new(j, "renditions", rs);
    }
    set_paths(j, v->id);
    if (authorized && pc_media_signed_mode(o->media))
        sign_paths(o, j, v->id);
    json_decref(result);
    json_decref(plan);
    json_decref(info);
    return j;
}

static int handle_list(pc_origin *o, h2o_req_t *req)
{
    char buf[32];
    int64_t limit = 20, cursor = 0;
    int rl = pc_http_req_query(req, "limit", buf, sizeof(buf));
    if (rl != 0 && rl != PC_ENOENT) {
        pc_http_respond_error(req, 400, "bad_limit", "limit must be an integer from 1 to 100");
        return 0;
    }
    if (rl == 0) {
        if (pc_parse_int_str(buf, 1, LIST_MAX, 0, &limit) != 0) {
            pc_http_respond_error(req, 400, "bad_limit", "limit must be an integer from 1 to 100");
            return 0;
        }
    }
    int rc = pc_http_req_query(req, "cursor", buf, sizeof(buf));
    if (rc != 0 && rc != PC_ENOENT) {
        pc_http_respond_error(req, 400, "bad_cursor", "cursor must come from a previous page's next_cursor");
        return 0;
    }
    if (rc == 0) {
        /* the canonical decimal a page gives: no sign, space or leading zero, and in range */
        if (pc_parse_int_str(buf, 1, INT64_MAX, PC_NUM_CANONICAL, &cursor) != 0) { /* no page gives 0 */
            pc_http_respond_error(req, 400, "bad_cursor", "cursor must come from a previous page's next_cursor");
            return 0;
        }
    }
    pc_video rows[LIST_MAX];
    int n = pc_db_video_list(o->db, cursor, rows, (int)limit);
    int64_t total = 0;
    if (n < 0 || pc_db_video_count(o->db, &total) != 0) {
        for (int i = 0; i < n; i++)
            pc_video_clear(&rows[i]);
        respond_db_error(o, req, "database_error", "cannot list videos");
        return 0;
    }
    int authorized = pc_origin_authorized(o, req);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(arr, video_json(o, &rows[i], authorized));
    }
    json_t *body = json_pack("{s:o, s:I}", "videos", arr, "total", (json_int_t)total);
    if (n == limit && n > 0 && rows[n - 1].seq > 1)
        json_object_set_new(body, "next_cursor", json_string((snprintf(buf, sizeof(buf), "%lld", (long long)rows[n - 1].seq), buf)));
    else
        json_object_set_new(body, "next_cursor", json_null());
    for (int i = 0; i < n; i++)
        pc_video_clear(&rows[i]);
    pc_http_respond_json(req, 200, body);
    return 0;
}

/* Loads video |id| into |v|; on failure answers 404/500 itself and returns -1. */
static int load_video(pc_origin *o, h2o_req_t *req, const char *id, pc_video *v)
{
    int r = pc_db_video_get(o->db, id, v);
    if (r == 0)
        return 0;
    if (r == PC_ENOENT)
        pc_http_respond_error(req, 404, "not_found", "no such video");
    else
        respond_db_error(o, req, "database_error", "cannot read the video");
    return -1;
}

/* Video |id| into |v| for a caller holding the upload token; else answers 401 (|what| needs the token),
 * 404 or 500 itself and returns -1. */
static int load_video_authorized(pc_origin *o, h2o_req_t *req, const char *id, const char *what, pc_video *v)
{
    if (!pc_origin_authorized(o, req)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s requires the upload token", what);
        pc_http_add_header(req, "www-authenticate", "Bearer");
        pc_http_respond_error(req, 401, "unauthorized", msg);
        return -1;
    }
    return load_video(o, req, id, v);
}

/* 202 with video |id| as it is now: what a POST set going. */
static int respond_accepted(pc_origin *o, h2o_req_t *req, const char *id)
{
    pc_video v;
    if (load_video(o, req, id, &v) != 0)
        return 0;
    json_t *j = video_json(o, &v, 1);
    pc_video_clear(&v);
    pc_http_respond_json(req, 202, j);
    return 0;
}

/* The answer to a subtitle change that was refused (pc_pipeline_add_subtitles' errors). */
static int respond_revision_error(pc_origin *o, h2o_req_t *req, int r, const char *code, const char *msg)
{
    if (r == PC_ECONFLICT && strcmp(code, "busy") == 0)
        pc_http_add_header(req, "retry-after", "2");
    if (r == PC_ENOENT || r == PC_ECONFLICT || r == PC_EINVAL)
        pc_http_respond_error(req, r == PC_ENOENT ? 404 : r == PC_ECONFLICT ? 409 : 422, code, msg);
    else
        respond_db_error(o, req, code, msg);
    return 0;
}

/* A |method| request on video |id| (|what| for the answers: "retrying a video") by a caller holding the
 * token: |v| is loaded, or -1 when the request was answered (405, 401, 404, 500). */
static int change_video(pc_origin *o, h2o_req_t *req, const char *method, const char *id, const char *what, pc_video *v)
{
    if (!pc_http_req_method_is(req, method)) {
        char msg[96], allow[32];
        snprintf(msg, sizeof(msg), "%s takes %s", what, method);
        snprintf(allow, sizeof(allow), "%s, OPTIONS", method);
        pc_http_add_header(req, "allow", allow);
        pc_http_respond_error(req, 405, "method_not_allowed", msg);
        return -1;
    }
    return load_video_authorized(o, req, id, what, v);
}

/* POST /api/videos/{id}/retry: a failed video runs again from its kept original (the operator fixed the
 * cause: a tracker that was down, a full disk, a newer build that reads the source). */
static int handle_retry(pc_origin *o, h2o_req_t *req, const char *id)
{
    pc_video v;
    if (change_video(o, req, "POST", id, "retrying a video", &v) != 0)
        return 0;
    int failed = strcmp(v.state, "failed") == 0;
    struct stat st;
    int kept = v.source != NULL && stat(v.source, &st) == 0 && S_ISREG(st.st_mode);
    char msg[160];
    snprintf(msg, sizeof(msg), "only a failed video can be retried; this one is %s", v.state);
    pc_video_clear(&v);
    if (!failed) {
        pc_http_respond_error(req, 409, "not_failed", msg);
        return 0;
    }
    if (pc_pipeline_video_busy(o->pipeline, id)) {
        /* the failed run's other tasks were told to stop; they must be gone before the files are cleared */
        pc_http_add_header(req, "retry-after", "1");
        pc_http_respond_error(req, 409, "busy", "the failed run's last tasks are still stopping; retry in a moment");
        return 0;
    }
    if (!kept) {
        pc_http_respond_error(req, 409, "source_missing", "the original upload of this video is gone");
        return 0;
    }
    int64_t now = pc_origin_now_ms();
    int r = pc_media_clear_outputs(o->media, id);
    if (r == 0)
        r = pc_db_video_retry(o->db, id, now);
    if (r == PC_ECONFLICT) { /* it changed under us: cannot happen on one loop, but say it plainly */
        pc_http_respond_error(req, 409, "not_failed", "the video is no longer failed");
        return 0;
    }
    if (r != 0) {
        respond_db_error(o, req, pc_err_name(r), "the video could not be queued again");
        return 0;
    }
    PC_LOGI("api", "video %s queued again", id);
    pc_pipeline_kick(o->pipeline);
    return respond_accepted(o, req, id);
}

/* POST /api/videos/{id}/subtitles?language=L&name=N: the body, a subtitle file (SubRip, WebVTT or
 * ASS/SSA; at most the server's 1 MiB of body), becomes a new track of the ready video, which is
 * published again with it (202; the video lists the track once that is done, "updating" until then). */
static int handle_add_subtitles(pc_origin *o, h2o_req_t *req, const char *id)
{
    pc_video v;
    if (change_video(o, req, "POST", id, "adding subtitles", &v) != 0)
        return 0;
    pc_video_clear(&v);
    char lang[64], name[256];
    int lr = pc_http_req_query(req, "language", lang, sizeof(lang)), nr = pc_http_req_query(req, "name", name, sizeof(name));
    if ((lr != 0 && lr != PC_ENOENT) || (nr != 0 && nr != PC_ENOENT)) {
        pc_http_respond_error(req, 400, "bad_request", "language and name are given once each, in at most 63 and 255 bytes");
        return 0;
    }
    if (req->entity.base == NULL || req->entity.len == 0) {
        pc_http_respond_error(req, 400, "bad_subtitles", "the body is the subtitle file (SubRip, WebVTT or ASS/SSA)");
        return 0;
    }
    const char *code = "internal_error";
    char msg[256] = "";
    int r = pc_pipeline_add_subtitles(o->pipeline, id, req->entity.base, req->entity.len, lr == 0 ? lang : NULL,
                                      nr == 0 ? name : NULL, &code, msg, sizeof(msg));
    if (r != 0)
        return respond_revision_error(o, req, r, code, msg);
    return respond_accepted(o, req, id);
}

/* DELETE /api/videos/{id}/subtitles/{track}: the published track (its id: "s1") is taken out; the video
 * is published again without it (202, "updating" until then). */
static int handle_remove_subtitles(pc_origin *o, h2o_req_t *req, const char *id, const char *track)
{
    pc_video v;
    if (change_video(o, req, "DELETE", id, "removing subtitles", &v) != 0)
        return 0;
    pc_video_clear(&v);
    const char *code = "internal_error";
    char msg[256] = "";
    int r = pc_pipeline_remove_subtitles(o->pipeline, id, track, &code, msg, sizeof(msg));
    if (r != 0)
        return respond_revision_error(o, req, r, code, msg);
    return respond_accepted(o, req, id);
}

#define PATCH_BODY_MAX 4096 /* bytes of a PATCH's JSON: a title of PC_TITLE_MAX bytes, escaped, fits */

/* A title an operator may set: 1 to PC_TITLE_MAX bytes (jansson has checked the UTF-8) without the
 * characters pc_title_banned_at names. */
static int title_ok(const char *s, size_t len)
{
    if (len == 0 || len > PC_TITLE_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (pc_title_banned_at(s + i, len - i) != 0)
            return 0;
    return 1;
}

/* PATCH /api/videos/{id} with a JSON object: {"title": "..."} renames the video, in any state; 200 and
 * the video. Nothing published changes (the title is only in the catalog). */
static int handle_patch(pc_origin *o, h2o_req_t *req, const char *id)
{
    pc_video v;
    if (load_video_authorized(o, req, id, "changing a video", &v) != 0)
        return 0;
    pc_video_clear(&v);
    h2o_iovec_t ct = pc_http_req_header(req, "content-type");
    if (ct.len < 16 || strncasecmp(ct.base, "application/json", 16) != 0 || (ct.len > 16 && ct.base[16] != ';' &&
                                                                             ct.base[16] != ' ')) {
        pc_http_respond_error(req, 415, "unsupported_media_type", "the body is a JSON object (application/json)");
        return 0;
    }
    json_t *body = NULL;
    char err[160] = "";
    int r = pc_json_parse_object(req->entity.base, req->entity.len, PATCH_BODY_MAX, &body, err, sizeof(err));
    if (r == PC_ETOOBIG) {
        pc_http_respond_error(req, 413, "too_large", "the body is at most 4096 bytes");
        return 0;
    }
    if (r != 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "the body is a JSON object: %s", err);
        pc_http_respond_error(req, 400, "bad_json", msg);
        return 0;
    }
    const char *key, *bad = NULL;
    json_t *val;
    json_object_foreach(body, key, val)
    {
        if (strcmp(key, "title") != 0) {
            bad = "the only field a video takes is \"title\"";
            break;
        }
    }
    json_t *t = json_object_get(body, "title");
    if (bad == NULL && t == NULL)
        bad = "nothing to change: give \"title\"";
    else if (bad == NULL && (!json_is_string(t) || !title_ok(json_string_value(t), json_string_length(t))))
        bad = "the title is a string of 1 to 511 bytes without control characters";
    if (bad != NULL) {
        json_decref(body);
        pc_http_respond_error(req, 400, "bad_request", bad);
        return 0;
    }
    r = pc_db_video_set_title(o->db, id, json_string_value(t), pc_origin_now_ms());
    json_decref(body);
    if (r == PC_ENOENT) {
        pc_http_respond_error(req, 404, "not_found", "no such video");
        return 0;
    }
    if (r != 0) {
        respond_db_error(o, req, "database_error", "cannot rename the video");
        return 0;
    }
    PC_LOGI("api", "video %s renamed", id);
    if (load_video(o, req, id, &v) != 0)
        return 0;
    pc_http_respond_json(req, 200, video_json(o, &v, 1));
    pc_video_clear(&v);
    return 0;
}

static int handle_video(pc_origin *o, h2o_req_t *req, const char *id)
{
    if (pc_http_req_method_is(req, "PATCH"))
        return handle_patch(o, req, id);
    if (pc_http_req_method_is(req, "DELETE")) {
        pc_video v;
        if (load_video_authorized(o, req, id, "deleting a video", &v) != 0)
            return 0;
        pc_pipeline_cancel_video(o->pipeline, id);
        int r = pc_db_video_delete(o->db, id);
        if (r != 0) {
            pc_video_clear(&v);
            respond_db_error(o, req, "database_error", "the video could not be deleted");
            return 0;
        }
        r = pc_media_remove(o->media, id, v.source);
        pc_video_clear(&v);
        if (r != 0) {
            pc_http_respond_error(req, 500, "io_error", "the video could not be removed completely");
            return 0;
        }
        PC_LOGI("api", "deleted video %s", id);
        pc_http_respond(req, 204, NULL, "", 0);
        return 0;
    }
    if (!pc_http_req_method_is(req, "GET") && !pc_http_req_method_is(req, "HEAD")) {
        pc_http_add_header(req, "allow", "GET, HEAD, PATCH, DELETE, OPTIONS");
        pc_http_respond_error(req, 405, "method_not_allowed", "videos take GET, PATCH and DELETE");
        return 0;
    }
    pc_video v;
    if (load_video(o, req, id, &v) != 0)
        return 0;
    json_t *j = video_json(o, &v, pc_origin_authorized(o, req));
    pc_video_clear(&v);
    pc_http_respond_json(req, 200, j);
    return 0;
}

#define API_CORS_HEADERS "Authorization, Content-Type" /* what a page sends the API */

int pc_origin_api_preflight(h2o_req_t *req, const char *methods)
{
    /* a browser asks before a request with Authorization or a JSON body, or a DELETE */
    return pc_http_preflight(req, methods, API_CORS_HEADERS);
}

int pc_origin_api_route(void *user, h2o_req_t *req)
{
    pc_origin *o = user;
    h2o_iovec_t path = pc_http_req_path(req);
    int fixed = h2o_memis(path.base, path.len, H2O_STRLIT("/api/origin-key")) ||
                h2o_memis(path.base, path.len, H2O_STRLIT("/api/health"));
    if (fixed && pc_http_get_only(req, API_CORS_HEADERS, "this resource takes GET"))
        return 0;
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/api/origin-key"))) {
        char b64[64];
        pc_b64_encode(o->origin_pk, sizeof(o->origin_pk), b64, 0);
        pc_http_respond_json(req, 200, json_pack("{s:s}", "ed25519", b64));
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/api/health"))) {
        pc_blobcache_stats cs;
        size_t held = 0;
        pc_media_cache_stats(o->media, &cs, &held);
        pc_http_respond_json(req, 200,
                             json_pack("{s:b s:{s:I s:I s:I s:I s:I}}", "ok", 1, "cache", "entries", (json_int_t)cs.entries,
                                       "bytes", (json_int_t)cs.bytes, "hits", (json_int_t)cs.hits, "misses",
                                       (json_int_t)cs.misses, "held_out", (json_int_t)held));
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/api/videos")) ||
        h2o_memis(path.base, path.len, H2O_STRLIT("/api/videos/"))) {
        if (pc_http_get_only(req, API_CORS_HEADERS, "the catalog takes GET"))
            return 0;
        return handle_list(o, req);
    }
    static const char pfx[] = "/api/videos/", retry[] = "/retry", subtitles[] = "/subtitles";
    if (path.len > sizeof(pfx) - 1 && memcmp(path.base, pfx, sizeof(pfx) - 1) == 0) {
        const char *id = path.base + sizeof(pfx) - 1;
        size_t idlen = path.len - (sizeof(pfx) - 1);
        /* /api/videos/ID/subtitles/TRACK: one track ("s1": a letter and up to 15 digits) */
        if (idlen > PC_ID_LEN + sizeof(subtitles) && memcmp(id + PC_ID_LEN, subtitles, sizeof(subtitles) - 1) == 0 &&
            id[PC_ID_LEN + sizeof(subtitles) - 1] == '/') {
            const char *tr = id + PC_ID_LEN + sizeof(subtitles);
            size_t tl = idlen - PC_ID_LEN - sizeof(subtitles);
            if (pc_origin_api_preflight(req, "DELETE, OPTIONS"))
                return 0;
            char idbuf[PC_ID_LEN + 1], track[17];
            int ok = pc_id_valid(id, PC_ID_LEN) && tl >= 2 && tl < sizeof(track) && tr[0] == 's';
            for (size_t k = 1; ok && k < tl; k++)
                ok = tr[k] >= '0' && tr[k] <= '9';
            if (!ok) {
                pc_http_respond_error(req, 404, "not_found", "no such video or subtitle track");
                return 0;
            }
            memcpy(idbuf, id, PC_ID_LEN);
            idbuf[PC_ID_LEN] = '\0';
            memcpy(track, tr, tl);
            track[tl] = '\0';
            return handle_remove_subtitles(o, req, idbuf, track);
        }
        int is_retry = idlen > sizeof(retry) - 1 && memcmp(id + idlen - (sizeof(retry) - 1), retry, sizeof(retry) - 1) == 0;
        int is_subs = idlen > sizeof(subtitles) - 1 &&
                      memcmp(id + idlen - (sizeof(subtitles) - 1), subtitles, sizeof(subtitles) - 1) == 0;
        if (is_retry)
            idlen -= sizeof(retry) - 1;
        if (is_subs)
            idlen -= sizeof(subtitles) - 1;
        if (pc_origin_api_preflight(req, is_retry || is_subs ? "POST, OPTIONS" : "GET, HEAD, PATCH, DELETE, OPTIONS"))
            return 0;
        if (!pc_id_valid(id, idlen)) {
            pc_http_respond_error(req, 404, "not_found", "no such video");
            return 0;
        }
        char idbuf[PC_ID_LEN + 1];
        memcpy(idbuf, id, PC_ID_LEN);
        idbuf[PC_ID_LEN] = '\0';
        return is_retry ? handle_retry(o, req, idbuf) : is_subs ? handle_add_subtitles(o, req, idbuf) : handle_video(o, req, idbuf);
    }
    return -1;
}
