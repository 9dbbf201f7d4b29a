/*
 * CDN fetches: one composite segment (media.h) is one or two HTTP GETs on the shared libcurl multi
 * (keep-alive connections are pooled by the multi handle), from the offset the engine asks for: a part
 * started in the middle is a Range request. Bytes go straight into the segment's assembly buffer, but
 * only once the answer's status is the one asked for (200 for a whole part, 206 with the very
 * Content-Range asked for): an error page, or a whole file where a range was asked, would otherwise be
 * kept as the segment's bytes and resumed after. Lengths are checked against the signed sizes, so an
 * origin that sends more or less is a failure, not a buffer overrun. Under a download cap (the token
 * bucket shared with the peer links) a part is fetched in Range requests of CDN_CAP_CHUNK bytes, each
 * started only while the bucket is not in debt, so no burst exceeds a chunk per transfer. (Pausing inside the write callback would be
 * finer, but libcurl 7.88's multi_socket API drops a paused transfer's socket for good.) The CDN waits
 * for any credit where peer links wait for 16 KiB, so the CDN, which the engine uses for what is
 * urgent, goes first.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_internal.h"
#include "pc_log.h"

/* The value of header |name| ("content-range:") in header line |p| of |len| bytes, NUL-terminated in
 * |out|; 0 when the line is another header. */
static int header_value(const char *p, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    if (len <= nl || len - nl >= outlen || strncasecmp(p, name, nl) != 0)
        return 0;
    memcpy(out, p + nl, len - nl);
    out[len - nl] = '\0';
    return 1;
}

/* Content-Range, Content-Length and Content-Encoding of the answer; other headers are ignored. */
static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    dl *d = arg;
    size_t len = sz * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new answer (after a redirect): only its own count */
        d->cr_first = d->cr_last = d->cr_total = d->clen = UINT64_MAX;
        d->encoded = 0;
    }
    char line[256];
    unsigned long long a, b, t;
    char unit[8];
    if (header_value(p, len, "content-range:", line, sizeof(line))) {
        int got = sscanf(line, " %7[a-z] %llu-%llu/%llu", unit, &a, &b, &t); /* 3: a total of "*" */
        if (got >= 3 && strcmp(unit, "bytes") == 0 && a <= b) {
            d->cr_first = a;
            d->cr_last = b;
            d->cr_total = got == 4 ? t : UINT64_MAX;
        }
    } else if (header_value(p, len, "content-length:", line, sizeof(line))) {
        if (sscanf(line, " %llu", &a) == 1)
            d->clen = a;
    } else if (header_value(p, len, "content-encoding:", line, sizeof(line))) {
        char *v = line + strspn(line, " \t");
        v[strcspn(v, " \t\r\n")] = '\0';
        d->encoded = *v != '\0' && strcasecmp(v, "identity") != 0;
    }
    return len;
}

/* The answer is what was asked for: checked before its first byte is kept. Its status and range, and its
 * length and encoding when it gives them: a CDN's "soft 404" (an error page sent as 200) or a gzipped
 * body was kept, counted, resumed from by a peer, and failed its hash, which banned the honest peer
 * that sent the rest (found by review). A ranged request answered with the whole file (RFC 9110 lets a
 * server ignore Range) is taken, its first bytes passed over: refused, one cut connection made a
 * segment unrecoverable, and a download cap (which fetches in ranges) made every fetch fail. */
static int answer_ok(dl *d)
{
    long status = 0;
    curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &status);
    if (d->encoded)
        return 0;
    uint64_t want = (uint64_t)(d->part_end - (d->offset + d->got));
    if (status == 200 && d->ranged && d->clen == d->part_size) {
        d->skip = d->range_first;
        d->part_end = d->part_end - (uint32_t)(d->range_last + 1) + d->part_size; /* to the part's end */
        d->ranged = 0;
        return 1;
    }
    if (d->clen != UINT64_MAX && d->clen != want)
        return 0;
    if (!d->ranged)
        return status == 200;
    return status == 206 && d->cr_first == d->range_first && d->cr_last == d->range_last &&
           (d->cr_total == UINT64_MAX || d->cr_total == d->part_size);
}

static size_t on_body_bytes(dl *d, char *p, size_t bytes);

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    dl *d = arg;
    size_t bytes = sz * n;
    if (!d->checked) {
        if (!answer_ok(d))
            return 0; /* an error page or another range: nothing of it is kept */
        d->checked = 1;
    }
    if (d->skip > 0) { /* the whole file for a range: what comes before the range */
        size_t s = d->skip < bytes ? (size_t)d->skip : bytes;
        d->skip -= s;
        /* received all the same: the report's and the tracker's bytes_cdn count every byte the CDN
         * sent, and the download cap pays for them (they were left out, so a resume answered with
         * the whole file looked cheaper than it was) */
        pc_client_cdn_passed_over(d->c, (uint32_t)s);
        if (s == bytes)
            return bytes;
        p += s;
        bytes -= s;
        size_t r = on_body_bytes(d, p, bytes);
        return r == bytes ? r + s : 0;
    }
    return on_body_bytes(d, p, bytes);
}

static size_t on_body_bytes(dl *d, char *p, size_t bytes)
{
    uint32_t pos = d->offset + d->got;
    if (bytes > (size_t)(d->part_end - pos) || d->buf->rung != d->rung)
        return 0; /* more than the signed size: abort the transfer */
    memcpy(d->buf->buf + pos, p, bytes);
    pc_client_cdn_bytes(d->c, d, (uint32_t)bytes);
    return bytes;
}

#define CDN_CAP_CHUNK 65536

static void on_part_done(void *arg, CURL *easy, CURLcode rc);

void pc_cdn_easy_defaults(CURL *e)
{
    pc_curl_easy_base(e); /* (again after a reset) */
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 5L);
    /* a stuck or trickling answer: under 1 KiB/s for 10 s fails it (and the engine goes elsewhere). At
     * 1 byte/s, an edge sending 2 bytes a second held a segment for good (found by review); a download
     * cap paces the CDN between Range requests, each of which runs at the link's speed */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 10L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* as the start-up's fetches do: a CDN may send a file elsewhere (a signed edge URL, another host) */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
}

static int start_part(client *c, dl *d)
{
    pc_part parts[2];
    int np = pc_peer_media_parts(&c->pm, d->rung, d->seg, parts);
    uint32_t pos = d->offset + d->got;
    int k = 0;
    while (k + 1 < np && pos >= parts[k].offset + parts[k].size)
        k++;
    const pc_part *p = &parts[k];
    d->part_end = p->offset + p->size;
    if (c->id.down != NULL && d->part_end - pos > CDN_CAP_CHUNK)
        d->part_end = pos + CDN_CAP_CHUNK;
    d->part_start = pos;
    d->part_size = p->size;
    d->skip = 0;
    char url[sizeof(c->base) + PC_MANIFEST_MAX_URL + sizeof(c->mq)];
    if ((size_t)snprintf(url, sizeof(url), "%s%s%s", c->base, p->url, c->mq) >= sizeof(url))
        return PC_ETOOBIG;
    if (d->easy == NULL) {
        d->easy = pc_curl_easy_new();
        if (d->easy == NULL)
            return PC_ENOMEM;
    } else {
        curl_easy_reset(d->easy);
    }
    curl_slist_free_all(d->headers);
    d->headers = NULL;
    d->ranged = pos > p->offset || d->part_end < p->offset + p->size;
    if (d->ranged) {
        char range[96];
        d->range_first = pos - p->offset;
        d->range_last = d->part_end - p->offset - 1;
        snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, d->range_first, d->range_last);
        d->headers = curl_slist_append(NULL, range);
        if (d->headers == NULL)
            return PC_ENOMEM;
        curl_easy_setopt(d->easy, CURLOPT_HTTPHEADER, d->headers);
    }
    d->err[0] = '\0';
    d->checked = 0;
    d->cr_first = d->cr_last = d->cr_total = d->clen = UINT64_MAX;
    d->encoded = 0;
    pc_cdn_easy_defaults(d->easy);
    curl_easy_setopt(d->easy, CURLOPT_URL, url);
    curl_easy_setopt(d->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(d->easy, CURLOPT_HEADERDATA, d);
    curl_easy_setopt(d->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(d->easy, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(d->easy, CURLOPT_ERRORBUFFER, d->err);
    if (d->buf == NULL || d->buf->buf == NULL) /* the caller's: the segment's assembly buffer, or a seed fetch's own */
        return PC_ENOMEM;
    return pc_http_client_add(c->http, d->easy, on_part_done, d) == 0 ? 0 : PC_ENET;
}

static void on_part_done(void *arg, CURL *easy, CURLcode rc)
{
    dl *d = arg;
    client *c = d->c;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    uint32_t pos = d->offset + d->got;
    int ok = rc == CURLE_OK && (d->ranged ? status == 206 : status == 200) && pos == d->part_end;
    if (!ok) {
        /* an answer refused by on_body (an error page, another range) fails as a write error: say what it was */
        int refused = rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && !d->checked);
        const char *why = refused ? "an answer that is not the bytes asked for"
                                  : d->err[0] != '\0' ? d->err : curl_easy_strerror(rc);
        snprintf(c->last_cdn_error, sizeof(c->last_cdn_error), "segment %d of rung %u: %.100s (HTTP %ld)",
                 d->seg == PC_SEG_INIT ? -1 : (int)d->seg, d->rung, why, status);
        PC_LOGW("cdn", "segment %d of rung %u: %s (HTTP %ld, %u of %u bytes)", d->seg == PC_SEG_INIT ? -1 : (int)d->seg,
                d->rung, why, status, pos - d->part_start, d->part_end - d->part_start);
        if (status == 403 && !c->said_403) { /* a signed media URL that expired mid-session, say */
            c->said_403 = 1;
            PC_LOGE("cdn", "the origin refuses this video's media URLs (HTTP 403): %s; peers still serve what they hold",
                    c->mq[0] == '\0'                    ? "it needs --media-query"
                    : c->cfg->media_query_file != NULL ? "the query in --media-query-file has expired or is not for this video"
                                                       : "--media-query has expired or is not for this video");
        }
        /* an answer taken that then ended short, or ran past the signed size: its bytes are not the
         * segment's (a body without a Content-Length), dropped rather than resumed from (PC_EPARSE) */
        int junk = d->checked && (rc == CURLE_OK || rc == CURLE_WRITE_ERROR);
        pc_client_cdn_done(c, d, junk ? PC_EPARSE : status != 0 && refused ? PC_EHTTP : PC_ENET);
        return;
    }
    if (pos < d->offset + d->len) {
        int err = pc_cdn_next(c, d);
        if (err != 0)
            pc_client_cdn_done(c, d, err);
        return;
    }
    pc_client_cdn_done(c, d, 0);
}

int pc_cdn_next(client *c, dl *d)
{
    if (c->id.down != NULL) {
        uint64_t wait = pc_tbucket_wait(&c->downb, 1, pc_client_now(c));
        if (wait > 0) {
            pc_client_cdn_pause(c, d, wait);
            return 0;
        }
    }
    return start_part(c, d);
}

int pc_cdn_start(client *c, dl *d)
{
    d->c = c;
    return pc_cdn_next(c, d);
}

void pc_cdn_cancel(client *c, dl *d)
{
    if (d->easy != NULL) {
        pc_http_client_cancel(c->http, d->easy);
        curl_easy_cleanup(d->easy);
        d->easy = NULL;
    }
    curl_slist_free_all(d->headers);
    d->headers = NULL;
}
