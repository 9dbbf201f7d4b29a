/*
 * Peer links on libuv (link.h): TCP, the handshake of docs/protocol.md, sealed records, keep-alives.
 *
 * Handshake (both HELLOs are plaintext, so is each AUTH):
 *   connector → HELLO_C
 *   acceptor  → HELLO_S, AUTH_S   (after checking HELLO_C's ticket)
 *   connector → AUTH_C            (after checking HELLO_S's ticket and AUTH_S)
 * and both derive the record keys. The link is up for the acceptor when AUTH_C verifies, for the
 * connector when it has sent AUTH_C.
 */
#include "link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pc_http_server.h"
#include "pc_log.h"

enum { ST_CONNECTING, ST_HELLO, ST_AUTH, ST_UP, ST_CLOSING };

#define RBUF_CAP (PC_WIRE_RECORD_MAX + 64 * 1024)

struct pc_link {
    uv_tcp_t tcp;
    uv_timer_t tick, resume;
    uv_connect_t connect;
    int handles;                  /* open libuv handles; freed at 0 */
    int state, role;
    const pc_link_identity *id;
    pc_link_callbacks cb;
    void *arg, *user;
    uint8_t expect_key[PC_ED25519_PK_LEN];
    int has_expect;
    uint8_t their_key[PC_ED25519_PK_LEN];
    uint32_t their_up_kbps;
    uint64_t their_expires;       /* their ticket's (unix s, the tracker's clock): the link ends then */
    uint64_t my_expires;          /* the ticket we last showed them */
    uint8_t kx_pk[32], kx_sk[32], their_kx[32];
    uint8_t hello_c[PC_WIRE_HELLO_MAX], hello_s[PC_WIRE_HELLO_MAX];
    size_t hello_c_len, hello_s_len;
    pc_wire_keys keys;
    uint8_t *rbuf;
    size_t rlen;
    int reading, paused, shutting;
    uint64_t shut_ms;
    size_t queued;
    size_t nwrites;               /* queued in so many writes: with their bookkeeping, under PC_LINK_QUEUE_MAX */
    uint64_t submitted;           /* bytes handed to libuv */
    uint64_t slow_ms, slow_acked; /* since when the queue has not been empty, and acked() then */
    int emptied;                  /* the queue was empty at some point since the last tick */
    uint64_t created_ms, last_rx_ms, last_tx_ms, last_ping_ms;
    uint64_t ping_nonce;          /* of the PING we sent last, until its PONG (0: none outstanding) */
    uint64_t ping_sent_us;        /* when it was sent */
    int close_err;
    char why[128];
    char name[64];
};

typedef struct wreq {
    uv_write_t req;
    pc_link *l;
    size_t len;
    uint8_t buf[];
} wreq;

static uint64_t now_ms(const pc_link *l)
{
    return uv_now(l->tcp.loop);
}

static void on_handle_closed(uv_handle_t *h)
{
    pc_link *l = h->data;
    if (--l->handles > 0)
        return;
    l->cb.on_close(l->arg, l, l->close_err, l->why);
    free(l->rbuf);
    sodium_memzero(&l->keys, sizeof(l->keys));
    sodium_memzero(l->kx_sk, sizeof(l->kx_sk));
    free(l);
}

/* Closes at once, recording why (the first reason wins). */
static void fail(pc_link *l, int err, const char *why)
{
    if (l->state == ST_CLOSING)
        return;
    if (err != 0)
        PC_LOGD("link", "%s: %s", l->name, why);
    l->state = ST_CLOSING;
    l->close_err = err;
    snprintf(l->why, sizeof(l->why), "%s", why);
    uv_close((uv_handle_t *)&l->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&l->tick, on_handle_closed);
    uv_close((uv_handle_t *)&l->resume, on_handle_closed);
}

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    pc_link *l = w->l;
    size_t before = l->queued;
    l->queued -= w->len;
    l->emptied |= l->queued == 0;
    l->nwrites--;
    free(w);
    if (status < 0) {
        fail(l, PC_ENET, uv_strerror(status));
        return;
    }
    if (l->state == ST_UP && before >= PC_LINK_LOW_MARK && l->queued < PC_LINK_LOW_MARK && l->cb.on_writable != NULL)
        l->cb.on_writable(l->arg, l);
}

static wreq *wreq_new(pc_link *l, size_t len)
{
    wreq *w = malloc(sizeof(*w) + len);
    if (w != NULL) {
        w->l = l;
        w->len = len;
    }
    return w;
}

static int write_out(pc_link *l, wreq *w)
{
    if (l->queued + w->len + (l->nwrites + 1) * sizeof(*w) > PC_LINK_QUEUE_MAX) {
        free(w);
        fail(l, PC_ELIMIT, "the peer asks for more than it reads (write queue full)");
        return PC_ELIMIT;
    }
    uv_buf_t b = uv_buf_init((char *)w->buf, (unsigned)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, on_written);
    if (rc < 0) {
        free(w);
        fail(l, PC_ENET, uv_strerror(rc));
        return PC_ENET;
    }
    l->queued += w->len;
    l->submitted += w->len;
    l->nwrites++;
    l->last_tx_ms = now_ms(l);
    return 0;
}

static int send_plain(pc_link *l, const uint8_t *data, size_t len)
{
    wreq *w = wreq_new(l, len);
    if (w == NULL)
        return PC_ENOMEM;
    memcpy(w->buf, data, len);
    return write_out(l, w);
}

int pc_link_send(pc_link *l, const uint8_t *msg, size_t len)
{
    if (l->state != ST_UP || l->shutting)
        return PC_ECANCELED;
    if (len == 0 || len > PC_WIRE_PLAIN_MAX)
        return PC_EINVAL;
    wreq *w = wreq_new(l, 4 + len + PC_WIRE_TAG_LEN);
    if (w == NULL)
        return PC_ENOMEM;
    memcpy(w->buf + 4, msg, len);
    pc_wire_seal(&l->keys, w->buf, len);
    return write_out(l, w);
}

int pc_link_send_data(pc_link *l, uint32_t id, uint32_t offset, const uint8_t *data, uint32_t dlen)
{
    if (l->state != ST_UP || l->shutting)
        return PC_ECANCELED;
    if (dlen == 0 || dlen > PC_WIRE_DATA_MAX)
        return PC_EINVAL;
    size_t plen = 9 + (size_t)dlen;
    wreq *w = wreq_new(l, 4 + plen + PC_WIRE_TAG_LEN);
    if (w == NULL)
        return PC_ENOMEM;
    pc_wire_data_header(id, offset, w->buf + 4);
    memcpy(w->buf + 4 + 9, data, dlen);
    pc_wire_seal(&l->keys, w->buf, plen);
    return write_out(l, w);
}

size_t pc_link_queued(const pc_link *l)
{
    return l->queued;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    pc_link *l = req->data;
    free(req);
    fail(l, 0, "closed");
}

void pc_link_close(pc_link *l, uint8_t reason)
{
    if (l->state == ST_CLOSING || l->shutting)
        return;
    if (l->state == ST_UP) {
        /* BYE, then a shutdown that lets queued writes go out first; the tick timer bounds the wait */
        pc_wire_msg m = {.type = PC_MSG_BYE, .reason = reason};
        uint8_t b[32];
        (void)pc_link_send(l, b, pc_wire_msg_encode(&m, b));
        uv_shutdown_t *req = malloc(sizeof(*req));
        if (req != NULL) {
            req->data = l;
            l->shutting = 1;
            l->shut_ms = now_ms(l);
            if (uv_shutdown(req, (uv_stream_t *)&l->tcp, on_shutdown) == 0)
                return;
            free(req);
        }
    }
    fail(l, 0, "closed");
}

int pc_link_is_up(const pc_link *l)
{
    return l->state == ST_UP && !l->shutting;
}

int pc_link_hello_taken(const pc_link *l)
{
    return l->state == ST_AUTH || l->state == ST_UP;
}

const uint8_t *pc_link_hello_key(const pc_link *l)
{
    return pc_link_hello_taken(l) ? l->their_key : NULL;
}

uint64_t pc_link_age_ms(const pc_link *l)
{
    return now_ms(l) - l->created_ms;
}

int pc_link_is_connector(const pc_link *l)
{
    return l->role == PC_WIRE_CONNECTOR;
}

const char *pc_link_peer_name(const pc_link *l)
{
    return l->name;
}

void pc_link_set_user(pc_link *l, void *user)
{
    l->user = user;
}

void *pc_link_user(const pc_link *l)
{
    return l->user;
}

/* ---- handshake ---- */

static int make_hello(pc_link *l, uint8_t *out, size_t *len)
{
    pc_wire_hello h = {.role = (uint8_t)l->role, .ticket_len = l->id->ticket_len, .up_kbps = l->id->up_kbps};
    l->my_expires = pc_ticket_expires_of(l->id->ticket, l->id->ticket_len);
    memcpy(h.kx_pk, l->kx_pk, 32);
    memcpy(h.ticket, l->id->ticket, l->id->ticket_len);
    int n = pc_wire_hello_encode(&h, out);
    if (n < 0)
        return n;
    *len = (size_t)n;
    return 0;
}

/* Checks the other side's HELLO: a ticket for this video, unexpired, signed by the tracker. */
static int check_hello(pc_link *l, const pc_wire_hello *h)
{
    if (h->role == l->role) {
        fail(l, PC_EPARSE, "the other side claims our role");
        return -1;
    }
    pc_ticket t;
    /* one signature check: pc_ticket_check would open it again (two Ed25519 verifications a HELLO, from
     * anyone who connects) */
    int rc = pc_ticket_open(l->id->tracker_pk, h->ticket, h->ticket_len, &t);
    if (rc == 0)
        rc = pc_ticket_check_opened(&t, l->id->video, t.key, pc_link_wall_now(l->id));
    if (rc == 0 && l->has_expect && memcmp(t.key, l->expect_key, 32) != 0)
        rc = PC_EWRONGKEY;
    if (rc == 0 && memcmp(t.key, l->id->pk, 32) == 0)
        rc = PC_EEXIST; /* ourselves */
    if (rc != 0) {
        char why[96];
        snprintf(why, sizeof(why), "refused: ticket %s", pc_err_name(rc));
        fail(l, rc == PC_EEXIST ? PC_EEXIST : PC_EFORBIDDEN, why);
        return -1;
    }
    memcpy(l->their_key, t.key, 32);
    l->their_expires = t.expires;
    memcpy(l->their_kx, h->kx_pk, 32);
    l->their_up_kbps = h->up_kbps;
    return 0;
}

/* Bytes the other side's TCP has acknowledged: it grows as the other side reads, byte by byte, where a
 * count of completed writes would move only once a whole write (up to 128 KiB) went out. */
static uint64_t acked(pc_link *l)
{
    uint64_t held = pc_tcp_unacked(&l->tcp);
    return l->submitted > held ? l->submitted - held : 0;
}

static void go_up(pc_link *l)
{
    if (pc_wire_keys_derive(&l->keys, (uint8_t)l->role, l->kx_pk, l->kx_sk, l->their_kx) != 0) {
        fail(l, PC_EFORBIDDEN, "refused: unusable key exchange key");
        return;
    }
    sodium_memzero(l->kx_sk, sizeof(l->kx_sk));
    l->state = ST_UP;
    l->last_ping_ms = now_ms(l);
    l->slow_ms = l->last_ping_ms;
    l->slow_acked = acked(l);
    int bye = l->cb.on_up(l->arg, l, l->their_key, l->their_up_kbps);
    if (bye != 0 && l->state != ST_CLOSING)
        pc_link_close(l, bye < 0 ? PC_BYE_NORMAL : (uint8_t)bye);
    else if (bye == 0)
        pc_link_send_ticket(l); /* one renewed while the handshake went on */
}

static void transcript(const pc_link *l, uint8_t t[32])
{
    pc_wire_transcript(l->hello_c, l->hello_c_len, l->hello_s, l->hello_s_len, t);
}

/* Consumes handshake bytes from rbuf; returns bytes used, 0 for "need more", -1 after failing. */
static long handshake_input(pc_link *l)
{
    if (l->state == ST_HELLO) {
        pc_wire_hello h;
        size_t used = 0;
        int rc = pc_wire_hello_decode(l->rbuf, l->rlen, &h, &used);
        if (rc == PC_EAGAIN)
            return 0;
        if (rc != 0) {
            fail(l, PC_EFORBIDDEN, "refused: not a peercdn HELLO");
            return -1;
        }
        if (check_hello(l, &h) != 0)
            return -1;
        if (l->role == PC_WIRE_ACCEPTOR) {
            memcpy(l->hello_c, l->rbuf, used);
            l->hello_c_len = used;
            if (make_hello(l, l->hello_s, &l->hello_s_len) != 0) {
                fail(l, PC_EINVAL, "no ticket to present");
                return -1;
            }
            uint8_t t[32], out[PC_WIRE_HELLO_MAX + PC_WIRE_AUTH_LEN];
            transcript(l, t);
            memcpy(out, l->hello_s, l->hello_s_len);
            pc_wire_auth_sign(l->id->sk, PC_WIRE_ACCEPTOR, t, out + l->hello_s_len);
            if (send_plain(l, out, l->hello_s_len + PC_WIRE_AUTH_LEN) != 0)
                return -1;
        } else {
            memcpy(l->hello_s, l->rbuf, used);
            l->hello_s_len = used;
        }
        l->state = ST_AUTH;
        return (long)used;
    }
    /* ST_AUTH: the other side's signature over the transcript */
    if (l->rlen < PC_WIRE_AUTH_LEN)
        return 0;
    uint8_t t[32];
    transcript(l, t);
    uint8_t their_role = l->role == PC_WIRE_CONNECTOR ? PC_WIRE_ACCEPTOR : PC_WIRE_CONNECTOR;
    if (pc_wire_auth_verify(l->their_key, their_role, t, l->rbuf) != 0) {
        fail(l, PC_EFORBIDDEN, "refused: the handshake signature does not verify");
        return -1;
    }
    if (l->role == PC_WIRE_CONNECTOR) {
        uint8_t sig[PC_WIRE_AUTH_LEN];
        pc_wire_auth_sign(l->id->sk, PC_WIRE_CONNECTOR, t, sig);
        if (send_plain(l, sig, sizeof(sig)) != 0)
            return -1;
    }
    go_up(l);
    return l->state == ST_CLOSING ? -1 : PC_WIRE_AUTH_LEN;
}

/* ---- reading ---- */

static void on_resume_timer(uv_timer_t *t);

/* The shared download bucket is charged on its owner's clock (pc_link_identity.t0_us): mixing clocks
 * would refill it with the difference. */
static uint64_t bucket_now(const pc_link *l)
{
    return uv_hrtime() / 1000 - l->id->t0_us;
}

int64_t pc_link_local_now(const pc_link_identity *id)
{
    return (int64_t)time(NULL) + id->shift_s;
}

uint64_t pc_link_wall_now(const pc_link_identity *id)
{
    int64_t t = pc_link_local_now(id) + id->skew_s;
    return t > 0 ? (uint64_t)t : 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pc_link *l = h->data;
    buf->base = (char *)l->rbuf + l->rlen;
    buf->len = RBUF_CAP - l->rlen;
}

/* The other side's renewed ticket: for the same key and video, unexpired, signed by the tracker; the link
 * then lasts until it expires. Anything else closes the link (a protocol error). */
static int take_ticket(pc_link *l, const pc_wire_msg *m)
{
    pc_ticket t;
    int rc = pc_ticket_open(l->id->tracker_pk, m->data, m->dlen, &t);
    if (rc == 0)
        rc = pc_ticket_check_opened(&t, l->id->video, l->their_key, pc_link_wall_now(l->id));
    if (rc != 0) {
        char why[96];
        snprintf(why, sizeof(why), "a renewed ticket that does not check: %s", pc_err_name(rc));
        PC_LOGD("link", "%s: %s", l->name, why);
        pc_link_close(l, PC_BYE_PROTOCOL);
        return -1;
    }
    if (t.expires > l->their_expires)
        l->their_expires = t.expires;
    return 0;
}

void pc_link_send_ticket(pc_link *l)
{
    uint64_t e = pc_ticket_expires_of(l->id->ticket, l->id->ticket_len);
    if (l->state != ST_UP || l->shutting || l->id->ticket_len == 0 || e <= l->my_expires)
        return;
    uint8_t b[1 + PC_TICKET_MAX];
    b[0] = PC_MSG_TICKET;
    memcpy(b + 1, l->id->ticket, l->id->ticket_len);
    if (pc_link_send(l, b, 1 + l->id->ticket_len) == 0) /* a failure closes the link */
        l->my_expires = e;
}

static void handle_ping(pc_link *l, const pc_wire_msg *m)
{
    if (m->type == PC_MSG_PING) {
        pc_wire_msg r = {.type = PC_MSG_PONG, .nonce = m->nonce};
        uint8_t b[32];
        (void)pc_link_send(l, b, pc_wire_msg_encode(&r, b)); /* a failure closes the link */
        return;
    }
    /* only the answer to our last PING is a sample: an unasked PONG with a recent nonce would let a
     * peer claim any round trip it likes (0 µs, to look like the nearest source) */
    uint64_t now = uv_hrtime() / 1000;
    if (m->nonce == 0 || m->nonce != l->ping_nonce)
        return;
    l->ping_nonce = 0;
    if (l->ping_sent_us <= now && l->cb.on_rtt != NULL)
        l->cb.on_rtt(l->arg, l, now - l->ping_sent_us);
}

static void process(pc_link *l)
{
    size_t off = 0;
    while (l->state != ST_CLOSING && off < l->rlen) {
        if (l->state != ST_UP) {
            memmove(l->rbuf, l->rbuf + off, l->rlen - off);
            l->rlen -= off;
            off = 0;
            long used = handshake_input(l);
            if (used <= 0)
                return;
            off = (size_t)used;
            continue;
        }
        uint8_t *msg;
        size_t mlen, used;
        int rc = pc_wire_open(&l->keys, l->rbuf + off, l->rlen - off, &msg, &mlen, &used);
        if (rc == PC_EAGAIN)
            break;
        if (rc != 0) {
            fail(l, PC_EFORBIDDEN, rc == PC_ETOOBIG ? "record length out of range" : "record failed authentication");
            return;
        }
        off += used;
        pc_wire_msg m;
        if (pc_wire_msg_decode(msg, mlen, &m) != 0) {
            fail(l, PC_EPARSE, "malformed message");
            return;
        }
        if (m.type == PC_MSG_PING || m.type == PC_MSG_PONG) {
            handle_ping(l, &m);
        } else if (m.type == PC_MSG_TICKET) {
            if (take_ticket(l, &m) != 0)
                return;
        } else if (m.type == PC_MSG_BYE) {
            fail(l, PC_ECANCELED, "the other side said goodbye");
            return;
        } else if (!l->shutting) {
            l->cb.on_msg(l->arg, l, &m);
        }
    }
    if (l->state == ST_CLOSING)
        return;
    memmove(l->rbuf, l->rbuf + off, l->rlen - off);
    l->rlen -= off;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    pc_link *l = s->data;
    if (n < 0) {
        fail(l, n == UV_EOF ? PC_ECANCELED : PC_ENET, n == UV_EOF ? "the other side closed" : uv_strerror((int)n));
        return;
    }
    if (n == 0)
        return;
    l->rlen += (size_t)n;
    l->last_rx_ms = now_ms(l);
    if (l->id->down != NULL)
        pc_tbucket_charge(l->id->down, (uint64_t)n, bucket_now(l));
    process(l);
    if (l->state == ST_CLOSING)
        return;
    if (l->rlen == RBUF_CAP) { /* cannot happen with records ≤ PC_WIRE_RECORD_MAX, but never spin */
        fail(l, PC_ETOOBIG, "receive buffer full");
        return;
    }
    if (l->id->down != NULL) {
        uint64_t wait = pc_tbucket_wait(l->id->down, 16384, bucket_now(l));
        if (wait > 0 && !l->paused) {
            l->paused = 1;
            uv_read_stop((uv_stream_t *)&l->tcp);
            uv_timer_start(&l->resume, on_resume_timer, wait / 1000 + 1, 0);
        }
    }
}

static void on_resume_timer(uv_timer_t *t)
{
    pc_link_resume(t->data);
}

void pc_link_resume(pc_link *l)
{
    if (l->state == ST_CLOSING || !l->paused)
        return;
    uint64_t wait = l->id->down != NULL ? pc_tbucket_wait(l->id->down, 16384, bucket_now(l)) : 0;
    if (wait > 0) {
        uv_timer_start(&l->resume, on_resume_timer, wait / 1000 + 1, 0);
        return;
    }
    l->paused = 0;
    if (uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) != 0)
        fail(l, PC_ENET, "cannot read");
}

/* ---- timers ---- */

static void on_tick(uv_timer_t *t)
{
    pc_link *l = t->data;
    uint64_t now = now_ms(l);
    if (l->shutting) {
        if (now - l->shut_ms >= 2000)
            fail(l, 0, "closed");
        return;
    }
    if (l->state != ST_UP) {
        if (now - l->created_ms >= PC_LINK_HANDSHAKE_MS)
            fail(l, PC_ETIMEDOUT, "handshake timed out");
        return;
    }
    if (now - l->last_rx_ms >= PC_LINK_IDLE_MS && !l->paused) {
        fail(l, PC_ETIMEDOUT, "the other side went silent");
        return;
    }
    /* a ticket is the tracker's word for a while (a distrusted key, a media token that expired, get no new
     * one): a link lasts as long as the other side's, renewed over the link (TICKET). Before, a link
     * outlived its ticket without end (found by review) */
    if (pc_link_wall_now(l->id) >= l->their_expires) {
        PC_LOGD("link", "%s: the other side's ticket expired", l->name);
        pc_link_close(l, PC_BYE_NORMAL);
        return;
    }
    if (l->queued == 0 || l->emptied) {
        l->emptied = 0;
        l->slow_ms = now;
        l->slow_acked = acked(l);
    } else if (now - l->slow_ms >= PC_LINK_SLOW_MS) {
        uint64_t a = acked(l);
        if (a < l->slow_acked + PC_LINK_SLOW_BYTES) {
            fail(l, PC_ETIMEDOUT, "the other side does not read what it asked for");
            return;
        }
        l->slow_ms = now;
        l->slow_acked = a;
    }
    if (now - l->last_ping_ms >= PC_LINK_PING_MS) {
        l->last_ping_ms = now;
        /* random: the sender's clock, as it was, told a peer when the next PING would go within a
         * millisecond or so, and 1500 guessed PONGs sent ahead of it made one match, a round trip of
         * nearly 0 that makes it look the nearest source (found by review) */
        pc_wire_msg m = {.type = PC_MSG_PING};
        do
            randombytes_buf(&m.nonce, sizeof(m.nonce));
        while (m.nonce == 0);
        l->ping_nonce = m.nonce;
        l->ping_sent_us = uv_hrtime() / 1000;
        uint8_t b[32];
        (void)pc_link_send(l, b, pc_wire_msg_encode(&m, b));
    }
}

/* ---- setup ---- */

static pc_link *link_new(uv_loop_t *loop, int role, const pc_link_identity *id, const pc_link_callbacks *cb, void *arg)
{
    pc_link *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->rbuf = malloc(RBUF_CAP);
    if (l->rbuf == NULL) {
        free(l);
        return NULL;
    }
    l->role = role;
    l->id = id;
    l->cb = *cb;
    l->arg = arg;
    crypto_kx_keypair(l->kx_pk, l->kx_sk);
    uv_tcp_init(loop, &l->tcp);
    uv_timer_init(loop, &l->tick);
    uv_timer_init(loop, &l->resume);
    l->tcp.data = l->tick.data = l->resume.data = l;
    l->handles = 3;
    l->created_ms = l->last_rx_ms = uv_now(loop);
    uv_timer_start(&l->tick, on_tick, 1000, 1000);
    return l;
}

static void name_of(const struct sockaddr *sa, char *out, size_t n)
{
    char host[64] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)sa, host, sizeof(host));
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
        snprintf(out, n, "%s:%d", host, port);
    } else if (sa->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)sa, host, sizeof(host));
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
        snprintf(out, n, "[%s]:%d", host, port);
    } else {
        snprintf(out, n, "?");
    }
}

static int start_reading(pc_link *l)
{
    uv_tcp_nodelay(&l->tcp, 1);
    l->reading = 1;
    return uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) == 0 ? 0 : PC_ENET;
}

static void on_connected(uv_connect_t *req, int status)
{
    pc_link *l = req->data;
    if (l->state == ST_CLOSING)
        return;
    if (status < 0) {
        fail(l, PC_ENET, uv_strerror(status));
        return;
    }
    l->state = ST_HELLO;
    if (make_hello(l, l->hello_c, &l->hello_c_len) != 0) {
        fail(l, PC_EINVAL, "no ticket to present");
        return;
    }
    if (send_plain(l, l->hello_c, l->hello_c_len) != 0 || start_reading(l) != 0)
        fail(l, PC_ENET, "cannot start the handshake");
}

int pc_link_connect(uv_loop_t *loop, const struct sockaddr *addr, const uint8_t *expect_key,
                    const pc_link_identity *id, const pc_link_callbacks *cb, void *arg, pc_link **out)
{
    *out = NULL;
    pc_link *l = link_new(loop, PC_WIRE_CONNECTOR, id, cb, arg);
    if (l == NULL)
        return PC_ENOMEM;
    if (expect_key != NULL) {
        memcpy(l->expect_key, expect_key, 32);
        l->has_expect = 1;
    }
    name_of(addr, l->name, sizeof(l->name));
    l->state = ST_CONNECTING;
    l->connect.data = l;
    int rc = uv_tcp_connect(&l->connect, &l->tcp, addr, on_connected);
    if (rc < 0) {
        fail(l, PC_EINVAL, uv_strerror(rc)); /* on_close reports it from the loop */
    }
    *out = l;
    return 0;
}

int pc_link_accept(uv_stream_t *server, const pc_link_identity *id, const pc_link_callbacks *cb, void *arg,
                   pc_link **out)
{
    *out = NULL;
    pc_link *l = link_new(server->loop, PC_WIRE_ACCEPTOR, id, cb, arg);
    if (l == NULL)
        return PC_ENOMEM;
    if (uv_accept(server, (uv_stream_t *)&l->tcp) != 0) {
        fail(l, PC_EIO, "accept failed");
        *out = l;
        return 0;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&ss, &sl) == 0)
        name_of((struct sockaddr *)&ss, l->name, sizeof(l->name));
    l->state = ST_HELLO;
    if (start_reading(l) != 0)
        fail(l, PC_ENET, "cannot read");
    *out = l;
    return 0;
}
