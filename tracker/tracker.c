/*
 * peercdn-tracker serve: HTTP routes, timers and persistence around the
 * pure registry (registry.h) and selection (select.h); see tracker.h.
 */
#include "tracker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admit.h"
#include "announce.h"
#include "auth.h"
#include "distrust.h"
#include "locality.h"
#include "pc_cli.h"
#include "pc_buf.h"
#include "pc_crypto.h"
#include "pc_fs.h"
#include "pc_http_server.h"
#include "pc_json.h"
#include "pc_log.h"
#include "pc_num.h"
#include "pc_rng.h"
#include "pc_sqlite.h"
#include "ratelimit.h"
#include "registry.h"
#include "report.h"
#include "select.h"
#include "store.h"

#define SERVE_BUSY_WAIT_MS 50 /* see pc_tstore_busy_wait */
#define STATS_SLOW_US 50000  /* see respond_cached */
#define DOC_COPIES_MAX 4     /* /stats and /metrics documents alive at once, kept or still being sent */
#define DOC_MAX (1024u << 20) /* /stats of the largest catalog (--max-videos) fits */
#define RESPONSE_MAX (64 * 1024)
#define SAVE_EVERY_MS 10000
#define SWEEP_EVERY_MS 250
#define HISTORY_ROWS_MAX 10000 /* rows in one page of /stats?history=1 (named in a message below) */
#define HISTORY_BODY_MAX (16u << 20) /* such a page: about 250 bytes a row */
#define HISTORY_INFLIGHT_MAX 8       /* pages being sent at once (a client that does not read holds one) */
#define HISTORY_PAGES_PER_S 20       /* pages built a second: one of 10 000 rows takes the loop ~20 ms */
#define METRICS_TOP_VIDEOS 100

/* A document every request may ask for (/stats, /metrics), kept to answer more requests (respond_cached). */
typedef struct doc_cache {
    void *body; /* h2o_mem_alloc_shared; NULL before the first request */
    size_t len;
    uint64_t gen, built_us, cost_us;
    int64_t time_s;
    pc_tmetrics m; /* the tracker's counters when it was built */
} doc_cache;

typedef struct pc_tracker {
    pc_tracker_config cfg;
    uv_loop_t *loop;
    pc_http_server *http;
    pc_tstore *store;
    pc_registry *reg;
    pc_auth *auth;
    pc_buf out; /* announce responses */
    pc_ratelimit *rl;
    pc_locality *loc;
    pc_admit *admit; /* --origin: new videos only once the origin publishes them */
    pc_distrust *distrust; /* NULL with --distrust-reports 0 */
    pc_rng rng;
    pc_tmetrics m;
    uint8_t pk[PC_ED25519_PK_LEN], sk[PC_ED25519_SK_LEN];
    char pk_b64[48];
    uint8_t media_key[PC_MEDIA_KEY_LEN]; /* --media-key */
    char media_key_id[17];               /* "" without --media-key */
    uv_timer_t sweep, save, history;
    uv_signal_t sigint, sigterm, sighup; /* SIGHUP (the terminal went away) stops it as SIGTERM does */
    int stopping, lock_fd;
    doc_cache stats, metrics;
} pc_tracker;

static uint64_t now_us(void)
{
    return uv_hrtime() / 1000;
}

/* ---- announce ---- */

static void reject(pc_tracker *t, h2o_req_t *req, int status, const char *code, const char *message)
{
    t->m.rejects[pc_reject_of(code)]++;
    pc_http_respond_error(req, status, code, message);
}

/* A periodic announce from a peer not listed: it expired (silent for two intervals) or was lost in a crash.
 * Taken as a baseline, what it had received meanwhile went uncounted, and a viewer whose start-up came in
 * that gap was never counted (found by review). Its peer knows what this tracker may have taken: it starts
 * again with a proof under a new peer id and counts from there (docs/protocol.md, "Counters"). */
static void reject_unlisted(pc_tracker *t, h2o_req_t *req)
{
    reject(t, req, 403, "unknown_peer", "this peer is not listed (silent for two intervals, or lost in a restart): "
                                        "announce 'started' again with a proof");
}

static void pin_region(void *reg, const char *name)
{
    pc_registry_pin_region(reg, name);
}

static void addr_of(h2o_req_t *req, uint8_t out[16])
{
    struct sockaddr_storage ss;
    memset(out, 0, 16);
    if (pc_http_req_peer(req, &ss) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else {
        memcpy(out, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    }
}

/* ---- peer objects: written straight into reserved room, since this runs numwant times per announce ---- */

static char *put_mem(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUT_LIT(p, lit) put_mem((p), (lit), sizeof(lit) - 1)

static char *put_hex(char *p, const uint8_t *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        *p++ = digits[in[i] >> 4];
        *p++ = digits[in[i] & 15];
    }
    return p;
}

/* Standard base64 with padding. Public data only: unlike sodium's encoder this is not constant-time. */
static char *put_b64(char *p, const uint8_t *in, size_t len)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = a[v >> 18];
        *p++ = a[(v >> 12) & 63];
        *p++ = a[(v >> 6) & 63];
        *p++ = a[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        *p++ = a[v >> 18];
        *p++ = a[(v >> 12) & 63];
        *p++ = i + 1 < len ? a[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    return p;
}

static char *put_addr(char *p, const uint8_t addr[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(addr, mapped, 12) != 0) { /* IPv6: rare enough for inet_ntop */
        char s[46];
        pc_addr_format(addr, s);
        return put_mem(p, s, strlen(s));
    }
    for (int i = 12; i < 16; i++) {
        p = pc_put_u64(p, addr[i]);
        if (i < 15)
            *p++ = '.';
    }
    return p;
}

/* The longest peer object apart from its rendition and region names. */
#define PEER_JSON_FIXED 320

static int put_peer(pc_buf *o, const pc_registry *r, const pc_swarm *sw, const pc_peer_rec *p, int first)
{
    const char *rend = sw->rend[p->rend];
    const char *region = p->region != 0 ? pc_registry_region(r, p->region) : "";
    size_t rend_len = strlen(rend), region_len = strlen(region);
    int rc = pc_buf_reserve(o, PEER_JSON_FIXED + rend_len + region_len);
    if (rc != 0)
        return rc;
    char *w = o->data + o->len;
    if (!first)
        *w++ = ',';
    w = PUT_LIT(w, "{\"peer_id\":\"");
    w = put_hex(w, p->id, PC_PEER_ID_LEN);
    w = PUT_LIT(w, "\",\"key\":\"");
    w = put_b64(w, p->key, PC_ED25519_PK_LEN);
    w = PUT_LIT(w, "\",\"addr\":\"");
    w = put_addr(w, p->addr);
    w = PUT_LIT(w, "\",\"port\":");
    w = pc_put_u64(w, p->port);
    w = PUT_LIT(w, ",\"rendition\":\"");
    w = put_mem(w, rend, rend_len);
    w = PUT_LIT(w, "\",\"playhead_ms\":");
    w = pc_put_u64(w, p->playhead_ms);
    w = PUT_LIT(w, ",\"up_kbps\":");
    w = pc_put_u64(w, p->up_kbps);
    w = (p->flags & PC_PEER_SEEDING) ? PUT_LIT(w, ",\"seeding\":true") : PUT_LIT(w, ",\"seeding\":false");
    if (p->have_hi != PC_NONE) {
        w = PUT_LIT(w, ",\"have\":[");
        w = pc_put_u64(w, p->have_lo);
        *w++ = ',';
        w = pc_put_u64(w, p->have_hi);
        *w++ = ']';
    }
    if (region_len > 0) {
        w = PUT_LIT(w, ",\"region\":\"");
        w = put_mem(w, region, region_len);
        *w++ = '"';
    }
    *w++ = '}';
    *w = '\0';
    o->len = (size_t)(w - o->data);
    return 0;
}

/* pc_select_skip: a candidate the tracker no longer vouches for in the video (all candidates share it). */
/* Who is never listed to a requester: a peer distrusted in the video (when |d|), and one on loopback
 * unless the requester came over loopback itself (another host would dial its own loopback: a seeder
 * beside the tracker that announced over 127.0.0.1 is of no use to anyone else, and each dial would
 * probe one of the requester's own services). */
struct select_skip {
    const pc_distrust *d;
    uint64_t video;
    int loopback_ok;
};

static int skipped(void *arg, const pc_peer_rec *cand)
{
    const struct select_skip *s = arg;
    return (!s->loopback_ok && pc_addr_loopback(cand->addr)) ||
           (s->d != NULL && pc_distrust_is_in(s->d, s->video, cand->key));
}

/* The keys |a|'s peer reports it banned: counted when they are members of the video's swarm (so random
 * keys cannot fill the table), once per network the reports come from (|conn_addr|'s /24 or /48); a key
 * reported from --distrust-reports networks is listed to no one any more. The reporter has proved its key
 * (proof or session) before this. */
static void take_ban_reports(pc_tracker *t, const pc_announce *a, const uint8_t conn_addr[16])
{
    for (uint32_t i = 0; t->distrust != NULL && i < a->nbanned; i++) {
        if (memcmp(a->banned[i], a->key, PC_ED25519_PK_LEN) == 0 ||
            pc_registry_find_peer(t->reg, a->video, a->banned[i]) == NULL)
            continue; /* itself, or not a member (any more): nobody would be given it */
        int r = pc_distrust_report(t->distrust, a->video, pc_locality_net(conn_addr), a->banned[i]);
        t->m.ban_reports += r >= 0;
        if (r == 1) {
            char b64[48];
            pc_b64_encode(a->banned[i], PC_ED25519_PK_LEN, b64, 0);
            t->m.distrusted++;
            /* its record goes now: left in place it would be saved, and listed again after a restart
             * (which forgets the verdict) though the peer announces no more */
            pc_registry_remove(t->reg, a->video, a->banned[i]);
            PC_LOGW("tracker", "video %s: peer %s reported banned from %u networks: listed to no one any more", a->video,
                    b64, t->cfg.distrust_reports);
        }
    }
}

/* The answer to an accepted announce, which came from |conn_addr|: interval, session, a ticket when due,
 * and peers. A ticket expires no later than |media_exp| (the announce's media token) when that is not 0. */
static int build_response(pc_tracker *t, const pc_announce *a, const uint8_t conn_addr[16], uint32_t self, int64_t now_s,
                          int64_t media_exp, uint64_t now, pc_buf *o)
{
    uint8_t session[PC_SESSION_LEN];
    char session_b64[32];
    pc_auth_session(t->auth, a->peer_id, a->key, a->video, session);
    pc_b64_encode(session, sizeof(session), session_b64, 1);
    int rc = pc_buf_printf(o, "{\"interval\":%.3f,\"tracker_time\":%" PRId64 ",\"session\":\"%s\"", t->cfg.interval_s,
                           now_s, session_b64);
    if (rc != 0 || self == PC_NONE)
        return rc != 0 ? rc : pc_buf_append_str(o, ",\"peers\":[]}");
    const pc_peer_rec *me = pc_registry_peer(t->reg, self);
    /* tickets are re-issued only near the end of their life, keeping signatures off the hot path, and only
     * when the new one would last longer (one held to a media token's expiry cannot). Near the end: in
     * the last quarter, and at least two intervals and 5 s before it (a quarter of 10 s, in whole seconds,
     * was less than one 2.5 s interval: the renewal came after the expiry; found by review). The ticket
     * the peer says it holds counts when it is older than the one last issued: an answer the peer never
     * got left it without a valid ticket for three quarters of a lifetime (found by review) */
    int64_t expires = now_s + t->cfg.ticket_ttl_s;
    if (media_exp > 0 && media_exp < expires)
        expires = media_exp;
    uint64_t held = a->ticket_expires > 0 && a->ticket_expires < me->ticket_exp ? a->ticket_expires : me->ticket_exp;
    int64_t window = t->cfg.ticket_ttl_s / 4, min_window = (int64_t)(2 * t->cfg.interval_s) + 5;
    if (window < min_window)
        window = min_window;
    if (a->event == PC_EV_STARTED || held == 0 || ((int64_t)held - now_s <= window && expires > (int64_t)held)) {
        pc_ticket tk;
        memcpy(tk.key, a->key, sizeof(tk.key));
        strcpy(tk.video, a->video);
        tk.expires = (uint64_t)expires;
        uint8_t bin[PC_TICKET_MAX];
        int n = pc_ticket_sign(t->sk, &tk, bin);
        if (n < 0)
            return n;
        char b64[PC_TICKET_MAX * 2];
        pc_b64_encode(bin, (size_t)n, b64, 1);
        pc_registry_set_ticket_exp(t->reg, self, (uint32_t)tk.expires);
        t->m.tickets++;
        rc = pc_buf_printf(o, ",\"ticket\":\"%s\",\"ticket_expires\":%" PRIu64, b64, tk.expires);
    }
    uint32_t picked[PC_NUMWANT_MAX];
    int any = t->distrust != NULL && pc_distrust_total(t->distrust) > 0;
    struct select_skip skip = {any ? t->distrust : NULL, any ? pc_distrust_video(t->distrust, a->video) : 0,
                               pc_addr_loopback(conn_addr)};
    size_t n = pc_select_peers(t->reg, self, a->need, a->numwant, t->cfg.scan, now, &t->rng,
                               any || !skip.loopback_ok ? skipped : NULL, &skip, picked);
    const pc_swarm *sw = pc_registry_swarm(t->reg, me->swarm);
    rc = rc ? rc : pc_buf_append_str(o, ",\"peers\":[");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = put_peer(o, t->reg, sw, pc_registry_peer(t->reg, picked[i]), i == 0);
    return rc ? rc : pc_buf_append_str(o, "]}");
}

/* An announce that passed the rate limit from |conn_addr|; also run again for one that waited for its
 * video's admission. */
static void announce(pc_tracker *t, h2o_req_t *req, const uint8_t conn_addr[16])
{
    uint64_t now = now_us();
    int64_t now_s = (int64_t)time(NULL);
    pc_announce a;
    pc_announce_error err;
    int rc = pc_announce_decode(req->entity.base != NULL ? req->entity.base : "", req->entity.len, &a, &err);
    if (rc != 0) {
        reject(t, req, rc == PC_ETOOBIG ? 413 : 400, err.code, err.message);
        return;
    }
    if (a.event == PC_EV_STARTED) {
        rc = pc_auth_check_proof(t->auth, &a, (uint64_t)now_s);
        if (rc == PC_EEXPIRED) {
            /* with the tracker's clock, so that a client whose clock is off can make its proof again */
            t->m.rejects[pc_reject_of("proof_expired")]++;
            pc_http_respond_json(req, 403, json_pack("{s:s, s:s, s:I}", "code", "proof_expired", "message",
                                                     "'proof.ts' is more than 300 seconds from the tracker's clock",
                                                     "tracker_time", (json_int_t)now_s));
            return;
        }
        if (rc != 0) {
            reject(t, req, 403, "bad_proof", "'proof.sig' does not prove possession of 'key'");
            return;
        }
    } else if (pc_auth_check_session(t->auth, &a) != 0) {
        reject(t, req, 403, "bad_session", "'session' does not match this peer id, key and video");
        return;
    }
    int64_t media_exp = 0; /* --media-key: a second past the token's expiry, which no ticket outlives */
    if (t->media_key_id[0] != '\0' && a.event != PC_EV_STOPPED) {
        int r = a.media[0] == '\0' ? PC_ENOENT
                                    : pc_media_token_check(t->media_key, a.video, a.media, strlen(a.media), now_s, &media_exp);
        media_exp += r == 0; /* the token holds through second E (the origin's rule); a ticket ends when now >= its expiry */
        if (r != 0) {
            reject(t, req, 403, r == PC_ENOENT ? "media_token_required" : r == PC_EEXPIRED ? "media_token_expired" : "bad_media_token",
                   r == PC_ENOENT     ? "this tracker vouches only for viewers holding the video's media token: 'media' "
                                        "must be the query exp=E&sig=S of the video's signed media URLs"
                   : r == PC_EEXPIRED ? "'media' has expired"
                                      : "'media' is not a media token of this video (exp=E&sig=S, signed with the "
                                        "origin's media key)");
            return;
        }
    }
    if (!a.has_addr)
        memcpy(a.addr, conn_addr, 16);
    if (a.region[0] == '\0' && a.asn == 0 && t->loc != NULL) {
        const char *region;
        uint32_t asn;
        if (pc_locality_lookup(t->loc, a.addr, &region, &asn) == 0) {
            snprintf(a.region, sizeof(a.region), "%s", region);
            a.asn = asn;
        }
    }
    if (a.event == PC_EV_PERIODIC && pc_registry_find_swarm(t->reg, a.video) == NULL) {
        reject_unlisted(t, req); /* before admission: no swarm to find it in, so no origin lookup for it */
        return;
    }
    /* a 'stopped' makes no swarm: one for a video not held (lost in a crash, or unpublished since) is answered
     * 200 and counts nothing, as without --origin, and costs no origin lookup */
    if (t->cfg.origin != NULL && a.event != PC_EV_STOPPED && pc_registry_find_swarm(t->reg, a.video) == NULL) {
        if (t->stopping || t->admit == NULL) { /* no swarm for a video nobody vouched for, even now */
            reject(t, req, 503, "stopping", "the tracker is shutting down");
            return;
        }
        rc = pc_admit_check(t->admit, a.video, req, now);
        if (rc == PC_EAGAIN) /* parked: announce() runs again when the origin answered */
            return;
        if (rc == PC_ENOENT) {
            reject(t, req, 404, "unknown_video", "the origin does not publish this video (or it is not ready)");
            return;
        }
        if (rc == PC_ENET) {
            pc_http_add_header(req, "retry-after", "5");
            reject(t, req, 503, "origin_unavailable", "the origin could not say whether it publishes this video");
            return;
        }
        if (rc != 0) {
            pc_http_add_header(req, "retry-after", "1");
            reject(t, req, 503, "limit_reached", "too many new videos are being looked up; retry");
            return;
        }
    }
    if (t->distrust != NULL) {
        pc_distrust_tick(t->distrust, uv_now(t->loop) / 1000); /* monotonic: a clock step must not age them */
        if (pc_distrust_is(t->distrust, a.video, a.key)) {
            reject(t, req, 403, "distrusted", "viewers of this video reported this key for sending data that fails "
                                              "the manifest's hashes");
            return;
        }
    }
    if (a.event == PC_EV_PERIODIC && pc_registry_find_peer(t->reg, a.video, a.key) == NULL) {
        reject_unlisted(t, req);
        return;
    }
    uint32_t self;
    rc = pc_registry_announce(t->reg, &a, pc_locality_net(a.addr), now, &self);
    if (rc == PC_ECONFLICT) {
        reject(t, req, 409, "counters_regressed", "cumulative counters went backwards; nothing was recorded");
        return;
    }
    if (rc != 0) {
        reject(t, req, 503, "limit_reached",
               rc == PC_ELIMIT ? "the tracker is at its peer, video or rendition limit" : "out of memory");
        return;
    }
    t->m.announces[a.event]++;
    take_ban_reports(t, &a, conn_addr); /* with the announce taken (a refused one changes nothing) */
    pc_buf *o = &t->out; /* kept across announces: pc_http_respond copies, so its room is reused */
    pc_buf_reset(o);
    rc = build_response(t, &a, conn_addr, self, now_s, media_exp, now, o);
    if (rc != 0)
        reject(t, req, 500, "internal_error", "cannot build the response");
    else
        pc_http_respond(req, 200, "application/json", o->data, o->len);
}

static void on_admitted(void *arg, h2o_req_t *req)
{
    uint8_t conn_addr[16];
    addr_of(req, conn_addr);
    announce(arg, req, conn_addr);
}

static int on_announce(void *user, h2o_req_t *req)
{
    pc_tracker *t = user;
    h2o_iovec_t path = pc_http_req_path(req);
    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/announce")))
        return -1;
    if (!pc_http_req_method_is(req, "POST")) {
        pc_http_add_header(req, "allow", "POST");
        pc_http_respond_error(req, 405, "method_not_allowed", "announce with POST and a JSON body");
        return 0;
    }
    if (t->stopping) { /* the swarm was saved when the stop began: nothing changes it after */
        reject(t, req, 503, "stopping", "the tracker is shutting down");
        return 0;
    }
    uint8_t conn_addr[16];
    addr_of(req, conn_addr);
    if (t->rl != NULL && !pc_ratelimit_take(t->rl, conn_addr, now_us())) {
        pc_http_add_header(req, "retry-after", "1");
        reject(t, req, 429, "rate_limited", "too many requests from this address");
        return 0;
    }
    announce(t, req, conn_addr);
    return 0;
}

/* ---- statistics and keys ---- */

/* Documents that sum or list every video cost time in proportion to the catalog, and anyone may ask
 * for them, so they are built once and kept: reused while nothing changed within the same second, and,
 * when building took STATS_SLOW_US or more (a large catalog), for ten times as long as that whatever
 * changed, so pollers cannot keep the loop busy building them. Every answer shares the copy current
 * when it was asked for (pc_http_respond_shared); an answer a client does not read holds its copy until
 * the connection is cut (60 s), so while DOC_COPIES_MAX copies are alive the current one is reused,
 * however old: a client asking once a second and reading nothing held 60 copies (a large catalog's
 * are hundreds of MB each; found by review). One tracker per process. */
typedef int (*doc_build)(pc_tracker *t, int64_t now_s, pc_buf *o);

static size_t doc_copies; /* documents alive: kept in a cache, or being sent */

static void doc_copy_gone(void *body)
{
    (void)body;
    doc_copies--;
}

static void respond_cached(pc_tracker *t, doc_cache *c, doc_build build, const char *type, h2o_req_t *req,
                           int64_t now_s)
{
    uint64_t now = now_us(), gen = pc_registry_generation(t->reg);
    int same = c->gen == gen && c->time_s == now_s && memcmp(&c->m, &t->m, sizeof(t->m)) == 0;
    int fresh = c->body != NULL && (same || (c->cost_us >= STATS_SLOW_US && now < c->built_us + 10 * c->cost_us) ||
                                    doc_copies >= DOC_COPIES_MAX);
    if (!fresh) {
        pc_buf o;
        pc_buf_init(&o, DOC_MAX);
        void *body = build(t, now_s, &o) == 0 ? h2o_mem_alloc_shared(NULL, o.len, doc_copy_gone) : NULL;
        if (body != NULL)
            doc_copies++;
        if (body == NULL) {
            pc_buf_clear(&o);
            pc_http_respond_error(req, 500, "out_of_memory", "out of memory");
            return;
        }
        memcpy(body, o.data, o.len);
        if (c->body != NULL)
            h2o_mem_release_shared(c->body);
        c->body = body;
        c->len = o.len;
        pc_buf_clear(&o);
        c->gen = gen;
        c->time_s = now_s;
        c->m = t->m;
        c->built_us = now;
        c->cost_us = now_us() - now;
    }
    pc_http_respond_shared(req, 200, type, c->body, c->len);
}

static int append_json(const char *buffer, size_t size, void *data)
{
    return pc_buf_append(data, buffer, size) == 0 ? 0 : -1;
}

/* Dumped straight into |o| (a large catalog's document is hundreds of MB: no intermediate copy). */
static int build_stats(pc_tracker *t, int64_t now_s, pc_buf *o)
{
    json_t *doc = pc_report_stats(t->reg, now_s, NULL);
    int rc = doc != NULL && json_dump_callback(doc, append_json, o, JSON_COMPACT | JSON_PRESERVE_ORDER) == 0
                 ? 0
                 : PC_ENOMEM;
    json_decref(doc);
    return rc;
}

static int build_metrics(pc_tracker *t, int64_t now_s, pc_buf *o)
{
    (void)now_s;
    pc_admit_counts(t->admit, &t->m.admit_lookups, &t->m.admit_refused);
    t->m.ban_reports_dropped = t->distrust != NULL ? pc_distrust_dropped(t->distrust) : 0;
    t->m.documents = doc_copies;
    int rc = pc_report_metrics(t->reg, &t->m, METRICS_TOP_VIDEOS, o);
    return rc ? rc : pc_http_server_metrics(t->http, "peercdn_tracker", o);
}

/* The read endpoints take GET and HEAD: 1 after answering 405 to anything else. */
static int refuse_writes(h2o_req_t *req)
{
    return pc_http_get_only(req, NULL, "this resource takes GET");
}

/* History pages being sent: each answer holds its own (pages differ by query and move with time, so
 * they are not shared as /stats is); one tracker per process. */
static size_t history_inflight;
static int64_t history_second, history_built;

static void history_sent(void *body)
{
    (void)body;
    history_inflight--;
}

/* /stats?history=1: the document for the selected video (none without |video|) with a page of the time
 * series spliced in, and the cursor of the next page when rows were left out. Anyone may ask, so pages
 * are limited: HISTORY_INFLIGHT_MAX being sent (clients that do not read would otherwise hold up to
 * 16 MiB each) and HISTORY_PAGES_PER_S built a second (pollers would otherwise keep the loop from the
 * announces); past either, 503 busy with Retry-After. */
static void stats_history(pc_tracker *t, h2o_req_t *req, int64_t now_s, const pc_history_query *q)
{
    if (history_second != now_s) {
        history_second = now_s;
        history_built = 0;
    }
    if (history_inflight >= HISTORY_INFLIGHT_MAX || history_built >= HISTORY_PAGES_PER_S) {
        pc_http_add_header(req, "retry-after", "1");
        pc_http_respond_error(req, 503, "busy", "too many history pages are being built or sent; retry in a second");
        return;
    }
    history_built++;
    json_t *doc = pc_report_stats(t->reg, now_s, q->video != NULL ? q->video : "");
    char *text = doc != NULL ? pc_json_dump(doc) : NULL;
    json_decref(doc);
    pc_buf o;
    pc_buf_init(&o, HISTORY_BODY_MAX);
    size_t len = text != NULL ? strlen(text) : 0;
    int rc = len > 0 && text[len - 1] == '}' ? 0 : PC_ENOMEM;
    rc = rc ? rc : pc_buf_append(&o, text, len - 1);
    rc = rc ? rc : pc_buf_append_str(&o, ",\"history\":");
    free(text);
    pc_history_page page;
    int hrc = rc ? rc : pc_tstore_history(t->store, q, &o, &page);
    rc = rc ? rc : hrc;
    if (rc == 0 && page.more)
        rc = pc_buf_printf(&o, ",\"next\":{\"since\":%" PRId64 ",\"after\":\"%s\"}", page.last_t, page.last_video);
    rc = rc ? rc : pc_buf_append_str(&o, "}");
    void *body = rc == 0 ? h2o_mem_alloc_shared(NULL, o.len, history_sent) : NULL;
    if (hrc == PC_EDB)
        pc_http_respond_error(req, 500, "database_error", "cannot read the history");
    else if (body == NULL)
        pc_http_respond_error(req, 500, "out_of_memory", "out of memory");
    else {
        memcpy(body, o.data, o.len);
        history_inflight++;
        pc_http_respond_shared(req, 200, "application/json", body, o.len);
        h2o_mem_release_shared(body); /* the answer's reference keeps it until sent */
    }
    pc_buf_clear(&o);
}

static int on_stats(void *user, h2o_req_t *req)
{
    pc_tracker *t = user;
    h2o_iovec_t path = pc_http_req_path(req);
    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/stats")))
        return -1;
    if (refuse_writes(req))
        return 0;
    int64_t now_s = (int64_t)time(NULL);
    char v[16], video[PC_VIDEO_ID_MAX + 2], since[24], after[PC_VIDEO_ID_MAX + 2], limit[16];
    const char *bad = NULL;
    int rh = pc_http_req_query(req, "history", v, sizeof(v));
    int rv = pc_http_req_query(req, "video", video, sizeof(video));
    int rs = pc_http_req_query(req, "since", since, sizeof(since));
    int ra = pc_http_req_query(req, "after", after, sizeof(after));
    int rl = pc_http_req_query(req, "limit", limit, sizeof(limit));
    int64_t from = now_s - 24 * 3600, rows = HISTORY_ROWS_MAX;
    static const char *const names[] = {"history", "video", "since", "after", "limit"};
    const int rcs[] = {rh, rv, rs, ra, rl};
    char twice[64] = "";
    for (size_t k = 0; k < sizeof(rcs) / sizeof(rcs[0]) && twice[0] == '\0'; k++)
        if (rcs[k] == PC_EPARSE) /* (its value is not to blame) */
            snprintf(twice, sizeof(twice), "'%s' is given more than once, or holds a NUL byte", names[k]);
    if (twice[0] != '\0')
        bad = twice;
    else if ((rh != 0 && rh != PC_ENOENT) || (rh == 0 && strcmp(v, "0") != 0 && strcmp(v, "1") != 0))
        bad = "'history' must be 0 or 1";
    else if ((rv != 0 && rv != PC_ENOENT) || (rv == 0 && video[0] != '\0' && !pc_video_id_valid(video, strlen(video))))
        bad = "'video' must be a video id (or empty for the total)";
    else if ((rs != 0 && rs != PC_ENOENT) || (rs == 0 && pc_parse_int_str(since, INT64_MIN, INT64_MAX, 0, &from) != 0))
        bad = "'since' must be unix seconds";
    else if ((ra != 0 && ra != PC_ENOENT) || (ra == 0 && after[0] != '\0' && !pc_video_id_valid(after, strlen(after))))
        bad = "'after' must be a video id (or empty for the total)";
    else if (ra == 0 && rs != 0)
        bad = "'after' needs 'since'";
    else if ((rl != 0 && rl != PC_ENOENT) || (rl == 0 && pc_parse_int_str(limit, 1, HISTORY_ROWS_MAX, 0, &rows) != 0))
        bad = "'limit' must be 1 to 10000"; /* HISTORY_ROWS_MAX */
    if (bad != NULL) {
        pc_http_respond_error(req, 400, "bad_field", bad);
        return 0;
    }
    t->m.expired += pc_registry_expire(t->reg, now_us());
    int history = rh == 0 && strcmp(v, "1") == 0, one = rv == 0 && video[0] != '\0';
    if (history) {
        pc_history_query q = {
            .video = rv == 0 ? video : NULL, .since = from, .after = ra == 0 ? after : NULL, .limit = (size_t)rows};
        stats_history(t, req, now_s, &q);
    } else if (one) {
        json_t *doc = pc_report_stats(t->reg, now_s, video);
        if (doc != NULL)
            pc_http_respond_json(req, 200, doc);
        else
            pc_http_respond_error(req, 500, "out_of_memory", "out of memory");
    } else {
        respond_cached(t, &t->stats, build_stats, "application/json", req, now_s);
    }
    return 0;
}

static int on_metrics(void *user, h2o_req_t *req)
{
    pc_tracker *t = user;
    h2o_iovec_t path = pc_http_req_path(req);
    if (!h2o_memis(path.base, path.len, H2O_STRLIT("/metrics")))
        return -1;
    if (refuse_writes(req))
        return 0;
    t->m.expired += pc_registry_expire(t->reg, now_us());
    respond_cached(t, &t->metrics, build_metrics, "text/plain; version=0.0.4; charset=utf-8", req, (int64_t)time(NULL));
    return 0;
}

static int on_api(void *user, h2o_req_t *req)
{
    pc_tracker *t = user;
    h2o_iovec_t path = pc_http_req_path(req);
    int key = h2o_memis(path.base, path.len, H2O_STRLIT("/api/tracker-key"));
    int health = h2o_memis(path.base, path.len, H2O_STRLIT("/api/health"));
    if ((key || health) && refuse_writes(req))
        return 0;
    if (key) {
        /* media_key: which media key announces are checked against (pc_media_key_id), so that a signed-media
         * origin can tell whether this tracker guards its videos' swarms */
        pc_http_respond_json(req, 200,
                             t->media_key_id[0] != '\0' ? json_pack("{ss ss}", "ed25519", t->pk_b64, "media_key", t->media_key_id)
                                                         : json_pack("{ss}", "ed25519", t->pk_b64));
        return 0;
    }
    if (health) {
        pc_http_respond_json(req, 200,
                             json_pack("{ss sI sI}", "status", "ok", "peers", (json_int_t)pc_registry_npeers(t->reg),
                                       "videos", (json_int_t)pc_registry_nswarms(t->reg)));
        return 0;
    }
    return -1;
}

/* ---- timers, persistence, shutdown ---- */

static void on_sweep(uv_timer_t *h)
{
    pc_tracker *t = h->data;
    t->m.expired += pc_registry_expire(t->reg, now_us());
}

static void save_stats(pc_tracker *t, int all)
{
    if (pc_tstore_save_stats(t->store, t->reg, all) == 0)
        pc_registry_clear_dirty(t->reg);
    else
        PC_LOGE("tracker", "cannot save statistics; will retry");
}

static void on_save(uv_timer_t *h)
{
    save_stats(h->data, 0);
}

static void on_history(uv_timer_t *h)
{
    pc_tracker *t = h->data;
    t->m.expired += pc_registry_expire(t->reg, now_us());
    if (pc_tstore_append_history(t->store, t->reg, (int64_t)time(NULL), t->cfg.history_keep_s) != 0)
        PC_LOGE("tracker", "cannot append to the statistics history");
}

static void on_http_closed(void *arg)
{
    (void)arg;
}

static void save_all(pc_tracker *t);

static void on_signal(uv_signal_t *s, int signum)
{
    pc_tracker *t = s->data;
    (void)signum;
    if (t->stopping)
        return;
    t->stopping = 1;
    PC_LOGI("tracker", "stopping");
    uv_timer_stop(&t->sweep);
    uv_timer_stop(&t->save);
    uv_timer_stop(&t->history);
    uv_close((uv_handle_t *)&t->sweep, NULL);
    uv_close((uv_handle_t *)&t->save, NULL);
    uv_close((uv_handle_t *)&t->history, NULL);
    uv_close((uv_handle_t *)&t->sigint, NULL);
    uv_close((uv_handle_t *)&t->sigterm, NULL);
    uv_close((uv_handle_t *)&t->sighup, NULL);
    pc_cli_ignore_stop_signals(); /* a second signal during the stop's grace (at most 5 s) would kill it */
    pc_admit_free(t->admit); /* parked announces are answered 503 stopping before the connections close */
    t->admit = NULL;
    /* saved now, not once the connections have closed: announces are refused from here on, and a
     * process killed while a client holds a connection open loses nothing */
    pc_tstore_busy_wait(t->store, PC_SQLITE_BUSY_MS); /* the final save waits as long as at open */
    save_all(t);
    pc_http_server_close(t->http, on_http_closed, t);
}

static int load_key(pc_tracker *t)
{
    int r;
    if (t->cfg.key_path != NULL)
        r = pc_ed25519_load_or_create(t->cfg.key_path, t->pk, t->sk);
    else
        r = pc_tstore_key(t->store, t->pk, t->sk);
    if (r != 0) {
        pc_cli_error("cannot load the tracker key %s: %s",
                t->cfg.key_path != NULL ? t->cfg.key_path : "(database)", pc_strerror(r));
        return r;
    }
    pc_b64_encode(t->pk, sizeof(t->pk), t->pk_b64, 0);
    if (t->cfg.media_key_path != NULL) {
        if ((r = pc_secret_load(t->cfg.media_key_path, t->media_key, sizeof(t->media_key))) != 0) {
            pc_cli_error("cannot load the media key %s: %s", t->cfg.media_key_path,
                         r == PC_EPARSE ? "not 32 bytes (the origin's DATA/keys/media.key)" : pc_strerror(r));
            return r;
        }
        pc_media_key_id(t->media_key, t->media_key_id);
    }
    return 0;
}

/* Opens the database (one tracker per file), the key, and restores statistics and the swarm. */
static int open_state(pc_tracker *t)
{
    /* the lock is on the database file itself, so another name for it (a symbolic or hard link) finds
     * it taken; SQLite's own locks are fcntl locks, which on Linux do not interact with flock. The
     * descriptor stays open until the database is closed (closing one would drop SQLite's locks).
     * O_NONBLOCK: a FIFO in the path's place does not block the open. */
    t->lock_fd = open(t->cfg.db_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0600); /* as pc_sqlite_open */
    struct stat st;
    if (t->lock_fd < 0 || fstat(t->lock_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        pc_cli_error("cannot open the database %s: %s", t->cfg.db_path,
                t->lock_fd < 0 ? strerror(errno) : "not a regular file");
        return -1;
    }
    if (flock(t->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        pc_cli_error("%s is in use by another tracker", t->cfg.db_path);
        return -1;
    }
    if (pc_tstore_open(t->cfg.db_path, &t->store) != 0) {
        pc_cli_error("cannot open the database %s: %s", t->cfg.db_path, pc_err_detail());
        return -1;
    }
    if (load_key(t) != 0)
        return -1;
    uint64_t seed;
    randombytes_buf(&seed, sizeof(seed));
    pc_rng_init(&t->rng, seed);
    pc_registry_config rc = {
        .interval_us = (uint64_t)(t->cfg.interval_s * 1e6),
        .max_peers = t->cfg.max_peers,
        .max_swarms = t->cfg.max_videos,
        .hash_seed = pc_rng_next(&t->rng),
    };
    t->reg = pc_registry_new(&rc);
    t->auth = pc_auth_new(t->sk);
    pc_buf_init(&t->out, RESPONSE_MAX);
    if (t->cfg.rate > 0)
        t->rl = pc_ratelimit_new(t->cfg.rate, t->cfg.burst, 1 << 16, pc_rng_next(&t->rng));
    if (t->cfg.distrust_reports > 0)
        t->distrust = pc_distrust_new(t->cfg.distrust_reports, 1 << 16);
    if (t->reg == NULL || t->auth == NULL || (t->cfg.rate > 0 && t->rl == NULL) ||
        (t->cfg.distrust_reports > 0 && t->distrust == NULL)) {
        pc_cli_error("out of memory");
        return -1;
    }
    if (t->cfg.locality_path != NULL) {
        char err[256];
        if (pc_locality_load(t->cfg.locality_path, &t->loc, err, sizeof(err)) != 0) {
            pc_cli_error("%s", err);
            return -1;
        }
        /* the operator's regions always resolve, whatever names peers declare */
        pc_locality_each_region(t->loc, pin_region, t->reg);
    }
    size_t restored = 0;
    if (pc_tstore_load(t->store, t->reg, now_us(), &restored) != 0) {
        pc_cli_error("cannot load the saved state from %s", t->cfg.db_path);
        return -1;
    }
    if (restored > 0 || pc_registry_nswarms(t->reg) > 0)
        PC_LOGI("tracker", "restored statistics of %zu videos and %zu live peers", pc_registry_nswarms(t->reg),
                restored);
    return 0;
}

static void start_timers(pc_tracker *t)
{
    uv_timer_init(t->loop, &t->sweep);
    uv_timer_init(t->loop, &t->save);
    uv_timer_init(t->loop, &t->history);
    t->sweep.data = t->save.data = t->history.data = t;
    uv_timer_start(&t->sweep, on_sweep, SWEEP_EVERY_MS, SWEEP_EVERY_MS);
    uv_timer_start(&t->save, on_save, SAVE_EVERY_MS, SAVE_EVERY_MS);
    uint64_t hist_ms = (uint64_t)(t->cfg.history_s * 1000);
    uv_timer_start(&t->history, on_history, hist_ms, hist_ms);
    uv_signal_init(t->loop, &t->sigint);
    uv_signal_init(t->loop, &t->sigterm);
    uv_signal_init(t->loop, &t->sighup);
    t->sigint.data = t->sigterm.data = t->sighup.data = t;
    uv_signal_start(&t->sigint, on_signal, SIGINT);
    uv_signal_start(&t->sigterm, on_signal, SIGTERM);
    if (!pc_cli_sighup_ignored()) /* under nohup it stays ignored */
        uv_signal_start(&t->sighup, on_signal, SIGHUP);
}

/* At a graceful stop: everything a restart needs to lose nothing. */
static void save_all(pc_tracker *t)
{
    t->m.expired += pc_registry_expire(t->reg, now_us());
    save_stats(t, 1);
    if (pc_tstore_append_history(t->store, t->reg, (int64_t)time(NULL), t->cfg.history_keep_s) != 0)
        PC_LOGE("tracker", "cannot append the final history row");
    if (pc_tstore_save_peers(t->store, t->reg) != 0)
        PC_LOGE("tracker", "cannot save the swarm; peers will re-join with their next announce");
}

int pc_tracker_serve(const pc_tracker_config *cfg)
{
    pc_tracker *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return 1;
    t->cfg = *cfg;
    t->lock_fd = -1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    t->loop = &loop;
    int rc = 1, started = 0;
    if (open_state(t) != 0)
        goto out;
    /* announces are at most 16 KiB; up to 64 KiB get the JSON 413, and no connection holds more */
    pc_http_server_config hc = {.max_request_body = 64 << 10, .idle_timeout_ms = 30000};
    t->http = pc_http_server_new(t->loop, &hc);
    if (t->http == NULL || pc_http_server_route(t->http, "/announce", on_announce, t) != 0 ||
        pc_http_server_route(t->http, "/stats", on_stats, t) != 0 ||
        pc_http_server_route(t->http, "/metrics", on_metrics, t) != 0 ||
        pc_http_server_route(t->http, "/api/", on_api, t) != 0) {
        pc_cli_error("out of memory");
        goto out;
    }
    char bound[80];
    if (pc_http_server_listen(t->http, cfg->listen, bound, sizeof(bound)) != 0) {
        pc_cli_error("cannot listen on %s: %s", cfg->listen, pc_err_detail());
        goto out;
    }
    if (cfg->origin != NULL && (t->admit = pc_admit_new(t->loop, cfg->origin, on_admitted, t)) == NULL) {
        pc_cli_error("out of memory");
        goto out;
    }
    if (pc_tstore_forget_peers(t->store) != 0) {
        pc_cli_error("cannot write the database %s: %s", cfg->db_path, pc_err_detail());
        goto out;
    }
    start_timers(t);
    started = 1;
    /* while serving, a save waits little for a lock someone else holds on the file (it is retried at the
     * next tick); announces go on from memory either way */
    pc_tstore_busy_wait(t->store, SERVE_BUSY_WAIT_MS);
    printf("peercdn-tracker listening on http://%s (key %s)\n", bound, t->pk_b64);
    fflush(stdout);
    pc_raise_nofile("tracker");
    uv_run(t->loop, UV_RUN_DEFAULT); /* until a stop signal (on_signal saves) and the connections close */
    rc = 0;
out:
    if (t->http != NULL && !started) {
        pc_http_server_close(t->http, NULL, NULL);
        uv_run(t->loop, UV_RUN_DEFAULT);
    }
    pc_admit_free(t->admit);
    pc_http_server_free(t->http);
    uv_run(t->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(t->loop) != 0)
        PC_LOGW("tracker", "event loop closed with handles still open");
    pc_registry_free(t->reg);
    if (t->stats.body != NULL)
        h2o_mem_release_shared(t->stats.body);
    if (t->metrics.body != NULL)
        h2o_mem_release_shared(t->metrics.body);
    pc_auth_free(t->auth);
    pc_buf_clear(&t->out);
    pc_ratelimit_free(t->rl);
    pc_distrust_free(t->distrust);
    pc_locality_free(t->loc);
    pc_tstore_close(t->store);
    if (t->lock_fd >= 0)
        close(t->lock_fd);
    sodium_memzero(t->sk, sizeof(t->sk));
    sodium_memzero(t->media_key, sizeof(t->media_key));
    free(t);
    if (rc == 0)
        PC_LOGI("tracker", "stopped");
    return rc;
}
