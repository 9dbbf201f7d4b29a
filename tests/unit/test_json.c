/* pc_json: bounded object parsing, typed accessors and {code, message} error bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pc_json.h"

static void parse_object_and_read_fields(void **state)
{
    (void)state;
    const char *s = "{\"name\":\"clip\",\"n\":42,\"x\":1.5,\"neg\":-7,\"nested\":{\"a\":1}}";
    json_t *o = NULL;
    char err[160] = "untouched";
    assert_int_equal(pc_json_parse_object(s, strlen(s), 1024, &o, err, sizeof(err)), 0);
    assert_non_null(o);
    assert_string_equal(pc_json_str(o, "name"), "clip");
    assert_int_equal(pc_json_int(o, "n", -1), 42);
    assert_int_equal(pc_json_int(o, "neg", 0), -7);
    assert_true(pc_json_num(o, "x", 0) == 1.5);
    assert_true(pc_json_num(o, "n", 0) == 42.0); /* an integer is a number */
    json_decref(o);
}

static void parse_reads_only_len_bytes(void **state)
{
    (void)state;
    /* the buffer is not NUL-terminated at |len|: what follows must be ignored */
    const char *s = "{\"a\":1}garbage";
    json_t *o = NULL;
    assert_int_equal(pc_json_parse_object(s, 7, 7, &o, NULL, 0), 0);
    assert_int_equal(pc_json_int(o, "a", 0), 1);
    json_decref(o);
    assert_int_equal(pc_json_parse_object(s, 8, 100, &o, NULL, 0), PC_EPARSE);
    assert_null(o);
}

static void length_limit_is_checked_before_parsing(void **state)
{
    (void)state;
    const char *ok = "{\"k\":\"v\"}"; /* 9 bytes */
    json_t *o = NULL;
    char err[160];
    assert_int_equal(pc_json_parse_object(ok, 9, 9, &o, err, sizeof(err)), 0); /* exactly at the limit */
    json_decref(o);
    o = (json_t *)1;
    assert_int_equal(pc_json_parse_object(ok, 9, 8, &o, err, sizeof(err)), PC_ETOOBIG);
    assert_null(o);
    assert_non_null(strstr(err, "limit"));
    /* malformed input over the limit is too big, not malformed: the parser never ran */
    const char *bad = "{{{{{{{{{{";
    assert_int_equal(pc_json_parse_object(bad, 10, 9, &o, err, sizeof(err)), PC_ETOOBIG);
    assert_int_equal(pc_json_parse_object(bad, 10, 10, &o, err, sizeof(err)), PC_EPARSE);
}

static void malformed_input_gives_parse_error_and_sentence(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "{", "{\"a\":}", "{\"a\" 1}", "{'a':1}", "{\"a\":1,}", "nul", "{\"a\":01}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *o = (json_t *)1;
        char err[160] = "";
        assert_int_equal(pc_json_parse_object(bad[i], strlen(bad[i]), 1024, &o, err, sizeof(err)), PC_EPARSE);
        assert_null(o);
        assert_non_null(strstr(err, "malformed JSON"));
    }
    /* empty: said so (jansson's own words were "wrong arguments" at line -1) */
    char err[160] = "";
    json_t *o = NULL;
    assert_int_equal(pc_json_parse_object("", 0, 1024, &o, err, sizeof(err)), PC_EPARSE);
    assert_string_equal(err, "malformed JSON: empty, where an object was expected");
    /* the error buffer is optional */
    assert_int_equal(pc_json_parse_object("{", 1, 1024, &o, NULL, 0), PC_EPARSE);
}

static void top_level_non_objects_are_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {"[]", "[{\"a\":1}]", "\"s\"", "1", "null", "true"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *o = (json_t *)1;
        char err[160] = "";
        assert_int_equal(pc_json_parse_object(bad[i], strlen(bad[i]), 1024, &o, err, sizeof(err)), PC_EPARSE);
        assert_null(o);
        assert_true(strlen(err) > 0);
    }
    char err[160] = "";
    json_t *o = NULL;
    assert_int_equal(pc_json_parse_object("[1,2]", 5, 1024, &o, err, sizeof(err)), PC_EPARSE);
    assert_string_equal(err, "expected a JSON object");
}

static void duplicate_keys_are_rejected(void **state)
{
    (void)state;
    const char *s = "{\"a\":1,\"b\":2,\"a\":3}";
    json_t *o = (json_t *)1;
    char err[160] = "";
    assert_int_equal(pc_json_parse_object(s, strlen(s), 1024, &o, err, sizeof(err)), PC_EPARSE);
    assert_null(o);
    assert_true(strlen(err) > 0);
    /* the same key in different objects is fine */
    const char *ok = "{\"a\":{\"a\":1}}";
    assert_int_equal(pc_json_parse_object(ok, strlen(ok), 1024, &o, err, sizeof(err)), 0);
    json_decref(o);
}

static void accessors_give_defaults_for_absent_or_wrong_types(void **state)
{
    (void)state;
    const char *s = "{\"s\":\"text\",\"i\":5,\"r\":2.5,\"n\":null,\"b\":true,\"a\":[1],\"o\":{}}";
    json_t *o = NULL;
    assert_int_equal(pc_json_parse_object(s, strlen(s), 1024, &o, NULL, 0), 0);
    /* strings */
    assert_null(pc_json_str(o, "i"));
    assert_null(pc_json_str(o, "n"));
    assert_null(pc_json_str(o, "o"));
    assert_null(pc_json_str(o, "missing"));
    /* integers: a real is not an integer */
    assert_int_equal(pc_json_int(o, "r", -9), -9);
    assert_int_equal(pc_json_int(o, "s", -9), -9);
    assert_int_equal(pc_json_int(o, "b", -9), -9);
    assert_int_equal(pc_json_int(o, "n", -9), -9);
    assert_int_equal(pc_json_int(o, "missing", -9), -9);
    /* numbers */
    assert_true(pc_json_num(o, "s", 0.25) == 0.25);
    assert_true(pc_json_num(o, "a", 0.25) == 0.25);
    assert_true(pc_json_num(o, "missing", 0.25) == 0.25);
    assert_true(pc_json_num(o, "r", 0.25) == 2.5);
    /* a NULL object reads as empty */
    assert_null(pc_json_str(NULL, "s"));
    assert_int_equal(pc_json_int(NULL, "i", 3), 3);
    json_decref(o);
}

static void large_integers_survive(void **state)
{
    (void)state;
    const char *s = "{\"big\":9007199254740993,\"min\":-9223372036854775808}";
    json_t *o = NULL;
    assert_int_equal(pc_json_parse_object(s, strlen(s), 1024, &o, NULL, 0), 0);
    assert_true(pc_json_int(o, "big", 0) == INT64_C(9007199254740993));
    assert_true(pc_json_int(o, "min", 0) == INT64_MIN);
    json_decref(o);
}

static void dump_keeps_insertion_order(void **state)
{
    (void)state;
    json_t *o = json_object();
    json_object_set_new(o, "z", json_integer(1));
    json_object_set_new(o, "a", json_string("x"));
    json_object_set_new(o, "m", json_null());
    char *s = pc_json_dump(o);
    assert_non_null(s);
    assert_string_equal(s, "{\"z\":1,\"a\":\"x\",\"m\":null}");
    free(s);
    json_decref(o);
}

static void error_body_has_code_and_message(void **state)
{
    (void)state;
    size_t len = 0;
    char *s = pc_json_error_body("not_found", "no such video", &len);
    assert_non_null(s);
    assert_string_equal(s, "{\"code\":\"not_found\",\"message\":\"no such video\"}");
    assert_int_equal(len, strlen(s));
    free(s);
    s = pc_json_error_body("x", "y", NULL); /* len is optional */
    assert_non_null(s);
    free(s);
}

static void error_body_escapes_quotes_and_controls(void **state)
{
    (void)state;
    size_t len = 0;
    char *s = pc_json_error_body("bad\"code", "say \"hi\" \\ back\nslash", &len);
    assert_non_null(s);
    assert_string_equal(s, "{\"code\":\"bad\\\"code\",\"message\":\"say \\\"hi\\\" \\\\ back\\nslash\"}");
    assert_int_equal(len, strlen(s));
    /* and it parses back to the same strings */
    json_t *o = NULL;
    assert_int_equal(pc_json_parse_object(s, len, 1024, &o, NULL, 0), 0);
    assert_string_equal(pc_json_str(o, "code"), "bad\"code");
    assert_string_equal(pc_json_str(o, "message"), "say \"hi\" \\ back\nslash");
    json_decref(o);
    free(s);
}

/* A message that is not valid UTF-8 still gives a valid error body (user text can be anything). */
static void error_body_survives_invalid_utf8(void **state)
{
    (void)state;
    size_t len = 0;
    char *s = pc_json_error_body("bad_name", "caf\xe9.mp4 is not media", &len);
    assert_non_null(s);
    json_t *o = NULL;
    assert_int_equal(pc_json_parse_object(s, len, 1024, &o, NULL, 0), 0);
    assert_string_equal(pc_json_str(o, "code"), "bad_name");
    assert_non_null(pc_json_str(o, "message"));
    json_decref(o);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_object_and_read_fields),
        cmocka_unit_test(parse_reads_only_len_bytes),
        cmocka_unit_test(length_limit_is_checked_before_parsing),
        cmocka_unit_test(malformed_input_gives_parse_error_and_sentence),
        cmocka_unit_test(top_level_non_objects_are_rejected),
        cmocka_unit_test(duplicate_keys_are_rejected),
        cmocka_unit_test(accessors_give_defaults_for_absent_or_wrong_types),
        cmocka_unit_test(large_integers_survive),
        cmocka_unit_test(dump_keeps_insertion_order),
        cmocka_unit_test(error_body_has_code_and_message),
        cmocka_unit_test(error_body_escapes_quotes_and_controls),
        cmocka_unit_test(error_body_survives_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
