#!/usr/bin/env python3
"""peercdn test runner.

Runs the cmocka unit tests (TAP output) and the integration scripts in
tests/integration/ (TAP output too), first against the normal build, then
against the ASan+UBSan build. Every test case counts; a script or binary that
crashes, leaks, or times out counts as a failure. The last line printed is
"N passed, N failed".
"""
import argparse
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a case line: status, number, name, and a directive (cmocka writes a skipped case "not ok 2 # SKIP name")
TAP = re.compile(r"^(not ok|ok)\s+(\d+)\s*(?:-\s*)?(.*?)(?:\s*#\s*(SKIP|TODO)\b.*)?$")
PLAN = re.compile(r"^1\.\.(\d+)$")


def sanitizer_env(env):
    env = dict(env)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    supp = os.path.join(ROOT, "tests", "lsan.supp")
    if os.path.exists(supp):
        env["LSAN_OPTIONS"] = "suppressions=" + supp + ":print_suppressions=0"
    env["PEERCDN_SANITIZED"] = "1"
    return env


def jobs_for(build, label):
    jobs = []
    unit_dir = os.path.join(build, "tests", "unit")
    if os.path.isdir(unit_dir):
        for name in sorted(os.listdir(unit_dir)):
            path = os.path.join(unit_dir, name)
            if name.startswith("test_") and os.access(path, os.X_OK) and os.path.isfile(path):
                jobs.append((label, "unit/" + name, [path], 120))
    integ = os.path.join(ROOT, "tests", "integration")
    for name in sorted(os.listdir(integ)):
        if name.startswith("test_") and name.endswith(".py"):
            jobs.append((label, "integration/" + name[:-3],
                         [sys.executable, os.path.join(integ, name), "--build", build], 900))
    return jobs


def fuzz_jobs(build, seconds):
    jobs = []
    d = os.path.join(build, "fuzz")
    if not os.path.isdir(d):
        return jobs
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if name.startswith("fuzz_") and os.access(path, os.X_OK) and os.path.isfile(path):
            seeds = os.path.join(ROOT, "fuzz", "corpus", name[5:])
            jobs.append(("fuzz", "fuzz/" + name, [path, "-max_total_time=%d" % seconds, "-print_final_stats=1",
                                                  "@CORPUS@", seeds], seconds + 60))
    return jobs


def run_group(argv, timeout, **kw):
    """subprocess.run in a session of its own: on timeout the whole group is killed, the servers a test
    script started with it (a SIGKILL of the script alone left them running for good, their parent gone;
    found by review). Returns (stdout bytes, returncode or None on timeout)."""
    p = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    try:
        out, _ = p.communicate(timeout=timeout)
        return out, p.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = p.communicate()
        return out, None


def run_job(job, env):
    label, name, argv, timeout = job
    if label == "fuzz":
        start = time.time()
        with tempfile.TemporaryDirectory() as corpus:
            argv = [corpus if a == "@CORPUS@" else a for a in argv]
            raw, rc = run_group(argv, timeout, cwd=ROOT)
            out, rc = (raw or b"").decode("utf-8", "replace"), -1 if rc is None else rc
        m = re.search(r"stat::number_of_executed_units: (\d+)", out)
        runs = m.group(1) if m else "?"
        return (job, [(rc == 0, "%s runs without a crash, leak or failed invariant" % runs)], None, out,
                time.time() - start)
    if label == "asan":
        env = sanitizer_env(env)
        timeout *= 2
    env = dict(env)
    env["CMOCKA_MESSAGE_OUTPUT"] = "TAP"
    start = time.time()
    raw, rc = run_group(argv, timeout, env=env, cwd=ROOT)
    out, timed_out = (raw or b"").decode("utf-8", "replace"), rc is None
    rc = -1 if timed_out else rc
    cases = []
    planned, skipped = None, 0
    for line in out.splitlines():
        p = PLAN.match(line.strip())
        if p:
            planned = (planned or 0) + int(p.group(1))
        m = TAP.match(line.strip())
        if m and not m.group(3).startswith("- "):
            if m.group(4) == "SKIP":
                skipped += 1  # neither passed nor failed
                continue
            cases.append((m.group(1) == "ok", m.group(3).strip() or "case %s" % m.group(2)))
    sanitizer = re.search(r"(ERROR: (Address|Leak)Sanitizer|runtime error:)", out)
    extra_fail = None
    if timed_out:
        extra_fail = "timed out after %ds" % timeout
    elif sanitizer:
        extra_fail = "sanitizer report"
    elif rc != 0 and all(ok for ok, _ in cases):
        extra_fail = "exited with status %d" % rc
    elif not cases:
        extra_fail = "reported no test cases"
    elif planned is not None and len(cases) + skipped != planned:
        extra_fail = "reported %d of its %d planned cases" % (len(cases) + skipped, planned)
    return job, cases, extra_fail, out, time.time() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--asan-build")
    ap.add_argument("--only", nargs="+", help="run the jobs whose names contain any of these words")
    # most integration time is real-time playback and waiting (test_peer_links: 15 CPU s in 174 s), so
    # twice as many jobs as cores keeps the cores busy; the suite measured on 2 cores: 839 s with 2 jobs,
    # 429 s with 4
    ap.add_argument("--jobs", type=int, default=min(8, 2 * (os.cpu_count() or 1)))
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--asan-only", action="store_true", help="run only the sanitizer build's jobs")
    ap.add_argument("--fuzz-build", help="clang build with -Dfuzz=true: run each harness briefly")
    ap.add_argument("--fuzz-seconds", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("PEERCDN_TEST_MEDIA", os.path.join(ROOT, "build", "test-media"))
    os.makedirs(os.environ["PEERCDN_TEST_MEDIA"], exist_ok=True)
    jobs = [] if args.asan_only else jobs_for(os.path.abspath(args.build), "")
    if args.asan_build:
        jobs += jobs_for(os.path.abspath(args.asan_build), "asan")
    if args.fuzz_build:
        jobs += fuzz_jobs(os.path.abspath(args.fuzz_build), args.fuzz_seconds)
    if args.only:
        words = " ".join(args.only).split()  # --only a b, or --only "a b"
        jobs = [j for j in jobs if any(w in j[1] for w in words)]
        if not jobs:  # a typo is not a green run
            print("run.py: no job's name contains any of: %s" % " ".join(words), file=sys.stderr)
            return 2
    # the long jobs first, so that none of them starts last and runs alone: the integration scripts
    # (the sanitized ones are slower), then the unit tests, then the fuzzers
    rank = {("asan", "integration"): 0, ("", "integration"): 1}
    jobs.sort(key=lambda j: rank.get((j[0], j[1].split("/")[0]), 2 + (j[0] == "fuzz")))
    passed = failed = 0
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        futures = [ex.submit(run_job, j, os.environ) for j in jobs]
        for f in concurrent.futures.as_completed(futures):
            job, cases, extra_fail, out, secs = f.result()
            label, name = job[0], job[1]
            prefix = "[%s] %s" % (label, name) if label else name
            bad = [c for c in cases if not c[0]]
            for ok, case in cases:
                print("%s %s: %s" % ("PASS" if ok else "FAIL", prefix, case))
            passed += sum(1 for c in cases if c[0])
            failed += len(bad)
            if extra_fail:
                failed += 1
                print("FAIL %s: %s" % (prefix, extra_fail))
            if bad or extra_fail or args.verbose:
                lines = out.splitlines()
                # each failed case's own report (its "not ok" line and the comments after it), which the
                # tail of a long script's output no longer holds, then that tail
                for i, l in enumerate(lines):
                    if l.startswith("not ok ") and i < len(lines) - 80:
                        j = i + 1
                        while j < len(lines) and j - i <= 60 and lines[j].startswith("#"):
                            j += 1
                        print("---- %s: %s ----\n%s" % (prefix, l, "\n".join(lines[i + 1:j])))
                tail = "\n".join(lines[-80:])
                print("---- output of %s (%.1fs) ----\n%s\n----" % (prefix, secs, tail))
            else:
                print("     %s finished in %.1fs" % (prefix, secs))
            sys.stdout.flush()
    print("total time %.0fs" % (time.time() - t0))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
