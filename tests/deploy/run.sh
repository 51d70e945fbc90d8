#!/usr/bin/env bash
# Deployment tests: the real binary behind nginx and Caddy, with Redis, TLS, trusted proxies,
# drain and a Redis outage, plus headless-Chromium meetings through each proxy.
# Env: MM_BIN = server binary (default ../../target/debug/multiparty-meeting, built here when
# missing). Needs the Debian packages redis-server nginx caddy chromium openssl.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/ws ] || [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund
fi
if [ -z "${MM_BIN:-}" ] && [ ! -x ../../target/debug/multiparty-meeting ]; then
  (cd ../.. && cargo build --bin multiparty-meeting)
fi
exec node --test --test-concurrency=1 "$@" ./*.test.mjs
