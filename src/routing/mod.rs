//! Which instance hosts which room. One instance hosts each meeting (its media worker forwards
//! everyone's packets); the others relay their participants' signaling to it. The
//! [`RoomDirectory`] is where that is decided: [`InMemoryDirectory`] for a single instance (every
//! claim succeeds) and [`RedisDirectory`] for several instances sharing Redis, where a room is
//! claimed with a lease that its host renews and instances announce themselves with a
//! heartbeat. Key names, TTLs and the relay are described in `docs/clustering.md`.
//!
//! This module knows nothing of actors, sockets or media: it answers "who hosts this room" and
//! "who is alive".

mod redis;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use self::redis::RedisDirectory;
use crate::ids::{NodeId, RoomId};

/// How long a room's lease lives without renewal: a dead host's rooms can be claimed by
/// another instance this long after its last renewal.
pub const LEASE_TTL: Duration = Duration::from_millis(2000);
/// How often a host renews the leases of its rooms.
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_millis(500);
/// How long an instance's announcement lives without renewal.
pub const NODE_TTL: Duration = Duration::from_millis(3000);
/// How often an instance announces itself.
pub const NODE_ANNOUNCE_INTERVAL: Duration = Duration::from_millis(1000);

/// An instance as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// Its id (`nodeId`).
    pub id: NodeId,
    /// Where the other instances reach its HTTP listener (`internalUrl`).
    pub internal_url: String,
    /// True while it drains: it hosts no new room.
    pub draining: bool,
    /// Rooms it hosts.
    pub rooms: usize,
    /// Participants in them.
    pub peers: usize,
    /// Its version.
    pub version: String,
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This instance holds the room now (newly claimed or already its own).
    Mine,
    /// Another instance holds the room; its announcement, when it is alive.
    HeldBy(NodeId, Option<NodeInfo>),
}

/// Why the directory could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Redis did not answer (down, unreachable, or slower than the time limit).
    #[error("the room directory (Redis) is unreachable: {0}")]
    Unavailable(String),
    /// Redis answered something this version does not understand.
    #[error("the room directory (Redis) answered unexpectedly: {0}")]
    Protocol(String),
}

/// A directory call in flight.
pub type DirectoryFuture<T> = BoxFuture<'static, Result<T, DirectoryError>>;

/// Claims, renews and releases rooms for this instance, and tracks live instances.
pub trait RoomDirectory: Send + Sync {
    /// True when several instances share this directory (rooms may live elsewhere).
    fn shared(&self) -> bool;
    /// Claims `room` for this instance unless a live lease of another instance holds it.
    fn claim(&self, room: &RoomId) -> DirectoryFuture<Claim>;
    /// Renews the leases of `rooms` (re-claiming any that expired meanwhile); returns the
    /// rooms now held by another instance, which this instance must give up.
    fn renew(&self, rooms: Vec<RoomId>) -> DirectoryFuture<Vec<RoomId>>;
    /// Releases `room` if this instance holds it.
    fn release(&self, room: &RoomId) -> DirectoryFuture<()>;
    /// Who holds `room` now, without claiming it: the holder and its announcement, if alive.
    fn holder(&self, room: &RoomId) -> DirectoryFuture<Option<(NodeId, Option<NodeInfo>)>>;
    /// Announces this instance (heartbeat).
    fn announce(&self, me: NodeInfo) -> DirectoryFuture<()>;
    /// Removes this instance's announcement (clean stop).
    fn withdraw(&self) -> DirectoryFuture<()>;
    /// Every instance with a live announcement.
    fn live_nodes(&self) -> DirectoryFuture<Vec<NodeInfo>>;
}

/// The directory of a single instance: every claim succeeds, nobody else exists.
#[derive(Debug, Default)]
pub struct InMemoryDirectory;

impl RoomDirectory for InMemoryDirectory {
    fn shared(&self) -> bool {
        false
    }

    fn claim(&self, _room: &RoomId) -> DirectoryFuture<Claim> {
        Box::pin(async { Ok(Claim::Mine) })
    }

    fn renew(&self, _rooms: Vec<RoomId>) -> DirectoryFuture<Vec<RoomId>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn release(&self, _room: &RoomId) -> DirectoryFuture<()> {
        Box::pin(async { Ok(()) })
    }

    fn holder(&self, _room: &RoomId) -> DirectoryFuture<Option<(NodeId, Option<NodeInfo>)>> {
        Box::pin(async { Ok(None) })
    }

    fn announce(&self, _me: NodeInfo) -> DirectoryFuture<()> {
        Box::pin(async { Ok(()) })
    }

    fn withdraw(&self) -> DirectoryFuture<()> {
        Box::pin(async { Ok(()) })
    }

    fn live_nodes(&self) -> DirectoryFuture<Vec<NodeInfo>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn a_single_instance_holds_every_room() {
        let d = InMemoryDirectory;
        let room = RoomId::parse("r").unwrap();
        assert!(!d.shared());
        assert_eq!(d.claim(&room).await, Ok(Claim::Mine));
        assert_eq!(d.renew(vec![room.clone()]).await, Ok(vec![]));
        assert_eq!(d.live_nodes().await, Ok(vec![]));
    }
}
