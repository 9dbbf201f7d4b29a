/* Player model: start-up, stalls at the exact tick, resume thresholds, seeks, quitting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pc_player.h"

#define S 1000000ull

static void starts_when_the_start_buffer_is_there(void **state)
{
    (void)state;
    pc_player p;
    pc_player_init(&p, 60 * S, 4 * S, 2 * S);
    pc_player_play(&p, 1000);
    assert_int_equal(p.state, PC_PLAYER_STARTING);
    pc_player_set_buffer(&p, 4 * S - 1, 5000);
    assert_int_equal(p.state, PC_PLAYER_STARTING);
    pc_player_set_buffer(&p, 4 * S, 7000);
    assert_int_equal(p.state, PC_PLAYER_PLAYING);
    assert_int_equal(p.startup_us, 6000);
}

static void stalls_exactly_when_the_buffer_runs_out(void **state)
{
    (void)state;
    pc_player p;
    pc_player_init(&p, 60 * S, 4 * S, 2 * S);
    pc_player_play(&p, 0);
    pc_player_set_buffer(&p, 8 * S, 0);
    assert_int_equal(pc_player_next_event(&p), 8 * S);
    pc_player_advance(&p, 8 * S - 1); /* one tick before: still playing */
    assert_int_equal(p.state, PC_PLAYER_PLAYING);
    assert_int_equal(p.stalls, 0);
    pc_player_advance(&p, 8 * S); /* at the tick */
    assert_int_equal(p.state, PC_PLAYER_STALLED);
    assert_int_equal(p.stalls, 1);
    assert_int_equal(p.pos_us, 8 * S);
    /* advancing past the tick in one go stalls at the tick, not later */
    pc_player q;
    pc_player_init(&q, 60 * S, 4 * S, 2 * S);
    pc_player_play(&q, 0);
    pc_player_set_buffer(&q, 8 * S, 0);
    pc_player_advance(&q, 11 * S);
    assert_int_equal(q.stall_began, 8 * S);
    assert_int_equal(q.played_us, 8 * S);
    /* resume needs the resume buffer: 2 s */
    pc_player_set_buffer(&q, 9 * S, 12 * S);
    assert_int_equal(q.state, PC_PLAYER_STALLED);
    pc_player_set_buffer(&q, 10 * S, 13 * S);
    assert_int_equal(q.state, PC_PLAYER_PLAYING);
    assert_int_equal(q.stall_us, 5 * S);
}

/* The buffer shrinks to the playhead, or behind it, while playing (the copy being played was let go):
 * a stall from then, and no event left at that time. Before, the model kept playing with its next
 * event stuck at the moment of the shrink. */
static void a_buffer_shrinking_under_the_playhead_is_a_stall(void **state)
{
    (void)state;
    for (int behind = 0; behind <= 1; behind++) {
        pc_player p;
        pc_player_init(&p, 60 * S, 4 * S, 2 * S);
        pc_player_play(&p, 0);
        pc_player_set_buffer(&p, 20 * S, 0);
        assert_int_equal(p.state, PC_PLAYER_PLAYING);
        pc_player_set_buffer(&p, behind ? 6 * S : 10 * S, 10 * S); /* the playhead is at 10 s */
        assert_int_equal(p.state, PC_PLAYER_STALLED);
        assert_int_equal(p.stalls, 1);
        assert_int_equal(p.pos_us, 10 * S);
        assert_int_equal(pc_player_next_event(&p), PC_NEVER);
        pc_player_set_buffer(&p, 12 * S, 11 * S); /* the segment again: 2 s is enough to resume */
        assert_int_equal(p.state, PC_PLAYER_PLAYING);
        assert_int_equal(p.stall_us, S);
    }
}

static void ends_at_the_content_end_without_a_stall(void **state)
{
    (void)state;
    pc_player p;
    pc_player_init(&p, 10 * S, 4 * S, 2 * S);
    pc_player_play(&p, 0);
    pc_player_set_buffer(&p, 10 * S, 0);
    pc_player_advance(&p, 30 * S);
    assert_int_equal(p.state, PC_PLAYER_ENDED);
    assert_int_equal(p.stalls, 0);
    assert_int_equal(p.played_us, 10 * S);
    assert_int_equal(pc_player_next_event(&p), UINT64_MAX);
    /* a short tail starts playback even below the start buffer */
    pc_player q;
    pc_player_init(&q, 3 * S, 4 * S, 2 * S);
    pc_player_play(&q, 0);
    pc_player_set_buffer(&q, 3 * S, 100);
    assert_int_equal(q.state, PC_PLAYER_PLAYING);
}

static void seek_waits_without_counting_a_stall(void **state)
{
    (void)state;
    pc_player p;
    pc_player_init(&p, 60 * S, 4 * S, 2 * S);
    pc_player_play(&p, 0);
    pc_player_set_buffer(&p, 8 * S, 0);
    pc_player_advance(&p, 2 * S);
    pc_player_seek(&p, 30 * S, 2 * S);
    assert_int_equal(p.state, PC_PLAYER_SEEKING);
    assert_int_equal(p.pos_us, 30 * S);
    pc_player_set_buffer(&p, 34 * S, 3 * S);
    assert_int_equal(p.state, PC_PLAYER_PLAYING);
    assert_int_equal(p.stalls, 0);
    assert_int_equal(p.seek_wait_us, 1 * S);
    assert_int_equal(p.seeks, 1);
    /* a second seek while the first still waits: both waits count, and a view counts the open one
     * without closing it */
    pc_player_seek(&p, 50 * S, 4 * S);
    pc_player_seek(&p, 10 * S, 6 * S);
    pc_player v;
    pc_player_view(&p, 7 * S, &v);
    assert_int_equal(v.seek_wait_us, 4 * S);
    assert_int_equal(p.seek_wait_us, 3 * S);
    pc_player_quit(&p, 8 * S);
    assert_int_equal(p.seek_wait_us, 5 * S);
    assert_int_equal(p.seeks, 3);
}

static void quit_freezes_everything(void **state)
{
    (void)state;
    pc_player p;
    pc_player_init(&p, 60 * S, 4 * S, 2 * S);
    pc_player_play(&p, 0);
    pc_player_set_buffer(&p, 4 * S, 0);
    pc_player_advance(&p, 6 * S); /* stalled since 4 s */
    pc_player_quit(&p, 7 * S);
    assert_int_equal(p.state, PC_PLAYER_QUIT);
    assert_int_equal(p.stall_us, 3 * S);
    pc_player_set_buffer(&p, 60 * S, 8 * S);
    pc_player_advance(&p, 100 * S);
    assert_int_equal(p.state, PC_PLAYER_QUIT);
    assert_int_equal(p.played_us, 4 * S);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(starts_when_the_start_buffer_is_there),
        cmocka_unit_test(stalls_exactly_when_the_buffer_runs_out),
        cmocka_unit_test(a_buffer_shrinking_under_the_playhead_is_a_stall),
        cmocka_unit_test(ends_at_the_content_end_without_a_stall),
        cmocka_unit_test(seek_waits_without_counting_a_stall),
        cmocka_unit_test(quit_freezes_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
