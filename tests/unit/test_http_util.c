/* Range and If-None-Match parsing: every form, the exact edges, and what must be ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pc_error.h"
#include "pc_http_server.h"
#include "pc_http_util.h"

static int range(const char *v, uint64_t size, uint64_t *s, uint64_t *l)
{
    return pc_http_parse_range(v, strlen(v), size, s, l);
}

static void ranges_in_every_form(void **state)
{
    (void)state;
    uint64_t s = 0, l = 0;
    assert_int_equal(range("bytes=0-99", 1000, &s, &l), 1);
    assert_int_equal(s, 0);
    assert_int_equal(l, 100);
    assert_int_equal(range("bytes=100-", 1000, &s, &l), 1);
    assert_int_equal(s, 100);
    assert_int_equal(l, 900);
    assert_int_equal(range("bytes=-10", 1000, &s, &l), 1);
    assert_int_equal(s, 990);
    assert_int_equal(l, 10);
    assert_int_equal(range("Bytes= 5 - 9 ", 1000, &s, &l), 1);
    assert_int_equal(s, 5);
    assert_int_equal(l, 5);
}

static void range_edges(void **state)
{
    (void)state;
    uint64_t s = 0, l = 0;
    /* the last byte exactly, and one past it */
    assert_int_equal(range("bytes=999-999", 1000, &s, &l), 1);
    assert_int_equal(l, 1);
    assert_int_equal(range("bytes=1000-", 1000, &s, &l), -1);
    assert_int_equal(range("bytes=1000-2000", 1000, &s, &l), -1);
    /* an end past the size is clamped */
    assert_int_equal(range("bytes=990-5000", 1000, &s, &l), 1);
    assert_int_equal(l, 10);
    /* suffixes: longer than the file is the whole file; zero is unsatisfiable */
    assert_int_equal(range("bytes=-5000", 1000, &s, &l), 1);
    assert_int_equal(s, 0);
    assert_int_equal(l, 1000);
    assert_int_equal(range("bytes=-0", 1000, &s, &l), -1);
    assert_int_equal(range("bytes=0-", 0, &s, &l), -1);
    /* positions past 2^64 - 1 are still positions: a start past the end, an end clamped, a suffix whole */
    assert_int_equal(range("bytes=99999999999999999999-", 1000, &s, &l), -1);
    assert_int_equal(range("bytes=18446744073709551614-", 1000, &s, &l), -1);
    assert_int_equal(range("bytes=0-99999999999999999999", 1000, &s, &l), 1);
    assert_int_equal(s, 0);
    assert_int_equal(l, 1000);
    assert_int_equal(range("bytes=0-18446744073709551615", 1000, &s, &l), 1);
    assert_int_equal(l, 1000);
    assert_int_equal(range("bytes=-99999999999999999999", 1000, &s, &l), 1);
    assert_int_equal(s, 0);
    assert_int_equal(l, 1000);
}

static void ranges_to_ignore(void **state)
{
    (void)state;
    uint64_t s = 0, l = 0;
    const char *ignored[] = {"items=0-5", "bytes=0-5,10-20", "bytes=9-5", "bytes=abc-", "bytes=", "bytes=-",
                             "bytes=1-2-3", "bytes=+5-9", "bytes"};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        assert_int_equal(range(ignored[i], 1000, &s, &l), 0);
    char longv[128];
    memset(longv, '1', sizeof(longv));
    memcpy(longv, "bytes=0-", 8);
    assert_int_equal(pc_http_parse_range(longv, sizeof(longv), 1000, &s, &l), 0);
}

static int inm(const char *list, const char *etag)
{
    return pc_http_etag_list_matches(list, strlen(list), etag, strlen(etag), 0);
}

static int im(const char *list, const char *etag)
{
    return pc_http_etag_list_matches(list, strlen(list), etag, strlen(etag), 1);
}

static void if_none_match_lists(void **state)
{
    (void)state;
    assert_int_equal(inm("\"abc\"", "\"abc\""), 1);
    assert_int_equal(inm("\"x\", \"abc\"", "\"abc\""), 1);
    assert_int_equal(inm("W/\"abc\"", "\"abc\""), 1);
    assert_int_equal(inm("*", "\"abc\""), 1);
    assert_int_equal(inm("\"abcd\"", "\"abc\""), 0);
    assert_int_equal(inm("\"ab\"", "\"abc\""), 0);
    assert_int_equal(inm("", "\"abc\""), 0);
    assert_int_equal(inm("\"abc", "\"abc\""), 0); /* unterminated */
    assert_int_equal(inm(" , ,", "\"abc\""), 0);
}

/* If-Match compares strongly: a weak tag never matches (RFC 9110 13.1.1) */
static void if_match_lists(void **state)
{
    (void)state;
    assert_int_equal(im("\"abc\"", "\"abc\""), 1);
    assert_int_equal(im("W/\"abc\", \"x\"", "\"abc\""), 0);
    assert_int_equal(im("W/\"abc\", \"abc\"", "\"abc\""), 1);
    assert_int_equal(im("*", "\"abc\""), 1);
    assert_int_equal(im("\"abcd\"", "\"abc\""), 0);
}

static int query(const char *q, const char *name, char *out, size_t n)
{
    return pc_http_query_get(q, strlen(q), name, out, n);
}

static void query_values_once_and_only_once(void **state)
{
    (void)state;
    char v[16];
    assert_int_equal(query("exp=12&sig=ab-_", "sig", v, sizeof(v)), 0);
    assert_string_equal(v, "ab-_");
    assert_int_equal(query("a=%41+b&x", "a", v, sizeof(v)), 0);
    assert_string_equal(v, "A b");
    assert_int_equal(query("x&y=1", "x", v, sizeof(v)), 0);
    assert_string_equal(v, "");
    assert_int_equal(query("ab=1", "a", v, sizeof(v)), PC_ENOENT);
    assert_int_equal(query("", "a", v, sizeof(v)), PC_ENOENT);
    assert_int_equal(query("a=1%00", "a", v, sizeof(v)), PC_EPARSE);
    assert_int_equal(query("a=0123456789abcdef", "a", v, sizeof(v)), PC_ETOOBIG);
    /* given twice, even with the same value: which one counts would be a guess */
    assert_int_equal(query("limit=5&limit=abc", "limit", v, sizeof(v)), PC_EPARSE);
    assert_int_equal(query("exp=1&sig=s&exp=1", "exp", v, sizeof(v)), PC_EPARSE);
    assert_int_equal(query("exp=1&sig=s&exp=1", "sig", v, sizeof(v)), 0);
}

static int64_t date(const char *s)
{
    return pc_http_date_parse(s, strlen(s));
}

/* RFC 9110 5.6.7's three forms, GMT only; anything else is not a date (the condition is ignored) */
static void http_dates_in_the_three_forms_only(void **state)
{
    (void)state;
    assert_int_equal(date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    assert_int_equal(date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    assert_int_equal(date("Sun Nov  6 08:49:37 1994"), 784111777);
    assert_int_equal(date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    const char *no[] = {"1 Jan 2099", "Sun, 06 Nov 1994 08:49:37 PST", "Sun, 06 Nov 1994 08:49:37 +0000",
                        "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 GMT x", "2099-01-01T00:00:00Z",
                        "yesterday", "", "Sun, 06 Nov 1994 25:49:37 GMT"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_int_equal(date(no[i]), -1);
    assert_int_equal(pc_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT\0", 30), -1); /* a NUL inside */
    assert_int_equal(pc_http_date_parse(NULL, 0), -1);
}

static void loopback_urls(void **state)
{
    (void)state;
    const char *yes[] = {"http://127.0.0.1:8080/", "http://127.9.8.7", "http://localhost:1/x", "http://LOCALHOST",
                         "http://[::1]:80/", "https://[0:0:0:0:0:0:0:1]/"};
    const char *no[] = {"http://127.example.com/", "http://127.0.0.1.nip.io:80/", "http://10.0.0.1/",
                        "http://[::2]/", "http://[::1", "http://localhost.example/", "http:///", "",
                        "http://128.0.0.1/", "http://[127.0.0.1]/"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(pc_url_is_loopback(yes[i]));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(pc_url_is_loopback(no[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ranges_in_every_form),
        cmocka_unit_test(range_edges),
        cmocka_unit_test(ranges_to_ignore),
        cmocka_unit_test(if_none_match_lists),
        cmocka_unit_test(if_match_lists),
        cmocka_unit_test(loopback_urls),
        cmocka_unit_test(http_dates_in_the_three_forms_only),
        cmocka_unit_test(query_values_once_and_only_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
