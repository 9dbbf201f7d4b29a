/*
 * HTTP server glue over libh2o (HTTP/1.1 and h2c) on a libuv loop.
 *
 * A server owns one h2o context, its listeners and every connection it
 * accepted. Routes are prefix matches tried in registration order; a handler
 * returns 0 when it took the request (it may answer later: see
 * pc_http_req_guard) or -1 to pass. An optional accept hook sees each new
 * connection first and may keep it (the origin's streaming upload front door)
 * or hand it to h2o with pc_http_server_handoff(), bytes already read included.
 *
 * Lifecycle: pc_http_server_new → route/listen → pc_http_server_close(cb)
 * (graceful: stop accepting, finish in-flight responses, close idle keep-alive
 * connections) → in cb, pc_http_server_free.
 */
#ifndef PC_HTTP_SERVER_H
#define PC_HTTP_SERVER_H

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <h2o/filecache.h>
#include <h2o/http1.h>
#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "pc_blobcache.h"
#include "pc_buf.h"
#include "pc_error.h"

typedef struct pc_http_server pc_http_server;

/* 0: the handler took the request; -1: try the next route (404 after the last). */
typedef int (*pc_http_handler_fn)(void *user, h2o_req_t *req);
/* Returns 1 when the hook keeps |sock| (it must then close it or hand it off), 0 to let h2o serve it. */
typedef int (*pc_http_accept_hook_fn)(void *user, pc_http_server *srv, h2o_socket_t *sock);

typedef struct pc_http_server_config {
    size_t max_request_body;  /* bodies h2o buffers for handlers; default 1 MiB */
    uint64_t idle_timeout_ms; /* keep-alive idle and request-read timeout; default 30 s */
    pc_http_accept_hook_fn accept_hook;
    void *accept_hook_user;
} pc_http_server_config;

/* |cfg| may be NULL for defaults. Returns NULL on ENOMEM. */
pc_http_server *pc_http_server_new(uv_loop_t *loop, const pc_http_server_config *cfg);
/*
 * Frees the memory; after pc_http_server_close's callback ran and the loop
 * has run until h2o's handles closed (uv_run returned), or if never listened.
 */
void pc_http_server_free(pc_http_server *srv);
/* |prefix| must start with '/' and outlive nothing (copied). PC_ENOMEM. */
int pc_http_server_route(pc_http_server *srv, const char *prefix, pc_http_handler_fn fn, void *user) PC_MUST_CHECK;
/*
 * Listens on "HOST:PORT" (IPv4 or [IPv6]); port 0 picks a free port. |bound|
 * (≥ 64 bytes) receives "HOST:PORT" as bound. PC_EINVAL on a bad address,
 * PC_EIO when bind/listen fails. All routes must be registered before.
 */
int pc_http_server_listen(pc_http_server *srv, const char *hostport, char *bound, size_t boundlen) PC_MUST_CHECK;
/* Parses "HOST:PORT" (IPv4, [IPv6] or localhost; port 0 … 65535) into |ss|, which must be zeroed.
 * PC_EINVAL otherwise. Also used for the peer's TCP port. */
int pc_hostport_parse(const char *hostport, struct sockaddr_storage *ss) PC_MUST_CHECK;
/* Bytes written to |t| that its other end has not yet acknowledged: what libuv still holds plus what the
 * kernel has sent without acknowledgement (SIOCOUTQ; 0 when it cannot be read). It shrinks whenever the
 * other end reads, and stays put while it does not. Also used by the peer's links. */
size_t pc_tcp_unacked(uv_tcp_t *t);
/* Gives an accepted socket (with whatever is buffered in sock->input) to h2o's HTTP/1 (and h2c) code. */
void pc_http_server_handoff(pc_http_server *srv, h2o_socket_t *sock);
/* Graceful stop; |cb| runs once every connection is closed. */
void pc_http_server_close(pc_http_server *srv, void (*cb)(void *arg), void *arg);
uv_loop_t *pc_http_server_loop(pc_http_server *srv);
h2o_context_t *pc_http_server_h2o(pc_http_server *srv);
/* Counts of accepted connections still open (for tests and metrics). */
size_t pc_http_server_live_connections(pc_http_server *srv);

/* Every answer h2o sends is counted by status, with its body's bytes (as h2o counts them); an
 * accept hook that answers requests itself counts them with pc_http_server_count (|status| 0: the
 * request ended unanswered). pc_http_server_metrics renders the counts, and the connections open, in
 * Prometheus text format as PREFIX_http_responses_total{code="200"}, PREFIX_http_response_bytes_total
 * and PREFIX_http_connections (PC_ENOMEM). */
#define PC_HTTP_STATUS_MAX 599
void pc_http_server_count(pc_http_server *srv, int status, uint64_t bytes);
int pc_http_server_metrics(const pc_http_server *srv, const char *prefix, pc_buf *o) PC_MUST_CHECK;

/*
 * Keeps an asynchronous handler safe: sets |*slot| to |req| now and to NULL
 * when the request is torn down (client gone). Before the handler frees the
 * memory holding |slot| while the request is still alive, it must call
 * pc_http_req_unguard(*guard). Returns PC_ENOMEM.
 */
int pc_http_req_guard(h2o_req_t *req, h2o_req_t **slot, void **guard) PC_MUST_CHECK;
void pc_http_req_unguard(void *guard);
/*
 * 1 when the HTTP/1 client of |req|, which has not been answered, closed or
 * reset its connection. h2o stops reading an HTTP/1 connection once a request
 * is in, so it never finds out itself and keeps the request alive until the
 * answer is written; this peeks at the socket (no byte is taken). 0 for a
 * client still there, one that sent more (a pipelined request), and for
 * HTTP/2, where h2o tears down a reset stream itself (the guard sees it).
 * A client that half-closes after its request and still reads the answer
 * (rare: shutdown(SHUT_WR)) counts as gone.
 */
int pc_http_req_client_gone(h2o_req_t *req);

/* Response helpers; they add CORS "Access-Control-Allow-Origin: *". The body is copied. */
void pc_http_respond(h2o_req_t *req, int status, const char *content_type, const void *body, size_t len);
/* The same without copying |body|, which comes from h2o_mem_alloc_shared: every answer sending it holds a
 * reference until it is done, so one large document answers many requests in one copy. */
void pc_http_respond_shared(h2o_req_t *req, int status, const char *content_type, void *body, size_t len);
/* Steals |body|. */
/* Answers with |len| bytes at |data| inside |blob| without copying them; takes over the caller's reference
 * to |blob|, released once the answer is sent (or the client went away). */
void pc_http_respond_blob(h2o_req_t *req, int status, const char *content_type, pc_blob *blob, const void *data,
                          size_t len);
void pc_http_respond_json(h2o_req_t *req, int status, json_t *body);
/* {"code": code, "message": message} with |status|. */
void pc_http_respond_error(h2o_req_t *req, int status, const char *code, const char *message);
/* Adds a response header (name and value copied into the request pool). */
void pc_http_add_header(h2o_req_t *req, const char *name, const char *value);
/* A CORS preflight: for an OPTIONS request, answers 204 allowing |methods| (also sent as Allow) and the
 * request headers |headers| for a day, and returns 1; returns 0 for any other method. A page on a public
 * site asking a server on a private or loopback address (the peer's local endpoint, a LAN origin) is
 * allowed too: Chrome's Private Network Access preflight asks for that, and is answered. */
int pc_http_preflight(h2o_req_t *req, const char *methods, const char *headers);
/* A resource that takes GET and HEAD: 0 for those; otherwise answers and returns 1: a CORS preflight
 * allowing |cors_headers| (none is answered when NULL), or 405 with Allow and |message|. */
int pc_http_get_only(h2o_req_t *req, const char *cors_headers, const char *message);

/* Request helpers. The returned view points into the request and is not NUL-terminated. */
h2o_iovec_t pc_http_req_header(h2o_req_t *req, const char *name);
/* A list header (If-None-Match, If-Match, Accept-Encoding...) sent on several lines, joined with ", " as
 * RFC 9110 section 5.3 makes it mean (in the request's pool); as pc_http_req_header when on one line. */
h2o_iovec_t pc_http_req_header_list(h2o_req_t *req, const char *name);
int pc_http_req_method_is(h2o_req_t *req, const char *method);
/* The client's address (IPv4 or IPv6); 0, or PC_EINVAL when the connection cannot tell. */
int pc_http_req_peer(h2o_req_t *req, struct sockaddr_storage *out) PC_MUST_CHECK;
/* Path without the query string. */
h2o_iovec_t pc_http_req_path(h2o_req_t *req);
/* The Host the client sent (HTTP/2: :authority); {NULL, 0} when it sent none, where h2o puts its host
 * configuration's name ("default") in req->authority instead. */
h2o_iovec_t pc_http_req_host(h2o_req_t *req);
/*
 * Copies the percent-decoded value of query parameter |name| into |out|
 * (NUL-terminated). 0, PC_ENOENT when absent, PC_ETOOBIG when it does not fit, PC_EPARSE when it
 * holds a NUL (%00) or is given more than once. Anything but PC_ENOENT that is not 0 is a bad request.
 */
int pc_http_req_query(h2o_req_t *req, const char *name, char *out, size_t outlen) PC_MUST_CHECK;
/* Same on a raw query string (without '?'). */
int pc_http_query_get(const char *query, size_t len, const char *name, char *out, size_t outlen) PC_MUST_CHECK;
/* HTTP status → reason phrase ("OK", "Not Found", ...). */
const char *pc_http_reason(int status);

#endif
