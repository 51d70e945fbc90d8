//! [`PeerPolicy`]: what the edge decides about a participant and what it wants to observe,
//! asked by the [`PeerActor`](super::PeerActor) at the moments only it knows (a join, an
//! error reply). The service layer implements it (limits, TURN credentials, metrics); the
//! control plane only calls it, so `room/` does not depend on `service/`.

use std::time::Duration;

use crate::auth::Grant;
use crate::ids::{PeerId, RoomId};
use crate::signaling::{ErrorCode, IceServer, SignalError};

use super::Origin;

/// A place held for an admitted participant (a counted slot); dropped when it leaves.
pub type Admitted = Box<dyn Send>;

/// Decisions and observations of the edge about participants.
pub trait PeerPolicy: Send + Sync {
    /// Asked before a join is sent to the room: `Ok` with a place held until the peer leaves
    /// (or its join fails), or the typed refusal the client gets.
    fn admit(&self, peer: &PeerId, origin: &Origin) -> Result<Admitted, SignalError>;
    /// What the join of `room` with `token` is granted by `[auth]`: `None` = an open join,
    /// `Some` = a valid token's name and roles; `Err` = refused (`unauthorized`).
    fn authorize(&self, room: &RoomId, token: Option<&str>) -> Result<Option<Grant>, SignalError>;
    /// The STUN/TURN servers for the peer's connections (its `join` response).
    fn ice_servers(&self, peer: &PeerId) -> Vec<IceServer>;
    /// A join was answered successfully after `elapsed`.
    fn joined(&self, elapsed: Duration);
    /// An error with `code` was sent to the client (a response or an `error` notification).
    fn refused(&self, code: ErrorCode);
}

/// No limits, no ICE servers, nothing observed: the control plane on its own (actor tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenPolicy;

impl PeerPolicy for OpenPolicy {
    fn admit(&self, _peer: &PeerId, _origin: &Origin) -> Result<Admitted, SignalError> {
        Ok(Box::new(()))
    }

    fn authorize(
        &self,
        _room: &RoomId,
        _token: Option<&str>,
    ) -> Result<Option<Grant>, SignalError> {
        Ok(None)
    }

    fn ice_servers(&self, _peer: &PeerId) -> Vec<IceServer> {
        Vec::new()
    }

    fn joined(&self, _elapsed: Duration) {}

    fn refused(&self, _code: ErrorCode) {}
}
