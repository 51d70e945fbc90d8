//! Message types of signaling protocol version 1 and the one function that parses client
//! input. Every failure to parse becomes a [`SignalError`] the edge sends back; nothing here
//! panics on client input.

use crate::auth::TokenText;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ConsumerId, PeerId, ProducerId, RoomId};
use crate::model::{
    ChatEntry, ConsumerInfo, Direction, MediaKind, PeerInfo, Permission, ProducerInfo, Role, Source,
};

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The client's request id, echoed in the response.
pub type RequestId = u64;

/// Largest accepted text frame; SDP offers with many m-lines stay far below.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Machine-readable error kinds, documented in `docs/protocol.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    /// Not JSON, not a request envelope, or `data` does not fit the method.
    BadRequest,
    /// The method is not part of the protocol.
    UnknownMethod,
    /// `join` asked for a protocol version this server does not speak.
    UnsupportedVersion,
    /// A method other than `join` before joining.
    NotJoined,
    /// `join` twice on one connection.
    AlreadyJoined,
    /// The room has `maxUsersPerRoom` peers.
    RoomFull,
    /// The room or the server is closing; reconnect later.
    RoomClosing,
    /// The server cannot open the meeting now (its shared directory, Redis, is unreachable);
    /// retry later.
    Unavailable,
    /// The peer's roles do not allow the request (or the target is above them).
    Forbidden,
    /// `join` with an access code that is not the room's.
    WrongAccessCode,
    /// A method other than `changeDisplayName` or `leave` while waiting in the lobby.
    InLobby,
    /// The media layer refused an SDP offer or answer.
    InvalidSdp,
    /// The producer or consumer is not the caller's.
    NotFound,
    /// The request does not fit the negotiation state.
    BadState,
    /// Too many messages or joins in too short a time (`[limits]`); slow down and retry.
    RateLimited,
    /// A count limit is reached: connections from one address, participants or rooms on
    /// this server (`[limits]`); retry later.
    TooMany,
    /// A missing, malformed, forged, expired or other-room access token (`[auth]`).
    Unauthorized,
    /// A server-side failure.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of `docs/protocol.md`.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownMethod,
        ErrorCode::UnsupportedVersion,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::RoomFull,
        ErrorCode::RoomClosing,
        ErrorCode::Unavailable,
        ErrorCode::Unauthorized,
        ErrorCode::InvalidSdp,
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::WrongAccessCode,
        ErrorCode::InLobby,
        ErrorCode::BadState,
        ErrorCode::RateLimited,
        ErrorCode::TooMany,
        ErrorCode::Internal,
    ];

    /// The code as it is written on the wire (`rateLimited`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "badRequest",
            ErrorCode::UnknownMethod => "unknownMethod",
            ErrorCode::UnsupportedVersion => "unsupportedVersion",
            ErrorCode::NotJoined => "notJoined",
            ErrorCode::AlreadyJoined => "alreadyJoined",
            ErrorCode::RoomFull => "roomFull",
            ErrorCode::RoomClosing => "roomClosing",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InvalidSdp => "invalidSdp",
            ErrorCode::NotFound => "notFound",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::WrongAccessCode => "wrongAccessCode",
            ErrorCode::InLobby => "inLobby",
            ErrorCode::BadState => "badState",
            ErrorCode::RateLimited => "rateLimited",
            ErrorCode::TooMany => "tooMany",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Internal => "internal",
        }
    }
}

/// An error reply: a code and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct SignalError {
    /// What kind of error.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl SignalError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// `join` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinRequest {
    /// Name shown to others.
    pub display_name: String,
    /// Must be [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The room's access code: the right one skips the lobby, a wrong one is refused.
    #[serde(default)]
    pub access_code: Option<String>,
    /// A room access token (`?token=` of the room URL); never logged.
    #[serde(default)]
    pub token: Option<TokenText>,
}

/// One new sender declared with `publish`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishedTrack {
    /// SDP media id of the sender's transceiver.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Microphone, camera or screen.
    pub source: Source,
}

/// Every request a client can make.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "method", content = "data", rename_all = "camelCase")]
pub enum ClientRequest {
    /// Enter the room.
    Join(JoinRequest),
    /// Offer of the send transport, with the new senders in it.
    #[serde(rename_all = "camelCase")]
    Publish {
        /// SDP offer.
        sdp: String,
        /// New senders, by mid.
        #[serde(default)]
        producers: Vec<PublishedTrack>,
    },
    /// Answer to the last `recvOffer`.
    RecvAnswer {
        /// SDP answer.
        sdp: String,
    },
    /// Stop forwarding one's own producer (camera or mic off).
    #[serde(rename_all = "camelCase")]
    PauseProducer {
        /// The producer.
        producer_id: ProducerId,
    },
    /// Forward it again.
    #[serde(rename_all = "camelCase")]
    ResumeProducer {
        /// The producer.
        producer_id: ProducerId,
    },
    /// Remove one's own producer (screen share stopped).
    #[serde(rename_all = "camelCase")]
    CloseProducer {
        /// The producer.
        producer_id: ProducerId,
    },
    /// The size at which a consumer is displayed.
    #[serde(rename_all = "camelCase")]
    SetConsumerPreferences {
        /// The consumer.
        consumer_id: ConsumerId,
        /// Displayed width in device pixels (0 = hidden).
        width: u32,
        /// Displayed height in device pixels (0 = hidden).
        height: u32,
    },
    /// Ask the producer of a consumer for a keyframe.
    #[serde(rename_all = "camelCase")]
    RequestKeyFrame {
        /// The consumer.
        consumer_id: ConsumerId,
    },
    /// Rename oneself.
    #[serde(rename_all = "camelCase")]
    ChangeDisplayName {
        /// The new name.
        display_name: String,
    },
    /// Leave the room; the server closes the socket after replying.
    Leave {},
    /// Write to everyone.
    ChatMessage {
        /// The text (shown as text, never as HTML).
        text: String,
    },
    /// Clear the chat history (moderators).
    ClearChat {},
    /// Raise or lower one's hand.
    RaiseHand {
        /// Up or down.
        raised: bool,
    },
    /// Lower someone's hand (moderators).
    #[serde(rename_all = "camelCase")]
    LowerHand {
        /// Whose.
        peer_id: PeerId,
    },
    /// Lock the room: newcomers wait in the lobby.
    LockRoom {},
    /// Unlock the room.
    UnlockRoom {},
    /// Set or remove (`null`) the access code.
    SetAccessCode {
        /// The code.
        code: Option<String>,
    },
    /// Admit a peer waiting in the lobby.
    #[serde(rename_all = "camelCase")]
    PromotePeer {
        /// Who.
        peer_id: PeerId,
    },
    /// Admit everyone waiting in the lobby.
    PromoteAllPeers {},
    /// Refuse a peer waiting in the lobby.
    #[serde(rename_all = "camelCase")]
    DenyPeer {
        /// Who.
        peer_id: PeerId,
    },
    /// Give a role.
    #[serde(rename_all = "camelCase")]
    GiveRole {
        /// To whom.
        peer_id: PeerId,
        /// Which.
        role: Role,
    },
    /// Take a role away.
    #[serde(rename_all = "camelCase")]
    RemoveRole {
        /// From whom.
        peer_id: PeerId,
        /// Which.
        role: Role,
    },
    /// Mute a peer's microphone (moderators).
    #[serde(rename_all = "camelCase")]
    MutePeer {
        /// Whom.
        peer_id: PeerId,
    },
    /// Mute everyone else's microphone (moderators).
    MuteAll {},
    /// Stop a peer's camera (moderators).
    #[serde(rename_all = "camelCase")]
    StopPeerVideo {
        /// Whose.
        peer_id: PeerId,
    },
    /// Stop everyone else's camera (moderators).
    StopAllVideo {},
    /// End a peer's screen share (moderators).
    #[serde(rename_all = "camelCase")]
    StopPeerScreenShare {
        /// Whose.
        peer_id: PeerId,
    },
    /// Let a peer start media a moderator stopped again (moderators).
    #[serde(rename_all = "camelCase")]
    AllowMedia {
        /// Whose.
        peer_id: PeerId,
        /// `audio`, `video` or `screen`.
        kind: MediaBlockKind,
    },
    /// Remove a peer from the meeting (moderators).
    #[serde(rename_all = "camelCase")]
    KickPeer {
        /// Whom.
        peer_id: PeerId,
    },
    /// End the meeting for everyone (moderators).
    CloseMeeting {},
}

/// The kinds of media a moderator stops and allows again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MediaBlockKind {
    /// The microphone.
    Audio,
    /// The camera.
    Video,
    /// Screen sharing.
    Screen,
}

/// Method names of [`ClientRequest`], to tell an unknown method from bad data.
pub(crate) const METHODS: &[&str] = &[
    "join",
    "publish",
    "recvAnswer",
    "pauseProducer",
    "resumeProducer",
    "closeProducer",
    "setConsumerPreferences",
    "requestKeyFrame",
    "changeDisplayName",
    "leave",
    "chatMessage",
    "clearChat",
    "raiseHand",
    "lowerHand",
    "lockRoom",
    "unlockRoom",
    "setAccessCode",
    "promotePeer",
    "promoteAllPeers",
    "denyPeer",
    "giveRole",
    "removeRole",
    "mutePeer",
    "muteAll",
    "stopPeerVideo",
    "stopAllVideo",
    "stopPeerScreenShare",
    "allowMedia",
    "kickPeer",
    "closeMeeting",
];

/// Parses one text frame into a request. On failure, returns the request id when it could be
/// read, and the error to send back.
pub fn parse_request(
    text: &str,
) -> Result<(RequestId, ClientRequest), (Option<RequestId>, SignalError)> {
    let bad = |id, msg: String| (id, SignalError::new(ErrorCode::BadRequest, msg));
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(bad(
            None,
            format!("message larger than {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| bad(None, format!("not JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(bad(None, "a request is a JSON object".into()));
    };
    let id = obj.get("id").and_then(Value::as_u64);
    if obj.get("type").and_then(Value::as_str) != Some("request") {
        return Err(bad(id, "expected \"type\": \"request\"".into()));
    }
    let Some(id) = id else {
        return Err(bad(None, "a request needs an integer \"id\"".into()));
    };
    let Some(method) = obj
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err(bad(Some(id), "a request needs a string \"method\"".into()));
    };
    if !METHODS.contains(&method.as_str()) {
        return Err((
            Some(id),
            SignalError::new(
                ErrorCode::UnknownMethod,
                format!("unknown method '{method}'"),
            ),
        ));
    }
    let data = match obj.remove("data") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(d) => d,
    };
    let tagged = serde_json::json!({ "method": method, "data": data });
    let request = serde_json::from_value(tagged)
        .map_err(|e| bad(Some(id), format!("invalid data for '{method}': {e}")))?;
    Ok((id, request))
}

/// The `id` of a request frame, read as [`parse_request`] reads it (the last `"id"` key of a
/// JSON object, when it is an integer), for answering a frame the server will not process
/// (over the rate limit) with the id the client is waiting for.
pub fn request_id(text: &str) -> Option<RequestId> {
    if text.len() > MAX_MESSAGE_BYTES {
        return None;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(obj)) => obj.get("id").and_then(Value::as_u64),
        _ => None,
    }
}

/// Every notification the server sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "method", content = "data", rename_all = "camelCase")]
pub enum Notification {
    /// First message on a new connection.
    #[serde(rename_all = "camelCase")]
    Welcome {
        /// [`PROTOCOL_VERSION`].
        protocol_version: u32,
        /// The server's crate version.
        server_version: String,
        /// The id this connection will join with.
        peer_id: PeerId,
    },
    /// Someone entered the room.
    PeerJoined {
        /// Who.
        peer: PeerInfo,
    },
    /// Someone left the room.
    #[serde(rename_all = "camelCase")]
    PeerLeft {
        /// Who.
        peer_id: PeerId,
    },
    /// Someone's name, hand or roles changed; only the changed fields are present.
    #[serde(rename_all = "camelCase")]
    PeerUpdated {
        /// Who.
        peer_id: PeerId,
        /// The new name.
        #[serde(skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
        /// Hand up or down.
        #[serde(skip_serializing_if = "Option::is_none")]
        raised_hand: Option<bool>,
        /// The new roles.
        #[serde(skip_serializing_if = "Option::is_none")]
        roles: Option<Vec<Role>>,
    },
    /// A peer started publishing a track.
    ProducerAdded {
        /// The track.
        producer: ProducerInfo,
    },
    /// A producer was closed.
    #[serde(rename_all = "camelCase")]
    ProducerClosed {
        /// The producer.
        producer_id: ProducerId,
        /// Its owner.
        peer_id: PeerId,
    },
    /// A producer was turned off.
    #[serde(rename_all = "camelCase")]
    ProducerPaused {
        /// The producer.
        producer_id: ProducerId,
        /// Its owner.
        peer_id: PeerId,
        /// A moderator turned it off; its owner may not turn it on again by itself.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        by_moderator: bool,
    },
    /// A producer was turned on again.
    #[serde(rename_all = "camelCase")]
    ProducerResumed {
        /// The producer.
        producer_id: ProducerId,
        /// Its owner.
        peer_id: PeerId,
    },
    /// A new offer on the recv transport; answer with `recvAnswer`.
    RecvOffer {
        /// SDP offer.
        sdp: String,
        /// Consumers added by this offer.
        consumers: Vec<ConsumerInfo>,
    },
    /// A consumer ended (its producer closed or its owner left).
    #[serde(rename_all = "camelCase")]
    ConsumerClosed {
        /// The consumer.
        consumer_id: ConsumerId,
        /// The producer it copied.
        producer_id: ProducerId,
    },
    /// The simulcast layer forwarded to a consumer changed.
    #[serde(rename_all = "camelCase")]
    ConsumerLayerChanged {
        /// The consumer.
        consumer_id: ConsumerId,
        /// `l`, `m`, `h`, or none.
        layer: Option<String>,
    },
    /// The loudest peer changed.
    #[serde(rename_all = "camelCase")]
    ActiveSpeaker {
        /// Who, or nobody.
        peer_id: Option<PeerId>,
    },
    /// One of the peer's WebRTC connections changed state.
    TransportState {
        /// Which connection.
        direction: Direction,
        /// `connected`, `disconnected` or `closed`.
        state: String,
    },
    /// The server asks the client to reconnect.
    Reconnect {
        /// Why.
        reason: String,
    },
    /// A chat message (also to its writer).
    ChatMessage(ChatEntry),
    /// The chat history was cleared.
    ChatCleared {},
    /// The room was locked.
    RoomLocked {},
    /// The room was unlocked.
    RoomUnlocked {},
    /// Who waits in the lobby now (to those who may admit; empty when nobody waits).
    LobbyPeers {
        /// The waiting peers, in arrival order.
        peers: Vec<LobbyPeerInfo>,
    },
    /// You, waiting in the lobby, are admitted: what `join` would have answered.
    Admitted(JoinResponse),
    /// You, waiting in the lobby, are refused; the server closes the socket.
    Denied {},
    /// Your roles and what they allow changed.
    PermissionsChanged {
        /// Your roles.
        roles: Vec<Role>,
        /// What they allow.
        permissions: Vec<Permission>,
    },
    /// A moderator stopped your media of this kind: you may not start it again until
    /// `mediaAllowed`.
    MediaBlocked {
        /// `audio`, `video` or `screen`.
        kind: MediaBlockKind,
    },
    /// A moderator allows your media of this kind again (you start it yourself).
    MediaAllowed {
        /// `audio`, `video` or `screen`.
        kind: MediaBlockKind,
    },
    /// A moderator removed you from the meeting; the server closes the socket.
    Kicked {
        /// Why, for people.
        reason: String,
    },
    /// A moderator ended the meeting; the server closes the socket.
    MeetingClosed {},
    /// A problem not tied to a request.
    Error(SignalError),
}

/// Data of a successful `join` (and of `admitted`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    /// Your id in the room.
    pub peer_id: PeerId,
    /// The room.
    pub room_id: RoomId,
    /// True while you wait in the lobby: `admitted` (with the rest) or `denied` follows.
    pub lobby: bool,
    /// Everyone else, with their producers, roles and hands.
    pub peers: Vec<PeerInfo>,
    /// STUN/TURN servers for the client's peer connections.
    pub ice_servers: Vec<IceServer>,
    /// Your roles.
    pub roles: Vec<Role>,
    /// What your roles allow.
    pub permissions: Vec<Permission>,
    /// The recent chat, oldest first.
    pub chat_history: Vec<ChatEntry>,
    /// Whether the room is locked.
    pub locked: bool,
}

/// A peer waiting in the lobby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LobbyPeerInfo {
    /// The waiting peer.
    pub id: PeerId,
    /// Its name.
    pub display_name: String,
}

/// One entry of `iceServers`, as `RTCIceServer` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    /// `stun:` or `turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Data of a successful `publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishResponse {
    /// SDP answer for the send transport.
    pub sdp: String,
    /// The producer made for each declared track.
    pub producers: Vec<PublishedProducer>,
}

/// A producer made by `publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedProducer {
    /// The track's mid.
    pub mid: String,
    /// The new producer.
    pub id: ProducerId,
}

/// `data` of a successful response: one shape per method (see `docs/protocol.md`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ResponseData {
    /// `join`.
    Join(JoinResponse),
    /// `publish`.
    Publish(PublishResponse),
    /// Every method that answers `{}`.
    Empty(Empty),
}

/// The empty object `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Empty {}

/// A frame from server to client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    /// The reply to one request.
    Response {
        /// The request's id (null when it could not be read).
        id: Option<RequestId>,
        /// True for success.
        ok: bool,
        /// Result of a successful request.
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<ResponseData>,
        /// Why the request failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<SignalError>,
    },
    /// A notification.
    Notification(Notification),
}

impl ServerMessage {
    /// A successful response carrying `data`.
    pub fn ok(id: RequestId, data: ResponseData) -> Self {
        ServerMessage::Response {
            id: Some(id),
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    /// An error response.
    pub fn error(id: Option<RequestId>, error: SignalError) -> Self {
        ServerMessage::Response {
            id,
            ok: false,
            data: None,
            error: Some(error),
        }
    }

    /// The frame as JSON text.
    pub fn to_text(&self) -> String {
        // Invariant: every field is a string, number, bool or serde_json value; serializing
        // such a tree to a string cannot fail.
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_join() {
        let (id, req) = parse_request(
            r#"{"type":"request","id":3,"method":"join","data":{"displayName":"A","protocolVersion":1}}"#,
        )
        .unwrap();
        assert_eq!(id, 3);
        assert_eq!(
            req,
            ClientRequest::Join(JoinRequest {
                display_name: "A".into(),
                protocol_version: 1,
                access_code: None,
                token: None,
            })
        );
    }

    #[test]
    fn leave_needs_no_data() {
        let (_, req) = parse_request(r#"{"type":"request","id":1,"method":"leave"}"#).unwrap();
        assert_eq!(req, ClientRequest::Leave {});
    }

    #[test]
    fn malformed_input_gets_typed_errors() {
        let (id, e) = parse_request("not json").unwrap_err();
        assert_eq!((id, e.code), (None, ErrorCode::BadRequest));
        let (id, e) = parse_request(r#"{"type":"request","id":5,"method":"nope"}"#).unwrap_err();
        assert_eq!((id, e.code), (Some(5), ErrorCode::UnknownMethod));
        let (id, e) =
            parse_request(r#"{"type":"request","id":6,"method":"publish","data":{"sdp":42}}"#)
                .unwrap_err();
        assert_eq!((id, e.code), (Some(6), ErrorCode::BadRequest));
        let (id, e) = parse_request(r#"[1,2]"#).unwrap_err();
        assert_eq!((id, e.code), (None, ErrorCode::BadRequest));
        let (id, e) = parse_request(r#"{"type":"request","method":"leave"}"#).unwrap_err();
        assert_eq!((id, e.code), (None, ErrorCode::BadRequest));
    }

    #[test]
    fn error_codes_are_written_as_on_the_wire() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
    }

    #[test]
    fn the_id_is_read_as_the_parser_reads_it() {
        assert_eq!(
            request_id(r#"{"type":"request","id":41,"method":"publish","data":{"sdp":"v=0"}}"#),
            Some(41)
        );
        assert_eq!(request_id(r#"{"data":[1,2,{"x":null}],"id":7}"#), Some(7));
        assert_eq!(request_id(r#"{"id":"7"}"#), None);
        assert_eq!(request_id("[1]"), None);
        assert_eq!(
            request_id(r#"{"id":1,"id":2}"#),
            Some(2),
            "the last key, as parse_request"
        );
        assert_eq!(request_id("{"), None);
    }

    #[test]
    fn notifications_serialize_as_documented() {
        let text = ServerMessage::Notification(Notification::PeerLeft {
            peer_id: PeerId::from_raw("p-1"),
        })
        .to_text();
        assert_eq!(
            text,
            r#"{"type":"notification","method":"peerLeft","data":{"peerId":"p-1"}}"#
        );
        let text =
            ServerMessage::error(Some(2), SignalError::new(ErrorCode::NotFound, "x")).to_text();
        assert_eq!(
            text,
            r#"{"type":"response","id":2,"ok":false,"error":{"code":"notFound","message":"x"}}"#
        );
    }
}
