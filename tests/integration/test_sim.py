#!/usr/bin/env python3
"""peercdn-sim on the scenarios in sim/scenarios/: offload against its bound in a surplus-upload and a
deficit-upload swarm, hybrid against CDN-only and P2P-only on the same workload, determinism, the
outputs (JSON, CSV, SVG parsed by an independent XML parser) and bad scenarios."""
import csv
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
from harness import SANITIZED, Suite, check, eq  # noqa: E402

S = Suite("sim")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCEN = os.path.join(ROOT, "sim", "scenarios")
runs = {}


def sim(*args, expect=0):
    p = subprocess.run([S.bin("peercdn-sim")] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=600)
    if expect is not None:
        eq(p.returncode, expect, "exit status of peercdn-sim %s: %s" % (" ".join(args), p.stderr.decode()[-500:]))
    return p


def compare(name):
    if name not in runs:
        out = os.path.join(S.tmp, name)
        sim("run", os.path.join(SCEN, "test-%s.json" % name), "--out", out, "--compare", "--quiet")
        runs[name] = {m: json.load(open(os.path.join(out, m, "summary.json"))) for m in ("hybrid", "cdn-only", "p2p-only")}
        runs[name]["dir"] = out
    return runs[name]


def offload_near_bound(name, frac):
    h = compare(name)["hybrid"]
    check(h["viewers"] >= 50, "%s: enough viewers (%d)" % (name, h["viewers"]))
    check(h["offload"] <= h["offload_bound"] + 1e-9, "%s: offload %.3f within the bound %.3f" % (
        name, h["offload"], h["offload_bound"]))
    check(h["offload"] >= frac * h["offload_bound"], "%s: offload %.3f reaches %.0f%% of the bound %.3f" % (
        name, h["offload"], 100 * frac, h["offload_bound"]))
    total = h["bytes_cdn"] + h["bytes_p2p"]
    check(abs(h["offload"] - h["bytes_p2p"] / total) < 1e-5, "offload = p2p / (p2p + cdn)")


def test_surplus_offload_reaches_the_bound(s):
    offload_near_bound("surplus", 0.90)


def test_deficit_offload_reaches_the_bound(s):
    # docs/sim.md: in this deficit swarm (uploads a quarter of the top bitrate) the engine reaches 91.2% of
    # the bound at the scenario's seed (89.2-92.1% over seeds 1-8 and 11); the goal is 90%.
    offload_near_bound("deficit", 0.90)


def test_hybrid_is_no_worse_than_cdn_only(s):
    for name in ("surplus", "deficit"):
        r = compare(name)
        h, c = r["hybrid"], r["cdn-only"]
        eq(h["viewers"], c["viewers"], "%s: the same workload in both modes" % name)
        check(h["rebuffer_ratio"] <= c["rebuffer_ratio"] + 0.001, "%s: rebuffer %.5f vs CDN-only %.5f" % (
            name, h["rebuffer_ratio"], c["rebuffer_ratio"]))
        check(h["startup_ms"]["p95"] <= c["startup_ms"]["p95"] * 1.05, "%s: start-up p95 %.0f vs CDN-only %.0f" % (
            name, h["startup_ms"]["p95"], c["startup_ms"]["p95"]))
        eq(c["offload"], 0.0, "CDN-only takes nothing from peers")
        check(h["bytes_cdn"] < c["bytes_cdn"], "%s: the hybrid takes fewer CDN bytes" % name)


def test_p2p_only_stalls_where_hybrid_does_not(s):
    r = compare("deficit")
    check(r["p2p-only"]["stalls"] > 0 and r["p2p-only"]["rebuffer_ratio"] > r["hybrid"]["rebuffer_ratio"],
          "P2P-only stalls in the deficit swarm (%d stalls) and the hybrid does not stall more (%d)" % (
              r["p2p-only"]["stalls"], r["hybrid"]["stalls"]))
    eq(r["hybrid"]["stalls"], 0, "the hybrid avoids them")


def test_same_seed_same_summary(s):
    a, b = os.path.join(S.tmp, "det-a"), os.path.join(S.tmp, "det-b", "in", "new", "dirs")  # made as mkdir -p
    sc = os.path.join(SCEN, "test-surplus.json")
    sim("run", sc, "--out", a, "--quiet")
    sim("run", sc, "--out", b, "--quiet")
    eq(open(os.path.join(a, "summary.json"), "rb").read(), open(os.path.join(b, "summary.json"), "rb").read(),
       "byte-identical summary.json")
    c = os.path.join(S.tmp, "det-c")
    sim("run", sc, "--out", c, "--quiet", "--seed", "8")
    check(open(os.path.join(a, "summary.json"), "rb").read() != open(os.path.join(c, "summary.json"), "rb").read(),
          "another seed, another summary")
    # --seed N is the scenario with "seed": N, catalog included (emulate's DIR/scenario.json relies on it)
    with8 = json.load(open(sc))
    with8["seed"] = 8
    path8 = os.path.join(S.tmp, "seed8.json")
    json.dump(with8, open(path8, "w"))
    d = os.path.join(S.tmp, "det-d")
    sim("run", path8, "--out", d, "--quiet")
    eq(open(os.path.join(c, "summary.json"), "rb").read(), open(os.path.join(d, "summary.json"), "rb").read(),
       "--seed 8 and a scenario with seed 8: byte-identical summary.json")
    run = json.load(open(os.path.join(a, "run.json")))
    check(run["events"] > 0 and run["wall_s"] > 0, "run.json has the wall time and events")


def test_threads_do_not_change_the_results(s):
    # 20 videos split between worlds on their own threads; abrupt leavers (tracker expiry) and seeks
    sc = json.load(open(os.path.join(SCEN, "mobile-heavy.json")))
    sc["duration_s"] = 900
    sc["viewers"]["seek_probability"] = 0.3
    path = os.path.join(S.tmp, "threads.json")
    json.dump(sc, open(path, "w"))
    outs = {}
    for t in ("1", "3"):
        outs[t] = os.path.join(S.tmp, "threads-%s" % t)
        sim("run", path, "--out", outs[t], "--quiet", "--threads", t)
        eq(json.load(open(os.path.join(outs[t], "run.json")))["threads"], int(t), "run.json says how it was split")
    for f in ("summary.json", "timeseries.csv"):
        eq(open(os.path.join(outs["1"], f), "rb").read(), open(os.path.join(outs["3"], f), "rb").read(),
           "%s is byte-identical on 1 and 3 threads" % f)
    summ = json.load(open(os.path.join(outs["3"], "summary.json")))
    check(summ["viewers"] > 500 and summ["offload"] > 0.3, "a real run: %d viewers, offload %.2f" % (
        summ["viewers"], summ["offload"]))
    # a small run sampled every second, half its viewers vanishing: bytes carried by broken transfers
    # count once, when they end, so every world's series only grows and their sum is the same however
    # the videos are split
    small = {"duration_s": 300, "media": {"ladder_kbps": [1000, 2500]},
             "catalog": {"videos": 2, "duration_s": 120, "zipf": 0}, "arrivals": {"rate_per_s": 0.1},
             "viewers": {"up_kbps": {"dist": "uniform", "min": 300, "max": 3000}, "down_kbps": 20000,
                         "seed_after_s": {"dist": "uniform", "min": 0, "max": 40}, "abrupt_leave_probability": 0.5,
                         "watch_fraction": {"dist": "table", "values": [0.3, 1.0]}},
             "network": {"cdn_latency_ms": 30}, "tracker": {"interval_s": 10}, "report": {"timeseries_s": 1}}
    series = {}
    for t in ("1", "2"):
        _, rows, out = run_scenario("small-%s" % t, small, "--threads", t)
        series[t] = open(os.path.join(out, "timeseries.csv"), "rb").read()
        check(all(float(r["cdn_mbps"]) >= 0 and float(r["p2p_mbps"]) >= 0 for r in rows), "no interval below 0")
    eq(series["1"], series["2"], "the sampled series is byte-identical on 1 and 2 threads")
    # more threads than videos: one world per video (it fell back to a single one)
    _, _, out = run_scenario("small-3", small, "--threads", "3")
    eq(json.load(open(os.path.join(out, "run.json")))["threads"], 2, "two videos, two worlds")
    for bad in ("0", "9", "x", "-1"):
        p = sim("run", path, "--out", outs["1"], "--threads", bad, expect=2)
        check(len(p.stderr.decode().strip().splitlines()) == 1, "--threads %s: one line on stderr" % bad)


def test_outputs_read_well(s):
    d = os.path.join(compare("surplus")["dir"], "hybrid")
    summ = json.load(open(os.path.join(d, "summary.json")))
    for k in ("viewers", "offload", "offload_bound", "bytes_cdn", "bytes_p2p", "cdn_peak_mbps", "cdn_cost",
              "rebuffer_ratio", "stalls_per_viewer_hour", "mean_bitrate_kbps", "rung_switches"):
        check(k in summ, "summary has %s" % k)
    check(set(summ["startup_ms"]) >= {"p50", "p95", "p99"}, "start-up quantiles")
    eq(round(summ["cdn_cost"], 6), round(summ["bytes_cdn"] / 1e9 * 0.02, 6), "CDN cost at $0.02/GB")
    rows = list(csv.DictReader(open(os.path.join(d, "timeseries.csv"))))
    check(len(rows) > 10, "a time series")
    check(max(int(r["watching"]) for r in rows) >= 10, "the series counts the viewers watching")
    check(any(int(r["seeding"]) > 0 for r in rows), "and those seeding after watching")
    stalls = [int(r["stalls"]) for r in rows]
    eq(stalls, sorted(stalls), "stalls are cumulative")
    last = rows[-1]
    check(abs(float(last["offload_cumulative"]) - summ["offload"]) < 0.01, "the series ends at the summary's offload")
    vrows = list(csv.DictReader(open(os.path.join(d, "viewers.csv"))))
    eq(len(vrows), summ["viewers"], "viewers.csv: a row per viewer")
    eq(sum(int(r["bytes_p2p"]) for r in vrows), summ["bytes_p2p"], "viewers.csv: the P2P bytes add up")
    eq(sum(int(r["bytes_cdn"]) for r in vrows), summ["bytes_cdn"], "viewers.csv: the CDN bytes add up")
    eq(sum(int(r["stalls"]) for r in vrows), summ["stalls"], "viewers.csv: the stalls add up")
    played = sum(float(r["played_s"]) for r in vrows)
    check(abs(sum(float(r["bitrate_kbps"]) * float(r["played_s"]) for r in vrows) / played
              - summ["mean_bitrate_kbps"]) < 1, "viewers.csv: the bitrate, weighted by time played, is the summary's")
    eq([int(r["arrival"]) for r in vrows], list(range(len(vrows))), "viewers.csv: in arrival order")
    sc = json.load(open(os.path.join(SCEN, "test-surplus.json")))
    ups = [float(r["up_kbps"]) for r in vrows]
    check(min(ups) >= sc["viewers"]["up_kbps"]["min"] - 1 and max(ups) <= sc["viewers"]["up_kbps"]["max"] + 1,
          "viewers.csv: uplinks drawn from the scenario's range")
    # without seeders every upload is a viewer's: the rows' uploads add up too, those made after a
    # viewer left included (flows it was still sending on)
    sc["seeders"] = {"per_video": 0}
    sc["duration_s"] = 150
    ns, _, nsdir = run_scenario("no-seeders", sc)
    nrows = list(csv.DictReader(open(os.path.join(nsdir, "viewers.csv"))))
    eq(sum(int(r["bytes_up"]) for r in nrows), ns["bytes_up"], "viewers.csv: the uploads add up without seeders")
    for svg in ("offload.svg", "startup_cdf.svg", "swarm.svg"):
        root = ET.parse(os.path.join(d, svg)).getroot()
        check(root.tag.endswith("svg"), svg + " is SVG")
        check(len([e for e in root.iter() if e.tag.endswith("polyline")]) >= 1, svg + " has a plotted line")
    # a long series and many viewers: the plots keep at most 1200 points a line (about two per pixel),
    # the CDF still ends at the slowest start-up, the time axis still ends at the run's end
    lsc = {"duration_s": 2500, "mode": "cdn-only", "media": {"ladder_kbps": [500], "segment_s": 2},
           "catalog": {"duration_s": 10}, "arrivals": {"kind": "poisson", "rate_per_s": 1},
           "viewers": {"watch_fraction": 0.4}, "report": {"timeseries_s": 1}}
    lsum, lrows, ldir = run_scenario("long-plot", lsc)
    check(len(lrows) > 2400 and lsum["viewers"] > 2000, "the long run has %d samples and %d viewers"
          % (len(lrows), lsum["viewers"]))

    def plot(svg):
        root = ET.parse(os.path.join(ldir, svg)).getroot()
        lines = [[tuple(map(float, p.split(","))) for p in e.get("points").split()]
                 for e in root.iter() if e.tag.endswith("polyline")]
        # the x axis' last tick (at the plot's right edge, x = 650) is its maximum: x = 70 + 580 * value / max
        xmax = [float(e.text) for e in root.iter() if e.tag.endswith("text") and e.get("x") == "650.0"
                and e.get("y") == "358.0"][0]
        return lines, lambda v: round(70 + 580 * v / xmax, 1)
    for svg in ("offload.svg", "startup_cdf.svg"):
        for pts in plot(svg)[0]:
            check(600 <= len(pts) <= 1201, "%s: %d points in a line" % (svg, len(pts)))
            xs = [x for x, _ in pts]
            eq(xs, sorted(xs), svg + ": points in order")
    off, at = plot("offload.svg")
    eq(off[0][-1][0], at(float(lrows[-1]["t_s"])), "offload.svg: the merged series ends at the last sample")
    cdf, at = plot("startup_cdf.svg")
    slowest = max(float(r["startup_ms"]) for r in csv.DictReader(open(os.path.join(ldir, "viewers.csv")))
                  if r["started"] == "1")
    check(abs(cdf[0][-1][0] - at(slowest)) <= 0.2 and cdf[0][-1][1] == 40.0,  # viewers.csv rounds the ms
          "startup_cdf.svg: the CDF ends at the slowest start-up, at fraction 1: %s, %s" % (cdf[0][-1], at(slowest)))


def test_the_tracker_load_is_reported(s):
    # summary.json's tracker block: every announce counted, a peer search only for watchers that have a
    # link free; a viewer whose max_neighbours links are all taken asks for no peers (docs/sim.md)
    sc = json.load(open(os.path.join(SCEN, "test-surplus.json")))
    got = {}
    for nb in (3, 256):
        sc["tracker"]["max_neighbours"] = nb
        path = os.path.join(S.tmp, "tracker-%d.json" % nb)
        json.dump(sc, open(path, "w"))
        out = os.path.join(S.tmp, "tracker-%d" % nb)
        sim("run", path, "--out", out, "--quiet")
        got[nb] = json.load(open(os.path.join(out, "summary.json")))
    for nb, summ in got.items():
        t = summ["tracker"]
        print("# max_neighbours %d: %r, offload %.3f" % (nb, t, summ["offload"]))
        check(t["announces"] >= summ["viewers"], "max_neighbours %d: every viewer announced at least once" % nb)
        check(t["peer_lists"] + t["numwant_0"] <= t["announces"], "max_neighbours %d: searches and numwant 0 "
              "are announces" % nb)
        check(abs(t["announces_per_s"] * summ["simulated_s"] - t["announces"]) < 1e-6 * t["announces"],
              "announces per second over the simulated time")
    eq(got[256]["tracker"]["numwant_0"], 0, "with 256 links a viewer never has them all taken")
    check(got[3]["tracker"]["numwant_0"] > 0, "with 3 links a viewer often has them all taken")
    check(got[3]["tracker"]["peer_lists"] < got[256]["tracker"]["peer_lists"], "and the tracker searches less")
    cdn = compare("surplus")["cdn-only"]
    eq(cdn["tracker"]["announces"], 0, "CDN-only viewers do not announce")


def test_the_tracker_prefers_peers_of_the_viewers_region(s):
    # each simulated viewer is on a network of its own, as real viewers nearly always are: with the
    # 10.x.y.z addresses of before, every 256 viewers in a row shared a /24, which the tracker ranks above
    # a shared region, so regions did not matter (35% of the links within a region here, what chance gives)
    sc = json.load(open(os.path.join(SCEN, "test-surplus.json")))
    sc["viewers"]["regions"] = {"eu": 0.4, "us": 0.35, "asia": 0.25}
    sc["network"]["latency_ms"] = {"default": 150, "eu-eu": 20, "us-us": 20, "asia-asia": 20}
    summ, _, _ = run_scenario("regions", sc)
    t = summ["tracker"]
    share = t["links_in_region"] / t["links"]
    chance = 0.4 ** 2 + 0.35 ** 2 + 0.25 ** 2
    print("# links %d, within a region %.1f%% (chance %.1f%%)" % (t["links"], 100 * share, 100 * chance))
    check(t["links"] > summ["viewers"] and share > chance + 0.1, "links within a region: %r" % t)


def test_bad_scenarios_are_refused_with_one_line(s):
    bad = {"syntax": "{", "unknown": '{"nope": 1}', "range": '{"duration_s": -5}',
           "dist": '{"viewers": {"up_kbps": {"dist": "zipf"}}}', "ladder": '{"media": {"ladder_kbps": [2000, 400]}}',
           "type": '{"catalog": {"videos": "ten"}}',
           "other-kind": '{"arrivals": {"kind": "list", "times_s": [0, 1], "rate_per_s": 5}}',
           "bool": '{"engine": {"prefer_held_rung": 1}}',
           # windows of 0 fetch nothing: no viewer would start (the summary read like a clean run)
           "no-startup": '{"engine": {"startup_cdn_s": 0}}', "no-prefetch": '{"engine": {"prefetch_s": 0}}',
           # found by review: each was taken silently, or read as something else
           "far-arrival": '{"arrivals": {"kind": "list", "times_s": [1e20]}}',
           "inf-weights": '{"viewers": {"up_kbps": {"dist": "table", "values": [1000, 2000], "weights": [1e308, 1e308]}}}',
           "inf-regions": '{"viewers": {"regions": {"a": 1e308, "b": 1e308}}}',
           "min-over-max": '{"viewers": {"up_kbps": {"dist": "lognormal", "median": 1000, "sigma": 1, "min": 5000, "max": 10}}}',
           "long-name": '{"name": "' + "\u00e9" * 32 + '"}',
           # 1000 seeders on each of 1000 videos announcing every second for a month: a run of years
           "seeder-years": '{"duration_s": 2592000, "catalog": {"videos": 1000}, "seeders": {"per_video": 1000}, '
                           '"tracker": {"interval_s": 1}}',
           # and 50 000 viewers seeding a day each after watching, at 1 s: 4.3 billion announces
           "seeding-viewers": '{"duration_s": 2592000, "arrivals": {"kind": "flash", "count": 50000}, '
                              '"viewers": {"seed_after_s": 86400}, "tracker": {"interval_s": 1}}',
           # names and text from the file are printed escaped: a newline or an escape sequence made 2-3 lines
           "newline-key": '{"foo\\nbar\\nbaz": 1}', "escape-key": '{"arrivals": {"kind": "list", "times_s": [1], '
                                                            '"x\\u001b[2J\\nkey": 1}}',
           "newline-region": '{"viewers": {"regions": {"a\\nb": -1}}}',
           "newline-near": '{"a": "\\u12\n34"}'}
    for name, text in bad.items():
        path = os.path.join(S.tmp, "bad-%s.json" % name)
        open(path, "w").write(text)
        p = sim("run", path, "--out", os.path.join(S.tmp, "bad-out"), expect=1)
        lines = p.stderr.decode().strip().splitlines()
        check(len(lines) == 1 and lines[0].startswith("peercdn-sim: "), "%s: one line: %r" % (name, lines))
        check("\x1b" not in lines[0], "%s: no control character: %r" % (name, lines))
    # a FIFO or a directory as the scenario: refused at once (a FIFO hung the run)
    fifo = os.path.join(S.tmp, "scenario.fifo")
    os.mkfifo(fifo)
    for path in (fifo, S.tmp):
        p = sim("run", path, "--out", os.path.join(S.tmp, "bad-out"), expect=1)
        eq(p.stderr.decode().strip(), "peercdn-sim: %s: not a regular file" % path, "refused")
    # a video a hair past a multiple of the segment (4.2 / 0.7 = 6.000000000000001) is six segments, not six
    # and one of 0 µs that the engine refuses (it failed as "out of memory")
    path = os.path.join(S.tmp, "hair.json")
    open(path, "w").write('{"duration_s": 20, "media": {"segment_s": 0.7}, "catalog": {"duration_s": 4.2}}')
    sim("run", path, "--out", os.path.join(S.tmp, "hair-out"), "--quiet")
    # nor does a rest of 0.99999999 µs, from a length a microsecond past one (10.500001 / 0.7): counted in
    # whole microseconds; before, "the simulation failed: invalid argument". And a ladder of 730.0 is 730
    for seg, length in ((0.7, 10.500001), (0.9, 33.300001), (1.1, 69.300001)):
        open(path, "w").write('{"duration_s": 30, "media": {"segment_s": %s, "ladder_kbps": [730.0, 2000]}, '
                              '"catalog": {"duration_s": %s}, "arrivals": {"rate_per_s": 1}}' % (seg, length))
        sim("run", path, "--out", os.path.join(S.tmp, "hair-out"), "--quiet")
    p = sim("run", path, "--out", os.path.join(S.tmp, "d" * 3900), expect=2)
    p = sim("run", os.path.join(S.tmp, "missing.json"), "--out", os.path.join(S.tmp, "x"), expect=1)
    p = sim("run", expect=2)
    p = sim("bogus", expect=2)
    p = sim("run", os.path.join(SCEN, "test-surplus.json"), expect=2)  # no --out
    p = sim("--help", expect=0)
    check(b"peercdn-sim run" in p.stdout, "--help")


def test_operator_scenarios_parse_and_run_briefly(s):
    for f in sorted(os.listdir(SCEN)):
        if f.startswith("test-") or not f.endswith(".json"):
            continue
        d = json.load(open(os.path.join(SCEN, f)))
        d["duration_s"] = 30  # a short slice of each: they parse and run
        if d.get("arrivals", {}).get("kind") == "flash":
            d["arrivals"]["count"] = min(d["arrivals"].get("count", 100), 200)
        path = os.path.join(S.tmp, "short-" + f)
        json.dump(d, open(path, "w"))
        sim("run", path, "--out", os.path.join(S.tmp, "short-" + f[:-5]), "--quiet")


def run_scenario(name, sc, *extra):
    path = os.path.join(S.tmp, name + ".json")
    json.dump(sc, open(path, "w"))
    out = os.path.join(S.tmp, name)
    sim("run", path, "--out", out, "--quiet", *extra)
    return (json.load(open(os.path.join(out, "summary.json"))),
            list(csv.DictReader(open(os.path.join(out, "timeseries.csv")))), out)


def test_accounting_is_exact_on_hand_checkable_runs(s):
    # two viewers of a 100 s video, 30 s apart, who leave without seeding: 2 started, 2 stopped and the
    # periodic announces in between (every 10 s while present: 0..100 and 30..130)
    sc = {"duration_s": 150, "media": {"ladder_kbps": [1000], "segment_s": 4}, "catalog": {"duration_s": 100},
          "arrivals": {"kind": "list", "times_s": [0, 30]},
          "viewers": {"up_kbps": 5000, "down_kbps": 8000, "seed_after_s": 0},
          "network": {"cdn_latency_ms": 50}, "tracker": {"interval_s": 10}, "report": {"timeseries_s": 5}}
    summ, rows, _ = run_scenario("two", sc)
    t = summ["tracker"]
    eq(t["announces"], 2 + 20 + 2, "started, periodic and stopped announces are all counted")
    eq(t["peer_lists"], 22, "a stopped announce asks for no peers")
    watching = [int(r["watching"]) for r in rows]
    check(all(0 <= x <= 2 for x in watching), "the watching column stays within 0..2: %r" % watching)
    eq(watching[-1], 0, "nobody is watching at the end")
    eq([float(r["t_s"]) for r in rows], sorted(set(float(r["t_s"]) for r in rows)), "one row per sample time")
    # a sampling period is a report setting: it must not change what the viewers do
    sc["report"]["timeseries_s"] = 7
    summ7, _, _ = run_scenario("two-7", sc)
    for k in ("bytes_cdn", "bytes_p2p", "rebuffer_ratio", "startup_ms", "mean_bitrate_kbps", "stalls"):
        eq(summ7[k], summ[k], "%s does not depend on report.timeseries_s" % k)
    # an uploader departing mid-transfer (A seeds 10 s after its 40 s, B arrived at 44 s and is fetching
    # from it): the bytes that reached B are reported to B's engine before the flow ends, so B fetches
    # only the rest: both received the one rung's 10 segments once, the same bytes (B had 18 288 more)
    sc = {"duration_s": 120, "media": {"ladder_kbps": [1000], "segment_s": 4}, "catalog": {"duration_s": 40},
          "arrivals": {"kind": "list", "times_s": [0, 44]},
          "viewers": {"up_kbps": 1500, "down_kbps": 50000, "seed_after_s": 10},
          "network": {"latency_ms": 40, "cdn_latency_ms": 30}}
    summ, _, out = run_scenario("uploader-leaves", sc)
    vs = list(csv.DictReader(open(os.path.join(out, "viewers.csv"))))
    got = [int(v["bytes_cdn"]) + int(v["bytes_p2p"]) for v in vs]
    check(int(vs[1]["bytes_p2p"]) > 0 and float(vs[0]["leave_s"]) < 60, "B fetched from A, who left: %r" % vs)
    eq(got[1], got[0], "B received what A did, nothing twice")


def test_the_cdn_peak_is_over_whole_intervals(s):
    # ten viewers arrive 0.1 s before the end of the 120 s a 10 s time series covers; with the run 0.05 s
    # longer, the last interval is 0.05 s long, and its bytes over 0.05 s read as a peak of 498 Mbit/s
    for d in (120, 120.05):
        sc = {"duration_s": d, "arrivals": {"kind": "list", "times_s": [119.9] * 10}, "report": {"timeseries_s": 10}}
        summ, rows, _ = run_scenario("peak-%s" % d, sc)
        most = summ["bytes_cdn"] * 8 / 10 / 1e6  # all of it within one interval
        check(0 < summ["cdn_peak_mbps"] <= most + 1e-6, "duration %s: peak %s, at most %s" % (d, summ["cdn_peak_mbps"], most))


def test_a_stall_under_way_at_the_end_counts(s):
    # p2p-only with no seeders: after the CDN start-up nobody holds anything further, so every viewer
    # stalls about 8 s into the content and is still stalled when the run ends
    sc = {"duration_s": 120, "mode": "p2p-only", "media": {"ladder_kbps": [1000], "segment_s": 4},
          "catalog": {"duration_s": 600}, "arrivals": {"kind": "list", "times_s": [0, 5, 10]},
          "viewers": {"up_kbps": 5000, "down_kbps": 20000}}
    summ, _, _ = run_scenario("stuck", sc)
    check(summ["stalls"] >= 3, "every viewer stalled (%d stalls)" % summ["stalls"])
    # played about 8 s each out of some 110-120 s present: the stall is nearly all of the viewing time
    check(summ["rebuffer_ratio"] > 0.8, "the stall still under way counts: rebuffer %.3f" % summ["rebuffer_ratio"])


def test_a_cdn_capacity_is_never_exceeded(s):
    # 20 viewers of a 1 Mbit/s stream behind a 1 Mbit/s CDN: the CDN is the bottleneck throughout
    sc = {"duration_s": 60, "mode": "cdn-only", "media": {"ladder_kbps": [1000]}, "catalog": {"duration_s": 150},
          "arrivals": {"kind": "flash", "count": 20, "at_s": 0, "over_s": 20}, "viewers": {"down_kbps": 20000},
          "network": {"cdn_latency_ms": 50, "cdn_capacity_mbps": 1}, "report": {"timeseries_s": 5}}
    summ, rows, _ = run_scenario("cap", sc)
    check(summ["bytes_cdn"] <= 1e6 / 8 * 60 * 1.0001, "at most 1 Mbit/s over the run: %d bytes" % summ["bytes_cdn"])
    check(summ["bytes_cdn"] >= 1e6 / 8 * 60 * 0.9, "and the capacity is used: %d bytes" % summ["bytes_cdn"])
    check(max(float(r["cdn_mbps"]) for r in rows) <= 1.0001, "no interval above 1 Mbit/s")
    check(summ["cdn_peak_mbps"] <= 1.0001, "peak %.3f Mbit/s" % summ["cdn_peak_mbps"])
    # a capacity of 40 bit/s (5 B/s) over 20 s shared by a dozen flows: each gets less than a byte a
    # second, and the CDN sends at most 100 bytes (rates floored at 1 B/s sent 174)
    tiny = {"duration_s": 20, "network": {"cdn_capacity_mbps": 0.00004}, "arrivals": {"kind": "flash", "count": 3}}
    summ, _, _ = run_scenario("tinycap", tiny)
    check(summ["bytes_cdn"] <= 5 * 20, "at most 5 B/s over 20 s: %d bytes" % summ["bytes_cdn"])


def test_a_flow_shares_its_links_only_once_started(s):
    # one CDN-only viewer, 1 Mbit/s downlink, CDN 3 s away. Segment 2 (248 818 bytes) is asked for at
    # 8.104 s and segment 3 at 9.104 s; their first bytes come at 11.104 and 12.104. Alone on the link for
    # a second, segment 2 gets 125 000 bytes, then half of it: the rest (123 818) takes 1.981 s, so it is
    # ready at 14.085 s. (Counted from its request, segment 3 halved the link from 9.104 s on: 15.085.)
    sc = {"name": "one", "seed": 1, "duration_s": 60, "mode": "cdn-only", "media": {"ladder_kbps": [500], "segment_s": 4},
          "catalog": {"videos": 1, "duration_s": 20}, "arrivals": {"kind": "list", "times_s": [1]},
          "viewers": {"up_kbps": 1000, "down_kbps": 1000}, "network": {"latency_ms": 40, "cdn_latency_ms": 3000}}
    path = os.path.join(S.tmp, "latency.json")
    json.dump(sc, open(path, "w"))
    p = subprocess.run([S.bin("peercdn-sim"), "run", path, "--out", os.path.join(S.tmp, "latency"), "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600,
                       env=dict(os.environ, PEERCDN_SIM_TRACE="0"))
    eq(p.returncode, 0, "exit status")
    ready = {}
    for line in p.stderr.decode().splitlines():
        f = line.split()
        if len(f) > 2 and f[2] == "READY":
            ready[int([x for x in f if x.startswith("seg=")][0][4:])] = float(f[0])
    check(abs(ready.get(2, 0) - 14.085) < 0.002, "segment 2 ready at 14.085 s: %r" % ready)
    check(abs(ready.get(0, 0) - 8.104) < 0.002, "segment 0 at 8.104 s, as before: %r" % ready)


def test_edge_cases_of_seeks_seeders_and_p2p_only(s):
    # a 4.5 s video where every viewer seeks: a seek that lands at the end still ends playback
    short = {"duration_s": 60, "media": {"ladder_kbps": [1000], "segment_s": 4}, "catalog": {"duration_s": 4.5},
             "arrivals": {"kind": "list", "times_s": [0, 1, 2, 3, 4, 5, 6, 7]},
             "viewers": {"up_kbps": 2000, "down_kbps": 20000, "seek_probability": 1}}
    summ, rows, _ = run_scenario("seek-end", short)
    eq(int(rows[-1]["watching"]), 0, "every viewer finished, seeks to the end included")
    eq(summ["seeks"], 8, "every seek is counted")
    # one seek on a link barely above the bitrate: the wait after it is reported, and it is no stall
    sk = {"duration_s": 200, "media": {"ladder_kbps": [1000], "segment_s": 4}, "catalog": {"duration_s": 100},
          "arrivals": {"kind": "list", "times_s": [0]},
          "viewers": {"up_kbps": 2000, "down_kbps": 1200, "seek_probability": 1}}
    summ, _, _ = run_scenario("seek-wait", sk, "--seed", "1")
    check(summ["seek_wait_ms"]["p50"] > 1000, "the wait after a seek is reported: %r" % summ["seek_wait_ms"])
    # P2P-only with one seeder at 0.8x the bitrate: the viewer stalls now and then but is not refused
    # for good once its player stalled (its requests carry no deadline the seeder could not meet)
    p2p = {"duration_s": 100, "mode": "p2p-only", "media": {"ladder_kbps": [1000], "segment_s": 4},
           "catalog": {"duration_s": 40}, "arrivals": {"kind": "list", "times_s": [5]},
           "viewers": {"up_kbps": 8000, "down_kbps": 20000}, "seeders": {"per_video": 1, "up_kbps": 800}}
    summ, _, _ = run_scenario("p2p-slow-seeder", p2p)
    check(0 < summ["rebuffer_ratio"] < 0.3, "a slow seeder makes stalls, not a frozen viewer: %.3f" %
          summ["rebuffer_ratio"])
    # one viewer of a 40 s video and a 100 kbit/s seeder: peers could carry at most what the seeder
    # uploads while the viewer is there (12.5 kB/s for about 40 s of 5.2 MB), so the bound is about 10%
    bs = {"duration_s": 600, "media": {"ladder_kbps": [1000], "segment_s": 4}, "catalog": {"duration_s": 40},
          "arrivals": {"kind": "list", "times_s": [5]}, "viewers": {"up_kbps": 2000, "down_kbps": 20000},
          "seeders": {"per_video": 1, "up_kbps": 100}}
    summ, _, _ = run_scenario("bound-seeder", bs)
    b = summ["bound"]
    check(abs(b["usable_upload_bytes"] - 12500 * (summ["viewer_hours"] * 3600 + summ["startup_ms"]["p50"] / 1000))
          < 12500 * 1.0, "usable upload is the seeder's while the viewer is there: %r" % b)
    check(0.08 < summ["offload_bound"] < 0.11, "the bound follows: %.3f" % summ["offload_bound"])
    # downlinks below the lowest rung: every viewer stalls, but a hybrid one no more than a CDN-only one
    # (a prefetch from peers must not slow the segment due next on a link with nothing to spare)
    low = {"seed": 2, "duration_s": 300, "media": {"ladder_kbps": [400, 1000, 2500]},
           "catalog": {"duration_s": 200}, "arrivals": {"rate_per_s": 0.3},
           "viewers": {"up_kbps": {"dist": "uniform", "min": 500, "max": 3000}, "down_kbps": 300,
                       "seek_probability": 0.3, "seed_after_s": 20,
                       "watch_fraction": {"dist": "table", "values": [0.3, 1.0]}}}
    path = os.path.join(S.tmp, "low.json")
    json.dump(low, open(path, "w"))
    out = os.path.join(S.tmp, "low")
    sim("run", path, "--out", out, "--compare", "--quiet")
    h, c = (json.load(open(os.path.join(out, m, "summary.json"))) for m in ("hybrid", "cdn-only"))
    check(c["rebuffer_ratio"] > 0.1, "the link is too slow for CDN-only too: %.3f" % c["rebuffer_ratio"])
    check(h["rebuffer_ratio"] <= c["rebuffer_ratio"] + 0.001, "hybrid rebuffers %.3f, CDN-only %.3f" % (
        h["rebuffer_ratio"], c["rebuffer_ratio"]))
    # max_viewers counts arrivals in every mode, whatever the seeders
    mv = {"duration_s": 120, "media": {"ladder_kbps": [1000], "segment_s": 4}, "catalog": {"duration_s": 40},
          "arrivals": {"rate_per_s": 1, "max_viewers": 10}, "viewers": {"up_kbps": 2000, "down_kbps": 20000},
          "seeders": {"per_video": 3, "up_kbps": 3000}}
    path = os.path.join(S.tmp, "mv.json")
    json.dump(mv, open(path, "w"))
    out = os.path.join(S.tmp, "mv")
    sim("run", path, "--out", out, "--compare", "--quiet")
    for m in ("hybrid", "cdn-only", "p2p-only"):
        eq(json.load(open(os.path.join(out, m, "summary.json")))["viewers"], 10, "%s: 10 viewers" % m)


def test_the_swarm_preference_trades_bitrate_for_offload(s):
    # ten minutes of the mobile-heavy audience (weak uplinks): the ABR's preference for a rung the swarm
    # holds is on by default; off, viewers climb to what their throughput sustains, and pay in CDN bytes.
    # (Five minutes, mostly start-ups, left a gap of 1.8-2.9% that engine changes elsewhere moved across
    # the 2% line; over ten it is 4.5-4.7%, over the whole half hour 7.4%.)
    sc = json.load(open(os.path.join(SCEN, "mobile-heavy.json")))
    sc["duration_s"] = 600
    on, _, _ = run_scenario("prefer-on", sc)
    sc["engine"] = {"prefer_held_rung": False}
    off, _, _ = run_scenario("prefer-off", sc)
    eq(on["viewers"], off["viewers"], "the same viewers")
    check(off["mean_bitrate_kbps"] > on["mean_bitrate_kbps"] * 1.02,
          "bitrate %.0f > %.0f kbit/s" % (off["mean_bitrate_kbps"], on["mean_bitrate_kbps"]))
    check(off["bytes_cdn"] > on["bytes_cdn"], "CDN bytes %d > %d" % (off["bytes_cdn"], on["bytes_cdn"]))


def test_a_premiere_in_step_still_offloads(s):
    # 100 viewers pressing play at the same instant: in step, none ever holds a segment before the others
    # need it. Without volunteers (one viewer in each group fetching a segment early from the CDN for the
    # others: docs/engine.md) every segment came from the CDN for everyone, 0.0% offload against a bound of
    # 99%; with independent draws 16 s ahead 70-75% over seeds 1-6; with the group's lowest draw 24 s
    # ahead 91.3-93.9%, with no stall and no slower start than the CDN alone.
    r = compare("premiere")
    h, c = r["hybrid"], r["cdn-only"]
    check(h["offload"] >= 0.9 * h["offload_bound"], "offload %.3f reaches 90%% of the bound %.3f" % (
        h["offload"], h["offload_bound"]))
    check(h["rebuffer_ratio"] <= c["rebuffer_ratio"] + 0.001 and h["stalls"] == 0, "no stall: %r" % h["stalls"])
    check(h["startup_ms"]["p95"] <= c["startup_ms"]["p95"] * 1.05, "start-up p95 %.0f vs CDN-only %.0f" % (
        h["startup_ms"]["p95"], c["startup_ms"]["p95"]))
    sc = json.load(open(os.path.join(SCEN, "test-premiere.json")))
    sc["engine"] = {"volunteer_s": 0}
    off, _, _ = run_scenario("premiere-no-volunteers", sc)
    check(off["offload"] < 0.05, "without volunteers, hardly any: %.3f" % off["offload"])


def test_a_run_replaces_the_other_kind_of_run_in_its_directory(s):
    out = os.path.join(S.tmp, "one-dir")
    scen = os.path.join(SCEN, "test-surplus.json")
    single = {"summary.json", "run.json", "timeseries.csv", "viewers.csv", "offload.svg", "startup_cdf.svg",
              "swarm.svg"}
    sim("run", scen, "--out", out, "--quiet")
    check(single <= set(os.listdir(out)), "a single run's outputs")
    # a file of the operator's own is never removed
    open(os.path.join(out, "notes.txt"), "w").write("mine")
    sim("run", scen, "--out", out, "--quiet", "--compare")
    eq(set(os.listdir(out)), {"compare.json", "hybrid", "cdn-only", "p2p-only", "notes.txt"},
       "--compare left no single run's summary beside compare.json")
    sim("run", scen, "--out", out, "--quiet")
    check("compare.json" not in os.listdir(out) and single <= set(os.listdir(out)), "and the other way round")
    # a --compare that fails half way leaves no earlier compare.json to be read as its own
    failed = os.path.join(S.tmp, "failed-compare")
    sim("run", scen, "--out", failed, "--quiet", "--compare")
    os.unlink(os.path.join(failed, "p2p-only", "timeseries.csv"))
    os.mkdir(os.path.join(failed, "p2p-only", "timeseries.csv"))  # the third mode cannot write its outputs
    sim("run", scen, "--out", failed, "--quiet", "--compare", "--seed", "2", expect=1)
    check("compare.json" not in os.listdir(failed) and "summary.json" not in os.listdir(os.path.join(failed, "p2p-only")),
          "nothing of the earlier run looks like this one's: %r" % os.listdir(failed))
    # a summary.json that no run of ours wrote stays
    other = os.path.join(S.tmp, "not-ours")
    os.makedirs(other)
    open(os.path.join(other, "summary.json"), "w").write("{}")
    sim("run", scen, "--out", other, "--quiet", "--compare")
    eq(open(os.path.join(other, "summary.json")).read(), "{}", "not ours: kept")
    # an emulation is never overwritten, also one kept as one of --compare's runs
    for sub in ("", "cdn-only"):
        em = os.path.join(S.tmp, "emulated" + sub)
        os.makedirs(os.path.join(em, sub), exist_ok=True)
        open(os.path.join(em, sub, "run.json"), "w").write('{"kind": "emulation"}')
        p = sim("run", scen, "--out", em, "--quiet", "--compare", expect=1)
        check("holds an emulation" in p.stderr.decode(), "refused: %r" % p.stderr)
        eq(json.load(open(os.path.join(em, sub, "run.json")))["kind"], "emulation", "kept")


def test_a_run_too_big_for_the_memory_available_fails_cleanly(s):
    # the data is capped at 85% of MemAvailable (read from PEERCDN_SIM_MEMINFO here: 100 MiB),
    # so a run needing more (300 000 viewers: about 160 MB) ends with one line and exit 1, where a cap at
    # the physical memory let it run (and a bigger one be killed by the kernel's OOM killer)
    if SANITIZED:
        return  # no cap under the sanitizers: their shadow memory needs the address space
    sc = {"duration_s": 100, "mode": "cdn-only", "catalog": {"videos": 64, "duration_s": 8},
          "arrivals": {"kind": "flash", "count": 300000, "over_s": 100}, "viewers": {"watch_fraction": 0}}
    path = os.path.join(S.tmp, "toobig.json")
    json.dump(sc, open(path, "w"))
    meminfo = os.path.join(S.tmp, "meminfo")
    open(meminfo, "w").write("MemTotal:       1048576 kB\nMemFree:         102400 kB\nMemAvailable:    102400 kB\n")
    env = dict(os.environ, PEERCDN_SIM_MEMINFO=meminfo)
    p = subprocess.run([S.bin("peercdn-sim"), "run", path, "--out", os.path.join(S.tmp, "toobig"), "--quiet",
                        "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600, env=env)
    err = p.stderr.decode()
    eq(p.returncode, 1, "exit status: %s" % err[-300:])
    check(len(err.strip().splitlines()) == 1 and "out of memory (this scenario needs more than 85% of the memory "
          "available, 0.1 GiB)" in err, "one line naming the cap: %r" % err)
    # what threads reserve and do not use does not count: a run of 3 000 viewers fits in the cap on 8 threads
    # as on 1 (the address space was capped, and each thread's malloc arena and 8 MiB stack counted in full:
    # 8 threads needed 600 MB where 1 needed 150; found by review)
    sc["arrivals"]["count"] = 3000
    json.dump(sc, open(path, "w"))
    open(meminfo, "w").write("MemAvailable:    153600 kB\n")
    for t in ("1", "8"):
        p = subprocess.run([S.bin("peercdn-sim"), "run", path, "--out", os.path.join(S.tmp, "fits-" + t), "--quiet",
                            "--threads", t], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600, env=env)
        eq(p.returncode, 0, "%s threads within 150 MiB: %s" % (t, p.stderr.decode()[-300:]))
    sc["arrivals"]["count"] = 300000
    # unreadable: the physical memory, as before (a small run fits)
    env["PEERCDN_SIM_MEMINFO"] = os.path.join(S.tmp, "no-such-meminfo")
    sc["arrivals"]["count"] = 100
    json.dump(sc, open(path, "w"))
    p = subprocess.run([S.bin("peercdn-sim"), "run", path, "--out", os.path.join(S.tmp, "toobig"), "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600, env=env)
    eq(p.returncode, 0, "a small run without MemAvailable: %s" % p.stderr.decode()[-300:])


def test_memory_does_not_grow_with_threads(s):
    # the worlds share one viewer array (each uses its own viewers' entries): 200 000 viewers on 8 threads
    # take about what they take on 1 (each world had an array for every viewer: 3x at 8 threads)
    sc = {"duration_s": 100, "mode": "cdn-only", "catalog": {"videos": 64, "duration_s": 8},
          "arrivals": {"kind": "flash", "count": 200000, "over_s": 100}, "viewers": {"watch_fraction": 0}}
    peak, summ = {}, {}
    for t in ("1", "8"):
        _, _, out = run_scenario("mem-%s" % t, sc, "--threads", t)
        run = json.load(open(os.path.join(out, "run.json")))
        eq(run["threads"], int(t), "split %s ways" % t)
        peak[t] = run["peak_rss_mib"]
        summ[t] = open(os.path.join(out, "summary.json"), "rb").read()
    eq(summ["1"], summ["8"], "the same summary on 1 and 8 threads")
    check(peak["8"] < 1.3 * peak["1"], "peak RSS %.0f MiB on 8 threads, %.0f on 1" % (peak["8"], peak["1"]))
    # the time series is one array for all the worlds: a month at 1 s (2.6 M samples) took 113 MB on one
    # thread and 846 MB on eight, each world keeping its own (found by review)
    sc = {"duration_s": 2592000, "catalog": {"videos": 8, "duration_s": 60}, "arrivals": {"kind": "flash", "count": 8},
          "report": {"timeseries_s": 1}}
    series = {}
    path = os.path.join(S.tmp, "month.json")
    json.dump(sc, open(path, "w"))
    for t in ("1", "8"):
        out = os.path.join(S.tmp, "month-" + t)
        sim("run", path, "--out", out, "--quiet", "--threads", t)
        peak[t] = json.load(open(os.path.join(out, "run.json")))["peak_rss_mib"]
        series[t] = open(os.path.join(out, "timeseries.csv"), "rb").read()
    eq(series["1"], series["8"], "the same time series on 1 and 8 threads")
    check(peak["8"] < 1.3 * peak["1"], "a month's series: peak RSS %.0f MiB on 8 threads, %.0f on 1" % (peak["8"], peak["1"]))


S.run([test_surplus_offload_reaches_the_bound, test_deficit_offload_reaches_the_bound,
       test_hybrid_is_no_worse_than_cdn_only, test_p2p_only_stalls_where_hybrid_does_not, test_same_seed_same_summary,
       test_threads_do_not_change_the_results, test_outputs_read_well, test_the_tracker_load_is_reported,
       test_the_tracker_prefers_peers_of_the_viewers_region,
       test_bad_scenarios_are_refused_with_one_line, test_operator_scenarios_parse_and_run_briefly,
       test_accounting_is_exact_on_hand_checkable_runs, test_the_cdn_peak_is_over_whole_intervals,
       test_a_stall_under_way_at_the_end_counts,
       test_a_cdn_capacity_is_never_exceeded, test_a_flow_shares_its_links_only_once_started,
       test_edge_cases_of_seeks_seeders_and_p2p_only,
       test_the_swarm_preference_trades_bitrate_for_offload, test_a_premiere_in_step_still_offloads,
       test_a_run_replaces_the_other_kind_of_run_in_its_directory,
       test_a_run_too_big_for_the_memory_available_fails_cleanly, test_memory_does_not_grow_with_threads])
