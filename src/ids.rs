//! Strongly typed identifiers shared by every layer: rooms, peers, producers, consumers, nodes.
//!
//! Ids cross module boundaries only as these newtypes, never as bare strings, so a
//! `ProducerId` cannot be passed where a `ConsumerId` is expected.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Declares a string newtype id with a random generator using `prefix`.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random id, unique for all practical purposes (64 random bits).
            pub fn random() -> Self {
                let n: u64 = rand::thread_rng().gen();
                Self(format!(concat!($prefix, "-{:016x}"), n))
            }

            /// Wraps an id received from elsewhere (the wire, a test) without checking it.
            pub fn from_raw(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// One participant's connection to a room.
    PeerId,
    "p"
);
string_id!(
    /// A track a peer sends to the server.
    ProducerId,
    "pr"
);
string_id!(
    /// A copy of a producer that the server sends to one peer.
    ConsumerId,
    "c"
);
string_id!(
    /// One server instance (process) of a deployment.
    NodeId,
    "n"
);

/// The name of a meeting, taken from the URL path; validated on construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(String);

/// Why a string is not a valid room id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomIdError {
    /// Empty or longer than 64 characters.
    #[error("a room name has 1 to 64 characters")]
    Length,
    /// A character outside `A-Z a-z 0-9 - _ .`.
    #[error("a room name may only use letters, digits, '-', '_' and '.'")]
    Character,
    /// One of the names the HTTP edge uses for itself.
    #[error("'{0}' is reserved")]
    Reserved(String),
}

/// Path segments served by the HTTP edge itself, never meetings.
pub const RESERVED_ROOM_NAMES: &[&str] =
    &["ws", "static", "health", "metrics", "api", "favicon.ico"];

impl RoomId {
    /// Validates `name` as a room id.
    pub fn parse(name: &str) -> Result<Self, RoomIdError> {
        if name.is_empty() || name.len() > 64 {
            return Err(RoomIdError::Length);
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(RoomIdError::Character);
        }
        if RESERVED_ROOM_NAMES.contains(&name) || name.starts_with('.') {
            return Err(RoomIdError::Reserved(name.to_string()));
        }
        Ok(Self(name.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoomId {
    type Error = RoomIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<RoomId> for String {
    fn from(r: RoomId) -> String {
        r.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_validated() {
        assert!(RoomId::parse("team-standup_2.0").is_ok());
        assert_eq!(RoomId::parse(""), Err(RoomIdError::Length));
        assert_eq!(RoomId::parse(&"a".repeat(65)), Err(RoomIdError::Length));
        assert_eq!(RoomId::parse("a b"), Err(RoomIdError::Character));
        assert_eq!(RoomId::parse("../x"), Err(RoomIdError::Character));
        assert!(matches!(RoomId::parse("ws"), Err(RoomIdError::Reserved(_))));
    }

    /// The names quoted between backticks or quotes in `text` after `marker`, up to `end`.
    fn quoted_names(text: &str, marker: &str, end: &str) -> Vec<String> {
        let start = text.find(marker).expect("marker present") + marker.len();
        let rest = &text[start..];
        let rest = &rest[..rest.find(end).expect("end present")];
        rest.split(['`', '\''])
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn web_client_and_protocol_doc_reserve_the_same_room_names() {
        let ours: Vec<String> = RESERVED_ROOM_NAMES.iter().map(|s| s.to_string()).collect();
        let js = include_str!("../static/js/rooms.js");
        assert_eq!(
            quoted_names(js, "RESERVED_ROOM_NAMES = [", "]"),
            ours,
            "static/js/rooms.js disagrees with RESERVED_ROOM_NAMES"
        );
        let doc = include_str!("../docs/protocol.md");
        assert_eq!(
            quoted_names(doc, "reserved room names:", ";"),
            ours,
            "docs/protocol.md disagrees with RESERVED_ROOM_NAMES"
        );
        assert!(
            doc.contains("may not start with a dot") && js.contains("startsWith('.')"),
            "the leading-dot rule is documented and applied by the web client"
        );
        assert!(matches!(RoomId::parse(".x"), Err(RoomIdError::Reserved(_))));
    }

    #[test]
    fn random_ids_differ_and_carry_their_prefix() {
        let a = PeerId::random();
        assert!(a.as_str().starts_with("p-"));
        assert_ne!(a, PeerId::random());
    }
}
