/* Upload policy; see pc_upload.h. */
#include "pc_upload.h"

#include <stdlib.h>

/* Burst allowance: one 64 KiB write, so a fresh peer can start at once. */
#define BURST 65536.0

const char *pc_refuse_reason_name(pc_refuse_reason r)
{
    switch (r) {
    case PC_REFUSE_NOT_HELD: return "not_held";
    case PC_REFUSE_DEADLINE: return "cannot_meet_deadline";
    case PC_REFUSE_BUSY: return "busy";
    case PC_REFUSE_DISABLED: return "upload_disabled";
    default: return "none";
    }
}

void pc_upload_init(pc_upload *u, uint64_t cap_bps, uint32_t slots, uint32_t per_peer, uint32_t max_queue)
{
    *u = (pc_upload){.cap_bps = cap_bps, .slots = slots ? slots : 1, .per_peer = per_peer ? per_peer : 1,
                     .max_queue = max_queue ? max_queue : 1, .tokens = BURST};
}

void pc_upload_clear(pc_upload *u)
{
    free(u->q);
    u->q = NULL;
    u->n = u->cap = 0;
}

void pc_upload_set_max_wait(pc_upload *u, uint64_t us)
{
    u->max_wait_us = us;
}

static double rate(const pc_upload *u)
{
    return (double)u->cap_bps / 8.0; /* bytes per second */
}


static void refill(pc_upload *u, uint64_t now)
{
    if (now > u->t_us) {
        u->tokens += rate(u) * (double)(now - u->t_us) / 1e6;
        if (u->tokens > BURST)
            u->tokens = BURST;
    }
    u->t_us = now > u->t_us ? now : u->t_us;
}

static int before(const pc_upload_req *a, const pc_upload_req *b)
{
    return a->deadline != b->deadline ? a->deadline < b->deadline : a->seq < b->seq;
}

static pc_refuse_reason admit(pc_upload *u, uint64_t id, uint32_t peer, uint32_t len, int held, uint64_t deadline,
                              uint64_t now)
{
    if (u->cap_bps == 0)
        return PC_REFUSE_DISABLED;
    if (!held)
        return PC_REFUSE_NOT_HELD;
    refill(u, now);
    uint32_t mine = 0;
    for (size_t i = 0; i < u->n; i++)
        mine += u->q[i].peer == peer;
    if (mine >= u->per_peer || u->n >= u->max_queue)
        return PC_REFUSE_BUSY;
    /* bytes that go out before this one: the bucket's debt, what is waiting with an earlier deadline,
     * and the serving ones in full (a conservative estimate of its finish) */
    pc_upload_req me = {.id = id, .peer = peer, .len = len, .deadline = deadline, .seq = u->seq};
    double debt = u->tokens < 0 ? -u->tokens : 0, serving = 0, waiting = 0;
    for (size_t i = 0; i < u->n; i++) {
        if (u->q[i].serving)
            serving += u->q[i].len;
        else if (before(&u->q[i], &me))
            waiting += u->q[i].len;
    }
    double finish = (double)now + (debt + serving + waiting + len) / rate(u) * 1e6;
    /* a request already due when it arrives (a stalled or seeking player's, or one a real player asked
     * for: due_ms 0) means "as soon as you can": its requester turned to a peer because the CDN could not
     * take it. Refused as late, it was refused by every peer in turn (each then backed off), and a viewer
     * whose CDN was down never started after a seek (found by review). It still waits behind what is
     * serving and must not push an admitted request past its deadline (below). */
    if (deadline > now && finish > (double)deadline)
        return PC_REFUSE_DEADLINE;
    /* queuing it must not push an admitted request past its own deadline */
    for (size_t i = 0; i < u->n; i++) {
        if (u->q[i].serving || before(&u->q[i], &me))
            continue;
        double before_it = u->tokens < 0 ? -u->tokens : 0;
        for (size_t j = 0; j < u->n; j++)
            if (u->q[j].serving || before(&u->q[j], &u->q[i]))
                before_it += u->q[j].len;
        if ((double)now + (before_it + len + u->q[i].len) / rate(u) * 1e6 > (double)u->q[i].deadline)
            return PC_REFUSE_DEADLINE;
    }
    /* it starts once the bucket has paid for the waiting ones before it (the serving ones took their
     * bytes when they started: that is the debt) */
    if (u->max_wait_us > 0 && (debt + waiting) / rate(u) * 1e6 > (double)u->max_wait_us)
        return PC_REFUSE_BUSY;
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 16;
        pc_upload_req *q = realloc(u->q, cap * sizeof(*q));
        if (q == NULL)
            return PC_REFUSE_BUSY;
        u->q = q;
        u->cap = cap;
    }
    u->seq++;
    u->q[u->n++] = me;
    return PC_REFUSE_NONE;
}

pc_refuse_reason pc_upload_request(pc_upload *u, uint64_t id, uint32_t peer, uint32_t len, int held,
                                   uint64_t deadline, uint64_t now)
{
    pc_refuse_reason why = admit(u, id, peer, len, held, deadline, now);
    u->refused += why != PC_REFUSE_NONE;
    return why;
}

/* Whether starting waiting request |r| now, ahead of the ones with earlier deadlines, still finishes each
 * of those by its deadline, as admit estimates it (the serving ones in full, then deadline order): what
 * admission promised them. */
static int jump_keeps_deadlines(const pc_upload *u, const pc_upload_req *r, uint64_t now)
{
    double base = (u->tokens < 0 ? -u->tokens : 0) + r->len;
    for (size_t j = 0; j < u->n; j++)
        if (u->q[j].serving)
            base += u->q[j].len;
    for (size_t i = 0; i < u->n; i++) {
        const pc_upload_req *a = &u->q[i];
        if (a->serving || a == r || !before(a, r))
            continue;
        double bytes = base + a->len;
        for (size_t j = 0; j < u->n; j++)
            if (!u->q[j].serving && &u->q[j] != r && before(&u->q[j], a))
                bytes += u->q[j].len;
        if ((double)now + bytes / rate(u) * 1e6 > (double)a->deadline)
            return 0;
    }
    return 1;
}

int pc_upload_next(pc_upload *u, uint64_t now, uint64_t *id, uint32_t *len)
{
    refill(u, now);
    if (u->cap_bps == 0 || u->tokens < 0)
        return 0;
    uint32_t serving = 0;
    for (size_t i = 0; i < u->n; i++)
        serving += u->q[i].serving == 1;
    if (serving >= u->slots)
        return 0;
    /* earliest deadline whose requester is not already being served (fairness), as long as going
     * before earlier deadlines keeps them (below); else, or if every waiting request's requester is
     * being served, the earliest of them */
    pc_upload_req *best = NULL, *fallback = NULL;
    for (size_t i = 0; i < u->n; i++) {
        pc_upload_req *r = &u->q[i];
        if (r->serving)
            continue;
        int busy = 0;
        for (size_t j = 0; j < u->n && !busy; j++)
            busy = u->q[j].serving && u->q[j].peer == r->peer;
        pc_upload_req **slot = busy ? &fallback : &best;
        if (*slot == NULL || before(r, *slot))
            *slot = r;
    }
    if (best != NULL && fallback != NULL && before(fallback, best) && !jump_keeps_deadlines(u, best, now))
        best = fallback; /* fairness would make an admitted request late (found by review: 0.9 s late) */
    if (best == NULL)
        best = fallback;
    if (best == NULL)
        return 0;
    best->serving = 1;
    u->tokens -= best->len;
    u->bytes_started += best->len;
    u->served++;
    *id = best->id;
    *len = best->len;
    return 1;
}

void pc_upload_held(pc_upload *u, uint64_t id, int held)
{
    for (size_t i = 0; i < u->n; i++)
        if (u->q[i].id == id && u->q[i].serving)
            u->q[i].serving = held ? 2 : 1;
}

void pc_upload_done(pc_upload *u, uint64_t id)
{
    for (size_t i = 0; i < u->n; i++) {
        if (u->q[i].id == id) {
            u->q[i] = u->q[--u->n];
            return;
        }
    }
}

void pc_upload_drop_peer(pc_upload *u, uint32_t peer)
{
    for (size_t i = 0; i < u->n;) {
        if (u->q[i].peer == peer)
            u->q[i] = u->q[--u->n];
        else
            i++;
    }
}

uint64_t pc_upload_expiry(const pc_upload *u)
{
    if (u->cap_bps == 0 || u->tokens >= 0)
        return UINT64_MAX;
    int waiting = 0;
    for (size_t i = 0; i < u->n && !waiting; i++)
        waiting = !u->q[i].serving;
    if (!waiting)
        return UINT64_MAX;
    return u->t_us + (uint64_t)(-u->tokens / rate(u) * 1e6) + 1;
}
