#!/usr/bin/env bash
# Local stand-ins for the base images that the Dockerfile and docker-compose.yml name, built
# from Debian packages because no image registry is reachable from our machines:
#   debian:bookworm-slim  debootstrap --variant=minbase bookworm, trimmed like the slim image
#   rust:1.89-bookworm    + Debian's rustc-web/cargo-web (bookworm-security, Rust >= 1.89), gcc
#   redis:7-bookworm      + Debian's redis-server (7.0)
#   nginx:1.25-bookworm   + Debian's nginx (1.22; our config needs nothing newer)
# Each is tagged with the exact name (docker.io/library/...) so that `podman build
# --pull=never` and podman-compose resolve them as Docker would from Docker Hub. An image that
# already exists is kept (delete it with `podman rmi` to rebuild). The Debian mirror is the
# machine's own (/etc/apt), so the images get the same packages as the host.
# Env: CONTAINERS_CONF (set by the caller), ROOTFS=dir reuses a debootstrapped tree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

t0=$(date +%s)
say() { printf '[base-images +%ss] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }
exists() { podman image exists "$1"; }

# The first "deb" URI of the machine's Debian sources serving bookworm.
mirror() {
  local uri
  uri=$(awk '/^URIs:/ {u = $2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' \
    /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || { echo "no bookworm mirror in /etc/apt: cannot debootstrap" >&2; exit 1; }
  echo "$uri"
}

slim=docker.io/library/debian:bookworm-slim
if ! exists "$slim"; then
  command -v debootstrap >/dev/null || { echo "install the Debian package 'debootstrap'" >&2; exit 1; }
  tmp=$(mktemp -d /var/tmp/mm-rootfs.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  rootfs=${ROOTFS:-}
  if [ -z "$rootfs" ]; then
    rootfs=$tmp/rootfs
    say "debootstrap bookworm from $(mirror)"
    debootstrap --variant=minbase bookworm "$rootfs" "$(mirror)" >"$tmp/debootstrap.log" 2>&1 ||
      { tail -20 "$tmp/debootstrap.log" >&2; exit 1; }
  fi
  # The machine's sources (bookworm, -updates, -security) replace debootstrap's single line,
  # as debian:bookworm-slim ships all three.
  if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    rm -f "$rootfs/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list.d/"
  fi
  # What the slim image leaves out: documentation, manuals, translations, apt caches.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  say "podman import -> $slim"
  tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$slim" >/dev/null
fi

# The build context of the stand-ins: their Containerfiles, plus the machine's own extra CA
# certificates (/usr/local/share/ca-certificates: on our machines a TLS-inspecting egress
# proxy sits between us and crates.io), so that cargo inside a build trusts what the host's
# cargo trusts. Without such a proxy the directory is empty and nothing changes.
ctx=$(mktemp -d /var/tmp/mm-base-ctx.XXXXXX)
trap 'rm -rf "$ctx" ${tmp:+"$tmp"}' EXIT
cp "$here"/*.Containerfile "$ctx/"
mkdir -p "$ctx/extra-ca"
cp /usr/local/share/ca-certificates/*.crt "$ctx/extra-ca/" 2>/dev/null || true

build() { # name containerfile
  if exists "$1"; then return; fi
  say "building $1"
  podman build --pull=never -q -t "$1" -f "$ctx/$2" "$ctx" >/dev/null
}
build docker.io/library/rust:1.89-bookworm rust.Containerfile
build docker.io/library/redis:7-bookworm redis.Containerfile
build docker.io/library/nginx:1.25-bookworm nginx.Containerfile
say "base images ready"
