//! Room access tokens: JWTs signed with HS256 under a key id (`kid`), so that keys can be
//! rotated. A token grants a room (or `*`), optionally a display name and roles, until its
//! expiry. [`Tokens`] verifies them for the `join` of a peer according to `[auth] mode`, and
//! mints them for the `token` subcommand.
//!
//! Claims (`docs/protocol.md`, "Access tokens"):
//! `{"room": "standup" | "*", "name"?: "Alice", "roles"?: ["moderator"], "exp": 1767225600,
//! "iat"?: …, "nbf"?: …}` with the header `{"alg": "HS256", "typ": "JWT", "kid": "2026-12"}`.
//!
//! Nothing of a token is ever logged or echoed: errors say what is wrong, not what was sent.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::RoomId;
use crate::model::Role;

/// Clock difference tolerated between the machine that minted a token and this one.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(30);

/// Shortest signing secret accepted (bytes): HS256 is as strong as its key.
pub const MIN_SECRET_LEN: usize = 32;

/// `[auth] mode`: who may join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Anyone who can reach the server joins any room; tokens are not read.
    #[default]
    Open,
    /// Every join needs a valid token for its room.
    Token,
    /// Anyone joins; a valid token adds its roles (and its name). A token that is sent but
    /// not valid is refused, so that its holder learns the link is wrong.
    OpenWithRoles,
}

/// A token as it travels in `join`: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct TokenText(pub String);

impl fmt::Debug for TokenText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenText(<{} bytes>)", self.0.len())
    }
}

/// Why a token was refused; the message tells the holder which, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `mode = "token"` and the join carried none.
    #[error("this server admits only participants with an access token; open the link you were given (with ?token=...)")]
    Missing,
    /// Not three base64url parts, bad JSON, or a claim of the wrong type.
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    /// A key id this server does not know (rotated out, or another deployment's).
    #[error("the access token was signed with key `{0}`, which this server does not have")]
    UnknownKey(String),
    /// The signature does not match: forged or altered.
    #[error("the access token's signature is not valid: it was altered or not made with this server's key")]
    BadSignature,
    /// Past its `exp` (and the leeway).
    #[error("the access token expired {0} s ago; ask for a new link")]
    Expired(u64),
    /// Before its `nbf`.
    #[error("the access token is not valid yet (in {0} s)")]
    NotYetValid(u64),
    /// For another room.
    #[error("the access token is for room `{granted}`, not `{wanted}`")]
    OtherRoom {
        /// The room the token grants.
        granted: String,
        /// The room joined.
        wanted: String,
    },
}

/// What a valid token grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The display name the token fixes, if any.
    pub name: Option<String>,
    /// The roles it gives, plus `authenticated` (the holder was vouched for).
    pub roles: Vec<Role>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// The claims of a room token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The room, or `*` for every room.
    pub room: String,
    /// The display name it fixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Roles granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// The token rules of this server: its mode and signing keys by id.
#[derive(Clone, Default)]
pub struct Tokens {
    mode: AuthMode,
    keys: BTreeMap<String, String>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("mode", &self.mode)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn mac(secret: &str) -> Hmac<Sha256> {
    // Invariant: HMAC accepts keys of any length.
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length")
}

impl Tokens {
    /// Rules from `[auth]`.
    pub fn new(mode: AuthMode, keys: BTreeMap<String, String>) -> Self {
        Self { mode, keys }
    }

    /// The mode.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// What the `join` of `room` with `token` is granted: `Ok(None)` = nothing beyond an
    /// open join, `Ok(Some)` = the token's grant, `Err` = refused.
    pub fn admit(
        &self,
        room: &RoomId,
        token: Option<&str>,
        now: SystemTime,
    ) -> Result<Option<Grant>, TokenError> {
        match (self.mode, token.filter(|t| !t.is_empty())) {
            (AuthMode::Open, _) | (AuthMode::OpenWithRoles, None) => Ok(None),
            (AuthMode::Token, None) => Err(TokenError::Missing),
            (_, Some(token)) => self.verify(room, token, now).map(Some),
        }
    }

    /// Checks `token` for `room` at `now`.
    pub fn verify(&self, room: &RoomId, token: &str, now: SystemTime) -> Result<Grant, TokenError> {
        let malformed = |what: &str| TokenError::Malformed(what.to_string());
        let mut parts = token.trim().split('.');
        let (Some(header_b64), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("a JWT has three parts separated by dots"));
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| malformed(&format!("its {what} is not base64url")))
        };
        let header: Header = serde_json::from_slice(&decode(header_b64, "header")?)
            .map_err(|_| malformed("its header is not a JWT header"))?;
        if header.alg != "HS256" {
            return Err(malformed("only HS256 tokens are accepted"));
        }
        let kid = header
            .kid
            .ok_or_else(|| malformed("its header has no key id (kid)"))?;
        let secret = self
            .keys
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
        let signature = decode(signature, "signature")?;
        let mut m = mac(secret);
        m.update(header_b64.as_bytes());
        m.update(b".");
        m.update(payload.as_bytes());
        m.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = serde_json::from_slice(&decode(payload, "payload")?).map_err(|e| {
            malformed(&format!(
                "its claims do not fit (room, exp, name, roles): {}",
                claim_problem(&e)
            ))
        })?;
        let now_s = unix(now);
        let leeway = CLOCK_LEEWAY.as_secs();
        if now_s > claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired(now_s - claims.exp));
        }
        if let Some(nbf) = claims.nbf {
            if nbf > now_s.saturating_add(leeway) {
                return Err(TokenError::NotYetValid(nbf - now_s));
            }
        }
        if claims.room != "*" && claims.room != room.as_str() {
            return Err(TokenError::OtherRoom {
                granted: claims.room,
                wanted: room.as_str().to_string(),
            });
        }
        let mut roles = claims.roles;
        roles.push(Role::Authenticated);
        roles.sort();
        roles.dedup();
        Ok(Grant {
            name: claims.name,
            roles,
        })
    }

    /// A token under key `kid` (the only key when `None`).
    pub fn mint(&self, kid: Option<&str>, claims: &Claims) -> Result<String, String> {
        let kid = match kid {
            Some(k) => k.to_string(),
            None if self.keys.len() == 1 => self.keys.keys().next().cloned().unwrap_or_default(),
            None if self.keys.is_empty() => {
                return Err("the configuration has no [auth] keys to sign with".into())
            }
            None => {
                return Err(format!(
                    "the configuration has several keys ({}); choose one with --kid",
                    self.keys.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            }
        };
        let secret = self
            .keys
            .get(&kid)
            .ok_or_else(|| format!("no key `{kid}` in [auth] keys"))?;
        Ok(sign(&kid, secret, claims))
    }
}

/// The claim serde refused, without the token's content.
fn claim_problem(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde_json quotes offending values ("unknown variant `x`"); keep only its kind.
    if text.contains("unknown variant") {
        "a role that does not exist (normal, authenticated, presenter, moderator, admin)".into()
    } else if text.contains("missing field") {
        text.split(" at line")
            .next()
            .unwrap_or("a claim is missing")
            .to_string()
    } else {
        "a claim has the wrong type".into()
    }
}

/// Signs `claims` with HS256 under `kid`.
pub fn sign(kid: &str, secret: &str, claims: &Claims) -> String {
    let header = Header {
        alg: "HS256".into(),
        typ: Some("JWT".into()),
        kid: Some(kid.into()),
    };
    // Invariant: both are plain structs of strings and numbers.
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header serializes"));
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let mut m = mac(secret);
    m.update(header.as_bytes());
    m.update(b".");
    m.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

/// Claims for `room` valid `ttl` from `now`.
pub fn claims(
    room: &str,
    name: Option<String>,
    roles: Vec<Role>,
    ttl: Duration,
    now: SystemTime,
) -> Claims {
    let iat = unix(now);
    Claims {
        room: room.to_string(),
        name,
        roles,
        exp: iat + ttl.as_secs(),
        iat: Some(iat),
        nbf: None,
    }
}

/// Parses a duration as operators write it: `90` (seconds), `90s`, `30m`, `1h`, `7d`.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write 90s, 30m, 1h or 7d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit is s, m, h or d")),
    };
    if n == 0 {
        return Err("a token valid for 0 s expires at once".into());
    }
    Ok(Duration::from_secs(n.saturating_mul(unit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn tokens(mode: AuthMode) -> Tokens {
        Tokens::new(
            mode,
            BTreeMap::from([
                (
                    "old".to_string(),
                    "old-secret-old-secret-old-secret!".to_string(),
                ),
                ("new".to_string(), SECRET.to_string()),
            ]),
        )
    }

    fn room(r: &str) -> RoomId {
        RoomId::parse(r).unwrap()
    }

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    fn token(kid: &str, secret: &str, c: Claims) -> String {
        sign(kid, secret, &c)
    }

    fn standup(roles: Vec<Role>) -> Claims {
        claims(
            "standup",
            Some("Alice".into()),
            roles,
            Duration::from_secs(3600),
            at(1_000_000),
        )
    }

    #[test]
    fn a_valid_token_grants_its_name_and_roles_plus_authenticated() {
        let t = tokens(AuthMode::Token);
        let tok = token("new", SECRET, standup(vec![Role::Moderator]));
        let grant = t
            .admit(&room("standup"), Some(&tok), at(1_000_100))
            .unwrap()
            .unwrap();
        assert_eq!(grant.name.as_deref(), Some("Alice"));
        assert_eq!(grant.roles, vec![Role::Authenticated, Role::Moderator]);
        // Both keys of the rotation are accepted.
        let old = token("old", "old-secret-old-secret-old-secret!", standup(vec![]));
        assert!(t.verify(&room("standup"), &old, at(1_000_100)).is_ok());
        // `*` grants every room.
        let mut any = standup(vec![]);
        any.room = "*".into();
        let any = token("new", SECRET, any);
        assert!(t.verify(&room("retro"), &any, at(1_000_100)).is_ok());
    }

    #[test]
    fn forged_expired_other_room_and_unknown_key_are_refused_and_say_which() {
        let t = tokens(AuthMode::Token);
        let now = at(1_000_100);
        let r = room("standup");
        let forged = token("new", "another-secret-another-secret-xx", standup(vec![]));
        assert_eq!(t.verify(&r, &forged, now), Err(TokenError::BadSignature));
        // Claims altered after signing (a role added by the holder).
        let good = token("new", SECRET, standup(vec![]));
        let parts: Vec<&str> = good.split('.').collect();
        let altered =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&standup(vec![Role::Admin])).unwrap());
        let altered = format!("{}.{altered}.{}", parts[0], parts[2]);
        assert_eq!(t.verify(&r, &altered, now), Err(TokenError::BadSignature));
        let expired = t.verify(&r, &good, at(1_000_000 + 3600 + 31));
        assert_eq!(expired, Err(TokenError::Expired(31)));
        // Within the leeway it still counts.
        assert!(t.verify(&r, &good, at(1_000_000 + 3600 + 29)).is_ok());
        assert_eq!(
            t.verify(&room("retro"), &good, now),
            Err(TokenError::OtherRoom {
                granted: "standup".into(),
                wanted: "retro".into()
            })
        );
        let unknown = token("gone", SECRET, standup(vec![]));
        assert_eq!(
            t.verify(&r, &unknown, now),
            Err(TokenError::UnknownKey("gone".into()))
        );
        for junk in ["", "a.b", "a.b.c.d", "not a token", "....", "eyJ.eyJ.x"] {
            assert!(
                matches!(t.verify(&r, junk, now), Err(TokenError::Malformed(_))),
                "{junk:?}"
            );
        }
        // alg none (the classic forgery) is refused before any key is looked at.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"new"}"#),
            parts[1]
        );
        assert!(matches!(
            t.verify(&r, &none, now),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn modes_decide_what_a_missing_token_means() {
        let r = room("standup");
        let now = at(1_000_100);
        assert_eq!(tokens(AuthMode::Open).admit(&r, None, now), Ok(None));
        assert_eq!(
            tokens(AuthMode::Open).admit(&r, Some("garbage"), now),
            Ok(None),
            "open mode does not read tokens"
        );
        assert_eq!(
            tokens(AuthMode::OpenWithRoles).admit(&r, None, now),
            Ok(None)
        );
        assert!(tokens(AuthMode::OpenWithRoles)
            .admit(&r, Some("garbage"), now)
            .is_err());
        assert_eq!(
            tokens(AuthMode::Token).admit(&r, None, now),
            Err(TokenError::Missing)
        );
        assert_eq!(
            tokens(AuthMode::Token).admit(&r, Some(""), now),
            Err(TokenError::Missing)
        );
    }

    #[test]
    fn errors_and_debug_never_show_the_token() {
        let t = tokens(AuthMode::Token);
        let tok = token("new", SECRET, standup(vec![]));
        let secret_part = tok.split('.').nth(2).unwrap().to_string();
        for now in [at(0), at(9_999_999)] {
            if let Err(e) = t.verify(&room("retro"), &tok, now) {
                assert!(!e.to_string().contains(&secret_part));
            }
        }
        assert!(!format!("{:?}", TokenText(tok.clone())).contains(&secret_part));
        assert!(!format!("{t:?}").contains(SECRET));
    }

    #[test]
    fn minting_picks_the_only_key_or_asks() {
        let one = Tokens::new(
            AuthMode::Token,
            BTreeMap::from([("k".to_string(), SECRET.to_string())]),
        );
        let c = standup(vec![]);
        let tok = one.mint(None, &c).unwrap();
        assert!(one.verify(&room("standup"), &tok, at(1_000_100)).is_ok());
        assert!(tokens(AuthMode::Token)
            .mint(None, &c)
            .unwrap_err()
            .contains("--kid"));
        assert!(tokens(AuthMode::Token).mint(Some("x"), &c).is_err());
    }

    #[test]
    fn ttl_as_operators_write_it() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("0").is_err());
    }
}
