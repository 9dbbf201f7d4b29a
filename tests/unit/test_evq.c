/* The simulator's event queue: the same order as one heap on (time, push order), whatever the mix of
 * near, wheel and far events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "evq.h"
#include "pc_rng.h"

/* The reference: every pending event in an array, the least (t, seq) found by a scan. */
typedef struct ref {
    sim_ev *a;
    size_t n;
    uint64_t seq;
} ref;

static void ref_push(ref *r, uint64_t t, uint32_t id)
{
    r->a[r->n++] = (sim_ev){.t = t, .seq = r->seq++, .id = id};
}

static sim_ev ref_pop(ref *r)
{
    size_t m = 0;
    for (size_t i = 1; i < r->n; i++)
        if (r->a[i].t < r->a[m].t || (r->a[i].t == r->a[m].t && r->a[i].seq < r->a[m].seq))
            m = i;
    sim_ev e = r->a[m];
    r->a[m] = r->a[--r->n];
    return e;
}

/* Pushes a random delay ahead of |now|: mostly within the wheel, some in the current bucket, some on
 * the same instant, some far beyond the wheel. */
static uint64_t delay(pc_rng *g)
{
    switch (pc_rng_below(g, 6)) {
    case 0: return 0;
    case 1: return pc_rng_below(g, 1u << EVQ_BUCKET_SHIFT);
    case 2: return pc_rng_below(g, 300000);
    case 3: return pc_rng_below(g, (uint64_t)EVQ_BUCKETS << EVQ_BUCKET_SHIFT);
    case 4: return ((uint64_t)EVQ_BUCKETS << EVQ_BUCKET_SHIFT) + pc_rng_below(g, 4000);
    default: return pc_rng_below(g, 40000000);
    }
}

static void pops_in_time_then_push_order(void **state)
{
    (void)state;
    enum { N = 50000 };
    sim_evq *q = malloc(sizeof(*q));
    ref r = {.a = malloc(N * sizeof(sim_ev))};
    assert_non_null(q);
    assert_non_null(r.a);
    sim_evq_init(q);
    pc_rng g;
    pc_rng_init(&g, 7);
    uint64_t now = 0;
    uint32_t id = 0, popped = 0;
    sim_ev e;
    assert_int_equal(sim_evq_pop(q, &e), 0);
    while (id < N) {
        /* bursts of pushes, then a few pops, so the queue both grows and drains */
        uint32_t k = (uint32_t)pc_rng_below(&g, 8);
        for (uint32_t j = 0; j < k && id < N; j++, id++) {
            uint64_t t = now + delay(&g);
            sim_evq_push(q, t, 0, id, 0);
            ref_push(&r, t, id);
        }
        for (uint32_t j = (uint32_t)pc_rng_below(&g, 8); j > 0 && r.n > 0; j--) {
            sim_ev want = ref_pop(&r);
            const sim_ev *ahead; /* the cache hint: when it names events, the first is the next pop */
            size_t na = sim_evq_ahead(q, &ahead, 5);
            assert_true(na <= 5);
            if (na > 0)
                assert_int_equal(ahead[0].id, want.id);
            assert_int_equal(sim_evq_pop(q, &e), 1);
            assert_int_equal(e.id, want.id);
            assert_int_equal(e.t, want.t);
            now = e.t;
            popped++;
        }
    }
    while (r.n > 0) {
        sim_ev want = ref_pop(&r);
        assert_int_equal(sim_evq_pop(q, &e), 1);
        assert_int_equal(e.id, want.id);
        popped++;
    }
    assert_int_equal(popped, N);
    assert_int_equal(sim_evq_pop(q, &e), 0);
    assert_int_equal(q->oom, 0);
    sim_evq_clear(q);
    free(q);
    free(r.a);
}

static void an_event_in_the_past_comes_next(void **state)
{
    (void)state;
    sim_evq *q = malloc(sizeof(*q));
    assert_non_null(q);
    sim_evq_init(q);
    sim_ev e;
    sim_evq_push(q, 5000000, 0, 1, 0);
    sim_evq_push(q, 9000000, 0, 2, 0);
    assert_int_equal(sim_evq_pop(q, &e), 1);
    assert_int_equal(e.id, 1);
    /* before the last event popped: raised to its time, after what is already due then */
    sim_evq_push(q, 10, 0, 3, 0);
    assert_int_equal(sim_evq_pop(q, &e), 1);
    assert_int_equal(e.id, 3);
    assert_int_equal(e.t, 5000000);
    assert_int_equal(sim_evq_pop(q, &e), 1);
    assert_int_equal(e.id, 2);
    assert_int_equal(sim_evq_pop(q, &e), 0);
    sim_evq_clear(q);
    free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pops_in_time_then_push_order),
        cmocka_unit_test(an_event_in_the_past_comes_next),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
