//! SDP for subscriber connections: the server offers each recv transport its consumers'
//! m-lines (batched per turn of the loop) and applies the client's answer.

use super::{InFlight, TKey, Worker};
use crate::model::ConsumerInfo;
use crate::sfu::messages::MediaEvent;

impl Worker {
    /// Marks a recv transport for renegotiation once the queued commands are handled, so
    /// consumers added together go out in one offer.
    pub(super) fn negotiate(&mut self, key: TKey) {
        if !self.to_negotiate.contains(&key) {
            self.to_negotiate.push(key);
        }
    }

    pub(super) fn negotiate_pending(&mut self) {
        for key in std::mem::take(&mut self.to_negotiate) {
            self.negotiate_now(key);
        }
    }

    /// Starts a new offer on a recv transport when changes wait and none is in flight.
    pub(super) fn negotiate_now(&mut self, key: TKey) {
        let Some(t) = self.transports.get_mut(&key) else {
            return;
        };
        if t.dead
            || t.in_flight.is_some()
            || (t.pending_add.is_empty() && t.pending_inactive.is_empty())
        {
            return;
        }
        let Some(conn) = t.conn.recv() else {
            return;
        };
        let mut added = Vec::new();
        let mut infos = Vec::new();
        for cid in t.pending_add.drain(..) {
            let Some(c) = self.consumers.get_mut(&cid) else {
                continue;
            };
            let Some(p) = self.producers.get(&c.producer) else {
                continue;
            };
            let mid = conn.add_line(p.kind, p.peer.as_str(), p.id.as_str());
            c.mid = Some(mid);
            t.consumers_by_mid.insert(mid, cid.clone());
            infos.push(ConsumerInfo {
                id: cid.clone(),
                producer_id: p.id.clone(),
                peer_id: p.peer.clone(),
                kind: p.kind,
                source: p.source,
                mid: mid.to_string(),
                paused: p.paused,
            });
            added.push(cid);
        }
        let inactive = !t.pending_inactive.is_empty();
        for mid in t.pending_inactive.drain(..) {
            conn.set_inactive(mid);
        }
        if added.is_empty() && !inactive {
            // Every consumer waiting for this offer closed before it went out: nothing to
            // negotiate (an offer without m-lines would have no ICE or DTLS attributes).
            return;
        }
        let offer = conn.offer();
        t.in_flight = Some(InFlight { consumers: added });
        let peer = t.peer.clone();
        self.notify_peer(
            &peer,
            MediaEvent::RecvOffer {
                sdp: offer,
                consumers: infos,
            },
        );
    }
}
