#!/usr/bin/env bash
# Builds the server against the locked str0m with the patches in docs/str0m-patches/
# applied: the shipped binary uses str0m unpatched. The patches are meant for upstream;
# docs/str0m-patches/README.md says what each does, what it measured, and that the server no
# longer needs them (it sends to subscribers itself, src/sfu/egress/).
#
#   scripts/str0m-patched.sh                 # -> target/str0m-patched/target/release/multiparty-meeting
#   scripts/str0m-patched.sh --check         # only check that every patch applies (run by scripts/test)
#   scripts/str0m-patched.sh --build-tests   # clippy, and build the tests against it
#   scripts/str0m-patched.sh --test ARGS...  # cargo nextest run ARGS... against it
#
# str0m's source is taken from cargo's registry copy of the locked version and patched in
# target/str0m-patched/ (again only when the patches changed, so that builds stay
# incremental); Cargo.lock is restored afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=target/str0m-patched

src=$(cargo metadata --locked --format-version 1 | python3 -c '
import json, sys
meta = json.load(sys.stdin)
print(next(p["manifest_path"] for p in meta["packages"] if p["name"] == "str0m"))')
src=$(dirname "$src")

mode=${1:-}
stamp=$(cat docs/str0m-patches/*.patch | sha256sum | cut -d' ' -f1)-$(basename "$src")
if [ "$mode" = "--check" ] || [ "$(cat "$work/str0m.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$work/str0m" "$work/str0m.stamp"
  mkdir -p "$work"
  cp -r "$src" "$work/str0m"
  for p in docs/str0m-patches/*.patch; do
    if ! patch -d "$work/str0m" -p1 --forward --quiet --no-backup-if-mismatch < "$p"; then
      echo "$p does not apply to $src: update the patch for this str0m version" >&2
      exit 1
    fi
  done
  echo "$stamp" > "$work/str0m.stamp"
fi
if [ "$mode" = "--check" ]; then
  echo "every patch in docs/str0m-patches applies to $(basename "$src")"
  exit 0
fi

cp Cargo.lock "$work/Cargo.lock.unpatched"
trap 'cp "$work/Cargo.lock.unpatched" Cargo.lock' EXIT
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/$work/target}
patched=(--config "patch.crates-io.str0m.path=\"$root/$work/str0m\"")
case "$mode" in
  --build-tests)
    cargo clippy --all-targets "${patched[@]}" -- -D warnings
    cargo nextest run --no-run "${patched[@]}"
    ;;
  --test)
    shift
    cargo nextest run "${patched[@]}" "$@"
    ;;
  *)
    cargo build --release --bin multiparty-meeting "${patched[@]}"
    echo "built $CARGO_TARGET_DIR/release/multiparty-meeting (str0m with docs/str0m-patches applied)"
    ;;
esac
