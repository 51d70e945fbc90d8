#!/usr/bin/env bash
# Container tests (issue 12): the project's Dockerfile built unchanged with podman, run as the
# README says, and docker-compose.yml run with podman-compose.
#   tests/container/run.sh build   # base-image stand-ins + image build (needs the package
#                                  # registries: crates.io and Debian; run outside a private
#                                  # network namespace)
#   tests/container/run.sh test    # the tests (loopback only; scripts/test runs it in its
#                                  # private network namespace)
# podman uses tests/container/containers.conf (CONTAINERS_CONF), not the machine's /etc.
# Needs the Debian packages podman, debootstrap, runc (scripts/test installs them), the npm
# packages of tests/deploy, and podman-compose 1.6.0 from PyPI (installed in target/ here).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
export CONTAINERS_CONF=$root/tests/container/containers.conf
IMAGE=localhost/multiparty-meeting:latest

for tool in podman:podman debootstrap:debootstrap runc:runc; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1 && [ ! -x "/usr/sbin/${tool%%:*}" ]; then
    echo "'${tool%%:*}' is not installed: apt-get install -y ${tool#*:}" >&2
    exit 1
  fi
done
export PATH=$PATH:/usr/sbin:/sbin

# podman-compose from PyPI: Debian bookworm's 1.0.3 cannot start network_mode: host services
# (it adds the project network; podman refuses "multiple networks without bridge mode").
compose_version=1.6.0
compose_venv=$root/target/podman-compose

case "${1:-}" in
build)
  if ! "$compose_venv/bin/podman-compose" version 2>/dev/null | grep -q "podman-compose version $compose_version"; then
    python3 -m venv "$compose_venv"
    "$compose_venv/bin/pip" install -q "podman-compose==$compose_version"
  fi
  bash tests/container/base-images.sh
  start=$(date +%s)
  # The README's command, as a user types it: the Dockerfile as is, the repository as
  # context. The base images are the local stand-ins (podman pulls only missing images);
  # --format docker keeps the HEALTHCHECK (the OCI format has no place for it).
  podman build --format docker -t multiparty-meeting . >target/container-build.log 2>&1 || {
    tail -40 target/container-build.log >&2
    echo "podman build failed (full log: target/container-build.log)" >&2
    exit 1
  }
  took=$(( $(date +%s) - start ))
  size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
  bin=$(podman run --rm --pull=never --entrypoint stat "$IMAGE" -c %s /usr/local/bin/multiparty-meeting)
  printf 'image %s: %d MB (binary %d MB), built in %d s\n' "$IMAGE" \
    $(( size / 1000000 )) $(( bin / 1000000 )) "$took" | tee target/container-image.txt
  ;;
test)
  podman image exists "$IMAGE" || { echo "no image $IMAGE: run tests/container/run.sh build first" >&2; exit 1; }
  [ -d tests/deploy/node_modules/playwright-core ] || (cd tests/deploy && npm ci --no-audit --no-fund)
  exec node --test --test-concurrency=1 tests/container/*.test.mjs
  ;;
*)
  echo "usage: $0 build|test" >&2
  exit 2
  ;;
esac
