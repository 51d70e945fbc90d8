//! Which instance hosts which room. Today every room is hosted where it is asked for
//! ([`InMemoryDirectory`]); a Redis-backed directory that lets one meeting span instances
//! implements the same [`RoomDirectory`] trait.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::ids::{NodeId, RoomId};

/// Where a room lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On this instance.
    Local,
    /// On another instance of the deployment.
    Remote(NodeId),
}

/// Claims and releases rooms for instances.
pub trait RoomDirectory: Send + Sync {
    /// Claims `room` for `node` unless another node holds it; says where it lives.
    fn claim(&self, room: &RoomId, node: &NodeId) -> Placement;
    /// Releases `room` if `node` holds it.
    fn release(&self, room: &RoomId, node: &NodeId);
}

/// A directory for a single instance: every claim succeeds.
#[derive(Debug, Default)]
pub struct InMemoryDirectory {
    rooms: Mutex<HashMap<RoomId, NodeId>>,
}

impl RoomDirectory for InMemoryDirectory {
    fn claim(&self, room: &RoomId, node: &NodeId) -> Placement {
        // A poisoned lock means another thread panicked mid-update; the map is still usable.
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        match rooms.get(room) {
            Some(holder) if holder != node => Placement::Remote(holder.clone()),
            _ => {
                rooms.insert(room.clone(), node.clone());
                Placement::Local
            }
        }
    }

    fn release(&self, room: &RoomId, node: &NodeId) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if rooms.get(room) == Some(node) {
            rooms.remove(room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_held_by_one_node_until_released() {
        let d = InMemoryDirectory::default();
        let room = RoomId::parse("r").unwrap();
        let (a, b) = (NodeId::from_raw("a"), NodeId::from_raw("b"));
        assert_eq!(d.claim(&room, &a), Placement::Local);
        assert_eq!(d.claim(&room, &b), Placement::Remote(a.clone()));
        d.release(&room, &b);
        assert_eq!(d.claim(&room, &b), Placement::Remote(a.clone()));
        d.release(&room, &a);
        assert_eq!(d.claim(&room, &b), Placement::Local);
    }
}
