/*
 * The origin server: shared state of peercdn-origin serve, wired together in
 * origin.c. The HTTP surfaces (uploads, API, media) and the pipeline are
 * separate modules that receive this struct.
 */
#ifndef PC_ORIGIN_H
#define PC_ORIGIN_H

#include <stdint.h>
#include <uv.h>

#include "db.h"
#include "pc_crypto.h"
#include "pc_http_server.h"
#include "pc_http_stream.h"
#include "tus.h"

#define PC_MAX_UPLOAD_SIZE ((int64_t)1 << 30) /* 1 GiB */

typedef struct pc_pipeline pc_pipeline;
typedef struct pc_media pc_media;

typedef struct pc_origin_config {
    const char *data_dir;
    const char *listen;
    const char *upload_token;
    const char *tracker_url;
    const char *tracker_key; /* base64, optional: fetched from the tracker when absent */
    const char *public_url;  /* optional base for absolute URLs */
    int workers;             /* heavy worker threads; default: number of CPUs */
    double segment_seconds;  /* default 4 */
    const char *preset;      /* x264 preset; default "veryfast" */
    int x264_threads;        /* threads per x264 encoder; default 1 */
    double crf;              /* > 0: capped CRF (quality-driven under the VBV cap); 0: ABR at the rung bitrate */
    int64_t lease_ms;        /* task lease; default 30000 */
    int signed_media;        /* require ?exp&sig on /v/ */
    int cache_mb;            /* memory for hot segments; 0 disables */
    int max_uploads;         /* upload requests with a body (and joins) at once; default 64 */
    int idle_timeout_s;      /* idle connections and slow request heads; default 30 */
    int64_t media_token_ttl_s;
    int64_t upload_ttl_s;
    int64_t creation_ttl_s;
} pc_origin_config;

typedef struct pc_origin {
    pc_origin_config cfg;
    uv_loop_t *loop;
    pc_db *db;
    pc_tus *tus;
    pc_hs *hs;
    pc_http_server *http;
    pc_pipeline *pipeline;
    pc_media *media;
    uint8_t origin_pk[PC_ED25519_PK_LEN];
    uint8_t origin_sk[PC_ED25519_SK_LEN];
    uint8_t url_key[32];   /* signs upload URLs */
    uint8_t media_key[32]; /* signs media URLs in signed mode */
    char paths_uploads[4096], paths_originals[4096], paths_work[4096], paths_media[4096], paths_trash[4096];
    int lock_fd;
    int stopping;
    int pending_stops;
    uv_signal_t sigint, sigterm, sighup; /* SIGHUP (the terminal went away) stops it as SIGTERM does */
    uv_timer_t gc_timer;
    char instance[32];
    int64_t started_s;         /* unix time */
    void *metrics_body;        /* the last /metrics document (h2o_mem_alloc_shared), or NULL */
    size_t metrics_len;
    uint64_t metrics_built_ms; /* loop time */
} pc_origin;

/* Upload surfaces (upload_http.c). */
int pc_origin_uploads_init(pc_origin *o) PC_MUST_CHECK;
int pc_origin_accept_hook(void *user, pc_http_server *srv, h2o_socket_t *sock);
int pc_origin_tus_route(void *user, h2o_req_t *req);
int pc_origin_uploads_api(void *user, h2o_req_t *req);
/* 1 when |req| carries "Authorization: Bearer <upload token>" (constant-time compare). */
int pc_origin_authorized(pc_origin *o, h2o_req_t *req);
/* Answers a CORS preflight (OPTIONS) of an API resource taking |methods| with 204 and returns 1; 0 for
 * any other method. */
int pc_origin_api_preflight(h2o_req_t *req, const char *methods);
/* Wall-clock milliseconds since the epoch (task times, video times). */
int64_t pc_origin_now_ms(void);

/* Video API (api.c). */
int pc_origin_api_route(void *user, h2o_req_t *req);

/* GET /metrics (metrics.c); pc_origin_metrics_free drops the kept document, at stop. */
int pc_origin_metrics_route(void *user, h2o_req_t *req);
void pc_origin_metrics_free(pc_origin *o);

#endif
