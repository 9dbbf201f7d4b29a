#!/usr/bin/env python3
"""Bad command lines and bad files given on them, for every binary: a usage error exits 2 and a bad
file or a failed start exits 1, each with one line on stderr and before anything is served or fetched;
nothing given is replaced or lost on the way (key files and databases are kept as they were). Writing
into a device or pipe instead of replacing it is tested in tests/unit/test_fs.c."""
import base64
import hashlib
import json
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Suite, check, eq  # noqa: E402

S = Suite("cli")


def run(binary, *args, timeout=20):
    p = subprocess.run([S.bin(binary)] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace")


def refused(binary, rc, *args, says=None):
    """|binary| with |args| exits |rc| at once with one line on stderr (containing |says|)."""
    got, err = run(binary, *args)
    what = "%s %s" % (binary, " ".join(a if len(a) < 40 else a[:37] + "..." for a in args))
    eq(got, rc, "%s: exit status (%r)" % (what, err))
    lines = err.strip().splitlines()
    check(len(lines) == 1, "%s: one line on stderr: %r" % (what, lines))
    if says is not None:
        check(says in err, "%s: says %r: %r" % (what, says, err))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_numbers_are_decimal_and_whole_where_they_count(s):
    scen = os.path.join(S.tmp, "tiny.json")
    json.dump({"duration_s": 5, "arrivals": {"kind": "list", "times_s": [0]}}, open(scen, "w"))
    out = os.path.join(S.tmp, "out")
    for v in ("1.5", "0x2", "inf", "nan", " 2", "1e999", ""):
        refused("peercdn-sim", 2, "run", scen, "--out", out, "--threads", v, says="--threads")
    refused("peercdn-sim", 2, "run", scen, "--out", out, "--seed", "18446744073709551615", says="2^53")
    refused("peercdn-sim", 2, "run", scen, "--out", out, "--seed", "9007199254740992", says="2^53")
    got, err = run("peercdn-sim", "run", scen, "--out", out, "--seed", "9007199254740991", "--quiet")
    eq(got, 0, "the largest seed a summary can record (%r)" % err)
    eq(json.load(open(os.path.join(out, "summary.json")))["seed"], 9007199254740991, "recorded as given")
    for v in ("1.5", "1e1", "10.0", "+4"):
        refused("peercdn-peer", 2, "play", "--origin", "http://127.0.0.1:1", "--video", "v", "--max-links", v,
                says="whole number")
    refused("peercdn-peer", 2, "play", "--origin", "http://127.0.0.1:1", "--video", "v", "--up-kbps", "0x10")
    # URLs libcurl cannot use, or whose user@ hides the host (a loopback-looking origin that is not one)
    for url in ("http://a:99999", "http://[::1", "http://:", "http://127.0.0.1:1@192.0.2.2:80", "http://u@127.0.0.1:1"):
        refused("peercdn-peer", 2, "play", "--origin", url, "--video", "v", says="--origin")
        refused("peercdn-peer", 2, "play", "--origin", "http://127.0.0.1:1", "--tracker", url, "--video", "v",
                says="--tracker")
    # options that would be silently ignored are refused instead
    refused("peercdn-sim", 2, "run", scen, "--out", out, "--compare", "--mode", "cdn-only", says="--compare")
    for opt in (["--rendition", "v0"], ["--watch-s", "3"], ["--seed-after", "5"], ["--seed-after", "0"], ["--max-wait-s", "5"]):
        refused("peercdn-peer", 2, "seed", "--origin", "http://127.0.0.1:1", "--video", "v", *opt, says="for play")
    refused("peercdn-tracker", 2, "serve", "--listen", "127.0.0.1:0", "--db", os.path.join(S.tmp, "t.db"),
            "--max-peers", "1.5")
    refused("peercdn-origin", 2, "serve", "--data", os.path.join(S.tmp, "o"), "--listen", "127.0.0.1:0",
            "--upload-token", "tokentoken", "--cache-mb", "0.5")
    # ranges are printed as whole numbers, not 1.04858e+06
    refused("peercdn-origin", 2, "serve", "--data", os.path.join(S.tmp, "o"), "--listen", "127.0.0.1:0",
            "--upload-token", "tokentoken", "--cache-mb", "-1", says="0 to 1048576")
    # empty values that would be taken for something else
    refused("peercdn-peer", 2, "play", "--origin", "http://127.0.0.1:1", "--video", "v", "--rendition", "",
            says="--rendition")
    refused("peercdn-origin", 2, "upload", os.path.join(S.tmp, "none.mp4"), "--origin", "http://127.0.0.1:1",
            "--token", "tokentoken", "--title", "", says="--title")


def test_a_refused_option_is_the_word_named(s):
    """The usage error names the option it refused: a short one (none exists) by itself, also inside a
    cluster after a valid option (once named the word before it), a long one with its argument."""
    out = os.path.join(S.tmp, "out")
    for binary, pre in (("peercdn-peer", ["play", "--origin", "http://127.0.0.1:1"]),
                        ("peercdn-tracker", ["serve", "--listen", "127.0.0.1:0"]),
                        ("peercdn-origin", ["serve", "--listen", "127.0.0.1:0"]),
                        ("peercdn-sim", ["run", "x.json", "--out", out])):
        refused(binary, 2, *pre, "-xy", says="'-x'")
        refused(binary, 2, *pre, "-q", says="'-q'")
        refused(binary, 2, *pre, "--no-such-option=1", says="'--no-such-option=1'")
    refused("peercdn-peer", 2, "play", "--origin", "http://127.0.0.1:1", "--no-upload=3", says="'--no-upload=3'")
    # options that contradict each other, and a cache directory that is a file, are usage errors at once
    refused("peercdn-peer", 2, "seed", "--origin", "http://127.0.0.1:1", "--video", "v", "--no-upload", says="for play")
    refused("peercdn-peer", 2, "play", "--origin", "http://127.0.0.1:1", "--video", "v", "--no-upload", "--up-kbps", "5",
            says="give one")
    refused("peercdn-peer", 2, "play", "--origin", "http://127.0.0.1:1", "--video", "v", "--cache-dir", "/etc/passwd",
            says="--cache-dir")
    refused("peercdn-peer", 2, "play", "--origin", "http://127.0.0.1:1", "--video", says="'--video'")
    refused("peercdn-sim", 2, "emulate", "x.json", "--out", out, "-kz", says="'-k'")


def test_origin_checks_its_flags_at_start(s):
    base = ["serve", "--data", os.path.join(S.tmp, "origin"), "--upload-token", "tokentoken"]
    for addr in ("127.0.0.1:65536", "127.0.0.1", "::1:0", "127.0.0.1:-1", "nohost:80"):
        refused("peercdn-origin", 2, *base, "--listen", addr, says="--listen")
    ok = base + ["--listen", "127.0.0.1:0"]
    refused("peercdn-origin", 2, *ok, "--tracker", "http://127.0.0.1:1", "--tracker-key", "notbase64!!",
            says="--tracker-key")
    refused("peercdn-origin", 2, *ok, "--tracker", "http://127.0.0.1:1", "--tracker-key", "AAAA", says="--tracker-key")
    # a tracker URL longer than peers take in a manifest (2048) would make every manifest one they refuse
    refused("peercdn-origin", 2, *ok, "--tracker", "http://127.0.0.1:1/" + "a" * 2040, says="--tracker")
    refused("peercdn-origin", 2, *ok, "--preset", "bogus", says="--preset")
    for u in ("notaurl", "", "ftp://x"):
        refused("peercdn-origin", 2, *ok, "--public-url", u, says="--public-url")
    refused("peercdn-origin", 2, "serve", "--data", "", "--listen", "127.0.0.1:0", "--upload-token", "tokentoken")
    refused("peercdn-origin", 2, "serve", "--data", os.path.join(S.tmp, "o2"), "--listen", "127.0.0.1:0",
            "--upload-token", "", says="--upload-token")
    # a short token serves, with a warning that it is guessable
    p = subprocess.Popen([S.bin("peercdn-origin"), "serve", "--data", os.path.join(S.tmp, "o3"), "--listen",
                          "127.0.0.1:0", "--upload-token", "abc"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline().decode()
        check("listening on http://" in line, "a short token serves: %r" % line)
    finally:
        p.terminate()
        err = p.communicate(timeout=30)[1].decode()
    check("guesses it" in err, "with a warning: %r" % err[:300])
    data = os.path.join(S.tmp, "origin-notdb")
    os.makedirs(data)
    open(os.path.join(data, "origin.db"), "w").write("garbage\n")
    refused("peercdn-origin", 1, "serve", "--data", data, "--listen", "127.0.0.1:0", "--upload-token", "tokentoken",
            says="not a database")
    f = os.path.join(S.tmp, "a-file")
    open(f, "w").write("x")
    refused("peercdn-origin", 1, "serve", "--data", os.path.join(f, "sub"), "--listen", "127.0.0.1:0",
            "--upload-token", "tokentoken", says="data directory")
    refused("peercdn-origin", 2, "upload", f, "--origin", "ftp://x", "--token", "tokentoken", says="--origin")
    refused("peercdn-origin", 2, "upload", f, "--origin", "notaurl", "--token", "tokentoken", says="--origin")


def test_key_files_must_hold_a_key_pair(s):
    """64 bytes whose second half is not the first half's public key would publish a key that verifies
    none of the signatures: refused, and the file is kept as it was."""
    key = os.path.join(S.tmp, "mixed.key")
    open(key, "wb").write(b"x" * 64)
    refused("peercdn-tracker", 1, "serve", "--listen", "127.0.0.1:0", "--db", os.path.join(S.tmp, "k.db"),
            "--key", key, says=key)
    eq(open(key, "rb").read(), b"x" * 64, "the key file is kept")
    data = os.path.join(S.tmp, "origin-mixed")
    os.makedirs(os.path.join(data, "keys"))
    open(os.path.join(data, "keys", "origin.ed25519"), "wb").write(os.urandom(64))
    refused("peercdn-origin", 1, "serve", "--data", data, "--listen", "127.0.0.1:%d" % free_port(), "--upload-token",
            "tokentoken", says="origin key")


def test_tracker_checks_its_files_at_start(s):
    db = os.path.join(S.tmp, "tr.db")
    refused("peercdn-tracker", 2, "serve", "--listen", "127.0.0.1:0", "--db", "")
    for addr in ("127.0.0.1:65536", "127.0.0.1", "::1:0"):
        refused("peercdn-tracker", 2, "serve", "--listen", addr, "--db", db, says="--listen")
    refused("peercdn-tracker", 1, "serve", "--listen", "127.0.0.1:0", "--db", os.path.join(S.tmp, "no", "dir", "a.db"),
            says="No such file or directory")
    refused("peercdn-tracker", 1, "serve", "--listen", "127.0.0.1:0", "--db", S.tmp, says="Is a directory")
    notdb = os.path.join(S.tmp, "not.db")
    open(notdb, "w").write("not a database\n" * 100)
    refused("peercdn-tracker", 1, "serve", "--listen", "127.0.0.1:0", "--db", notdb, says="not a database")
    eq(open(notdb).read(), "not a database\n" * 100, "the file is kept as it was")
    # a device, not a file: refused at once instead of reading NUL bytes forever
    refused("peercdn-tracker", 1, "serve", "--listen", "127.0.0.1:0", "--db", db, "--locality", "/dev/zero",
            says="/dev/zero")
    nul = os.path.join(S.tmp, "nul.txt")
    open(nul, "wb").write(b"10.0.0.0/8 eu\n" + b"\0" * 100 + b"\n")
    refused("peercdn-tracker", 1, "serve", "--listen", "127.0.0.1:0", "--db", db, "--locality", nul, says="nul.txt:2")
    # a FIFO in a file's place is refused at once; before, --locality and --key blocked the start for good
    fifo = os.path.join(S.tmp, "fifo")
    os.mkfifo(fifo)
    refused("peercdn-tracker", 1, "serve", "--listen", "127.0.0.1:0", "--db", db, "--locality", fifo, says="regular")
    refused("peercdn-tracker", 1, "serve", "--listen", "127.0.0.1:0", "--db", db, "--key", fifo, says=fifo)
    refused("peercdn-tracker", 1, "serve", "--listen", "127.0.0.1:0", "--db", fifo, says="not a regular file")
    # a locality file written on Windows: its blank lines are blank too
    crlf = os.path.join(S.tmp, "crlf.txt")
    open(crlf, "wb").write(b"# regions\r\n\r\n10.0.0.0/8 eu\r\n  \r\n192.0.2.0/24 us 64500\r\n")
    t = s.tracker("--locality", crlf, db=os.path.join(S.tmp, "crlf.db"))
    # one tracker per database, whatever name reaches it: a symbolic link, a hard link
    os.symlink(t.db, t.db + ".sym")
    os.link(t.db, t.db + ".hard")
    for other in (t.db, t.db + ".sym", t.db + ".hard"):
        refused("peercdn-tracker", 1, "serve", "--listen", "127.0.0.1:0", "--db", other, says="in use by another tracker")
    t.stop()


def test_peer_checks_its_addresses_before_fetching(s):
    """The origin here does not exist: each error must come from the flags, not from the fetch."""
    base = ["play", "--origin", "http://127.0.0.1:1", "--video", "v"]
    for addr in ("notanip", "", "999.1.1.1", "127.0.0.1:80", "0.0.0.0", "::", "224.0.0.1", "ff02::1"):
        refused("peercdn-peer", 2, *base, "--announce-addr", addr, says="--announce-addr")
    for flag in ("--listen", "--hls-listen"):
        for addr in ("127.0.0.1:65536", "127.0.0.1", "::1:0"):
            refused("peercdn-peer", 2, *base, flag, addr, says=flag)
    f = os.path.join(S.tmp, "state-file")
    open(f, "w").write("x")
    for d in (f, os.path.join(f, "sub"), ""):
        refused("peercdn-peer", 2, *base, "--state-dir", d, says="--state-dir")


def test_a_pinned_key_that_is_not_a_key_is_named(s):
    """An empty or garbage pin is an error naming the file; it is not silently replaced or ignored."""
    state = os.path.join(S.tmp, "pins")
    os.makedirs(state)
    os.chmod(state, 0o700)
    o = s.origin()
    # a first run that fails (no such video) pins nothing (docs/peer.md); the pin's name is
    # origin-<the first 16 bytes of BLAKE2b-256 of the origin URL, hex>.key
    got, err = run("peercdn-peer", "play", "--origin", o.url, "--video", "novideo", "--state-dir", state)
    check(got != 0, "no such video")
    eq(os.listdir(state), [], "nothing pinned")
    pin = os.path.join(state, "origin-%s.key" % hashlib.blake2b(o.url.encode(), digest_size=32).digest()[:16].hex())
    for bad in (b"", b"garbage\n"):
        open(pin, "wb").write(bad)
        refused("peercdn-peer", 1, "play", "--origin", o.url, "--video", "novideo", "--state-dir", state, says=pin)
        eq(open(pin, "rb").read(), bad, "the pin is left for the operator to look at")
    # a pin someone else could have written is not trusted (SSH's StrictModes): a directory or file writable
    # by group or others, or owned by another user (these tests run as root, which may own them)
    open(pin, "w").write(base64.b64encode(b"k" * 32).decode() + "\n")
    os.chmod(pin, 0o644)
    for path, mode, owner, says in ((state, 0o770, None, "the state directory"), (state, 0o707, None, "the state directory"),
                                    (pin, 0o664, None, "the pinned key"), (pin, 0o646, None, "the pinned key"),
                                    (state, 0o700, 65534, "belongs to another user"),
                                    (pin, 0o644, 65534, "belongs to another user")):
        saved = os.stat(path)
        os.chmod(path, mode)
        if owner is not None:
            if os.geteuid() != 0:
                continue
            os.chown(path, owner, owner)
        refused("peercdn-peer", 1, "play", "--origin", o.url, "--video", "novideo", "--state-dir", state, says=says)
        os.chmod(path, saved.st_mode & 0o7777)
        if owner is not None:
            os.chown(path, saved.st_uid, saved.st_gid)
    # with both safe again, the pinned key is what is checked (and this one does not sign the origin's manifests)
    got, err = run("peercdn-peer", "play", "--origin", o.url, "--video", "novideo", "--state-dir", state)
    check(got != 0 and "another user" not in err and "state directory" not in err, "the pin was read: %s" % err)


def test_scenarios_have_types_and_totals(s):
    bad = {"mode-number": {"mode": 3}, "name-number": {"name": 5}, "seed-fraction": {"seed": 1.5},
           "kind-number": {"arrivals": {"kind": 1}},
           "regions-zero": {"viewers": {"regions": {"eu": 0, "us": 0}}},
           "ladder-equal": {"media": {"ladder_kbps": [400, 400]}},
           "too-many-viewers": {"duration_s": 2592000, "arrivals": {"kind": "poisson", "rate_per_s": 100000}},
           "too-many-seeders": {"catalog": {"videos": 100000}, "seeders": {"per_video": 1000}},
           "too-large-catalog": {"catalog": {"videos": 100000, "duration_s": 21600}, "media": {"segment_s": 0.5}}}
    for name, d in bad.items():
        path = os.path.join(S.tmp, "scen-%s.json" % name)
        json.dump(d, open(path, "w"))
        refused("peercdn-sim", 1, "run", path, "--out", os.path.join(S.tmp, "scen-out"), says="scenario")
    # a region whose name has a dash could never get a pair latency; a pair given both ways is ambiguous
    for name, d, says in (("region-dash", {"viewers": {"regions": {"eu-west": 1, "us": 1}}}, "without '-'"),
                          ("pair-twice", {"viewers": {"regions": {"eu": 1, "us": 1}},
                                          "network": {"latency_ms": {"eu-us": 100, "us-eu": 10}}}, "given twice")):
        path = os.path.join(S.tmp, "scen-%s.json" % name)
        json.dump(d, open(path, "w"))
        refused("peercdn-sim", 1, "run", path, "--out", os.path.join(S.tmp, "scen-out"), says=says)
    # a distribution without what defines it is named, not given a default of 1 kbit/s (or second)
    for name, d, says in (("lognormal-median", {"dist": "lognormal", "sigma": 1}, "up_kbps.median: missing"),
                          ("uniform-min", {"dist": "uniform", "max": 9}, "up_kbps.min: missing"),
                          ("uniform-max", {"dist": "uniform", "min": 9}, "up_kbps.max: missing")):
        path = os.path.join(S.tmp, "scen-%s.json" % name)
        json.dump({"viewers": {"up_kbps": d}}, open(path, "w"))
        refused("peercdn-sim", 1, "run", path, "--out", os.path.join(S.tmp, "scen-out"), says=says)


S.run([test_numbers_are_decimal_and_whole_where_they_count, test_a_refused_option_is_the_word_named,
       test_origin_checks_its_flags_at_start,
       test_key_files_must_hold_a_key_pair, test_tracker_checks_its_files_at_start,
       test_peer_checks_its_addresses_before_fetching, test_a_pinned_key_that_is_not_a_key_is_named,
       test_scenarios_have_types_and_totals])
