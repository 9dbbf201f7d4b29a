/*
 * bench/p2p: the peer link's segment throughput (driven by bench/p2p.py).
 *
 *   p2p_bench keygen FILE
 *       creates a tracker key (64-byte libsodium Ed25519 secret key, mode 0600) unless FILE exists
 *   p2p_bench serve --listen HOST:PORT --tracker-sk FILE --video V --segment-bytes N [--raw] [--corrupt]
 *       holds one segment of N bytes (derived from V, so fetchers know its hash), prints
 *       "listening on tcp://HOST:PORT" and serves until SIGTERM or SIGINT; --corrupt flips one byte of
 *       it (a test aid: fetchers must refuse every segment)
 *   p2p_bench fetch --connect HOST:PORT --tracker-sk FILE --video V --segment-bytes N --segments K [--raw]
 *       [--timeout S]; prints {"bytes":...,"seconds":...,"verified":...} and exits 0, or exits 1
 *   p2p_bench cpu [--mib M]
 *       single-core speeds of what a verified encrypted byte costs in user space (JSON)
 *
 * Link mode uses the real peer link (peer/link.c): the handshake with tracker tickets (each process
 * signs its own with the tracker key), ChaCha20-Poly1305 records, and the upload pump's backpressure
 * (a link's write queue is fed while below 1 MiB and again from on_writable). The fetcher keeps two
 * whole-segment REQUESTs outstanding (the engine's peer_inflight), assembles each segment from its DATA
 * messages and checks its BLAKE2b-256 before counting it.
 *
 * Raw mode is the baseline: plain TCP on the same event loop, the client sends an 8-byte big-endian
 * length and the server writes that many bytes of the segment (repeating it) straight from memory,
 * with the same 1 MiB in-flight cap.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <uv.h>

#include "link.h"
#include "pc_crypto.h"
#include "pc_log.h"
#include "pc_ticket.h"
#include "wire.h"

#define SEG_MAX (64u * 1024 * 1024)       /* largest --segment-bytes */
#define SEGMENTS_MAX 10000000u            /* largest --segments */
#define HIGH_MARK (1024u * 1024)          /* a connection's write queue is fed while below this */
#define FETCH_INFLIGHT 2                  /* requests outstanding per link, as the engine does */
#define SERVE_REQS_MAX 16                 /* requests a server keeps per link; more are refused */
#define RAW_CHUNK (128u * 1024)           /* raw writes, the size of one DATA payload */
#define RAW_MAX ((uint64_t)1 << 44)       /* largest raw request (16 TiB) */
#define RAW_RBUF (256u * 1024)

typedef struct opts {
    const char *listen, *connect, *sk_path, *video;
    uint64_t seg_bytes, segments, timeout_s, mib;
    int raw, corrupt;
} opts;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("p2p_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t parse_u64(const char *name, const char *s, uint64_t lo, uint64_t hi)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        die("%s: expected a number", name);
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        die("%s: %s is not in %" PRIu64 " … %" PRIu64, name, s, lo, hi);
    return v;
}

static void parse_opts(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof(*o));
    o->timeout_s = 300;
    o->mib = 256;
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "--raw") == 0) {
            o->raw = 1;
            continue;
        }
        if (strcmp(k, "--corrupt") == 0) {
            o->corrupt = 1;
            continue;
        }
        if (v == NULL)
            die("%s needs a value", k);
        i++;
        if (strcmp(k, "--listen") == 0)
            o->listen = v;
        else if (strcmp(k, "--connect") == 0)
            o->connect = v;
        else if (strcmp(k, "--tracker-sk") == 0)
            o->sk_path = v;
        else if (strcmp(k, "--video") == 0)
            o->video = v;
        else if (strcmp(k, "--segment-bytes") == 0)
            o->seg_bytes = parse_u64(k, v, 1, SEG_MAX);
        else if (strcmp(k, "--segments") == 0)
            o->segments = parse_u64(k, v, 1, SEGMENTS_MAX);
        else if (strcmp(k, "--timeout") == 0)
            o->timeout_s = parse_u64(k, v, 1, 86400);
        else if (strcmp(k, "--mib") == 0)
            o->mib = parse_u64(k, v, 1, 65536);
        else
            die("unknown option %s", k);
    }
}

static void parse_addr(const char *s, struct sockaddr_storage *ss)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        die("%s: expected HOST:PORT", s);
    size_t hl = (size_t)(colon - s);
    memcpy(host, s, hl);
    host[hl] = '\0';
    int port = (int)parse_u64("port", colon + 1, 0, 65535);
    memset(ss, 0, sizeof(*ss));
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        if (uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)ss) != 0)
            die("%s: bad IPv6 address", s);
    } else if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) != 0) {
        die("%s: bad IPv4 address", s);
    }
}

/* The tracker key: exactly 64 bytes, a secret key whose public half matches its seed. */
static void load_tracker_sk(const char *path, uint8_t sk[PC_ED25519_SK_LEN])
{
    if (path == NULL)
        die("--tracker-sk is required");
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("%s: cannot open", path);
    uint8_t buf[PC_ED25519_SK_LEN + 1];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    uint8_t pk[PC_ED25519_PK_LEN], check[PC_ED25519_SK_LEN];
    if (n != PC_ED25519_SK_LEN)
        die("%s: expected exactly %d bytes", path, PC_ED25519_SK_LEN);
    crypto_sign_seed_keypair(pk, check, buf); /* the seed is the first 32 bytes */
    if (sodium_memcmp(check, buf, PC_ED25519_SK_LEN) != 0)
        die("%s: not an Ed25519 secret key (the public half does not match)", path);
    memcpy(sk, buf, PC_ED25519_SK_LEN);
    sodium_memzero(buf, sizeof(buf));
    sodium_memzero(check, sizeof(check));
}

/* Our own key and a ticket for it, signed with the tracker key, valid for an hour. */
static void make_identity(const opts *o, pc_link_identity *id)
{
    if (o->video == NULL || !pc_video_id_valid(o->video, strlen(o->video)))
        die("--video: expected 1 … %d of [A-Za-z0-9_-]", PC_VIDEO_ID_MAX);
    uint8_t tsk[PC_ED25519_SK_LEN];
    load_tracker_sk(o->sk_path, tsk);
    memset(id, 0, sizeof(*id));
    crypto_sign_keypair(id->pk, id->sk);
    crypto_sign_ed25519_sk_to_pk(id->tracker_pk, tsk);
    snprintf(id->video, sizeof(id->video), "%s", o->video);
    pc_ticket t = {.expires = (uint64_t)time(NULL) + 3600};
    memcpy(t.key, id->pk, sizeof(t.key));
    snprintf(t.video, sizeof(t.video), "%s", o->video);
    int n = pc_ticket_sign(tsk, &t, id->ticket);
    sodium_memzero(tsk, sizeof(tsk));
    if (n <= 0)
        die("cannot sign a ticket: %s", pc_strerror(n));
    id->ticket_len = (size_t)n;
}

/* The segment both sides know: a deterministic stream keyed by the video id. */
static uint8_t *make_segment(const char *video, uint64_t n)
{
    if (video == NULL)
        die("--video is required");
    uint8_t *seg = malloc(n);
    if (seg == NULL)
        die("out of memory");
    uint8_t seed[randombytes_SEEDBYTES];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof(seed));
    crypto_generichash_update(&st, (const uint8_t *)"peercdn p2p bench segment v1", 29);
    crypto_generichash_update(&st, (const uint8_t *)video, strlen(video));
    crypto_generichash_final(&st, seed, sizeof(seed));
    randombytes_buf_deterministic(seg, n, seed);
    return seg;
}

/* ---------------------------------------------------------------- serve ---- */

typedef struct sreq {
    uint32_t id, offset, len, sent;
} sreq;

struct server;

typedef struct sconn { /* one accepted link */
    struct server *s;
    pc_link *l;
    sreq reqs[SERVE_REQS_MAX]; /* served in order */
    int nreqs;
    struct sconn *prev, *next;
} sconn;

typedef struct rwreq { /* one raw write */
    uv_write_t req;
    struct rconn *c;
    size_t len;
} rwreq;

typedef struct rconn { /* one raw connection */
    uv_tcp_t tcp;
    struct server *s;
    uint8_t hdr[8], rbuf[64];
    size_t hlen, inflight;
    uint64_t want, sent;
    int closing;
    struct rconn *prev, *next;
} rconn;

typedef struct server {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_signal_t sigterm, sigint;
    pc_link_identity id;
    uint8_t *seg;
    uint32_t seg_len;
    int raw, stopping;
    sconn *conns;
    rconn *rconns;
    uint64_t accepted, bytes, refused, errors;
} server;

static void sconn_pump(sconn *c)
{
    server *s = c->s;
    while (c->nreqs > 0 && pc_link_is_up(c->l) && pc_link_queued(c->l) < HIGH_MARK) {
        sreq *r = &c->reqs[0];
        uint32_t left = r->len - r->sent, n = left < PC_WIRE_DATA_MAX ? left : PC_WIRE_DATA_MAX;
        if (pc_link_send_data(c->l, r->id, r->offset + r->sent, s->seg + r->offset + r->sent, n) != 0)
            return; /* the link is going away */
        r->sent += n;
        s->bytes += n;
        if (r->sent == r->len) {
            c->nreqs--;
            memmove(&c->reqs[0], &c->reqs[1], (size_t)c->nreqs * sizeof(sreq));
        }
    }
}

static void sconn_send(sconn *c, const pc_wire_msg *m)
{
    uint8_t b[32];
    (void)pc_link_send(c->l, b, pc_wire_msg_encode(m, b)); /* a failure closes the link */
}

static int s_on_up(void *arg, pc_link *l, const uint8_t key[PC_ED25519_PK_LEN], uint32_t up_kbps)
{
    return 0;
}

static void s_on_msg(void *arg, pc_link *l, const pc_wire_msg *m)
{
    sconn *c = pc_link_user(l);
    server *s = c->s;
    if (m->type == PC_MSG_REQUEST) {
        for (int i = 0; i < c->nreqs; i++) {
            if (c->reqs[i].id == m->id) {
                pc_link_close(l, 3); /* a request id still in use: a protocol error */
                return;
            }
        }
        int held = m->len > 0 && m->len <= s->seg_len && m->offset <= s->seg_len - m->len;
        if (!held || c->nreqs == SERVE_REQS_MAX) {
            pc_wire_msg r = {.type = PC_MSG_REFUSE, .id = m->id,
                             .reason = held ? PC_WIRE_REFUSE_BUSY : PC_WIRE_REFUSE_NOT_HELD};
            s->refused++;
            sconn_send(c, &r);
            return;
        }
        c->reqs[c->nreqs++] = (sreq){.id = m->id, .offset = m->offset, .len = m->len};
        sconn_pump(c);
    } else if (m->type == PC_MSG_CANCEL) {
        for (int i = 0; i < c->nreqs; i++) {
            if (c->reqs[i].id == m->id) {
                c->nreqs--;
                memmove(&c->reqs[i], &c->reqs[i + 1], (size_t)(c->nreqs - i) * sizeof(sreq));
                break;
            }
        }
    } else if (m->type == PC_MSG_DATA) {
        pc_link_close(l, 3); /* we never asked */
    } /* HAVE, REFUSE: nothing to do */
}

static void s_on_writable(void *arg, pc_link *l)
{
    sconn_pump(pc_link_user(l));
}

static void s_on_close(void *arg, pc_link *l, int err, const char *why)
{
    sconn *c = pc_link_user(l);
    if (c == NULL)
        return;
    server *s = c->s;
    if (err != 0 && err != PC_ECANCELED) {
        s->errors++;
        fprintf(stderr, "p2p_bench serve: link %s closed: %s\n", pc_link_peer_name(l), why);
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);
}

static const pc_link_callbacks server_cb = {
    .on_up = s_on_up, .on_msg = s_on_msg, .on_writable = s_on_writable, .on_close = s_on_close,
};

/* raw */

static void rconn_closed(uv_handle_t *h)
{
    rconn *c = h->data;
    server *s = c->s;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->rconns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);
}

static void rconn_close(rconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, rconn_closed);
}

static void rconn_pump(rconn *c);

static void rconn_written(uv_write_t *req, int status)
{
    rwreq *w = (rwreq *)req;
    rconn *c = w->c;
    c->inflight -= w->len;
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        c->s->errors++;
        fprintf(stderr, "p2p_bench serve: raw write: %s\n", uv_strerror(status));
        rconn_close(c);
        return;
    }
    rconn_pump(c);
}

static void rconn_pump(rconn *c)
{
    server *s = c->s;
    while (!c->closing && c->sent < c->want && c->inflight < HIGH_MARK) {
        uint64_t off = c->sent % s->seg_len, n = s->seg_len - off;
        if (n > RAW_CHUNK)
            n = RAW_CHUNK;
        if (n > c->want - c->sent)
            n = c->want - c->sent;
        rwreq *w = malloc(sizeof(*w));
        if (w == NULL) {
            rconn_close(c);
            return;
        }
        w->c = c;
        w->len = (size_t)n;
        uv_buf_t b = uv_buf_init((char *)s->seg + off, (unsigned)n);
        int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, rconn_written);
        if (rc < 0) {
            free(w);
            s->errors++;
            rconn_close(c);
            return;
        }
        c->inflight += w->len;
        c->sent += n;
        s->bytes += n;
    }
}

static void rconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    rconn *c = h->data;
    buf->base = (char *)c->rbuf;
    buf->len = sizeof(c->rbuf);
}

static void rconn_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    rconn *c = st->data;
    if (n == 0 || c->closing)
        return;
    if (n < 0) { /* normally EOF after the client got all it asked for (or before it asked anything) */
        int clean = n == UV_EOF && (c->hlen == 0 || (c->want > 0 && c->sent == c->want && c->inflight == 0));
        if (!clean) {
            c->s->errors++;
            fprintf(stderr, "p2p_bench serve: raw connection ended early: %s\n", uv_strerror((int)n));
        }
        rconn_close(c);
        return;
    }
    size_t got = (size_t)n;
    if (c->hlen + got > sizeof(c->hdr)) { /* one request per connection, nothing after it */
        c->s->errors++;
        fprintf(stderr, "p2p_bench serve: raw client sent more than its request\n");
        rconn_close(c);
        return;
    }
    memcpy(c->hdr + c->hlen, c->rbuf, got);
    c->hlen += got;
    if (c->hlen < sizeof(c->hdr))
        return;
    uint64_t want = 0;
    for (int i = 0; i < 8; i++)
        want = want << 8 | c->hdr[i];
    if (want == 0 || want > RAW_MAX) {
        c->s->errors++;
        fprintf(stderr, "p2p_bench serve: raw request of %" PRIu64 " bytes refused\n", want);
        rconn_close(c);
        return;
    }
    c->want = want;
    rconn_pump(c);
}

static void on_connection(uv_stream_t *st, int status)
{
    server *s = st->data;
    if (status < 0 || s->stopping)
        return;
    if (s->raw) {
        rconn *c = calloc(1, sizeof(*c));
        if (c == NULL)
            return;
        c->s = s;
        uv_tcp_init(s->loop, &c->tcp);
        c->tcp.data = c;
        c->next = s->rconns;
        if (c->next != NULL)
            c->next->prev = c;
        s->rconns = c;
        if (uv_accept(st, (uv_stream_t *)&c->tcp) != 0) {
            rconn_close(c);
            return;
        }
        s->accepted++;
        uv_tcp_nodelay(&c->tcp, 1);
        if (uv_read_start((uv_stream_t *)&c->tcp, rconn_alloc, rconn_read) != 0)
            rconn_close(c);
        return;
    }
    sconn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    pc_link *l;
    if (pc_link_accept(st, &s->id, &server_cb, s, &l) != 0) {
        free(c);
        return;
    }
    s->accepted++;
    c->s = s;
    c->l = l;
    c->next = s->conns;
    if (c->next != NULL)
        c->next->prev = c;
    s->conns = c;
    pc_link_set_user(l, c);
}

static void on_stop_signal(uv_signal_t *sig, int signum)
{
    server *s = sig->data;
    if (s->stopping)
        return;
    s->stopping = 1;
    uv_close((uv_handle_t *)&s->tcp, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    for (sconn *c = s->conns; c != NULL; c = c->next)
        pc_link_close(c->l, 0);
    for (rconn *c = s->rconns; c != NULL; c = c->next)
        rconn_close(c);
}

static int cmd_serve(const opts *o)
{
    server s;
    memset(&s, 0, sizeof(s));
    s.raw = o->raw;
    if (o->seg_bytes == 0)
        die("--segment-bytes is required");
    s.seg_len = (uint32_t)o->seg_bytes;
    s.seg = make_segment(o->video, o->seg_bytes);
    if (o->corrupt) /* the test aid: a seeder whose segment does not match its hash */
        s.seg[s.seg_len / 2] ^= 0x5a;
    if (!s.raw)
        make_identity(o, &s.id);
    if (o->listen == NULL)
        die("--listen is required");
    struct sockaddr_storage ss;
    parse_addr(o->listen, &ss);

    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        die("cannot start an event loop");
    s.loop = &loop;
    uv_tcp_init(&loop, &s.tcp);
    s.tcp.data = &s;
    int rc = uv_tcp_bind(&s.tcp, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s.tcp, 128, on_connection);
    if (rc != 0)
        die("cannot listen on %s: %s", o->listen, uv_strerror(rc));
    struct sockaddr_storage bound;
    int bl = sizeof(bound);
    char host[64] = "?";
    int port = 0;
    if (uv_tcp_getsockname(&s.tcp, (struct sockaddr *)&bound, &bl) == 0) {
        if (bound.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&bound, host + 1, sizeof(host) - 2);
            host[0] = '[';
            strcat(host, "]");
            port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&bound, host, sizeof(host));
            port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        }
    }
    uv_signal_init(&loop, &s.sigterm);
    uv_signal_init(&loop, &s.sigint);
    s.sigterm.data = s.sigint.data = &s;
    uv_signal_start(&s.sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_stop_signal, SIGINT);
    printf("listening on tcp://%s:%d\n", host, port);
    fflush(stdout);

    uv_run(&loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&loop);
    fprintf(stderr, "p2p_bench serve: %s, %" PRIu64 " connections, %" PRIu64 " bytes served, %" PRIu64
            " requests refused, %" PRIu64 " errors\n", s.raw ? "raw" : "link", s.accepted, s.bytes, s.refused, s.errors);
    free(s.seg);
    sodium_memzero(&s.id, sizeof(s.id));
    return closed == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- fetch ---- */

typedef struct slot {
    int busy;
    uint32_t id, got;
    uint64_t seg;
    uint8_t *buf;
} slot;

typedef struct fetcher {
    uv_loop_t *loop;
    uv_timer_t guard;
    pc_link_identity id;
    pc_link *l;
    uint32_t seg_len;
    uint64_t segments, next_seg, verified, bytes, want;
    uint8_t expect[PC_B2_LEN];
    slot slots[FETCH_INFLIGHT];
    uint32_t next_id;
    uint64_t t0, t1;
    int done, failed;
    char why[200];
    /* raw */
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    uint8_t hdr[8];
    uint8_t *rbuf;
    int tcp_open;
} fetcher;

static void fetch_fail(fetcher *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fetch_fail(fetcher *f, const char *fmt, ...)
{
    if (f->failed || f->done)
        return;
    f->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->why, sizeof(f->why), fmt, ap);
    va_end(ap);
    uv_timer_stop(&f->guard);
    if (f->l != NULL)
        pc_link_close(f->l, 0);
    if (f->tcp_open) {
        f->tcp_open = 0;
        uv_close((uv_handle_t *)&f->tcp, NULL);
    }
    if (!uv_is_closing((uv_handle_t *)&f->guard))
        uv_close((uv_handle_t *)&f->guard, NULL);
}

static void fetch_finish(fetcher *f)
{
    f->done = 1;
    f->t1 = uv_hrtime();
    if (!uv_is_closing((uv_handle_t *)&f->guard))
        uv_close((uv_handle_t *)&f->guard, NULL);
}

static void on_guard(uv_timer_t *t)
{
    fetcher *f = t->data;
    fetch_fail(f, "timed out after %" PRIu64 " of %" PRIu64 " segments", f->verified, f->segments);
}

static void request_next(fetcher *f, slot *sl)
{
    sl->busy = 1;
    sl->id = f->next_id++;
    sl->seg = f->next_seg++;
    sl->got = 0;
    pc_wire_msg m = {.type = PC_MSG_REQUEST, .id = sl->id, .rung = 0, .seg = (uint32_t)sl->seg, .offset = 0,
                     .len = f->seg_len, .due_ms = PC_WIRE_NO_DEADLINE};
    uint8_t b[32];
    int rc = pc_link_send(f->l, b, pc_wire_msg_encode(&m, b));
    if (rc != 0)
        fetch_fail(f, "cannot send a request: %s", pc_strerror(rc));
}

static int f_on_up(void *arg, pc_link *l, const uint8_t key[PC_ED25519_PK_LEN], uint32_t up_kbps)
{
    fetcher *f = arg;
    for (int i = 0; i < FETCH_INFLIGHT && f->next_seg < f->segments && !f->failed; i++)
        request_next(f, &f->slots[i]);
    return 0;
}

static void f_on_data(fetcher *f, const pc_wire_msg *m)
{
    slot *sl = NULL;
    for (int i = 0; i < FETCH_INFLIGHT; i++)
        if (f->slots[i].busy && f->slots[i].id == m->id)
            sl = &f->slots[i];
    if (sl == NULL) {
        fetch_fail(f, "DATA for request %" PRIu32 ", which is not outstanding", m->id);
        return;
    }
    if (m->offset != sl->got || m->dlen > f->seg_len - sl->got) {
        fetch_fail(f, "DATA out of order or past the request (offset %" PRIu32 ", %" PRIu32 " bytes, have %" PRIu32 ")",
                   m->offset, m->dlen, sl->got);
        return;
    }
    memcpy(sl->buf + m->offset, m->data, m->dlen);
    sl->got += m->dlen;
    if (sl->got < f->seg_len)
        return;
    uint8_t h[PC_B2_LEN];
    pc_blake2b256(sl->buf, f->seg_len, h);
    if (sodium_memcmp(h, f->expect, sizeof(h)) != 0) {
        fetch_fail(f, "segment %" PRIu64 ": BLAKE2b-256 mismatch", sl->seg);
        return;
    }
    f->verified++;
    f->bytes += f->seg_len;
    sl->busy = 0;
    if (f->next_seg < f->segments) {
        request_next(f, sl);
    } else if (f->verified == f->segments) {
        fetch_finish(f);
        pc_link_close(f->l, 0);
    }
}

static void f_on_msg(void *arg, pc_link *l, const pc_wire_msg *m)
{
    fetcher *f = arg;
    if (f->failed || f->done)
        return;
    switch (m->type) {
    case PC_MSG_DATA: f_on_data(f, m); break;
    case PC_MSG_REFUSE: fetch_fail(f, "request %" PRIu32 " refused (reason %u)", m->id, (unsigned)m->reason); break;
    case PC_MSG_REQUEST: fetch_fail(f, "the seeder sent a REQUEST"); break;
    default: break;
    }
}

static void f_on_close(void *arg, pc_link *l, int err, const char *why)
{
    fetcher *f = arg;
    f->l = NULL;
    if (!f->done)
        fetch_fail(f, "link closed after %" PRIu64 " of %" PRIu64 " segments: %s", f->verified, f->segments, why);
}

static const pc_link_callbacks fetch_cb = {.on_up = f_on_up, .on_msg = f_on_msg, .on_close = f_on_close};

/* raw */

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    fetcher *f = h->data;
    buf->base = (char *)f->rbuf;
    buf->len = RAW_RBUF;
}

static void raw_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    fetcher *f = st->data;
    if (n == 0 || f->done || f->failed)
        return;
    if (n < 0) {
        fetch_fail(f, "connection ended after %" PRIu64 " of %" PRIu64 " bytes: %s", f->bytes, f->want,
                   uv_strerror((int)n));
        return;
    }
    if ((uint64_t)n > f->want - f->bytes) {
        fetch_fail(f, "the server sent more than asked");
        return;
    }
    f->bytes += (uint64_t)n;
    if (f->bytes == f->want) {
        fetch_finish(f);
        f->tcp_open = 0;
        uv_close((uv_handle_t *)&f->tcp, NULL);
    }
}

static void raw_written(uv_write_t *req, int status)
{
    fetcher *f = req->data;
    if (status < 0)
        fetch_fail(f, "cannot send the request: %s", uv_strerror(status));
}

static void raw_connected(uv_connect_t *req, int status)
{
    fetcher *f = req->data;
    if (f->failed)
        return;
    if (status < 0) {
        fetch_fail(f, "cannot connect: %s", uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&f->tcp, 1);
    for (int i = 0; i < 8; i++)
        f->hdr[i] = (uint8_t)(f->want >> (56 - 8 * i));
    uv_buf_t b = uv_buf_init((char *)f->hdr, sizeof(f->hdr));
    f->wr.data = f;
    int rc = uv_write(&f->wr, (uv_stream_t *)&f->tcp, &b, 1, raw_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&f->tcp, raw_alloc, raw_read);
    if (rc != 0)
        fetch_fail(f, "cannot start: %s", uv_strerror(rc));
}

static int cmd_fetch(const opts *o)
{
    fetcher *f = calloc(1, sizeof(*f));
    if (f == NULL)
        die("out of memory");
    if (o->seg_bytes == 0 || o->segments == 0)
        die("--segment-bytes and --segments are required");
    if (o->connect == NULL)
        die("--connect is required");
    f->seg_len = (uint32_t)o->seg_bytes;
    f->segments = o->segments;
    f->next_id = 1;
    struct sockaddr_storage ss;
    parse_addr(o->connect, &ss);
    if (o->raw) {
        f->want = o->seg_bytes * o->segments;
        f->rbuf = malloc(RAW_RBUF);
        if (f->rbuf == NULL)
            die("out of memory");
    } else {
        make_identity(o, &f->id);
        uint8_t *seg = make_segment(o->video, o->seg_bytes);
        pc_blake2b256(seg, f->seg_len, f->expect);
        free(seg);
        for (int i = 0; i < FETCH_INFLIGHT; i++)
            if ((f->slots[i].buf = malloc(f->seg_len)) == NULL)
                die("out of memory");
    }

    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        die("cannot start an event loop");
    f->loop = &loop;
    uv_timer_init(&loop, &f->guard);
    f->guard.data = f;
    uv_timer_start(&f->guard, on_guard, o->timeout_s * 1000, 0);
    f->t0 = uv_hrtime();
    if (o->raw) {
        uv_tcp_init(&loop, &f->tcp);
        f->tcp.data = f;
        f->tcp_open = 1;
        f->conn.data = f;
        int rc = uv_tcp_connect(&f->conn, &f->tcp, (struct sockaddr *)&ss, raw_connected);
        if (rc != 0)
            fetch_fail(f, "cannot connect: %s", uv_strerror(rc));
    } else {
        int rc = pc_link_connect(&loop, (struct sockaddr *)&ss, NULL, &f->id, &fetch_cb, f, &f->l);
        if (rc != 0)
            fetch_fail(f, "cannot connect: %s", pc_strerror(rc));
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int closed = uv_loop_close(&loop);
    int ok = f->done && !f->failed && closed == 0;
    if (ok)
        printf("{\"bytes\":%" PRIu64 ",\"seconds\":%.6f,\"verified\":%" PRIu64 "}\n", f->bytes,
               (double)(f->t1 - f->t0) / 1e9, f->verified);
    else
        fprintf(stderr, "p2p_bench fetch: %s\n", f->failed ? f->why : "the event loop did not finish cleanly");
    for (int i = 0; i < FETCH_INFLIGHT; i++)
        free(f->slots[i].buf);
    free(f->rbuf);
    sodium_memzero(&f->id, sizeof(f->id));
    free(f);
    return ok ? 0 : 1;
}

/* ---------------------------------------------------------------- cpu ---- */

static double secs_since(uint64_t t0)
{
    return (double)(uv_hrtime() - t0) / 1e9;
}

/* Seconds of one core per GB (1e9 bytes) for each step a verified encrypted byte goes through in user
 * space, measured on 128 KiB messages (one DATA payload) over |mib| MiB. */
static int cmd_cpu(const opts *o)
{
    size_t msg = PC_WIRE_DATA_MAX, n = (size_t)(o->mib * 1024 * 1024 / msg);
    uint8_t *a = malloc(msg + 64);
    uint8_t *big = malloc(2u * 1024 * 1024);
    if (a == NULL || big == NULL)
        die("out of memory");
    randombytes_buf(a, msg + 64);
    randombytes_buf(big, 2u * 1024 * 1024);
    uint8_t key[32], tag[16], h[32];
    randombytes_buf(key, sizeof(key));
    double gb = (double)n * (double)msg / 1e9;

    /* the records' own code (pc_wire_seal / pc_wire_open), as the links run it */
    pc_wire_keys ks, ko, kr;
    memset(&ks, 0, sizeof(ks));
    memcpy(ks.tx, key, 32);
    ko = ks;
    memset(&kr, 0, sizeof(kr));
    memcpy(kr.rx, key, 32);
    uint8_t *rec = malloc(msg + 4 + PC_WIRE_TAG_LEN);
    if (rec == NULL)
        die("out of memory");
    memcpy(rec + 4, a, msg);
    uint64_t t0 = uv_hrtime();
    for (size_t i = 0; i < n; i++)
        (void)pc_wire_seal(&ks, rec, msg);
    double seal = secs_since(t0) / gb;

    /* open what we seal: one seal per open, timed apart */
    double open_s = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(rec + 4, a, msg);
        size_t rl = pc_wire_seal(&ko, rec, msg);
        uint8_t *m;
        size_t ml, used;
        t0 = uv_hrtime();
        if (pc_wire_open(&kr, rec, rl, &m, &ml, &used) != 0)
            die("self-test: open failed");
        open_s += secs_since(t0);
    }
    tag[0] = rec[4];
    free(rec);
    double open = open_s / gb;

    size_t reps = (size_t)(o->mib / 2);
    if (reps == 0)
        reps = 1;
    double hgb = (double)reps * 2.0 * 1024 * 1024 / 1e9;
    /* each library pc_crypto_init chooses between, then the one it chose (what the runs use) */
    pc_b2_impl chosen = pc_b2_current();
    double lib[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        if (pc_b2_use(k == 0 ? PC_B2_SODIUM : PC_B2_GCRYPT) != 0)
            continue;
        t0 = uv_hrtime();
        for (size_t i = 0; i < reps; i++) {
            big[0] = (uint8_t)i;
            pc_blake2b256(big, 2u * 1024 * 1024, h);
        }
        lib[k] = secs_since(t0) / hgb;
    }
    if (pc_b2_use(chosen) != 0)
        die("self-test: cannot restore the BLAKE2b library");
    double hash = lib[chosen == PC_B2_GCRYPT ? 1 : 0];

    uint8_t *dst = malloc(2u * 1024 * 1024);
    if (dst == NULL)
        die("out of memory");
    t0 = uv_hrtime();
    for (size_t i = 0; i < reps; i++)
        for (size_t off = 0; off < 2u * 1024 * 1024; off += msg) {
            big[off] = (uint8_t)i;
            memcpy(dst + off, big + off, msg);
        }
    double copy = secs_since(t0) / hgb;
    printf("{\"seal_s_per_gb\":%.4f,\"open_s_per_gb\":%.4f,\"blake2b_s_per_gb\":%.4f,\"blake2b_lib\":\"%s\","
           "\"blake2b_sodium_s_per_gb\":%.4f,\"blake2b_gcrypt_s_per_gb\":%.4f,\"memcpy_s_per_gb\":%.4f,\"check\":%u}\n",
           seal, open, hash, pc_b2_name(chosen), lib[0], lib[1], copy, (unsigned)(h[0] ^ dst[5] ^ tag[0]));
    free(a);
    free(big);
    free(dst);
    return 0;
}

/* ---------------------------------------------------------------- main ---- */

static int cmd_keygen(const char *path)
{
    uint8_t pk[PC_ED25519_PK_LEN], sk[PC_ED25519_SK_LEN];
    int rc = pc_ed25519_load_or_create(path, pk, sk);
    sodium_memzero(sk, sizeof(sk));
    if (rc != 0)
        die("%s: %s", path, pc_strerror(rc));
    return 0;
}

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
    fprintf(stderr,
            "usage: p2p_bench keygen FILE\n"
            "       p2p_bench serve --listen HOST:PORT --tracker-sk FILE --video V --segment-bytes N [--raw] [--corrupt]\n"
            "       p2p_bench fetch --connect HOST:PORT --tracker-sk FILE --video V --segment-bytes N --segments K\n"
            "                       [--raw] [--timeout S]\n"
            "       p2p_bench cpu [--mib M]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (pc_crypto_init() != 0)
        die("cannot initialise libsodium");
    signal(SIGPIPE, SIG_IGN);
    pc_log_set_level(PC_LOG_WARN);
    if (strcmp(argv[1], "keygen") == 0) {
        if (argc != 3)
            usage();
        return cmd_keygen(argv[2]);
    }
    opts o;
    parse_opts(argc, argv, &o);
    if (strcmp(argv[1], "serve") == 0)
        return cmd_serve(&o);
    if (strcmp(argv[1], "fetch") == 0)
        return cmd_fetch(&o);
    if (strcmp(argv[1], "cpu") == 0)
        return cmd_cpu(&o);
    usage();
}
