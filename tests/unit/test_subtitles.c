/* Subtitle files added to a published video: the check made before anything is queued refuses what the
 * task would leave out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pc_fs.h"
#include "subtitles.h"

/* A plan of |secs| seconds in 4 s segments, timescale 90000 (the fields the check reads). */
static json_t *plan_of(int secs)
{
    json_t *segs = json_array();
    for (int t = 0; t < secs; t += 4)
        json_array_append_new(segs, json_pack("[I,I,i]", (json_int_t)t * 90000, (json_int_t)t * 90000, 100));
    return json_pack("{s:I, s:I, s:o}", "timescale", (json_int_t)90000, "end", (json_int_t)secs * 90000, "segments", segs);
}

static json_t *entry_for(const char *text, const json_t *plan, char *why, size_t n)
{
    char path[] = "/tmp/pc-test-subs-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(pc_write_file(path, text, strlen(text)), 0);
    json_t *subs = json_array();
    why[0] = '\0';
    json_t *e = pc_subs_added_entry(subs, path, "en", NULL, 1, plan, why, n);
    json_decref(subs);
    unlink(path);
    return e;
}

/* Cues that last the whole video repeat in every segment: the task would leave such a track out after a 202,
 * its entry counting against the limits for good; the check refuses it with a reason instead */
static void a_file_whose_cues_span_the_video_is_refused(void **state)
{
    (void)state;
    json_t *plan = plan_of(120);
    char why[200];
    size_t cap = 100 * 64 + 64;
    char *srt = malloc(cap), *w = srt;
    for (int i = 1; i <= 100; i++)
        w += snprintf(w, cap - (size_t)(w - srt), "%d\n00:00:00,000 --> 00:02:00,000\nline %d\n\n", i, i);
    assert_null(entry_for(srt, plan, why, sizeof(why)));
    assert_non_null(strstr(why, "overlap"));
    /* a track of the same cues, each in its own two seconds, fits */
    w = srt;
    for (int i = 1; i <= 50; i++)
        w += snprintf(w, cap - (size_t)(w - srt), "%d\n00:00:%02d,000 --> 00:00:%02d,500\nline %d\n\n", i, i, i, i);
    json_t *e = entry_for(srt, plan, why, sizeof(why));
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "language")), "en");
    json_decref(e);
    /* and a cue past the video's end alone is no track */
    assert_null(entry_for("1\n00:05:00,000 --> 00:05:01,000\nlate\n", plan, why, sizeof(why)));
    assert_non_null(strstr(why, "no cue"));
    free(srt);
    json_decref(plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_file_whose_cues_span_the_video_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
