//! [`RoomActor`]: one meeting. Owns membership and the lobby, each member's roles, the
//! producers (with the mid each was published on) and which consumer copies which producer for
//! whom, and the meeting's lasting state (lock, access code, chat, roles given; persisted by a
//! [`MeetingStore`]). It is the only part of the control plane that commands the room's media
//! worker: peers ask the room, the room asks the worker. It notifies peers of every change and
//! never sees a media packet. The meeting features (chat, hands, lock, lobby decisions, roles,
//! moderation) are in [`super::meeting`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{debug, info, warn};

use super::access::{AccessPolicy, Admission, CodeCheck, LobbyReason, Newcomer};
use super::media::{request, Worker};
use super::messages::*;
use crate::ids::{ConsumerId, PeerId, ProducerId, RoomId};
use crate::model::{PeerInfo, Permission, ProducerInfo, Role, Source};
use crate::sfu::messages::NewProducer;
use crate::sfu::{MediaError, MediaEvent, RoomMediaEvent, WorkerCommand};
use crate::store::{MeetingState, MeetingStore, NoStore};

/// How often a meeting state that could not be stored (Redis away) is tried again.
const SAVE_RETRY: Duration = Duration::from_secs(2);

/// What a room enforces.
#[derive(Clone)]
pub struct RoomSettings {
    /// Peers allowed at once, joined and waiting (0 = no limit).
    pub max_users: usize,
    /// How long an empty room waits before closing.
    pub close_delay: Duration,
    /// Roles, permissions and admission.
    pub access: AccessPolicy,
    /// Chat messages kept for late joiners.
    pub chat_history_messages: usize,
    /// Bytes of chat text kept for late joiners.
    pub chat_history_bytes: usize,
    /// Longest chat message, in characters.
    pub max_chat_length: usize,
    /// Where the meeting's lasting state is kept.
    pub store: Arc<dyn MeetingStore>,
}

impl std::fmt::Debug for RoomSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomSettings")
            .field("max_users", &self.max_users)
            .field("close_delay", &self.close_delay)
            .finish_non_exhaustive()
    }
}

impl RoomSettings {
    /// The settings of `config`, keeping meeting state in `store`.
    pub fn from_config(config: &crate::config::Config, store: Arc<dyn MeetingStore>) -> Self {
        Self {
            max_users: config.max_users_per_room,
            close_delay: config.empty_room_close_delay(),
            access: AccessPolicy::from_config(config),
            chat_history_messages: config.chat_history_messages,
            chat_history_bytes: config.chat_history_bytes,
            max_chat_length: config.max_chat_message_length,
            store,
        }
    }
}

impl Default for RoomSettings {
    fn default() -> Self {
        Self {
            max_users: 0,
            close_delay: Duration::from_secs(5),
            access: AccessPolicy::default(),
            chat_history_messages: 100,
            chat_history_bytes: 64 * 1024,
            max_chat_length: 2000,
            store: Arc::new(NoStore),
        }
    }
}

pub(super) struct Member {
    pub(super) display_name: String,
    /// The browser session's user, when it has one.
    pub(super) user: Option<String>,
    /// Always holds `normal`.
    pub(super) roles: BTreeSet<Role>,
    pub(super) raised_hand: bool,
    /// Media kinds a moderator stopped and has not allowed again.
    pub(super) blocked: BTreeSet<MediaBlock>,
    /// Notifications for this peer; dropped when it leaves.
    pub(super) events: Recipient<RoomEvent>,
}

impl Member {
    pub(super) fn roles(&self) -> Vec<Role> {
        self.roles.iter().copied().collect()
    }
}

/// A peer waiting in the lobby.
pub(super) struct Waiting {
    pub(super) display_name: String,
    pub(super) user: Option<String>,
    pub(super) roles: BTreeSet<Role>,
    pub(super) reason: LobbyReason,
    /// Notifications for this peer; dropped when it leaves or is refused.
    pub(super) events: Recipient<RoomEvent>,
    /// Handed to the media worker when the peer is admitted.
    pub(super) media_events: Recipient<MediaEvent>,
}

/// A producer as the room keeps it.
pub(super) struct Producer {
    pub(super) info: ProducerInfo,
    /// The mid of its transceiver on the owner's send transport; a publish that lists this
    /// mid again replaces the producer.
    pub(super) mid: String,
}

/// The block a source falls under.
pub(super) fn block_of(source: Source) -> MediaBlock {
    match source {
        Source::Mic => MediaBlock::Audio,
        Source::Webcam => MediaBlock::Video,
        Source::Screen => MediaBlock::Screen,
    }
}

/// The permission publishing a source needs.
fn share_permission(source: Source) -> Permission {
    match source {
        Source::Mic => Permission::ShareAudio,
        Source::Webcam => Permission::ShareVideo,
        Source::Screen => Permission::ShareScreen,
    }
}

/// One meeting.
pub struct RoomActor {
    pub(super) id: RoomId,
    generation: u64,
    pub(super) settings: RoomSettings,
    /// The media worker hosting this room; only the room commands it.
    worker: Worker,
    /// Told when the room stops and when its occupancy changes.
    registry: Option<(Recipient<RoomClosed>, Recipient<RoomOccupancy>)>,
    pub(super) members: BTreeMap<PeerId, Member>,
    /// Waiting peers, in arrival order.
    pub(super) lobby: Vec<(PeerId, Waiting)>,
    pub(super) producers: BTreeMap<ProducerId, Producer>,
    /// consumer -> (receiving peer, producer)
    consumers: HashMap<ConsumerId, (PeerId, ProducerId)>,
    /// Pending close of the empty room; cancelled by a join.
    close_timer: Option<SpawnHandle>,
    speaker: Option<PeerId>,
    /// What outlives connections; loaded from the store when the room opens.
    pub(super) state: MeetingState,
    /// `state` changed since it was last stored.
    state_dirty: bool,
    /// A store call is in flight (saves are sent one at a time, in order).
    saving: bool,
    /// The meeting continues on another instance (its participants were sent there): its
    /// state is kept when this room stops.
    moved: bool,
    /// The meeting is over (closed by a moderator): its state is forgotten when it stops.
    pub(super) finished: bool,
}

impl RoomActor {
    /// A room on `worker`; `registry` is told when it closes.
    pub fn new(
        id: RoomId,
        generation: u64,
        settings: RoomSettings,
        worker: Worker,
        registry: Option<(Recipient<RoomClosed>, Recipient<RoomOccupancy>)>,
    ) -> Self {
        Self {
            id,
            generation,
            settings,
            worker,
            registry,
            members: BTreeMap::new(),
            lobby: Vec::new(),
            producers: BTreeMap::new(),
            consumers: HashMap::new(),
            close_timer: None,
            speaker: None,
            state: MeetingState::default(),
            state_dirty: false,
            saving: false,
            moved: false,
            finished: false,
        }
    }

    pub(super) fn peer_info(&self, peer: &PeerId, m: &Member) -> PeerInfo {
        PeerInfo {
            id: peer.clone(),
            display_name: m.display_name.clone(),
            producers: self
                .producers
                .values()
                .filter(|p| &p.info.peer_id == peer)
                .map(|p| p.info.clone())
                .collect(),
            roles: m.roles(),
            raised_hand: m.raised_hand,
        }
    }

    pub(super) fn notify_others(&self, except: &PeerId, event: RoomEvent) {
        for (id, m) in &self.members {
            if id != except {
                m.events.do_send(event.clone());
            }
        }
    }

    pub(super) fn notify_all(&self, event: RoomEvent) {
        for m in self.members.values() {
            m.events.do_send(event.clone());
        }
    }

    pub(super) fn notify(&self, peer: &PeerId, event: RoomEvent) {
        if let Some(m) = self.members.get(peer) {
            m.events.do_send(event);
        }
    }

    pub(super) fn media(&self, cmd: WorkerCommand) {
        let teardown = matches!(
            cmd,
            WorkerCommand::RemoveRoom { .. } | WorkerCommand::RemovePeer { .. }
        );
        if let Err(e) = self.worker.send(cmd) {
            // At shutdown the workers stop before the last rooms close; nothing is lost.
            if teardown {
                debug!(room = %self.id, "media worker already gone: {e}");
            } else {
                tracing::error!(room = %self.id, "media worker unavailable: {e}");
            }
        }
    }

    /// Creates the consumer of `producer` for `peer` and asks the worker to negotiate it.
    fn subscribe(&mut self, peer: &PeerId, producer: &ProducerId) {
        let consumer = ConsumerId::random();
        self.consumers
            .insert(consumer.clone(), (peer.clone(), producer.clone()));
        self.media(WorkerCommand::AddConsumer {
            peer: peer.clone(),
            consumer,
            producer: producer.clone(),
        });
    }

    /// Drops every consumer of `producer` and tells their owners.
    fn close_consumers_of(&mut self, producer: &ProducerId) {
        let closed: Vec<(ConsumerId, PeerId)> = self
            .consumers
            .iter()
            .filter(|(_, (_, p))| p == producer)
            .map(|(c, (peer, _))| (c.clone(), peer.clone()))
            .collect();
        for (consumer, peer) in closed {
            self.consumers.remove(&consumer);
            self.notify(
                &peer,
                RoomEvent::ConsumerClosed {
                    consumer,
                    producer: producer.clone(),
                },
            );
        }
    }

    fn report_occupancy(&self) {
        if let Some((_, occupancy)) = &self.registry {
            occupancy.do_send(RoomOccupancy {
                room: self.id.clone(),
                generation: self.generation,
                peers: self.members.len() + self.lobby.len(),
            });
        }
    }

    fn owned(&self, peer: &PeerId, producer: &ProducerId) -> Result<(), RoomError> {
        self.member(peer)?;
        match self.producers.get(producer) {
            Some(p) if &p.info.peer_id == peer => Ok(()),
            _ => Err(RoomError::UnknownProducer(producer.clone())),
        }
    }

    /// `Ok` for a joined peer; `InLobby` or `NotInRoom` otherwise.
    pub(super) fn member(&self, peer: &PeerId) -> Result<(), RoomError> {
        if self.members.contains_key(peer) {
            Ok(())
        } else if self.lobby.iter().any(|(id, _)| id == peer) {
            Err(RoomError::InLobby)
        } else {
            Err(RoomError::NotInRoom)
        }
    }

    /// True when `roles` may use `permission` now (see [`AccessPolicy::allows`]).
    pub(super) fn allows(&self, roles: &[Role], permission: Permission) -> bool {
        let present: Vec<Vec<Role>> = self.members.values().map(Member::roles).collect();
        self.settings
            .access
            .allows(roles, permission, present.iter().map(Vec::as_slice))
    }

    /// What `peer`'s roles allow it now.
    pub(super) fn permissions_of(&self, roles: &[Role]) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.allows(roles, *p))
            .collect()
    }

    /// `Ok` when the joined `peer` may use `permission`, else `Forbidden`.
    pub(super) fn require(&self, peer: &PeerId, permission: Permission) -> Result<(), RoomError> {
        self.member(peer)?;
        let roles = self.members[peer].roles();
        if self.allows(&roles, permission) {
            Ok(())
        } else {
            Err(RoomError::Forbidden(format!(
                "your roles ({}) do not allow {permission:?}",
                roles
                    .iter()
                    .map(|r| format!("{r:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// Registers a new producer of `owner`, tells the others and subscribes them to it.
    fn add_producer(&mut self, owner: &PeerId, p: &NewProducer) {
        let info = ProducerInfo {
            id: p.id.clone(),
            peer_id: owner.clone(),
            kind: p.kind,
            source: p.source,
            paused: false,
            paused_by_moderator: false,
        };
        self.producers.insert(
            p.id.clone(),
            Producer {
                info: info.clone(),
                mid: p.mid.clone(),
            },
        );
        self.notify_others(owner, RoomEvent::ProducerAdded(info));
        let others: Vec<PeerId> = self
            .members
            .keys()
            .filter(|id| *id != owner)
            .cloned()
            .collect();
        for other in others {
            self.subscribe(&other, &p.id);
        }
    }

    /// Removes a producer: the worker stops it, its consumers close, the others are told.
    pub(super) fn remove_producer(&mut self, producer: &ProducerId) {
        let Some(p) = self.producers.remove(producer) else {
            return;
        };
        self.media(WorkerCommand::CloseProducer {
            producer: producer.clone(),
        });
        self.close_consumers_of(producer);
        self.notify_others(
            &p.info.peer_id,
            RoomEvent::ProducerClosed {
                producer: producer.clone(),
                peer: p.info.peer_id.clone(),
            },
        );
    }

    /// Pauses or resumes a producer in the worker and tells the others (and, for a
    /// moderator's pause, its owner too).
    pub(super) fn set_paused(&mut self, producer: &ProducerId, paused: bool, by_moderator: bool) {
        let Some(p) = self.producers.get_mut(producer) else {
            return;
        };
        if p.info.paused == paused && p.info.paused_by_moderator == by_moderator {
            return;
        }
        p.info.paused = paused;
        p.info.paused_by_moderator = paused && by_moderator;
        let owner = p.info.peer_id.clone();
        self.media(WorkerCommand::SetProducerPaused {
            producer: producer.clone(),
            paused,
        });
        let event = RoomEvent::ProducerPaused {
            producer: producer.clone(),
            peer: owner.clone(),
            paused,
            by_moderator,
        };
        if by_moderator {
            self.notify_all(event);
        } else {
            self.notify_others(&owner, event);
        }
    }

    /// A consumer of `peer`'s, or `UnknownConsumer`.
    fn consumer_of(&self, peer: &PeerId, consumer: &ConsumerId) -> Result<(), RoomError> {
        self.member(peer)?;
        match self.consumers.get(consumer) {
            Some((owner, _)) if owner == peer => Ok(()),
            _ => Err(RoomError::Media(MediaError::UnknownConsumer(
                consumer.clone(),
            ))),
        }
    }

    /// Runs a worker request and answers with its result, without blocking the room.
    fn ask_worker(
        &self,
        make: impl FnOnce(crate::sfu::messages::Reply<()>) -> WorkerCommand + 'static,
    ) -> ResponseFuture<Result<(), RoomError>> {
        let worker = self.worker.clone();
        Box::pin(async move { Ok(request(&*worker, make).await?) })
    }

    /// True when someone holding `moderateRoom` is in the room.
    fn moderator_present(&self) -> bool {
        self.members.values().any(|m| {
            self.settings
                .access
                .holds(&m.roles(), Permission::ModerateRoom)
        })
    }

    /// The lobby as admitters see it.
    pub(super) fn lobby_view(&self) -> Vec<LobbyPeer> {
        self.lobby
            .iter()
            .map(|(id, w)| LobbyPeer {
                id: id.clone(),
                display_name: w.display_name.clone(),
            })
            .collect()
    }

    /// Sends the lobby to everyone who may admit (also when it just became empty).
    pub(super) fn announce_lobby(&self) {
        let view = self.lobby_view();
        for m in self.members.values() {
            if self.allows(&m.roles(), Permission::PromotePeer) {
                m.events.do_send(RoomEvent::LobbyPeers(view.clone()));
            }
        }
    }

    /// What `peer` learns on entering the meeting.
    fn welcome(&self, peer: &PeerId) -> Joined {
        let roles = self
            .members
            .get(peer)
            .map(Member::roles)
            .unwrap_or_default();
        Joined {
            lobby: false,
            peers: self
                .members
                .iter()
                .filter(|(id, _)| *id != peer)
                .map(|(id, m)| self.peer_info(id, m))
                .collect(),
            permissions: self.permissions_of(&roles),
            roles,
            chat_history: self.state.chat.iter().cloned().collect(),
            locked: self.state.locked,
        }
    }

    /// Makes `peer` a member: media session, everyone told, subscribed to what is published.
    pub(super) fn enter(
        &mut self,
        peer: PeerId,
        member: Member,
        media_events: Recipient<MediaEvent>,
        ctx: &mut Context<Self>,
    ) -> Joined {
        if let Some(t) = self.close_timer.take() {
            ctx.cancel_future(t);
        }
        self.media(WorkerCommand::AddPeer {
            room: self.id.clone(),
            peer: peer.clone(),
            events: media_events,
        });
        if let Some(user) = &member.user {
            self.state.remember_admitted(user);
            self.changed(ctx);
        }
        let info = self.peer_info(&peer, &member);
        self.notify_others(&peer, RoomEvent::PeerJoined(info));
        let admits = self
            .settings
            .access
            .holds(&member.roles(), Permission::PromotePeer);
        let moderator = self
            .settings
            .access
            .holds(&member.roles(), Permission::ModerateRoom);
        self.members.insert(peer.clone(), member);
        let existing: Vec<ProducerId> = self.producers.keys().cloned().collect();
        for producer in existing {
            self.subscribe(&peer, &producer);
        }
        if let Some(speaker) = &self.speaker {
            self.notify(&peer, RoomEvent::ActiveSpeaker(Some(speaker.clone())));
        }
        if admits && !self.lobby.is_empty() {
            self.notify(&peer, RoomEvent::LobbyPeers(self.lobby_view()));
        }
        info!(room = %self.id, %peer, peers = self.members.len(), "peer joined");
        self.report_occupancy();
        let welcome = self.welcome(&peer);
        if moderator {
            self.admit_waiting_for_moderator(ctx);
        }
        welcome
    }

    /// Admits `peer` from the lobby (no permission check: the caller did it).
    pub(super) fn admit_from_lobby(&mut self, peer: &PeerId, ctx: &mut Context<Self>) -> bool {
        let Some(pos) = self.lobby.iter().position(|(id, _)| id == peer) else {
            return false;
        };
        let (peer, w) = self.lobby.remove(pos);
        let member = Member {
            display_name: w.display_name,
            user: w.user,
            roles: w.roles,
            raised_hand: false,
            blocked: BTreeSet::new(),
            events: w.events.clone(),
        };
        let joined = self.enter(peer.clone(), member, w.media_events, ctx);
        w.events.do_send(RoomEvent::Admitted(joined));
        info!(room = %self.id, %peer, "admitted from the lobby");
        true
    }

    /// A moderator is here now: everyone waiting only for one comes in.
    fn admit_waiting_for_moderator(&mut self, ctx: &mut Context<Self>) {
        let waiting: Vec<PeerId> = self
            .lobby
            .iter()
            .filter(|(_, w)| w.reason == LobbyReason::WaitingForModerator)
            .map(|(id, _)| id.clone())
            .collect();
        if waiting.is_empty() {
            return;
        }
        for peer in waiting {
            self.admit_from_lobby(&peer, ctx);
        }
        self.announce_lobby();
    }

    /// Removes a member (leave, kick): media, producers, consumers, everyone told.
    pub(super) fn remove_member(&mut self, peer: &PeerId, ctx: &mut Context<Self>) {
        if self.members.remove(peer).is_none() {
            return;
        }
        self.media(WorkerCommand::RemovePeer { peer: peer.clone() });
        // The worker dropped the peer's producers with RemovePeer; the room closes its own
        // records and tells the others.
        let own: Vec<ProducerId> = self
            .producers
            .values()
            .filter(|p| &p.info.peer_id == peer)
            .map(|p| p.info.id.clone())
            .collect();
        for producer in own {
            self.producers.remove(&producer);
            self.close_consumers_of(&producer);
            self.notify_others(
                peer,
                RoomEvent::ProducerClosed {
                    producer,
                    peer: peer.clone(),
                },
            );
        }
        self.consumers.retain(|_, (p, _)| p != peer);
        self.notify_others(peer, RoomEvent::PeerLeft(peer.clone()));
        if self.speaker.as_ref() == Some(peer) {
            self.speaker = None;
            self.notify_others(peer, RoomEvent::ActiveSpeaker(None));
        }
        info!(room = %self.id, %peer, peers = self.members.len(), "peer left");
        self.after_departure(ctx);
    }

    /// Occupancy, and the close timer once nobody is left (lobby included).
    pub(super) fn after_departure(&mut self, ctx: &mut Context<Self>) {
        self.report_occupancy();
        if self.members.is_empty() && self.lobby.is_empty() {
            let delay = self.settings.close_delay;
            debug!(room = %self.id, ?delay, "room empty; closing unless someone joins");
            self.close_timer = Some(ctx.run_later(delay, |room, ctx| {
                if room.members.is_empty() && room.lobby.is_empty() {
                    // Nobody came back: the meeting is over, unless it moved elsewhere.
                    room.finished = true;
                    ctx.stop();
                }
            }));
        }
    }

    /// The lasting state changed: store it (one save at a time, the latest state wins).
    pub(super) fn changed(&mut self, ctx: &mut Context<Self>) {
        self.state_dirty = true;
        self.save(ctx);
    }

    fn save(&mut self, ctx: &mut Context<Self>) {
        if self.saving || !self.state_dirty {
            return;
        }
        self.saving = true;
        self.state_dirty = false;
        let call = self.settings.store.save(&self.id, &self.state);
        ctx.spawn(call.into_actor(self).map(|result, room, ctx| {
            room.saving = false;
            if let Err(e) = result {
                // Kept in memory; tried again every SAVE_RETRY until it is stored.
                debug!(room = %room.id, "meeting state not stored: {e}");
                room.state_dirty = true;
                return;
            }
            room.save(ctx);
        }));
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(room = %self.id, worker = self.worker.index(), "room opened");
        // Nothing else runs before the lasting state is here: a meeting that moved from a dead
        // instance keeps its lock, chat and roles.
        let load = self.settings.store.load(&self.id);
        ctx.wait(load.into_actor(self).map(|loaded, room, _| match loaded {
            Ok(Some(state)) => {
                info!(room = %room.id, "meeting state restored");
                room.state = state;
            }
            Ok(None) => {}
            Err(e) => warn!(room = %room.id, "meeting state not loaded, starting fresh: {e}"),
        }));
        self.media(WorkerCommand::AddRoom {
            room: self.id.clone(),
            events: ctx.address().recipient(),
        });
        ctx.run_interval(SAVE_RETRY, |room, ctx| room.save(ctx));
        // A room nobody joins closes like an emptied one.
        let delay = self.settings.close_delay;
        self.close_timer = Some(ctx.run_later(delay, |room, ctx| {
            if room.members.is_empty() && room.lobby.is_empty() {
                room.finished = true;
                ctx.stop();
            }
        }));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.media(WorkerCommand::RemoveRoom {
            room: self.id.clone(),
        });
        if let Some((closed, _)) = &self.registry {
            closed.do_send(RoomClosed {
                room: self.id.clone(),
                generation: self.generation,
            });
        }
        if self.finished && !self.moved {
            // The meeting is over: its chat, lock and roles go with it.
            let delete = self.settings.store.delete(&self.id);
            actix::spawn(async move {
                let _ = delete.await;
            });
        } else if self.state_dirty || self.saving {
            let save = self.settings.store.save(&self.id, &self.state);
            actix::spawn(async move {
                let _ = save.await;
            });
        }
        info!(room = %self.id, "room closed");
    }
}

impl Handler<Join> for RoomActor {
    type Result = Result<Joined, JoinError>;

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        if self.members.contains_key(&msg.peer) || self.lobby.iter().any(|(id, _)| *id == msg.peer)
        {
            return Err(JoinError::AlreadyJoined);
        }
        let mut roles: BTreeSet<Role> = [Role::Normal].into_iter().collect();
        roles.extend(msg.granted_roles.iter().copied());
        if let Some(given) = msg.user.as_ref().and_then(|u| self.state.roles.get(u)) {
            roles.extend(given.iter().copied());
        }
        // The first participant of a new meeting runs it.
        let first = self.members.is_empty() && self.lobby.is_empty() && self.state.is_fresh();
        if first && self.settings.access.first_peer_moderator {
            roles.insert(Role::Moderator);
            if let Some(user) = &msg.user {
                self.state
                    .roles
                    .entry(user.clone())
                    .or_default()
                    .insert(Role::Moderator);
            }
        }
        let roles_list: Vec<Role> = roles.iter().copied().collect();
        let access_code = match (&msg.access_code, &self.state.access_code) {
            (Some(given), Some(code)) if given == code => CodeCheck::Right,
            (Some(_), Some(_)) => CodeCheck::Wrong,
            _ => CodeCheck::NotGiven,
        };
        let newcomer = Newcomer {
            roles: roles_list.clone(),
            returning: msg
                .user
                .as_ref()
                .is_some_and(|u| self.state.was_admitted(u)),
            room_full: self.settings.max_users > 0
                && self.members.len() + self.lobby.len() >= self.settings.max_users,
            locked: self.state.locked,
            access_code,
            moderator_present: self.moderator_present(),
        };
        match self.settings.access.admit(&newcomer) {
            Admission::Full => Err(JoinError::RoomFull(self.settings.max_users)),
            Admission::WrongAccessCode => Err(JoinError::WrongAccessCode),
            Admission::Lobby(reason) => {
                if let Some(t) = self.close_timer.take() {
                    ctx.cancel_future(t);
                }
                info!(room = %self.id, peer = %msg.peer, ?reason, "peer waits in the lobby");
                self.lobby.push((
                    msg.peer,
                    Waiting {
                        display_name: msg.display_name,
                        user: msg.user,
                        roles,
                        reason,
                        events: msg.events,
                        media_events: msg.media_events,
                    },
                ));
                self.announce_lobby();
                self.report_occupancy();
                Ok(Joined {
                    lobby: true,
                    peers: Vec::new(),
                    roles: roles_list,
                    permissions: Vec::new(),
                    chat_history: Vec::new(),
                    locked: self.state.locked,
                })
            }
            Admission::Room => {
                let member = Member {
                    display_name: msg.display_name,
                    raised_hand: msg
                        .user
                        .as_ref()
                        .is_some_and(|u| self.state.raised_hands.contains(u)),
                    user: msg.user,
                    roles,
                    blocked: BTreeSet::new(),
                    events: msg.events,
                };
                if first {
                    self.changed(ctx);
                }
                Ok(self.enter(msg.peer, member, msg.media_events, ctx))
            }
        }
    }
}

impl Handler<Leave> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Self::Context) {
        if let Some(pos) = self.lobby.iter().position(|(id, _)| *id == msg.peer) {
            self.lobby.remove(pos);
            info!(room = %self.id, peer = %msg.peer, "left the lobby");
            self.announce_lobby();
            self.after_departure(ctx);
            return;
        }
        self.remove_member(&msg.peer, ctx);
    }
}

impl Handler<Publish> for RoomActor {
    type Result = AtomicResponse<Self, Result<Published, RoomError>>;

    fn handle(&mut self, msg: Publish, _ctx: &mut Self::Context) -> Self::Result {
        let refused = |e| AtomicResponse::new(Box::pin(fut::ready(Err(e))));
        if let Err(e) = self.member(&msg.peer) {
            return refused(e);
        }
        if let Some(t) = msg.tracks.iter().find(|t| t.source.kind() != t.kind) {
            return refused(RoomError::BadTrack(format!(
                "source {:?} cannot be {:?}",
                t.source, t.kind
            )));
        }
        for t in &msg.tracks {
            if let Err(e) = self.require(&msg.peer, share_permission(t.source)) {
                return refused(e);
            }
            if self.members[&msg.peer]
                .blocked
                .contains(&block_of(t.source))
            {
                return refused(RoomError::Forbidden(format!(
                    "a moderator stopped your {:?}; wait until a moderator allows it again",
                    t.source
                )));
            }
        }
        // A mid published again replaces its producer (a reused screen-share transceiver).
        let replaced: Vec<ProducerId> = self
            .producers
            .values()
            .filter(|p| p.info.peer_id == msg.peer && msg.tracks.iter().any(|t| t.mid == p.mid))
            .map(|p| p.info.id.clone())
            .collect();
        for producer in &replaced {
            self.remove_producer(producer);
        }
        let new: Vec<NewProducer> = msg
            .tracks
            .iter()
            .map(|t| NewProducer {
                id: ProducerId::random(),
                mid: t.mid.clone(),
                kind: t.kind,
                source: t.source,
            })
            .collect();
        let worker = self.worker.clone();
        let (peer, offer, producers) = (msg.peer.clone(), msg.sdp, new.clone());
        let ask = async move {
            request(&*worker, |reply| WorkerCommand::Publish {
                peer,
                offer,
                producers,
                reply,
            })
            .await
        };
        // Atomic: no Leave or other publish runs before the worker answered, so the room's
        // records and the worker's never disagree.
        AtomicResponse::new(Box::pin(ask.into_actor(self).map(
            move |answer, room, _| match answer {
                Ok(sdp) => {
                    for p in &new {
                        room.add_producer(&msg.peer, p);
                    }
                    Ok(Published {
                        sdp,
                        producers: new.into_iter().map(|p| (p.mid, p.id)).collect(),
                    })
                }
                Err(e) => {
                    // The worker may have kept the tracks it could use; drop them too.
                    for p in new {
                        room.media(WorkerCommand::CloseProducer { producer: p.id });
                    }
                    Err(RoomError::Media(e))
                }
            },
        )))
    }
}

impl Handler<RecvAnswer> for RoomActor {
    type Result = ResponseFuture<Result<(), RoomError>>;

    fn handle(&mut self, msg: RecvAnswer, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.member(&msg.peer) {
            return Box::pin(async move { Err(e) });
        }
        self.ask_worker(move |reply| WorkerCommand::RecvAnswer {
            peer: msg.peer,
            answer: msg.sdp,
            reply,
        })
    }
}

impl Handler<SetConsumerPreferences> for RoomActor {
    type Result = ResponseFuture<Result<(), RoomError>>;

    fn handle(&mut self, msg: SetConsumerPreferences, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.consumer_of(&msg.peer, &msg.consumer) {
            return Box::pin(async move { Err(e) });
        }
        self.ask_worker(move |reply| WorkerCommand::SetConsumerPreferences {
            peer: msg.peer,
            consumer: msg.consumer,
            width: msg.width,
            height: msg.height,
            reply,
        })
    }
}

impl Handler<RequestKeyFrame> for RoomActor {
    type Result = ResponseFuture<Result<(), RoomError>>;

    fn handle(&mut self, msg: RequestKeyFrame, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.consumer_of(&msg.peer, &msg.consumer) {
            return Box::pin(async move { Err(e) });
        }
        self.ask_worker(move |reply| WorkerCommand::RequestKeyFrame {
            peer: msg.peer,
            consumer: msg.consumer,
            reply,
        })
    }
}

impl Handler<CloseProducer> for RoomActor {
    type Result = Result<(), RoomError>;

    fn handle(&mut self, msg: CloseProducer, _ctx: &mut Self::Context) -> Self::Result {
        self.owned(&msg.peer, &msg.producer)?;
        self.remove_producer(&msg.producer);
        Ok(())
    }
}

impl Handler<SetProducerPaused> for RoomActor {
    type Result = Result<(), RoomError>;

    fn handle(&mut self, msg: SetProducerPaused, _ctx: &mut Self::Context) -> Self::Result {
        self.owned(&msg.peer, &msg.producer)?;
        if !msg.paused {
            let source = self.producers[&msg.producer].info.source;
            if self.members[&msg.peer].blocked.contains(&block_of(source)) {
                return Err(RoomError::Forbidden(format!(
                    "a moderator stopped your {source:?}; wait until a moderator allows it again"
                )));
            }
        }
        self.set_paused(&msg.producer, msg.paused, false);
        Ok(())
    }
}

impl Handler<ChangeDisplayName> for RoomActor {
    type Result = Result<(), RoomError>;

    fn handle(&mut self, msg: ChangeDisplayName, _ctx: &mut Self::Context) -> Self::Result {
        if let Some((_, w)) = self.lobby.iter_mut().find(|(id, _)| *id == msg.peer) {
            w.display_name = msg.display_name;
            self.announce_lobby();
            return Ok(());
        }
        let Some(m) = self.members.get_mut(&msg.peer) else {
            return Err(RoomError::NotInRoom);
        };
        m.display_name = msg.display_name.clone();
        self.notify_others(
            &msg.peer,
            RoomEvent::PeerUpdated {
                peer: msg.peer.clone(),
                display_name: Some(msg.display_name),
                raised_hand: None,
                roles: None,
            },
        );
        Ok(())
    }
}

impl Handler<RoomMediaEvent> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: RoomMediaEvent, _ctx: &mut Self::Context) {
        match msg {
            RoomMediaEvent::ActiveSpeakerChanged { peer } => {
                let peer = peer.filter(|p| self.members.contains_key(p));
                if peer != self.speaker {
                    self.speaker = peer.clone();
                    self.notify_all(RoomEvent::ActiveSpeaker(peer));
                }
            }
        }
    }
}

impl Handler<GetSnapshot> for RoomActor {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _msg: GetSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let peers = self
            .members
            .iter()
            .map(|(id, m)| self.peer_info(id, m))
            .collect();
        let mut consumers: Vec<(PeerId, ConsumerId, ProducerId)> = self
            .consumers
            .iter()
            .map(|(c, (peer, p))| (peer.clone(), c.clone(), p.clone()))
            .collect();
        consumers.sort();
        MessageResult(RoomSnapshot {
            peers,
            lobby: self.lobby_view(),
            consumers,
            locked: self.state.locked,
            chat: self.state.chat.iter().cloned().collect(),
        })
    }
}

impl Handler<EvictAll> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: EvictAll, _ctx: &mut Self::Context) {
        // The participants reopen the meeting on another instance: its state stays.
        self.moved = true;
        for m in self.members.values() {
            m.events.do_send(RoomEvent::Evicted(msg.reason.clone()));
        }
        for (_, w) in &self.lobby {
            w.events.do_send(RoomEvent::Evicted(msg.reason.clone()));
        }
    }
}
