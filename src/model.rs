//! Descriptions of peers, producers and consumers that travel between the layers and onto
//! the wire. Plain data: no behaviour, no handles.

use serde::{Deserialize, Serialize};

use crate::ids::{ConsumerId, PeerId, ProducerId};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MediaKind {
    /// An Opus track.
    Audio,
    /// A VP8 or H264 track.
    Video,
}

/// What a producer carries, as the user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// The microphone.
    Mic,
    /// The camera.
    Webcam,
    /// A shared screen or window.
    Screen,
}

impl Source {
    /// The media kind a source must have.
    pub fn kind(self) -> MediaKind {
        match self {
            Source::Mic => MediaKind::Audio,
            Source::Webcam | Source::Screen => MediaKind::Video,
        }
    }
}

/// A producer as other peers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerInfo {
    /// The producer.
    pub id: ProducerId,
    /// Its owner.
    pub peer_id: PeerId,
    /// Audio or video.
    pub kind: MediaKind,
    /// Microphone, camera or screen.
    pub source: Source,
    /// True while the owner has turned it off.
    pub paused: bool,
    /// True when a moderator paused it: the owner may not resume it by itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused_by_moderator: bool,
}

/// A peer as other peers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    /// The peer.
    pub id: PeerId,
    /// Name shown to others.
    pub display_name: String,
    /// What it publishes.
    pub producers: Vec<ProducerInfo>,
    /// Its roles, lowest first (always `normal`).
    pub roles: Vec<Role>,
    /// True while it has raised its hand.
    pub raised_hand: bool,
}

/// A consumer as its receiving peer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerInfo {
    /// The consumer.
    pub id: ConsumerId,
    /// The producer it copies.
    pub producer_id: ProducerId,
    /// The producer's owner.
    pub peer_id: PeerId,
    /// Audio or video.
    pub kind: MediaKind,
    /// Microphone, camera or screen.
    pub source: Source,
    /// SDP media id of its transceiver on the receiving peer's recv transport.
    pub mid: String,
    /// True while the producer is paused.
    pub paused: bool,
}

/// Which of a peer's two WebRTC connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Client to server: the peer's producers. The client offers.
    Send,
    /// Server to client: the peer's consumers. The server offers.
    Recv,
}

/// A participant's role. Roles have levels: a role can be given or taken only by someone
/// holding a role at or above it, and a permission granted to a role is granted to every
/// role above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Every participant.
    Normal,
    /// Signed in through an identity provider (an access token).
    Authenticated,
    /// May present (given by a moderator).
    Presenter,
    /// Runs the meeting.
    Moderator,
    /// Runs the deployment (from an access token only).
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 5] = [
        Role::Normal,
        Role::Authenticated,
        Role::Presenter,
        Role::Moderator,
        Role::Admin,
    ];

    /// Its level, as in the original server.
    pub fn level(self) -> u8 {
        match self {
            Role::Normal => 10,
            Role::Authenticated => 20,
            Role::Presenter => 30,
            Role::Moderator => 40,
            Role::Admin => 50,
        }
    }

    /// True for the roles people give each other in a meeting (`giveRole`); the others come
    /// from the deployment (every participant is `normal`, tokens grant `authenticated` and
    /// `admin`).
    pub fn promotable(self) -> bool {
        matches!(self, Role::Presenter | Role::Moderator)
    }
}

/// What a participant may do, granted to roles by the `permissions` map of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Permission {
    /// Lock and unlock the room, set its access code.
    ChangeRoomLock,
    /// Admit or refuse participants waiting in the lobby.
    PromotePeer,
    /// Give and take roles (at or below one's own level).
    ModifyRole,
    /// Write in the chat.
    SendChat,
    /// Clear the chat.
    ModerateChat,
    /// Publish a microphone.
    ShareAudio,
    /// Publish a camera.
    ShareVideo,
    /// Share a screen.
    ShareScreen,
    /// Mute others, stop their video or screen share, lower hands, kick, close the meeting.
    ModerateRoom,
    /// Enter a locked room without waiting in the lobby.
    BypassRoomLock,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 10] = [
        Permission::ChangeRoomLock,
        Permission::PromotePeer,
        Permission::ModifyRole,
        Permission::SendChat,
        Permission::ModerateChat,
        Permission::ShareAudio,
        Permission::ShareVideo,
        Permission::ShareScreen,
        Permission::ModerateRoom,
        Permission::BypassRoomLock,
    ];
}

/// One chat message, as kept in the room's history and sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatEntry {
    /// Who wrote it.
    pub peer_id: PeerId,
    /// Their name when they wrote it.
    pub display_name: String,
    /// The text, as written (clients show it as text, never as HTML).
    pub text: String,
    /// When the server received it, in milliseconds since the Unix epoch.
    pub time: u64,
}
