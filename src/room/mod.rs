//! The control plane of meetings: a [`RegistryActor`] that opens and closes rooms, a
//! [`RoomActor`] per meeting that owns membership and publish/subscribe bookkeeping, and a
//! [`PeerActor`] per participant that speaks the signaling protocol. Media packets never
//! pass through here; rooms command the media workers of [`crate::sfu`].

pub mod access;
pub mod media;
mod meeting;
pub mod messages;
pub mod peer;
pub mod policy;
pub mod registry;
#[allow(clippy::module_inception)]
pub mod room;

pub use access::AccessPolicy;
pub use media::{MediaPool, MediaWorker, Worker};
pub use peer::{ClientText, ConnectionClosed, Heard, Heartbeat, Origin, Outbound, PeerActor};
pub use policy::{Admitted, OpenPolicy, PeerPolicy};
pub use registry::RegistryActor;
pub use room::{RoomActor, RoomSettings};

#[cfg(test)]
mod meeting_tests;
#[cfg(test)]
mod tests;
