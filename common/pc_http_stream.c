/*
 * Streaming HTTP/1.1 connections on h2o sockets with http-parser; see
 * pc_http_stream.h. States of a connection:
 *   HEAD    reading a request head (nothing consumed yet, so h2o can take over)
 *   BODY    the handler took the request; body bytes flow to it
 *   AWAIT   the body is complete; waiting for the handler's response
 *   WRITING a response is being written; then next request or close
 */
#include "pc_http_stream.h"

#include <http_parser.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pc_buf.h"
#include "pc_json.h"
#include "pc_log.h"

enum st { ST_HEAD, ST_BODY, ST_AWAIT, ST_WRITING };

struct pc_hs {
    pc_hs_handler h;
    void *user;
    pc_hs_conn *conns;
    size_t count;
    int shutting_down;
};

struct hdr_span {
    size_t name_off, name_len, val_off, val_len;
};

struct pc_hs_conn {
    pc_hs *hs;
    pc_http_server *srv;
    h2o_socket_t *sock; /* NULL once closed */
    pc_hs_conn *prev, *next;
    http_parser parser;
    enum st st;
    size_t parsed; /* HEAD: bytes of sock->input fed to the parser */
    pc_buf head;
    size_t url_off, url_len;
    struct hdr_span spans[PC_HS_MAX_HEADERS];
    size_t nspans;
    int in_value;
    int head_done, body_done, responded, handler_paused, close_after, too_many_headers, head_overflow;
    int continue_writing; /* "100 Continue" is being written: a response must wait for it */
    int response_ready;   /* a response built while it was (sent when it completes) */
    pc_hs_header headers[PC_HS_MAX_HEADERS];
    pc_hs_request req;
    uv_timer_t timer;
    pc_buf out;
    h2o_iovec_t outvec;
    void *data;
    char peer[80];
    char method[16];
};

static void process(pc_hs_conn *c);

/* A head over the limit because of its request target (414, not 431): the limit was reached before any
 * header began, or the target alone takes it. */
static int target_too_long(const pc_hs_conn *c)
{
    return c->nspans == 0 || c->url_len + 32 > c->hs->h.max_head;
}
static void close_conn(pc_hs_conn *c);

/* ---- http-parser callbacks ---- */

static int head_append(pc_hs_conn *c, const char *at, size_t len)
{
    if (pc_buf_append(&c->head, at, len) == 0)
        return 0;
    c->head_overflow = 1;
    return -1;
}

static int cb_message_begin(http_parser *p)
{
    (void)p;
    return 0;
}

static int cb_url(http_parser *p, const char *at, size_t len)
{
    pc_hs_conn *c = p->data;
    if (c->url_len == 0)
        c->url_off = c->head.len;
    c->url_len += len;
    return head_append(c, at, len);
}

static int cb_header_field(http_parser *p, const char *at, size_t len)
{
    pc_hs_conn *c = p->data;
    if (c->nspans == 0 || c->in_value) { /* a new header starts; otherwise the name continues */
        if (c->nspans == PC_HS_MAX_HEADERS) {
            c->too_many_headers = 1;
            return -1;
        }
        c->spans[c->nspans++] = (struct hdr_span){c->head.len, 0, 0, SIZE_MAX};
    }
    c->in_value = 0;
    struct hdr_span *s = &c->spans[c->nspans - 1];
    size_t start = c->head.len;
    if (head_append(c, at, len) != 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (c->head.data[start + i] >= 'A' && c->head.data[start + i] <= 'Z')
            c->head.data[start + i] = (char)(c->head.data[start + i] + 32);
    s->name_len += len;
    return 0;
}

static int cb_header_value(http_parser *p, const char *at, size_t len)
{
    pc_hs_conn *c = p->data;
    struct hdr_span *s = &c->spans[c->nspans - 1];
    if (!c->in_value) {
        c->in_value = 1;
        s->val_off = c->head.len;
        s->val_len = 0;
    }
    s->val_len += len;
    return head_append(c, at, len);
}

static int cb_headers_complete(http_parser *p)
{
    pc_hs_conn *c = p->data;
    c->head_done = 1;
    http_parser_pause(p, 1);
    return 0;
}

static int cb_body(http_parser *p, const char *at, size_t len)
{
    pc_hs_conn *c = p->data;
    if (c->responded)
        return 0; /* discarded: the connection closes after the early response */
    if (c->hs->h.on_body(c->hs->user, c, at, len)) {
        c->handler_paused = 1;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int cb_message_complete(http_parser *p)
{
    pc_hs_conn *c = p->data;
    c->body_done = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_header_field = cb_header_field,
    .on_header_value = cb_header_value,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

/* ---- connection plumbing ---- */

static void reset_request(pc_hs_conn *c)
{
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->st = ST_HEAD;
    c->parsed = 0;
    pc_buf_reset(&c->head);
    c->url_off = c->url_len = 0;
    c->nspans = 0;
    c->in_value = 0;
    c->head_done = c->body_done = c->responded = c->handler_paused = c->close_after = c->too_many_headers = 0;
    c->head_overflow = 0;
    c->continue_writing = c->response_ready = 0;
    c->data = NULL;
}

static void write_simple_error(pc_hs_conn *c, int status, const char *code, const char *msg);
static void abort_body(pc_hs_conn *c);

/* A body whose framing is broken (a bad chunk size, a chunk longer than it said): the handler ends the
 * request as if the connection had failed (it keeps what arrived whole before), and the client hears
 * why, in the JSON error shape, before the connection closes. */
static void bad_body(pc_hs_conn *c, enum http_errno e)
{
    int owed = c->st == ST_BODY && !c->responded;
    if (owed) {
        c->hs->h.on_end(c->hs->user, c, 0);
        if (c->sock != NULL && !c->responded) {
            h2o_socket_read_stop(c->sock); /* the timer still closes a connection whose client reads nothing */
            char msg[160];
            snprintf(msg, sizeof(msg), "malformed request body: %s", http_errno_description(e));
            write_simple_error(c, 400, "bad_request", msg);
            return;
        }
    }
    abort_body(c);
}

static void on_timeout(uv_timer_t *t);

static void arm_timer(pc_hs_conn *c)
{
    uint64_t ms = c->st == ST_HEAD ? c->hs->h.idle_timeout_ms : c->hs->h.body_timeout_ms;
    uv_timer_start(&c->timer, on_timeout, ms, 0);
}

static void on_timer_closed(uv_handle_t *h)
{
    pc_hs_conn *c = h->data;
    pc_buf_clear(&c->head);
    pc_buf_clear(&c->out);
    free(c);
}

static void unlink_conn(pc_hs_conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (c->hs->conns == c)
        c->hs->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->hs->count--;
}

/* Frees the connection struct (the socket is already closed or handed off). */
static void destroy(pc_hs_conn *c)
{
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void close_conn(pc_hs_conn *c)
{
    if (c->sock == NULL)
        return;
    h2o_socket_t *sock = c->sock;
    c->sock = NULL;
    unlink_conn(c);
    sock->data = NULL;
    h2o_socket_read_stop(sock);
    h2o_socket_close(sock);
    /* a handler that still owes a response keeps the struct alive until it answers */
    if (c->st != ST_AWAIT)
        destroy(c);
}

static void abort_body(pc_hs_conn *c)
{
    int owed = c->st == ST_BODY && !c->responded;
    c->st = ST_WRITING; /* nothing more will be answered */
    if (owed)
        c->hs->h.on_end(c->hs->user, c, 0);
    close_conn(c);
}

static void on_timeout(uv_timer_t *t)
{
    pc_hs_conn *c = t->data;
    if (c->st == ST_BODY) {
        PC_LOGI("http", "%s: request body stalled, aborting", c->peer);
        abort_body(c);
    } else if (c->st == ST_HEAD || c->st == ST_WRITING) {
        close_conn(c);
    }
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    pc_hs_conn *c = sock->data;
    if (err != NULL) {
        if (c->st == ST_BODY)
            abort_body(c);
        else
            close_conn(c);
        return;
    }
    /* a body's progress keeps it alive; a head must be complete within the idle timeout of its start
     * (armed when the connection or the request began), however slowly it trickles in */
    if (c->st == ST_BODY)
        arm_timer(c);
    process(c);
}

static void write_simple_error(pc_hs_conn *c, int status, const char *code, const char *msg)
{
    size_t len = 0;
    char *body = pc_json_error_body(code, msg, &len);
    c->close_after = 1;
    pc_hs_respond(c, status, c->hs->h.error_headers, c->hs->h.nerror_headers, "application/json",
                  body != NULL ? body : "{}", body != NULL ? len : 2);
    free(body);
}

/* Fills c->req from the parsed head. Fails (-1) only when the head buffer is over its ceiling. */
static int build_request(pc_hs_conn *c)
{
    /* a NUL-terminated copy of the target goes at the end of c->head; copy it out first,
     * because appending a slice of the buffer to itself may move the buffer */
    char *url = malloc(c->url_len + 1);
    if (url == NULL)
        return -1;
    memcpy(url, c->head.data + c->url_off, c->url_len);
    size_t tgt = c->head.len;
    int r = pc_buf_append(&c->head, url, c->url_len);
    if (r == 0)
        r = pc_buf_append(&c->head, "", 1);
    free(url);
    if (r != 0)
        return -1;
    const char *m = http_method_str((enum http_method)c->parser.method);
    snprintf(c->method, sizeof(c->method), "%s", m);
    for (size_t i = 0; i < c->nspans; i++) {
        struct hdr_span *s = &c->spans[i];
        c->headers[i] = (pc_hs_header){c->head.data + s->name_off, s->name_len, c->head.data + s->val_off,
                                       s->val_len == SIZE_MAX ? 0 : s->val_len};
    }
    c->req.method = c->method;
    c->req.target = c->head.data + tgt;
    const char *q = memchr(c->req.target, '?', c->url_len);
    c->req.path_len = q != NULL ? (size_t)(q - c->req.target) : c->url_len;
    c->req.headers = c->headers;
    c->req.nheaders = c->nspans;
    if (c->parser.flags & F_CHUNKED)
        c->req.content_length = -1;
    else if (c->parser.content_length != ULLONG_MAX && c->parser.content_length > 0)
        /* 2^63 and more would turn negative (read as chunked) and pass every size check: past all of them */
        c->req.content_length = c->parser.content_length > (uint64_t)INT64_MAX ? INT64_MAX
                                                                               : (int64_t)c->parser.content_length;
    else
        c->req.content_length = 0;
    size_t elen = 0;
    const char *e = pc_hs_header_get(&c->req, "expect", &elen);
    c->req.expect_continue = e != NULL && elen == 12 && strncasecmp(e, "100-continue", 12) == 0;
    c->req.peer = c->peer;
    return 0;
}

static int has_body(const pc_hs_conn *c)
{
    return c->req.content_length != 0;
}

static void on_written(h2o_socket_t *sock, const char *err);

static void on_continue_written(h2o_socket_t *sock, const char *err)
{
    pc_hs_conn *c = sock->data;
    if (c == NULL)
        return;
    c->continue_writing = 0;
    if (err != NULL) {
        if (c->st == ST_BODY && !c->responded)
            abort_body(c); /* the handler still expects the body */
        else
            close_conn(c); /* a handler owing a response finds the socket gone; a built one is dropped */
        return;
    }
    if (c->response_ready) { /* the handler answered meanwhile */
        c->response_ready = 0;
        h2o_socket_write(c->sock, &c->outvec, 1, on_written);
        return;
    }
    process(c);
}

static void handoff(pc_hs_conn *c)
{
    h2o_socket_t *sock = c->sock;
    c->sock = NULL;
    unlink_conn(c);
    h2o_socket_read_stop(sock);
    sock->data = NULL;
    pc_http_server *srv = c->srv;
    destroy(c);
    pc_http_server_handoff(srv, sock);
}

static void process(pc_hs_conn *c)
{
    while (c->sock != NULL) {
        h2o_buffer_t *in = c->sock->input;
        if (c->st == ST_HEAD) {
            if (c->parsed == in->size)
                return;
            if (c->parsed == 0 && c->url_len == 0) {
                /* HTTP/2 with prior knowledge: h2o's code takes the connection as is */
                static const char preface[] = "PRI * HTTP/2.0";
                size_t n = in->size < sizeof(preface) - 1 ? in->size : sizeof(preface) - 1;
                if (memcmp(in->bytes, preface, n) == 0) {
                    if (n < sizeof(preface) - 1)
                        return; /* wait for the rest of the preface */
                    handoff(c);
                    return;
                }
            }
            size_t n = http_parser_execute(&c->parser, &settings, in->bytes + c->parsed, in->size - c->parsed);
            c->parsed += n;
            enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
            if (e != HPE_OK && e != HPE_PAUSED) {
                if (c->head_overflow && target_too_long(c))
                    write_simple_error(c, 414, "uri_too_long", "the request target exceeds the server's head limit");
                else if (c->too_many_headers || c->head_overflow)
                    write_simple_error(c, 431, "headers_too_large", "request head exceeds the server's limit");
                else
                    write_simple_error(c, 400, "bad_request", http_errno_description(e));
                return;
            }
            if (!c->head_done || c->parsed > c->hs->h.max_head) {
                /* a head that arrived whole in one read is held to the same limit as one still coming */
                if (c->parsed > c->hs->h.max_head && target_too_long(c))
                    write_simple_error(c, 414, "uri_too_long", "the request target exceeds the server's head limit");
                else if (c->parsed > c->hs->h.max_head)
                    write_simple_error(c, 431, "headers_too_large", "request head exceeds the server's limit");
                return;
            }
            if (build_request(c) != 0) {
                write_simple_error(c, 431, "headers_too_large", "request head exceeds the server's limit");
                return;
            }
            size_t tel = 0;
            const char *te = pc_hs_header_get(&c->req, "transfer-encoding", &tel);
            if (te != NULL && !(tel == 7 && strncasecmp(te, "chunked", 7) == 0)) {
                /* only chunked is decoded here: another coding (gzip, chunked) would reach the handler
                 * still encoded and be stored as if it were the data */
                write_simple_error(c, 501, "unsupported_transfer_coding", "only 'Transfer-Encoding: chunked' is accepted");
                return;
            }
            if (!c->hs->h.on_head(c->hs->user, c, &c->req)) {
                handoff(c);
                return;
            }
            if (c->sock == NULL)
                return;
            h2o_buffer_consume(&c->sock->input, c->parsed);
            c->parsed = 0;
            http_parser_pause(&c->parser, 0);
            if (!c->responded) {
                c->st = ST_BODY;
                arm_timer(c); /* the body's stall timer from here */
                if (c->req.expect_continue && has_body(c)) {
                    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                    h2o_iovec_t v = h2o_iovec_init(cont, sizeof(cont) - 1);
                    c->continue_writing = 1;
                    h2o_socket_write(c->sock, &v, 1, on_continue_written);
                    return;
                }
            } else if (c->close_after) {
                return;
            }
            continue;
        }
        /* body (or the final byte of a bodiless request) */
        if (c->body_done || c->handler_paused || (c->responded && c->close_after))
            return;
        if (in->size == 0)
            return;
        size_t n = http_parser_execute(&c->parser, &settings, in->bytes, in->size);
        h2o_buffer_consume(&c->sock->input, n);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e != HPE_OK && e != HPE_PAUSED) {
            PC_LOGI("http", "%s: bad request body: %s", c->peer, http_errno_description(e));
            bad_body(c, e);
            return;
        }
        if (c->body_done) {
            http_parser_pause(&c->parser, 0);
            if (!c->responded) {
                c->st = ST_AWAIT;
                uv_timer_stop(&c->timer);
                h2o_socket_read_stop(c->sock);
                c->hs->h.on_end(c->hs->user, c, 1);
            }
            return;
        }
        if (c->handler_paused) {
            h2o_socket_read_stop(c->sock);
            return;
        }
    }
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    pc_hs_conn *c = sock->data;
    if (c == NULL)
        return;
    pc_buf_reset(&c->out);
    if (err != NULL || c->close_after || !c->body_done || c->hs->shutting_down || !http_should_keep_alive(&c->parser)) {
        close_conn(c);
        return;
    }
    /* next request on this connection: its bytes may already be buffered */
    reset_request(c);
    arm_timer(c);
    h2o_socket_read_start(c->sock, on_read);
    process(c);
}

void pc_hs_respond(pc_hs_conn *c, int status, const char *const *headers, size_t nheaders, const char *content_type,
                   const void *body, size_t len)
{
    int was_awaiting = c->st == ST_AWAIT || (c->st == ST_BODY && c->body_done);
    c->responded = 1;
    if (c->sock == NULL) {
        /* the client went away while the handler worked */
        pc_http_server_count(c->srv, 0, 0);
        if (was_awaiting) {
            c->st = ST_WRITING;
            destroy(c);
        }
        return;
    }
    if (!c->body_done && has_body(c))
        c->close_after = 1;
    c->st = ST_WRITING;
    /* a client that never reads its response must not hold the connection forever */
    uv_timer_start(&c->timer, on_timeout, c->hs->h.idle_timeout_ms, 0);
    h2o_socket_read_stop(c->sock);
    int bodyless = status == 204 || status == 304 || strcmp(c->method, "HEAD") == 0;
    pc_buf *o = &c->out;
    int r = pc_buf_printf(o, "HTTP/1.1 %d %s\r\n", status, pc_http_reason(status));
    for (size_t i = 0; r == 0 && i < nheaders; i++)
        r = pc_buf_printf(o, "%s: %s\r\n", headers[2 * i], headers[2 * i + 1]);
    if (r == 0 && content_type != NULL)
        r = pc_buf_printf(o, "Content-Type: %s\r\n", content_type);
    if (r == 0 && status != 204 && status != 304)
        r = pc_buf_printf(o, "Content-Length: %zu\r\n", len);
    if (r == 0 && (c->close_after || c->hs->shutting_down))
        r = pc_buf_append_str(o, "Connection: close\r\n");
    if (r == 0)
        r = pc_buf_append_str(o, "\r\n");
    if (r == 0 && !bodyless && len > 0)
        r = pc_buf_append(o, body, len);
    pc_http_server_count(c->srv, r == 0 ? status : 0, r == 0 && !bodyless ? len : 0); /* bodies, as h2o counts */
    if (r != 0) {
        close_conn(c);
        return;
    }
    c->outvec = h2o_iovec_init(o->data, o->len);
    if (c->continue_writing) {
        c->response_ready = 1; /* one write at a time: this one follows the 100 Continue */
        return;
    }
    h2o_socket_write(c->sock, &c->outvec, 1, on_written);
}

pc_hs *pc_hs_new(const pc_hs_handler *h, void *user)
{
    pc_hs *hs = calloc(1, sizeof(*hs));
    if (hs == NULL)
        return NULL;
    hs->h = *h;
    hs->user = user;
    if (hs->h.max_head == 0)
        hs->h.max_head = PC_HTTP_HEAD_MAX;
    if (hs->h.body_timeout_ms == 0)
        hs->h.body_timeout_ms = 60000;
    if (hs->h.idle_timeout_ms == 0)
        hs->h.idle_timeout_ms = 30000;
    return hs;
}

void pc_hs_attach(pc_hs *hs, pc_http_server *srv, h2o_socket_t *sock)
{
    pc_hs_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        h2o_socket_close(sock);
        return;
    }
    c->hs = hs;
    c->srv = srv;
    c->sock = sock;
    sock->data = c;
    pc_buf_init(&c->head, 2 * hs->h.max_head + 64);
    pc_buf_init(&c->out, 1 << 20);
    uv_timer_init(pc_http_server_loop(srv), &c->timer);
    c->timer.data = c;
    struct sockaddr_storage ss;
    socklen_t sl = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    char host[NI_MAXHOST];
    if (sl > 0 && h2o_socket_getnumerichost((struct sockaddr *)&ss, sl, host) != SIZE_MAX)
        snprintf(c->peer, sizeof(c->peer), "%.64s:%d", host, h2o_socket_getport((struct sockaddr *)&ss));
    c->next = hs->conns;
    if (hs->conns != NULL)
        hs->conns->prev = c;
    hs->conns = c;
    hs->count++;
    reset_request(c);
    arm_timer(c);
    h2o_socket_read_start(sock, on_read);
}

void pc_hs_shutdown(pc_hs *hs)
{
    hs->shutting_down = 1;
    pc_hs_conn *c = hs->conns;
    while (c != NULL) {
        pc_hs_conn *next = c->next;
        if (c->st == ST_HEAD)
            close_conn(c);
        else if (c->st == ST_BODY && !c->body_done)
            abort_body(c);
        c = next;
    }
}

void pc_hs_free(pc_hs *hs)
{
    free(hs);
}

size_t pc_hs_count(const pc_hs *hs)
{
    return hs->count;
}

void pc_hs_set_data(pc_hs_conn *c, void *data)
{
    c->data = data;
}

void *pc_hs_get_data(pc_hs_conn *c)
{
    return c->data;
}

void pc_hs_resume(pc_hs_conn *c)
{
    if (!c->handler_paused || c->sock == NULL)
        return;
    c->handler_paused = 0;
    http_parser_pause(&c->parser, 0);
    if (c->st == ST_BODY)
        arm_timer(c);
    h2o_socket_read_start(c->sock, on_read);
    process(c);
}

const char *pc_hs_header_get(const pc_hs_request *req, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        if (req->headers[i].name_len == nlen && memcmp(req->headers[i].name, name, nlen) == 0) {
            if (len != NULL)
                *len = req->headers[i].value_len;
            return req->headers[i].value;
        }
    }
    if (len != NULL)
        *len = 0;
    return NULL;
}
