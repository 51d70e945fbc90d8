//! Messages of the room layer: what peers ask a [`RoomActor`](super::RoomActor) and the
//! [`RegistryActor`](super::RegistryActor), and the [`RoomEvent`]s a room sends its peers.
//! A peer speaks only to its room; the room alone commands the media worker.

use actix::{Addr, Message, Recipient};

use super::RoomActor;
use crate::ids::{ConsumerId, NodeId, PeerId, ProducerId, RoomId};
use crate::model::{ChatEntry, MediaKind, PeerInfo, Permission, ProducerInfo, Role, Source};
use crate::routing::NodeInfo;
use crate::sfu::{MediaError, MediaEvent};

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
    /// The room is hosted by an instance that does not answer (it may have died; its lease
    /// runs out within seconds, then another instance takes the room).
    #[error("the meeting's server ({0}) does not answer; try again in a few seconds")]
    HostUnreachable(NodeId),
    /// The shared room directory (Redis) is unreachable, so no new meeting can be opened.
    #[error("new meetings cannot be opened while the shared directory is unreachable ({0}); try again shortly")]
    DirectoryUnavailable(String),
    /// The room is hosted by another instance: the participant must reconnect to reach it.
    #[error("this meeting is hosted on another server; reconnect")]
    Moved,
    /// The access code given does not match the room's.
    #[error("wrong access code")]
    WrongAccessCode,
    /// Opening the room would exceed `limits.maxRooms` of this instance.
    #[error("this server hosts its maximum of {0} rooms; try again later")]
    TooManyRooms(usize),
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
    /// A published track whose source and kind disagree.
    #[error("{0}")]
    BadTrack(String),
    /// The media worker refused or failed the request.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The peer lacks the permission, or the target is out of its reach.
    #[error("{0}")]
    Forbidden(String),
    /// The peer waits in the lobby: only renaming and leaving are possible.
    #[error("you are waiting in the lobby; only changeDisplayName and leave are possible")]
    InLobby,
    /// The target peer is not in the room (or not in the lobby).
    #[error("no peer '{0}' here")]
    UnknownPeer(PeerId),
    /// The request is well formed but its values cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// Enter the room (or its lobby).
#[derive(Message)]
#[rtype(result = "Result<Joined, JoinError>")]
pub struct Join {
    /// Who.
    pub peer: PeerId,
    /// Name shown to others.
    pub display_name: String,
    /// The browser session's user: a returning user skips the lobby and gets its roles back.
    pub user: Option<String>,
    /// The access code the participant typed, if any.
    pub access_code: Option<String>,
    /// Roles granted from outside the meeting (an access token), besides `normal`.
    pub granted_roles: Vec<Role>,
    /// Where room notifications for this peer go; held until it leaves.
    pub events: Recipient<RoomEvent>,
    /// Where media events for this peer go; handed to the media worker.
    pub media_events: Recipient<MediaEvent>,
}

/// What a peer learns when it enters the room: at once, or when admitted from the lobby.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// True while waiting in the lobby; the rest is filled when the peer is admitted
    /// ([`RoomEvent::Admitted`]).
    pub lobby: bool,
    /// Everyone else, with their producers, roles and hands.
    pub peers: Vec<PeerInfo>,
    /// Its own roles.
    pub roles: Vec<Role>,
    /// What its roles allow it now.
    pub permissions: Vec<Permission>,
    /// The recent chat.
    pub chat_history: Vec<ChatEntry>,
    /// Whether the room is locked.
    pub locked: bool,
}

/// Leave the room (any exit path: request, socket closed, heartbeat timeout).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// Who.
    pub peer: PeerId,
}

/// A track the peer declares in a publish: the mid of its transceiver and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTrack {
    /// SDP media id on the peer's send transport.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Microphone, camera or screen.
    pub source: Source,
}

/// Apply an offer of the peer's send transport and make producers of its new tracks. A mid
/// that already carries one of the peer's producers replaces it. The room handles this
/// atomically: no other message of the room runs until the media worker has answered.
#[derive(Debug, Message)]
#[rtype(result = "Result<Published, RoomError>")]
pub struct Publish {
    /// The publishing peer.
    pub peer: PeerId,
    /// SDP offer of its send transport.
    pub sdp: String,
    /// The new tracks.
    pub tracks: Vec<NewTrack>,
}

/// Answer to [`Publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// SDP answer.
    pub sdp: String,
    /// The producer made for each track: (mid, producer).
    pub producers: Vec<(String, ProducerId)>,
}

/// The peer's answer to the last offer of its recv transport.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct RecvAnswer {
    /// The receiving peer.
    pub peer: PeerId,
    /// SDP answer.
    pub sdp: String,
}

/// The size at which the peer displays one of its consumers (simulcast layer choice).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct SetConsumerPreferences {
    /// The receiving peer.
    pub peer: PeerId,
    /// Its consumer.
    pub consumer: ConsumerId,
    /// Displayed width in device pixels (0 = hidden).
    pub width: u32,
    /// Displayed height in device pixels (0 = hidden).
    pub height: u32,
}

/// Ask the producer behind one of the peer's consumers for a keyframe.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct RequestKeyFrame {
    /// The receiving peer.
    pub peer: PeerId,
    /// Its consumer.
    pub consumer: ConsumerId,
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

/// A meeting action of a joined peer (chat, hands, lock, lobby, roles, moderation). The room
/// checks the peer's permission and either applies it, telling everyone concerned, or refuses
/// with [`RoomError::Forbidden`] and changes nothing.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RoomError>")]
pub struct Act {
    /// Who asks.
    pub peer: PeerId,
    /// What.
    pub action: Action,
}

/// Which kind of media a moderator blocks or allows again.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum MediaBlock {
    /// The microphone (`mutePeer`, `muteAll`).
    Audio,
    /// The camera (`stopPeerVideo`, `stopAllVideo`).
    Video,
    /// Screen sharing (`stopPeerScreenShare`).
    Screen,
}

/// The meeting actions of docs/protocol.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `chatMessage`: write to everyone.
    Chat(String),
    /// `clearChat`.
    ClearChat,
    /// `raiseHand`: raise or lower one's own hand.
    RaiseHand(bool),
    /// `lowerHand`: a moderator lowers someone's hand.
    LowerHand(PeerId),
    /// `lockRoom` / `unlockRoom`.
    SetLocked(bool),
    /// `setAccessCode`: `None` removes it.
    SetAccessCode(Option<String>),
    /// `promotePeer`: admit one peer from the lobby.
    Admit(PeerId),
    /// `promoteAllPeers`: admit the whole lobby, in arrival order.
    AdmitAll,
    /// `denyPeer`: refuse a peer waiting in the lobby.
    Deny(PeerId),
    /// `giveRole`.
    GiveRole(PeerId, Role),
    /// `removeRole`.
    RemoveRole(PeerId, Role),
    /// `mutePeer`, `stopPeerVideo`, `stopPeerScreenShare`: stop one peer's media of a kind and
    /// keep it from starting it again until allowed.
    Block(PeerId, MediaBlock),
    /// `muteAll`, `stopAllVideo`: the same for everyone but the caller.
    BlockAll(MediaBlock),
    /// `allowMedia`: lift a block; the peer may start that media again itself.
    Allow(PeerId, MediaBlock),
    /// `kickPeer`: remove a peer from the meeting.
    Kick(PeerId),
    /// `closeMeeting`: end the meeting for everyone.
    CloseMeeting,
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
    /// Peers waiting in the lobby, in arrival order.
    pub lobby: Vec<LobbyPeer>,
    /// Consumers: (receiving peer, consumer, producer).
    pub consumers: Vec<(PeerId, ConsumerId, ProducerId)>,
    /// Whether the room is locked.
    pub locked: bool,
    /// The chat history.
    pub chat: Vec<ChatEntry>,
}

/// A peer waiting in the lobby, as those who may admit it see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LobbyPeer {
    /// The waiting peer.
    pub id: PeerId,
    /// Its name.
    pub display_name: String,
}

/// Notifications a room sends to its peers.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum RoomEvent {
    /// Someone entered.
    PeerJoined(PeerInfo),
    /// Someone left.
    PeerLeft(PeerId),
    /// Someone's name, hand or roles changed (only the changed fields are set).
    PeerUpdated {
        /// Who.
        peer: PeerId,
        /// New name.
        display_name: Option<String>,
        /// Hand raised or lowered.
        raised_hand: Option<bool>,
        /// New roles.
        roles: Option<Vec<Role>>,
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
        /// A moderator paused it.
        by_moderator: bool,
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
    /// A chat message.
    Chat(ChatEntry),
    /// The chat history was cleared.
    ChatCleared,
    /// The room was locked or unlocked.
    Locked(bool),
    /// The lobby changed (to those who may admit).
    LobbyPeers(Vec<LobbyPeer>),
    /// The recipient, waiting in the lobby, is admitted: it is in the meeting now.
    Admitted(Joined),
    /// The recipient, waiting in the lobby, is refused.
    Denied,
    /// The recipient's own permissions changed (its roles changed).
    PermissionsChanged {
        /// Its roles.
        roles: Vec<Role>,
        /// What they allow now.
        permissions: Vec<Permission>,
    },
    /// A moderator blocked the recipient's media of a kind (it may not start it again).
    MediaBlocked(MediaBlock),
    /// A moderator allowed the recipient's media of a kind again.
    MediaAllowed(MediaBlock),
    /// The recipient was removed from the meeting by a moderator.
    Kicked(String),
    /// A moderator ended the meeting.
    MeetingClosed,
    /// The instance is going away: reconnect (through the balancer) and close.
    Evicted(String),
}

/// Where the participants of a room are served.
#[derive(Debug, Clone)]
pub enum Route {
    /// In this room actor, on this instance.
    Local(Addr<RoomActor>),
    /// On the instance that hosts the room.
    Remote(NodeInfo),
}

/// Find the room: open here (claiming it first when instances share a directory), or hosted
/// by another instance.
#[derive(Debug, Message)]
#[rtype(result = "Result<Route, JoinError>")]
pub struct Resolve {
    /// Which room.
    pub room: RoomId,
    /// The participant was relayed here by another instance: never send it on again.
    pub relayed: bool,
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

/// The URL at which the other instances reach this one (`internalUrl`), known once the HTTP
/// listener is bound; the registry announces the instance from then on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetInternalUrl(pub String);

/// Remove this instance's announcement from the shared directory (clean stop).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Withdraw;

/// Ask every peer of every room (or of this room) to reconnect elsewhere. The registry first
/// releases its rooms so that live instances can take them.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct EvictAll {
    /// Told to the clients.
    pub reason: String,
}
