//! What of a meeting outlives its participants' connections: the lock and access code, the
//! chat history, the roles given, who was admitted and whose hand is up. The room actor keeps
//! it in a [`MeetingState`] and hands every change to a [`MeetingStore`]: nothing for a single
//! instance ([`NoStore`]: the state dies with the room), Redis for several ([`RedisStore`]),
//! so that a meeting moved to another instance after a crash finds its state there.
//!
//! It knows nothing of actors or sockets.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use deadpool_redis::redis;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::ids::RoomId;
use crate::model::{ChatEntry, Role};
use crate::routing::redis::{call, pool, KEY_PREFIX};
use crate::routing::DirectoryError;

/// How long Redis keeps a meeting's state after its last change: a meeting nobody touched for
/// a day is over even if nobody closed it.
pub const STATE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Session users remembered as admitted (the oldest are forgotten first).
const MAX_REMEMBERED_USERS: usize = 1000;

/// The lasting state of one meeting. Users are browser-session ids; participants without a
/// session are not remembered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MeetingState {
    /// Newcomers wait in the lobby.
    pub locked: bool,
    /// Lets a newcomer skip the lobby; a wrong one is refused.
    pub access_code: Option<String>,
    /// The recent chat, oldest first.
    pub chat: VecDeque<ChatEntry>,
    /// Roles held in the meeting beyond `normal`, by user.
    pub roles: BTreeMap<String, BTreeSet<Role>>,
    /// Users admitted into the meeting: they come back without the lobby.
    pub admitted: VecDeque<String>,
    /// Users with a raised hand.
    pub raised_hands: BTreeSet<String>,
}

impl MeetingState {
    /// Appends a chat message and drops the oldest ones beyond `max_messages` or `max_bytes`
    /// of text.
    pub fn push_chat(&mut self, entry: ChatEntry, max_messages: usize, max_bytes: usize) {
        self.chat.push_back(entry);
        let mut bytes: usize = self.chat.iter().map(|e| e.text.len()).sum();
        while self.chat.len() > max_messages || bytes > max_bytes {
            match self.chat.pop_front() {
                Some(old) => bytes -= old.text.len(),
                None => break,
            }
        }
    }

    /// Remembers that `user` was admitted.
    pub fn remember_admitted(&mut self, user: &str) {
        if self.admitted.iter().any(|u| u == user) {
            return;
        }
        self.admitted.push_back(user.to_string());
        while self.admitted.len() > MAX_REMEMBERED_USERS {
            self.admitted.pop_front();
        }
    }

    /// True when `user` was admitted before.
    pub fn was_admitted(&self, user: &str) -> bool {
        self.admitted.iter().any(|u| u == user)
    }

    /// True when nothing was remembered yet (a new meeting).
    pub fn is_fresh(&self) -> bool {
        self.roles.is_empty() && self.admitted.is_empty()
    }
}

/// A store call in flight.
pub type StoreFuture<T> = BoxFuture<'static, Result<T, DirectoryError>>;

/// Keeps the state of meetings.
pub trait MeetingStore: Send + Sync {
    /// The stored state of `room`, if any.
    fn load(&self, room: &RoomId) -> StoreFuture<Option<MeetingState>>;
    /// Stores the state of `room`.
    fn save(&self, room: &RoomId, state: &MeetingState) -> StoreFuture<()>;
    /// Forgets `room` (the meeting is over).
    fn delete(&self, room: &RoomId) -> StoreFuture<()>;
}

/// A single instance: the state lives in the room actor only.
#[derive(Debug, Default)]
pub struct NoStore;

impl MeetingStore for NoStore {
    fn load(&self, _room: &RoomId) -> StoreFuture<Option<MeetingState>> {
        Box::pin(async { Ok(None) })
    }

    fn save(&self, _room: &RoomId, _state: &MeetingState) -> StoreFuture<()> {
        Box::pin(async { Ok(()) })
    }

    fn delete(&self, _room: &RoomId) -> StoreFuture<()> {
        Box::pin(async { Ok(()) })
    }
}

/// Meeting state in Redis: `mm:room:<room>:state`, JSON, for [`STATE_TTL`] after its last
/// change (docs/clustering.md).
#[derive(Clone)]
pub struct RedisStore {
    pool: deadpool_redis::Pool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisStore")
    }
}

/// The state key of a room.
pub fn state_key(room: &RoomId) -> String {
    format!("{KEY_PREFIX}room:{room}:state")
}

impl RedisStore {
    /// A store on the Redis at `url` (connects lazily).
    pub fn new(url: &str) -> Result<Self, DirectoryError> {
        Ok(Self { pool: pool(url)? })
    }
}

impl MeetingStore for RedisStore {
    fn load(&self, room: &RoomId) -> StoreFuture<Option<MeetingState>> {
        let (pool, key) = (self.pool.clone(), state_key(room));
        Box::pin(async move {
            let text: Option<String> = call(pool, |mut conn| async move {
                redis::cmd("GET").arg(key).query_async(&mut conn).await
            })
            .await?;
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
        })
    }

    fn save(&self, room: &RoomId, state: &MeetingState) -> StoreFuture<()> {
        let (pool, key) = (self.pool.clone(), state_key(room));
        let json = serde_json::to_string(state);
        Box::pin(async move {
            let json = json.map_err(|e| DirectoryError::Protocol(e.to_string()))?;
            call(pool, |mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(json)
                    .arg("EX")
                    .arg(STATE_TTL.as_secs())
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
        })
    }

    fn delete(&self, room: &RoomId) -> StoreFuture<()> {
        let (pool, key) = (self.pool.clone(), state_key(room));
        Box::pin(async move {
            call(pool, |mut conn| async move {
                redis::cmd("DEL")
                    .arg(key)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PeerId;

    fn entry(text: &str) -> ChatEntry {
        ChatEntry {
            peer_id: PeerId::from_raw("p"),
            display_name: "A".into(),
            text: text.into(),
            time: 0,
        }
    }

    #[test]
    fn chat_history_is_bounded_by_count_and_bytes() {
        let mut s = MeetingState::default();
        for i in 0..5 {
            s.push_chat(entry(&format!("m{i}")), 3, 1000);
        }
        let texts: Vec<&str> = s.chat.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["m2", "m3", "m4"], "the newest three");
        s.push_chat(entry(&"x".repeat(8)), 3, 10);
        let texts: Vec<&str> = s.chat.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["m4", "xxxxxxxx"], "the newest that fit in 10 bytes");
        s.push_chat(entry(&"y".repeat(11)), 3, 10);
        assert!(
            s.chat.is_empty(),
            "a message longer than the whole budget is not kept"
        );
    }

    #[test]
    fn admitted_users_are_remembered_once() {
        let mut s = MeetingState::default();
        assert!(s.is_fresh());
        s.remember_admitted("u1");
        s.remember_admitted("u1");
        assert_eq!(s.admitted.len(), 1);
        assert!(s.was_admitted("u1") && !s.was_admitted("u2"));
        assert!(!s.is_fresh());
    }

    #[test]
    fn state_survives_json() {
        let mut s = MeetingState {
            locked: true,
            access_code: Some("1234".into()),
            ..MeetingState::default()
        };
        s.push_chat(entry("hi"), 10, 100);
        s.roles
            .insert("u1".into(), [Role::Moderator].into_iter().collect());
        let back: MeetingState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(state_key(&RoomId::parse("r").unwrap()), "mm:room:r:state");
    }
}
