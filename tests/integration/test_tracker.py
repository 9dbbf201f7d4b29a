#!/usr/bin/env python3
"""peercdn-tracker over HTTP: announce sequences, tickets checked with an independent Ed25519
implementation, expiry, statistics arithmetic, restarts that keep history, metrics, the stats CLI,
and bad input of every kind."""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SLOW, QuietHandler, Suite, TrackerPeer, b64u_decode, check, clip, eq, h2_stalled_get, prom_parse, raw_exchange, serve_http  # noqa: E402

from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

S = Suite("tracker")
st = {}


def open_ticket(tracker_pk, ticket):
    """Parses and verifies a ticket as docs/protocol.md describes it; returns (expires, key, video)."""
    b = b64u_decode(ticket)
    check(b[:4] == b"PCT1", "ticket magic")
    expires = int.from_bytes(b[4:12], "big")
    key = b[12:44]
    vlen = b[44]
    video = b[45:45 + vlen].decode()
    sig = b[45 + vlen:]
    eq(len(sig), 64, "signature length")
    Ed25519PublicKey.from_public_bytes(tracker_pk).verify(sig, b"peercdn ticket v1\0" + b[:45 + vlen])
    return expires, key, video


def test_key_is_published(s):
    t = s.tracker("--interval", "1", "--history-interval", "1")
    st["t"] = t
    pk = t.key()
    eq(len(pk), 32, "Ed25519 public key")
    check(re.search(r"key ([A-Za-z0-9+/=]+)", t.banner).group(1) == __import__("base64").b64encode(pk).decode(),
          "the banner names the same key")
    eq(os.stat(t.db).st_mode & 0o777, 0o600, "the database holding the signing key is private to its owner")
    st["pk"] = pk


def test_started_gets_session_ticket_and_useful_peers(s):
    t = st["t"]
    a = TrackerPeer(t, "vid1", 1)
    b = TrackerPeer(t, "vid1", 2)
    c = TrackerPeer(t, "vid1", 3)
    ra = a.announce("started", playhead_ms=0)
    eq(ra["peers"], [], "the first peer is alone")
    check(ra["interval"] == 1, "interval")
    check(abs(ra["tracker_time"] - time.time()) < 5, "tracker_time")
    expires, key, video = open_ticket(st["pk"], ra["ticket"])
    eq((key, video), (a.pk, "vid1"), "ticket binds key and video")
    eq(expires, ra["ticket_expires"], "ticket_expires")
    check(3500 < expires - time.time() <= 3600, "default lifetime of an hour")
    # b is ahead and holds segments 0..20; c is behind with nothing
    b.announce("started", playhead_ms=80000, have=[[0, 20]])
    c.announce("started", playhead_ms=1000)
    r = a.announce("periodic", playhead_ms=30000, need=8)
    check("ticket" not in r, "no new ticket while the old one is young")
    ids = [p["peer_id"] for p in r["peers"]]
    eq(ids, [b.peer_id, c.peer_id], "the holder first, never a's own entry")
    pb = r["peers"][0]
    eq((pb["addr"], pb["port"], pb["rendition"], pb["playhead_ms"], pb["have"]), ("127.0.0.1", b.port, "v1", 80000,
                                                                                   [0, 20]), "peer entry")
    eq(__import__("base64").b64decode(pb["key"]), b.pk, "peer key")
    r = a.announce("periodic", numwant=1)
    eq(len(r["peers"]), 1, "numwant")
    st["abc"] = (a, b, c)


def test_tickets_are_renewed_before_they_end_even_after_a_lost_answer(s):
    # renewed near the end of their life: in the last quarter, and two intervals and 5 s before it at least
    # (a quarter of 10 s, in whole seconds, is less than one 2.5 s interval: the renewal came late); and when
    # the peer says it holds an older ticket than the one last issued (that answer never reached it), at
    # once. Before, such a peer had no valid ticket for three quarters of a lifetime (found by review)
    t = s.tracker("--interval", "2.5", "--ticket-ttl", "10")
    pk = t.key()
    p = TrackerPeer(t, "vid-ttl", 1)
    first = p.announce("started")["ticket_expires"]
    time.sleep(1.1)  # a second later: the new one would last longer
    r = p.announce("periodic")
    check("ticket" in r and r["ticket_expires"] >= first, "renewed with 10 s left or less: %r" % r)
    # the answer carrying that ticket is lost: the peer says it still holds the first one
    lost = r["ticket_expires"]
    r = p.announce("periodic", ticket_expires=first)
    check("ticket" in r, "renewed again for a peer that holds an older ticket: %r" % r)
    expires, key, video = open_ticket(pk, r["ticket"])
    eq((key, video), (p.pk, "vid-ttl"), "its own ticket")
    check(expires >= lost, "lasting as long as the lost one")
    # a claim of a ticket later than the one issued changes nothing: the tracker's record counts
    t2 = s.tracker("--interval", "30", "--ticket-ttl", "3600")
    q = TrackerPeer(t2, "vid-ttl", 2)
    e = q.announce("started")["ticket_expires"]
    check("ticket" not in q.announce("periodic", ticket_expires=e), "a young ticket is not renewed")
    check("ticket" in q.announce("periodic", ticket_expires=int(time.time()) + 60), "an old one held is")


def test_other_videos_are_separate(s):
    t = st["t"]
    d = TrackerPeer(t, "vid2", 4)
    r = d.announce("started")
    eq(r["peers"], [], "another video's swarm is empty")
    a = st["abc"][0]
    check(d.peer_id not in [p["peer_id"] for p in a.announce("periodic")["peers"]], "not offered to vid1")
    d.announce("stopped")


def test_silent_peers_expire_after_two_intervals(s):
    t = st["t"]
    a, b, c = st["abc"]
    # keep a and b announcing; c goes quiet
    deadline = time.time() + 2.6
    while time.time() < deadline:
        a.announce("periodic")
        b.announce("periodic")
        time.sleep(0.3)
    peers = t.stats()["videos"]["vid1"]["peers"]
    eq(peers, 2, "c expired after two 1-second intervals")
    check(c.peer_id not in [p["peer_id"] for p in a.announce("periodic")["peers"]], "c is no longer offered")
    # a periodic announce from it is refused (counted as a baseline, the gap went uncounted, and a viewer
    # starting in it never was): it starts again with a proof, under a new peer id
    r = c.post(c.body("periodic"))
    eq((r.status, r.json()["code"]), (403, "unknown_peer"), "a periodic from an expired peer")
    c.peer_id = os.urandom(16).hex()
    r = c.announce("started")
    check(a.peer_id in [p["peer_id"] for p in r["peers"]], "c re-joins with a proof")


def test_statistics_add_up(s):
    t = s.tracker("--interval", "30")
    st["t2"] = t
    x = TrackerPeer(t, "stats1", 10)
    y = TrackerPeer(t, "stats1", 11)
    x.counters = {"bytes_cdn": 1000000, "startup_ms": 400}
    x.announce("started")
    y.counters = {"bytes_cdn": 500000, "startup_ms": 1200}
    y.announce("started")
    x.counters.update(bytes_cdn=1500000, bytes_p2p=4500000, bytes_up=2000000, played_ms=1800000, stalls=1,
                      stall_ms=1800)
    x.announce("periodic")
    y.counters.update(bytes_p2p=1000000, bytes_up=500000, played_ms=1800000, stalls=2, stall_ms=1800)
    y.announce("stopped")
    v = t.stats()["videos"]["stats1"]
    eq((v["peers"], v["viewers"]), (1, 2), "one left, two viewers started")
    eq((v["bytes_cdn"], v["bytes_p2p"], v["bytes_up"]), (2000000, 5500000, 2500000), "bytes")
    check(abs(v["offload"] - 5500000 / 7500000) < 1e-9, "offload = p2p / (p2p + cdn): %r" % v["offload"])
    eq((v["stalls"], v["stall_ms"]), (3, 3600), "stalls")
    check(abs(v["viewer_hours"] - 1.001) < 1e-9, "viewer hours = (played + stalled) / 3600 s")
    check(abs(v["stalls_per_viewer_hour"] - 3 / 1.001) < 1e-9, "stalls per viewer-hour")
    check(abs(v["rebuffer_ratio"] - 3600 / 3603600) < 1e-12, "rebuffer ratio")
    p50, p95 = v["startup_ms"]["p50"], v["startup_ms"]["p95"]
    check(400 * 0.8 <= p50 <= 1200 * 1.2 and 1200 * 0.8 <= p95 <= 1200 * 1.2, "start-up quantiles %r" % v["startup_ms"])
    total = t.stats()["total"]
    eq((total["bytes_cdn"], total["bytes_p2p"]), (2000000, 5500000), "total")
    st["x"] = x


def test_metrics_match_stats(s):
    t = st["t2"]
    r = t.req("GET", "/metrics")
    eq(r.status, 200, "GET /metrics")
    check(r.header("content-type").startswith("text/plain; version=0.0.4"), "Prometheus content type")
    values = prom_parse(r.body.decode())
    eq(values["peercdn_tracker_peers"], 1, "peers")
    eq(values['peercdn_tracker_bytes_total{source="cdn"}'], 2000000, "cdn bytes")
    eq(values['peercdn_tracker_bytes_total{source="p2p"}'], 5500000, "p2p bytes")
    check(abs(values["peercdn_tracker_offload_ratio"] - 5500000 / 7500000) < 1e-6, "offload")
    eq(values['peercdn_tracker_announces_total{event="stopped"}'], 1, "stopped announces")
    eq(values['peercdn_tracker_video_peers{video="stats1"}'], 1, "per-video peers")
    check(values['peercdn_tracker_http_responses_total{code="200"}'] >= 1, "answers counted")
    check(values["peercdn_tracker_http_connections"] >= 1, "this connection counted")


def test_restart_keeps_statistics_and_history(s):
    t = st["t2"]
    x = st["x"]
    time.sleep(0.2)
    before = t.stats()["videos"]["stats1"]
    t.stop()  # graceful: statistics, a history row and the live swarm are saved
    t.restart()
    after = t.stats(history=True)
    check(after["videos"] == {}, "with history and no video, no video is listed: %r" % after["videos"])
    v = t.stats()["videos"]["stats1"]
    for k in ("bytes_cdn", "bytes_p2p", "bytes_up", "stalls", "stall_ms", "viewers", "peers"):
        eq(v[k], before[k], "%s survives the restart" % k)
    rows = [h for h in after["history"] if h["video"] == "stats1"]
    check(len(rows) >= 1 and rows[-1]["bytes_p2p"] == 5500000, "history row: %r" % rows)
    check(any(h["video"] == "" for h in after["history"]), "a total row")
    # the restored peer's next counters add only what is new
    x.counters.update(bytes_p2p=4600000)
    r = x.announce("periodic")
    check("ticket" not in r, "its ticket survived too")
    eq(t.stats()["videos"]["stats1"]["bytes_p2p"], 5600000, "only the delta is counted")


def test_a_stop_does_not_wait_for_a_client_that_does_not_read(s):
    """SIGTERM saves the swarm at once and cuts connections still open 5 s later: a client that never reads
    its answer (here an HTTP/2 window of 0) kept the tracker from exiting at all, and the swarm, the last
    statistics and the final history row were saved only once it had. A start that fails after reading
    the saved swarm (an address it cannot listen on) keeps it for the next start; it emptied it."""
    t = s.tracker()
    TrackerPeer(t, "stuck1", 1).announce("started")
    so = h2_stalled_get(t.host, t.port, "/stats")
    time.sleep(0.3)
    t0 = time.time()
    # a second SIGTERM during the stop's grace changes nothing (it killed the tracker by signal)
    t.proc.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    t.proc.send_signal(signal.SIGTERM)
    t.stop()
    took = time.time() - t0
    so.close()
    check(took < 15, "stopped %.1f s after SIGTERM" % took)
    p = subprocess.run([s.bin("peercdn-tracker"), "serve", "--listen", "192.0.2.1:1", "--db", t.db],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(p.returncode == 1 and "cannot listen" in p.stderr.decode(), "unusable address: %r" % p.stderr)
    t.restart()
    eq(t.stats()["videos"]["stuck1"]["peers"], 1, "the saved swarm came back after the failed start")


def test_stats_cli(s):
    t = st["t2"]
    p = subprocess.run([s.bin("peercdn-tracker"), "stats", "--tracker", t.url], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    eq(p.returncode, 0, "stats exit status: %s" % p.stderr.decode())
    out = p.stdout.decode()
    check(re.search(r"^stats1\s+1\s+2\s+2\.0 MB\s+5\.6 MB\s+73\.7%", out, re.M) is not None, "table row:\n" + out)
    check(re.search(r"^TOTAL\s", out, re.M) is not None, "total row:\n" + out)
    p = subprocess.run([s.bin("peercdn-tracker"), "stats", "--tracker", t.url, "--json"], stdout=subprocess.PIPE,
                       timeout=30)
    eq(json.loads(p.stdout)["videos"]["stats1"]["peers"], 1, "--json")
    # one video, in the table and in JSON; a video the tracker does not know is an error either way
    for extra in ([], ["--json"]):
        p = subprocess.run([s.bin("peercdn-tracker"), "stats", "--tracker", t.url, "--video", "stats1"] + extra,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        eq(p.returncode, 0, "--video stats1 %r: %s" % (extra, p.stderr.decode()))
        if extra:
            eq(list(json.loads(p.stdout)["videos"]), ["stats1"], "--video --json: that video only")
        else:
            rows = [l.split()[0] for l in p.stdout.decode().splitlines()[1:]]
            eq(rows, ["stats1"], "--video: that row only")
        p = subprocess.run([s.bin("peercdn-tracker"), "stats", "--tracker", t.url, "--video", "nope"] + extra,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        eq((p.returncode, p.stdout), (1, b""), "--video nope %r" % extra)
        check("no statistics for video nope" in p.stderr.decode(), "says so: %s" % p.stderr.decode())
    p = subprocess.run([s.bin("peercdn-tracker"), "stats", "--tracker", "http://127.0.0.1:1"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    check(p.returncode != 0 and len(p.stderr.decode().strip().splitlines()) == 1, "unreachable: one line, non-zero")
    # a server answering with some other JSON object is not a tracker: no table of zeros, exit 1; nor is
    # one whose names would write escape sequences or rows of their own on the terminal, whose entries
    # are not objects, or whose figures are out of range (before, printed as they came), nor an empty body
    bodies = [b'{"time": 1}', b'', json.dumps({"videos": {"x\u001b[31mRED\nFAKE ROW": {}}, "total": {}}).encode(),
              b'{"videos": {"a": 5}, "total": {}}', b'{"videos": {"a": {"peers": -5}}, "total": {}}',
              b'{"videos": {}, "total": {"offload": 1e308}}']
    class Other(QuietHandler):
        def do_GET(self):
            self.answer(200, bodies[0], [("Content-Type", "application/json")])
    url = serve_http(s, Other)
    while bodies:
        p = subprocess.run([s.bin("peercdn-tracker"), "stats", "--tracker", url], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        eq((p.returncode, p.stdout), (1, b""), "refused: %r" % bodies[0])
        check(len(p.stderr.decode().strip().splitlines()) == 1 and "did not answer with statistics" in p.stderr.decode(),
              "says so in one line: %r" % p.stderr)
        bodies.pop(0)
    for argv in (["stats"], ["stats", "--tracker", t.url, "--video", "a/b"], ["serve", "--listen", "127.0.0.1:0"], ["bogus"], ["serve", "--db", "x", "--nope"],
                 ["serve", "--listen", "127.0.0.1:0", "--db", "x", "--interval", "30", "--ticket-ttl", "60"]):
        p = subprocess.run([s.bin("peercdn-tracker")] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        check(p.returncode == 2 and len(p.stderr.decode().strip().splitlines()) == 1, "usage error %r" % argv)


def expect_error(peer, body, status, code, raw=None):
    r = peer.post(body, raw=raw)
    eq(r.status, status, "status for %s" % code)
    j = r.json()
    eq(j["code"], code, "code (%s)" % j.get("message"))
    check(len(j["message"]) > 0, "a message")
    return j


def test_bad_input_is_refused_with_a_reason(s):
    t = st["t"]
    a = st["abc"][0]
    m = TrackerPeer(t, "vid1", 9)
    expect_error(m, None, 400, "bad_json", raw=b"{not json")
    expect_error(m, None, 400, "bad_json", raw=b"")
    expect_error(m, None, 413, "too_large", raw=b"{" + b" " * 20000 + b"}")
    expect_error(m, None, 413, "too_large", raw=b"{" + b" " * 60000 + b"}")
    counted = prom_parse(t.req("GET", "/metrics").body.decode())
    try:  # past the server's 64 KiB body limit (what one connection makes it buffer) h2o answers 413 itself
        r = m.post(None, raw=b"{" + b" " * (100 << 10) + b"}")
        eq(r.status, 413, "over the 64 KiB body limit")
        eq(r.json(), {"code": "too_large", "message": "request entity is too large"},
           "h2o's own answer (the body never reached the tracker), in the JSON shape")
    except (BrokenPipeError, ConnectionResetError):
        pass
    # h2o's other answers of its own, before the tracker sees the request: JSON too, and counted
    for head, status, code in ((b"Content-Length: 1x", 400, "bad_request"), (b"Expect: 100-nope\r\nContent-Length: 2", 417, "expectation_failed"),
                               (b"Transfer-Encoding: gzip", 400, "bad_request")):
        answer = raw_exchange(t.host, t.port, b"POST /announce HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Connection: close\r\n" + head + b"\r\n\r\n{}")
        head_part, _, body = answer.partition(b"\r\n\r\n")
        check(head_part.startswith(b"HTTP/1.1 %d" % status), "%r: %r" % (head, head_part[:60]))
        check(b"content-type: application/json" in head_part.lower(), "%r: JSON" % head)
        j = json.loads(body)
        check(j["code"] == code and len(j["message"]) > 0, "%r: %r" % (head, j))
    # HEAD: no body, and no length but the JSON's (h2o's text's length was sent: 19 for a 61-byte answer)
    head_part = raw_exchange(t.host, t.port, b"HEAD /announce HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                             b"Expect: 100-nope\r\nContent-Length: 2\r\n\r\n{}")
    check(head_part.startswith(b"HTTP/1.1 417") and head_part.endswith(b"\r\n\r\n") and
          b"content-length: 19" not in head_part.lower(), "HEAD: %r" % head_part)
    time.sleep(1.1)  # /metrics is built at most once a second
    after = prom_parse(t.req("GET", "/metrics").body.decode())
    series = "peercdn_tracker_http_responses_total"
    eq(after.get(series + '{code="417"}', 0) - counted.get(series + '{code="417"}', 0), 2,
       "h2o's own 417s counted (POST and HEAD)")
    expect_error(m, m.body("started", surprise=1), 400, "unknown_field")
    expect_error(m, dict(m.body("started"), key="AAAA"), 400, "bad_field")
    expect_error(m, dict(m.body("started"), video="../../etc"), 400, "bad_field")
    body = m.body("started")
    del body["port"]
    expect_error(m, body, 400, "missing_field")
    # proofs: forged, stale, or for a key the sender does not hold
    forged = m.body("started")
    sig = forged["proof"]["sig"]
    forged["proof"]["sig"] = sig[:10] + ("B" if sig[10] != "B" else "C") + sig[11:]
    expect_error(m, forged, 403, "bad_proof")
    j = expect_error(m, m.body("started", proof=m.proof(int(time.time()) - 3600)), 403, "proof_expired")
    check(abs(j.get("tracker_time", 0) - time.time()) < 5, "the answer says the tracker's time: %r" % j)
    thief = m.body("started")
    thief["key"] = __import__("base64").b64encode(a.pk).decode()  # a's key with m's own signature
    expect_error(m, thief, 403, "bad_proof")
    # sessions: none, or someone else's
    expect_error(m, m.body("periodic", session="AAAAAAAAAAAAAAAAAAAAAA"), 403, "bad_session")
    stolen = m.body("periodic", session=a.session)
    expect_error(m, stolen, 403, "bad_session")
    # counters that go backwards
    m.counters = {"bytes_cdn": 100}
    m.announce("started")
    m.counters = {"bytes_cdn": 50}
    expect_error(m, m.body("periodic"), 409, "counters_regressed")
    m.counters = {"bytes_cdn": 100}
    m.announce("stopped")
    r = t.req("GET", "/announce")
    eq((r.status, r.json()["code"]), (405, "method_not_allowed"), "GET /announce")
    eq(t.req("GET", "/nope").status, 404, "unknown path")
    for path in ("/stats", "/metrics", "/api/health", "/api/tracker-key"):
        r = t.req("DELETE", path)
        eq((r.status, r.json()["code"]), (405, "method_not_allowed"), "DELETE " + path)
        eq(r.header("allow"), "GET, HEAD", "Allow on " + path)
    eq(t.req("GET", "/stats?history=1&video=../x").status, 400, "bad history filter")
    for q in ("history=1&video=" + "v" * 80, "history=1&since=" + "9" * 40, "history=1&since=12x",
              "history=1&since=+5", "history=1&since=%205", "history=yes", "history=" + "1" * 40, "history=1%00",
              "history=1&video=a%00b", "history=1&since=1%002", "history=1&limit=0", "history=1&limit=10001",
              "history=1&limit=5x", "history=1&after=v1", "history=1&since=5&after=../x",
              "history=1&since=5&after=" + "v" * 80):
        r = t.req("GET", "/stats?" + q)
        eq(r.status, 400, "an oversized or malformed query value is refused, not ignored: " + q[:30])
        eq(r.json()["code"], "bad_field", "code for " + q[:30])
    # a parameter given twice is named as such (each value alone is good)
    r = t.req("GET", "/stats?video=a&video=b")
    eq((r.status, r.json()["message"]), (400, "'video' is given more than once, or holds a NUL byte"), "video twice")
    check(t.proc.poll() is None, "still running")


def global_ipv4():
    """An IPv4 address of this host outside 127/8 (the machines we run on have one on eth0)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    check(m is not None, "this host has an IPv4 address outside loopback (ip -4 addr: %r)" % out[:200])
    return m.group(1)


def test_addresses_no_other_host_can_dial_are_not_listed(s):
    t = st["t"]
    # 'addr' that no peer can dial: refused, not listed (a dial of 0.0.0.0 reaches the dialler's own loopback)
    m = TrackerPeer(t, "vid-addr", 1)
    for bad in ("0.0.0.0", "::", "224.0.0.1", "239.1.2.3", "255.255.255.255", "ff02::1", "::ffff:0.0.0.0"):
        j = expect_error(m, m.body("started", addr=bad), 400, "bad_field")
        check("dial" in j["message"], "the message says why: %r" % j["message"])
    here = global_ipv4()
    # a seeder beside the tracker (announced over loopback) is listed to viewers on this host only
    near = TrackerPeer(t, "vid-addr", 2, source="127.0.0.1")
    near.announce("started", seeding=True, up_kbps=10000)
    far = TrackerPeer(t, "vid-addr", 3, source=here)
    far.announce("started", seeding=True, up_kbps=10000)
    listed = TrackerPeer(t, "vid-addr", 4, source=here)
    listed.announce("started", addr="10.1.2.3", seeding=True, up_kbps=10000)  # a private 'addr' is the sender's word
    v = TrackerPeer(t, "vid-addr", 5, source=here)
    got = sorted((p["addr"], p["port"]) for p in v.announce("started")["peers"])
    eq(got, sorted([(here, far.port), ("10.1.2.3", listed.port)]),
       "a viewer on another address is not told of the loopback seeder")
    w = TrackerPeer(t, "vid-addr", 6, source="127.0.0.1")
    got = sorted((p["addr"], p["port"]) for p in w.announce("started")["peers"])
    eq(got, sorted([("127.0.0.1", near.port), (here, far.port), ("10.1.2.3", listed.port), (here, v.port)]),
       "a viewer on loopback is told of every peer")
    for p in (near, far, listed, v, w):
        p.announce("stopped")


def test_flood_from_one_address_is_limited(s):
    t = s.tracker("--rate-limit", "5", "--rate-burst", "10")
    flood = TrackerPeer(t, "vid9", 20, source="127.0.0.2")
    calm = TrackerPeer(t, "vid9", 21)
    codes = [flood.post(flood.body("started")).status for _ in range(40)]
    check(codes.count(429) >= 15 and codes.count(200) >= 10, "limited after the burst: %r" % codes)
    r = flood.post(flood.body("started"))
    eq((r.status, r.json()["code"], r.header("retry-after")), (429, "rate_limited", "1"), "429 with a JSON reason")
    calm.announce("started")  # another address is served
    time.sleep(1.0)
    eq(flood.post(flood.body("started")).status, 200, "tokens come back")
    metrics = t.req("GET", "/metrics").body.decode()
    check(re.search(r'rejects_total\{code="rate_limited"\} (\d+)', metrics).group(1) != "0", "counted in metrics")


def test_origin_publishes_the_tracker_and_its_key(s):
    """The origin fetches GET /api/tracker-key once per video and names the tracker in p2p.json; an
    unreachable tracker fails the video with a stable code and keeps the upload."""
    t = s.tracker()
    o = s.origin("--tracker", t.url + "/")
    src = clip("tracker_clip_320x180", size="320x180", rate=25, dur=4)
    vid = o.upload(src, title="with a tracker")
    o.ready(vid)
    m = json.loads(o.req("GET", "/v/%s/p2p.json" % vid).body)
    eq(m["tracker"]["url"], t.url + "/", "tracker URL as configured")
    eq(__import__("base64").b64decode(m["tracker"]["ed25519"]), t.key(), "the tracker's own key")
    # a tracker that admits only the origin's videos: the published one gets a swarm, an invented id not
    t2 = s.tracker("--origin", o.url)
    j = TrackerPeer(t2, vid, 1).announce("started")
    check("ticket" in j, "a published video is admitted")
    r = TrackerPeer(t2, "invented-%d" % os.getpid(), 2).announce("started", expect=404)
    eq(r["code"], "unknown_video", "an id the origin does not know is refused")
    eq(list(t2.stats()["videos"]), [vid], "only the published video is in /stats")
    t2.stop()
    dead = s.origin("--tracker", "http://127.0.0.1:1")
    vid = dead.upload(src, title="tracker down")
    v = dead.wait(vid, timeout=120)
    eq(v["state"], "failed", "no key, no signed manifest")
    eq(v["error"]["code"], "tracker_unreachable", "stable code")

def test_a_locked_database_does_not_stall_the_tracker(s):
    """Another process holds a write lock on the tracker's file (a backup, an operator's sqlite3 shell)
    across a save tick (every 10 s): the tracker keeps answering at once, and saves once it can."""
    import sqlite3
    t = s.tracker("--history-interval", "2")
    p = TrackerPeer(t, "locked", 1)
    p.announce("started")
    lock = sqlite3.connect(t.db, isolation_level=None, timeout=10)
    lock.execute("BEGIN IMMEDIATE")
    worst, n, t_end = 0.0, 0, time.time() + 11.5
    try:
        while time.time() < t_end:
            p.counters["bytes_p2p"] = p.counters.get("bytes_p2p", 0) + 1000
            t0 = time.time()
            p.announce("periodic")
            eq(t.req("GET", "/api/health").status, 200, "health")
            worst = max(worst, time.time() - t0)
            n += 1
            time.sleep(0.25)
        p.counters["bytes_p2p"] += 1000
        p.announce("stopped")  # its last figures, while the history cannot be written
        time.sleep(2.5)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    print("# %d announce + health rounds while the file was locked; the slowest took %.0f ms" % (n, worst * 1000))
    check(worst < 1.0, "answers kept coming while the database was locked (slowest %.2f s)" % worst)
    before = t.stats()["videos"]["locked"]["bytes_p2p"]
    time.sleep(2.5)  # a history tick with the file free again
    rows = [h for h in t.stats(history=True)["history"] if h["video"] == "locked"]
    eq(rows[-1]["bytes_p2p"], before, "the history got the row it could not write while locked")
    t.stop()
    t.restart()
    eq(t.stats()["videos"]["locked"]["bytes_p2p"], before, "saved once the lock was gone")


def test_a_tampered_saved_swarm_is_not_echoed_to_peers(s):
    """Rendition and region names restored from the file go into answers unescaped, so they are checked
    as an announce would check them: a row edited to carry JSON is dropped, the others come back."""
    import sqlite3
    t = s.tracker("--interval", "30")
    a, b, c = TrackerPeer(t, "tamper", 1), TrackerPeer(t, "tamper", 2), TrackerPeer(t, "tamper", 3)
    for p in (a, b, c):
        p.announce("started")
    t.stop()
    db = sqlite3.connect(t.db)
    eq(db.execute("SELECT count(*) FROM peers").fetchone()[0], 3, "the swarm was saved")
    db.execute("UPDATE peers SET rendition = ? WHERE port = ?", ('v1","evil":"1', a.port))
    db.execute("UPDATE peers SET region = ? WHERE port = ?", ('eu"}', b.port))
    db.commit()
    db.close()
    t.restart()
    r = c.announce("periodic", numwant=10)
    ports = sorted(p["port"] for p in r["peers"])
    eq(ports, [], "neither tampered peer is offered (the answer parsed as JSON)")
    eq(t.stats()["videos"]["tamper"]["peers"], 1, "only the untouched peer was restored")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))


def test_stats_of_a_large_catalog_are_shared_not_copied_per_client(s):
    """10 000 videos (their statistics restored from the database): 30 clients each pipelining three
    GET /stats without reading the answers cost the tracker one copy of the document, not 90; and
    ?video=ID answers with that video alone."""
    import sqlite3
    t = s.tracker()
    t.stop()
    db = sqlite3.connect(t.db)
    db.executemany("INSERT INTO totals VALUES (?, ?, ?, 0, 0, 0, ?, 1, 1, x'')",
                   [("video%05d" % i, 1000 * i, 3000 * i, 60000) for i in range(10000)])
    db.commit()
    db.close()
    t.restart()
    one = json.loads(t.req("GET", "/stats?video=video00042").body)
    eq(list(one["videos"]), ["video00042"], "only the video asked for")
    eq(one["videos"]["video00042"]["bytes_p2p"], 126000, "its statistics")
    eq(one["total"]["bytes_p2p"], 3000 * 9999 * 10000 // 2, "and the total")
    eq(json.loads(t.req("GET", "/stats?video=nosuchvideo").body)["videos"], {}, "an unknown video: none")
    size = len(t.req("GET", "/stats").body)
    before = rss_kib(t.proc.pid)
    socks = []
    for _ in range(30):
        c = socket.create_connection((t.host, t.port))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        socks.append(c)
    time.sleep(2)
    grew = rss_kib(t.proc.pid) - before
    eq(t.req("GET", "/api/health").status, 200, "still serving")
    for c in socks:
        c.close()
    print("# /stats is %d bytes; 30 clients x 3 requests not reading grew the tracker by %d KiB" % (size, grew))
    check(grew * 1024 < 8 * size, "one shared copy, not one per answer (grew %d KiB for a %d-byte document)"
          % (grew, size))
    # a client asking once a second, each time on a new connection it never reads (HTTP/2 with a window of 0:
    # over HTTP/1.1 the kernel's send buffer, up to 4 MiB, would take the whole document off the tracker's
    # hands): each second's document is another copy, but at most DOC_COPIES_MAX (4, /metrics' included)
    # stay alive, the current one reused past that (before, one a second for the 60 s a stalled answer lasts;
    # found by review). A statistic changes every second too, so that each second's document differs
    before = rss_kib(t.proc.pid)
    peer = TrackerPeer(t, "video00001", 1)
    peer.announce("started")
    stuck, times = [], set()
    for k in range(10):
        peer.counters = {"bytes_cdn": 1000 * (k + 1)}
        peer.announce("periodic")
        stuck.append(h2_stalled_get(t.host, t.port, "/stats"))
        time.sleep(1.05)
        times.add(json.loads(t.req("GET", "/stats").body)["time"])
    grew = rss_kib(t.proc.pid) - before
    alive = int(re.search(r"^peercdn_tracker_documents (\d+)$", t.req("GET", "/metrics").body.decode(), re.M).group(1))
    eq(t.req("GET", "/api/health").status, 200, "still serving")
    for c in stuck:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    print("# 10 unread /stats over 10 s: %d documents alive, %d distinct times; the tracker grew by %d KiB" % (
        alive, len(times), grew))
    check(alive <= 4, "at most 4 copies alive, not one a second (%d)" % alive)
    # (RSS is no measure here: memory freed by glibc's malloc is not always given back)


def test_history_pages_follow_the_cursor(s):
    """Pages of the history follow their cursor and add up to the whole. Rows are keyed by the second, so
    the interval is a second at least (0.1 s overwrote rows, and a row written later in a second a page
    had reached fell behind its cursor). Anyone may ask, so pages are limited: 20 built a second (and 8
    being sent: test_history_pages_being_sent_are_limited), past either 503 busy."""
    p = subprocess.run([s.bin("peercdn-tracker"), "serve", "--listen", "127.0.0.1:0", "--db",
                        os.path.join(s.tmp, "hist-bad.db"), "--history-interval", "0.5"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(p.returncode != 0 and b"--history-interval" in p.stderr, "0.5 s is refused: %r" % p.stderr)
    t = s.tracker("--history-interval", "1")
    peers = [TrackerPeer(t, "hp%d" % i, 40 + i) for i in range(3)]
    for p in peers:
        p.counters = {"bytes_cdn": 1000, "bytes_p2p": 3000}
        p.announce("started")
    time.sleep(3.5)  # rows are per second (t in unix seconds): a row per live video and the total's at each
    since = int(time.time()) - 60
    whole = t.req("GET", "/stats?history=1&since=%d" % since).json()
    rows = whole["history"]
    check(len(rows) >= 8 and "next" not in whole, "one page holds them all: %d rows" % len(rows))
    keys = [(h["t"], h["video"]) for h in rows]
    eq(keys, sorted(keys), "rows in (t, video) order")
    eq(whole["videos"], {}, "no video listed without 'video'")
    check(all(h["offload"] == 0.75 for h in rows if h["bytes_cdn"]), "offload per row")
    # pages of 5 rows, following "next", give back exactly the same rows
    paged, q, pages = [], "since=%d" % since, 0
    while pages < 1000:  # rows keep coming (the total's, every tick), but pages come faster
        r = t.req("GET", "/stats?history=1&limit=5&" + q).json()
        check(len(r["history"]) <= 5, "a page holds at most 'limit' rows")
        paged += r["history"]
        pages += 1
        if "next" not in r:
            break
        eq((r["next"]["since"], r["next"]["after"]), (paged[-1]["t"], paged[-1]["video"]),
           "the cursor is the last row's (t, video)")
        q = "since=%d&after=%s" % (r["next"]["since"], r["next"]["after"])
    check(paged[:len(rows)] == rows, "pages add up to the whole series")
    check(pages >= 2, "%d rows came in %d pages of at most 5" % (len(paged), pages))
    one = t.req("GET", "/stats?history=1&video=hp1&since=%d" % since).json()
    check(len(one["history"]) >= 2 and all(h["video"] == "hp1" for h in one["history"]), "one video's series")
    eq(list(one["videos"]), ["hp1"], "the selected video is listed")
    total = t.req("GET", "/stats?history=1&video=&since=%d" % since).json()
    check(total["history"] and all(h["video"] == "" for h in total["history"]), "the total's series")
    check(total["history"][-1]["bytes_p2p"] == 9000, "the total row sums the videos")
    time.sleep(1.02 - time.time() % 1)  # the start of a new second: the pages built so far do not count
    codes = [t.req("GET", "/stats?history=1&limit=1&since=%d" % since).status for _ in range(30)]
    check(codes.count(200) <= 20 and 503 in codes and codes[:10] == [200] * 10, "20 pages a second: %r" % codes)
    r = t.req("GET", "/stats?history=1&limit=1&since=%d" % since)
    if r.status == 503:
        eq((r.json()["code"], r.header("retry-after")), ("busy", "1"), "busy, retry in a second")


def test_history_pages_being_sent_are_limited(s):
    """Clients that ask for a history page and do not read it hold it until it is sent: at most 8 such pages
    (HISTORY_INFLIGHT_MAX) are held at once, the next asker is told 503 busy, and once the stuck
    clients go their pages are let go and pages are built again (the count of pages in flight does
    not leak)."""
    import sqlite3
    t = s.tracker("--history-interval", "1")
    t.stop()
    now = int(time.time())
    db = sqlite3.connect(t.db)
    db.executemany("INSERT INTO history VALUES (?, ?, 1, 1000, 3000, 0, 0, 0, 60000, 1)",
                   [(now - 100 + i % 100, "hvid%04d" % (i // 100), ) for i in range(20000)])
    db.commit()
    db.close()
    t.restart()
    q = "/stats?history=1&limit=10000&since=%d" % (now - 200)
    page = t.req("GET", q)
    eq((page.status, len(page.json()["history"])), (200, 10000), "a page of 10 000 rows")
    time.sleep(1.02 - time.time() % 1)  # a new second: the 20-a-second limit is not what answers below
    # HTTP/2 clients holding their window at 0: over HTTP/1.1 the kernel's send buffer (up to 4 MiB)
    # would take a whole page off the tracker's hands
    stuck = [h2_stalled_get(t.host, t.port, q) for _ in range(8)]
    time.sleep(0.3)
    r = t.req("GET", q)
    eq((r.status, r.json()["code"], r.header("retry-after")), (503, "busy", "1"),
       "a ninth page while 8 are held by clients that do not read")
    eq(t.req("GET", "/stats").status, 200, "the rest of /stats still answers")
    for c in stuck:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset: the pages are dropped
        c.close()
    deadline = time.time() + 10
    while True:
        time.sleep(1.02 - time.time() % 1)
        r = t.req("GET", q)
        if r.status == 200 or time.time() > deadline:
            break
    eq(r.status, 200, "pages are built again once the clients are gone")
    eq(len(r.json()["history"]), 10000, "a whole page")


def test_totals_near_the_cap_do_not_wrap(s):
    """Each video's sums stop at 2^53 - 1, and so does their total: five videos near the cap once wrapped
    the total to a negative number and an offload of 7."""
    t = s.tracker()
    cap = 2 ** 53 - 1
    for i in range(5):
        p = TrackerPeer(t, "cap%d" % i, 60 + i)
        p.counters = {"bytes_cdn": 2 ** 53 // 2, "bytes_p2p": 2 ** 53 // 2}
        p.announce("started")
    total = t.stats()["total"]
    eq((total["bytes_cdn"], total["bytes_p2p"]), (cap, cap), "the total stops at 2^53 - 1")
    eq(total["offload"], 0.5, "offload of the capped sums")
    v = t.stats()["videos"]["cap3"]
    eq(v["bytes_cdn"], 2 ** 52, "a video's own sum")
    m = t.req("GET", "/metrics").body.decode()
    check('peercdn_tracker_bytes_total{source="cdn"} %d' % cap in m, "the Prometheus counter is capped too")


class FakeOrigin:
    """GET /api/videos/ID as an origin answers it, with a count of the questions per id: "ready-*" ready,
    "slow-*" ready after a second, "proc-*" processing, "err-*" 500, anything else 404."""

    def __init__(self):
        import http.server
        import threading
        self.asked = {}
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                vid = self.path.rsplit("/", 1)[1]
                fake.asked[vid] = fake.asked.get(vid, 0) + 1
                if not self.path.startswith("/api/videos/"):
                    status, body = 400, {}
                elif vid.startswith("ready-"):
                    status, body = 200, {"id": vid, "state": "ready"}
                elif vid.startswith("slow-"):
                    time.sleep(1)
                    status, body = 200, {"id": vid, "state": "ready"}
                elif vid.startswith("proc-"):
                    status, body = 200, {"id": vid, "state": "processing"}
                elif vid.startswith("err-"):
                    status, body = 500, {"code": "internal_error"}
                else:
                    status, body = 404, {"code": "not_found", "message": "no such video"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


def test_with_origin_only_published_videos_get_a_swarm(s):
    """--origin: announces for a video the tracker does not know wait for one question to the origin;
    invented ids, videos still processing and an origin that fails are refused with a reason, the answers
    are remembered, and the refused ids leave no trace in /stats."""
    import threading
    fake = FakeOrigin()
    t = s.tracker("--origin", fake.url + "/", "--rate-limit", "0")
    TrackerPeer(t, "ready-a", 1).announce("started")
    TrackerPeer(t, "ready-a", 2).announce("started")
    eq(fake.asked.get("ready-a"), 1, "one question for a video, then the swarm is known")
    for vid, code, status in (("nope-b", "unknown_video", 404), ("proc-c", "unknown_video", 404),
                              ("err-d", "origin_unavailable", 503)):
        for n in range(3):
            p = TrackerPeer(t, vid, 10 + n)
            r = p.post(p.body("started"))
            eq(r.status, status, "%s: %r" % (vid, r))
            eq(r.json()["code"], code, vid)
        eq(fake.asked.get(vid), 1, "%s: the answer is remembered" % vid)
    p = TrackerPeer(t, "err-d", 20)
    eq(p.post(p.body("started")).header("retry-after"), "5", "503 says when to retry")
    # announces arriving while the origin thinks all wait for the one answer
    results = []

    def go(n):
        p = TrackerPeer(t, "slow-e", 30 + n)
        results.append(p.post(p.body("started")).status)
    threads = [threading.Thread(target=go, args=(n,)) for n in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    eq(sorted(results), [200] * 6, "every parked announce is answered when the origin is")
    eq(fake.asked.get("slow-e"), 1, "one question for six announces")
    eq(sorted(t.stats()["videos"]), ["ready-a", "slow-e"], "refused ids are not in /stats")
    m = t.req("GET", "/metrics").body.decode()
    eq(re.search(r"peercdn_tracker_origin_lookups_total (\d+)", m).group(1), "5", "lookups counted")
    eq(re.search(r"peercdn_tracker_origin_refusals_total (\d+)", m).group(1), "2", "refusals counted")
    check(re.search(r'rejects_total\{code="unknown_video"\} 6', m), "rejects by code")
    # admitted videos do not stay in the table of answers: more new published videos than it holds
    # (4096) all get their swarm
    p = TrackerPeer(t, "ready-0", 100)
    t0 = time.time()
    for i in range(4200):
        p.video = "ready-many-%d" % i
        r = p.post(p.body("started"))
        if r.status != 200:
            raise AssertionError("new published video %d: %r" % (i, r))
    print("# 4200 new videos admitted in %.1f s" % (time.time() - t0))
    # a tracker stopped while announces wait answers them and exits cleanly
    p = TrackerPeer(t, "slow-f", 40)
    out = []
    th = threading.Thread(target=lambda: out.append(p.post(p.body("started"))))
    th.start()
    time.sleep(0.3)
    t.stop()
    th.join()
    check(out and out[0].status == 503 and out[0].json()["code"] == "stopping",
          "the parked announce is told the tracker stops: %r" % out)
    fake.srv.shutdown()


def test_with_origin_a_stopped_for_a_video_not_held_asks_no_one(s):
    """A 'stopped' for a video whose swarm the tracker does not hold (lost in a kill -9 before the save, or
    unpublished since) is answered 200 counting nothing, as without --origin: it makes no swarm, so the
    origin is not asked and its 404 is not passed on."""
    fake = FakeOrigin()
    t1 = s.tracker(check_exit=False)
    p = TrackerPeer(t1, "gone-q", 1)
    p.announce("started")  # a swarm, made without --origin, not yet saved
    t1.kill()
    t2 = s.tracker("--origin", fake.url + "/", db=t1.db)
    p.tracker = t2
    r = p.post(p.body("stopped"))
    eq(r.status, 200, "stopped after the crash: %r" % r.body[:300])
    eq(r.json()["peers"], [], "no peers after stopped")
    eq(fake.asked.get("gone-q"), None, "the origin is not asked")
    check("gone-q" not in t2.stats()["videos"], "no swarm made")
    fake.srv.shutdown()


def metric(t, name):
    m = re.search(r"^%s (\d+)$" % name, t.req("GET", "/metrics").body.decode(), re.M)
    return int(m.group(1)) if m else None


def test_a_peer_reported_banned_from_three_networks_is_listed_to_no_one(s):
    """Viewers report the keys they banned ("banned"); once reports about a member of the video come from
    three networks (/24), the tracker lists it to no one there and refuses its announces. Reports count
    once per network (keys cost nothing; networks do), only about members, and per video."""
    t = s.tracker()
    bad = TrackerPeer(t, "dis1", 10)
    bad.announce("started", playhead_ms=80000, have=[[0, 20]])
    bad_b64 = __import__("base64").b64encode(bad.pk).decode()
    net1 = TrackerPeer(t, "dis1", 11, source="127.0.1.1")
    net1b = TrackerPeer(t, "dis1", 12, source="127.0.1.2")  # the same /24
    net2 = TrackerPeer(t, "dis1", 13, source="127.0.2.1")
    net3 = TrackerPeer(t, "dis1", 14, source="127.0.3.1")
    other = TrackerPeer(t, "dis1", 15)
    for p in (net1, net1b, net2, net3, other):
        check(bad.peer_id in [x["peer_id"] for x in p.announce("started", need=3)["peers"]], "the peer is listed at first")
    stranger = __import__("base64").b64encode(os.urandom(32)).decode()
    net1.announce("periodic", banned=[bad_b64, stranger])  # a key that is no member is not counted
    net1b.announce("periodic", banned=[bad_b64])
    net2.announce("periodic", banned=[bad_b64])
    eq(metric(t, "peercdn_tracker_ban_reports_total"), 2, "reports about members counted, once per network")
    check(bad.peer_id in [x["peer_id"] for x in other.announce("periodic")["peers"]],
          "reports from two networks (three keys) are not enough")
    bad.announce("periodic")
    net3.announce("periodic", banned=[bad_b64])
    eq(metric(t, "peercdn_tracker_distrusted_total"), 1, "the verdict is counted")
    for p in (other, net1, net3):
        check(bad.peer_id not in [x["peer_id"] for x in p.announce("periodic")["peers"]], "listed to no one any more")
    r = bad.announce("periodic", expect=403)
    eq(r["code"], "distrusted", "its announces are refused")
    bad.session = None
    eq(bad.announce("started", expect=403)["code"], "distrusted", "a fresh start too")
    # another video is another verdict
    elsewhere = TrackerPeer(t, "dis2", 16)
    elsewhere.sk, elsewhere.pk = bad.sk, bad.pk
    elsewhere.announce("started")
    # a bad "banned" list is refused like any bad field
    eq(net1.announce("periodic", expect=400, banned=["AAEC"])["code"], "bad_field", "a key of the wrong length")
    eq(net1.announce("periodic", expect=400, banned=[bad_b64] * 9)["code"], "bad_field", "more than eight keys")
    # the verdict took its record away: a restart (which forgets verdicts) does not bring it back listed,
    # as it did when the record was saved and restored though the peer announced no more
    t.stop()
    t.restart()
    for p in (other, net1):
        p.session = None
        check(bad.peer_id not in [x["peer_id"] for x in p.announce("started")["peers"]], "not listed after a restart")


def test_the_descriptor_limit_is_raised_to_the_hard_limit(s):
    """Debian's soft limit of 1024 descriptors would refuse the 1025th client of a tracker whose hard
    limit allows far more: the tracker lifts it, and warns when the hard limit itself is low."""
    import resource

    def start(soft, hard):
        db = os.path.join(s.tmp, "nofile-%d.db" % hard)
        p = subprocess.Popen([s.bin("peercdn-tracker"), "serve", "--listen", "127.0.0.1:0", "--db", db],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
        check("listening on" in p.stdout.readline(), "started")
        time.sleep(0.3)
        with open("/proc/%d/limits" % p.pid) as f:
            row = [l for l in f if l.startswith("Max open files")][0].split()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=10)
        return int(row[3]), err

    got, err = start(256, 8192)
    eq(got, 8192, "soft limit raised to the hard one")
    check("file descriptors" not in err, "no warning: %r" % err)
    got, err = start(100, 200)
    eq(got, 200, "raised as far as allowed")
    check("only 200 file descriptors" in err, "a warning names the limit: %r" % err)


S.run([test_key_is_published, test_started_gets_session_ticket_and_useful_peers,
       test_tickets_are_renewed_before_they_end_even_after_a_lost_answer, test_other_videos_are_separate,
       test_silent_peers_expire_after_two_intervals, test_statistics_add_up, test_metrics_match_stats,
       test_restart_keeps_statistics_and_history, test_a_stop_does_not_wait_for_a_client_that_does_not_read,
       test_stats_cli, test_bad_input_is_refused_with_a_reason, test_addresses_no_other_host_can_dial_are_not_listed,
       test_flood_from_one_address_is_limited, test_origin_publishes_the_tracker_and_its_key,
       test_a_locked_database_does_not_stall_the_tracker, test_stats_of_a_large_catalog_are_shared_not_copied_per_client,
       test_a_tampered_saved_swarm_is_not_echoed_to_peers, test_history_pages_follow_the_cursor,
       test_history_pages_being_sent_are_limited,
       test_totals_near_the_cap_do_not_wrap, test_with_origin_only_published_videos_get_a_swarm,
       test_with_origin_a_stopped_for_a_video_not_held_asks_no_one,
       test_a_peer_reported_banned_from_three_networks_is_listed_to_no_one,
       test_the_descriptor_limit_is_raised_to_the_hard_limit])
