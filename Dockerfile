# syntax=docker/dockerfile:1
# The server as a container image: one stripped binary (web client embedded) on Debian slim,
# run as an unprivileged user.
#   docker build -t multiparty-meeting .          (Docker >= 23, BuildKit)
#   podman build -t multiparty-meeting .          (tested: podman 4.3, tests/container/run.sh)
# Run it with host networking (WebRTC needs its UDP/TCP port range as is), see README
# "Docker and compose".

# ---------------------------------------------------------------- build
FROM rust:1.89-bookworm AS build
WORKDIR /src
# Dependencies first, from the manifests alone, against stub sources: a change under src/ or
# static/ then rebuilds only this crate. The cache mounts keep crates.io downloads and
# compiled dependencies between builds (they are not part of any layer).
COPY Cargo.toml Cargo.lock build.rs ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    mkdir -p src/bin/load static \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > src/bin/load/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin multiparty-meeting \
 && rm -rf src static
COPY src ./src
COPY static ./static
# touch: the sources copied in may be older than the stub build's outputs; cargo must see
# them as changed. The binary is copied out of the cache mount into the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    touch src/main.rs src/lib.rs build.rs \
 && cargo build --release --locked --bin multiparty-meeting \
 && cp target/release/multiparty-meeting /usr/local/bin/multiparty-meeting

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim
# curl only for the HEALTHCHECK below; ca-certificates for rediss:// URLs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin meeting
COPY --from=build /usr/local/bin/multiparty-meeting /usr/local/bin/multiparty-meeting
COPY config/config.example.toml /etc/multiparty-meeting/config.example.toml
USER meeting
# The binary's default listeningPort; behind a proxy set MM_LISTENING_PORT (the compose file
# uses 3443 and 3444). Media: rtcMinPort-rtcMaxPort over UDP and TCP (host networking).
EXPOSE 3000/tcp
# Liveness only (/health, the readiness, turns 503 while draining or while Redis is down, and
# a restart would not help). Plain HTTP on MM_LISTENING_PORT (default 3000): when the port is
# set in a mounted config file instead, set MM_LISTENING_PORT too or pass --health-cmd.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${MM_LISTENING_PORT:-3000}/health/live" || exit 1
# The server is PID 1 and handles SIGTERM itself (drain, then exit 0): give `docker stop` a
# timeout longer than drainTimeout (default 60 s), e.g. docker stop -t 90.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/multiparty-meeting"]
