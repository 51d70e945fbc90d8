#!/usr/bin/env bash
# Side-by-side benchmark of our server and Janus VideoRoom (Debian package `janus`, 1.1.2)
# with the same load generator scenario, figures in one table and one JSON file.
#
# Janus' ICE ignores loopback, so everything runs in two private network namespaces joined
# by a veth pair: the servers in one (10.99.0.1), the load generator in the other
# (10.99.0.2, plus 10.98.0.0/16 routed `local` there so that every peer connection has its
# own address). Traffic never leaves these namespaces; they are deleted on exit.
#
# Both servers are pinned to CPU $SERVER_CPU (one core), the load generator to $CLIENT_CPU.
#
#   scripts/janus-bench.sh [load generator options...]
#   scripts/janus-bench.sh --rooms 1 --publishers 1 --subscribers 100 --duration-secs 10 \
#       --json /tmp/side-by-side.json
#
# Environment: SERVER_CPU (0), CLIENT_CPU (1), TARGETS ("ours janus"), JANUS_EVENT_LOOPS
# (unset = one thread per handle, Janus' default; written to the JSON report as
# janus.event_loops), JANUS_NAME (the target's name in the report, "janus"), KEEP_LOGS=1
# keeps the temp directory. With sudo, put the variables after it:
#   sudo JANUS_EVENT_LOOPS=1 scripts/janus-bench.sh --subscribers 200 --json out.json
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "run as root: this script creates network namespaces" >&2
  exit 1
fi
if ! command -v janus >/dev/null 2>&1; then
  echo "installing janus" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null
fi
LOAD=${LOAD:-$root/target/release/multiparty-meeting-load}
SERVER=${SERVER:-$root/target/release/multiparty-meeting}
if [ ! -x "$LOAD" ] || [ ! -x "$SERVER" ]; then
  # As the user behind sudo, with that user's cargo (sudo's PATH usually lacks ~/.cargo/bin).
  build=(cargo build --release --bin multiparty-meeting-load --bin multiparty-meeting)
  if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    sudo -u "$SUDO_USER" -H env PATH="$home/.cargo/bin:$PATH" "${build[@]}"
  else
    PATH="$HOME/.cargo/bin:$PATH" "${build[@]}"
  fi
fi
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
TARGETS=${TARGETS:-ours janus}

id=$$
srv_ns="mmb-srv-$id"
cli_ns="mmb-cli-$id"
veth_srv="mbs$id"
veth_cli="mbc$id"
srv_ip=10.99.0.1
cli_ip=10.99.0.2
cli_range=10.98.0.0/16
http_port=3000
tmp=$(mktemp -d /tmp/janus-bench.XXXXXX)
pids=()
janus_name=${JANUS_NAME:-janus}

cleanup() {
  set +e
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null
  done
  for _ in $(seq 1 50); do
    alive=0
    for p in "${pids[@]}"; do
      if kill -0 "$p" 2>/dev/null; then alive=1; fi
    done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  ip netns del "$srv_ns" 2>/dev/null
  ip netns del "$cli_ns" 2>/dev/null
  if [ "${KEEP_LOGS:-0}" = 1 ]; then
    echo "logs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT INT TERM

# ---------------------------------------------------------------- namespaces
ip netns add "$srv_ns"
ip netns add "$cli_ns"
ip link add "$veth_srv" type veth peer name "$veth_cli"
ip link set "$veth_srv" netns "$srv_ns"
ip link set "$veth_cli" netns "$cli_ns"
ip -n "$srv_ns" link set lo up
ip -n "$cli_ns" link set lo up
ip -n "$srv_ns" addr add "$srv_ip/24" dev "$veth_srv"
ip -n "$cli_ns" addr add "$cli_ip/24" dev "$veth_cli"
ip -n "$srv_ns" link set "$veth_srv" up
ip -n "$cli_ns" link set "$veth_cli" up
ip -n "$cli_ns" route add local "$cli_range" dev lo
ip -n "$srv_ns" route add "$cli_range" via "$cli_ip"

wait_port() { # ip port what
  for _ in $(seq 1 100); do
    if ip netns exec "$cli_ns" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$3 did not listen on $1:$2" >&2
  return 1
}

load_args=()

# ---------------------------------------------------------------- our server
if [[ " $TARGETS " == *" ours "* ]]; then
  # Every signaling connection comes from $cli_ip: exempt it from the per-address limits
  # (connections, joins per minute), which Janus does not have and which would refuse most
  # of a 200-subscriber burst from one address.
  ip netns exec "$srv_ns" env -i PATH="$PATH" RUST_LOG=warn \
    MM_LIMITS_EXEMPT_IPS="$cli_ip/32" \
    MM_LISTENING_HOST=$srv_ip MM_LISTENING_PORT=$http_port MM_ANNOUNCED_IP=$srv_ip \
    MM_RTC_LISTEN_IP=$srv_ip MM_NUM_WORKERS=1 MM_RTC_MIN_PORT=40000 MM_RTC_MAX_PORT=40099 \
    MM_DRAIN_TIMEOUT=1000 \
    taskset -c "$SERVER_CPU" "$SERVER" >"$tmp/ours.log" 2>&1 &
  ours_pid=$!
  pids+=("$ours_pid")
  wait_port $srv_ip $http_port "multiparty-meeting"
  load_args+=(--target "ours=http://$srv_ip:$http_port" --pid "ours=$ours_pid")
fi

# ---------------------------------------------------------------- Janus
if [[ " $TARGETS " == *" janus "* ]]; then
  cfg="$tmp/janus"
  mkdir -p "$cfg"
  plugins=/usr/lib/x86_64-linux-gnu/janus/plugins
  transports=/usr/lib/x86_64-linux-gnu/janus/transports
  disable_plugins=$(cd "$plugins" && ls *.so | grep -v '^libjanus_videoroom.so$' | paste -sd, -)
  disable_transports=$(cd "$transports" && ls *.so | grep -v '^libjanus_websockets.so$' | paste -sd, -)
  loops_line=""
  if [ -n "${JANUS_EVENT_LOOPS:-}" ]; then
    loops_line="event_loops = $JANUS_EVENT_LOOPS"
  fi
  cat >"$cfg/janus.jcfg" <<EOF
general: {
	configs_folder = "$cfg"
	plugins_folder = "$plugins"
	transports_folder = "$transports"
	events_folder = "/usr/lib/x86_64-linux-gnu/janus/events"
	loggers_folder = "/usr/lib/x86_64-linux-gnu/janus/loggers"
	debug_level = 3
	session_timeout = 120
	$loops_line
}
certificates: {
}
media: {
	ipv6 = false
	rtp_port_range = "20000-40000"
}
nat: {
	nice_debug = false
	full_trickle = false
	ice_lite = false
	ignore_mdns = true
	ice_enforce_list = "$srv_ip"
}
plugins: {
	disable = "$disable_plugins"
}
transports: {
	disable = "$disable_transports"
}
loggers: {
	disable = "libjanus_jsonlog.so"
}
events: {
	broadcast = false
}
EOF
  cat >"$cfg/janus.transport.websockets.jcfg" <<EOF
general: {
	json = "plain"
	ws = true
	ws_port = 8188
	ws_ip = "$srv_ip"
	wss = false
}
admin: {
	admin_ws = false
}
EOF
  cat >"$cfg/janus.plugin.videoroom.jcfg" <<EOF
general: {
}
EOF
  ip netns exec "$srv_ns" taskset -c "$SERVER_CPU" \
    janus --configs-folder="$cfg" --config="$cfg/janus.jcfg" --disable-colors \
    >"$tmp/janus.log" 2>&1 &
  janus_pid=$!
  pids+=("$janus_pid")
  wait_port $srv_ip 8188 "janus" || { tail -30 "$tmp/janus.log" >&2; exit 1; }
  load_args+=(--target "$janus_name=ws://$srv_ip:8188" --pid "$janus_name=$janus_pid")
fi

echo "servers up in $srv_ns; load generator in $cli_ns (CPU $CLIENT_CPU)" >&2
set +e
ip netns exec "$cli_ns" taskset -c "$CLIENT_CPU" "$LOAD" "${load_args[@]}" \
  --local-net "$cli_range" --client-cpu "$CLIENT_CPU" --server-cpu "$SERVER_CPU" "$@"
rc=$?
set -e
# The report says how Janus ran: its threading changes its figures 1.6-2.9x.
json=""
prev=""
for a in "$@"; do
  if [ "$prev" = --json ]; then json=$a; fi
  case $a in --json=*) json=${a#--json=} ;; esac
  prev=$a
done
if [ $rc -eq 0 ] && [ -n "$json" ] && [ "$json" != - ] && [ -f "$json" ]; then
  JSON=$json LOOPS=${JANUS_EVENT_LOOPS:-default} TARGETS=$TARGETS NAME=$janus_name python3 - <<'PY'
import json, os
path = os.environ["JSON"]
doc = json.load(open(path))
loops = os.environ["LOOPS"]
doc["janus"] = {
    "target": os.environ["NAME"] if "janus" in os.environ["TARGETS"].split() else None,
    "event_loops": int(loops) if loops.isdigit() else loops,
}
json.dump(doc, open(path, "w"), indent=2)
PY
fi
if [ $rc -ne 0 ]; then
  echo "load generator exited $rc; server logs:" >&2
  tail -20 "$tmp"/*.log >&2
fi
exit $rc
