/* offload_bound (sim/bound.c): the upload that can count is a viewer's capacity while another viewer
 * is watching; a viewer seeding after watching uploads but receives nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "bound.h"

#define S 1000000ULL

static pc_media one_segment(void)
{
    static uint32_t size[1] = {2500000}, dur[1] = {20000000};
    pc_media m = {0};
    m.n_rungs = 1;
    m.n_segments = 1;
    m.seg_dur_us = dur;
    m.rung[0].seg_size = size;
    return m;
}

/* A watches 0-20 s and seeds to 220 s; B watches 100-120 s and seeds to 320 s; 100 kbit/s uplinks. Only
 * A's seeding while B watches (20 s) can carry bytes: U = 12 500 B/s × 20 s, the bound U / D = 5%. (Counted
 * as receivers over their whole stays they shared 120 s each: 60%.) */
static void seeding_after_watching_receives_nothing(void **state)
{
    (void)state;
    pc_media m = one_segment();
    const pc_media *media[1] = {&m};
    sim_bound_viewer v[2] = {
        {.video = 0, .arrive = 0, .watched = 20 * S, .left = 220 * S, .up = 12500, .bytes = 2500000},
        {.video = 0, .arrive = 100 * S, .watched = 120 * S, .left = 320 * S, .up = 12500, .bytes = 2500000},
    };
    sim_bound b;
    assert_int_equal(sim_bound_compute(media, 1, v, 2, 400 * S, &b), 0);
    assert_float_equal(b.usable_upload_bytes, 12500.0 * 20, 1e-6);
    assert_float_equal(b.offload_bound, 0.05, 1e-9);
    /* watching the whole stay (no seeding): the overlap 100-220 s counts for both */
    v[0].watched = v[0].left;
    v[1].watched = v[1].left;
    assert_int_equal(sim_bound_compute(media, 1, v, 2, 400 * S, &b), 0);
    assert_float_equal(b.usable_upload_bytes, 12500.0 * 240, 1e-6);
    /* A seeds 40-50 s and B watches from 44 s: 6 s of A's seeding count (a departure between two
     * changes of who watches is looked up exactly, not at the change before it) */
    sim_bound_viewer w[2] = {
        {.video = 0, .arrive = 0, .watched = 40 * S, .left = 50 * S, .up = 12500, .bytes = 2500000},
        {.video = 0, .arrive = 44 * S, .watched = 84 * S, .left = 94 * S, .up = 12500, .bytes = 2500000},
    };
    assert_int_equal(sim_bound_compute(media, 1, w, 2, 400 * S, &b), 0);
    assert_float_equal(b.usable_upload_bytes, 12500.0 * 6, 1e-6);
}

/* An always-on seeder's capacity counts while a viewer watches, not while one only seeds; a |watched|
 * outside [arrive, left] is clamped. */
static void a_seeder_counts_while_someone_watches(void **state)
{
    (void)state;
    pc_media m = one_segment();
    const pc_media *media[1] = {&m};
    sim_bound_viewer v[2] = {
        {.video = 0, .arrive = 0, .left = 0, .up = 50000, .seeder = 1},
        {.video = 0, .arrive = 10 * S, .watched = 30 * S, .left = 230 * S, .up = 12500, .bytes = 2500000},
    };
    sim_bound b;
    assert_int_equal(sim_bound_compute(media, 1, v, 2, 400 * S, &b), 0);
    assert_float_equal(b.usable_upload_bytes, 50000.0 * 20, 1e-6);
    v[1].watched = 5 * S; /* before it arrived: nothing watched */
    assert_int_equal(sim_bound_compute(media, 1, v, 2, 400 * S, &b), 0);
    assert_float_equal(b.usable_upload_bytes, 0, 1e-6);
    v[1].watched = 999 * S; /* after it left: to its departure */
    assert_int_equal(sim_bound_compute(media, 1, v, 2, 400 * S, &b), 0);
    assert_float_equal(b.usable_upload_bytes, 50000.0 * 220, 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seeding_after_watching_receives_nothing),
        cmocka_unit_test(a_seeder_counts_while_someone_watches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
