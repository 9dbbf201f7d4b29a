#!/usr/bin/env python3
"""peercdn-sim emulate: a scenario run with the real tracker, origin and twelve peer processes (a network
namespace each when the test runs as root), against the simulator's prediction for the same scenario
(its ladder as the origin produced it): offload within 10 percentage points, and the same verdict on
stalls. Also: the outputs, the tracker agreeing with the peers' reports, `compare`, the loopback
fallback, and bad usage."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
from harness import Suite, check, eq  # noqa: E402

S = Suite("emulate")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCEN = os.path.join(ROOT, "sim", "scenarios")
CONTRACT = ("viewers", "offload", "offload_bound", "bytes_cdn", "bytes_p2p", "startup_ms", "rebuffer_ratio")


def sim(*args, expect=0, timeout=900):
    p = subprocess.run([S.bin("peercdn-sim")] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if expect is not None:
        eq(p.returncode, expect, "exit status of peercdn-sim %s: %s\n%s" % (
            " ".join(args), p.stderr.decode()[-1500:], p.stdout.decode()[-3000:]))
    return p


def load(d, name):
    with open(os.path.join(d, name)) as f:
        return json.load(f)


def test_emulation_agrees_with_the_simulators_prediction(s):
    out = os.path.join(S.tmp, "emu")
    # a second region nobody is drawn into (the region draw takes its own number, so the viewers are the
    # scenario's), with latencies that the emulated network cannot give as they are: each side of a link
    # delays by half its own region's, so a-b becomes the mean of a-a and b-b
    scen = json.load(open(os.path.join(SCEN, "test-emulate.json")))
    scen["viewers"]["regions"] = {"a": 1, "b": 1e-9}
    scen["network"]["latency_ms"] = {"a-a": 20, "b-b": 100, "a-b": 20}
    path = os.path.join(S.tmp, "test-emulate-regions.json")
    json.dump(scen, open(path, "w"))
    p = sim("emulate", path, "--out", out)
    text = p.stdout.decode()
    for line in text.splitlines()[-22:]:
        print("# " + line)
    emu = load(out, "summary.json")
    info = load(out, "emulation.json")
    print("# network: %s; notes: %s" % (info["network"], "; ".join(info["notes"])))
    for k in CONTRACT:
        check(k in emu, "summary.json has %s" % k)
    eq(emu["viewers"], 12, "twelve viewers emulated")
    eq(info["peers_failed"], 0, "every peer exited cleanly with a report")
    eq(load(out, "run.json")["kind"], "emulation", "run.json says it was an emulation")
    # each generated video carries an English subtitle track, which the origin published (and listed in
    # the p2p.json every peer read)
    for vid in [v["id"] for v in info["videos"]]:
        d = os.path.join(out, "emu", "origin", "media", vid)
        m = json.load(open(os.path.join(d, "p2p.json")))
        eq([t["language"] for t in m.get("subtitles", [])], ["en"], "video %s: its subtitle track" % vid)
        check(open(os.path.join(d, "s0", "all.vtt")).read().count("-->") >= 1, "video %s: cues" % vid)
    check(emu["offload"] <= emu["offload_bound"] + 0.01, "offload %.3f within the bound %.3f" % (
        emu["offload"], emu["offload_bound"]))
    check(emu["offload"] >= 0.5, "the swarm offloads (%.3f)" % emu["offload"])
    # the closing table names each viewer, and the totals line the CDN bytes and dollars saved
    check("CDN offload" in text and "$" in text and "per million" in text, "the closing line")
    eq(sum(1 for l in text.splitlines() if l.split()[:1] and l.split()[0].isdigit() and "%" in l), 12,
       "one table row per viewer")

    # what the tracker saw (peers announce their counters) equals what the peers reported
    reports = [json.load(open(os.path.join(out, "emu", "reports", f)))
               for f in sorted(os.listdir(os.path.join(out, "emu", "reports"))) if f.startswith("viewer-")]
    eq(len(reports), 12, "a report per viewer")
    total = info["tracker_stats"]["total"]
    eq(total["bytes_cdn"], sum(r["bytes_cdn"] for r in reports), "tracker and reports agree on CDN bytes")
    eq(total["bytes_p2p"], sum(r["bytes_p2p"] for r in reports), "tracker and reports agree on P2P bytes")
    eq(emu["bytes_p2p"], total["bytes_p2p"], "the summary's P2P bytes are the tracker's")
    for r in reports:
        eq(r["rejected_segments"], 0, "no segment failed verification")

    # the prediction: the simulator on the scenario as emulated (its ladder as the origin made it)
    eff = load(out, "scenario.json")
    eq(len(eff["media"]["ladder_kbps"]), 3, "three rungs measured")
    if info["latency_emulated"]:
        eq(eff["network"]["latency_ms"], {"a-a": 20, "a-b": 60, "b-b": 100}, "the latencies as emulated")
        check(any("latency between regions" in n and "a-b 20 ms" in n and "60 ms" in n for n in info["notes"]),
              "the cross-region latency is noted: %r" % info["notes"])
    else:
        eq(eff["network"]["latency_ms"], scen["network"]["latency_ms"], "latency not emulated: as given")
    pred_dir = os.path.join(S.tmp, "pred")
    sim("run", os.path.join(out, "scenario.json"), "--out", pred_dir, "--quiet")
    pred = load(pred_dir, "summary.json")
    print("# offload: emulation %.3f, simulation %.3f (bounds %.3f, %.3f); stalls %d vs %d; start-up p95 %.0f vs %.0f ms"
          % (emu["offload"], pred["offload"], emu["offload_bound"], pred["offload_bound"], emu["stalls"],
             pred["stalls"], emu["startup_ms"]["p95"], pred["startup_ms"]["p95"]))
    eq(pred["viewers"], emu["viewers"], "the simulation has the same viewers")
    check(abs(emu["offload"] - pred["offload"]) <= 0.10, "offload within 10 pp of the prediction (%.3f vs %.3f)" % (
        emu["offload"], pred["offload"]))
    eq(emu["stalls"] == 0, pred["stalls"] == 0, "emulation (%d stalls) and simulation (%d) agree on stalls" % (
        emu["stalls"], pred["stalls"]))
    check(abs(emu["rebuffer_ratio"] - pred["rebuffer_ratio"]) <= 0.005, "rebuffer ratios agree")

    # the same outputs as a simulation: series and plots an independent parser reads
    rows = list(csv.DictReader(open(os.path.join(out, "timeseries.csv"))))
    check(len(rows) >= 10, "a time series (%d rows)" % len(rows))
    check(max(int(r["watching"]) for r in rows) >= 3, "viewers overlap in the series")
    check(sum(float(r["p2p_mbps"]) for r in rows) > 0, "P2P traffic in the series")
    vrows = list(csv.DictReader(open(os.path.join(out, "viewers.csv"))))
    eq(len(vrows), emu["viewers"], "viewers.csv: a row per viewer")
    eq(sum(int(r["bytes_p2p"]) for r in vrows), emu["bytes_p2p"], "viewers.csv: the P2P bytes add up")
    eq(sum(int(r["bytes_cdn"]) for r in vrows), emu["bytes_cdn"], "viewers.csv: the CDN bytes add up")
    for svg in ("offload.svg", "startup_cdf.svg", "swarm.svg"):
        root = ET.parse(os.path.join(out, svg)).getroot()
        check(root.tag.endswith("svg"), svg)

    # compare prints both side by side
    c = sim("compare", pred_dir, out).stdout.decode()
    check("simulation" in c and "emulation" in c and "offload" in c, "compare names both runs:\n" + c)
    print("".join("# " + l + "\n" for l in c.splitlines()[:6]))


def test_loopback_fallback_says_so(s):
    d = json.load(open(os.path.join(SCEN, "test-emulate.json")))
    d["name"] = "loopback"
    d["catalog"]["duration_s"] = 12
    d["arrivals"] = {"kind": "list", "times_s": [0, 2, 4]}
    d["viewers"]["seed_after_s"] = 2
    d["viewers"]["watch_fraction"] = {"dist": "table", "values": [0.5, 1.0], "weights": [1, 2]}
    d["duration_s"] = 40
    # settings that are not emulated: noted, and taken out of DIR/scenario.json (the workload's draws do
    # not depend on them, so the same viewers arrive and leave early)
    d["viewers"]["seek_probability"] = 0.5
    d["engine"] = {"volunteer_s": 0}
    d["tracker"]["numwant"] = 10
    path = os.path.join(S.tmp, "loopback.json")
    json.dump(d, open(path, "w"))
    out = os.path.join(S.tmp, "loop dir")  # a space in DIR: ffmpeg's command line was split on spaces
    p = sim("emulate", path, "--out", out, "--network", "loopback")
    check(b"loopback" in p.stdout, "it says the peers' own caps stand in: " + p.stdout.decode())
    eq(p.stderr, b"", "the notes go to stdout: stderr is for the error that ends a run")
    info = load(out, "emulation.json")
    eq(info["network"], "loopback", "emulation.json says loopback")
    eq(load(out, "summary.json")["viewers"], 3, "three viewers")
    # viewers drawn to leave early (watch fraction 0.5 of 12 s) quit half-way: --watch-s reached the peer
    early = {int(l.split("viewer")[1].split()[0]) for l in p.stdout.decode().splitlines()
             if "starts:" in l and "leaves early" in l}
    check(0 < len(early) < 3, "this seed draws early leavers and full viewers (%s)" % sorted(early))
    for i in range(3):
        r = json.load(open(os.path.join(out, "emu", "reports", "viewer-%03d.json" % i)))
        check(r["ended"], "viewer %d ended" % i)
        if i in early:
            check(r["played_ms"] <= 7500, "viewer %d left after about 6 s (played %d ms)" % (i, r["played_ms"]))
        else:
            check(r["played_ms"] >= 11000, "viewer %d watched to the end (played %d ms)" % (i, r["played_ms"]))
        eq(r["stalls"], 0, "no stalls")
    check(b"seeks are not emulated" in p.stdout, "the seeks are noted")
    eff = load(out, "scenario.json")
    check("seek_probability" not in eff["viewers"] and "engine" not in eff and eff["tracker"]["numwant"] == 30,
          "scenario.json is the run as emulated: %r" % eff)
    # the prediction, by the command the emulation printed, pasted into a shell (DIR's space quoted)
    cmd = [l.strip() for l in p.stdout.decode().splitlines() if "peercdn-sim run" in l]
    eq(len(cmd), 1, "one command to predict it: %s" % p.stdout.decode())
    q = subprocess.run(cmd[0], shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    eq(q.returncode, 0, "%s: %s" % (cmd[0], q.stderr.decode()))
    pred_dir = os.path.join(out, "sim")
    pred = load(pred_dir, "summary.json")
    eq((pred["viewers"], pred["seeks"]), (3, 0), "the prediction has the same three viewers and no seek")
    with open(os.path.join(pred_dir, "viewers.csv")) as f:
        left = {int(row["viewer"]) for row in csv.DictReader(f) if float(row["played_s"]) < 9}
    eq(left, early, "the same viewers leave early in the prediction")
    # a simulation never overwrites an emulation (minutes of real processes)
    for extra in ([], ["--compare"]):
        p = sim("run", os.path.join(out, "scenario.json"), "--out", out, "--quiet", *extra, expect=1)
        check(b"holds an emulation" in p.stderr, "refused %r: %r" % (extra, p.stderr))
        eq(load(out, "run.json")["kind"], "emulation", "the emulation is still there")
    # the bitrate is the simulator's: the rungs' measured bitrates that scenario.json carries (it was the
    # manifest's declared bandwidth, a peak, about 4% above)
    lad = eff["media"]["ladder_kbps"]
    with open(os.path.join(out, "viewers.csv")) as f:
        for row in csv.DictReader(f):
            b = float(row["bitrate_kbps"])
            check(min(lad) - 0.5 <= b <= max(lad) + 0.5, "viewer %s's bitrate %.1f within the ladder %r" % (
                row["viewer"], b, lad))
    # a second emulation into the same DIR (one viewer): before, it took the first run's origin address from
    # the log it appended to, and failed; outputs planted as symbolic links are replaced, not followed. And a
    # second viewer arriving at the end itself: started and stopped at once, a viewer like any other (it was
    # never started; one stopped while still starting failed the run)
    d["arrivals"] = {"kind": "list", "times_s": [0, 14]}
    d["catalog"]["duration_s"] = 8
    d["duration_s"] = 14
    json.dump(d, open(path, "w"))
    victims = {}
    for name in ("scenario.json", "viewers.csv", "summary.json"):
        victims[name] = os.path.join(S.tmp, "victim-" + name)
        with open(victims[name], "w") as f:
            f.write("keep me")
        os.unlink(os.path.join(out, name))
        os.symlink(victims[name], os.path.join(out, name))
    # the scenario file edited while the run goes on: DIR/scenario.json is still the scenario that ran (it was
    # made from a second read of the file at the end)
    tracker_log = os.path.join(out, "emu", "logs", "tracker.log")
    os.unlink(tracker_log)  # it comes back when the run, past reading its scenario, starts the tracker
    proc = subprocess.Popen([S.bin("peercdn-sim"), "emulate", path, "--out", out, "--network", "loopback", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not os.path.exists(tracker_log) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    edited = dict(d, duration_s=99, name="edited meanwhile")
    json.dump(edited, open(path, "w"))
    so, se = proc.communicate(timeout=300)
    eq(proc.returncode, 0, "the second emulation: %s" % se.decode()[-1500:])
    summ2 = load(out, "summary.json")
    # (whether the late one starts depends on how far it got before its SIGTERM: a peer on loopback with the
    # video cached may start within milliseconds)
    check(summ2["viewers"] == 2 and summ2["viewers_started"] in (1, 2), "the second run's summary: two viewers: %r" % summ2)
    eff2 = load(out, "scenario.json")
    eq((eff2["duration_s"], eff2["name"], eff2["catalog"]["duration_s"]), (14, "loopback", 8),
       "scenario.json is the scenario the run read, not the file as edited later")
    # the servers start afresh too: the tracker's totals are this run's alone (they added up over the runs
    # before), and the origin holds this run's video alone
    info = load(out, "emulation.json")
    reports = [json.load(open(os.path.join(out, "emu", "reports", f)))
               for f in sorted(os.listdir(os.path.join(out, "emu", "reports"))) if f.startswith("viewer-")]
    eq(info["tracker_stats"]["total"]["bytes_cdn"], sum(r["bytes_cdn"] for r in reports),
       "the second run's tracker totals are its own")
    with open(os.path.join(out, "timeseries.csv")) as f:
        last = list(csv.DictReader(f))[-1]
    eq(int(last["stalls"]), load(out, "summary.json")["stalls"], "the time series ends with the summary's stalls")
    eq(len(os.listdir(os.path.join(out, "emu", "origin", "media"))), 1, "one video in the origin")
    for name, v in victims.items():
        eq(open(v).read(), "keep me", "the file %s pointed to is untouched" % name)
        check(not os.path.islink(os.path.join(out, name)), "%s is a file of its own" % name)


def test_bad_usage_fails_with_one_line(s):
    scen = os.path.join(SCEN, "test-emulate.json")
    for args, status in ((["emulate", scen], 2), (["emulate", scen, "--out", S.tmp, "--network", "wifi"], 2),
                         (["emulate", "/nonexistent.json", "--out", S.tmp], 1), (["compare", S.tmp], 2),
                         (["compare", S.tmp, "/nonexistent"], 1)):
        p = sim(*args, expect=status)
        eq(len(p.stderr.decode().strip().splitlines()), 1, "one line on stderr for %s: %r" % (args, p.stderr))
    # a FIFO where a summary.json should be is refused, not waited on for a writer that never comes
    fifo_dir = os.path.join(S.tmp, "fifo-run")
    os.makedirs(fifo_dir, exist_ok=True)
    os.mkfifo(os.path.join(fifo_dir, "summary.json"))
    p = sim("compare", fifo_dir, fifo_dir, expect=1, timeout=20)
    check(b"not a regular file" in p.stderr and len(p.stderr.decode().strip().splitlines()) == 1,
          "a FIFO summary.json is refused with one line: %r" % p.stderr)
    # a scenario with more viewers than real peers allowed is refused in one line, before DIR/emu is made
    d = json.load(open(scen))
    d["arrivals"] = {"kind": "flash", "count": 201}
    path = os.path.join(S.tmp, "crowd.json")
    json.dump(d, open(path, "w"))
    crowd_out = os.path.join(S.tmp, "crowd-out")
    p = sim("emulate", path, "--out", crowd_out, "--network", "loopback", expect=1)
    check(len(p.stderr.decode().strip().splitlines()) == 1 and b"--max-viewers" in p.stderr,
          "one line naming --max-viewers: %r" % p.stderr)
    check(not os.path.exists(os.path.join(crowd_out, "emu")), "nothing left behind")
    # a --compare directory: the three runs are below it
    cmp_dir = os.path.join(S.tmp, "cmp-run")
    sim("run", os.path.join(SCEN, "test-surplus.json"), "--out", cmp_dir, "--compare", "--quiet")
    p = sim("compare", cmp_dir, os.path.join(cmp_dir, "hybrid"), expect=1)
    check(len(p.stderr.decode().strip().splitlines()) == 1 and b"/hybrid" in p.stderr, "names DIR/hybrid: %r" % p.stderr)
    # a JSON object that is not a run's summary (a scenario, say) is refused, not printed as a column of "-"
    other_dir = os.path.join(S.tmp, "not-a-run")
    os.makedirs(other_dir, exist_ok=True)
    shutil.copy(scen, os.path.join(other_dir, "summary.json"))
    p = sim("compare", other_dir, other_dir, expect=1)
    check(b"not a run's summary" in p.stderr and len(p.stderr.decode().strip().splitlines()) == 1,
          "a scenario as summary.json is refused with one line: %r" % p.stderr)
    d = json.load(open(scen))
    d["mode"] = "p2p-only"
    path = os.path.join(S.tmp, "p2p-only.json")
    json.dump(d, open(path, "w"))
    p = sim("emulate", path, "--out", os.path.join(S.tmp, "x"), expect=1)
    check(b"hybrid" in p.stderr, "p2p-only is refused: %r" % p.stderr)
    # a video too long to generate is refused before anything is set up (it was found after the network,
    # the tracker and the origin were up)
    d = json.load(open(scen))
    d["catalog"]["duration_s"] = 3600
    path = os.path.join(S.tmp, "long.json")
    json.dump(d, open(path, "w"))
    out = os.path.join(S.tmp, "long")
    p = sim("emulate", path, "--out", out, expect=1)
    check(b"would last 3600 s" in p.stderr and len(p.stderr.decode().strip().splitlines()) == 1,
          "refused with one line: %r" % p.stderr)
    check(not os.path.exists(out) and p.stdout == b"", "before anything was set up or said: %r" % p.stdout)
    # values the origin or the tracker would refuse once started are refused first, in one line
    for key, sub, value, says in (("media", "segment_s", 22, b"segment_s"), ("tracker", "interval_s", 1000, b"interval_s")):
        d = json.load(open(scen))
        d.setdefault(key, {})[sub] = value
        path = os.path.join(S.tmp, "refused-%s.json" % sub)
        json.dump(d, open(path, "w"))
        out = os.path.join(S.tmp, "refused-" + sub)
        p = sim("emulate", path, "--out", out, "--network", "loopback", expect=1)
        check(says in p.stderr and len(p.stderr.decode().strip().splitlines()) == 1 and not os.path.exists(out),
              "%s %s refused in one line, before anything was set up: %r" % (sub, value, p.stderr))


def emulate_until(d, name, says):
    """Starts an emulation of scenario |d| on loopback into S.tmp/|name| and reads its output until a line
    holds |says|; returns the process and DIR."""
    path = os.path.join(S.tmp, name + ".json")
    json.dump(d, open(path, "w"))
    out = os.path.join(S.tmp, name)
    p = subprocess.Popen([S.bin("peercdn-sim"), "emulate", path, "--out", out, "--network", "loopback"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    while says not in seen:
        line = p.stdout.readline()
        check(line != b"", "it says %r: %r %r" % (says, seen, p.stderr.read() if p.poll() is not None else b""))
        seen += line
    return p, out


def test_an_interrupted_set_up_leaves_no_result(s):
    """SIGINT while the video is being generated: the helpers are stopped (before, ffmpeg, the upload and
    the transcoding ran to their end) and no result is written (before, an empty summary.json)."""
    d = json.load(open(os.path.join(SCEN, "test-emulate.json")))
    d["catalog"]["duration_s"] = 60
    p, out = emulate_until(d, "interrupted", b"generating video")
    time.sleep(0.5)
    t0 = time.time()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    took = time.time() - t0
    eq(p.returncode, 130, "exit status after SIGINT (%r)" % err)
    check(took < 8, "stopped %.1f s after the signal" % took)
    eq(err, b"", "nothing on stderr: the stop was asked for")
    for name in ("summary.json", "run.json"):
        check(not os.path.exists(os.path.join(out, name)), "no %s" % name)


def test_a_run_interrupted_midway_says_so(s):
    """(review) Ctrl-C once viewers play: the table and the offload printed looked like a whole run's, with
    the command to predict the whole scenario beside them, and compare put the prediction next to the
    interrupted run without a word. Now the output begins with INTERRUPTED, offers no prediction, and
    compare labels the column."""
    d = json.load(open(os.path.join(SCEN, "test-emulate.json")))
    d["name"] = "interrupted midway"
    d["catalog"]["duration_s"] = 12
    d["arrivals"] = {"kind": "list", "times_s": [0, 1, 20]}
    d["duration_s"] = 40
    p, out = emulate_until(d, "midway", b"viewer   1 starts")
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    so, err = p.communicate(timeout=60)
    eq(p.returncode, 130, "exit status after SIGINT (%r)" % err)
    text = so.decode()
    check("INTERRUPTED (signal 2): 2 of the scenario's 3 viewers started" in text, "it says so: %s" % text)
    check("predict it with" not in text, "no prediction of the whole scenario is offered: %s" % text)
    eq(load(out, "run.json").get("interrupted"), True, "run.json says it")
    q = sim("compare", out, out)
    check(b"emulation, interrupted" in q.stdout, "compare labels the column: %r" % q.stdout)


S.run([test_bad_usage_fails_with_one_line, test_an_interrupted_set_up_leaves_no_result, test_a_run_interrupted_midway_says_so,
       test_emulation_agrees_with_the_simulators_prediction, test_loopback_fallback_says_so])
