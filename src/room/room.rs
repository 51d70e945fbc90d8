//! [`RoomActor`]: one meeting. Owns membership, the producers (with the mid each was published
//! on) and which consumer copies which producer for whom. It is the only part of the control
//! plane that commands the room's media worker: peers ask the room, the room asks the worker.
//! It notifies peers of every change and never sees a media packet.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use actix::prelude::*;
use tracing::{debug, info};

use super::media::{request, Worker};
use super::messages::*;
use crate::ids::{ConsumerId, PeerId, ProducerId, RoomId};
use crate::model::{PeerInfo, ProducerInfo};
use crate::sfu::messages::NewProducer;
use crate::sfu::{MediaError, RoomMediaEvent, WorkerCommand};

/// Limits a room enforces.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// Peers allowed at once (0 = no limit).
    pub max_users: usize,
    /// How long an empty room waits before closing.
    pub close_delay: Duration,
}

struct Member {
    display_name: String,
    /// Notifications for this peer; dropped when it leaves.
    events: Recipient<RoomEvent>,
}

/// A producer as the room keeps it.
struct Producer {
    info: ProducerInfo,
    /// The mid of its transceiver on the owner's send transport; a publish that lists this
    /// mid again replaces the producer.
    mid: String,
}

/// One meeting.
pub struct RoomActor {
    id: RoomId,
    generation: u64,
    settings: RoomSettings,
    /// The media worker hosting this room; only the room commands it.
    worker: Worker,
    /// Told when the room stops and when its occupancy changes.
    registry: Option<(Recipient<RoomClosed>, Recipient<RoomOccupancy>)>,
    members: BTreeMap<PeerId, Member>,
    producers: BTreeMap<ProducerId, Producer>,
    /// consumer -> (receiving peer, producer)
    consumers: HashMap<ConsumerId, (PeerId, ProducerId)>,
    /// Pending close of the empty room; cancelled by a join.
    close_timer: Option<SpawnHandle>,
    speaker: Option<PeerId>,
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
            producers: BTreeMap::new(),
            consumers: HashMap::new(),
            close_timer: None,
            speaker: None,
        }
    }

    fn peer_info(&self, peer: &PeerId, m: &Member) -> PeerInfo {
        PeerInfo {
            id: peer.clone(),
            display_name: m.display_name.clone(),
            producers: self
                .producers
                .values()
                .filter(|p| &p.info.peer_id == peer)
                .map(|p| p.info.clone())
                .collect(),
        }
    }

    fn notify_others(&self, except: &PeerId, event: RoomEvent) {
        for (id, m) in &self.members {
            if id != except {
                m.events.do_send(event.clone());
            }
        }
    }

    fn notify(&self, peer: &PeerId, event: RoomEvent) {
        if let Some(m) = self.members.get(peer) {
            m.events.do_send(event);
        }
    }

    fn media(&self, cmd: WorkerCommand) {
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
                peers: self.members.len(),
            });
        }
    }

    fn owned(&self, peer: &PeerId, producer: &ProducerId) -> Result<(), RoomError> {
        if !self.members.contains_key(peer) {
            return Err(RoomError::NotInRoom);
        }
        match self.producers.get(producer) {
            Some(p) if &p.info.peer_id == peer => Ok(()),
            _ => Err(RoomError::UnknownProducer(producer.clone())),
        }
    }

    fn member(&self, peer: &PeerId) -> Result<(), RoomError> {
        if self.members.contains_key(peer) {
            Ok(())
        } else {
            Err(RoomError::NotInRoom)
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
    fn remove_producer(&mut self, producer: &ProducerId) {
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

    /// A consumer of `peer`'s, or `NotFound`-like refusal from the worker's point of view.
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
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(room = %self.id, worker = self.worker.index(), "room opened");
        self.media(WorkerCommand::AddRoom {
            room: self.id.clone(),
            events: ctx.address().recipient(),
        });
        // A room nobody joins closes like an emptied one.
        let delay = self.settings.close_delay;
        self.close_timer = Some(ctx.run_later(delay, |room, ctx| {
            if room.members.is_empty() {
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
        info!(room = %self.id, "room closed");
    }
}

impl Handler<Join> for RoomActor {
    type Result = Result<Joined, JoinError>;

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        if self.members.contains_key(&msg.peer) {
            return Err(JoinError::AlreadyJoined);
        }
        if self.settings.max_users > 0 && self.members.len() >= self.settings.max_users {
            return Err(JoinError::RoomFull(self.settings.max_users));
        }
        if let Some(t) = self.close_timer.take() {
            ctx.cancel_future(t);
        }
        self.media(WorkerCommand::AddPeer {
            room: self.id.clone(),
            peer: msg.peer.clone(),
            events: msg.media_events,
        });
        let member = Member {
            display_name: msg.display_name,
            events: msg.events,
        };
        let info = self.peer_info(&msg.peer, &member);
        self.notify_others(&msg.peer, RoomEvent::PeerJoined(info));
        let peers: Vec<PeerInfo> = self
            .members
            .iter()
            .map(|(id, m)| self.peer_info(id, m))
            .collect();
        self.members.insert(msg.peer.clone(), member);
        let existing: Vec<ProducerId> = self.producers.keys().cloned().collect();
        for producer in existing {
            self.subscribe(&msg.peer, &producer);
        }
        if let Some(speaker) = &self.speaker {
            self.notify(&msg.peer, RoomEvent::ActiveSpeaker(Some(speaker.clone())));
        }
        info!(room = %self.id, peer = %msg.peer, peers = self.members.len(), "peer joined");
        self.report_occupancy();
        Ok(Joined { peers })
    }
}

impl Handler<Leave> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Self::Context) {
        if self.members.remove(&msg.peer).is_none() {
            return;
        }
        self.media(WorkerCommand::RemovePeer {
            peer: msg.peer.clone(),
        });
        // The worker dropped the peer's producers with RemovePeer; the room closes its own
        // records and tells the others.
        let own: Vec<ProducerId> = self
            .producers
            .values()
            .filter(|p| p.info.peer_id == msg.peer)
            .map(|p| p.info.id.clone())
            .collect();
        for producer in own {
            self.producers.remove(&producer);
            self.close_consumers_of(&producer);
            self.notify_others(
                &msg.peer,
                RoomEvent::ProducerClosed {
                    producer,
                    peer: msg.peer.clone(),
                },
            );
        }
        self.consumers.retain(|_, (peer, _)| peer != &msg.peer);
        self.notify_others(&msg.peer, RoomEvent::PeerLeft(msg.peer.clone()));
        if self.speaker.as_ref() == Some(&msg.peer) {
            self.speaker = None;
            self.notify_others(&msg.peer, RoomEvent::ActiveSpeaker(None));
        }
        info!(room = %self.id, peer = %msg.peer, peers = self.members.len(), "peer left");
        self.report_occupancy();
        if self.members.is_empty() {
            let delay = self.settings.close_delay;
            debug!(room = %self.id, ?delay, "room empty; closing unless someone joins");
            self.close_timer = Some(ctx.run_later(delay, |room, ctx| {
                if room.members.is_empty() {
                    ctx.stop();
                }
            }));
        }
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
        if let Some(p) = self.producers.get_mut(&msg.producer) {
            if p.info.paused == msg.paused {
                return Ok(());
            }
            p.info.paused = msg.paused;
        }
        self.media(WorkerCommand::SetProducerPaused {
            producer: msg.producer.clone(),
            paused: msg.paused,
        });
        self.notify_others(
            &msg.peer,
            RoomEvent::ProducerPaused {
                producer: msg.producer,
                peer: msg.peer.clone(),
                paused: msg.paused,
            },
        );
        Ok(())
    }
}

impl Handler<ChangeDisplayName> for RoomActor {
    type Result = Result<(), RoomError>;

    fn handle(&mut self, msg: ChangeDisplayName, _ctx: &mut Self::Context) -> Self::Result {
        let Some(m) = self.members.get_mut(&msg.peer) else {
            return Err(RoomError::NotInRoom);
        };
        m.display_name = msg.display_name.clone();
        self.notify_others(
            &msg.peer,
            RoomEvent::PeerUpdated {
                peer: msg.peer.clone(),
                display_name: msg.display_name,
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
                    for m in self.members.values() {
                        m.events.do_send(RoomEvent::ActiveSpeaker(peer.clone()));
                    }
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
        MessageResult(RoomSnapshot { peers, consumers })
    }
}

impl Handler<EvictAll> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: EvictAll, _ctx: &mut Self::Context) {
        for m in self.members.values() {
            m.events.do_send(RoomEvent::Evicted(msg.reason.clone()));
        }
    }
}
