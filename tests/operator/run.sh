#!/usr/bin/env bash
# What the docs tell an operator to run, run as written (issue 16):
#   - config/config.example.toml copied and started as its header says;
#   - `nginx -t` on deploy/nginx.example.conf, `caddy validate` on deploy/Caddyfile.example
#     (as shipped, and as deploy/CADDY.md says to change it for a local trial);
#   - `systemd-analyze verify` and `systemd-analyze security` on the systemd unit;
#   - deploy/sysctl/: the limits cover what the server asks for, every doc points to it;
#   - every command in README.md's code blocks: tests/operator/readme_commands.py.
# Needs nginx, caddy, systemd (systemd-analyze), redis-server, openssl, podman (the README's
# container commands; tests/container/run.sh build makes the image first). Env: MM_BIN (default target/debug/multiparty-meeting).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
MM_BIN=${MM_BIN:-$root/target/debug/multiparty-meeting}
tmp=$(mktemp -d /tmp/mm-operator.XXXXXX)
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
passed=0
failed=0
check() { # name command...
  local name=$1
  shift
  local out
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
    sed 's/^/     | /' <<<"$out" | tail -40
  fi
}
need() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || { echo "'$1' is not installed: apt-get install -y $2" >&2; exit 1; }; }
need nginx nginx
need caddy caddy
need systemd-analyze systemd
need redis-server redis-server
need openssl openssl
[ -x "$MM_BIN" ] || { echo "$MM_BIN missing: cargo build --bin multiparty-meeting" >&2; exit 1; }
export PATH=$PATH:/usr/sbin:/sbin
# The server refuses unknown MM_* variables (MM_BIN among them): start it without ours.
clean_env() { env -u MM_BIN "$@"; }

wait_http() { # url pid log
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "server exited:"; cat "$3"; return 1; }
    sleep 0.2
  done
  echo "no answer from $1 in 30 s:"; cat "$3"; return 1
}

# ------------------------------------------------------------ the example config
example_config() {
  # As the file's header says: copy it, start with it.
  local dir=$tmp/example
  mkdir -p "$dir" && cd "$dir" || return 1
  cp "$root/config/config.example.toml" config.toml
  grep -q '^#   cp config/config.example.toml config.toml$' config.toml || {
    echo "the header no longer shows the copy step this check follows"; return 1; }
  env -u MM_BIN "$MM_BIN" --config config.toml >server.log 2>&1 &
  local pid=$!
  # check runs this function in a subshell, so the EXIT trap never sees this pid: every
  # failure path below kills the server itself, or port 3000 stays taken for later checks.
  wait_http http://127.0.0.1:3000/health "$pid" server.log || { kill -9 "$pid" 2>/dev/null; return 1; }
  # The page is read whole before grep looks at it: `curl | grep -q` fails under pipefail
  # when grep stops reading early (curl: (23) Failed writing body).
  local page
  page=$(curl -fsS http://127.0.0.1:3000/example-room) || { kill -9 "$pid"; return 1; }
  grep -q '<script type="module"' <<<"$page" || { echo "no module script in the page"; kill -9 "$pid"; return 1; }
  kill -TERM "$pid"
  wait "$pid" || { echo "exit $? after SIGTERM"; cat server.log; return 1; }
  cd "$root" || return 1
}
check "config/config.example.toml, copied and started as its header says, serves a meeting" example_config

config_errors() {
  local out
  out=$(clean_env MM_LISTENING_PORT=eighty "$MM_BIN" 2>&1) && { echo "started with MM_LISTENING_PORT=eighty"; return 1; }
  grep -q 'listeningPort' <<<"$out" && grep -q 'Fix: set MM_LISTENING_PORT to a whole number' <<<"$out" ||
    { echo "$out"; return 1; }
  out=$(clean_env MM_TLS_CRT=/x "$MM_BIN" 2>&1) && return 1
  grep -q 'did you mean MM_TLS_CERT?' <<<"$out" || { echo "$out"; return 1; }
}
check "a bad MM_* value stops start-up naming the key and the fix" config_errors

load_help() {
  local out
  out=$("$(dirname "$MM_BIN")/multiparty-meeting-load" --help) || return 1
  head -1 <<<"$out" | grep -q '^Load generator for multiparty-meeting' || { head -3 <<<"$out"; return 1; }
}
check "multiparty-meeting-load --help describes the load generator, not the server" load_help

# ------------------------------------------------------------ nginx -t
nginx_t() {
  local dir=$tmp/nginx
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -keyout "$dir/key.pem" -out "$dir/cert.pem" \
    -subj /CN=meet.example.org >/dev/null 2>&1 || return 1
  # The file as shipped; only the certificate paths point at files that exist here.
  sed -e "s#/etc/letsencrypt/live/meet.example.org/fullchain.pem#$dir/cert.pem#" \
      -e "s#/etc/letsencrypt/live/meet.example.org/privkey.pem#$dir/key.pem#" \
      deploy/nginx.example.conf >"$dir/site.conf"
  cat >"$dir/nginx.conf" <<CONF
pid $dir/nginx.pid;
error_log $dir/error.log;
events {}
http { include $dir/site.conf; }
CONF
  nginx -t -p "$dir/" -c "$dir/nginx.conf"
}
check "nginx -t accepts deploy/nginx.example.conf (in conf.d, http level)" nginx_t

# ------------------------------------------------------------ caddy validate
caddy_env() { env HOME="$tmp/caddy" XDG_DATA_HOME="$tmp/caddy/data" XDG_CONFIG_HOME="$tmp/caddy/config" "$@"; }
caddy_shipped() {
  mkdir -p "$tmp/caddy"
  caddy_env caddy validate --config deploy/Caddyfile.example --adapter caddyfile
}
check "caddy validate accepts deploy/Caddyfile.example as shipped" caddy_shipped
caddy_local() {
  # deploy/CADDY.md "Try it locally": site https://localhost, tls internal in the site block,
  # skip_install_trust in a global options block.
  mkdir -p "$tmp/caddy"
  grep -q 'skip_install_trust' deploy/CADDY.md || { echo "CADDY.md no longer shows skip_install_trust"; return 1; }
  { printf '{\n\tskip_install_trust\n}\n\n'
    sed -e 's#^meet\.example\.org {#https://localhost {\n\ttls internal#' deploy/Caddyfile.example
  } >"$tmp/caddy/Caddyfile"
  grep -q 'tls internal' "$tmp/caddy/Caddyfile" || { echo "site address not found"; return 1; }
  caddy_env caddy validate --config "$tmp/caddy/Caddyfile" --adapter caddyfile
}
check "caddy validate accepts the local trial of deploy/CADDY.md (tls internal, skip_install_trust)" caddy_local

# ------------------------------------------------------------ systemd unit
unit=deploy/systemd/multiparty-meeting.service
unit_copy() {
  mkdir -p "$tmp/unit"
  sed "s#^ExecStart=/usr/local/bin/multiparty-meeting #ExecStart=$MM_BIN #" "$unit" >"$tmp/unit/multiparty-meeting.service"
  grep -q "^ExecStart=$MM_BIN " "$tmp/unit/multiparty-meeting.service" || { echo "no ExecStart to substitute"; return 1; }
}
unit_verify() {
  unit_copy || return 1
  local out
  out=$(systemd-analyze verify "$tmp/unit/multiparty-meeting.service" 2>&1) || { echo "$out"; return 1; }
  # verify also warns (exit 0) about unknown directives: none allowed.
  [ -z "$out" ] || { echo "$out"; return 1; }
}
check "systemd-analyze verify accepts the unit (ExecStart pointed at the built binary)" unit_verify
unit_security() {
  unit_copy || return 1
  local out score
  out=$(systemd-analyze security --offline=true "$tmp/unit/multiparty-meeting.service" 2>&1)
  score=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' <<<"$out")
  [ -n "$score" ] || { echo "$out" | tail -5; return 1; }
  echo "exposure $score"
  awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "exposure $score > 2.0"; tail -60 <<<"$out"; return 1; }
}
check "systemd-analyze security rates the unit 2.0 or better (OK)" unit_security
unit_stop_timeout() {
  local stop drain
  stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$unit")
  drain=$(sed -n 's/^drainTimeout = \([0-9]*\)$/\1/p' config/config.example.toml)
  [ -n "$stop" ] && [ -n "$drain" ] || { echo "TimeoutStopSec ($stop) or drainTimeout ($drain) not found"; return 1; }
  [ "$stop" -eq $((drain / 1000 + 30)) ] || { echo "TimeoutStopSec=$stop, drainTimeout=$drain ms: want drainTimeout/1000 + 30"; return 1; }
  grep -q '^#LoadCredential=privkey.pem:/etc/letsencrypt/' "$unit" || { echo "the certbot recipe (LoadCredential) is gone"; return 1; }
  grep -q '%d/privkey.pem' "$unit" || return 1
}
check "the unit's TimeoutStopSec is drainTimeout + 30 s; certbot keys through LoadCredential" unit_stop_timeout

# ------------------------------------------------------------ socket buffers (sysctl file)
sysctl_file() {
  # The limits the server asks for (src/sfu/worker/net.rs), and the file every doc points to.
  # Applying the file cannot be tested here: net.core.rmem_max is read-only inside a network
  # namespace (the host's value shows through) and the host is shared.
  local want file=deploy/sysctl/90-multiparty-meeting.conf
  want=$(sed -n 's/^\(pub(super) \)\{0,1\}const SOCKET_BUFFER: usize = \([0-9]*\) << 20;$/\2/p' src/sfu/worker/net.rs)
  [ -n "$want" ] || { echo "SOCKET_BUFFER not found in src/sfu/worker/net.rs"; return 1; }
  want=$((want << 20))
  for key in net.core.rmem_max net.core.wmem_max; do
    local v
    v=$(sed -n "s/^$key = \([0-9]*\)$/\1/p" "$file")
    [ -n "$v" ] && [ "$v" -ge "$want" ] || { echo "$file: $key = '$v', want >= $want"; return 1; }
    # The kernel knows the key (a typo would make `sysctl --system` fail on it).
    [ -e "/proc/sys/${key//.//}" ] || { echo "no such sysctl: $key"; return 1; }
  done
  grep -q 'net.core.rmem_max' src/sfu/worker.rs || { echo "the server's warning no longer names net.core.rmem_max"; return 1; }
  for doc in README.md docker-compose.yml deploy/kubernetes/README.md deploy/systemd/multiparty-meeting.service config/config.example.toml; do
    grep -q 'deploy/sysctl' "$doc" || { echo "$doc does not point to deploy/sysctl/"; return 1; }
  done
}
check "deploy/sysctl/90-multiparty-meeting.conf covers the buffers the server asks for; the docs point to it" sysctl_file

# ------------------------------------------------------------ README commands
check "every README command is run by a test (tests/operator/readme_commands.py)" \
  python3 tests/operator/readme_commands.py

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
