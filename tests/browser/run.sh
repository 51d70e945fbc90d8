#!/usr/bin/env bash
# Runs the browser end-to-end tests (headless Chromium and Firefox ESR): installs the npm
# packages when needed, then node's test runner over every *.test.mjs, one file at a time.
# Env: MM_BIN (server binary, default ../../target/debug/multiparty-meeting),
#      CHROMIUM_PATH (default /usr/lib/chromium/chromium), FIREFOX_PATH (default /usr/bin/firefox-esr).
# Screenshots land in artifacts/ (git-ignored; CI keeps it).
set -euo pipefail
cd "$(dirname "$0")"
for pkg in playwright-core puppeteer-core axe-core; do
  if [ ! -d "node_modules/$pkg" ]; then
    npm ci --no-audit --no-fund
    break
  fi
done
exec node --test --test-concurrency=1 --test-reporter=spec "$@" ./*.test.mjs
