"""Shared bench helpers: reuse the integration harness to run the real binaries."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("PEERCDN_TEST_MEDIA", os.path.join(ROOT, "build", "bench-media"))
sys.argv = [sys.argv[0], "--build", os.environ.get("PEERCDN_BUILD", os.path.join(ROOT, "build"))] + sys.argv[1:]

import harness  # noqa: E402,F401


def suite(name):
    s = harness.Suite("bench-" + name)
    return s
