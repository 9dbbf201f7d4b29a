#!/usr/bin/env bash
# ./peercdn demo [--keep]: the whole system on this machine. peercdn-sim emulate runs the scenario
# sim/scenarios/demo.json with real processes: it starts the tracker and the origin with their
# embedded defaults (SQLite, local files), generates a 36 s sample video and ingests it through tus,
# then launches 12 real peers, 2.5 s apart, with residential upload caps (some below the top
# bitrate), each in its own network namespace when run as root. It prints each viewer as it starts
# and finishes, then a table: each viewer's start-up, stalls and P2P share, the overall CDN offload
# and what it saved at $0.02/GB. --keep leaves the origin, tracker and a seeder running and prints
# URLs to open in a player; Ctrl-C stops them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIM="$ROOT/build/sim/peercdn-sim"
ARGS=()
for a in "$@"; do
  case "$a" in
    --keep) ARGS+=(--keep) ;;
    *) echo "peercdn demo: unknown option $a (only --keep)" >&2; exit 2 ;;
  esac
done
OUT="$(mktemp -d /tmp/peercdn-demo.XXXXXX)"
echo "== peercdn demo: origin, tracker and 12 real peers on this machine (outputs in $OUT)"
exec "$SIM" emulate "$ROOT/sim/scenarios/demo.json" --out "$OUT" "${ARGS[@]+"${ARGS[@]}"}"
