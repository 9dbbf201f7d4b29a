/* tus: Upload-Metadata validation and lookup, and the HTTP date format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tus.h"

static int valid(const char *s)
{
    return pc_tus_metadata_valid(s, strlen(s));
}

static void metadata_valid_accepts_pairs_and_bare_keys(void **state)
{
    (void)state;
    assert_int_equal(valid("filename d29ybGQ=,is_confidential"), 0); /* a key without a value */
    assert_int_equal(valid("filename d29ybGQ="), 0);
    assert_int_equal(valid("is_confidential"), 0);
    assert_int_equal(valid("a YQ==,b Yg==,c Yw=="), 0);
    assert_int_equal(valid("a YQ==, b Yg=="), 0); /* a space after the comma */
    assert_int_equal(valid("empty "), 0);          /* key, separator, empty value */
    assert_int_equal(valid(""), 0);                /* no pairs at all */
}

static void metadata_valid_rejects_malformed(void **state)
{
    (void)state;
    assert_int_equal(valid("file name d29ybGQ="), PC_EPARSE);   /* space inside a key */
    assert_int_equal(valid("a YQ==,,b Yg=="), PC_EPARSE);       /* empty pair */
    assert_int_equal(valid(",a YQ=="), PC_EPARSE);
    assert_int_equal(valid("filename d29y!GQ="), PC_EPARSE);    /* not base64 */
    assert_int_equal(valid("filename d29ybGQ"), PC_EPARSE);     /* padding missing */
    assert_int_equal(valid("filename d29ybGQ=x"), PC_EPARSE);   /* junk after padding */
    assert_int_equal(valid("filename d29y bGQ="), PC_EPARSE);   /* space inside a value */
    assert_int_equal(valid("k\x01 YQ=="), PC_EPARSE);           /* control character in a key */
    assert_int_equal(valid("k\x7f YQ=="), PC_EPARSE);
    /* only |len| bytes are looked at */
    const char *s = "a YQ==!!!";
    assert_int_equal(pc_tus_metadata_valid(s, 6), 0);
    assert_int_equal(pc_tus_metadata_valid(s, 7), PC_EPARSE);
}

static void metadata_valid_value_size_limit(void **state)
{
    (void)state;
    /* a value that decodes to more than PC_TUS_MAX_METADATA bytes is rejected */
    static char s[2 + 4 * (PC_TUS_MAX_METADATA / 3 + 2) + 1];
    size_t n = 0;
    s[n++] = 'k';
    s[n++] = ' ';
    size_t groups = PC_TUS_MAX_METADATA / 3 + 1; /* 4098 bytes */
    for (size_t i = 0; i < groups; i++) {
        memcpy(s + n, "QUJD", 4);
        n += 4;
    }
    s[n] = '\0';
    assert_int_equal(pc_tus_metadata_valid(s, n), PC_EPARSE);
    /* 4095 bytes fit */
    n = 2 + 4 * (PC_TUS_MAX_METADATA / 3);
    s[n] = '\0';
    assert_int_equal(pc_tus_metadata_valid(s, n), 0);
}

/* tus: "The key MUST be unique" */
static void metadata_valid_rejects_duplicate_keys(void **state)
{
    (void)state;
    const char *dup = "filename d29ybGQ=,title eA==,filename eQ==";
    assert_int_not_equal(pc_tus_metadata_valid(dup, strlen(dup)), 0);
    const char *bare = "flag,flag";
    assert_int_not_equal(pc_tus_metadata_valid(bare, strlen(bare)), 0);
    const char *prefix = "name eA==,names eA==";
    assert_int_equal(pc_tus_metadata_valid(prefix, strlen(prefix)), 0);
}

static void metadata_get_decodes_values(void **state)
{
    (void)state;
    const char *m = "filename d29ybGQ=,is_confidential,title bXkgdmlkZW8=";
    size_t len = strlen(m);
    char out[64];
    assert_int_equal(pc_tus_metadata_get(m, len, "filename", out, sizeof(out)), 0);
    assert_string_equal(out, "world");
    assert_int_equal(pc_tus_metadata_get(m, len, "title", out, sizeof(out)), 0);
    assert_string_equal(out, "my video");
    memset(out, 'x', sizeof(out));
    assert_int_equal(pc_tus_metadata_get(m, len, "is_confidential", out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

static void metadata_get_absent_keys(void **state)
{
    (void)state;
    const char *m = "filename d29ybGQ=,is_confidential";
    size_t len = strlen(m);
    char out[64];
    assert_int_equal(pc_tus_metadata_get(m, len, "name", out, sizeof(out)), PC_ENOENT);
    assert_int_equal(pc_tus_metadata_get(m, len, "file", out, sizeof(out)), PC_ENOENT);      /* a prefix */
    assert_int_equal(pc_tus_metadata_get(m, len, "filenames", out, sizeof(out)), PC_ENOENT); /* longer */
    assert_int_equal(pc_tus_metadata_get(m, len, "d29ybGQ=", out, sizeof(out)), PC_ENOENT);  /* a value */
    assert_int_equal(pc_tus_metadata_get("", 0, "filename", out, sizeof(out)), PC_ENOENT);
    /* |len| bounds the search */
    assert_int_equal(pc_tus_metadata_get(m, 17, "is_confidential", out, sizeof(out)), PC_ENOENT);
}

static void metadata_get_value_must_fit(void **state)
{
    (void)state;
    const char *m = "filename d29ybGQ="; /* "world": 5 bytes + NUL */
    size_t len = strlen(m);
    char out[6];
    assert_int_equal(pc_tus_metadata_get(m, len, "filename", out, 6), 0); /* exactly fits */
    assert_string_equal(out, "world");
    char small[5];
    int r = pc_tus_metadata_get(m, len, "filename", small, sizeof(small));
    assert_true(r < 0);
    assert_int_not_equal(r, PC_ENOENT);
    r = pc_tus_metadata_get(m, len, "filename", small, 0);
    assert_true(r < 0);
    assert_int_not_equal(r, PC_ENOENT);
    /* a malformed value of a present key is an error too */
    r = pc_tus_metadata_get("filename d29y!GQ=", 17, "filename", out, sizeof(out));
    assert_true(r < 0);
    assert_int_not_equal(r, PC_ENOENT);
}

static void http_date_formats_imf_fixdate(void **state)
{
    (void)state;
    char out[32];
    pc_http_date(0, out, sizeof(out));
    assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    pc_http_date(1700000000, out, sizeof(out));
    assert_string_equal(out, "Tue, 14 Nov 2023 22:13:20 GMT");
    pc_http_date(951782400, out, sizeof(out)); /* leap day */
    assert_string_equal(out, "Tue, 29 Feb 2000 00:00:00 GMT");
    pc_http_date(86399, out, sizeof(out)); /* one second before midnight */
    assert_string_equal(out, "Thu, 01 Jan 1970 23:59:59 GMT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metadata_valid_accepts_pairs_and_bare_keys),
        cmocka_unit_test(metadata_valid_rejects_malformed),
        cmocka_unit_test(metadata_valid_value_size_limit),
        cmocka_unit_test(metadata_valid_rejects_duplicate_keys),
        cmocka_unit_test(metadata_get_decodes_values),
        cmocka_unit_test(metadata_get_absent_keys),
        cmocka_unit_test(metadata_get_value_must_fit),
        cmocka_unit_test(http_date_formats_imf_fixdate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
