"""Shared bench helpers: reuse the integration harness to run the real binaries."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("PEERCDN_TEST_MEDIA", os.path.join(ROOT, "build", "bench-media"))
sys.argv = [sys.argv[0], "--build", os.environ.get("PEERCDN_BUILD", os.path.join(ROOT, "build"))] + sys.argv[1:]

import harness  # noqa: E402,F401


def suite(name):
    s = harness.Suite("bench-" + name)
    return s


def run(s, main):
    """Runs |main|, then, whether it finished or failed, stops every server the suite |s| started (a bench
    that failed left its origin or tracker running) and removes its temporary directory (media, keys, a
    copy of the payload: a gigabyte and a half after an upload bench)."""
    failed = False
    try:
        main()
    except BaseException:
        failed = True
        raise
    finally:
        for c in reversed(s.cleanups):
            try:
                c()
            except Exception as e:  # noqa: BLE001 - a server that stops badly is said, the others still stop
                print("bench: cleanup: %s" % e, file=sys.stderr)
                failed = True
        s.cleanups.clear()
        import shutil
        shutil.rmtree(s.tmp, ignore_errors=True)
        if failed:
            print("bench: failed; its servers were stopped and %s removed" % s.tmp, file=sys.stderr)


def run_wrk(base, script, duration, connections=16, threads=1, extra=(), allow_errors=False):
    """Runs wrk with a Lua script; returns requests/s, MiB/s (wrk's "MB" is 2^20 bytes), p99 latency in ms and the raw output."""
    p = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration, "--latency", "-s", script] +
                       list(extra) + [base], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=duration + 120)
    out = p.stdout.decode()
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if m is None:
        raise AssertionError("wrk failed against %s: %s" % (base, out))
    tr = re.search(r"Transfer/sec:\s+([0-9.]+)([KMG]?B)", out)
    mbs = float(tr.group(1)) * {"B": 1 / 1048576, "KB": 1 / 1024, "MB": 1, "GB": 1024}[tr.group(2)]
    p99 = re.search(r"99%\s+([0-9.]+)(us|ms|s)", out)
    p99ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    if not allow_errors and re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise AssertionError("errors during the run against %s: %s" % (base, out))
    return float(m.group(1)), mbs, p99ms, out


def free_port():
    """A free loopback port (for reference servers that cannot pick their own)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
