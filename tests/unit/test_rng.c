/* pc_rng: reproducible from the seed, and in range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pc_rng.h"

static void same_seed_same_sequence(void **state)
{
    (void)state;
    pc_rng a, b, c;
    pc_rng_init(&a, 12345);
    pc_rng_init(&b, 12345);
    pc_rng_init(&c, 12346);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = pc_rng_next(&a);
        assert_int_equal(x, pc_rng_next(&b));
        differ += x != pc_rng_next(&c);
    }
    assert_true(differ > 990);
}

static void below_and_double_stay_in_range(void **state)
{
    (void)state;
    pc_rng r;
    pc_rng_init(&r, 0);
    int hist[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t x = pc_rng_below(&r, 7);
        assert_true(x < 7);
        hist[x]++;
        double d = pc_rng_double(&r);
        assert_true(d >= 0.0 && d < 1.0);
    }
    for (int i = 0; i < 7; i++) /* roughly uniform: 10000 ± 5% */
        assert_true(hist[i] > 9500 && hist[i] < 10500);
    assert_int_equal(pc_rng_below(&r, 0), 0);
    assert_int_equal(pc_rng_below(&r, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seed_same_sequence),
        cmocka_unit_test(below_and_double_stay_in_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
