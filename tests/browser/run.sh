#!/usr/bin/env bash
# Runs the browser end-to-end tests: installs playwright-core when needed, then node's test runner.
# Env: MM_BIN (server binary, default ../../target/debug/multiparty-meeting), CHROMIUM_PATH (default /usr/lib/chromium/chromium).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund
fi
exec node --test --test-concurrency=1 --test-reporter=spec "$@" ./*.test.mjs
