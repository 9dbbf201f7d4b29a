#!/usr/bin/env python3
"""bench/upload: tus ingest throughput on loopback, with the storage's own write speed (dd with
fdatasync, same file system, same size) measured in the same run as the reference.

Measures: one PATCH of the whole file (tus-js-client's default) through the streaming front door, and
the peercdn-origin upload CLI with 4 parallel partial uploads (16 MiB PATCHes with SHA-256 checksums).
usage: bench/upload.py [--mb N]
"""
import argparse
import os
import socket
import subprocess
import time
import urllib.parse

import common  # noqa: F401
from harness import TOKEN, Suite, request, tus_headers

ap = argparse.ArgumentParser()
ap.add_argument("--mb", type=int, default=512)
a, _ = ap.parse_known_args()
S = Suite("bench-upload")


def main():
    size = a.mb << 20
    path = os.path.join(S.tmp, "payload.bin")
    with open(path, "wb") as f:
        chunk = os.urandom(8 << 20)
        for _ in range(size // len(chunk)):
            f.write(chunk)
        f.write(chunk[:size % len(chunk)])  # all of --mb (a PATCH announcing more than the file waited for ever)
    assert os.path.getsize(path) == size
    o = S.origin()
    # reference: the disk itself (each measurement starts with no dirty pages)
    subprocess.run(["sync"])
    t0 = time.time()
    subprocess.run(["dd", "if=" + path, "of=" + os.path.join(o.data, "dd.bin"), "bs=4M", "conv=fdatasync"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    disk = size / (time.time() - t0) / 1e6
    os.unlink(os.path.join(o.data, "dd.bin"))

    # one PATCH with the whole body
    subprocess.run(["sync"])
    r = request(o.creation_url(), "POST", headers=tus_headers(Upload_Length=size))
    loc = urllib.parse.urlsplit(r.header("location"))
    sock = socket.create_connection((loc.hostname, loc.port))
    t0 = time.time()
    sock.sendall(("PATCH %s?%s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                  "Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n" %
                  (loc.path, loc.query, loc.netloc, size)).encode())
    with open(path, "rb") as f:
        sock.sendfile(f)
    resp = sock.recv(4096)
    single = size / (time.time() - t0) / 1e6
    sock.close()
    assert resp.startswith(b"HTTP/1.1 204"), resp

    # the CLI: parallel partial uploads + concatenation
    subprocess.run(["sync"])
    t0 = time.time()
    p = subprocess.run([S.bin("peercdn-origin"), "upload", path, "--origin", o.url, "--token", TOKEN, "--parallel", "4",
                        "--no-progress", "--state", os.path.join(S.tmp, "state.json")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cli = size / (time.time() - t0) / 1e6
    assert p.returncode == 0, p.stderr
    o.stop()
    S.cleanups.clear()
    print("payload %d MiB on loopback, %d CPUs" % (a.mb, os.cpu_count()))
    print("  disk (dd, fdatasync):            %7.0f MB/s" % disk)
    print("  tus, one PATCH:                  %7.0f MB/s  (%.2f of disk)" % (single, single / disk))
    print("  peercdn-origin upload, 4 parts:  %7.0f MB/s  (%.2f of disk; includes SHA-256 and the final join)" %
          (cli, cli / disk))


common.run(S, main)
