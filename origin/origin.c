/*
 * peercdn-origin serve: sets up the data directory (exclusive lock, keys,
 * SQLite), the HTTP server (front door for uploads, API, media) and the
 * pipeline, runs the loop, and stops gracefully on SIGINT/SIGTERM.
 *
 * Data directory layout:
 *   origin.db            metadata and task queue (SQLite, WAL)
 *   keys/                origin.ed25519 (signing key), url.key, media.key
 *   uploads/<id>         tus uploads in progress
 *   originals/<id>       completed uploads, kept for inspection and re-runs
 *   work/<id>/           pipeline scratch; work/<id>/out becomes media/<id>
 *   media/<id>/          published files served under /v/<id>/
 *   trash/               removals in progress
 */
#include "origin_main.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "media.h"
#include "pc_cli.h"
#include "pc_fs.h"
#include "pc_json.h"
#include "pc_log.h"
#include "pc_sqlite.h"
#include "pipeline.h"

int64_t pc_origin_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int utf8_valid(const char *s)
{
    json_t *j = json_string(s);
    int ok = j != NULL;
    json_decref(j);
    return ok;
}

/* |s| made a title PATCH /api/videos/{id} would accept (api.c's title_ok): the characters a title may not
 * hold (pc_title_banned_at: controls, separators, bidi overrides) become spaces, and past PC_TITLE_MAX
 * bytes it is cut at a UTF-8 character boundary. Cannot fail. */
static void title_fit(char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0, k; i < n; i++)
        for (k = pc_title_banned_at(s + i, n - i); k > 0; k--)
            s[i + k - 1] = ' ';
    if (n > PC_TITLE_MAX) {
        n = PC_TITLE_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) /* s[n] continues the character before it */
            n--;
        s[n] = '\0';
    }
}

/* Inside the transaction that records the completed upload: the video is created with it. */
static int on_upload_complete(void *user, const pc_upload *u, const char *final_path)
{
    pc_origin *o = user;
    /* a metadata value is at most PC_TUS_MAX_METADATA bytes of base64, so its bytes fit (a NUL in them ends
     * the title); the title is then fitted to PC_TITLE_MAX (before, a longer one failed to decode into a
     * buffer of that size and the file name was taken instead) */
    char title[PC_TUS_MAX_METADATA + 1] = "";
    if (u->metadata != NULL) {
        size_t ml = strlen(u->metadata);
        if (pc_tus_metadata_get(u->metadata, ml, "title", title, sizeof(title)) != 0 &&
            pc_tus_metadata_get(u->metadata, ml, "filename", title, sizeof(title)) != 0 &&
            pc_tus_metadata_get(u->metadata, ml, "name", title, sizeof(title)) != 0)
            title[0] = '\0';
    }
    title_fit(title);
    if (title[0] == '\0' || !utf8_valid(title))
        snprintf(title, sizeof(title), "untitled");
    int r = pc_db_video_create(o->db, u->id, title, final_path, u->length, pc_origin_now_ms());
    if (r != 0) {
        PC_LOGE("origin", "cannot create video %s: %s", u->id, pc_strerror(r));
        return r;
    }
    PC_LOGI("origin", "video %s (%s, %" PRId64 " bytes) queued", u->id, title, u->length);
    pc_pipeline_kick(o->pipeline);
    return 0;
}

static void on_gc(uv_timer_t *t)
{
    pc_origin *o = t->data;
    pc_tus_gc(o->tus);
}

/* ---- shutdown ---- */

static void on_closed_handle(uv_handle_t *h)
{
    (void)h;
}

static void stop_done(void *arg)
{
    pc_origin *o = arg;
    if (--o->pending_stops > 0)
        return;
    uv_close((uv_handle_t *)&o->sigint, on_closed_handle);
    uv_close((uv_handle_t *)&o->sigterm, on_closed_handle);
    uv_close((uv_handle_t *)&o->sighup, on_closed_handle);
    pc_cli_ignore_stop_signals();
    uv_close((uv_handle_t *)&o->gc_timer, on_closed_handle);
}

static void begin_stop(pc_origin *o)
{
    if (o->stopping)
        return;
    o->stopping = 1;
    PC_LOGI("origin", "stopping");
    pc_db_busy_wait(o->db, PC_SQLITE_BUSY_MS); /* the last records wait as long as at start */
    uv_timer_stop(&o->gc_timer);
    o->pending_stops = 2;
    pc_hs_shutdown(o->hs);
    pc_http_server_close(o->http, stop_done, o);
    pc_pipeline_stop(o->pipeline, stop_done, o);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    begin_stop(s->data);
}

/* Removes leftovers: the trash, and the media and work directories, originals and added subtitle files
 * of videos that no longer exist (a DELETE commits the rows first, then removes the files: an origin killed in between left them,
 * up to a GiB of original for good). An original's row is committed before the file is moved there. */
static void cleanup_dirs(pc_origin *o)
{
    if (pc_rmtree(o->paths_trash) != 0)
        PC_LOGW("origin", "cannot empty %s", o->paths_trash);
    if (pc_mkdirs(o->paths_trash) != 0)
        PC_LOGW("origin", "cannot create %s", o->paths_trash);
    const char *dirs[] = {o->paths_media, o->paths_work, o->paths_originals};
    for (int i = 0; i < 3; i++) {
        DIR *d = opendir(dirs[i]);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            /* an id, or in originals an id's added subtitle file (ID.subN) */
            size_t nl = strlen(e->d_name);
            int added = i == 2 && nl > PC_ID_LEN + 4 && memcmp(e->d_name + PC_ID_LEN, ".sub", 4) == 0 &&
                        strspn(e->d_name + PC_ID_LEN + 4, "0123456789") == nl - PC_ID_LEN - 4;
            if (!pc_id_valid(e->d_name, added ? PC_ID_LEN : nl))
                continue;
            char vid[PC_ID_LEN + 1];
            snprintf(vid, sizeof(vid), "%.*s", PC_ID_LEN, e->d_name);
            pc_video v;
            int r = pc_db_video_get(o->db, vid, &v);
            if (r == 0) {
                pc_video_clear(&v);
                continue;
            }
            if (r != PC_ENOENT)
                continue;
            char path[4300];
            snprintf(path, sizeof(path), "%s/%s", dirs[i], e->d_name);
            PC_LOGW("origin", "removing %s: its video no longer exists", path);
            if (pc_rmtree(path) != 0)
                PC_LOGW("origin", "cannot remove %s", path);
        }
        if (d != NULL)
            closedir(d);
    }
}

int pc_origin_serve(const pc_origin_config *cfg)
{
    pc_origin *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return 1;
    o->cfg = *cfg;
    o->lock_fd = -1;
    int rc = 1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    o->loop = &loop;
    char path[4200];
    snprintf(o->paths_uploads, sizeof(o->paths_uploads), "%s/uploads", cfg->data_dir);
    snprintf(o->paths_originals, sizeof(o->paths_originals), "%s/originals", cfg->data_dir);
    snprintf(o->paths_work, sizeof(o->paths_work), "%s/work", cfg->data_dir);
    snprintf(o->paths_media, sizeof(o->paths_media), "%s/media", cfg->data_dir);
    snprintf(o->paths_trash, sizeof(o->paths_trash), "%s/trash", cfg->data_dir);
    snprintf(path, sizeof(path), "%s/keys", cfg->data_dir);
    const char *dirs[] = {cfg->data_dir, path, o->paths_uploads, o->paths_originals, o->paths_work, o->paths_media,
                          o->paths_trash};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        int r = pc_mkdirs(dirs[i]);
        if (r != 0) {
            pc_cli_error("cannot create the data directory %s: %s", dirs[i],
                    r == PC_EEXIST ? "a file that is not a directory is in the way" : pc_strerror(r));
            goto out;
        }
    }
    /* uploads become originals, work becomes media, and removals go to trash by rename(2), which cannot
     * cross file systems: a directory mounted on its own would lose every upload at its hand-over */
    struct stat first;
    for (size_t i = 2; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        struct stat sb;
        if (stat(dirs[i], &sb) != 0) {
            pc_cli_error("cannot use the data directory %s: %s", dirs[i], strerror(errno));
            goto out;
        }
        if (i == 2)
            first = sb;
        else if (sb.st_dev != first.st_dev) {
            pc_cli_error("%s and %s are on different file systems; files move between them by rename, so mount "
                         "the data directory as one",
                         dirs[2], dirs[i]);
            goto out;
        }
    }
    snprintf(path, sizeof(path), "%s/.lock", cfg->data_dir);
    o->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (o->lock_fd < 0) {
        pc_cli_error("cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    if (flock(o->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        pc_cli_error("%s is in use by another origin process", cfg->data_dir);
        goto out;
    }
    int r;
    snprintf(path, sizeof(path), "%s/keys/origin.ed25519", cfg->data_dir);
    if ((r = pc_ed25519_load_or_create(path, o->origin_pk, o->origin_sk)) != 0) {
        pc_cli_error("cannot load the origin key %s: %s", path, pc_strerror(r));
        goto out;
    }
    snprintf(path, sizeof(path), "%s/keys/url.key", cfg->data_dir);
    if ((r = pc_secret_load_or_create(path, o->url_key, sizeof(o->url_key))) != 0) {
        pc_cli_error("cannot load %s: %s", path, pc_strerror(r));
        goto out;
    }
    snprintf(path, sizeof(path), "%s/keys/media.key", cfg->data_dir);
    if ((r = pc_secret_load_or_create(path, o->media_key, sizeof(o->media_key))) != 0) {
        pc_cli_error("cannot load %s: %s", path, pc_strerror(r));
        goto out;
    }
    snprintf(path, sizeof(path), "%s/origin.db", cfg->data_dir);
    if ((r = pc_db_open(path, &o->db)) != 0) {
        pc_cli_error("cannot open the database %s: %s", path, pc_err_detail());
        goto out;
    }
    cleanup_dirs(o);
    pc_random_id(o->instance, 16);
    o->started_s = (int64_t)time(NULL);

    pc_tus_config tc = {
        .loop = o->loop,
        .db = o->db,
        .upload_dir = o->paths_uploads,
        .done_dir = o->paths_originals,
        .url_key = o->url_key,
        .base_path = "/tus/",
        .public_base = cfg->public_url,
        .max_size = PC_MAX_UPLOAD_SIZE,
        .creation_ttl_s = cfg->creation_ttl_s,
        .upload_ttl_s = cfg->upload_ttl_s,
        .min_free_bytes = 64 << 20,
        .max_ops = (size_t)cfg->max_uploads,
        .on_complete = on_upload_complete,
        .user = o,
    };
    o->tus = pc_tus_new(&tc);
    o->media = pc_media_new(o);
    o->pipeline = pc_pipeline_new(o);
    if (o->tus == NULL || o->media == NULL || o->pipeline == NULL || pc_origin_uploads_init(o) != 0) {
        pc_cli_error("out of memory");
        goto out;
    }
    if (pc_tus_recover(o->tus) > 0)
        PC_LOGW("origin", "finished moving completed uploads interrupted by a previous run");
    pc_http_server_config hc = {
        /* what h2o buffers of any request it parses (bodies to /tus/ stream through the front door) */
        .max_request_body = 1 << 20,
        .idle_timeout_ms = (uint64_t)o->cfg.idle_timeout_s * 1000,
        .accept_hook = pc_origin_accept_hook,
        .accept_hook_user = o,
    };
    o->http = pc_http_server_new(o->loop, &hc);
    if (o->http == NULL || pc_http_server_route(o->http, "/tus", pc_origin_tus_route, o) != 0 ||
        pc_http_server_route(o->http, "/api/uploads", pc_origin_uploads_api, o) != 0 ||
        pc_http_server_route(o->http, "/api/", pc_origin_api_route, o) != 0 ||
        pc_http_server_route(o->http, "/v/", pc_media_route, o->media) != 0 ||
        pc_http_server_route(o->http, "/metrics", pc_origin_metrics_route, o) != 0) {
        pc_cli_error("out of memory");
        goto out;
    }
    char bound[80];
    if ((r = pc_http_server_listen(o->http, cfg->listen, bound, sizeof(bound))) != 0) {
        pc_cli_error("cannot listen on %s: %s", cfg->listen, pc_err_detail());
        goto out;
    }
    pc_err_detail_set("%s", "");
    if ((r = pc_pipeline_start(o->pipeline)) != 0) {
        pc_cli_error("cannot start the pipeline: %s", pc_err_detail()[0] != '\0' ? pc_err_detail() : pc_strerror(r));
        goto out;
    }
    /* serving: the loop waits with any statement, so another program's lock (an operator's sqlite3, a
     * backup) costs a request 25 ms and a 503 to retry, not the whole origin for seconds */
    pc_db_busy_wait(o->db, PC_ORIGIN_SERVE_BUSY_MS);
    uv_signal_init(o->loop, &o->sigint);
    uv_signal_init(o->loop, &o->sigterm);
    uv_signal_init(o->loop, &o->sighup);
    o->sigint.data = o->sigterm.data = o->sighup.data = o;
    uv_signal_start(&o->sigint, on_signal, SIGINT);
    uv_signal_start(&o->sigterm, on_signal, SIGTERM);
    if (!pc_cli_sighup_ignored()) /* under nohup it stays ignored */
        uv_signal_start(&o->sighup, on_signal, SIGHUP);
    uv_timer_init(o->loop, &o->gc_timer);
    o->gc_timer.data = o;
    uv_timer_start(&o->gc_timer, on_gc, 1000, 60000);
    printf("peercdn-origin listening on http://%s (data %s, %d workers)\n", bound, cfg->data_dir, cfg->workers);
    if (strlen(cfg->upload_token) < 16) /* said once serving, so a start-up failure stays one line */
        PC_LOGW("origin", "the upload token has %zu characters: anyone who guesses it can upload and delete videos "
                          "(32 random characters: openssl rand -hex 16)", strlen(cfg->upload_token));
    if (cfg->signed_media && cfg->tracker_url != NULL && cfg->tracker_key != NULL)
        /* with the key fetched, each video's sign task checks the tracker's media key (sign.c) */
        PC_LOGW("origin", "--signed-media guards HTTP delivery; the swarm of --tracker keeps to viewers with a media "
                          "token only if that tracker runs with --media-key %s/keys/media.key (docs/peer.md)", cfg->data_dir);
    fflush(stdout);
    pc_raise_nofile("origin");
    uv_run(o->loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    if (o->http != NULL && !o->stopping) {
        /* failed start: close what was opened */
        o->stopping = 1;
        pc_pipeline_stop(o->pipeline, NULL, NULL);
        pc_http_server_close(o->http, NULL, NULL);
        uv_run(o->loop, UV_RUN_DEFAULT);
    }
    pc_origin_metrics_free(o);
    pc_http_server_free(o->http);
    if (o->hs != NULL)
        pc_hs_free(o->hs);
    pc_pipeline_free(o->pipeline);
    pc_tus_free(o->tus);
    pc_media_free(o->media);
    pc_db_close(o->db);
    uv_run(o->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(o->loop) != 0)
        PC_LOGW("origin", "event loop closed with handles still open");
    if (o->lock_fd >= 0)
        close(o->lock_fd);
    sodium_memzero(o->origin_sk, sizeof(o->origin_sk));
    free(o);
    if (rc == 0)
        PC_LOGI("origin", "stopped");
    return rc;
}
