/*
 * HTTP surfaces for uploads: POST /api/uploads (pre-signed creation URLs),
 * the streaming front door that serves tus requests on connections whose
 * first request is an upload, and an h2o route for tus requests arriving on
 * connections h2o already owns (bodies there are buffered by h2o, so those
 * responses ask the client to reconnect: "Connection: close").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "origin.h"
#include "pc_json.h"
#include "pc_log.h"

#define TUS_PREFIX "/tus/"
#define API_MAX_BODY (1 << 20) /* bodies of non-upload requests (the API takes none larger) */

/* ---- authorization ---- */

int pc_origin_authorized(pc_origin *o, h2o_req_t *req)
{
    h2o_iovec_t a = pc_http_req_header(req, "authorization");
    size_t tl = strlen(o->cfg.upload_token);
    if (a.base == NULL || a.len != 7 + tl || strncasecmp(a.base, "Bearer ", 7) != 0)
        return 0;
    return pc_ct_equal(a.base + 7, o->cfg.upload_token, tl);
}

/* ---- POST /api/uploads ---- */

int pc_origin_uploads_api(void *user, h2o_req_t *req)
{
    pc_origin *o = user;
    h2o_iovec_t path = pc_http_req_path(req);
    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/api/uploads")))
        return -1;
    if (pc_origin_api_preflight(req, "POST, OPTIONS"))
        return 0;
    if (!pc_http_req_method_is(req, "POST")) {
        pc_http_add_header(req, "allow", "POST, OPTIONS");
        pc_http_respond_error(req, 405, "method_not_allowed", "use POST to request an upload URL");
        return 0;
    }
    if (!pc_origin_authorized(o, req)) {
        pc_http_add_header(req, "www-authenticate", "Bearer");
        pc_http_respond_error(req, 401, "unauthorized", "a valid 'Authorization: Bearer <upload token>' is required");
        return 0;
    }
    char host[256] = "";
    h2o_iovec_t hv = pc_http_req_host(req);
    if (hv.len > 0 && hv.len < sizeof(host))
        memcpy(host, hv.base, hv.len);
    if (o->cfg.public_url == NULL && !pc_tus_host_valid(host)) {
        pc_http_respond_error(req, 400, "bad_host", "the Host header must be a host name or address (and port)");
        return 0;
    }
    int64_t expires = 0;
    char *url = pc_tus_creation_url(o->tus, host, &expires);
    if (url == NULL) {
        pc_http_respond_error(req, 500, "out_of_memory", "out of memory");
        return 0;
    }
    json_t *body = json_pack("{s:s, s:I, s:I, s:s}", "upload_url", url, "expires", (json_int_t)expires, "max_size",
                             (json_int_t)PC_MAX_UPLOAD_SIZE, "protocol", "tus 1.0.0");
    free(url);
    req->http1_is_persistent = 0; /* the tus requests that follow should open a front-door connection */
    pc_http_respond_json(req, 201, body);
    return 0;
}

/* ---- front door (streaming) ---- */

struct fd_req {
    pc_tus_op *op;
    pc_hs_conn *conn;
};

static const char *hs_header(void *ctx, const char *name, size_t *len)
{
    return pc_hs_header_get(ctx, name, len);
}

static size_t hs_count(void *ctx, const char *name)
{
    const pc_hs_request *hr = ctx;
    size_t n = 0, nl = strlen(name);
    for (size_t i = 0; i < hr->nheaders; i++)
        n += hr->headers[i].name_len == nl && memcmp(hr->headers[i].name, name, nl) == 0;
    return n;
}

static void respond_hs(pc_hs_conn *c, pc_tus_reply *r)
{
    const char *hdrs[2 * PC_TUS_MAX_HEADERS];
    for (size_t i = 0; i < r->nheaders; i++) {
        hdrs[2 * i] = r->names[i];
        hdrs[2 * i + 1] = r->values[i];
    }
    pc_hs_respond(c, r->status, hdrs, r->nheaders, r->body != NULL ? "application/json" : NULL, r->body, r->body_len);
    pc_tus_reply_clear(r);
}

static void fd_resume(void *arg)
{
    struct fd_req *fr = arg;
    pc_hs_resume(fr->conn);
}

static int fd_on_head(void *user, pc_hs_conn *c, const pc_hs_request *hr)
{
    pc_origin *o = user;
    PC_LOGD("http", "%s: %s %.*s", hr->peer, hr->method, (int)hr->path_len, hr->target);
    /* a target in absolute form (http://host/tus/...) is the upload it names, as h2o takes it (before, a
     * PATCH in that form went h2o's buffered way, limited to 1 MiB) */
    const char *target = hr->target;
    size_t path_len = hr->path_len;
    size_t skip = path_len >= 7 && strncasecmp(target, "http://", 7) == 0    ? 7
                  : path_len >= 8 && strncasecmp(target, "https://", 8) == 0 ? 8
                                                                             : 0;
    const char *slash = skip > 0 ? memchr(target + skip, '/', path_len - skip) : NULL;
    if (slash != NULL) {
        path_len -= (size_t)(slash - target);
        target = slash;
    }
    if (path_len < sizeof(TUS_PREFIX) - 2 || strncmp(target, TUS_PREFIX, sizeof(TUS_PREFIX) - 2) != 0) {
        /* not an upload: h2o serves this connection, unless the body is over the API's limit */
        static const char *const h[] = {"Access-Control-Allow-Origin", "*"};
        if (hr->content_length < 0) { /* chunked: its size is known only at its end */
            static const char body[] = "{\"code\":\"length_required\",\"message\":\"request bodies outside uploads "
                                       "need a Content-Length (of at most 1 MiB)\"}";
            pc_hs_respond(c, 411, h, 1, "application/json", body, sizeof(body) - 1);
            return 1;
        }
        if (hr->content_length > API_MAX_BODY) {
            static const char body[] = "{\"code\":\"too_large\",\"message\":\"request bodies outside uploads are limited to 1 MiB\"}";
            pc_hs_respond(c, 413, h, 1, "application/json", body, sizeof(body) - 1);
            return 1;
        }
        return 0;
    }
    pc_tus_request tr = {hr->method, target, path_len, hr->content_length, hs_header, (void *)hr, hs_count};
    pc_tus_reply early;
    pc_tus_op *op = NULL;
    if (pc_tus_begin(o->tus, &tr, &early, &op)) {
        respond_hs(c, &early);
        return 1;
    }
    struct fd_req *fr = calloc(1, sizeof(*fr));
    if (fr == NULL) {
        pc_tus_op_finish(op, 0, NULL, NULL);
        static const char *const h[] = {"Tus-Resumable", "1.0.0"};
        pc_hs_respond(c, 503, h, 1, "application/json", "{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}", 50);
        return 1;
    }
    fr->op = op;
    fr->conn = c;
    pc_tus_op_set_resume(op, fd_resume, fr);
    pc_hs_set_data(c, fr);
    return 1;
}

static int fd_on_body(void *user, pc_hs_conn *c, const char *data, size_t len)
{
    struct fd_req *fr = pc_hs_get_data(c);
    if (fr == NULL)
        return 0;
    int pause = 0;
    pc_tus_reply r;
    if (pc_tus_op_body(fr->op, data, len, &pause, &r)) {
        pc_hs_set_data(c, NULL);
        pc_tus_op_finish(fr->op, 0, NULL, NULL);
        free(fr);
        respond_hs(c, &r);
        return 0;
    }
    return pause;
}

static void fd_done(void *arg, pc_tus_reply *r)
{
    struct fd_req *fr = arg;
    respond_hs(fr->conn, r);
    free(fr);
}

static void fd_on_end(void *user, pc_hs_conn *c, int complete)
{
    struct fd_req *fr = pc_hs_get_data(c);
    if (fr == NULL)
        return;
    pc_hs_set_data(c, NULL);
    if (complete) {
        pc_tus_op_finish(fr->op, 1, fd_done, fr);
    } else {
        pc_tus_op_finish(fr->op, 0, NULL, NULL);
        free(fr);
    }
}

int pc_origin_accept_hook(void *user, pc_http_server *srv, h2o_socket_t *sock)
{
    pc_origin *o = user;
    pc_hs_attach(o->hs, srv, sock);
    return 1;
}

/* ---- tus on h2o-owned connections ---- */

struct h2o_tus {
    h2o_req_t *req; /* NULL once the client is gone */
    void *guard;
    pc_tus_op *op;
    size_t fed;
    int finishing;
};

static const char *h2o_header(void *ctx, const char *name, size_t *len)
{
    h2o_req_t *req = ctx;
    if (strcmp(name, "host") == 0) {
        h2o_iovec_t v = pc_http_req_host(req);
        *len = v.len;
        return v.base;
    }
    h2o_iovec_t v = pc_http_req_header(req, name);
    *len = v.len;
    return v.base;
}

static size_t h2o_count(void *ctx, const char *name)
{
    h2o_req_t *req = ctx;
    size_t n = 0, nl = strlen(name);
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_iovec_t *hn = req->headers.entries[i].name;
        n += hn->len == nl && strncasecmp(hn->base, name, nl) == 0;
    }
    return n;
}

static void respond_h2o(h2o_req_t *req, pc_tus_reply *r)
{
    for (size_t i = 0; i < r->nheaders; i++)
        pc_http_add_header(req, r->names[i], r->values[i]);
    req->http1_is_persistent = 0;
    static h2o_generator_t gen = {NULL, NULL};
    req->res.status = r->status;
    req->res.reason = pc_http_reason(r->status);
    /* a 204 (or 304) carries no Content-Length, not even 0 (RFC 9110 8.6), as on the front door */
    int bodyless = r->status == 204 || r->status == 304;
    req->res.content_length = bodyless ? SIZE_MAX : r->body_len;
    if (r->body != NULL && !bodyless)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_iovec_t b = h2o_strdup(&req->pool, r->body != NULL ? r->body : "", r->body_len);
    h2o_start_response(req, &gen);
    h2o_send(req, &b, r->body_len > 0 && !bodyless && !pc_http_req_method_is(req, "HEAD") ? 1 : 0,
             H2O_SEND_STATE_FINAL);
    pc_tus_reply_clear(r);
}

static void h2o_tus_done(void *arg, pc_tus_reply *r)
{
    struct h2o_tus *ht = arg;
    if (ht->req != NULL) {
        pc_http_req_unguard(ht->guard);
        respond_h2o(ht->req, r);
    } else {
        pc_tus_reply_clear(r);
    }
    free(ht);
}

static void h2o_tus_feed(void *arg)
{
    struct h2o_tus *ht = arg;
    if (ht->req == NULL) {
        pc_tus_op_finish(ht->op, 0, NULL, NULL);
        free(ht);
        return;
    }
    h2o_iovec_t e = ht->req->entity;
    while (e.base != NULL && ht->fed < e.len) {
        size_t n = e.len - ht->fed;
        if (n > 256 * 1024)
            n = 256 * 1024;
        int pause = 0;
        pc_tus_reply r;
        if (pc_tus_op_body(ht->op, e.base + ht->fed, n, &pause, &r)) {
            pc_tus_op_finish(ht->op, 0, NULL, NULL);
            pc_http_req_unguard(ht->guard);
            respond_h2o(ht->req, &r);
            free(ht);
            return;
        }
        ht->fed += n;
        if (pause)
            return; /* resumed by the op */
    }
    pc_tus_op_finish(ht->op, 1, h2o_tus_done, ht);
}

int pc_origin_tus_route(void *user, h2o_req_t *req)
{
    pc_origin *o = user;
    char method[16], *target;
    snprintf(method, sizeof(method), "%.*s", (int)req->method.len, req->method.base);
    target = h2o_mem_alloc_pool(&req->pool, req->path.len + 1);
    memcpy(target, req->path.base, req->path.len);
    target[req->path.len] = '\0';
    int64_t clen = req->entity.base != NULL ? (int64_t)req->entity.len : 0;
    pc_tus_request tr = {method, target, pc_http_req_path(req).len, clen, h2o_header, req, h2o_count};
    pc_tus_reply early;
    pc_tus_op *op = NULL;
    if (pc_tus_begin(o->tus, &tr, &early, &op)) {
        respond_h2o(req, &early);
        return 0;
    }
    struct h2o_tus *ht = calloc(1, sizeof(*ht));
    if (ht == NULL || pc_http_req_guard(req, &ht->req, &ht->guard) != 0) {
        free(ht);
        pc_tus_op_finish(op, 0, NULL, NULL);
        pc_http_respond_error(req, 503, "out_of_memory", "out of memory");
        return 0;
    }
    ht->op = op;
    pc_tus_op_set_resume(op, h2o_tus_feed, ht);
    h2o_tus_feed(ht);
    return 0;
}

int pc_origin_uploads_init(pc_origin *o)
{
    /* as every tus answer (the spec asks it of each one) and every API answer (a page's upload reads it) */
    static const char *const error_headers[] = {"Tus-Resumable", "1.0.0", "Access-Control-Allow-Origin", "*"};
    pc_hs_handler h = {
        .error_headers = error_headers,
        .nerror_headers = 2,
        .on_head = fd_on_head,
        .on_body = fd_on_body,
        .on_end = fd_on_end,
        .max_head = 16384,
        .body_timeout_ms = 60000,
        .idle_timeout_ms = (uint64_t)o->cfg.idle_timeout_s * 1000,
    };
    o->hs = pc_hs_new(&h, o);
    return o->hs != NULL ? 0 : PC_ENOMEM;
}
