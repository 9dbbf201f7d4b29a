/* ladder: ABR ladder planning, the source-to-output timeline, segment/chunk boundaries and GOP starts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ladder.h"

#define SEC 90000 /* output ticks per second at the 90 kHz timescale */

typedef struct want_rung {
    int w, h, bitrate;
} want_rung;

static void expect_ladder(const pc_rung *got, int n, const want_rung *want, int nwant)
{
    assert_int_equal(n, nwant);
    for (int i = 0; i < n; i++) {
        const char id[3] = {'v', (char)('0' + i), '\0'};
        assert_string_equal(got[i].id, id);
        assert_int_equal(got[i].width, want[i].w);
        assert_int_equal(got[i].height, want[i].h);
        assert_int_equal(got[i].bitrate, want[i].bitrate);
        assert_int_equal(got[i].maxrate, got[i].bitrate * 3 / 2);
        assert_int_equal(got[i].bufsize, got[i].bitrate * 2);
    }
}

static void expect_even_and_ascending(const pc_rung *r, int n)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(r[i].width % 2, 0);
        assert_int_equal(r[i].height % 2, 0);
        if (i > 0) {
            assert_true(r[i].width > r[i - 1].width);
            assert_true(r[i].height > r[i - 1].height);
            assert_true(r[i].bitrate > r[i - 1].bitrate);
        }
    }
}

/* ---- pc_ladder_plan ---- */

static void ladder_1080p_is_the_full_apple_ladder(void **state)
{
    (void)state;
    static const want_rung want[] = {
        {416, 234, 145000},  {640, 360, 365000},   {768, 432, 730000},
        {960, 540, 2000000}, {1280, 720, 3000000}, {1920, 1080, 6000000},
    };
    pc_rung r[PC_LADDER_MAX];
    memset(r, 0xff, sizeof(r));
    int n = pc_ladder_plan(1920, 1080, 30, r);
    expect_ladder(r, n, want, 6);
    expect_even_and_ascending(r, n);
}

static void ladder_720p_never_upscales(void **state)
{
    (void)state;
    static const want_rung want[] = {
        {416, 234, 145000}, {640, 360, 365000}, {768, 432, 730000}, {960, 540, 2000000}, {1280, 720, 3000000},
    };
    pc_rung r[PC_LADDER_MAX];
    expect_ladder(r, pc_ladder_plan(1280, 720, 30, r), want, 5);
    /* one pixel short of 720 lines: the 720 rung goes */
    assert_int_equal(pc_ladder_plan(1278, 719, 30, r), 4);
    assert_int_equal(r[3].height, 540);
}

static void ladder_portrait_swaps_dimensions(void **state)
{
    (void)state;
    static const want_rung want[] = {
        {234, 416, 145000},  {360, 640, 365000},   {432, 768, 730000},
        {540, 960, 2000000}, {720, 1280, 3000000}, {1080, 1920, 6000000},
    };
    pc_rung r[PC_LADDER_MAX];
    expect_ladder(r, pc_ladder_plan(1080, 1920, 30, r), want, 6);
}

static void ladder_4_3_scales_width_and_bitrate(void **state)
{
    (void)state;
    /* short side 480: rungs 234, 360 and 432 lines; long side even(round(s * 4/3)); bitrate by pixel count */
    static const want_rung want[] = {
        {312, 234, 109000}, /* 145000 * 312/416 = 108750 */
        {480, 360, 274000}, /* 365000 * 480/640 = 273750 */
        {576, 432, 548000}, /* 730000 * 576/768 = 547500 */
    };
    pc_rung r[PC_LADDER_MAX];
    int n = pc_ladder_plan(640, 480, 30, r);
    expect_ladder(r, n, want, 3);
    expect_even_and_ascending(r, n);
}

static void ladder_tiny_source_gets_one_rung_at_its_size(void **state)
{
    (void)state;
    pc_rung r[PC_LADDER_MAX];
    assert_int_equal(pc_ladder_plan(320, 180, 30, r), 1);
    assert_string_equal(r[0].id, "v0");
    assert_int_equal(r[0].width, 320);
    assert_int_equal(r[0].height, 180);
    assert_int_equal(r[0].bitrate, 86000); /* 145000 * 57600/97344 = 85799 */
    /* the bitrate floor */
    assert_int_equal(pc_ladder_plan(64, 36, 30, r), 1);
    assert_int_equal(r[0].width, 64);
    assert_int_equal(r[0].height, 36);
    assert_int_equal(r[0].bitrate, 50000);
    /* exactly the lowest rung */
    assert_int_equal(pc_ladder_plan(416, 234, 30, r), 1);
    assert_int_equal(r[0].width, 416);
    assert_int_equal(r[0].height, 234);
    assert_int_equal(r[0].bitrate, 145000);
}

static void ladder_odd_source_gets_even_dimensions(void **state)
{
    (void)state;
    pc_rung r[PC_LADDER_MAX];
    int n = pc_ladder_plan(641, 361, 30, r);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].width, 416);
    assert_int_equal(r[0].height, 234);
    assert_int_equal(r[1].width, 640);
    assert_int_equal(r[1].height, 360);
    expect_even_and_ascending(r, n);
}

/* A source below the lowest rung with odd dimensions is rounded down to even, never up. */
static void ladder_tiny_odd_source_is_not_upscaled(void **state)
{
    (void)state;
    pc_rung r[PC_LADDER_MAX];
    assert_int_equal(pc_ladder_plan(321, 181, 30, r), 1);
    assert_int_equal(r[0].width % 2, 0);
    assert_int_equal(r[0].height % 2, 0);
    assert_true(r[0].height <= 181);
    assert_true(r[0].width <= 321);
    /* one line below the lowest rung: 414x233 must not become 416x234 */
    assert_int_equal(pc_ladder_plan(414, 233, 30, r), 1);
    assert_true(r[0].height <= 233);
    assert_true(r[0].width <= 414);
}

static void ladder_high_fps_raises_bitrates(void **state)
{
    (void)state;
    pc_rung r30[PC_LADDER_MAX], r60[PC_LADDER_MAX];
    int n30 = pc_ladder_plan(1920, 1080, 30, r30);
    int n60 = pc_ladder_plan(1920, 1080, 60, r60);
    assert_int_equal(n30, 6);
    assert_int_equal(n60, 6);
    static const int want60[] = {218000, 548000, 1095000, 3000000, 4500000, 9000000};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r60[i].width, r30[i].width);
        assert_int_equal(r60[i].height, r30[i].height);
        assert_int_equal(r60[i].bitrate, want60[i]); /* 1.5x, rounded to 1000 */
        assert_int_equal(r60[i].maxrate, want60[i] * 3 / 2);
    }
    /* the threshold is "above 31 fps" */
    pc_rung r[PC_LADDER_MAX];
    pc_ladder_plan(1920, 1080, 31, r);
    assert_int_equal(r[5].bitrate, 6000000);
    pc_ladder_plan(1920, 1080, 31.5, r);
    assert_int_equal(r[5].bitrate, 9000000);
    pc_ladder_plan(1920, 1080, 30000.0 / 1001, r);
    assert_int_equal(r[5].bitrate, 6000000);
}

static void ladder_degenerate_input(void **state)
{
    (void)state;
    pc_rung r[PC_LADDER_MAX];
    assert_int_equal(pc_ladder_plan(0, 0, 30, r), 0);
    assert_int_equal(pc_ladder_plan(1920, 0, 30, r), 0);
    assert_int_equal(pc_ladder_plan(0, 1080, 30, r), 0);
    assert_int_equal(pc_ladder_plan(-1920, 1080, 30, r), 0);
    assert_int_equal(pc_ladder_plan(1, 1, 30, r), 0);
    assert_int_equal(pc_ladder_plan(2, 2, 30, r), 1);
    assert_int_equal(r[0].width, 2);
    assert_int_equal(r[0].height, 2);
}

static void ladder_above_1080p_stops_at_1080(void **state)
{
    (void)state;
    pc_rung r[PC_LADDER_MAX];
    assert_int_equal(pc_ladder_plan(3840, 2160, 30, r), 6);
    assert_int_equal(r[5].width, 1920);
    assert_int_equal(r[5].height, 1080);
    assert_int_equal(r[5].bitrate, 6000000);
}

/* ---- pc_timeline ---- */

static void timeline_cfr_30fps_from_15360_time_base(void **state)
{
    (void)state;
    pc_timeline t;
    const int64_t first = 1234;
    pc_timeline_init(&t, 1, first, 1, 15360, 30, 1);
    assert_int_equal(t.timescale, 90000);
    assert_int_equal(t.frame_ticks, 3000);
    for (int64_t k = 0; k < 100; k++) {
        int64_t pts = first + 512 * k;
        assert_int_equal(pc_timeline_map(&t, pts), 3000 * k);
        /* jitter of one source tick lands in the same slot */
        assert_int_equal(pc_timeline_map(&t, pts + 1), 3000 * k);
        if (k > 0)
            assert_int_equal(pc_timeline_map(&t, pts - 1), 3000 * k);
        assert_int_equal(pc_timeline_unmap(&t, 3000 * k), pts);
    }
    /* slot boundary: 255 ticks after a frame still rounds down, 256 (half a frame) rounds up */
    assert_int_equal(pc_timeline_map(&t, first + 255), 0);
    assert_int_equal(pc_timeline_map(&t, first + 256), 3000);
}

static void timeline_cfr_ntsc_rates(void **state)
{
    (void)state;
    pc_timeline t;
    /* 23.976: a frame is not a whole number of 90 kHz ticks */
    pc_timeline_init(&t, 1, 0, 1, 24000, 24000, 1001);
    assert_int_equal(t.timescale, 24000);
    assert_int_equal(t.frame_ticks, 1001);
    for (int64_t k = 0; k < 50; k++) {
        assert_int_equal(pc_timeline_map(&t, 1001 * k), 1001 * k);
        assert_int_equal(pc_timeline_map(&t, 1001 * k + 3), 1001 * k);
    }
    /* 29.97 is 3003 ticks at 90 kHz */
    pc_timeline_init(&t, 1, 0, 1, 30000, 30000, 1001);
    assert_int_equal(t.timescale, 90000);
    assert_int_equal(t.frame_ticks, 3003);
    assert_int_equal(pc_timeline_map(&t, 1001 * 7), 3003 * 7);
    /* 25 fps */
    pc_timeline_init(&t, 1, 0, 1, 1000, 25, 1);
    assert_int_equal(t.timescale, 90000);
    assert_int_equal(t.frame_ticks, 3600);
    assert_int_equal(pc_timeline_map(&t, 40 * 3 + 1), 3600 * 3);
}

static void timeline_vfr_rescales_to_90khz(void **state)
{
    (void)state;
    pc_timeline t;
    pc_timeline_init(&t, 0, 1000, 1, 1000, 30, 1);
    assert_int_equal(t.timescale, 90000);
    assert_int_equal(pc_timeline_map(&t, 1000), 0);
    assert_int_equal(pc_timeline_map(&t, 1001), 90);       /* 1 ms */
    assert_int_equal(pc_timeline_map(&t, 1033), 33 * 90);  /* not snapped to a 30 fps slot */
    assert_int_equal(pc_timeline_map(&t, 11000), 10 * SEC);
    assert_int_equal(pc_timeline_map(&t, 999), -90);       /* before the first frame */
    assert_int_equal(pc_timeline_unmap(&t, 10 * SEC), 11000);
}

static void timeline_unmap_round_trips_within_a_tick(void **state)
{
    (void)state;
    static const int tbs[][2] = {{1, 15360}, {1, 44100}, {1, 1000}, {1001, 30000}, {1, 90000}, {1, 12800}};
    for (size_t i = 0; i < sizeof(tbs) / sizeof(tbs[0]); i++) {
        pc_timeline t;
        pc_timeline_init(&t, 0, 777, tbs[i][0], tbs[i][1], 30, 1);
        for (int64_t pts = 777; pts < 777 + 100000; pts += 997) {
            int64_t back = pc_timeline_unmap(&t, pc_timeline_map(&t, pts));
            assert_in_range(back, pts - 1, pts + 1);
        }
    }
}

/* ---- pc_segments_plan / pc_chunks_plan ---- */

static void segments_every_4s_from_1s_frames(void **state)
{
    (void)state;
    int64_t ticks[12], pts[12];
    for (int i = 0; i < 12; i++) {
        ticks[i] = (int64_t)i * SEC;
        pts[i] = 100 + i * 1000;
    }
    pc_segment segs[12];
    size_t n = pc_segments_plan(ticks, pts, 12, 4 * SEC, segs);
    assert_int_equal(n, 3);
    for (size_t s = 0; s < 3; s++) {
        assert_int_equal(segs[s].t, (int64_t)(4 * s) * SEC);
        assert_int_equal(segs[s].pts, 100 + 4000 * (int64_t)s);
        assert_int_equal(segs[s].frames, 4);
    }
}

static void segments_skip_empty_intervals(void **state)
{
    (void)state;
    const int64_t ticks[] = {0, 1 * SEC, 2 * SEC, 9 * SEC, 10 * SEC};
    const int64_t pts[] = {10, 11, 12, 19, 20};
    pc_segment segs[5];
    size_t n = pc_segments_plan(ticks, pts, 5, 4 * SEC, segs);
    assert_int_equal(n, 2);
    assert_int_equal(segs[0].t, 0);
    assert_int_equal(segs[0].pts, 10);
    assert_int_equal(segs[0].frames, 3);
    assert_int_equal(segs[1].t, 9 * SEC);
    assert_int_equal(segs[1].pts, 19);
    assert_int_equal(segs[1].frames, 2);
}

static void segment_boundary_tick_is_exact(void **state)
{
    (void)state;
    const int64_t ticks[] = {0, 4 * SEC - 1, 4 * SEC, 8 * SEC - 1, 8 * SEC};
    const int64_t pts[] = {0, 1, 2, 3, 4};
    pc_segment segs[5];
    size_t n = pc_segments_plan(ticks, pts, 5, 4 * SEC, segs);
    assert_int_equal(n, 3);
    assert_int_equal(segs[0].frames, 2); /* 4 s minus one tick stays in the first */
    assert_int_equal(segs[1].t, 4 * SEC);
    assert_int_equal(segs[1].pts, 2);
    assert_int_equal(segs[1].frames, 2);
    assert_int_equal(segs[2].t, 8 * SEC);
    assert_int_equal(segs[2].frames, 1);
}

static void segments_first_frame_late_and_single_frame(void **state)
{
    (void)state;
    /* the first frame always opens a segment, even off a boundary */
    const int64_t ticks[] = {SEC / 2, 3 * SEC, 4 * SEC + 1};
    const int64_t pts[] = {5, 6, 7};
    pc_segment segs[3];
    size_t n = pc_segments_plan(ticks, pts, 3, 4 * SEC, segs);
    assert_int_equal(n, 2);
    assert_int_equal(segs[0].t, SEC / 2);
    assert_int_equal(segs[0].frames, 2);
    assert_int_equal(segs[1].t, 4 * SEC + 1);
    assert_int_equal(segs[1].frames, 1);
    assert_int_equal(pc_segments_plan(ticks, pts, 1, 4 * SEC, segs), 1);
    assert_int_equal(segs[0].frames, 1);
    assert_int_equal(pc_segments_plan(ticks, pts, 0, 4 * SEC, segs), 0);
}

static void chunks_group_segments_to_the_target(void **state)
{
    (void)state;
    pc_segment segs[15];
    for (int i = 0; i < 15; i++) {
        segs[i].t = (int64_t)i * 4 * SEC;
        segs[i].pts = i;
        segs[i].frames = 120;
    }
    size_t first[15];
    /* 7 segments (24 s span), 8 s target, one worker: 4 chunks, the spare segment goes to the first ones */
    size_t n = pc_chunks_plan(segs, 7, 8 * SEC, 1, NULL, 0, 0, first);
    assert_int_equal(n, 4);
    assert_int_equal(first[0], 0);
    assert_int_equal(first[1], 2);
    assert_int_equal(first[2], 4);
    assert_int_equal(first[3], 6);
    /* one tick over 8 s: 24 s / (8 s + 1) = 2, plus one: 3 chunks of 3, 2, 2 */
    n = pc_chunks_plan(segs, 7, 8 * SEC + 1, 1, NULL, 0, 0, first);
    assert_int_equal(n, 3);
    assert_int_equal(first[1], 3);
    assert_int_equal(first[2], 5);
    /* a target below one segment: every segment is its own chunk */
    n = pc_chunks_plan(segs, 7, SEC, 1, NULL, 0, 0, first);
    assert_int_equal(n, 7);
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(first[i], i);
    assert_int_equal(pc_chunks_plan(segs, 7, INT64_MAX / 2, 1, NULL, 0, 0, first), 1);
    assert_int_equal(first[0], 0);
    assert_int_equal(pc_chunks_plan(segs, 0, 8 * SEC, 1, NULL, 0, 0, first), 0);
}

/* The chunk count is a multiple of the workers so that every round of work is full. */
static void chunks_balance_the_workers(void **state)
{
    (void)state;
    pc_segment segs[15];
    for (int i = 0; i < 15; i++) {
        segs[i].t = (int64_t)i * 4 * SEC;
        segs[i].pts = i;
        segs[i].frames = 120;
    }
    size_t first[15];
    /* 15 segments, 10 s target, 2 workers: 6 chunks of 3,3,3,2,2,2 */
    size_t n = pc_chunks_plan(segs, 15, 10 * SEC, 2, NULL, 0, 0, first);
    assert_int_equal(n, 6);
    const size_t want[] = {0, 3, 6, 9, 11, 13};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(first[i], want[i]);
    /* 5 segments, 8 s target, 2 workers: 3 chunks would leave one worker idle; 4 it is */
    n = pc_chunks_plan(segs, 5, 8 * SEC, 2, NULL, 0, 0, first);
    assert_int_equal(n, 4);
    assert_int_equal(first[1], 2);
    /* never more chunks than segments */
    assert_int_equal(pc_chunks_plan(segs, 3, SEC, 4, NULL, 0, 0, first), 3);
}

/* Past |shift_min| of lead-in, a boundary moves by one segment to the shortest lead-in from a source keyframe. */
static void chunks_start_near_source_keyframes(void **state)
{
    (void)state;
    pc_segment segs[8];
    for (int i = 0; i < 8; i++) {
        segs[i].t = (int64_t)i * 4 * SEC;
        segs[i].pts = (int64_t)i * 4000; /* source time base 1/1000 */
        segs[i].frames = 120;
    }
    size_t first[8];
    /* keyframes every 8.33 s: starting at 8 s wastes 8 s of decoding, at 12 s only 3.67 s */
    const int64_t keys[] = {0, 8333, 16667, 25000};
    size_t n = pc_chunks_plan(segs, 8, 8 * SEC, 1, keys, 4, 4000, first);
    assert_int_equal(n, 4);
    assert_int_equal(first[0], 0);
    assert_int_equal(first[1], 3); /* 12 s (3.67 s) beats 8 s (8 s) and 4 s (4 s) */
    assert_int_equal(first[2], 5); /* 20 s (3.33 s) beats 16 s (7.67 s) */
    assert_int_equal(first[3], 7); /* 28 s (3 s) beats 24 s (7.33 s) */
    /* a keyframe exactly at the boundary keeps it there */
    const int64_t on_boundary[] = {0, 8000};
    pc_chunks_plan(segs, 8, 8 * SEC, 1, on_boundary, 2, 4000, first);
    assert_int_equal(first[1], 2);
    /* short source GOPs (lead-in at most the threshold) never move a boundary */
    const int64_t short_gops[] = {0, 2000, 4000, 6000, 8000 - 3000, 10000, 12000, 14000, 16000, 18000, 20000, 22000, 24000};
    pc_chunks_plan(segs, 8, 8 * SEC, 1, short_gops, sizeof(short_gops) / sizeof(short_gops[0]), 4000, first);
    assert_int_equal(first[1], 2);
    assert_int_equal(first[2], 4);
    /* the lead-in exactly at the threshold does not move it; one unit over does */
    const int64_t at_threshold[] = {0, 4000, 12000};
    pc_chunks_plan(segs, 8, 8 * SEC, 1, at_threshold, 3, 4000, first);
    assert_int_equal(first[1], 2);
    pc_chunks_plan(segs, 8, 8 * SEC, 1, at_threshold, 3, 3999, first);
    assert_int_equal(first[1], 1); /* 4 s has lead-in 0 */
}

/* ---- pc_decimation ---- */

static void decimation_caps_the_rate_at_60(void **state)
{
    (void)state;
    assert_int_equal(pc_decimation(30, 1), 1);
    assert_int_equal(pc_decimation(60, 1), 1);
    assert_int_equal(pc_decimation(60000, 1001), 1);
    assert_int_equal(pc_decimation(6025, 100), 1); /* 60.25: a rounding error, not a rate */
    assert_int_equal(pc_decimation(120, 1), 2);
    assert_int_equal(pc_decimation(120000, 1001), 2);
    assert_int_equal(pc_decimation(100, 1), 2);
    assert_int_equal(pc_decimation(90, 1), 2);
    assert_int_equal(pc_decimation(144, 1), 3);
    assert_int_equal(pc_decimation(240, 1), 4);
    assert_int_equal(pc_decimation(0, 1), 1);
    assert_int_equal(pc_decimation(30, 0), 1);
    assert_int_equal(pc_decimation(1000000, 1), 64); /* bounded */
}

static void timeline_keeps_every_decim_th_slot(void **state)
{
    (void)state;
    pc_timeline t;
    pc_timeline_init(&t, 1, 0, 1, 120, 120, 1); /* 120 fps: 750 ticks a frame */
    assert_int_equal(t.frame_ticks, 750);
    assert_true(pc_timeline_keeps(&t, pc_timeline_map(&t, 1))); /* no decimation after init */
    t.decim = 2;
    for (int64_t k = 0; k < 8; k++)
        assert_int_equal(pc_timeline_keeps(&t, pc_timeline_map(&t, k)), k % 2 == 0);
    t.decim = 4;
    assert_true(pc_timeline_keeps(&t, pc_timeline_map(&t, 8)));
    assert_false(pc_timeline_keeps(&t, pc_timeline_map(&t, 6)));
}

/* ---- pc_is_gop_start ---- */

static void gop_start_at_exact_boundary_ticks(void **state)
{
    (void)state;
    const int64_t gop = 2 * SEC;
    assert_true(pc_is_gop_start(-1, 12345, gop)); /* the first frame */
    assert_true(pc_is_gop_start(gop - 3000, gop, gop));
    assert_false(pc_is_gop_start(gop - 3000, gop - 1, gop)); /* one tick before */
    assert_true(pc_is_gop_start(gop - 1, gop, gop));
    assert_false(pc_is_gop_start(gop, gop + 3000, gop));
    /* a frame that crosses the boundary without landing on it starts the GOP */
    assert_true(pc_is_gop_start(gop - 1000, gop + 2000, gop));
    /* a gap spanning several GOPs */
    assert_true(pc_is_gop_start(0, 5 * gop + 7, gop));
    assert_false(pc_is_gop_start(0, 3000, gop));
    assert_true(pc_is_gop_start(-1, 0, gop));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ladder_1080p_is_the_full_apple_ladder),
        cmocka_unit_test(ladder_720p_never_upscales),
        cmocka_unit_test(ladder_portrait_swaps_dimensions),
        cmocka_unit_test(ladder_4_3_scales_width_and_bitrate),
        cmocka_unit_test(ladder_tiny_source_gets_one_rung_at_its_size),
        cmocka_unit_test(ladder_odd_source_gets_even_dimensions),
        cmocka_unit_test(ladder_tiny_odd_source_is_not_upscaled),
        cmocka_unit_test(ladder_high_fps_raises_bitrates),
        cmocka_unit_test(ladder_degenerate_input),
        cmocka_unit_test(ladder_above_1080p_stops_at_1080),
        cmocka_unit_test(decimation_caps_the_rate_at_60),
        cmocka_unit_test(timeline_keeps_every_decim_th_slot),
        cmocka_unit_test(timeline_cfr_30fps_from_15360_time_base),
        cmocka_unit_test(timeline_cfr_ntsc_rates),
        cmocka_unit_test(timeline_vfr_rescales_to_90khz),
        cmocka_unit_test(timeline_unmap_round_trips_within_a_tick),
        cmocka_unit_test(segments_every_4s_from_1s_frames),
        cmocka_unit_test(segments_skip_empty_intervals),
        cmocka_unit_test(segment_boundary_tick_is_exact),
        cmocka_unit_test(segments_first_frame_late_and_single_frame),
        cmocka_unit_test(chunks_group_segments_to_the_target),
        cmocka_unit_test(chunks_balance_the_workers),
        cmocka_unit_test(chunks_start_near_source_keyframes),
        cmocka_unit_test(gop_start_at_exact_boundary_ticks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
