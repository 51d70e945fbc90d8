//! Messages of the room layer: what peers ask a [`RoomActor`](super::RoomActor) and the
//! [`RegistryActor`](super::RegistryActor), and the [`RoomEvent`]s a room sends its peers.

use actix::{Addr, Message, Recipient};

use super::RoomActor;
use crate::ids::{ConsumerId, PeerId, ProducerId, RoomId};
use crate::model::{PeerInfo, ProducerInfo};
use crate::sfu::{MediaEvent, WorkerHandle};

/// Why a peer could not join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The room has `maxUsersPerRoom` peers.
    #[error("the room is full ({0} participants)")]
    RoomFull(usize),
    /// This peer id is already in the room.
    #[error("already in the room")]
    AlreadyJoined,
    /// The room or the instance is closing.
    #[error("the room is closing; try again")]
    Closing,
}

/// Why a room request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The peer is not in the room.
    #[error("not in the room")]
    NotInRoom,
    /// The producer does not exist or is not the caller's.
    #[error("no producer '{0}' of yours")]
    UnknownProducer(ProducerId),
}

/// Enter the room.
#[derive(Message)]
#[rtype(result = "Result<Joined, JoinError>")]
pub struct Join {
    /// Who.
    pub peer: PeerId,
    /// Name shown to others.
    pub display_name: String,
    /// Where room notifications for this peer go; held until it leaves.
    pub events: Recipient<RoomEvent>,
    /// Where media events for this peer go; handed to the media worker.
    pub media_events: Recipient<MediaEvent>,
}

/// What a peer learns when it joins.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Everyone else, with their producers.
    pub peers: Vec<PeerInfo>,
    /// The media worker hosting the room.
    pub worker: WorkerHandle,
}

/// Leave the room (any exit path: request, socket closed, heartbeat timeout).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// Who.
    pub peer: PeerId,
}

/// New producers were negotiated on the peer's send transport.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AddProducers {
    /// Owner.
    pub peer: PeerId,
    /// The producers.
    pub producers: Vec<ProducerInfo>,
}

/// Close one of the peer's producers.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct CloseProducer {
    /// Owner.
    pub peer: PeerId,
    /// The producer.
    pub producer: ProducerId,
}

/// Pause or resume one of the peer's producers.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct SetProducerPaused {
    /// Owner.
    pub peer: PeerId,
    /// The producer.
    pub producer: ProducerId,
    /// New state.
    pub paused: bool,
}

/// Rename a peer.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct ChangeDisplayName {
    /// Who.
    pub peer: PeerId,
    /// New name.
    pub display_name: String,
}

/// A snapshot for tests and health: who is here and how many consumers exist.
#[derive(Debug, Message)]
#[rtype(result = "RoomSnapshot")]
pub struct GetSnapshot;

/// Answer to [`GetSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSnapshot {
    /// Peers with their producers.
    pub peers: Vec<PeerInfo>,
    /// Consumers: (receiving peer, consumer, producer).
    pub consumers: Vec<(PeerId, ConsumerId, ProducerId)>,
}

/// Notifications a room sends to its peers.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum RoomEvent {
    /// Someone entered.
    PeerJoined(PeerInfo),
    /// Someone left.
    PeerLeft(PeerId),
    /// Someone renamed themselves.
    PeerUpdated {
        /// Who.
        peer: PeerId,
        /// New name.
        display_name: String,
    },
    /// A peer published a track.
    ProducerAdded(ProducerInfo),
    /// A producer closed.
    ProducerClosed {
        /// Which.
        producer: ProducerId,
        /// Owner.
        peer: PeerId,
    },
    /// A producer was paused or resumed.
    ProducerPaused {
        /// Which.
        producer: ProducerId,
        /// Owner.
        peer: PeerId,
        /// New state.
        paused: bool,
    },
    /// One of the recipient's consumers closed.
    ConsumerClosed {
        /// Which.
        consumer: ConsumerId,
        /// The producer it copied.
        producer: ProducerId,
    },
    /// The loudest peer changed.
    ActiveSpeaker(Option<PeerId>),
    /// The instance is going away: reconnect (through the balancer) and close.
    Evicted(String),
}

/// Find or open the room `room` on this instance.
#[derive(Debug, Message)]
#[rtype(result = "Result<Addr<RoomActor>, JoinError>")]
pub struct GetRoom {
    /// Which room.
    pub room: RoomId,
}

/// Sent by a room when it stops.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RoomClosed {
    /// Which room.
    pub room: RoomId,
    /// Which incarnation of it (a room may reopen under the same name).
    pub generation: u64,
}

/// Sent by a room whenever its number of peers changes.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RoomOccupancy {
    /// Which room.
    pub room: RoomId,
    /// Which incarnation.
    pub generation: u64,
    /// Peers now in it.
    pub peers: usize,
}

/// Counters of the registry.
#[derive(Debug, Message)]
#[rtype(result = "RegistryStats")]
pub struct GetRegistryStats;

/// Answer to [`GetRegistryStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegistryStats {
    /// Open rooms.
    pub rooms: usize,
    /// Peers in them.
    pub peers: usize,
}

/// Stop opening new rooms (SIGTERM); running rooms continue.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Ask every peer of every room (or of this room) to reconnect elsewhere.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct EvictAll {
    /// Told to the clients.
    pub reason: String,
}
