/*
 * tus 1.0.0 resumable uploads: core, creation, creation-with-upload,
 * checksum (sha1, sha256, md5), termination, concatenation and expiration,
 * behind pre-signed, expiring URLs.
 *
 * The module is transport-neutral. A request is begun from its head
 * (pc_tus_begin); most answer at once. Requests with a body (PATCH, creation
 * with upload) or slow work (final concatenation) return an operation: the
 * transport feeds body bytes (pc_tus_op_body, honouring pause requests) and
 * then finishes it (pc_tus_op_finish), which answers through a callback once
 * the bytes are durable (fdatasync) and the offset is committed in SQLite.
 * A finish with complete=0 (connection lost) still commits what arrived,
 * unless a checksum was announced for the request.
 *
 * URLs: the creation URL is BASE?exp=E&sig=S with S = HMAC-SHA256(key,
 * "create\nE"); each upload is BASE<id>?exp=E&sig=S with S = HMAC(key,
 * "upload\n<id>\nE"), both base64url. Bad signatures are 403, expired ones
 * too; a missing upload is 404, an expired unfinished one 410.
 */
#ifndef PC_ORIGIN_TUS_H
#define PC_ORIGIN_TUS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "db.h"
#include "pc_error.h"

#define PC_TUS_MAX_METADATA 4096
#define PC_TUS_MAX_PARTS 64
#define PC_TUS_MAX_HEADERS 24

typedef struct pc_tus pc_tus;
typedef struct pc_tus_op pc_tus_op;

typedef struct pc_tus_config {
    uv_loop_t *loop;
    pc_db *db;
    const char *upload_dir;      /* files of uploads in progress */
    const uint8_t *url_key;      /* 32-byte HMAC key, borrowed */
    const char *base_path;       /* e.g. "/tus/" (must end in '/') */
    const char *public_base;     /* optional "http://host:port" for Location; else from Host */
    int64_t max_size;            /* Tus-Max-Size */
    int64_t creation_ttl_s;      /* lifetime of a pre-signed creation URL */
    int64_t upload_ttl_s;        /* an unfinished upload expires this long after creation */
    int64_t min_free_bytes;      /* refuse creations that would leave less free disk (507) */
    size_t max_ops;              /* requests with a body and joins in progress at once (503 past it); 0: no limit */
    const char *done_dir; /* completed uploads move to done_dir/<id> */
    /*
     * A whole upload (single or concatenated final) is complete. Called inside
     * the database transaction that records the completion, so whatever the
     * callee records with the same handle commits or rolls back with it;
     * return 0, or an error to refuse (the client gets 500 and may retry).
     * After the commit the file moves to |final_path| (done_dir/<id>); should
     * that move not happen (crash), pc_tus_recover() finishes it.
     */
    int (*on_complete)(void *user, const pc_upload *u, const char *final_path);
    void *user;
} pc_tus_config;

/* A transport-neutral request head. */
typedef struct pc_tus_request {
    const char *method; /* after X-HTTP-Method-Override */
    const char *target; /* path and query */
    size_t path_len;
    int64_t content_length; /* -1 chunked, 0 none */
    /* Returns the value of a header by lowercase name (and its length), or NULL. */
    const char *(*header)(void *ctx, const char *name, size_t *len);
    void *ctx;
    /* How many times a header (lowercase name) occurs: a tus header given twice is refused, not read
     * from its first copy. */
    size_t (*count)(void *ctx, const char *name);
} pc_tus_request;

typedef struct pc_tus_reply {
    int status;
    size_t nheaders;
    const char *names[PC_TUS_MAX_HEADERS];
    char *values[PC_TUS_MAX_HEADERS]; /* owned */
    char *body;                       /* owned JSON error body or NULL */
    size_t body_len;
} pc_tus_reply;

void pc_tus_reply_clear(pc_tus_reply *r);

pc_tus *pc_tus_new(const pc_tus_config *cfg);
/* Only once no operation is in flight (pc_tus_active() == 0). */
void pc_tus_free(pc_tus *t);
size_t pc_tus_active(const pc_tus *t);
/* Since start: uploads created (single, partial and final), uploads complete (single and final: each
 * became a video) and body bytes committed. For /metrics. */
typedef struct pc_tus_stats {
    uint64_t created, completed, bytes;
} pc_tus_stats;
void pc_tus_stats_get(const pc_tus *t, pc_tus_stats *out);

/*
 * Starts a request. Returns 1 with |*early| filled (answer it; no body is
 * consumed), or 0 with |*op| set (feed the body, then finish). The caller
 * owns |early| and clears it after answering.
 */
int pc_tus_begin(pc_tus *t, const pc_tus_request *req, pc_tus_reply *early, pc_tus_op **op);
/*
 * Feeds body bytes (copied). Sets |*pause| when the transport should stop
 * delivering until the resume callback runs. Returns 0, or 1 when the
 * request must be answered now with |*reply| (for example the body overran
 * Upload-Length); the transport then answers, closes the connection, and
 * still calls pc_tus_op_finish(op, 0, NULL, NULL).
 */
int pc_tus_op_body(pc_tus_op *op, const char *data, size_t len, int *pause, pc_tus_reply *reply);
void pc_tus_op_set_resume(pc_tus_op *op, void (*resume)(void *arg), void *arg);
/*
 * Ends the operation. |done| (may be NULL when the transport can no longer
 * answer) receives the reply, which it must clear. The op is freed after.
 */
void pc_tus_op_finish(pc_tus_op *op, int complete, void (*done)(void *arg, pc_tus_reply *reply), void *arg);

/* Whether |host| (a Host header's value) may go into a URL: a name or address and an optional port. */
int pc_tus_host_valid(const char *host);
/* Mints a pre-signed creation URL (absolute when |host| is given). Returns malloc'd URL; |*expires| unix s. */
char *pc_tus_creation_url(pc_tus *t, const char *host, int64_t *expires);
/*
 * Deletes expired uploads and their files: unfinished ones and partial ones
 * (joined or not) at their expiry, the records of completed ones one upload
 * lifetime later. Returns how many.
 */
int pc_tus_gc(pc_tus *t);
/* At start: moves completed uploads whose files are still in upload_dir to done_dir, and removes files
 * there that no upload owns (a creation or a join the process died in). Returns how many it moved. */
int pc_tus_recover(pc_tus *t);

/* Exposed for tests: parse "key b64,key2 b64" into a JSON-ish check; 0 when well-formed. */
int pc_tus_metadata_valid(const char *s, size_t len);
/* Decodes the value of |key| from Upload-Metadata into |out| (NUL-terminated). PC_ENOENT if absent. */
int pc_tus_metadata_get(const char *s, size_t len, const char *key, char *out, size_t outlen) PC_MUST_CHECK;
/* Formats an RFC 7231 IMF-fixdate. |out| ≥ 32 bytes. */
void pc_http_date(int64_t unix_s, char *out, size_t outlen);

#endif
