#!/usr/bin/env python3
"""bench/tracker: announces per second of peercdn-tracker against opentracker (the Debian package) on
loopback, with equivalent announce mixes, and memory per tracked peer at a million peers.

Both trackers first get the same population (--swarms x --peers, every peer announced once), then
wrk (1 thread, --connections) sends regular announces from random members of that population for
--duration seconds, numwant --numwant. peercdn announces are periodic JSON announces with sessions
and a playhead (the work a real swarm makes); opentracker's are BitTorrent HTTP announces with
compact=1. The client behaviour is the same for both: wrk offers keep-alive. opentracker closes every
connection after its answer, so wrk reconnects each time; we also run peercdn with "Connection:
close" to compare like for like, and print both ratios. Goal: >= 1.5x.

Memory: --million peers (1000 swarms x 1000) are announced into each tracker; the RSS growth divided
by the number of peers is the cost per tracked peer. Goal: <= 200 bytes.

usage: bench/tracker.py [--duration S] [--connections N] [--swarms N] [--peers N] [--numwant N] [--million N]
"""
import argparse
import base64
import hashlib
import os
import subprocess
import time

import common
from harness import Suite

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ap = argparse.ArgumentParser()
ap.add_argument("--duration", type=int, default=10)
ap.add_argument("--connections", type=int, default=16)
ap.add_argument("--swarms", type=int, default=1000)
ap.add_argument("--peers", type=int, default=100)
ap.add_argument("--numwant", type=int, default=50)
ap.add_argument("--million", type=int, default=1000000, help="peers for the memory measurement (0 skips it)")
ap.add_argument("--keys", type=int, default=1000, help="distinct peer keys (a key may be in every swarm; >= peers)")
a, _ = ap.parse_known_args()
if a.keys < a.peers:
    ap.error("--keys must be at least --peers: a swarm's peers need keys of their own")
S = Suite("bench-tracker")
MARKER = os.path.join(S.tmp, "populated")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def make_keys(n):
    keys = []
    ts = int(time.time())
    for _ in range(n):
        sk = Ed25519PrivateKey.generate()
        pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        sig = sk.sign(b"peercdn proof v1\0" + pk + ts.to_bytes(8, "big"))
        keys.append((pk, base64.b64encode(pk).decode(), ts, base64.b64encode(sig).decode()))
    return keys


def tracker_key_file():
    """A tracker key the bench knows, so it can derive the sessions peers would have received."""
    seed = os.urandom(32)
    pk = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(serialization.Encoding.Raw,
                                                                             serialization.PublicFormat.Raw)
    path = os.path.join(S.tmp, "tracker.key")
    with open(path, "wb") as f:
        f.write(seed + pk)
    os.chmod(path, 0o600)
    return path, seed


def peer_id(i):
    return "%032x" % i


def lua_table(rows):
    return "{\n" + ",\n".join("{" + ",".join('"%s"' % c if isinstance(c, str) else str(c) for c in r) + "}"
                              for r in rows) + "\n}"


# One Lua script per phase: "populate" announces every (swarm, peer) once, in order, then stops;
# "measure" announces random members until wrk's duration ends.
PEERCDN_LUA = r"""
local keys = %(keys)s
local sessions = {}
if "%(sessions)s" ~= "" then
  for line in io.lines("%(sessions)s") do sessions[#sessions + 1] = line end
end
local swarms, peers, nkeys, numwant, mode = %(swarms)d, %(peers)d, #keys, %(numwant)d, "%(mode)s"
local n = 0
local headers = {["Content-Type"] = "application/json"%(close)s}
function request()
  local s, p
  if mode == "populate" then
    if n >= swarms * peers then
      if n == swarms * peers then io.open("%(marker)s", "w"):close() end
      wrk.thread:stop()
    end
    s, p = n %% swarms, math.floor(n / swarms)
  else
    s, p = math.random(0, swarms - 1), math.random(0, peers - 1)
  end
  n = n + 1
  local i = p * swarms + s
  local k = keys[((s + p) %% nkeys) + 1] -- distinct keys within a swarm
  local body
  if mode == "populate" then
    body = string.format('{"peer_id":"%%032x","key":"%%s","port":%%d,"video":"v%%05d","rendition":"v2",' ..
      '"event":"started","proof":{"ts":%%d,"sig":"%%s"},"playhead_ms":%%d,"have":[[0,%%d]],"up_kbps":2000,"numwant":0}',
      i, k[1], 1024 + p, s, k[2], k[3], p * 997 %% 600000, p %% 150)
  else
    body = string.format('{"peer_id":"%%032x","key":"%%s","port":%%d,"video":"v%%05d","rendition":"v2",' ..
      '"event":"periodic","session":"%%s","playhead_ms":%%d,"need":%%d,"have":[[0,%%d]],"up_kbps":2000,"numwant":%%d}',
      i, k[1], 1024 + p, s, sessions[i + 1], p * 997 %% 600000, p %% 150 + 1, p %% 150, numwant)
  end
  return wrk.format("POST", "/announce", headers, body)
end
"""

OPENTRACKER_LUA = r"""
local hashes = %(hashes)s
local swarms, peers, numwant, mode = %(swarms)d, %(peers)d, %(numwant)d, "%(mode)s"
local n = 0
function request()
  local s, p
  if mode == "populate" then
    if n >= swarms * peers then
      if n == swarms * peers then io.open("%(marker)s", "w"):close() end
      wrk.thread:stop()
    end
    s, p = n %% swarms, math.floor(n / swarms)
  else
    s, p = math.random(0, swarms - 1), math.random(0, peers - 1)
  end
  n = n + 1
  local i = p * swarms + s
  local ev = mode == "populate" and "&event=started" or ""
  local want = mode == "populate" and 0 or numwant
  return wrk.format("GET", string.format("/announce?info_hash=%%s&peer_id=-PC0001-%%012d&port=%%d&uploaded=0" ..
    "&downloaded=0&left=1000&numwant=%%d&compact=1%%s", hashes[s + 1], i, 1024 + p, want, ev))
end
"""


def write(name, text):
    path = os.path.join(S.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def sessions_for(seed, keys, swarms, peers):
    """What the tracker hands out (docs/tracker.md: BLAKE2b-128 keyed with a key derived from the
    tracker key over peer id, peer key and video)."""
    skey = hashlib.blake2b(b"peercdn session key v1\0", key=seed, digest_size=32).digest()
    out = []
    for i in range(swarms * peers):
        s, p = i % swarms, i // swarms
        pk = keys[(s + p) % len(keys)][0]
        msg = bytes.fromhex(peer_id(i)) + pk + (b"v%05d" % s) + b"\0"
        out.append(base64.urlsafe_b64encode(hashlib.blake2b(msg, key=skey, digest_size=16).digest()).decode()
                   .rstrip("="))
    return out


def peercdn_script(mode, keys, sessions, swarms, peers, close=False):
    sessions_file = ""
    if sessions is not None:
        sessions_file = write("sessions.txt", "\n".join(sessions) + "\n")
    return write("peercdn-%s%s.lua" % (mode, "-close" if close else ""), PEERCDN_LUA % {
        "keys": lua_table([(k[1], k[2], k[3]) for k in keys]), "sessions": sessions_file, "swarms": swarms,
        "peers": peers, "numwant": a.numwant, "mode": mode, "close": ', ["Connection"] = "close"' if close else "",
        "marker": MARKER})


def opentracker_script(mode, swarms, peers):
    hashes = ["".join("%%%02X" % b for b in hashlib.sha1(b"v%05d" % s).digest()) for s in range(swarms)]
    return write("ot-%s.lua" % mode, OPENTRACKER_LUA % {"hashes": "{" + ",".join('"%s"' % h for h in hashes) + "}",
                                                       "swarms": swarms, "peers": peers, "numwant": a.numwant,
                                                       "mode": mode, "marker": MARKER})


def populate(base, script, total):
    """Runs wrk until the script has sent |total| announces. The script stops sending and drops a
    marker file then (wrk itself would idle until its duration ends), and the answers in flight get a
    second to arrive."""
    t0 = time.time()
    if os.path.exists(MARKER):
        os.unlink(MARKER)
    p = subprocess.Popen(["wrk", "-t1", "-c16", "-d%ds" % (total // 2000 + 60), "-s", script, base],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(MARKER) and p.poll() is None:
        time.sleep(0.2)
    if not os.path.exists(MARKER):
        raise AssertionError("wrk ended before sending %d announces" % total)
    time.sleep(1)
    secs = time.time() - t0 - 1
    p.terminate()
    p.wait()
    return secs, ""


def start_opentracker(swarms):
    d = os.path.join(S.tmp, "opentracker")
    os.makedirs(d, exist_ok=True)
    os.chmod(S.tmp, 0o755)
    os.chmod(d, 0o755)
    with open(os.path.join(d, "whitelist"), "w") as f:
        for s in range(swarms):
            f.write(hashlib.sha1(b"v%05d" % s).hexdigest() + "\n")
    os.chmod(os.path.join(d, "whitelist"), 0o644)
    port = common.free_port()
    proc = subprocess.Popen(["opentracker", "-i", "127.0.0.1", "-p", str(port), "-P", str(port), "-w", "whitelist",
                             "-d", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    S.cleanups.append(lambda: (proc.terminate(), proc.wait()))  # stopped by common.run if the bench fails
    time.sleep(0.5)
    if proc.poll() is not None:
        raise AssertionError("opentracker did not start")
    return proc, "http://127.0.0.1:%d" % port


def throughput():
    keys = make_keys(a.keys)
    keyfile, seed = tracker_key_file()
    sessions = sessions_for(seed, keys, a.swarms, a.peers)
    t = S.tracker("--key", keyfile, "--rate-limit", "0", "--interval", "3600", "--ticket-ttl", "14400", "--log-level", "warn")
    secs, _ = populate(t.url, peercdn_script("populate", keys, None, a.swarms, a.peers), a.swarms * a.peers)
    eq_peers = t.stats()["total"]["peers"]
    if eq_peers != a.swarms * a.peers:
        raise AssertionError("peercdn-tracker holds %d peers, expected %d" % (eq_peers, a.swarms * a.peers))
    ours = common.run_wrk(t.url, peercdn_script("measure", keys, sessions, a.swarms, a.peers), a.duration,
                          a.connections)
    ours_close = common.run_wrk(t.url, peercdn_script("measure", keys, sessions, a.swarms, a.peers, close=True),
                                a.duration, a.connections)
    t.stop()
    S.cleanups.remove(t.stop)
    proc, base = start_opentracker(a.swarms)
    try:
        populate(base, opentracker_script("populate", a.swarms, a.peers), a.swarms * a.peers)
        theirs = common.run_wrk(base, opentracker_script("measure", a.swarms, a.peers), a.duration, a.connections,
                                allow_errors=True)
    finally:
        proc.terminate()
        proc.wait()
    return ours, ours_close, theirs


def memory():
    keys = make_keys(a.keys)
    swarms = 1000
    peers = a.million // swarms
    t = S.tracker("--rate-limit", "0", "--interval", "3600", "--ticket-ttl", "14400", "--log-level", "warn", "--max-peers", str(a.million + 10))
    time.sleep(0.3)
    before = rss_kib(t.proc.pid)
    secs, _ = populate(t.url, peercdn_script("populate", keys, None, swarms, peers), swarms * peers)
    held = t.stats()["total"]["peers"]
    after = rss_kib(t.proc.pid)
    t.stop()
    S.cleanups.remove(t.stop)
    proc, base = start_opentracker(swarms)
    try:
        time.sleep(0.3)
        ot_before = rss_kib(proc.pid)
        ot_secs, _ = populate(base, opentracker_script("populate", swarms, peers), swarms * peers)
        ot_after = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
    return held, (after - before) * 1024 / held, secs, (ot_after - ot_before) * 1024 / (swarms * peers), ot_secs


def main():
    ours, ours_close, theirs = throughput()
    print("announce mix: %d swarms x %d peers, numwant %d, wrk 1 thread, %d connections, %d s; %d CPUs" % (
        a.swarms, a.peers, a.numwant, a.connections, a.duration, os.cpu_count()))
    print("  %-44s %9.0f announces/s  p99 %7.2f ms" % ("peercdn-tracker (keep-alive)", ours[0], ours[2]))
    print("  %-44s %9.0f announces/s  p99 %7.2f ms" % ("peercdn-tracker (Connection: close)", ours_close[0],
                                                       ours_close[2]))
    print("  %-44s %9.0f announces/s  p99 %7.2f ms" % ("opentracker (closes every connection)", theirs[0],
                                                       theirs[2]))
    print("  ratio, same client behaviour: %.2f   ratio, a new connection per announce for both: %.2f (goal >= 1.5)"
          % (ours[0] / theirs[0], ours_close[0] / theirs[0]))
    res = {"bench": "tracker", "peercdn_rps": ours[0], "peercdn_close_rps": ours_close[0], "opentracker_rps": theirs[0],
           "peercdn_p99_ms": ours[2], "peercdn_close_p99_ms": ours_close[2], "opentracker_p99_ms": theirs[2]}
    if a.million > 0:
        held, per_peer, secs, ot_per_peer, ot_secs = memory()
        print("memory: %d peers in 1000 swarms: peercdn-tracker %.0f bytes per peer (goal <= 200; loaded in %.0f s), "
              "opentracker %.0f bytes per peer (%.0f s)" % (held, per_peer, secs, ot_per_peer, ot_secs))
        res.update(peers=held, bytes_per_peer=round(per_peer), opentracker_bytes_per_peer=round(ot_per_peer))
    print(res)


common.run(S, main)
