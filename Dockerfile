# Multi-stage build of the single binary (web client embedded).
#   docker build -t multiparty-meeting .
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY static ./static
COPY config ./config
RUN cargo build --release --locked --bin multiparty-meeting

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 meeting
COPY --from=build /src/target/release/multiparty-meeting /usr/local/bin/multiparty-meeting
COPY config/config.example.toml /etc/multiparty-meeting/config.example.toml
USER meeting
EXPOSE 3443/tcp
# Liveness only: /health (readiness) turns 503 while draining or while Redis is down.
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:${MM_LISTENING_PORT:-3443}/health/live || exit 1
ENTRYPOINT ["/usr/local/bin/multiparty-meeting"]
