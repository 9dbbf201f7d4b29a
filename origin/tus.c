/*
 * tus 1.0.0 server core; see tus.h. Upload bytes go to UPLOAD_DIR/<id> via
 * the libuv thread pool, double-buffered (two 512 KiB buffers per request),
 * so memory per upload stays bounded whatever the request size.
 */
#include "tus.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "pc_crypto.h"
#include "pc_fs.h"
#include "pc_http_server.h"
#include "pc_json.h"
#include "pc_log.h"
#include "pc_num.h"

#define BUF_SIZE (512 * 1024)
#define TUS_VERSION "1.0.0"
#define TUS_EXTENSIONS "creation,creation-with-upload,checksum,termination,concatenation,expiration"
#define TUS_CHECKSUMS "sha1,sha256,md5"
#define EXPOSE_HEADERS                                                                                           \
    "Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Concat, Upload-Expires, Tus-Version, "      \
    "Tus-Resumable, Tus-Max-Size, Tus-Extension, Tus-Checksum-Algorithm"
#define ALLOW_HEADERS                                                                                            \
    "Authorization, Origin, X-Requested-With, X-Request-ID, X-HTTP-Method-Override, Content-Type, "              \
    "Upload-Length, Upload-Offset, Tus-Resumable, Upload-Metadata, Upload-Defer-Length, Upload-Concat, "         \
    "Upload-Checksum"

enum op_kind { OP_PATCH, OP_CONCAT };

struct pc_tus {
    pc_tus_config cfg;
    char *upload_dir, *base_path, *public_base, *done_dir;
    uint8_t key[32];
    pc_tus_op *ops;
    size_t nops;
    pc_tus_stats stats;
};

struct pc_tus_op {
    pc_tus *t;
    pc_tus_op *prev, *next;
    enum op_kind kind;
    char id[PC_ID_LEN + 1];
    pc_upload up;
    int created; /* creation-with-upload: answer 201 with Location */
    char *location;
    char host[256]; /* Host of the request, for absolute URLs */
    int fd;
    int64_t base_offset, written, received, limit;
    char *fill, *flight;
    size_t fill_len, fill_cap, flight_len, flight_cap; /* each buffer keeps its own capacity */
    int writing, want_pause, failed, fail_errno;
    int unsynced; /* fdatasync failed: nothing of this request counts as stored */
    uv_fs_t wreq, sreq;
    void (*resume)(void *);
    void *resume_arg;
    EVP_MD_CTX *md;
    uint8_t expect_sum[EVP_MAX_MD_SIZE];
    size_t expect_len;
    int finishing, complete;
    void (*done)(void *, pc_tus_reply *);
    void *done_arg;
    /* concatenation */
    char parts[PC_TUS_MAX_PARTS][PC_ID_LEN + 1];
    int nparts;
    int64_t concat_len;
    char *concat_parts;
    uv_work_t work;
    int work_result;
};

/* ---- small helpers ---- */

void pc_http_date(int64_t unix_s, char *out, size_t outlen)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* An Upload-Length or Upload-Offset: digits (tus: a non-negative integer) */
static int parse_u64(const char *s, size_t len, int64_t *out)
{
    return pc_parse_int(s, len, 0, INT64_MAX, 0, out);
}

void pc_tus_reply_clear(pc_tus_reply *r)
{
    for (size_t i = 0; i < r->nheaders; i++)
        free(r->values[i]);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static void add_header(pc_tus_reply *r, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_header(pc_tus_reply *r, const char *name, const char *fmt, ...)
{
    if (r->nheaders == PC_TUS_MAX_HEADERS)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *v = NULL;
    if (vasprintf(&v, fmt, ap) < 0)
        v = NULL;
    va_end(ap);
    if (v == NULL)
        return;
    r->names[r->nheaders] = name;
    r->values[r->nheaders++] = v;
}

static void reply_init(pc_tus_reply *r, int status)
{
    memset(r, 0, sizeof(*r));
    r->status = status;
    add_header(r, "Tus-Resumable", TUS_VERSION);
    add_header(r, "Access-Control-Allow-Origin", "*");
    add_header(r, "Access-Control-Expose-Headers", EXPOSE_HEADERS);
    add_header(r, "Cache-Control", "no-store");
}

static int reply_error(pc_tus_reply *r, int status, const char *code, const char *message)
{
    reply_init(r, status);
    r->body = pc_json_error_body(code, message, &r->body_len);
    return 1;
}

/* A database failure: 503 with Retry-After when another program (an operator's sqlite3, a backup) held the
 * lock past the serving wait (tus clients retry it, from the offset a HEAD gives), else 500. */
static int reply_db_error(const pc_tus *t, pc_tus_reply *r, const char *message)
{
    if (pc_db_took_busy(t->cfg.db)) {
        reply_error(r, 503, "database_busy", "the database is locked by another program; retry shortly");
        add_header(r, "Retry-After", "1");
        return 1;
    }
    return reply_error(r, 500, "database_error", message);
}

/* Whether another request with a body (or a join) may start: a body holds two 640 KiB buffers while it
 * lasts, and a client may trickle it for as long as it likes. 0, or 1 with a 503 in |r| (tus
 * clients retry it, after Retry-After). */
static int too_busy(const pc_tus *t, pc_tus_reply *r)
{
    if (t->cfg.max_ops == 0 || t->nops < t->cfg.max_ops)
        return 0;
    reply_error(r, 503, "busy", "too many uploads are being received at once; retry shortly");
    add_header(r, "Retry-After", "2");
    return 1;
}

/* Whether the upload directory has room for |bytes| more besides what unfinished uploads were promised
 * and have not sent yet, keeping min_free_bytes: 0, or 1 with the error reply (500 or 507) in |r|. */
static int room_for(const pc_tus *t, int64_t bytes, pc_tus_reply *r)
{
    struct statvfs vfs;
    int64_t pending = 0;
    if (pc_db_upload_pending(t->cfg.db, now_s(), &pending) != 0)
        return reply_db_error(t, r, "cannot read the uploads");
    if (statvfs(t->upload_dir, &vfs) == 0 &&
        (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize - pending - bytes < t->cfg.min_free_bytes)
        return reply_error(r, 507, "insufficient_storage", "the server does not have room for this upload");
    return 0;
}

static const char *get_hdr(const pc_tus_request *req, const char *name, size_t *len)
{
    size_t l = 0;
    const char *v = req->header(req->ctx, name, &l);
    if (len != NULL)
        *len = v != NULL ? l : 0;
    return v;
}

/* ---- signatures ---- */

static void sign(const pc_tus *t, const char *scope, const char *id, int64_t exp, char out[64])
{
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "%s\n%s\n%" PRId64, scope, id, exp);
    uint8_t mac[PC_HMAC_LEN];
    pc_hmac_sha256(t->key, msg, (size_t)n, mac);
    pc_b64_encode(mac, sizeof(mac), out, 1);
}

/* 0 when |exps| (canonical decimal: one signed URL, one spelling) and |sig| are a valid, unexpired
 * signature for scope/id; PC_EFORBIDDEN or PC_EEXPIRED. */
static int verify_cred(const pc_tus *t, const char *exps, const char *sig, const char *scope, const char *id)
{
    int64_t exp;
    if (pc_parse_int_str(exps, 1, INT64_MAX, PC_NUM_CANONICAL, &exp) != 0)
        return PC_EFORBIDDEN;
    char want[64];
    sign(t, scope, id, exp, want);
    if (strlen(sig) != strlen(want) || !pc_ct_equal(sig, want, strlen(want)))
        return PC_EFORBIDDEN;
    if (exp < now_s())
        return PC_EEXPIRED;
    return 0;
}

/* The same with the credential in |query| (exp=E&sig=S). */
static int verify(const pc_tus *t, const char *query, size_t qlen, const char *scope, const char *id)
{
    char exps[24], sig[96];
    if (pc_http_query_get(query, qlen, "exp", exps, sizeof(exps)) != 0 ||
        pc_http_query_get(query, qlen, "sig", sig, sizeof(sig)) != 0)
        return PC_EFORBIDDEN;
    return verify_cred(t, exps, sig, scope, id);
}

int pc_tus_host_valid(const char *host)
{
    /* a DNS name, an IPv4 address or a bracketed IPv6 one, then an optional port 1 … 65535: nothing that
     * could break out of a URL, nor a port no client could connect to */
    size_t n = strlen(host), end;
    if (n == 0 || n >= 256)
        return 0;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        end = close != NULL ? (size_t)(close - host) + 1 : 0;
        if (end < 3 || strspn(host + 1, "0123456789abcdefABCDEF:.") != end - 2)
            return 0;
    } else {
        end = strspn(host, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-");
        if (end == 0)
            return 0;
    }
    if (host[end] == '\0')
        return 1;
    int64_t port;
    return host[end] == ':' && pc_parse_int_str(host + end + 1, 1, 65535, PC_NUM_CANONICAL, &port) == 0;
}

/* The creation URL is BASE?exp=E&sig=S; an upload's is BASE E.S/ID, so that its id ends the URL (the
 * contract: the video id is at the end of the final upload's Location). Both are accepted as either. */
static char *make_url(const pc_tus *t, const char *host, const char *id, int64_t exp)
{
    char sig[64], tail[160];
    sign(t, id[0] != '\0' ? "upload" : "create", id, exp, sig);
    if (id[0] != '\0')
        snprintf(tail, sizeof(tail), "%" PRId64 ".%s/%s", exp, sig, id);
    else
        snprintf(tail, sizeof(tail), "?exp=%" PRId64 "&sig=%s", exp, sig);
    char *url = NULL;
    int n;
    if (t->public_base != NULL)
        n = asprintf(&url, "%s%s%s", t->public_base, t->base_path, tail);
    else if (host != NULL && pc_tus_host_valid(host))
        n = asprintf(&url, "http://%s%s%s", host, t->base_path, tail);
    else
        n = asprintf(&url, "%s%s", t->base_path, tail);
    return n < 0 ? NULL : url;
}

/* The upload an URL names by its path after BASE, "E.S/ID", or "ID" with the credential in |query|:
 * its id, and in |*valid| whether the credential is good (verify's result). -1 when it names no upload. */
static int upload_ref(const pc_tus *t, const char *rest, size_t len, const char *query, size_t qlen,
                      char id[PC_ID_LEN + 1], int *valid)
{
    const char *slash = memchr(rest, '/', len), *idp = slash != NULL ? slash + 1 : rest;
    size_t il = len - (size_t)(idp - rest);
    if (il != PC_ID_LEN || !pc_id_valid(idp, il))
        return -1;
    memcpy(id, idp, PC_ID_LEN);
    id[PC_ID_LEN] = '\0';
    if (slash == NULL) {
        *valid = verify(t, query, qlen, "upload", id);
        return 0;
    }
    char exps[24], sig[96];
    const char *dot = memchr(rest, '.', (size_t)(slash - rest));
    size_t el = dot != NULL ? (size_t)(dot - rest) : 0, sl = dot != NULL ? (size_t)(slash - dot - 1) : 0;
    if (el == 0 || el >= sizeof(exps) || sl >= sizeof(sig))
        return -1;
    snprintf(exps, sizeof(exps), "%.*s", (int)el, rest);
    snprintf(sig, sizeof(sig), "%.*s", (int)sl, dot + 1);
    *valid = verify_cred(t, exps, sig, "upload", id);
    return 0;
}

/* Upload URLs stay validly signed for a while after the upload expires, so clients learn "410 expired". */
static int64_t url_expiry(const pc_tus *t, const pc_upload *u)
{
    return u->expires + t->cfg.upload_ttl_s;
}

char *pc_tus_creation_url(pc_tus *t, const char *host, int64_t *expires)
{
    int64_t exp = now_s() + t->cfg.creation_ttl_s;
    if (expires != NULL)
        *expires = exp;
    return make_url(t, host, "", exp);
}

/* ---- Upload-Metadata ---- */

static int meta_key_char(int c)
{
    return c > ' ' && c < 127 && c != ',';
}

int pc_tus_metadata_valid(const char *s, size_t len)
{
    size_t i = 0, nkeys = 0;
    struct {
        size_t at, len;
    } keys[64];
    while (i < len) {
        while (i < len && s[i] == ' ')
            i++;
        size_t k = i;
        while (i < len && meta_key_char((unsigned char)s[i]))
            i++;
        if (i == k || nkeys == sizeof(keys) / sizeof(keys[0]))
            return PC_EPARSE;
        for (size_t d = 0; d < nkeys; d++) /* keys must be unique */
            if (keys[d].len == i - k && memcmp(s + keys[d].at, s + k, i - k) == 0)
                return PC_EPARSE;
        keys[nkeys].at = k;
        keys[nkeys++].len = i - k;
        if (i < len && s[i] == ' ') {
            i++;
            size_t v = i;
            while (i < len && s[i] != ',')
                i++;
            size_t vl = i - v;
            while (vl > 0 && s[v + vl - 1] == ' ')
                vl--;
            uint8_t tmp[PC_TUS_MAX_METADATA];
            if (vl > 0 && pc_b64_decode(s + v, vl, tmp, sizeof(tmp), NULL, 0) != 0)
                return PC_EPARSE;
        }
        if (i < len) {
            if (s[i] != ',')
                return PC_EPARSE;
            i++;
        }
    }
    return 0;
}

int pc_tus_metadata_get(const char *s, size_t len, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key), i = 0;
    while (i < len) {
        while (i < len && s[i] == ' ')
            i++;
        size_t k = i;
        while (i < len && s[i] != ' ' && s[i] != ',')
            i++;
        size_t kl = i - k, v = i, vl = 0;
        if (i < len && s[i] == ' ') {
            v = ++i;
            while (i < len && s[i] != ',')
                i++;
            vl = i - v;
            while (vl > 0 && s[v + vl - 1] == ' ')
                vl--;
        }
        if (kl == klen && memcmp(s + k, key, klen) == 0) {
            size_t n = 0;
            if (outlen == 0 || pc_b64_decode(s + v, vl, (uint8_t *)out, outlen - 1, &n, 0) != 0)
                return PC_EPARSE;
            out[n] = '\0';
            return 0;
        }
        if (i < len)
            i++;
    }
    return PC_ENOENT;
}

/* ---- lifecycle ---- */

pc_tus *pc_tus_new(const pc_tus_config *cfg)
{
    pc_tus *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->cfg = *cfg;
    t->upload_dir = strdup(cfg->upload_dir);
    t->base_path = strdup(cfg->base_path);
    t->public_base = cfg->public_base != NULL ? strdup(cfg->public_base) : NULL;
    t->done_dir = strdup(cfg->done_dir != NULL ? cfg->done_dir : cfg->upload_dir);
    memcpy(t->key, cfg->url_key, 32);
    if (t->upload_dir == NULL || t->base_path == NULL) {
        pc_tus_free(t);
        return NULL;
    }
    return t;
}

void pc_tus_free(pc_tus *t)
{
    if (t == NULL)
        return;
    free(t->upload_dir);
    free(t->base_path);
    free(t->public_base);
    free(t->done_dir);
    sodium_memzero(t->key, sizeof(t->key));
    free(t);
}

size_t pc_tus_active(const pc_tus *t)
{
    return t->nops;
}

static int is_locked(const pc_tus *t, const char *id)
{
    for (const pc_tus_op *o = t->ops; o != NULL; o = o->next) {
        if (strcmp(o->id, id) == 0)
            return 1;
        for (int i = 0; i < o->nparts; i++)
            if (strcmp(o->parts[i], id) == 0)
                return 1;
    }
    return 0;
}

static void upload_path(const pc_tus *t, const char *id, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", t->upload_dir, id);
}

static pc_tus_op *op_new(pc_tus *t, enum op_kind kind, const char *id)
{
    pc_tus_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->t = t;
    op->kind = kind;
    op->fd = -1;
    snprintf(op->id, sizeof(op->id), "%s", id);
    op->next = t->ops;
    if (t->ops != NULL)
        t->ops->prev = op;
    t->ops = op;
    t->nops++;
    return op;
}

static void op_free(pc_tus_op *op)
{
    pc_tus *t = op->t;
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        t->ops = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    t->nops--;
    if (op->fd >= 0)
        close(op->fd);
    if (op->md != NULL)
        EVP_MD_CTX_free(op->md);
    pc_upload_clear(&op->up);
    free(op->location);
    free(op->fill);
    free(op->flight);
    free(op->concat_parts);
    free(op);
}

/* ---- completion ---- */

static void done_path(const pc_tus *t, const char *id, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", t->done_dir, id);
}

/*
 * The last step of an upload's life here, inside the caller's open transaction:
 * hands the completed upload to on_complete. Returns 0 or an error.
 */
static int hand_over(pc_tus *t, const pc_upload *u)
{
    if (t->cfg.on_complete == NULL)
        return 0;
    char dest[4200];
    done_path(t, u->id, dest, sizeof(dest));
    return t->cfg.on_complete(t->cfg.user, u, dest);
}

/* After the commit: the file joins its video. A failure here is finished by pc_tus_recover. */
static void move_done(pc_tus *t, const char *id)
{
    char from[4200], to[4200];
    upload_path(t, id, from, sizeof(from));
    done_path(t, id, to, sizeof(to));
    if (rename(from, to) != 0 || pc_fsync_parent(to) != 0 || pc_fsync_parent(from) != 0)
        PC_LOGE("tus", "cannot move completed upload %s to %s: %s", id, to, strerror(errno));
}

int pc_tus_recover(pc_tus *t)
{
    DIR *d = opendir(t->upload_dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!pc_id_valid(e->d_name, strlen(e->d_name)))
            continue;
        pc_upload u;
        int r = pc_db_upload_get(t->cfg.db, e->d_name, &u);
        if (r == PC_ENOENT) {
            /* written before the row that would have owned it (a creation or a join the process died in):
             * nothing refers to it, and no one could ever resume it */
            char path[4096];
            upload_path(t, e->d_name, path, sizeof(path));
            if (unlink(path) == 0)
                PC_LOGW("tus", "removed %s: a creation or join that did not finish left it", path);
            continue;
        }
        if (r != 0)
            continue;
        if (u.completed && u.kind != PC_UPLOAD_PARTIAL) {
            PC_LOGW("tus", "completed upload %s was still in %s; moving it to its video", u.id, t->upload_dir);
            move_done(t, u.id);
            n++;
        }
        pc_upload_clear(&u);
    }
    closedir(d);
    return n;
}

/* ---- request handling ---- */

/* Upload-Expires on every upload the sweep removes at its expiry (pc_db_upload_expired): an unfinished one, and
 * a partial one even when complete, since it is deleted unless a join takes it first. A complete single or
 * final upload is a video: its record goes later, and nothing of the video with it. */
static void add_expires(pc_tus_reply *r, const pc_upload *u)
{
    if (!u->completed || u->kind == PC_UPLOAD_PARTIAL) {
        char date[40];
        pc_http_date(u->expires, date, sizeof(date));
        add_header(r, "Upload-Expires", "%s", date);
    }
}

static int handle_options(pc_tus_reply *r)
{
    reply_init(r, 204);
    add_header(r, "Tus-Version", TUS_VERSION);
    add_header(r, "Tus-Extension", TUS_EXTENSIONS);
    add_header(r, "Tus-Max-Size", "%" PRId64, (int64_t)0); /* replaced below */
    add_header(r, "Tus-Checksum-Algorithm", TUS_CHECKSUMS);
    add_header(r, "Access-Control-Allow-Methods", "POST, HEAD, PATCH, DELETE, OPTIONS");
    add_header(r, "Access-Control-Allow-Headers", ALLOW_HEADERS);
    add_header(r, "Access-Control-Max-Age", "86400");
    return 1;
}

static const EVP_MD *checksum_md(const char *name, size_t len)
{
    if (len == 4 && strncasecmp(name, "sha1", 4) == 0)
        return EVP_sha1();
    if (len == 6 && strncasecmp(name, "sha256", 6) == 0)
        return EVP_sha256();
    if (len == 3 && strncasecmp(name, "md5", 3) == 0)
        return EVP_md5();
    return NULL;
}

/* Parses Upload-Checksum into op; returns 1 with an error reply when malformed. */
/* Upload-Checksum's algorithm and digest (*md NULL: no header); else replies 400 and returns 1. */
static int parse_checksum(const pc_tus_request *req, pc_tus_reply *r, const EVP_MD **md, uint8_t *sum, size_t cap,
                          size_t *dlen)
{
    size_t len;
    const char *v = get_hdr(req, "upload-checksum", &len);
    *md = NULL;
    if (v == NULL)
        return 0;
    const char *sp = memchr(v, ' ', len);
    if (sp == NULL)
        return reply_error(r, 400, "bad_checksum_header", "Upload-Checksum must be '<algorithm> <base64 digest>'");
    if ((*md = checksum_md(v, (size_t)(sp - v))) == NULL)
        return reply_error(r, 400, "unsupported_checksum", "supported checksum algorithms: " TUS_CHECKSUMS);
    const char *b = sp + 1;
    size_t blen = len - (size_t)(b - v);
    if (pc_b64_decode(b, blen, sum, cap, dlen, 0) != 0 || *dlen != (size_t)EVP_MD_size(*md))
        return reply_error(r, 400, "bad_checksum_header", "the Upload-Checksum digest is not valid base64 of the right length");
    return 0;
}

static int setup_checksum(pc_tus_op *op, const pc_tus_request *req, pc_tus_reply *r)
{
    const EVP_MD *md;
    size_t dlen = 0;
    if (parse_checksum(req, r, &md, op->expect_sum, sizeof(op->expect_sum), &dlen))
        return 1;
    if (md == NULL)
        return 0;
    op->expect_len = dlen;
    op->md = EVP_MD_CTX_new();
    if (op->md == NULL || EVP_DigestInit_ex(op->md, md, NULL) != 1)
        return reply_error(r, 500, "internal_error", "cannot initialise the checksum");
    return 0;
}

static int check_body_type(const pc_tus_request *req)
{
    size_t len;
    const char *ct = get_hdr(req, "content-type", &len);
    static const char want[] = "application/offset+octet-stream";
    return ct != NULL && len >= sizeof(want) - 1 && strncasecmp(ct, want, sizeof(want) - 1) == 0;
}

/* Opens the upload's file for writing at its committed offset and arms the op for body bytes. */
static int arm_patch(pc_tus_op *op, pc_tus_reply *r)
{
    char path[4096];
    upload_path(op->t, op->id, path, sizeof(path));
    /* a finished upload's file has moved on to the pipeline: a body of unknown length (chunked) can only
     * be empty (204) or past Upload-Length (413), and nothing is written */
    op->fd = op->up.completed ? -1 : open(path, O_WRONLY | O_CLOEXEC);
    if (op->fd < 0 && !op->up.completed) {
        PC_LOGE("tus", "cannot open %s: %s", path, strerror(errno));
        return reply_error(r, 500, "io_error", "the upload's storage cannot be opened");
    }
    op->base_offset = op->up.offset;
    op->limit = op->up.length - op->up.offset;
    op->fill_cap = op->flight_cap = BUF_SIZE + 128 * 1024;
    op->fill = malloc(op->fill_cap);
    op->flight = malloc(op->flight_cap);
    if (op->fill == NULL || op->flight == NULL)
        return reply_error(r, 503, "out_of_memory", "the server is out of memory");
    return 0;
}

/* A final upload's parts as its row keeps them: "ID ID ...", in the order of Upload-Concat. */
#define PARTS_LIST_MAX (PC_TUS_MAX_PARTS * (PC_ID_LEN + 1) + 1)
static void parts_list(const pc_tus_op *op, char out[PARTS_LIST_MAX])
{
    out[0] = '\0';
    for (int i = 0; i < op->nparts; i++) {
        if (i > 0)
            strcat(out, " ");
        strcat(out, op->parts[i]);
    }
}

/* A final creation naming partial uploads of which |gone| no longer exist: when all are gone because they
 * were joined, into the final upload whose parts are exactly these (the join committed, and the origin
 * died or the connection broke before its 201 arrived), the same answer again, so a client that asks
 * again learns its video; otherwise 400. Takes |op|. */
static int rejoin(pc_tus *t, pc_tus_op *op, int gone, pc_tus_reply *r)
{
    pc_upload fu;
    char list[PARTS_LIST_MAX];
    parts_list(op, list);
    int fr = gone == op->nparts ? pc_db_upload_final_of(t->cfg.db, list, &fu) : PC_ENOENT;
    if (fr != 0) {
        op_free(op);
        return reply_error(r, 400, "bad_concat", "Upload-Concat names an upload that is not a partial upload here");
    }
    char host[sizeof(op->host)];
    memcpy(host, op->host, sizeof(host));
    op_free(op);
    reply_init(r, 201);
    char *loc = make_url(t, host, fu.id, url_expiry(t, &fu));
    if (loc != NULL)
        add_header(r, "Location", "%s", loc);
    free(loc);
    PC_LOGI("tus", "a join of %d partial uploads asked again: they are %s", gone, fu.id);
    pc_upload_clear(&fu);
    return 1;
}

static int handle_creation(pc_tus *t, const pc_tus_request *req, const char *query, size_t qlen, pc_tus_reply *r,
                           pc_tus_op **opp)
{
    int v = verify(t, query, qlen, "create", "");
    size_t clen = 0, llen = 0, mlen = 0;
    const char *concat = get_hdr(req, "upload-concat", &clen);
    int final = concat != NULL && clen >= 6 && strncmp(concat, "final;", 6) == 0;
    /* A join on a creation URL that was ours but has expired is let through: its parts' own signed URLs,
     * each checked below and valid as long as its upload lives, are what authorise it. A creation URL
     * lives an hour, and tus-js-client's parallel uploads join with the one they started with, so a
     * 1 GiB upload slower than 2.4 Mbit/s sent every byte and then failed at the join. */
    if (v == PC_EEXPIRED && !final)
        return reply_error(r, 403, "expired", "the pre-signed upload URL has expired; request a new one");
    if (v != 0 && v != PC_EEXPIRED)
        return reply_error(r, 403, "bad_signature", "the upload URL's signature is missing or invalid");
    const char *lenh = get_hdr(req, "upload-length", &llen);
    const char *meta = get_hdr(req, "upload-metadata", &mlen);
    if (meta != NULL && mlen > PC_TUS_MAX_METADATA)
        return reply_error(r, 413, "metadata_too_large", "Upload-Metadata exceeds 4096 bytes");
    if (meta != NULL && pc_tus_metadata_valid(meta, mlen) != 0)
        return reply_error(r, 400, "bad_metadata", "Upload-Metadata must be comma-separated 'key base64' pairs");
    if (get_hdr(req, "upload-defer-length", NULL) != NULL)
        return reply_error(r, 400, "defer_length_unsupported", "Upload-Defer-Length is not supported; send Upload-Length");

    pc_upload u;
    memset(&u, 0, sizeof(u));
    u.created = now_s();
    u.expires = u.created + t->cfg.upload_ttl_s;
    pc_random_id(u.id, PC_ID_LEN);

    if ((final || req->content_length != 0) && too_busy(t, r))
        return 1;
    if (final) {
        if (req->content_length != 0)
            return reply_error(r, 400, "final_with_body", "a final upload takes no body");
        if (lenh != NULL) /* tus: the client MUST NOT send it; its length is the parts' */
            return reply_error(r, 400, "final_with_length", "a final upload takes no Upload-Length: its length is its parts'");
        pc_tus_op *op = op_new(t, OP_CONCAT, u.id);
        if (op == NULL)
            return reply_error(r, 503, "out_of_memory", "the server is out of memory");
        size_t hl0 = 0;
        const char *h0 = get_hdr(req, "host", &hl0);
        if (h0 != NULL && hl0 < sizeof(op->host))
            memcpy(op->host, h0, hl0), op->host[hl0] = '\0';
        const char *p = concat + 6, *end = concat + clen;
        int64_t total = 0;
        int gone = 0;
        while (p < end) {
            while (p < end && *p == ' ')
                p++;
            if (p == end)
                break;
            const char *e = memchr(p, ' ', (size_t)(end - p));
            if (e == NULL)
                e = end;
            /* accept absolute URLs and paths; keep path?query */
            const char *path = p;
            if ((size_t)(e - p) > 7 && (strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0)) {
                const char *host = p + (p[4] == 's' ? 8 : 7);
                path = memchr(host, '/', (size_t)(e - host));
                if (path == NULL)
                    path = e;
            }
            size_t blen = strlen(t->base_path);
            const char *q = memchr(path, '?', (size_t)(e - path));
            const char *idend = q != NULL ? q : e;
            char pid[PC_ID_LEN + 1];
            int pv;
            if ((size_t)(idend - path) < blen || strncmp(path, t->base_path, blen) != 0 ||
                upload_ref(t, path + blen, (size_t)(idend - path) - blen, q != NULL ? q + 1 : "",
                           q != NULL ? (size_t)(e - q - 1) : 0, pid, &pv) != 0) {
                op_free(op);
                return reply_error(r, 400, "bad_concat", "Upload-Concat lists a URL that is not an upload of this server");
            }
            if (pv != 0) {
                op_free(op);
                return reply_error(r, 403, pv == PC_EEXPIRED ? "expired" : "bad_signature",
                                   "a partial upload URL in Upload-Concat has a bad or expired signature");
            }
            if (op->nparts == PC_TUS_MAX_PARTS) {
                op_free(op);
                return reply_error(r, 400, "too_many_parts", "at most 64 partial uploads can be concatenated");
            }
            pc_upload pu;
            for (int i = 0; i < op->nparts; i++)
                if (strcmp(op->parts[i], pid) == 0) {
                    op_free(op);
                    return reply_error(r, 400, "bad_concat", "Upload-Concat lists the same partial upload twice");
                }
            int gr = pc_db_upload_get(t->cfg.db, pid, &pu);
            if (gr == PC_ENOENT) { /* gone: joined already, perhaps (below) */
                memcpy(op->parts[op->nparts++], pid, PC_ID_LEN + 1);
                gone++;
                p = e;
                continue;
            }
            if (gr != 0 || pu.kind != PC_UPLOAD_PARTIAL) {
                if (gr == 0)
                    pc_upload_clear(&pu);
                op_free(op);
                return reply_error(r, 400, "bad_concat", "Upload-Concat names an upload that is not a partial upload here");
            }
            int complete = pu.completed && pu.offset == pu.length;
            total += pu.length;
            pc_upload_clear(&pu);
            if (!complete) {
                op_free(op);
                return reply_error(r, 400, "partial_incomplete", "every partial upload must be complete before concatenation");
            }
            if (is_locked(t, pid)) {
                op_free(op);
                return reply_error(r, 423, "locked", "a partial upload is busy; retry");
            }
            memcpy(op->parts[op->nparts++], pid, PC_ID_LEN + 1);
            p = e;
        }
        if (op->nparts == 0) {
            op_free(op);
            return reply_error(r, 400, "bad_concat", "Upload-Concat: final lists no partial uploads");
        }
        if (gone > 0)
            return rejoin(t, op, gone, r);
        if (total > t->cfg.max_size) {
            op_free(op);
            return reply_error(r, 413, "too_large", "the concatenated upload exceeds Tus-Max-Size");
        }
        /* the join writes |total| bytes before the partials go: room for them, as for a creation */
        int room = room_for(t, total, r);
        if (room != 0) {
            op_free(op);
            return room;
        }
        op->concat_len = total;
        op->up = u;
        op->up.kind = PC_UPLOAD_FINAL;
        op->up.length = total;
        op->up.offset = total;
        op->up.completed = 1;
        op->up.metadata = meta != NULL ? strndup(meta, mlen) : NULL;
        *opp = op;
        return 0;
    }

    if (concat != NULL && !(clen == 7 && strncmp(concat, "partial", 7) == 0))
        return reply_error(r, 400, "bad_concat", "Upload-Concat must be 'partial' or 'final;<urls>'");
    u.kind = concat != NULL ? PC_UPLOAD_PARTIAL : PC_UPLOAD_SINGLE;
    if (lenh == NULL)
        return reply_error(r, 400, "missing_length", "Upload-Length is required");
    if (parse_u64(lenh, llen, &u.length) != 0)
        return reply_error(r, 400, "bad_length", "Upload-Length must be a non-negative integer");
    if (u.length > t->cfg.max_size)
        return reply_error(r, 413, "too_large", "Upload-Length exceeds Tus-Max-Size (1 GiB)");
    int room = room_for(t, u.length, r);
    if (room != 0)
        return room;
    int with_body = req->content_length != 0;
    if (with_body && !check_body_type(req))
        return reply_error(r, 415, "bad_content_type", "a creation body must be application/offset+octet-stream");
    if (with_body && req->content_length > u.length)
        return reply_error(r, 413, "too_large", "the body exceeds Upload-Length");
    {   /* a bad Upload-Checksum is refused before anything is created */
        const EVP_MD *md;
        uint8_t sum[EVP_MAX_MD_SIZE];
        size_t dlen = 0;
        if (with_body && parse_checksum(req, r, &md, sum, sizeof(sum), &dlen))
            return 1;
    }

    char path[4096];
    upload_path(t, u.id, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        PC_LOGE("tus", "cannot create %s: %s", path, strerror(errno));
        return reply_error(r, 500, "io_error", "cannot create the upload's storage");
    }
    close(fd);
    u.metadata = meta != NULL ? strndup(meta, mlen) : NULL;
    u.completed = u.length == 0;
    int complete_now = u.completed && u.kind == PC_UPLOAD_SINGLE; /* an empty upload is done at creation */
    int dr = pc_db_begin(t->cfg.db);
    if (dr == 0) {
        dr = pc_db_upload_insert(t->cfg.db, &u);
        if (dr == 0 && complete_now)
            dr = hand_over(t, &u);
        if (dr == 0)
            dr = pc_db_commit(t->cfg.db);
        if (dr != 0)
            pc_db_rollback(t->cfg.db);
    }
    if (dr != 0) {
        unlink(path);
        pc_upload_clear(&u);
        return reply_db_error(t, r, "cannot record the upload");
    }
    t->stats.created++;
    if (complete_now) {
        t->stats.completed++;
        move_done(t, u.id);
    }
    char hostbuf[256] = "";
    size_t hl = 0;
    const char *host = get_hdr(req, "host", &hl);
    if (host != NULL && hl < sizeof(hostbuf))
        memcpy(hostbuf, host, hl), hostbuf[hl] = '\0';
    char *loc = make_url(t, hostbuf, u.id, url_expiry(t, &u));
    PC_LOGI("tus", "created %s upload %s of %" PRId64 " bytes", u.kind == PC_UPLOAD_PARTIAL ? "partial" : "single", u.id,
            u.length);
    if (!with_body || complete_now) { /* an empty upload is complete already: there is no body to take */
        reply_init(r, 201);
        if (loc != NULL)
            add_header(r, "Location", "%s", loc);
        add_header(r, "Upload-Offset", "0");
        add_expires(r, &u);
        free(loc);
        pc_upload_clear(&u);
        return 1;
    }
    pc_tus_op *op = op_new(t, OP_PATCH, u.id);
    if (op == NULL) {
        free(loc);
        pc_upload_clear(&u);
        return reply_error(r, 503, "out_of_memory", "the server is out of memory");
    }
    op->up = u;
    op->created = 1;
    op->location = loc;
    if (setup_checksum(op, req, r) || arm_patch(op, r)) {
        op_free(op);
        return 1;
    }
    *opp = op;
    return 0;
}

static int load_upload(pc_tus *t, const char *id, pc_upload *u, pc_tus_reply *r)
{
    int g = pc_db_upload_get(t->cfg.db, id, u);
    if (g == PC_ENOENT)
        return reply_error(r, 404, "not_found", "no such upload");
    if (g != 0)
        return reply_db_error(t, r, "cannot read the upload");
    if (!u->completed && u->expires <= now_s()) {
        pc_upload_clear(u);
        return reply_error(r, 410, "expired", "the upload expired before it was finished");
    }
    return 0;
}

/* |v|: whether the URL's credential is good (upload_ref). */
static int handle_upload(pc_tus *t, const pc_tus_request *req, const char *method, const char *id, int v,
                         pc_tus_reply *r, pc_tus_op **opp)
{
    if (v == PC_EEXPIRED)
        return reply_error(r, 403, "expired", "the upload URL has expired");
    if (v != 0)
        return reply_error(r, 403, "bad_signature", "the upload URL's signature is missing or invalid");
    pc_upload u;
    if (load_upload(t, id, &u, r))
        return 1;
    if (strcmp(method, "HEAD") == 0) {
        reply_init(r, 200);
        add_header(r, "Upload-Offset", "%" PRId64, u.offset);
        add_header(r, "Upload-Length", "%" PRId64, u.length);
        if (u.metadata != NULL)
            add_header(r, "Upload-Metadata", "%s", u.metadata);
        if (u.kind == PC_UPLOAD_PARTIAL)
            add_header(r, "Upload-Concat", "partial");
        else if (u.kind == PC_UPLOAD_FINAL && u.parts != NULL) {
            /* list the parts as signed URLs, as the client knew them */
            char *list = NULL;
            size_t n = 0;
            FILE *f = open_memstream(&list, &n);
            if (f != NULL) {
                fputs("final;", f);
                char *parts = strdup(u.parts), *save = NULL;
                int first = 1;
                for (char *p = parts != NULL ? strtok_r(parts, " ", &save) : NULL; p != NULL; p = strtok_r(NULL, " ", &save)) {
                    char *url = make_url(t, NULL, p, url_expiry(t, &u));
                    if (url != NULL)
                        fprintf(f, "%s%s", first ? "" : " ", url);
                    first = 0;
                    free(url);
                }
                free(parts);
                fclose(f);
                add_header(r, "Upload-Concat", "%s", list);
                free(list);
            }
        }
        add_expires(r, &u);
        pc_upload_clear(&u);
        return 1;
    }
    if (strcmp(method, "DELETE") == 0) {
        if (is_locked(t, id)) {
            pc_upload_clear(&u);
            return reply_error(r, 423, "locked", "the upload is being written; retry");
        }
        char path[4096];
        upload_path(t, id, path, sizeof(path));
        if (pc_db_upload_delete(t->cfg.db, id) != 0) {
            pc_upload_clear(&u);
            return reply_db_error(t, r, "cannot delete the upload");
        }
        if (unlink(path) != 0 && errno != ENOENT)
            PC_LOGW("tus", "cannot remove %s: %s", path, strerror(errno));
        PC_LOGI("tus", "terminated upload %s", id);
        pc_upload_clear(&u);
        reply_init(r, 204);
        return 1;
    }
    if (strcmp(method, "PATCH") != 0) {
        pc_upload_clear(&u);
        reply_error(r, 405, "method_not_allowed", "upload URLs take HEAD, PATCH, DELETE and OPTIONS");
        add_header(r, "Allow", "HEAD, PATCH, DELETE, OPTIONS");
        return 1;
    }
    if (u.kind == PC_UPLOAD_FINAL) {
        pc_upload_clear(&u);
        return reply_error(r, 403, "final_upload", "a final (concatenated) upload cannot be patched");
    }
    if (!check_body_type(req)) {
        pc_upload_clear(&u);
        return reply_error(r, 415, "bad_content_type", "PATCH bodies must be application/offset+octet-stream");
    }
    size_t olen = 0;
    const char *offh = get_hdr(req, "upload-offset", &olen);
    int64_t off;
    if (offh == NULL || parse_u64(offh, olen, &off) != 0) {
        pc_upload_clear(&u);
        return reply_error(r, 400, "bad_offset", "Upload-Offset must be a non-negative integer");
    }
    /* a second writer is told so before its offset is compared with the first one's, which moves on */
    if (is_locked(t, id)) {
        pc_upload_clear(&u);
        return reply_error(r, 423, "locked", "another request is writing this upload; retry");
    }
    if (off != u.offset) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Upload-Offset %" PRId64 " does not match the upload's offset %" PRId64, off, u.offset);
        pc_upload_clear(&u);
        return reply_error(r, 409, "offset_mismatch", msg);
    }
    if (req->content_length > 0 && req->content_length > u.length - u.offset) {
        pc_upload_clear(&u);
        return reply_error(r, 413, "too_large", "the body extends past Upload-Length");
    }
    if (u.completed && req->content_length == 0) {
        /* an empty PATCH at the end of a finished upload (a client retrying one whose answer it lost):
         * nothing to write; its file has moved on to the pipeline */
        reply_init(r, 204);
        add_header(r, "Upload-Offset", "%" PRId64, u.offset);
        pc_upload_clear(&u);
        return 1;
    }
    if (too_busy(t, r)) {
        pc_upload_clear(&u);
        return 1;
    }
    pc_tus_op *op = op_new(t, OP_PATCH, id);
    if (op == NULL) {
        pc_upload_clear(&u);
        return reply_error(r, 503, "out_of_memory", "the server is out of memory");
    }
    op->up = u;
    if (setup_checksum(op, req, r) || arm_patch(op, r)) {
        op_free(op);
        return 1;
    }
    *opp = op;
    return 0;
}

int pc_tus_begin(pc_tus *t, const pc_tus_request *req, pc_tus_reply *early, pc_tus_op **op)
{
    *op = NULL;
    memset(early, 0, sizeof(*early));
    char method[16];
    size_t olen = 0;
    const char *ov = get_hdr(req, "x-http-method-override", &olen);
    if (ov != NULL && strcmp(req->method, "POST") == 0 && olen > 0 && olen < sizeof(method)) {
        memcpy(method, ov, olen);
        method[olen] = '\0';
        for (size_t i = 0; i < olen; i++)
            if (method[i] >= 'a' && method[i] <= 'z')
                method[i] = (char)(method[i] - 32);
    } else {
        snprintf(method, sizeof(method), "%s", req->method);
    }
    size_t blen = strlen(t->base_path);
    const char *path = req->target;
    size_t plen = req->path_len;
    const char *query = plen < strlen(req->target) ? req->target + plen + 1 : "";
    size_t qlen = strlen(query);
    /* the base itself without its '/' ("/tus"), or under it: not "/tusfoo" */
    if (!(plen == blen - 1 && strncmp(path, t->base_path, blen - 1) == 0) &&
        !(plen >= blen && strncmp(path, t->base_path, blen) == 0))
        return reply_error(early, 404, "not_found", "no such upload");
    if (strcmp(method, "OPTIONS") == 0) {
        handle_options(early);
        /* fill in the real maximum */
        for (size_t i = 0; i < early->nheaders; i++)
            if (strcmp(early->names[i], "Tus-Max-Size") == 0) {
                free(early->values[i]);
                if (asprintf(&early->values[i], "%" PRId64, t->cfg.max_size) < 0)
                    early->values[i] = NULL;
            }
        return 1;
    }
    static const char *const single[] = {"tus-resumable", "upload-length", "upload-offset", "upload-metadata",
                                         "upload-checksum", "upload-concat", "upload-defer-length", "content-type",
                                         "x-http-method-override"};
    for (size_t i = 0; req->count != NULL && i < sizeof(single) / sizeof(single[0]); i++)
        if (req->count(req->ctx, single[i]) > 1) {
            char msg[96];
            snprintf(msg, sizeof(msg), "the %s header is given more than once", single[i]);
            return reply_error(early, 400, "duplicate_header", msg);
        }
    size_t tvl = 0;
    const char *tv = get_hdr(req, "tus-resumable", &tvl);
    if (tv == NULL || tvl != 5 || memcmp(tv, TUS_VERSION, 5) != 0) {
        reply_error(early, 412, "unsupported_version", "Tus-Resumable: 1.0.0 is required");
        add_header(early, "Tus-Version", TUS_VERSION);
        return 1;
    }
    int is_base = plen == blen || plen == blen - 1;
    if (is_base) {
        if (strcmp(method, "POST") != 0) {
            reply_error(early, 405, "method_not_allowed", "the creation URL takes POST and OPTIONS");
            add_header(early, "Allow", "POST, OPTIONS");
            return 1;
        }
        return handle_creation(t, req, query, qlen, early, op);
    }
    char idbuf[PC_ID_LEN + 1];
    int v;
    if (upload_ref(t, path + blen, plen - blen, query, qlen, idbuf, &v) != 0)
        return reply_error(early, 404, "not_found", "no such upload");
    return handle_upload(t, req, method, idbuf, v, early, op);
}

/* ---- body streaming ---- */

static void start_write(pc_tus_op *op);
static void continue_finish(pc_tus_op *op);

static void on_write(uv_fs_t *req)
{
    pc_tus_op *op = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    op->writing = 0;
    if (n < 0) {
        op->failed = 1;
        op->fail_errno = (int)-n;
        PC_LOGE("tus", "write to upload %s failed: %s", op->id, uv_strerror((int)n));
    } else {
        op->written += n;
        if ((size_t)n < op->flight_len) { /* short write: send the rest */
            memmove(op->flight, op->flight + n, op->flight_len - (size_t)n);
            op->flight_len -= (size_t)n;
            op->writing = 1;
            uv_buf_t b = uv_buf_init(op->flight, (unsigned)op->flight_len);
            uv_fs_write(op->t->cfg.loop, &op->wreq, op->fd, &b, 1, op->base_offset + op->written, on_write);
            return;
        }
        op->flight_len = 0;
    }
    if (op->finishing) {
        continue_finish(op);
        return;
    }
    if (op->failed) {
        /* a paused transport must come back to learn of the failure from its next body call */
        if (op->want_pause) {
            op->want_pause = 0;
            if (op->resume != NULL)
                op->resume(op->resume_arg);
        }
        return;
    }
    if (op->fill_len >= BUF_SIZE)
        start_write(op);
    if (op->want_pause && op->fill_len < BUF_SIZE) {
        op->want_pause = 0;
        if (op->resume != NULL)
            op->resume(op->resume_arg);
    }
}

static void start_write(pc_tus_op *op)
{
    char *tmp = op->flight;
    size_t tcap = op->flight_cap;
    op->flight = op->fill;
    op->flight_cap = op->fill_cap;
    op->flight_len = op->fill_len;
    op->fill = tmp;
    op->fill_cap = tcap;
    op->fill_len = 0;
    op->writing = 1;
    op->wreq.data = op;
    uv_buf_t b = uv_buf_init(op->flight, (unsigned)op->flight_len);
    uv_fs_write(op->t->cfg.loop, &op->wreq, op->fd, &b, 1, op->base_offset + op->written, on_write);
}

/* A creation with upload made the upload before its body came: every answer names it, errors too, so
 * that the client can go on from what was kept. */
static void add_location(const pc_tus_op *op, pc_tus_reply *r)
{
    if (op->created && op->location != NULL)
        add_header(r, "Location", "%s", op->location);
}

int pc_tus_op_body(pc_tus_op *op, const char *data, size_t len, int *pause, pc_tus_reply *reply)
{
    *pause = 0;
    if (op->kind != OP_PATCH || len == 0)
        return 0;
    if ((int64_t)len > op->limit - op->received) { /* what came before is kept: the op finishes as interrupted */
        reply_error(reply, 413, "too_large", "the body extends past Upload-Length");
        add_location(op, reply);
        return 1;
    }
    if (op->failed) {
        int status = op->fail_errno == ENOSPC ? 507 : 500;
        reply_error(reply, status, status == 507 ? "insufficient_storage" : "io_error",
                    "the upload could not be written to storage");
        add_location(op, reply);
        return 1;
    }
    if (op->md != NULL)
        EVP_DigestUpdate(op->md, data, len);
    if (op->fill_len + len > op->fill_cap) {
        size_t cap = op->fill_len + len;
        char *p = realloc(op->fill, cap);
        if (p == NULL) {
            op->failed = 1;
            reply_error(reply, 503, "out_of_memory", "the server is out of memory");
            add_location(op, reply);
            return 1;
        }
        op->fill = p;
        op->fill_cap = cap;
    }
    memcpy(op->fill + op->fill_len, data, len);
    op->fill_len += len;
    op->received += (int64_t)len;
    if (op->fill_len >= BUF_SIZE) {
        if (!op->writing)
            start_write(op);
        else
            op->want_pause = *pause = 1;
    }
    return 0;
}

void pc_tus_op_set_resume(pc_tus_op *op, void (*resume)(void *arg), void *arg)
{
    op->resume = resume;
    op->resume_arg = arg;
}

static void finish_reply(pc_tus_op *op, pc_tus_reply *r)
{
    if (op->done != NULL)
        op->done(op->done_arg, r);
    else
        pc_tus_reply_clear(r);
    op_free(op);
}

static void finalize_patch(pc_tus_op *op)
{
    pc_tus *t = op->t;
    pc_tus_reply r;
    memset(&r, 0, sizeof(r));
    int commit = !op->unsynced, checksum_bad = 0;
    if (op->md != NULL) {
        if (!op->complete || op->failed) {
            commit = 0; /* cannot verify a partial body */
        } else {
            uint8_t got[EVP_MAX_MD_SIZE];
            unsigned glen = 0;
            EVP_DigestFinal_ex(op->md, got, &glen);
            if (glen != op->expect_len || memcmp(got, op->expect_sum, glen) != 0)
                commit = 0, checksum_bad = 1;
        }
    }
    int64_t new_off = op->base_offset + (commit ? op->written : 0);
    int completed = new_off == op->up.length;
    if (commit && op->written > 0) {
        /* the new offset and, for the last bytes, the hand-over commit together */
        int hand = completed && op->up.kind == PC_UPLOAD_SINGLE;
        op->up.offset = new_off;
        op->up.completed = completed;
        int dr = pc_db_begin(t->cfg.db);
        if (dr == 0) {
            dr = pc_db_upload_set_offset(t->cfg.db, op->id, new_off, completed);
            if (dr == 0 && hand)
                dr = hand_over(t, &op->up);
            if (dr == 0)
                dr = pc_db_commit(t->cfg.db);
            if (dr != 0)
                pc_db_rollback(t->cfg.db);
        }
        if (dr != 0) {
            reply_db_error(t, &r, "cannot record the upload's progress; retry from the last offset");
            add_location(op, &r);
            finish_reply(op, &r);
            return;
        }
        t->stats.bytes += (uint64_t)op->written;
        if (hand) {
            t->stats.completed++;
            move_done(t, op->id);
        }
    }
    if (checksum_bad) {
        reply_error(&r, 460, "checksum_mismatch", "the body does not match Upload-Checksum; it was discarded");
    } else if (op->failed) {
        int status = op->fail_errno == ENOSPC ? 507 : 500;
        reply_error(&r, status, status == 507 ? "insufficient_storage" : "io_error",
                    "the upload could not be written to storage");
    }
    int ok = r.status == 0;
    if (ok)
        reply_init(&r, op->created ? 201 : 204);
    add_location(op, &r);
    if (ok) {
        add_header(&r, "Upload-Offset", "%" PRId64, new_off);
        add_expires(&r, &op->up);
    }
    if (!op->complete)
        PC_LOGI("tus", "upload %s interrupted at offset %" PRId64 " (%s)", op->id, new_off,
                commit ? "bytes kept" : "bytes discarded");
    finish_reply(op, &r);
}

static void on_sync(uv_fs_t *req)
{
    pc_tus_op *op = req->data;
    if (req->result < 0) {
        op->failed = 1;
        op->unsynced = 1; /* the bytes may not be on disk: the offset stays where it was */
        op->fail_errno = (int)-req->result;
        PC_LOGE("tus", "fdatasync of upload %s failed: %s", op->id, uv_strerror((int)req->result));
    }
    uv_fs_req_cleanup(req);
    finalize_patch(op);
}

static void continue_finish(pc_tus_op *op)
{
    if (op->writing)
        return;
    if (op->fill_len > 0 && !op->failed) {
        start_write(op);
        return;
    }
    if (op->written == 0) {
        finalize_patch(op);
        return;
    }
    op->sreq.data = op;
    uv_fs_fdatasync(op->t->cfg.loop, &op->sreq, op->fd, on_sync);
}

/* ---- concatenation (thread pool) ---- */

static void concat_work(uv_work_t *w)
{
    pc_tus_op *op = w->data;
    char out[4096], in[4096];
    upload_path(op->t, op->id, out, sizeof(out));
    int ofd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (ofd < 0) {
        op->work_result = pc_err_from_errno(errno);
        return;
    }
    int r = 0;
    for (int i = 0; r == 0 && i < op->nparts; i++) {
        upload_path(op->t, op->parts[i], in, sizeof(in));
        int ifd = open(in, O_RDONLY | O_CLOEXEC);
        if (ifd < 0) {
            r = pc_err_from_errno(errno);
            break;
        }
        for (;;) {
            ssize_t n = copy_file_range(ifd, NULL, ofd, NULL, 1 << 30, 0);
            if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
                char buf[1 << 16];
                n = read(ifd, buf, sizeof(buf));
                if (n > 0 && write(ofd, buf, (size_t)n) != n)
                    n = -1;
            }
            if (n < 0) {
                r = pc_err_from_errno(errno);
                break;
            }
            if (n == 0)
                break;
        }
        close(ifd);
    }
    if (r == 0 && fdatasync(ofd) != 0)
        r = pc_err_from_errno(errno);
    close(ofd);
    if (r != 0)
        unlink(out);
    op->work_result = r;
}

static void concat_after(uv_work_t *w, int status)
{
    pc_tus_op *op = w->data;
    pc_tus *t = op->t;
    pc_tus_reply r;
    memset(&r, 0, sizeof(r));
    if (status != 0 || op->work_result != 0) {
        int full = op->work_result == PC_ENOSPC;
        reply_error(&r, full ? 507 : 500, full ? "insufficient_storage" : "io_error",
                    "the partial uploads could not be joined");
        finish_reply(op, &r);
        return;
    }
    /* record the final upload and drop the partials in one transaction */
    char list[PARTS_LIST_MAX];
    parts_list(op, list);
    op->concat_parts = strdup(list);
    op->up.parts = op->concat_parts;
    op->concat_parts = NULL;
    int dr = pc_db_begin(t->cfg.db);
    if (dr == 0) {
        dr = pc_db_upload_insert(t->cfg.db, &op->up);
        for (int i = 0; dr == 0 && i < op->nparts; i++)
            dr = pc_db_upload_delete(t->cfg.db, op->parts[i]);
        if (dr == 0)
            dr = hand_over(t, &op->up);
        if (dr == 0)
            dr = pc_db_commit(t->cfg.db);
        if (dr != 0)
            pc_db_rollback(t->cfg.db);
    }
    char path[4096];
    upload_path(t, op->id, path, sizeof(path));
    if (dr != 0) {
        unlink(path);
        reply_db_error(t, &r, "cannot record the final upload");
        finish_reply(op, &r);
        return;
    }
    for (int i = 0; i < op->nparts; i++) {
        char pp[4096];
        upload_path(t, op->parts[i], pp, sizeof(pp));
        unlink(pp);
    }
    PC_LOGI("tus", "joined %d partial uploads into %s (%" PRId64 " bytes)", op->nparts, op->id, op->up.length);
    t->stats.created++;
    t->stats.completed++;
    move_done(t, op->id);
    reply_init(&r, 201);
    char *loc = make_url(t, op->host, op->id, url_expiry(t, &op->up));
    if (loc != NULL)
        add_header(&r, "Location", "%s", loc);
    free(loc);
    finish_reply(op, &r);
}

void pc_tus_op_finish(pc_tus_op *op, int complete, void (*done)(void *arg, pc_tus_reply *reply), void *arg)
{
    op->done = done;
    op->done_arg = arg;
    op->complete = complete;
    op->finishing = 1;
    if (op->kind == OP_CONCAT) {
        if (!complete) {
            op->done = NULL;
            pc_tus_reply r;
            memset(&r, 0, sizeof(r));
            finish_reply(op, &r);
            return;
        }
        op->work.data = op;
        uv_queue_work(op->t->cfg.loop, &op->work, concat_work, concat_after);
        return;
    }
    continue_finish(op);
}

int pc_tus_gc(pc_tus *t)
{
    /* in batches, up to 64 of them a sweep: a sweep a minute of one batch let expired uploads pile up
     * faster than it took them away (a batch that removes nothing, all in use, ends the sweep) */
    char ids[64][PC_ID_LEN + 1];
    int removed = 0;
    for (int batch = 0; batch < 64; batch++) {
        int n = pc_db_upload_expired(t->cfg.db, now_s(), t->cfg.upload_ttl_s, ids, 64), now_removed = 0;
        for (int i = 0; i < n; i++) {
            if (is_locked(t, ids[i]))
                continue;
            char path[4096];
            upload_path(t, ids[i], path, sizeof(path));
            if (pc_db_upload_delete(t->cfg.db, ids[i]) == 0) {
                unlink(path);
                now_removed++;
                PC_LOGI("tus", "expired upload %s removed", ids[i]);
            }
        }
        removed += now_removed;
        if (n < 64 || now_removed == 0)
            break;
    }
    return removed;
}

void pc_tus_stats_get(const pc_tus *t, pc_tus_stats *out)
{
    *out = t->stats;
}
