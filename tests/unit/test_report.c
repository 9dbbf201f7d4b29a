/* Tracker reports: offload and QoE arithmetic, totals, Prometheus text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "report.h"
#include "tracker_fixture.h"

static void figures_from_counters(void **state)
{
    (void)state;
    pc_vstats st = {.bytes_cdn = 250, .bytes_p2p = 750, .stalls = 3, .stall_ms = 36000, .played_ms = 3564000};
    pc_figures f;
    pc_report_figures(&st, &f);
    assert_true(f.offload == 0.75);
    assert_true(f.viewer_hours == 1.0);
    assert_true(f.stalls_per_viewer_hour == 3.0);
    assert_true(f.rebuffer_ratio == 0.01);
    pc_vstats none = {0};
    pc_report_figures(&none, &f);
    assert_true(f.offload == 0 && f.stalls_per_viewer_hour == 0 && f.rebuffer_ratio == 0);
}

static void stats_and_metrics_agree(void **state)
{
    (void)state;
    pc_registry *r = fx_registry(30 * SEC);
    uint32_t self;
    pc_announce a = fx_announce(1, "va", PC_EV_STARTED, 0);
    a.counters.bytes_cdn = 100;
    a.counters.bytes_p2p = 300;
    a.counters.startup_ms = 500;
    assert_int_equal(pc_registry_announce(r, &a, 1, SEC, &self), 0);
    pc_announce b = fx_announce(2, "vb", PC_EV_STARTED, 0);
    b.counters.bytes_cdn = 100;
    b.seeding = 1;
    assert_int_equal(pc_registry_announce(r, &b, 1, SEC, &self), 0);
    json_t *doc = pc_report_stats(r, 1700000000, NULL);
    json_t *total = json_object_get(doc, "total");
    assert_int_equal(json_integer_value(json_object_get(total, "peers")), 2);
    assert_int_equal(json_integer_value(json_object_get(total, "seeders")), 1);
    assert_int_equal(json_integer_value(json_object_get(total, "bytes_cdn")), 200);
    assert_true(json_real_value(json_object_get(total, "offload")) == 0.6);
    json_t *va = json_object_get(json_object_get(doc, "videos"), "va");
    assert_true(json_real_value(json_object_get(va, "offload")) == 0.75);
    double p50 = json_real_value(json_object_get(json_object_get(va, "startup_ms"), "p50"));
    assert_true(p50 > 400 && p50 < 600);
    json_decref(doc);
    pc_tmetrics m = {.announces = {2, 0, 0}, .rejects = {[PC_REJECT_RATE_LIMITED] = 5}};
    pc_buf o;
    pc_buf_init(&o, 1 << 20);
    assert_int_equal(pc_report_metrics(r, &m, 1, &o), 0);
    assert_non_null(strstr(o.data, "peercdn_tracker_peers 2\n"));
    assert_non_null(strstr(o.data, "peercdn_tracker_offload_ratio 0.600000\n"));
    assert_non_null(strstr(o.data, "peercdn_tracker_bytes_total{source=\"p2p\"} 300\n"));
    assert_non_null(strstr(o.data, "peercdn_tracker_announces_total{event=\"started\"} 2\n"));
    assert_non_null(strstr(o.data, "peercdn_tracker_rejects_total{code=\"rate_limited\"} 5\n"));
    assert_non_null(strstr(o.data, "# TYPE peercdn_tracker_peers gauge\n"));
    /* only the busiest video gets per-video series when top = 1 (both have one peer: either) */
    int per_video = strstr(o.data, "video_peers{video=\"va\"}") != NULL;
    per_video += strstr(o.data, "video_peers{video=\"vb\"}") != NULL;
    assert_int_equal(per_video, 1);
    pc_buf_clear(&o);
    assert_int_equal(pc_reject_of("bad_json"), PC_REJECT_BAD_JSON);
    assert_int_equal(pc_reject_of("nonsense"), PC_REJECT_INTERNAL);
    pc_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(figures_from_counters),
        cmocka_unit_test(stats_and_metrics_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
