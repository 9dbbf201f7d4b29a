/* subs_text: subtitle track names, language tags and WebVTT cue text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "subs_text.h"

static void name_is(const char *in, const char *want)
{
    char out[PC_SUBS_NAME_MAX + 8];
    pc_subs_clean_name(in, out, sizeof(out));
    assert_string_equal(out, want);
}

static void names_lose_what_a_playlist_reader_could_misread(void **state)
{
    (void)state;
    name_is("English", "English");
    name_is("Fran\xc3\xa7" "ais \"forced\"", "Fran\xc3\xa7" "ais forced");
    name_is("MERCURI=", "MERCURI"); /* "URI=" in a name would pass for the attribute */
    name_is("a<b>&c\td\x7f", "abcd");
    name_is("trailing   ", "trailing");
    /* invalid UTF-8 is skipped: a lone continuation, an overlong '/', a surrogate, past U+10FFFF, a cut
     * sequence at the end */
    name_is("A\x80" "B\xc0\xaf" "C\xed\xa0\x80" "D\xf4\x90\x80\x80" "E\xe2\x82", "ABCDE");
    name_is("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"); /* U+1F600 is fine */
    /* at most PC_SUBS_NAME_MAX bytes, between characters: 40 two-byte characters give 32 (64 bytes) */
    char in[81], out[PC_SUBS_NAME_MAX + 8];
    for (int i = 0; i < 40; i++)
        memcpy(in + 2 * i, "\xc3\xa9", 2);
    in[80] = '\0';
    pc_subs_clean_name(in, out, sizeof(out));
    assert_int_equal(strlen(out), 64);
    memmove(in + 1, in, 80); /* an odd start: 31 characters and the 'x' fit */
    in[0] = 'x';
    in[80] = '\0';
    pc_subs_clean_name(in, out, sizeof(out));
    assert_int_equal(strlen(out), 63);
    /* a small buffer cuts earlier, still between characters */
    char small[4];
    pc_subs_clean_name("\xc3\xa9\xc3\xa9", small, sizeof(small));
    assert_string_equal(small, "\xc3\xa9");
}

static void language_is(const char *in, const char *want, const char *want_name)
{
    char out[32], name[PC_SUBS_NAME_MAX + 1];
    pc_subs_clean_language(in, out, sizeof(out), name, sizeof(name));
    assert_string_equal(out, want);
    assert_string_equal(name, want_name);
}

static void languages_become_bcp47(void **state)
{
    (void)state;
    /* ISO 639-2, terminological and bibliographic, as ISO 639-1 (Debian's iso-codes table) */
    language_is("eng", "en", "English");
    language_is("fre", "fr", "French");
    language_is("fra", "fr", "French");
    language_is("GER", "de", "German");
    language_is("spa", "es", "Spanish"); /* "Spanish; Castilian": the first name */
    language_is("fre-CA", "fr-CA", "French");
    language_is("en", "en", "English");
    language_is("en-US", "en-US", "English");
    /* no two-letter code: kept, named */
    language_is("haw", "haw", "Hawaiian");
    /* none, undetermined, or not a tag */
    language_is(NULL, "", "");
    language_is("", "", "");
    language_is("und", "", "");
    language_is("e", "", "");
    language_is("toolonglang", "", "");
    language_is("en_US", "", "");
    language_is("en-\"x\"", "", "");
    language_is("12", "", "");
}

static void text_is(const char *in, const char *want)
{
    char *t = pc_subs_vtt_text(in, strlen(in));
    if (want == NULL) {
        assert_null(t);
        return;
    }
    assert_non_null(t);
    assert_string_equal(t, want);
    free(t);
}

static void cue_text_is_webvtt(void **state)
{
    (void)state;
    text_is("Hello <i>world</i> & friends", "Hello <i>world</i> &amp; friends");
    text_is("if a < b\nthen -->", "if a &lt; b\nthen --&gt;");
    text_is("<b>bold</b> <u>u</u> <script>", "<b>bold</b> <u>u</u> &lt;script>");
    text_is("one\n\n\ntwo\r\n", "one\ntwo");
    text_is("\n\nlead", "lead");
    text_is("tab\there\x07!\x1b[0m", "tab\there![0m"); /* control characters out, tab kept */
    char *z = pc_subs_vtt_text("a\0b", 3); /* a NUL would cut the text short */
    assert_string_equal(z, "ab");
    free(z);
    text_is("", NULL);
    text_is("\n\r\n", NULL);
    /* 3000 two-byte characters: cut to at most PC_SUBS_CUE_TEXT_MAX bytes, between characters */
    char big[6001];
    for (int i = 0; i < 3000; i++)
        memcpy(big + 2 * i, "\xc3\xa9", 2);
    big[6000] = '\0';
    char *t = pc_subs_vtt_text(big, 6000);
    assert_non_null(t);
    assert_int_equal(strlen(t), PC_SUBS_CUE_TEXT_MAX);
    free(t);
    big[0] = 'x'; /* now the characters start at odd offsets: one byte less */
    memmove(big + 1, big + 2, 5998);
    big[5999] = '\0';
    t = pc_subs_vtt_text(big, 5999);
    assert_int_equal(strlen(t), PC_SUBS_CUE_TEXT_MAX - 1);
    free(t);
    /* a tag at the cut is left out whole, not half written */
    char tagged[PC_SUBS_CUE_TEXT_MAX + 8];
    memset(tagged, 'a', PC_SUBS_CUE_TEXT_MAX - 2);
    memcpy(tagged + PC_SUBS_CUE_TEXT_MAX - 2, "<i>b</i>", 9);
    t = pc_subs_vtt_text(tagged, strlen(tagged));
    assert_int_equal(strlen(t), PC_SUBS_CUE_TEXT_MAX - 2);
    assert_null(strchr(t, '<'));
    free(t);
}

static const char *problem(const char *s, size_t n)
{
    return pc_subs_body_problem(s, n);
}

/* FFmpeg's readers drop events that are not UTF-8 and stop at a NUL: such a file is refused, not published
 * in part */
static void bodies_ffmpeg_would_read_in_part_are_refused(void **state)
{
    (void)state;
    const char ok1[] = "1\n00:00:01,000 --> 00:00:02,000\nH\xc3\xa9llo w\xc3\xb6rld \xe2\x80\xb9\xf0\x9f\x98\x80\n";
    assert_null(problem(ok1, sizeof(ok1) - 1));
    assert_null(problem("\xef\xbb\xbf" "1\r\n", 6));                     /* UTF-8 with its mark */
    assert_null(problem("\xff\xfe" "1\0\n\0", 6));                      /* UTF-16 with its mark: FFmpeg converts */
    assert_null(problem("\xfe\xff" "\0" "1", 4));
    assert_null(problem("", 0));
    assert_non_null(problem("H\xe9llo", 6));                               /* Latin-1 */
    assert_non_null(problem("a\0b", 3));                                   /* a NUL */
    assert_non_null(problem("1\0\n\0", 4));                              /* UTF-16 without its mark */
    assert_non_null(problem("ok \xc3", 4));                                 /* a character cut at the end */
    assert_non_null(problem("\xed\xa0\x80", 3));                          /* a surrogate */
    assert_non_null(problem("\xc0\xaf", 2));                               /* an overlong form */
    assert_non_null(problem("\xf4\x90\x80\x80", 4));                     /* past U+10FFFF */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_lose_what_a_playlist_reader_could_misread),
        cmocka_unit_test(languages_become_bcp47),
        cmocka_unit_test(cue_text_is_webvtt),
        cmocka_unit_test(bodies_ffmpeg_would_read_in_part_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
