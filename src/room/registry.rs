//! [`RegistryActor`]: opens a room on first use, hands out its address, and forgets it when it
//! closes. Asks the [`RoomDirectory`] where a room lives before opening it here.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use tracing::warn;

use super::media::MediaPool;
use super::messages::*;
use super::room::{RoomActor, RoomSettings};
use crate::ids::{NodeId, RoomId};
use crate::routing::{Placement, RoomDirectory};

struct Entry {
    addr: Addr<RoomActor>,
    generation: u64,
    peers: usize,
}

/// The rooms of this instance.
pub struct RegistryActor {
    node: NodeId,
    /// Places new rooms on media workers.
    media: Arc<dyn MediaPool>,
    settings: RoomSettings,
    directory: Arc<dyn RoomDirectory>,
    rooms: HashMap<RoomId, Entry>,
    next_generation: u64,
    /// Set by [`Drain`]: no new rooms.
    draining: bool,
}

impl RegistryActor {
    /// A registry placing rooms on `media`'s workers.
    pub fn new(
        node: NodeId,
        media: Arc<dyn MediaPool>,
        settings: RoomSettings,
        directory: Arc<dyn RoomDirectory>,
    ) -> Self {
        Self {
            node,
            media,
            settings,
            directory,
            rooms: HashMap::new(),
            next_generation: 1,
            draining: false,
        }
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;
}

impl Handler<GetRoom> for RegistryActor {
    type Result = Result<Addr<RoomActor>, JoinError>;

    fn handle(&mut self, msg: GetRoom, ctx: &mut Self::Context) -> Self::Result {
        if let Some(e) = self.rooms.get(&msg.room) {
            if e.addr.connected() {
                return Ok(e.addr.clone());
            }
        }
        if self.draining {
            return Err(JoinError::Closing);
        }
        if let Placement::Remote(node) = self.directory.claim(&msg.room, &self.node) {
            // Cross-instance meetings are not relayed yet: refuse rather than split the room.
            warn!(room = %msg.room, %node, "room is hosted by another instance");
            return Err(JoinError::Closing);
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let me = ctx.address();
        let room = RoomActor::new(
            msg.room.clone(),
            generation,
            self.settings.clone(),
            self.media.assign(),
            Some((me.clone().recipient(), me.recipient())),
        )
        .start();
        self.rooms.insert(
            msg.room,
            Entry {
                addr: room.clone(),
                generation,
                peers: 0,
            },
        );
        Ok(room)
    }
}

impl Handler<RoomClosed> for RegistryActor {
    type Result = ();

    fn handle(&mut self, msg: RoomClosed, _ctx: &mut Self::Context) {
        if self
            .rooms
            .get(&msg.room)
            .is_some_and(|e| e.generation == msg.generation)
        {
            self.rooms.remove(&msg.room);
            self.directory.release(&msg.room, &self.node);
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

    fn handle(&mut self, _msg: Drain, _ctx: &mut Self::Context) {
        self.draining = true;
    }
}

impl Handler<EvictAll> for RegistryActor {
    type Result = ();

    fn handle(&mut self, msg: EvictAll, _ctx: &mut Self::Context) {
        for e in self.rooms.values() {
            e.addr.do_send(msg.clone());
        }
    }
}
