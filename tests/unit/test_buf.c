/* pc_buf: appends stop exactly at the stated ceiling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pc_buf.h"

static void append_up_to_the_limit_and_not_past_it(void **state)
{
    (void)state;
    pc_buf b;
    pc_buf_init(&b, 10);
    assert_int_equal(pc_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 10);
    assert_int_equal(pc_buf_append(&b, "x", 1), PC_ETOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    pc_buf_clear(&b);
}

static void printf_respects_the_limit(void **state)
{
    (void)state;
    pc_buf b;
    pc_buf_init(&b, 8);
    assert_int_equal(pc_buf_printf(&b, "%d-%s", 42, "ab"), 0);
    assert_string_equal(b.data, "42-ab");
    assert_int_equal(pc_buf_printf(&b, "%s", "toolong"), PC_ETOOBIG);
    assert_string_equal(b.data, "42-ab");
    pc_buf_clear(&b);
}

static void printf_in_place_and_growing_give_the_same_text(void **state)
{
    (void)state;
    pc_buf b;
    pc_buf_init(&b, 4096);
    char want[4096] = "";
    for (int i = 0; i < 300; i++) { /* crosses several growth steps, most appends fit in place */
        char piece[32];
        snprintf(piece, sizeof(piece), "[%d:%s]", i, i % 7 ? "x" : "yyyyyyyyyyyyyyy");
        if (strlen(want) + strlen(piece) > 4096)
            break;
        strcat(want, piece);
        assert_int_equal(pc_buf_printf(&b, "[%d:%s]", i, i % 7 ? "x" : "yyyyyyyyyyyyyyy"), 0);
        assert_string_equal(b.data, want);
        assert_int_equal(b.len, strlen(want));
    }
    pc_buf_clear(&b);
}

static void append_u64_writes_decimal(void **state)
{
    (void)state;
    pc_buf b;
    pc_buf_init(&b, 64);
    assert_int_equal(pc_buf_append_u64(&b, 0), 0);
    assert_int_equal(pc_buf_append_str(&b, ","), 0);
    assert_int_equal(pc_buf_append_u64(&b, 4294967295u), 0);
    assert_int_equal(pc_buf_append_str(&b, ","), 0);
    assert_int_equal(pc_buf_append_u64(&b, UINT64_MAX), 0);
    assert_string_equal(b.data, "0,4294967295,18446744073709551615");
    pc_buf_clear(&b);
    pc_buf_init(&b, 3);
    assert_int_equal(pc_buf_append_u64(&b, 1234), PC_ETOOBIG);
    pc_buf_clear(&b);
}

static void huge_lengths_do_not_overflow(void **state)
{
    (void)state;
    pc_buf b;
    pc_buf_init(&b, 100);
    assert_int_equal(pc_buf_append(&b, "a", 1), 0);
    assert_int_equal(pc_buf_append(&b, "a", SIZE_MAX), PC_ETOOBIG);
    assert_int_equal(pc_buf_append(&b, "a", SIZE_MAX - 1), PC_ETOOBIG);
    pc_buf_clear(&b);
}

static void steal_hands_over_and_resets(void **state)
{
    (void)state;
    pc_buf b;
    pc_buf_init(&b, 64);
    assert_int_equal(pc_buf_append_str(&b, "hello"), 0);
    size_t n = 0;
    char *s = pc_buf_steal(&b, &n);
    assert_non_null(s);
    assert_int_equal(n, 5);
    assert_string_equal(s, "hello");
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    free(s);
    s = pc_buf_steal(&b, &n); /* empty buffer: an empty string, not NULL */
    assert_non_null(s);
    assert_int_equal(n, 0);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(append_up_to_the_limit_and_not_past_it),
        cmocka_unit_test(printf_respects_the_limit),
        cmocka_unit_test(printf_in_place_and_growing_give_the_same_text),
        cmocka_unit_test(append_u64_writes_decimal),
        cmocka_unit_test(huge_lengths_do_not_overflow),
        cmocka_unit_test(steal_hands_over_and_resets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
