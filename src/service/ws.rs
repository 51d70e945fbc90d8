//! The WebSocket edge: upgrades `/ws/<room>`, starts a [`PeerActor`] and moves frames between
//! the socket and the actor. It parses nothing beyond frame types and never touches media.

use actix::Actor;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::debug;

use super::AppState;
use crate::ids::{PeerId, RoomId};
use crate::room::{ClientText, ConnectionClosed, Heard, Outbound, PeerActor};
use crate::signaling::protocol::MAX_MESSAGE_BYTES;
use crate::signaling::{ErrorCode, ServerMessage, SignalError};

/// `GET /ws/{room}`: the signaling socket of one peer.
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let room =
        RoomId::parse(&path).map_err(|e| actix_web::error::ErrorBadRequest(e.to_string()))?;
    let (response, mut session, stream) = actix_ws::handle(&req, body)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let peer_id = PeerId::random();
    debug!(%room, peer = %peer_id, "websocket opened");
    let peer = PeerActor::new(
        peer_id,
        room,
        state.registry.clone().recipient(),
        tx,
        state.heartbeat,
    )
    .start();
    let mut stream = stream
        .max_frame_size(MAX_MESSAGE_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_MESSAGE_BYTES);
    actix_web::rt::spawn(async move {
        let ended = loop {
            tokio::select! {
                frame = stream.next() => match frame {
                    Some(Ok(AggregatedMessage::Text(text))) => peer.do_send(ClientText(text.to_string())),
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        let err = SignalError::new(ErrorCode::BadRequest, "binary frames are not part of the protocol; send JSON text");
                        if session.text(ServerMessage::error(None, err).to_text()).await.is_err() {
                            break ConnectionClosed::Closed;
                        }
                        peer.do_send(Heard);
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        let _ = session.pong(&bytes).await;
                        peer.do_send(Heard);
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => peer.do_send(Heard),
                    Some(Ok(AggregatedMessage::Close(_))) | None => break ConnectionClosed::Closed,
                    Some(Err(e)) => break ConnectionClosed::Error(e.to_string()),
                },
                out = rx.recv() => match out {
                    Some(Outbound::Text(text)) => {
                        if session.text(text).await.is_err() {
                            break ConnectionClosed::Closed;
                        }
                    }
                    Some(Outbound::Ping) => {
                        if session.ping(b"").await.is_err() {
                            break ConnectionClosed::Closed;
                        }
                    }
                    Some(Outbound::Close(reason)) => {
                        let _ = session.close(Some(CloseReason { code: CloseCode::Normal, description: Some(reason) })).await;
                        return;
                    }
                    None => {
                        let _ = session.close(None).await;
                        return;
                    }
                },
            }
        };
        peer.do_send(ended);
        // Drain until the actor says goodbye so its last frames still go out.
        while let Some(out) = rx.recv().await {
            if let Outbound::Close(_) = out {
                break;
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}
