//! Wire types of the signaling protocol (docs/protocol.md): envelopes and the shapes
//! `Peer`, `Producer`, `Consumer`, parsed from and written to JSON text frames.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only protocol version this client speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// `kind` of a producer or consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An audio track.
    Audio,
    /// A video track.
    Video,
}

impl Kind {
    /// The protocol spelling: `"audio"` or `"video"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
        }
    }
}

/// `source` of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Microphone.
    Mic,
    /// Camera.
    Webcam,
    /// Screen share.
    Screen,
}

/// `Peer = {id, displayName, producers: [Producer]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// Server-chosen peer id.
    pub id: String,
    /// Display name as given in `join` or `changeDisplayName`.
    pub display_name: String,
    /// Producers of this peer at the time the message was sent.
    pub producers: Vec<Producer>,
}

/// `Producer = {id, peerId, kind, source, paused}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Producer {
    /// Server-chosen producer id.
    pub id: String,
    /// The peer that sends it.
    pub peer_id: String,
    /// Audio or video.
    pub kind: Kind,
    /// Mic, webcam or screen.
    pub source: Source,
    /// Whether the producer is paused.
    pub paused: bool,
}

/// `Consumer = {id, producerId, peerId, kind, source, mid, paused}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consumer {
    /// Server-chosen consumer id.
    pub id: String,
    /// The producer this consumer copies.
    pub producer_id: String,
    /// The peer that owns that producer.
    pub peer_id: String,
    /// Audio or video.
    pub kind: Kind,
    /// Mic, webcam or screen.
    pub source: Source,
    /// The recv-transport transceiver that carries it.
    pub mid: String,
    /// Whether the consumer is paused.
    pub paused: bool,
}

/// Response data of `join`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    /// Our peer id.
    pub peer_id: String,
    /// The room we joined.
    pub room_id: String,
    /// Peers already in the room (excluding us).
    pub peers: Vec<Peer>,
    /// ICE servers.
    #[serde(default)]
    pub ice_servers: Vec<Value>,
    /// True while waiting in the lobby.
    #[serde(default)]
    pub lobby: bool,
    /// Our roles (`normal`, `moderator`, ...).
    #[serde(default)]
    pub roles: Vec<String>,
    /// What they allow.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// The recent chat.
    #[serde(default)]
    pub chat_history: Vec<Value>,
    /// Whether the room is locked.
    #[serde(default)]
    pub locked: bool,
}

/// Data of the `recvOffer` notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecvOffer {
    /// SDP offer of the recv transport.
    pub sdp: String,
    /// Consumers added by this offer.
    pub consumers: Vec<Consumer>,
}

/// One entry of `publish.producers` in the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishProducer {
    /// Transceiver mid in the send-transport offer.
    pub mid: String,
    /// Audio or video.
    pub kind: Kind,
    /// Mic, webcam or screen.
    pub source: Source,
}

/// One entry of `publish.producers` in the response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedProducerId {
    /// Transceiver mid.
    pub mid: String,
    /// Server-chosen producer id.
    pub id: String,
}

/// Response data of `publish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishResponse {
    /// SDP answer for the send transport.
    pub sdp: String,
    /// Producer id per mid.
    pub producers: Vec<PublishedProducerId>,
}

/// `error` object of a failed response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Error code, e.g. `badRequest`.
    pub code: String,
    /// Explanation.
    #[serde(default)]
    pub message: String,
}

/// A `{"type":"response"}` frame as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The echoed request id; `None` when the server sent `id: null`.
    pub id: Option<u64>,
    /// `ok` field.
    pub ok: bool,
    /// `data` (Null when absent).
    pub data: Value,
    /// `error` when `ok` is false.
    pub error: Option<ErrorBody>,
    /// The complete frame as received.
    pub raw: Value,
}

/// A `{"type":"notification"}` frame as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// `method`, e.g. `peerJoined`.
    pub method: String,
    /// `data` (Null when absent).
    pub data: Value,
    /// When the frame was read.
    pub received_at: Instant,
}

/// A frame received from the server, classified.
#[derive(Debug)]
pub(crate) enum Incoming {
    Response(Response),
    Notification(Notification),
}

/// Parse one text frame from the server. Errors describe how it violates the protocol.
pub(crate) fn parse_incoming(text: &str) -> Result<Incoming, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}"))?;
    let ty = v.get("type").and_then(Value::as_str);
    match ty {
        Some("response") => {
            let id = match v.get("id") {
                None | Some(Value::Null) => None,
                Some(id) => Some(
                    id.as_u64()
                        .ok_or_else(|| format!("response id is not an integer: {text}"))?,
                ),
            };
            let ok = v
                .get("ok")
                .and_then(Value::as_bool)
                .ok_or_else(|| format!("response without boolean ok: {text}"))?;
            let data = v.get("data").cloned().unwrap_or(Value::Null);
            let error = match v.get("error") {
                None | Some(Value::Null) => None,
                Some(e) => Some(
                    serde_json::from_value::<ErrorBody>(e.clone())
                        .map_err(|e| format!("bad error object ({e}): {text}"))?,
                ),
            };
            if !ok && error.is_none() {
                return Err(format!("ok:false response without error: {text}"));
            }
            Ok(Incoming::Response(Response {
                id,
                ok,
                data,
                error,
                raw: v,
            }))
        }
        Some("notification") => {
            let method = v
                .get("method")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("notification without method: {text}"))?
                .to_string();
            let data = v.get("data").cloned().unwrap_or(Value::Null);
            Ok(Incoming::Notification(Notification {
                method,
                data,
                received_at: Instant::now(),
            }))
        }
        _ => Err(format!("unknown frame type: {text}")),
    }
}

/// Build a request frame.
pub(crate) fn request_frame(id: u64, method: &str, data: Value) -> String {
    let mut v = serde_json::json!({"type": "request", "id": id, "method": method});
    if !data.is_null() {
        v["data"] = data;
    }
    v.to_string()
}
