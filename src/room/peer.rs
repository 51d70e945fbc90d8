//! [`PeerActor`]: one participant's connection. Turns parsed client requests into requests to
//! its room (the only actor it speaks to once joined), turns room and media events into
//! notifications, keeps the heartbeat, and on every exit path (leave request, socket closed or
//! failed, heartbeat timeout) leaves the room in `stopped()`. It owns no socket and no media
//! state: frames come in as [`ClientText`] and go out through an [`Outbound`] channel that the
//! WebSocket edge drains.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info};

use super::messages::*;
use super::policy::{Admitted, OpenPolicy, PeerPolicy};
use super::RoomActor;
use crate::ids::{NodeId, PeerId, RoomId};
use crate::routing::LEASE_TTL;
use crate::sfu::{MediaError, MediaEvent};
use crate::signaling::protocol::{JoinRequest, PublishedTrack};
use crate::signaling::{
    parse_request, ClientRequest, Empty, ErrorCode, JoinResponse, LobbyPeerInfo, MediaBlockKind,
    Notification, PublishResponse, PublishedProducer, RequestId, ResponseData, ServerMessage,
    SignalError, PROTOCOL_VERSION,
};

/// Longest accepted display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 64;

/// What the WebSocket edge must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Send a text frame.
    Text(String),
    /// Send a ping frame.
    Ping,
    /// Close the socket with this reason.
    Close(String),
}

/// A text frame from the client.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ClientText(pub String);

/// The client showed a sign of life (pong or any frame).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Heard;

/// How the connection ended, as seen by the WebSocket edge.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum ConnectionClosed {
    /// The client closed the socket.
    Closed,
    /// The socket failed.
    Error(String),
}

/// Why a peer actor stopped; logged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ExitReason {
    Running,
    LeaveRequest,
    SocketClosed,
    SocketError(String),
    HeartbeatTimeout,
    Evicted(String),
}

/// Timing of the heartbeat.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    /// Time between pings.
    pub interval: Duration,
    /// Silence after which the peer is gone.
    pub timeout: Duration,
}

enum State {
    Connected,
    Joining,
    /// Waiting in the room's lobby: only renaming and leaving.
    Lobby(Addr<RoomActor>),
    Joined(Addr<RoomActor>),
}

/// Who is behind a peer's connection, as the WebSocket edge established it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address (believed from a trusted proxy or from the relaying instance).
    pub client_ip: Option<String>,
    /// The browser session's user id, when it has a session.
    pub user: Option<String>,
    /// The instance that relayed this participant here, if any; a relayed participant is
    /// never sent on to a third instance.
    pub relayed_by: Option<NodeId>,
}

/// One participant.
pub struct PeerActor {
    id: PeerId,
    room_id: RoomId,
    origin: Origin,
    /// Where rooms are found; held for the actor's life.
    registry: Recipient<Resolve>,
    /// Frames to the WebSocket edge; closing it (dropping the actor) closes the socket.
    out: UnboundedSender<Outbound>,
    heartbeat: Heartbeat,
    last_heard: Instant,
    state: State,
    exit: ExitReason,
    /// The edge's limits, ICE servers and observations ([`OpenPolicy`] unless set).
    policy: Arc<dyn PeerPolicy>,
    /// The place the policy holds for this participant, from `join` until it leaves.
    admitted: Option<Admitted>,
}

impl PeerActor {
    /// A peer that will join `room_id` when the client asks.
    pub fn new(
        id: PeerId,
        room_id: RoomId,
        origin: Origin,
        registry: Recipient<Resolve>,
        out: UnboundedSender<Outbound>,
        heartbeat: Heartbeat,
    ) -> Self {
        Self {
            id,
            room_id,
            origin,
            registry,
            out,
            heartbeat,
            last_heard: Instant::now(),
            state: State::Connected,
            exit: ExitReason::Running,
            policy: Arc::new(OpenPolicy),
            admitted: None,
        }
    }

    /// The same peer under the edge's `policy` (limits, ICE servers, metrics).
    pub fn with_policy(mut self, policy: Arc<dyn PeerPolicy>) -> Self {
        self.policy = policy;
        self
    }

    fn send(&self, msg: ServerMessage) {
        match &msg {
            ServerMessage::Response { error: Some(e), .. }
            | ServerMessage::Notification(Notification::Error(e)) => self.policy.refused(e.code),
            _ => {}
        }
        let _ = self.out.send(Outbound::Text(msg.to_text()));
    }

    fn notify(&self, n: Notification) {
        self.send(ServerMessage::Notification(n));
    }

    fn reply(&self, id: RequestId, result: Result<ResponseData, SignalError>) {
        self.send(match result {
            Ok(data) => ServerMessage::ok(id, data),
            Err(e) => ServerMessage::error(Some(id), e),
        });
    }

    fn on_request(&mut self, id: RequestId, req: ClientRequest, ctx: &mut Context<Self>) {
        if let ClientRequest::Join(j) = req {
            return self.join(id, j, ctx);
        }
        let room = match &self.state {
            State::Joined(room) => room.clone(),
            State::Lobby(room)
                if matches!(
                    req,
                    ClientRequest::ChangeDisplayName { .. } | ClientRequest::Leave {}
                ) =>
            {
                room.clone()
            }
            State::Lobby(_) => return self.reply(id, Err(room_error(RoomError::InLobby))),
            State::Connected | State::Joining => {
                return self.reply(
                    id,
                    Err(SignalError::new(ErrorCode::NotJoined, "send 'join' first")),
                )
            }
        };
        let peer = self.id.clone();
        if let Some(action) = meeting_action(&req) {
            return self.ack(id, ctx, room.send(Act { peer, action }));
        }
        match req {
            ClientRequest::Join(_) => {}
            ClientRequest::Publish { sdp, producers } => {
                let tracks = producers.into_iter().map(new_track).collect();
                let ask = room.send(Publish { peer, sdp, tracks });
                self.respond_later(id, ctx, async move {
                    let published = ask.await.map_err(mailbox_error)?.map_err(room_error)?;
                    Ok(ResponseData::Publish(PublishResponse {
                        sdp: published.sdp,
                        producers: published
                            .producers
                            .into_iter()
                            .map(|(mid, id)| PublishedProducer { mid, id })
                            .collect(),
                    }))
                })
            }
            ClientRequest::RecvAnswer { sdp } => {
                self.ack(id, ctx, room.send(RecvAnswer { peer, sdp }))
            }
            ClientRequest::PauseProducer { producer_id } => self.ack(
                id,
                ctx,
                room.send(SetProducerPaused {
                    peer,
                    producer: producer_id,
                    paused: true,
                }),
            ),
            ClientRequest::ResumeProducer { producer_id } => self.ack(
                id,
                ctx,
                room.send(SetProducerPaused {
                    peer,
                    producer: producer_id,
                    paused: false,
                }),
            ),
            ClientRequest::CloseProducer { producer_id } => self.ack(
                id,
                ctx,
                room.send(CloseProducer {
                    peer,
                    producer: producer_id,
                }),
            ),
            ClientRequest::SetConsumerPreferences {
                consumer_id,
                width,
                height,
            } => self.ack(
                id,
                ctx,
                room.send(SetConsumerPreferences {
                    peer,
                    consumer: consumer_id,
                    width,
                    height,
                }),
            ),
            ClientRequest::RequestKeyFrame { consumer_id } => self.ack(
                id,
                ctx,
                room.send(RequestKeyFrame {
                    peer,
                    consumer: consumer_id,
                }),
            ),
            ClientRequest::ChangeDisplayName { display_name } => {
                match valid_display_name(&display_name) {
                    Ok(display_name) => {
                        self.ack(id, ctx, room.send(ChangeDisplayName { peer, display_name }))
                    }
                    Err(e) => self.reply(id, Err(e)),
                }
            }
            ClientRequest::Leave {} => {
                self.reply(id, Ok(ResponseData::Empty(Empty {})));
                self.exit = ExitReason::LeaveRequest;
                ctx.stop();
            }
            // Meeting actions were sent to the room above.
            _ => {}
        }
    }

    /// Answers `{}` or the room's error once `ask` completes.
    fn ack(
        &mut self,
        id: RequestId,
        ctx: &mut Context<Self>,
        ask: impl std::future::Future<Output = Result<Result<(), RoomError>, MailboxError>> + 'static,
    ) {
        self.respond_later(id, ctx, async move {
            ask.await.map_err(mailbox_error)?.map_err(room_error)?;
            Ok(ResponseData::Empty(Empty {}))
        });
    }

    /// Runs `fut` with the actor paused (requests are answered in order) and replies.
    fn respond_later(
        &mut self,
        id: RequestId,
        ctx: &mut Context<Self>,
        fut: impl std::future::Future<Output = Result<ResponseData, SignalError>> + 'static,
    ) {
        ctx.wait(
            fut.into_actor(self)
                .map(move |result, act, _| act.reply(id, result)),
        );
    }

    fn join(&mut self, id: RequestId, j: JoinRequest, ctx: &mut Context<Self>) {
        if !matches!(self.state, State::Connected) {
            return self.reply(
                id,
                Err(SignalError::new(ErrorCode::AlreadyJoined, "already joined")),
            );
        }
        if j.protocol_version != PROTOCOL_VERSION {
            return self.reply(
                id,
                Err(SignalError::new(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "this server speaks protocol version {PROTOCOL_VERSION}, not {}",
                        j.protocol_version
                    ),
                )),
            );
        }
        // The join rate is counted before the token is checked, so tokens cannot be tried
        // faster than joins are allowed.
        let place = match self.policy.admit(&self.id, &self.origin) {
            Ok(place) => place,
            Err(e) => return self.reply(id, Err(e)),
        };
        let token = j.token.as_ref().map(|t| t.0.as_str());
        let grant = match self.policy.authorize(&self.room_id, token) {
            Ok(grant) => grant.unwrap_or_default(),
            Err(e) => return self.reply(id, Err(e)),
        };
        // A name the token fixes wins over the one typed in the join form.
        let display_name =
            match valid_display_name(grant.name.as_deref().unwrap_or(&j.display_name)) {
                Ok(n) => n,
                Err(e) => return self.reply(id, Err(e)),
            };
        self.admitted = Some(place);
        let started = Instant::now();
        self.state = State::Joining;
        let registry = self.registry.clone();
        let resolve = Resolve {
            room: self.room_id.clone(),
            relayed: self.origin.relayed_by.is_some(),
        };
        let join = Join {
            peer: self.id.clone(),
            display_name,
            user: self.origin.user.clone(),
            access_code: j.access_code,
            granted_roles: grant.roles,
            events: ctx.address().recipient(),
            media_events: ctx.address().recipient(),
        };
        let fut = async move {
            // A host that just died keeps its lease for up to LEASE_TTL; a room that just
            // closed refuses once. Both resolve again shortly.
            let deadline = Instant::now() + LEASE_TTL + Duration::from_secs(1);
            loop {
                let route = registry
                    .send(Resolve {
                        room: resolve.room.clone(),
                        relayed: resolve.relayed,
                    })
                    .await
                    .map_err(|_| JoinError::Closing)?;
                match route {
                    Ok(Route::Local(room)) => {
                        let attempt = Join {
                            peer: join.peer.clone(),
                            display_name: join.display_name.clone(),
                            user: join.user.clone(),
                            access_code: join.access_code.clone(),
                            granted_roles: join.granted_roles.clone(),
                            events: join.events.clone(),
                            media_events: join.media_events.clone(),
                        };
                        if let Ok(result) = room.send(attempt).await {
                            return result.map(|j| (room, j));
                        }
                    }
                    Ok(Route::Remote(_)) => return Err(JoinError::Moved),
                    Err(JoinError::HostUnreachable(node)) if Instant::now() >= deadline => {
                        return Err(JoinError::HostUnreachable(node))
                    }
                    Err(JoinError::HostUnreachable(_)) => {}
                    Err(e) => return Err(e),
                }
                if Instant::now() >= deadline {
                    return Err(JoinError::Closing);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        ctx.wait(
            fut.into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok((room, joined)) => {
                        act.state = if joined.lobby {
                            State::Lobby(room)
                        } else {
                            State::Joined(room)
                        };
                        info!(room = %act.room_id, peer = %act.id, client = act.origin.client_ip.as_deref().unwrap_or("-"), relayed_by = ?act.origin.relayed_by, lobby = joined.lobby, "joined");
                        let response = act.join_response(joined);
                        act.reply(id, Ok(ResponseData::Join(response)));
                        act.policy.joined(started.elapsed());
                    }
                    Err(JoinError::Moved) => {
                        // Another instance hosts the room now: the client reconnects, and the
                        // edge it reaches relays it there.
                        act.state = State::Connected;
                        act.admitted = None;
                        act.reply(id, Err(join_error(JoinError::Moved)));
                        let reason = JoinError::Moved.to_string();
                        act.notify(Notification::Reconnect {
                            reason: reason.clone(),
                        });
                        act.exit = ExitReason::Evicted(reason);
                        ctx.stop();
                    }
                    Err(e) => {
                        act.state = State::Connected;
                        act.admitted = None;
                        act.reply(id, Err(join_error(e)));
                    }
                }),
        );
    }
}

impl PeerActor {
    fn join_response(&self, joined: Joined) -> JoinResponse {
        JoinResponse {
            peer_id: self.id.clone(),
            room_id: self.room_id.clone(),
            lobby: joined.lobby,
            peers: joined.peers,
            ice_servers: self.policy.ice_servers(&self.id),
            roles: joined.roles,
            permissions: joined.permissions,
            chat_history: joined.chat_history,
            locked: joined.locked,
        }
    }

    /// Tells the client why the room ended this connection, then closes it.
    fn end(&mut self, notification: Notification, reason: &str, ctx: &mut Context<Self>) {
        self.notify(notification);
        self.exit = ExitReason::Evicted(reason.to_string());
        ctx.stop();
    }
}

/// The room action of a meeting request, if it is one.
fn meeting_action(req: &ClientRequest) -> Option<Action> {
    let block = |kind: MediaBlockKind| match kind {
        MediaBlockKind::Audio => MediaBlock::Audio,
        MediaBlockKind::Video => MediaBlock::Video,
        MediaBlockKind::Screen => MediaBlock::Screen,
    };
    Some(match req.clone() {
        ClientRequest::ChatMessage { text } => Action::Chat(text),
        ClientRequest::ClearChat {} => Action::ClearChat,
        ClientRequest::RaiseHand { raised } => Action::RaiseHand(raised),
        ClientRequest::LowerHand { peer_id } => Action::LowerHand(peer_id),
        ClientRequest::LockRoom {} => Action::SetLocked(true),
        ClientRequest::UnlockRoom {} => Action::SetLocked(false),
        ClientRequest::SetAccessCode { code } => Action::SetAccessCode(code),
        ClientRequest::PromotePeer { peer_id } => Action::Admit(peer_id),
        ClientRequest::PromoteAllPeers {} => Action::AdmitAll,
        ClientRequest::DenyPeer { peer_id } => Action::Deny(peer_id),
        ClientRequest::GiveRole { peer_id, role } => Action::GiveRole(peer_id, role),
        ClientRequest::RemoveRole { peer_id, role } => Action::RemoveRole(peer_id, role),
        ClientRequest::MutePeer { peer_id } => Action::Block(peer_id, MediaBlock::Audio),
        ClientRequest::MuteAll {} => Action::BlockAll(MediaBlock::Audio),
        ClientRequest::StopPeerVideo { peer_id } => Action::Block(peer_id, MediaBlock::Video),
        ClientRequest::StopAllVideo {} => Action::BlockAll(MediaBlock::Video),
        ClientRequest::StopPeerScreenShare { peer_id } => {
            Action::Block(peer_id, MediaBlock::Screen)
        }
        ClientRequest::AllowMedia { peer_id, kind } => Action::Allow(peer_id, block(kind)),
        ClientRequest::KickPeer { peer_id } => Action::Kick(peer_id),
        ClientRequest::CloseMeeting {} => Action::CloseMeeting,
        _ => return None,
    })
}

fn block_kind(b: MediaBlock) -> MediaBlockKind {
    match b {
        MediaBlock::Audio => MediaBlockKind::Audio,
        MediaBlock::Video => MediaBlockKind::Video,
        MediaBlock::Screen => MediaBlockKind::Screen,
    }
}

fn new_track(t: PublishedTrack) -> NewTrack {
    NewTrack {
        mid: t.mid,
        kind: t.kind,
        source: t.source,
    }
}

fn valid_display_name(name: &str) -> Result<String, SignalError> {
    let name = name.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(SignalError::new(
            ErrorCode::BadRequest,
            format!("displayName must be 1 to {MAX_DISPLAY_NAME} printable characters"),
        ));
    }
    Ok(name.to_string())
}

fn media_error(e: MediaError) -> SignalError {
    let code = match &e {
        MediaError::InvalidSdp(detail) => {
            return SignalError::new(
                ErrorCode::InvalidSdp,
                format!("invalid SDP: {}", sdp_problem(detail)),
            )
        }
        MediaError::UnknownConsumer(_) => ErrorCode::NotFound,
        MediaError::BadTrack(_) => ErrorCode::BadRequest,
        MediaError::NoPendingOffer | MediaError::UnknownPeer(_) => ErrorCode::BadState,
        MediaError::WorkerGone | MediaError::Timeout => ErrorCode::Internal,
    };
    SignalError::new(code, e.to_string())
}

/// The SDP parser's message, fit for the client: one line, and without the parser's memory
/// addresses (`Parse error at PointerOffset(0x7f…)`), which tell the client nothing and
/// leak the server's address layout.
fn sdp_problem(detail: &str) -> String {
    let mut out = String::with_capacity(detail.len());
    let mut rest = detail;
    while let Some(at) = rest.find("PointerOffset(") {
        out.push_str(rest[..at].trim_end_matches("at ").trim_end());
        rest = match rest[at..].find(')') {
            Some(end) => &rest[at + end + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn room_error(e: RoomError) -> SignalError {
    let code = match e {
        RoomError::NotInRoom => ErrorCode::NotJoined,
        RoomError::UnknownProducer(_) | RoomError::UnknownPeer(_) => ErrorCode::NotFound,
        RoomError::BadTrack(_) | RoomError::Invalid(_) => ErrorCode::BadRequest,
        RoomError::Forbidden(_) => ErrorCode::Forbidden,
        RoomError::InLobby => ErrorCode::InLobby,
        RoomError::Media(e) => return media_error(e),
    };
    SignalError::new(code, e.to_string())
}

fn join_error(e: JoinError) -> SignalError {
    let code = match &e {
        JoinError::RoomFull(_) => ErrorCode::RoomFull,
        JoinError::AlreadyJoined => ErrorCode::AlreadyJoined,
        JoinError::Closing | JoinError::HostUnreachable(_) | JoinError::Moved => {
            ErrorCode::RoomClosing
        }
        JoinError::DirectoryUnavailable(_) => ErrorCode::Unavailable,
        JoinError::WrongAccessCode => ErrorCode::WrongAccessCode,
        JoinError::TooManyRooms(_) => ErrorCode::TooMany,
    };
    SignalError::new(code, e.to_string())
}

fn mailbox_error(e: MailboxError) -> SignalError {
    SignalError::new(ErrorCode::RoomClosing, format!("room unavailable: {e}"))
}

impl Actor for PeerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.notify(Notification::Welcome {
            protocol_version: PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            peer_id: self.id.clone(),
        });
        ctx.run_interval(self.heartbeat.interval, |act, ctx| {
            if act.last_heard.elapsed() > act.heartbeat.timeout {
                act.exit = ExitReason::HeartbeatTimeout;
                ctx.stop();
            } else if act.out.send(Outbound::Ping).is_err() {
                act.exit = ExitReason::SocketClosed;
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let State::Joined(room) | State::Lobby(room) = &self.state {
            room.do_send(Leave {
                peer: self.id.clone(),
            });
        }
        let reason = match &self.exit {
            ExitReason::Running | ExitReason::SocketClosed => "closed".to_string(),
            ExitReason::LeaveRequest => "left".to_string(),
            ExitReason::SocketError(e) => format!("socket error: {e}"),
            ExitReason::HeartbeatTimeout => "heartbeat timeout".to_string(),
            ExitReason::Evicted(r) => r.clone(),
        };
        let _ = self.out.send(Outbound::Close(reason.clone()));
        self.admitted = None;
        info!(room = %self.room_id, peer = %self.id, %reason, "peer gone");
    }
}

impl Handler<ClientText> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: ClientText, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match parse_request(&msg.0) {
            Ok((id, req)) => {
                debug!(peer = %self.id, ?req, "request");
                self.on_request(id, req, ctx);
            }
            Err((id, e)) => {
                debug!(peer = %self.id, "bad request: {e}");
                self.send(ServerMessage::error(id, e));
            }
        }
    }
}

impl Handler<Heard> for PeerActor {
    type Result = ();

    fn handle(&mut self, _msg: Heard, _ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
    }
}

impl Handler<ConnectionClosed> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: ConnectionClosed, ctx: &mut Self::Context) {
        self.exit = match msg {
            ConnectionClosed::Closed => ExitReason::SocketClosed,
            ConnectionClosed::Error(e) => ExitReason::SocketError(e),
        };
        ctx.stop();
    }
}

impl Handler<RoomEvent> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: RoomEvent, ctx: &mut Self::Context) {
        let n = match msg {
            RoomEvent::Evicted(reason) => {
                let n = Notification::Reconnect {
                    reason: reason.clone(),
                };
                return self.end(n, &reason, ctx);
            }
            RoomEvent::Denied => {
                return self.end(Notification::Denied {}, "refused from the lobby", ctx)
            }
            RoomEvent::Kicked(reason) => {
                let n = Notification::Kicked {
                    reason: reason.clone(),
                };
                return self.end(n, &reason, ctx);
            }
            RoomEvent::MeetingClosed => {
                return self.end(Notification::MeetingClosed {}, "meeting closed", ctx)
            }
            RoomEvent::Admitted(joined) => {
                if let State::Lobby(room) = &self.state {
                    self.state = State::Joined(room.clone());
                }
                info!(room = %self.room_id, peer = %self.id, "admitted");
                Notification::Admitted(self.join_response(joined))
            }
            RoomEvent::PeerJoined(peer) => Notification::PeerJoined { peer },
            RoomEvent::PeerLeft(peer_id) => Notification::PeerLeft { peer_id },
            RoomEvent::PeerUpdated {
                peer,
                display_name,
                raised_hand,
                roles,
            } => Notification::PeerUpdated {
                peer_id: peer,
                display_name,
                raised_hand,
                roles,
            },
            RoomEvent::ProducerAdded(producer) => Notification::ProducerAdded { producer },
            RoomEvent::ProducerClosed { producer, peer } => Notification::ProducerClosed {
                producer_id: producer,
                peer_id: peer,
            },
            RoomEvent::ProducerPaused {
                producer,
                peer,
                paused: true,
                by_moderator,
            } => Notification::ProducerPaused {
                producer_id: producer,
                peer_id: peer,
                by_moderator,
            },
            RoomEvent::ProducerPaused { producer, peer, .. } => Notification::ProducerResumed {
                producer_id: producer,
                peer_id: peer,
            },
            RoomEvent::ConsumerClosed { consumer, producer } => Notification::ConsumerClosed {
                consumer_id: consumer,
                producer_id: producer,
            },
            RoomEvent::ActiveSpeaker(peer_id) => Notification::ActiveSpeaker { peer_id },
            RoomEvent::Chat(entry) => Notification::ChatMessage(entry),
            RoomEvent::ChatCleared => Notification::ChatCleared {},
            RoomEvent::Locked(true) => Notification::RoomLocked {},
            RoomEvent::Locked(false) => Notification::RoomUnlocked {},
            RoomEvent::LobbyPeers(peers) => Notification::LobbyPeers {
                peers: peers
                    .into_iter()
                    .map(|p| LobbyPeerInfo {
                        id: p.id,
                        display_name: p.display_name,
                    })
                    .collect(),
            },
            RoomEvent::PermissionsChanged { roles, permissions } => {
                Notification::PermissionsChanged { roles, permissions }
            }
            RoomEvent::MediaBlocked(kind) => Notification::MediaBlocked {
                kind: block_kind(kind),
            },
            RoomEvent::MediaAllowed(kind) => Notification::MediaAllowed {
                kind: block_kind(kind),
            },
        };
        self.notify(n);
    }
}

impl Handler<MediaEvent> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: MediaEvent, _ctx: &mut Self::Context) {
        let n = match msg {
            MediaEvent::RecvOffer { sdp, consumers } => Notification::RecvOffer { sdp, consumers },
            MediaEvent::TransportStateChanged { direction, state } => {
                Notification::TransportState {
                    direction,
                    state: state.as_str().to_string(),
                }
            }
            MediaEvent::LayerChanged { consumer, layer } => Notification::ConsumerLayerChanged {
                consumer_id: consumer,
                layer,
            },
        };
        self.notify(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_errors_reach_the_client_without_parser_addresses() {
        let e = media_error(MediaError::InvalidSdp(
            "SDP parse: Parse error at PointerOffset(0x55f808d2c8c6)\nUnexpected `g`\nExpected `v`\nsdp line".into(),
        ));
        assert_eq!(e.code, ErrorCode::InvalidSdp);
        assert_eq!(
            e.message,
            "invalid SDP: SDP parse: Parse error; Unexpected `g`; Expected `v`; sdp line"
        );
        assert!(!e.message.contains("0x"));
    }
}
