/* stitch: where joined recordings' parts start a new part, and how far each part moves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "stitch.h"

#define S 1000000LL                 /* µs per second */
#define FRAME30 (1e6 / 30)          /* one frame at 30 fps, µs */
/* an MPEG-TS part as ffmpeg writes it: B-frames decode a frame or two before they show */
#define TS_PART(t0, len, at)                                                                                          \
    ((pc_stitch_part){.first = (t0), .end = (t0) + (len), .dfirst = (t0) - 66667, .dlast = (t0) + (len) - 100000, \
                      .pos = (at), .lpos = (at) + 40000, .key = 1, .owner = 0})

static void jump_is_back_or_far_ahead(void **state)
{
    (void)state;
    assert_false(pc_stitch_jump(5 * S, 5 * S, 5 * S)); /* the same decode time twice: not a new part */
    assert_false(pc_stitch_jump(5 * S, 5 * S + 33367, 5 * S + 33367));
    assert_true(pc_stitch_jump(5 * S, 5 * S, 5 * S - 1)); /* any step back */
    assert_true(pc_stitch_jump(5 * S, 5 * S, S));
    assert_false(pc_stitch_jump(5 * S, 6 * S, 6 * S + PC_STITCH_GAP_US)); /* a gap of 10 s is a gap */
    assert_true(pc_stitch_jump(5 * S, 6 * S, 6 * S + PC_STITCH_GAP_US + 1));
}

static void cat_of_the_same_clock_follows_on_frame_for_frame(void **state)
{
    (void)state;
    /* two 3 s recordings whose clocks both start at 1.4667 s */
    pc_stitch_part v[2] = {TS_PART(1466667, 3 * S, 0), TS_PART(1466667, 3 * S, 500000)};
    int64_t off[2] = {-1, -1};
    pc_stitch_offsets(v, 2, NULL, 0, FRAME30, off);
    assert_int_equal(off[0], 0);
    assert_int_equal(off[1], 3 * S); /* frame 90 right after frame 89 */
}

static void a_leap_ahead_is_closed(void **state)
{
    (void)state;
    pc_stitch_part v[3] = {TS_PART(1466667, 3 * S, 0), TS_PART(1466667, 3 * S, 1000), TS_PART(3601400000, 2 * S, 2000)};
    int64_t off[3];
    pc_stitch_offsets(v, 3, NULL, 0, FRAME30, off);
    assert_int_equal(off[1], 3 * S);
    assert_int_equal(v[2].first + off[2], 1466667 + 6 * S); /* shown right after the second part */
    assert_true(off[2] < -3590 * S);
}

static void a_part_off_the_grid_moves_to_the_next_frame_slot(void **state)
{
    (void)state;
    /* the first part's last frame lasts 10 ms longer than the others: the second part goes to the next
     * slot of the first's frame grid, not onto the last frame nor off the grid */
    pc_stitch_part v[2] = {TS_PART(0, 3 * S + 10000, 0), TS_PART(1400000, 3 * S, 100)};
    int64_t off[2];
    pc_stitch_offsets(v, 2, NULL, 0, FRAME30, off);
    assert_int_equal(v[1].first + off[1], 3033333); /* slot 91 */
    /* without a known frame rate it follows on exactly */
    pc_stitch_offsets(v, 2, NULL, 0, 0, off);
    assert_int_equal(v[1].first + off[1], v[0].end);
}

static void decode_times_do_not_move_a_part(void **state)
{
    (void)state;
    /* the first part has no B-frames (it decodes as it shows), the second decodes two frames before it
     * shows: it is still shown right after the first (the copy moves those decode times up instead) */
    pc_stitch_part v[2] = {TS_PART(0, 3 * S, 0), TS_PART(0, 3 * S, 100000)};
    v[0].dfirst = 0;
    v[0].dlast = 3 * S - 33333;
    int64_t off[2];
    pc_stitch_offsets(v, 2, NULL, 0, FRAME30, off);
    assert_int_equal(off[1], 3 * S);
}

static void ntsc_rates_follow_on_without_a_hole(void **state)
{
    (void)state;
    /* 29.97 fps from 90 kHz: 90 frames are 3.003 s, and the last frame's duration rounds up a µs */
    double frame = 1e6 * 1001 / 30000;
    pc_stitch_part v[2] = {TS_PART(1466667, 3003000 + 1, 0), TS_PART(1466667, 3003000 + 1, 100000)};
    int64_t off[2];
    pc_stitch_offsets(v, 2, NULL, 0, frame, off);
    assert_int_equal(off[1], 3003000); /* slot 90, not 91 */
}

static void the_clock_wrap_is_undone(void **state)
{
    (void)state;
    const int64_t period = INT64_C(1) << 33, tol = 10 * 90000; /* 90 kHz ticks */
    assert_int_equal(pc_stitch_unwrap(1000, period - 2000, period, tol), period + 1000); /* just past the wrap */
    assert_int_equal(pc_stitch_unwrap(period - 1000, 2000, period, tol), -1000);         /* before it, seen from after */
    assert_int_equal(pc_stitch_unwrap(90000, INT64_C(90000) * 3600, period, tol), 90000);   /* a clock restarting: a join */
    assert_int_equal(pc_stitch_unwrap(90000, 95000, period, tol), 90000);                /* a small step back stays */
    assert_int_equal(pc_stitch_unwrap(INT64_MIN, 95000, period, tol), INT64_MIN);
    assert_int_equal(pc_stitch_unwrap(1000, INT64_MIN, period, tol), 1000);              /* the first time */
    assert_int_equal(pc_stitch_unwrap(1000, period - 2000, 0, tol), 1000);               /* no wrap */
}

static void audio_goes_with_its_video_part(void **state)
{
    (void)state;
    pc_stitch_part v[3] = {TS_PART(0, 3 * S, 0), TS_PART(0, 3 * S, 50000), TS_PART(0, 3 * S, 90000)};
    pc_stitch_part a[3] = {TS_PART(-20000, 3 * S, 10), TS_PART(-20000, 3 * S, 50100), TS_PART(-20000, 3 * S, 90100)};
    int64_t off[3];
    pc_stitch_offsets(v, 3, a, 3, FRAME30, off);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(a[i].owner, i); /* each with the video part whose bytes it shares */
    assert_int_equal(off[1], 3 * S);     /* the video decides; audio overlap is trimmed by the audio task */
    assert_int_equal(off[2], 6 * S);
    /* the middle part has no audio: the last audio part goes with the video part nearest in the file */
    pc_stitch_part a2[2] = {a[0], a[2]};
    pc_stitch_offsets(v, 3, a2, 2, FRAME30, off);
    assert_int_equal(a2[0].owner, 0);
    assert_int_equal(a2[1].owner, 2);
    /* as many audio parts as video parts, but not one each: the middle part has none, the last
     * part's audio jumps halfway through (its video does not) */
    pc_stitch_part a3[3] = {a[0], a[2], a[2]};
    a3[1].lpos = 110000;
    a3[2].pos = 110100;
    pc_stitch_offsets(v, 3, a3, 3, FRAME30, off);
    assert_int_equal(a3[0].owner, 0);
    assert_int_equal(a3[1].owner, 2);
    assert_int_equal(a3[2].owner, 2);
}

static void only_jumps_the_audio_makes_too_are_joins(void **state)
{
    (void)state;
    uint8_t real[3];
    /* cat of two recordings: the audio ends and starts again where the video jumps */
    pc_stitch_part v[3] = {{.pos = 0, .lpos = 990}, {.pos = 1000, .lpos = 1990}, {.pos = 2000, .lpos = 2990}};
    pc_stitch_part a[2] = {{.pos = 10, .lpos = 980}, {.pos = 1010, .lpos = 1995}};
    pc_stitch_real_joins(v, 2, a, 2, real);
    assert_true(real[1]);
    /* a gap in the video alone, or a frame whose time is off: the audio runs on through it */
    pc_stitch_part one[1] = {{.pos = 10, .lpos = 1995}};
    pc_stitch_real_joins(v, 2, one, 1, real);
    assert_false(real[1]);
    /* the middle recording has no audio: the audio stops at the first join, starts at the second */
    pc_stitch_part a3[2] = {{.pos = 10, .lpos = 985}, {.pos = 2005, .lpos = 2990}};
    pc_stitch_real_joins(v, 3, a3, 2, real);
    assert_true(real[1]);
    assert_true(real[2]);
    /* the audio stops at the join (the second recording has none), or only starts there */
    pc_stitch_part first[1] = {{.pos = 10, .lpos = 985}}, second[1] = {{.pos = 1005, .lpos = 1990}};
    pc_stitch_real_joins(v, 2, first, 1, real);
    assert_true(real[1]);
    pc_stitch_real_joins(v, 2, second, 1, real);
    assert_true(real[1]);
    /* two recordings without sound in a row, after two with: no audio boundary between them, so
     * their times tell (a clock restarting at a keyframe), as without audio */
    pc_stitch_part v4[4] = {{.pos = 0, .lpos = 990, .dfirst = 0, .dlast = 3 * S},
                            {.pos = 1000, .lpos = 1990, .dfirst = 0, .dlast = 3 * S, .key = 1},
                            {.pos = 2000, .lpos = 2990, .dfirst = 0, .dlast = 3 * S, .key = 1},
                            {.pos = 3000, .lpos = 3990, .dfirst = 0, .dlast = 3 * S, .key = 1}};
    pc_stitch_part a4[2] = {{.pos = 10, .lpos = 980}, {.pos = 1010, .lpos = 1985}};
    uint8_t real4[4];
    pc_stitch_real_joins(v4, 4, a4, 2, real4);
    assert_true(real4[1]);
    assert_true(real4[2]);
    assert_true(real4[3]);
    v4[3].key = 0; /* a frame whose time is off, in a part without sound */
    v4[3].dfirst = 3 * S - 33333;
    pc_stitch_real_joins(v4, 4, a4, 2, real4);
    assert_false(real4[3]);
    /* no audio: a step back of more than a second, or to a keyframe, or a leap, is a join; a frame 34
     * ms early is not */
    pc_stitch_part w[3] = {{.first = 0, .end = 3 * S, .dfirst = 0, .dlast = 3 * S - 33333, .pos = 0},
                           {.first = 0, .end = 3 * S, .dfirst = 0, .dlast = 3 * S - 33333, .pos = 100},
                           {.first = 3 * S - 66667, .end = 4 * S, .dfirst = 3 * S - 66667, .dlast = 4 * S, .pos = 200}};
    pc_stitch_real_joins(w, 3, NULL, 0, real);
    assert_true(real[1]);
    assert_false(real[2]);
    w[2].key = 1; /* a recording whose clock starts 66 ms before the last one's ended: its keyframe says so */
    pc_stitch_real_joins(w, 3, NULL, 0, real);
    assert_true(real[2]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jump_is_back_or_far_ahead),
        cmocka_unit_test(cat_of_the_same_clock_follows_on_frame_for_frame),
        cmocka_unit_test(a_leap_ahead_is_closed),
        cmocka_unit_test(a_part_off_the_grid_moves_to_the_next_frame_slot),
        cmocka_unit_test(decode_times_do_not_move_a_part),
        cmocka_unit_test(ntsc_rates_follow_on_without_a_hole),
        cmocka_unit_test(the_clock_wrap_is_undone),
        cmocka_unit_test(audio_goes_with_its_video_part),
        cmocka_unit_test(only_jumps_the_audio_makes_too_are_joins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
