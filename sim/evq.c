/* The simulator's event queue; see evq.h. */
#include "evq.h"

#include <stdlib.h>
#include <string.h>

#define HEAP_D 4 /* a node's children share two cache lines */

static int ev_less(const sim_ev *a, const sim_ev *b)
{
    return a->t != b->t ? a->t < b->t : a->seq < b->seq;
}

static int vec_room(sim_evq *q, evq_vec *v)
{
    if (v->n < v->cap)
        return 1;
    uint32_t cap = v->cap ? v->cap * 2 : 16;
    sim_ev *a = cap > v->cap ? realloc(v->a, (size_t)cap * sizeof(*a)) : NULL;
    if (a == NULL) {
        q->oom = 1;
        return 0;
    }
    v->a = a;
    v->cap = cap;
    return 1;
}

static int heap_push(sim_evq *q, evq_vec *h, const sim_ev *e)
{
    if (!vec_room(q, h))
        return 0;
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / HEAP_D;
        if (!ev_less(e, &h->a[p]))
            break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = *e;
    return 1;
}

static sim_ev heap_pop(evq_vec *h)
{
    sim_ev top = h->a[0], last = h->a[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = HEAP_D * i + 1, m = i;
        const sim_ev *best = &last;
        for (size_t k = c; k < c + HEAP_D && k < n; k++) {
            if (ev_less(&h->a[k], best)) {
                m = k;
                best = &h->a[k];
            }
        }
        if (m == i)
            break;
        h->a[i] = h->a[m];
        i = m;
    }
    if (n > 0)
        h->a[i] = last;
    return top;
}

void sim_evq_init(sim_evq *q)
{
    memset(q, 0, sizeof(*q));
}

void sim_evq_clear(sim_evq *q)
{
    free(q->near.a);
    free(q->far.a);
    for (size_t b = 0; b < EVQ_BUCKETS; b++)
        free(q->wheel[b].a);
    memset(q, 0, sizeof(*q));
}

void sim_evq_push(sim_evq *q, uint64_t t, uint32_t kind, uint32_t id, uint32_t ver)
{
    if (t < q->now)
        t = q->now;
    sim_ev e = {.t = t, .seq = q->seq++, .kind = kind, .id = id, .ver = ver};
    uint64_t b = t >> EVQ_BUCKET_SHIFT;
    int ok;
    if (b <= q->cur) {
        ok = heap_push(q, &q->near, &e);
    } else if (b - q->cur <= EVQ_BUCKETS) {
        size_t s = b % EVQ_BUCKETS;
        evq_vec *v = &q->wheel[s];
        if ((ok = vec_room(q, v)) != 0) {
            v->a[v->n++] = e;
            q->used[s / 64] |= 1ull << (s % 64);
        }
    } else {
        ok = heap_push(q, &q->far, &e);
    }
    q->n += ok != 0;
}

/* The next wheel bucket after cur holding events, or UINT64_MAX. Buckets cur+1 .. cur+EVQ_BUCKETS sit
 * at distinct slots, so the first used slot after cur's, going round, is the earliest. */
static uint64_t next_wheel(const sim_evq *q)
{
    size_t from = (size_t)((q->cur + 1) % EVQ_BUCKETS);
    for (size_t k = 0; k <= EVQ_BUCKETS / 64; k++) {
        size_t w = (from / 64 + k) % (EVQ_BUCKETS / 64);
        uint64_t m = q->used[w];
        if (k == 0)
            m &= ~0ull << (from % 64); /* the first word: from |from| on */
        else if (k == EVQ_BUCKETS / 64)
            m &= (from % 64) ? ~(~0ull << (from % 64)) : 0; /* round again: the part before |from| */
        if (m != 0) {
            size_t s = w * 64 + (size_t)__builtin_ctzll(m);
            size_t d = (s + EVQ_BUCKETS - from) % EVQ_BUCKETS; /* 0 .. EVQ_BUCKETS-1 */
            return q->cur + 1 + d;
        }
    }
    return UINT64_MAX;
}

int sim_evq_pop(sim_evq *q, sim_ev *out)
{
    while (q->near.n == 0) {
        if (q->n == 0 || q->oom)
            return 0;
        uint64_t b = next_wheel(q), f = q->far.n > 0 ? q->far.a[0].t >> EVQ_BUCKET_SHIFT : UINT64_MAX;
        q->cur = b < f ? b : f;
        if (b == q->cur) {
            size_t s = b % EVQ_BUCKETS;
            evq_vec *v = &q->wheel[s];
            for (uint32_t k = 0; k < v->n && !q->oom; k++)
                heap_push(q, &q->near, &v->a[k]);
            v->n = 0;
            q->used[s / 64] &= ~(1ull << (s % 64));
        }
        while (q->far.n > 0 && (q->far.a[0].t >> EVQ_BUCKET_SHIFT) <= q->cur && !q->oom) {
            sim_ev e = heap_pop(&q->far);
            heap_push(q, &q->near, &e);
        }
    }
    *out = heap_pop(&q->near);
    q->now = out->t;
    q->n--;
    return 1;
}

size_t sim_evq_ahead(const sim_evq *q, const sim_ev **out, size_t max)
{
    *out = q->near.a; /* the root and its children: the next pop and the smallest of the rest */
    return q->near.n < max ? q->near.n : max;
}
