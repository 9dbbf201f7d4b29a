/* Tracker registry: membership, expiry at the exact tick, and statistics arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tracker_fixture.h"

static uint32_t announce_ok(pc_registry *r, const pc_announce *a, uint64_t now)
{
    uint32_t self = 0;
    assert_int_equal(pc_registry_announce(r, a, 7, now, &self), 0);
    return self;
}

static void started_peers_join_their_video(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    for (int i = 0; i < 5; i++) {
        pc_announce a = fx_announce(i, i < 3 ? "va" : "vb", PC_EV_STARTED, 0);
        uint32_t self = announce_ok(r, &a, SEC);
        const pc_peer_rec *p = pc_registry_peer(r, self);
        assert_memory_equal(p->key, a.key, 32);
        assert_int_equal(p->port, 4000 + i);
        assert_int_equal(p->net, 7);
    }
    assert_int_equal(pc_registry_npeers(r), 5);
    assert_int_equal(pc_registry_find_swarm(r, "va")->nmembers, 3);
    assert_int_equal(pc_registry_find_swarm(r, "vb")->nmembers, 2);
    assert_null(pc_registry_find_swarm(r, "vc"));
    /* announcing again updates the same record */
    pc_announce a = fx_announce(1, "va", PC_EV_PERIODIC, 5000);
    uint32_t self = announce_ok(r, &a, 2 * SEC);
    assert_int_equal(pc_registry_peer(r, self)->playhead_ms, 5000);
    assert_int_equal(pc_registry_npeers(r), 5);
    pc_registry_free(r);
}

static void expiry_happens_at_exactly_two_intervals(void **state)
{
    (void)state;
    const uint64_t iv = 30 * SEC;
    pc_registry *r = fx_registry(iv);
    pc_announce a = fx_announce(1, "v", PC_EV_STARTED, 0), b = fx_announce(2, "v", PC_EV_STARTED, 0);
    announce_ok(r, &a, 100 * SEC);
    announce_ok(r, &b, 110 * SEC);
    assert_int_equal(pc_registry_next_expiry(r), 100 * SEC + 2 * iv);
    assert_int_equal(pc_registry_expire(r, 100 * SEC + 2 * iv - 1), 0); /* one tick before */
    assert_int_equal(pc_registry_npeers(r), 2);
    assert_int_equal(pc_registry_expire(r, 100 * SEC + 2 * iv), 1); /* at the tick */
    assert_int_equal(pc_registry_npeers(r), 1);
    assert_int_equal(pc_registry_next_expiry(r), 110 * SEC + 2 * iv);
    /* an announce moves the deadline */
    b.event = PC_EV_PERIODIC;
    announce_ok(r, &b, 150 * SEC);
    assert_int_equal(pc_registry_expire(r, 110 * SEC + 2 * iv), 0);
    assert_int_equal(pc_registry_next_expiry(r), 150 * SEC + 2 * iv);
    assert_int_equal(pc_registry_expire(r, 150 * SEC + 2 * iv), 1);
    assert_int_equal(pc_registry_npeers(r), 0);
    assert_int_equal(pc_registry_next_expiry(r), UINT64_MAX);
    /* the statistics of the video stay */
    assert_non_null(pc_registry_find_swarm(r, "v"));
    pc_registry_free(r);
}

static void counters_add_deltas_and_refuse_going_back(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    pc_announce a = fx_announce(1, "v", PC_EV_STARTED, 0);
    a.counters.bytes_cdn = 1000;
    announce_ok(r, &a, SEC);
    a.event = PC_EV_PERIODIC;
    a.counters.bytes_cdn = 1500;
    a.counters.bytes_p2p = 4000;
    a.counters.startup_ms = 800;
    a.counters.played_ms = 10000;
    announce_ok(r, &a, 2 * SEC);
    pc_announce b = fx_announce(2, "v", PC_EV_STARTED, 0);
    b.counters.bytes_p2p = 500;
    b.counters.stalls = 1;
    b.counters.stall_ms = 300;
    announce_ok(r, &b, 3 * SEC);
    const pc_vstats *st = &pc_registry_find_swarm(r, "v")->st;
    assert_int_equal(st->bytes_cdn, 1500);
    assert_int_equal(st->bytes_p2p, 4500);
    assert_int_equal(st->stalls, 1);
    assert_int_equal(st->stall_ms, 300);
    assert_int_equal(st->played_ms, 10000);
    assert_int_equal(st->viewers, 1);
    assert_int_equal(st->announces, 3);
    /* backwards: refused, nothing changes */
    a.counters.bytes_cdn = 1499;
    uint32_t self;
    assert_int_equal(pc_registry_announce(r, &a, 7, 4 * SEC, &self), PC_ECONFLICT);
    assert_int_equal(st->bytes_cdn, 1500);
    assert_int_equal(st->announces, 3);
    /* the start-up time, once reported, is fixed */
    a.counters.bytes_cdn = 1500;
    a.counters.startup_ms = 900;
    assert_int_equal(pc_registry_announce(r, &a, 7, 4 * SEC, &self), PC_ECONFLICT);
    /* stopped: the last counters count, then the peer is gone */
    a.counters.startup_ms = 800;
    a.counters.bytes_p2p = 6000;
    a.event = PC_EV_STOPPED;
    assert_int_equal(pc_registry_announce(r, &a, 7, 5 * SEC, &self), 0);
    assert_int_equal(self, PC_NONE);
    assert_int_equal(st->bytes_p2p, 6500);
    assert_int_equal(pc_registry_npeers(r), 1);
    pc_registry_free(r);
}

static void same_key_new_peer_id_is_a_restart(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    pc_announce a = fx_announce(1, "v", PC_EV_STARTED, 0);
    a.counters.bytes_cdn = 5000;
    uint32_t first = announce_ok(r, &a, SEC);
    pc_announce again = a;
    again.peer_id[0] ^= 0xff; /* the same key's holder, started anew: counters from zero */
    again.counters.bytes_cdn = 100;
    uint32_t second = announce_ok(r, &again, 2 * SEC);
    assert_int_equal(first, second);
    assert_int_equal(pc_registry_npeers(r), 1);
    assert_memory_equal(pc_registry_peer(r, second)->id, again.peer_id, PC_PEER_ID_LEN);
    assert_int_equal(pc_registry_find_swarm(r, "v")->st.bytes_cdn, 5100);
    pc_registry_free(r);
}

static void unknown_periodic_peer_sets_a_baseline(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    pc_announce a = fx_announce(1, "v", PC_EV_PERIODIC, 0); /* e.g. it expired meanwhile */
    a.counters.bytes_cdn = 5000;
    announce_ok(r, &a, SEC);
    assert_int_equal(pc_registry_find_swarm(r, "v")->st.bytes_cdn, 0);
    a.counters.bytes_cdn = 5600;
    announce_ok(r, &a, 2 * SEC);
    assert_int_equal(pc_registry_find_swarm(r, "v")->st.bytes_cdn, 600);
    pc_registry_free(r);
}

static void limits_refuse_without_changing_anything(void **state)
{
    (void)state;
    pc_registry_config c = {.interval_us = 30 * SEC, .max_peers = 3, .max_swarms = 2, .hash_seed = 1};
    pc_registry *r = pc_registry_new(&c);
    uint32_t self;
    for (int i = 0; i < 3; i++) {
        pc_announce a = fx_announce(i, "v1", PC_EV_STARTED, 0);
        announce_ok(r, &a, SEC);
    }
    pc_announce a = fx_announce(9, "v1", PC_EV_STARTED, 0);
    assert_int_equal(pc_registry_announce(r, &a, 7, SEC, &self), PC_ELIMIT);
    assert_int_equal(pc_registry_npeers(r), 3);
    /* a refused announce for a new video leaves no video behind */
    pc_announce d = fx_announce(11, "v3", PC_EV_STARTED, 0);
    assert_int_equal(pc_registry_announce(r, &d, 7, SEC, &self), PC_ELIMIT);
    assert_null(pc_registry_find_swarm(r, "v3"));
    assert_int_equal(pc_registry_nswarms(r), 1);
    /* nor does a "stopped" for a video nobody announced */
    pc_announce b = fx_announce(10, "v2", PC_EV_STOPPED, 0);
    assert_int_equal(pc_registry_announce(r, &b, 7, SEC, &self), 0);
    assert_null(pc_registry_find_swarm(r, "v2"));
    pc_registry_free(r);
    /* videos */
    c.max_peers = 100;
    r = pc_registry_new(&c);
    for (int i = 0; i < 2; i++) {
        pc_announce e = fx_announce(i, i == 0 ? "v1" : "v2", PC_EV_STARTED, 0);
        announce_ok(r, &e, SEC);
    }
    pc_announce e3 = fx_announce(3, "v3", PC_EV_STARTED, 0);
    assert_int_equal(pc_registry_announce(r, &e3, 7, SEC, &self), PC_ELIMIT);
    assert_int_equal(pc_registry_npeers(r), 2);
    pc_registry_free(r);
    /* renditions per video: all in use refuses a new one; one no live peer uses is taken over */
    r = fx_registry(30 * SEC);
    for (int i = 0; i < PC_REND_MAX; i++) {
        pc_announce e = fx_announce(i, "v", PC_EV_STARTED, 0);
        snprintf(e.rendition, sizeof(e.rendition), "r%d", i);
        announce_ok(r, &e, SEC);
    }
    pc_announce e = fx_announce(99, "v", PC_EV_STARTED, 0);
    snprintf(e.rendition, sizeof(e.rendition), "one-too-many");
    assert_int_equal(pc_registry_announce(r, &e, 7, SEC, &self), PC_ELIMIT);
    assert_int_equal(pc_registry_npeers(r), PC_REND_MAX);
    pc_announce moved = fx_announce(5, "v", PC_EV_PERIODIC, 0); /* r5's only peer switches to r6 */
    snprintf(moved.rendition, sizeof(moved.rendition), "r6");
    announce_ok(r, &moved, 2 * SEC);
    self = announce_ok(r, &e, 2 * SEC);
    const pc_swarm *sw = pc_registry_find_swarm(r, "v");
    assert_string_equal(sw->rend[pc_registry_peer(r, self)->rend], "one-too-many");
    assert_int_equal(pc_registry_peer(r, self)->rend, 5);
    assert_int_equal(sw->rend_peers[5], 1);
    assert_int_equal(sw->rend_peers[6], 2);
    /* a slot freed by peers leaving is taken over too */
    pc_announce gone = fx_announce(7, "v", PC_EV_STOPPED, 0);
    snprintf(gone.rendition, sizeof(gone.rendition), "r7");
    announce_ok(r, &gone, 3 * SEC);
    pc_announce late = fx_announce(100, "v", PC_EV_STARTED, 0);
    snprintf(late.rendition, sizeof(late.rendition), "late");
    self = announce_ok(r, &late, 3 * SEC);
    assert_int_equal(pc_registry_peer(r, self)->rend, 7);
    /* every name in use: the only peer at a name may still switch to a new one, which takes its slot
     * (leaving would have freed it); a peer sharing its name may not */
    pc_announce sw8 = fx_announce(8, "v", PC_EV_PERIODIC, 0);
    snprintf(sw8.rendition, sizeof(sw8.rendition), "new8");
    self = announce_ok(r, &sw8, 4 * SEC);
    assert_int_equal(pc_registry_peer(r, self)->rend, 8);
    assert_string_equal(sw->rend[8], "new8");
    assert_int_equal(sw->rend_peers[8], 1);
    pc_announce sw6 = fx_announce(6, "v", PC_EV_PERIODIC, 0); /* r6 has two peers */
    snprintf(sw6.rendition, sizeof(sw6.rendition), "new6");
    assert_int_equal(pc_registry_announce(r, &sw6, 7, 4 * SEC, &self), PC_ELIMIT);
    assert_int_equal(sw->rend_peers[6], 2);
    pc_registry_free(r);
}

static void sums_stop_at_the_largest_exact_json_integer(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    const uint64_t max = 9007199254740991ull; /* 2^53 - 1 */
    for (int i = 0; i < 3; i++) {
        pc_announce a = fx_announce(i, "v", PC_EV_STARTED, 0);
        announce_ok(r, &a, SEC);
        a.event = PC_EV_PERIODIC;
        a.counters.bytes_p2p = max;
        a.counters.played_ms = max - 1;
        announce_ok(r, &a, 2 * SEC);
    }
    const pc_swarm *sw = pc_registry_find_swarm(r, "v");
    assert_true(sw->st.bytes_p2p == max);
    assert_true(sw->st.played_ms == max);
    pc_registry_free(r);
}

/* The total across videos is the videos' sums added with the same cap, kept up to date by announces,
 * stops and restores: several videos near the cap do not wrap it (they once made offload 7.2). */
static void the_total_is_the_capped_sum_of_the_videos(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    const uint64_t max = 9007199254740991ull; /* 2^53 - 1 */
    for (int i = 0; i < 5; i++) {
        char v[8];
        snprintf(v, sizeof(v), "v%d", i);
        pc_announce a = fx_announce(i, v, PC_EV_STARTED, 0);
        a.counters.startup_ms = 300;
        a.seeding = i == 4;
        announce_ok(r, &a, SEC);
        a.event = i % 2 ? PC_EV_STOPPED : PC_EV_PERIODIC;
        a.counters.bytes_cdn = max / 2 + 1;
        a.counters.bytes_p2p = max / 3;
        a.counters.played_ms = 1000;
        announce_ok(r, &a, 2 * SEC);
    }
    uint64_t peers, seeders;
    const pc_vstats *t = pc_registry_total(r, &peers, &seeders);
    assert_true(t->bytes_cdn == max);
    assert_true(t->bytes_p2p == max);
    assert_true(t->played_ms == 5000);
    assert_true(t->viewers == 5 && t->announces == 10);
    assert_true(peers == 3 && seeders == 1); /* v1 and v3 stopped; v4 seeds */
    /* the same as summing the videos afresh */
    pc_vstats sum;
    memset(&sum, 0, sizeof(sum));
    for (size_t i = 0; i < pc_registry_nswarms(r); i++)
        pc_vstats_add(&sum, &pc_registry_swarm(r, (uint32_t)i)->st);
    assert_memory_equal(&sum, t, sizeof(sum));
    pc_registry_expire(r, 100 * SEC);
    t = pc_registry_total(r, &peers, &seeders);
    assert_true(peers == 0 && seeders == 0 && t->bytes_cdn == max);
    /* restores: a new video adds to the total, one restored again replaces its figures */
    pc_vstats st = {.bytes_cdn = 10, .bytes_p2p = 30, .viewers = 2, .played_ms = 7};
    st.startup_hist[3] = 2;
    pc_registry *q = fx_registry(30 * SEC);
    assert_int_equal(pc_registry_restore_stats(q, "x", &st), 0);
    assert_int_equal(pc_registry_restore_stats(q, "y", &st), 0);
    st.bytes_cdn = 20;
    assert_int_equal(pc_registry_restore_stats(q, "x", &st), 0);
    t = pc_registry_total(q, &peers, &seeders);
    assert_true(t->bytes_cdn == 30 && t->bytes_p2p == 60 && t->viewers == 4 && t->played_ms == 14);
    assert_int_equal(t->startup_hist[3], 4);
    pc_registry_free(q);
    pc_registry_free(r);
}

static void many_peers_join_and_leave_consistently(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    const int n = 70000; /* more than one slab, several index growths */
    uint64_t now = SEC;
    for (int i = 0; i < n; i++) {
        char v[8];
        snprintf(v, sizeof(v), "v%d", i % 50);
        pc_announce a = fx_announce(i, v, PC_EV_STARTED, 0);
        announce_ok(r, &a, now);
    }
    assert_int_equal(pc_registry_npeers(r), n);
    for (int i = 0; i < n; i += 2) { /* half leave */
        char v[8];
        snprintf(v, sizeof(v), "v%d", i % 50);
        pc_announce a = fx_announce(i, v, PC_EV_STOPPED, 0);
        uint32_t self;
        assert_int_equal(pc_registry_announce(r, &a, 7, now, &self), 0);
    }
    assert_int_equal(pc_registry_npeers(r), n / 2);
    size_t members = 0;
    for (uint32_t s = 0; s < pc_registry_nswarms(r); s++) {
        const pc_swarm *sw = pc_registry_swarm(r, s);
        members += sw->nmembers;
        for (uint32_t k = 0; k < sw->nmembers; k++) { /* every member knows its place */
            const pc_peer_rec *p = pc_registry_peer(r, sw->members[k]);
            assert_int_equal(p->slot, k);
            assert_int_equal(p->swarm, s);
        }
    }
    assert_int_equal(members, n / 2);
    for (int i = 1; i < n; i += 2) { /* the others are still found by key */
        char v[8];
        snprintf(v, sizeof(v), "v%d", i % 50);
        pc_announce a = fx_announce(i, v, PC_EV_PERIODIC, 1);
        uint32_t self = announce_ok(r, &a, now + SEC);
        assert_int_equal(pc_registry_peer(r, self)->playhead_ms, 1);
    }
    assert_int_equal(pc_registry_npeers(r), n / 2);
    assert_int_equal(pc_registry_expire(r, now + SEC + 60 * SEC), n / 2);
    pc_registry_free(r);
}

static void restored_peer_counts_nothing_twice(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    pc_vstats st = {.bytes_cdn = 100, .bytes_p2p = 900, .viewers = 1};
    assert_int_equal(pc_registry_restore_stats(r, "v", &st), 0);
    pc_announce a = fx_announce(1, "v", PC_EV_PERIODIC, 0);
    a.counters.bytes_cdn = 100;
    a.counters.bytes_p2p = 900;
    assert_int_equal(pc_registry_restore_peer(r, &a, 7, 5000, SEC), 0);
    a.counters.bytes_p2p = 1000;
    announce_ok(r, &a, 2 * SEC);
    const pc_vstats *s = &pc_registry_find_swarm(r, "v")->st;
    assert_int_equal(s->bytes_p2p, 1000);
    assert_int_equal(s->bytes_cdn, 100);
    pc_registry_free(r);
}

static void histogram_quantiles(void **state)
{
    (void)state;
    uint32_t h[PC_HIST_BUCKETS] = {0};
    assert_true(pc_hist_quantile(h, 0.5) == 0);
    for (int ms = 100; ms <= 10000; ms += 100)
        h[pc_hist_bucket((uint64_t)ms)]++;
    double p50 = pc_hist_quantile(h, 0.5), p95 = pc_hist_quantile(h, 0.95);
    assert_true(p50 > 5000 * 0.85 && p50 < 5000 * 1.15); /* within a bucket's width */
    assert_true(p95 > 9500 * 0.85 && p95 < 9500 * 1.15);
    assert_int_equal(pc_hist_bucket(0), 0);
    assert_int_equal(pc_hist_bucket(9), 0);
    assert_int_equal(pc_hist_bucket(10), 1);
    assert_int_equal(pc_hist_bucket(11), 1);
    assert_int_equal(pc_hist_bucket(12), 2);
    assert_int_equal(pc_hist_bucket(UINT32_MAX), PC_HIST_BUCKETS - 1);
}

static const char *region_of(const pc_registry *r, uint32_t self)
{
    return pc_registry_region(r, pc_registry_peer(r, self)->region);
}

/* One peer cycling through invented region names holds one at a time: the operator's (pinned) names and
 * other peers' names still resolve, after more names than the table holds. */
static void region_names_a_peer_invents_do_not_fill_the_table(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    pc_registry_pin_region(r, "eu-west");
    pc_announce bad = fx_announce(1, "v", PC_EV_STARTED, 0);
    for (int i = 0; i < 10000; i++) {
        snprintf(bad.region, sizeof(bad.region), "junk%d", i);
        uint32_t self = announce_ok(r, &bad, SEC + (uint64_t)i);
        assert_string_equal(region_of(r, self), bad.region);
        bad.event = PC_EV_PERIODIC;
    }
    pc_announce a = fx_announce(2, "v", PC_EV_STARTED, 0), b = fx_announce(3, "v", PC_EV_STARTED, 0);
    snprintf(a.region, sizeof(a.region), "eu-west");
    snprintf(b.region, sizeof(b.region), "us-east");
    assert_string_equal(region_of(r, announce_ok(r, &a, 2 * SEC)), "eu-west");
    assert_string_equal(region_of(r, announce_ok(r, &b, 2 * SEC)), "us-east");
    /* a pinned name outlives every record holding it */
    a.event = b.event = PC_EV_STOPPED;
    announce_ok(r, &a, 3 * SEC);
    announce_ok(r, &b, 3 * SEC);
    pc_announce c = fx_announce(4, "v", PC_EV_STARTED, 0);
    snprintf(c.region, sizeof(c.region), "eu-west");
    uint16_t id = pc_registry_peer(r, announce_ok(r, &c, 4 * SEC))->region;
    assert_int_not_equal(id, 0);
    pc_registry_free(r);
}

/* Random joins, region changes and leaves against a model: every live record's region reads back as the
 * name it declared, records declaring the same name share its id (the same-region score compares ids; a
 * deletion that broke a probe run would intern a name twice), and names no record holds are forgotten, so
 * 3000 live peers can go through 20000 names. */
static void region_names_follow_their_records(void **state)
{
    (void)state;
    enum { PEERS = 3000, NAMES = 20000, STEPS = 60000 };
    pc_registry *r = fx_registry(3600 * SEC);
    static int held[PEERS]; /* the name's number, or -1 for no record */
    static uint32_t idx[PEERS];
    static uint16_t id_of[NAMES];
    static int seen_at[NAMES];
    for (int i = 0; i < PEERS; i++)
        held[i] = -1;
    uint64_t x = 88172645463325252ULL;
    for (int step = 0; step < STEPS; step++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int i = (int)(x % PEERS), name = (int)((x >> 20) % NAMES);
        pc_announce a = fx_announce(i, "v", held[i] < 0 ? PC_EV_STARTED : ((x >> 40) % 4 == 0 ? PC_EV_STOPPED : PC_EV_PERIODIC), 0);
        snprintf(a.region, sizeof(a.region), "r%d", name);
        uint32_t self = 0;
        assert_int_equal(pc_registry_announce(r, &a, 7, SEC + (uint64_t)step, &self), 0);
        if (a.event == PC_EV_STOPPED)
            held[i] = -1;
        else {
            held[i] = name;
            idx[i] = self;
        }
        if (step % 5000 == 4999 || step == STEPS - 1)
            for (int k = 0; k < PEERS; k++)
                if (held[k] >= 0) {
                    char want[16];
                    snprintf(want, sizeof(want), "r%d", held[k]);
                    assert_string_equal(region_of(r, idx[k]), want);
                    uint16_t id = pc_registry_peer(r, idx[k])->region;
                    if (seen_at[held[k]] == step + 1)
                        assert_int_equal(id, id_of[held[k]]);
                    seen_at[held[k]] = step + 1;
                    id_of[held[k]] = id;
                }
    }
    pc_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(started_peers_join_their_video),
        cmocka_unit_test(expiry_happens_at_exactly_two_intervals),
        cmocka_unit_test(counters_add_deltas_and_refuse_going_back),
        cmocka_unit_test(same_key_new_peer_id_is_a_restart),
        cmocka_unit_test(unknown_periodic_peer_sets_a_baseline),
        cmocka_unit_test(limits_refuse_without_changing_anything),
        cmocka_unit_test(sums_stop_at_the_largest_exact_json_integer),
        cmocka_unit_test(the_total_is_the_capped_sum_of_the_videos),
        cmocka_unit_test(many_peers_join_and_leave_consistently),
        cmocka_unit_test(restored_peer_counts_nothing_twice),
        cmocka_unit_test(histogram_quantiles),
        cmocka_unit_test(region_names_a_peer_invents_do_not_fill_the_table),
        cmocka_unit_test(region_names_follow_their_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
