/* db: the SQLite task queue (claim, dependencies, leases, retries), videos, uploads and nested transactions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "db.h"
#include "tmpdir.h"

#define VID_A "aaaaaaaaaaaaaaaaaaaa"
#define VID_B "bbbbbbbbbbbbbbbbbbbb"
#define VID_C "cccccccccccccccccccc"
#define LEASE 60000

typedef struct fixture {
    tmpdir *tmp;                  /* removed with whatever SQLite left beside the database */
    char path[128];
    pc_db *db;
} fixture;

static int db_setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    void *t = NULL;
    if (f == NULL || tmpdir_setup(&t) != 0) {
        free(f);
        return -1;
    }
    f->tmp = t;
    path_in(f->tmp, "origin.db", f->path, sizeof(f->path));
    if (pc_db_open(f->path, &f->db) != 0) {
        tmpdir_teardown(&t);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int db_teardown(void **state)
{
    fixture *f = *state;
    pc_db_close(f->db);
    void *t = f->tmp;
    tmpdir_teardown(&t);
    free(f);
    return 0;
}

static int64_t count(pc_db *db, const char *vid, const char *st)
{
    int64_t n = -1;
    assert_int_equal(pc_taskq_count(db, vid, st, &n), 0);
    return n;
}

static void create_video(pc_db *db, const char *id, int64_t now_ms)
{
    assert_int_equal(pc_db_video_create(db, id, "My clip", "/data/uploads/x", 12345, now_ms), 0);
}

/* Claims a task of |cls| that must exist and be of |kind| for |vid|. */
static pc_task claim_ok(pc_db *db, int cls, int64_t now_ms, const char *kind, const char *vid)
{
    pc_task t;
    memset(&t, 0, sizeof(t));
    assert_int_equal(pc_taskq_claim(db, cls, "worker-1", now_ms, LEASE, &t), 0);
    assert_string_equal(t.kind, kind);
    assert_string_equal(t.video_id, vid);
    return t;
}

static void claim_none(pc_db *db, int cls, int64_t now_ms)
{
    pc_task t;
    assert_int_equal(pc_taskq_claim(db, cls, "worker-1", now_ms, LEASE, &t), PC_ENOENT);
}

static pc_task_spec light(const char *kind, int arg, int priority, double weight)
{
    pc_task_spec s = {kind, arg, PC_TASK_LIGHT, priority, weight};
    return s;
}

/* ---- videos and the first tasks ---- */

static void video_create_makes_ready_probe_and_blocked_plan(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    pc_video v;
    assert_int_equal(pc_db_video_get(f->db, VID_A, &v), 0);
    assert_string_equal(v.id, VID_A);
    assert_string_equal(v.title, "My clip");
    assert_string_equal(v.state, "queued");
    assert_string_equal(v.source, "/data/uploads/x");
    assert_int_equal(v.source_size, 12345);
    assert_int_equal(v.created_ms, 1000);
    assert_null(v.error_code);
    assert_null(v.info);
    pc_video_clear(&v);
    assert_int_equal(count(f->db, VID_A, "ready"), 1);
    assert_int_equal(count(f->db, VID_A, "blocked"), 1);
    assert_int_equal(pc_db_video_get(f->db, VID_B, &v), PC_ENOENT);
    /* the same id twice is refused and leaves no extra tasks */
    assert_int_not_equal(pc_db_video_create(f->db, VID_A, "again", "/x", 1, 2000), 0);
    assert_int_equal(count(f->db, VID_A, "ready"), 1);
    assert_int_equal(count(f->db, VID_A, "blocked"), 1);
    int64_t n = 0;
    assert_int_equal(pc_db_video_count(f->db, &n), 0);
    assert_int_equal(n, 1);
}

static void probe_is_heavy_and_plan_waits_for_it(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    claim_none(f->db, PC_TASK_LIGHT, 2000); /* plan is blocked */
    pc_task probe = claim_ok(f->db, PC_TASK_HEAVY, 2000, "probe", VID_A);
    assert_int_equal(probe.arg, 0);
    assert_int_equal(probe.attempts, 1);
    assert_int_equal(probe.max_attempts, 5);
    assert_true(probe.weight == 2.0);
    claim_none(f->db, PC_TASK_HEAVY, 2000); /* running, not claimable twice */
    claim_none(f->db, PC_TASK_LIGHT, 2000);
    assert_int_equal(count(f->db, VID_A, "running"), 1);

    assert_int_equal(pc_taskq_complete(f->db, probe.id, "{\"width\":1920}", 3000), 0);
    assert_int_equal(count(f->db, VID_A, "done"), 1);
    pc_task plan = claim_ok(f->db, PC_TASK_LIGHT, 3000, "plan", VID_A);
    assert_true(plan.weight == 0.5);
    assert_true(plan.id != probe.id);
    /* completing twice does nothing more, and says so (a job finished after its task was taken away) */
    assert_int_equal(pc_taskq_complete(f->db, probe.id, "{}", 3500), PC_ECONFLICT);
    char *res = pc_taskq_result(f->db, VID_A, "probe", 0);
    assert_non_null(res);
    assert_string_equal(res, "{\"width\":1920}");
    free(res);
    assert_null(pc_taskq_result(f->db, VID_A, "plan", 0)); /* not done yet */
}

static void dep_results_are_keyed_by_kind_and_arg(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    pc_task probe = claim_ok(f->db, PC_TASK_HEAVY, 1000, "probe", VID_A);
    assert_int_equal(pc_taskq_complete(f->db, probe.id, "{\"width\":1920,\"fps\":30}", 2000), 0);
    pc_task plan = claim_ok(f->db, PC_TASK_LIGHT, 2000, "plan", VID_A);
    char *s = pc_taskq_dep_results(f->db, plan.id);
    assert_non_null(s);
    assert_string_equal(s, "{\"probe:0\":{\"width\":1920,\"fps\":30}}");
    free(s);
    /* a task without dependencies gets an empty object */
    s = pc_taskq_dep_results(f->db, probe.id);
    assert_non_null(s);
    assert_string_equal(s, "{}");
    free(s);
}

static void weights_sum_all_and_done(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    double done = -1, total = -1;
    /* probe and plan (the first stage), and the rest, apart */
    assert_int_equal(pc_taskq_weights(f->db, VID_A, 1, &done, &total), 0);
    assert_true(done == 0.0);
    assert_true(total == 2.5);
    pc_task_spec enc = {"encode", 3, PC_TASK_HEAVY, 40, 7.25};
    assert_int_equal(pc_taskq_add(f->db, VID_A, &enc, NULL, 0, 1000, NULL), 0);
    pc_task probe = claim_ok(f->db, PC_TASK_HEAVY, 1000, "probe", VID_A);
    assert_int_equal(pc_taskq_complete(f->db, probe.id, NULL, 2000), 0);
    assert_int_equal(pc_taskq_weights(f->db, VID_A, 1, &done, &total), 0);
    assert_true(done == 2.0);
    assert_true(total == 2.5);
    assert_int_equal(pc_taskq_weights(f->db, VID_A, 0, &done, &total), 0);
    assert_true(done == 0.0);
    assert_true(total == 7.25);
    /* an unknown video has nothing */
    assert_int_equal(pc_taskq_weights(f->db, VID_B, 0, &done, &total), 0);
    assert_true(done == 0.0);
    assert_true(total == 0.0);
}

/* ---- ordering and dependencies ---- */

static void higher_priority_first_then_older_video(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000); /* older */
    create_video(f->db, VID_B, 2000);
    /* inserted newest video first, so task ids alone would give the wrong order */
    pc_task_spec b10 = light("b10", 0, 10, 1), a10 = light("a10", 0, 10, 1), a5 = light("a5", 0, 5, 1),
                 b20 = light("b20", 0, 20, 1);
    assert_int_equal(pc_taskq_add(f->db, VID_B, &b10, NULL, 0, 3000, NULL), 0);
    assert_int_equal(pc_taskq_add(f->db, VID_A, &a5, NULL, 0, 3000, NULL), 0);
    assert_int_equal(pc_taskq_add(f->db, VID_A, &a10, NULL, 0, 3000, NULL), 0);
    assert_int_equal(pc_taskq_add(f->db, VID_B, &b20, NULL, 0, 3000, NULL), 0);
    claim_ok(f->db, PC_TASK_LIGHT, 4000, "b20", VID_B);
    claim_ok(f->db, PC_TASK_LIGHT, 4000, "a10", VID_A);
    claim_ok(f->db, PC_TASK_LIGHT, 4000, "b10", VID_B);
    claim_ok(f->db, PC_TASK_LIGHT, 4000, "a5", VID_A);
    claim_none(f->db, PC_TASK_LIGHT, 4000);
    /* heavy: both probes at equal priority, older video first */
    claim_ok(f->db, PC_TASK_HEAVY, 4000, "probe", VID_A);
    claim_ok(f->db, PC_TASK_HEAVY, 4000, "probe", VID_B);
}

static void task_with_two_deps_waits_for_both(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    pc_task_spec s1 = light("left", 1, 30, 1), s2 = light("right", 2, 20, 1), sj = light("join", 0, 90, 1);
    int64_t d[2], join = 0;
    assert_int_equal(pc_taskq_add(f->db, VID_A, &s1, NULL, 0, 1000, &d[0]), 0);
    assert_int_equal(pc_taskq_add(f->db, VID_A, &s2, NULL, 0, 1000, &d[1]), 0);
    assert_int_equal(pc_taskq_add(f->db, VID_A, &sj, d, 2, 1000, &join), 0);
    assert_true(join > d[1]);
    assert_int_equal(count(f->db, VID_A, "blocked"), 2); /* plan and join */

    pc_task left = claim_ok(f->db, PC_TASK_LIGHT, 2000, "left", VID_A);
    assert_int_equal(left.arg, 1);
    assert_int_equal(pc_taskq_complete(f->db, left.id, "{\"n\":1}", 2100), 0);
    /* join (priority 90) is still blocked: right comes next */
    pc_task right = claim_ok(f->db, PC_TASK_LIGHT, 2200, "right", VID_A);
    claim_none(f->db, PC_TASK_LIGHT, 2200);
    assert_int_equal(pc_taskq_complete(f->db, right.id, "{\"n\":2}", 2300), 0);
    pc_task j = claim_ok(f->db, PC_TASK_LIGHT, 2400, "join", VID_A);
    assert_int_equal(j.id, join);
    char *s = pc_taskq_dep_results(f->db, join);
    assert_non_null(s);
    assert_string_equal(s, "{\"left:1\":{\"n\":1},\"right:2\":{\"n\":2}}");
    free(s);
}

static void deps_already_done_count_as_satisfied(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    pc_task probe = claim_ok(f->db, PC_TASK_HEAVY, 1000, "probe", VID_A);
    assert_int_equal(pc_taskq_complete(f->db, probe.id, NULL, 1100), 0);
    pc_task_spec late = light("late", 0, 99, 1);
    assert_int_equal(pc_taskq_add(f->db, VID_A, &late, &probe.id, 1, 1200, NULL), 0);
    claim_ok(f->db, PC_TASK_LIGHT, 1300, "late", VID_A);
}

/* ---- retries, releases, leases ---- */

static void retry_not_claimable_before_not_before(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    pc_task t = claim_ok(f->db, PC_TASK_HEAVY, 1000, "probe", VID_A);
    assert_int_equal(pc_taskq_retry(f->db, t.id, 5000, "io_error", "disk hiccup", 1100), 0);
    assert_int_equal(count(f->db, VID_A, "ready"), 1);
    claim_none(f->db, PC_TASK_HEAVY, 4999); /* one tick before */
    pc_task again = claim_ok(f->db, PC_TASK_HEAVY, 5000, "probe", VID_A); /* exactly at */
    assert_int_equal(again.id, t.id);
    assert_int_equal(again.attempts, 2);
    /* retry of a task that is not running is ignored */
    assert_int_equal(pc_taskq_complete(f->db, again.id, NULL, 5100), 0);
    assert_int_equal(pc_taskq_retry(f->db, again.id, 9000, "x", "y", 5200), 0);
    assert_int_equal(count(f->db, VID_A, "done"), 1);
}

static void release_does_not_count_the_attempt(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    pc_task t = claim_ok(f->db, PC_TASK_HEAVY, 1000, "probe", VID_A);
    assert_int_equal(t.attempts, 1);
    assert_int_equal(pc_taskq_release(f->db, t.id, 1100), 0);
    assert_int_equal(count(f->db, VID_A, "running"), 0);
    pc_task again = claim_ok(f->db, PC_TASK_HEAVY, 1100, "probe", VID_A); /* no backoff */
    assert_int_equal(again.id, t.id);
    assert_int_equal(again.attempts, 1);
    assert_int_equal(pc_taskq_retry(f->db, again.id, 1200, "e", "m", 1150), 0);
    again = claim_ok(f->db, PC_TASK_HEAVY, 1200, "probe", VID_A);
    assert_int_equal(again.attempts, 2); /* a retry counts */
}

static void reclaim_only_expired_leases(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    pc_task t;
    assert_int_equal(pc_taskq_claim(f->db, PC_TASK_HEAVY, "w1", 1000, 500, &t), 0); /* lease until 1500 */
    assert_int_equal(pc_taskq_reclaim(f->db, 1499, 0, NULL, 0), 0);
    assert_int_equal(pc_taskq_reclaim(f->db, 1500, 0, NULL, 0), 0); /* at the expiry tick: still held */
    claim_none(f->db, PC_TASK_HEAVY, 1500);
    assert_int_equal(pc_taskq_reclaim(f->db, 1501, 0, NULL, 0), 1); /* one tick after */
    assert_int_equal(count(f->db, VID_A, "running"), 0);
    pc_task again = claim_ok(f->db, PC_TASK_HEAVY, 1501, "probe", VID_A);
    assert_int_equal(again.id, t.id);
    assert_int_equal(again.attempts, 2); /* a lease that ran out in a live process counts as an attempt */
    assert_int_equal(again.interrupted, 0);
    assert_int_equal(pc_taskq_reclaim(f->db, 1502, 0, NULL, 0), 0);
    /* at a start, every running task: the run the process's death cut short counts apart, not as an attempt */
    assert_int_equal(pc_taskq_reclaim(f->db, 1503, 1, NULL, 0), 1);
    assert_int_equal(pc_taskq_count_interrupted(f->db, 1), 1);
    assert_int_equal(pc_taskq_claim_interrupted(f->db, PC_TASK_HEAVY, "w1", 1503, 500, 2, &t), PC_ENOENT);
    again = claim_ok(f->db, PC_TASK_HEAVY, 1503, "probe", VID_A);
    assert_int_equal(again.attempts, 2);
    assert_int_equal(again.interrupted, 1);
    assert_int_equal(pc_taskq_reclaim(f->db, 1504, 1, NULL, 0), 1);
    assert_int_equal(pc_taskq_count_interrupted(f->db, 2), 1);
    assert_int_equal(pc_taskq_claim_interrupted(f->db, PC_TASK_HEAVY, "w1", 1504, 500, 2, &t), 0);
    assert_int_equal(t.interrupted, 2);
    assert_int_equal(pc_taskq_clear_interrupted(f->db, t.id), 0); /* it ran alone to an end */
    assert_int_equal(pc_taskq_release(f->db, t.id, 1505), 0);
    assert_int_equal(pc_taskq_count_interrupted(f->db, 1), 0);
}

/* A process that could not renew its leases (another process held the database locked) keeps the tasks it
 * still runs or records: the reclaim passes them over, and reclaims the others. */
static void reclaim_keeps_the_tasks_listed(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    create_video(f->db, VID_B, 1000);
    pc_task a, b;
    assert_int_equal(pc_taskq_claim(f->db, PC_TASK_HEAVY, "w1", 1000, 500, &a), 0);
    assert_int_equal(pc_taskq_claim(f->db, PC_TASK_HEAVY, "w1", 1000, 500, &b), 0);
    int64_t keep[] = {a.id};
    assert_int_equal(pc_taskq_reclaim(f->db, 2000, 0, keep, 1), 1);
    assert_int_equal(pc_taskq_complete(f->db, a.id, NULL, 2100), 0); /* still ours: recorded */
    assert_int_equal(pc_taskq_complete(f->db, b.id, NULL, 2100), PC_ECONFLICT); /* taken away: refused */
}

static void reclaim_all_takes_every_running_task(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    create_video(f->db, VID_B, 1000);
    pc_task t;
    assert_int_equal(pc_taskq_claim(f->db, PC_TASK_HEAVY, "w1", 1000, 100000, &t), 0);
    assert_int_equal(pc_taskq_claim(f->db, PC_TASK_HEAVY, "w2", 1000, 100000, &t), 0);
    assert_int_equal(pc_taskq_reclaim(f->db, 2000, 0, NULL, 0), 0);
    assert_int_equal(pc_taskq_reclaim(f->db, 2000, 1, NULL, 0), 2);
    assert_int_equal(count(f->db, VID_A, "ready"), 1);
    assert_int_equal(count(f->db, VID_B, "ready"), 1);
    assert_int_equal(pc_taskq_reclaim(f->db, 2000, 1, NULL, 0), 0); /* nothing left running */
}

static void renew_extends_only_the_owners_leases(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    create_video(f->db, VID_B, 1000);
    pc_task ta, tb;
    assert_int_equal(pc_taskq_claim(f->db, PC_TASK_HEAVY, "w1", 1000, 500, &ta), 0); /* until 1500 */
    assert_int_equal(pc_taskq_claim(f->db, PC_TASK_HEAVY, "w2", 1000, 500, &tb), 0); /* until 1500 */
    assert_int_equal(pc_taskq_renew(f->db, tb.id, "w1", 1400, 500), 0);              /* not w1's: no effect */
    assert_int_equal(pc_taskq_renew(f->db, ta.id, "w1", 1400, 500), 0);              /* w1: until 1900 */
    assert_int_equal(pc_taskq_reclaim(f->db, 1501, 0, NULL, 0), 1);                           /* only w2's */
    assert_int_equal(count(f->db, VID_A, "running"), 1);
    assert_int_equal(count(f->db, VID_B, "running"), 0);
    assert_int_equal(pc_taskq_reclaim(f->db, 1900, 0, NULL, 0), 0);
    assert_int_equal(pc_taskq_reclaim(f->db, 1901, 0, NULL, 0), 1);
    assert_int_equal(count(f->db, VID_A, "running"), 0);
}

static void video_fail_cancels_unfinished_tasks(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    create_video(f->db, VID_B, 1000);
    pc_task probe = claim_ok(f->db, PC_TASK_HEAVY, 1000, "probe", VID_A);
    pc_task_spec extra = light("thumbs", 0, 10, 1);
    assert_int_equal(pc_taskq_add(f->db, VID_A, &extra, NULL, 0, 1000, NULL), 0);
    assert_int_equal(pc_db_video_fail(f->db, VID_A, "not_media", "the file is not a media file", 2000), 0);
    assert_int_equal(count(f->db, VID_A, "canceled"), 3); /* running probe, blocked plan, ready thumbs */
    assert_int_equal(count(f->db, VID_A, "running"), 0);
    claim_none(f->db, PC_TASK_LIGHT, 3000);
    /* the other video is untouched */
    claim_ok(f->db, PC_TASK_HEAVY, 3000, "probe", VID_B);
    claim_none(f->db, PC_TASK_HEAVY, 3000);
    /* the worker finishing the canceled probe later changes nothing (and is told so) */
    assert_int_equal(pc_taskq_complete(f->db, probe.id, "{}", 4000), PC_ECONFLICT);
    assert_int_equal(count(f->db, VID_A, "done"), 0);
    claim_none(f->db, PC_TASK_LIGHT, 4000);
    pc_video v;
    assert_int_equal(pc_db_video_get(f->db, VID_A, &v), 0);
    assert_string_equal(v.state, "failed");
    assert_string_equal(v.error_code, "not_media");
    assert_string_equal(v.error_message, "the file is not a media file");
    assert_int_equal(v.updated_ms, 2000);
    pc_video_clear(&v);
}

static void video_retry_replaces_the_tasks_of_a_failed_video_only(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    create_video(f->db, VID_B, 1000);
    assert_int_equal(pc_db_video_retry(f->db, VID_A, 1500), PC_ECONFLICT); /* queued, not failed */
    pc_task probe = claim_ok(f->db, PC_TASK_HEAVY, 1000, "probe", VID_A);
    assert_int_equal(pc_taskq_complete(f->db, probe.id, "{\"duration\": 2}", 1100), 0);
    assert_int_equal(pc_db_video_set_field(f->db, VID_A, "info", "{\"duration\": 2}", 1100), 0);
    claim_ok(f->db, PC_TASK_LIGHT, 1200, "plan", VID_A);
    assert_int_equal(pc_db_video_fail(f->db, VID_A, "tracker_unreachable", "no tracker", 2000), 0);
    assert_int_equal(pc_db_video_retry(f->db, VID_A, 3000), 0);
    /* the old tasks are gone (a done probe too: the run starts over), the first two are new */
    assert_int_equal(count(f->db, VID_A, "canceled") + count(f->db, VID_A, "done"), 0);
    assert_int_equal(count(f->db, VID_A, "ready"), 1);
    assert_int_equal(count(f->db, VID_A, "blocked"), 1);
    pc_video v;
    assert_int_equal(pc_db_video_get(f->db, VID_A, &v), 0);
    assert_string_equal(v.state, "queued");
    assert_null(v.error_code);
    assert_null(v.error_message);
    assert_null(v.info);
    assert_int_equal(v.updated_ms, 3000);
    pc_video_clear(&v);
    /* older video first, as before: A's new probe waits behind nothing but B's */
    claim_ok(f->db, PC_TASK_HEAVY, 3000, "probe", VID_A);
    claim_ok(f->db, PC_TASK_HEAVY, 3000, "probe", VID_B);
    assert_int_equal(pc_db_video_retry(f->db, VID_A, 3500), PC_ECONFLICT); /* running again */
    assert_int_equal(pc_db_video_retry(f->db, VID_C, 3500), PC_ECONFLICT); /* no such video */
}

static void video_delete_removes_its_tasks(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    create_video(f->db, VID_B, 1000);
    assert_int_equal(pc_db_video_delete(f->db, VID_A), 0);
    assert_int_equal(pc_db_video_delete(f->db, VID_A), PC_ENOENT);
    assert_int_equal(count(f->db, VID_A, "ready"), 0);
    assert_int_equal(count(f->db, VID_A, "blocked"), 0);
    claim_ok(f->db, PC_TASK_HEAVY, 2000, "probe", VID_B);
    claim_none(f->db, PC_TASK_HEAVY, 2000);
}

static void video_list_newest_first_with_paging(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    create_video(f->db, VID_B, 2000);
    create_video(f->db, VID_C, 3000);
    pc_video v[3];
    int n = pc_db_video_list(f->db, 0, v, 2);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, VID_C);
    assert_string_equal(v[1].id, VID_B);
    int64_t after = v[1].seq;
    pc_video_clear(&v[0]);
    pc_video_clear(&v[1]);
    n = pc_db_video_list(f->db, after, v, 3);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, VID_A);
    pc_video_clear(&v[0]);
}

/* ---- uploads ---- */

static pc_upload upload(const char *id, int64_t expires, int completed)
{
    pc_upload u;
    memset(&u, 0, sizeof(u));
    snprintf(u.id, sizeof(u.id), "%s", id);
    u.length = 1000;
    u.offset = 0;
    u.kind = PC_UPLOAD_SINGLE;
    u.metadata = (char *)"filename d29ybGQ=";
    u.created = 10;
    u.expires = expires;
    u.completed = completed;
    return u;
}

static void upload_insert_get_update_delete(void **state)
{
    fixture *f = *state;
    pc_upload u = upload(VID_A, 100, 0);
    u.kind = PC_UPLOAD_FINAL;
    u.parts = (char *)"p1 p2";
    assert_int_equal(pc_db_upload_insert(f->db, &u), 0);
    assert_int_not_equal(pc_db_upload_insert(f->db, &u), 0); /* same id */

    pc_upload g;
    assert_int_equal(pc_db_upload_get(f->db, VID_A, &g), 0);
    assert_string_equal(g.id, VID_A);
    assert_int_equal(g.length, 1000);
    assert_int_equal(g.offset, 0);
    assert_int_equal(g.kind, PC_UPLOAD_FINAL);
    assert_string_equal(g.metadata, "filename d29ybGQ=");
    assert_string_equal(g.parts, "p1 p2");
    assert_int_equal(g.created, 10);
    assert_int_equal(g.expires, 100);
    assert_int_equal(g.completed, 0);
    pc_upload_clear(&g);
    assert_null(g.metadata);

    assert_int_equal(pc_db_upload_set_offset(f->db, VID_A, 640, 0), 0);
    assert_int_equal(pc_db_upload_get(f->db, VID_A, &g), 0);
    assert_int_equal(g.offset, 640);
    assert_int_equal(g.completed, 0);
    pc_upload_clear(&g);
    assert_int_equal(pc_db_upload_set_offset(f->db, VID_A, 1000, 1), 0);
    assert_int_equal(pc_db_upload_get(f->db, VID_A, &g), 0);
    assert_int_equal(g.offset, 1000);
    assert_int_equal(g.completed, 1);
    pc_upload_clear(&g);

    pc_upload nometa = upload(VID_B, 100, 0);
    nometa.metadata = NULL;
    assert_int_equal(pc_db_upload_insert(f->db, &nometa), 0);
    assert_int_equal(pc_db_upload_get(f->db, VID_B, &g), 0);
    assert_null(g.metadata);
    assert_null(g.parts);
    pc_upload_clear(&g);

    assert_int_equal(pc_db_upload_delete(f->db, VID_A), 0);
    assert_int_equal(pc_db_upload_get(f->db, VID_A, &g), PC_ENOENT);
    assert_int_equal(pc_db_upload_get(f->db, VID_C, &g), PC_ENOENT);
}

/* Unfinished and partial uploads go at their expiry second; completed records one lifetime later. */
static void upload_expired_lists_what_to_forget(void **state)
{
    fixture *f = *state;
    pc_upload a = upload(VID_A, 100, 0), b = upload(VID_B, 100, 1), c = upload(VID_C, 200, 0);
    assert_int_equal(pc_db_upload_insert(f->db, &a), 0);
    assert_int_equal(pc_db_upload_insert(f->db, &b), 0);
    assert_int_equal(pc_db_upload_insert(f->db, &c), 0);
    char ids[4][PC_ID_LEN + 1];
    assert_int_equal(pc_db_upload_expired(f->db, 99, 50, ids, 4), 0); /* one second before */
    assert_int_equal(pc_db_upload_expired(f->db, 100, 50, ids, 4), 1); /* at the expiry second */
    assert_string_equal(ids[0], VID_A); /* B completed: a finished upload never expires */
    assert_int_equal(pc_db_upload_expired(f->db, 149, 50, ids, 4), 1);
    int n = pc_db_upload_expired(f->db, 150, 50, ids, 4); /* B's record: its expiry plus the keep time */
    assert_int_equal(n, 2);
    n = pc_db_upload_expired(f->db, 200, 50, ids, 4);
    assert_int_equal(n, 3);
    assert_int_equal(pc_db_upload_expired(f->db, 200, 50, ids, 1), 1); /* at most max */
}

/* A completed partial upload nobody joined goes at its expiry like an unfinished one. */
static void upload_expired_includes_completed_partials(void **state)
{
    fixture *f = *state;
    pc_upload p = upload(VID_A, 100, 1);
    p.kind = PC_UPLOAD_PARTIAL;
    assert_int_equal(pc_db_upload_insert(f->db, &p), 0);
    char ids[4][PC_ID_LEN + 1];
    assert_int_equal(pc_db_upload_expired(f->db, 99, 1000, ids, 4), 0);
    assert_int_equal(pc_db_upload_expired(f->db, 100, 1000, ids, 4), 1);
    assert_string_equal(ids[0], VID_A);
}

/* ---- transactions ---- */

static int upload_exists(pc_db *db, const char *id)
{
    pc_upload g;
    int r = pc_db_upload_get(db, id, &g);
    if (r == 0)
        pc_upload_clear(&g);
    assert_true(r == 0 || r == PC_ENOENT);
    return r == 0;
}

static void nested_rollback_keeps_the_outer_writes(void **state)
{
    fixture *f = *state;
    pc_upload a = upload(VID_A, 100, 0), b = upload(VID_B, 100, 0);
    assert_int_equal(pc_db_begin(f->db), 0);
    assert_int_equal(pc_db_upload_insert(f->db, &a), 0);
    assert_int_equal(pc_db_begin(f->db), 0);
    assert_int_equal(pc_db_upload_insert(f->db, &b), 0);
    assert_true(upload_exists(f->db, VID_B));
    pc_db_rollback(f->db);
    assert_false(upload_exists(f->db, VID_B));
    assert_true(upload_exists(f->db, VID_A));
    assert_int_equal(pc_db_commit(f->db), 0);
    assert_true(upload_exists(f->db, VID_A));
    assert_false(upload_exists(f->db, VID_B));

    /* and the outer rollback undoes a committed inner one */
    pc_upload c = upload(VID_C, 100, 0);
    assert_int_equal(pc_db_begin(f->db), 0);
    assert_int_equal(pc_db_begin(f->db), 0);
    assert_int_equal(pc_db_upload_insert(f->db, &c), 0);
    assert_int_equal(pc_db_commit(f->db), 0);
    assert_true(upload_exists(f->db, VID_C));
    pc_db_rollback(f->db);
    assert_false(upload_exists(f->db, VID_C));
    /* the handle is usable after all that */
    assert_int_equal(pc_db_upload_insert(f->db, &c), 0);
    assert_true(upload_exists(f->db, VID_C));
}

static void video_create_inside_a_rolled_back_transaction(void **state)
{
    fixture *f = *state;
    assert_int_equal(pc_db_begin(f->db), 0);
    create_video(f->db, VID_A, 1000); /* its own begin/commit becomes a savepoint */
    assert_int_equal(count(f->db, VID_A, "ready"), 1);
    pc_db_rollback(f->db);
    pc_video v;
    assert_int_equal(pc_db_video_get(f->db, VID_A, &v), PC_ENOENT);
    assert_int_equal(count(f->db, VID_A, "ready"), 0);
    claim_none(f->db, PC_TASK_HEAVY, 2000);
}

static void data_survives_reopen(void **state)
{
    fixture *f = *state;
    create_video(f->db, VID_A, 1000);
    pc_task t = claim_ok(f->db, PC_TASK_HEAVY, 1000, "probe", VID_A);
    pc_db_close(f->db);
    f->db = NULL;
    assert_int_equal(pc_db_open(f->path, &f->db), 0);
    assert_int_equal(count(f->db, VID_A, "running"), 1);
    assert_int_equal(pc_taskq_reclaim(f->db, 0, 1, NULL, 0), 1);
    pc_task again = claim_ok(f->db, PC_TASK_HEAVY, 2000, "probe", VID_A);
    assert_int_equal(again.id, t.id);
}

#define DB_TEST(fn) cmocka_unit_test_setup_teardown(fn, db_setup, db_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        DB_TEST(video_create_makes_ready_probe_and_blocked_plan),
        DB_TEST(probe_is_heavy_and_plan_waits_for_it),
        DB_TEST(dep_results_are_keyed_by_kind_and_arg),
        DB_TEST(weights_sum_all_and_done),
        DB_TEST(higher_priority_first_then_older_video),
        DB_TEST(task_with_two_deps_waits_for_both),
        DB_TEST(deps_already_done_count_as_satisfied),
        DB_TEST(retry_not_claimable_before_not_before),
        DB_TEST(release_does_not_count_the_attempt),
        DB_TEST(reclaim_only_expired_leases),
        DB_TEST(reclaim_all_takes_every_running_task),
        DB_TEST(reclaim_keeps_the_tasks_listed),
        DB_TEST(renew_extends_only_the_owners_leases),
        DB_TEST(video_fail_cancels_unfinished_tasks),
        DB_TEST(video_retry_replaces_the_tasks_of_a_failed_video_only),
        DB_TEST(video_delete_removes_its_tasks),
        DB_TEST(video_list_newest_first_with_paging),
        DB_TEST(upload_insert_get_update_delete),
        DB_TEST(upload_expired_lists_what_to_forget),
        DB_TEST(upload_expired_includes_completed_partials),
        DB_TEST(nested_rollback_keeps_the_outer_writes),
        DB_TEST(video_create_inside_a_rolled_back_transaction),
        DB_TEST(data_survives_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
