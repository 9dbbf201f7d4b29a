/*
 * peercdn-origin upload FILE: a tus client on libcurl's multi interface.
 *
 * It asks the origin for a pre-signed creation URL, splits the file into N
 * partial uploads sent in parallel (PATCH requests of --chunk-mb, each with an
 * Upload-Checksum: sha256), then joins them with a final concatenation; the
 * final upload's id is the video id, printed on stdout. Progress goes to
 * stderr as a bar when stderr is a terminal. State (the partial upload URLs)
 * is saved after every step in a resume file, so running the same command
 * again after an interruption HEADs each part for its offset and continues.
 * Transient failures (network errors, 5xx, 409, 423, 460) are retried with
 * backoff; the body is read from the file twice (hash, then send) so memory
 * stays small whatever the chunk size. The creation URL, which creates the
 * parts and joins them, expires (an hour): when the origin says so, a new one
 * is asked for with the token and the request made again, once; a resumed
 * state whose URL has expired gets a new one at the start.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "db.h"
#include "origin_main.h"
#include "pc_cli.h"
#include "pc_fs.h"
#include "pc_buf.h"
#include "pc_crypto.h"
#include "pc_http_client.h"
#include "pc_json.h"
#include "pc_log.h"
#include "pc_num.h"

#define MAX_PARTS 32
#define MAX_ATTEMPTS 12
#define STATE_MAX (64 * 1024) /* a resume state file: 32 parts of URLs take a few KiB */
#define ANSWER_MAX (64 * 1024) /* the body of a tus answer (PATCH, HEAD, creation): 204s have none */
#define WAIT_ERRORS_MAX 120 /* --wait: polls in a row without an answer (half a second apart) */
#define CLIENT_REQ_TIMEOUT_S 300L /* a creation, HEAD or join: whole request and answer */
#define ANSWER_KEEP 1024 /* the start of an answer's body kept to read an error's code ({"code":"expired"...}) */
#define CREATE_MARGIN_S 60 /* a resumed state's creation URL expiring sooner than this is replaced at once */

/* The body of a tus answer: counted, its start kept (an error's JSON), the rest thrown away. */
struct answer {
    size_t seen;
    char head[ANSWER_KEEP];
};

struct part {
    struct up *u;
    int idx;
    char *url;
    int64_t start, length, offset;
    CURL *easy;
    struct curl_slist *hdrs;
    pc_buf resp_hdr;
    struct answer ans;        /* the current answer's body (discard_cb) */
    int64_t confirmed;        /* the highest offset the origin confirmed: it never goes back */
    int64_t sending_off, sending_len, sent;
    int attempts;
    int busy, done;
    int gone;  /* the origin no longer knows it: joined already, perhaps, by a join whose answer was lost */
    int known; /* its HEAD found it, this run */
    uv_timer_t retry;
    int head_pending;
    int create_gen;       /* u->create_gen when its creation was sent */
    int create_refreshed; /* its creation met an expired creation URL and waits for, or had, a new one */
    int wait_create;      /* waits for the new creation URL */
};

struct up {
    const pc_upload_opts *o;
    uv_loop_t *loop;
    pc_http_client *http;
    int fd;
    int64_t size, mtime;
    int64_t mtime_ns, ctime_ns, dev, ino; /* the file's identity: a resume state is for this very file */
    char real[4096];                      /* its absolute path */
    int state_bad;                        /* a save of the resume state failed */
    char *title, *metadata;
    char state_path[4096];
    char *create_url;
    int64_t create_expires; /* unix seconds, from the API's "expires" (0: not known, a state of an older version) */
    int create_gen;         /* how many times create_url was replaced this run */
    CURL *refresh_easy;     /* POST /api/uploads for a new creation URL, when the one held expired */
    struct curl_slist *refresh_hdrs;
    pc_buf refresh_body;
    struct part parts[MAX_PARTS];
    int nparts;
    int failed, interrupted, finished;
    int stop_after, patches; /* fault injection: PEERCDN_FAULT_UPLOAD_STOP_AFTER=N stops after N PATCHes */
    char video_id[2048];
    CURL *final_easy;
    struct curl_slist *final_hdrs;
    pc_buf final_hdr;
    struct answer final_ans;
    int final_gen, final_refreshed, final_wait; /* as a part's create_gen, create_refreshed, wait_create */
    uv_timer_t tick;
    uv_timer_t final_retry; /* the join, again after a 500, 503, 423, 502, 504 or network error (MAX_ATTEMPTS) */
    int final_attempts;
    uv_signal_t sigint;
    double t0;
    int64_t base_bytes;
    int bar;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(struct up *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct up *u, const char *fmt, ...)
{
    if (u->failed)
        return;
    u->failed = 1;
    if (u->bar)
        fputc('\n', stderr);
    va_list ap;
    va_start(ap, fmt);
    pc_cli_verror(fmt, ap);
    va_end(ap);
    uv_stop(u->loop);
}

/* ---- resume state ---- */

/* Writes the resume state whole (a new file, 0600: it holds URLs that can create and write uploads;
 * renamed into place, a symbolic link in the way replaced, not followed). 0, or the error. */
static int save_state(struct up *u)
{
    json_t *parts = json_array();
    for (int i = 0; i < u->nparts; i++)
        json_array_append_new(parts, json_pack("{s:s?, s:I, s:I}", "url", u->parts[i].url, "start",
                                               (json_int_t)u->parts[i].start, "length", (json_int_t)u->parts[i].length));
    json_t *st = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s?, s:I, s:o}", "kind", "peercdn-upload-state",
                           "file", u->real, "size", (json_int_t)u->size, "mtime_ns", (json_int_t)u->mtime_ns,
                           "ctime_ns", (json_int_t)u->ctime_ns, "dev", (json_int_t)u->dev, "ino", (json_int_t)u->ino,
                           "origin", u->o->origin, "create_url", u->create_url, "create_expires",
                           (json_int_t)u->create_expires, "parts", parts);
    char *text = pc_json_dump(st);
    json_decref(st);
    int rc = text == NULL ? PC_ENOMEM : pc_replace_file_mode(u->state_path, text, strlen(text), 0600);
    free(text);
    if (rc != 0)
        u->state_bad = 1;
    return rc;
}

/* The parts cover the file exactly: each begins where the one before ends, none is empty (a state file
 * edited or corrupted otherwise would upload a truncated or padded copy). */
static int parts_tile(const struct up *u)
{
    int64_t at = 0;
    for (int i = 0; i < u->nparts; i++) {
        if (u->parts[i].start != at || u->parts[i].length <= 0 || u->parts[i].length > u->size - at)
            return 0;
        at += u->parts[i].length;
    }
    return at == u->size;
}

/* 1 with a resume state for this very file (path, device, inode, size, times to the nanosecond) and
 * origin, 0 with none (or one for another file or version of it: overwritten), -1 after saying why when
 * --state names something this client did not write (refused, never overwritten or deleted; in the
 * client's own cache directory such a file, an older version's state say, is replaced, unless it is not a
 * regular file). */
static int load_state(struct up *u)
{
    char *text = NULL;
    size_t len = 0;
    int rc = pc_read_file(u->state_path, STATE_MAX, &text, &len);
    if (rc == PC_ENOENT)
        return 0;
    json_t *st = rc == 0 ? json_loads(text, 0, NULL) : NULL;
    free(text);
    const char *kind = pc_json_str(st, "kind");
    int ours = kind != NULL && strcmp(kind, "peercdn-upload-state") == 0;
    if (!ours && u->o->state == NULL && rc != PC_EINVAL) {
        json_decref(st); /* in the client's own cache (an older version's state, say): replaced */
        return 0;
    }
    if (!ours) {
        pc_cli_error("%s is not a resume state of this client (%s): delete it or give another --state", u->state_path,
                     rc == PC_ETOOBIG ? "over 64 KiB" : rc != 0 ? pc_strerror(rc) : "not one");
        json_decref(st);
        return -1;
    }
    const char *file = pc_json_str(st, "file");
    int ok = file != NULL && strcmp(file, u->real) == 0 && pc_json_int(st, "size", -1) == u->size &&
             pc_json_int(st, "mtime_ns", -1) == u->mtime_ns && pc_json_int(st, "ctime_ns", -1) == u->ctime_ns &&
             pc_json_int(st, "dev", -1) == u->dev && pc_json_int(st, "ino", -1) == u->ino &&
             pc_json_str(st, "origin") != NULL && strcmp(pc_json_str(st, "origin"), u->o->origin) == 0 &&
             pc_json_str(st, "create_url") != NULL;
    json_t *parts = json_object_get(st, "parts");
    if (ok && json_array_size(parts) > 0 && json_array_size(parts) <= MAX_PARTS) {
        u->create_url = strdup(pc_json_str(st, "create_url"));
        u->create_expires = pc_json_int(st, "create_expires", 0);
        u->nparts = (int)json_array_size(parts);
        for (int i = 0; i < u->nparts; i++) {
            json_t *p = json_array_get(parts, (size_t)i);
            u->parts[i].start = pc_json_int(p, "start", 0);
            u->parts[i].length = pc_json_int(p, "length", 0);
            const char *url = pc_json_str(p, "url");
            u->parts[i].url = url != NULL ? strdup(url) : NULL;
        }
        ok = parts_tile(u);
        if (!ok) { /* not a state this client wrote for this file: start over */
            for (int i = 0; i < u->nparts; i++) {
                free(u->parts[i].url);
                u->parts[i].url = NULL;
            }
            free(u->create_url);
            u->create_url = NULL;
            u->create_expires = 0;
            u->nparts = 0;
        }
    } else {
        ok = 0;
    }
    json_decref(st);
    return ok;
}

/* ---- progress ---- */

static int64_t uploaded(struct up *u)
{
    int64_t n = 0;
    for (int i = 0; i < u->nparts; i++)
        n += u->parts[i].offset + (u->parts[i].busy ? u->parts[i].sent : 0);
    return n;
}

static void draw(struct up *u, int final)
{
    if (!u->bar)
        return;
    int64_t done = uploaded(u);
    /* the rate from 0.2 s on (before, it is mostly the first write's burst); the last line's whatever the
     * time (an upload on a LAN can take less: its bar ended at 0.0 MB/s) */
    double el = now_s() - u->t0, rate = el > 0.2 || (final && el > 0) ? (double)(done - u->base_bytes) / el : 0;
    double frac = u->size > 0 ? (double)done / (double)u->size : 1;
    int w = 30, fill = (int)(frac * w);
    char bar[40];
    for (int i = 0; i < w; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[w] = '\0';
    double eta = rate > 0 ? (double)(u->size - done) / rate : 0;
    fprintf(stderr, "\r[%s] %5.1f%% %8.1f MB/s  ETA %3d:%02d ", bar, frac * 100, rate / 1e6, (int)eta / 60, (int)eta % 60);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

static void on_tick(uv_timer_t *t)
{
    draw(t->data, 0);
}

/* ---- requests ---- */

static size_t hdr_cb(char *p, size_t sz, size_t n, void *user)
{
    return pc_buf_append(user, p, sz * n) == 0 ? sz * n : 0;
}

/* The body of a tus answer, thrown away but for its start: past ANSWER_MAX the transfer is aborted (a
 * server streaming an endless answer to a PATCH cannot hold the client). |user| is a struct answer. */
static size_t discard_cb(char *p, size_t sz, size_t n, void *user)
{
    struct answer *a = user;
    size_t len = sz * n;
    if (a->seen < sizeof(a->head))
        memcpy(a->head + a->seen, p, len < sizeof(a->head) - a->seen ? len : sizeof(a->head) - a->seen);
    a->seen += len;
    return a->seen > ANSWER_MAX ? 0 : len;
}

/* 1 when the answer is a tus error whose code is "expired": the URL's signature has expired (a 403; an
 * upload that expired unfinished is a 410). */
static int answer_expired(const struct answer *a, long status)
{
    json_t *o = NULL;
    size_t len = a->seen < sizeof(a->head) ? a->seen : sizeof(a->head);
    if (status != 403 || pc_json_parse_object(a->head, len, sizeof(a->head), &o, NULL, 0) != 0)
        return 0;
    const char *code = pc_json_str(o, "code");
    int r = code != NULL && strcmp(code, "expired") == 0;
    json_decref(o);
    return r;
}

static size_t body_cb(char *p, size_t sz, size_t n, void *user)
{
    return pc_buf_append(user, p, sz * n) == 0 ? sz * n : 0;
}

/* Value of response header |name| (case-insensitive) copied into |out|. */
static int resp_header(const pc_buf *h, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name);
    const char *p = h->data, *end = h->data + h->len;
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if ((size_t)(end - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)((eol != NULL ? eol : end) - v);
            while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            if (vl >= len)
                return -1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 0;
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return -1;
}

static CURL *new_easy(struct up *u, const char *url, struct curl_slist **hdrs, pc_buf *hbuf, struct answer *ans)
{
    ans->seen = 0;
    CURL *e = pc_curl_easy_new();
    if (e == NULL)
        return NULL;
    *hdrs = curl_slist_append(*hdrs, "Tus-Resumable: 1.0.0");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, hdr_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, hbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, ans);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 15L);
    /* a transfer under 1 KiB/s for a minute is a failed attempt (retried): a server that trickles
     * cannot hold an upload for ever; requests without a body also end after CLIENT_REQ_TIMEOUT_S */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
    (void)u;
    return e;
}

static void start_part(struct part *p);
static void maybe_finalize(struct up *u);
static int refresh_creation_url(struct up *u, int gen);

static void on_retry(uv_timer_t *t)
{
    start_part(t->data);
}

static void retry_later(struct part *p, const char *why)
{
    if (++p->attempts > MAX_ATTEMPTS) {
        fail(p->u, "part %d of the upload failed %d times: %s", p->idx + 1, MAX_ATTEMPTS, why);
        return;
    }
    uint64_t ms = 500ull << (p->attempts < 6 ? p->attempts : 6);
    PC_LOGD("upload", "part %d: %s; retrying in %" PRIu64 " ms", p->idx + 1, why, ms);
    if (p->url != NULL)
        p->head_pending = 1; /* resynchronise the offset first */
    uv_timer_start(&p->retry, on_retry, ms, 0);
}

static void cleanup_easy(struct part *p)
{
    if (p->easy != NULL)
        curl_easy_cleanup(p->easy);
    p->easy = NULL;
    curl_slist_free_all(p->hdrs);
    p->hdrs = NULL;
    pc_buf_reset(&p->resp_hdr);
    p->busy = 0;
}

static size_t read_cb(char *buf, size_t sz, size_t n, void *user)
{
    struct part *p = user;
    size_t want = sz * n;
    int64_t left = p->sending_len - p->sent;
    if ((int64_t)want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    ssize_t r = pread(p->u->fd, buf, want, (off_t)(p->start + p->sending_off + p->sent));
    if (r <= 0)
        return CURL_READFUNC_ABORT;
    p->sent += r;
    return (size_t)r;
}

/* Whether the file is no longer what the upload started with (its size, its modification or its change
 * time): its parts would then be of two different files, joined into neither. Says so and fails. */
static int file_changed(struct up *u)
{
    struct stat st;
    if (fstat(u->fd, &st) == 0 && st.st_size == u->size &&
        (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec == u->mtime_ns &&
        (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec == u->ctime_ns)
        return 0;
    fail(u, "%s changed during the upload; delete %s and upload it again as it is now", u->o->file, u->state_path);
    return 1;
}

static int checksum(struct up *u, int64_t off, int64_t len, char *out)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return -1;
    }
    static char buf[1 << 16];
    while (len > 0) {
        size_t k = len > (int64_t)sizeof(buf) ? sizeof(buf) : (size_t)len;
        ssize_t r = pread(u->fd, buf, k, (off_t)off);
        if (r <= 0) {
            if (r == 0)
                errno = ENODATA; /* the file ended early: errno is not set by an end of file */
            EVP_MD_CTX_free(md);
            return -1;
        }
        EVP_DigestUpdate(md, buf, (size_t)r);
        off += r;
        len -= r;
    }
    uint8_t d[32];
    unsigned dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    pc_b64_encode(d, dl, out, 0);
    return 0;
}

/* An Upload-Offset header: digits only, at most |max|; else -1. */
static int64_t offset_header(struct part *p, int64_t max)
{
    char off[32];
    int64_t v;
    if (resp_header(&p->resp_hdr, "upload-offset", off, sizeof(off)) != 0 || pc_parse_int_str(off, 0, max, 0, &v) != 0)
        return -1;
    return v;
}

static void on_patch_done(void *arg, CURL *e, CURLcode rc)
{
    struct part *p = arg;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    int64_t newoff = offset_header(p, INT64_MAX);
    size_t answered = p->ans.seen;
    cleanup_easy(p);
    if (answered > ANSWER_MAX) { /* no tus server answers a PATCH with a body: this one is not one */
        fail(p->u, "the origin answered part %d's PATCH with over 64 KiB (tus answers carry none)", p->idx + 1);
        return;
    }
    if (rc == CURLE_OK && status == 204 && newoff > p->sending_off + p->sending_len) {
        fail(p->u, "the origin reported offset %" PRId64 " for part %d, past the bytes sent", newoff, p->idx + 1);
        return;
    }
    /* progress, or none (which counts as a failed attempt: a server that keeps none cannot hold us for ever) */
    if (rc == CURLE_OK && status == 204 && newoff > p->sending_off) {
        p->offset = newoff;
        p->confirmed = newoff > p->confirmed ? newoff : p->confirmed;
        p->attempts = 0;
        save_state(p->u);
        if (p->u->stop_after > 0 && ++p->u->patches >= p->u->stop_after) {
            p->u->interrupted = 1;
            uv_stop(p->u->loop);
            return;
        }
        start_part(p);
        return;
    }
    if (rc == CURLE_OK && (status == 403 || status == 404 || status == 410 || status == 413 || status == 400)) {
        fail(p->u, "the origin refused part %d (HTTP %ld); delete %s to start over", p->idx + 1, status, p->u->state_path);
        return;
    }
    char why[160];
    if (rc != CURLE_OK)
        snprintf(why, sizeof(why), "%s", curl_easy_strerror(rc));
    else if (status == 204)
        snprintf(why, sizeof(why), "no progress (Upload-Offset %" PRId64 ")", newoff);
    else
        snprintf(why, sizeof(why), "HTTP %ld", status);
    retry_later(p, why);
}

/* The first part the origin no longer knows, or -1. */
static int first_gone(const struct up *u)
{
    for (int i = 0; i < u->nparts; i++)
        if (u->parts[i].gone)
            return i;
    return -1;
}

static void on_head_done(void *arg, CURL *e, CURLcode rc)
{
    struct part *p = arg;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    int64_t off = offset_header(p, p->length);
    int ok = rc == CURLE_OK && status == 200 && off >= 0;
    cleanup_easy(p);
    if (rc == CURLE_OK && status == 200 && off < 0) {
        fail(p->u, "the origin reported an offset for part %d that is not one from 0 to %" PRId64, p->idx + 1,
             p->length);
        return;
    }
    if (ok && off < p->confirmed) {
        /* tus offsets only grow: one that went back would have the part sent again and again */
        fail(p->u, "the origin went back on part %d's offset (%" PRId64 " after %" PRId64 "); delete %s to start over",
             p->idx + 1, off, p->confirmed, p->u->state_path);
        return;
    }
    /* a join takes every part: one gone while another is not means neither the join happened nor can it */
    int gone = first_gone(p->u), known = 0;
    for (int i = 0; i < p->u->nparts; i++)
        known |= p->u->parts[i].known;
    if ((ok && gone >= 0) || (rc == CURLE_OK && status == 404 && known)) {
        fail(p->u, "part %d can no longer be resumed (HTTP 404); delete %s to start over", (ok ? gone : p->idx) + 1,
             p->u->state_path);
        return;
    }
    if (ok) {
        p->known = 1;
        p->offset = off;
        p->confirmed = off;
        p->head_pending = 0;
        start_part(p);
        return;
    }
    if (rc == CURLE_OK && status == 404) {
        /* the join may have happened, its answer lost (the origin died after committing it): asked again,
         * the origin names the final upload these parts became; else the join fails, and says so */
        p->gone = 1;
        p->done = 1;
        p->head_pending = 0;
        maybe_finalize(p->u);
        return;
    }
    if (rc == CURLE_OK && (status == 403 || status == 410)) {
        fail(p->u, "part %d can no longer be resumed (HTTP %ld); delete %s to start over", p->idx + 1, status,
             p->u->state_path);
        return;
    }
    retry_later(p, rc != CURLE_OK ? curl_easy_strerror(rc) : "HEAD failed");
}

static void on_create_done(void *arg, CURL *e, CURLcode rc)
{
    struct part *p = arg;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    char loc[2048];
    int ok = rc == CURLE_OK && status == 201 && resp_header(&p->resp_hdr, "location", loc, sizeof(loc)) == 0;
    int expired = rc == CURLE_OK && answer_expired(&p->ans, status);
    cleanup_easy(p);
    if (expired && !p->create_refreshed) { /* the creation URL expired (an hour): a new one, once */
        p->create_refreshed = p->create_gen == p->u->create_gen;
        p->wait_create = refresh_creation_url(p->u, p->create_gen);
        if (!p->wait_create)
            start_part(p);
        return;
    }
    if (!ok) {
        if (expired)
            fail(p->u, "the origin refused to create part %d (HTTP 403: a new upload URL expired too; is its clock right?)",
                 p->idx + 1);
        else if (rc == CURLE_OK && status >= 400 && status < 500 && status != 423)
            fail(p->u, "the origin refused to create part %d (HTTP %ld)", p->idx + 1, status);
        else
            retry_later(p, rc != CURLE_OK ? curl_easy_strerror(rc) : "creation failed");
        return;
    }
    /* Location may be relative */
    if (strncmp(loc, "http", 4) != 0) {
        char *abs = NULL;
        const char *o = p->u->o->origin;
        size_t ol = strlen(o);
        if (asprintf(&abs, "%.*s%s", (int)(o[ol - 1] == '/' ? ol - 1 : ol), o, loc) < 0)
            abs = NULL;
        p->url = abs;
    } else {
        p->url = strdup(loc);
    }
    p->offset = 0;
    save_state(p->u);
    start_part(p);
}

static void start_part(struct part *p)
{
    struct up *u = p->u;
    if (u->failed || u->interrupted || p->busy || p->wait_create)
        return;
    pc_buf_reset(&p->resp_hdr);
    if (p->url == NULL) { /* create the partial upload */
        char len[64];
        p->create_gen = u->create_gen;
        p->easy = new_easy(u, u->create_url, &p->hdrs, &p->resp_hdr, &p->ans);
        snprintf(len, sizeof(len), "Upload-Length: %" PRId64, p->length);
        p->hdrs = curl_slist_append(p->hdrs, len);
        p->hdrs = curl_slist_append(p->hdrs, "Upload-Concat: partial");
        curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->hdrs);
        curl_easy_setopt(p->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(p->easy, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(p->easy, CURLOPT_TIMEOUT, CLIENT_REQ_TIMEOUT_S);
        p->busy = 1;
        if (pc_http_client_add(u->http, p->easy, on_create_done, p) != 0)
            fail(u, "out of memory");
        return;
    }
    if (p->head_pending) {
        p->easy = new_easy(u, p->url, &p->hdrs, &p->resp_hdr, &p->ans);
        curl_easy_setopt(p->easy, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(p->easy, CURLOPT_TIMEOUT, CLIENT_REQ_TIMEOUT_S);
        p->busy = 1;
        if (pc_http_client_add(u->http, p->easy, on_head_done, p) != 0)
            fail(u, "out of memory");
        return;
    }
    if (p->offset >= p->length) {
        p->done = 1;
        maybe_finalize(u);
        return;
    }
    p->sending_off = p->offset;
    p->sending_len = p->length - p->offset < u->o->chunk ? p->length - p->offset : u->o->chunk;
    p->sent = 0;
    char sum[64], h1[128], h2[128];
    if (file_changed(u))
        return;
    if (checksum(u, p->start + p->sending_off, p->sending_len, sum) != 0) {
        if (!file_changed(u))
            fail(u, "cannot read %s: %s", u->o->file, errno == ENODATA ? "it ended early" : strerror(errno));
        return;
    }
    p->easy = new_easy(u, p->url, &p->hdrs, &p->resp_hdr, &p->ans);
    snprintf(h1, sizeof(h1), "Upload-Offset: %" PRId64, p->offset);
    snprintf(h2, sizeof(h2), "Upload-Checksum: sha256 %s", sum);
    p->hdrs = curl_slist_append(p->hdrs, h1);
    p->hdrs = curl_slist_append(p->hdrs, h2);
    p->hdrs = curl_slist_append(p->hdrs, "Content-Type: application/offset+octet-stream");
    p->hdrs = curl_slist_append(p->hdrs, "Expect:");
    curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->hdrs);
    curl_easy_setopt(p->easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(p->easy, CURLOPT_CUSTOMREQUEST, "PATCH");
    curl_easy_setopt(p->easy, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(p->easy, CURLOPT_READDATA, p);
    curl_easy_setopt(p->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)p->sending_len);
    p->busy = 1;
    if (pc_http_client_add(u->http, p->easy, on_patch_done, p) != 0)
        fail(u, "out of memory");
}

static void maybe_finalize(struct up *u);

static void on_final_retry(uv_timer_t *t)
{
    maybe_finalize(t->data);
}

static void on_final_done(void *arg, CURL *e, CURLcode rc)
{
    struct up *u = arg;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    char loc[2048];
    int ok = rc == CURLE_OK && status == 201 && resp_header(&u->final_hdr, "location", loc, sizeof(loc)) == 0;
    int expired = rc == CURLE_OK && answer_expired(&u->final_ans, status);
    curl_easy_cleanup(u->final_easy);
    u->final_easy = NULL;
    curl_slist_free_all(u->final_hdrs);
    u->final_hdrs = NULL;
    if (expired && !u->final_refreshed) {
        /* the creation URL expired (an hour after it was handed out: a slow upload, or a resume): the join
         * is asked again with a new one, once (a part's expired URL would be refused again) */
        u->final_refreshed = u->final_gen == u->create_gen;
        u->final_hdr.len = 0;
        u->final_wait = refresh_creation_url(u, u->final_gen);
        if (!u->final_wait)
            maybe_finalize(u);
        return;
    }
    if (!ok) {
        /* the origin said it joined nothing (503 busy at --max-uploads, 500, 423 a part in use), or the answer
         * was lost (a network error, a proxy's 502 or 504): again, later. A join that did happen is answered
         * again with the final upload its parts became */
        int lost = rc != CURLE_OK || status == 502 || status == 504;
        if ((lost || status == 500 || status == 503 || status == 423) && ++u->final_attempts <= MAX_ATTEMPTS) {
            uint64_t ms = 500ull << (u->final_attempts < 6 ? u->final_attempts : 6);
            PC_LOGD("upload", "the join: HTTP %ld; again in %" PRIu64 " ms", status, ms);
            u->final_hdr.len = 0;
            uv_timer_start(&u->final_retry, on_final_retry, ms, 0);
            return;
        }
        int gone = first_gone(u);
        if (rc == CURLE_OK && (status == 403 || status == 410)) /* a part's URL expired, or a new creation URL */
            fail(u, "the origin refused to join the parts (HTTP %ld: an upload URL expired); delete %s to start over",
                 status, u->state_path);
        else if (rc == CURLE_OK && status == 400 && gone >= 0)
            fail(u, "part %d can no longer be resumed (HTTP 404) and was not joined; delete %s to start over", gone + 1,
                 u->state_path);
        else if (rc == CURLE_OK)
            fail(u, "the origin could not join the parts (HTTP %ld)", status);
        else
            fail(u, "the origin could not join the parts (%s)", curl_easy_strerror(rc));
        return;
    }
    char *q = strchr(loc, '?');
    if (q != NULL)
        *q = '\0';
    char *slash = strrchr(loc, '/');
    const char *id = slash != NULL ? slash + 1 : loc;
    if (!pc_id_valid(id, strlen(id))) {
        char shown[64];
        fail(u, "the origin answered the join with a Location that names no video id (%s)",
             pc_log_printable_str(shown, sizeof(shown), id));
        return;
    }
    snprintf(u->video_id, sizeof(u->video_id), "%s", id);
    u->finished = 1;
    unlink(u->state_path);
    uv_stop(u->loop);
}

static void maybe_finalize(struct up *u)
{
    for (int i = 0; i < u->nparts; i++)
        if (!u->parts[i].done)
            return;
    if (u->final_easy != NULL || u->final_wait || u->failed || u->interrupted || file_changed(u))
        return;
    pc_buf list;
    pc_buf_init(&list, 1 << 20);
    int r = pc_buf_append_str(&list, "Upload-Concat: final;");
    for (int i = 0; r == 0 && i < u->nparts; i++)
        r = pc_buf_printf(&list, "%s%s", i > 0 ? " " : "", u->parts[i].url);
    u->final_gen = u->create_gen;
    u->final_easy = new_easy(u, u->create_url, &u->final_hdrs, &u->final_hdr, &u->final_ans);
    u->final_hdrs = curl_slist_append(u->final_hdrs, list.data);
    char *meta = NULL;
    if (asprintf(&meta, "Upload-Metadata: %s", u->metadata) > 0)
        u->final_hdrs = curl_slist_append(u->final_hdrs, meta);
    free(meta);
    pc_buf_clear(&list);
    curl_easy_setopt(u->final_easy, CURLOPT_HTTPHEADER, u->final_hdrs);
    curl_easy_setopt(u->final_easy, CURLOPT_POST, 1L);
    curl_easy_setopt(u->final_easy, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(u->final_easy, CURLOPT_TIMEOUT, CLIENT_REQ_TIMEOUT_S); /* a 1 GiB join: seconds */
    if (r != 0 || pc_http_client_add(u->http, u->final_easy, on_final_done, u) != 0)
        fail(u, "out of memory");
}

/* POST /api/uploads: the request, its answer going to |body| (*|hdrs| to be freed with it). */
static CURL *creation_request(struct up *u, pc_buf *body, struct curl_slist **hdrs, char *url, size_t urllen)
{
    CURL *e = pc_curl_easy_new();
    if (e == NULL)
        return NULL;
    char auth[600];
    size_t ol = strlen(u->o->origin);
    snprintf(url, urllen, "%.*s/api/uploads", (int)(u->o->origin[ol - 1] == '/' ? ol - 1 : ol), u->o->origin);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", u->o->token);
    *hdrs = curl_slist_append(NULL, auth);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    return e;
}

/* The answer to POST /api/uploads: 0 with u->create_url and u->create_expires replaced, or -1 with the
 * reason in |why|. */
static int creation_answer(struct up *u, CURLcode rc, long status, const pc_buf *body, const char *url, char *why,
                           size_t whylen)
{
    json_t *o = NULL;
    int r = -1;
    if (rc != CURLE_OK)
        snprintf(why, whylen, "cannot reach %s: %s", url, curl_easy_strerror(rc));
    else if (status == 401)
        snprintf(why, whylen, "the origin rejected the upload token");
    else if (status != 201 || pc_json_parse_object(body->data, body->len, 1 << 16, &o, NULL, 0) != 0 ||
             pc_json_str(o, "upload_url") == NULL)
        snprintf(why, whylen, "unexpected answer from %s (HTTP %ld)", url, status);
    else {
        char *fresh = strdup(pc_json_str(o, "upload_url"));
        if (fresh == NULL) {
            snprintf(why, whylen, "out of memory");
        } else {
            free(u->create_url);
            u->create_url = fresh;
            u->create_expires = pc_json_int(o, "expires", 0);
            r = 0;
        }
    }
    json_decref(o);
    return r;
}

/* POST /api/uploads (blocking: one request before the loop starts). */
static int get_creation_url(struct up *u)
{
    pc_buf body;
    pc_buf_init(&body, 1 << 16);
    char url[2200], why[2400];
    struct curl_slist *h = NULL;
    CURL *e = creation_request(u, &body, &h, url, sizeof(url));
    CURLcode rc = e != NULL ? curl_easy_perform(e) : CURLE_OUT_OF_MEMORY;
    long status = 0;
    if (e != NULL)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    int r = creation_answer(u, rc, status, &body, url, why, sizeof(why));
    if (r != 0)
        pc_cli_error("%s", why);
    pc_buf_clear(&body);
    return r;
}

/* The new creation URL came (or not): what waited for it goes on. */
static void on_refresh_done(void *arg, CURL *e, CURLcode rc)
{
    struct up *u = arg;
    long status = 0;
    char url[2200], why[2400];
    const char *eu = NULL;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &eu);
    snprintf(url, sizeof(url), "%s", eu != NULL ? eu : "the origin");
    curl_easy_cleanup(u->refresh_easy);
    u->refresh_easy = NULL;
    curl_slist_free_all(u->refresh_hdrs);
    u->refresh_hdrs = NULL;
    int r = creation_answer(u, rc, status, &u->refresh_body, url, why, sizeof(why));
    pc_buf_reset(&u->refresh_body);
    if (r != 0) {
        fail(u, "the upload URL expired and no new one came: %s; run the same command again to resume", why);
        return;
    }
    u->create_gen++;
    PC_LOGD("upload", "the upload URL expired: a new one, until %" PRId64, u->create_expires);
    save_state(u);
    for (int i = 0; i < u->nparts; i++)
        if (u->parts[i].wait_create) {
            u->parts[i].wait_create = 0;
            start_part(&u->parts[i]);
        }
    if (u->final_wait) {
        u->final_wait = 0;
        maybe_finalize(u);
    }
}

/* The creation URL (as it was at generation |gen|) expired: asks the origin for a new one, unless that is
 * under way or done already. 1 when the caller is to wait for on_refresh_done, 0 to go on at once. */
static int refresh_creation_url(struct up *u, int gen)
{
    if (gen != u->create_gen) /* replaced since the request was sent */
        return 0;
    if (u->refresh_easy != NULL)
        return 1;
    char url[2200];
    u->refresh_easy = creation_request(u, &u->refresh_body, &u->refresh_hdrs, url, sizeof(url));
    if (u->refresh_easy == NULL || pc_http_client_add(u->http, u->refresh_easy, on_refresh_done, u) != 0)
        fail(u, "out of memory");
    return 1;
}

static void on_sigint(uv_signal_t *s, int sig)
{
    (void)sig;
    struct up *u = s->data;
    u->interrupted = 1;
    uv_stop(u->loop);
}

static int wait_ready(struct up *u)
{
    char url[2200];
    size_t ol = strlen(u->o->origin);
    snprintf(url, sizeof(url), "%.*s/api/videos/%s", (int)(u->o->origin[ol - 1] == '/' ? ol - 1 : ol), u->o->origin,
             u->video_id);
    /* processing may take long, but an origin that has no such video, or keeps answering nothing useful
     * (WAIT_ERRORS_MAX polls in a row, half a second apart), ends the wait */
    for (int errors = 0;; errors++) {
        if (errors >= WAIT_ERRORS_MAX) {
            if (u->bar)
                fputc('\n', stderr);
            pc_cli_error("gave up waiting: no answer about video %s from the origin for %d s", u->video_id,
                         WAIT_ERRORS_MAX / 2);
            return 1;
        }
        CURL *e = pc_curl_easy_new();
        pc_buf body;
        pc_buf_init(&body, 1 << 20);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
        CURLcode rc = curl_easy_perform(e);
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(e);
        if (rc == CURLE_OK && (status == 404 || status == 410)) {
            if (u->bar)
                fputc('\n', stderr);
            pc_cli_error("the origin has no video %s any more (HTTP %ld)", u->video_id, status);
            pc_buf_clear(&body);
            return 1;
        }
        json_t *o = NULL;
        if (rc == CURLE_OK && status == 200 && pc_json_parse_object(body.data, body.len, 1 << 20, &o, NULL, 0) == 0) {
            errors = -1; /* an answer: the count starts again */
            const char *st = pc_json_str(o, "state");
            double pr = pc_json_num(o, "progress", 0);
            if (u->bar) {
                fprintf(stderr, "\rprocessing: %-10s %5.1f%% ", st != NULL ? st : "?", pr * 100);
                fflush(stderr);
            }
            if (st != NULL && strcmp(st, "ready") == 0) {
                if (u->bar)
                    fputc('\n', stderr);
                char shown[512];
                fprintf(stderr, "ready: %s\n", pc_log_printable_str(shown, sizeof(shown), pc_json_str(o, "hls")));
                json_decref(o);
                pc_buf_clear(&body);
                return 0;
            }
            if (st != NULL && strcmp(st, "failed") == 0) {
                json_t *err = json_object_get(o, "error");
                if (u->bar)
                    fputc('\n', stderr);
                char c1[64], c2[512];
                pc_cli_error("processing failed: %s: %s",
                        pc_log_printable_str(c1, sizeof(c1), pc_json_str(err, "code")),
                        pc_log_printable_str(c2, sizeof(c2), pc_json_str(err, "message")));
                json_decref(o);
                pc_buf_clear(&body);
                return 1;
            }
        }
        json_decref(o);
        pc_buf_clear(&body);
        usleep(500000);
    }
}

int pc_origin_upload(const pc_upload_opts *o)
{
    struct up u;
    memset(&u, 0, sizeof(u));
    u.o = o;
    u.fd = open(o->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO does not block the open (refused below) */
    struct stat st;
    if (u.fd < 0 || fstat(u.fd, &st) != 0) {
        pc_cli_error("cannot open %s: %s", o->file, strerror(errno));
        return 1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        pc_cli_error("%s is empty or not a regular file", o->file);
        close(u.fd);
        return 1;
    }
    if (st.st_size > PC_MAX_UPLOAD_SIZE) {
        pc_cli_error("%s is larger than the 1 GiB upload limit", o->file);
        close(u.fd);
        return 1;
    }
    u.size = st.st_size;
    u.mtime = st.st_mtim.tv_sec;
    u.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    u.ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
    u.dev = (int64_t)st.st_dev;
    u.ino = (int64_t)st.st_ino;
    if (realpath(o->file, u.real) == NULL)
        snprintf(u.real, sizeof(u.real), "%s", o->file);
    u.bar = o->progress > 0 || (o->progress < 0 && isatty(2));
    const char *fault = getenv("PEERCDN_FAULT_UPLOAD_STOP_AFTER");
    u.stop_after = fault != NULL ? atoi(fault) : 0;
    /* metadata: filename and title */
    char *fcopy = strdup(o->file);
    const char *base = basename(fcopy);
    const char *title = o->title != NULL ? o->title : base;
    char b1[1024], b2[1024];
    if (pc_b64_encoded_len(strlen(base), 0) > sizeof(b1) || pc_b64_encoded_len(strlen(title), 0) > sizeof(b2)) {
        pc_cli_error("the title or file name is too long");
        free(fcopy);
        close(u.fd);
        return 2;
    }
    pc_b64_encode((const uint8_t *)base, strlen(base), b1, 0);
    pc_b64_encode((const uint8_t *)title, strlen(title), b2, 0);
    if (asprintf(&u.metadata, "filename %s,title %s", b1, b2) < 0)
        u.metadata = NULL;
    free(fcopy);
    /* resume state */
    if (o->state != NULL) {
        snprintf(u.state_path, sizeof(u.state_path), "%s", o->state);
    } else {
        char real[4096], key[8300], dir[4000];
        const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        if (realpath(o->file, real) == NULL)
            snprintf(real, sizeof(real), "%s", o->file);
        snprintf(key, sizeof(key), "%s\n%s\n%" PRId64 "\n%" PRId64, real, o->origin, u.size, u.mtime);
        uint8_t h[PC_B2_LEN];
        char hex[2 * PC_B2_LEN + 1];
        pc_blake2b256(key, strlen(key), h);
        pc_hex(h, sizeof(h), hex);
        if (cache != NULL && cache[0] != '\0')
            snprintf(dir, sizeof(dir), "%s/peercdn/uploads", cache);
        else
            snprintf(dir, sizeof(dir), "%s/.cache/peercdn/uploads", home != NULL ? home : "/tmp");
        char mk[4200];
        snprintf(mk, sizeof(mk), "%s", dir);
        for (char *p = mk + 1; *p; p++)
            if (*p == '/') {
                *p = '\0';
                mkdir(mk, 0700);
                *p = '/';
            }
        mkdir(mk, 0700);
        if (snprintf(u.state_path, sizeof(u.state_path), "%.4000s/%.32s.json", dir, hex) < 0)
            u.state_path[0] = 0;
    }
    struct stat sst; /* the state is a file of its own, never the video */
    if (stat(u.state_path, &sst) == 0 && sst.st_dev == st.st_dev && sst.st_ino == st.st_ino) {
        pc_cli_error("--state names the file being uploaded");
        free(u.metadata);
        close(u.fd);
        return 2;
    }
    int resumed = load_state(&u);
    if (resumed < 0) {
        free(u.metadata);
        close(u.fd);
        return 1;
    }
    /* a creation URL that has expired (or is about to: the clocks may differ) is replaced before the parts
     * not yet created or the join need it; one without a known expiry (an older state) is replaced when the
     * origin says it expired */
    if (resumed && u.create_expires > 0 && u.create_expires - CREATE_MARGIN_S <= (int64_t)time(NULL) &&
        get_creation_url(&u) != 0) {
        for (int i = 0; i < u.nparts; i++)
            free(u.parts[i].url);
        free(u.create_url);
        free(u.metadata);
        close(u.fd);
        return 1;
    }
    if (!resumed) {
        if (get_creation_url(&u) != 0) {
            free(u.metadata);
            close(u.fd);
            return 1;
        }
        int64_t min_part = 1 << 20;
        int n = o->parallel;
        if ((int64_t)n * min_part > u.size)
            n = (int)(u.size / min_part) > 0 ? (int)(u.size / min_part) : 1;
        u.nparts = n;
        int64_t per = u.size / n;
        for (int i = 0; i < n; i++) {
            u.parts[i].start = (int64_t)i * per;
            u.parts[i].length = i == n - 1 ? u.size - u.parts[i].start : per;
        }
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    u.loop = &loop;
    u.http = pc_http_client_new(&loop);
    pc_buf_init(&u.final_hdr, 1 << 16);
    pc_buf_init(&u.refresh_body, 1 << 16);
    uv_timer_init(&loop, &u.tick);
    u.tick.data = &u;
    uv_timer_init(&loop, &u.final_retry);
    u.final_retry.data = &u;
    uv_signal_init(&loop, &u.sigint);
    u.sigint.data = &u;
    uv_signal_start(&u.sigint, on_sigint, SIGINT);
    if (u.bar)
        uv_timer_start(&u.tick, on_tick, 200, 200);
    for (int i = 0; i < u.nparts; i++) {
        struct part *p = &u.parts[i];
        p->u = &u;
        p->idx = i;
        pc_buf_init(&p->resp_hdr, 1 << 16);
        uv_timer_init(&loop, &p->retry);
        p->retry.data = p;
        p->head_pending = resumed && p->url != NULL;
    }
    int srv = save_state(&u);
    if (srv != 0) /* an interruption could not be resumed: say so before sending anything */
        fail(&u, "cannot write the resume state %s: %s", u.state_path, pc_strerror(srv)); /* and stops the loop */
    u.base_bytes = 0;
    u.t0 = now_s();
    if (resumed && !u.failed && isatty(2)) { /* for a person: stdout carries the id alone, and a run that fails
                                                 prints one line on stderr, its error */
        char shown[512];
        fprintf(stderr, "resuming the upload of %s\n", pc_log_printable_str(shown, sizeof(shown), o->file));
    }
    for (int i = 0; i < u.nparts && !u.failed; i++)
        start_part(&u.parts[i]);
    uv_run(&loop, UV_RUN_DEFAULT);
    draw(&u, 1);
    /* tear down */
    for (int i = 0; i < u.nparts; i++) {
        struct part *p = &u.parts[i];
        if (p->easy != NULL)
            pc_http_client_cancel(u.http, p->easy);
        cleanup_easy(p);
        pc_buf_clear(&p->resp_hdr);
        uv_close((uv_handle_t *)&p->retry, NULL);
    }
    if (u.final_easy != NULL) {
        pc_http_client_cancel(u.http, u.final_easy);
        curl_easy_cleanup(u.final_easy);
        curl_slist_free_all(u.final_hdrs);
    }
    if (u.refresh_easy != NULL) {
        pc_http_client_cancel(u.http, u.refresh_easy);
        curl_easy_cleanup(u.refresh_easy);
        curl_slist_free_all(u.refresh_hdrs);
    }
    pc_http_client_free(u.http);
    uv_close((uv_handle_t *)&u.tick, NULL);
    uv_close((uv_handle_t *)&u.final_retry, NULL);
    uv_close((uv_handle_t *)&u.sigint, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    pc_buf_clear(&u.final_hdr);
    pc_buf_clear(&u.refresh_body);
    int rc;
    if (u.finished) {
        printf("%s\n", u.video_id);
        fflush(stdout);
        rc = o->wait ? wait_ready(&u) : 0;
    } else if (u.interrupted) {
        if (u.state_bad)
            pc_cli_error("interrupted; the resume state %s could not be saved: the next run starts over", u.state_path);
        else
            pc_cli_error("interrupted; run the same command again to resume");
        rc = 130;
    } else {
        rc = 1;
    }
    for (int i = 0; i < u.nparts; i++)
        free(u.parts[i].url);
    free(u.create_url);
    free(u.metadata);
    close(u.fd);
    return rc;
}
