#!/usr/bin/env bash
# The benchmarks published in docs/benchmarks.md, run with multiparty-meeting-load:
#   1. the loopback UDP floor (1200-byte datagrams, sendmmsg/recvmmsg, one core);
#   2. 1 -> N fan-out, audio + 720p-equivalent video (VP8 1.5 Mbit/s, 30 fps), ours and
#      Janus side by side (scripts/janus-bench.sh: private namespaces, one core each), Janus
#      with one event loop (its best setting on one core) and, for a few N, with its default
#      of one thread per handle;
#   3. capacity: the largest N of 720p-equivalent subscriber streams (video only) one core
#      carries (packet and frame loss < 1 %, video p99 < 100 ms), for each server;
#   4. added latency at 25/50/80 % of our capacity (both servers at the same N);
#   5. join time of 100 concurrent joins.
# Each run writes a JSON report to $OUT; scripts/bench-summary.py turns them into tables.
#
#   scripts/bench.sh                 # everything (20-25 minutes on 2 cores, printed at the end)
#   STEPS="floor join" scripts/bench.sh
#   sudo STEPS="fanout" SWEEP="100" scripts/bench.sh
#
# Run it as your user: it builds with your cargo, then runs the rest as root through sudo
# (network namespaces), passing the variables below along (sudo's env_reset would drop
# them). Started with sudo, it builds as $SUDO_USER with that user's cargo.
#
# Environment: OUT (target/bench/<time>), STEPS ("floor fanout janusdefault capacity
# latency join"),
# SWEEP (fan-out sizes), CAPACITY_STEPS, DEFAULT_SWEEP, JANUS_EVENT_LOOPS (1; "default" =
# Janus' own default of one thread per handle; recorded in every JSON report), DURATION
# (10 s), WARMUP (10 s: a join burst can leave a backlog in the server for several
# seconds, see docs/benchmarks.md), PROFILE (release; "profiling" keeps symbols for perf).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
started=$(date +%s)
PROFILE=${PROFILE:-release}
passed=(OUT STEPS SWEEP CAPACITY_STEPS DEFAULT_SWEEP JANUS_EVENT_LOOPS JANUS_NAME DURATION WARMUP
  CAPACITY PROFILE SERVER_CPU CLIENT_CPU)

# The build runs as the user who asked for the benchmark, with that user's cargo: sudo's
# secure_path usually lacks ~/.cargo/bin, and a root build leaves root-owned files in target/.
build() {
  local args=(build --profile "$PROFILE" --bin multiparty-meeting-load --bin multiparty-meeting)
  if [ "$(id -u)" -ne 0 ]; then
    cargo "${args[@]}"
  elif [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    local home
    home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    sudo -u "$SUDO_USER" -H env PATH="$home/.cargo/bin:$PATH" cargo "${args[@]}"
  else
    PATH="$HOME/.cargo/bin:$PATH" cargo "${args[@]}"
  fi
}
if [ -z "${BENCH_BUILT:-}" ]; then
  build
fi
if [ "$(id -u)" -ne 0 ]; then
  # Root for the namespaces; the variables travel on sudo's command line.
  vars=(BENCH_BUILT=1)
  for v in "${passed[@]}"; do
    if [ -n "${!v+x}" ]; then vars+=("$v=${!v}"); fi
  done
  exec sudo env "${vars[@]}" bash "$0" "$@"
fi
export LOAD=$root/target/$PROFILE/multiparty-meeting-load
export SERVER=$root/target/$PROFILE/multiparty-meeting
OUT=${OUT:-$root/target/bench/$(date +%Y%m%d-%H%M%S)}
STEPS=${STEPS:-floor fanout janusdefault capacity latency join}
SWEEP=${SWEEP:-25 50 100 200 300}
CAPACITY_STEPS=${CAPACITY_STEPS:-50 100 150 200 250 300 350 400}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-10}
loops=${JANUS_EVENT_LOOPS:-1}
if [ "$loops" = default ]; then loops=""; fi
mkdir -p "$OUT"
echo "results in $OUT" >&2

common=(--burst 50 --warmup-secs "$WARMUP" --duration-secs "$DURATION" --quiet)
video_only=(--no-audio --video-bitrate 1.5M --fps 30)

side_by_side() { # json targets args...
  local json=$1 targets=$2
  shift 2
  echo "== $(basename "$json" .json) ($targets)" >&2
  TARGETS=$targets JANUS_EVENT_LOOPS=$loops JANUS_NAME=${JANUS_NAME:-janus} \
    scripts/janus-bench.sh "$@" --json "$json" |
    grep -E 'rx packets|loss|latency ms|egress|server CPU|join ms|RSS KiB' >&2 || true
}

pad() { printf '%04d' "$1"; }

has() { [[ " $STEPS " == *" $1 "* ]]; }

if has floor; then
  echo "== UDP floor" >&2
  "$LOAD" --udp-floor --floor-secs 3 --client-cpu 0 --json "$OUT/floor.json" >&2
fi

if has fanout; then
  for n in $SWEEP; do
    side_by_side "$OUT/fanout-$(pad "$n").json" "ours janus" --subscribers "$n" "${common[@]}"
  done
fi

if has janusdefault; then
  for n in ${DEFAULT_SWEEP:-50 100 200}; do
    JANUS_NAME=janus-default loops="" \
      side_by_side "$OUT/fanout-$(pad "$n")-janus-default.json" "janus" \
      --subscribers "$n" "${common[@]}"
  done
fi

capacity() { # target -> prints the largest N carried
  local target=$1 best=0
  for n in $CAPACITY_STEPS; do
    local json="$OUT/capacity-$target-$(pad "$n").json"
    side_by_side "$json" "$target" --subscribers "$n" "${video_only[@]}" "${common[@]}"
    if python3 scripts/bench-summary.py carried "$json" "$target"; then
      best=$n
    else
      break
    fi
  done
  echo "$best"
}

ours_capacity=""
if has capacity; then
  ours_capacity=$(capacity ours)
  janus_capacity=$(capacity janus)
  echo "capacity (720p-equivalent streams, one core): ours $ours_capacity, janus $janus_capacity" |
    tee "$OUT/capacity.txt" >&2
fi

if has latency; then
  if [ -z "$ours_capacity" ] && [ -f "$OUT/capacity.txt" ]; then
    ours_capacity=$(sed -n 's/.*ours \([0-9]*\),.*/\1/p' "$OUT/capacity.txt")
  fi
  ours_capacity=${ours_capacity:-${CAPACITY:-200}}
  for pct in 25 50 80; do
    n=$(( (ours_capacity * pct + 50) / 100 ))
    [ "$n" -ge 1 ] || n=1
    side_by_side "$OUT/latency${pct}pct-$(pad "$n").json" "ours janus" \
      --subscribers "$n" "${video_only[@]}" "${common[@]}"
  done
fi

if has join; then
  side_by_side "$OUT/join-0100.json" "ours janus" --subscribers 100 --burst 100 \
    --warmup-secs "$WARMUP" --duration-secs "$DURATION" --quiet
fi

python3 scripts/bench-summary.py tables "$OUT" | tee "$OUT/summary.md"
took=$(( $(date +%s) - started ))
printf '\nrun time: %d min %02d s (JANUS_EVENT_LOOPS=%s)\n' $((took / 60)) $((took % 60)) \
  "${JANUS_EVENT_LOOPS:-1}" | tee -a "$OUT/summary.md"
