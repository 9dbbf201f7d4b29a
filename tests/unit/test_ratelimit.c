/* Per-address token buckets: bursts, refill over time, addresses apart, IPv6 by /64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "announce.h"
#include "ratelimit.h"

static void burst_then_refill(void **state)
{
    (void)state;
    pc_ratelimit *rl = pc_ratelimit_new(10, 5, 1024, 1);
    uint8_t a[16], b[16];
    assert_int_equal(pc_addr_parse("192.0.2.1", a), 0);
    assert_int_equal(pc_addr_parse("192.0.2.2", b), 0);
    for (int i = 0; i < 5; i++)
        assert_true(pc_ratelimit_take(rl, a, 1000000));
    assert_false(pc_ratelimit_take(rl, a, 1000000)); /* burst spent */
    assert_true(pc_ratelimit_take(rl, b, 1000000));  /* someone else is unaffected */
    assert_false(pc_ratelimit_take(rl, a, 1000000 + 99999)); /* 0.99 of a token later */
    assert_true(pc_ratelimit_take(rl, a, 1000000 + 100000));  /* one token at 10/s */
    assert_false(pc_ratelimit_take(rl, a, 1000000 + 100000));
    for (int i = 0; i < 5; i++) /* a long pause refills only up to the burst */
        assert_true(pc_ratelimit_take(rl, a, 100000000));
    assert_false(pc_ratelimit_take(rl, a, 100000000));
    pc_ratelimit_free(rl);
}

static void ipv6_is_limited_per_64(void **state)
{
    (void)state;
    pc_ratelimit *rl = pc_ratelimit_new(1, 2, 1024, 1);
    uint8_t a[16], b[16], c[16];
    assert_int_equal(pc_addr_parse("2001:db8:1:2::1", a), 0);
    assert_int_equal(pc_addr_parse("2001:db8:1:2::ffff", b), 0);
    assert_int_equal(pc_addr_parse("2001:db8:1:3::1", c), 0);
    assert_true(pc_ratelimit_take(rl, a, 0));
    assert_true(pc_ratelimit_take(rl, b, 0));
    assert_false(pc_ratelimit_take(rl, a, 0)); /* same /64 shares the bucket */
    assert_true(pc_ratelimit_take(rl, c, 0));
    pc_ratelimit_free(rl);
}

static void many_addresses_fit_a_small_table(void **state)
{
    (void)state;
    pc_ratelimit *rl = pc_ratelimit_new(1, 1, 16, 1);
    uint8_t a[16];
    assert_int_equal(pc_addr_parse("192.0.2.1", a), 0);
    for (int i = 0; i < 1000; i++) { /* a crowd: each gets its first request */
        uint8_t x[16];
        memcpy(x, a, 16);
        x[14] = (uint8_t)(i >> 8);
        x[15] = (uint8_t)i;
        assert_true(pc_ratelimit_take(rl, x, (uint64_t)i));
    }
    pc_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_refill),
        cmocka_unit_test(ipv6_is_limited_per_64),
        cmocka_unit_test(many_addresses_fit_a_small_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
