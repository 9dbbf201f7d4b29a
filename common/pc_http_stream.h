/*
 * Streaming HTTP/1.1 request handling for connections an accept hook keeps
 * (the origin's upload front door). libh2o 2.2 buffers a whole request body
 * before calling a handler; a 1 GiB tus PATCH must instead reach the disk as
 * it arrives, under backpressure, and survive a broken connection with the
 * bytes received so far. This module parses requests with http-parser, hands
 * heads and body bytes to a handler, and writes its responses. A connection
 * whose request the handler declines is handed to h2o with every byte it
 * has read, so one port serves both.
 *
 * Limits: request heads ≤ max_head bytes (431 above), 64 headers; a body
 * that stalls for body_timeout_ms aborts the request; an idle connection is
 * closed after idle_timeout_ms.
 */
#ifndef PC_HTTP_STREAM_H
#define PC_HTTP_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "pc_http_server.h"

#define PC_HS_MAX_HEADERS 64
#define PC_HTTP_HEAD_MAX 16384 /* bytes of a request head, on every server and every request (431 above) */

typedef struct pc_hs pc_hs;
typedef struct pc_hs_conn pc_hs_conn;

typedef struct pc_hs_header {
    const char *name; /* lowercase */
    size_t name_len;
    const char *value;
    size_t value_len;
} pc_hs_header;

typedef struct pc_hs_request {
    const char *method; /* NUL-terminated, e.g. "PATCH" */
    const char *target; /* path and query, NUL-terminated */
    size_t path_len;    /* length of the path part of target */
    const pc_hs_header *headers;
    size_t nheaders;
    int64_t content_length; /* -1 when the body is chunked, 0 when absent */
    int expect_continue;
    const char *peer; /* "ip:port" */
} pc_hs_request;

typedef struct pc_hs_handler {
    /*
     * A complete request head. Return 1 to take the request: the body (if any)
     * then arrives through on_body and on_end, and the handler answers once
     * with pc_hs_respond (at any point, even before the body arrived). Return
     * 0 to hand the connection, this request included, to h2o.
     */
    int (*on_head)(void *user, pc_hs_conn *c, const pc_hs_request *req);
    /* Body bytes (a view into the socket buffer); return 1 to stop reading until pc_hs_resume. */
    int (*on_body)(void *user, pc_hs_conn *c, const char *data, size_t len);
    /*
     * The body ended: complete=1 after the last byte, 0 when the connection
     * failed or timed out mid-body (no response can be sent then; the handler
     * must not call pc_hs_respond afterwards, and the connection is gone).
     */
    void (*on_end)(void *user, pc_hs_conn *c, int complete);
    size_t max_head;          /* default 16 KiB */
    uint64_t body_timeout_ms; /* default 60 s */
    uint64_t idle_timeout_ms; /* default 30 s */
    /* Extra headers ("Name", "value" pairs, |nerror_headers| of them, static) on the answers this module
     * writes itself (a malformed or oversized head, a broken body): what the handler's own answers carry,
     * such as CORS and Tus-Resumable. */
    const char *const *error_headers;
    size_t nerror_headers;
} pc_hs_handler;

/* |h| is copied. NULL on ENOMEM. */
pc_hs *pc_hs_new(const pc_hs_handler *h, void *user);
/* Closes idle connections and aborts requests in progress (their handlers see on_end(0)). */
void pc_hs_shutdown(pc_hs *hs);
/* Only after every connection closed (pc_hs_count() == 0). */
void pc_hs_free(pc_hs *hs);
size_t pc_hs_count(const pc_hs *hs);
/* Takes |sock| (accepted by |srv|); the first request decides who serves it. */
void pc_hs_attach(pc_hs *hs, pc_http_server *srv, h2o_socket_t *sock);

void pc_hs_set_data(pc_hs_conn *c, void *data);
void *pc_hs_get_data(pc_hs_conn *c);
/* Resumes reading after on_body asked for a pause. */
void pc_hs_resume(pc_hs_conn *c);
/*
 * Answers the current request. |headers| are extra response headers
 * ("Name", "value" pairs, |nheaders| of them); Content-Length is added. When
 * the body has not been fully read the connection is closed after writing.
 * Bodies of HEAD requests and of 204/304 responses are not sent.
 */
void pc_hs_respond(pc_hs_conn *c, int status, const char *const *headers, size_t nheaders, const char *content_type,
                   const void *body, size_t len);

/* Finds a request header by lowercase name; returns its value or NULL (and 0 length). */
const char *pc_hs_header_get(const pc_hs_request *req, const char *name, size_t *len);

#endif
