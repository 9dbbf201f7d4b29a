/* ABR: buffer map, throughput ceiling, immediate down-switch (held with a deep buffer that is not draining),
 * hysteresis up, swarm preference, pin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pc_abr.h"
#include "pc_player.h" /* PC_NEVER */

#define S 1000000ull
static const uint32_t bw[4] = {400000, 1000000, 2500000, 5000000};

static pc_abr make(uint64_t start_bps)
{
    pc_abr_config c;
    pc_abr_config_default(&c);
    pc_abr a;
    pc_abr_init(&a, &c, 4, bw, start_bps);
    return a;
}

static void start_rung_follows_the_estimate_or_stays_low(void **state)
{
    (void)state;
    assert_int_equal(make(0).cur, 0);
    assert_int_equal(make(1300000).cur, 1);  /* 1.0 Mb/s ≤ 0.8 × 1.3 */
    assert_int_equal(make(1200000).cur, 0);  /* 1.0 > 0.96 */
    assert_int_equal(make(100000000).cur, 3);
}

static void up_switch_waits_for_the_hold_time_and_goes_one_rung_at_a_time(void **state)
{
    (void)state;
    pc_abr a = make(0);
    uint64_t t = 0;
    assert_int_equal(pc_abr_decide(&a, 60 * S, 50e6, 0, t), 0);
    assert_int_equal(pc_abr_decide(&a, 60 * S, 50e6, 0, t + 6 * S - 1), 0); /* one tick before */
    assert_int_equal(pc_abr_decide(&a, 60 * S, 50e6, 0, t + 6 * S), 1);     /* at the tick */
    assert_int_equal(pc_abr_decide(&a, 60 * S, 50e6, 0, t + 6 * S + 1), 1);
    assert_int_equal(pc_abr_decide(&a, 60 * S, 50e6, 0, t + 12 * S), 2);
    assert_int_equal(pc_abr_decide(&a, 60 * S, 50e6, 0, t + 18 * S), 3);
    assert_int_equal(a.switches, 3);
}

static void throughput_drop_switches_down_at_once(void **state)
{
    (void)state;
    pc_abr a = make(100000000);
    assert_int_equal(a.cur, 3);
    /* buffer still healthy, but throughput no longer sustains rung 3 or 2 */
    assert_int_equal(pc_abr_decide(&a, 20 * S, 2.0e6, 0, 0), 1);
    /* a low buffer stops up-switches whatever the throughput */
    for (uint64_t t = 1; t < 30 * S; t += S)
        assert_int_equal(pc_abr_decide(&a, 5 * S, 50e6, 0, t), 1);
    /* unknown throughput keeps the rung */
    assert_int_equal(pc_abr_decide(&a, 20 * S, 0, 0, 31 * S), 1);
}

static void no_down_oscillation_while_the_rung_is_sustained(void **state)
{
    (void)state;
    pc_abr a = make(100000000);
    /* throughput sustains 3 (5 ≤ 0.8 × 6.5): stay, however the buffer moves */
    for (uint64_t b = 0; b < 60; b += 7)
        assert_int_equal(pc_abr_decide(&a, b * S, 6.5e6, 0, b * S), 3);
}

static void a_deep_buffer_that_is_not_draining_keeps_the_rung(void **state)
{
    (void)state;
    /* 5.5 Mb/s carries rung 3 (5 Mb/s) but not with the safety margin (0.8 x 5.5 = 4.4): with 20 s or
     * more buffered the rung stays, switch after switch avoided; below that, down at once */
    pc_abr a = make(100000000);
    for (uint64_t t = 0; t < 30 * S; t += S)
        assert_int_equal(pc_abr_decide(&a, 25 * S, 5.5e6, 0, t), 3);
    assert_int_equal(pc_abr_decide(&a, 20 * S, 5.5e6, 0, 30 * S), 3);
    assert_int_equal(pc_abr_decide(&a, 20 * S - 1, 5.5e6, 0, 31 * S), 2);
    assert_int_equal(a.switches, 1);
    /* a throughput below the rung itself drains any buffer: down, however deep */
    pc_abr b = make(100000000);
    assert_int_equal(pc_abr_decide(&b, 120 * S, 4.9e6, 0, 0), 2);
    /* the guard off: the margin alone decides */
    pc_abr_config c;
    pc_abr_config_default(&c);
    assert_int_equal(c.down_hold_us, 20 * S);
    c.down_hold_us = 0;
    pc_abr d;
    pc_abr_init(&d, &c, 4, bw, 100000000);
    assert_int_equal(pc_abr_decide(&d, 120 * S, 5.5e6, 0, 0), 2);
}

static void prefers_a_rung_the_swarm_holds(void **state)
{
    (void)state;
    /* throughput and buffer allow rung 3; the swarm holds 1 and 2 only: the up-switch stops at 2 */
    pc_abr a = make(1300000);
    assert_int_equal(a.cur, 1);
    uint32_t held = (1u << 1) | (1u << 2);
    for (uint64_t t = 0; t <= 60 * S; t += S)
        pc_abr_decide(&a, 50 * S, 50e6, held, t);
    assert_int_equal(a.cur, 2);
    /* once the swarm holds 3 too, it goes on up */
    for (uint64_t t = 61 * S; t <= 80 * S; t += S)
        pc_abr_decide(&a, 50 * S, 50e6, held | (1u << 3), t);
    assert_int_equal(a.cur, 3);
}

static void the_preference_can_be_turned_off(void **state)
{
    (void)state;
    pc_abr_config c;
    pc_abr_config_default(&c);
    c.prefer_held = 0;
    pc_abr a;
    pc_abr_init(&a, &c, 4, bw, 1300000);
    uint32_t held = (1u << 1) | (1u << 2);
    for (uint64_t t = 0; t <= 60 * S; t += S)
        pc_abr_decide(&a, 50 * S, 50e6, held, t);
    assert_int_equal(a.cur, 3); /* bitrate before offload: up to what the throughput sustains */
}

static void the_projection_climbs_one_rung_per_hold_time_up_to_the_target(void **state)
{
    (void)state;
    pc_abr a = make(0);
    assert_int_equal(pc_abr_projected(&a, 60 * S), 0); /* no decision yet: no target above */
    pc_abr_decide(&a, 60 * S, 50e6, 0, 0);             /* target 3, climbing from 0 */
    assert_int_equal(a.target, 3);
    assert_int_equal(pc_abr_projected(&a, 0), 0);
    assert_int_equal(pc_abr_projected(&a, 6 * S - 1), 0);
    assert_int_equal(pc_abr_projected(&a, 6 * S), 1);
    assert_int_equal(pc_abr_projected(&a, 12 * S), 2);
    assert_int_equal(pc_abr_projected(&a, 18 * S), 3);
    assert_int_equal(pc_abr_projected(&a, 600 * S), 3); /* never past the target */
    /* the throughput falls to sustain rung 1 only: the target comes down, and the projection with it */
    pc_abr_decide(&a, 60 * S, 1.3e6, 0, S);
    assert_int_equal(pc_abr_projected(&a, 600 * S), 1);
    /* at the target: nothing to climb to */
    pc_abr_decide(&a, 60 * S, 1.3e6, 0, 8 * S);
    assert_int_equal(a.cur, 1);
    assert_int_equal(pc_abr_projected(&a, 600 * S), 1);
    /* the swarm preference lowers the target, and so the projection */
    pc_abr b = make(0);
    pc_abr_decide(&b, 60 * S, 50e6, (1u << 0) | (1u << 2), 0);
    assert_int_equal(pc_abr_projected(&b, 600 * S), 2);
    /* pinned: the pinned rung */
    pc_abr_pin(&b, 1);
    pc_abr_decide(&b, 60 * S, 50e6, 0, S);
    assert_int_equal(pc_abr_projected(&b, 600 * S), 1);
}

static void pinned_rung_is_kept(void **state)
{
    (void)state;
    pc_abr a = make(0);
    pc_abr_pin(&a, 3);
    assert_int_equal(pc_abr_decide(&a, 0, 1e5, 0, 0), 3);
    pc_abr_pin(&a, -1);
    assert_int_equal(pc_abr_decide(&a, 0, 1e5, 0, 1), 0);
    pc_abr_pin(&a, 9); /* out of range unpins */
    assert_int_equal(a.pinned, -1);
    /* a climb under way ends when the player picks the rung: nothing is waited for any more */
    pc_abr b = make(0);
    pc_abr_decide(&b, 60 * S, 50e6, 0, 0);
    assert_true(b.up_since != PC_NEVER);
    pc_abr_pin(&b, 2);
    assert_true(b.up_since == PC_NEVER);
    assert_int_equal(pc_abr_decide(&b, 60 * S, 50e6, 0, 7 * S), 2);
    assert_true(b.up_since == PC_NEVER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(start_rung_follows_the_estimate_or_stays_low),
        cmocka_unit_test(up_switch_waits_for_the_hold_time_and_goes_one_rung_at_a_time),
        cmocka_unit_test(throughput_drop_switches_down_at_once),
        cmocka_unit_test(no_down_oscillation_while_the_rung_is_sustained),
        cmocka_unit_test(a_deep_buffer_that_is_not_draining_keeps_the_rung),
        cmocka_unit_test(prefers_a_rung_the_swarm_holds),
        cmocka_unit_test(the_preference_can_be_turned_off),
        cmocka_unit_test(the_projection_climbs_one_rung_per_hold_time_up_to_the_target),
        cmocka_unit_test(pinned_rung_is_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
