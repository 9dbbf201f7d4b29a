#!/usr/bin/env python3
"""bench/transcode: wall time of peercdn's ladder (chunk-parallel, decode once, every rung) against the
equivalent single ffmpeg CLI command with the same encoder settings, on the same 1080p input, plus the
PSNR of the top rung for both. Goal: ≤ 0.8× the CLI's time at equal quality.

usage: bench/transcode.py [--seconds N] [--preset P]
"""
import argparse
import json
import os
import re
import subprocess
import time

import common  # noqa: F401  (sets up paths)
from harness import Suite, clip, ffprobe

ap = argparse.ArgumentParser()
ap.add_argument("--seconds", type=int, default=30)
ap.add_argument("--preset", default="veryfast")
ap.add_argument("--source", default="camera", choices=["camera", "grain"],
                help="camera: 12 Mb/s, 2 s GOP, like a phone or an editor's export; "
                     "grain: 150 Mb/s of temporal noise with 8.3 s GOPs, the worst case for chunked decoding")
ap.add_argument("--crf", type=float, default=21, help="capped CRF for both sides, as the origin's default (0: ABR)")
ap.add_argument("--origin-args", default="", help="extra peercdn-origin serve options, e.g. '--x264-threads 2'")
a, _ = ap.parse_known_args()

S = Suite("bench-transcode")
LADDER = [(416, 234, 145000), (640, 360, 365000), (768, 432, 730000), (960, 540, 2000000), (1280, 720, 3000000),
          (1920, 1080, 6000000)]


def psnr(distorted, reference, size=None):
    """Average PSNR; for a smaller rung the reference is scaled to its size (lanczos) first."""
    ref = "[1:v]settb=1/1000,setpts=N*33" + (",scale=%s:flags=lanczos" % size if size else "") + "[r]"
    p = subprocess.run(["ffmpeg", "-v", "info", "-nostdin", "-i", distorted, "-i", reference, "-lavfi",
                        "[0:v]settb=1/1000,setpts=N*33[d];" + ref + ";[d][r]psnr", "-f", "null", "-"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    m = re.search(r"average:([0-9.]+|inf)", p.stderr.decode())
    return float(m.group(1)) if m else float("nan")


def main():
    if a.source == "camera":
        src = clip("bench_camera_1080p_%ds" % a.seconds, size="1920x1080", rate=30, dur=a.seconds,
                   vf="noise=alls=4:allf=t", vopts=["-preset", "veryfast", "-b:v", "12M", "-g", "60"])
    else:
        src = clip("bench_1080p_%ds" % a.seconds, size="1920x1080", rate=30, dur=a.seconds,
                   vf="noise=alls=10:allf=t", vopts=["-preset", "veryfast", "-crf", "16"])
    frames = int(ffprobe(src, "-select_streams", "v:0", "-count_frames", "-show_entries",
                         "stream=nb_read_frames")["streams"][0]["nb_read_frames"])
    mbps = os.path.getsize(src) * 8 / a.seconds / 1e6
    print("input: %s (%s), 1920x1080, %d frames, %d s, %.0f Mb/s, preset %s, %d CPUs" % (
        os.path.basename(src), a.source, frames, a.seconds, mbps, a.preset, os.cpu_count()))

    # reference: one ffmpeg command, decode once, split, six x264 encoders + AAC once
    out = os.path.join(S.tmp, "ref")
    os.makedirs(out)
    fc = "[0:v]split=6" + "".join("[s%d]" % i for i in range(6))
    for i, (w, h, _) in enumerate(LADDER):
        fc += ";[s%d]scale=%d:%d:flags=bicubic,format=yuv420p[o%d]" % (i, w, h, i)
    argv = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", src, "-filter_complex", fc]
    for i, (w, h, br) in enumerate(LADDER):
        argv += ["-map", "[o%d]" % i, "-c:v", "libx264", "-preset", a.preset, "-profile:v", "high"] + (["-crf", str(a.crf)] if a.crf > 0 else ["-b:v", str(br)]) + [
                 "-maxrate", str(br * 3 // 2), "-bufsize", str(br * 2), "-x264-params",
                 "scenecut=0:open-gop=0:b-pyramid=none", "-force_key_frames", "expr:gte(t,n_forced*2)",
                 os.path.join(out, "r%d.mp4" % i)]
    argv += ["-map", "0:a?", "-c:a", "aac", "-b:a", "128k", os.path.join(out, "audio.m4a")]
    t0 = time.time()
    subprocess.run(argv, check=True)
    ref_s = time.time() - t0
    ref_psnr = psnr(os.path.join(out, "r5.mp4"), src)
    ref_low = psnr(os.path.join(out, "r0.mp4"), src, "416:234")

    # peercdn: upload, then time from "upload complete" to "ready" (probe, plan, encode, audio,
    # package, thumbnails, sign, publish)
    o = S.origin("--preset", a.preset, "--crf", str(a.crf), *a.origin_args.split())
    vid = o.upload(src, parallel=4)
    t0 = time.time()
    v = o.ready(vid, timeout=3600)
    ours_s = time.time() - t0
    top = "%s/v/%s/%s/index.m3u8" % (o.url, vid, v["renditions"][-1]["id"])
    ours_psnr = psnr(top, src)
    ours_low = psnr("%s/v/%s/v0/index.m3u8" % (o.url, vid), src, "416:234")
    seg_dir = os.path.join(o.data, "media", vid, "v0")
    ours_low_kbps = sum(os.path.getsize(os.path.join(seg_dir, f)) for f in os.listdir(seg_dir)
                        if f.endswith(".m4s")) * 8 / a.seconds / 1000
    ref_low_kbps = os.path.getsize(os.path.join(out, "r0.mp4")) * 8 / a.seconds / 1000
    o.stop()
    S.cleanups.clear()

    ratio = ours_s / ref_s
    print("ffmpeg CLI (single command):  %7.1f s  %5.2fx realtime  top-rung PSNR %.2f dB" % (ref_s, a.seconds / ref_s, ref_psnr))
    print("peercdn ladder (full pipeline): %6.1f s  %5.2fx realtime  top-rung PSNR %.2f dB" % (ours_s, a.seconds / ours_s, ours_psnr))
    print("ratio peercdn/ffmpeg: %.2f (goal <= 0.80)   PSNR difference %+.2f dB (top), %+.2f dB (416x234: %.2f vs %.2f)"
          % (ratio, ours_psnr - ref_psnr, ours_low - ref_low, ours_low, ref_low))
    print("416x234 rung bitrate: peercdn %.0f kb/s, ffmpeg %.0f kb/s" % (ours_low_kbps, ref_low_kbps))
    print(json.dumps({"bench": "transcode", "source": a.source, "seconds": a.seconds, "preset": a.preset, "ffmpeg_s": round(ref_s, 2),
                      "peercdn_s": round(ours_s, 2), "ratio": round(ratio, 3), "ffmpeg_psnr": ref_psnr,
                      "peercdn_psnr": ours_psnr, "ffmpeg_psnr_low": ref_low, "peercdn_psnr_low": ours_low}))


common.run(S, main)
