"""Shared helpers for peercdn's integration tests.

Tests start the real binaries on ephemeral loopback ports, generate their
media with the ffmpeg CLI at test time (cached under $PEERCDN_TEST_MEDIA),
and check results with independent tools (ffprobe, ffmpeg, openssl, curl,
node + tus-js-client) as well as plain HTTP. Output is TAP: one
"ok N - name" / "not ok N - name" line per test case.
"""
import argparse
import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANITIZED = os.environ.get("PEERCDN_SANITIZED") == "1"
SLOW = 3.0 if SANITIZED else 1.0
TOKEN = "test-upload-token"
# The processes the tests start take SIGHUP's disposition from us, and one started with it ignored (a
# suite run under nohup) keeps it ignored (docs/peer.md): the default, as from a terminal, so that tests of
# SIGHUP do not depend on how the suite was started. (Jobs run in sessions of their own: no terminal
# hangs up on them.)
signal.signal(signal.SIGHUP, signal.SIG_DFL)


def args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--only")
    return ap.parse_known_args()[0]


class Suite:
    """Runs test functions in order and prints TAP."""

    def __init__(self, name):
        self.name = name
        self.a = args()
        self.build = os.path.abspath(self.a.build)
        self.n = 0
        self.failed = 0
        self.tmp = tempfile.mkdtemp(prefix="peercdn-%s-" % name)
        self.cleanups = []

    def bin(self, name):
        sub = {"peercdn-origin": "origin", "peercdn-tracker": "tracker", "peercdn-peer": "peer", "peercdn-sim": "sim"}[name]
        return os.path.join(self.build, sub, name)

    def run(self, tests):
        # --only "a b": the tests whose names contain any of the words (a setup test and the one it serves)
        tests = [t for t in tests if not self.a.only or any(w in t.__name__ for w in self.a.only.split())]
        print("1..%d" % len(tests))
        for t in tests:
            self.n += 1
            name = t.__name__[5:] if t.__name__.startswith("test_") else t.__name__
            t0 = time.time()
            try:
                t(self)
                print("ok %d - %s" % (self.n, name))
            except Exception as e:  # noqa: BLE001 - a failing test is reported, not raised
                self.failed += 1
                print("not ok %d - %s" % (self.n, name))
                for line in traceback.format_exc().splitlines():
                    print("# " + line)
            print("# %s took %.1fs" % (name, time.time() - t0))
            sys.stdout.flush()
        for c in reversed(self.cleanups):
            try:
                c()
            except Exception as e:  # noqa: BLE001
                self.failed += 1
                print("not ok %d - cleanup" % (self.n + 1))
                print("# cleanup failed: %s" % e)
        if self.failed == 0:
            shutil.rmtree(self.tmp, ignore_errors=True)
        sys.exit(1 if self.failed else 0)

    def origin(self, *extra, data=None, workers=2, check_exit=True):
        o = Origin(self, data or tempfile.mkdtemp(dir=self.tmp, prefix="origin-"), list(extra), workers)
        self.cleanups.append(o.stop if check_exit else o.kill)
        return o

    def tracker(self, *extra, db=None, check_exit=True):
        t = Tracker(self, db or os.path.join(tempfile.mkdtemp(dir=self.tmp, prefix="tracker-"), "tracker.db"),
                    list(extra))
        self.cleanups.append(t.stop if check_exit else t.kill)
        return t


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def short(v, n=300):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "...(%d chars)" % len(r)


def eq(a, b, msg=""):
    if a != b:
        raise AssertionError("%s: %s != %s" % (msg or "values differ", short(a), short(b)))


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body.decode())

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:200])


def request(url, method="GET", body=None, headers=None, timeout=30):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    path = u.path + ("?" + u.query if u.query else "")
    try:
        conn.request(method, path or "/", body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.getheaders(), data)
    finally:
        conn.close()


# a "listening on" line's address: IPv4, or IPv6 in brackets (group 1 keeps them)
HOSTPORT = rb"listening on %s://([0-9.]+|\[[0-9a-fA-F:.]+\]):(\d+)"

SANITIZER_REPORT = re.compile(r"(ERROR: (Address|Leak)Sanitizer|runtime error:)")


def read_until_close(sock):
    """Every byte received on |sock| until the server closes it."""
    answer = b""
    while True:
        b = sock.recv(65536)
        if not b:
            return answer
        answer += b


def raw_exchange(host, port, data, timeout=10):
    """Sends |data| on a new TCP connection and returns every byte received until the server closes it."""
    with socket.create_connection((host, port), timeout=timeout) as c:
        c.sendall(data)
        return read_until_close(c)


def log_tail(path, n=6000):
    """The last |n| characters of a process's stderr log ("" when there is none)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-n:]
    except OSError:
        return ""


class Server:
    """A peercdn server process: started with --listen 127.0.0.1:0, found by its "listening on" line,
    stopped with SIGTERM and required to exit 0 without sanitizer reports (leaks included)."""

    name = "server"

    def __init__(self, suite, argv, log_path):
        self.suite = suite
        self.argv = argv
        self.log_path = log_path
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.log)
        deadline = time.time() + 30 * SLOW
        line = b""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(HOSTPORT % b"http", line)
            if m:
                self.host, self.port = m.group(1).decode().strip("[]"), int(m.group(2))
                self.url = "http://%s:%d" % (m.group(1).decode(), self.port)
                self.banner = line.decode()
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return
        raise AssertionError("%s did not start: %r\n%s" % (self.name, line, self.stderr()))

    def stderr(self):
        return log_tail(self.log_path)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None and self.proc.returncode == -9:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("%s did not stop on SIGTERM\n%s" % (self.name, self.stderr()))
        self.log.close()
        err = self.stderr()
        rc = self.proc.returncode
        self.proc = None
        if rc != 0 or SANITIZER_REPORT.search(err):
            raise AssertionError("%s exited with %d\n%s" % (self.name, rc, err))

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self):
        self.start()

    def req(self, method, path, body=None, headers=None, timeout=30):
        return request(self.url + path, method, body, headers, timeout)


class Origin(Server):
    name = "origin"

    def __init__(self, suite, data, extra, workers):
        self.data = data
        argv = [suite.bin("peercdn-origin"), "serve", "--data", data, "--listen", "127.0.0.1:0",
                "--upload-token", TOKEN, "--workers", str(workers), "--lease-seconds", "3",
                "--preset", "veryfast"] + extra
        super().__init__(suite, argv, data.rstrip("/") + ".log")

    def auth(self):
        return {"Authorization": "Bearer " + TOKEN}

    def creation_url(self):
        r = self.req("POST", "/api/uploads", headers=self.auth())
        eq(r.status, 201, "POST /api/uploads")
        return r.json()["upload_url"]

    def upload(self, path, title=None, parallel=2, env=None, extra=()):
        """Uploads with the peercdn-origin upload CLI; returns the video id."""
        argv = [self.suite.bin("peercdn-origin"), "upload", path, "--origin", self.url, "--token", TOKEN,
                "--parallel", str(parallel), "--state", os.path.join(self.suite.tmp, "state-%d.json" % time.time_ns())]
        if title:
            argv += ["--title", title]
        argv += list(extra)
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300 * SLOW,
                           env=dict(os.environ, **(env or {})))
        if p.returncode != 0:
            raise AssertionError("upload failed (%d): %s" % (p.returncode, p.stderr.decode()))
        return p.stdout.decode().strip().splitlines()[-1]

    def video(self, vid):
        r = self.req("GET", "/api/videos/" + vid)
        eq(r.status, 200, "GET video")
        return r.json()

    def wait(self, vid, states=("ready", "failed"), timeout=120):
        deadline = time.time() + timeout * SLOW
        v = None
        while time.time() < deadline:
            v = self.video(vid)
            if v["state"] in states:
                return v
            time.sleep(0.2)
        raise AssertionError("video %s did not reach %s: %r\n%s" % (vid, states, v, self.stderr()))

    def ready(self, vid, timeout=120):
        v = self.wait(vid, timeout=timeout)
        if v["state"] != "ready":
            raise AssertionError("video %s failed: %r\n%s" % (vid, v.get("error"), self.stderr()))
        return v


class Tracker(Server):
    name = "tracker"

    def __init__(self, suite, db, extra):
        self.db = db
        argv = [suite.bin("peercdn-tracker"), "serve", "--listen", "127.0.0.1:0", "--db", db] + extra
        super().__init__(suite, argv, db + ".log")

    def key(self):
        r = self.req("GET", "/api/tracker-key")
        eq(r.status, 200, "GET /api/tracker-key")
        return base64.b64decode(r.json()["ed25519"])

    def stats(self, history=False):
        r = self.req("GET", "/stats" + ("?history=1" if history else ""))
        eq(r.status, 200, "GET /stats")
        return r.json()


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class TrackerPeer:
    """A peer as the tracker sees it, written against docs/protocol.md with the cryptography package
    (independent of our C code): an Ed25519 key, proofs for "started", the session for the rest."""

    def __init__(self, tracker, video, n, rendition="v1", source="127.0.0.1"):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives import serialization
        self.tracker = tracker
        self.video = video
        self.sk = Ed25519PrivateKey.generate()
        self.pk = self.sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.peer_id = os.urandom(16).hex()
        self.port = 20000 + n
        self.rendition = rendition
        self.source = source
        self.session = None
        self.ticket = None
        self.counters = {}

    def proof(self, ts=None):
        ts = int(time.time()) if ts is None else ts
        msg = b"peercdn proof v1\0" + self.pk + ts.to_bytes(8, "big")
        return {"ts": ts, "sig": base64.b64encode(self.sk.sign(msg)).decode()}

    def body(self, event, **kw):
        b = {"peer_id": self.peer_id, "key": base64.b64encode(self.pk).decode(), "port": self.port,
             "video": self.video, "rendition": self.rendition, "event": event}
        if event == "started":
            b["proof"] = self.proof()
        elif self.session:
            b["session"] = self.session
        if self.counters:
            b["counters"] = dict(self.counters)
        b.update(kw)
        return b

    def post(self, body, raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        conn = http.client.HTTPConnection(self.tracker.host, self.tracker.port, timeout=30,
                                          source_address=(self.source, 0))
        try:
            conn.request("POST", "/announce", body=data, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def announce(self, event="periodic", expect=200, **kw):
        r = self.post(self.body(event, **kw))
        if r.status != expect:
            raise AssertionError("announce %s: HTTP %d %s (expected %d)" % (event, r.status, r.body[:300], expect))
        if r.status == 200:
            j = r.json()
            self.session = j["session"]
            if "ticket" in j:
                self.ticket = j["ticket"]
            return j
        return r.json()


def media_dir():
    d = os.environ.get("PEERCDN_TEST_MEDIA") or os.path.join(ROOT, "build", "test-media")
    os.makedirs(d, exist_ok=True)
    return d


def clip(name, size="640x360", rate=30, dur=6, vcodec="libx264", ext="mp4", audio=True, vopts=(), inopts=(),
         outopts=(), vf=None, pix_fmt="yuv420p", remux=(), remux_in=(), raw=None, vsrc=None, asrc=None, vin=(), skip_bytes=0):
    """Generates (once) a test clip with moving content and a tone; |remux| options are applied in a
    second, stream-copy pass (that is how ffmpeg 5.1 writes a display matrix from rotate=), |remux_in|
    are that pass's input options (-ss there makes an MP4 edit list). With |raw| ("h264", "hevc") the
    first pass writes an elementary stream, kept as NAME.RAW, that the second puts in the container.
    |vsrc| and |asrc| replace the lavfi sources (test pattern, tone), |vin| are the video input's options
    (-itsoffset there starts the video later than the audio). |skip_bytes| drops the file's first bytes
    (an MPEG-TS recording joined mid-stream, when a multiple of 188)."""
    path = os.path.join(media_dir(), name + "." + ext)
    if os.path.exists(path):
        return path
    # the plain and the sanitizer suites may make the same clip at once: each writes its own files
    # and renames them into place (the last rename wins; both are the same clip)
    tag = ".tmp%d." % os.getpid()
    tmp = path + tag + (raw or ext)
    argv = ["ffmpeg", "-v", "error", "-y"] + list(vin) + ["-f", "lavfi", "-i", vsrc or "testsrc2=size=%s:rate=%s" % (size, rate)]
    audio = audio and not raw
    if audio:
        argv += ["-f", "lavfi", "-i", asrc or "sine=frequency=440:sample_rate=44100"]
    argv += list(inopts) + ["-t", str(dur)]
    if vf:
        argv += ["-vf", vf]
    argv += ["-c:v", vcodec] + list(vopts) + (["-pix_fmt", pix_fmt] if pix_fmt else [])
    if audio:
        argv += ["-c:a", {"webm": "libopus", "mpg": "mp2"}.get(ext, "aac")]
    argv += list(outopts) + [tmp]
    subprocess.run(argv, check=True, timeout=600)
    if remux or remux_in or raw:
        tmp2 = path + tag + "2." + ext
        subprocess.run(["ffmpeg", "-v", "error", "-y"] + list(remux_in) + ["-i", tmp, "-map", "0", "-c", "copy"] +
                       list(remux) + [tmp2], check=True, timeout=600)
        if raw:
            os.rename(tmp, os.path.join(media_dir(), name + "." + raw))
        else:
            os.unlink(tmp)
        tmp = tmp2
    if skip_bytes:
        with open(tmp, "rb") as f:
            data = f.read()[skip_bytes:]
        with open(tmp, "wb") as f:
            f.write(data)
    os.rename(tmp, path)
    return path


def subtitled(name, src, tracks, ext="mkv"):
    """|src| with subtitle tracks added (once): each of |tracks| is (SubRip text, [ffmpeg options for that
    track, with S for its index: "-metadata:s:s:S", "language=eng"]); SubRip in Matroska, mov_text in MP4."""
    path = os.path.join(media_dir(), name + "." + ext)
    if os.path.exists(path):
        return path
    tag = ".tmp%d" % os.getpid()
    argv = ["ffmpeg", "-v", "error", "-y", "-i", src]
    for i, (text, _) in enumerate(tracks):
        srt = os.path.join(media_dir(), "%s-%d.srt%s" % (name, i, tag))
        with open(srt, "w", encoding="utf-8") as f:
            f.write(text)
        argv += ["-i", srt]
    argv += ["-map", "0"] + sum((["-map", str(i + 1)] for i in range(len(tracks))), [])
    argv += ["-c:v", "copy", "-c:a", "copy", "-c:s", "srt" if ext == "mkv" else "mov_text"]
    for i, (_, opts) in enumerate(tracks):
        argv += [o.replace(":S", ":%d" % i) for o in opts]
    tmp = path + tag + "." + ext
    subprocess.run(argv + [tmp], check=True, timeout=120)
    for i in range(len(tracks)):
        os.unlink(os.path.join(media_dir(), "%s-%d.srt%s" % (name, i, tag)))
    os.rename(tmp, path)
    return path


def prom_parse(text):
    """A /metrics document in Prometheus's text format (0.0.4), checked line by line: HELP and TYPE
    before each family's samples, known types, sample names of a declared family, values that parse.
    Returns {'name{labels}': value}."""
    values, types = {}, {}
    for line in text.splitlines():
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) ([a-z_]+) (.+)", line)
            check(m is not None, "comment line: %r" % line)
            if m.group(1) == "TYPE":
                check(m.group(3) in ("counter", "gauge", "summary", "histogram", "untyped"), "type: %r" % line)
                check(m.group(2) not in types, "one TYPE per family: %r" % line)
                types[m.group(2)] = m.group(3)
            continue
        m = re.fullmatch(r'([a-z_]+)(\{[a-z_]+="[^"\\]*"(,[a-z_]+="[^"\\]*")*\})? (-?[0-9.e+]+)', line)
        check(m is not None, "sample line: %r" % line)
        name = m.group(1)
        family = re.sub(r"_(count|sum)$", "", name) if name not in types else name
        check(family in types, "sample of a declared family: %r" % line)
        key = name + (m.group(2) or "")
        check(key not in values, "one sample per series: %r" % line)
        values[key] = float(m.group(4))
    check(text.endswith("\n"), "ends with a newline")
    return values


def ffprobe(url_or_path, *extra):
    p = subprocess.run(["ffprobe", "-v", "error", "-of", "json"] + list(extra) + [url_or_path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if p.returncode != 0:
        raise AssertionError("ffprobe %s failed: %s" % (url_or_path, p.stderr.decode()[-2000:]))
    return json.loads(p.stdout.decode())


def ffmpeg_decode(url, all_streams=False):
    """Decodes to null (the default streams, or all of them); stderr must stay empty at -v error."""
    p = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", url] + (["-map", "0"] if all_streams else []) +
                       ["-f", "null", "-"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    err = p.stderr.decode()
    if p.returncode != 0 or err.strip():
        raise AssertionError("ffmpeg could not decode %s cleanly (rc %d): %s" % (url, p.returncode, err[-3000:]))


def blake2b256(data):
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def tus_headers(**kw):
    h = {"Tus-Resumable": "1.0.0"}
    for k, v in kw.items():
        h[k.replace("_", "-")] = str(v)
    return h


def meta(**kw):
    return ",".join("%s %s" % (k, base64.b64encode(v.encode()).decode()) for k, v in kw.items())


def path_of(url):
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


class Peer:
    """A peercdn-peer process (play or seed) on loopback, found by its "listening on tcp://" line; |wait|
    requires exit 0 without sanitizer reports and returns the JSON report."""

    def __init__(self, suite, origin, vid, *extra, mode="play", name="peer", env=None, wait_seeding=True,
                 listen="127.0.0.1:0"):
        self.suite = suite
        d = tempfile.mkdtemp(dir=suite.tmp, prefix=name + "-")
        self.report_path = os.path.join(d, "report.json")
        self.log_path = os.path.join(d, "stderr.log")
        self.argv = [suite.bin("peercdn-peer"), mode, "--origin", origin.url, "--video", vid] + \
            (["--listen", listen] if listen else []) + \
            ["--state-dir", os.path.join(suite.tmp, "peer-state"), "--no-status", "--report", self.report_path] + list(extra)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.log,
                                     env=dict(os.environ, **(env or {})))
        self.started = time.time()
        line = self.proc.stdout.readline()
        m = re.search(HOSTPORT % b"tcp", line)
        if not m:
            raise AssertionError("peer did not start: %r\n%s" % (line, self.stderr()))
        self.host, self.port = m.group(1).decode().strip("[]"), int(m.group(2))
        self.hls = None
        if "--hls-listen" in extra:
            line = self.proc.stdout.readline()
            m = re.search(rb"listening on (http://[0-9.]+:\d+)", line)
            check(m is not None, "HLS endpoint line: %r" % line)
            self.hls = m.group(1).decode()
        if mode == "seed" and wait_seeding:
            line = self.proc.stdout.readline()
            check(b"seeding" in line, "seeder ready: %r\n%s" % (line, self.stderr()))
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        suite.cleanups.append(self.kill)

    def stderr(self):
        return log_tail(self.log_path)

    def wait(self, timeout=300):
        try:
            self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("peer did not finish in time\n%s" % self.stderr())
        err = self.stderr()
        if self.proc.returncode != 0 or SANITIZER_REPORT.search(err):
            raise AssertionError("peer exited with %d\n%s" % (self.proc.returncode, err))
        with open(self.report_path) as f:
            return json.load(f)

    def stop(self):
        """SIGTERM: the peer leaves gracefully (report, stopped announce) and must exit 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(60)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A fake HTTP server's handler (a CDN edge, another service): answer() sends a whole response."""
    protocol_version = "HTTP/1.1"

    def answer(self, code, data, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def serve_http(suite, handler):
    """Runs |handler| on a loopback port until the suite's cleanup; returns its URL."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    suite.cleanups.append(srv.shutdown)
    return "http://127.0.0.1:%d" % srv.server_address[1]


def h2_stalled_get(host, port, path):
    """Opens an HTTP/2 connection (prior knowledge, no TLS) that asks for |path| with a flow-control window
    of 0, so the server can never send the body, and never reads: a client that stopped reading. Returns
    the socket. Frames are written by hand (RFC 9113 section 4.1; the header block is HPACK literals)."""
    def frame(typ, flags, sid, payload):
        return len(payload).to_bytes(3, "big") + bytes([typ, flags]) + sid.to_bytes(4, "big") + payload

    def literal(name_index, value):  # literal header field without indexing, indexed name (RFC 7541 6.2.2)
        v = value.encode()
        assert name_index < 15 and len(v) < 127
        return bytes([name_index]) + bytes([len(v)]) + v

    so = socket.create_connection((host, port))
    settings = (4).to_bytes(2, "big") + (0).to_bytes(4, "big")  # SETTINGS_INITIAL_WINDOW_SIZE = 0
    block = b"\x82\x86" + literal(4, path) + literal(1, "%s:%d" % (host, port))  # GET, http, :path, :authority
    so.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, settings) + frame(1, 0x5, 1, block))
    return so
