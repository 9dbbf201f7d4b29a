#!/usr/bin/env python3
"""tus 1.0.0 over the wire: creation, offsets, checksums, termination, concatenation,
expiration, pre-signed URLs and the errors for bad input, plus bounded memory."""
import base64
import hashlib
import json
import os
import random
import re
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import (TOKEN, Suite, check, eq, meta, path_of, read_until_close, request, tus_headers)  # noqa: E402

S = Suite("tus")
st = {}


def origin():
    if "o" not in st:
        st["o"] = S.origin("--upload-ttl", "4")
    return st["o"]


def create(o, length, **extra):
    url = st.setdefault("create", o.creation_url())
    h = tus_headers(Upload_Length=length, **extra)
    r = request(url, "POST", headers=h)
    return r


def location(r):
    eq(r.status, 201, "creation: %r" % r)
    loc = r.header("location")
    check(loc is not None, "Location header")
    return loc


def patch(url, offset, data, **extra):
    h = tus_headers(Upload_Offset=offset, Content_Type="application/offset+octet-stream", **extra)
    return request(url, "PATCH", body=data, headers=h)


def test_creation_url_needs_the_token(s):
    o = origin()
    eq(o.req("POST", "/api/uploads").status, 401, "no token")
    eq(o.req("POST", "/api/uploads", headers={"Authorization": "Bearer wrong-token"}).status, 401, "wrong token")
    r = o.req("POST", "/api/uploads", headers=o.auth())
    eq(r.status, 201, "good token")
    j = r.json()
    eq(j["max_size"], 1 << 30, "max_size")
    check(j["expires"] > time.time(), "expires in the future")
    check("sig=" in j["upload_url"] and "exp=" in j["upload_url"], "pre-signed: %s" % j["upload_url"])
    err = o.req("POST", "/api/uploads").json()
    check(set(err) == {"code", "message"}, "JSON error shape %r" % err)


def test_a_public_url_ending_in_a_slash_gives_the_same_urls(s):
    # "--public-url http://host/" once handed out http://host//tus/..., which the origin answers with 404
    o = S.origin("--public-url", "https://cdn.example:8443/")
    try:
        j = o.req("POST", "/api/uploads", headers=o.auth()).json()
        check(j["upload_url"].startswith("https://cdn.example:8443/tus/?exp="), "upload URL %s" % j["upload_url"])
    finally:
        o.stop()


def test_options_advertises_the_extensions(s):
    o = origin()
    r = o.req("OPTIONS", "/tus/")
    eq(r.status, 204, "OPTIONS")
    eq(r.header("tus-version"), "1.0.0", "Tus-Version")
    eq(r.header("tus-max-size"), str(1 << 30), "Tus-Max-Size")
    ext = set(r.header("tus-extension").split(","))
    for e in ("creation", "checksum", "termination", "concatenation", "expiration"):
        check(e in ext, "extension %s" % e)
    check("sha1" in r.header("tus-checksum-algorithm"), "sha1 supported")


def test_forged_and_expired_creation_urls_are_403(s):
    o = origin()
    url = o.creation_url()
    forged = url.replace("sig=", "sig=A")
    eq(request(forged, "POST", headers=tus_headers(Upload_Length=5)).status, 403, "forged")
    u = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qs(u.query)
    expired = "%s://%s%s?exp=%d&sig=%s" % (u.scheme, u.netloc, u.path, int(time.time()) - 10, q["sig"][0])
    eq(request(expired, "POST", headers=tus_headers(Upload_Length=5)).status, 403, "other exp")
    eq(request(o.url + "/tus/", "POST", headers=tus_headers(Upload_Length=5)).status, 403, "unsigned")


def test_upload_url_signature_is_checked(s):
    o = origin()
    loc = location(create(o, 10))
    eq(request(loc, "HEAD", headers=tus_headers()).status, 200, "signed HEAD")
    # the upload's id ends its URL (the credential is the path segment before it): BASE/EXP.SIG/ID
    u = urllib.parse.urlsplit(loc)
    eq(u.query, "", "no query in an upload URL")
    base, cred, uid = u.path.rsplit("/", 2)
    check(len(uid) == 20 and re.fullmatch(r"[0-9]+\.[A-Za-z0-9_-]+", cred) is not None, "BASE/EXP.SIG/ID: %s" % loc)
    root = "%s://%s%s/" % (u.scheme, u.netloc, base)
    eq(request(root + uid, "HEAD", headers=tus_headers()).status, 403, "no sig")
    exp, sig = cred.split(".")
    eq(request(root + uid + "?exp=%s&sig=%s" % (exp, sig), "HEAD", headers=tus_headers()).status, 200,
       "the credential in the query works too")
    forged = sig[:-1] + ("B" if sig[-1] == "A" else "A")
    eq(request(root + "%s.%s/%s" % (exp, forged, uid), "HEAD", headers=tus_headers()).status, 403, "forged")
    eq(request(root + "%d.%s/%s" % (int(exp) + 1, sig, uid), "HEAD", headers=tus_headers()).status, 403, "exp changed")
    other = location(create(o, 10))
    # the signature of one upload does not open another
    swapped = root + cred + "/" + other.rsplit("/", 1)[1]
    eq(request(swapped, "HEAD", headers=tus_headers()).status, 403, "signature of another upload")


def test_version_is_required(s):
    o = origin()
    r = request(o.creation_url(), "POST", headers={"Upload-Length": "5"})
    eq(r.status, 412, "missing Tus-Resumable")
    eq(r.header("tus-version"), "1.0.0", "Tus-Version on 412")


def test_over_1_gib_is_413(s):
    o = origin()
    eq(create(o, (1 << 30) + 1).status, 413, "Upload-Length over max")
    check(create(o, 1 << 30).status in (201, 507), "exactly 1 GiB is accepted (or no disk)")


def test_patch_head_and_offsets(s):
    o = origin()
    data = os.urandom(100000)
    loc = location(create(o, len(data), Upload_Metadata=meta(filename="x.bin")))
    r = request(loc, "HEAD", headers=tus_headers())
    eq(r.header("upload-offset"), "0", "initial offset")
    eq(r.header("upload-length"), str(len(data)), "length")
    eq(r.header("cache-control"), "no-store", "HEAD not cacheable")
    check(r.header("upload-expires") is not None, "Upload-Expires")
    r = patch(loc, 0, data[:40000])
    eq(r.status, 204, "first PATCH")
    eq(r.header("upload-offset"), "40000", "offset after first")
    eq(patch(loc, 1234, data[40000:]).status, 409, "wrong offset")
    eq(request(loc, "PATCH", body=data[40000:], headers=tus_headers(Upload_Offset=40000,
                                                                       Content_Type="text/plain")).status, 415, "type")
    eq(patch(loc, 40000, data[40000:] + b"extra").status, 413, "past Upload-Length")
    eq(request(loc, "HEAD", headers=tus_headers()).header("upload-offset"), "40000", "nothing kept from bad requests")
    r = patch(loc, 40000, data[40000:])
    eq(r.status, 204, "second PATCH")
    eq(r.header("upload-offset"), str(len(data)), "complete")


def test_checksums(s):
    o = origin()
    data = os.urandom(5000)
    loc = location(create(o, len(data) * 2))
    good = base64.b64encode(hashlib.sha1(data).digest()).decode()
    eq(patch(loc, 0, data, Upload_Checksum="sha1 " + good).status, 204, "sha1 ok")
    bad = base64.b64encode(hashlib.sha256(b"nope").digest()).decode()
    r = patch(loc, len(data), data, Upload_Checksum="sha256 " + bad)
    eq(r.status, 460, "checksum mismatch")
    eq(request(loc, "HEAD", headers=tus_headers()).header("upload-offset"), str(len(data)), "mismatched bytes dropped")
    eq(patch(loc, len(data), data, Upload_Checksum="crc32 AAAA").status, 400, "unsupported algorithm")
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    eq(patch(loc, len(data), data, Upload_Checksum="md5 " + md5).status, 204, "md5 ok")


def test_termination(s):
    o = origin()
    loc = location(create(o, 10))
    eq(request(loc, "DELETE", headers=tus_headers()).status, 204, "DELETE")
    eq(request(loc, "HEAD", headers=tus_headers()).status, 404, "gone")
    eq(patch(loc, 0, b"x").status, 404, "PATCH after DELETE")


def test_concatenation_makes_the_video_id(s):
    o = origin()
    # seeded noise: fresh random bytes now and then probe as an audio stream (no_video_stream, not not_media)
    rnd = random.Random(7)
    a, b = bytes(rnd.getrandbits(8) for _ in range(3000)), bytes(rnd.getrandbits(8) for _ in range(2000))
    pa = location(create(o, len(a), Upload_Concat="partial"))
    pb = location(create(o, len(b), Upload_Concat="partial"))
    eq(request(pa, "HEAD", headers=tus_headers()).header("upload-concat"), "partial", "partial")
    eq(patch(pb, 0, b).status, 204, "part b")
    r = request(st["create"], "POST", headers=tus_headers(Upload_Concat="final;%s %s" % (pa, pb)))
    eq(r.status, 400, "final before every part is complete")
    eq(patch(pa, 0, a).status, 204, "part a")
    r = request(st["create"], "POST", headers=tus_headers(Upload_Concat="final;%s %s" % (pa, pb), Upload_Length=99))
    eq((r.status, r.json()["code"]), (400, "final_with_length"), "a final upload with an Upload-Length of its own")
    r = request(st["create"], "POST", headers=tus_headers(Upload_Concat="final;%s %s" % (path_of(pa), pb),
                                                         Upload_Metadata=meta(filename="joined.bin")))
    final = location(r)
    vid = final.rsplit("/", 1)[1]  # the id ends the Location
    h = request(final, "HEAD", headers=tus_headers())
    eq(h.header("upload-length"), str(len(a) + len(b)), "final length")
    check(h.header("upload-concat").startswith("final;"), "Upload-Concat: final")
    eq(patch(final, 0, b"x").status, 403, "a final upload cannot be patched")
    v = o.video(vid)  # the concatenated bytes became a video (not media: fails, upload kept)
    eq(v["source_size"], len(a) + len(b), "source size")
    v = o.wait(vid)
    eq(v["state"], "failed", "random bytes")
    eq(v["error"]["code"], "not_media", "error code")
    orig = os.path.join(o.data, "originals", vid)
    with open(orig, "rb") as f:
        eq(f.read(), a + b, "the original upload is kept, in order")
    head, cred, pid = pa.rsplit("/", 2)
    forged = "%s/%s/%s" % (head, cred[:-1] + ("A" if cred[-1] != "A" else "B"), pid)
    eq(request(st["create"], "POST", headers=tus_headers(Upload_Concat="final;" + forged)).status, 403, "forged part")


def test_a_join_is_taken_on_an_expired_creation_url(s):
    """tus-js-client's parallel uploads join their parts with the creation URL they started with, which
    expires (an hour; 2 s here, a test hook): a join on it is taken once it has expired, authorised by the
    parts' own signed URLs; anything else on it is still 403 expired, and so is a join listing a part
    whose URL is forged. Before, an upload slower than the hour failed at the join, every byte sent."""
    os.environ["PEERCDN_TEST_CREATION_TTL_S"] = "2"
    try:
        o = S.origin()
    finally:
        del os.environ["PEERCDN_TEST_CREATION_TTL_S"]
    url = o.creation_url()
    a, b = os.urandom(3000), os.urandom(2000)
    pa = location(request(url, "POST", headers=tus_headers(Upload_Length=len(a), Upload_Concat="partial")))
    pb = location(request(url, "POST", headers=tus_headers(Upload_Length=len(b), Upload_Concat="partial")))
    eq((patch(pa, 0, a).status, patch(pb, 0, b).status), (204, 204), "both parts sent")
    exp = int(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["exp"][0])
    time.sleep(max(0, exp + 1.2 - time.time()))
    r = request(url, "POST", headers=tus_headers(Upload_Length=5))
    eq((r.status, r.json()["code"]), (403, "expired"), "a new upload on the expired URL")
    r = request(url, "POST", headers=tus_headers(Upload_Length=5, Upload_Concat="partial"))
    eq((r.status, r.json()["code"]), (403, "expired"), "a new part on the expired URL")
    head, cred, pid = pa.rsplit("/", 2)
    forged = "%s/%s/%s" % (head, cred[:-1] + ("A" if cred[-1] != "A" else "B"), pid)
    r = request(url, "POST", headers=tus_headers(Upload_Concat="final;%s %s" % (forged, pb)))
    eq((r.status, r.json()["code"]), (403, "bad_signature"), "a join listing a forged part")
    q = urllib.parse.urlsplit(url)
    other = "%s://%s%s?exp=%d&sig=%s" % (q.scheme, q.netloc, q.path, exp - 1,
                                         urllib.parse.parse_qs(q.query)["sig"][0])
    r = request(other, "POST", headers=tus_headers(Upload_Concat="final;%s %s" % (pa, pb)))
    eq((r.status, r.json()["code"]), (403, "bad_signature"), "a join on a creation URL that was never ours")
    final = location(request(url, "POST", headers=tus_headers(Upload_Concat="final;%s %s" % (pa, pb))))
    vid = final.rsplit("/", 1)[1]
    eq(o.video(vid)["source_size"], len(a) + len(b), "joined into a video")


def test_expiration(s):
    o = origin()  # --upload-ttl 4
    loc = location(create(o, 10))
    eq(patch(loc, 0, b"12345").status, 204, "partial progress")
    time.sleep(4.5)
    eq(request(loc, "HEAD", headers=tus_headers()).status, 410, "expired upload")
    eq(patch(loc, 5, b"67890").status, 410, "PATCH on expired upload")
    # a partial upload is removed at its expiry even when complete (unless joined first): every answer
    # about it says when, the one that completes it and the HEADs after included
    r = create(o, 10, Upload_Concat="partial")
    loc, expires = location(r), r.header("upload-expires")
    check(expires is not None and expires.endswith(" GMT"), "the creation: %r" % r)
    for off, data in ((0, b"12345"), (5, b"67890")):
        r = patch(loc, off, data)
        eq((r.status, r.header("upload-expires")), (204, expires), "PATCH at %d of a partial upload" % off)
    r = request(loc, "HEAD", headers=tus_headers())
    eq((r.status, r.header("upload-offset"), r.header("upload-expires")), (200, "10", expires),
       "HEAD of the complete partial upload")


def start_raw_patch(loc, length, first):
    """A PATCH at offset 0 announcing |length| bytes, of which only |first| are sent: the open socket."""
    u = urllib.parse.urlsplit(loc)
    sock = socket.create_connection((u.hostname, u.port))
    head = ("PATCH %s?%s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
            "Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n" %
            (u.path, u.query, u.netloc, length))
    sock.sendall(head.encode() + first)
    return sock


def test_interrupted_patch_keeps_received_bytes(s):
    o = origin()
    data = os.urandom(2 << 20)
    loc = location(create(o, len(data)))
    sock = start_raw_patch(loc, len(data), data[:700000])
    time.sleep(0.5)
    sock.close()
    deadline = time.time() + 10
    off = None
    while time.time() < deadline:
        off = request(loc, "HEAD", headers=tus_headers()).header("upload-offset")
        if off == "700000":
            break
        time.sleep(0.1)
    eq(off, "700000", "bytes received before the connection broke are kept")
    r = patch(loc, 700000, data[700000:])
    eq(r.status, 204, "resume")
    eq(r.header("upload-offset"), str(len(data)), "complete after resume")


def test_a_patch_trickling_steadily_is_not_cut(s):
    """A connection is cut when no byte has moved for twice --idle-timeout; a PATCH whose bytes keep
    coming, however slowly, is not (the count of bytes read covers connections the tus front door
    takes over from h2o)."""
    o = S.origin("--idle-timeout", "1")
    loc = location(request(o.creation_url(), "POST", headers=tus_headers(Upload_Length=40000)))
    sock = start_raw_patch(loc, 40000, b"x" * 1000)
    t0 = time.time()
    for _ in range(39):
        time.sleep(0.2)
        sock.sendall(b"x" * 1000)
    sock.settimeout(10)
    answer = sock.recv(200)
    sock.close()
    check(answer.startswith(b"HTTP/1.1 204"), "after %.1f s of a steady trickle: %r" % (time.time() - t0, answer[:80]))
    eq(request(loc, "HEAD", headers=tus_headers()).header("upload-offset"), "40000", "all of it kept")


def test_a_second_writer_is_told_the_upload_is_busy(s):
    o = origin()
    data = os.urandom(1 << 20)
    loc = location(create(o, len(data)))
    sock = start_raw_patch(loc, len(data), data[:300000])
    try:
        time.sleep(0.5)
        # whatever offset it names (the one it began at, or the one the first writer has reached; the
        # latter once got 409 offset_mismatch against the bytes already written): 423
        for offset in (0, 300000):
            r = patch(loc, offset, b"x" * 10)
            eq((r.status, r.json()["code"]), (423, "locked"), "a second PATCH at %d while the first runs" % offset)
        r = request(loc, "DELETE", headers=tus_headers())
        eq(r.status, 423, "DELETE while a PATCH runs")
        sock.sendall(data[300000:])
        eq(sock.recv(4096).split(b"\r\n")[0], b"HTTP/1.1 204 No Content", "the first writer finishes")
    finally:
        sock.close()


def test_a_patch_in_absolute_form_is_streamed(s):
    """A PATCH whose target is in absolute form (http://host/tus/...), which HTTP/1.1 servers must accept, is
    the upload it names: its 2 MB body is streamed to the file like any PATCH. Before, the front door took
    the target for something outside uploads and refused bodies over 1 MiB (413)."""
    o = origin()
    data = os.urandom(2000000)
    loc = location(create(o, len(data)))
    u = urllib.parse.urlsplit(loc)
    target = "http://%s:%d%s" % (o.host, o.port, u.path)
    sock = socket.create_connection((o.host, o.port), timeout=30)
    sock.sendall(("PATCH %s HTTP/1.1\r\nHost: %s:%d\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                  "Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % (target, o.host, o.port, len(data))).encode())
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before the body went
    resp = read_until_close(sock)
    sock.close()
    check(resp.startswith(b"HTTP/1.1 204"), "the PATCH: %r" % resp[:200])
    eq(request(loc, "HEAD", headers=tus_headers()).header("upload-offset"), str(len(data)), "every byte taken")


def test_malformed_requests(s):
    o = origin()
    sock = socket.create_connection((o.host, o.port))
    sock.sendall(b"PATCH /tus/" + b"a" * 20 + b"?exp=1 HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"y" * 40000 + b"\r\n\r\n")
    resp = sock.recv(4096)
    sock.close()
    check(resp.startswith(b"HTTP/1.1 431"), "oversized head: %r" % resp[:60])
    for path in (b"/tus/", b"/api/health"):  # just over 16 KiB, arriving whole in one read
        resp = raw(o, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 17000 + b"\r\n\r\n", wait=2)
        check(resp.startswith(b"HTTP/1.1 431"), "a 17 kB head to %s: %r" % (path.decode(), resp[:60]))
    sock = socket.create_connection((o.host, o.port))
    sock.sendall(b"PATCH /tus/ HTTP/1.1\r\nContent-Length: abc\r\n\r\n")
    resp = sock.recv(4096)
    sock.close()
    check(resp.startswith(b"HTTP/1.1 400"), "bad content-length: %r" % resp[:60])
    loc = location(create(o, 10))
    eq(request(loc, "PATCH", body=b"x", headers=tus_headers(Content_Type="application/offset+octet-stream")).status,
       400, "missing Upload-Offset")
    eq(request(st["create"], "POST", headers=tus_headers()).status, 400, "missing Upload-Length")
    eq(request(st["create"], "POST", headers=tus_headers(Upload_Length="-5")).status, 400, "negative length")
    eq(request(st["create"], "POST", headers=tus_headers(Upload_Length=5, Upload_Metadata="bad value!!")).status, 400,
       "bad metadata")
    eq(request(st["create"], "POST", headers=tus_headers(Upload_Length=5, Upload_Metadata="k " + "A" * 5000)).status,
       413, "huge metadata")
    eq(o.req("HEAD", "/tus/../../etc/passwd", headers=tus_headers()).status, 404, "traversal")
    # a tus header given twice is refused, not read from its first copy
    cu = urllib.parse.urlsplit(st["create"])
    resp = raw(o, ("POST %s?%s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 10\r\n"
                   "Upload-Length: 20\r\nContent-Length: 0\r\n\r\n" % (cu.path, cu.query, cu.netloc)).encode(), wait=2)
    check(resp.startswith(b"HTTP/1.1 400") and b"duplicate_header" in resp, "two Upload-Length: %r" % resp[:120])
    loc2 = location(create(o, 10))
    u2 = urllib.parse.urlsplit(loc2)
    resp = raw(o, ("PATCH %s?%s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                   "Upload-Offset: 5\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 5\r\n\r\n"
                   "abcde" % (u2.path, u2.query, u2.netloc)).encode(), wait=2)
    check(resp.startswith(b"HTTP/1.1 400") and b"duplicate_header" in resp, "two Upload-Offset: %r" % resp[:120])
    eq(request(loc2, "HEAD", headers=tus_headers()).header("upload-offset"), "0", "nothing written")
    # a chunked PATCH whose framing breaks: the bytes of whole chunks before it are kept, and the client
    # hears why in the JSON error shape (the connection used to close without a word)
    loc = location(create(o, 100))
    u = urllib.parse.urlsplit(loc)
    def offset_becomes(want):
        deadline = time.time() + 5
        while time.time() < deadline and request(loc, "HEAD", headers=tus_headers()).header("upload-offset") != want:
            time.sleep(0.1)
        return request(loc, "HEAD", headers=tus_headers()).header("upload-offset")

    for bad, before in ((b"zz\r\nabc\r\n0\r\n\r\n", "0"), (b"3\r\nabc\r\n-1\r\nx\r\n0\r\n\r\n", "0"),
                        (b"fffffffffffffffffff\r\nabc\r\n", "3")):
        off = offset_becomes(before)
        eq(off, before, "offset before %r" % bad[:12])
        head = ("PATCH %s?%s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: %s\r\n"
                "Content-Type: application/offset+octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n" %
                (u.path, u.query, u.netloc, off))
        resp = raw(o, head.encode() + bad, wait=2)
        check(resp.startswith(b"HTTP/1.1 400"), "broken chunked body: %r" % resp[:80])
        body = resp.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in resp else b""
        eq(json.loads(body)["code"], "bad_request", "JSON error for %r" % bad[:12])
    eq(offset_becomes("3"), "3", "the whole chunk before the bad one kept")
    # a coding other than chunked would reach the file still encoded: refused before any byte is stored
    for te in ("gzip, chunked", "gzip"):
        head = ("PATCH %s?%s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 3\r\n"
                "Content-Type: application/offset+octet-stream\r\nTransfer-Encoding: %s\r\n\r\n" %
                (u.path, u.query, u.netloc, te))
        resp = raw(o, head.encode() + b"3\r\nabc\r\n0\r\n\r\n", wait=2)
        check(resp.startswith(b"HTTP/1.1 501") and b"unsupported_transfer_coding" in resp, "%s: %r" % (te, resp[:80]))
    eq(offset_becomes("3"), "3", "nothing stored from them")
    # a chunked PATCH that runs past Upload-Length: 413, and the whole chunks before the overrun are kept
    # (they were thrown away, while broken framing kept them)
    head = ("PATCH %s?%s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 3\r\n"
            "Content-Type: application/offset+octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n" %
            (u.path, u.query, u.netloc))
    resp = raw(o, head.encode() + b"5\r\nhello\r\n" + b"%x\r\n" % 200 + b"x" * 200 + b"\r\n0\r\n\r\n", wait=2)
    check(resp.startswith(b"HTTP/1.1 413"), "chunked overrun: %r" % resp[:80])
    eq(offset_becomes("8"), "8", "the chunk before the overrun kept")
    eq(o.req("GET", "/api/health").status, 200, "the server keeps serving")


def raw(o, data, wait=0.5):
    sock = socket.create_connection((o.host, o.port))
    sock.sendall(data)
    out = b""
    sock.settimeout(wait)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    sock.close()
    return out


def test_expect_continue(s):
    o = origin()
    loc = urllib.parse.urlsplit(location(create(o, 10)))
    head = ("PATCH %s?%s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
            "Content-Type: application/offset+octet-stream\r\n" % (loc.path, loc.query))
    # the normal dance: 100 Continue, then the body, then 204
    sock = socket.create_connection((o.host, o.port))
    sock.sendall((head + "Content-Length: 10\r\nExpect: 100-continue\r\n\r\n").encode())
    first = sock.recv(4096)
    check(first.startswith(b"HTTP/1.1 100 Continue"), "100 Continue first: %r" % first[:60])
    sock.sendall(b"0123456789")
    rest = first[first.index(b"\r\n\r\n") + 4:] or sock.recv(4096)
    sock.close()
    check(rest.startswith(b"HTTP/1.1 204"), "then 204: %r" % rest[:60])
    # a chunked body that overruns Upload-Length, sent without waiting for the 100: the 413 must
    # follow the 100 on the wire (one write at a time), and the server must survive
    loc = urllib.parse.urlsplit(location(create(o, 10)))
    head = head.replace("/tus/" + head.split("/tus/")[1].split("?")[0], loc.path)
    head = "PATCH %s?%s" % (loc.path, loc.query) + head[head.index(" HTTP/1.1"):]
    for _ in range(5):
        out = raw(o, (head + "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
                      "20\r\n" + "x" * 32 + "\r\n0\r\n\r\n").encode())
        check(b"413" in out or out.startswith(b"HTTP/1.1 100"), "answered: %r" % out[:200])
    check(o.proc.poll() is None, "origin alive")
    eq(request(loc.scheme + "://" + loc.netloc + loc.path + "?" + loc.query, "HEAD", headers=tus_headers()).header(
        "upload-offset"), "0", "nothing kept from the overrun")


def test_creation_with_upload_and_method_override(s):
    o = origin()
    data = os.urandom(1000)
    r = request(st["create"], "POST", body=data,
                headers=tus_headers(Upload_Length=len(data) + 10, Content_Type="application/offset+octet-stream"))
    loc = location(r)
    eq(r.header("upload-offset"), str(len(data)), "creation-with-upload offset")
    r = request(loc, "POST", body=b"0123456789", headers=tus_headers(Upload_Offset=len(data),
                Content_Type="application/offset+octet-stream", X_HTTP_Method_Override="PATCH"))
    eq(r.status, 204, "override")
    eq(r.header("upload-offset"), str(len(data) + 10), "done")


def test_finished_and_empty_uploads_answer_retries_and_bad_checksums_leave_nothing(s):
    o = origin()
    # a client retrying its last (empty) PATCH after losing the answer: 204 at the final offset
    data = os.urandom(5)
    loc = location(create(o, len(data)))
    eq(patch(loc, 0, data).status, 204, "the upload completes")
    r = patch(loc, len(data), b"")
    eq(r.status, 204, "an empty PATCH at the end of a finished upload: %r" % (r.body[:200],))
    eq(r.header("upload-offset"), str(len(data)), "its offset")
    # the same retry with an empty chunked body: 204 too (it was a 500: the file had moved on), and a
    # chunked byte past the end is 413
    u = urllib.parse.urlsplit(loc)
    head = ("PATCH %s?%s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: %d\r\n"
            "Content-Type: application/offset+octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n" %
            (u.path, u.query, len(data)))
    resp = raw(o, head.encode() + b"0\r\n\r\n", wait=2)
    check(resp.startswith(b"HTTP/1.1 204") and (b"upload-offset: %d" % len(data)) in resp.lower(),
          "an empty chunked PATCH at the end: %r" % resp[:200])
    resp = raw(o, head.encode() + b"1\r\nx\r\n0\r\n\r\n", wait=2)
    check(resp.startswith(b"HTTP/1.1 413"), "a chunked byte past the end of a finished upload: %r" % resp[:120])
    # creation-with-upload of an empty file with a chunked (empty) body: created, with its Location
    u = urllib.parse.urlsplit(st["create"])
    sock = socket.create_connection((u.hostname, u.port))
    sock.sendall(("POST %s?%s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 0\r\n"
                  "Content-Type: application/offset+octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                  % (u.path, u.query)).encode())
    sock.settimeout(10)
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = sock.recv(4096)
        if not chunk:
            break
        resp += chunk
    sock.close()
    check(resp.startswith(b"HTTP/1.1 201") and b"\r\nlocation: " in resp.lower(), "empty chunked creation: %r" % resp[:300])
    # a malformed checksum on creation-with-upload is refused before anything is created
    ups = os.path.join(o.data, "uploads")
    before = sorted(os.listdir(ups))
    r = request(st["create"], "POST", body=b"abc", headers=tus_headers(
        Upload_Length=3, Content_Type="application/offset+octet-stream", Upload_Checksum="sha1 !!!"))
    eq(r.status, 400, "malformed checksum")
    eq(sorted(os.listdir(ups)), before, "no upload left behind")


def test_uploads_cannot_promise_more_disk_than_there_is(s):
    """Creations reserve their length: once unfinished uploads were promised the free space (less the
    64 MiB the origin keeps), the next 1 GiB creation is 507, though nothing was written yet. A join
    writes its parts' bytes again before they go, so it needs that room too."""
    o = S.origin()
    url = o.creation_url()
    v = os.statvfs(os.path.join(o.data, "uploads"))
    expect = (v.f_bavail * v.f_frsize - (64 << 20)) // (1 << 30)
    if expect > 1000:
        print("# %d GiB free: too many creations to try here" % expect)
        return
    parts = []
    for i in range(2):  # two finished partial uploads of 32 MiB: a 64 MiB join
        pu = location(request(url, "POST", headers=tus_headers(Upload_Length=32 << 20, Upload_Concat="partial")))
        eq(patch(pu, 0, bytes([65 + i]) * (32 << 20)).status, 204, "partial %d" % i)
        parts.append(pu)
    made, held = 0, []
    for _ in range(expect + 5):
        r = request(url, "POST", headers=tus_headers(Upload_Length=1 << 30))
        if r.status == 507:
            break
        eq(r.status, 201, "creation %d" % made)
        held.append(r.header("location"))
        made += 1
    print("# %d GiB free: %d creations of 1 GiB, then 507" % (expect, made))
    check(expect - 3 <= made <= expect, "507 once the free space was promised (%d made, %d GiB free)" % (made, expect))
    size = 512 << 20  # promise what is left down to under 16 MiB
    while size >= 16 << 20:
        r = request(url, "POST", headers=tus_headers(Upload_Length=size))
        if r.status == 201:
            continue
        eq(r.status, 507, "a %d MiB creation" % (size >> 20))
        size //= 2
    join = tus_headers(Upload_Concat="final;" + " ".join(parts))
    r = request(url, "POST", headers=join)
    eq(r.status, 507, "a 64 MiB join with under 16 MiB left: %s" % r.body[:200])
    eq(json.loads(r.body)["code"], "insufficient_storage", "error code")
    for pu in parts:
        eq(request(pu, "HEAD", headers=tus_headers()).header("upload-offset"), str(32 << 20), "the part is kept")
    check(held, "a 1 GiB reservation to give back")
    eq(request(held[0], "DELETE", headers=tus_headers()).status, 204, "a reservation given back")
    final = location(request(url, "POST", headers=join))
    eq(request(final, "HEAD", headers=tus_headers()).header("upload-length"), str(64 << 20), "then the join is made")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_memory_stays_bounded_for_big_and_concurrent_uploads(s):
    o = origin()
    pid = o.proc.pid
    base = rss_kb(pid)
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    chunk = os.urandom(1 << 20)

    def send(size):
        loc = location(create(o, size))
        u = urllib.parse.urlsplit(loc)
        sock = socket.create_connection((u.hostname, u.port))
        sock.sendall(("PATCH %s?%s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                      "Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n" %
                      (u.path, u.query, u.netloc, size)).encode())
        left = size
        while left > 0:
            n = min(left, len(chunk))
            sock.sendall(chunk[:n])
            left -= n
        resp = sock.recv(4096)
        sock.close()
        check(resp.startswith(b"HTTP/1.1 204"), "upload answered %r" % resp[:40])

    send(256 << 20)  # one 256 MiB PATCH, as tus-js-client sends by default
    threads = [threading.Thread(target=send, args=(24 << 20,)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    grew = (peak[0] - base) / 1024
    print("# origin RSS grew by %.1f MiB while receiving 496 MiB" % grew)
    check(grew < 80, "RSS grew by %.1f MiB" % grew)


def test_an_audits_findings(s):
    """What an audit of the upload surface found: a creation whose body overran names the upload it made;
    a Content-Length past 2^63 is refused before anything is made; front-door errors carry Tus-Resumable
    and CORS; '/tusX' is not '/tus/'; expired uploads reserve no disk; a deleted video's upload is gone."""
    o = origin()
    cu = urllib.parse.urlsplit(st["create"])
    head = ("POST %s?%s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 5\r\n"
            "Content-Type: application/offset+octet-stream\r\n" % (cu.path, cu.query, cu.netloc))
    resp = raw(o, (head + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n").encode(), wait=2)
    check(resp.startswith(b"HTTP/1.1 413"), "overrun: %r" % resp[:80])
    m = re.search(rb"\r\nLocation: (\S+)\r\n", resp)
    check(m is not None, "the 413 names the upload it made: %r" % resp[:400])
    deadline = time.time() + 5  # the kept bytes are committed after the answer, once synced
    while request(m.group(1).decode(), "HEAD", headers=tus_headers()).header("upload-offset") != "3" and \
            time.time() < deadline:
        time.sleep(0.1)
    r = request(m.group(1).decode(), "HEAD", headers=tus_headers())
    eq((r.status, r.header("upload-offset")), (200, "3"), "and the client can go on from what was kept")
    resp = raw(o, (head + "Content-Length: 9223372036854775808\r\n\r\nabc").encode(), wait=2)
    check(resp.startswith(b"HTTP/1.1 413") and b"\r\nLocation:" not in resp, "2^63 bytes: %r" % resp[:200])
    resp = raw(o, b"HEAD /tus/" + b"a" * 20 + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 17000 + b"\r\n\r\n", wait=2)
    check(resp.startswith(b"HTTP/1.1 431") and b"\r\nTus-Resumable: 1.0.0\r\n" in resp and
          b"\r\nAccess-Control-Allow-Origin: *\r\n" in resp, "the front door's own error: %r" % resp[:300])
    loc = urllib.parse.urlsplit(location(create(o, 10)))
    eq(request("%s://%s/tusX%s?%s" % (loc.scheme, loc.netloc, loc.path[4:], loc.query), "HEAD",
               headers=tus_headers()).status, 404, "/tusX is not under /tus/")
    eq(request(st["create"].replace("/tus/?", "/tusQ?"), "POST", headers=tus_headers(Upload_Length=5)).status, 404,
       "nor is a creation there")
    # disk: an upload that expired unfinished no longer holds its reservation (the origin's uploads live 4 s)
    n = 0
    while n < 5000 and create(o, 1 << 30).status == 201:
        n += 1
    check(n < 5000, "creations of 1 GiB end in 507")
    eq(create(o, 1 << 30).status, 507, "no room promised after %d" % n)
    time.sleep(4.5)
    eq(create(o, 1 << 30).status, 201, "once they expired unfinished, their room is free again")
    # a deleted video's upload (its tus URL and its metadata) goes with it
    data = b"not a video at all"
    r = request(st["create"], "POST", body=data, headers=tus_headers(
        Upload_Length=len(data), Content_Type="application/offset+octet-stream", Upload_Metadata=meta(filename="x.mp4")))
    vloc = location(r)
    vid = urllib.parse.urlsplit(vloc).path.rsplit("/", 1)[1]
    eq(request(vloc, "HEAD", headers=tus_headers()).status, 200, "the upload before")
    eq(o.req("DELETE", "/api/videos/" + vid, headers=o.auth()).status, 204, "deleted")
    eq(request(vloc, "HEAD", headers=tus_headers()).status, 404, "the upload after")


def test_bodyless_answers_carry_no_content_length(s):
    """A 204 carries no Content-Length, not even 0 (RFC 9110 8.6): the front door's answers did not, but a
    tus request on a keep-alive connection h2o already serves (a GET before it) got "Content-Length: 0"
    on its 204 (PATCH, DELETE, OPTIONS). The 200 of a HEAD keeps its length."""
    o = origin()
    first = "GET /api/videos HTTP/1.1\r\nHost: x\r\n\r\n"  # h2o owns the connection from here on
    forms = {"PATCH": "PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                      "Content-Type: application/offset+octet-stream\r\nContent-Length: 10\r\n\r\n0123456789",
             "OPTIONS": "OPTIONS %s HTTP/1.1\r\nHost: x\r\n\r\n",
             "DELETE": "DELETE %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n\r\n"}
    for method, form in forms.items():
        for path, before in (("h2o", first), ("front door", "")):
            loc = urllib.parse.urlsplit(location(create(o, 10)))
            target = "%s?%s" % (loc.path, loc.query) if loc.query else loc.path
            out = raw(o, (before + form % target).encode(), wait=2).decode(errors="replace")
            at = out.find("HTTP/1.1 204")
            check(at >= 0 and (at > 0) == (before != ""), "%s on the %s: a 204: %r" % (method, path, out[:300]))
            head = out[at:].split("\r\n\r\n", 1)[0].lower()
            check("\r\ncontent-length:" not in head and "\r\ntransfer-encoding:" not in head,
                  "%s on the %s: no Content-Length on a 204: %r" % (method, path, head))
            if method == "PATCH" and path == "h2o":
                out = raw(o, (first + "HEAD %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n\r\n" % target)
                          .encode(), wait=2).decode(errors="replace")
                head = out[out.find("HTTP/1.1 200", 5):].split("\r\n\r\n", 1)[0].lower()
                check("\r\nupload-offset: 10\r\n" in head and "\r\ncontent-length: 0" in head,
                      "HEAD on h2o: the bytes are there and its 200 keeps a length: %r" % head)


def test_uploads_received_at_once_are_limited(s):
    """Each body in progress holds buffers, and a client may trickle one for as long as it likes: past
    --max-uploads the next is told 503 busy with Retry-After (tus clients retry), and gets in once one
    ends. Creations without a body are not limited."""
    o = s.origin("--max-uploads", "2")
    url = o.creation_url()
    locs = [location(request(url, "POST", headers=tus_headers(Upload_Length=100))) for _ in range(3)]
    held = [start_raw_patch(loc, 100, b"x" * 10) for loc in locs[:2]]
    time.sleep(0.3)
    r = patch(locs[2], 0, b"y" * 100)
    eq((r.status, r.json()["code"], r.header("retry-after")), (503, "busy", "2"), "the third body")
    eq(request(url, "POST", body=b"z" * 10, headers=tus_headers(
        Upload_Length=10, Content_Type="application/offset+octet-stream")).status, 503, "a creation with a body too")
    eq(request(url, "POST", headers=tus_headers(Upload_Length=10)).status, 201, "one without is not limited")
    held[0].close()
    deadline = time.time() + 5
    while time.time() < deadline:
        r = patch(locs[2], 0, b"y" * 100)
        if r.status != 503:
            break
        time.sleep(0.1)
    eq(r.status, 204, "in once one ended")
    held[1].close()


S.run([test_creation_url_needs_the_token, test_options_advertises_the_extensions,
       test_a_public_url_ending_in_a_slash_gives_the_same_urls, test_forged_and_expired_creation_urls_are_403, test_a_join_is_taken_on_an_expired_creation_url,
       test_a_patch_in_absolute_form_is_streamed, test_upload_url_signature_is_checked, test_version_is_required,
       test_over_1_gib_is_413, test_patch_head_and_offsets, test_checksums, test_termination,
       test_concatenation_makes_the_video_id, test_expiration, test_interrupted_patch_keeps_received_bytes, test_a_patch_trickling_steadily_is_not_cut,
       test_a_second_writer_is_told_the_upload_is_busy,
       test_malformed_requests, test_expect_continue, test_creation_with_upload_and_method_override,
       test_finished_and_empty_uploads_answer_retries_and_bad_checksums_leave_nothing,
       test_uploads_cannot_promise_more_disk_than_there_is,
       test_memory_stays_bounded_for_big_and_concurrent_uploads, test_an_audits_findings,
       test_bodyless_answers_carry_no_content_length,
       test_uploads_received_at_once_are_limited])
