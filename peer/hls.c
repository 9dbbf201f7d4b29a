/*
 * The local HLS endpoint: http://HOST:PORT/v/ID/master.m3u8 for a real player (ffmpeg, mpv, hls.js).
 *
 * Playlists are the origin's, fetched once at start (the master reduced to one variant when
 * --rendition pins one, and without its I-frame playlists). They are not signed, so every URI in them
 * (URI lines and URI="…" attributes)
 * must name something this endpoint serves from the signed manifest: a rendition's playlist, init or
 * segment, relative to the playlist. An absolute URL or anything else would let the player fetch bytes
 * that no hash checks, so such a playlist stops the endpoint from starting. A segment request is
 * answered from the segment store when it holds the verified segment; otherwise it becomes a demand on the engine (pc_engine_demand: due now, at the
 * rendition the player asked for, which also pins the engine's rung to the player's choice) and is
 * answered as soon as the segment is verified, or with 504 after PC_HLS_WAIT_S. Audio requests are
 * served from the audio part of whichever rung's composite segment holds it.
 *
 * Subtitle tracks: each one's playlist is made here at start (one segment, the whole file: the origin's
 * per-segment files are not in the signed manifest); the file itself is fetched from the origin when a
 * player first asks for it, checked against its size and hash, kept, and answered to every request that
 * waited for it. So an unused track costs nothing and none delays the start; a file that does not match
 * (an edge that changed it) is refused with 502, and asked for again at most every SUB_RETRY_S.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "pc_cli.h"
#include "pc_http_server.h"
#include "pc_log.h"

#define PC_HLS_WAIT_S 30
#define PC_HLS_WAITERS_MAX 256
#define PC_HLS_PLAYLIST_MAX (4u << 20)
#define SUB_WAITERS_MAX 16 /* per track: a player asks once; more are other players or retries */
#define SUB_RETRY_S 5      /* a file that failed is fetched again on a request after this long */

enum { SUB_IDLE, SUB_LOADING, SUB_READY, SUB_FAILED };

typedef struct subtrack {
    int state;
    char *body; /* SUB_READY: the checked file */
    size_t len;
    pc_buf buf; /* SUB_LOADING: what came so far (at most the manifest's size) */
    CURL *easy;
    char err[CURL_ERROR_SIZE];
    char why[160]; /* SUB_FAILED: what went wrong, for the answer */
    uint64_t failed_us;
    struct subwait {
        h2o_req_t *req; /* NULL: the player went away (the guard's slot: on the heap, so it never moves) */
        void *guard;
        uint64_t since;
    } *w[SUB_WAITERS_MAX];
    size_t nw;
    client *c;
    size_t k; /* its index in the manifest's list */
} subtrack;

typedef struct waiter {
    h2o_req_t *req;
    void *guard;
    uint32_t rung, seg; /* seg PC_SEG_INIT: an init segment */
    int audio;          /* any rung will do; serve the audio part */
    uint64_t since;
    uint64_t asked;     /* when the engine was last asked for it */
} waiter;

typedef struct playlist {
    char *name; /* "master.m3u8", "v0/index.m3u8", "s0/all.vtt", ... */
    char *body;
    size_t len;
    const char *type; /* its Content-Type */
} playlist;

struct hls {
    pc_http_server *srv;
    playlist *pl;
    size_t npl;
    waiter *w[PC_HLS_WAITERS_MAX];
    size_t nw;
    uv_timer_t timer;
    int timer_open;
    int closed;
    pc_hls_stats st;
    subtrack *sub; /* one per manifest track */
    client *c;
};

int pc_hls_stats_get(const client *c, pc_hls_stats *out)
{
    if (c->hls == NULL)
        return -1;
    *out = c->hls->st;
    out->waiting = (uint32_t)c->hls->nw;
    return 0;
}

static const char M3U8[] = "application/vnd.apple.mpegurl";

static int add_playlist(hls *h, const char *name, char *body, size_t len, const char *type)
{
    playlist *p = realloc(h->pl, (h->npl + 1) * sizeof(*p));
    char *n = strdup(name);
    if (p != NULL)
        h->pl = p;
    if (p == NULL || n == NULL) {
        free(n);
        free(body);
        return PC_ENOMEM;
    }
    h->pl[h->npl++] = (playlist){.name = n, .body = body, .len = len, .type = type};
    return 0;
}

static const playlist *find_playlist(const hls *h, const char *name, size_t nl)
{
    for (size_t i = 0; i < h->npl; i++)
        if (strlen(h->pl[i].name) == nl && memcmp(h->pl[i].name, name, nl) == 0)
            return &h->pl[i];
    return NULL;
}

/* The end of the line at |p| (before |end|): *|ce| where its content ends (at CR or LF, as players split
 * lines), returned where the next line begins (after CR, LF or CRLF). */
static const char *line_end(const char *p, const char *end, const char **ce)
{
    const char *q = p;
    while (q < end && *q != '\n' && *q != '\r')
        q++;
    *ce = q;
    if (q < end && *q == '\r')
        return q + 1 < end && q[1] == '\n' ? q + 2 : q + 1;
    return q < end ? q + 1 : q;
}

/* The master playlist with only the variants whose URI is |keep| (NULL: all), without the I-frame
 * playlists (this endpoint does not serve byte ranges of segments, which is what they are made of; a
 * player plays and seeks without them), and with only the subtitle tracks the signed manifest lists
 * (subtitle_playlists made each one's playlist; a manifest from before subtitles were signed lists none). */
static char *filter_master(const hls *h, const char *body, size_t len, const char *keep, size_t *outlen)
{
    pc_buf out;
    pc_buf_init(&out, len + 1);
    const char *p = body, *end = body + len;
    int skip_next = 0, subs = 0; /* subtitle tracks kept (they come before the variants) */
    while (p < end) {
        const char *ce, *le = line_end(p, end, &ce);
        size_t ll = (size_t)(le - p), cl = (size_t)(ce - p);
        int drop = 0;
        const char *su = cl > 27 && strncmp(p, "#EXT-X-MEDIA:TYPE=SUBTITLES", 27) == 0 ? memmem(p, cl, "URI=\"", 5) : NULL;
        const char *sq = su != NULL ? memchr(su + 5, '"', (size_t)(ce - su - 5)) : NULL;
        if (cl > 27 && strncmp(p, "#EXT-X-MEDIA:TYPE=SUBTITLES", 27) == 0) {
            drop = sq == NULL || find_playlist(h, su + 5, (size_t)(sq - su - 5)) == NULL;
            subs += !drop;
        } else if (cl > 26 && strncmp(p, "#EXT-X-I-FRAME-STREAM-INF:", 26) == 0) {
            drop = 1;
        } else if (skip_next && cl > 0 && p[0] != '#') { /* the variant's URI (blank lines and tags between stay) */
            drop = 1;
            skip_next = 0;
        } else if (keep != NULL && cl > 18 && strncmp(p, "#EXT-X-STREAM-INF:", 18) == 0) {
            /* its URI: the next line that is neither blank nor a tag */
            const char *u = le, *uce = le;
            while (u < end) {
                const char *next = line_end(u, end, &uce);
                if (uce > u && *u != '#')
                    break;
                u = next;
            }
            size_t ul = u < end ? (size_t)(uce - u) : 0;
            if (!(ul == strlen(keep) && strncmp(u, keep, ul) == 0)) {
                drop = 1;
                skip_next = 1;
            }
        }
        /* a variant's SUBTITLES="…" names the group, gone when none of its tracks was kept */
        const char *sa = !drop && subs == 0 && cl > 18 && strncmp(p, "#EXT-X-STREAM-INF:", 18) == 0
                             ? memmem(p, cl, ",SUBTITLES=\"", 12)
                             : NULL;
        const char *sz = sa != NULL ? memchr(sa + 12, '"', (size_t)(ce - sa - 12)) : NULL;
        if (sz != NULL) {
            if (pc_buf_append(&out, p, (size_t)(sa - p)) != 0 || pc_buf_append(&out, sz + 1, (size_t)(le - sz - 1)) != 0)
                break;
        } else if (!drop && pc_buf_append(&out, p, ll) != 0) {
            break;
        }
        p = le;
    }
    return pc_buf_steal(&out, outlen);
}

/* Finds |rest| ("v0/seg-00001.m4s") among the manifest's URLs. */
static int lookup(const client *c, const char *rest, size_t len, int *rend, uint32_t *seg);

/* |uri| in playlist |name| names a playlist, init or segment of the signed manifest. */
static int uri_known(const client *c, const char *name, const char *uri, size_t ul)
{
    if (ul == 0 || ul > 512 || uri[0] == '/')
        return 0;
    for (size_t i = 0; i < ul; i++)
        if (uri[i] == '?' || uri[i] == '#' || uri[i] == '\\' || uri[i] == ':' || (unsigned char)uri[i] < 0x21 ||
            (uri[i] == '.' && i + 1 < ul && uri[i + 1] == '.'))
            return 0;
    const char *slash = strrchr(name, '/');
    size_t dirlen = slash != NULL ? (size_t)(slash - name) + 1 : 0;
    char path[1100];
    if (dirlen + ul >= sizeof(path))
        return 0;
    memcpy(path, name, dirlen);
    memcpy(path + dirlen, uri, ul);
    size_t pl = dirlen + ul;
    path[pl] = '\0';
    const pc_manifest *mf = c->mf;
    for (size_t r = 0; r < mf->nrenditions; r++) {
        size_t il = strlen(mf->renditions[r].id);
        if (pl == il + 11 && strncmp(path, mf->renditions[r].id, il) == 0 && strcmp(path + il, "/index.m3u8") == 0)
            return 1;
    }
    for (size_t k = 0; k < mf->nsubtitles; k++) {
        size_t il = strlen(mf->subtitles[k].id);
        if ((pl == il + 11 && strncmp(path, mf->subtitles[k].id, il) == 0 && strcmp(path + il, "/index.m3u8") == 0) ||
            strcmp(path, mf->subtitles[k].file.url) == 0)
            return 1;
    }
    int rend;
    uint32_t seg;
    return lookup(c, path, pl, &rend, &seg) == 0;
}

/* |bad| gets the URI, shortened, and -1 comes back. */
static int unknown(const char *u, size_t ul, char *bad, size_t badlen)
{
    snprintf(bad, badlen, "%.*s", (int)(ul < 200 ? ul : 200), u);
    return -1;
}

/* The tags the local endpoint relays: the origin's (origin/hls.c) and VOD tags that carry no URI. A
 * player follows URIs in tags we do not know (EXT-X-SESSION-DATA, EXT-X-DATERANGE's X-ASSET-LIST,
 * EXT-X-KEY...), so a playlist with any other #EXT tag is not served. */
static const char *const relayed_tags[] = {
    "#EXTM3U",        "#EXT-X-VERSION",       "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-MEDIA",
    "#EXT-X-STREAM-INF", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE", "#EXT-X-DISCONTINUITY-SEQUENCE",
    "#EXT-X-PLAYLIST-TYPE", "#EXT-X-MAP",       "#EXTINF",                     "#EXT-X-ENDLIST",
};

static int tag_relayed(const char *line, size_t ll)
{
    size_t tl = 0;
    while (tl < ll && line[tl] != ':')
        tl++;
    for (size_t i = 0; i < sizeof(relayed_tags) / sizeof(relayed_tags[0]); i++)
        if (strlen(relayed_tags[i]) == tl && memcmp(relayed_tags[i], line, tl) == 0)
            return 1;
    return 0;
}

/* Every URI in playlist |name| is one uri_known() accepts; else -1 and the first other one (or the line
 * with a tag we do not relay) in |bad|. Lines end at CR or LF, as players split them; in a tag, every
 * value after "URI" and '=' is checked, quoted or not, whatever the attribute's name begins with. */
static int check_uris(const client *c, const char *name, const char *body, size_t len, char *bad, size_t badlen)
{
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *le, *next = line_end(p, end, &le);
        size_t ll = (size_t)(le - p);
        if (ll > 0 && p[0] != '#' && !uri_known(c, name, p, ll))
            return unknown(p, ll, bad, badlen);
        if (ll >= 4 && memcmp(p, "#EXT", 4) == 0 && !tag_relayed(p, ll))
            return unknown(p, ll, bad, badlen);
        for (const char *a = p; ll > 0 && p[0] == '#' && a + 3 <= p + ll; a++) {
            if (memcmp(a, "URI", 3) != 0)
                continue;
            const char *u = a + 3;
            while (u < le && (*u == ' ' || *u == '\t'))
                u++;
            if (u == le || *u != '=')
                continue;
            for (u++; u < le && (*u == ' ' || *u == '\t');)
                u++;
            const char *q;
            if (u < le && *u == '"') {
                u++;
                q = memchr(u, '"', (size_t)(le - u));
            } else {
                q = memchr(u, ',', (size_t)(le - u));
            }
            size_t ul = q != NULL ? (size_t)(q - u) : (size_t)(le - u);
            if (!uri_known(c, name, u, ul))
                return unknown(u, ul, bad, badlen);
            a = u + ul - 1;
        }
        p = next;
    }
    return 0;
}

/* Takes every "?QUERY" of --media-query out of |body|: a signed-media origin puts it on every URI of the
 * playlists it serves, and the local player fetches from the endpoint, which needs none. */
static void strip_query(const char *mq, char *body, size_t *len)
{
    size_t ql = strlen(mq), w = 0;
    if (ql == 0)
        return;
    for (size_t r = 0; r < *len;) {
        if (*len - r >= ql && memcmp(body + r, mq, ql) == 0) {
            r += ql;
            continue;
        }
        body[w++] = body[r++];
    }
    *len = w;
}

/* Each subtitle track of the signed manifest gets its playlist: one segment, the whole file, as long as
 * the video. The file comes when a player asks (serve_subtitle). */
static int subtitle_playlists(client *c, hls *h)
{
    const pc_manifest *mf = c->mf;
    double dur = 0; /* the video's, from its first rendition */
    for (size_t s = 0; mf->nrenditions > 0 && s < mf->renditions[0].nsegments; s++)
        dur += mf->renditions[0].segments[s].duration;
    h->sub = calloc(mf->nsubtitles > 0 ? mf->nsubtitles : 1, sizeof(*h->sub));
    if (h->sub == NULL)
        return PC_ENOMEM;
    for (size_t k = 0; k < mf->nsubtitles; k++) {
        const pc_mf_subtitle *sb = &mf->subtitles[k];
        h->sub[k].c = c;
        h->sub[k].k = k;
        pc_buf pl;
        pc_buf_init(&pl, 4096);
        char name[64];
        snprintf(name, sizeof(name), "%s/index.m3u8", sb->id);
        long target = lround(dur) > 1 ? lround(dur) : 1;
        size_t len = 0;
        char *body;
        if (pc_buf_printf(&pl, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%ld\n#EXT-X-PLAYLIST-TYPE:VOD\n"
                               "#EXTINF:%.6f,\n%s\n#EXT-X-ENDLIST\n",
                          target, dur, sb->file.url + strlen(sb->id) + 1) != 0 ||
            (body = pc_buf_steal(&pl, &len)) == NULL || add_playlist(h, name, body, len, M3U8) != 0) {
            pc_buf_clear(&pl);
            return PC_ENOMEM;
        }
    }
    return 0;
}

static int load_playlists(client *c, hls *h)
{
    char path[PC_VIDEO_ID_MAX + PC_CLIENT_QUERY_MAX + 200], url[PC_CLIENT_URL_MAX + sizeof(path) + 10];
    const pc_manifest *mf = c->mf;
    for (size_t i = 0; i <= mf->nrenditions; i++) {
        char name[128];
        if (i == 0)
            snprintf(name, sizeof(name), "master.m3u8");
        else
            snprintf(name, sizeof(name), "%s/index.m3u8", mf->renditions[i - 1].id);
        snprintf(path, sizeof(path), "v/%s/%s%s", c->cfg->video, name, c->mq);
        pc_buf b;
        pc_buf_init(&b, PC_HLS_PLAYLIST_MAX);
        long status = 0;
        const char *why = NULL;
        int rc = pc_http_get_blocking(c->cfg->origin, path, 10, &b, &status, url, sizeof(url), &why);
        if (rc != 0 || status != 200) {
            pc_cli_error("cannot fetch %s for the HLS endpoint: %s", url,
                    rc != 0 ? (why != NULL ? why : pc_strerror(rc)) : "bad HTTP status");
            pc_buf_clear(&b);
            return -1;
        }
        size_t len = 0;
        char *body;
        /* a signed-media origin's query out first: the master's filter compares URIs with our own names */
        strip_query(c->mq, b.data, &b.len);
        if (i == 0) {
            char keep[128];
            snprintf(keep, sizeof(keep), "%s/index.m3u8", c->cfg->rendition);
            body = filter_master(h, b.data, b.len, strcmp(c->cfg->rendition, "auto") != 0 ? keep : NULL, &len);
            pc_buf_clear(&b);
        } else {
            body = pc_buf_steal(&b, &len);
        }
        if (body == NULL)
            return -1;
        char bad[256];
        if (check_uris(c, name, body, len, bad, sizeof(bad)) != 0) {
            pc_cli_error("%s refers to \"%s\", which the signed manifest does not list (or has a tag the local "
                         "endpoint does not relay)",
                         url, bad);
            free(body);
            return -1;
        }
        if (add_playlist(h, name, body, len, M3U8) != 0)
            return -1;
    }
    return 0;
}

/* ---- answering ---- */

/* An init segment (held for the whole session, and small) is copied; a segment is sent from the store's
 * blob itself, whose reference |b| the answer keeps until it is sent, so players that read slowly share
 * the store's copy instead of holding one each. */
static void respond_part(h2o_req_t *req, const uint8_t *data, pc_blob *b, const pc_part *p)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    /* the origin's types: a media segment (.m4s) is video/iso.segment, audio's too; an init, video/mp4 */
    size_t ul = strlen(p->url);
    const char *type = ul > 4 && strcmp(p->url + ul - 4, ".m4s") == 0 ? "video/iso.segment" : "video/mp4";
    if (b != NULL)
        pc_http_respond_blob(req, 200, type, b, data + p->offset, p->size);
    else
        pc_http_respond(req, 200, type, data + p->offset, p->size);
}

/* Answers not yet read hold copies the store let go as large as the store itself: no segment answer until
 * they drain (503 busy). Each stalled request kept a copy of its own (one at another rendition fetched it
 * again), and 200 of them held 222 MB past --mem-cap 16; the endpoint answers any web page (found by
 * review). */
#define BUSY_MSG "answers not yet read hold as much as --mem-cap: try again"
static int answers_hold_too_much(const client *c)
{
    return pc_store_held_out(c->store) >= c->cfg->mem_cap;
}

/* Serves |w| if what it needs is here; 1 when answered. */
static int try_serve(client *c, h2o_req_t *req, uint32_t rung, uint32_t seg, int audio)
{
    const pc_media *md = &c->pm.m;
    pc_part parts[2];
    for (uint32_t q = 0; q < md->n_rungs; q++) {
        if (!audio && q != rung)
            continue;
        int np = pc_peer_media_parts(&c->pm, q, seg, parts);
        const pc_part *p = &parts[audio && np == 2 ? 1 : 0];
        if (seg == PC_SEG_INIT) {
            if (c->init[q] != NULL) {
                respond_part(req, c->init[q], NULL, p);
                return 1;
            }
            continue;
        }
        pc_blob *b = pc_store_get(c->store, q, seg, pc_peer_media_size(&c->pm, q, seg));
        if (b != NULL) {
            respond_part(req, b->data, b, p);
            return 1;
        }
    }
    return 0;
}

static void waiter_drop(hls *h, size_t i)
{
    uint32_t seg = h->w[i]->seg;
    free(h->w[i]);
    h->w[i] = h->w[--h->nw];
    /* nobody waits for that segment any more (answered, gone, timed out): not one to fetch for a player
     * once it is behind the window (an aborted request on a seek would otherwise take a CDN slot first) */
    for (size_t k = 0; k < h->nw; k++)
        if (h->w[k]->seg == seg)
            return;
    if (seg != PC_SEG_INIT && h->c->e != NULL)
        pc_engine_undemand(h->c->e, seg);
}

/* Answers waiter |i| with an error (unless its player went away) and drops it. */
static void waiter_fail(hls *h, size_t i, int status, const char *code, const char *msg)
{
    if (h->w[i]->req != NULL) {
        if (status == 503 && strcmp(code, "busy") == 0)
            pc_http_add_header(h->w[i]->req, "retry-after", "1");
        pc_http_respond_error(h->w[i]->req, status, code, msg);
        pc_http_req_unguard(h->w[i]->guard);
        if (status == 504)
            h->st.timed_out++;
        else
            h->st.refused++;
    } else {
        h->st.abandoned++;
    }
    waiter_drop(h, i);
}

/* Waiter |i| was answered: counted, and dropped. */
static void waiter_served(hls *h, size_t i, uint64_t now)
{
    uint64_t waited = now - h->w[i]->since;
    h->st.waited++;
    h->st.wait_us += waited;
    if (waited > h->st.wait_max_us)
        h->st.wait_max_us = waited;
    pc_http_req_unguard(h->w[i]->guard);
    waiter_drop(h, i);
}

/* ---- subtitle files ---- */

static const char VTT[] = "text/vtt; charset=utf-8";

/* Answers every request waiting for track |s|: its file, or |status| with |code| and why it could not be
 * had. */
static void sub_answer(subtrack *s, int status, const char *code)
{
    for (size_t i = 0; i < s->nw; i++) {
        if (s->w[i]->req != NULL) {
            if (s->state == SUB_READY)
                pc_http_respond(s->w[i]->req, 200, VTT, s->body, s->len);
            else
                pc_http_respond_error(s->w[i]->req, status, code, s->why);
            pc_http_req_unguard(s->w[i]->guard);
        }
        free(s->w[i]);
    }
    s->nw = 0;
}

static size_t sub_body(char *p, size_t size, size_t n, void *arg)
{
    subtrack *s = arg;
    return pc_buf_append(&s->buf, p, size * n) == 0 ? size * n : 0;
}

static void sub_failed(subtrack *s, const char *why)
{
    const pc_mf_subtitle *sb = &s->c->mf->subtitles[s->k];
    snprintf(s->why, sizeof(s->why), "subtitle track %s: %s", sb->id, why);
    PC_LOGW("hls", "subtitle track %s left out: %s%s %s", sb->id, s->c->base, sb->file.url, why);
    s->state = SUB_FAILED;
    s->failed_us = pc_client_now(s->c);
    pc_buf_clear(&s->buf);
}

/* The origin's answer for track |s|: kept when it is the file the signed manifest describes. */
static void sub_done(void *arg, CURL *easy, CURLcode rc)
{
    subtrack *s = arg;
    const pc_mf_subtitle *sb = &s->c->mf->subtitles[s->k];
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    char why[CURL_ERROR_SIZE + 64];
    uint8_t hash[PC_B2_LEN];
    if (rc == CURLE_WRITE_ERROR)
        snprintf(why, sizeof(why), "larger than the %" PRIu64 " bytes the manifest says", sb->file.size);
    else if (rc != CURLE_OK)
        snprintf(why, sizeof(why), "%s", s->err[0] != '\0' ? s->err : curl_easy_strerror(rc));
    else if (status != 200)
        snprintf(why, sizeof(why), "did not answer 200 (HTTP %ld)", status);
    else if (s->buf.len != sb->file.size || (pc_blake2b256(s->buf.data, s->buf.len, hash),
                                             memcmp(hash, sb->file.blake2b, PC_B2_LEN) != 0))
        snprintf(why, sizeof(why), "does not match the manifest");
    else
        why[0] = '\0';
    curl_easy_cleanup(s->easy);
    s->easy = NULL;
    if (why[0] == '\0' && (s->body = pc_buf_steal(&s->buf, &s->len)) != NULL)
        s->state = SUB_READY;
    else
        sub_failed(s, why[0] != '\0' ? why : "out of memory");
    sub_answer(s, 502, "subtitles_unavailable");
}

static int sub_fetch(client *c, subtrack *s)
{
    const pc_mf_subtitle *sb = &c->mf->subtitles[s->k];
    char url[sizeof(c->base) + PC_MANIFEST_MAX_URL + sizeof(c->mq)];
    if ((size_t)snprintf(url, sizeof(url), "%s%s%s", c->base, sb->file.url, c->mq) >= sizeof(url))
        return PC_ETOOBIG;
    s->easy = pc_curl_easy_new();
    if (s->easy == NULL)
        return PC_ENOMEM;
    pc_buf_init(&s->buf, sb->file.size > 0 ? sb->file.size : 1);
    s->err[0] = '\0';
    pc_cdn_easy_defaults(s->easy);
    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, sub_body);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->err);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, (long)PC_HLS_WAIT_S); /* a trickle would keep it loading for good */
    if (pc_http_client_add(c->http, s->easy, sub_done, s) != 0) {
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
        return PC_ENET;
    }
    s->state = SUB_LOADING;
    return 0;
}

/* A request for track |k|'s file: answered now when it is here (or failed a moment ago), else when the
 * fetch it starts or joins ends. */
static void serve_subtitle(client *c, hls *h, size_t k, h2o_req_t *req, uint64_t now)
{
    subtrack *s = &h->sub[k];
    if (s->state == SUB_READY) {
        pc_http_respond(req, 200, VTT, s->body, s->len);
        return;
    }
    if (s->state == SUB_FAILED && now - s->failed_us < (uint64_t)SUB_RETRY_S * 1000000) {
        pc_http_respond_error(req, 502, "subtitles_unavailable", s->why);
        return;
    }
    if (c->stopping) {
        pc_http_respond_error(req, 503, "stopping", "the peer is shutting down");
        return;
    }
    if (s->nw == SUB_WAITERS_MAX) {
        pc_http_respond_error(req, 503, "busy", "too many requests are waiting for this subtitle track");
        return;
    }
    if (s->state != SUB_LOADING) {
        int rc = sub_fetch(c, s);
        if (rc != 0) {
            sub_failed(s, pc_strerror(rc));
            pc_http_respond_error(req, 502, "subtitles_unavailable", s->why);
            return;
        }
    }
    struct subwait *w = calloc(1, sizeof(*w));
    if (w == NULL || pc_http_req_guard(req, &w->req, &w->guard) != 0) {
        free(w);
        pc_http_respond_error(req, 503, "out_of_memory", "out of memory");
        return;
    }
    w->since = now;
    s->w[s->nw++] = w;
}

/* The timer's look at requests waiting for subtitle files: the player went away, or it took too long
 * (the fetch goes on: a later request gets it). */
static void sub_sweep(hls *h, uint64_t now)
{
    for (size_t k = 0; k < h->c->mf->nsubtitles; k++) {
        subtrack *s = &h->sub[k];
        for (size_t i = 0; i < s->nw;) {
            struct subwait *w = s->w[i];
            if (w->req != NULL && pc_http_req_client_gone(w->req)) {
                pc_http_respond_error(w->req, 503, "client_gone", "the player closed the connection");
                pc_http_req_unguard(w->guard);
                w->req = NULL;
            } else if (w->req != NULL && now - w->since >= (uint64_t)PC_HLS_WAIT_S * 1000000) {
                pc_http_respond_error(w->req, 504, "timed_out", "the subtitle file did not arrive in time");
                pc_http_req_unguard(w->guard);
                w->req = NULL;
            }
            if (w->req == NULL) {
                free(w);
                s->w[i] = s->w[--s->nw];
            } else {
                i++;
            }
        }
    }
}

/* |seg| of |rung| (or, for audio, any rung's) cannot be kept by the store: larger than all of it. */
static int too_large(const client *c, uint32_t rung, uint32_t seg)
{
    return seg != PC_SEG_INIT && pc_peer_media_size(&c->pm, rung, seg) > c->cfg->mem_cap;
}

void pc_hls_on_unkept(client *c, uint32_t rung, uint32_t seg)
{
    hls *h = c->hls;
    for (size_t i = 0; h != NULL && i < h->nw;) {
        waiter *w = h->w[i];
        if (w->req != NULL && w->seg == seg && (w->audio || w->rung == rung))
            waiter_fail(h, i, 503, "too_large", "the segment is larger than the whole store; raise --mem-cap");
        else
            i++;
    }
}

void pc_hls_on_ready(client *c, uint32_t rung, uint32_t seg)
{
    hls *h = c->hls;
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->nw;) {
        waiter *w = h->w[i];
        if (w->req == NULL) { /* the player went away */
            h->st.abandoned++;
            waiter_drop(h, i);
            continue;
        }
        if (w->seg == seg && (w->audio || w->rung == rung) && seg != PC_SEG_INIT && answers_hold_too_much(c)) {
            waiter_fail(h, i, 503, "busy", BUSY_MSG);
            continue;
        }
        if (w->seg == seg && (w->audio || w->rung == rung) && try_serve(c, w->req, w->rung, w->seg, w->audio)) {
            waiter_served(h, i, pc_client_now(c));
            continue;
        }
        i++;
    }
}

/* The rung whose copy of segment |seg| serves waiter |w|: its own, or for audio (part of every rung's
 * composite) the copy coming or held, else the ABR's. */
static uint32_t wanted_rung(client *c, const waiter *w, const pc_segment_info *si)
{
    if (!w->audio)
        return w->rung;
    if (si->ready || si->inflight)
        return si->rung;
    pc_engine_stats st;
    pc_engine_get_stats(c->e, pc_client_now(c), &st);
    return st.rung;
}

/* The engine holds the copy of waiter |w|'s segment that would serve it (for audio, the rung it came at),
 * and it is larger than the whole store: it never reaches the store. Audio was left out (its waiter's
 * rung is 0, not the copy's), so an audio request for such a segment waited 30 s for a 504 where the
 * video's got 503 at once (found by review). */
static int held_too_large(client *c, const waiter *w)
{
    if (w->seg == PC_SEG_INIT)
        return 0;
    pc_segment_info si;
    pc_engine_segment(c->e, w->seg, &si);
    uint32_t want = wanted_rung(c, w, &si);
    return too_large(c, want, w->seg) && pc_engine_holds(c->e, want, w->seg);
}

/* Asks for the init segment waiter |w| needs: its rendition's, or for audio (in every rung's composite
 * init) the ABR's rung's, unless one is here. */
static void demand_init(client *c, const waiter *w)
{
    if (c->cfg->seed_mode)
        return;
    for (uint32_t q = 0; w->audio && q < c->pm.m.n_rungs; q++)
        if (c->init[q] != NULL)
            return;
    pc_engine_stats st;
    pc_engine_get_stats(c->e, pc_client_now(c), &st);
    pc_engine_demand_init(c->e, w->audio ? st.rung : w->rung, pc_client_now(c));
}

static int by_segment(const void *a, const void *b)
{
    const waiter *x = *(waiter *const *)a, *y = *(waiter *const *)b;
    return x->seg < y->seg ? -1 : x->seg > y->seg;
}

/* Asks the engine again for what waiters still need and nothing is fetching: a later request (another
 * player, one asking out of order, or at another rendition) moves the engine on, and a seek or a
 * rendition change drops copies other waiters were waiting for. Lowest segment first, so that a seek
 * this causes keeps the rest; a copy on its way at another rendition is waited for, not dropped. A
 * copy the engine holds but the store let go is fetched again; an init segment is asked for whatever
 * the model's state (once it has played to the end it starts nothing of its own). */
static void ask_again(client *c, hls *h, uint64_t now)
{
    waiter *order[PC_HLS_WAITERS_MAX];
    size_t n = 0;
    int asked = 0;
    for (size_t i = 0; i < h->nw; i++) {
        waiter *w = h->w[i];
        if (w->req != NULL && w->seg == PC_SEG_INIT) { /* (an init is fetched again if its fetch failed) */
            demand_init(c, w);
            asked = 1;
        } else if (w->req != NULL) {
            order[n++] = w;
        }
    }
    qsort(order, n, sizeof(order[0]), by_segment);
    for (size_t k = 0; k < n; k++) {
        waiter *w = order[k];
        pc_segment_info si;
        pc_engine_segment(c->e, w->seg, &si);
        uint32_t want = wanted_rung(c, w, &si);
        if (pc_engine_holds(c->e, want, w->seg)) {
            if (now - w->since < 1000000 || too_large(c, want, w->seg))
                continue; /* a copy verified this loop turn reaches the store on the next; one larger than the
                           * store would only be fetched again and again (the timer refuses it) */
            /* the timer found it neither in memory nor on disk: the store let it go (over --mem-cap), so it
             * is fetched again (it was refused with 503 for good, however often the player asked) */
            pc_engine_forget(c->e, want, w->seg);
        }
        if (si.inflight || now - w->asked < 2000000)
            continue;
        w->asked = now;
        pc_engine_demand(c->e, want, w->seg, now);
        asked = 1;
    }
    /* the fetches those demands start are carried out by the client's drive loop: without this they
     * waited in the engine for its next timer, up to the end of the model's playback (17 s, once a
     * segment was the last one waited for) */
    if (asked)
        pc_client_kick(c);
}

/* Once a second: waiters whose player closed its connection (h2o does not notice for HTTP/1: a player
 * aborting a request, as hls.js does on every seek) are dropped as abandoned; the rest time out after
 * PC_HLS_WAIT_S. */
static void on_hls_timer(uv_timer_t *t)
{
    client *c = t->data;
    hls *h = c->hls;
    uint64_t now = pc_client_now(c);
    /* the engine's pending actions first: a copy verified just now reaches the store before the look below
     * could take it for one the store let go (and forget it) */
    pc_client_settle(c);
    if (c->hls != h || h->closed)
        return;
    /* what is here after all (a copy verified as its request came in, one read back from --cache-dir); a
     * segment larger than the whole store is refused */
    for (size_t i = 0; i < h->nw;) {
        waiter *w = h->w[i];
        if (w->req != NULL && now - w->since >= 1000000 && w->seg != PC_SEG_INIT && answers_hold_too_much(c))
            waiter_fail(h, i, 503, "busy", BUSY_MSG);
        else if (w->req != NULL && now - w->since >= 1000000 && try_serve(c, w->req, w->rung, w->seg, w->audio))
            waiter_served(h, i, now);
        else if (w->req != NULL && now - w->since >= 1000000 && held_too_large(c, w))
            waiter_fail(h, i, 503, "too_large", "the segment is larger than the whole store; raise --mem-cap");
        else
            i++;
    }
    if (!c->cfg->seed_mode)
        ask_again(c, h, now);
    sub_sweep(h, now);
    for (size_t i = 0; i < h->nw;) {
        waiter *w = h->w[i];
        if (w->req != NULL && pc_http_req_client_gone(w->req)) {
            /* the answer goes nowhere; writing it lets h2o find the connection closed and free the request */
            pc_http_respond_error(w->req, 503, "client_gone", "the player closed the connection");
            pc_http_req_unguard(w->guard);
            w->req = NULL;
        }
        /* a seeder does not fetch again what its store let go (over --mem-cap): told at once (the loop
         * above found it nowhere), not after 30 s */
        if (w->req != NULL && c->cfg->seed_mode && c->seeding && now - w->since >= 1000000)
            waiter_fail(h, i, 503, "evicted", "the segment left the seeder's store; raise --mem-cap or use --cache-dir");
        else if (w->req == NULL || now - w->since >= (uint64_t)PC_HLS_WAIT_S * 1000000)
            waiter_fail(h, i, 504, "timed_out", "the segment did not arrive in time");
        else
            i++;
    }
}

static int lookup(const client *c, const char *rest, size_t len, int *rend, uint32_t *seg)
{
    const pc_manifest *mf = c->mf;
    for (size_t r = 0; r < mf->nrenditions; r++) {
        const pc_mf_rendition *x = &mf->renditions[r];
        size_t il = strlen(x->id);
        if (len <= il || strncmp(rest, x->id, il) != 0 || rest[il] != '/')
            continue;
        if (strlen(x->init.url) == len && memcmp(x->init.url, rest, len) == 0) {
            *rend = (int)r;
            *seg = PC_SEG_INIT;
            return 0;
        }
        for (size_t i = 0; i < x->nsegments; i++)
            if (strlen(x->segments[i].url) == len && memcmp(x->segments[i].url, rest, len) == 0) {
                *rend = (int)r;
                *seg = (uint32_t)i;
                return 0;
            }
    }
    return -1;
}

static int on_request(void *user, h2o_req_t *req)
{
    client *c = user;
    hls *h = c->hls;
    /* a player on a web page asks first when it sends a header of its own (Range), or when the page is on
     * a public site and the endpoint on loopback (Chrome's Private Network Access) */
    if (pc_http_get_only(req, "Range", "the HLS endpoint answers GET and HEAD"))
        return 0;
    size_t plen = req->path_normalized.len;
    const char *path = req->path_normalized.base;
    size_t vl = strlen(c->cfg->video);
    if (plen < 4 + vl + 1 || memcmp(path + 3, c->cfg->video, vl) != 0 || path[3 + vl] != '/') {
        pc_http_respond_error(req, 404, "not_found", "this peer plays another video");
        return 0;
    }
    const char *rest = path + 4 + vl;
    size_t rl = plen - 4 - vl;
    uint64_t now = pc_client_now(c);
    c->last_hls_us = now;
    for (size_t k = 0; k < c->mf->nsubtitles; k++)
        if (strlen(c->mf->subtitles[k].file.url) == rl && memcmp(c->mf->subtitles[k].file.url, rest, rl) == 0) {
            serve_subtitle(c, h, k, req, now);
            return 0;
        }
    const playlist *pl = find_playlist(h, rest, rl);
    if (pl != NULL) {
        pc_http_respond(req, 200, pl->type, pl->body, pl->len);
        return 0;
    }
    int rend;
    uint32_t seg;
    if (lookup(c, rest, rl, &rend, &seg) != 0) {
        pc_http_respond_error(req, 404, "not_found", "no such playlist or segment");
        return 0;
    }
    int audio = c->mf->renditions[rend].audio;
    int q = audio ? (rend == c->pm.audio ? 0 : -1) : pc_peer_media_rung(&c->pm, c->mf->renditions[rend].id);
    if (q < 0 || (seg != PC_SEG_INIT && seg >= c->pm.m.n_segments)) {
        pc_http_respond_error(req, 404, "not_found", "no such rendition");
        return 0;
    }
    h->st.requests++;
    if (seg != PC_SEG_INIT && answers_hold_too_much(c)) {
        h->st.refused++;
        pc_http_add_header(req, "retry-after", "1");
        pc_http_respond_error(req, 503, "busy", BUSY_MSG);
        return 0;
    }
    if (try_serve(c, req, (uint32_t)q, seg, audio)) {
        h->st.at_once++;
        return 0;
    }
    if (c->stopping) {
        h->st.refused++;
        pc_http_respond_error(req, 503, "stopping", "the peer is shutting down");
        return 0;
    }
    if (h->nw == PC_HLS_WAITERS_MAX) {
        /* the oldest waiter gives way: h2o does not tell a handler when an HTTP/1 client closes, and the timer
         * looks only once a second, so players that just went away (hls.js aborts on every seek) would
         * otherwise keep the slots */
        size_t old = 0;
        for (size_t i = 1; i < h->nw; i++)
            if (h->w[i]->since < h->w[old]->since)
                old = i;
        waiter_fail(h, old, 503, "busy", "too many segment requests are waiting");
    }
    waiter *w = calloc(1, sizeof(*w));
    if (w == NULL || pc_http_req_guard(req, &w->req, &w->guard) != 0) {
        free(w);
        h->st.refused++;
        pc_http_respond_error(req, 503, "out_of_memory", "out of memory");
        return 0;
    }
    *w = (waiter){.req = req, .guard = w->guard, .rung = (uint32_t)q, .seg = seg, .audio = audio, .since = now};
    h->w[h->nw++] = w;
    /* make it the engine's business: the player's rendition choice rules, and the segment is due now */
    pc_engine_stats st;
    pc_engine_get_stats(c->e, pc_client_now(c), &st);
    if (!audio && strcmp(c->cfg->rendition, "auto") == 0 && st.rung != (uint32_t)q)
        pc_engine_pin_rung(c->e, q, now);
    if (seg != PC_SEG_INIT) {
        pc_segment_info si;
        pc_engine_segment(c->e, seg, &si);
        uint32_t want = wanted_rung(c, w, &si);
        /* held but not in the store: verified this loop turn, it reaches the store on the next (READY);
         * or the store let it go (over --mem-cap), which the timer finds and asks for again (ask_again) */
        if (!pc_engine_holds(c->e, want, seg)) {
            w->asked = now;
            pc_engine_demand(c->e, want, seg, now);
        }
    } else {
        /* the pin above has the engine fetch a new rendition's init, but not once its model has played to
         * the end (a player that attached late, or switched after a pause, waited for a 504 then) */
        demand_init(c, w);
    }
    pc_client_kick(c);
    return 0;
}

int pc_hls_start(client *c, const char *hostport, char *bound, size_t boundlen)
{
    hls *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return PC_ENOMEM;
    c->hls = h;
    h->c = c;
    int lr = subtitle_playlists(c, h);
    if (lr != 0)
        return lr;
    if (load_playlists(c, h) != 0)
        return PC_ENET;
    h->srv = pc_http_server_new(&c->loop, NULL);
    if (h->srv == NULL)
        return PC_ENOMEM;
    int rc = pc_http_server_route(h->srv, "/v/", on_request, c);
    if (rc == 0)
        rc = pc_http_server_listen(h->srv, hostport, bound, boundlen);
    if (rc != 0) {
        pc_cli_error("cannot listen on %s for HLS: %s", hostport,
                *pc_err_detail() != '\0' ? pc_err_detail() : pc_strerror(rc));
        return rc;
    }
    uv_timer_init(&c->loop, &h->timer);
    h->timer.data = c;
    h->timer_open = 1;
    uv_timer_start(&h->timer, on_hls_timer, 1000, 1000);
    return 0;
}

static void on_closed(void *arg)
{
    (void)arg;
}

void pc_hls_stop(client *c)
{
    hls *h = c->hls;
    if (h == NULL || h->closed)
        return;
    h->closed = 1;
    while (h->nw > 0)
        waiter_fail(h, h->nw - 1, 503, "stopping", "the peer is shutting down");
    for (size_t k = 0; h->sub != NULL && k < c->mf->nsubtitles; k++) {
        subtrack *s = &h->sub[k];
        if (s->easy != NULL) {
            pc_http_client_cancel(c->http, s->easy);
            curl_easy_cleanup(s->easy);
            s->easy = NULL;
        }
        snprintf(s->why, sizeof(s->why), "the peer is shutting down");
        if (s->state == SUB_LOADING) {
            s->state = SUB_FAILED;
            pc_buf_clear(&s->buf);
        }
        sub_answer(s, 503, "stopping");
    }
    if (h->timer_open)
        uv_close((uv_handle_t *)&h->timer, NULL);
    if (h->srv != NULL)
        pc_http_server_close(h->srv, on_closed, NULL);
}

void pc_hls_free(client *c)
{
    hls *h = c->hls;
    if (h == NULL)
        return;
    pc_http_server_free(h->srv);
    for (size_t i = 0; i < h->npl; i++) {
        free(h->pl[i].name);
        free(h->pl[i].body);
    }
    free(h->pl);
    for (size_t k = 0; h->sub != NULL && k < c->mf->nsubtitles; k++) {
        for (size_t i = 0; i < h->sub[k].nw; i++) /* (pc_hls_stop answered them all) */
            free(h->sub[k].w[i]);
        free(h->sub[k].body);
        pc_buf_clear(&h->sub[k].buf);
        if (h->sub[k].easy != NULL) /* (pc_hls_stop canceled every fetch while the HTTP client was there) */
            curl_easy_cleanup(h->sub[k].easy);
    }
    free(h->sub);
    free(h);
    c->hls = NULL;
}
