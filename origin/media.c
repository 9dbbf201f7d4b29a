/* CDN-origin serving of published media; see media.h. */
#include "media.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>


#include "pc_blobcache.h"
#include "pc_http_util.h"
#include "pc_fs.h"
#include "pc_log.h"
#include "pc_media_token.h"
#include "pc_num.h"

#define ETAG_CACHE 64
#define CHUNK_BIG (1024 * 1024) /* read size while few responses are in flight: fewer write rounds */
#define CHUNK_SMALL (256 * 1024)
#define BIG_READERS 64            /* beyond this many concurrent file responses, read 256 KiB at a time */
#define INLINE_MAX (64 * 1024)
#define GZIP_MAX (4 << 20)
#define REL_MAX 256
#define HOT_BLOB_MAX (8 << 20) /* larger files are streamed from disk */

struct etag_entry {
    char *path;
    char tag[20]; /* 16 hex digits of BLAKE2b-256 */
};

struct etag_video {
    char id[PC_ID_LEN + 1];
    struct etag_entry *e;
    size_t n;
    uint64_t used;
};

struct pc_media {
    pc_origin *o;
    pc_blobcache *hot; /* segments and init segments in memory; NULL when disabled */
    size_t readers;    /* file responses in flight */
    struct etag_video cache[ETAG_CACHE];
    uint64_t clock;
};

enum kind { K_SEGMENT, K_PLAYLIST, K_JSON, K_IMAGE, K_TEXT, K_OTHER };

struct type {
    const char *ext;
    const char *mime;
    enum kind kind;
};

static const struct type types[] = {
    {".m4s", "video/iso.segment", K_SEGMENT},
    {".mp4", "video/mp4", K_SEGMENT},
    {".m4a", "audio/mp4", K_SEGMENT},
    {".m3u8", "application/vnd.apple.mpegurl", K_PLAYLIST},
    {".mpd", "application/dash+xml", K_PLAYLIST},
    {".json", "application/json", K_JSON},
    {".sig", "text/plain; charset=us-ascii", K_JSON},
    {".webp", "image/webp", K_IMAGE},
    {".vtt", "text/vtt; charset=utf-8", K_TEXT},
};

pc_media *pc_media_new(pc_origin *o)
{
    pc_media *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->o = o;
    if (o->cfg.cache_mb > 0) {
        size_t budget = (size_t)o->cfg.cache_mb << 20;
        m->hot = pc_blobcache_new(budget, HOT_BLOB_MAX);
        if (m->hot == NULL) {
            free(m);
            return NULL;
        }
    }
    return m;
}

static void drop_video(struct etag_video *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->e[i].path);
    free(v->e);
    memset(v, 0, sizeof(*v));
}

void pc_media_free(pc_media *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < ETAG_CACHE; i++)
        drop_video(&m->cache[i]);
    pc_blobcache_free(m->hot);
    free(m);
}

void pc_media_forget(pc_media *m, const char *id)
{
    for (int i = 0; i < ETAG_CACHE; i++)
        if (strcmp(m->cache[i].id, id) == 0)
            drop_video(&m->cache[i]);
    if (m->hot != NULL) {
        char prefix[4200];
        int n = snprintf(prefix, sizeof(prefix), "%s/%s/", m->o->paths_media, id);
        pc_blobcache_forget_prefix(m->hot, prefix, (size_t)n);
    }
}

void pc_media_cache_stats(const pc_media *m, pc_blobcache_stats *out, size_t *held_out)
{
    if (m->hot != NULL)
        pc_blobcache_get_stats(m->hot, out);
    else
        memset(out, 0, sizeof(*out));
    *held_out = m->hot != NULL ? pc_blobcache_held_out(m->hot) : 0;
}

int pc_media_signed_mode(const pc_media *m)
{
    return m->o->cfg.signed_media;
}

static void media_sig(pc_media *m, const char *id, int64_t exp, char out[PC_MEDIA_SIG_LEN + 1])
{
    pc_media_token_sig(m->o->media_key, id, exp, out);
}

int pc_media_sign_query(pc_media *m, const char *id, char *out, size_t outlen)
{
    /* the expiry rounded up to a quarter of the lifetime: every URL handed out in the same quarter is
     * spelt the same, so an edge cache keyed on the URL shares it among viewers */
    int64_t ttl = m->o->cfg.media_token_ttl_s, step = ttl / 4 > 0 ? ttl / 4 : 1;
    int64_t exp = ((int64_t)time(NULL) + ttl + step - 1) / step * step;
    char sig[64];
    media_sig(m, id, exp, sig);
    return snprintf(out, outlen, "exp=%" PRId64 "&sig=%s", exp, sig) < (int)outlen ? 0 : PC_ETOOBIG;
}

/* An HTTP date header's time (pc_http_date_parse); -1 when absent or not a date (the condition is then
 * ignored). Before, libcurl's lenient parser took "1 Jan 2099" or a PST time, and answered 304. */
static time_t http_date(h2o_iovec_t v)
{
    return (time_t)pc_http_date_parse(v.base, v.len);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct etag_entry *)a)->path, ((const struct etag_entry *)b)->path);
}

/* Loads media/<id>/.etags ("<relpath> <hex>" lines) into the LRU cache. */
static struct etag_video *etags_for(pc_media *m, const char *id)
{
    int slot = 0;
    for (int i = 0; i < ETAG_CACHE; i++) {
        if (strcmp(m->cache[i].id, id) == 0) {
            m->cache[i].used = ++m->clock;
            return &m->cache[i];
        }
        if (m->cache[i].used < m->cache[slot].used)
            slot = i;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s/.etags", m->o->paths_media, id);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    struct etag_video *v = &m->cache[slot];
    drop_video(v);
    snprintf(v->id, sizeof(v->id), "%s", id);
    v->used = ++m->clock;
    char line[512];
    size_t cap = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *sp = strchr(line, ' ');
        if (sp == NULL || strlen(sp + 1) < 16)
            continue;
        *sp = '\0';
        if (v->n == cap) {
            cap = cap ? cap * 2 : 64;
            struct etag_entry *e = realloc(v->e, cap * sizeof(*e));
            if (e == NULL)
                break;
            v->e = e;
        }
        v->e[v->n].path = strdup(line);
        memcpy(v->e[v->n].tag, sp + 1, 16);
        v->e[v->n].tag[16] = '\0';
        if (v->e[v->n].path != NULL)
            v->n++;
    }
    fclose(f);
    qsort(v->e, v->n, sizeof(*v->e), cmp_entry);
    return v;
}

/* Validates "<id>/<rel>" after "/v/": ids are base32, rel segments [A-Za-z0-9._-] not starting with '.'. */
static int split_path(const char *p, size_t len, char *id, char *rel)
{
    if (len < PC_ID_LEN + 2 || p[PC_ID_LEN] != '/' || !pc_id_valid(p, PC_ID_LEN))
        return 0;
    const char *r = p + PC_ID_LEN + 1;
    size_t rl = len - PC_ID_LEN - 1;
    if (rl == 0 || rl >= REL_MAX)
        return 0;
    int seg_start = 1;
    for (size_t i = 0; i < rl; i++) {
        char c = r[i];
        if (c == '/') {
            if (seg_start)
                return 0; /* empty segment */
            seg_start = 1;
            continue;
        }
        if (seg_start && c == '.')
            return 0; /* hidden files, "." and ".." */
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
        seg_start = 0;
    }
    if (seg_start)
        return 0;
    memcpy(id, p, PC_ID_LEN);
    id[PC_ID_LEN] = '\0';
    memcpy(rel, r, rl);
    rel[rl] = '\0';
    return 1;
}

static const struct type *type_of(const char *rel)
{
    static const struct type other = {"", "application/octet-stream", K_OTHER};
    const char *dot = strrchr(rel, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return &types[i];
    return &other;
}

struct file_gen {
    h2o_generator_t super;
    h2o_filecache_ref_t *ref;
    pc_media *m;
    int fd;
    uint64_t off, left;
    size_t chunk;
    char *buf;
};

static void file_gen_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    struct file_gen *fg = (void *)g;
    size_t n = fg->left > fg->chunk ? fg->chunk : (size_t)fg->left;
    ssize_t r = pread(fg->fd, fg->buf, n, (off_t)fg->off);
    if (r <= 0) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    fg->off += (uint64_t)r;
    fg->left -= (uint64_t)r;
    h2o_iovec_t v = h2o_iovec_init(fg->buf, (size_t)r);
    h2o_send(req, &v, 1, fg->left == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void file_gen_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)g;
    (void)req;
}

static void file_gen_dispose(void *p)
{
    struct file_gen *fg = p;
    fg->m->readers--;
    h2o_filecache_close_file(fg->ref);
}

struct mem_gen {
    h2o_generator_t super;
    pc_blob *blob;
};

static void mem_gen_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    (void)g; /* everything was sent with the first call */
    (void)req;
}

static void mem_gen_dispose(void *p)
{
    pc_blob_release(((struct mem_gen *)p)->blob);
}

/* What a response is served from: a hot blob, or an open file. */
struct src {
    h2o_filecache_ref_t *ref; /* NULL when served from memory */
    pc_blob *blob;
    uint64_t size, ino;
    int64_t mtime;
};

struct hot_aux {
    uint64_t ino;
    int64_t mtime;
};

static void src_close(struct src *s)
{
    if (s->ref != NULL)
        h2o_filecache_close_file(s->ref);
    pc_blob_release(s->blob);
    s->ref = NULL;
    s->blob = NULL;
}

static int read_all(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Opens |full| for a response: from the hot cache, else from disk (and then, for segments no
 * larger than HOT_BLOB_MAX, into the cache). -1 when there is no such regular file, -2 when the file
 * could not be opened for a reason of the moment (no descriptor or memory left, an I/O error). Published
 * files never change, and deletion forgets them, so a cached copy is never stale. */
static int src_open(pc_media *m, h2o_req_t *req, const char *full, enum kind kind, struct src *s)
{
    memset(s, 0, sizeof(*s));
    size_t flen = strlen(full);
    int hot = m->hot != NULL && kind == K_SEGMENT;
    if (hot && (s->blob = pc_blobcache_get(m->hot, full, flen)) != NULL) {
        struct hot_aux a;
        memcpy(&a, s->blob->aux, sizeof(a));
        s->size = s->blob->len;
        s->ino = a.ino;
        s->mtime = a.mtime;
        return 0;
    }
    errno = 0;
    h2o_filecache_ref_t *ref = h2o_filecache_open_file(req->conn->ctx->filecache, full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (ref == NULL || ref->fd < 0 || !S_ISREG(ref->st.st_mode)) {
        /* h2o 2.2 returns NULL when open(2) fails, errno left as it set it */
        int err = ref == NULL ? errno : ref->fd < 0 ? ref->open_err : 0;
        if (ref != NULL)
            h2o_filecache_close_file(ref);
        /* out of descriptors under a flood of connections: a 404 told players and peers the segment does
         * not exist, for good (found by review) */
        return err == EMFILE || err == ENFILE || err == ENOMEM || err == EIO || err == EAGAIN ? -2 : -1;
    }
    s->ref = ref;
    s->size = (uint64_t)ref->st.st_size;
    s->ino = (uint64_t)ref->st.st_ino;
    s->mtime = (int64_t)ref->st.st_mtim.tv_sec;
    /* only what the cache can take is read whole: a cache smaller than a segment (--cache-mb under 8)
     * made every request for it, a one-byte range or a 304 included, read it all and throw it away. And
     * not while answers hold evicted copies as large as the cache itself: each miss read a copy of its
     * own, which a client that stops reading (or reads a trickle) keeps; 300 such clients held 790 MB
     * with --cache-mb 8 (found by review). Past that, the file is streamed in blocks. */
    if (hot && s->size <= pc_blobcache_max_blob(m->hot) && /* HOT_BLOB_MAX, or the whole cache if smaller */
        pc_blobcache_held_out(m->hot) + s->size <= ((size_t)m->o->cfg.cache_mb << 20)) {
        uint8_t *buf = malloc(s->size > 0 ? (size_t)s->size : 1);
        struct hot_aux a = {s->ino, s->mtime};
        if (buf != NULL && read_all(ref->fd, buf, (size_t)s->size) == 0)
            s->blob = pc_blobcache_put(m->hot, full, flen, buf, (size_t)s->size, &a, sizeof(a));
        free(buf);
        if (s->blob != NULL) {
            h2o_filecache_close_file(ref);
            s->ref = NULL;
        } /* else: streamed from the file as if there were no cache */
    }
    return 0;
}

static int gzip_buf(const char *in, size_t len, char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, len);
    char *o = malloc(cap);
    if (o == NULL) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)o;
    z.avail_out = (uInt)cap;
    int r = deflate(&z, Z_FINISH);
    *outlen = z.total_out;
    deflateEnd(&z);
    if (r != Z_STREAM_END) {
        free(o);
        return -1;
    }
    *out = o;
    return 0;
}

/* Does Accept-Encoding accept gzip (listed without q=0, or else "*" without q=0: gzip named explicitly
 * wins over "*", RFC 9110 12.5.3)? */
static int accepts_gzip(h2o_req_t *req)
{
    h2o_iovec_t ae = pc_http_req_header_list(req, "accept-encoding");
    size_t i = 0, n = ae.base != NULL ? ae.len : 0;
    int named = -1, star = -1; /* -1: not listed; else whether accepted */
    while (i < n) {
        size_t e = i;
        while (e < n && ae.base[e] != ',')
            e++;
        size_t a = i, semi = i;
        while (a < e && (ae.base[a] == ' ' || ae.base[a] == '\t'))
            a++;
        semi = a;
        while (semi < e && ae.base[semi] != ';')
            semi++;
        size_t b = semi;
        while (b > a && (ae.base[b - 1] == ' ' || ae.base[b - 1] == '\t'))
            b--;
        int is_gzip = b - a == 4 && strncasecmp(ae.base + a, "gzip", 4) == 0;
        if (is_gzip || (b - a == 1 && ae.base[a] == '*')) {
            /* q=0 (or 0.0, 0.000) refuses it */
            size_t q = semi;
            while (q + 1 < e && !((ae.base[q] == 'q' || ae.base[q] == 'Q') && ae.base[q + 1] == '='))
                q++;
            int ok = 1;
            if (q + 1 < e) {
                for (q += 2; q < e && (ae.base[q] == '0' || ae.base[q] == '.'); q++)
                    ;
                ok = q < e && ae.base[q] >= '1' && ae.base[q] <= '9';
            }
            *(is_gzip ? &named : &star) = ok;
        }
        i = e + 1;
    }
    return named >= 0 ? named : star > 0;
}

/* Rewrites the URIs of a playlist, an MPD or the sprite's WebVTT index to carry |q| (signed mode).
 * Returns malloc'd text. */
static char *rewrite_playlist(const char *in, size_t len, const char *rel, const char *q, size_t *outlen)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    if (f == NULL)
        return NULL;
    int mpd = strstr(rel, ".mpd") != NULL, vtt = strstr(rel, ".vtt") != NULL;
    int cue_text = 0; /* WebVTT: the line after a cue's timing line */
    const char *p = in, *end = in + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        size_t ll = (size_t)(le - p);
        if (vtt) {
            /* a cue's text (the line after its timing) is the sheet's URL with its #xywh= fragment (thumbs.c
             * writes the index): the query goes before the fragment; every other line stays */
            const char *at = memchr(p, '#', ll);
            if (at == NULL)
                at = le > p && le[-1] == '\r' ? le - 1 : le;
            if (cue_text && at > p) {
                fwrite(p, 1, (size_t)(at - p), f);
                fprintf(f, "?%s", q);
                fwrite(at, 1, (size_t)(le - at), f);
            } else {
                fwrite(p, 1, ll, f);
            }
            cue_text = memmem(p, ll, "-->", 3) != NULL;
        } else if (mpd) {
            /* append &amp;-escaped query to media="...", initialization="..." and a subtitle track's
             * <BaseURL>...</BaseURL> */
            const char *s = p;
            while (s < le) {
                const char *a = NULL;
                char ends = '"';
                const char *m1 = memmem(s, (size_t)(le - s), "media=\"", 7);
                const char *m2 = memmem(s, (size_t)(le - s), "initialization=\"", 16);
                const char *m3 = memmem(s, (size_t)(le - s), "<BaseURL>", 9);
                if (m1 != NULL && (m2 == NULL || m1 < m2))
                    a = m1 + 7;
                else if (m2 != NULL)
                    a = m2 + 16;
                else if (m3 != NULL) {
                    a = m3 + 9;
                    ends = '<';
                }
                if (a == NULL)
                    break;
                const char *close = memchr(a, ends, (size_t)(le - a));
                if (close == NULL)
                    break;
                fwrite(s, 1, (size_t)(close - s), f);
                fputc('?', f);
                for (const char *c = q; *c; c++) {
                    if (*c == '&')
                        fputs("&amp;", f);
                    else
                        fputc(*c, f);
                }
                s = close;
            }
            fwrite(s, 1, (size_t)(le - s), f);
        } else if (p < le && *p != '#') {
            fwrite(p, 1, (size_t)(le - p), f);
            if (le > p)
                fprintf(f, "?%s", q);
        } else {
            const char *u = memmem(p, (size_t)(le - p), "URI=\"", 5);
            if (u != NULL) {
                const char *close = memchr(u + 5, '"', (size_t)(le - u - 5));
                if (close != NULL) {
                    fwrite(p, 1, (size_t)(close - p), f);
                    fprintf(f, "?%s", q);
                    fwrite(close, 1, (size_t)(le - close), f);
                } else {
                    fwrite(p, 1, (size_t)(le - p), f);
                }
            } else {
                fwrite(p, 1, (size_t)(le - p), f);
            }
        }
        if (nl != NULL)
            fputc('\n', f);
        p = nl != NULL ? nl + 1 : end;
    }
    fclose(f);
    *outlen = n;
    return out;
}

static void add_common(h2o_req_t *req)
{
    /* static names and values: h2o keeps the pointers, nothing is copied per request */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, H2O_STRLIT("*"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-expose-headers"), 0, NULL,
                          H2O_STRLIT("Content-Range, Content-Length, ETag, Accept-Ranges"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("timing-allow-origin"), 0, NULL, H2O_STRLIT("*"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL,
                          H2O_STRLIT("nosniff"));
}

static void send_inline(h2o_req_t *req, const char *body, size_t len)
{
    static h2o_generator_t gen = {NULL, NULL};
    /* a 304 carries no Content-Length (it would have to be the full representation's) */
    req->res.content_length = req->res.status == 304 ? SIZE_MAX : len;
    h2o_start_response(req, &gen);
    h2o_iovec_t v = h2o_strdup(&req->pool, body, len);
    if (pc_http_req_method_is(req, "HEAD") || len == 0 || req->res.status == 304)
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &v, 1, H2O_SEND_STATE_FINAL);
}

/* A signed URL's query as it is issued: only digits, base64url, '=' and '&' (percent-encoding would give
 * one URL several spellings and split edge caches). */
static int query_as_issued(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX)
        return 1;
    for (size_t i = req->query_at + 1; i < req->path.len; i++) {
        char ch = req->path.base[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_' || ch == '=' || ch == '&'))
            return 0;
    }
    return 1;
}

int pc_media_route(void *user, h2o_req_t *req)
{
    pc_media *m = user;
    h2o_iovec_t path = pc_http_req_path(req);
    char id[PC_ID_LEN + 1], rel[REL_MAX];
    if (path.len < 3 || memcmp(path.base, "/v/", 3) != 0)
        return -1;
    if (!split_path(path.base + 3, path.len - 3, id, rel)) {
        pc_http_respond_error(req, 404, "not_found", "no such media file");
        return 0;
    }
    if (pc_http_get_only(req, "Range, If-None-Match, If-Modified-Since, If-Range, If-Match, If-Unmodified-Since",
                         "media takes GET and HEAD"))
        return 0;
    char token[160] = "";
    int64_t exp = 0; /* signed mode: the URL's expiry */
    if (m->o->cfg.signed_media) {
        char exps[24], sig[96];
        /* exp in canonical decimal (no sign, no leading zero) and the query as issued (no percent-encoding),
         * so that one signed URL has one spelling */
        if (!query_as_issued(req) || pc_http_req_query(req, "exp", exps, sizeof(exps)) != 0 ||
            pc_http_req_query(req, "sig", sig, sizeof(sig)) != 0 ||
            pc_parse_int_str(exps, 1, INT64_MAX, PC_NUM_CANONICAL, &exp) != 0) {
            pc_http_respond_error(req, 403, "signature_required", "this origin serves media only through signed URLs");
            return 0;
        }
        char want[64];
        media_sig(m, id, exp, want);
        if (strlen(sig) != strlen(want) || !pc_ct_equal(sig, want, strlen(want))) {
            pc_http_respond_error(req, 403, "bad_signature", "the media URL's signature is invalid");
            return 0;
        }
        if (exp < (int64_t)time(NULL)) {
            pc_http_respond_error(req, 403, "expired", "the media URL has expired");
            return 0;
        }
        snprintf(token, sizeof(token), "exp=%s&sig=%s", exps, sig);
        /* exactly as issued: another order or another parameter would be another spelling of the same signed
         * URL, which edge caches keep apart (and a way around them) */
        size_t ql = req->path.len - req->query_at - 1;
        if (ql != strlen(token) || memcmp(req->path.base + req->query_at + 1, token, ql) != 0) {
            pc_http_respond_error(req, 403, "signature_required", "the media query must be exactly exp=E&sig=S, as issued");
            return 0;
        }
    }
    char full[4600];
    snprintf(full, sizeof(full), "%s/%s/%s", m->o->paths_media, id, rel);
    const struct type *ty = type_of(rel);
    struct src src;
    int opened = src_open(m, req, full, ty->kind, &src);
    if (opened == -2) {
        pc_http_add_header(req, "retry-after", "1");
        pc_http_respond_error(req, 503, "busy", "the origin cannot open the file at the moment (out of descriptors "
                                                "or memory): try again");
        return 0;
    }
    if (opened != 0) {
        pc_http_respond_error(req, 404, "not_found", "no such media file");
        return 0;
    }
    /* the sprite's index names the sheets; a subtitle track's WebVTT holds only text */
    int rewrite = token[0] != '\0' && (ty->kind == K_PLAYLIST || (strcmp(ty->ext, ".vtt") == 0 && strncmp(rel, "thumbs/", 7) == 0));
    int compressible = ty->kind == K_PLAYLIST || ty->kind == K_JSON || ty->kind == K_TEXT;
    int gz = compressible && accepts_gzip(req) && src.size <= GZIP_MAX &&
             pc_http_req_header(req, "range").base == NULL;

    char etag[64];
    struct etag_video *ev = etags_for(m, id);
    struct etag_entry key = {rel, ""}, *hit = NULL;
    if (ev != NULL)
        hit = bsearch(&key, ev->e, ev->n, sizeof(*ev->e), cmp_entry);
    if (hit != NULL)
        snprintf(etag, sizeof(etag), "\"b2-%s%s%s\"", hit->tag, rewrite ? "-s" : "", gz ? "-gz" : "");
    else
        snprintf(etag, sizeof(etag), "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "%s%s\"", src.ino, src.size,
                 (uint64_t)src.mtime, rewrite ? "-s" : "", gz ? "-gz" : "");
    char lastmod[H2O_TIMESTR_RFC1123_LEN + 1];
    struct tm gmt;
    time_t mt = (time_t)src.mtime;
    gmtime_r(&mt, &gmt);
    h2o_time2str_rfc1123(lastmod, &gmt);

    req->res.status = 200;
    req->res.reason = "OK";
    add_common(req);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ty->mime, strlen(ty->mime));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, h2o_strdup(&req->pool, etag, SIZE_MAX).base,
                   strlen(etag));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LAST_MODIFIED, NULL,
                   h2o_strdup(&req->pool, lastmod, SIZE_MAX).base, strlen(lastmod));
    if (ty->kind == K_PLAYLIST || ty->kind == K_JSON || rewrite) {
        if (rewrite)
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("private, max-age=10"));
        else
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("public, max-age=10"));
    } else if (token[0] != '\0') {
        /* a signed URL is cached no longer than it is valid: an edge would serve it past its expiry */
        char cc[64];
        int64_t left = exp - (int64_t)time(NULL);
        snprintf(cc, sizeof(cc), "public, max-age=%" PRId64 ", immutable", left < 0 ? 0 : left);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                       h2o_strdup(&req->pool, cc, SIZE_MAX).base, strlen(cc));
    } else {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                       H2O_STRLIT("public, max-age=31536000, immutable"));
    }
    if (compressible)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Accept-Encoding"));

    /* conditional requests, in RFC 9110 13.2.2's order: If-Match (else If-Unmodified-Since) fails with 412,
     * then If-None-Match (else If-Modified-Since) answers 304 */
    h2o_iovec_t im = pc_http_req_header_list(req, "if-match");
    int failed = 0;
    if (im.base != NULL) {
        failed = !pc_http_etag_list_matches(im.base, im.len, etag, strlen(etag), 1);
    } else {
        time_t t = http_date(pc_http_req_header(req, "if-unmodified-since"));
        failed = t != -1 && src.mtime > t;
    }
    if (failed) {
        src_close(&src);
        req->res.headers = (h2o_headers_t){NULL, 0, 0}; /* not the file's: no ETag, and no year-long max-age */
        pc_http_respond_error(req, 412, "precondition_failed", "the file is not the one the request's condition names");
        return 0;
    }
    h2o_iovec_t inm = pc_http_req_header_list(req, "if-none-match");
    int not_modified = 0;
    if (inm.base != NULL) {
        not_modified = pc_http_etag_list_matches(inm.base, inm.len, etag, strlen(etag), 0);
    } else {
        time_t t = http_date(pc_http_req_header(req, "if-modified-since"));
        not_modified = t != -1 && t >= src.mtime;
    }
    if (not_modified) {
        src_close(&src);
        req->res.status = 304;
        req->res.reason = "Not Modified";
        send_inline(req, "", 0);
        return 0;
    }

    /* compressed text is kept with the hot segments, under the file's key and ETag (so a DELETE forgets it
     * with the video's files): gzip of a long title's p2p.json takes tens of ms on the event loop */
    char gzkey[4700];
    int gzn = gz && !rewrite && m->hot != NULL ? snprintf(gzkey, sizeof(gzkey), "%s\001gzip %s", full, etag) : -1;
    int gzcache = gzn > 0 && (size_t)gzn < sizeof(gzkey);
    if (gzcache) {
        pc_blob *b = pc_blobcache_get(m->hot, gzkey, (size_t)gzn);
        if (b != NULL) {
            src_close(&src);
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_ENCODING, NULL, H2O_STRLIT("gzip"));
            send_inline(req, (const char *)b->data, b->len);
            pc_blob_release(b);
            return 0;
        }
    }
    if (rewrite || gz) {
        /* small text: read, maybe rewrite, maybe compress */
        size_t size = (size_t)src.size, tlen = 0;
        char *text = malloc(size + 1), *z = NULL;
        if (text == NULL || pread(src.ref->fd, text, size, 0) != (ssize_t)size) {
            free(text);
            src_close(&src);
            pc_http_respond_error(req, 500, "io_error", "cannot read the file");
            return 0;
        }
        src_close(&src);
        if (rewrite) {
            char *rw = rewrite_playlist(text, size, rel, token, &tlen);
            free(text);
            text = rw;
            size = tlen;
            if (text == NULL) {
                pc_http_respond_error(req, 500, "out_of_memory", "out of memory");
                return 0;
            }
        }
        if (gz && gzip_buf(text, size, &z, &tlen) == 0) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_ENCODING, NULL, H2O_STRLIT("gzip"));
            free(text);
            text = z;
            size = tlen;
            if (gzcache)
                pc_blob_release(pc_blobcache_put(m->hot, gzkey, (size_t)gzn, text, size, NULL, 0));
        }
        send_inline(req, text, size);
        free(text);
        return 0;
    }

    uint64_t size = src.size, start = 0, len = size;
    /* on several lines they are one list (RFC 9110 5.3): two Range lines make a value that is not a range,
     * and the whole file is served, as an edge that joins them would expect */
    h2o_iovec_t range = pc_http_req_header_list(req, "range");
    if (range.base != NULL) {
        h2o_iovec_t ifr = pc_http_req_header_list(req, "if-range");
        int use = 1;
        if (ifr.base != NULL) {
            if (ifr.len > 0 && (ifr.base[0] == '"' || ifr.base[0] == 'W'))
                use = ifr.len == strlen(etag) && memcmp(ifr.base, etag, ifr.len) == 0; /* strong comparison */
            else
                use = ifr.len == strlen(lastmod) && memcmp(ifr.base, lastmod, ifr.len) == 0;
        }
        int pr = use ? pc_http_parse_range(range.base, range.len, size, &start, &len) : 0;
        if (pr < 0) {
            src_close(&src);
            char cr[64];
            snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
            pc_http_add_header(req, "content-range", cr);
            char msg[96];
            snprintf(msg, sizeof(msg), "no byte of the range is within the %" PRIu64 " bytes", size);
            pc_http_respond_error(req, 416, "range_not_satisfiable", msg);
            return 0;
        }
        if (pr > 0) {
            char cr[96];
            snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start, start + len - 1, size);
            pc_http_add_header(req, "content-range", cr);
            req->res.status = 206;
            req->res.reason = "Partial Content";
        }
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCEPT_RANGES, NULL, H2O_STRLIT("bytes"));
    if (pc_http_req_method_is(req, "HEAD") || len == 0) {
        src_close(&src);
        req->res.content_length = len;
        static h2o_generator_t gen = {NULL, NULL};
        h2o_start_response(req, &gen);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return 0;
    }
    req->res.content_length = len;
    if (src.blob != NULL) {
        /* from memory: one write, no file I/O */
        struct mem_gen *mg = h2o_mem_alloc_shared(&req->pool, sizeof(*mg), mem_gen_dispose);
        mg->super.proceed = mem_gen_proceed;
        mg->super.stop = file_gen_stop;
        mg->blob = src.blob;
        h2o_start_response(req, &mg->super);
        h2o_iovec_t v = h2o_iovec_init(src.blob->data + start, (size_t)len);
        h2o_send(req, &v, 1, H2O_SEND_STATE_FINAL);
        return 0;
    }
    struct file_gen *fg = h2o_mem_alloc_shared(&req->pool, sizeof(*fg), file_gen_dispose);
    fg->super.proceed = file_gen_proceed;
    fg->super.stop = file_gen_stop;
    fg->ref = src.ref;
    fg->m = m;
    m->readers++;
    fg->fd = src.ref->fd;
    fg->off = start;
    fg->left = len;
    fg->chunk = m->readers <= BIG_READERS ? CHUNK_BIG : CHUNK_SMALL;
    fg->buf = h2o_mem_alloc_pool(&req->pool, len < fg->chunk ? (size_t)len : fg->chunk);
    h2o_start_response(req, &fg->super);
    file_gen_proceed(&fg->super, req);
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        PC_LOGW("media", "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

int pc_rmtree(const char *path)
{
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        return PC_EIO;
    return 0;
}

struct rm_job {
    uv_work_t w;
    char path[4200];
};

static void rm_work(uv_work_t *w)
{
    struct rm_job *j = w->data;
    if (pc_rmtree(j->path) != 0)
        PC_LOGW("media", "cannot remove %s", j->path);
}

static void rm_after(uv_work_t *w, int status)
{
    (void)status;
    free(w->data);
}

/* Moves |path| into the trash and deletes it on the thread pool. */
static int trash(pc_media *m, const char *path)
{
    struct rm_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return PC_ENOMEM;
    char rnd[9];
    pc_random_id(rnd, 8);
    const char *base = strrchr(path, '/');
    snprintf(j->path, sizeof(j->path), "%s/%s.%s", m->o->paths_trash, base != NULL ? base + 1 : path, rnd);
    if (rename(path, j->path) != 0) {
        int e = errno;
        free(j);
        return e == ENOENT ? 0 : PC_EIO;
    }
    j->w.data = j;
    uv_queue_work(m->o->loop, &j->w, rm_work, rm_after);
    return 0;
}

int pc_media_swap_in(pc_media *m, const char *id, const char *staged, const char *work)
{
    char media[4200], aside[4300], mark[4300];
    snprintf(media, sizeof(media), "%s/%s", m->o->paths_media, id);
    struct stat st;
    if (stat(media, &st) != 0) {
        if (rename(staged, media) != 0)
            return pc_err_from_errno(errno);
    } else if (renameat2(AT_FDCWD, staged, AT_FDCWD, media, RENAME_EXCHANGE) != 0) {
        if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
            return pc_err_from_errno(errno);
        snprintf(aside, sizeof(aside), "%s/replaced", work);
        if ((stat(aside, &st) == 0 && pc_rmtree(aside) != 0) || rename(media, aside) != 0 || rename(staged, media) != 0)
            return pc_err_from_errno(errno);
    }
    if (pc_fsync_parent(media) != 0) /* the swap durable before the database records it */
        return PC_EIO;
    pc_media_forget(m, id);
    snprintf(mark, sizeof(mark), "%s/%s", media, PC_STAGED_MARK);
    if (unlink(mark) != 0 && errno != ENOENT)
        PC_LOGW("media", "cannot remove %s", mark);
    if (trash(m, work) != 0)
        PC_LOGW("media", "cannot move %s to the trash", work);
    return 0;
}

int pc_media_clear_outputs(pc_media *m, const char *id)
{
    pc_media_forget(m, id);
    char p[4200];
    snprintf(p, sizeof(p), "%s/%s", m->o->paths_media, id);
    int r = trash(m, p);
    snprintf(p, sizeof(p), "%s/%s", m->o->paths_work, id);
    int r2 = trash(m, p);
    return r != 0 ? r : r2;
}

/* The subtitle files added to the video of |source| ("SOURCE.subN", pipeline.c) beside it. */
static int remove_added_files(const char *source)
{
    const char *slash = strrchr(source, '/');
    if (slash == NULL)
        return 0;
    char dir[4200], prefix[512];
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - source), source);
    int pl = snprintf(prefix, sizeof(prefix), "%s.sub", slash + 1);
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : PC_EIO;
    int r = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *n = e->d_name;
        if (strncmp(n, prefix, (size_t)pl) != 0 || n[pl] < '0' || n[pl] > '9' || strspn(n + pl, "0123456789") != strlen(n + pl))
            continue;
        char p[4800];
        snprintf(p, sizeof(p), "%s/%s", dir, n);
        if (unlink(p) != 0 && errno != ENOENT)
            r = PC_EIO;
    }
    closedir(d);
    return r;
}

int pc_media_remove(pc_media *m, const char *id, const char *source)
{
    int r = pc_media_clear_outputs(m, id);
    if (source != NULL && unlink(source) != 0 && errno != ENOENT && r == 0)
        r = PC_EIO;
    if (source != NULL && remove_added_files(source) != 0 && r == 0)
        r = PC_EIO;
    return r;
}
