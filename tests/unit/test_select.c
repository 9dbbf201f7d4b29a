/* Peer selection: playhead usefulness first, then spare upload and locality, random among equals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "select.h"
#include "tracker_fixture.h"

static uint32_t join(pc_registry *r, pc_announce *a, uint32_t net, uint64_t now)
{
    uint32_t self = 0;
    assert_int_equal(pc_registry_announce(r, a, net, now, &self), 0);
    return self;
}

static size_t pick(pc_registry *r, uint32_t self, uint32_t need, uint32_t numwant, uint64_t now, uint64_t seed,
                   uint32_t *out)
{
    pc_rng rng;
    pc_rng_init(&rng, seed);
    return pc_select_peers(r, self, need, numwant, PC_SELECT_SCAN_DEFAULT, now, &rng, NULL, NULL, out);
}

static void peers_holding_the_next_segment_come_first(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    pc_announce me = fx_announce(0, "v", PC_EV_STARTED, 100000);
    uint32_t self = join(r, &me, 1, SEC);
    pc_announce behind = fx_announce(1, "v", PC_EV_STARTED, 40000); /* holds nothing it needs */
    pc_announce other = fx_announce(2, "v", PC_EV_STARTED, 120000);  /* ahead, another rendition */
    snprintf(other.rendition, sizeof(other.rendition), "v0");
    pc_announce far = fx_announce(3, "v", PC_EV_STARTED, 400000);   /* far ahead, no summary */
    pc_announce ahead = fx_announce(4, "v", PC_EV_STARTED, 130000); /* a little ahead */
    pc_announce holder = fx_announce(5, "v", PC_EV_STARTED, 90000); /* behind, but its cache has it */
    holder.have_lo = 0;
    holder.have_hi = 30;
    uint32_t ib = join(r, &behind, 2, SEC), io = join(r, &other, 2, SEC), ifar = join(r, &far, 2, SEC);
    uint32_t ia = join(r, &ahead, 2, SEC), ih = join(r, &holder, 2, SEC);
    uint32_t out[PC_NUMWANT_MAX];
    size_t n = pick(r, self, 25, 10, 2 * SEC, 1, out);
    assert_int_equal(n, 5);
    assert_int_equal(out[0], ih);
    assert_int_equal(out[1], ia);
    assert_int_equal(out[2], ifar);
    /* the last two score alike (same rendition behind vs another rendition ahead) in either order */
    assert_true((out[3] == ib && out[4] == io) || (out[3] == io && out[4] == ib));
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(out[i], self);
    n = pick(r, self, 25, 2, 2 * SEC, 1, out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], ih);
    assert_int_equal(out[1], ia);
    pc_registry_free(r);
}

static void spare_upload_then_locality(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    pc_announce me = fx_announce(0, "v", PC_EV_STARTED, 0);
    me.asn = 64500;
    snprintf(me.region, sizeof(me.region), "eu-west");
    uint32_t self = join(r, &me, 100, SEC);
    pc_announce far = fx_announce(1, "v", PC_EV_STARTED, 10000);
    pc_announce region = fx_announce(2, "v", PC_EV_STARTED, 10000);
    snprintf(region.region, sizeof(region.region), "eu-west");
    pc_announce asn = fx_announce(3, "v", PC_EV_STARTED, 10000);
    asn.asn = 64500;
    pc_announce lan = fx_announce(4, "v", PC_EV_STARTED, 10000);
    pc_announce busy = fx_announce(5, "v", PC_EV_STARTED, 10000); /* same network, but no spare upload */
    busy.up_kbps = 0;
    uint32_t i1 = join(r, &far, 1, SEC), i2 = join(r, &region, 2, SEC), i3 = join(r, &asn, 3, SEC);
    uint32_t i4 = join(r, &lan, 100, SEC), i5 = join(r, &busy, 100, SEC);
    uint32_t out[PC_NUMWANT_MAX];
    assert_int_equal(pick(r, self, PC_NONE, 10, 2 * SEC, 7, out), 5);
    assert_int_equal(out[0], i4); /* +8 network +8 upload */
    assert_int_equal(out[1], i3); /* +6 +8 */
    assert_int_equal(out[2], i2); /* +4 +8 */
    /* +8 network without upload ties with +8 upload far away */
    assert_true((out[3] == i5 && out[4] == i1) || (out[3] == i1 && out[4] == i5));
    pc_registry_free(r);
}

static void expired_peers_are_never_offered(void **state)
{
    (void)state;
    const uint64_t iv = 10 * SEC;
    pc_registry *r = fx_registry(iv);
    pc_announce old = fx_announce(1, "v", PC_EV_STARTED, 0);
    uint32_t iold = join(r, &old, 1, 100 * SEC);
    pc_announce me = fx_announce(0, "v", PC_EV_STARTED, 0);
    uint32_t self = join(r, &me, 1, 110 * SEC);
    uint32_t out[PC_NUMWANT_MAX];
    assert_int_equal(pick(r, self, PC_NONE, 10, 100 * SEC + 2 * iv - 1, 1, out), 1); /* one tick before */
    assert_int_equal(out[0], iold);
    assert_int_equal(pick(r, self, PC_NONE, 10, 100 * SEC + 2 * iv, 1, out), 0); /* at the tick, not swept yet */
    pc_registry_free(r);
}

static void equals_are_drawn_at_random(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    pc_announce me = fx_announce(0, "v", PC_EV_STARTED, 0);
    uint32_t self = join(r, &me, 1, SEC);
    for (int i = 1; i <= 20; i++) {
        pc_announce a = fx_announce(i, "v", PC_EV_STARTED, 5000);
        join(r, &a, 2, SEC);
    }
    int seen[64] = {0};
    uint32_t out[PC_NUMWANT_MAX];
    for (uint64_t seed = 0; seed < 200; seed++) {
        assert_int_equal(pick(r, self, PC_NONE, 3, 2 * SEC, seed, out), 3);
        for (int k = 0; k < 3; k++)
            seen[out[k]]++;
    }
    for (uint32_t i = 1; i <= 20; i++)
        assert_true(seen[i] > 0); /* everyone gets picked sometimes */
    /* and the same seed gives the same answer */
    uint32_t again[PC_NUMWANT_MAX];
    pick(r, self, PC_NONE, 3, 2 * SEC, 5, out);
    pick(r, self, PC_NONE, 3, 2 * SEC, 5, again);
    assert_memory_equal(out, again, 3 * sizeof(uint32_t));
    pc_registry_free(r);
}

static void large_swarms_are_sampled_without_repeats(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    pc_announce me = fx_announce(0, "v", PC_EV_STARTED, 0);
    uint32_t self = join(r, &me, 1, SEC);
    for (int i = 1; i < 3000; i++) {
        pc_announce a = fx_announce(i, "v", PC_EV_STARTED, (uint32_t)i);
        join(r, &a, 2, SEC);
    }
    pc_rng rng;
    pc_rng_init(&rng, 3);
    uint32_t out[PC_NUMWANT_MAX];
    for (int round = 0; round < 50; round++) {
        size_t n = pc_select_peers(r, self, PC_NONE, PC_NUMWANT_MAX, 100, 2 * SEC, &rng, NULL, NULL, out);
        assert_int_equal(n, PC_NUMWANT_MAX);
        for (size_t i = 0; i < n; i++) {
            assert_int_not_equal(out[i], self);
            for (size_t j = i + 1; j < n; j++)
                assert_int_not_equal(out[i], out[j]);
        }
    }
    pc_registry_free(r);
}

static void nothing_to_offer(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    pc_announce me = fx_announce(0, "v", PC_EV_STARTED, 0);
    uint32_t self = join(r, &me, 1, SEC);
    pc_announce elsewhere = fx_announce(1, "other", PC_EV_STARTED, 0);
    join(r, &elsewhere, 1, SEC);
    uint32_t out[PC_NUMWANT_MAX];
    assert_int_equal(pick(r, self, PC_NONE, 10, 2 * SEC, 1, out), 0); /* alone in its video */
    pc_announce a = fx_announce(2, "v", PC_EV_STARTED, 0);
    join(r, &a, 1, SEC);
    assert_int_equal(pick(r, self, PC_NONE, 0, 2 * SEC, 1, out), 0); /* numwant 0 */
    pc_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(peers_holding_the_next_segment_come_first),
        cmocka_unit_test(spare_upload_then_locality),
        cmocka_unit_test(expired_peers_are_never_offered),
        cmocka_unit_test(equals_are_drawn_at_random),
        cmocka_unit_test(large_swarms_are_sampled_without_repeats),
        cmocka_unit_test(nothing_to_offer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
