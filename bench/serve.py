#!/usr/bin/env python3
"""bench/serve: segment throughput of peercdn-origin's /v/ against nginx serving the same files,
measured with wrk (keep-alive) in the same run. Goal: >= 1.0x nginx.

nginx runs with one worker (peercdn-origin serves from one event loop) and with
'worker_processes auto'; wrk uses one thread and 16 connections cycling through the segment files.
The three servers take turns for --rounds rounds (each round in a rotated order); the ratio is the
median of the rounds' ratios (and each server's figures its median round), because single 10 s runs on
a shared 2-core machine vary by +-20%.
usage: bench/serve.py [--duration S] [--connections N] [--rounds N]
"""
import argparse
import os
import subprocess
import time

import common  # noqa: F401
from harness import Suite, clip

ap = argparse.ArgumentParser()
ap.add_argument("--duration", type=int, default=10)
ap.add_argument("--connections", type=int, default=16)
ap.add_argument("--rounds", type=int, default=3)
a, _ = ap.parse_known_args()
if a.rounds < 1:
    ap.error("--rounds must be at least 1")
S = Suite("bench-serve")


def middle(xs, key=None):
    """The median element (the lower one for an even count) of |xs| ordered by |key|."""
    return sorted(xs, key=key)[(len(xs) - 1) // 2]


def wrk(base, paths):
    script = os.path.join(S.tmp, "paths.lua")
    with open(script, "w") as f:
        f.write("local paths = {%s}\nlocal i = 0\nrequest = function()\n  i = i %% #paths + 1\n"
                "  return wrk.format(\"GET\", paths[i])\nend\n" % ", ".join('"%s"' % p for p in paths))
    rps, mbs, p99ms, _ = common.run_wrk(base, script, a.duration, a.connections)
    return rps, mbs, p99ms


def nginx(root, workers):
    port = common.free_port()
    d = os.path.join(S.tmp, "nginx-%s" % workers)
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(("user root;\n" if os.geteuid() == 0 else "") + """worker_processes %s;
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000; keepalive_timeout 60;
  types { video/iso.segment m4s; video/mp4 mp4; }
  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;
  server {
    listen 127.0.0.1:%d;
    location /v/ { alias %s/; add_header Cache-Control "public, max-age=31536000, immutable"; }
  }
}
""" % (workers, d, d, d, d, d, d, d, port, root))
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", d, "-g", "daemon off;"])
    time.sleep(0.5)
    return proc, "http://127.0.0.1:%d" % port


def main():
    o = S.origin()
    src = clip("bench_camera_1080p_20s", size="1920x1080", rate=30, dur=20, vf="noise=alls=4:allf=t",
               vopts=["-preset", "veryfast", "-b:v", "12M", "-g", "60"])
    vid = o.upload(src, parallel=2)
    v = o.ready(vid, timeout=600)
    media = os.path.join(o.data, "media")
    rs = v["renditions"]
    top, mid, low = rs[-1]["id"], rs[len(rs) // 2]["id"], rs[0]["id"]
    sets = {}
    for name, rung in (("large (top rung)", top), ("medium (middle rung)", mid), ("small (lowest rung)", low)):
        files = sorted(f for f in os.listdir(os.path.join(media, vid, rung)) if f.endswith(".m4s"))
        size = sum(os.path.getsize(os.path.join(media, vid, rung, f)) for f in files) / len(files)
        sets[name] = (["/v/%s/%s/%s" % (vid, rung, f) for f in files], size)
    results = []
    servers = [("peercdn", o.url, None)]
    try:
        for workers in ("1", "auto"):
            proc, base = nginx(media, workers)
            servers.append(("nginx-" + workers, base, proc))
        for name, (paths, size) in sets.items():
            runs = {k: [] for k, _, _ in servers}
            for r in range(a.rounds):
                for k in range(len(servers)):
                    key, base, _ = servers[(r + k) % len(servers)]
                    runs[key].append(wrk(base, paths))
            row = {"set": name, "avg_bytes": size, "runs": runs}
            for key, samples in runs.items():
                row[key] = middle(samples, key=lambda x: x[1])  # the median round by MiB/s
            results.append(row)
    finally:
        for _, _, proc in servers[1:]:
            proc.terminate()
            proc.wait()
    o.stop()
    S.cleanups.clear()
    print("wrk: 1 thread, %d connections, %d s per run, keep-alive, %d rounds (medians shown); %d CPUs" % (
        a.connections, a.duration, a.rounds, os.cpu_count()))
    for row in results:
        print("%s segments, %.0f KiB on average:" % (row["set"], row["avg_bytes"] / 1024))
        for k in ("peercdn", "nginx-1", "nginx-auto"):
            rps, mbs, p99 = row[k]
            print("  %-11s %9.0f req/s %9.1f MiB/s  p99 %7.2f ms" % (k, rps, mbs, p99))
        ratios = {}
        for k in ("nginx-1", "nginx-auto"):
            per = sorted(p[1] / n[1] for p, n in zip(row["runs"]["peercdn"], row["runs"][k]))
            ratios[k] = (middle(per), per)
        print("  ratio peercdn/nginx(1 worker): %.2f   peercdn/nginx(auto): %.2f (goal >= 1.0; median of the rounds)" % (
            ratios["nginx-1"][0], ratios["nginx-auto"][0]))
        print("  rounds against nginx(1 worker), sorted: %s" % " ".join("%.2f" % x for x in ratios["nginx-1"][1]))


common.run(S, main)
