#!/usr/bin/env python3
"""An off-the-shelf tus client (tus-js-client from npm, run by node) works unmodified."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, SLOW, Suite, check, clip, eq, ffmpeg_decode  # noqa: E402

S = Suite("tusjs")
NODE_MODULES = os.path.join(ROOT, "build", "npm", "node_modules")
st = {}


def run_client(mode, src):
    o = st["o"]
    env = dict(os.environ, NODE_PATH=NODE_MODULES)
    p = subprocess.run(["node", os.path.join(ROOT, "tests", "integration", "js", "tus_upload.js"), o.creation_url(), src,
                        mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120 * SLOW)
    lines = p.stdout.decode().strip().splitlines()
    check(lines, "no output from node: %s" % p.stderr.decode()[-2000:])
    out = json.loads(lines[-1])
    check("error" not in out, "tus-js-client: %s\n%s" % (out.get("error"), o.stderr()))
    vid = out["url"].rsplit("/", 1)[1]  # the id ends the Location (DESIGN.md)
    return vid, out


def test_tus_js_client_is_installed(s):
    check(os.path.isdir(os.path.join(NODE_MODULES, "tus-js-client")), "npm ci ran (./peercdn test installs it)")
    st["o"] = s.origin()
    st["src"] = clip("tusjs_480x270_25", size="480x270", rate=25, dur=4)


def test_single_patch_default_upload(s):
    vid, out = run_client("single", st["src"])
    v = st["o"].ready(vid)
    eq(v["title"], "tus-js-client single", "title from tus-js-client metadata")
    eq(v["source_size"], os.path.getsize(st["src"]), "size")
    ffmpeg_decode("%s/v/%s/master.m3u8" % (st["o"].url, vid))


def test_parallel_uploads_use_concatenation(s):
    vid, out = run_client("parallel", st["src"])
    v = st["o"].ready(vid)
    eq(v["source_size"], os.path.getsize(st["src"]), "size")
    with open(os.path.join(st["o"].data, "originals", vid), "rb") as f, open(st["src"], "rb") as g:
        check(f.read() == g.read(), "the joined parts equal the file")


def test_resume_after_abort(s):
    vid, out = run_client("resume", st["src"])
    ev = out["events"]
    check(ev[0]["aborted_at"] > 0 and ev[0]["aborted_at"] < ev[0]["total"], "aborted midway: %r" % ev)
    check(len(ev) > 1 and ev[1]["resumed_from"] >= ev[0]["aborted_at"], "resumed from the server's offset: %r" % ev)
    st["o"].ready(vid)


S.run([test_tus_js_client_is_installed, test_single_patch_default_upload, test_parallel_uploads_use_concatenation,
       test_resume_after_abort])
