/* pc_log_printable: text from elsewhere cannot drive the terminal a log line goes to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pc_log.h"

static void control_bytes_become_question_marks(void **state)
{
    (void)state;
    char out[64];
    const char body[] = "bad\x1b[2J\r\nsession\x7f\xc3\xa9.";
    pc_log_printable(out, sizeof(out), body, sizeof(body) - 1);
    assert_string_equal(out, "bad?[2J??session???.");
}

static void it_stops_at_the_buffer(void **state)
{
    (void)state;
    char out[4];
    pc_log_printable(out, sizeof(out), "abcdef", 6);
    assert_string_equal(out, "abc");
    pc_log_printable(out, sizeof(out), "", 0);
    assert_string_equal(out, "");
    assert_ptr_equal(pc_log_printable_str(out, sizeof(out), "a\x1b"), out);
    assert_string_equal(out, "a?");
    assert_string_equal(pc_log_printable_str(out, sizeof(out), NULL), "?");
    assert_string_equal(pc_log_printable_str(out, sizeof(out), "abcdef"), "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(control_bytes_become_question_marks),
        cmocka_unit_test(it_stops_at_the_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
