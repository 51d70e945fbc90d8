//! The WebSocket edge: upgrades `/ws/<room>` and either starts a [`PeerActor`] here, when this
//! instance hosts the room (or a participant relayed by another instance arrives), or relays
//! the socket to the instance that hosts the room ([`super::relay`]). It parses nothing
//! beyond frame types and never touches media.

use std::time::{Duration, Instant};

use actix::Actor;
use actix_session::Session;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::proxy::ClientInfo;
use super::relay::{self, Link, RELAY_HEADER};
use super::AppState;
use crate::ids::{NodeId, PeerId, RoomId};
use crate::room::messages::{JoinError, Resolve, Route};
use crate::room::{ClientText, ConnectionClosed, Heard, Origin, Outbound, PeerActor};
use crate::routing::LEASE_TTL;
use crate::signaling::protocol::MAX_MESSAGE_BYTES;
use crate::signaling::{ErrorCode, ServerMessage, SignalError};

/// `GET /ws/{room}`: the signaling socket of one peer.
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<String>,
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, actix_web::Error> {
    let room =
        RoomId::parse(&path).map_err(|e| actix_web::error::ErrorBadRequest(e.to_string()))?;
    // Relayed by another instance: believe its signed header, serve here, never relay again.
    if let Some(header) = req.headers().get(RELAY_HEADER) {
        let claims = header
            .to_str()
            .map_err(|_| relay::RelayAuthError::Malformed)
            .and_then(|h| state.relay_auth.verify(h, &room))
            .map_err(|e| {
                warn!(%room, peer_addr = ?req.peer_addr(), "relayed upgrade refused: {e}");
                actix_web::error::ErrorForbidden(e.to_string())
            })?;
        let origin = Origin {
            client_ip: Some(claims.ip),
            user: claims.user,
            relayed_by: Some(claims.from),
        };
        return serve_here(&req, body, room, origin, &state);
    }
    let client = req.extensions().get::<ClientInfo>().cloned();
    // During a Redis outage the session cannot be read; the participant still gets in.
    let user = session.get::<String>("user").ok().flatten();
    let origin = Origin {
        client_ip: client.as_ref().map(|c| c.ip.to_string()),
        user,
        relayed_by: None,
    };
    if state.directory_shared {
        if let Some((link, host)) = find_host(&state, &room, client.as_ref(), &origin).await {
            let (response, session, stream) = actix_ws::handle(&req, body)?;
            let stream = stream
                .max_frame_size(MAX_MESSAGE_BYTES)
                .aggregate_continuations()
                .max_continuation_size(MAX_MESSAGE_BYTES);
            actix_web::rt::spawn(relay::pipe(
                session,
                stream,
                link,
                state.heartbeat,
                state.relays.clone(),
                room,
                host,
            ));
            return Ok(response);
        }
    }
    serve_here(&req, body, room, origin, &state)
}

/// When another instance hosts `room`, connects to it. `None` means serve here: the room is
/// open here now, or the peer will tell the client why it cannot join. A host that died keeps
/// its lease for up to [`LEASE_TTL`]: meanwhile this waits, then the room is claimed here.
async fn find_host(
    state: &AppState,
    room: &RoomId,
    client: Option<&ClientInfo>,
    origin: &Origin,
) -> Option<(Link, NodeId)> {
    let deadline = Instant::now() + LEASE_TTL + Duration::from_secs(1);
    loop {
        let resolve = Resolve {
            room: room.clone(),
            relayed: false,
        };
        match state.registry.send(resolve).await {
            Ok(Ok(Route::Remote(host))) => {
                let claims = relay::claims(
                    &state.node,
                    room,
                    origin.client_ip.clone().unwrap_or_default(),
                    client.map(|c| c.scheme.clone()).unwrap_or_default(),
                    client.map(|c| c.host.clone()).unwrap_or_default(),
                    origin.user.clone(),
                );
                match relay::connect(&host, room, state.relay_auth.sign(&claims)).await {
                    Ok(link) => return Some((link, host.id)),
                    Err(e) => debug!(%room, "{e}; trying again"),
                }
            }
            Ok(Err(JoinError::HostUnreachable(node))) => {
                debug!(%room, %node, "the room's host does not answer; waiting for its lease")
            }
            _ => return None,
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Upgrades and starts the participant's [`PeerActor`] on this instance.
fn serve_here(
    req: &HttpRequest,
    body: web::Payload,
    room: RoomId,
    origin: Origin,
    state: &AppState,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, mut session, stream) = actix_ws::handle(req, body)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let peer_id = PeerId::random();
    debug!(%room, peer = %peer_id, relayed_by = ?origin.relayed_by, "websocket opened");
    let peer = PeerActor::new(
        peer_id,
        room,
        origin,
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
