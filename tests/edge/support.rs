//! Support for the operator-edge tests: a raw signaling WebSocket that can carry any request
//! headers (`Origin`, `X-Forwarded-For`, a relay header) and speaks docs/protocol.md as JSON
//! values, and a raw HTTP/1.1 GET that returns the status and headers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for one frame.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Logs of the in-process server, when `RUST_LOG` asks for them.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// One signaling connection.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

/// Why an upgrade failed: the HTTP status and body, or another error.
#[derive(Debug)]
pub enum Refused {
    /// The server answered the upgrade with this status and body.
    Status(u16, String),
    /// Anything else.
    Other(String),
}

/// Opens `/ws/<room>` on `addr` with `headers`.
pub async fn ws(addr: SocketAddr, room: &str, headers: &[(&str, &str)]) -> Result<Ws, Refused> {
    let mut request = format!("ws://{addr}/ws/{room}")
        .into_client_request()
        .map_err(|e| Refused::Other(e.to_string()))?;
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                .expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((stream, _)) => Ok(Ws { stream, next_id: 1 }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            Err(Refused::Status(status, body))
        }
        Err(e) => Err(Refused::Other(e.to_string())),
    }
}

/// What arrived on a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A JSON text frame.
    Json(Value),
    /// The server closed with this code and reason.
    Closed(u16, String),
}

impl Ws {
    /// Sends a text frame as is.
    pub async fn send_text(&mut self, text: String) {
        self.stream
            .send(Message::Text(text))
            .await
            .expect("the connection takes a frame");
    }

    /// Sends a request and returns its id.
    pub async fn send_request(&mut self, method: &str, data: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(
            json!({"type": "request", "id": id, "method": method, "data": data}).to_string(),
        )
        .await;
        id
    }

    /// The next JSON frame or the close, within [`FRAME_TIMEOUT`].
    pub async fn next(&mut self) -> Frame {
        loop {
            let frame = tokio::time::timeout(FRAME_TIMEOUT, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no frame within {FRAME_TIMEOUT:?}"));
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Frame::Json(serde_json::from_str(&text).expect("a JSON frame"))
                }
                Some(Ok(Message::Close(close))) => {
                    return Frame::Closed(
                        close.as_ref().map(|c| u16::from(c.code)).unwrap_or(1005),
                        close.map(|c| c.reason.to_string()).unwrap_or_default(),
                    )
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Frame::Closed(1006, e.to_string()),
                None => return Frame::Closed(1006, "ended".into()),
            }
        }
    }

    /// The next JSON frame; panics on a close.
    pub async fn next_json(&mut self) -> Value {
        match self.next().await {
            Frame::Json(v) => v,
            Frame::Closed(code, reason) => panic!("closed ({code} {reason}) instead of a frame"),
        }
    }

    /// The response to request `id`, skipping notifications.
    pub async fn response(&mut self, id: u64) -> Value {
        loop {
            let v = self.next_json().await;
            if v["type"] == "response" && v["id"] == id {
                return v;
            }
        }
    }

    /// The responses to every request of `ids`, in whatever order they arrive (a refused
    /// request may be answered before an earlier one that is processed), skipping
    /// notifications.
    pub async fn responses(&mut self, ids: &[u64]) -> HashMap<u64, Value> {
        let mut got = HashMap::new();
        while got.len() < ids.len() {
            let v = self.next_json().await;
            if let (Some("response"), Some(id)) = (v["type"].as_str(), v["id"].as_u64()) {
                if ids.contains(&id) {
                    assert!(got.insert(id, v).is_none(), "request {id} answered twice");
                }
            }
        }
        got
    }

    /// `welcome`, then `join`; returns the join response (ok or not).
    pub async fn join(&mut self, name: &str) -> Value {
        let welcome = self.next_json().await;
        assert_eq!(welcome["method"], "welcome", "first frame: {welcome}");
        let id = self
            .send_request("join", json!({"displayName": name, "protocolVersion": 1}))
            .await;
        self.response(id).await
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// The error code of a response, if it is an error.
pub fn error_code(response: &Value) -> Option<&str> {
    response["error"]["code"].as_str()
}

/// A raw HTTP/1.1 GET: status, headers (lowercase names), body.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HashMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(FRAME_TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// The samples of the metrics endpoint at `addr` by name (with labels), as numbers; asserts
/// that it answers 200.
pub async fn metric_values(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, _, body) = http_get(addr, "/metrics", &[]).await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}
