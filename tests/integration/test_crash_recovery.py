#!/usr/bin/env python3
"""kill -9 during transcoding, then restart: the video reaches ready, tasks finished before
the crash are not redone, and acknowledged upload bytes survive a crash."""
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SLOW, Suite, blake2b256, check, clip, eq, ffmpeg_decode, ffprobe, request, tus_headers)  # noqa: E402

S = Suite("crash")
st = {}


def tasks(data):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "origin.db"), uri=True, timeout=5)
    try:
        return db.execute("SELECT id, kind, arg, state, attempts, updated, interrupted FROM tasks ORDER BY id").fetchall()
    finally:
        db.close()


def held_origin(s, ms, **kw):
    """An origin whose workers take each job |ms| after it was handed to them (a test hook): meanwhile the
    job waits in the queue, handed out and not started. A restart runs without the hook."""
    os.environ["PEERCDN_TEST_PICKUP_DELAY_MS"] = str(ms)
    try:
        return s.origin(workers=1, **kw)
    finally:
        del os.environ["PEERCDN_TEST_PICKUP_DELAY_MS"]


def test_kill_during_transcoding_then_restart(s):
    o = s.origin(workers=1, check_exit=False)
    src = clip("crash_1280x720_24s", size="1280x720", rate=30, dur=24)
    vid = o.upload(src, parallel=2)
    deadline = time.time() + 120 * SLOW
    done_before, running, killed = [], [], False
    while time.time() < deadline and not killed:
        # Freeze the origin, then read its tasks: what we see is what it holds when killed. Between
        # one chunk finishing and the worker claiming the next nothing is running; then thaw, retry.
        o.proc.send_signal(signal.SIGSTOP)
        rows = tasks(o.data)
        enc = [r for r in rows if r[1] == "encode"]
        done_before = [r for r in enc if r[3] == "done"]
        running = [r for r in rows if r[3] == "running"]
        if done_before and len(done_before) < len(enc) and running:
            o.kill()  # SIGKILL, while stopped
            killed = True
        else:
            o.proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
    check(killed, "killed with some encode chunks finished and a task running")
    rows = {r[0]: r for r in tasks(o.data)}
    eq(sorted(r for r in rows.values() if r[3] == "running"), sorted(running), "tasks running at the kill")
    print("# killed with %d chunks done, running: %s" % (len(done_before), [(r[1], r[2]) for r in running]))
    o.restart()
    s.cleanups.append(o.stop)
    v = o.ready(vid, timeout=240)
    after = {r[0]: r for r in tasks(o.data)}
    for r in done_before:
        eq(after[r[0]][5], r[5], "chunk %d finished before the crash was not redone" % r[2])
        eq(after[r[0]][4], 1, "attempts of chunk %d" % r[2])
    for r in running:  # run again; the run the kill cut short is not counted as a failed attempt
        check(after[r[0]][3] == "done" and after[r[0]][4] == 1 and after[r[0]][6] == 1,
              "interrupted task run again: %r" % (after[r[0]],))
    check("resuming" in o.stderr(), "restart logs the resumption")
    master = "%s/v/%s/master.m3u8" % (o.url, vid)
    ffmpeg_decode(master)
    src_frames = int(ffprobe(src, "-select_streams", "v:0", "-count_frames", "-show_entries",
                             "stream=nb_read_frames")["streams"][0]["nb_read_frames"])
    for r in v["renditions"]:
        got = ffprobe("%s/v/%s/%s/index.m3u8" % (o.url, vid, r["id"]), "-select_streams", "v:0", "-count_frames",
                      "-show_entries", "stream=nb_read_frames")["streams"][0]["nb_read_frames"]
        eq(int(got), src_frames, "frames of %s" % r["id"])
    m = json.loads(o.req("GET", "/v/%s/p2p.json" % vid).body)
    for rend in m["renditions"]:
        for f in [rend["init"]] + rend["segments"]:
            eq(blake2b256(o.req("GET", "/v/%s/%s" % (vid, f["url"])).body), f["blake2b"], f["url"])


def test_a_stop_keeps_the_tasks_handed_to_workers_that_had_not_started_them(s):
    """A graceful stop (SIGTERM) while a task waits in a worker's queue (here held there 3 s by a test
    hook; in the wild, while the worker trims its heap after the job before): the task is released and
    runs after the restart. It was recorded done without running: an audio task lost that way published
    the video without its sound, an encode chunk failed it."""
    o = held_origin(s, 3000)
    src = clip("stop_queued_320x180_6s", size="320x180", rate=25, dur=6)
    vid = o.upload(src, parallel=1)
    deadline = time.time() + 120 * SLOW
    while time.time() < deadline and "audio started" not in o.stderr():
        time.sleep(0.05)
    check("audio started" in o.stderr(), "the audio task was handed to a worker")
    o.stop()  # SIGTERM with the audio task in the queue; exit 0
    held = {r[1]: r for r in tasks(o.data) if r[1] == "audio"}
    check(held["audio"][3] != "done", "the audio task that never ran is not done: %r" % (held["audio"],))
    o.restart()
    s.cleanups.append(o.stop)
    o.ready(vid, timeout=180)
    master = o.req("GET", "/v/%s/master.m3u8" % vid).body.decode()
    check("mp4a.40.2" in master and "#EXT-X-MEDIA:TYPE=AUDIO" in master, "published with its sound: %s" % master)
    ffmpeg_decode("%s/v/%s/master.m3u8" % (o.url, vid), all_streams=True)


def test_temporary_files_a_killed_writer_left_are_not_published(s):
    """An origin killed between writing an output and renaming it leaves NAME.tmp.PID.N in the video's
    work directory; the run after the restart writes under another name, and publish moved the stray one
    out with the rest (served with 200). Planted here, with the pid of a process that is gone and with the
    origin's own (a container restarts it under the same pid), before the tasks run."""
    o = held_origin(s, 1500)
    s.cleanups.append(o.stop)
    src = clip("stray_tmp_320x180_4s", size="320x180", rate=25, dur=4)
    vid = o.upload(src, parallel=1)
    out = os.path.join(o.data, "work", vid, "out")
    dead = subprocess.Popen(["true"])
    dead.wait()
    strays = ["v0/seg-00001.m4s.tmp.%d.3" % dead.pid, "v0/index.m3u8.tmp.%d.0" % o.proc.pid,
              "master.m3u8.tmp.%d.12" % dead.pid]
    for rel in strays:
        os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
        with open(os.path.join(out, rel), "wb") as f:
            f.write(b"half a file")
    o.ready(vid, timeout=120)
    media = os.path.join(o.data, "media", vid)
    left = [os.path.join(d, n) for d, _, names in os.walk(media) for n in names if ".tmp." in n]
    eq(left, [], "no temporary file published")
    for rel in strays:
        eq(o.req("GET", "/v/%s/%s" % (vid, rel)).status, 404, rel)
    ffmpeg_decode("%s/v/%s/master.m3u8" % (o.url, vid))


def test_a_task_the_origin_keeps_dying_in_fails_its_video(s):
    """kill -9 while tasks run, again and again (a task that crashes the process would do this by itself, at
    every restart). Each start counts an interruption against every task that was running; one cut short
    twice runs alone, so that the deaths while it runs are its own, and after 5 its video fails with code
    "interrupted" instead of being run for ever (a chunk was seen claimed 211 times). The other video's
    task, beside it at the first two deaths, runs alone in its turn and is not failed (5 deaths failed
    both videos, before). The kills are not failed attempts: a video killed four times and then failing
    once for a recoverable cause was failed at once, "failed 5 times". Here both probes are held in the
    workers' queues by a test hook, and the test kills the origin whenever a task is running."""
    os.environ["PEERCDN_TEST_PICKUP_DELAY_MS"] = "60000"  # the probes stay handed out, never start
    try:
        o = s.origin(workers=2, check_exit=False)
        src = clip("dying_320x180_2s", size="320x180", rate=25, dur=2)
        first = o.upload(src, parallel=1)
        second = o.upload(src, parallel=1)
        seen = []
        for k in range(8):
            deadline = time.time() + 30 * SLOW
            while time.time() < deadline and not any(r[3] == "running" for r in tasks(o.data)):
                time.sleep(0.05)
            if o.video(first)["state"] == "failed":
                break
            probes = [r for r in tasks(o.data) if r[1] == "probe"]
            seen.append([(r[3], r[6]) for r in probes])
            check(all(r[4] == 1 for r in probes if r[3] == "running"), "kills are not attempts: %r" % probes)
            o.kill()
            o.restart()
    finally:
        del os.environ["PEERCDN_TEST_PICKUP_DELAY_MS"]
    # both ran at the first two deaths; then the first alone, three times
    eq(seen, [[("running", 0), ("running", 0)], [("running", 1), ("running", 1)], [("running", 2), ("ready", 2)],
              [("running", 3), ("ready", 2)], [("running", 4), ("ready", 2)]], "who ran at each death (state, interruptions)")
    v = o.wait(first, timeout=30)
    eq((v["state"], v["error"]["code"]), ("failed", "interrupted"), "the first video fails: %r" % v.get("error"))
    check("5 times" in v["error"]["message"], "message: %r" % v["error"]["message"])
    deadline = time.time() + 30 * SLOW
    while time.time() < deadline and not any(r[3] == "running" and r[1] == "probe" for r in tasks(o.data)):
        time.sleep(0.05)
    probe = [r for r in tasks(o.data) if r[1] == "probe" and r[3] != "canceled"]
    eq([(r[3], r[6]) for r in probe], [("running", 2)], "the second video's probe runs alone now, not blamed further")
    check(o.video(second)["state"] != "failed", "the second video is not failed")
    check("runs alone" in o.stderr(), "the log says so")
    o.kill()


def test_a_video_deleted_while_its_chunk_starts_leaves_no_directories(s):
    """DELETE as an encode chunk starts: the chunk made its rung directories again after the DELETE had
    moved the video's to the trash (a window of milliseconds between encoder openings), and they stayed
    until the next start. Now the end of a deleted video's job removes what it left. Here the job waits
    3 s in the queue (a test hook) and the directory it would have made is made by the test meanwhile."""
    o = held_origin(s, 3000)
    s.cleanups.append(o.stop)
    src = clip("delete_start_320x180_4s", size="320x180", rate=25, dur=4)
    vid = o.upload(src, parallel=1)
    deadline = time.time() + 60 * SLOW
    while time.time() < deadline and "probe started" not in o.stderr():
        time.sleep(0.05)
    eq(o.req("DELETE", "/api/videos/" + vid, headers=o.auth()).status, 204, "DELETE")
    os.makedirs(os.path.join(o.data, "work", vid, "out", "v0"))  # what the starting job would make again
    deadline = time.time() + 20 * SLOW
    left = None
    while time.time() < deadline:
        left = [x for x in ("work", "media", "originals") if os.path.exists(os.path.join(o.data, x, vid))]
        if not left:
            break
        time.sleep(0.2)
    eq(left, [], "nothing of the deleted video is left")
    eq(o.req("GET", "/api/videos/" + vid).status, 404, "gone")


def test_acknowledged_upload_bytes_survive_kill(s):
    o = s.origin(check_exit=False)
    data = os.urandom(3 << 20)
    url = o.creation_url()
    r = request(url, "POST", headers=tus_headers(Upload_Length=len(data)))
    eq(r.status, 201, "create")
    loc = r.header("location")
    r = request(loc, "PATCH", body=data[: 1 << 20], headers=tus_headers(Upload_Offset=0,
                Content_Type="application/offset+octet-stream"))
    eq(r.status, 204, "first MiB acknowledged")
    o.kill()
    o.restart()
    s.cleanups.append(o.stop)
    loc = loc.replace(":%d" % int(loc.split(":")[2].split("/")[0]), ":%d" % o.port)
    eq(request(loc, "HEAD", headers=tus_headers()).header("upload-offset"), str(1 << 20), "offset after restart")
    r = request(loc, "PATCH", body=data[1 << 20:], headers=tus_headers(Upload_Offset=1 << 20,
                Content_Type="application/offset+octet-stream"))
    eq(r.status, 204, "rest")
    vid = loc.split("?")[0].rsplit("/", 1)[1]
    o.wait(vid)
    with open(os.path.join(o.data, "originals", vid), "rb") as f:
        eq(f.read(), data, "every byte in place")


def test_published_files_are_on_disk_before_their_names(s):
    """What a power cut must not undo, seen by strace (an independent tracer of the origin's system calls):
    every file the origin writes whole (the media, the manifest, the description) has its data synced
    before it is renamed into place and its directory synced after; the publish rename (work/ID/out →
    media/ID) and the completed upload's move into originals/ are synced before the database says so; the
    database commits with synchronous=FULL. Before, an origin that lost power could come back with a video
    said ready and empty segments (found by review)."""
    o = s.origin(workers=1)
    trace = os.path.join(s.tmp, "strace.txt")
    st = subprocess.Popen(["strace", "-f", "-y", "-qq", "-o", trace, "-p", str(o.proc.pid),
                           "-e", "trace=fdatasync,fsync,rename,renameat,renameat2"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while time.time() < deadline and (not os.path.exists(trace) or os.path.getsize(trace) == 0):
        o.req("GET", "/api/health")  # a request, so that something shows once strace is attached
        time.sleep(0.1)
        if os.path.exists(trace):
            break
    vid = o.upload(clip("sync_320x180_4s", size="320x180", rate=25, dur=4), parallel=1)
    o.ready(vid)
    st.terminate()
    st.wait(timeout=30)
    synced, renames, dirs_synced, wal = {}, [], [], []  # file → its first data sync; (line, dir); WAL syncs
    for n, line in enumerate(open(trace)):
        m = re.search(r"\b(fdatasync|fsync)\(\d+<([^>]*)>\) = 0", line)
        if m:
            if m.group(2).endswith("origin.db-wal"):
                wal.append(n)
            elif m.group(1) == "fdatasync":
                synced.setdefault(m.group(2), n)
            else:
                dirs_synced.append((n, m.group(2)))
            continue
        m = re.search(r'\brename(?:at2?)?\((?:AT_FDCWD, )?"([^"]+)", (?:AT_FDCWD, )?"([^"]+)"[^)]*\) = 0', line)
        if m:
            renames.append((n, m.group(1), m.group(2)))

    def dir_synced_after(n, path):
        d = os.path.dirname(os.path.realpath(path))
        return any(k > n and os.path.realpath(p) == d for k, p in dir_synced_after.dirs)
    dir_synced_after.dirs = dirs_synced
    written = [(n, a, b) for n, a, b in renames if ".tmp." in a]
    check(len(written) >= 10, "the origin's whole-file writes were traced (%d renames in all)" % len(renames))
    for n, a, b in written:
        check(a in synced and synced[a] < n, "%s synced before its rename" % b)
        check(dir_synced_after(n, b), "the directory of %s synced after the rename" % b)
    publish = [(n, a, b) for n, a, b in renames if a.endswith("/out") and "/media/" in b]
    eq(len(publish), 1, "one publish rename: %r" % [r for r in renames if ".tmp." not in r[1]])
    check(dir_synced_after(publish[0][0], publish[0][2]), "media/ synced after the publish rename")
    moved = [(n, a, b) for n, a, b in renames if "/originals/" in b]
    check(moved and dir_synced_after(moved[0][0], moved[0][2]), "originals/ synced after the upload's move")
    # the move follows the commit that completed the upload; with synchronous=FULL that commit synced the WAL
    # (NORMAL syncs it only at checkpoints)
    check(any(n < moved[0][0] for n in wal), "the WAL was synced before the completed upload moved: %r" % wal[:5])
    print("# %d whole-file writes, %d other renames, %d directory syncs traced" % (
        len(written), len(renames) - len(written), len(dirs_synced)))


def test_a_file_no_upload_owns_is_removed_at_start(s):
    """A join or a creation killed between writing its file and recording it leaves a file no row owns
    (a join's can be as big as its parts): the next start removes it, and keeps the ones rows own."""
    o = s.origin(check_exit=False)
    url = o.creation_url()
    r = request(url, "POST", headers=tus_headers(Upload_Length=10))
    owned = r.header("location").split("?")[0].rsplit("/", 1)[1]
    o.kill()
    orphan = os.path.join(o.data, "uploads", "z" * 20)
    with open(orphan, "wb") as f:
        f.write(os.urandom(1 << 20))
    # and the original of a video whose DELETE was killed after its rows went, before its files did
    original = os.path.join(o.data, "originals", "y" * 20)
    with open(original, "wb") as f:
        f.write(os.urandom(1 << 20))
    o.restart()
    s.cleanups.append(o.stop)
    check(not os.path.exists(orphan), "the orphan is gone")
    check(not os.path.exists(original), "the deleted video's original is gone")
    check(os.path.exists(os.path.join(o.data, "uploads", owned)), "the upload a row owns is kept")
    check("a creation or join that did not finish left it" in o.stderr(), "and the log says why")


def test_a_data_directory_split_across_file_systems_is_refused(s):
    """Uploads become originals by rename(2): with DATA/uploads on a file system of its own every
    hand-over failed after the client was told its upload was complete. Refused at start instead."""
    import subprocess
    import tempfile
    data = tempfile.mkdtemp(dir=s.tmp, prefix="split-")
    os.makedirs(os.path.join(data, "uploads"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "none", os.path.join(data, "uploads")],
                      stderr=subprocess.DEVNULL).returncode != 0:
        print("# cannot mount a tmpfs here (not root?): not checked")
        return
    try:
        p = subprocess.run([s.bin("peercdn-origin"), "serve", "--data", data, "--listen", "127.0.0.1:0",
                            "--upload-token", "tokentokentoken1"], capture_output=True, text=True, timeout=30)
    finally:
        subprocess.run(["umount", os.path.join(data, "uploads")])
    eq(p.returncode, 1, "refused: %r" % p.stderr)
    lines = p.stderr.strip().splitlines()
    check(len(lines) == 1 and "different file systems" in lines[0], "one line that says why: %r" % p.stderr)


FAIL_THREAD_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
/* pthread_create fails (EAGAIN, as at a pids cgroup's limit) from its FAIL_THREAD_N-th call on */
int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    static int calls;
    int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) = dlsym(RTLD_NEXT, "pthread_create");
    const char *n = getenv("FAIL_THREAD_N");
    if (n != NULL && ++calls >= atoi(n))
        return EAGAIN;
    return real(t, a, fn, arg);
}
"""


def test_an_origin_that_cannot_start_its_workers_exits_with_one_line(s):
    """(review) A start whose second worker thread could not be made (EAGAIN: a pids cgroup or nproc
    limit) returned with the first worker and the pipeline's handles live: the origin printed its error
    and then hung in its loop for good (and would have freed the pool under the running worker)."""
    import subprocess
    import tempfile
    src = os.path.join(s.tmp, "failthread.c")
    shim = os.path.join(s.tmp, "failthread.so")
    with open(src, "w") as f:
        f.write(FAIL_THREAD_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", shim, src, "-ldl"], check=True)
    env = dict(os.environ, LD_PRELOAD=shim)
    if os.environ.get("PEERCDN_SANITIZED") == "1":
        env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    for n in ("1", "2"):
        env["FAIL_THREAD_N"] = n
        data = tempfile.mkdtemp(dir=s.tmp, prefix="nothreads-")
        try:
            p = subprocess.run([s.bin("peercdn-origin"), "serve", "--data", data, "--listen", "127.0.0.1:0",
                                "--upload-token", "tokentokentoken1", "--workers", "1"], capture_output=True,
                               text=True, timeout=30 * SLOW, env=env)
        except subprocess.TimeoutExpired:
            raise AssertionError("thread %s refused: the origin hung instead of exiting" % n)
        eq(p.returncode, 1, "thread %s refused: exit 1 (%r)" % (n, p.stderr))
        eq(p.stderr.strip().splitlines(), ["peercdn-origin: cannot start the pipeline: cannot start %s worker thread 1 of 1: "
                                           "Resource temporarily unavailable" % ("light" if n == "1" else "heavy")],
           "thread %s refused: one line that says why" % n)


def test_a_locked_database_makes_no_task_run_twice(s):
    """Another process (an operator's sqlite3, a backup) holds the database locked for 12 s while the
    pipeline runs: the leases cannot be renewed and a finished job cannot be recorded meanwhile. The
    origin's own running tasks are not reclaimed once the lock goes, and a completion waits in memory to
    be recorded: no task runs twice. Before, a chunk already encoded was reclaimed and encoded again, or
    its completion was dropped and the task rescheduled (found by review)."""
    o = held_origin(s, 800)  # each job starts 0.8 s after it is handed out: the run spans the lock
    vid = o.upload(clip("crash_lock_640x360_12s", size="640x360", rate=30, dur=12), parallel=1)
    time.sleep(1.5)
    creation = o.creation_url()
    db = sqlite3.connect(os.path.join(o.data, "origin.db"), isolation_level=None, timeout=5)
    db.execute("BEGIN IMMEDIATE")
    # meanwhile the origin serves: reads at once, and writes that need the lock are a 503 to retry. Before,
    # the loop waited 5 s in each claim of a task, every tick, and answered nothing for the whole 12 s.
    t_end, slowest, writes = time.time() + 12, 0.0, []
    while time.time() < t_end - 1:
        for method, path, body, headers in (("GET", "/api/health", None, {}), ("GET", "/api/videos/" + vid, None, {}),
                                            ("PATCH", "/api/videos/" + vid, json.dumps({"title": "renamed"}).encode(),
                                             dict(o.auth(), **{"Content-Type": "application/json"}))):
            t0 = time.time()
            r = o.req(method, path, body=body, headers=headers)
            slowest = max(slowest, time.time() - t0)
            if method == "PATCH":
                writes.append((r.status, r.json().get("code"), r.header("retry-after")))
            else:
                eq(r.status, 200, "%s during the lock" % path)
        time.sleep(0.3)
    r = request(creation, "POST", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10"})
    tus_busy = (r.status, r.json().get("code"), r.header("retry-after"))
    time.sleep(max(0, t_end - time.time()))
    db.execute("ROLLBACK")
    db.close()
    print("# during the lock: the slowest answer took %.2f s; renames: %d" % (slowest, len(writes)))
    check(slowest < 2.5, "the origin answered within 2.5 s throughout the lock (the slowest %.2f s)" % slowest)
    eq(set(writes), {(503, "database_busy", "1")}, "a rename during the lock is a 503 to retry")
    eq(tus_busy, (503, "database_busy", "1"), "a tus creation during the lock is a 503 to retry")
    r = o.req("PATCH", "/api/videos/" + vid, body=json.dumps({"title": "renamed"}).encode(),
              headers=dict(o.auth(), **{"Content-Type": "application/json"}))
    eq((r.status, r.json()["title"]), (200, "renamed"), "renamed once the lock is gone")
    v = o.wait(vid, timeout=180)
    eq(v["state"], "ready", "published: %r" % v.get("error"))
    rows = [r for r in tasks(o.data)]
    twice = [(r[1], r[2], r[4]) for r in rows if r[4] > 1]
    err = o.stderr()
    waited = re.findall(r"task (\d+) finished; its completion waits for the database", err)
    print("# %d tasks; completions that waited for the lock: %d; lines at ERROR: %d" % (
        len(rows), len(waited), err.count(" ERROR ")))
    eq(len(waited), len(set(waited)), "each waiting completion is said once: %r" % waited)
    eq(err.count(" ERROR "), 0, "a lock another program holds is not an error: %s" % err[-1500:])
    eq(twice, [], "no task ran twice (kind, arg, attempts)")
    check("reclaimed" not in err and "will run again" not in err, "nothing reclaimed or run again: %s" % err[-1500:])
    eq(err.count("locked by another program: no task starts"), 1, "the lock is said once, not at every tick")
    check("the database is free again" in err, "and that it went")


def test_a_database_that_refuses_a_write_is_a_500_not_a_503(s):
    """A write the database refuses for another reason than a lock (here a trigger an operator added) is a
    500 database_error, not a 503 to retry, and the origin serves on; with the trigger gone, it works again."""
    o = s.origin()
    db = sqlite3.connect(os.path.join(o.data, "origin.db"), isolation_level=None, timeout=5)
    db.execute("CREATE TRIGGER test_no_uploads BEFORE INSERT ON uploads BEGIN SELECT RAISE(ABORT, 'refused by a test'); END")
    url = o.creation_url()
    r = request(url, "POST", headers=tus_headers(Upload_Length=10))
    eq((r.status, r.json()["code"]), (500, "database_error"), "a tus creation the database refuses: %r" % r.body)
    eq(o.req("GET", "/api/health").status, 200, "the origin serves on")
    db.execute("DROP TRIGGER test_no_uploads")
    db.close()
    r = request(url, "POST", headers=tus_headers(Upload_Length=10))
    eq(r.status, 201, "created once the trigger is gone")


def test_progress_never_goes_back(s):
    """A video's progress, polled while it is processed, never falls: probe and plan are its first 5%, the
    tasks they plan the rest. Before, the plan's tasks joining the sum took it from 0.04 back to 0.003
    (found by review)."""
    o = held_origin(s, 600)
    # 20 s of 1080p: six rungs, so the planned tasks weigh far more than probe and plan (the fall needs that)
    vid = o.upload(clip("crash_progress_1920x1080_20s", size="1920x1080", rate=25, dur=20), parallel=1)
    seen, deadline = [], time.time() + 120 * SLOW
    while time.time() < deadline:
        v = o.video(vid)
        seen.append(v["progress"])
        if v["state"] in ("ready", "failed") or v["progress"] > 0.06:  # past the plan: enough
            break
        time.sleep(0.05)
    o.req("DELETE", "/api/videos/" + vid, headers=o.auth())
    falls = [(a, b) for a, b in zip(seen, seen[1:]) if b < a]
    print("# progress: %s" % " ".join("%.3f" % x for x in seen[::max(1, len(seen) // 20)]))
    eq(falls, [], "progress never falls")
    check(0.04 in seen and seen[-1] > 0.04, "seen before and after the plan: %r" % sorted(set(seen)))


def test_a_revision_killed_before_its_publish_finishes_after_restart(s):
    """kill -9 while the publish of a revision (a subtitle file added to the published video) waits in a
    worker's queue, its copy of the publication staged and signed: the old publication still serves,
    untouched; after the restart the revision runs on and swaps its copy in, and nothing of the staging is
    left (the copy's mark, the work directory)."""
    o = held_origin(s, 1500, check_exit=False)
    vid = o.upload(clip("revision_320x180_4s", size="320x180", rate=25, dur=4), parallel=1)
    o.ready(vid, timeout=240)
    old_master = o.req("GET", "/v/%s/master.m3u8" % vid).body
    seg = o.req("GET", "/v/%s/v0/seg-00001.m4s" % vid)
    published = o.stderr().count(": publish started")
    r = o.req("POST", "/api/videos/%s/subtitles?language=en" % vid, headers=o.auth(),
              body=b"1\n00:00:00,500 --> 00:00:01,500\nhello\n")
    eq(r.status, 202, "added: %r" % r.body)
    deadline = time.time() + 60 * SLOW
    while time.time() < deadline and o.stderr().count(": publish started") == published:
        time.sleep(0.05)
    check(o.stderr().count(": publish started") == published + 1, "the revision's publish was handed to a worker")
    o.kill()
    eq([(r[1], r[2], r[3]) for r in tasks(o.data) if r[1] == "publish"], [("publish", 0, "done"), ("publish", 1, "running")],
       "killed with the revision's publish handed out")
    media = os.path.join(o.data, "media", vid)
    check(os.path.exists(os.path.join(o.data, "work", vid, "out", ".staged")), "its staged copy waits")
    with open(os.path.join(media, "master.m3u8"), "rb") as f:
        eq(f.read(), old_master, "the publication is untouched")
    o.restart()
    s.cleanups.append(o.stop)
    deadline = time.time() + 120 * SLOW
    v = {}
    while time.time() < deadline:
        v = o.req("GET", "/api/videos/" + vid).json()
        if not v["updating"]:
            break
        time.sleep(0.2)
    eq(([t["language"] for t in v["subtitles"]], v["updating"]), (["en"], False), "the revision finished: %r" % v)
    check('LANGUAGE="en"' in o.req("GET", "/v/%s/master.m3u8" % vid).body.decode(), "the new master names the track")
    after = o.req("GET", "/v/%s/v0/seg-00001.m4s" % vid)
    eq((after.body == seg.body, after.header("etag")), (True, seg.header("etag")), "the segments did not change")
    check(not os.path.exists(os.path.join(media, ".staged")), "the copy's mark is gone")
    check(not os.path.exists(os.path.join(o.data, "work", vid)), "and the work directory")
    ffmpeg_decode("%s/v/%s/master.m3u8" % (o.url, vid))

S.run([test_a_locked_database_makes_no_task_run_twice, test_a_database_that_refuses_a_write_is_a_500_not_a_503, test_progress_never_goes_back, test_kill_during_transcoding_then_restart, test_a_stop_keeps_the_tasks_handed_to_workers_that_had_not_started_them,
       test_temporary_files_a_killed_writer_left_are_not_published, test_a_task_the_origin_keeps_dying_in_fails_its_video,
       test_a_video_deleted_while_its_chunk_starts_leaves_no_directories, test_acknowledged_upload_bytes_survive_kill,
       test_published_files_are_on_disk_before_their_names,
       test_a_file_no_upload_owns_is_removed_at_start, test_a_data_directory_split_across_file_systems_is_refused,
       test_an_origin_that_cannot_start_its_workers_exits_with_one_line,
       test_a_revision_killed_before_its_publish_finishes_after_restart])
