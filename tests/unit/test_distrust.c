/* Peers the tracker no longer vouches for: reports counted once per network, per video, up to the
 * threshold; a bounded table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "distrust.h"

static void key_of(uint8_t k[32], unsigned n)
{
    /* keys are public keys: random-looking bytes (the table's home slot comes from them) */
    crypto_generichash(k, 32, (const unsigned char *)&n, sizeof(n), NULL, 0);
}

static void distinct_networks_reach_the_verdict(void **state)
{
    (void)state;
    pc_distrust *d = pc_distrust_new(3, 1024);
    assert_non_null(d);
    uint8_t bad[32], other[32];
    key_of(bad, 1);
    key_of(other, 2);
    assert_int_equal(pc_distrust_report(d, "vid", 100, bad), 0);
    assert_int_equal(pc_distrust_report(d, "vid", 100, bad), -1); /* the same network again: not counted */
    assert_int_equal(pc_distrust_report(d, "vid", 200, bad), 0);
    assert_false(pc_distrust_is(d, "vid", bad));
    assert_int_equal(pc_distrust_report(d, "other", 300, bad), 0); /* another video's report is its own */
    assert_false(pc_distrust_is(d, "vid", bad));
    assert_int_equal(pc_distrust_report(d, "vid", 300, bad), 1); /* the third network: the verdict */
    assert_true(pc_distrust_is(d, "vid", bad));
    assert_false(pc_distrust_is(d, "other", bad));
    assert_true(pc_distrust_is_in(d, pc_distrust_video(d, "vid"), bad)); /* hashed once for a selection */
    assert_false(pc_distrust_is_in(d, pc_distrust_video(d, "other"), bad));
    assert_false(pc_distrust_is(d, "vid", other));
    assert_int_equal(pc_distrust_report(d, "vid", 400, bad), -1); /* reached once */
    assert_int_equal(pc_distrust_total(d), 1);
    pc_distrust_free(d);
}

static void a_threshold_of_one(void **state)
{
    (void)state;
    pc_distrust *d = pc_distrust_new(1, 64);
    uint8_t bad[32];
    key_of(bad, 7);
    assert_int_equal(pc_distrust_report(d, "v", 5, bad), 1);
    assert_true(pc_distrust_is(d, "v", bad));
    pc_distrust_free(d);
}

static void the_table_is_bounded(void **state)
{
    (void)state;
    pc_distrust *d = pc_distrust_new(1, 64);
    uint8_t k[32];
    unsigned taken = 0;
    for (unsigned n = 0; n < 1000; n++) { /* far more keys than slots: later ones are dropped */
        key_of(k, 1000 + n);
        taken += pc_distrust_report(d, "v", 1, k) == 1;
    }
    assert_true(taken > 0 && taken <= 64); /* verdicts are never taken over */
    assert_int_equal(pc_distrust_total(d), taken);
    unsigned still = 0; /* the verdicts reached are kept */
    for (unsigned n = 0; n < 1000; n++) {
        key_of(k, 1000 + n);
        still += (unsigned)pc_distrust_is(d, "v", k);
    }
    assert_int_equal(still, taken);
    pc_distrust_free(d);
}

/* A flood of single reports about throwaway keys fills the table with pending entries; a real report
 * still gets in (the oldest pending entry around goes), and reaches its verdict. */
static void pending_reports_give_way(void **state)
{
    (void)state;
    pc_distrust *d = pc_distrust_new(2, 64);
    uint8_t k[32], bad[32];
    for (unsigned n = 0; n < 1000; n++) {
        key_of(k, 5000 + n);
        (void)pc_distrust_report(d, "v", 9, k); /* all pending: one network is below the threshold */
    }
    key_of(bad, 42);
    assert_int_equal(pc_distrust_report(d, "v", 1, bad), 0);
    assert_int_equal(pc_distrust_report(d, "v", 2, bad), 1);
    assert_true(pc_distrust_is(d, "v", bad));
    pc_distrust_free(d);
}

/* Keys are chosen by their holders: eight throwaway keys sharing a bad key's leading bytes, reported from
 * one network, once pushed the bad key's two reports out of their common neighbourhood (its home was those
 * bytes XOR the video's hash), and the third network's report never reached the verdict. */
static void chosen_keys_cannot_crowd_out_a_bad_one(void **state)
{
    (void)state;
    pc_distrust *d = pc_distrust_new(3, 1 << 16);
    uint8_t bad[32], k[32];
    key_of(bad, 77);
    assert_int_equal(pc_distrust_report(d, "v", 1, bad), 0);
    assert_int_equal(pc_distrust_report(d, "v", 2, bad), 0);
    for (unsigned n = 0; n < 64; n++) {
        key_of(k, 9000 + n);
        memcpy(k, bad, 16); /* the bytes that chose the slot */
        (void)pc_distrust_report(d, "v", 9, k);
    }
    assert_int_equal(pc_distrust_report(d, "v", 3, bad), 1);
    assert_true(pc_distrust_is(d, "v", bad));
    pc_distrust_free(d);
}

/* Keys last one run of a peer: a pending report ages out after an hour without another, a verdict after a
 * day, so neither holds its slot for ever (verdicts filled the table for good, and later reports were
 * dropped unseen: they are counted now). */
static void entries_age_out_and_drops_are_counted(void **state)
{
    (void)state;
    pc_distrust *d = pc_distrust_new(2, 64);
    uint8_t bad[32], k[32];
    key_of(bad, 5);
    pc_distrust_tick(d, 1000);
    assert_int_equal(pc_distrust_report(d, "v", 1, bad), 0);
    pc_distrust_tick(d, 1000 + PC_DISTRUST_PENDING_S);
    assert_int_equal(pc_distrust_report(d, "v", 2, bad), 0); /* the first report aged out: one again */
    assert_int_equal(pc_distrust_report(d, "v", 3, bad), 1);
    pc_distrust_tick(d, 1000 + PC_DISTRUST_PENDING_S + PC_DISTRUST_VERDICT_S - 1);
    assert_true(pc_distrust_is(d, "v", bad));
    pc_distrust_tick(d, 1000 + PC_DISTRUST_PENDING_S + PC_DISTRUST_VERDICT_S);
    assert_false(pc_distrust_is(d, "v", bad));
    /* a table of living verdicts: a report about a new key is dropped, and counted */
    for (unsigned n = 0; n < 2000; n++) {
        key_of(k, 20000 + n);
        (void)pc_distrust_report(d, "v", 1, k);
        (void)pc_distrust_report(d, "v", 2, k);
    }
    assert_true(pc_distrust_dropped(d) > 0);
    pc_distrust_free(d);
}

static void bad_settings_are_refused(void **state)
{
    (void)state;
    assert_null(pc_distrust_new(0, 64));
    assert_null(pc_distrust_new(PC_DISTRUST_THRESHOLD_MAX + 1, 64));
    assert_null(pc_distrust_new(3, 100)); /* not a power of two */
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(distinct_networks_reach_the_verdict),
        cmocka_unit_test(a_threshold_of_one),
        cmocka_unit_test(the_table_is_bounded),
        cmocka_unit_test(pending_reports_give_way),
        cmocka_unit_test(chosen_keys_cannot_crowd_out_a_bad_one),
        cmocka_unit_test(entries_age_out_and_drops_are_counted),
        cmocka_unit_test(bad_settings_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
