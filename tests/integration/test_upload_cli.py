#!/usr/bin/env python3
"""peercdn-origin upload: parallel partial uploads joined by concatenation, resume after an
interruption (HEAD offsets), a progress bar on a terminal, and one-line errors."""
import http.server
import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import TOKEN, QuietHandler, Suite, check, clip, eq, meta, prom_parse, request, tus_headers  # noqa: E402

S = Suite("uploadcli")
st = {}


def cli(*args, env=None):
    p = subprocess.run([S.bin("peercdn-origin"), "upload"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(os.environ, **(env or {})), timeout=300)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def big_file():
    """A ~16 MB clip, so that it splits into several partial uploads of several PATCHes each."""
    return clip("cli_big_720p", size="1280x720", rate=30, dur=8, vopts=["-b:v", "16M", "-preset", "ultrafast"])


def test_parallel_upload_prints_the_video_id(s):
    o = s.origin()
    st["o"] = o
    src = big_file()
    rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--parallel", "4", "--chunk-mb", "1", "--no-progress",
                       "--state", os.path.join(s.tmp, "s1.json"))
    eq(rc, 0, "exit code (%s)" % err)
    vid = out.strip()
    check(re.fullmatch(r"[a-z2-7]{20}", vid), "video id on stdout: %r" % out)
    v = o.ready(vid)
    eq(v["source_size"], os.path.getsize(src), "size")
    with open(os.path.join(o.data, "originals", vid), "rb") as f, open(src, "rb") as g:
        check(f.read() == g.read(), "identical bytes")
    log = o.stderr()
    eq(len(re.findall(r"created partial upload", log)), 4, "four partial uploads")
    check("joined 4 partial uploads into " + vid in log, "joined by concatenation")


def test_resume_after_interruption(s):
    o = st["o"]
    src = big_file()
    state = os.path.join(s.tmp, "s2.json")
    rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--parallel", "2", "--chunk-mb", "1", "--no-progress",
                       "--state", state, env={"PEERCDN_FAULT_UPLOAD_STOP_AFTER": "2"})
    eq(rc, 130, "interrupted run exits 130 (%s)" % err)
    check("run the same command again to resume" in err, "tells how to resume: %r" % err)
    check(os.path.exists(state), "state kept")
    before = o.stderr().count("created partial upload")
    rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--parallel", "2", "--chunk-mb", "1", "--no-progress",
                       "--state", state)
    eq(rc, 0, "resumed run (%s)" % err)
    eq(err, "", "nothing on stderr (the notice is for a terminal)")
    eq(o.stderr().count("created partial upload"), before, "no new partial uploads: it continued the old ones")
    check(not os.path.exists(state), "state removed after success")
    vid = out.strip()
    o.ready(vid)
    with open(os.path.join(o.data, "originals", vid), "rb") as f, open(src, "rb") as g:
        check(f.read() == g.read(), "identical bytes after resume")


def test_a_file_changed_during_the_upload_is_not_joined(s):
    """The file is rewritten while it is being uploaded (the origin paused meanwhile, so that the change falls
    between two PATCHes): the CLI stops with one line saying so, and joins nothing. Before, it joined parts of
    the old file and of the new one into a video of neither (found by review)."""
    import signal
    o = st["o"]
    src = os.path.join(s.tmp, "changing.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(48 << 20))
    state = os.path.join(s.tmp, "changing.json")
    created = o.stderr().count("created partial upload")
    queued = o.stderr().count(") queued")
    p = subprocess.Popen([S.bin("peercdn-origin"), "upload", src, "--origin", o.url, "--token", TOKEN, "--parallel", "1",
                          "--chunk-mb", "1", "--no-progress", "--state", state], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while o.stderr().count("created partial upload") == created and p.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    o.proc.send_signal(signal.SIGSTOP)
    try:
        with open(src, "r+b") as f:
            f.seek(40 << 20)
            f.write(b"\0" * (1 << 20))
    finally:
        o.proc.send_signal(signal.SIGCONT)
    out, err = p.communicate(timeout=120)
    eq(p.returncode, 1, "exit status (%s)" % err.decode())
    lines = err.decode().strip().splitlines()
    check(len(lines) == 1 and "changed during the upload" in lines[0], "one line says why: %r" % lines)
    eq(out, b"", "no video id")
    time.sleep(0.5)
    eq(o.stderr().count(") queued"), queued, "nothing joined into a video")


def test_a_state_that_does_not_cover_the_file_starts_over(s):
    """A state file whose parts do not tile the file (edited, or another tool's) is not resumed: a copy
    of 10 bytes, or of overlapping parts, would be uploaded and reported as a success."""
    o = st["o"]
    src = big_file()
    size = os.path.getsize(src)
    for name, parts in (("short", [(0, 10)]), ("overlap", [(0, size // 2 + 100), (size // 2, size - size // 2)]),
                        ("negative", [(-5, size + 5)])):
        state = os.path.join(s.tmp, "s6-%s.json" % name)
        rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--parallel", "2", "--chunk-mb", "1",
                           "--no-progress", "--state", state, env={"PEERCDN_FAULT_UPLOAD_STOP_AFTER": "1"})
        eq(rc, 130, "interrupted run (%s)" % err)
        with open(state) as f:
            saved = json.load(f)
        saved["parts"] = [dict(saved["parts"][0], start=a, length=n) for a, n in parts]
        with open(state, "w") as f:
            json.dump(saved, f)
        rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--parallel", "2", "--chunk-mb", "1",
                           "--no-progress", "--state", state)
        eq(rc, 0, "%s: run (%s)" % (name, err))
        eq(err, "", "%s: nothing on stderr" % name)
        vid = out.strip()
        o.ready(vid)
        with open(os.path.join(o.data, "originals", vid), "rb") as f, open(src, "rb") as g:
            check(f.read() == g.read(), "%s: identical bytes" % name)


def test_progress_bar_on_a_terminal(s):
    o = st["o"]
    src = big_file()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(S.bin("peercdn-origin"), [S.bin("peercdn-origin"), "upload", src, "--origin", o.url, "--token", TOKEN,
                                          "--chunk-mb", "1", "--state", os.path.join(s.tmp, "s3.json")])
    out = b""
    while True:
        r, _, _ = select.select([fd], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    eq(os.waitstatus_to_exitcode(status), 0, "exit code")
    text = out.decode(errors="replace")
    check(re.search(r"\[#+\.*\]\s+100\.0%", text), "progress bar reaches 100%%: %r" % text[-300:])
    check("MB/s" in text, "rate shown")


def test_the_resume_state_is_the_clients_own(s):
    """The resume state never costs the user a file (audit): a --state naming a file that is not a state
    this client wrote (before: overwritten, then deleted on success), or naming the video itself, is
    refused; a FIFO as the video or the state is refused at once (before: a hang); the state is written
    0600 (it holds upload URLs); a video changed after an
    interruption (same size, the same second) is uploaded anew, not resumed into a mix of both."""
    o = st["o"]
    src = big_file()
    notes = os.path.join(s.tmp, "notes.txt")
    with open(notes, "w") as f:
        f.write("my notes")
    rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--no-progress", "--state", notes)
    eq((rc, len(err.strip().splitlines())), (1, 1), "a file that is no state: refused in one line (%r)" % err)
    eq(open(notes).read(), "my notes", "and kept")
    copy = os.path.join(s.tmp, "copy.mp4")
    with open(src, "rb") as f, open(copy, "wb") as g:
        g.write(f.read())
    rc, out, err = cli(copy, "--origin", o.url, "--token", TOKEN, "--no-progress", "--state", copy)
    eq(rc, 2, "the video as its own state (%r)" % err)
    eq(os.path.getsize(copy), os.path.getsize(src), "the video is intact")
    # a state that cannot be written: said before a byte is sent (the first cut of this hung instead)
    rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--no-progress",
                       "--state", os.path.join(s.tmp, "no-such-dir", "st.json"))
    eq((rc, len(err.strip().splitlines())), (1, 1), "an unwritable state: one line (%r)" % err)
    check("cannot write the resume state" in err, "named: %r" % err)
    fifo = os.path.join(s.tmp, "fifo")
    os.mkfifo(fifo)
    for args in ([fifo], [src, "--state", fifo]):
        rc, out, err = cli(*args, "--origin", o.url, "--token", TOKEN, "--no-progress")
        eq((rc, len(err.strip().splitlines())), (1, 1), "a FIFO in %r: refused in one line (%r)" % (args, err))
    # the state is private (its temporary file is a new one of the process's own, O_EXCL: unit/test_fs)
    state = os.path.join(s.tmp, "s7.json")
    rc, out, err = cli(copy, "--origin", o.url, "--token", TOKEN, "--parallel", "2", "--chunk-mb", "1", "--no-progress",
                       "--state", state, env={"PEERCDN_FAULT_UPLOAD_STOP_AFTER": "1"})
    eq(rc, 130, "interrupted (%r)" % err)
    eq(os.stat(state).st_mode & 0o777, 0o600, "the state (it holds upload URLs) is private")
    # the video changes in place, same size, within the same second: uploaded anew
    with open(copy, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 4096)
    st_before = os.stat(copy)
    os.utime(copy, ns=(st_before.st_atime_ns, (st_before.st_mtime_ns // 10**9) * 10**9))
    rc, out, err = cli(copy, "--origin", o.url, "--token", TOKEN, "--parallel", "2", "--chunk-mb", "1", "--no-progress",
                       "--state", state)
    eq(rc, 0, "the changed video (%r)" % err)
    vid = out.strip()
    o.ready(vid)
    with open(os.path.join(o.data, "originals", vid), "rb") as f, open(copy, "rb") as g:
        check(f.read() == g.read(), "the origin holds the changed video, not a mix")


def test_errors_are_one_line_and_nonzero(s):
    o = st["o"]
    src = big_file()
    rc, out, err = cli(src, "--origin", o.url, "--token", "wrong-token", "--no-progress",
                       "--state", os.path.join(s.tmp, "s4.json"))
    eq(rc, 1, "wrong token")
    eq(len(err.strip().splitlines()), 1, "one line: %r" % err)
    rc, out, err = cli("/nonexistent/file.mp4", "--origin", o.url, "--token", TOKEN)
    eq(rc, 1, "missing file")
    eq(len(err.strip().splitlines()), 1, "one line: %r" % err)
    rc, out, err = cli(src, "--token", TOKEN)
    eq(rc, 2, "usage error")
    eq(len(err.strip().splitlines()), 1, "one line: %r" % err)
    rc, out, err = cli(src, "--origin", "http://127.0.0.1:1", "--token", TOKEN, "--no-progress",
                       "--state", os.path.join(s.tmp, "s5.json"))
    eq(rc, 1, "unreachable origin")
    eq(len(err.strip().splitlines()), 1, "one line: %r" % err)
    p = subprocess.run([S.bin("peercdn-origin"), "serve", "--data", s.tmp], stderr=subprocess.PIPE)
    eq(p.returncode, 2, "serve usage")
    eq(len(p.stderr.decode().strip().splitlines()), 1, "one line")
    p = subprocess.run([S.bin("peercdn-origin"), "--help"], stdout=subprocess.PIPE)
    eq(p.returncode, 0, "--help")
    check(b"serve" in p.stdout and b"upload" in p.stdout, "help text")


def test_long_titles_are_cut_at_a_character_and_control_characters_become_spaces(s):
    """A title is what PATCH /api/videos/ID would accept: 1 to 511 bytes of UTF-8 without control characters.
    A longer one in a tus client's metadata used to fail to decode into a buffer of 512 bytes, and the
    file name silently became the title; now it is cut at a character boundary, and control characters
    become spaces. The CLI refuses a --title over 511 bytes (exit 2) rather than have it cut."""
    o = st["o"]
    url = o.creation_url()
    body = b"not a video, but a video record with a title"
    for sent, want in (("\u00e9" * 300, "\u00e9" * 255),  # 600 bytes: cut to 510, not inside the 256th
                       ("x" * 510 + "\u20ac", "x" * 510),  # the euro sign's 3 bytes would end at 513
                       ("x" * 511 + "yz", "x" * 511),
                       ("tab\there\r\nnew line\x7fdel\x01", "tab here  new line del "),
                       ("evil\u202etxt\u0085x\u2028", "evil   txt  x   "),  # a bidi override, C1, a separator: a space a byte
                       ("\u00e9" * 1500, "\u00e9" * 255)):  # 3000 bytes, 4000 of base64: the metadata limit
        r = request(url, "POST", body=body, headers=tus_headers(
            Upload_Length=len(body), Content_Type="application/offset+octet-stream",
            Upload_Metadata=meta(filename="file.bin", title=sent)))
        eq(r.status, 201, "creation with %d bytes of title: %r" % (len(sent.encode()), r))
        vid = r.header("location").split("?")[0].rsplit("/", 1)[1]
        got = o.video(vid)["title"]
        eq((len(got.encode()), got), (len(want.encode()), want), "a title of %d bytes" % len(sent.encode()))
        o.req("DELETE", "/api/videos/" + vid, headers=o.auth())
    src = os.path.join(s.tmp, "title-src.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(1 << 16))
    rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--no-progress", "--title", "\u00e9" * 256,
                       "--state", os.path.join(s.tmp, "title.json"))
    eq((rc, out, len(err.strip().splitlines())), (2, "", 1), "a --title of 512 bytes: usage error (%r)" % err)
    check("511 bytes" in err, "says the limit: %r" % err)
    title = "\u00e9" * 255 + "!"
    rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--no-progress", "--title", title,
                       "--state", os.path.join(s.tmp, "title.json"))
    eq(rc, 0, "a --title of 511 bytes (%r)" % err)
    eq(o.video(out.strip())["title"], title, "kept whole")


def short_lived_origin(s):
    """An origin whose creation URLs expire 2 s after POST /api/uploads (a test hook; an hour otherwise),
    and which takes one upload body at a time (--max-uploads 1)."""
    if "short" not in st:
        os.environ["PEERCDN_TEST_CREATION_TTL_S"] = "2"
        try:
            st["short"] = s.origin("--max-uploads", "1")
        finally:
            del os.environ["PEERCDN_TEST_CREATION_TTL_S"]
    return st["short"]


def upload_bytes(o):
    time.sleep(1.1)  # /metrics is built at most once a second
    return prom_parse(o.req("GET", "/metrics").body.decode())["peercdn_origin_upload_bytes_total"]


def test_a_join_after_the_upload_url_expired_gets_a_new_one(s):
    """The parts are created and joined with the creation URL, which expires an hour after it was handed
    out: an upload taking longer failed at the join with 403 expired, and so did every later resume. The
    CLI now asks for a new URL with its token and joins again. Here the origin's only body slot is held
    by another client past the URL's 2 s, so the CLI's PATCHes wait (503 busy) and its join comes late."""
    o = short_lived_origin(s)
    src = os.path.join(s.tmp, "late-join.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(3 << 20))
    held = request(o.creation_url(), "POST", headers=tus_headers(Upload_Length=100))
    u = urllib.parse.urlsplit(held.header("location"))
    sock = socket.create_connection((u.hostname, u.port))
    sock.sendall(("PATCH %s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                  "Content-Type: application/offset+octet-stream\r\nContent-Length: 100\r\n\r\n" %
                  (u.path, u.netloc)).encode() + b"x" * 10)
    time.sleep(0.3)
    state = os.path.join(s.tmp, "late-join.json")
    p = subprocess.Popen([S.bin("peercdn-origin"), "upload", src, "--origin", o.url, "--token", TOKEN, "--parallel",
                          "2", "--chunk-mb", "1", "--no-progress", "--state", state],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while not os.path.exists(state) and time.time() < deadline:
        time.sleep(0.05)
    with open(state) as f:
        expires = int(re.search(r"exp=(\d+)", json.load(f)["create_url"]).group(1))
    time.sleep(max(0, expires + 1.5 - time.time()))  # the URL has expired: let the PATCHes in
    sock.close()
    out, err = p.communicate(timeout=120)
    eq(p.returncode, 0, "the upload (%r)" % err.decode())
    vid = out.decode().strip()
    check("joined 2 partial uploads into " + vid in o.stderr(), "joined: %s" % o.stderr()[-600:])
    with open(os.path.join(o.data, "originals", vid), "rb") as f, open(src, "rb") as g:
        check(f.read() == g.read(), "identical bytes")


def test_a_resume_after_the_upload_url_expired_sends_nothing_again(s):
    """A run stopped after its first PATCH, resumed once the creation URL in its state has expired: the
    resume gets a new URL, goes on with the parts it made (none created again) and sends only what the
    origin did not have."""
    o = short_lived_origin(s)
    src = os.path.join(s.tmp, "late-resume.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(4 << 20))
    state = os.path.join(s.tmp, "late-resume.json")
    before = upload_bytes(o)
    parts_before = o.stderr().count("created partial upload")
    rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--parallel", "2", "--chunk-mb", "1", "--no-progress",
                       "--state", state, env={"PEERCDN_FAULT_UPLOAD_STOP_AFTER": "1"})
    eq(rc, 130, "interrupted (%r)" % err)
    with open(state) as f:
        saved = json.load(f)
    expires = int(re.search(r"exp=(\d+)", saved["create_url"]).group(1))
    time.sleep(max(0, expires + 1.5 - time.time()))
    eq(request(saved["create_url"], "POST", headers=tus_headers(Upload_Length=5)).json()["code"], "expired",
       "the state's creation URL has expired")
    rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--parallel", "2", "--chunk-mb", "1", "--no-progress",
                       "--state", state)
    eq(rc, 0, "the resumed run (%r)" % err)
    vid = out.strip()
    eq(o.stderr().count("created partial upload"), parts_before + 2, "the two parts of the first run, no more")
    eq(upload_bytes(o) - before, os.path.getsize(src), "every byte sent once")
    eq(saved.get("create_expires"), expires, "the state kept the URL's expiry (the API's \"expires\")")
    with open(os.path.join(o.data, "originals", vid), "rb") as f, open(src, "rb") as g:
        check(f.read() == g.read(), "identical bytes")


class FakeOrigin(QuietHandler):
    """A tus server that goes wrong in one way (self.server.mode)."""

    def do_POST(self):
        srv, base = self.server, "http://127.0.0.1:%d" % self.server.server_address[1]
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/api/uploads":
            self.answer(201, json.dumps({"upload_url": base + "/files/"}).encode(),
                        [("Content-Type", "application/json")])
        elif "final" in self.headers.get("Upload-Concat", ""):
            srv.joins = getattr(srv, "joins", 0) + 1
            if srv.mode == "busy-join" and srv.joins <= 2:  # --max-uploads reached: nothing was joined
                self.answer(503, b'{"code":"busy","message":"retry"}', [("Retry-After", "2")])
                return
            if srv.mode == "proxy-join" and srv.joins <= 2:  # a proxy in front gave up: the join may have happened
                self.answer(502 if srv.joins == 1 else 504, b"<html>gateway</html>", [])
                return
            vid = "etc\x1b[31mRED" if srv.mode == "bad-id" else "a" * 20
            self.answer(201, b"", [("Location", base + "/files/" + vid)])
        else:
            srv.parts += 1
            srv.offsets["/files/p%d" % srv.parts] = 0
            self.answer(201, b"", [("Location", base + "/files/p%d" % srv.parts)])

    def do_PATCH(self):
        srv = self.server
        n = int(self.headers.get("Content-Length", 0))
        self.rfile.read(n)
        if srv.mode == "offset-past":
            self.answer(204, b"", [("Upload-Offset", str(10 ** 15))])
            return
        if srv.mode == "backwards" and srv.offsets.get(self.path, 0) > 0:
            self.answer(500, b"", [])  # and HEAD says 0: the part would be sent again and again
            srv.offsets[self.path] = 0
            return
        if srv.mode == "endless":  # an answer that never ends, as fast as the client reads
            self.send_response(200)
            self.send_header("Content-Length", str(10 ** 13))
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"x" * 65536)
            except OSError:
                return
        srv.offsets[self.path] = srv.offsets.get(self.path, 0) + n
        self.answer(204, b"", [("Upload-Offset", str(srv.offsets[self.path]))])

    def do_HEAD(self):
        self.answer(200, b"", [("Upload-Offset", str(self.server.offsets.get(self.path, 0)))])

    def do_GET(self):
        self.answer(404, b'{"code":"not_found","message":"no such video"}', [("Content-Type", "application/json")])


def test_a_hostile_server_cannot_make_the_cli_claim_success_or_hang(s):
    """An origin that claims to hold more than was sent, names a video id that is not one, or forgets the
    video while the CLI waits: each ends with one line and exit 1, not a printed id, an escape sequence on
    the terminal, or a wait for ever."""
    src = os.path.join(s.tmp, "fake-src.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(3 << 20))
    for mode, extra, text in (("offset-past", [], "past the bytes sent"), ("bad-id", [], "names no video id"),
                              ("gone", ["--wait"], "no video"), ("backwards", ["--chunk-mb", "1", "--parallel", "1"], "went back"),
                              ("endless", [], "over 64 KiB")):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOrigin)
        srv.mode, srv.parts, srv.offsets = mode, 0, {}
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            rc, out, err = cli(src, "--origin", "http://127.0.0.1:%d" % srv.server_address[1], "--token", TOKEN,
                               "--no-progress", "--state", os.path.join(s.tmp, "fake-%s.json" % mode), *extra)
        finally:
            srv.shutdown()
        lines = [l for l in err.strip().splitlines() if not l.startswith("ready")]
        eq(rc, 1, "%s: exit status (stdout %r, stderr %r)" % (mode, out, err))
        check(text in err and "\x1b" not in err + out, "%s: the reason, printable: %r" % (mode, err))
        check(mode == "gone" or out == "", "%s: no video id printed: %r" % (mode, out))


def upload_to_fake(s, mode):
    """A 1 MiB upload in two parts by the CLI to a FakeOrigin in |mode|: (the fake, exit code, stdout, stderr)."""
    src = os.path.join(s.tmp, "%s-src.bin" % mode)
    with open(src, "wb") as f:
        f.write(os.urandom(1 << 20))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOrigin)
    srv.mode, srv.parts, srv.offsets = mode, 0, {}
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        rc, out, err = cli(src, "--origin", "http://127.0.0.1:%d" % srv.server_address[1], "--token", TOKEN,
                           "--no-progress", "--parallel", "2", "--state", os.path.join(s.tmp, "%s.json" % mode))
    finally:
        srv.shutdown()
    return srv, rc, out, err


def test_a_join_the_origin_is_too_busy_for_is_tried_again(s):
    """An origin at --max-uploads answers the join 503 busy (nothing joined): the CLI tries it again later
    instead of failing the upload after every part was sent."""
    srv, rc, out, err = upload_to_fake(s, "busy-join")
    eq((rc, out.strip()), (0, "a" * 20), "joined on the third try: %r" % err)
    eq(srv.joins, 3, "three joins asked")


def test_a_join_a_proxy_answered_502_or_504_is_asked_again(s):
    """A proxy's 502 or 504 to the join says nothing of whether the origin joined the parts: the CLI asks
    again (a join asked again for the same parts answers the same final upload), as docs/origin.md says."""
    srv, rc, out, err = upload_to_fake(s, "proxy-join")
    eq((rc, out.strip()), (0, "a" * 20), "joined on the third try: %r" % err)
    eq(srv.joins, 3, "three joins asked")


def test_a_join_whose_answer_was_lost_is_learned_on_the_next_run(s):
    """The join committed but its 201 never reached the CLI (the origin died right after the commit, or
    the connection broke): the next run found its parts gone (HEAD 404) and told the user to start over,
    which uploaded the file again as a second video. Now the parts' final creation, asked again, is
    answered with the final upload they became, and the next run prints that video's id. Here the CLI
    stops after its last PATCH and the test makes the join itself, reading the answer nobody else sees."""
    o = st["o"]
    src = os.path.join(s.tmp, "lost-join.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(2 << 20))
    state = os.path.join(s.tmp, "lost-join.json")
    rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--parallel", "2", "--chunk-mb", "1", "--no-progress",
                       "--state", state, env={"PEERCDN_FAULT_UPLOAD_STOP_AFTER": "2"})
    eq(rc, 130, "stopped after the last PATCH (%s)" % err)
    with open(state) as f:
        saved = json.load(f)
    concat = "final;" + " ".join(p["url"] for p in saved["parts"])
    headers = {"Tus-Resumable": "1.0.0", "Upload-Concat": concat}
    first = request(saved["create_url"], "POST", headers=headers)
    eq(first.status, 201, "the join")
    vid = first.header("location").split("?")[0].rsplit("/", 1)[1]
    again = request(saved["create_url"], "POST", headers=headers)
    eq((again.status, again.header("location").split("?")[0].rsplit("/", 1)[1]), (201, vid),
       "asked again: the same final upload")
    before = o.stderr().count("created partial upload")
    rc, out, err = cli(src, "--origin", o.url, "--token", TOKEN, "--parallel", "2", "--chunk-mb", "1", "--no-progress",
                       "--state", state)
    eq((rc, out.strip()), (0, vid), "the next run learns the video (%s)" % err)
    eq(o.stderr().count("created partial upload"), before, "nothing uploaded again")
    check(not os.path.exists(state), "state removed")
    # a final creation naming only some of a join's parts is still refused
    bogus = request(saved["create_url"], "POST", headers={"Tus-Resumable": "1.0.0", "Upload-Concat": "final;" + saved["parts"][0]["url"]})
    eq((bogus.status, bogus.json()["code"]), (400, "bad_concat"), "not the same parts")
    eq(o.video(vid)["id"], vid, "the one video")


S.run([test_parallel_upload_prints_the_video_id, test_resume_after_interruption,
       test_a_file_changed_during_the_upload_is_not_joined, test_a_state_that_does_not_cover_the_file_starts_over, test_progress_bar_on_a_terminal,
       test_the_resume_state_is_the_clients_own, test_errors_are_one_line_and_nonzero, test_a_hostile_server_cannot_make_the_cli_claim_success_or_hang,
       test_a_join_the_origin_is_too_busy_for_is_tried_again,
       test_a_join_a_proxy_answered_502_or_504_is_asked_again,
       test_long_titles_are_cut_at_a_character_and_control_characters_become_spaces,
       test_a_join_after_the_upload_url_expired_gets_a_new_one, test_a_resume_after_the_upload_url_expired_sends_nothing_again, test_a_join_whose_answer_was_lost_is_learned_on_the_next_run])
