//! What the control plane tells a media worker ([`WorkerCommand`]) and what a worker tells
//! the control plane ([`MediaEvent`] for one peer, [`RoomMediaEvent`] for a room). These are
//! control messages: media packets never travel through them.

use actix::{Message, Recipient};
use tokio::sync::oneshot;

use crate::ids::{ConsumerId, PeerId, ProducerId, RoomId};
use crate::model::{ConsumerInfo, Direction, MediaKind, Source};

/// Why the media layer refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The SDP text did not parse or was refused by the WebRTC stack.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// The peer is not (or no longer) known to this worker.
    #[error("peer {0} has no media session")]
    UnknownPeer(PeerId),
    /// The consumer is not one of the peer's.
    #[error("no consumer '{0}' of yours")]
    UnknownConsumer(ConsumerId),
    /// A publish declared a mid the offer does not contain, or one of the wrong kind.
    #[error("{0}")]
    BadTrack(String),
    /// An answer arrived while no offer was waiting for one.
    #[error("no recvOffer is waiting for an answer")]
    NoPendingOffer,
    /// The worker thread is gone (server shutting down).
    #[error("media worker unavailable")]
    WorkerGone,
    /// The worker did not answer within `requestTimeout`.
    #[error("media worker did not answer in time")]
    Timeout,
}

/// Reply channel of a worker request.
pub type Reply<T> = oneshot::Sender<Result<T, MediaError>>;

/// A new producer declared by `publish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProducer {
    /// The id the control plane chose.
    pub id: ProducerId,
    /// SDP media id of its transceiver on the send transport.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Microphone, camera or screen.
    pub source: Source,
}

/// Commands to a media worker. Those with a `reply` are requests.
#[derive(Debug)]
pub enum WorkerCommand {
    /// Start tracking a room (active speaker detection, events).
    AddRoom {
        /// The room.
        room: RoomId,
        /// Where room-level media events go; owned by the worker until `RemoveRoom`.
        events: Recipient<RoomMediaEvent>,
    },
    /// Forget a room; every peer in it must have been removed.
    RemoveRoom {
        /// The room.
        room: RoomId,
    },
    /// Create a peer's send and recv transports.
    AddPeer {
        /// Its room (already added).
        room: RoomId,
        /// The peer.
        peer: PeerId,
        /// Where its media events go; owned by the worker until `RemovePeer`.
        events: Recipient<MediaEvent>,
    },
    /// Close the peer's transports, producers and consumers.
    RemovePeer {
        /// The peer.
        peer: PeerId,
    },
    /// Apply an offer of the peer's send transport; replies with the SDP answer.
    Publish {
        /// The publishing peer.
        peer: PeerId,
        /// SDP offer text.
        offer: String,
        /// Producers declared with it.
        producers: Vec<NewProducer>,
        /// Answer SDP.
        reply: Reply<String>,
    },
    /// Apply the answer to the last recv offer.
    RecvAnswer {
        /// The receiving peer.
        peer: PeerId,
        /// SDP answer text.
        answer: String,
        /// Done.
        reply: Reply<()>,
    },
    /// Start sending `producer` to `peer` (renegotiates the peer's recv transport).
    AddConsumer {
        /// The receiving peer.
        peer: PeerId,
        /// The id the room chose.
        consumer: ConsumerId,
        /// What to copy.
        producer: ProducerId,
    },
    /// Stop and remove a producer and all its consumers.
    CloseProducer {
        /// The producer.
        producer: ProducerId,
    },
    /// Pause or resume forwarding of a producer.
    SetProducerPaused {
        /// The producer.
        producer: ProducerId,
        /// New state.
        paused: bool,
    },
    /// The size at which the receiving peer displays a consumer.
    SetConsumerPreferences {
        /// The receiving peer.
        peer: PeerId,
        /// The consumer.
        consumer: ConsumerId,
        /// Width in device pixels (0 = hidden).
        width: u32,
        /// Height in device pixels (0 = hidden).
        height: u32,
        /// Done.
        reply: Reply<()>,
    },
    /// Ask the producer behind a consumer for a keyframe.
    RequestKeyFrame {
        /// The receiving peer.
        peer: PeerId,
        /// The consumer.
        consumer: ConsumerId,
        /// Done.
        reply: Reply<()>,
    },
    /// Counters, for `/health`, tests and benchmarks.
    Stats {
        /// The counters.
        reply: Reply<WorkerStats>,
    },
}

/// A worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Rooms tracked.
    pub rooms: usize,
    /// Transports alive.
    pub transports: usize,
    /// Producers.
    pub producers: usize,
    /// Consumers.
    pub consumers: usize,
    /// Media frames forwarded to consumers since start (video: packets with the marker bit,
    /// the last of a frame; audio: every packet).
    pub frames_forwarded: u64,
    /// RTP packets forwarded to consumers since start.
    pub packets_forwarded: u64,
    /// Datagrams received since start.
    pub datagrams_in: u64,
    /// Datagrams sent since start.
    pub datagrams_out: u64,
    /// UDP messages handed to the kernel since start: with GSO one message carries a run of
    /// datagrams to one subscriber, so `datagrams_out / messages_out` is how well that works.
    pub messages_out: u64,
    /// Bytes of the datagrams (and ICE-TCP frames) received since start.
    pub bytes_in: u64,
    /// Bytes of the datagrams (and ICE-TCP frames) sent since start.
    pub bytes_out: u64,
    /// Packets subscribers asked to be resent (each sequence number of their NACKs).
    pub nacks_received: u64,
    /// NACKs sent to publishers (str0m's stream statistics, once a second).
    pub nacks_sent: u64,
    /// Packets resent to subscribers from a producer's shared history, for their NACKs.
    pub resends_from_history: u64,
    /// Consumers that started at a recent keyframe replayed from the history instead of
    /// asking the publisher for a new one.
    pub keyframes_replayed: u64,
    /// Keyframe requests (PLI, or FIR) received from subscribers.
    pub plis_received: u64,
    /// Keyframe requests sent to publishers (after throttling).
    pub plis_sent: u64,
    /// SRTCP packets from subscribers refused: failed authentication, replayed, malformed.
    pub subscriber_rtcp_dropped: u64,
    /// Times a consumer's forwarded simulcast layer changed.
    pub layer_switches: u64,
}

/// State of one of a peer's transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportState {
    /// ICE and DTLS are up.
    Connected,
    /// ICE lost the client; it may come back.
    Disconnected,
    /// The transport is gone for good.
    Closed,
}

impl TransportState {
    /// The word used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportState::Connected => "connected",
            TransportState::Disconnected => "disconnected",
            TransportState::Closed => "closed",
        }
    }
}

/// Media events for one peer, sent by its worker.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub enum MediaEvent {
    /// A new offer of the recv transport that the client must answer.
    RecvOffer {
        /// SDP offer text.
        sdp: String,
        /// Consumers added by it.
        consumers: Vec<ConsumerInfo>,
    },
    /// A transport changed state.
    TransportStateChanged {
        /// Which.
        direction: Direction,
        /// New state.
        state: TransportState,
    },
    /// The simulcast layer forwarded to one of the peer's consumers changed.
    LayerChanged {
        /// The consumer.
        consumer: ConsumerId,
        /// The rid now forwarded.
        layer: Option<String>,
    },
}

/// Media events for a whole room.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum RoomMediaEvent {
    /// The loudest peer changed (none = silence).
    ActiveSpeakerChanged {
        /// Who.
        peer: Option<PeerId>,
    },
}
