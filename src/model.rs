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
