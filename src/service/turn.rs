//! The STUN/TURN servers each participant is given in its `join` response: the static
//! `iceServers` of the configuration, and for `[turn]` credentials of its own in coturn's
//! REST-API shared-secret scheme (username `expiry:peerId`, credential
//! base64(HMAC-SHA1(secret, username))), which coturn checks with the same secret without
//! asking this server. Owns that computation; it sends nothing anywhere.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::config::{Config, IceServerConfig};
use crate::ids::PeerId;
use crate::signaling::IceServer;

/// The ICE servers of this instance.
#[derive(Clone, Default)]
pub struct IceServers {
    /// `iceServers`, as clients get them.
    fixed: Vec<IceServer>,
    /// `[turn]`, when a secret is configured.
    turn: Option<TurnRest>,
}

/// coturn's shared secret and the servers that know it.
#[derive(Clone)]
struct TurnRest {
    urls: Vec<String>,
    secret: String,
    ttl: Duration,
}

impl std::fmt::Debug for IceServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, nor the fixed credentials.
        f.debug_struct("IceServers")
            .field("fixed", &self.fixed.len())
            .field("turn", &self.turn.as_ref().map(|t| &t.urls))
            .finish()
    }
}

impl IceServers {
    /// The servers of `config` (validated: TURN entries carry credentials).
    pub fn from_config(config: &Config) -> Self {
        let fixed = config
            .ice_servers
            .iter()
            .map(|s| match s {
                IceServerConfig::Url(url) => IceServer {
                    urls: vec![url.clone()],
                    username: None,
                    credential: None,
                },
                IceServerConfig::Server {
                    urls,
                    username,
                    credential,
                } => IceServer {
                    urls: urls.clone(),
                    username: username.clone(),
                    credential: credential.clone(),
                },
            })
            .collect();
        let turn = config.turn.secret.as_ref().map(|secret| TurnRest {
            urls: config.turn.urls.clone(),
            secret: secret.clone(),
            ttl: Duration::from_secs(config.turn.ttl),
        });
        Self { fixed, turn }
    }

    /// True when clients get no server at all (host candidates only).
    pub fn is_empty(&self) -> bool {
        self.fixed.is_empty() && self.turn.is_none()
    }

    /// What `peer` gets at `now`: the fixed servers, then its own TURN credentials.
    pub fn for_peer(&self, peer: &PeerId, now: SystemTime) -> Vec<IceServer> {
        let mut servers = self.fixed.clone();
        if let Some(turn) = &self.turn {
            let expiry = now
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_add(turn.ttl)
                .as_secs();
            let username = format!("{expiry}:{peer}");
            let credential = rest_credential(&turn.secret, &username);
            servers.push(IceServer {
                urls: turn.urls.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        servers
    }
}

/// base64(HMAC-SHA1(secret, username)): the password coturn's `use-auth-secret` expects.
pub fn rest_credential(secret: &str, username: &str) -> String {
    // Invariant: HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_coturns_rest_scheme() {
        // echo -n "1700000000:p-00000000000000ab" | openssl dgst -sha1 -hmac north-wind-secret -binary | base64
        assert_eq!(
            rest_credential("north-wind-secret", "1700000000:p-00000000000000ab"),
            "zxZowh2lY6GSrFYixIzaixCZYQw="
        );
    }

    #[test]
    fn each_peer_gets_its_own_expiring_credentials_after_the_fixed_servers() {
        let config = Config {
            ice_servers: vec![IceServerConfig::Url("stun:stun.example.org:3478".into())],
            turn: crate::config::TurnConfig {
                urls: vec!["turn:127.0.0.1:3478".into()],
                secret: Some("north-wind-secret".into()),
                ttl: 3600,
            },
            ..Config::default()
        };
        let servers = IceServers::from_config(&config);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let got = servers.for_peer(&PeerId::from_raw("p-1"), now);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].urls, vec!["stun:stun.example.org:3478"]);
        assert_eq!(got[0].username, None);
        assert_eq!(got[1].urls, vec!["turn:127.0.0.1:3478"]);
        assert_eq!(got[1].username.as_deref(), Some("1700003600:p-1"));
        assert_eq!(
            got[1].credential.as_deref(),
            Some(rest_credential("north-wind-secret", "1700003600:p-1").as_str())
        );
        let other = servers.for_peer(&PeerId::from_raw("p-2"), now);
        assert_ne!(other[1].credential, got[1].credential);
        assert!(!format!("{servers:?}").contains("north-wind"));
        assert!(IceServers::from_config(&Config::default()).is_empty());
    }
}
