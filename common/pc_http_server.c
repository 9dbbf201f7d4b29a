/*
 * h2o glue: one globalconf + context per server, a single root handler that
 * dispatches to prefix routes, libuv listeners, connection accounting for a
 * graceful close, and the accept hook used by streaming front doors.
 */
#include "pc_http_server.h"
#include "pc_http_stream.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "pc_crypto.h"
#include "pc_json.h"
#include "pc_log.h"
#include "pc_num.h"
#include "pc_tcpinfo.h"
#include "pc_http_util.h"

#define MAX_LISTENERS 4
/* a stop waits this long for connections to finish, then cuts the rest (docker stop waits 10 s) */
#define CLOSE_GRACE_MS 5000

struct route {
    char *prefix;
    size_t len;
    pc_http_handler_fn fn;
    void *user;
};

struct root_handler {
    h2o_handler_t super;
    pc_http_server *srv;
};

struct conn_handle {
    uv_tcp_t tcp; /* first: h2o's close callback receives this handle */
    pc_http_server *srv;
    struct conn_handle *prev, *next; /* pc_http_server.conns */
    size_t queued;                   /* bytes waiting in libuv and unacknowledged in the kernel, at the last sweep */
    uint64_t still_since;            /* ms (loop time) since when that has been the same, and not 0 */
    uint64_t moved;                  /* bytes the client acknowledged plus bytes it sent, at the last sweep */
    uint64_t moved_since;            /* ms (loop time) since when that has been the same */
    int cut;
};

struct pc_http_server {
    uv_loop_t *loop;
    pc_http_server_config cfg;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    int ctx_ready;
    int ctx_disposed;
    struct route *routes;
    size_t nroutes;
    uv_tcp_t listeners[MAX_LISTENERS];
    size_t nlisteners;
    size_t open_handles; /* listeners still closing */
    size_t live;         /* accepted connections not yet closed */
    struct conn_handle *conns; /* the same, listed */
    uv_timer_t stall_timer;    /* cuts connections whose writes have not moved for stall_ms */
    uint64_t stall_ms;
    int closing;
    uint64_t close_deadline; /* loop time (ms) after which a stop cuts what is still open */
    uv_timer_t close_timer;
    uv_check_t filecache_check; /* clears h2o's open-file cache after every loop iteration */
    void (*close_cb)(void *);
    void *close_arg;
    uint64_t responses[PC_HTTP_STATUS_MAX + 1]; /* by status; [0]: requests that ended unanswered */
    uint64_t response_bytes;
};

/* A request line in absolute form (RFC 9112 3.2.2: "GET http://host/path HTTP/1.1", which servers must
 * accept though only proxies are sent it): its path is what follows the authority. h2o 2.2 keeps the
 * whole URL as the path. Returns 0, or -1 when there is no path after the authority. */
static int strip_absolute_form(h2o_req_t *req)
{
    size_t skip = req->path.len >= 7 && strncasecmp(req->path.base, "http://", 7) == 0    ? 7
                  : req->path.len >= 8 && strncasecmp(req->path.base, "https://", 8) == 0 ? 8
                                                                                          : 0;
    if (skip == 0)
        return 0;
    const char *slash = memchr(req->path.base + skip, '/', req->path.len - skip);
    if (slash == NULL)
        return -1;
    req->path = h2o_iovec_init(slash, req->path.len - (size_t)(slash - req->path.base));
    size_t query_at = SIZE_MAX;
    req->path_normalized = h2o_url_normalize_path(&req->pool, req->path.base, req->path.len, &query_at,
                                                  &req->norm_indexes);
    req->query_at = query_at;
    return 0;
}

static int on_root_req(h2o_handler_t *self, h2o_req_t *req)
{
    pc_http_server *srv = ((struct root_handler *)self)->srv;
    if (strip_absolute_form(req) != 0) {
        pc_http_respond_error(req, 400, "bad_request", "an absolute request target without a path");
        return 0;
    }
    /* the front door's limits on every request, not only a connection's first (h2o's own allow heads
     * of about 400 KB and 100 headers, which a later request on a kept-alive connection had) */
    size_t head = req->method.len + req->path.len + req->authority.len;
    for (size_t i = 0; i < req->headers.size; i++)
        head += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (req->headers.size > PC_HS_MAX_HEADERS || head > PC_HTTP_HEAD_MAX) {
        pc_http_respond_error(req, 431, "headers_too_large", "request head exceeds the server's limit");
        return 0;
    }
    h2o_iovec_t path = req->path_normalized;
    for (size_t i = 0; i < srv->nroutes; i++) {
        struct route *r = &srv->routes[i];
        if (path.len >= r->len && memcmp(path.base, r->prefix, r->len) == 0 && r->fn(r->user, req) == 0)
            return 0;
    }
    pc_http_respond_error(req, 404, "not_found", "no such resource");
    return 0;
}

/*
 * h2o answers some requests itself before any handler sees them (a broken Content-Length or
 * Transfer-Encoding, an unknown Expect, a body over max_request_entity_size) with a text/plain body.
 * Our handlers never send text/plain errors, so a filter turns those into the {code, message} shape
 * every other error has, keeping h2o's text as the message. (A request line or header that does not
 * parse at all is still answered by h2o's fixed "400 Bad Request" text: it is written to the socket
 * without passing through any filter.)
 */
struct json_error_ostream {
    h2o_ostream_t super;
    h2o_iovec_t text; /* h2o's body so far, in the request's pool */
};

static const char *status_code_name(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "timeout";
    case 411: return "length_required";
    case 413: return "too_large";
    case 414: return "uri_too_long";
    case 417: return "expectation_failed";
    case 431: return "headers_too_large";
    case 501: return "not_implemented";
    case 502: return "bad_gateway";
    case 503: return "unavailable";
    default: return status >= 500 ? "internal_error" : "bad_request";
    }
}

static void json_error_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                               h2o_send_state_t state)
{
    struct json_error_ostream *os = (struct json_error_ostream *)self;
    size_t add = 0;
    for (size_t i = 0; i < bufcnt; i++)
        add += bufs[i].len;
    if (os->text.len + add > 4096) /* h2o's messages are a line; more is cut */
        add = 4096 - os->text.len;
    if (add != 0) {
        char *t = h2o_mem_alloc_pool(&req->pool, os->text.len + add);
        if (os->text.len != 0)
            memcpy(t, os->text.base, os->text.len);
        for (size_t i = 0, at = os->text.len; i < bufcnt && at < os->text.len + add; at += bufs[i].len, i++) {
            size_t n = bufs[i].len < os->text.len + add - at ? bufs[i].len : os->text.len + add - at;
            if (n != 0)
                memcpy(t + at, bufs[i].base, n);
        }
        os->text = h2o_iovec_init(t, os->text.len + add);
    }
    if (state == H2O_SEND_STATE_IN_PROGRESS) {
        /* more to come (not h2o's own answers, sent in one call): ask for it the way h2o's filters do; the
         * headers go out now, so without a length */
        req->res.content_length = SIZE_MAX;
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    if (os->text.len == 0) { /* HEAD, or nothing to say: the headers alone */
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    char msg[4097];
    memcpy(msg, os->text.base, os->text.len);
    msg[os->text.len] = '\0';
    size_t len = 0;
    char *body = pc_json_error_body(status_code_name(req->res.status), msg, &len);
    h2o_iovec_t out = h2o_iovec_init(H2O_STRLIT("{}"));
    if (body != NULL) {
        out = h2o_strdup(&req->pool, body, len);
        free(body);
    }
    if (req->res.content_length != SIZE_MAX)
        req->res.content_length = out.len; /* headers go out with the first bytes, i.e. now */
    h2o_ostream_send_next(self, req, &out, 1, state);
}

static void on_setup_json_errors(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    h2o_iovec_t v = ct == -1 ? h2o_iovec_init(NULL, 0) : req->res.headers.entries[ct].value;
    if (req->res.status >= 400 && v.len >= 10 && h2o_memis(v.base, 10, H2O_STRLIT("text/plain"))) {
        h2o_delete_header(&req->res.headers, ct);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
        if (h2o_find_header(&req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, -1) == -1)
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, H2O_STRLIT("*"));
        if (h2o_find_header(&req->res.headers, H2O_TOKEN_CACHE_CONTROL, -1) == -1)
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
        if (pc_http_req_method_is(req, "HEAD"))
            req->res.content_length = SIZE_MAX; /* what a GET would get is not known here: said by no length */
        struct json_error_ostream *os = (void *)h2o_add_ostream(req, sizeof(*os), slot);
        os->super.do_send = json_error_do_send;
        os->text = h2o_iovec_init(NULL, 0);
        slot = &os->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

struct count_logger {
    h2o_logger_t super;
    pc_http_server *srv;
};

/* h2o calls its loggers as every request it handled is disposed of, answered or not */
static void on_log_access(h2o_logger_t *self, h2o_req_t *req)
{
    pc_http_server_count(((struct count_logger *)self)->srv, req->res.status, req->bytes_sent);
}

void pc_http_server_count(pc_http_server *srv, int status, uint64_t bytes)
{
    srv->responses[status >= 100 && status <= PC_HTTP_STATUS_MAX ? status : 0]++;
    srv->response_bytes += bytes;
}

int pc_http_server_metrics(const pc_http_server *srv, const char *prefix, pc_buf *o)
{
    char name[96];
    snprintf(name, sizeof(name), "%s_http_responses_total", prefix);
    int rc = pc_http_metric_head(o, name, "counter", "HTTP responses sent, by status (\"none\": the client left first).");
    for (int st = 0; rc == 0 && st <= PC_HTTP_STATUS_MAX; st++)
        if (srv->responses[st] != 0 || st == 200)
            rc = st == 0 ? pc_buf_printf(o, "%s{code=\"none\"} %" PRIu64 "\n", name, srv->responses[0])
                         : pc_buf_printf(o, "%s{code=\"%d\"} %" PRIu64 "\n", name, st, srv->responses[st]);
    snprintf(name, sizeof(name), "%s_http_response_bytes_total", prefix);
    rc = rc ? rc : pc_http_metric_head(o, name, "counter", "Bytes of HTTP response bodies sent.");
    rc = rc ? rc : pc_buf_printf(o, "%s %" PRIu64 "\n", name, srv->response_bytes);
    snprintf(name, sizeof(name), "%s_http_connections", prefix);
    rc = rc ? rc : pc_http_metric_head(o, name, "gauge", "Open client connections.");
    rc = rc ? rc : pc_buf_printf(o, "%s %zu\n", name, srv->live);
    return rc;
}

pc_http_server *pc_http_server_new(uv_loop_t *loop, const pc_http_server_config *cfg)
{
    pc_http_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return NULL;
    srv->loop = loop;
    if (cfg != NULL)
        srv->cfg = *cfg;
    if (srv->cfg.max_request_body == 0)
        srv->cfg.max_request_body = 1 << 20;
    if (srv->cfg.idle_timeout_ms == 0)
        srv->cfg.idle_timeout_ms = 30000;
    h2o_config_init(&srv->globalconf);
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("peercdn"));
    srv->globalconf.max_request_entity_size = srv->cfg.max_request_body;
    srv->globalconf.http1.req_timeout = srv->cfg.idle_timeout_ms;
    srv->globalconf.http2.idle_timeout = srv->cfg.idle_timeout_ms;
    h2o_hostconf_t *host = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    struct root_handler *h = (void *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_root_req;
    h->srv = srv;
    /* the fallback path is where h2o binds a request it answers before routing (see on_setup_json_errors):
     * those are counted and reshaped too */
    h2o_pathconf_t *paths[] = {pathconf, &host->fallback_path};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        h2o_filter_t *f = h2o_create_filter(paths[i], sizeof(*f));
        f->on_setup_ostream = on_setup_json_errors;
        struct count_logger *lg = (void *)h2o_create_logger(paths[i], sizeof(*lg));
        lg->super.log_access = on_log_access;
        lg->srv = srv;
    }
    return srv;
}

int pc_http_server_route(pc_http_server *srv, const char *prefix, pc_http_handler_fn fn, void *user)
{
    struct route *r = realloc(srv->routes, (srv->nroutes + 1) * sizeof(*r));
    if (r == NULL)
        return PC_ENOMEM;
    srv->routes = r;
    r = &srv->routes[srv->nroutes];
    r->prefix = strdup(prefix);
    if (r->prefix == NULL)
        return PC_ENOMEM;
    r->len = strlen(prefix);
    r->fn = fn;
    r->user = user;
    srv->nroutes++;
    return 0;
}

static void on_conn_closed(uv_handle_t *handle)
{
    struct conn_handle *c = (struct conn_handle *)handle;
    pc_http_server *srv = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);
    srv->live--;
}

/* Ends both directions of a connection's socket: a read waiting on it sees the end, a write (queued
 * behind a client that stopped reading) fails, and h2o closes the connection through its own path. */
static void cut(struct conn_handle *c, const char *why)
{
    uv_os_fd_t fd;
    if (c->cut || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return;
    c->cut = 1;
    PC_LOGD("http", "closing a connection: %s", why);
    shutdown(fd, SHUT_RDWR);
}

size_t pc_tcp_unacked(uv_tcp_t *t)
{
    uv_os_fd_t fd;
    int outq = 0;
    if (uv_fileno((uv_handle_t *)t, &fd) != 0 || ioctl(fd, SIOCOUTQ, &outq) != 0 || outq < 0)
        outq = 0;
    return t->write_queue_size + (size_t)outq;
}

/* Two rules cut a connection that h2o's own timeouts (connections between requests, request heads)
 * leave open for good:
 * - its answer has not moved for stall_ms: a client that stopped reading (its TCP window full). The
 *   measure is what libuv still holds plus what the kernel has sent without acknowledgement (SIOCOUTQ):
 *   it shrinks whenever the client reads, and stays put when it does not, however the client trickles
 *   requests (h2o 2.2's byte counts of a socket are not kept up to date on libuv);
 * - no byte went either way for stall_ms (what the client acknowledged plus what it sent, TCP_INFO): an
 *   HTTP/2 client holding a stream's window at 0 leaves nothing queued, and h2o, with a stream open,
 *   never times the connection out. An idle connection is closed by h2o at the idle timeout, before
 *   this; a handler that keeps a request waiting does so for less (the peer's HLS waits, 30 s). */
static void on_stall_tick(uv_timer_t *t)
{
    pc_http_server *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    for (struct conn_handle *c = srv->conns; c != NULL; c = c->next) {
        size_t q = pc_tcp_unacked(&c->tcp);
        uv_os_fd_t fd;
        uint64_t moved = uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 ? pc_tcp_moved(fd) : UINT64_MAX;
        if (q == 0 || q != c->queued) {
            c->queued = q;
            c->still_since = now;
        } else if (now - c->still_since >= srv->stall_ms) {
            cut(c, "its client has not read any of its answer for twice the idle timeout");
        }
        if (moved == UINT64_MAX || moved != c->moved) {
            c->moved = moved;
            c->moved_since = now;
        } else if (now - c->moved_since >= srv->stall_ms) {
            cut(c, "no byte went either way for twice the idle timeout");
        }
    }
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void on_accept(uv_stream_t *listener, int status)
{
    pc_http_server *srv = listener->data;
    if (status != 0 || srv->closing)
        return;
    struct conn_handle *c = malloc(sizeof(*c));
    if (c == NULL)
        return;
    *c = (struct conn_handle){.srv = srv, .still_since = uv_now(srv->loop), .moved_since = uv_now(srv->loop)};
    uv_tcp_init(srv->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, free_handle);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->live++;
    if (srv->cfg.accept_hook != NULL && srv->cfg.accept_hook(srv->cfg.accept_hook_user, srv, sock))
        return;
    h2o_accept(&srv->accept_ctx, sock);
}

void pc_http_server_handoff(pc_http_server *srv, h2o_socket_t *sock)
{
    h2o_http1_accept(&srv->accept_ctx, sock, *h2o_get_timestamp(&srv->ctx, NULL, NULL));
}

static void on_filecache_check(uv_check_t *c)
{
    pc_http_server *srv = c->data;
    h2o_filecache_clear(srv->ctx.filecache);
}

int pc_hostport_parse(const char *hostport, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport)
        return PC_EINVAL;
    size_t hlen = (size_t)(colon - hostport);
    if (hlen >= sizeof(host))
        return PC_EINVAL;
    memcpy(host, hostport, hlen);
    host[hlen] = '\0';
    int64_t port;
    if (pc_parse_int_str(colon + 1, 0, 65535, 0, &port) != 0)
        return PC_EINVAL;
    if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
        host[hlen - 1] = '\0';
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) == 0 ? 0 : PC_EINVAL;
    }
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ? 0 : PC_EINVAL;
}

int pc_http_server_listen(pc_http_server *srv, const char *hostport, char *bound, size_t boundlen)
{
    if (srv->nlisteners == MAX_LISTENERS) {
        pc_err_detail_set("more than %d listeners", MAX_LISTENERS);
        return PC_EINVAL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int r = pc_hostport_parse(hostport, &ss);
    if (r != 0) {
        pc_err_detail_set("%s", "not IP:PORT (IPv6 in brackets)");
        return r;
    }
    pc_err_detail_set("%s", "");
    if (!srv->ctx_ready) {
        h2o_context_init(&srv->ctx, srv->loop, &srv->globalconf);
        srv->accept_ctx.ctx = &srv->ctx;
        srv->accept_ctx.hosts = srv->globalconf.hosts;
        srv->ctx_ready = 1;
        /* like h2o's own server: cached file descriptors live for one loop iteration, so requests
         * arriving together share an open() while a file replaced or removed is seen at once */
        uv_check_init(srv->loop, &srv->filecache_check);
        srv->filecache_check.data = srv;
        uv_check_start(&srv->filecache_check, on_filecache_check);
        srv->open_handles++;
        srv->stall_ms = 2 * srv->cfg.idle_timeout_ms;
        uint64_t every = srv->stall_ms / 4 < 5000 ? srv->stall_ms / 4 : 5000;
        uv_timer_init(srv->loop, &srv->stall_timer);
        srv->stall_timer.data = srv;
        uv_timer_start(&srv->stall_timer, on_stall_tick, every, every);
        uv_unref((uv_handle_t *)&srv->stall_timer);
        srv->open_handles++;
    }
    uv_tcp_t *l = &srv->listeners[srv->nlisteners];
    uv_tcp_init(srv->loop, l);
    l->data = srv;
    srv->nlisteners++;
    srv->open_handles++;
    if ((r = uv_tcp_bind(l, (struct sockaddr *)&ss, 0)) != 0 || (r = uv_listen((uv_stream_t *)l, 1024, on_accept)) != 0) {
        pc_err_detail_set("%s", uv_strerror(r));
        return PC_EIO;
    }
    struct sockaddr_storage got;
    int namelen = sizeof(got);
    uv_tcp_getsockname(l, (struct sockaddr *)&got, &namelen);
    char ip[INET6_ADDRSTRLEN] = "";
    int port;
    if (got.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&got, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
        snprintf(bound, boundlen, "[%s]:%d", ip, port);
    } else {
        uv_ip4_name((struct sockaddr_in *)&got, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in *)&got)->sin_port);
        snprintf(bound, boundlen, "%s:%d", ip, port);
    }
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    pc_http_server *srv = h->data;
    srv->open_handles--;
}

static void expire_idle(pc_http_server *srv)
{
    /* connections waiting for a (next) request are closed by running their timeouts at zero */
    srv->ctx.http1.req_timeout.timeout = 0;
    srv->ctx.http2.idle_timeout.timeout = 0;
    uint64_t now = h2o_now(srv->loop);
    h2o_timeout_run(srv->loop, &srv->ctx.http1.req_timeout, now);
    h2o_timeout_run(srv->loop, &srv->ctx.http2.idle_timeout, now);
}

static void on_close_timer_closed(uv_handle_t *h)
{
    pc_http_server *srv = h->data;
    srv->open_handles--;
    if (srv->close_cb != NULL)
        srv->close_cb(srv->close_arg);
}

static void on_close_tick(uv_timer_t *t)
{
    pc_http_server *srv = t->data;
    if (srv->live > 0 || srv->open_handles > 1) {
        expire_idle(srv);
        if (uv_now(srv->loop) >= srv->close_deadline)
            for (struct conn_handle *c = srv->conns; c != NULL; c = c->next)
                cut(c, "still open when the stop's grace ended");
        return;
    }
    uv_timer_stop(t);
    /* h2o's own handles (timers, the multithread queue) close with the loop still running */
    if (srv->ctx_ready && !srv->ctx_disposed) {
        /* the HTTP/2 graceful-shutdown timer stays linked even with no connection left */
        if (h2o_timeout_is_linked(&srv->ctx.http2._graceful_shutdown_timeout))
            h2o_timeout_unlink(&srv->ctx.http2._graceful_shutdown_timeout);
        h2o_context_dispose(&srv->ctx);
        srv->ctx_disposed = 1;
    }
    uv_close((uv_handle_t *)t, on_close_timer_closed);
}

void pc_http_server_close(pc_http_server *srv, void (*cb)(void *arg), void *arg)
{
    srv->closing = 1;
    srv->close_cb = cb;
    srv->close_arg = arg;
    for (size_t i = 0; i < srv->nlisteners; i++)
        uv_close((uv_handle_t *)&srv->listeners[i], on_listener_closed);
    if (srv->ctx_ready) {
        h2o_context_request_shutdown(&srv->ctx);
        expire_idle(srv);
    }
    if (srv->ctx_ready) {
        uv_check_stop(&srv->filecache_check);
        uv_close((uv_handle_t *)&srv->filecache_check, on_listener_closed);
        uv_timer_stop(&srv->stall_timer);
        uv_close((uv_handle_t *)&srv->stall_timer, on_listener_closed);
    }
    srv->close_deadline = uv_now(srv->loop) + CLOSE_GRACE_MS;
    uv_timer_init(srv->loop, &srv->close_timer);
    srv->close_timer.data = srv;
    srv->open_handles++;
    uv_timer_start(&srv->close_timer, on_close_tick, 0, 20);
}

void pc_http_server_free(pc_http_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->ctx_ready && !srv->ctx_disposed)
        h2o_context_dispose(&srv->ctx);
    h2o_config_dispose(&srv->globalconf);
    for (size_t i = 0; i < srv->nroutes; i++)
        free(srv->routes[i].prefix);
    free(srv->routes);
    free(srv);
}

uv_loop_t *pc_http_server_loop(pc_http_server *srv)
{
    return srv->loop;
}

h2o_context_t *pc_http_server_h2o(pc_http_server *srv)
{
    return &srv->ctx;
}

size_t pc_http_server_live_connections(pc_http_server *srv)
{
    return srv->live;
}

static void on_guard_dispose(void *p)
{
    h2o_req_t ***g = p;
    if (*g != NULL)
        **g = NULL;
}

int pc_http_req_guard(h2o_req_t *req, h2o_req_t **slot, void **guard)
{
    h2o_req_t ***g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), on_guard_dispose);
    if (g == NULL)
        return PC_ENOMEM;
    *g = slot;
    *slot = req;
    *guard = g;
    return 0;
}

void pc_http_req_unguard(void *guard)
{
    *(h2o_req_t ***)guard = NULL;
}

int pc_http_req_client_gone(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn == NULL || req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    int fd = sock != NULL ? h2o_socket_get_fd(sock) : -1;
    if (fd < 0)
        return 0;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

const char *pc_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 460: return "Checksum Mismatch";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    default: return status < 400 ? "OK" : "Error";
    }
}

void pc_http_add_header(h2o_req_t *req, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    char *n = h2o_mem_alloc_pool(&req->pool, nlen + 1);
    for (size_t i = 0; i < nlen; i++)
        n[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    n[nlen] = '\0';
    h2o_iovec_t v = h2o_strdup(&req->pool, value, vlen);
    h2o_add_header_by_str(&req->pool, &req->res.headers, n, nlen, 1, NULL, v.base, v.len);
}

int pc_http_preflight(h2o_req_t *req, const char *methods, const char *headers)
{
    if (!pc_http_req_method_is(req, "OPTIONS"))
        return 0;
    pc_http_add_header(req, "access-control-allow-methods", methods);
    pc_http_add_header(req, "access-control-allow-headers", headers);
    pc_http_add_header(req, "access-control-max-age", "86400");
    pc_http_add_header(req, "allow", methods);
    h2o_iovec_t pna = pc_http_req_header(req, "access-control-request-private-network");
    if (pna.len == 4 && strncasecmp(pna.base, "true", 4) == 0)
        pc_http_add_header(req, "access-control-allow-private-network", "true");
    pc_http_respond(req, 204, NULL, "", 0);
    return 1;
}

int pc_http_get_only(h2o_req_t *req, const char *cors_headers, const char *message)
{
    if (cors_headers != NULL && pc_http_preflight(req, "GET, HEAD, OPTIONS", cors_headers))
        return 1;
    if (pc_http_req_method_is(req, "GET") || pc_http_req_method_is(req, "HEAD"))
        return 0;
    pc_http_add_header(req, "allow", cors_headers != NULL ? "GET, HEAD, OPTIONS" : "GET, HEAD");
    pc_http_respond_error(req, 405, "method_not_allowed", message);
    return 1;
}

static void respond(h2o_req_t *req, int status, const char *content_type, h2o_iovec_t buf)
{
    static h2o_generator_t generator = {NULL, NULL};
    size_t len = buf.len;
    req->res.status = status;
    req->res.reason = pc_http_reason(status);
    req->res.content_length = status == 204 || status == 304 ? SIZE_MAX : len; /* no Content-Length on these */
    if (status >= 400) {
        /* an error replaces whatever the caller had set up for the resource: it is not the resource's
         * content, validators or caching */
        static const h2o_token_t *const drop[] = {H2O_TOKEN_CONTENT_TYPE, H2O_TOKEN_CACHE_CONTROL, H2O_TOKEN_ETAG,
                                                  H2O_TOKEN_LAST_MODIFIED};
        for (size_t k = 0; k < sizeof(drop) / sizeof(drop[0]); k++)
            for (ssize_t h; (h = h2o_find_header(&req->res.headers, drop[k], -1)) != -1;)
                h2o_delete_header(&req->res.headers, h);
    }
    if (content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    if (h2o_find_header(&req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, -1) == -1) /* once: twice fails */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, H2O_STRLIT("*"));
    /* a caller's own caching (a 304 repeats the 200's) stands; anything else is not to be stored */
    if (h2o_find_header(&req->res.headers, H2O_TOKEN_CACHE_CONTROL, -1) == -1)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_start_response(req, &generator);
    if (pc_http_req_method_is(req, "HEAD") || status == 204 || status == 304)
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

void pc_http_respond(h2o_req_t *req, int status, const char *content_type, const void *body, size_t len)
{
    respond(req, status, content_type, h2o_strdup(&req->pool, body, len));
}

void pc_http_respond_shared(h2o_req_t *req, int status, const char *content_type, void *body, size_t len)
{
    h2o_mem_link_shared(&req->pool, body); /* released with the request's pool, once the answer is sent */
    respond(req, status, content_type, h2o_iovec_init(body, len));
}

static void blob_ref_dispose(void *p)
{
    pc_blob_release(*(pc_blob **)p);
}

void pc_http_respond_blob(h2o_req_t *req, int status, const char *content_type, pc_blob *blob, const void *data,
                          size_t len)
{
    pc_blob **ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), blob_ref_dispose); /* freed with the pool */
    *ref = blob;
    respond(req, status, content_type, h2o_iovec_init(data, len));
}

void pc_http_respond_json(h2o_req_t *req, int status, json_t *body)
{
    char *s = pc_json_dump(body);
    json_decref(body);
    if (s == NULL) {
        pc_http_respond_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    pc_http_respond(req, status, "application/json", s, strlen(s));
    free(s);
}

void pc_http_respond_error(h2o_req_t *req, int status, const char *code, const char *message)
{
    size_t len = 0;
    char *s = pc_json_error_body(code, message, &len);
    if (s == NULL) {
        pc_http_respond(req, status, "application/json", "{}", 2);
        return;
    }
    pc_http_respond(req, status, "application/json", s, len);
    free(s);
}

h2o_iovec_t pc_http_req_header(h2o_req_t *req, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < req->headers.size; i++) {
        h2o_header_t *h = &req->headers.entries[i];
        if (h->name->len == nlen && strncasecmp(h->name->base, name, nlen) == 0)
            return h->value;
    }
    return h2o_iovec_init(NULL, 0);
}

h2o_iovec_t pc_http_req_header_list(h2o_req_t *req, const char *name)
{
    size_t nlen = strlen(name), n = 0, len = 0;
    h2o_iovec_t first = h2o_iovec_init(NULL, 0);
    for (size_t i = 0; i < req->headers.size; i++) {
        h2o_header_t *h = &req->headers.entries[i];
        if (h->name->len == nlen && strncasecmp(h->name->base, name, nlen) == 0) {
            first = n++ == 0 ? h->value : first;
            len += h->value.len + 2;
        }
    }
    if (n <= 1)
        return first;
    char *buf = h2o_mem_alloc_pool(&req->pool, len), *p = buf;
    for (size_t i = 0; i < req->headers.size; i++) {
        h2o_header_t *h = &req->headers.entries[i];
        if (h->name->len == nlen && strncasecmp(h->name->base, name, nlen) == 0) {
            if (p != buf) {
                memcpy(p, ", ", 2);
                p += 2;
            }
            memcpy(p, h->value.base, h->value.len);
            p += h->value.len;
        }
    }
    return h2o_iovec_init(buf, (size_t)(p - buf));
}

int pc_http_req_method_is(h2o_req_t *req, const char *method)
{
    return h2o_memis(req->method.base, req->method.len, method, strlen(method));
}

int pc_http_req_peer(h2o_req_t *req, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (req->conn->callbacks->get_peername == NULL)
        return PC_EINVAL;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)out);
    return len > 0 && (out->ss_family == AF_INET || out->ss_family == AF_INET6) ? 0 : PC_EINVAL;
}

h2o_iovec_t pc_http_req_path(h2o_req_t *req)
{
    size_t len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    return h2o_iovec_init(req->path.base, len);
}

h2o_iovec_t pc_http_req_host(h2o_req_t *req)
{
    if (req->input.authority.base == NULL || req->input.authority.len == 0 ||
        (req->hostconf != NULL && req->input.authority.base == req->hostconf->authority.hostport.base))
        return h2o_iovec_init(NULL, 0);
    return req->input.authority;
}

int pc_http_query_get(const char *query, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = query, *end = query + len;
    int found = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq != NULL ? eq : pe;
        if ((size_t)(ke - p) == nlen && memcmp(p, name, nlen) == 0) {
            if (found)
                return PC_EPARSE; /* twice: which one counts would be a guess, and differ between servers */
            found = 1;
            size_t o = 0;
            for (const char *v = eq != NULL ? eq + 1 : pe; v < pe; v++) {
                int c = (unsigned char)*v;
                if (c == '+')
                    c = ' ';
                else if (c == '%' && pe - v >= 3 && pc_hex_digit(v[1]) >= 0 && pc_hex_digit(v[2]) >= 0) {
                    c = pc_hex_digit(v[1]) << 4 | pc_hex_digit(v[2]);
                    v += 2;
                }
                if (c == 0)
                    return PC_EPARSE; /* a %00 would cut the value short where C strings read it */
                if (o + 1 >= outlen)
                    return PC_ETOOBIG;
                out[o++] = (char)c;
            }
            out[o] = '\0';
        }
        p = pe + 1;
    }
    return found ? 0 : PC_ENOENT;
}

int pc_http_req_query(h2o_req_t *req, const char *name, char *out, size_t outlen)
{
    if (req->query_at == SIZE_MAX)
        return PC_ENOENT;
    return pc_http_query_get(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, name, out, outlen);
}
