#!/usr/bin/env bash
# Guard for the README's first command: runs it as a user types it (in the debug profile, which
# `scripts/test` has just built, so nothing is compiled here) and checks that it serves a
# meeting where the README says. Fails when a second binary, a renamed binary or a changed flag
# breaks `cargo run`. Needs port 3000 free: scripts/test runs it in a private network namespace.
set -euo pipefail
cd "$(dirname "$0")/../.."

line=$(awk '/^## The two commands/ {f = 1} f && /^cargo run/ {print; exit}' README.md)
[ -n "$line" ] || { echo "README.md: no 'cargo run' line under '## The two commands'" >&2; exit 1; }
cmd=${line%%#*}                                  # the command, without its comment
url=$(grep -o 'http://localhost:[0-9]*' <<<"$line" | head -n1)
[ -n "$url" ] || { echo "README.md: the run command's comment names no http://localhost:PORT" >&2; exit 1; }
cmd=${cmd/--release/}                            # same command, debug profile
echo "README run command: '$line' -> running '$cmd', expecting $url"

# As a user would: none of the test suite's MM_* variables (MM_BIN) reach the server, which
# refuses unknown MM_* keys.
for var in $(compgen -e | grep '^MM_' || true); do unset "$var"; done
log=$(mktemp)
setsid bash -c "exec $cmd" >"$log" 2>&1 &
pid=$!
cleanup() { kill -INT -- "-$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

for _ in $(seq 1 600); do
  if curl -fsS "$url/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "the README's run command exited before serving:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.2
done
curl -fsS "$url/health" >/dev/null || { echo "nothing answered $url/health within 120 s:" >&2; cat "$log" >&2; exit 1; }
page=$(curl -fsS "$url/my-room")
grep -q '<script type="module"' <<<"$page" || { echo "$url/my-room did not serve the web client" >&2; exit 1; }
grep -q "multiparty-meeting is up: open $url/my-room" "$log" || { echo "the server did not print where to open the meeting:" >&2; cat "$log" >&2; exit 1; }
echo "ok: '$cmd' serves the meeting at $url/my-room"
