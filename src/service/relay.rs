//! Relaying a participant to the instance that hosts its room.
//!
//! When a browser's WebSocket reaches an instance (the *edge*) that does not host the room,
//! the edge opens one WebSocket of its own to the hosting instance's `/ws/<room>` and passes
//! text frames both ways, unchanged and in order; the host runs the participant's
//! [`PeerActor`](crate::room::PeerActor) as for any local client, so the protocol has one
//! implementation and the SDP the browser gets names the host's media address. Both hops are
//! TCP, so nothing is lost or reordered while both instances live.
//!
//! The edge keeps the browser's heartbeat (pings, timeout) itself; the host pings the edge's
//! link, which answers. When the host goes away, the edge tells the browser to `reconnect`
//! (it comes back through the balancer and finds the room on a live instance); when the
//! browser goes away, the edge closes the link and the host's peer leaves the room.
//!
//! The relayed upgrade carries [`RELAY_HEADER`]: who the client is (address, scheme, host,
//! session user) and which instance relays it, signed with a key derived from `cookieSecret`
//! (shared by every instance), with a timestamp. A host believes it only with a valid
//! signature, and never relays a relayed participant again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use base64::Engine;
use futures_util::{SinkExt, Stream, StreamExt};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, info};

use crate::ids::{NodeId, RoomId};
use crate::room::Heartbeat;
use crate::routing::NodeInfo;
use crate::signaling::protocol::MAX_MESSAGE_BYTES;
use crate::signaling::{ErrorCode, Notification, ServerMessage, SignalError};

/// The header of a relayed upgrade: `<base64url(JSON claims)>.<hex HMAC-SHA256>`.
pub const RELAY_HEADER: &str = "x-mm-relay";
/// How old a relay header may be (clock skew between instances included).
const MAX_AGE: Duration = Duration::from_secs(60);
/// How long the edge waits for the host to accept the relay connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);

/// What a relayed upgrade says about its client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayClaims {
    /// The relaying instance.
    pub from: NodeId,
    /// The room of the upgrade (must match the path).
    pub room: RoomId,
    /// The client's address as the edge believed it.
    pub ip: String,
    /// `http` or `https`, as the user came in.
    pub scheme: String,
    /// The host the user asked for.
    pub host: String,
    /// The browser session's user id, if any.
    pub user: Option<String>,
    /// Seconds since the Unix epoch when the edge signed it.
    pub ts: u64,
}

/// Why a relay header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayAuthError {
    /// Not `<claims>.<signature>`, or the claims do not parse.
    #[error("malformed relay header")]
    Malformed,
    /// The signature does not match (another cookieSecret, or forged).
    #[error("relay header signature does not match (do all instances share cookieSecret?)")]
    BadSignature,
    /// Signed for another room.
    #[error("relay header is for another room")]
    WrongRoom,
    /// Older than [`MAX_AGE`] or from the future (check the instances' clocks).
    #[error("relay header expired (check that the instances' clocks agree)")]
    Expired,
}

/// Signs and checks relay headers with a key every instance derives from `cookieSecret`.
#[derive(Clone)]
pub struct RelayAuth {
    key: [u8; 32],
}

impl std::fmt::Debug for RelayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayAuth(..)")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl RelayAuth {
    /// The key for `secret` (a development set-up without a secret shares the empty one).
    pub fn new(secret: Option<&str>) -> Self {
        let mut h = Sha256::new();
        h.update(b"multiparty-meeting relay v1\0");
        h.update(secret.unwrap_or_default().as_bytes());
        Self {
            key: h.finalize().into(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // Invariant: HMAC accepts keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// The header value for `claims`.
    pub fn sign(&self, claims: &RelayClaims) -> String {
        // Invariant: the claims are strings and integers; serializing them cannot fail.
        let json = serde_json::to_vec(claims).expect("claims serialize");
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{body}.{sig}")
    }

    /// The claims of a header, if it is genuine, fresh and for `room`.
    pub fn verify(&self, header: &str, room: &RoomId) -> Result<RelayClaims, RelayAuthError> {
        let (body, sig) = header.split_once('.').ok_or(RelayAuthError::Malformed)?;
        let sig = decode_hex(sig).ok_or(RelayAuthError::Malformed)?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| RelayAuthError::BadSignature)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| RelayAuthError::Malformed)?;
        let claims: RelayClaims =
            serde_json::from_slice(&json).map_err(|_| RelayAuthError::Malformed)?;
        if &claims.room != room {
            return Err(RelayAuthError::WrongRoom);
        }
        if now_secs().abs_diff(claims.ts) > MAX_AGE.as_secs() {
            return Err(RelayAuthError::Expired);
        }
        Ok(claims)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The relays running on this instance: counted for `/health`, and told to hand their
/// participants back (reconnect) when the instance finishes draining.
#[derive(Debug)]
pub struct RelayTracker {
    active: AtomicUsize,
    evict: broadcast::Sender<String>,
}

impl Default for RelayTracker {
    fn default() -> Self {
        Self {
            active: AtomicUsize::new(0),
            evict: broadcast::channel(4).0,
        }
    }
}

impl RelayTracker {
    /// Participants relayed from this instance right now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Tells every relayed participant to reconnect.
    pub fn evict_all(&self, reason: &str) {
        let _ = self.evict.send(reason.to_string());
    }
}

/// The edge's WebSocket to the host.
pub type Link = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why the edge could not reach the host.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The host's `internalUrl` is not an http(s) URL.
    #[error("the host announced an unusable internalUrl '{0}'")]
    BadUrl(String),
    /// Connecting or upgrading failed (host down, refused the relay header, ...).
    #[error("cannot reach {node} at {url}: {message}")]
    Unreachable {
        /// The host.
        node: NodeId,
        /// Its URL.
        url: String,
        /// What failed.
        message: String,
    },
}

/// Opens the relay link to `host` for `room`, carrying the signed `header`.
pub async fn connect(host: &NodeInfo, room: &RoomId, header: String) -> Result<Link, RelayError> {
    let base = host.internal_url.trim_end_matches('/');
    let ws_base = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        return Err(RelayError::BadUrl(host.internal_url.clone()));
    };
    let url = format!("{ws_base}/ws/{room}");
    let unreachable = |message: String| RelayError::Unreachable {
        node: host.id.clone(),
        url: url.clone(),
        message,
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| unreachable(e.to_string()))?;
    let value = HeaderValue::from_str(&header).map_err(|e| unreachable(e.to_string()))?;
    request.headers_mut().insert(RELAY_HEADER, value);
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        max_message_size: Some(MAX_MESSAGE_BYTES),
        max_frame_size: Some(MAX_MESSAGE_BYTES),
        ..Default::default()
    };
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((link, _))) => Ok(link),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

/// The claims for a client of this edge.
pub fn claims(
    from: &NodeId,
    room: &RoomId,
    ip: String,
    scheme: String,
    host: String,
    user: Option<String>,
) -> RelayClaims {
    RelayClaims {
        from: from.clone(),
        room: room.clone(),
        ip,
        scheme,
        host,
        user,
        ts: now_secs(),
    }
}

fn reconnect_text(reason: &str) -> String {
    ServerMessage::Notification(Notification::Reconnect {
        reason: reason.to_string(),
    })
    .to_text()
}

/// Passes frames between the browser (`client`, `frames`) and the host (`link`) until either
/// ends; keeps the browser's heartbeat; tells the browser to reconnect when the host goes away
/// or this instance hands its participants back.
pub async fn pipe<S>(
    mut client: actix_ws::Session,
    mut frames: S,
    link: Link,
    heartbeat: Heartbeat,
    tracker: std::sync::Arc<RelayTracker>,
    room: RoomId,
    host: NodeId,
) where
    S: Stream<Item = Result<AggregatedMessage, actix_ws::ProtocolError>> + Unpin,
{
    tracker.active.fetch_add(1, Ordering::SeqCst);
    let mut evict = tracker.evict.subscribe();
    let (mut to_host, mut from_host) = link.split();
    let mut ping = tokio::time::interval(heartbeat.interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    info!(%room, %host, "participant relayed to the room's host");
    let reason = loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(AggregatedMessage::Text(text))) => {
                    last_heard = Instant::now();
                    if to_host.send(Message::Text(text.to_string())).await.is_err() {
                        let _ = client.text(reconnect_text("the meeting's server went away; reconnecting")).await;
                        break "host link failed";
                    }
                }
                Some(Ok(AggregatedMessage::Binary(_))) => {
                    last_heard = Instant::now();
                    let err = SignalError::new(ErrorCode::BadRequest, "binary frames are not part of the protocol; send JSON text");
                    if client.text(ServerMessage::error(None, err).to_text()).await.is_err() {
                        break "client gone";
                    }
                }
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    last_heard = Instant::now();
                    let _ = client.pong(&bytes).await;
                }
                Some(Ok(AggregatedMessage::Pong(_))) => last_heard = Instant::now(),
                Some(Ok(AggregatedMessage::Close(_))) | None => break "client closed",
                Some(Err(e)) => {
                    debug!(%room, "client socket error: {e}");
                    break "client socket error";
                }
            },
            msg = from_host.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if super::frames::send_text(&mut client, text.to_string()).await.is_err() {
                        break "client gone";
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    // The host ended the participant (leave, kick, heartbeat): pass it on.
                    let description = frame.map(|f| f.reason.to_string());
                    let _ = client.close(Some(CloseReason { code: CloseCode::Normal, description })).await;
                    tracker.active.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    let _ = client.text(reconnect_text("the meeting's server went away; reconnecting")).await;
                    break "host went away";
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > heartbeat.timeout {
                    break "heartbeat timeout";
                }
                if client.ping(b"").await.is_err() {
                    break "client gone";
                }
            }
            reason = evict.recv() => {
                let reason = reason.unwrap_or_else(|_| "this server is shutting down; reconnecting".into());
                let _ = client.text(reconnect_text(&reason)).await;
                break "handed back";
            }
        }
    };
    debug!(%room, %host, reason, "relay ended");
    let _ = to_host.send(Message::Close(None)).await;
    let _ = client
        .close(Some(CloseReason {
            code: CloseCode::Normal,
            description: Some(reason.to_string()),
        }))
        .await;
    tracker.active.fetch_sub(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(room: &str) -> RelayClaims {
        claims(
            &NodeId::from_raw("edge"),
            &RoomId::parse(room).unwrap(),
            "203.0.113.7".into(),
            "https".into(),
            "meet.example.org".into(),
            Some("u-1".into()),
        )
    }

    #[test]
    fn a_signed_header_verifies_only_with_the_same_secret_and_room() {
        let auth = RelayAuth::new(Some("s3cret-s3cret-s3cret-s3cret-s3cret"));
        let room = RoomId::parse("standup").unwrap();
        let header = auth.sign(&sample("standup"));
        let got = auth.verify(&header, &room).expect("genuine header");
        assert_eq!(
            (got.ip.as_str(), got.user.as_deref()),
            ("203.0.113.7", Some("u-1"))
        );
        assert_eq!(got.from, NodeId::from_raw("edge"));
        let other = RelayAuth::new(Some("another-secret-another-secret-xx"));
        assert_eq!(
            other.verify(&header, &room),
            Err(RelayAuthError::BadSignature)
        );
        assert_eq!(
            auth.verify(&header, &RoomId::parse("other").unwrap()),
            Err(RelayAuthError::WrongRoom)
        );
        assert_eq!(
            auth.verify("garbage", &room),
            Err(RelayAuthError::Malformed)
        );
        // A tampered body breaks the signature.
        let (body, sig) = header.split_once('.').unwrap();
        let forged = format!("{}x.{sig}", &body[..body.len() - 1]);
        assert!(auth.verify(&forged, &room).is_err());
    }

    #[test]
    fn an_old_header_is_refused() {
        let auth = RelayAuth::new(Some("s3cret-s3cret-s3cret-s3cret-s3cret"));
        let mut claims = sample("standup");
        claims.ts -= 3600;
        let header = auth.sign(&claims);
        assert_eq!(
            auth.verify(&header, &RoomId::parse("standup").unwrap()),
            Err(RelayAuthError::Expired)
        );
    }
}
