#!/usr/bin/env python3
"""bench/sim: simulator speed and memory at 1k, 10k and (with --full) 100k concurrent viewers.

sim/scenarios/bench-concurrent.json with a flash crowd of N viewers arriving over 30 s, each watching
a 900 s video for the whole 600 simulated seconds, so N are present at once. Prints wall time, events
per second and peak RSS (from the run's run.json). Goal (docs/benchmarks.md): 100k viewers x 600 s in
<= 60 s wall and <= 4 GiB.

usage: bench/sim.py [--full] [--counts 1000,10000] [--threads N] [--build DIR]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--full", action="store_true", help="add the 100k-viewer run")
ap.add_argument("--counts", default="1000,10000")
ap.add_argument("--build", default=os.path.join(ROOT, "build"))
ap.add_argument("--threads", type=int, default=0, help="simulator threads (default: the simulator's, one per CPU)")
a = ap.parse_args()
counts = [int(x) for x in a.counts.split(",")] + ([100000] if a.full else [])
base = json.load(open(os.path.join(ROOT, "sim", "scenarios", "bench-concurrent.json")))
tmp = tempfile.mkdtemp(prefix="peercdn-bench-sim-")
print("%9s %8s %10s %12s %14s %12s %10s %9s" % ("viewers", "threads", "wall s", "events", "events/s", "viewer-s/s",
                                                  "peak MiB", "offload"))
try:
    for n in counts:
        sc = dict(base)
        sc["arrivals"] = dict(base["arrivals"], count=n)
        path = os.path.join(tmp, "bench-%d.json" % n)
        json.dump(sc, open(path, "w"))
        out = os.path.join(tmp, "out-%d" % n)
        subprocess.run([os.path.join(a.build, "sim", "peercdn-sim"), "run", path, "--out", out, "--quiet"] +
                       (["--threads", str(a.threads)] if a.threads > 0 else []), check=True, stdout=subprocess.DEVNULL)
        run = json.load(open(os.path.join(out, "run.json")))
        summ = json.load(open(os.path.join(out, "summary.json")))
        print("%9d %8d %10.1f %12d %14.0f %12.0f %10.0f %8.1f%%" % (
            n, run.get("threads", 1), run["wall_s"], run["events"], run["events_per_s"], n * sc["duration_s"] / run["wall_s"],
            run["peak_rss_mib"], 100 * summ["offload"]))
        if n == 100000:
            print("goal: 100k viewers x 600 s in <= 60 s wall (%.0f s) and <= 4 GiB (%.0f MiB)" % (
                run["wall_s"], run["peak_rss_mib"]))
finally:
    shutil.rmtree(tmp, ignore_errors=True)  # scenarios and outputs of every count
