//! The signaling WebSocket: a writer task, a reader task that routes responses to waiting
//! requests and stores notifications, and the recv-transport negotiator that answers every
//! `recvOffer` with `recvAnswer`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::error::ClientError;
use super::protocol::{parse_incoming, request_frame, Incoming, RecvOffer, Response};
use super::state::Shared;
use super::transport::{Command, Transport, TransportDir};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Request ids this client allocates start here; lower ids are free for raw frames a test
/// sends with `send_raw_text`, so their responses never collide with ours.
pub const FIRST_REQUEST_ID: u64 = 1_000;

/// Sends requests and raw frames; shared by the `Client` and the negotiator task.
pub(crate) struct Signaling {
    out_tx: mpsc::UnboundedSender<Message>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    request_timeout: Duration,
}

impl Signaling {
    pub fn send_message(&self, msg: Message) -> Result<(), ClientError> {
        if self.shared.lock().ws_closed {
            return Err(ClientError::Closed);
        }
        self.out_tx.send(msg).map_err(|_| ClientError::Closed)
    }

    /// Send a request and return the response frame, whether `ok` or not.
    pub async fn request_response(
        &self,
        method: &str,
        data: Value,
    ) -> Result<Response, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared.update(|s| {
            if s.ws_closed {
                return Err(ClientError::Closed);
            }
            s.pending.insert(id, tx);
            Ok(())
        })?;
        if let Err(e) = self.send_message(Message::Text(request_frame(id, method, data))) {
            self.shared.update(|s| s.pending.remove(&id));
            return Err(e);
        }
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            // The reader dropped the sender: the socket closed before the response came.
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                self.shared.update(|s| s.pending.remove(&id));
                Err(ClientError::Timeout(
                    self.request_timeout,
                    format!("response to {method} (id {id})"),
                ))
            }
        }
    }

    /// Send a request; `ok: false` becomes `ClientError::Server`.
    pub async fn request(&self, method: &str, data: Value) -> Result<Value, ClientError> {
        let resp = self.request_response(method, data).await?;
        if resp.ok {
            Ok(resp.data)
        } else {
            // `parse_incoming` guarantees an error object on ok:false.
            let e = resp.error.unwrap_or_else(|| super::protocol::ErrorBody {
                code: String::new(),
                message: String::new(),
            });
            Err(ClientError::Server {
                code: e.code,
                message: e.message,
            })
        }
    }
}

/// Messages to the negotiator task.
pub(crate) enum NegotiatorMsg {
    Offer(Value),
    /// Stop the recv transport and exit; reply when its socket is closed.
    Shutdown(oneshot::Sender<()>),
}

/// The running connection: its shared sender and the tasks behind it.
pub(crate) struct Connection {
    pub signaling: Arc<Signaling>,
    pub negotiator_tx: mpsc::UnboundedSender<NegotiatorMsg>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Open the WebSocket and start the reader, writer and negotiator tasks.
pub(crate) async fn open(
    url: &str,
    shared: Arc<Shared>,
    request_timeout: Duration,
    bind_ip: IpAddr,
) -> Result<Connection, ClientError> {
    let (ws, _resp) = tokio_tungstenite::connect_async(url).await?;
    let (sink, stream) = ws.split();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (neg_tx, neg_rx) = mpsc::unbounded_channel();
    let signaling = Arc::new(Signaling {
        out_tx,
        shared: shared.clone(),
        next_id: AtomicU64::new(FIRST_REQUEST_ID),
        request_timeout,
    });
    let tasks = vec![
        tokio::spawn(write_loop(sink, out_rx, shared.clone())),
        tokio::spawn(read_loop(stream, neg_tx.clone(), shared.clone())),
        tokio::spawn(negotiate_loop(
            neg_rx,
            signaling.clone(),
            shared.clone(),
            bind_ip,
        )),
    ];
    Ok(Connection {
        signaling,
        negotiator_tx: neg_tx,
        tasks,
    })
}

async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    shared: Arc<Shared>,
) {
    while let Some(msg) = rx.recv().await {
        let is_close = matches!(msg, Message::Close(_));
        if let Err(e) = sink.send(msg).await {
            if !shared.lock().ws_closed {
                shared.error(format!("websocket send: {e}"));
            }
            break;
        }
        if is_close {
            break;
        }
    }
}

async fn read_loop(
    mut stream: SplitStream<Ws>,
    neg_tx: mpsc::UnboundedSender<NegotiatorMsg>,
    shared: Arc<Shared>,
) {
    while let Some(msg) = stream.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            // Pings are answered by tungstenite itself while reading.
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => continue,
            Ok(Message::Binary(b)) => {
                shared.error(format!("server sent a binary frame ({} bytes)", b.len()));
                continue;
            }
            Ok(Message::Close(frame)) => {
                tracing::debug!(target: "mm_client", "server closed the websocket: {frame:?}");
                break;
            }
            Err(e) => {
                shared.error(format!("websocket read: {e}"));
                break;
            }
        };
        tracing::trace!(target: "mm_client", "<- {text}");
        match parse_incoming(&text) {
            Ok(Incoming::Response(resp)) => {
                let waiter = resp
                    .id
                    .and_then(|id| shared.update(|s| s.pending.remove(&id)));
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(resp);
                    }
                    None => shared.update(|s| s.unsolicited.push_back(resp)),
                }
            }
            Ok(Incoming::Notification(n)) => {
                if n.method == "recvOffer" {
                    let _ = neg_tx.send(NegotiatorMsg::Offer(n.data.clone()));
                }
                shared.update(|s| {
                    if n.method == "consumerClosed" {
                        if let Some(id) = n.data.get("consumerId").and_then(Value::as_str) {
                            s.close_consumer(id);
                        }
                    }
                    s.history.push(n.clone());
                    s.queue.push_back(n);
                });
            }
            Err(violation) => shared.error(format!("protocol violation: {violation}")),
        }
    }
    shared.update(|s| {
        s.ws_closed = true;
        // Dropping the senders fails every waiting request with `Closed`.
        s.pending.clear();
    });
}

async fn negotiate_loop(
    mut rx: mpsc::UnboundedReceiver<NegotiatorMsg>,
    signaling: Arc<Signaling>,
    shared: Arc<Shared>,
    bind_ip: IpAddr,
) {
    let mut transport: Option<Transport> = None;
    while let Some(msg) = rx.recv().await {
        match msg {
            NegotiatorMsg::Offer(data) => {
                if let Err(e) =
                    handle_offer(data, &mut transport, &signaling, &shared, bind_ip).await
                {
                    shared.error(format!("recv negotiation: {e}"));
                }
            }
            NegotiatorMsg::Shutdown(done) => {
                if let Some(t) = transport.take() {
                    t.stop().await;
                }
                let _ = done.send(());
                return;
            }
        }
    }
}

async fn handle_offer(
    data: Value,
    transport: &mut Option<Transport>,
    signaling: &Signaling,
    shared: &Arc<Shared>,
    bind_ip: IpAddr,
) -> Result<(), ClientError> {
    let offer: RecvOffer = serde_json::from_value(data)
        .map_err(|e| ClientError::Protocol(format!("recvOffer data: {e}")))?;
    // Register the consumers before the answer goes out, so no frame of a new mid arrives
    // before we know whose it is.
    shared.update(|s| s.add_consumers(&offer.consumers));
    if transport.is_none() {
        *transport = Some(Transport::spawn(
            TransportDir::Recv,
            bind_ip,
            None,
            shared.clone(),
        )?);
    }
    let Some(t) = transport.as_ref() else {
        return Err(ClientError::MediaThreadGone("recv"));
    };
    let answer = t
        .call(|reply| Command::AcceptOffer(offer.sdp, reply))
        .await?;
    signaling
        .request("recvAnswer", serde_json::json!({ "sdp": answer }))
        .await?;
    Ok(())
}
