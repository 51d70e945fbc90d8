//! The WebSocket edge: checks the page's `Origin` and the connections of the client's
//! address, upgrades `/ws/<room>` and either starts a [`PeerActor`] here, when this instance
//! hosts the room (or a participant relayed by another instance arrives), or relays the socket
//! to the instance that hosts the room ([`super::relay`]). It keeps each connection within its
//! signaling rate, parses nothing beyond frame types (and a refused frame's request id), and
//! never touches media. Each connection's task and actor run in a tracing span naming the
//! client, the room and the peer.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, AsyncContext, Context};
use actix_session::Session;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

use super::frames;
use super::limits::ConnectionSlot;
use super::proxy::ClientInfo;
use super::relay::{self, Link, RELAY_HEADER};
use super::AppState;
use crate::ids::{NodeId, PeerId, RoomId};
use crate::room::messages::{JoinError, Resolve, Route};
use crate::room::{ClientText, ConnectionClosed, Heard, Origin, Outbound, PeerActor};
use crate::routing::LEASE_TTL;
use crate::signaling::protocol::{request_id, MAX_MESSAGE_BYTES};
use crate::signaling::{ErrorCode, Notification, ServerMessage, SignalError};

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
        // The host counts the participant under the address the edge believed.
        let slot = match state
            .limits
            .open_connection(claims.ip.parse::<IpAddr>().ok())
        {
            Ok(slot) => slot,
            Err(refused) => return refuse(&req, body, &state, refused.to_signal_error()),
        };
        let origin = Origin {
            client_ip: Some(claims.ip),
            user: claims.user,
            relayed_by: Some(claims.from),
        };
        return serve_here(&req, body, room, origin, &state, slot);
    }
    let client = req.extensions().get::<ClientInfo>().cloned();
    let page = req
        .headers()
        .get(actix_web::http::header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    // The middleware resolved the client; should it not have, resolve it here (fail closed).
    let checked = client
        .clone()
        .unwrap_or_else(|| super::proxy::client_info(&req, &state.trusted));
    if let Err(refused) = state.origins.check(page, &checked) {
        state.metrics.origin_refused();
        warn!(client = %checked.ip, %room, "WebSocket refused: {refused}");
        return Ok(HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body(format!("{refused}\n")));
    }
    let slot = match state.limits.open_connection(client.as_ref().map(|c| c.ip)) {
        Ok(slot) => slot,
        Err(refused) => {
            info!(client = ?client.as_ref().map(|c| c.ip), %room, "WebSocket refused: {refused}");
            return refuse(&req, body, &state, refused.to_signal_error());
        }
    };
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
            let span = tracing::info_span!(
                "relay",
                client = origin.client_ip.as_deref().unwrap_or("-"),
                room = %room,
                host = %host
            );
            let pipe = relay::pipe(
                session,
                stream,
                link,
                state.heartbeat,
                state.relays.clone(),
                room,
                host,
            );
            actix_web::rt::spawn(
                async move {
                    // The connection counts until the relay ends.
                    let _slot = slot;
                    pipe.await
                }
                .instrument(span),
            );
            return Ok(response);
        }
    }
    serve_here(&req, body, room, origin, &state, slot)
}

/// Upgrades only to say why the connection is refused (browsers cannot read an HTTP error
/// status of a WebSocket): an `error` notification with `error`'s code, then a close with
/// "policy violation".
fn refuse(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    error: SignalError,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, mut session, _stream) = actix_ws::handle(req, body)?;
    state.metrics.signaling_error(error.code);
    let reason = error.message.clone();
    actix_web::rt::spawn(async move {
        let text = ServerMessage::Notification(Notification::Error(error)).to_text();
        if session.text(text).await.is_ok() {
            let _ = session
                .close(Some(CloseReason {
                    code: CloseCode::Policy,
                    description: Some(reason),
                }))
                .await;
        }
    });
    Ok(response)
}

/// Starts `actor` with every one of its handlers running inside `span` (actix runs an actor
/// as one future; instrumenting that future is what puts the span around its log lines).
fn start_in_span<A>(actor: A, span: tracing::Span) -> Addr<A>
where
    A: Actor<Context = Context<A>>,
{
    let ctx = Context::new();
    let addr = ctx.address();
    actix_web::rt::spawn(ctx.into_future(actor).instrument(span));
    addr
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

/// Upgrades and starts the participant's [`PeerActor`] on this instance; `slot` counts the
/// connection until it ends.
fn serve_here(
    req: &HttpRequest,
    body: web::Payload,
    room: RoomId,
    origin: Origin,
    state: &AppState,
    slot: ConnectionSlot,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, mut session, stream) = actix_ws::handle(req, body)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let peer_id = PeerId::random();
    let span = match &origin.relayed_by {
        None => tracing::info_span!(
            "peer",
            client = origin.client_ip.as_deref().unwrap_or("-"),
            room = %room,
            peer = %peer_id
        ),
        Some(edge) => tracing::info_span!(
            "peer",
            client = origin.client_ip.as_deref().unwrap_or("-"),
            room = %room,
            peer = %peer_id,
            relayed_by = %edge
        ),
    };
    debug!(parent: &span, "websocket opened");
    let peer = start_in_span(
        PeerActor::new(
            peer_id,
            room,
            origin,
            state.registry.clone().recipient(),
            tx,
            state.heartbeat,
        )
        .with_policy(state.policy.clone()),
        span.clone(),
    );
    let mut stream = stream
        .max_frame_size(MAX_MESSAGE_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_MESSAGE_BYTES);
    // Frames over the rate are answered here, so a flood never reaches (or queues in) the
    // peer's actor.
    let mut budget = state.limits.signaling_bucket();
    let over_rate = state.limits.signaling_exceeded().to_signal_error();
    let metrics = state.metrics.clone();
    let task = async move {
        let _slot = slot;
        let mut refused = 0u64;
        let ended = loop {
            tokio::select! {
                frame = stream.next() => match frame {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        if budget.as_mut().is_none_or(|b| b.take(Instant::now())) {
                            peer.do_send(ClientText(text.to_string()));
                            continue;
                        }
                        refused += 1;
                        if refused == 1 || refused.is_power_of_two() {
                            info!(refused, "signaling rate exceeded: {over_rate}");
                        }
                        metrics.signaling_error(over_rate.code);
                        let reply = ServerMessage::error(request_id(&text), over_rate.clone());
                        if session.text(reply.to_text()).await.is_err() {
                            break ConnectionClosed::Closed;
                        }
                        peer.do_send(Heard);
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        let err = SignalError::new(ErrorCode::BadRequest, "binary frames are not part of the protocol; send JSON text");
                        metrics.signaling_error(err.code);
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
                        if frames::send_text(&mut session, text).await.is_err() {
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
    };
    actix_web::rt::spawn(task.instrument(span));
    Ok(response)
}
