#!/usr/bin/env bash
# Kubernetes manifests (deploy/kubernetes/), checked without a cluster:
#   1. kubernetes-validate (PyPI; it bundles the Kubernetes JSON schemas, so it needs no
#      network once installed) in --strict mode, against the oldest and newest Kubernetes
#      versions we claim (1.30 and 1.37): unknown fields, wrong types, missing required ones;
#   2. check.py: what the schemas cannot know (hostNetwork, one pod per node, downward-API
#      addresses, probes on /health and /health/live, terminationGracePeriodSeconds vs
#      drainTimeout, enableServiceLinks, the Secret), then the binary started with the
#      manifests' own MM_* environment against a real redis-server on loopback.
#   tests/kubernetes/run.sh --install   # the venv only (needs PyPI; scripts/test does it
#                                       # before entering its private network namespace)
#   tests/kubernetes/run.sh             # install if missing, then check
# Env: MM_BIN (default target/debug/multiparty-meeting).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
venv=$root/target/kubernetes-validate
version=1.37.0

if [ ! -x "$venv/bin/kubernetes-validate" ] || ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "$version"; then
  echo "installing kubernetes-validate $version (PyPI) in $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==$version"
fi
[ "${1:-}" = --install ] && exit 0

files=(deploy/kubernetes/*.yaml)
manifests=()
for f in "${files[@]}"; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
for k in 1.30.0 1.37.0; do
  echo "kubernetes-validate --strict -k $k ${manifests[*]}"
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$k" "${manifests[@]}"
done
export MM_BIN=${MM_BIN:-$root/target/debug/multiparty-meeting}
exec "$venv/bin/python" tests/kubernetes/check.py
