//! [`EdgePolicy`]: the edge's [`PeerPolicy`] for the participants it starts: joins admitted
//! by [`Limits`], ICE servers from [`IceServers`], joins and errors counted in [`Metrics`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::info;

use super::limits::Limits;
use super::metrics::Metrics;
use super::turn::IceServers;
use crate::auth::{Grant, Tokens};
use crate::ids::{PeerId, RoomId};
use crate::room::{Admitted, Origin, PeerPolicy};
use crate::signaling::{ErrorCode, IceServer, SignalError};

/// Shared by every participant of the process.
#[derive(Debug)]
pub struct EdgePolicy {
    /// Join rate per address and participants per instance.
    pub limits: Arc<Limits>,
    /// What clients get in `iceServers`.
    pub ice: IceServers,
    /// Join durations and errors.
    pub metrics: Arc<Metrics>,
    /// `[auth]`: access tokens.
    pub tokens: Tokens,
}

impl PeerPolicy for EdgePolicy {
    fn admit(&self, peer: &PeerId, origin: &Origin) -> Result<Admitted, SignalError> {
        let ip = origin
            .client_ip
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        match self.limits.admit_join(ip) {
            Ok(place) => Ok(Box::new(place)),
            Err(refused) => {
                info!(%peer, client = origin.client_ip.as_deref().unwrap_or("-"), "join refused: {refused}");
                Err(refused.to_signal_error())
            }
        }
    }

    fn authorize(&self, room: &RoomId, token: Option<&str>) -> Result<Option<Grant>, SignalError> {
        self.tokens
            .admit(room, token, SystemTime::now())
            .map_err(|refused| {
                // The reason only: nothing of the token itself.
                info!(%room, "join refused: {refused}");
                SignalError::new(ErrorCode::Unauthorized, refused.to_string())
            })
    }

    fn ice_servers(&self, peer: &PeerId) -> Vec<IceServer> {
        self.ice.for_peer(peer, SystemTime::now())
    }

    fn joined(&self, elapsed: Duration) {
        self.metrics.join(elapsed);
    }

    fn refused(&self, code: ErrorCode) {
        self.metrics.signaling_error(code);
    }
}
