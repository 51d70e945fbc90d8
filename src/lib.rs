//! multiparty-meeting: self-hosted multi-party video meetings. An SFU on str0m with an
//! actix control plane, a WebSocket signaling protocol and a web client in the binary.
//!
//! Layers, one folder each:
//! - [`service`]: the HTTP/WebSocket edge (web client, `/health`, `/ws/<room>`) and server
//!   assembly; moves messages, never touches RTP.
//! - [`signaling`]: the wire protocol (`docs/protocol.md`), parsed and serialized in one place.
//! - [`room`]: the control plane: registry, one `RoomActor` per meeting, one `PeerActor` per
//!   participant; membership and publish/subscribe bookkeeping.
//! - [`sfu`]: the media plane: worker threads owning UDP sockets and str0m transports,
//!   forwarding, simulcast layer choice, active speaker.
//! - [`routing`]: which instance hosts which room: the room directory (memory, or Redis leases
//!   and instance heartbeats, docs/clustering.md).
//! - [`store`]: what of a meeting outlives connections (lock, chat, roles), in Redis when
//!   instances share it.
//! - [`config`]: defaults, file, environment, validation.
//! - [`client`]: a Rust signaling + WebRTC client for the integration tests (the load
//!   generator in `src/bin/load/` has its own, many-connections-per-thread engine).
//! - [`ids`], [`model`]: typed ids and the descriptions shared by the layers.

pub mod auth;
pub mod client;
pub mod config;
pub mod ids;
pub mod model;
pub mod room;
pub mod routing;
pub mod service;
pub mod sfu;
pub mod signaling;
pub mod store;

pub use config::Config;
pub use service as server;
