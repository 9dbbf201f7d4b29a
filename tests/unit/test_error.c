/* The error table: every code has a distinct stable name and a sentence. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pc_error.h"

static void names_are_distinct_and_nonempty(void **state)
{
    (void)state;
    for (int a = PC__ERRNO_BASE + 1; a < PC__ERRNO_END; a++) {
        assert_true(strlen(pc_err_name(a)) > 0);
        assert_true(strlen(pc_strerror(a)) > 0);
        assert_string_not_equal(pc_err_name(a), "unknown");
        for (int b = a + 1; b < PC__ERRNO_END; b++)
            assert_string_not_equal(pc_err_name(a), pc_err_name(b));
    }
}

static void success_and_unknown(void **state)
{
    (void)state;
    assert_string_equal(pc_err_name(0), "ok");
    assert_string_equal(pc_strerror(0), "success");
    assert_string_equal(pc_err_name(12345), "unknown");
    assert_string_equal(pc_err_name(PC__ERRNO_END), "unknown");
}

static void errno_mapping(void **state)
{
    (void)state;
    assert_int_equal(pc_err_from_errno(ENOENT), PC_ENOENT);
    assert_int_equal(pc_err_from_errno(ENOSPC), PC_ENOSPC);
    assert_int_equal(pc_err_from_errno(ECONNRESET), PC_ENET);
    assert_int_equal(pc_err_from_errno(EBADF), PC_EIO);
    assert_int_equal(pc_err_from_errno(EACCES), PC_EDENIED);
    assert_int_equal(pc_err_from_errno(EPERM), PC_EDENIED);
    assert_int_equal(pc_err_from_errno(0), PC_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_are_distinct_and_nonempty),
        cmocka_unit_test(success_and_unknown),
        cmocka_unit_test(errno_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
