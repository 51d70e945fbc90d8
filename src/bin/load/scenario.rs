//! What a run is made of, shared by both signaling dialects: the participants (which room,
//! publisher or subscriber) and what happened to each (the tracker), the context every
//! participant task gets, and the tag scheme that ties engine connections to participants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::engine::EngineHandle;
use crate::media::PublishSpec;

/// Engine tag of a participant's send connection.
pub fn send_tag(part: usize) -> u64 {
    (part as u64) << 1
}

/// Engine tag of a participant's receive connection.
pub fn recv_tag(part: usize) -> u64 {
    ((part as u64) << 1) | 1
}

/// (participant, is the receive connection) of an engine tag.
pub fn from_tag(tag: u64) -> (usize, bool) {
    ((tag >> 1) as usize, tag & 1 == 1)
}

/// Milestones of one participant.
#[derive(Debug, Clone, Default)]
pub struct Part {
    pub room: usize,
    pub publisher: bool,
    /// WebSocket open started (the join clock starts here).
    pub started: Option<Instant>,
    /// `join` answered.
    pub joined: Option<Instant>,
    pub send_connected: Option<Instant>,
    pub recv_connected: Option<Instant>,
    /// First RTP packet on the receive connection.
    pub first_media: Option<Instant>,
    pub error: Option<String>,
}

/// Shared record of every participant, plus the Janus feed ids of each room.
#[derive(Debug, Default)]
pub struct Tracker {
    parts: Mutex<Vec<Part>>,
    feeds: Mutex<HashMap<usize, Vec<u64>>>,
}

impl Tracker {
    pub fn new(parts: Vec<Part>) -> Tracker {
        Tracker {
            parts: Mutex::new(parts),
            feeds: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Part>> {
        // Poisoning only means a task panicked mid-update; the records stay usable.
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn update(&self, part: usize, f: impl FnOnce(&mut Part)) {
        if let Some(p) = self.lock().get_mut(part) {
            f(p);
        }
    }

    pub fn get(&self, part: usize) -> Option<Part> {
        self.lock().get(part).cloned()
    }

    pub fn all(&self) -> Vec<Part> {
        self.lock().clone()
    }

    /// Records an error (the first one wins).
    pub fn fail(&self, part: usize, e: String) {
        self.update(part, |p| {
            if p.error.is_none() {
                p.error = Some(e);
            }
        });
    }

    pub fn add_feed(&self, room: usize, feed: u64) {
        self.feeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(room)
            .or_default()
            .push(feed);
    }

    pub fn feeds(&self, room: usize) -> Vec<u64> {
        self.feeds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&room)
            .cloned()
            .unwrap_or_default()
    }
}

/// Which server a run talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Our server, docs/protocol.md.
    Ours,
    /// Janus VideoRoom over its WebSocket API.
    Janus,
    /// No server: publisher and subscriber connections of the engine talk to each other.
    Direct,
}

/// Everything a participant task needs.
pub struct Ctx {
    pub dialect: Dialect,
    /// `ws://host:port` (ours: rooms at `/ws/<room>`) or the Janus WebSocket URL.
    pub url: String,
    pub engine: EngineHandle,
    pub spec: PublishSpec,
    pub tracker: Arc<Tracker>,
    /// Per request.
    pub timeout: Duration,
    pub shutdown: watch::Receiver<bool>,
    /// Room names (ours) or numbers as text (Janus), by room index.
    pub rooms: Vec<String>,
}

/// Runs one participant with `run` (one per signaling dialect), records its error in the
/// tracker, and closes the connections it opened.
pub async fn drive<F>(ctx: Arc<Ctx>, part: usize, run: F)
where
    F: AsyncFnOnce(&Ctx, usize, &mut Vec<crate::engine::ConnId>) -> anyhow::Result<()>,
{
    let mut conns = Vec::new();
    if let Err(e) = run(&ctx, part, &mut conns).await {
        ctx.tracker.fail(part, format!("{e:#}"));
    }
    for c in conns {
        ctx.engine.close(c);
    }
}
