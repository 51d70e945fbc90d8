//! `ClientError`: every way a [`Client`](super::Client) operation can fail.

use std::time::Duration;

/// Errors returned by the test client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL was not `http://host:port` or `https://host:port`, or the room name is empty.
    #[error("invalid url or room: {0}")]
    InvalidUrl(String),

    /// The WebSocket could not be opened or failed while in use.
    #[error("websocket: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),

    /// The WebSocket is closed (by the server, by `close()`, or after an I/O error).
    #[error("signaling connection closed")]
    Closed,

    /// Nothing matching arrived in time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),

    /// The server answered a request with `ok: false`.
    #[error("server error {code}: {message}")]
    Server {
        /// The protocol error code, e.g. `badRequest`, `notFound`.
        code: String,
        /// Human-readable explanation sent by the server.
        message: String,
    },

    /// The server sent something that does not follow docs/protocol.md.
    #[error("protocol violation: {0}")]
    Protocol(String),

    /// str0m refused an SDP or an operation.
    #[error("webrtc: {0}")]
    Rtc(String),

    /// A local socket or thread operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),

    /// `publish` was called while this client already publishes.
    #[error("this client already publishes; one publish per client is supported")]
    AlreadyPublished,

    /// A media thread stopped unexpectedly (its error is logged).
    #[error("media thread for the {0} transport is gone")]
    MediaThreadGone(&'static str),
}

impl ClientError {
    /// The protocol error code if this is a server error response (`ok: false`).
    pub fn server_code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        ClientError::WebSocket(Box::new(e))
    }
}

impl From<serde_json::Error> for ClientError {
    fn from(e: serde_json::Error) -> Self {
        ClientError::Protocol(format!("json: {e}"))
    }
}

impl From<str0m::RtcError> for ClientError {
    fn from(e: str0m::RtcError) -> Self {
        ClientError::Rtc(e.to_string())
    }
}
