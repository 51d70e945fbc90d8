//! A JSON-over-WebSocket connection shared by both signaling dialects: a reader task routes
//! each frame either to the request waiting for it (matched by a key the dialect extracts:
//! our `id`, Janus' `transaction`) or to the notification queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Extracts the key that matches a frame to a pending request (None: a notification).
pub type KeyFn = fn(&Value) -> Option<String>;

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// An open connection.
pub struct JsonWs {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    notifications: mpsc::UnboundedReceiver<Value>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    timeout: Duration,
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
    // A poisoned map only means another task panicked while holding it; the map is fine.
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl JsonWs {
    /// Connects to `url` (with `Sec-WebSocket-Protocol: subprotocol` when given).
    pub async fn connect(
        url: &str,
        subprotocol: Option<&str>,
        key: KeyFn,
        timeout: Duration,
    ) -> anyhow::Result<JsonWs> {
        let mut request = url
            .into_client_request()
            .with_context(|| format!("bad WebSocket url {url}"))?;
        if let Some(p) = subprotocol {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p)?);
        }
        let (ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request))
            .await
            .map_err(|_| anyhow!("WebSocket {url}: no handshake within {timeout:?}"))?
            .with_context(|| format!("WebSocket {url}"))?;
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (note_tx, note_rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let close = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || close {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let reader_pending = pending.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if let Some(k) = key(&v) {
                    if let Some(tx) = lock(&reader_pending).remove(&k) {
                        let _ = tx.send(v);
                        continue;
                    }
                }
                if note_tx.send(v).is_err() {
                    break;
                }
            }
            // Dropping the senders fails every waiting request.
            lock(&reader_pending).clear();
        });
        Ok(JsonWs {
            out: out_tx,
            pending,
            notifications: note_rx,
            tasks: vec![writer, reader],
            timeout,
        })
    }

    /// Sends `frame` and waits for the frame whose key is `key`.
    pub async fn request(&self, key: String, frame: Value) -> anyhow::Result<Value> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(key.clone(), tx);
        self.send(frame)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(anyhow!("signaling connection closed")),
            Err(_) => {
                lock(&self.pending).remove(&key);
                Err(anyhow!(
                    "no response within {:?} to {}",
                    self.timeout,
                    short(&frame_method(&key))
                ))
            }
        }
    }

    /// Sends a frame without waiting.
    pub fn send(&self, frame: Value) -> anyhow::Result<()> {
        self.out
            .send(Message::Text(frame.to_string()))
            .map_err(|_| anyhow!("signaling connection closed"))
    }

    /// The next notification; None once the connection is closed.
    pub async fn next_notification(&mut self) -> Option<Value> {
        self.notifications.recv().await
    }

    /// Sends a close frame and stops the tasks shortly after.
    pub async fn close(self) {
        let _ = self.out.send(Message::Close(None));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for JsonWs {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn frame_method(key: &str) -> String {
    format!("request {key}")
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}
