//! [`RegistryActor`]: the rooms of this instance, and the way to rooms hosted elsewhere. It
//! answers [`Resolve`]: a room open here, a room it claims in the [`RoomDirectory`] and opens
//! here, or the instance that hosts it. It renews the leases of its rooms, announces the
//! instance, gives up a room whose lease another instance took, and at the end of a drain
//! releases its rooms so that live instances can take them over.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::media::MediaPool;
use super::messages::*;
use super::room::{RoomActor, RoomSettings};
use crate::ids::{NodeId, RoomId};
use crate::routing::{
    Claim, DirectoryError, NodeInfo, RoomDirectory, LEASE_RENEW_INTERVAL, NODE_ANNOUNCE_INTERVAL,
};

struct Entry {
    addr: Addr<RoomActor>,
    generation: u64,
    peers: usize,
}

/// Waiters for the outcome of a claim in flight.
type Waiters = Vec<oneshot::Sender<Result<Route, JoinError>>>;

/// The rooms of this instance.
pub struct RegistryActor {
    node: NodeId,
    /// Where the other instances reach this one (`internalUrl`), for announcements.
    internal_url: String,
    /// Places new rooms on media workers.
    media: Arc<dyn MediaPool>,
    settings: RoomSettings,
    directory: Arc<dyn RoomDirectory>,
    rooms: HashMap<RoomId, Entry>,
    /// Claims sent to the directory and not answered yet, with everyone waiting for them; a
    /// second participant of the same room waits for the first claim instead of racing it.
    claiming: HashMap<RoomId, Waiters>,
    next_generation: u64,
    /// Set by [`Drain`]: no new rooms.
    draining: bool,
    /// `limits.maxRooms`: rooms open here at once (0 = no limit).
    max_rooms: usize,
}

impl RegistryActor {
    /// A registry placing rooms on `media`'s workers and claiming them in `directory`.
    pub fn new(
        node: NodeId,
        media: Arc<dyn MediaPool>,
        settings: RoomSettings,
        directory: Arc<dyn RoomDirectory>,
    ) -> Self {
        Self {
            node,
            internal_url: String::new(),
            media,
            settings,
            directory,
            rooms: HashMap::new(),
            claiming: HashMap::new(),
            next_generation: 1,
            draining: false,
            max_rooms: 0,
        }
    }

    /// The same registry opening at most `max` rooms at once (0 = no limit); a join that
    /// would open one more is refused with [`JoinError::TooManyRooms`].
    pub fn with_max_rooms(mut self, max: usize) -> Self {
        self.max_rooms = max;
        self
    }

    fn local(&self, room: &RoomId) -> Option<Addr<RoomActor>> {
        self.rooms
            .get(room)
            .filter(|e| e.addr.connected())
            .map(|e| e.addr.clone())
    }

    fn open(&mut self, room: RoomId, ctx: &mut Context<Self>) -> Addr<RoomActor> {
        let generation = self.next_generation;
        self.next_generation += 1;
        let me = ctx.address();
        let addr = RoomActor::new(
            room.clone(),
            generation,
            self.settings.clone(),
            self.media.assign(),
            Some((me.clone().recipient(), me.recipient())),
        )
        .start();
        self.rooms.insert(
            room,
            Entry {
                addr: addr.clone(),
                generation,
                peers: 0,
            },
        );
        addr
    }

    fn announcement(&self) -> NodeInfo {
        NodeInfo {
            id: self.node.clone(),
            internal_url: self.internal_url.clone(),
            draining: self.draining,
            rooms: self.rooms.len(),
            peers: self.rooms.values().map(|e| e.peers).sum(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    fn announce(&self, ctx: &mut Context<Self>) {
        // Nobody can relay to this instance before its listener is bound.
        if !self.directory.shared() || self.internal_url.is_empty() {
            return;
        }
        let call = self.directory.announce(self.announcement());
        ctx.spawn(
            async move {
                if let Err(e) = call.await {
                    debug!("announcement not stored: {e}");
                }
            }
            .into_actor(self),
        );
    }

    /// Renews the leases of the local rooms; gives up those another instance holds now.
    fn renew(&self, ctx: &mut Context<Self>) {
        if !self.directory.shared() || self.rooms.is_empty() {
            return;
        }
        let rooms: Vec<RoomId> = self.rooms.keys().cloned().collect();
        let call = self.directory.renew(rooms);
        ctx.spawn(call.into_actor(self).map(|result, act, _| match result {
            Ok(lost) => {
                for room in lost {
                    if let Some(e) = act.rooms.remove(&room) {
                        warn!(%room, "another instance holds this room now; its participants reconnect there");
                        e.addr.do_send(EvictAll {
                            reason: "this meeting moved to another server; reconnecting".into(),
                        });
                    }
                }
            }
            // Running meetings go on while Redis is away; the leases are re-taken (or found
            // lost) at the first renewal after it returns.
            Err(e) => debug!("leases not renewed: {e}"),
        }));
    }

    /// Answers everyone waiting for the claim of `room`.
    fn claimed(
        &mut self,
        room: RoomId,
        result: Result<Claim, DirectoryError>,
        ctx: &mut Context<Self>,
    ) {
        let waiters = self.claiming.remove(&room).unwrap_or_default();
        let answer = match result {
            Ok(Claim::Mine) if self.draining => {
                let release = self.directory.release(&room);
                ctx.spawn(async move { drop(release.await) }.into_actor(self));
                Err(JoinError::Closing)
            }
            Ok(Claim::Mine) => match self.local(&room) {
                Some(addr) => Ok(Route::Local(addr)),
                None if self.max_rooms > 0 && self.rooms.len() >= self.max_rooms => {
                    let release = self.directory.release(&room);
                    ctx.spawn(async move { drop(release.await) }.into_actor(self));
                    Err(JoinError::TooManyRooms(self.max_rooms))
                }
                None => Ok(Route::Local(self.open(room.clone(), ctx))),
            },
            Ok(Claim::HeldBy(_, Some(info))) if info.id != self.node => Ok(Route::Remote(info)),
            Ok(Claim::HeldBy(node, _)) => Err(JoinError::HostUnreachable(node)),
            Err(e) => Err(JoinError::DirectoryUnavailable(e.to_string())),
        };
        for w in waiters {
            let _ = w.send(answer.clone());
        }
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !self.directory.shared() {
            return;
        }
        self.announce(ctx);
        ctx.run_interval(NODE_ANNOUNCE_INTERVAL, |act, ctx| act.announce(ctx));
        ctx.run_interval(LEASE_RENEW_INTERVAL, |act, ctx| act.renew(ctx));
    }
}

impl Handler<Resolve> for RegistryActor {
    type Result = ResponseFuture<Result<Route, JoinError>>;

    fn handle(&mut self, msg: Resolve, ctx: &mut Self::Context) -> Self::Result {
        if let Some(addr) = self.local(&msg.room) {
            return Box::pin(async move { Ok(Route::Local(addr)) });
        }
        if self.draining {
            if !self.directory.shared() || msg.relayed {
                return Box::pin(async { Err(JoinError::Closing) });
            }
            // Hand the participant to the room's host, or to the least busy live instance,
            // which claims the room when the participant arrives.
            let (holder, nodes) = (
                self.directory.holder(&msg.room),
                self.directory.live_nodes(),
            );
            let me = self.node.clone();
            return Box::pin(async move {
                let unavailable =
                    |e: DirectoryError| JoinError::DirectoryUnavailable(e.to_string());
                if let Some((node, info)) = holder.await.map_err(unavailable)? {
                    if node != me {
                        return info
                            .map(Route::Remote)
                            .ok_or(JoinError::HostUnreachable(node));
                    }
                }
                nodes
                    .await
                    .map_err(unavailable)?
                    .into_iter()
                    .filter(|n| n.id != me && !n.draining)
                    .min_by_key(|n| n.peers)
                    .map(Route::Remote)
                    .ok_or(JoinError::Closing)
            });
        }
        let (tx, rx) = oneshot::channel();
        let first = !self.claiming.contains_key(&msg.room);
        self.claiming.entry(msg.room.clone()).or_default().push(tx);
        if first {
            let room = msg.room;
            let claim = self.directory.claim(&room);
            ctx.spawn(
                claim
                    .into_actor(self)
                    .map(move |result, act, ctx| act.claimed(room, result, ctx)),
            );
        }
        Box::pin(async move { rx.await.unwrap_or(Err(JoinError::Closing)) })
    }
}

impl Handler<RoomClosed> for RegistryActor {
    type Result = ();

    fn handle(&mut self, msg: RoomClosed, ctx: &mut Self::Context) {
        if self
            .rooms
            .get(&msg.room)
            .is_some_and(|e| e.generation == msg.generation)
        {
            self.rooms.remove(&msg.room);
            let release = self.directory.release(&msg.room);
            let room = msg.room;
            ctx.spawn(
                async move {
                    if let Err(e) = release.await {
                        // The lease runs out by itself within LEASE_TTL.
                        debug!(%room, "lease not released: {e}");
                    }
                }
                .into_actor(self),
            );
        }
    }
}

impl Handler<RoomOccupancy> for RegistryActor {
    type Result = ();

    fn handle(&mut self, msg: RoomOccupancy, _ctx: &mut Self::Context) {
        if let Some(e) = self.rooms.get_mut(&msg.room) {
            if e.generation == msg.generation {
                e.peers = msg.peers;
            }
        }
    }
}

impl Handler<GetRegistryStats> for RegistryActor {
    type Result = MessageResult<GetRegistryStats>;

    fn handle(&mut self, _msg: GetRegistryStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(RegistryStats {
            rooms: self.rooms.len(),
            peers: self.rooms.values().map(|e| e.peers).sum(),
        })
    }
}

impl Handler<Drain> for RegistryActor {
    type Result = ();

    fn handle(&mut self, _msg: Drain, ctx: &mut Self::Context) {
        self.draining = true;
        // Tell the other instances at once, so they stop sending new rooms here.
        self.announce(ctx);
    }
}

impl Handler<EvictAll> for RegistryActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: EvictAll, _ctx: &mut Self::Context) -> Self::Result {
        // Release the leases first: the participants told to reconnect must find their rooms
        // free, so that the first to arrive at a live instance opens the meeting there.
        let releases: Vec<_> = self
            .rooms
            .keys()
            .map(|room| self.directory.release(room))
            .collect();
        if !releases.is_empty() && self.directory.shared() {
            info!(
                rooms = releases.len(),
                "releasing rooms to the other instances"
            );
        }
        Box::pin(
            async move {
                for r in releases {
                    if let Err(e) = r.await {
                        debug!("lease not released: {e}");
                    }
                }
            }
            .into_actor(self)
            .map(move |_, act, _| {
                for e in act.rooms.values() {
                    e.addr.do_send(msg.clone());
                }
            }),
        )
    }
}

impl Handler<SetInternalUrl> for RegistryActor {
    type Result = ();

    fn handle(&mut self, msg: SetInternalUrl, ctx: &mut Self::Context) {
        self.internal_url = msg.0;
        self.announce(ctx);
    }
}

impl Handler<Withdraw> for RegistryActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Withdraw, _ctx: &mut Self::Context) -> Self::Result {
        let withdraw = self.directory.withdraw();
        Box::pin(async move {
            if let Err(e) = withdraw.await {
                debug!("announcement not withdrawn: {e}");
            }
        })
    }
}
