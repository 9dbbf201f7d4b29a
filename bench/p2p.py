#!/usr/bin/env python3
"""bench/p2p: one seeder serving --downloaders downloaders on loopback over the real peer link
(tickets, handshake, ChaCha20-Poly1305 records, the upload pump's 1 MiB write-queue mark, two
whole-segment requests outstanding per downloader, every segment checked against its BLAKE2b-256),
against a raw TCP baseline measured in the same run (the same event loop and in-flight cap, bytes
written straight from memory, nothing encrypted or hashed). Goals: >= 1 GB/s aggregate, >= 0.5x raw.

Wall time runs from the first downloader's start to the last one's exit; CPU time is that of every
process (seeder and downloaders, user + system, from wait4). Each mode runs --runs times, alternating,
and the best run of each is reported (the machines are shared and noisy). GB = 10^9 bytes.

usage: bench/p2p.py [--build DIR] [--downloaders N] [--segments K] [--segment-bytes N] [--runs R]
                    [--raw-scale F]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import common

ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.path.join(common.ROOT, "build"))
ap.add_argument("--downloaders", type=int, default=16)
ap.add_argument("--segments", type=int, default=32, help="segments per downloader")
ap.add_argument("--segment-bytes", type=int, default=2 * 1024 * 1024)
ap.add_argument("--runs", type=int, default=3, help="runs per mode; the best is reported")
ap.add_argument("--raw-scale", type=int, default=4,
                help="the raw baseline moves this many times the bytes, so its runs last about as long")
ap.add_argument("--video", default="bench-p2p")
a, _ = ap.parse_known_args()
BIN = os.path.join(os.path.abspath(a.build), "bench", "p2p_bench")
TMP = tempfile.mkdtemp(prefix="peercdn-bench-p2p-")
KEY = os.path.join(TMP, "tracker.key")


def cpu(ru):
    return ru.ru_utime, ru.ru_stime


def busy_seconds():
    """CPU seconds the whole machine has been busy (all processes, /proc/stat), to tell how much of it
    other processes took during a run."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def start_server(raw):
    err = open(os.path.join(TMP, "serve-%s.err" % ("raw" if raw else "link")), "ab")
    p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--tracker-sk", KEY, "--video", a.video,
                          "--segment-bytes", str(a.segment_bytes)] + (["--raw"] if raw else []),
                         stdout=subprocess.PIPE, stderr=err)
    err.close()
    line = p.stdout.readline().decode().strip()
    if not line.startswith("listening on tcp://"):
        p.kill()
        p.wait()
        raise SystemExit("p2p_bench serve did not start (%r); see %s" % (line, TMP))
    return p, line[len("listening on tcp://"):]


def one_run(raw):
    server, addr = start_server(raw)
    segments = a.segments * (a.raw_scale if raw else 1)
    cmd = [BIN, "fetch", "--connect", addr, "--tracker-sk", KEY, "--video", a.video,
           "--segment-bytes", str(a.segment_bytes), "--segments", str(segments)] + (["--raw"] if raw else [])
    errs = []
    fetchers = {}
    busy0 = busy_seconds()
    t0 = time.monotonic()
    for i in range(a.downloaders):
        err = open(os.path.join(TMP, "fetch-%d.err" % i), "wb")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        err.close()
        fetchers[p.pid] = p
    f_user = f_sys = 0.0
    left = dict(fetchers)
    failed = []
    while left:
        pid, status, ru = os.wait4(-1, 0)
        if pid == server.pid:
            server.returncode = os.waitstatus_to_exitcode(status)
            raise SystemExit("the seeder exited during the run (status %d); see %s" % (server.returncode, TMP))
        p = left.pop(pid, None)
        if p is None:
            continue
        p.returncode = os.waitstatus_to_exitcode(status)
        u, s = cpu(ru)
        f_user += u
        f_sys += s
        if p.returncode != 0:
            failed.append(p)
    wall = time.monotonic() - t0
    busy = busy_seconds() - busy0
    server.send_signal(signal.SIGTERM)
    _, status, ru = os.wait4(server.pid, 0)
    server.returncode = os.waitstatus_to_exitcode(status)
    s_user, s_sys = cpu(ru)
    total = 0
    for i, p in enumerate(fetchers.values()):
        out = p.stdout.read().decode()
        p.stdout.close()
        if p.returncode != 0:
            with open(os.path.join(TMP, "fetch-%d.err" % i)) as f:
                errs.append(f.read().strip())
            continue
        r = json.loads(out)
        want = 0 if raw else segments
        if r["verified"] != want or r["bytes"] != segments * a.segment_bytes:
            errs.append("downloader %d: %r" % (i, r))
        total += r["bytes"]
    server.stdout.close()
    if failed or errs or server.returncode != 0:
        raise SystemExit("%s run failed (%d downloaders failed, seeder status %d):\n  %s\nlogs in %s" % (
            "raw" if raw else "link", len(failed), server.returncode, "\n  ".join(errs), TMP))
    return {"bytes": total, "wall": wall, "gbs": total / wall / 1e9, "s_user": s_user, "s_sys": s_sys,
            "f_user": f_user, "f_sys": f_sys, "cpu": s_user + s_sys + f_user + f_sys,
            "others": max(0.0, busy - (s_user + s_sys + f_user + f_sys)) / wall}


def main():
    if not os.path.exists(BIN):
        raise SystemExit("%s is missing: build first (ninja -C %s)" % (BIN, a.build))
    subprocess.run([BIN, "keygen", KEY], check=True)
    speeds = json.loads(subprocess.run([BIN, "cpu"], check=True, stdout=subprocess.PIPE).stdout)
    runs = {"link": [], "raw": []}
    for _ in range(a.runs):
        for mode in ("link", "raw"):  # alternating, so both see the same noise
            runs[mode].append(one_run(mode == "raw"))
    best = {m: max(rs, key=lambda r: r["gbs"]) for m, rs in runs.items()}

    mib = a.segment_bytes / 1048576
    print("p2p: 1 seeder, %d downloaders on loopback, %d CPUs; segments of %.1f MiB, 2 requests outstanding per "
          "downloader" % (a.downloaders, os.cpu_count(), mib))
    print("link: %d segments per downloader (%.2f GB per run); raw: %d (%.2f GB per run)" % (
        a.segments, best["link"]["bytes"] / 1e9, a.segments * a.raw_scale, best["raw"]["bytes"] / 1e9))
    print("best of %d runs per mode, alternating (shared, noisy machine); GB = 10^9 bytes; CPU = user + system "
          "of all %d processes" % (a.runs, a.downloaders + 1))
    print()
    print("  %-26s %6s %7s %7s %9s %8s   %s" % ("mode", "GB/s", "wall s", "CPU s", "CPU s/GB", "others",
                                             "CPU s/GB: seeder usr+sys, downloaders usr+sys"))
    names = {"link": "verified encrypted (link)", "raw": "raw TCP (baseline)"}
    for m in ("link", "raw"):
        r = best[m]
        gb = r["bytes"] / 1e9
        print("  %-26s %6.2f %7.2f %7.2f %9.2f %8.2f   %.2f+%.2f, %.2f+%.2f" % (
            names[m], r["gbs"], r["wall"], r["cpu"], r["cpu"] / gb, r["others"], r["s_user"] / gb, r["s_sys"] / gb,
            r["f_user"] / gb, r["f_sys"] / gb))
    print("  all runs, GB/s: link %s; raw %s" % (" ".join("%.2f" % r["gbs"] for r in runs["link"]),
                                                 " ".join("%.2f" % r["gbs"] for r in runs["raw"])))
    print("  (others: CPUs' worth of time taken by other processes on the machine during the run)")
    ratio = best["link"]["gbs"] / best["raw"]["gbs"]
    print()
    print("ratio verified encrypted / raw: %.2f (goal >= 0.5: %s)" % (ratio, "met" if ratio >= 0.5 else "NOT met"))
    print("verified encrypted throughput: %.2f GB/s (goal >= 1 GB/s: %s)" % (
        best["link"]["gbs"], "met" if best["link"]["gbs"] >= 1 else "NOT met"))
    crypto = speeds["seal_s_per_gb"] + speeds["open_s_per_gb"] + speeds["blake2b_s_per_gb"]
    link_gb = best["link"]["bytes"] / 1e9
    print()
    print("where the CPU goes (single-core speeds measured now, 128 KiB messages): seal %.2f, open %.2f, "
          "BLAKE2b-256 %.2f, memcpy %.3f CPU s/GB" % (speeds["seal_s_per_gb"], speeds["open_s_per_gb"],
                                                        speeds["blake2b_s_per_gb"], speeds["memcpy_s_per_gb"]))
    print("  BLAKE2b-256 in %s, the faster here (pc_crypto_init times both): libsodium %.2f, libgcrypt %.2f CPU s/GB" % (
        speeds["blake2b_lib"], speeds["blake2b_sodium_s_per_gb"], speeds["blake2b_gcrypt_s_per_gb"]))
    print("  the crypto alone is %.2f CPU s/GB, so %d CPUs cap verified encrypted transfer at %.2f GB/s even with "
          "free TCP;" % (crypto, os.cpu_count(), os.cpu_count() / crypto))
    link_user = (best["link"]["s_user"] + best["link"]["f_user"]) / link_gb
    link_sys = (best["link"]["s_sys"] + best["link"]["f_sys"]) / link_gb
    raw_gb = best["raw"]["bytes"] / 1e9
    print("  measured: link %.2f user + %.2f system CPU s/GB (user beyond the crypto: %.2f), raw %.2f user + %.2f "
          "system" % (link_user, link_sys, link_user - crypto, (best["raw"]["s_user"] + best["raw"]["f_user"]) / raw_gb,
                      (best["raw"]["s_sys"] + best["raw"]["f_sys"]) / raw_gb))
    shutil.rmtree(TMP, ignore_errors=True)


main()
