/*
 * The peer client's core (client.h): trust bootstrap, the engine's I/O shell, peer links, uploads and
 * the tracker. CDN fetches are in cdn.c, the local HLS endpoint in hls.c, the report in report.c.
 *
 * Every callback takes "now" once (pc_client_now: monotonic µs since start), feeds the engine, and
 * asks for a drive (pc_client_kick): the engine's actions are carried out from a zero timer on the
 * loop, never from inside a libcurl callback, and the engine timer is re-armed after each drive. A
 * callback that forgets the kick cannot leave actions waiting for the engine's next timer: before the
 * loop waits for I/O, a prepare handle drives an engine that has actions (on_settle).
 */
#include "client_internal.h"
#include "pc_cli.h"
#include "pc_http_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pc_crypto.h"
#include "pc_http_server.h"
#include "pc_fs.h"
#include "pc_json.h"
#include "pc_log.h"

#define NUMWANT 30 /* peers asked of the tracker while a link is free */

static void drive(client *c);
static void announce(client *c, const char *event);
static void pump(client *c, plink *pl);
static void begin_shutdown(client *c, int code);

void pc_client_config_default(pc_client_config *c)
{
    memset(c, 0, sizeof(*c));
    c->listen = NULL; /* [::]:0, both families (0.0.0.0:0 where IPv6 is off) */
    c->rendition = "auto";
    c->mem_cap = 1024u << 20;
    c->max_links = 24;
    c->hls_linger_s = 30;
    c->max_wait_s = 120;
}

int pc_client_query_valid(const char *q)
{
    size_t n = strlen(q);
    if (n == 0 || n > PC_CLIENT_QUERY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)q[i] <= 0x20 || (unsigned char)q[i] >= 0x7f || strchr("#<>\"\\^`{|}", q[i]) != NULL)
            return 0;
    return 1;
}

uint64_t pc_client_now(const client *c)
{
    return uv_hrtime() / 1000 - c->t0_us;
}

static void on_kick(uv_timer_t *t)
{
    client *c = t->data;
    c->kicked = 0;
    drive(c);
}

/* Before each wait for I/O: actions an engine call queued whose caller did not kick (the endpoint's
 * re-asked demands once waited 17 s for the engine's timer that way) are carried out now. */
static void on_settle(uv_prepare_t *p)
{
    client *c = p->data;
    if (c->e != NULL && pc_engine_has_actions(c->e))
        drive(c);
}

void pc_client_settle(client *c)
{
    if (c->e != NULL && pc_engine_has_actions(c->e))
        drive(c);
}

void pc_client_kick(client *c)
{
    if (!c->kicked) {
        c->kicked = 1;
        uv_timer_start(&c->kick, on_kick, 0, 0);
    }
}

/* ---- bookkeeping ---- */

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap == 0 ? 16 : *cap * 2;
    void *p = realloc(*arr, nc * elem);
    if (p == NULL)
        return PC_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

static dl *dl_find(client *c, uint64_t transfer)
{
    for (size_t i = 0; i < c->ndls; i++)
        if (c->dls[i]->transfer == transfer && !c->dls[i]->seed)
            return c->dls[i];
    return NULL;
}

static dl *dl_find_wire(client *c, plink *pl, uint32_t wire_id)
{
    for (size_t i = 0; i < c->ndls; i++)
        if (c->dls[i]->pl == pl && c->dls[i]->wire_id == wire_id)
            return c->dls[i];
    return NULL;
}

static void dl_free(client *c, dl *d)
{
    for (size_t i = 0; i < c->ndls; i++)
        if (c->dls[i] == d) {
            c->dls[i] = c->dls[--c->ndls];
            break;
        }
    if (d->pl == NULL)
        pc_cdn_cancel(c, d);
    if (d->seed && d->buf != NULL) {
        free(d->buf->buf);
        free(d->buf);
    }
    free(d);
}

static up *up_find(client *c, uint64_t request)
{
    for (size_t i = 0; i < c->nups; i++)
        if (c->ups[i]->request == request)
            return c->ups[i];
    return NULL;
}

static up *up_find_wire(client *c, plink *pl, uint32_t wire_id)
{
    for (size_t i = 0; i < c->nups; i++)
        if (c->ups[i]->pl == pl && c->ups[i]->wire_id == wire_id)
            return c->ups[i];
    return NULL;
}

static void up_free(client *c, up *u)
{
    for (size_t i = 0; i < c->nups; i++)
        if (c->ups[i] == u) {
            /* keep the order: uploads on a link are served first come, first served */
            memmove(&c->ups[i], &c->ups[i + 1], (c->nups - i - 1) * sizeof(up *));
            c->nups--;
            break;
        }
    if (u->blob != NULL)
        pc_blob_release(u->blob);
    free(u);
}

static plink *plink_by_handle(client *c, uint32_t handle)
{
    for (plink *p = c->links; p != NULL; p = p->next)
        if (p->handle == handle)
            return p;
    return NULL;
}

static int is_banned(const client *c, const uint8_t key[32])
{
    for (uint32_t i = 0; i < c->nbanned; i++)
        if (memcmp(c->banned[i], key, 32) == 0)
            return 1;
    return 0;
}

asmbuf *pc_client_asm(client *c, uint32_t rung, uint32_t seg)
{
    asmbuf *a = seg == PC_SEG_INIT ? &c->asm_init[rung] : &c->asm_seg[seg];
    uint32_t size = pc_peer_media_size(&c->pm, rung, seg);
    if (a->buf != NULL && a->rung != rung) { /* the engine restarts another rung's copy from 0 */
        free(a->buf);
        a->buf = NULL;
    }
    if (a->buf == NULL) {
        a->buf = malloc(size);
        if (a->buf == NULL)
            return NULL;
        a->rung = rung;
        a->size = size;
    }
    return a;
}

static void asm_release(client *c, uint32_t rung, uint32_t seg)
{
    asmbuf *a = seg == PC_SEG_INIT ? &c->asm_init[rung] : &c->asm_seg[seg];
    free(a->buf);
    a->buf = NULL;
}

/* ---- downloads ---- */

void pc_client_cdn_passed_over(client *c, uint32_t n)
{
    c->bytes_cdn_total += n;
    pc_tbucket_charge(&c->downb, n, pc_client_now(c));
}

void pc_client_cdn_bytes(client *c, dl *d, uint32_t n)
{
    d->got += n;
    pc_client_cdn_passed_over(c, n); /* counted and charged alike; only these go on to the engine */
    if (!d->seed) {
        pc_engine_on_data(c->e, d->transfer, n, pc_client_now(c));
        pc_client_kick(c);
    }
}

static void on_cdn_resume(uv_timer_t *t);

/* The one timer wakes the paused fetches: armed for the earliest of them. */
static void arm_cdn_resume(client *c, uint64_t ms)
{
    if (!uv_is_active((uv_handle_t *)&c->cdn_resume) || uv_timer_get_due_in(&c->cdn_resume) > ms)
        uv_timer_start(&c->cdn_resume, on_cdn_resume, ms, 0);
}

static void on_cdn_resume(uv_timer_t *t)
{
    client *c = t->data;
    for (;;) {
        uint64_t now = pc_client_now(c);
        dl *d = NULL;
        for (size_t i = 0; i < c->ndls && d == NULL; i++)
            if (c->dls[i]->paused && c->dls[i]->resume_at_us <= now) /* only those whose wait is over */
                d = c->dls[i];
        if (d == NULL)
            break;
        d->paused = 0;
        int err = pc_cdn_next(c, d); /* may wait again */
        if (err != 0) {
            pc_client_cdn_done(c, d, err); /* frees |d| */
            continue;
        }
        if (d->paused)
            break; /* the bucket is in debt again: the others wait too */
    }
    uint64_t now = pc_client_now(c), next = UINT64_MAX;
    for (size_t i = 0; i < c->ndls; i++)
        if (c->dls[i]->paused && c->dls[i]->resume_at_us < next)
            next = c->dls[i]->resume_at_us;
    if (next != UINT64_MAX)
        arm_cdn_resume(c, next > now ? (next - now) / 1000 + 1 : 0);
}

void pc_client_cdn_pause(client *c, dl *d, uint64_t wait_us)
{
    d->paused = 1;
    d->resume_at_us = pc_client_now(c) + wait_us;
    arm_cdn_resume(c, wait_us / 1000 + 1);
}

static void seed_next(client *c);

#define SEED_ATTEMPTS 3

static void finish_download(client *c, dl *d)
{
    uint8_t h[32];
    asmbuf *a = d->buf;
    pc_peer_media_hash(&c->pm, d->rung, d->seg, a->buf, a->size, h);
    if (d->seed) {
        const uint8_t *want = d->seg == PC_SEG_INIT ? c->pm.m.rung[d->rung].init_hash : c->pm.hash[d->rung] + 32 * (size_t)d->seg;
        if (memcmp(h, want, 32) != 0) {
            pc_part parts[2];
            int np = pc_peer_media_parts(&c->pm, d->rung, d->seg, parts);
            for (int k = 0; k < np; k++) {
                uint8_t ph[32];
                pc_blake2b256(a->buf + parts[k].offset, parts[k].size, ph);
                if (memcmp(ph, parts[k].hash, 32) != 0)
                    PC_LOGE("seed", "%s%s (%u bytes) does not match the manifest", c->base, parts[k].url, parts[k].size);
            }
            c->seed_failures++;
        } else if (d->seg == PC_SEG_INIT) {
            free(c->init[d->rung]);
            c->init[d->rung] = a->buf;
            a->buf = NULL;
            pc_hls_on_ready(c, d->rung, d->seg); /* players that asked before it came (--hls-listen) */
        } else if (pc_store_put(c->store, d->rung, d->seg, a->buf, a->size) != 0) {
            PC_LOGE("seed", "the segment store cannot hold segment %u of rung %u (raise --mem-cap)", d->seg, d->rung);
            c->seed_failures++;
        } else {
            if (c->seed_segs != NULL) {
                uint64_t now = pc_client_now(c);
                c->seed_segs[(size_t)d->rung * c->pm.m.n_segments + d->seg] =
                    (struct seed_seg){.at_us = now, .ms = (uint32_t)((now - d->started_us) / 1000), .from = 1};
            }
            pc_hls_on_ready(c, d->rung, d->seg);
        }
        c->seed_pending--;
        dl_free(c, d);
        seed_next(c);
        return;
    }
    uint64_t transfer = d->transfer;
    dl_free(c, d);
    pc_engine_on_done(c->e, transfer, h, pc_client_now(c));
    pc_client_kick(c);
}

void pc_client_cdn_done(client *c, dl *d, int err)
{
    if (err == 0) {
        finish_download(c, d);
        return;
    }
    if (d->seed) {
        /* a CDN's passing trouble (a 503, a reset, 10 s without a byte) gets two more tries, 2 s then 4 s
         * later, from the bytes already in: one failure used to end a seeder's whole start */
        if (++d->failures < SEED_ATTEMPTS && !c->stopping) {
            uint64_t wait_us = (uint64_t)1000000 << d->failures;
            if (err == PC_EPARSE)
                d->got = 0; /* what that answer brought is not the segment's */
            PC_LOGW("seed", "segment %d of rung %u: trying again in %" PRIu64 " s", d->seg == PC_SEG_INIT ? -1 : (int)d->seg,
                    d->rung, wait_us / 1000000);
            pc_client_cdn_pause(c, d, wait_us);
            return;
        }
        c->seed_failures++;
        c->seed_pending--;
        dl_free(c, d);
        seed_next(c);
        return;
    }
    uint64_t transfer = d->transfer;
    dl_free(c, d);
    pc_engine_on_fail(c->e, transfer, err, pc_client_now(c));
    pc_client_kick(c);
}

static void send_msg(plink *pl, const pc_wire_msg *m)
{
    uint8_t b[32];
    if (pl->link != NULL)
        (void)pc_link_send(pl->link, b, pc_wire_msg_encode(m, b)); /* a failure closes the link, which we hear */
}

static void act_fetch(client *c, const pc_action *a, uint64_t now)
{
    dl *d = calloc(1, sizeof(*d));
    if (d == NULL || grow((void **)&c->dls, &c->cdls, c->ndls, sizeof(dl *)) != 0) {
        free(d);
        pc_engine_on_fail(c->e, a->transfer, PC_ENOMEM, now);
        return;
    }
    *d = (dl){.transfer = a->transfer, .rung = a->rung, .seg = a->segment, .offset = a->offset, .len = a->length};
    d->buf = pc_client_asm(c, a->rung, a->segment);
    c->dls[c->ndls++] = d;
    if (d->buf == NULL) {
        dl_free(c, d);
        pc_engine_on_fail(c->e, a->transfer, PC_ENOMEM, now);
        return;
    }
    if (a->peer == PC_SRC_CDN) {
        int err = pc_cdn_start(c, d);
        if (err != 0) {
            dl_free(c, d);
            pc_engine_on_fail(c->e, a->transfer, err, now);
        }
        return;
    }
    plink *pl = plink_by_handle(c, a->peer);
    if (pl == NULL || pl->link == NULL || !pc_link_is_up(pl->link)) {
        dl_free(c, d);
        pc_engine_on_fail(c->e, a->transfer, PC_ENET, now);
        return;
    }
    d->pl = pl;
    d->wire_id = pl->next_id++;
    uint32_t due = PC_WIRE_NO_DEADLINE;
    if (a->deadline != PC_NEVER)
        due = a->deadline <= now ? 0 : (a->deadline - now) / 1000 >= PC_WIRE_NO_DEADLINE ? PC_WIRE_NO_DEADLINE - 1 : (uint32_t)((a->deadline - now) / 1000);
    pc_wire_msg m = {.type = PC_MSG_REQUEST, .id = d->wire_id, .rung = (uint8_t)a->rung, .seg = a->segment,
                     .offset = a->offset, .len = a->length, .due_ms = due};
    send_msg(pl, &m);
}

static void act_cancel(client *c, const pc_action *a)
{
    dl *d = dl_find(c, a->transfer);
    if (d == NULL)
        return;
    if (d->pl != NULL) {
        pc_wire_msg m = {.type = PC_MSG_CANCEL, .id = d->wire_id};
        send_msg(d->pl, &m);
        /* what was on its way may still come, under this id */
        plink *pl = d->pl;
        uint32_t k = pl->cancelled_next;
        pl->unwanted += pl->cancelled[k].left; /* the oldest, pushed out: counted for the link as a whole */
        pl->cancelled[k].id = d->wire_id;
        pl->cancelled[k].left = d->len - d->got;
        pl->cancelled_next = (k + 1) % PC_CANCELLED_MAX;
    }
    dl_free(c, d);
}

static void queue_have(client *c, uint32_t rung, uint32_t seg)
{
    if (c->nhave_q > 0) {
        pc_wire_range *r = &c->have_q[c->nhave_q - 1];
        if (r->rung == rung && r->hi + 1 == seg) {
            r->hi = seg;
            return;
        }
    }
    size_t cap = c->chave_q;
    if (grow((void **)&c->have_q, &cap, c->nhave_q, sizeof(pc_wire_range)) != 0)
        return; /* peers learn it from a later HAVE or not at all: only offload suffers */
    c->chave_q = (uint32_t)cap;
    c->have_q[c->nhave_q++] = (pc_wire_range){.rung = (uint8_t)rung, .lo = seg, .hi = seg};
}

static void send_haves(plink *pl, const pc_wire_range *r, uint32_t n)
{
    uint8_t b[3 + 9 * PC_WIRE_HAVE_MAX];
    for (uint32_t k = 0; k < n; k += PC_WIRE_HAVE_MAX) {
        uint32_t m = n - k < PC_WIRE_HAVE_MAX ? n - k : PC_WIRE_HAVE_MAX;
        if (pl->link != NULL)
            (void)pc_link_send(pl->link, b, pc_wire_have_encode(r + k, m, b));
    }
}

static void flush_haves(client *c)
{
    if (c->nhave_q == 0)
        return;
    for (plink *p = c->links; p != NULL; p = p->next)
        if (p->in_engine && p->link != NULL && pc_link_is_up(p->link))
            send_haves(p, c->have_q, c->nhave_q);
    c->nhave_q = 0;
}

static void act_ready(client *c, const pc_action *a)
{
    asmbuf *ab = a->segment == PC_SEG_INIT ? &c->asm_init[a->rung] : &c->asm_seg[a->segment];
    if (ab->buf == NULL || ab->rung != a->rung)
        return;
    if (a->segment == PC_SEG_INIT) {
        free(c->init[a->rung]);
        c->init[a->rung] = ab->buf;
        ab->buf = NULL;
    } else {
        int kept = pc_store_put(c->store, a->rung, a->segment, ab->buf, ab->size) == 0;
        if (!kept) {
            /* larger than the whole store: nothing can serve it, to a peer or a local player (which is told
             * so at once, not after a refetch that would fail the same way) */
            PC_LOGW("peer", "the segment store cannot keep segment %u of rung %u (over --mem-cap)", a->segment, a->rung);
            pc_hls_on_unkept(c, a->rung, a->segment);
        }
        asm_release(c, a->rung, a->segment);
        if (kept)
            queue_have(c, a->rung, a->segment);
    }
    pc_hls_on_ready(c, a->rung, a->segment);
}

/* Refuses |key| from now on, and closes any link it has now (a peer that left and came back under the
 * same key before the engine decided the ban). */
static void ban(client *c, const uint8_t key[32], const char *name, uint64_t now)
{
    if (c->nbanned < PC_BANNED_MAX && !is_banned(c, key)) {
        memcpy(c->banned[c->nbanned++], key, 32);
        PC_LOGW("peer", "banned %s: it sent data that does not match the signed manifest", name);
    }
    for (plink *p = c->links; p != NULL; p = p->next) {
        if (!p->has_key || memcmp(p->key, key, 32) != 0 || p->link == NULL)
            continue;
        if (p->in_engine) {
            p->in_engine = 0;
            pc_engine_peer_remove(c->e, p->handle, now);
        }
        pc_link_close(p->link, PC_BYE_BANNED);
    }
}

static void act_ban_or_drop(client *c, const pc_action *a, uint64_t now)
{
    plink *pl = plink_by_handle(c, a->peer);
    if (pl == NULL) {
        /* its link closed before the segment it sent bytes of failed its hash (the rest came from
         * elsewhere): banned all the same, by the key it had */
        for (uint32_t k = 0; a->type == PC_ACT_BAN && k < PC_DEPARTED_MAX; k++)
            if (c->departed[k].used && c->departed[k].handle == a->peer) {
                ban(c, c->departed[k].key, "a peer that has left", now);
                break;
            }
        return;
    }
    pl->in_engine = 0; /* the engine already forgot it */
    if (a->type == PC_ACT_BAN && pl->has_key)
        ban(c, pl->key, pc_link_peer_name(pl->link), now);
    if (pl->link != NULL)
        pc_link_close(pl->link, a->type == PC_ACT_BAN ? PC_BYE_BANNED : PC_BYE_FULL);
}

/* It sent part of a copy that failed its hash, another peer the rest: the engine bans neither, and mixes
 * its bytes with no other peer's again (docs/engine.md, "Integrity"). */
static void act_suspect(client *c, const pc_action *a)
{
    plink *pl = plink_by_handle(c, a->peer);
    PC_LOGW("peer", "suspected %s: it sent part of a segment that does not match the signed manifest, another peer "
            "the rest", pl != NULL && pl->link != NULL ? pc_link_peer_name(pl->link) : "a peer that has left");
}

static void act_serve(client *c, const pc_action *a, uint64_t now)
{
    up *u = up_find(c, a->request);
    if (u == NULL)
        return;
    u->blob = pc_store_get(c->store, u->rung, u->seg, pc_peer_media_size(&c->pm, u->rung, u->seg));
    if (u->blob == NULL || u->pl->link == NULL) {
        if (u->pl->link != NULL) {
            pc_wire_msg m = {.type = PC_MSG_REFUSE, .id = u->wire_id, .reason = PC_WIRE_REFUSE_NOT_HELD};
            send_msg(u->pl, &m);
        }
        uint64_t req = u->request;
        up_free(c, u);
        pc_engine_on_served(c->e, req, 0, now);
        return;
    }
    u->serving = 1;
    pump(c, u->pl);
}

static void act_refuse(client *c, const pc_action *a)
{
    up *u = up_find(c, a->request);
    if (u == NULL)
        return;
    uint8_t reason = a->reason == PC_REFUSE_NOT_HELD ? PC_WIRE_REFUSE_NOT_HELD
                     : a->reason == PC_REFUSE_DEADLINE ? PC_WIRE_REFUSE_LATE
                                                       : PC_WIRE_REFUSE_BUSY;
    pc_wire_msg m = {.type = PC_MSG_REFUSE, .id = u->wire_id, .reason = reason};
    send_msg(u->pl, &m);
    up_free(c, u);
}

static void on_ended(client *c, uint64_t now)
{
    if (c->ended)
        return;
    c->ended = 1;
    c->ended_at_us = now;
    if (c->cfg->hls_listen != NULL) {
        /* a real player may still be playing: the exit timer waits for it to go quiet */
        PC_LOGI("peer", "the headless model reached the end; serving the local player until it goes quiet");
    }
    if (c->cfg->seed_after_s > 0) {
        c->seeding = 1;
        PC_LOGI("peer", "playback ended; seeding for %.0f s", c->cfg->seed_after_s);
        announce(c, "periodic");
    }
}

static void handle(client *c, const pc_action *a, uint64_t now)
{
    switch (a->type) {
    case PC_ACT_FETCH: act_fetch(c, a, now); break;
    case PC_ACT_CANCEL: act_cancel(c, a); break;
    case PC_ACT_READY: act_ready(c, a); break;
    case PC_ACT_BAN:
    case PC_ACT_DROP: act_ban_or_drop(c, a, now); break;
    case PC_ACT_SERVE: act_serve(c, a, now); break;
    case PC_ACT_REFUSE: act_refuse(c, a); break;
    case PC_ACT_ENDED: on_ended(c, now); break;
    case PC_ACT_SUSPECT: act_suspect(c, a); break;
    }
}

static void on_engine_timer(uv_timer_t *t)
{
    client *c = t->data;
    pc_engine_on_timeout(c->e, pc_client_now(c));
    drive(c);
}

static void drive(client *c)
{
    if (c->driving || c->e == NULL)
        return;
    c->driving = 1;
    pc_action a;
    for (;;) {
        uint64_t now = pc_client_now(c);
        if (!pc_engine_next_action(c->e, &a))
            break;
        handle(c, &a, now);
    }
    c->driving = 0;
    flush_haves(c);
    if (pc_engine_error(c->e) != 0 && !c->engine_failed) {
        c->engine_failed = 1;
        pc_cli_error("out of memory in the engine");
        begin_shutdown(c, 1);
        return;
    }
    uint64_t t = pc_engine_expiry(c->e), now = pc_client_now(c);
    if (t == UINT64_MAX)
        uv_timer_stop(&c->engine_timer);
    else
        /* at least 1 ms: libuv runs a timer re-armed at 0 from its own callback again before it polls, so
         * an engine asking again and again for a time already past would starve every socket and signal */
        uv_timer_start(&c->engine_timer, on_engine_timer, t <= now ? 1 : (t - now + 999) / 1000, 0);
}

/* ---- uploads ---- */

static void on_upload_timer(uv_timer_t *t)
{
    client *c = t->data;
    c->upload_waiting = 0;
    for (plink *p = c->links; p != NULL; p = p->next)
        pump(c, p);
}

/* Sends DATA for the link's uploads in order while its write queue and the upload cap allow. */
static void pump(client *c, plink *pl)
{
    if (pl->link == NULL || !pc_link_is_up(pl->link))
        return;
    uint64_t now = pc_client_now(c);
    int served = 0;
    for (size_t i = 0; i < c->nups && pc_link_queued(pl->link) < PC_CLIENT_HIGH_MARK;) {
        up *u = c->ups[i];
        if (u->pl != pl || !u->serving) {
            i++;
            continue;
        }
        uint32_t left = u->len - u->sent, chunk = left < PC_WIRE_DATA_MAX ? left : PC_WIRE_DATA_MAX;
        uint64_t got = pc_tbucket_take(&c->upb, chunk, now);
        if (got == 0) {
            if (!c->upload_waiting) {
                c->upload_waiting = 1;
                uint64_t w = pc_tbucket_wait(&c->upb, chunk < 16384 ? chunk : 16384, now);
                uv_timer_start(&c->upload_timer, on_upload_timer, w / 1000 + 1, 0);
            }
            break;
        }
        const uint8_t *data = u->blob->data + u->offset + u->sent;
        uint8_t *bad = NULL;
        if (c->cfg->corrupt_uploads && (bad = malloc(got)) != NULL) { /* the test aid: a malicious peer */
            memcpy(bad, data, got);
            bad[got / 2] ^= 0x5a;
            data = bad;
        }
        int rc = pc_link_send_data(pl->link, u->wire_id, u->offset + u->sent, data, (uint32_t)got);
        free(bad);
        if (rc != 0)
            break; /* the link is going away: its close reports the uploads */
        pl->active_ms = now / 1000; /* of use: a request of theirs we serve */
        u->sent += (uint32_t)got;
        if (u->sent == u->len) {
            uint64_t req = u->request, sent = u->sent;
            up_free(c, u);
            pc_engine_on_served(c->e, req, sent, now);
            served = 1;
            continue; /* i now holds the next one */
        }
    }
    /* Serves waiting on a full write queue (a requester that reads slowly) give their upload slots to
     * others until it drains: two such requesters held both slots for minutes, and an honest request
     * due in 10 s got its first byte after 123 s (found by review). */
    int full = pc_link_queued(pl->link) >= PC_CLIENT_HIGH_MARK;
    for (size_t i = 0; i < c->nups; i++) {
        up *u = c->ups[i];
        if (u->pl == pl && u->serving && u->held != full) {
            u->held = full;
            pc_engine_serve_held(c->e, u->request, full, now);
            served = 1;
        }
    }
    if (served)
        pc_client_kick(c);
}

static void on_request(client *c, plink *pl, const pc_wire_msg *m, uint64_t now)
{
    const pc_media *md = &c->pm.m;
    if (up_find_wire(c, pl, m->id) != NULL) {
        pc_link_close(pl->link, PC_BYE_PROTOCOL); /* a request id still in use: a protocol error */
        return;
    }
    int valid = m->rung < md->n_rungs && m->seg < md->n_segments && m->len > 0 &&
                (uint64_t)m->offset + m->len <= pc_peer_media_size(&c->pm, m->rung, m->seg);
    up *u = NULL;
    if (!valid || c->cfg->no_upload || !pl->in_engine || (u = calloc(1, sizeof(*u))) == NULL ||
        grow((void **)&c->ups, &c->cups, c->nups, sizeof(up *)) != 0) {
        free(u);
        pc_wire_msg r = {.type = PC_MSG_REFUSE, .id = m->id, .reason = valid ? PC_WIRE_REFUSE_BUSY : PC_WIRE_REFUSE_NOT_HELD};
        send_msg(pl, &r);
        return;
    }
    *u = (up){.request = ++c->next_request, .pl = pl, .wire_id = m->id, .rung = m->rung, .seg = m->seg,
              .offset = m->offset, .len = m->len};
    c->ups[c->nups++] = u;
    uint64_t deadline = m->due_ms == PC_WIRE_NO_DEADLINE ? PC_NEVER : now + (uint64_t)m->due_ms * 1000;
    pc_engine_on_request(c->e, u->request, pl->handle, m->rung, m->seg, m->offset, m->len, deadline, now);
}

static void on_peer_cancel(client *c, plink *pl, uint32_t id, uint64_t now)
{
    up *u = up_find_wire(c, pl, id);
    if (u == NULL)
        return;
    uint64_t req = u->request, sent = u->sent;
    up_free(c, u);
    pc_engine_on_served(c->e, req, sent, now);
}

/* ---- links ---- */

/* What cancelled request |id| of |pl| may still send, or NULL when it is not one of the last
 * PC_CANCELLED_MAX cancelled (or all of it came, or it was refused). */
static uint32_t *cancelled_left(plink *pl, uint32_t id)
{
    for (uint32_t k = 0; k < PC_CANCELLED_MAX; k++)
        if (pl->cancelled[k].left > 0 && pl->cancelled[k].id == id)
            return &pl->cancelled[k].left;
    return NULL;
}

static void on_data_msg(client *c, plink *pl, const pc_wire_msg *m, uint64_t now)
{
    dl *d = dl_find_wire(c, pl, m->id);
    if (d == NULL) {
        /* of a request we cancelled: on its way, and counted as received. Beyond what that request had
         * left when we cancelled it, for a request finished or refused, or for an id never asked, it is
         * a protocol error: it would count as P2P bytes in the report and in what we announce. (Before,
         * the allowance was one sum per link, which any id could draw on.) */
        uint32_t *left = cancelled_left(pl, m->id);
        if (left != NULL && m->dlen <= *left)
            *left -= m->dlen;
        else if (left == NULL && m->id < pl->next_id && m->dlen <= pl->unwanted)
            pl->unwanted -= m->dlen; /* of a cancel pushed out of the table by 16 later ones */
        else {
            pc_link_close(pl->link, PC_BYE_PROTOCOL);
            return;
        }
        c->bytes_p2p_total += m->dlen;
        return;
    }
    if (m->offset != d->offset + d->got || m->dlen > d->len - d->got || d->buf->rung != d->rung) {
        pc_link_close(pl->link, PC_BYE_PROTOCOL); /* out of order or past the request: a protocol error */
        return;
    }
    pl->active_ms = now / 1000; /* of use: data we asked for (on_up gives idle accepted links' slots away) */
    memcpy(d->buf->buf + m->offset, m->data, m->dlen);
    d->got += m->dlen;
    c->bytes_p2p_total += m->dlen;
    pc_engine_on_data(c->e, d->transfer, m->dlen, now);
    if (d->got == d->len)
        finish_download(c, d);
    pc_client_kick(c);
}

static void on_have(client *c, plink *pl, const pc_wire_msg *m, uint64_t now)
{
    pc_wire_range r[PC_WIRE_HAVE_MAX];
    if (!pl->in_engine)
        return;
    uint32_t n = pc_wire_have_merged(m, r); /* overlaps would each be walked segment by segment */
    for (uint32_t i = 0; i < n; i++)
        (void)pc_engine_peer_have(c->e, pl->handle, r[i].rung, r[i].lo, r[i].hi, now);
}

static void on_msg(void *arg, pc_link *l, const pc_wire_msg *m)
{
    plink *pl = pc_link_user(l);
    client *c = pl->c;
    uint64_t now = pc_client_now(c);
    switch (m->type) {
    case PC_MSG_HAVE: on_have(c, pl, m, now); break;
    case PC_MSG_REQUEST: on_request(c, pl, m, now); break;
    case PC_MSG_DATA: on_data_msg(c, pl, m, now); break;
    case PC_MSG_REFUSE: {
        dl *d = dl_find_wire(c, pl, m->id);
        if (d != NULL) {
            uint64_t transfer = d->transfer;
            dl_free(c, d);
            pc_engine_on_fail(c->e, transfer, m->reason == PC_WIRE_REFUSE_NOT_HELD ? PC_ENOENT : PC_EAGAIN, now);
        } else {
            uint32_t *left = cancelled_left(pl, m->id);
            if (left != NULL)
                *left = 0; /* a cancelled request refused: nothing more of it comes */
        }
        break;
    }
    case PC_MSG_CANCEL: on_peer_cancel(c, pl, m->id, now); break;
    default: break;
    }
    pc_client_kick(c);
}

static void tell_holdings(client *c, plink *pl)
{
    const pc_media *md = &c->pm.m;
    pc_wire_range *r = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t q = 0; q < md->n_rungs; q++) {
        for (uint32_t lo, end = 0; (lo = pc_engine_held_run(c->e, q, end, &end)) != UINT32_MAX;) {
            if (grow((void **)&r, &cap, n, sizeof(*r)) != 0)
                goto out;
            r[n++] = (pc_wire_range){.rung = (uint8_t)q, .lo = lo, .hi = end - 1};
        }
    }
    if (n > 0)
        send_haves(pl, r, (uint32_t)n);
out:
    free(r);
}

/* A viewer's identity in the swarm for the engine's volunteers: the first 8 bytes of its Ed25519 key, little
 * endian, which every peer that knows the key computes alike. */
static uint64_t swarm_id(const uint8_t key[32])
{
    uint64_t id = 0;
    for (int k = 7; k >= 0; k--)
        id = id << 8 | key[k];
    return id;
}

/* The entry of a peer a dial did not reach, or -1. */
static int unreachable_find(const client *c, const uint8_t key[32])
{
    for (int k = 0; k < PC_UNREACHABLE_MAX; k++)
        if (c->unreachable[k].until_ms != 0 && memcmp(c->unreachable[k].key, key, 32) == 0)
            return k;
    return -1;
}

/* A dial did not reach the peer: it is not dialled again for a while, longer after each failure in a
 * row. Every announce answer listed it again, and each dial held a dialling slot for up to the handshake
 * timeout: peers behind a NAT, which take no links, could keep a viewer from dialling the ones that do
 * (found by review). */
static void unreachable_note(client *c, const plink *pl, uint64_t now_ms)
{
    const uint8_t *key = pl->key;
    int k = unreachable_find(c, key);
    if (k < 0) { /* a free entry, else the one free soonest */
        k = 0;
        for (int i = 1; i < PC_UNREACHABLE_MAX && c->unreachable[k].until_ms != 0; i++)
            if (c->unreachable[i].until_ms < c->unreachable[k].until_ms)
                k = i;
        memcpy(c->unreachable[k].key, key, 32);
        c->unreachable[k].fails = 0;
    }
    snprintf(c->unreachable[k].addr, sizeof(c->unreachable[k].addr), "%s", pl->dial_addr);
    c->unreachable[k].port = pl->dial_port;
    uint32_t f = c->unreachable[k].fails < 16 ? c->unreachable[k].fails : 16;
    uint64_t wait = (uint64_t)PC_UNREACHABLE_FIRST_MS << f;
    c->unreachable[k].until_ms = now_ms + (wait < PC_UNREACHABLE_LAST_MS ? wait : PC_UNREACHABLE_LAST_MS);
    c->unreachable[k].fails++;
}

static int on_up(void *arg, pc_link *l, const uint8_t key[32], uint32_t up_kbps)
{
    plink *pl = pc_link_user(l);
    client *c = pl->c;
    uint64_t now_ms = pc_client_now(c) / 1000;
    /* a link refused anyway is refused before it makes room: a banned key, or one already linked, that
     * connected again every 20 s closed an honest quiet link each time (found by review) */
    if (is_banned(c, key))
        return PC_BYE_BANNED;
    /* two links to the same peer (both dialled at once): keep the one dialled by the smaller key. The other
     * closes only once this one is sure to stay (below): refused for room after closing it, the pair
     * had no link at all (found by review) */
    int others = 0;
    for (plink *o = c->links; o != NULL; o = o->next) {
        if (o == pl || o->link == NULL || !o->in_engine || memcmp(o->key, key, 32) != 0)
            continue;
        const uint8_t *mine = pc_link_is_connector(l) ? c->id.pk : key;
        const uint8_t *theirs = pc_link_is_connector(o->link) ? c->id.pk : key;
        if (memcmp(mine, theirs, 32) >= 0)
            return -1;
        others++;
    }
    if (pl->budget == PL_PENDING) {
        /* accepted links are taken up to twice the dialling budget, apart from the links dialled; when full,
         * an accepted link that has been of no use for PC_CLIENT_GIVE_WAY_MS (no DATA either way) gives way.
         * Before, 48 ticket holders that only answered PINGs took every slot for good (a ticket costs one
         * announce), and then ones that sent a REQUEST refused at once every 8 s (found by review) */
        if (c->nlinks - c->ndialled >= 2 * c->cfg->max_links) {
            plink *idle = NULL;
            for (plink *o = c->links; o != NULL; o = o->next)
                if (o != pl && o->budget == PL_LINKED && !o->dialled && o->link != NULL &&
                    now_ms - o->up_ms >= PC_CLIENT_GIVE_WAY_MS && now_ms - o->active_ms >= PC_CLIENT_GIVE_WAY_MS &&
                    (idle == NULL || o->active_ms < idle->active_ms))
                    idle = o;
            if (idle == NULL)
                return PC_BYE_FULL;
            PC_LOGD("peer", "link %s gives way to a new one: idle for %" PRIu64 " s", pc_link_peer_name(idle->link),
                    (now_ms - idle->active_ms) / 1000);
            idle->budget = PL_UNCOUNTED;
            c->nlinks--;
            pc_link_close(idle->link, PC_BYE_FULL);
        }
        c->npending--;
        c->nlinks++;
        pl->budget = PL_LINKED;
    }
    for (plink *o = c->links; others > 0 && o != NULL; o = o->next)
        if (o != pl && o->link != NULL && o->in_engine && memcmp(o->key, key, 32) == 0) {
            o->in_engine = 0;
            pc_engine_peer_remove(c->e, o->handle, pc_client_now(c));
            pc_link_close(o->link, PC_BYE_NORMAL);
        }
    pl->up_ms = pl->active_ms = now_ms;
    pl->came_up = 1;
    memcpy(pl->key, key, 32);
    pl->has_key = 1;
    int k = pc_link_is_connector(l) ? unreachable_find(c, key) : -1;
    if (k >= 0)
        c->unreachable[k].until_ms = 0; /* reached: its failures are forgotten */
    if (pc_engine_peer_add(c->e, pl->handle, swarm_id(key), (uint64_t)up_kbps * 1000, pc_client_now(c)) != 0)
        return PC_BYE_FULL; /* PC_ENGINE_PEERS_MAX */
    pl->in_engine = 1;
    PC_LOGD("peer", "link up with %s (%s)", pc_link_peer_name(l), pc_link_is_connector(l) ? "dialled" : "accepted");
    tell_holdings(c, pl);
    pc_client_kick(c);
    return 0;
}

static void on_writable(void *arg, pc_link *l)
{
    plink *pl = pc_link_user(l);
    pump(pl->c, pl);
}

static void on_rtt(void *arg, pc_link *l, uint64_t rtt_us)
{
    plink *pl = pc_link_user(l);
    if (pl->in_engine)
        pc_engine_peer_rtt(pl->c->e, pl->handle, rtt_us);
}

static void on_link_close(void *arg, pc_link *l, int err, const char *why)
{
    plink *pl = pc_link_user(l);
    client *c = pl->c;
    uint64_t now = pc_client_now(c);
    if (err != 0 && err != PC_ECANCELED)
        PC_LOGI("peer", "link %s closed: %s", pc_link_peer_name(l), why);
    /* its downloads: the engine reschedules them when the peer goes */
    for (size_t i = 0; i < c->ndls;) {
        if (c->dls[i]->pl == pl)
            dl_free(c, c->dls[i]);
        else
            i++;
    }
    for (size_t i = 0; i < c->nups;) {
        up *u = c->ups[i];
        if (u->pl == pl) {
            uint64_t req = u->request, sent = u->sent;
            up_free(c, u);
            pc_engine_on_served(c->e, req, sent, now);
        } else {
            i++;
        }
    }
    if (pl->in_engine)
        pc_engine_peer_remove(c->e, pl->handle, now);
    /* not reached: the connection refused, reset or timed out, or the handshake never ended (a peer
     * that answered and closed, full or refusing our ticket, is reachable: it is asked again as before) */
    if (pl->dialled && !pl->came_up && pl->has_key && !c->stopping && (err == PC_ENET || err == PC_ETIMEDOUT))
        unreachable_note(c, pl, now / 1000);
    if (pl->has_key) {
        uint32_t k = c->ndeparted++ % PC_DEPARTED_MAX; /* the oldest gives way */
        c->departed[k].handle = pl->handle;
        c->departed[k].used = 1;
        memcpy(c->departed[k].key, pl->key, 32);
    }
    for (plink **pp = &c->links; *pp != NULL; pp = &(*pp)->next)
        if (*pp == pl) {
            *pp = pl->next;
            break;
        }
    c->nlinks -= pl->budget == PL_LINKED;
    c->ndialled -= pl->dialled;
    c->npending -= pl->budget == PL_PENDING;
    free(pl);
    pc_client_kick(c);
}

static const pc_link_callbacks link_cbs = {
    .on_up = on_up, .on_msg = on_msg, .on_writable = on_writable, .on_rtt = on_rtt, .on_close = on_link_close,
};

static plink *plink_new(client *c)
{
    plink *pl = calloc(1, sizeof(*pl));
    if (pl == NULL)
        return NULL;
    pl->c = c;
    pl->handle = c->next_handle++;
    pl->next = c->links;
    c->links = pl;
    return pl;
}

/* Which connection still in the handshake makes room for |newest| (the one just accepted, never itself:
 * it has had no time to say anything). A real peer's handshake takes a round trip or two; one that never
 * finishes may not hold a slot. In this order, the oldest of each kind (the list is newest first):
 *   1. one that has sent no valid HELLO yet: a flood of bare connections, 16 a round trip, would otherwise
 *      push every real peer out before its AUTH came;
 *   2. one whose HELLO named the key of an older pending one: a ticket is sent in the clear, so anyone who
 *      saw one could replay it on 16 connections that never send AUTH, and every new arrival (bare, so
 *      chosen under rule 1) was closed: no link could be made to the peer at all (found by review);
 *   3. one that has shown a valid HELLO but no AUTH for PC_CLIENT_AUTH_WAIT_MS (an honest AUTH follows
 *      its HELLO by a round trip);
 *   4. the oldest. */
static plink *pending_to_drop(client *c, plink *newest)
{
    plink *bare = NULL, *dup = NULL, *stale = NULL, *old = NULL;
    for (plink *p = c->links; p != NULL; p = p->next) {
        if (p->budget != PL_PENDING || p == newest)
            continue;
        old = p;
        const uint8_t *k = pc_link_hello_key(p->link);
        if (k == NULL) {
            bare = p;
            continue;
        }
        for (plink *q = p->next; q != NULL && dup != p; q = q->next) {
            const uint8_t *kq = q->budget == PL_PENDING ? pc_link_hello_key(q->link) : NULL;
            if (kq != NULL && memcmp(k, kq, 32) == 0)
                dup = p; /* q is older */
        }
        if (pc_link_age_ms(p->link) >= PC_CLIENT_AUTH_WAIT_MS)
            stale = p;
    }
    return bare != NULL ? bare : dup != NULL ? dup : stale != NULL ? stale : old != NULL ? old : newest;
}

static void on_connection(uv_stream_t *server, int status)
{
    client *c = server->data;
    if (status < 0)
        return;
    plink *pl = plink_new(c);
    pc_link *l = NULL;
    if (pl == NULL || pc_link_accept(server, &c->id, &link_cbs, c, &l) != 0) {
        /* out of memory: take the connection and drop it */
        uv_tcp_t *t = malloc(sizeof(*t));
        if (t != NULL && uv_tcp_init(&c->loop, t) == 0 && uv_accept(server, (uv_stream_t *)t) == 0)
            uv_close((uv_handle_t *)t, (uv_close_cb)free);
        else
            free(t);
        if (pl != NULL) {
            c->links = pl->next;
            free(pl);
        }
        return;
    }
    pl->link = l;
    pc_link_set_user(l, pl);
    pl->budget = PL_PENDING;
    c->npending++;
    if (c->stopping || c->e == NULL) {
        pc_link_close(l, PC_BYE_FULL);
    } else if (c->npending > PC_CLIENT_PENDING_MAX) {
        plink *old = pending_to_drop(c, pl);
        old->budget = PL_UNCOUNTED;
        c->npending--;
        pc_link_close(old->link, PC_BYE_FULL);
    }
}

static int linked_to(const client *c, const uint8_t key[32])
{
    for (const plink *p = c->links; p != NULL; p = p->next)
        if (p->has_key && memcmp(p->key, key, 32) == 0)
            return 1;
    return 0;
}

static void dial(client *c, const pc_tc_peer *p)
{
    /* links accepted do not count against the links dialled (docs/peer.md): peers that filled the accepted
     * slots stopped the dialling too (found by review) */
    if (c->ndialled >= c->cfg->max_links || memcmp(p->key, c->id.pk, 32) == 0 || is_banned(c, p->key) || linked_to(c, p->key))
        return;
    int k = unreachable_find(c, p->key);
    if (k >= 0 && (c->unreachable[k].port != p->port || strcmp(c->unreachable[k].addr, p->addr) != 0))
        c->unreachable[k].until_ms = 0; /* listed elsewhere now (a NAT's new mapping, another network) */
    else if (k >= 0 && pc_client_now(c) / 1000 < c->unreachable[k].until_ms)
        return;
    struct sockaddr_storage ss;
    if (uv_ip4_addr(p->addr, p->port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(p->addr, p->port, (struct sockaddr_in6 *)&ss) != 0)
        return;
    plink *pl = plink_new(c);
    if (pl == NULL)
        return;
    memcpy(pl->key, p->key, 32);
    pl->has_key = 1;
    snprintf(pl->dial_addr, sizeof(pl->dial_addr), "%s", p->addr);
    pl->dial_port = p->port;
    pc_link *l = NULL;
    if (pc_link_connect(&c->loop, (struct sockaddr *)&ss, p->key, &c->id, &link_cbs, c, &l) != 0) {
        c->links = pl->next;
        free(pl);
        return;
    }
    pl->budget = PL_LINKED;
    pl->dialled = 1;
    c->nlinks++;
    c->ndialled++;
    pl->link = l;
    pc_link_set_user(l, pl);
}

/* ---- tracker ---- */

static void fill_state(client *c, const char *event)
{
    pc_tc_state *s = &c->ts;
    pc_engine_stats st;
    pc_engine_get_stats(c->e, pc_client_now(c), &st);
    s->event = event;
    s->session = c->session[0] != '\0' ? c->session : NULL;
    s->rendition = c->mf->renditions[c->pm.rend[st.rung]].id;
    s->playhead_ms = (uint32_t)(pc_engine_playhead(c->e) / 1000);
    uint32_t need, lo, hi;
    pc_engine_holdings(c->e, st.rung, &need, &lo, &hi);
    s->need = need == UINT32_MAX || c->seeding || c->cfg->seed_mode ? -1 : (int64_t)need;
    s->have_lo = lo == UINT32_MAX ? -1 : (int64_t)lo;
    s->have_hi = hi == UINT32_MAX ? -1 : (int64_t)hi;
    s->seeding = c->seeding;
    s->media = c->mq[0] != '\0' ? c->mq + 1 : NULL; /* a tracker with --media-key checks it (docs/tracker.md) */
    /* the ticket we hold (checked when it came): the tracker renews it when near its end, also if it issued a
     * later one we never got */
    s->ticket_expires = pc_ticket_expires_of(c->id.ticket, c->id.ticket_len);
    /* with every link taken, dial() would not use the peers: ask for none, and spare the tracker the search */
    s->numwant = c->ndialled >= c->cfg->max_links ? 0 : NUMWANT;
    /* 0 tells the tracker "not started" (it counts a viewer once this is non-zero): a start within the first
     * millisecond, on a LAN or loopback, is sent as 1, or the viewer would never be counted */
    struct tc_ctr now = {.bytes_cdn = c->bytes_cdn_total, .bytes_p2p = c->bytes_p2p_total, .bytes_up = st.bytes_up,
                         .stalls = st.stalls, .stall_ms = st.stall_us / 1000,
                         .startup_ms = st.startup_us == PC_NEVER ? 0 : st.startup_us < 1000 ? 1 : st.startup_us / 1000,
                         .played_ms = st.played_us / 1000};
    const struct tc_ctr *b = &c->ctr_base;
    c->ctr_sent = now;
    s->bytes_cdn = now.bytes_cdn - b->bytes_cdn;
    s->bytes_p2p = now.bytes_p2p - b->bytes_p2p;
    s->bytes_up = now.bytes_up - b->bytes_up;
    s->stalls = (uint32_t)(now.stalls - b->stalls);
    s->stall_ms = (uint32_t)(now.stall_ms - b->stall_ms);
    s->startup_ms = b->startup_ms != 0 ? 0 : (uint32_t)now.startup_ms; /* the viewer was counted then */
    s->played_ms = (uint32_t)(now.played_ms - b->played_ms);
    memcpy(c->mq_sent, c->mq, sizeof(c->mq_sent));
    /* the tracker stops listing a peer that viewers on enough networks banned (docs/tracker.md) */
    s->banned = (const uint8_t (*)[PC_ED25519_PK_LEN])c->banned[c->nbanned_told];
    s->nbanned = c->nbanned - c->nbanned_told < PC_TC_BANNED_MAX ? c->nbanned - c->nbanned_told : PC_TC_BANNED_MAX;
    c->nbanned_telling = s->nbanned;
}

static void on_announce_timer(uv_timer_t *t)
{
    client *c = t->data;
    announce(c, c->session[0] != '\0' ? "periodic" : "started");
}

static void after_stopped(client *c);

/* The tracker's clock read |tracker_s| just now: proofs and tickets go by it from now on (a difference
 * under 2 s is the answer's own delay, and ignored). Returns whether the offset changed. */
static int learn_skew(client *c, int64_t tracker_s)
{
    if (tracker_s <= 0)
        return 0;
    int64_t skew = tracker_s - pc_link_local_now(&c->id);
    if (skew > -2 && skew < 2)
        skew = 0;
    if (skew == c->id.skew_s)
        return 0;
    if (skew != 0)
        PC_LOGW("tracker", "this machine's clock is %" PRId64 " s off the tracker's: proofs and tickets go by the tracker's",
                -skew);
    c->id.skew_s = skew;
    return 1;
}

/* The announce in flight (its counters in ctr_sent) may have been counted by the tracker. */
static void may_have_counted(client *c)
{
    c->ctr_counted = c->ctr_sent;
    c->sent_once = 1;
}

static void on_announced(void *arg, long status, const char *body, size_t len)
{
    client *c = arg;
    c->announce_call = NULL;
    int stopped = c->stopping;
    double retry = 5;
    /* the tracker may have counted what it carried: it took it (200, whatever the answer), no answer came to
     * a request that left, or a 5xx other than the tracker's own refusals (which record nothing; a proxy's
     * 502 or 504 is ambiguous and taken as counted). Not a request that never left (-1): a tracker down for
     * two intervals, then a viewer starting in them, went uncounted (found by review) */
    int refusal = status >= 500 && body != NULL && len < 4096 &&
                  (memmem(body, len, "\"stopping\"", 10) != NULL || memmem(body, len, "\"limit_reached\"", 15) != NULL ||
                   memmem(body, len, "\"origin_unavailable\"", 20) != NULL);
    if (status == 200 || status == 0 || (status >= 500 && !refusal))
        may_have_counted(c);
    if (status == 200) {
        pc_tc_answer *a = malloc(sizeof(*a));
        char why[160];
        if (a != NULL && pc_tc_decode(body, len, a, why, sizeof(why)) == 0) {
            c->announces_ok++;
            learn_skew(c, (int64_t)a->tracker_time);
            c->nbanned_told += c->nbanned_telling;
            snprintf(c->session, sizeof(c->session), "%s", a->session);
            int tk = a->ticket_len > 0 ? pc_ticket_check(c->id.tracker_pk, a->ticket, a->ticket_len, c->cfg->video,
                                                         c->id.pk, pc_link_wall_now(&c->id), NULL)
                                       : 0;
            if (tk == PC_EEXPIRED) {
                /* one that ends with a media token in its last second can be over when it arrives */
                PC_LOGI("tracker", "the tracker's ticket had expired on arrival");
            } else if (a->ticket_len > 0) {
                if (tk == 0) {
                    memcpy(c->id.ticket, a->ticket, a->ticket_len);
                    c->id.ticket_len = a->ticket_len;
                    /* the links' other sides close them when the ticket they saw expires */
                    for (plink *p = c->links; p != NULL; p = p->next)
                        if (p->link != NULL)
                            pc_link_send_ticket(p->link);
                } else {
                    PC_LOGW("tracker", "the tracker's ticket does not check against its key from the manifest");
                }
            }
            retry = c->interval_s = a->interval;
            if (!stopped && c->id.ticket_len > 0)
                for (uint32_t i = 0; i < a->npeers; i++)
                    dial(c, &a->peers[i]);
        } else {
            c->announces_failed++;
            PC_LOGW("tracker", "%s", a == NULL ? "out of memory" : why);
        }
        free(a);
    } else {
        c->announces_failed++;
        /* the next try within an interval, or the tracker forgets the peer (two intervals) */
        if (c->interval_s > 0 && c->interval_s < retry)
            retry = c->interval_s;
        if (status == 403 && !stopped) {
            c->session[0] = '\0'; /* start over with a proof */
            c->restart_pending = 1;
            if (body != NULL && len < 4096 && memmem(body, len, "\"unknown_peer\"", 14) != NULL)
                retry = 0.05; /* it forgot this peer: at once */
        }
        if (status == 403 && !stopped && body != NULL && len < 4096 && memmem(body, len, "\"proof_expired\"", 15) != NULL) {
            /* our clock is more than 5 minutes off the tracker's: its answer says what time it is there,
             * and the proof is made again on its clock at once (before, the peer retried every 5 s for
             * ever and never joined the swarm; found by review) */
            json_t *j = json_loadb(body, len, 0, NULL);
            json_t *tt = json_object_get(j, "tracker_time");
            if (json_is_integer(tt) && learn_skew(c, (int64_t)json_integer_value(tt)))
                retry = 0.05;
            json_decref(j);
        }
        char text[201];
        pc_log_printable(text, sizeof(text), body, len);
        PC_LOGW("tracker", "announce failed: %s%s", status <= 0 ? "" : "HTTP error: ", text);
        if (status == 403 && body != NULL && len < 4096 && memmem(body, len, "\"distrusted\"", 12) != NULL && !stopped) {
            /* viewers reported this key banned: the tracker will not vouch for it again this run */
            PC_LOGW("tracker", "the tracker no longer lists this peer (distrusted): no more announces this run");
            c->tracker_done = 1;
            return;
        }
        int token = status == 403 && body != NULL && len < 4096 && !stopped &&
                    (memmem(body, len, "\"media_token_required\"", 22) != NULL ||
                     memmem(body, len, "\"bad_media_token\"", 17) != NULL || memmem(body, len, "\"media_token_expired\"", 21) != NULL);
        if (token && strcmp(c->mq_sent, c->mq) != 0) {
            /* the token refused is one --media-query-file has replaced since: ask with the new one (the timer
             * took it while this answer was on its way, and would not ask again) */
            PC_LOGI("tracker", "the tracker refused the media token that was just replaced: announcing with the new one");
            retry = 0.05;
        } else if (token) {
            /* the tracker guards a signed-media origin's swarms (--media-key), and asking again with the
             * same token would be refused again: only a renewed one (--media-query-file) is worth it */
            PC_LOGW("tracker", "the tracker vouches only for viewers with a valid media token (%s): no more announces %s; "
                               "playing on from the CDN%s",
                    c->mq[0] == '\0' ? "none was given: --media-query" : c->cfg->media_query_file != NULL ? "--media-query-file"
                                                                                                   : "--media-query",
                    c->cfg->media_query_file != NULL ? "until the file holds another" : "this run",
                    c->nlinks > 0 ? " and the peers linked" : "");
            c->tracker_done = 1;
            c->tracker_refused_token = 1;
            return;
        }
    }
    if (stopped) {
        after_stopped(c);
        return;
    }
    uv_timer_start(&c->announce_timer, on_announce_timer, (uint64_t)(retry * 1000), 0);
}

static void announce(client *c, const char *event)
{
    int stopping = strcmp(event, "stopped") == 0;
    if (c->tracker_url[0] == '\0' || c->e == NULL) {
        if (stopping)
            after_stopped(c); /* nobody to tell: finish the shutdown now */
        return;
    }
    if (c->announce_call != NULL) {
        if (!stopping)
            return; /* one at a time; the timer comes back */
        pc_tc_cancel(c->http, c->announce_call);
        c->announce_call = NULL;
        may_have_counted(c); /* it may have arrived */
    }
    if ((c->session[0] == '\0' || c->tracker_done) && stopping) {
        after_stopped(c);
        return;
    }
    if (c->tracker_done)
        return;
    if (strcmp(event, "started") == 0 && c->restart_pending) {
        /* starting over after a 403 cleared the session: under a new peer id, counting from what the tracker
         * may have counted (a "started" counts from zero; the tracker may have forgotten the old one, or
         * list it still: either way the new id counts only what it may not have been told). Once: a retry
         * of this "started" whose answer was lost keeps the id, and the tracker counts only its growth. */
        c->restart_pending = 0;
        if (c->sent_once) {
            randombytes_buf(c->ts.peer_id, sizeof(c->ts.peer_id));
            c->ctr_base = c->ctr_counted;
        }
    }
    fill_state(c, event);
    int rc = pc_tc_encode(&c->ts, pc_link_wall_now(&c->id), &c->announce_body);
    if (rc == 0)
        rc = pc_tc_post(c->http, c->tracker_url, c->announce_body.data, c->announce_body.len, stopping ? 2 : 10,
                        c->announce_from[0] != '\0' ? c->announce_from : NULL, on_announced, c, &c->announce_call);
    if (rc != 0) {
        /* an announce that could not be sent failed as much as one the tracker refused: uncounted, a run
         * whose every announce failed here reported 0 ok and 0 failed (found by review) */
        c->announces_failed++;
        PC_LOGW("tracker", "cannot send an announce: %s", pc_strerror(rc));
        if (stopping)
            after_stopped(c);
        else
            uv_timer_start(&c->announce_timer, on_announce_timer, 5000, 0);
    }
}

/* ---- seeding a whole video from the CDN ---- */

static void seed_done(client *c)
{
    if (c->seed_failures > 0) {
        pc_cli_error("%u segments could not be fetched and verified from the origin", c->seed_failures);
        begin_shutdown(c, 1);
        return;
    }
    /* what the store holds: a seeder whose memory cap is below the video (without --cache-dir) holds the
     * copies it fetched last. It offered them all, and refused most: every viewer counted the refusals as
     * failures and dropped it (found by review). */
    pc_engine_hold_all(c->e);
    const pc_media *md = &c->pm.m;
    uint32_t lost = 0;
    for (uint32_t q = 0; q < md->n_rungs; q++)
        for (uint32_t i = 0; i < md->n_segments; i++)
            if (!pc_store_holds(c->store, q, i, pc_peer_media_size(&c->pm, q, i))) {
                pc_engine_forget(c->e, q, i);
                lost++;
            }
    if (lost > 0)
        PC_LOGW("seed", "--mem-cap %.0f MiB holds %u of the %u segments (all renditions); the rest are not offered to "
                        "peers (raise --mem-cap, or give --cache-dir)", (double)c->cfg->mem_cap / (1 << 20),
                md->n_segments * md->n_rungs - lost, md->n_segments * md->n_rungs);
    c->seeding = 1;
    pc_log_clear_status(); /* the same terminal, most likely: not appended to the status line */
    fflush(stderr);
    printf("seeding %s: %u segments × %u renditions verified\n", c->cfg->video, c->pm.m.n_segments, c->pm.m.n_rungs);
    fflush(stdout);
    announce(c, "started");
}

static void seed_next(client *c)
{
    const pc_media *md = &c->pm.m;
    while (!c->stopping && c->seed_pending < 4 && c->seed_next_rung < md->n_rungs) {
        uint32_t q = c->seed_next_rung, i = c->seed_next_seg;
        /* init first (PC_SEG_INIT), then every segment of the rung */
        uint32_t seg = i == 0 ? PC_SEG_INIT : i - 1;
        if (++c->seed_next_seg > md->n_segments) {
            c->seed_next_seg = 0;
            c->seed_next_rung++;
        }
        if (seg != PC_SEG_INIT) {
            pc_blob *b = pc_store_get(c->store, q, seg, pc_peer_media_size(&c->pm, q, seg));
            if (b != NULL) { /* the disk cache had it, verified */
                pc_blob_release(b);
                if (c->seed_segs != NULL)
                    c->seed_segs[(size_t)q * md->n_segments + seg] = (struct seed_seg){.at_us = pc_client_now(c), .from = 2};
                continue;
            }
        }
        dl *d = calloc(1, sizeof(*d));
        if (d == NULL || grow((void **)&c->dls, &c->cdls, c->ndls, sizeof(dl *)) != 0) {
            free(d);
            c->seed_failures++;
            continue;
        }
        *d = (dl){.rung = q, .seg = seg, .len = pc_peer_media_size(&c->pm, q, seg), .seed = 1,
                  .started_us = pc_client_now(c)};
        c->dls[c->ndls++] = d;
        d->buf = calloc(1, sizeof(asmbuf));
        if (d->buf != NULL)
            *d->buf = (asmbuf){.buf = malloc(d->len), .rung = q, .size = d->len};
        c->seed_pending++;
        if (pc_cdn_start(c, d) != 0) {
            c->seed_failures++;
            c->seed_pending--;
            dl_free(c, d);
        }
    }
    if (c->seed_pending == 0 && c->seed_next_rung >= md->n_rungs && !c->seeding && !c->stopping)
        seed_done(c);
}

/* ---- a media query renewed through --media-query-file ---- */

/* Reads --media-query-file into |out| ("?" + the query): one line of a URL query, a leading '?' and the
 * line's end allowed. 0, or an error with |why| set. */
static int mq_read(const char *path, char out[PC_CLIENT_QUERY_MAX + 2], char *why, size_t whyn)
{
    char *text = NULL;
    size_t len = 0;
    int rc = pc_read_file(path, PC_CLIENT_QUERY_MAX + 3, &text, &len); /* '?', CR LF */
    if (rc != 0) {
        snprintf(why, whyn, "%s", rc == PC_ETOOBIG ? "longer than a media query" : pc_strerror(rc));
        return rc;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    const char *q = text[0] == '?' ? text + 1 : text;
    if (!pc_client_query_valid(q)) {
        snprintf(why, whyn, "not one line of 1 to %d characters of a URL query (no spaces, '#' or quotes)",
                 PC_CLIENT_QUERY_MAX);
        free(text);
        return PC_EINVAL;
    }
    snprintf(out, PC_CLIENT_QUERY_MAX + 2, "?%s", q);
    free(text);
    return 0;
}

/* Every PC_CLIENT_MQ_CHECK_MS: a backend that renews the viewer's token writes it to the file (best
 * replaced whole, by a rename), and the next fetches and announces carry it. A file that cannot be taken
 * leaves the query as it was (said once until it changes). */
static void on_mq_timer(uv_timer_t *t)
{
    client *c = t->data;
    char q[sizeof(c->mq)], why[sizeof(c->mq_why)];
    if (mq_read(c->cfg->media_query_file, q, why, sizeof(why)) != 0) {
        if (strcmp(why, c->mq_why) != 0)
            PC_LOGW("peer", "--media-query-file %s: %s; the media query stays as it was", c->cfg->media_query_file, why);
        snprintf(c->mq_why, sizeof(c->mq_why), "%s", why);
        return;
    }
    c->mq_why[0] = '\0';
    if (strcmp(q, c->mq) == 0)
        return;
    memcpy(c->mq, q, sizeof(c->mq));
    c->said_403 = 0;
    PC_LOGI("peer", "the media query changed (--media-query-file): taken for the next fetches and announces");
    if (c->tracker_refused_token && !c->stopping) {
        c->tracker_refused_token = 0;
        c->tracker_done = 0;
        announce(c, "started");
    }
}

/* ---- lifecycle ---- */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void after_stopped(client *c)
{
    uv_timer_stop(&c->announce_timer);
    for (plink *p = c->links; p != NULL; p = p->next)
        if (p->link != NULL)
            pc_link_close(p->link, PC_BYE_NORMAL);
    pc_hls_stop(c);
    close_handle((uv_handle_t *)&c->engine_timer);
    close_handle((uv_handle_t *)&c->kick);
    close_handle((uv_handle_t *)&c->settle);
    close_handle((uv_handle_t *)&c->upload_timer);
    close_handle((uv_handle_t *)&c->announce_timer);
    close_handle((uv_handle_t *)&c->status_timer);
    close_handle((uv_handle_t *)&c->cdn_resume);
    close_handle((uv_handle_t *)&c->mq_timer);
    /* the signal handlers stay until the loop has ended (closed below pc_client_run's uv_run): closed
     * now, a second SIGTERM during the HLS endpoint's grace (up to 5 s) would kill the process */
    uv_unref((uv_handle_t *)&c->sigint);
    uv_unref((uv_handle_t *)&c->sigterm);
    uv_unref((uv_handle_t *)&c->sighup);
    if (c->server_open)
        close_handle((uv_handle_t *)&c->server);
    /* the http client's handles close when it is freed, after the loop */
}

static void begin_shutdown(client *c, int code)
{
    if (c->stopping)
        return;
    c->stopping = 1;
    c->exit_code = code;
    if (c->cfg->status_line) { /* the last one stays; none is drawn after it (on_status_timer) */
        flockfile(stderr);
        if (pc_log_status_shown(0))
            fputc('\n', stderr);
        funlockfile(stderr);
    }
    uint64_t now = pc_client_now(c);
    /* a seeder still fetching: its own CDN fetches stop here (the engine's stop with pc_engine_quit) */
    for (size_t i = c->ndls; i-- > 0;) /* dl_free moves the last one, already seen, into i */
        if (c->dls[i]->seed) {
            c->seed_pending--;
            dl_free(c, c->dls[i]);
        }
    if (c->e != NULL) {
        pc_engine_quit(c->e, now);
        drive(c);
        if (c->cfg->report != NULL && pc_report_write(c, c->cfg->report) != 0 && c->exit_code == 0)
            c->exit_code = 1;
    }
    announce(c, "stopped");
}

static void on_signal(uv_signal_t *s, int signum)
{
    client *c = s->data;
    PC_LOGI("peer", "signal %d: stopping", signum);
    begin_shutdown(c, 0);
}

static void on_status_timer(uv_timer_t *t)
{
    client *c = t->data;
    uint64_t now = pc_client_now(c);
    if (c->cfg->status_line && !c->stopping)
        pc_report_status_line(c);
    if (!c->ended && !c->cfg->seed_mode && c->cfg->watch_s > 0 && now >= (uint64_t)(c->cfg->watch_s * 1e6)) {
        /* a viewer who leaves early: in-flight downloads stop, what it holds is still served */
        PC_LOGI("peer", "quitting playback after %g s (--watch-s)", c->cfg->watch_s);
        pc_engine_quit(c->e, now);
        on_ended(c, now);
        drive(c);
    }
    if (!c->ended && !c->stopping && !c->cfg->seed_mode && c->cfg->max_wait_s > 0) {
        /* nothing came to start, resume or finish a seek for that long: neither the CDN (a 404, an outage)
         * nor a peer can deliver, and a viewer would have given up long ago */
        pc_player v;
        pc_player_view(pc_engine_player(c->e), now, &v);
        uint64_t since = v.state == PC_PLAYER_STALLED ? v.stall_began
                         : v.state == PC_PLAYER_STARTING || v.state == PC_PLAYER_SEEKING ? v.requested_at
                                                                                          : now;
        if (now - since >= (uint64_t)(c->cfg->max_wait_s * 1e6)) {
            pc_cli_error("playback waited %.0f s for data at %.1f s of the video; giving up (last CDN error: %s)",
                         (double)(now - since) / 1e6, (double)v.pos_us / 1e6,
                         c->last_cdn_error[0] != '\0' ? c->last_cdn_error : "none");
            begin_shutdown(c, 1);
            return;
        }
    }
    if (!c->ended || c->stopping)
        return;
    pc_hls_stats hs; /* quiet: no request for --hls-linger (30 s), and none still waiting for its segment */
    int hls_quiet = c->cfg->hls_listen == NULL ||
                    (c->cfg->hls_linger_s > 0 && now - c->last_hls_us >= (uint64_t)(c->cfg->hls_linger_s * 1e6) &&
                     (pc_hls_stats_get(c, &hs) != 0 || hs.waiting == 0));
    int seeded = now - c->ended_at_us >= (uint64_t)(c->cfg->seed_after_s * 1e6);
    if (hls_quiet && seeded)
        begin_shutdown(c, 0);
}

/* ---- trust bootstrap ---- */

/* BASE/PATH into |body| (at most |max| bytes); -1 after saying why, with the {code, message} of an error
 * answer and, for a 403, |hint403|. */
static int fetch_from(const char *base, const char *path, size_t max, pc_buf *body, const char *hint403)
{
    char url[PC_CLIENT_URL_MAX + PC_CLIENT_QUERY_MAX + 300];
    long status = 0;
    const char *why = NULL;
    pc_buf_init(body, max);
    int rc = pc_http_get_blocking(base, path, 10, body, &status, url, sizeof(url), &why);
    if (rc != 0) {
        pc_cli_error("cannot fetch %s: %s", url, why != NULL ? why : pc_strerror(rc));
        return PC_ENET;
    }
    if (status != 200) {
        /* the server's {code, message}, shortened and printable */
        char detail[300] = "", cb[65], mb[201];
        json_t *o = NULL;
        if (pc_json_parse_object(body->data, body->len, max, &o, NULL, 0) == 0 && pc_json_str(o, "code") != NULL)
            snprintf(detail, sizeof(detail), " (%s: %s)", pc_log_printable_str(cb, sizeof(cb), pc_json_str(o, "code")),
                     pc_log_printable_str(mb, sizeof(mb), pc_json_str(o, "message")));
        json_decref(o);
        pc_cli_error("%s answered HTTP %ld%s%s", url, status, detail,
                status == 403 && hint403 != NULL ? hint403 : "");
        pc_buf_clear(body);
        return PC_EHTTP;
    }
    return 0;
}

/* A file of the video from the origin: |name| under /v/ID/, with the media query. */
static int fetch_media(const client *c, const char *name, size_t max, pc_buf *body)
{
    char path[PC_VIDEO_ID_MAX + PC_CLIENT_QUERY_MAX + 100];
    snprintf(path, sizeof(path), "v/%s/%s%s", c->cfg->video, name, c->mq);
    return fetch_from(c->cfg->origin, path, max, body,
                      c->mq[0] == '\0' ? "; an origin that serves media only through signed URLs needs --media-query"
                                       : "; --media-query is not (or no longer) a valid signature of this video");
}

/* The Ed25519 key a server publishes as {"ed25519": base64} at BASE/PATH (/api/origin-key,
 * /api/tracker-key): its base64 in |b64| and its 32 bytes in |pk|; -1 after saying why. */
static int fetch_key(const char *base, const char *path, char *b64, size_t n, uint8_t pk[32])
{
    pc_buf body;
    int rc = fetch_from(base, path, 4096, &body, NULL);
    json_t *o = NULL;
    const char *v = NULL;
    size_t kl = 0;
    if (rc == 0 && pc_json_parse_object(body.data, body.len, 4096, &o, NULL, 0) == 0)
        v = pc_json_str(o, "ed25519");
    if (rc == 0 && (v == NULL || strlen(v) >= n || pc_b64_decode(v, strlen(v), pk, 32, &kl, 0) != 0 || kl != 32)) {
        pc_cli_error("%s%s%s is not {\"ed25519\": base64 of 32 bytes}", base,
                base[0] != '\0' && base[strlen(base) - 1] == '/' ? "" : "/", path);
        rc = PC_EPARSE;
    }
    if (rc == 0)
        snprintf(b64, n, "%s", v);
    json_decref(o);
    pc_buf_clear(&body);
    return rc == 0 ? 0 : -1;
}

static int key_path(const client *c, char *out, size_t n)
{
    uint8_t h[32];
    char hex[65];
    pc_blake2b256(c->cfg->origin, strlen(c->cfg->origin), h);
    pc_hex(h, 16, hex);
    return (size_t)snprintf(out, n, "%s/origin-%s.key", c->cfg->state_dir, hex) < n ? 0 : PC_ETOOBIG;
}

/* Trust on first use: written whole (a temporary file, then rename), so a crash never leaves an empty pin. */
static void pin_origin_key(client *c, const char *path, const char *b64)
{
    char line[160];
    int n = snprintf(line, sizeof(line), "%s\n", b64);
    mkdir(c->cfg->state_dir, 0700);
    int r = pc_write_file(path, line, (size_t)n);
    if (r == 0)
        PC_LOGI("peer", "pinned the origin key %s in %s", b64, path);
    else
        PC_LOGW("peer", "cannot pin the origin key in %s: %s", path, pc_strerror(r));
}

/* A pin is only as good as the directory and file that hold it: like SSH's StrictModes, both must belong to
 * this user (or root) and be writable by nobody else, or someone else could plant a key. Absent is fine. */
static int pin_place_safe(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        pc_cli_error("cannot check %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if ((st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & 022) != 0) {
        pc_cli_error("%s %s %s: a key pinned there could be replaced by another user (chmod go-w, or another "
                     "--state-dir)", what, path,
                     (st.st_mode & 022) != 0 ? "can be written by group or others" : "belongs to another user");
        return -1;
    }
    return 0;
}

/* The origin key: from the command line, else pinned in the state directory, else fetched once and
 * pinned there (trust on first use). */
static int origin_key(client *c)
{
    const char *b64 = c->cfg->origin_key, *from = "--origin-key";
    char stored[128] = "";
    char path[1200];
    int fetched = 0;
    int have_path = c->cfg->state_dir != NULL && key_path(c, path, sizeof(path)) == 0;
    c->origin_pk_pinned = 0;
    if (b64 == NULL && have_path) {
        if (pin_place_safe(c->cfg->state_dir, "the state directory") != 0 || pin_place_safe(path, "the pinned key") != 0)
            return -1;
        char *text = NULL;
        size_t len = 0;
        int r = pc_read_file(path, 1024, &text, &len);
        if (r == 0) {
            snprintf(stored, sizeof(stored), "%.*s", (int)strcspn(text, "\r\n"), text);
            b64 = stored;
            from = path;
            c->origin_pk_pinned = 1;
        } else if (r != PC_ENOENT) {
            pc_cli_error("cannot read the pinned origin key %s: %s", path, pc_strerror(r));
            return -1;
        }
        free(text);
    }
    if (b64 == NULL) {
        if (fetch_key(c->cfg->origin, "api/origin-key", stored, sizeof(stored), c->origin_pk) != 0)
            return -1;
        b64 = stored;
        from = "the origin's /api/origin-key";
        fetched = 1;
    }
    size_t kl = 0;
    if (pc_b64_decode(b64, strlen(b64), c->origin_pk, sizeof(c->origin_pk), &kl, 0) != 0 || kl != 32) {
        pc_cli_error("the origin key from %s is not base64 of 32 bytes%s", from,
                c->origin_pk_pinned ? " (delete the file to pin the origin's key again)" : "");
        return -1;
    }
    if (fetched && have_path) /* pinned once the start succeeds (the manifest verified): a failed one pins nothing */
        snprintf(c->pin_b64, sizeof(c->pin_b64), "%s", stored);
    return 0;
}

/* A pinned key that did not sign the manifest of a loopback origin: that origin was re-created (a new
 * data directory on a port an old one used) rather than impersonated, since no network lies between.
 * Its current key is pinned instead when it did sign the manifest. 0 when it did. */
static int repin_loopback(client *c, const char *json, size_t jlen, const char *sig, size_t slen)
{
    char path[1200], b64[128];
    uint8_t pk[32];
    if (!c->origin_pk_pinned || !pc_url_is_loopback(c->cfg->origin) || key_path(c, path, sizeof(path)) != 0 ||
        fetch_key(c->cfg->origin, "api/origin-key", b64, sizeof(b64), pk) != 0 ||
        pc_manifest_verify(pk, json, jlen, sig, slen) != 0)
        return -1;
    memcpy(c->origin_pk, pk, sizeof(pk));
    /* pinned, and said, once the whole start has succeeded, like a first pin: a failed start changes nothing */
    snprintf(c->pin_b64, sizeof(c->pin_b64), "%s", b64);
    c->repin = 1;
    return 0;
}

static int load_manifest(client *c)
{
    pc_buf json, sig;
    if (fetch_media(c, "p2p.json", PC_MANIFEST_MAX_BYTES, &json) != 0) {
        pc_buf_clear(&json);
        return -1;
    }
    if (fetch_media(c, "p2p.json.sig", 1024, &sig) != 0) {
        pc_buf_clear(&json);
        pc_buf_clear(&sig);
        return -1;
    }
    int rc = pc_manifest_verify(c->origin_pk, json.data, json.len, sig.data, sig.len);
    if (rc != 0 && repin_loopback(c, json.data, json.len, sig.data, sig.len) == 0)
        rc = 0;
    pc_buf_clear(&sig);
    if (rc != 0) {
        char path[1200];
        if (c->cfg->origin_key != NULL)
            pc_cli_error("p2p.json of %s is not signed by the --origin-key key (%s)", c->cfg->video, pc_err_name(rc));
        else if (c->origin_pk_pinned && key_path(c, path, sizeof(path)) == 0)
            pc_cli_error("p2p.json of %s is not signed by the origin key pinned in %s (%s); if the origin's key "
                         "really changed, delete that file", c->cfg->video, path, pc_err_name(rc));
        else
            pc_cli_error("p2p.json of %s is not signed by the key the origin serves (%s)", c->cfg->video,
                         pc_err_name(rc));
        pc_buf_clear(&json);
        return -1;
    }
    rc = pc_manifest_parse(json.data, json.len, &c->mf);
    pc_buf_clear(&json);
    if (rc != 0 || strcmp(c->mf->video, c->cfg->video) != 0) {
        pc_cli_error("p2p.json of %s is %s", c->cfg->video, rc != 0 ? "malformed" : "for another video");
        return -1;
    }
    const char *why = NULL;
    rc = pc_peer_media_init(&c->pm, c->mf, &why);
    if (rc != 0) {
        pc_cli_error("cannot play %s: %s", c->cfg->video, why != NULL ? why : pc_strerror(rc));
        return -1;
    }
    return 0;
}

static int verify_stored(void *arg, uint32_t rung, uint32_t seg, const uint8_t *data, size_t len)
{
    client *c = arg;
    uint8_t h[32];
    pc_peer_media_hash(&c->pm, rung, seg, data, len, h);
    return rung < c->pm.m.n_rungs && seg < c->pm.m.n_segments && memcmp(h, c->pm.hash[rung] + 32 * (size_t)seg, 32) == 0;
}

/* Whether this host can listen on IPv6 (a kernel booted with ipv6.disable=1 cannot). */
static int ipv6_on(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static int bind_listen(client *c, const char *hostport)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (pc_hostport_parse(hostport, &ss) != 0)
        return UV_EINVAL;
    uv_tcp_init(&c->loop, &c->server);
    c->server_open = 1;
    c->server.data = c;
    /* libuv sets IPV6_V6ONLY to 0 itself: [::] takes IPv4 too, whatever net.ipv6.bindv6only says */
    int rc = uv_tcp_bind(&c->server, (struct sockaddr *)&ss, 0);
    return rc == 0 ? uv_listen((uv_stream_t *)&c->server, 128, on_connection) : rc;
}

/* The store's memory cap let a copy go that no disk copy backs: the engine no longer holds it (stops
 * offering it, and fetches it again if it is still to play: below). It went on counting it held: a player
 * asking for it waited a second for the endpoint's timer to notice, and peers asking were refused (found
 * by review). */
static void on_store_lost(void *arg, uint32_t rung, uint32_t seg)
{
    client *c = arg;
    const pc_media *md = &c->pm.m;
    if (rung >= md->n_rungs || seg >= md->n_segments)
        return;
    if (!c->seeding && !c->cfg->seed_mode) {
        uint64_t pos = pc_engine_playhead(c->e), start = 0;
        uint32_t playing = 0;
        while (playing + 1 < md->n_segments && start + md->seg_dur_us[playing] <= pos)
            start += md->seg_dur_us[playing++];
        /* a copy behind the playhead is only no longer offered; the one playing is the model's; one ahead is
         * fetched again once. A store too small for what must come in time evicted the next copy with each
         * fetch, which forgot and fetched it again: 14.8 GB from the CDN in 53 s for a 1.9 MB rendition
         * (found by review). Past that once, the endpoint's own look fetches it for a player that asks. */
        if (seg == playing)
            return;
        if (seg > playing && c->relost != NULL && c->relost[(size_t)rung * md->n_segments + seg]++ > 0)
            return;
    }
    pc_engine_forget(c->e, rung, seg);
}

/* The prefetch window holds at most half the memory store at the rung it may fetch at (the pinned one, or
 * the top), so that what it brings ahead is not evicted before it plays: with --mem-cap 16 and a
 * 2.8 Mbit/s rung, 60 s ahead was 21 MB, each prefetch evicted the next segment to play, which came
 * again from the CDN (86 MB moved for a 43 MB video; found by review). Never below the CDN-mode urgent
 * window and the safety margin: what must come in time is fetched whatever the cap. */
static void limit_prefetch(client *c, pc_engine_config *ec)
{
    const pc_media *md = &c->pm.m;
    uint32_t q = ec->pinned_rung >= 0 ? (uint32_t)ec->pinned_rung : md->n_rungs - 1;
    double bytes = 0, secs = 0;
    for (uint32_t i = 0; i < md->n_segments; i++) {
        bytes += (double)pc_peer_media_size(&c->pm, q, i);
        secs += md->seg_dur_us[i] / 1e6;
    }
    if (bytes <= 0 || secs <= 0 || c->cfg->cache_dir != NULL)
        return; /* a disk copy backs what memory lets go */
    double fit_us = (double)c->cfg->mem_cap / 2 / (bytes / secs) * 1e6;
    uint64_t floor_us = ec->cdn_urgent_us + ec->safety_us;
    if ((double)floor_us / 1e6 * (bytes / secs) > (double)c->cfg->mem_cap)
        PC_LOGW("peer", "--mem-cap holds less than the %.0f s of rendition %s that must come in time: copies will be "
                        "let go and fetched again", floor_us / 1e6, c->mf->renditions[c->pm.rend[q]].id);
    if (fit_us >= (double)ec->prefetch_us)
        return;
    ec->prefetch_us = fit_us > (double)floor_us ? (uint64_t)fit_us : floor_us;
    PC_LOGI("peer", "--mem-cap %.0f MiB holds %.0f s of rendition %s: prefetching %.0f s ahead",
            (double)c->cfg->mem_cap / (1 << 20),
            (double)c->cfg->mem_cap / (bytes / secs), c->mf->renditions[c->pm.rend[q]].id, ec->prefetch_us / 1e6);
}

/* Listens for peers on --listen, by default on every address of both families: the tracker lists a
 * peer at the address its announce came from, over either family (a peer on 0.0.0.0 that reached the
 * tracker over IPv6 was listed where it did not listen, and got no peer traffic at all). A peer bound to
 * one address sends its announces from that address too (CURLOPT_INTERFACE), so the tracker sees the
 * address it listens on, or the one a NAT maps it to (it saw whichever address the route chose: the
 * listing was refused by everyone). */
static int listen_peer(client *c)
{
    const char *want = c->cfg->listen != NULL ? c->cfg->listen : ipv6_on() ? "[::]:0" : "0.0.0.0:0";
    int rc = bind_listen(c, want);
    if (rc != 0) {
        pc_cli_error("cannot listen on %s: %s", want, uv_strerror(rc));
        return -1;
    }
    struct sockaddr_storage b;
    int bl = sizeof(b);
    uv_tcp_getsockname(&c->server, (struct sockaddr *)&b, &bl);
    char name[46] = "?";
    int any;
    if (b.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&b;
        uv_ip4_name(s4, name, sizeof(name));
        c->port = ntohs(s4->sin_port);
        snprintf(c->listen_bound, sizeof(c->listen_bound), "%s:%u", name, c->port);
        any = s4->sin_addr.s_addr == htonl(INADDR_ANY);
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&b;
        uv_ip6_name(s6, name, sizeof(name));
        c->port = ntohs(s6->sin6_port);
        snprintf(c->listen_bound, sizeof(c->listen_bound), "[%s]:%u", name, c->port);
        any = IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) /* the address an IPv4 socket would bind */
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], name, sizeof(name));
    }
    if (!any && c->cfg->announce_addr == NULL)
        snprintf(c->announce_from, sizeof(c->announce_from), "host!%s", name);
    return 0;
}

static int setup(client *c)
{
    const pc_client_config *cfg = c->cfg;
    if (origin_key(c) != 0 || load_manifest(c) != 0)
        return -1;
    size_t bl = strlen(cfg->origin);
    while (bl > 0 && cfg->origin[bl - 1] == '/')
        bl--;
    const char *tracker = cfg->tracker != NULL ? cfg->tracker : c->mf->has_tracker ? c->mf->tracker_url : NULL;
    if (bl > PC_CLIENT_URL_MAX || (size_t)snprintf(c->base, sizeof(c->base), "%.*s/v/%s/", (int)bl, cfg->origin,
                                                   cfg->video) >= sizeof(c->base)) {
        pc_cli_error("the origin URL is longer than %d characters", PC_CLIENT_URL_MAX);
        return -1;
    }
    if (tracker != NULL &&
        (size_t)snprintf(c->tracker_url, sizeof(c->tracker_url), "%s", tracker) >= sizeof(c->tracker_url)) {
        pc_cli_error("the tracker URL is longer than %zu characters", sizeof(c->tracker_url) - 1);
        return -1;
    }
    if (c->tracker_url[0] != '\0' && !c->mf->has_tracker) {
        /* the origin vouches for no tracker; the one named on the command line is trusted for its key (what
         * peers send is still checked against the signed hashes) */
        char b64[128];
        if (fetch_key(c->tracker_url, "api/tracker-key", b64, sizeof(b64), c->id.tracker_pk) != 0)
            return -1;
        PC_LOGW("peer", "the manifest names no tracker: trusting the key %s serves (--tracker)", c->tracker_url);
    }
    if (c->tracker_url[0] == '\0')
        PC_LOGW("peer", "the manifest names no tracker: playing from the CDN only");
    c->asm_seg = calloc(c->pm.m.n_segments, sizeof(asmbuf));
    if (c->asm_seg == NULL)
        return -1;
    int rc = pc_store_new(cfg->mem_cap, cfg->cache_dir, cfg->video, verify_stored, c, &c->store);
    if (rc != 0) {
        pc_cli_error("cannot use --cache-dir %s: %s", cfg->cache_dir,
                     rc == PC_EEXIST ? "a file that is not a directory is in the way" : pc_strerror(rc));
        return -1;
    }
    /* identity: a fresh key and peer id for every run (docs/peer.md) */
    crypto_sign_keypair(c->id.pk, c->id.sk);
    if (c->mf->has_tracker)
        memcpy(c->id.tracker_pk, c->mf->tracker_pk, 32);
    snprintf(c->id.video, sizeof(c->id.video), "%s", cfg->video);
    c->id.up_kbps = cfg->no_upload ? 0 : (uint32_t)(cfg->up_kbps > UINT32_MAX ? UINT32_MAX : cfg->up_kbps);
    uint64_t now = pc_client_now(c);
    double up_rate = (double)cfg->up_kbps * 1000 / 8, down_rate = (double)cfg->down_kbps * 1000 / 8;
    pc_tbucket_init(&c->upb, up_rate, up_rate / 20 > 32768 ? up_rate / 20 : 32768, now);
    pc_tbucket_init(&c->downb, down_rate, down_rate / 20 > 65536 ? down_rate / 20 : 65536, now);
    c->id.down = cfg->down_kbps > 0 ? &c->downb : NULL;
    c->id.t0_us = c->t0_us;
    c->id.shift_s = cfg->clock_shift_s;
    pc_engine_config ec;
    pc_engine_config_default(&ec);
    ec.seed = cfg->seed != 0 ? cfg->seed : uv_hrtime();
    ec.id = swarm_id(c->id.pk);
    ec.upload_bps = cfg->no_upload ? 0 : cfg->up_kbps > 0 ? cfg->up_kbps * 1000 : 1000000000ull;
    ec.start_bps = cfg->down_kbps > 0 ? cfg->down_kbps * 1000 : 0;
    if (c->tracker_url[0] == '\0')
        ec.cdn_only = 1;
    if (strcmp(cfg->rendition, "auto") != 0) {
        int q = pc_peer_media_rung(&c->pm, cfg->rendition);
        if (q < 0) {
            pc_cli_error("--rendition %s: the video has no such video rendition", cfg->rendition);
            return -1;
        }
        ec.pinned_rung = q;
    }
    limit_prefetch(c, &ec);
    rc = pc_engine_new(&c->pm.m, &ec, &c->e);
    if (rc != 0) {
        pc_cli_error("cannot start the engine: %s", pc_strerror(rc));
        return -1;
    }
    c->relost = calloc((size_t)c->pm.m.n_rungs * c->pm.m.n_segments, 1);
    pc_store_on_lost(c->store, on_store_lost, c);
    /* the tracker's view of us */
    randombytes_buf(c->ts.peer_id, sizeof(c->ts.peer_id));
    memcpy(c->ts.pk, c->id.pk, 32);
    memcpy(c->ts.sk, c->id.sk, 64);
    c->ts.video = cfg->video;
    c->ts.addr = cfg->announce_addr;
    c->ts.up_kbps = c->id.up_kbps;
    c->ts.numwant = NUMWANT;
    pc_buf_init(&c->announce_body, 16384);
    return 0;
}

int pc_client_run(const pc_client_config *cfg)
{
    client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        pc_cli_error("out of memory");
        return 1;
    }
    c->cfg = cfg;
    if (cfg->media_query != NULL) {
        if (!pc_client_query_valid(cfg->media_query)) {
            pc_cli_error("the media query is not a URL query of at most %d characters",
                    PC_CLIENT_QUERY_MAX);
            free(c);
            return 1;
        }
        snprintf(c->mq, sizeof(c->mq), "?%s", cfg->media_query);
    } else if (cfg->media_query_file != NULL) {
        char why[sizeof(c->mq_why)];
        if (mq_read(cfg->media_query_file, c->mq, why, sizeof(why)) != 0) {
            pc_cli_error("--media-query-file %s: %s", cfg->media_query_file, why);
            free(c);
            return 1;
        }
    }
    c->t0_us = uv_hrtime() / 1000 - 1; /* "now" is never 0 */
    c->exit_code = 1;
    uv_loop_init(&c->loop);
    uv_timer_t *timers[] = {&c->engine_timer, &c->kick, &c->upload_timer, &c->announce_timer, &c->status_timer,
                            &c->cdn_resume, &c->mq_timer};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        uv_timer_init(&c->loop, timers[i]);
        timers[i]->data = c;
    }
    uv_prepare_init(&c->loop, &c->settle);
    c->settle.data = c;
    uv_prepare_start(&c->settle, on_settle);
    uv_unref((uv_handle_t *)&c->settle); /* it keeps nothing alive */
    uv_signal_init(&c->loop, &c->sigint);
    uv_signal_init(&c->loop, &c->sigterm);
    uv_signal_init(&c->loop, &c->sighup);
    c->sigint.data = c->sigterm.data = c->sighup.data = c;
    c->http = pc_http_client_new(&c->loop);
    int ok = c->http != NULL && setup(c) == 0 && listen_peer(c) == 0;
    char hls_bound[64] = "";
    if (ok && cfg->hls_listen != NULL && pc_hls_start(c, cfg->hls_listen, hls_bound, sizeof(hls_bound)) != 0)
        ok = 0;
    if (ok) {
        /* the whole start went well (the manifest verified, the ports bound): now the key is pinned */
        char pin_path[1200];
        if (c->pin_b64[0] != '\0' && key_path(c, pin_path, sizeof(pin_path)) == 0) {
            if (c->repin)
                PC_LOGW("peer", "the loopback origin %s has a new key (re-created); pinning it instead of the one in %s",
                        cfg->origin, pin_path);
            pin_origin_key(c, pin_path, c->pin_b64);
        }
        if (cfg->state_dir == NULL && cfg->origin_key == NULL)
            PC_LOGW("peer", "no --state-dir and no HOME to keep the origin's key in: trusted as the origin served "
                            "it, for this run only (give --origin-key or --state-dir to pin it)");
        c->exit_code = 0;
        c->ts.port = c->port;
        uv_signal_start(&c->sigint, on_signal, SIGINT);
        uv_signal_start(&c->sigterm, on_signal, SIGTERM);
        /* a closed terminal or a dropped SSH session: before, the default action killed the peer with no
         * report and no "stopped" announce (found by review) */
        if (!pc_cli_sighup_ignored()) /* under nohup it stays ignored */
            uv_signal_start(&c->sighup, on_signal, SIGHUP);
        uv_timer_start(&c->status_timer, on_status_timer, 1000, 1000);
        if (cfg->media_query_file != NULL)
            uv_timer_start(&c->mq_timer, on_mq_timer, PC_CLIENT_MQ_CHECK_MS, PC_CLIENT_MQ_CHECK_MS);
        printf("peercdn-peer listening on tcp://%s (video %s, %u renditions, %u segments)\n", c->listen_bound,
               cfg->video, c->pm.m.n_rungs, c->pm.m.n_segments);
        if (hls_bound[0] != '\0')
            printf("peercdn-peer HLS endpoint listening on http://%s/v/%s/master.m3u8\n", hls_bound, cfg->video);
        fflush(stdout);
        if (cfg->seed_mode) {
            c->seed_segs = calloc((size_t)c->pm.m.n_rungs * c->pm.m.n_segments, sizeof(*c->seed_segs));
            if (c->seed_segs == NULL)
                PC_LOGW("seed", "out of memory: the report will not list the segments");
            seed_next(c);
        } else {
            pc_engine_play(c->e, pc_client_now(c));
            announce(c, "started");
            drive(c);
        }
    } else {
        after_stopped(c);
    }
    uv_run(&c->loop, UV_RUN_DEFAULT);
    /* a SIGTERM during the rest of the exit (one sent as the peer stopped on its own) is not a death by signal */
    close_handle((uv_handle_t *)&c->sigint);
    close_handle((uv_handle_t *)&c->sigterm);
    close_handle((uv_handle_t *)&c->sighup);
    pc_cli_ignore_stop_signals();
    uv_run(&c->loop, UV_RUN_DEFAULT);
    /* everything the loop owned is closed; free the rest */
    while (c->ndls > 0)
        dl_free(c, c->dls[c->ndls - 1]);
    free(c->dls);
    for (size_t i = 0; i < c->nups; i++) {
        if (c->ups[i]->blob != NULL)
            pc_blob_release(c->ups[i]->blob);
        free(c->ups[i]);
    }
    free(c->ups);
    if (c->announce_call != NULL)
        pc_tc_cancel(c->http, c->announce_call);
    if (c->http != NULL) {
        pc_http_client_free(c->http);
        uv_run(&c->loop, UV_RUN_DEFAULT);
    }
    pc_hls_free(c);
    if (uv_loop_close(&c->loop) != 0)
        PC_LOGW("peer", "handles left open at exit");
    int code = c->exit_code;
    if (c->asm_seg != NULL)
        for (uint32_t i = 0; i < c->pm.m.n_segments; i++)
            free(c->asm_seg[i].buf);
    free(c->asm_seg);
    for (int r = 0; r < PC_RUNGS_MAX; r++) {
        free(c->asm_init[r].buf);
        free(c->init[r]);
    }
    free(c->have_q);
    free(c->seed_segs);
    free(c->relost);
    pc_buf_clear(&c->announce_body);
    pc_store_free(c->store);
    pc_engine_free(c->e);
    pc_peer_media_clear(&c->pm);
    pc_manifest_free(c->mf);
    sodium_memzero(&c->id, sizeof(c->id));
    sodium_memzero(&c->ts, sizeof(c->ts));
    free(c);
    return code;
}
