#!/usr/bin/env python3
"""/v/ served as a CDN origin: ranges, strong ETags, 304s, caching, CORS, MIME types, gzip,
signed-URL mode, deletion and the paginated catalog; checked with curl and plain HTTP."""
import email.utils
import gzip
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import Suite, check, clip, eq, ffmpeg_decode, prom_parse, raw_exchange, subtitled  # noqa: E402

S = Suite("serving")
st = {}


def curl(*args):
    try:
        os.unlink(os.path.join(S.tmp, "body"))
    except FileNotFoundError:
        pass
    p = subprocess.run(["curl", "-s", "-D", "-", "-o", os.path.join(S.tmp, "body")] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    head = p.stdout.decode()
    blocks = [b for b in head.split("\r\n\r\n") if b.strip()]
    lines = blocks[-1].split("\r\n")
    status = int(lines[0].split()[1])
    h = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        k = k.strip().lower()
        h[k] = h[k] + ", " + v.strip() if k in h else v.strip()  # repeated headers joined, as HTTP reads them
    try:
        with open(os.path.join(S.tmp, "body"), "rb") as f:
            body = f.read()
    except FileNotFoundError:
        body = b""
    return status, h, body


def test_publish_three_videos(s):
    o = s.origin()
    st["o"] = o
    src = clip("serve_480x270", size="480x270", rate=30, dur=5)
    st["ids"] = [o.upload(src, title="video %d" % i, parallel=1) for i in range(3)]
    for vid in st["ids"]:
        o.ready(vid)
    st["vid"] = st["ids"][0]
    st["base"] = "%s/v/%s" % (o.url, st["vid"])


def test_segments_are_immutable_with_strong_etags(s):
    status, h, body = curl(st["base"] + "/v0/seg-00001.m4s")
    eq(status, 200, "GET")
    eq(h["content-type"], "video/iso.segment", "MIME")
    eq(h["cache-control"], "public, max-age=31536000, immutable", "Cache-Control")
    check(re.fullmatch(r'"[^"]+"', h["etag"]) is not None, "strong ETag: %r" % h["etag"])
    eq(int(h["content-length"]), len(body), "length")
    eq(h["accept-ranges"], "bytes", "Accept-Ranges")
    status, h2, _ = curl(st["base"] + "/v0/seg-00001.m4s")
    eq(h2["etag"], h["etag"], "stable ETag")
    status, h3, body3 = curl("-H", "If-None-Match: " + h["etag"], st["base"] + "/v0/seg-00001.m4s")
    eq(status, 304, "If-None-Match")
    eq(body3, b"", "304 has no body")
    eq(h3["etag"], h["etag"], "304 repeats the ETag")
    status, _, _ = curl("-H", 'If-None-Match: "other", ' + h["etag"], st["base"] + "/v0/seg-00001.m4s")
    eq(status, 304, "If-None-Match list")
    status, _, _ = curl("-H", "If-Modified-Since: " + h["last-modified"], st["base"] + "/v0/seg-00001.m4s")
    eq(status, 304, "If-Modified-Since")
    # the two obsolete date forms RFC 9110 5.6.7 makes recipients accept too (before: 200)
    lm = email.utils.parsedate_to_datetime(h["last-modified"])
    for form in (lm.strftime("%A, %d-%b-%y %H:%M:%S GMT"), lm.strftime("%a %b ") + "%2d" % lm.day + lm.strftime(" %H:%M:%S %Y")):
        status, _, _ = curl("-H", "If-Modified-Since: " + form, st["base"] + "/v0/seg-00001.m4s")
        eq(status, 304, "If-Modified-Since: %s" % form)
    # and no other form: a date RFC 9110 does not know is ignored (before, libcurl's lenient parser took
    # these, and a cache revalidating with them got 304 for a file it never had)
    for bad in ("1 Jan 2099", lm.strftime("%a, %d %b %Y %H:%M:%S PST"), "2099-01-01T00:00:00Z"):
        status, _, _ = curl("-H", "If-Modified-Since: " + bad, st["base"] + "/v0/seg-00001.m4s")
        eq(status, 200, "If-Modified-Since: %s is not a date" % bad)
    # preconditions (RFC 9110 13.1.1, 13.1.4): If-Match compares strongly, and a failed one (else an
    # If-Unmodified-Since before the file's time) is a 412 (before: ignored, 200)
    seg_url = st["base"] + "/v0/seg-00001.m4s"
    for cond, want in (("If-Match: " + h["etag"], 200), ('If-Match: "other", ' + h["etag"], 200), ("If-Match: *", 200),
                       ('If-Match: "other"', 412), ("If-Match: W/" + h["etag"], 412),
                       ("If-Unmodified-Since: " + h["last-modified"], 200),
                       ("If-Unmodified-Since: Thu, 01 Jan 1998 00:00:00 GMT", 412),
                       ("If-Unmodified-Since: not a date", 200)):
        status, hp, bp = curl("-H", cond, seg_url)
        eq(status, want, cond)
        if want == 412:
            eq(json.loads(bp)["code"], "precondition_failed", "%s: JSON error" % cond)
            check("etag" not in hp and "immutable" not in hp.get("cache-control", ""), "a 412 is not cached: %r" % hp)
    # If-Match is evaluated first: with it, If-Unmodified-Since is ignored
    status, _, _ = curl("-H", "If-Match: " + h["etag"], "-H", "If-Unmodified-Since: Thu, 01 Jan 1998 00:00:00 GMT", seg_url)
    eq(status, 200, "If-Match before If-Unmodified-Since")
    st["seg"], st["etag"] = body, h["etag"]
    status, h, body = curl(st["base"] + "/v0/init.mp4")
    eq(h["content-type"], "video/mp4", "init MIME")
    eq(h["cache-control"], "public, max-age=31536000, immutable", "init Cache-Control")


def test_byte_ranges(s):
    seg = st["seg"]
    status, h, body = curl("-r", "100-199", st["base"] + "/v0/seg-00001.m4s")
    eq(status, 206, "range")
    eq(body, seg[100:200], "range bytes")
    eq(h["content-range"], "bytes 100-199/%d" % len(seg), "Content-Range")
    status, h, body = curl("-r", "-50", st["base"] + "/v0/seg-00001.m4s")
    eq((status, body), (206, seg[-50:]), "suffix range")
    status, h, body = curl("-r", "%d-" % (len(seg) - 10), st["base"] + "/v0/seg-00001.m4s")
    eq((status, body), (206, seg[-10:]), "open range")
    status, h, body = curl("-r", "%d-" % (len(seg) + 5), st["base"] + "/v0/seg-00001.m4s")
    eq(status, 416, "unsatisfiable")
    eq(h["content-range"], "bytes */%d" % len(seg), "416 Content-Range")
    check(h["content-type"].startswith("application/json"), "the 416 is a JSON error, not media: %r" % h)
    eq(__import__("json").loads(body)["code"], "range_not_satisfiable", "416 code")
    eq(h["cache-control"], "no-store", "a 416 is not cached like the segment, and says so once")
    eq(h["access-control-allow-origin"], "*", "one Access-Control-Allow-Origin (browsers refuse two)")
    check("etag" not in h and "last-modified" not in h, "nor does it carry the segment's validators: %r" % h)
    status, h, body = curl("-H", "Range: bytes=-0", st["base"] + "/v0/seg-00001.m4s")
    eq((status, h["content-range"]), (416, "bytes */%d" % len(seg)), "an empty suffix range")
    status, _, body = curl("-r", "0-9", "-H", 'If-Range: "stale"', st["base"] + "/v0/seg-00001.m4s")
    eq((status, len(body)), (200, len(seg)), "If-Range mismatch serves everything")
    status, _, body = curl("-r", "0-9", "-H", "If-Range: " + st["etag"], st["base"] + "/v0/seg-00001.m4s")
    eq((status, body), (206, seg[:10]), "If-Range match")
    # two Range lines are one list (RFC 9110 5.3), "bytes=0-1, bytes=5-9", which is no range: the whole file
    # (before, the first line alone was served, 206 with bytes 0-1)
    status, _, body = curl("-H", "Range: bytes=0-1", "-H", "Range: bytes=5-9", st["base"] + "/v0/seg-00001.m4s")
    eq((status, len(body)), (200, len(seg)), "two Range lines")


def test_cors(s):
    status, h, _ = curl("-H", "Origin: https://player.example", "-r", "0-1", st["base"] + "/v0/seg-00001.m4s")
    eq(h["access-control-allow-origin"], "*", "ACAO")
    exposed = h["access-control-expose-headers"].lower()
    check("content-range" in exposed and "content-length" in exposed, "exposed: %s" % exposed)
    status, h, _ = curl("-X", "OPTIONS", "-H", "Origin: https://player.example", "-H",
                        "Access-Control-Request-Headers: range", st["base"] + "/v0/seg-00001.m4s")
    eq(status, 204, "preflight")
    check("range" in h["access-control-allow-headers"].lower(), "Range allowed")
    check("access-control-allow-private-network" not in h, "no Private Network Access unless asked")
    # a page on a public site, the origin on a private network (Chrome's Private Network Access)
    status, h, _ = curl("-X", "OPTIONS", "-H", "Origin: https://player.example", "-H",
                        "Access-Control-Request-Private-Network: true", st["base"] + "/v0/seg-00001.m4s")
    eq((status, h.get("access-control-allow-private-network")), (204, "true"), "a private-network preflight")
    # the API's too, for a browser admin page sending Authorization (before: 405, so its fetch failed)
    o = st["o"]
    for path, method in (("/api/videos/" + st["vid"], "DELETE"), ("/api/videos/" + st["vid"], "PATCH"),
                         ("/api/videos", "GET"), ("/api/uploads", "POST"),
                         ("/api/videos/%s/retry" % st["vid"], "POST")):
        status, h, _ = curl("-X", "OPTIONS", "-H", "Origin: https://admin.example", "-H",
                            "Access-Control-Request-Method: " + method, "-H",
                            "Access-Control-Request-Headers: authorization", o.url + path)
        eq((status, h.get("access-control-allow-origin")), (204, "*"), "preflight of %s %s" % (method, path))
        check(method in h["access-control-allow-methods"] and "authorization" in h["access-control-allow-headers"].lower(),
              "%s %s allowed with Authorization: %r" % (method, path, h))


def test_playlists_short_cache_and_gzip(s):
    status, h, plain = curl(st["base"] + "/master.m3u8")
    eq(h["content-type"], "application/vnd.apple.mpegurl", "m3u8 MIME")
    check(h["cache-control"].endswith("max-age=10"), "short max-age: %s" % h["cache-control"])
    status, h, z = curl("-H", "Accept-Encoding: gzip", st["base"] + "/master.m3u8")
    eq(h.get("content-encoding"), "gzip", "gzip")
    eq(h.get("vary"), "Accept-Encoding", "Vary")
    eq(gzip.decompress(z), plain, "gzip content")
    status, h, _ = curl("-H", "Accept-Encoding: *;q=0, gzip", st["base"] + "/master.m3u8")
    eq(h.get("content-encoding"), "gzip", "gzip named explicitly wins over *;q=0")
    # compressed once, then from the memory cache: the same bytes
    hits = st["o"].req("GET", "/api/health").json()["cache"]["hits"]
    status, h2, z2 = curl("-H", "Accept-Encoding: gzip", st["base"] + "/master.m3u8")
    eq((status, h2.get("content-encoding"), z2, h2.get("etag")), (200, "gzip", z, h.get("etag")), "cached gzip")
    eq(st["o"].req("GET", "/api/health").json()["cache"]["hits"], hits + 1, "the second came from the cache")
    status, h, _ = curl(st["base"] + "/manifest.mpd")
    eq(h["content-type"], "application/dash+xml", "mpd MIME")
    status, h, _ = curl(st["base"] + "/thumbs/sprite.vtt")
    check(h["content-type"].startswith("text/vtt"), "vtt MIME")
    status, h, _ = curl(st["base"] + "/p2p.json")
    eq(h["content-type"], "application/json", "json MIME")


def test_memory_cache_serves_the_same_bytes_as_disk(s):
    """Segments come from the hot cache after the first request; with --cache-mb 0 from disk.
    Both must give the bytes on disk, the same validators, and the same ranges."""
    o = st["o"]
    vid = st["vid"]
    path = os.path.join(o.data, "media", vid, "v0", "seg-00002.m4s")
    with open(path, "rb") as f:
        disk = f.read()
    url = st["base"] + "/v0/seg-00002.m4s"
    first = curl(url)
    second = curl(url)  # from memory
    ranged = curl("-r", "7-1000", url)
    eq(first[2], disk, "first response is the file")
    eq(second[2], disk, "cached response is the file")
    eq(second[1]["etag"], first[1]["etag"], "same ETag")
    eq(second[1]["last-modified"], first[1]["last-modified"], "same Last-Modified")
    eq((ranged[0], ranged[2]), (206, disk[7:1001]), "range from memory")
    r = o.req("HEAD", "/v/%s/v0/seg-00002.m4s" % vid)
    eq((r.status, int(r.header("content-length")), r.body), (200, len(disk), b""), "HEAD from memory")


def test_path_traversal_and_hidden_files(s):
    o = st["o"]
    for p in ("/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/.etags", "/.description.json", "/v0//init.mp4",
              "/v0/./init.mp4", "/v0/../../" + st["ids"][1] + "/master.m3u8"):
        status, _, body = curl("--path-as-is", st["base"] + p)
        eq(status, 404, p)
        check(b'"code"' in body, "JSON body for " + p)
    check(os.path.exists(os.path.join(o.data, "media", st["vid"], ".etags")), "hidden file exists on disk")


def test_catalog_pagination(s):
    o = st["o"]
    r = o.req("GET", "/api/videos?limit=2").json()
    eq(r["total"], 3, "total")
    eq(len(r["videos"]), 2, "first page")
    check(r["next_cursor"], "cursor")
    r2 = o.req("GET", "/api/videos?limit=2&cursor=" + r["next_cursor"]).json()
    eq(len(r2["videos"]), 1, "second page")
    eq(r2["next_cursor"], None, "last page")
    ids = [v["id"] for v in r["videos"] + r2["videos"]]
    eq(sorted(ids), sorted(st["ids"]), "every video once")
    eq(ids, list(reversed(st["ids"])), "newest first")
    for v in r["videos"]:
        check(v["thumbnails"].startswith("/v/") and v["posters"]["16x9"].startswith("/v/"),
              "thumbnail URLs in the catalog")
    # values too long to hold, or cut short by a NUL, are refused rather than ignored
    for q in ("limit=" + "x" * 40, "limit=1%00", "cursor=" + "9" * 40, "cursor=1%002", "cursor=", "cursor=%2B3",
              "cursor=%203", "cursor=03", "cursor=" + "9" * 20):
        r = o.req("GET", "/api/videos?" + q)
        eq(r.status, 400, "refused: " + q[:20])
        check(r.json()["code"] in ("bad_limit", "bad_cursor"), "code for " + q[:20])
    r = o.req("DELETE", "/api/origin-key", headers=o.auth())
    eq((r.status, r.json()["code"]), (405, "method_not_allowed"), "the origin key is read-only")
    for host in ('a b"<>', "x.com:99999", "x.com:", "x.com:0", "x.com:80:80", "[::1", "[::1]x", ":80", "[]:80"):
        r = o.req("POST", "/api/uploads", headers=dict(o.auth(), Host=host))
        eq((r.status, r.json()["code"]), (400, "bad_host"), "a Host that cannot go into a URL: %r" % host)
    for host in ("x.com", "x.com:8080", "192.0.2.1:65535", "[2001:db8::1]:443", "[::1]"):
        r = o.req("POST", "/api/uploads", headers=dict(o.auth(), Host=host))
        eq(r.status, 201, "Host %r" % host)
        check(r.json()["upload_url"].startswith("http://%s/tus/" % host), "its upload URL: %s" % r.json()["upload_url"])
    # no Host at all (HTTP/1.0 allows it): h2o fills in its own "default", which is no host to hand out
    for version in ("1.0", "1.1"):
        answer = raw_exchange(o.host, o.port, ("POST /api/uploads HTTP/%s\r\nAuthorization: %s\r\nContent-Length: 0\r\n"
                                               "Connection: close\r\n\r\n" % (version, o.auth()["Authorization"])).encode())
        check(answer.split(b"\r\n")[0].endswith(b" 400 Bad Request") and b'"bad_host"' in answer,
              "HTTP/%s without a Host: %r" % (version, answer[:300]))


def test_rename_a_video(s):
    """PATCH /api/videos/ID {"title": ...} with the token renames it: the catalog and the video show the
    new title, nothing published changes, and bad requests are refused with a reason."""
    o = st["o"]
    vid = st["ids"][1]
    path = "/api/videos/" + vid
    before = o.req("GET", path).json()
    master = o.req("GET", "/v/%s/master.m3u8" % vid)
    js = {"Content-Type": "application/json"}
    title = "Évening news, part 2 — 字幕付き"
    body = json.dumps({"title": title}).encode()
    eq(o.req("PATCH", path, body, js).status, 401, "needs the token")
    r = o.req("PATCH", path, body, dict(o.auth(), **js))
    eq(r.status, 200, "renamed")
    eq((r.json()["title"], r.json()["state"], r.json()["renditions"]), (title, "ready", before["renditions"]),
       "the answer is the video with its new title")
    eq(o.req("GET", path).json()["title"], title, "GET shows it")
    listed = [v for v in o.req("GET", "/api/videos?limit=100").json()["videos"] if v["id"] == vid]
    eq(listed[0]["title"], title, "so does the catalog")
    again = o.req("GET", "/v/%s/master.m3u8" % vid)
    eq((again.body, again.header("etag")), (master.body, master.header("etag")), "nothing published changed")
    auth = dict(o.auth(), **js)
    for b, h, status, code in (
            (json.dumps({"title": ""}), auth, 400, "bad_request"),
            (json.dumps({"title": "x" * 512}), auth, 400, "bad_request"),
            (json.dumps({"title": "two\nlines"}), auth, 400, "bad_request"),
            (json.dumps({"title": "next\u0085line"}), auth, 400, "bad_request"),  # C1 control
            (json.dumps({"title": "evil\u202etxt.exe"}), auth, 400, "bad_request"),  # bidi override
            (json.dumps({"title": "a\u2028b"}), auth, 400, "bad_request"),  # line separator
            (json.dumps({"title": 7}), auth, 400, "bad_request"),
            (json.dumps({"title": "ok", "state": "ready"}), auth, 400, "bad_request"),
            (json.dumps({}), auth, 400, "bad_request"),
            ("[1]", auth, 400, "bad_json"),
            ('{"title": "unterminated', auth, 400, "bad_json"),
            ("", auth, 400, "bad_json"),
            ('{"title": "' + "y" * 5000 + '"}', auth, 413, "too_large"),
            (json.dumps({"title": "ok"}), dict(o.auth(), **{"Content-Type": "text/plain"}), 415,
             "unsupported_media_type"),
            (json.dumps({"title": "ok"}), o.auth(), 415, "unsupported_media_type")):
        r = o.req("PATCH", path, b.encode(), h)
        eq((r.status, r.json()["code"]), (status, code), "refused: %r" % b[:40])
    eq(o.req("GET", path).json()["title"], title, "a refused change left it as it was")
    r = o.req("PATCH", path, json.dumps({"title": "x" * 511}).encode(),
              dict(o.auth(), **{"Content-Type": "application/json; charset=utf-8"}))
    eq((r.status, len(r.json()["title"])), (200, 511), "511 bytes, with a charset parameter")
    r = o.req("PATCH", "/api/videos/" + "a" * len(vid), body, auth)
    eq((r.status, r.json()["code"]), (404, "not_found"), "no such video")
    r = o.req("PUT", path, body, auth)
    eq(r.status, 405, "PUT is not PATCH")
    check("PATCH" in r.header("allow"), "Allow names PATCH: %r" % r.header("allow"))
    o.req("PATCH", path, json.dumps({"title": title}).encode(), auth)


def test_a_fifth_reviews_http_findings(s):
    """List headers sent on several lines mean their comma-joined form (RFC 9110 5.3): before, only the
    first line counted (an If-None-Match naming the ETag on its second line got 200, a split If-Match 412,
    a split Accept-Encoding no gzip). gzip;Q=0 refuses gzip (parameter names are case-insensitive). The
    media preflight allows If-Match and If-Unmodified-Since, which /v/ honours. cursor=0 was taken as the
    first page, though no page gives it. The 16 KiB head limit holds for a connection's later requests
    too (h2o's own, about 400 KB, applied to them)."""
    o = st["o"]
    seg = "/v/%s/v0/seg-00001.m4s" % st["vid"]
    _, h, _ = curl(o.url + seg)
    etag = h["etag"]

    def raw_head(lines):
        answer = raw_exchange(o.host, o.port, ("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\nConnection: close\r\n\r\n" %
                                               (lines[0], "".join(l + "\r\n" for l in lines[1:]))).encode())
        head = answer.split(b"\r\n\r\n", 1)[0].decode()
        return int(head.split()[1]), head.lower()

    eq(raw_head([seg, 'If-None-Match: "other"', "If-None-Match: " + etag])[0], 304, "If-None-Match on two lines")
    eq(raw_head([seg, 'If-Match: "other"', "If-Match: " + etag])[0], 200, "If-Match on two lines")
    manifest = "/v/%s/p2p.json" % st["vid"]
    status, head = raw_head([manifest, "Accept-Encoding: br", "Accept-Encoding: gzip"])
    check(status == 200 and "content-encoding: gzip" in head, "Accept-Encoding on two lines: %s" % head)
    status, head = raw_head([manifest, "Accept-Encoding: gzip;Q=0"])
    check(status == 200 and "content-encoding" not in head, "gzip;Q=0 refuses gzip: %s" % head)
    status, h, _ = curl("-X", "OPTIONS", "-H", "Origin: https://player.example", "-H",
                        "Access-Control-Request-Headers: if-match, if-unmodified-since", o.url + seg)
    allowed = h["access-control-allow-headers"].lower()
    check(status == 204 and "if-match" in allowed and "if-unmodified-since" in allowed, "preflight: %r" % h)
    r = o.req("GET", "/api/videos?cursor=0")
    eq((r.status, r.json()["code"]), (400, "bad_cursor"), "cursor=0")
    # on one kept-alive connection, one request after the other: a small one, then a 20 KB head, one of 80
    # headers, and a small one again
    import http.client
    c = http.client.HTTPConnection(o.host, o.port, timeout=10)
    codes = []
    for extra in ({}, {"X-Pad": "p" * 20000}, dict(("X-H%d" % i, "1") for i in range(80)), {}):
        c.request("GET", "/api/origin-key", headers=extra)
        r = c.getresponse()
        r.read()
        codes.append(r.status)
    c.close()
    eq(codes, [200, 431, 431, 200], "heads over 16 KiB or 64 headers on a kept-alive connection")


def test_a_cache_smaller_than_a_segment_does_not_read_it_whole(s):
    """With --cache-mb below a segment's size, the cache cannot take it: it is streamed from the file,
    not read whole into memory and thrown away on every request (a one-byte range read 5 MB)."""
    small = s.origin("--cache-mb", "1")
    vid = small.upload(clip("serve_small_cache_320x180", size="320x180", rate=25, dur=2), parallel=1)
    small.ready(vid)
    with open(os.path.join(small.data, "media", vid, "v0", "seg-09999.m4s"), "wb") as f:
        f.write(os.urandom(5000000))  # beside the published segments, served as they are

    def rchar():
        with open("/proc/%d/io" % small.proc.pid) as f:
            return next(int(l.split()[1]) for l in f if l.startswith("rchar"))

    before = rchar()
    for _ in range(10):
        status, _, body = curl("-r", "0-0", "%s/v/%s/v0/seg-09999.m4s" % (small.url, vid))
        eq((status, len(body)), (206, 1), "a one-byte range")
    read = rchar() - before
    check(read < 5000000, "10 one-byte ranges read %d bytes" % read)


def test_readers_that_stop_hold_no_more_than_the_cache_of_evicted_copies(s):
    """(review) Each cache miss read a copy of its own into memory, and a client that stops reading keeps
    its copy after the cache evicted it: 300 such clients held 790 MB with --cache-mb 8. Now, once the
    evicted copies still held reach the cache's size, misses are streamed from the file in blocks."""
    o = s.origin("--cache-mb", "8")
    vid = o.upload(clip("serve_held_320x180", size="320x180", rate=25, dur=2), parallel=1)
    o.ready(vid)
    names = ["seg-097%02d.m4s" % i for i in range(10)]
    for n in names:  # beside the published segments, served as they are: 30 MB of distinct 3 MB files
        with open(os.path.join(o.data, "media", vid, "v0", n), "wb") as f:
            f.write(os.urandom(3 << 20))
    stalled = []
    try:
        for n in names:
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read: the answer stays in flight
            c.connect((o.host, o.port))
            c.sendall(b"GET /v/%s/v0/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (vid.encode(), n.encode()))
            stalled.append(c)
            time.sleep(0.1)
        time.sleep(0.5)
        cache = o.req("GET", "/api/health").json()["cache"]
        print("# 10 stalled readers of distinct 3 MiB files, --cache-mb 8: %r" % cache)
        check(cache["held_out"] <= 8 << 20 and cache["bytes"] <= 8 << 20, "evicted copies held: %r" % cache)
        eq(curl("%s/v/%s/v0/%s" % (o.url, vid, names[0]))[0], 200, "the origin serves on")
    finally:
        for c in stalled:
            c.close()


def test_a_segment_the_origin_cannot_open_for_now_is_a_503_not_a_404(s):
    """(review) Out of descriptors under a flood of connections, a segment that exists was answered 404
    "no such media file": players and peers take that for good. Now 503 with Retry-After, and 200 again
    once descriptors are free."""
    import http.client
    o = st["o"]
    seg = "/v/%s/v0/index.m3u8" % st["ids"][2]  # a playlist: opened for every request (no memory cache)
    keep = http.client.HTTPConnection(o.host, o.port, timeout=10)  # opened before the flood
    keep.request("GET", "/api/health")
    eq(keep.getresponse().read() != b"", True, "health")
    subprocess.run(["prlimit", "--pid", str(o.proc.pid), "--nofile=64:64"], check=True)
    flood = []
    try:
        for _ in range(80):
            c = socket.create_connection((o.host, o.port), timeout=5)
            flood.append(c)
        time.sleep(0.3)  # the origin accepts them all it can
        keep.request("GET", seg)
        r = keep.getresponse()
        body = r.read()
        eq((r.status, r.getheader("retry-after")), (503, "1"), "a file it cannot open now: %r" % body[:200])
        eq(json.loads(body)["code"], "busy", "the code")
    finally:
        for c in flood:
            c.close()
        subprocess.run(["prlimit", "--pid", str(o.proc.pid), "--nofile=65536:65536"])
        keep.close()
    deadline = time.time() + 10
    status = 0
    while time.time() < deadline and status != 200:
        status = curl(o.url + seg)[0]
        time.sleep(0.2)
    eq(status, 200, "served once descriptors are free")


def test_delete_removes_media_and_metadata(s):
    o = st["o"]
    vid = st["ids"][2]
    seg = "/v/%s/v0/seg-00001.m4s" % vid
    eq(o.req("GET", seg).status, 200, "segment served (and now held in memory)")
    eq(o.req("DELETE", "/api/videos/" + vid).status, 401, "needs the token")
    eq(o.req("DELETE", "/api/videos/" + vid, headers=o.auth()).status, 204, "deleted")
    eq(o.req("GET", "/api/videos/" + vid).status, 404, "API 404")
    eq(o.req("GET", "/v/%s/master.m3u8" % vid).status, 404, "media 404")
    eq(o.req("GET", seg).status, 404, "the in-memory copy went with it")
    eq(o.req("DELETE", "/api/videos/" + vid, headers=o.auth()).status, 404, "second delete")
    time.sleep(0.5)
    check(not os.path.exists(os.path.join(o.data, "media", vid)), "media removed")
    check(not os.path.exists(os.path.join(o.data, "originals", vid)), "original removed")
    eq(o.req("GET", "/api/videos").json()["total"], 2, "catalog shrank")


def test_client_aborts_do_not_kill_the_server(s):
    """Responses written to a connection the client reset (EPIPE) must not take the process down."""
    import socket
    import struct
    o = st["o"]
    req = ("GET /v/%s/v0/seg-00001.m4s HTTP/1.1\r\nHost: x\r\n\r\n" % st["vid"]).encode()
    for _ in range(20):
        sock = socket.create_connection((o.host, o.port))
        sock.sendall(req * 200)  # pipelined: the server keeps writing after the reset
        sock.recv(1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
    time.sleep(0.3)
    check(o.proc.poll() is None, "origin died (rc %s)" % o.proc.returncode)
    eq(o.req("GET", "/api/health").status, 200, "still serving")


def metrics(o):
    r = o.req("GET", "/metrics")
    eq(r.status, 200, "GET /metrics")
    check(r.header("content-type").startswith("text/plain; version=0.0.4"), "Prometheus content type")
    return prom_parse(r.body.decode()), len(r.body)


def test_metrics_count_what_clients_saw(s):
    """/metrics: the catalog by state, the pipeline's tasks, the uploads' bytes, and every answer by status
    with its body bytes, as curl counted them (h2o's answers and the upload front door's alike)."""
    o = st["o"]
    m, _ = metrics(o)
    eq(m['peercdn_origin_videos{state="ready"}'], 2, "three published, one deleted")
    eq(m['peercdn_origin_videos{state="failed"}'], 0, "none failed")
    eq(m['peercdn_origin_uploads_completed_total'], 3, "uploads completed")
    src = clip("serve_480x270", size="480x270", rate=30, dur=5)
    eq(m["peercdn_origin_upload_bytes_total"], 3 * os.path.getsize(src), "upload bytes: three copies of the clip")
    eq(m['peercdn_origin_tasks_finished_total{kind="publish",outcome="done"}'], 3, "three publishes")
    check(m['peercdn_origin_tasks_finished_total{kind="encode",outcome="done"}'] >= 3, "encodes")
    check(m['peercdn_origin_task_seconds_total{kind="encode"}'] > 0, "encode time")
    eq(sum(v for k, v in m.items() if k.startswith("peercdn_origin_tasks{")), 0, "nothing left to do")
    eq(m['peercdn_origin_workers_busy{pool="heavy"}'], 0, "idle workers")
    vfs = os.statvfs(o.data)
    check(abs(m["peercdn_origin_data_free_bytes"] - vfs.f_bavail * vfs.f_frsize) < 64 << 20, "free space")
    time.sleep(1.1)  # the document is built at most once a second
    before, before_len = metrics(o)
    seg = curl(st["base"] + "/v0/seg-00001.m4s")
    missing = curl("%s/v/%s/v0/seg-99999.m4s" % (o.url, st["vid"]))
    forged = curl("-I", "-H", "Tus-Resumable: 1.0.0", "%s/tus/E.S/%s" % (o.url, "a" * 20))
    eq((seg[0], missing[0], forged[0]), (200, 404, 403), "statuses")
    time.sleep(1.1)
    after, _ = metrics(o)
    d = lambda k: after.get(k, 0) - before.get(k, 0)  # noqa: E731
    code = 'peercdn_origin_http_responses_total{code="%d"}'
    eq((d(code % 200), d(code % 404), d(code % 403)), (2, 1, 1),
       "the segment and the first /metrics; the 404; the front door's 403")
    eq(d("peercdn_origin_http_response_bytes_total"), before_len + len(seg[2]) + len(missing[2]),
       "body bytes as curl received them")
    check(after["peercdn_origin_http_connections"] >= 1, "this connection")
    eq(o.req("POST", "/metrics").status, 405, "GET only")


def test_signed_media_mode(s):
    # without the memory cache, so segments stream from disk here; with a tracker that does not check media
    # tokens (no --media-key), which the sign task finds in its key document and warns about
    t = s.tracker()
    o = s.origin("--signed-media", "--cache-mb", "0", "--tracker", t.url)
    src = clip("serve_480x270", size="480x270", rate=30, dur=5)
    vid = o.upload(src, parallel=1)
    o.ready(vid)
    warned = [l for l in o.stderr().splitlines() if "does not check media tokens" in l]
    check(len(warned) == 1 and vid in warned[0] and "--media-key" in warned[0], "the sign task warns: %s" % o.stderr()[-1500:])
    eq(o.req("GET", "/v/%s/master.m3u8" % vid).status, 403, "unsigned")
    anon = o.req("GET", "/api/videos/" + vid).json()
    check("sig=" not in anon["hls"], "anonymous callers get no signature")
    v = o.req("GET", "/api/videos/" + vid, headers=o.auth()).json()
    check("sig=" in v["hls"], "the service's backend gets signed URLs: %s" % v["hls"])
    url = o.url + v["hls"]
    r = o.req("GET", v["hls"])
    eq(r.status, 200, "signed master")
    query = urllib.parse.urlsplit(url).query
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            check(line.endswith("?" + query), "variant URIs carry the token: %s" % line)
    # the I-frame playlists' URI attributes too, and the segments they name by range
    iframes = [l.split('URI="', 1)[1].rstrip('"') for l in r.body.decode().splitlines()
               if l.startswith("#EXT-X-I-FRAME-STREAM-INF:")]
    check(len(iframes) > 0 and all(u.endswith("?" + query) for u in iframes), "I-frame URIs signed: %r" % iframes)
    ip = o.req("GET", "/v/%s/%s" % (vid, iframes[0]))
    eq(ip.status, 200, "a signed I-frame playlist")
    lines = ip.body.decode().splitlines()
    n = int([l for l in lines if l.startswith("#EXT-X-BYTERANGE:")][0][17:].split("@")[0])
    seg = [l for l in lines if l and not l.startswith("#")][0]
    check(seg.endswith("?" + query), "its segments signed: %s" % seg)
    rng = o.req("GET", "/v/%s/%s/%s" % (vid, iframes[0].split("/")[0], seg), headers={"Range": "bytes=0-%d" % (n - 1)})
    eq((rng.status, len(rng.body)), (206, n), "the signed range")
    ffmpeg_decode(url)  # a player follows the rewritten URIs
    # the scrubbing sprite's index too: every sheet a cue names carries the token, before its #xywh=
    check("sig=" in v["thumbnails"], "signed thumbnails URL: %s" % v["thumbnails"])
    r = o.req("GET", v["thumbnails"])
    eq(r.status, 200, "signed sprite index")
    check("private" in r.header("cache-control"), "a rewritten index is private: %s" % r.header("cache-control"))
    cues = [l for l in r.body.decode().splitlines() if "#xywh=" in l]
    check(len(cues) >= 2, "cues: %r" % cues)
    base = v["thumbnails"].split("?")[0].rsplit("/", 1)[0]
    for c in cues:
        sheet, frag = c.split("#")
        check(sheet.endswith("?" + query) and frag.startswith("xywh="), "the token before the fragment: %s" % c)
        img = o.req("GET", base + "/" + sheet)
        eq((img.status, img.body[8:12]), (200, b"WEBP"), "the sheet a cue names loads: %s" % c)
    # the expiry is rounded up to a quarter of --media-token-ttl (21600 s): viewers in the same quarter get
    # the same URLs, which an edge cache shares (before, every call gave new ones)
    q = dict(urllib.parse.parse_qsl(query))
    exp, now = int(q["exp"]), time.time()
    check(exp % 5400 == 0 and now + 21600 - 5 <= exp < now + 21600 + 5400 + 5, "exp %d at %d" % (exp, now))
    again = o.req("GET", "/api/videos/" + vid, headers=o.auth()).json()["hls"]
    check(again == v["hls"] or int(dict(urllib.parse.parse_qsl(again.split("?")[1]))["exp"]) == exp + 5400,
          "the same signed URL a moment later: %s, %s" % (v["hls"], again))
    # an edge may keep a signed segment only until the URL expires, not a year
    seg = "/v/%s/v0/seg-00001.m4s?%s" % (vid, query)
    r = o.req("GET", seg)
    eq(r.status, 200, "a signed segment")
    age = int(re.search(r"max-age=(\d+)", r.header("cache-control")).group(1))
    check(0 < age <= exp - now + 2, "Cache-Control %s, %d s before expiry" % (r.header("cache-control"), exp - now))
    bad = url.replace("sig=", "sig=x")
    eq(o.req("GET", bad[len(o.url):]).status, 403, "forged")
    q = dict(urllib.parse.parse_qsl(query))
    expired = "/v/%s/master.m3u8?exp=%d&sig=%s" % (vid, int(time.time()) - 5, q["sig"])
    eq(o.req("GET", expired).status, 403, "other expiry")
    # one spelling per signed URL: no NUL-truncated signature, no signed or zero-padded expiry
    eq(o.req("GET", "%s%%00junk" % v["hls"]).status, 403, "a signature cut short by %00")
    eq(o.req("GET", v["hls"].replace("exp=", "exp=%2B")).status, 403, "exp with a plus sign")
    eq(o.req("GET", v["hls"].replace("exp=", "exp=0")).status, 403, "exp with a leading zero")
    path = v["hls"].split("?")[0]
    for other in ["sig=%s&exp=%s" % (q["sig"], q["exp"]), query + "&x=1", "x=1&" + query, query + "&exp=" + q["exp"],
                  query + "&sig=AAAA"]:
        eq(o.req("GET", path + "?" + other).status, 403, "another spelling of the signed URL: %s" % other)
    eq(o.req("GET", "/api/videos?limit=5&limit=abc").status, 400, "a query parameter given twice")
    eq(o.req("GET", v["hls"].replace("exp=" + q["exp"], "exp=%3" + q["exp"])).status, 403, "exp percent-encoded")
    eq(o.req("GET", v["hls"].replace("sig=" + q["sig"][0], "sig=%%%02X" % ord(q["sig"][0]))).status, 403,
       "sig percent-encoded")
    other = o.upload(src, parallel=1)
    o.ready(other)
    eq(o.req("GET", "/v/%s/master.m3u8?%s" % (other, query)).status, 403, "a token is bound to its video")
    # subtitle tracks: their playlist and files signed, in HLS and in the MPD, and their cue text left as it is
    sub = o.upload(subtitled("serve_subs", src, [("1\n00:00:01,000 --> 00:00:02,000\nsee https://example.com/x\n", [])]),
                   parallel=1)
    o.ready(sub)
    t = o.req("GET", "/api/videos/" + sub, headers=o.auth()).json()["subtitles"][0]
    sq = urllib.parse.urlsplit(t["hls"]).query
    check("sig=" in sq and t["vtt"].endswith("?" + sq), "signed subtitle URLs: %r" % t)
    eq(o.req("GET", t["hls"].split("?")[0]).status, 403, "an unsigned subtitle playlist")
    pl = o.req("GET", t["hls"])
    eq(pl.status, 200, "the signed subtitle playlist")
    segs = [l for l in pl.body.decode().splitlines() if l and not l.startswith("#")]
    check(segs and all(l.endswith("?" + sq) for l in segs), "its segments signed: %r" % segs)
    first = o.req("GET", "%s/%s" % (t["hls"].split("?")[0].rsplit("/", 1)[0], segs[0]))
    eq(first.status, 200, "a signed WebVTT segment")
    check("see https://example.com/x\n" in first.body.decode() and sq not in first.body.decode(),
          "cue text unchanged: %r" % first.body)
    whole = o.req("GET", t["vtt"])
    eq((whole.status, whole.body.decode().count("-->")), (200, 1), "the whole track, signed")
    sv = o.req("GET", "/api/videos/" + sub, headers=o.auth()).json()
    mpd = o.req("GET", sv["dash"]).body.decode()
    base = re.search(r"<BaseURL>([^<]+)</BaseURL>", mpd).group(1).replace("&amp;", "&")
    check(base.startswith("s0/all.vtt?") and "sig=" in base, "the MPD's subtitle BaseURL signed: %s" % base)
    eq(o.req("GET", "/v/%s/%s" % (sub, base)).status, 200, "and loads")
    ffmpeg_decode(o.url + sv["hls"])


S.run([test_publish_three_videos, test_segments_are_immutable_with_strong_etags, test_byte_ranges, test_cors,
       test_playlists_short_cache_and_gzip, test_memory_cache_serves_the_same_bytes_as_disk,
       test_path_traversal_and_hidden_files, test_catalog_pagination, test_rename_a_video,
       test_a_fifth_reviews_http_findings, test_a_cache_smaller_than_a_segment_does_not_read_it_whole,
       test_a_segment_the_origin_cannot_open_for_now_is_a_503_not_a_404,
       test_readers_that_stop_hold_no_more_than_the_cache_of_evicted_copies,
       test_delete_removes_media_and_metadata, test_client_aborts_do_not_kill_the_server,
       test_metrics_count_what_clients_saw, test_signed_media_mode])
