/* pc_parse_int: one spelling per value, ranges and int64's ends checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pc_num.h"

static int64_t ok(const char *s, int64_t lo, int64_t hi, unsigned flags)
{
    int64_t v = 12345;
    assert_int_equal(pc_parse_int_str(s, lo, hi, flags, &v), 0);
    return v;
}

static void bad(const char *s, int64_t lo, int64_t hi, unsigned flags)
{
    int64_t v = 12345;
    assert_int_equal(pc_parse_int_str(s, lo, hi, flags, &v), PC_EPARSE);
    assert_int_equal(v, 12345); /* untouched */
}

static void digits_in_range(void **state)
{
    (void)state;
    assert_int_equal(ok("0", 0, 10, 0), 0);
    assert_int_equal(ok("10", 0, 10, 0), 10);
    assert_int_equal(ok("007", 0, 10, 0), 7);
    bad("11", 0, 10, 0);
    bad("", 0, 10, 0);
    bad("-1", 0, 10, 0);
    bad("-", -5, 10, 0);
    assert_int_equal(ok("-5", -5, 10, 0), -5);
    bad("-6", -5, 10, 0);
}

static void other_spellings_are_refused(void **state)
{
    (void)state;
    const char *const no[] = {"+7", " 7", "7 ", "7\n", "0x7", "7.0", "1e3", "７", "--7", "- 7"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        bad(no[i], -100000, 100000, 0);
    bad("07", 0, 100, PC_NUM_CANONICAL);
    bad("00", 0, 100, PC_NUM_CANONICAL);
    bad("-0", -100, 100, PC_NUM_CANONICAL);
    bad("-07", -100, 100, PC_NUM_CANONICAL);
    assert_int_equal(ok("0", 0, 100, PC_NUM_CANONICAL), 0);
    assert_int_equal(ok("70", 0, 100, PC_NUM_CANONICAL), 70);
    assert_int_equal(ok("-70", -100, 100, PC_NUM_CANONICAL), -70);
}

static void int64_ends(void **state)
{
    (void)state;
    assert_true(ok("9223372036854775807", INT64_MIN, INT64_MAX, 0) == INT64_MAX);
    assert_true(ok("-9223372036854775808", INT64_MIN, INT64_MAX, 0) == INT64_MIN);
    bad("9223372036854775808", INT64_MIN, INT64_MAX, 0);
    bad("-9223372036854775809", INT64_MIN, INT64_MAX, 0);
    bad("99999999999999999999999", INT64_MIN, INT64_MAX, 0);
    assert_true(ok("000000000000000000000000001", 0, INT64_MAX, 0) == 1);
}

static void bounded_by_length_not_nul(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(pc_parse_int("1234xyz", 4, 0, 10000, 0, &v), 0);
    assert_int_equal(v, 1234);
    assert_int_equal(pc_parse_int("1234", 0, 0, 10000, 0, &v), PC_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(digits_in_range),
        cmocka_unit_test(other_spellings_are_refused),
        cmocka_unit_test(int64_ends),
        cmocka_unit_test(bounded_by_length_not_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
