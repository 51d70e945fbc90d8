//! A headless meeting participant speaking docs/protocol.md over WebSocket and WebRTC (str0m):
//! joins a room, publishes synthetic Opus/VP8 media, receives and counts forwarded media.
//! Used by the integration tests. (The load generator, `src/bin/load/`, drives many
//! connections per thread with its own engine instead.)
//!
//! Threads and tasks per client: a WebSocket reader, writer and recv-negotiator (tokio tasks,
//! so `Client` must be used inside a tokio runtime, e.g. `#[actix_rt::test]`), and one std
//! thread per WebRTC transport (send when publishing, recv after the first `recvOffer`).
//! Nothing blocks the runtime thread.
//!
//! ```no_run
//! # async fn demo() -> Result<(), multiparty_meeting::client::ClientError> {
//! use std::time::Duration;
//! use multiparty_meeting::client::{Client, Kind, PublishSpec};
//! let mut alice = Client::connect("http://127.0.0.1:3000", "standup", "Alice").await?;
//! alice.publish(PublishSpec::audio_video()).await?;
//! let bob = Client::connect("http://127.0.0.1:3000", "standup", "Bob").await?;
//! bob.wait_for(Duration::from_secs(10), "video from Alice", |stats| {
//!     stats.iter().any(|c| c.kind == Kind::Video && c.frames > 20)
//! }).await?;
//! # Ok(()) }
//! ```

mod error;
mod media;
mod protocol;
mod signaling;
mod state;
mod transport;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

pub use error::ClientError;
pub use media::{find_stamp, is_vp8_keyframe, opus_frame, vp8_frame, PublishSpec, Stamp};
pub use protocol::{
    Consumer, ErrorBody, JoinResponse, Kind, Notification, Peer, Producer, RecvOffer, Response,
    Source, PROTOCOL_VERSION,
};
pub use signaling::FIRST_REQUEST_ID;
pub use state::{ConsumerStats, ProducerStats, TransportStatus};

use protocol::{PublishProducer, PublishResponse};
use signaling::{NegotiatorMsg, Signaling};
use state::Shared;
use transport::{Command, Transport, TransportDir};

/// Tunables of a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long a request waits for its response.
    pub request_timeout: Duration,
    /// How long `connect` waits for `welcome`.
    pub welcome_timeout: Duration,
    /// Local IP the WebRTC UDP sockets bind to (and announce as host candidate).
    pub bind_ip: IpAddr,
    /// Room access token sent in `join` (`[auth]` of the server).
    pub token: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(10),
            welcome_timeout: Duration::from_secs(5),
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            token: None,
        }
    }
}

/// One track published by [`Client::publish`].
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedTrack {
    /// Send-transport mid.
    pub mid: String,
    /// Server-chosen producer id.
    pub producer_id: String,
    /// Audio or video.
    pub kind: Kind,
    /// Mic or webcam.
    pub source: Source,
}

/// A joined participant. Dropping it tears everything down without waiting (the server sees
/// the WebSocket disappear); [`Client::close`] and [`Client::leave`] do it gracefully.
pub struct Client {
    join: JoinResponse,
    welcome: Value,
    options: ClientOptions,
    shared: Arc<Shared>,
    signaling: Arc<Signaling>,
    negotiator_tx: mpsc::UnboundedSender<NegotiatorMsg>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    send: Option<Transport>,
    published: Vec<PublishedTrack>,
}

/// `http://host:port[/]` (or `ws://`) plus room -> `ws://host:port/ws/<room>`.
fn ws_url(base_url: &str, room: &str) -> Result<String, ClientError> {
    let base = base_url.trim_end_matches('/');
    let rest = if let Some(r) = base.strip_prefix("http://") {
        format!("ws://{r}")
    } else if let Some(r) = base.strip_prefix("https://") {
        format!("wss://{r}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_string()
    } else {
        return Err(ClientError::InvalidUrl(format!(
            "base url must start with http://, https://, ws:// or wss://: {base_url}"
        )));
    };
    if room.is_empty() {
        return Err(ClientError::InvalidUrl("empty room".into()));
    }
    Ok(format!("{rest}/ws/{room}"))
}

impl Client {
    /// Open `ws://.../ws/<room>`, wait for `welcome`, `join` with `display_name`.
    pub async fn connect(
        base_url: &str,
        room: &str,
        display_name: &str,
    ) -> Result<Client, ClientError> {
        Self::connect_with(base_url, room, display_name, ClientOptions::default()).await
    }

    /// [`Client::connect`] with explicit options.
    pub async fn connect_with(
        base_url: &str,
        room: &str,
        display_name: &str,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let url = ws_url(base_url, room)?;
        let shared = Shared::new();
        let conn = signaling::open(
            &url,
            shared.clone(),
            options.request_timeout,
            options.bind_ip,
        )
        .await?;
        let mut client = Client {
            join: JoinResponse {
                peer_id: String::new(),
                room_id: String::new(),
                peers: Vec::new(),
                ice_servers: Vec::new(),
                lobby: false,
                roles: Vec::new(),
                permissions: Vec::new(),
                chat_history: Vec::new(),
                locked: false,
            },
            welcome: Value::Null,
            options,
            shared,
            signaling: conn.signaling,
            negotiator_tx: conn.negotiator_tx,
            tasks: conn.tasks,
            send: None,
            published: Vec::new(),
        };
        let welcome = client
            .next_notification("welcome", client.options.welcome_timeout)
            .await?;
        if welcome.data.get("protocolVersion").and_then(Value::as_u64)
            != Some(u64::from(PROTOCOL_VERSION))
        {
            return Err(ClientError::Protocol(format!(
                "welcome does not announce protocolVersion 1: {}",
                welcome.data
            )));
        }
        client.welcome = welcome.data;
        let mut join = json!({"displayName": display_name, "protocolVersion": PROTOCOL_VERSION});
        if let Some(token) = &client.options.token {
            join["token"] = json!(token);
        }
        let data = client.request("join", join).await?;
        client.join = serde_json::from_value(data.clone())
            .map_err(|e| ClientError::Protocol(format!("join response {data}: {e}")))?;
        Ok(client)
    }

    /// Our peer id (from the `join` response).
    pub fn peer_id(&self) -> &str {
        &self.join.peer_id
    }

    /// The room id the server confirmed in `join`.
    pub fn room_id(&self) -> &str {
        &self.join.room_id
    }

    /// The complete `join` response: peers already in the room, ICE servers.
    pub fn join_response(&self) -> &JoinResponse {
        &self.join
    }

    /// Data of the `welcome` notification.
    pub fn welcome(&self) -> &Value {
        &self.welcome
    }

    /// Create the send transport, offer the tracks of `spec`, `publish`, apply the answer and
    /// start sending synthetic frames once ICE/DTLS are up. One publish per client.
    pub async fn publish(&mut self, spec: PublishSpec) -> Result<Vec<PublishedTrack>, ClientError> {
        if self.send.is_some() {
            return Err(ClientError::AlreadyPublished);
        }
        let transport = Transport::spawn(
            TransportDir::Send,
            self.options.bind_ip,
            Some(spec),
            self.shared.clone(),
        )?;
        let (offer, tracks) = transport.call(Command::CreateOffer).await?;
        let producers: Vec<PublishProducer> = tracks
            .iter()
            .map(|t| PublishProducer {
                mid: t.mid.to_string(),
                kind: t.kind,
                source: t.source,
            })
            .collect();
        let data = self
            .request("publish", json!({"sdp": offer, "producers": producers}))
            .await?;
        let resp: PublishResponse = serde_json::from_value(data.clone())
            .map_err(|e| ClientError::Protocol(format!("publish response {data}: {e}")))?;
        transport
            .call(|reply| Command::AcceptAnswer(resp.sdp.clone(), reply))
            .await?;

        let mut published = Vec::new();
        for t in &tracks {
            let mid = t.mid.to_string();
            let id = resp
                .producers
                .iter()
                .find(|p| p.mid == mid)
                .map(|p| p.id.clone())
                .ok_or_else(|| {
                    ClientError::Protocol(format!(
                        "publish response has no producer for mid {mid}: {data}"
                    ))
                })?;
            published.push(PublishedTrack {
                mid,
                producer_id: id,
                kind: t.kind,
                source: t.source,
            });
        }
        self.shared.update(|s| {
            for p in &published {
                if let Some(stats) = s.producer_mut(&p.mid) {
                    stats.producer_id = p.producer_id.clone();
                }
            }
        });
        self.send = Some(transport);
        self.published = published.clone();
        Ok(published)
    }

    /// Tracks published so far.
    pub fn published(&self) -> &[PublishedTrack] {
        &self.published
    }

    /// Stop or restart writing frames of one kind on the send transport, like
    /// `replaceTrack(null)` / `replaceTrack(track)` in a browser (pair with pause/resumeProducer).
    pub fn set_sending(&self, kind: Kind, sending: bool) -> Result<(), ClientError> {
        match &self.send {
            Some(t) => t.send(Command::SetSending(kind, sending)),
            None => Ok(()),
        }
    }

    /// Sends only the lowest `layers` simulcast layers of the camera (at least one), like a
    /// browser that switches its upper layers off; raising it restarts them at a keyframe.
    pub fn set_video_layers(&self, layers: usize) -> Result<(), ClientError> {
        match &self.send {
            Some(t) => t.send(Command::SetVideoLayers(layers)),
            None => Err(ClientError::Rtc("set_video_layers before publish".into())),
        }
    }

    /// Loss tests: the send transport does not send its next `packets` RTP datagrams (nor
    /// their retransmissions), as a burst of loss NACK cannot repair would.
    pub fn drop_next_rtp(&self, packets: u32) -> Result<(), ClientError> {
        match &self.send {
            Some(t) => t.send(Command::DropRtp(packets)),
            None => Err(ClientError::Rtc("drop_next_rtp before publish".into())),
        }
    }

    /// Loss tests: the recv transport drops this share (0.0 to 1.0) of the RTP datagrams it
    /// receives, chosen at random, as a lossy network between server and subscriber would;
    /// its RTCP, STUN and DTLS pass. Retransmissions are dropped at the same rate.
    pub fn drop_incoming_rtp(&self, share: f64) {
        let ppm = (share.clamp(0.0, 1.0) * 1_000_000.0) as u32;
        self.shared
            .incoming_rtp_loss_ppm
            .store(ppm, std::sync::atomic::Ordering::Relaxed);
    }

    /// Incoming RTP datagrams the recv transport saw, and how many of them it dropped
    /// ([`Client::drop_incoming_rtp`]).
    pub fn incoming_rtp(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.shared.incoming_rtp_seen.load(Relaxed),
            self.shared.incoming_rtp_dropped.load(Relaxed),
        )
    }

    /// Hostile-input tests: sends `datagrams` to the server from the send transport's own
    /// socket (an address the server knows), then replays the last datagrams that transport
    /// sent when `replay_recent`. Returns the number sent.
    pub async fn inject_datagrams(
        &self,
        datagrams: Vec<Vec<u8>>,
        replay_recent: bool,
    ) -> Result<usize, ClientError> {
        match &self.send {
            Some(t) => {
                t.call(|reply| Command::Inject(datagrams, replay_recent, reply))
                    .await
            }
            None => Err(ClientError::Rtc("inject_datagrams before publish".into())),
        }
    }

    /// Send a request; the response `data` on `ok: true`, `ClientError::Server` otherwise.
    pub async fn request(&self, method: &str, data: Value) -> Result<Value, ClientError> {
        self.signaling.request(method, data).await
    }

    /// Send a request and return the response frame as is (also when `ok: false`).
    pub async fn request_response(
        &self,
        method: &str,
        data: Value,
    ) -> Result<Response, ClientError> {
        self.signaling.request_response(method, data).await
    }

    /// Send a text frame verbatim (for malformed-input tests). Use request ids below
    /// [`FIRST_REQUEST_ID`]; the response shows up in [`Client::next_response`].
    pub fn send_raw_text(&self, text: &str) -> Result<(), ClientError> {
        self.signaling.send_message(Message::Text(text.to_string()))
    }

    /// The oldest response that answered no request of ours (e.g. to a raw frame), waiting up
    /// to `timeout`.
    pub async fn next_response(&self, timeout: Duration) -> Result<Response, ClientError> {
        self.shared
            .wait(
                timeout,
                "an unsolicited response",
                |s| {
                    if s.unsolicited.is_empty() && s.ws_closed {
                        return Some(Err(ClientError::Closed));
                    }
                    s.unsolicited.pop_front().map(Ok)
                },
                |_| String::new(),
            )
            .await?
    }

    /// Every notification received so far, in order (including `welcome` and `recvOffer`).
    pub fn notifications(&self) -> Vec<Notification> {
        self.shared.lock().history.clone()
    }

    /// Take the oldest not yet taken notification with this `method`, waiting up to `timeout`.
    pub async fn next_notification(
        &self,
        method: &str,
        timeout: Duration,
    ) -> Result<Notification, ClientError> {
        self.wait_notification(timeout, &format!("notification {method}"), |n| {
            n.method == method
        })
        .await
    }

    /// Take the oldest not yet taken notification matching `pred`, waiting up to `timeout`.
    pub async fn wait_notification(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Notification) -> bool,
    ) -> Result<Notification, ClientError> {
        self.shared
            .wait(
                timeout,
                what,
                |s| match s.queue.iter().position(&pred) {
                    Some(i) => s.queue.remove(i).map(Ok),
                    None if s.ws_closed => Some(Err(ClientError::Closed)),
                    None => None,
                },
                |s| {
                    let methods: Vec<&str> = s.history.iter().map(|n| n.method.as_str()).collect();
                    format!("notifications so far: {methods:?}")
                },
            )
            .await?
    }

    /// Counters of every consumer this client was offered, in offer order.
    pub fn received(&self) -> Vec<ConsumerStats> {
        self.shared.lock().consumers.clone()
    }

    /// Wait until `pred` holds for the consumer counters and return them; the timeout error
    /// describes `what` and the counters at that moment.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[ConsumerStats]) -> bool,
    ) -> Result<Vec<ConsumerStats>, ClientError> {
        self.shared
            .wait(
                timeout,
                what,
                |s| pred(&s.consumers).then(|| s.consumers.clone()),
                |s| {
                    format!(
                        "consumers: {:?}; frames on unknown mids: {}; recv transport: {:?}; errors: {:?}",
                        s.consumers, s.unmatched_frames, s.recv_status, s.errors
                    )
                },
            )
            .await
    }

    /// Frames received on recv-transport mids that no `recvOffer` consumer announced.
    pub fn unmatched_frames(&self) -> u64 {
        self.shared.lock().unmatched_frames
    }

    /// Counters of the tracks this client publishes.
    pub fn sent(&self) -> Vec<ProducerStats> {
        self.shared.lock().producers.clone()
    }

    /// State of the send transport.
    pub fn send_status(&self) -> TransportStatus {
        self.shared.lock().send_status
    }

    /// State of the recv transport.
    pub fn recv_status(&self) -> TransportStatus {
        self.shared.lock().recv_status
    }

    /// Wait until the send transport is connected (ICE + DTLS).
    pub async fn wait_send_connected(&self, timeout: Duration) -> Result<(), ClientError> {
        self.shared
            .wait(
                timeout,
                "send transport connected",
                |s| (s.send_status == TransportStatus::Connected).then_some(()),
                |s| {
                    format!(
                        "send transport: {:?}; errors: {:?}",
                        s.send_status, s.errors
                    )
                },
            )
            .await
    }

    /// Problems noticed in the background: protocol violations by the server, failed recv
    /// negotiations, write errors. Empty in a healthy session.
    pub fn errors(&self) -> Vec<String> {
        self.shared.lock().errors.clone()
    }

    /// False once the server closed the WebSocket (or it failed).
    pub fn is_open(&self) -> bool {
        !self.shared.lock().ws_closed
    }

    /// `changeDisplayName`.
    pub async fn change_display_name(&self, name: &str) -> Result<(), ClientError> {
        self.request("changeDisplayName", json!({ "displayName": name }))
            .await
            .map(drop)
    }

    /// `pauseProducer` (pair with [`Client::set_sending`] to also stop the frames).
    pub async fn pause_producer(&self, producer_id: &str) -> Result<(), ClientError> {
        self.request("pauseProducer", json!({ "producerId": producer_id }))
            .await
            .map(drop)
    }

    /// `resumeProducer`.
    pub async fn resume_producer(&self, producer_id: &str) -> Result<(), ClientError> {
        self.request("resumeProducer", json!({ "producerId": producer_id }))
            .await
            .map(drop)
    }

    /// `closeProducer`.
    pub async fn close_producer(&self, producer_id: &str) -> Result<(), ClientError> {
        self.request("closeProducer", json!({ "producerId": producer_id }))
            .await
            .map(drop)
    }

    /// `requestKeyFrame` for one of our consumers.
    pub async fn request_key_frame(&self, consumer_id: &str) -> Result<(), ClientError> {
        self.request("requestKeyFrame", json!({ "consumerId": consumer_id }))
            .await
            .map(drop)
    }

    /// `setConsumerPreferences`.
    pub async fn set_consumer_preferences(
        &self,
        consumer_id: &str,
        width: u32,
        height: u32,
    ) -> Result<(), ClientError> {
        self.request(
            "setConsumerPreferences",
            json!({ "consumerId": consumer_id, "width": width, "height": height }),
        )
        .await
        .map(drop)
    }

    /// `leave`, then [`Client::close`].
    pub async fn leave(self) -> Result<(), ClientError> {
        let r = self.request("leave", json!({})).await.map(drop);
        self.close().await;
        r
    }

    /// Stop both transports (their sockets are closed when this returns), send a WebSocket
    /// close frame and wait briefly for the server to close its side.
    pub async fn close(mut self) {
        if let Some(t) = self.send.take() {
            t.stop().await;
        }
        let (done_tx, done_rx) = oneshot::channel();
        if self
            .negotiator_tx
            .send(NegotiatorMsg::Shutdown(done_tx))
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), done_rx).await;
        }
        let _ = self.signaling.send_message(Message::Close(None));
        let _ = self
            .shared
            .wait(
                Duration::from_secs(2),
                "websocket closed",
                |s| s.ws_closed.then_some(()),
                |_| String::new(),
            )
            .await;
        // Drop aborts the tasks.
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        // `self.send` drops here and stops its thread; the negotiator's recv transport drops
        // with the aborted task.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// A load generator runs clients on a multi-threaded runtime: the handle and the futures
    /// of its methods must be `Send` (checked at compile time, never called).
    #[allow(dead_code)]
    fn client_and_futures_are_send(client: &Client, publisher: &mut Client, owned: Client) {
        assert_send(client);
        assert_send(&publisher.publish(PublishSpec::default()));
        assert_send(&Client::connect("", "", ""));
        assert_send(&client.request("m", Value::Null));
        assert_send(&client.wait_for(Duration::ZERO, "", |_| true));
        assert_send(&client.next_notification("m", Duration::ZERO));
        assert_send(&client.next_response(Duration::ZERO));
        assert_send(&owned.close());
    }

    #[test]
    fn ws_url_from_http_base() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080/", "r1").ok().as_deref(),
            Some("ws://127.0.0.1:8080/ws/r1")
        );
        assert_eq!(
            ws_url("https://example.org", "a.b").ok().as_deref(),
            Some("wss://example.org/ws/a.b")
        );
        assert!(ws_url("127.0.0.1:80", "r").is_err());
        assert!(ws_url("http://h", "").is_err());
    }
}
