//! Server configuration: embedded defaults, then a TOML file, then `MM_*` environment
//! variables, then [`Config::validate`]. Owns key names and their checks; it does not
//! open sockets or start anything.
//!
//! Key names follow the original multiparty-meeting where one exists (`listeningPort`,
//! `rtcMinPort`, `announcedIp`, ...). Every key is documented in
//! `config/config.example.toml`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::{AuthMode, MIN_SECRET_LEN};
use crate::model::{Permission, Role};

/// Prefix of the environment variables that override file keys:
/// `MM_LISTENING_PORT=3443` sets `listeningPort`; `MM_TLS_CERT` (or `MM_TLS__CERT`) sets
/// `tls.cert`. An empty variable (`MM_NODE_ID=`) counts as unset.
pub const ENV_PREFIX: &str = "MM_";

/// Everything the server can be told at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP/WebSocket listener binds.
    pub listening_host: String,
    /// Port of the HTTP/WebSocket listener (0 = any free port, for tests).
    pub listening_port: u16,
    /// Plain HTTP (TLS terminated elsewhere, or local development).
    pub http_only: bool,
    /// Certificate and key served when `httpOnly` is false.
    pub tls: TlsConfig,
    /// When set, a plain-HTTP listener on this port redirects to https on `listeningPort`.
    pub listening_redirect_port: Option<u16>,
    /// The server sits behind a reverse proxy whose forwarded headers may be believed.
    pub behind_reverse_proxy: bool,
    /// Addresses or CIDRs of the proxies whose forwarded headers are believed; empty with
    /// `behindReverseProxy` = loopback only.
    pub trust_proxy: Vec<String>,
    /// Redis for shared sessions (`redis://host:6379/0`); unset = in-memory sessions.
    pub redis_url: Option<String>,
    /// Name of the session cookie.
    pub cookie_name: String,
    /// Secret that signs session cookies (at least 32 characters); required with Redis.
    pub cookie_secret: Option<String>,
    /// Lifetime of a session in seconds.
    pub cookie_max_age: u64,
    /// Accept weak or missing secrets (local development only).
    pub development: bool,
    /// Milliseconds running meetings may continue after SIGTERM before peers are asked to
    /// reconnect elsewhere.
    pub drain_timeout: u64,
    /// Address the media (UDP) sockets bind.
    pub rtc_listen_ip: String,
    /// Lowest UDP port the media workers may bind.
    pub rtc_min_port: u16,
    /// Highest UDP port the media workers may bind.
    pub rtc_max_port: u16,
    /// Address announced to browsers in ICE candidates; unset = 127.0.0.1 (this machine only).
    pub announced_ip: Option<String>,
    /// Media worker threads; 0 = one per CPU core.
    pub num_workers: usize,
    /// Peers allowed in one room; 0 = no limit.
    pub max_users_per_room: usize,
    /// Milliseconds an empty room waits for someone to come back before it closes.
    pub empty_room_close_delay: u64,
    /// Milliseconds between WebSocket pings to a client.
    pub heartbeat_interval: u64,
    /// Milliseconds of silence after which a client is considered gone.
    pub heartbeat_timeout: u64,
    /// Milliseconds the signaling layer waits for the media layer to answer a request.
    pub request_timeout: u64,
    /// Bits per second a new subscriber connection starts with before its estimate arrives.
    pub initial_available_outgoing_bitrate: u64,
    /// Name of this instance in logs and `/health`; unset = random at start.
    pub node_id: Option<String>,
    /// With `redisUrl`: the URL at which the other instances reach this one's HTTP listener
    /// to relay participants (`http://10.0.0.5:3443`); unset = `http://` + `listeningHost`
    /// (127.0.0.1 when it is 0.0.0.0 or ::) + the bound port, which only works on one machine.
    pub internal_url: Option<String>,
    /// The first participant of a new meeting becomes its moderator (no identity provider
    /// needed to run a meeting).
    pub first_peer_moderator: bool,
    /// Newcomers wait in the lobby while no moderator is in the room.
    pub wait_for_moderator: bool,
    /// Chat messages a late joiner receives (the newest; 0 = no history).
    pub chat_history_messages: usize,
    /// Bytes of chat text the history keeps at most (the oldest messages go first).
    pub chat_history_bytes: usize,
    /// Longest chat message, in characters.
    pub max_chat_message_length: usize,
    /// Which roles hold each permission (a permission held by a role is held by every role
    /// above it).
    pub permissions: PermissionMap,
    /// Permissions anyone may use while no participant holding them is in the room.
    pub allow_when_role_missing: Vec<Permission>,
    /// Origins, besides the page's own, whose pages may open the signaling WebSocket
    /// (`https://intranet.example.org`): pages that embed a client of their own.
    pub allowed_origins: Vec<String>,
    /// Origins, besides the server's own, that may show the web client in a frame
    /// (CSP `frame-ancestors`); empty = only pages of this server.
    pub frame_ancestors: Vec<String>,
    /// STUN/TURN servers handed to every client as they are (`join` response).
    pub ice_servers: Vec<IceServerConfig>,
    /// TURN servers sharing a secret with this server (coturn `use-auth-secret`): each client
    /// gets credentials of its own, valid for `ttl` seconds.
    pub turn: TurnConfig,
    /// Limits against abuse: signaling rate, connections and joins per client address,
    /// peers and rooms per instance.
    pub limits: LimitsConfig,
    /// `address:port` of a separate HTTP listener serving Prometheus `/metrics`; unset = no
    /// metrics. Never the public port.
    pub metrics_listen: Option<String>,
    /// `text` (for people) or `json` (one object per line, for log collectors).
    pub log_format: LogFormat,
    /// `[auth]`: who may join (open, token, open-with-roles) and the keys tokens are signed
    /// with.
    pub auth: AuthConfig,
}

/// `[auth]`: room access tokens (JWT HS256, see `crate::auth`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `open` (default): anyone joins; `token`: every join needs a token for its room;
    /// `open-with-roles`: anyone joins, a token adds its roles.
    pub mode: AuthMode,
    /// Signing secrets by key id (`kid` in the token header); several for a rotation.
    pub keys: BTreeMap<String, String>,
}

/// `[permissions]`: the roles holding each permission. Keys left out keep their default,
/// which is what the original multiparty-meeting granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PermissionMap {
    /// Lock and unlock the room, set its access code.
    pub change_room_lock: Vec<Role>,
    /// Admit or refuse participants waiting in the lobby.
    pub promote_peer: Vec<Role>,
    /// Give and take roles (at or below one's own).
    pub modify_role: Vec<Role>,
    /// Write in the chat.
    pub send_chat: Vec<Role>,
    /// Clear the chat.
    pub moderate_chat: Vec<Role>,
    /// Publish a microphone.
    pub share_audio: Vec<Role>,
    /// Publish a camera.
    pub share_video: Vec<Role>,
    /// Share a screen.
    pub share_screen: Vec<Role>,
    /// Mute others, stop their video or screen share, lower hands, kick, close the meeting.
    pub moderate_room: Vec<Role>,
    /// Enter a locked room without waiting in the lobby.
    pub bypass_room_lock: Vec<Role>,
}

impl Default for PermissionMap {
    fn default() -> Self {
        let everyone = vec![Role::Normal];
        let moderators = vec![Role::Moderator];
        Self {
            change_room_lock: moderators.clone(),
            promote_peer: everyone.clone(),
            modify_role: everyone.clone(),
            send_chat: everyone.clone(),
            moderate_chat: moderators.clone(),
            share_audio: everyone.clone(),
            share_video: everyone.clone(),
            share_screen: everyone,
            moderate_room: moderators,
            bypass_room_lock: vec![Role::Admin],
        }
    }
}

impl PermissionMap {
    /// The roles listed for `permission`.
    pub fn roles(&self, permission: Permission) -> &[Role] {
        match permission {
            Permission::ChangeRoomLock => &self.change_room_lock,
            Permission::PromotePeer => &self.promote_peer,
            Permission::ModifyRole => &self.modify_role,
            Permission::SendChat => &self.send_chat,
            Permission::ModerateChat => &self.moderate_chat,
            Permission::ShareAudio => &self.share_audio,
            Permission::ShareVideo => &self.share_video,
            Permission::ShareScreen => &self.share_screen,
            Permission::ModerateRoom => &self.moderate_room,
            Permission::BypassRoomLock => &self.bypass_room_lock,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listening_host: "0.0.0.0".into(),
            listening_port: 3000,
            http_only: true,
            tls: TlsConfig::default(),
            listening_redirect_port: None,
            behind_reverse_proxy: false,
            trust_proxy: Vec::new(),
            redis_url: None,
            cookie_name: "multiparty-meeting.sid".into(),
            cookie_secret: None,
            cookie_max_age: 7 * 24 * 3600,
            development: false,
            drain_timeout: 60_000,
            rtc_listen_ip: "0.0.0.0".into(),
            rtc_min_port: 40000,
            rtc_max_port: 49999,
            announced_ip: None,
            num_workers: 0,
            max_users_per_room: 0,
            empty_room_close_delay: 5_000,
            heartbeat_interval: 10_000,
            heartbeat_timeout: 30_000,
            request_timeout: 20_000,
            initial_available_outgoing_bitrate: 1_000_000,
            node_id: None,
            internal_url: None,
            first_peer_moderator: true,
            wait_for_moderator: false,
            chat_history_messages: 100,
            chat_history_bytes: 64 * 1024,
            max_chat_message_length: 2000,
            permissions: PermissionMap::default(),
            allow_when_role_missing: vec![Permission::ChangeRoomLock],
            allowed_origins: Vec::new(),
            frame_ancestors: Vec::new(),
            ice_servers: Vec::new(),
            turn: TurnConfig::default(),
            limits: LimitsConfig::default(),
            metrics_listen: None,
            log_format: LogFormat::Text,
            auth: AuthConfig::default(),
        }
    }
}

/// `[tls]`: files for serving HTTPS directly (`httpOnly = false`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<String>,
    /// PEM private key.
    pub key: Option<String>,
}

/// One entry of `iceServers`: a bare URL (`"stun:stun.example.org:3478"`, no credentials) or
/// a table with `urls`, `username` and `credential` (a TURN server with fixed credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IceServerConfig {
    /// A server without credentials (STUN).
    Url(String),
    /// A server as `RTCIceServer` takes it.
    Server {
        /// `stun:`, `turn:` or `turns:` URLs.
        urls: Vec<String>,
        /// TURN username.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// TURN password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<String>,
    },
}

impl IceServerConfig {
    /// Its URLs.
    pub fn urls(&self) -> Vec<String> {
        match self {
            IceServerConfig::Url(url) => vec![url.clone()],
            IceServerConfig::Server { urls, .. } => urls.clone(),
        }
    }
}

/// `[turn]`: coturn's REST-API shared-secret scheme (`use-auth-secret` +
/// `static-auth-secret`). Each client gets username `expiry:peerId` and credential
/// base64(HMAC-SHA1(secret, username)), which coturn checks without asking us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TurnConfig {
    /// `turn:`/`turns:` URLs of the TURN servers sharing the secret.
    pub urls: Vec<String>,
    /// coturn's `static-auth-secret`; unset = no TURN credentials are made.
    pub secret: Option<String>,
    /// Seconds a credential stays valid; longer than the longest meeting, since coturn
    /// refuses to refresh an allocation once its credential expired.
    pub ttl: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: None,
            ttl: 86_400,
        }
    }
}

/// `[limits]`: each limit refuses the excess with a typed error (`rateLimited` or `tooMany`)
/// and leaves everyone else alone. 0 turns a limit off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Signaling messages per second one connection may send, on average.
    pub signaling_rate: u32,
    /// Messages one connection may send at once above that rate.
    pub signaling_burst: u32,
    /// WebSocket connections open at once from one client address.
    pub connections_per_ip: u32,
    /// Joins per minute from one client address.
    pub joins_per_ip_per_minute: u32,
    /// Participants this instance hosts at once.
    pub max_peers: u32,
    /// Rooms open on this instance at once.
    pub max_rooms: u32,
    /// Client addresses (or CIDRs) the per-address limits do not apply to.
    pub exempt_ips: Vec<String>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            signaling_rate: 50,
            signaling_burst: 200,
            connections_per_ip: 200,
            joins_per_ip_per_minute: 120,
            max_peers: 0,
            max_rooms: 0,
            exempt_ips: vec!["127.0.0.0/8".into(), "::1".into()],
        }
    }
}

/// `logFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The secret of the example file and documentation; refused outside development.
pub const EXAMPLE_COOKIE_SECRET: &str = "change-me-to-64-random-hex-characters";

/// Why the configuration cannot be used; start-up stops with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file, or the merged file and environment, is not valid for [`Config`].
    #[error("{origin}: {message}. Fix: {fix}")]
    Parse {
        /// Where the bad input came from (file name or environment variable).
        origin: String,
        /// The parser's message, naming the key.
        message: String,
        /// What to write instead.
        fix: String,
    },
    /// An `MM_*` variable's value does not have the type of the key it sets.
    #[error("environment variable {var}={value:?}: `{key}` takes {expected}. Fix: {fix}")]
    EnvValue {
        /// The variable, e.g. `MM_LISTENING_PORT`.
        var: String,
        /// Its value as given.
        value: String,
        /// The key it sets, e.g. `listeningPort`.
        key: String,
        /// The kind of value the key takes.
        expected: &'static str,
        /// What to set instead.
        fix: String,
    },
    /// A key has a value that parses but cannot work.
    #[error("config key `{key}`: {problem}. Fix: {fix}")]
    Invalid {
        /// The camelCase key name.
        key: &'static str,
        /// What is wrong with the value.
        problem: String,
        /// What to set instead.
        fix: &'static str,
    },
}

impl Config {
    /// Defaults, then `file` (when given), then `MM_*` variables from `env`, validated.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::new();
        let mut origin = String::from("defaults");
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            table = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse {
                    origin: format!("config file {}", path.display()),
                    message: e.message().to_string(),
                    fix: format!(
                        "correct the TOML syntax at {} (see config/config.example.toml)",
                        e.span()
                            .map(|span| line_of(&text, span.start))
                            .unwrap_or_else(|| "the place shown".into())
                    ),
                })?;
            origin = format!("config file {}", path.display());
        }
        let defaults =
            toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Parse {
                origin: "defaults".into(),
                message: e.to_string(),
                fix: "report this bug".into(),
            })?;
        // Which variable set which key, to name it when the key is refused.
        let mut set_by: Vec<(String, String)> = Vec::new();
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        env.sort();
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if raw.trim().is_empty() {
                // `MM_NODE_ID=` (compose's `${VAR}` of an unset VAR): the key stays unset.
                continue;
            }
            let path = env_key_path(rest, &defaults);
            let key = path.join(".");
            let value = typed_env_value(&key, defaults_lookup(&defaults, &path), &raw).map_err(
                |expected| ConfigError::EnvValue {
                    var: name.clone(),
                    value: raw.clone(),
                    key: key.clone(),
                    expected,
                    fix: match defaults_lookup(&defaults, &path) {
                        Some(d) => format!("set {name} to {expected}, e.g. {d} (the default)"),
                        None => format!("set {name} to {expected}"),
                    },
                },
            )?;
            insert_path(&mut table, &path, value);
            set_by.push((key, name));
        }
        if !set_by.is_empty() {
            let names: Vec<&str> = set_by.iter().map(|(_, n)| n.as_str()).collect();
            origin = format!("{origin} with environment {}", names.join(", "));
        }
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    // "invalid type: ..., expected u16\nin `listeningPort`" on one line.
                    let message = e
                        .to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    parse_error(origin, message, &defaults, &set_by)
                })?;
        config.validate()?;
        Ok(config)
    }

    /// A configuration for tests: loopback only, any free HTTP port, media announced on
    /// 127.0.0.1, one media worker, short delays.
    pub fn for_tests() -> Config {
        Config {
            listening_host: "127.0.0.1".into(),
            listening_port: 0,
            rtc_listen_ip: "127.0.0.1".into(),
            announced_ip: Some("127.0.0.1".into()),
            num_workers: 1,
            empty_room_close_delay: 500,
            ..Config::default()
        }
    }

    /// Checks values that parse but cannot work, naming the key and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listening_host.parse::<IpAddr>().is_err() {
            return Err(ConfigError::Invalid {
                key: "listeningHost",
                problem: format!("'{}' is not an IP address", self.listening_host),
                fix: "use an address such as 0.0.0.0, 127.0.0.1 or ::",
            });
        }
        if self.rtc_listen_ip.parse::<IpAddr>().is_err() {
            return Err(ConfigError::Invalid {
                key: "rtcListenIp",
                problem: format!("'{}' is not an IP address", self.rtc_listen_ip),
                fix: "use an address such as 0.0.0.0 or the server's own address",
            });
        }
        if let Some(ip) = &self.announced_ip {
            match ip.parse::<IpAddr>() {
                Ok(a) if a.is_unspecified() => {
                    return Err(ConfigError::Invalid {
                        key: "announcedIp",
                        problem: format!("'{ip}' cannot be reached by browsers"),
                        fix: "set the public (or LAN) address browsers use to reach this server",
                    })
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(ConfigError::Invalid {
                        key: "announcedIp",
                        problem: format!("'{ip}' is not an IP address"),
                        fix: "set the public (or LAN) IP address browsers use to reach this server",
                    })
                }
            }
        }
        if self.rtc_min_port == 0 || self.rtc_min_port > self.rtc_max_port {
            return Err(ConfigError::Invalid {
                key: "rtcMinPort",
                problem: format!(
                    "the range {}-{} is empty",
                    self.rtc_min_port, self.rtc_max_port
                ),
                fix: "set rtcMinPort between 1 and rtcMaxPort (default 40000-49999)",
            });
        }
        let range = usize::from(self.rtc_max_port - self.rtc_min_port) + 1;
        if range < self.workers() {
            return Err(ConfigError::Invalid {
                key: "rtcMaxPort",
                problem: format!(
                    "{range} port(s) for {} media workers; each worker needs its own port",
                    self.workers()
                ),
                fix: "widen rtcMinPort-rtcMaxPort or lower numWorkers",
            });
        }
        if self.heartbeat_interval == 0 || self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(ConfigError::Invalid {
                key: "heartbeatTimeout",
                problem: format!(
                    "heartbeatTimeout {} ms must be longer than heartbeatInterval {} ms (> 0)",
                    self.heartbeat_timeout, self.heartbeat_interval
                ),
                fix: "keep the defaults (10000 and 30000) or set the timeout to about 3 intervals",
            });
        }
        if !self.http_only {
            for (key, value) in [("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key)] {
                match value {
                    None => {
                        return Err(ConfigError::Invalid {
                            key: if key == "tls.cert" { "tls.cert" } else { "tls.key" },
                            problem: "httpOnly = false needs a certificate and a key".into(),
                            fix: "set tls.cert and tls.key to PEM files, or httpOnly = true behind a TLS proxy",
                        })
                    }
                    Some(path) if !Path::new(path).is_file() => {
                        return Err(ConfigError::Invalid {
                            key: if key == "tls.cert" { "tls.cert" } else { "tls.key" },
                            problem: format!("'{path}' is not a readable file"),
                            fix: "point it at an existing PEM file",
                        })
                    }
                    Some(_) => {}
                }
            }
        }
        if let Some(port) = self.listening_redirect_port {
            if port != 0 && port == self.listening_port {
                return Err(ConfigError::Invalid {
                    key: "listeningRedirectPort",
                    problem: format!("{port} is also listeningPort"),
                    fix: "use another port (e.g. 80 or 3000), or remove the key",
                });
            }
            if port != 0 && self.http_only {
                return Err(ConfigError::Invalid {
                    key: "listeningRedirectPort",
                    problem: "redirecting to https needs the server to serve https".into(),
                    fix: "set httpOnly = false with tls.cert/tls.key, or let the proxy redirect and remove the key",
                });
            }
        }
        if !self.trust_proxy.is_empty() && !self.behind_reverse_proxy {
            return Err(ConfigError::Invalid {
                key: "trustProxy",
                problem: "forwarded headers are only read with behindReverseProxy = true".into(),
                fix: "set behindReverseProxy = true, or remove trustProxy",
            });
        }
        for entry in &self.trust_proxy {
            if parse_net(entry).is_none() {
                return Err(ConfigError::Invalid {
                    key: "trustProxy",
                    problem: format!("'{entry}' is neither an IP address nor a CIDR"),
                    fix: "list addresses like \"10.0.0.5\" or networks like \"10.0.0.0/8\"",
                });
            }
        }
        if let Some(url) = &self.redis_url {
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("unix://"))
            {
                return Err(ConfigError::Invalid {
                    key: "redisUrl",
                    problem: format!("'{url}' is not a Redis URL"),
                    fix: "use redis://host:6379/0",
                });
            }
        }
        if let Some(url) = &self.internal_url {
            let authority = url.strip_prefix("http://").map(|r| r.trim_end_matches('/'));
            if authority.is_none_or(|a| a.is_empty() || a.contains(['/', '?', '#', '@'])) {
                return Err(ConfigError::Invalid {
                    key: "internalUrl",
                    problem: format!("'{url}' is not a base URL like http://10.0.0.5:3443"),
                    fix: "set http:// and the address and port at which the other instances reach this one, without a path",
                });
            }
        }
        if self.redis_url.is_some() && !self.http_only {
            return Err(ConfigError::Invalid {
                key: "httpOnly",
                problem: "instances sharing Redis relay participants to each other over plain HTTP, and this one only serves https".into(),
                fix: "run the instances behind a TLS proxy (nginx, Caddy) with httpOnly = true, as the deployment guide does",
            });
        }
        match &self.cookie_secret {
            Some(secret) if !self.development && weak_secret(secret) => {
                return Err(ConfigError::Invalid {
                    key: "cookieSecret",
                    problem: "the secret is weak (shorter than 32 characters, repetitive, or the example value)".into(),
                    fix: "generate one with: openssl rand -hex 32",
                })
            }
            None if self.redis_url.is_some() && !self.development => {
                return Err(ConfigError::Invalid {
                    key: "cookieSecret",
                    problem: "shared Redis sessions need the same secret on every instance".into(),
                    fix: "set cookieSecret (or MM_COOKIE_SECRET) to the output of: openssl rand -hex 32",
                })
            }
            _ => {}
        }
        if self.cookie_name.is_empty()
            || !self
                .cookie_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ConfigError::Invalid {
                key: "cookieName",
                problem: format!("'{}' is not a valid cookie name", self.cookie_name),
                fix: "use letters, digits, '-', '_' and '.'",
            });
        }
        if self
            .node_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return Err(ConfigError::Invalid {
                key: "nodeId",
                problem: "an empty name cannot tell instances apart".into(),
                fix: "set a name such as \"meet-1\" (the pod name on Kubernetes), or remove the key for a random one",
            });
        }
        if self.request_timeout == 0 {
            return Err(ConfigError::Invalid {
                key: "requestTimeout",
                problem: "0 ms would fail every request".into(),
                fix: "use the default 20000",
            });
        }
        self.validate_edge()?;
        if self.initial_available_outgoing_bitrate < 30_000 {
            return Err(ConfigError::Invalid {
                key: "initialAvailableOutgoingBitrate",
                problem: format!(
                    "{} bps is too low for any video",
                    self.initial_available_outgoing_bitrate
                ),
                fix: "use at least 100000 (default 1000000)",
            });
        }
        Ok(())
    }

    /// Checks the keys of the operator's edge: origins, framing, ICE/TURN, limits, metrics.
    fn validate_edge(&self) -> Result<(), ConfigError> {
        for origin in &self.allowed_origins {
            if normalize_origin(origin).is_none() {
                return Err(ConfigError::Invalid {
                    key: "allowedOrigins",
                    problem: format!("'{origin}' is not an origin"),
                    fix: "list origins as scheme, host and port without a path, like \"https://intranet.example.org\" or \"http://localhost:8080\"",
                });
            }
        }
        for origin in &self.frame_ancestors {
            let host = origin
                .strip_prefix("https://*.")
                .or(origin.strip_prefix("http://*."));
            let valid = match host {
                Some(rest) => normalize_origin(&format!("https://{rest}")).is_some(),
                None => normalize_origin(origin).is_some(),
            };
            if !valid {
                return Err(ConfigError::Invalid {
                    key: "frameAncestors",
                    problem: format!("'{origin}' is not an origin"),
                    fix: "list the sites that may embed the meeting page, like \"https://lms.example.org\" or \"https://*.example.org\"",
                });
            }
        }
        for server in &self.ice_servers {
            let urls = server.urls();
            if urls.is_empty() {
                return Err(ConfigError::Invalid {
                    key: "iceServers",
                    problem: "an entry without URLs".into(),
                    fix: "give every entry urls = [\"stun:host:3478\"] or [\"turn:host:3478\"]",
                });
            }
            for url in &urls {
                if !["stun:", "stuns:", "turn:", "turns:"]
                    .iter()
                    .any(|p| url.starts_with(p) && url.len() > p.len())
                {
                    return Err(ConfigError::Invalid {
                        key: "iceServers",
                        problem: format!("'{url}' is not a stun:, stuns:, turn: or turns: URL"),
                        fix: "write URLs like \"stun:stun.example.org:3478\" or \"turn:turn.example.org:3478?transport=udp\"",
                    });
                }
            }
            let has_credentials = matches!(
                server,
                IceServerConfig::Server {
                    username: Some(_),
                    credential: Some(_),
                    ..
                }
            );
            if urls.iter().any(|u| u.starts_with("turn")) && !has_credentials {
                // Browsers refuse the whole RTCPeerConnection configuration otherwise.
                return Err(ConfigError::Invalid {
                    key: "iceServers",
                    problem: "a turn: URL without username and credential".into(),
                    fix: "add username and credential to that entry, or configure [turn] with the server's shared secret",
                });
            }
        }
        for (kid, secret) in &self.auth.keys {
            if kid.is_empty()
                || !kid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(ConfigError::Invalid {
                    key: "auth.keys",
                    problem: "a key id that is empty or has characters other than letters, digits, `.`, `_` and `-`".into(),
                    fix: "name keys like keys = { \"2026-12\" = \"<secret>\" }",
                });
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(ConfigError::Invalid {
                    key: "auth.keys",
                    problem: format!(
                        "the secret of key `{kid}` has {} characters; HS256 needs at least {MIN_SECRET_LEN}",
                        secret.len()
                    ),
                    fix: "make one with: openssl rand -hex 32",
                });
            }
        }
        if self.auth.mode != AuthMode::Open && self.auth.keys.is_empty() {
            return Err(ConfigError::Invalid {
                key: "auth.keys",
                problem: "auth.mode needs tokens but no key is configured to check them".into(),
                fix: "add keys = { \"2026-12\" = \"<openssl rand -hex 32>\" } to [auth] (or MM_AUTH_KEYS=2026-12=<secret>), or set mode = \"open\"",
            });
        }
        match (&self.turn.secret, self.turn.urls.is_empty()) {
            (Some(secret), _) if secret.trim().is_empty() => {
                return Err(ConfigError::Invalid {
                    key: "turn.secret",
                    problem: "an empty secret".into(),
                    fix: "set it to coturn's static-auth-secret, or remove the key",
                })
            }
            (Some(_), true) => {
                return Err(ConfigError::Invalid {
                    key: "turn.urls",
                    problem: "turn.secret is set but no TURN server is listed".into(),
                    fix: "list the servers, e.g. urls = [\"turn:turn.example.org:3478\"]",
                })
            }
            (None, false) => {
                return Err(ConfigError::Invalid {
                    key: "turn.secret",
                    problem: "turn.urls is set but not the secret credentials are made with".into(),
                    fix: "set turn.secret to coturn's static-auth-secret (or MM_TURN_SECRET); for a TURN server with fixed credentials use iceServers",
                })
            }
            _ => {}
        }
        for url in &self.turn.urls {
            if !(url.starts_with("turn:") || url.starts_with("turns:")) || url.len() < 7 {
                return Err(ConfigError::Invalid {
                    key: "turn.urls",
                    problem: format!("'{url}' is not a turn: or turns: URL"),
                    fix: "write URLs like \"turn:turn.example.org:3478\" or \"turns:turn.example.org:443?transport=tcp\"",
                });
            }
        }
        if self.turn.ttl < 60 {
            return Err(ConfigError::Invalid {
                key: "turn.ttl",
                problem: format!("{} s is shorter than a join", self.turn.ttl),
                fix: "use more than the longest meeting, e.g. 86400 (the default, one day)",
            });
        }
        if self.limits.signaling_rate > 0 && self.limits.signaling_burst == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.signalingBurst",
                problem: "0 refuses every message".into(),
                fix: "use at least 1 (default 200), or limits.signalingRate = 0 for no limit",
            });
        }
        for entry in &self.limits.exempt_ips {
            if parse_net(entry).is_none() {
                return Err(ConfigError::Invalid {
                    key: "limits.exemptIps",
                    problem: format!("'{entry}' is neither an IP address nor a CIDR"),
                    fix: "list addresses like \"10.0.0.5\" or networks like \"10.0.0.0/8\"",
                });
            }
        }
        if let Some(listen) = &self.metrics_listen {
            let Ok(addr) = listen.parse::<std::net::SocketAddr>() else {
                return Err(ConfigError::Invalid {
                    key: "metricsListen",
                    problem: format!("'{listen}' is not address:port"),
                    fix: "use an address and port such as \"127.0.0.1:9400\" (or \"[::1]:9400\"), or remove the key",
                });
            };
            if addr.port() != 0 && addr.port() == self.listening_port {
                return Err(ConfigError::Invalid {
                    key: "metricsListen",
                    problem: format!(
                        "port {} is listeningPort: metrics would be public",
                        addr.port()
                    ),
                    fix:
                        "use a port of its own, reachable only by Prometheus (e.g. 127.0.0.1:9400)",
                });
            }
        }
        Ok(())
    }

    /// The proxies whose forwarded headers are believed (none unless `behindReverseProxy`).
    pub fn trusted_proxies(&self) -> Vec<ipnet::IpNet> {
        if !self.behind_reverse_proxy {
            return Vec::new();
        }
        if self.trust_proxy.is_empty() {
            // Invariant: both literals parse; the tests below exercise them.
            return vec![
                parse_net("127.0.0.0/8").expect("literal CIDR"),
                parse_net("::1").expect("literal address"),
            ];
        }
        self.trust_proxy
            .iter()
            .filter_map(|s| parse_net(s))
            .collect()
    }

    /// `listeningRedirectPort`, with 0 meaning none.
    pub fn redirect_port(&self) -> Option<u16> {
        self.listening_redirect_port.filter(|p| *p != 0)
    }

    /// `drainTimeout` as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout)
    }

    /// Number of media worker threads to start.
    pub fn workers(&self) -> usize {
        if self.num_workers == 0 {
            num_cpus::get().max(1)
        } else {
            self.num_workers
        }
    }

    /// The IP address put into ICE candidates.
    pub fn announced_ip(&self) -> IpAddr {
        self.announced_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }

    /// `emptyRoomCloseDelay` as a duration.
    pub fn empty_room_close_delay(&self) -> Duration {
        Duration::from_millis(self.empty_room_close_delay)
    }

    /// `heartbeatInterval` as a duration.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval)
    }

    /// `heartbeatTimeout` as a duration.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout)
    }

    /// `requestTimeout` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout)
    }
}

/// Parses `10.0.0.5` or `10.0.0.0/8` (v4 or v6).
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

/// `https://Meet.Example.org:443/` -> `https://meet.example.org`: the serialization browsers
/// send in `Origin` (lowercase scheme and host, no default port, no path). `None` for anything
/// but an http(s) origin.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/');
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let rest = rest.to_ascii_lowercase();
    if rest.is_empty()
        || !rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
    {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p))
            if !h.is_empty()
                && !p.is_empty()
                && p.chars().all(|c| c.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']')) =>
        {
            (h.to_string(), Some(p.to_string()))
        }
        _ => (rest.clone(), None),
    };
    if host.is_empty() || host.starts_with(':') {
        return None;
    }
    Some(match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// A secret that would make cookies forgeable: short, repetitive or published.
fn weak_secret(secret: &str) -> bool {
    let distinct: std::collections::HashSet<char> = secret.chars().collect();
    secret.chars().count() < 32 || distinct.len() < 8 || secret == EXAMPLE_COOKIE_SECRET
}

/// `LISTENING_PORT` -> `listeningPort`.
fn screaming_to_camel(s: &str) -> String {
    let mut out = String::new();
    for (i, word) in s.split('_').filter(|w| !w.is_empty()).enumerate() {
        let lower = word.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut chars = lower.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(chars);
            }
        }
    }
    out
}

fn defaults_lookup<'a>(defaults: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = path.split_last()?;
    let mut table = defaults;
    for p in parents {
        table = table.get(p)?.as_table()?;
    }
    table.get(last)
}

/// Optional keys (no default) that hold integers; the other optional keys are strings.
const OPTIONAL_INTEGER_KEYS: &[&str] = &["listeningRedirectPort"];

/// The key path an `MM_*` name (without the prefix) sets: `LISTENING_PORT` ->
/// `listeningPort`; `TLS__CERT` -> `tls.cert`; and, because operators write it that way,
/// `TLS_CERT` -> `tls.cert` when `tlsCert` is no key but `tls` is a section.
fn env_key_path(rest: &str, defaults: &toml::Table) -> Vec<String> {
    if rest.contains("__") {
        return rest.split("__").map(screaming_to_camel).collect();
    }
    let whole = screaming_to_camel(rest);
    if defaults.contains_key(&whole) {
        return vec![whole];
    }
    let words: Vec<&str> = rest.split('_').filter(|w| !w.is_empty()).collect();
    for split in 1..words.len() {
        let section = screaming_to_camel(&words[..split].join("_"));
        if defaults.get(&section).is_some_and(toml::Value::is_table) {
            return vec![section, screaming_to_camel(&words[split..].join("_"))];
        }
    }
    vec![whole]
}

/// Parses an environment value with the type of the key's default; keys without a default
/// are integers when listed in [`OPTIONAL_INTEGER_KEYS`], else text as it is. `Err` names the
/// kind of value the key takes.
fn typed_env_value(
    key: &str,
    default: Option<&toml::Value>,
    raw: &str,
) -> Result<toml::Value, &'static str> {
    let default = match default {
        None if OPTIONAL_INTEGER_KEYS.contains(&key) => Some(&toml::Value::Integer(0)),
        d => d,
    };
    match default {
        Some(toml::Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| "a whole number"),
        Some(toml::Value::Boolean(_)) => raw
            .trim()
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| "true or false"),
        Some(toml::Value::Array(_)) => Ok(raw
            .split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| toml::Value::String(s.to_string()))
            .collect::<Vec<_>>()
            .into()),
        Some(toml::Value::Table(_)) => raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| {
                        (
                            k.trim().to_string(),
                            toml::Value::String(v.trim().to_string()),
                        )
                    })
                    .ok_or("a list of name=value pairs separated by commas")
            })
            .collect::<Result<toml::Table, _>>()
            .map(toml::Value::Table),
        _ => Ok(toml::Value::String(raw.to_string())),
    }
}

/// A refused file or environment, with the fix: for an unknown key the closest known one,
/// for a value of the wrong type or range the kind of value the key takes and its default.
fn parse_error(
    origin: String,
    message: String,
    defaults: &toml::Table,
    set_by: &[(String, String)],
) -> ConfigError {
    let quoted = |after: &str| -> Option<String> {
        let rest = &message[message.find(after)? + after.len()..];
        let rest = rest.strip_prefix('`')?;
        Some(rest[..rest.find('`')?].to_string())
    };
    let env_var = |key: &str| {
        set_by
            .iter()
            .find(|(k, _)| k == key || k.rsplit('.').next() == Some(key))
            .map(|(_, var)| var.clone())
    };
    if let Some(field) = quoted("unknown field ") {
        let known: Vec<String> = message
            .split("expected ")
            .nth(1)
            .unwrap_or("")
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        let guess = closest(&field, &known);
        let by_env = set_by
            .iter()
            .find(|(k, _)| k == &field || k.rsplit('.').next() == Some(field.as_str()));
        return match by_env {
            Some((key, var)) => {
                let section = key
                    .rsplit_once('.')
                    .map(|(parent, _)| format!("{}_", camel_to_screaming(parent)))
                    .unwrap_or_default();
                ConfigError::Parse {
                    origin: format!("environment variable {var}"),
                    message,
                    fix: format!(
                        "unset {var}{}; a variable is MM_ + a key of config/config.example.toml \
                         in SCREAMING_SNAKE_CASE (MM_LISTENING_PORT), nested keys with their \
                         section (MM_TLS_CERT or MM_TLS__CERT for tls.cert)",
                        guess
                            .map(|g| format!(
                                ", or did you mean MM_{section}{}?",
                                camel_to_screaming(&g)
                            ))
                            .unwrap_or_default()
                    ),
                }
            }
            None => ConfigError::Parse {
                origin,
                message,
                fix: match guess {
                    Some(g) => format!("did you mean `{g}`? Otherwise remove the key (every key is in config/config.example.toml)"),
                    None => "remove the key; every key is in config/config.example.toml".into(),
                },
            },
        };
    }
    let key = quoted("in ").unwrap_or_default();
    let leaf = key.rsplit('.').next().unwrap_or(&key).to_string();
    let path: Vec<String> = key.split('.').map(str::to_string).collect();
    let default = defaults_lookup(defaults, &path);
    let range = ["u16", "u32", "u64", "usize", "u8"]
        .iter()
        .find(|t| message.contains(&format!("expected {t}")))
        .map(|t| match *t {
            "u8" => "a whole number from 0 to 255",
            "u16" => "a whole number from 0 to 65535",
            _ => "a whole number, 0 or more",
        });
    let kind = match (range, default) {
        (Some(r), _) => r,
        (None, Some(toml::Value::Boolean(_))) => "true or false",
        (None, Some(toml::Value::Array(_))) => "a list of strings, e.g. [\"10.0.0.0/8\"]",
        (None, Some(toml::Value::Integer(_))) => "a whole number",
        _ if message.contains("expected a string") => "a quoted string",
        _ => "the kind of value config/config.example.toml shows",
    };
    let example = default
        .map(|d| format!(" (default: {leaf} = {d})"))
        .unwrap_or_default();
    let (origin, fix) = match env_var(&leaf) {
        Some(var) => (
            format!("environment variable {var}"),
            format!("set {var} to {kind}{example}"),
        ),
        None => (origin, format!("set `{key}` to {kind}{example}")),
    };
    ConfigError::Parse {
        origin,
        message,
        fix,
    }
}

/// The known key closest in spelling to `unknown` (at most a third of its letters differ).
fn closest(unknown: &str, known: &[String]) -> Option<String> {
    let distance = |a: &str, b: &str| {
        let (a, b): (Vec<char>, Vec<char>) = (
            a.to_ascii_lowercase().chars().collect(),
            b.to_ascii_lowercase().chars().collect(),
        );
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.iter().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    known
        .iter()
        .map(|k| (distance(unknown, k), k))
        .filter(|(d, _)| *d * 3 <= unknown.len().max(3))
        .min()
        .map(|(_, k)| k.clone())
}

/// `listeningPort` -> `LISTENING_PORT`.
fn camel_to_screaming(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `line N` of a byte offset in `text`, for syntax errors.
fn line_of(text: &str, offset: usize) -> String {
    let line = text[..offset.min(text.len())].matches('\n').count() + 1;
    format!("line {line}")
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut t = table;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        // Invariant: the entry was made a table just above.
        t = entry.as_table_mut().expect("entry is a table");
    }
    t.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let c = Config::load(None, env(&[])).expect("defaults load");
        assert_eq!(c.listening_port, 3000);
        assert_eq!((c.rtc_min_port, c.rtc_max_port), (40000, 49999));
        assert!(c.http_only);
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let mut f = tempfile();
        writeln!(
            f.1,
            "listeningPort = 3443\nannouncedIp = \"192.0.2.10\"\nmaxUsersPerRoom = 8"
        )
        .unwrap();
        let c = Config::load(
            Some(&f.0),
            env(&[
                ("MM_LISTENING_PORT", "4000"),
                ("MM_NODE_ID", "7"),
                ("OTHER", "x"),
            ]),
        )
        .expect("config loads");
        assert_eq!(c.listening_port, 4000);
        assert_eq!(c.announced_ip.as_deref(), Some("192.0.2.10"));
        assert_eq!(c.max_users_per_room, 8);
        assert_eq!(c.node_id.as_deref(), Some("7"));
        let _ = std::fs::remove_file(&f.0);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let mut f = tempfile();
        writeln!(f.1, "listeningPrt = 3443").unwrap();
        let err = Config::load(Some(&f.0), env(&[])).unwrap_err().to_string();
        assert!(err.contains("listeningPrt"), "{err}");

        let err = Config::load(None, env(&[("MM_RTC_MIN_PORT", "50000")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rtcMinPort") && err.contains("Fix"), "{err}");

        let err = Config::load(None, env(&[("MM_ANNOUNCED_IP", "not-an-ip")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("announcedIp"), "{err}");

        let err = Config::load(None, env(&[("MM_LISTENING_PORT", "eighty")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listeningPort"), "{err}");
        let _ = std::fs::remove_file(&f.0);
    }

    /// Every refusal names the key and says what to write instead (issue 16).
    #[test]
    fn type_errors_name_the_key_and_the_fix() {
        let e = |pairs: &[(&str, &str)]| Config::load(None, env(pairs)).unwrap_err().to_string();
        let err = e(&[("MM_LISTENING_PORT", "eighty")]);
        assert!(
            err.contains("MM_LISTENING_PORT")
                && err.contains("`listeningPort`")
                && err.contains("Fix: set MM_LISTENING_PORT to a whole number, e.g. 3000"),
            "{err}"
        );
        let err = e(&[("MM_HTTP_ONLY", "yes")]);
        assert!(
            err.contains("`httpOnly`") && err.contains("Fix: set MM_HTTP_ONLY to true or false"),
            "{err}"
        );
        let err = e(&[("MM_LISTENING_PORT", "70000")]);
        assert!(
            err.contains("environment variable MM_LISTENING_PORT")
                && err.contains("Fix: set MM_LISTENING_PORT to a whole number from 0 to 65535"),
            "{err}"
        );

        let mut f = tempfile();
        writeln!(f.1, "listeningPort = \"eighty\"").unwrap();
        let err = Config::load(Some(&f.0), env(&[])).unwrap_err().to_string();
        let _ = std::fs::remove_file(&f.0);
        assert!(
            err.contains("listeningPort")
                && err.contains("Fix: set `listeningPort` to a whole number from 0 to 65535 (default: listeningPort = 3000)"),
            "{err}"
        );
        let mut f = tempfile();
        writeln!(f.1, "listeningPrt = 3443").unwrap();
        let err = Config::load(Some(&f.0), env(&[])).unwrap_err().to_string();
        let _ = std::fs::remove_file(&f.0);
        assert!(err.contains("did you mean `listeningPort`?"), "{err}");
        let mut f = tempfile();
        writeln!(f.1, "listeningPort = 3443\nhttpOnly = tru").unwrap();
        let err = Config::load(Some(&f.0), env(&[])).unwrap_err().to_string();
        let _ = std::fs::remove_file(&f.0);
        assert!(
            err.contains("Fix: correct the TOML syntax at line 2"),
            "{err}"
        );

        let err = e(&[("MM_LISTENING_PRT", "3443")]);
        assert!(
            err.contains("environment variable MM_LISTENING_PRT")
                && err.contains("did you mean MM_LISTENING_PORT?"),
            "{err}"
        );
        let err = e(&[("MM_TLS_CRT", "/x.pem")]);
        assert!(err.contains("did you mean MM_TLS_CERT?"), "{err}");
    }

    #[test]
    fn nested_keys_take_one_or_two_underscores() {
        for var in ["MM_TLS_CERT", "MM_TLS__CERT"] {
            let c = Config::load(None, env(&[(var, "/etc/x/fullchain.pem")]))
                .unwrap_or_else(|e| panic!("{var}: {e}"));
            assert_eq!(c.tls.cert.as_deref(), Some("/etc/x/fullchain.pem"), "{var}");
        }
        let c = Config::load(
            None,
            env(&[
                ("MM_REDIS_URL", "redis://127.0.0.1:6379/0"),
                ("MM_DEVELOPMENT", "true"),
            ]),
        )
        .expect("redisUrl is a top-level key, not a section");
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6379/0"));
    }

    /// `MM_NODE_ID=` (compose's `${VAR}` of an unset variable) counts as unset; an empty
    /// `nodeId` written in the file is refused.
    #[test]
    fn an_empty_variable_is_unset_and_an_empty_node_id_is_refused() {
        let c = Config::load(None, env(&[("MM_NODE_ID", ""), ("MM_LISTENING_PORT", " ")]))
            .expect("empty variables are ignored");
        assert_eq!(c.node_id, None);
        assert_eq!(c.listening_port, 3000);
        let mut f = tempfile();
        writeln!(f.1, "nodeId = \"\"").unwrap();
        let err = Config::load(Some(&f.0), env(&[])).unwrap_err().to_string();
        let _ = std::fs::remove_file(&f.0);
        assert!(err.contains("`nodeId`") && err.contains("Fix:"), "{err}");
    }

    #[test]
    fn the_example_file_documents_every_key_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/config.example.toml");
        let c = Config::load(Some(&path), env(&[])).expect("the example loads");
        assert_eq!(c, Config::default(), "the example shows the defaults");
        let text = std::fs::read_to_string(&path).expect("example readable");
        let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
        let optional = [
            "announcedIp",
            "nodeId",
            "listeningRedirectPort",
            "redisUrl",
            "cookieSecret",
            "tls.cert",
            "tls.key",
            "metricsListen",
            "turn.secret",
        ];
        let mut keys: Vec<String> = optional.iter().map(|k| k.to_string()).collect();
        for (key, value) in &defaults {
            match value.as_table() {
                // A section: each of its keys, and its header.
                Some(section) => {
                    assert!(
                        text.contains(&format!("[{key}]")),
                        "config.example.toml lacks [{key}]"
                    );
                    keys.extend(section.keys().map(|k| format!("{key}.{k}")));
                }
                None => keys.push(key.clone()),
            }
        }
        for key in keys {
            let leaf = key.rsplit('.').next().unwrap_or(&key);
            assert!(
                text.contains(&format!("{leaf} =")),
                "config.example.toml lacks `{key}`"
            );
        }
        assert!(text.contains("[tls]"), "config.example.toml lacks [tls]");
        assert!(
            text.contains("[permissions]"),
            "config.example.toml lacks [permissions]"
        );
        for p in crate::model::Permission::ALL {
            let key = serde_json::to_value(p).expect("permission names serialize");
            let key = key.as_str().unwrap_or_default();
            assert!(
                text.contains(&format!("\n{key} = [")),
                "config.example.toml lacks permission `{key}`"
            );
        }
    }

    #[test]
    fn edge_keys_are_checked() {
        let e = |pairs: &[(&str, &str)]| Config::load(None, env(pairs)).unwrap_err().to_string();
        let err = e(&[("MM_ALLOWED_ORIGINS", "intranet.example.org")]);
        assert!(
            err.contains("`allowedOrigins`") && err.contains("Fix:"),
            "{err}"
        );
        let err = e(&[("MM_ALLOWED_ORIGINS", "https://a.example/path")]);
        assert!(err.contains("`allowedOrigins`"), "{err}");
        let err = e(&[("MM_FRAME_ANCESTORS", "*")]);
        assert!(err.contains("`frameAncestors`"), "{err}");
        let err = e(&[("MM_ICE_SERVERS", "turn:turn.example.org:3478")]);
        assert!(
            err.contains("`iceServers`") && err.contains("username and credential"),
            "{err}"
        );
        let err = e(&[("MM_ICE_SERVERS", "http://stun.example.org")]);
        assert!(err.contains("`iceServers`"), "{err}");
        let err = e(&[("MM_TURN_URLS", "turn:127.0.0.1:3478")]);
        assert!(err.contains("`turn.secret`"), "{err}");
        let err = e(&[("MM_TURN_SECRET", "s3cret")]);
        assert!(err.contains("`turn.urls`"), "{err}");
        let err = e(&[
            ("MM_TURN_SECRET", "s3cret"),
            ("MM_TURN_URLS", "stun:127.0.0.1:3478"),
        ]);
        assert!(err.contains("`turn.urls`"), "{err}");
        let err = e(&[
            ("MM_TURN_SECRET", "s3cret"),
            ("MM_TURN_URLS", "turn:127.0.0.1:3478"),
            ("MM_TURN_TTL", "5"),
        ]);
        assert!(err.contains("`turn.ttl`"), "{err}");
        let err = e(&[("MM_LIMITS_SIGNALING_BURST", "0")]);
        assert!(err.contains("`limits.signalingBurst`"), "{err}");
        let err = e(&[("MM_LIMITS_EXEMPT_IPS", "localhost")]);
        assert!(err.contains("`limits.exemptIps`"), "{err}");
        let err = e(&[("MM_METRICS_LISTEN", "9400")]);
        assert!(err.contains("`metricsListen`"), "{err}");
        let err = e(&[("MM_METRICS_LISTEN", "127.0.0.1:3000")]);
        assert!(
            err.contains("`metricsListen`") && err.contains("public"),
            "{err}"
        );
        let err = e(&[("MM_LOG_FORMAT", "xml")]);
        assert!(err.contains("logFormat") && err.contains("json"), "{err}");

        let c = Config::load(
            None,
            env(&[
                (
                    "MM_ALLOWED_ORIGINS",
                    "https://Intranet.Example.org:443/, http://localhost:8080",
                ),
                ("MM_ICE_SERVERS", "stun:stun.example.org:3478"),
                ("MM_TURN_URLS", "turn:127.0.0.1:3478?transport=udp"),
                ("MM_TURN_SECRET", "s3cret-s3cret"),
                ("MM_LIMITS_MAX_PEERS", "40"),
                ("MM_METRICS_LISTEN", "127.0.0.1:9400"),
                ("MM_LOG_FORMAT", "json"),
            ]),
        )
        .expect("valid edge keys load");
        assert_eq!(c.allowed_origins.len(), 2);
        assert_eq!(
            c.ice_servers,
            vec![IceServerConfig::Url("stun:stun.example.org:3478".into())]
        );
        assert_eq!(c.turn.secret.as_deref(), Some("s3cret-s3cret"));
        assert_eq!(c.limits.max_peers, 40);
        assert_eq!(c.log_format, LogFormat::Json);

        let mut f = tempfile();
        writeln!(
            f.1,
            "iceServers = [\"stun:a.example:3478\", {{ urls = [\"turn:b.example:3478\"], username = \"u\", credential = \"p\" }}]\nframeAncestors = [\"https://*.example.org\"]\n[turn]\nurls = [\"turns:t.example:5349\"]\nsecret = \"x-secret\"\nttl = 3600"
        )
        .unwrap();
        let c = Config::load(Some(&f.0), env(&[])).expect("tables of iceServers load");
        let _ = std::fs::remove_file(&f.0);
        assert_eq!(c.ice_servers.len(), 2);
        assert_eq!(c.turn.ttl, 3600);
    }

    #[test]
    fn auth_keys_are_checked_and_come_from_the_environment_too() {
        let e = |pairs: &[(&str, &str)]| Config::load(None, env(pairs)).unwrap_err().to_string();
        let err = e(&[("MM_AUTH_MODE", "token")]);
        assert!(
            err.contains("`auth.keys`") && err.contains("openssl rand"),
            "{err}"
        );
        let err = e(&[("MM_AUTH_MODE", "tokens")]);
        assert!(err.contains("mode"), "{err}");
        let err = e(&[("MM_AUTH_KEYS", "k1=short")]);
        assert!(
            err.contains("`auth.keys`") && err.contains("at least 32"),
            "{err}"
        );
        let err = e(&[("MM_AUTH_KEYS", "bad kid=0123456789abcdef0123456789abcdef")]);
        assert!(err.contains("key id"), "{err}");
        let err = e(&[("MM_AUTH_KEYS", "no-equals-sign")]);
        assert!(err.contains("MM_AUTH_KEYS"), "{err}");
        let c = Config::load(
            None,
            env(&[
                ("MM_AUTH_MODE", "open-with-roles"),
                (
                    "MM_AUTH_KEYS",
                    "2026-12=0123456789abcdef0123456789abcdef, 2027-01=fedcba9876543210fedcba9876543210",
                ),
            ]),
        )
        .expect("valid auth keys load");
        assert_eq!(c.auth.mode, AuthMode::OpenWithRoles);
        assert_eq!(
            c.auth.keys.keys().collect::<Vec<_>>(),
            vec!["2026-12", "2027-01"]
        );
        let mut f = tempfile();
        writeln!(
            f.1,
            "[auth]\nmode = \"token\"\nkeys = {{ \"2026-12\" = \"0123456789abcdef0123456789abcdef\" }}"
        )
        .unwrap();
        let c = Config::load(Some(&f.0), env(&[])).expect("[auth] from a file loads");
        let _ = std::fs::remove_file(&f.0);
        assert_eq!(c.auth.mode, AuthMode::Token);
        assert_eq!(c.auth.keys.len(), 1);
    }

    #[test]
    fn origins_normalize_as_browsers_send_them() {
        assert_eq!(
            normalize_origin("HTTPS://Meet.Example.org:443/").as_deref(),
            Some("https://meet.example.org")
        );
        assert_eq!(
            normalize_origin("http://127.0.0.1:3000").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(
            normalize_origin("http://[::1]:80").as_deref(),
            Some("http://[::1]")
        );
        assert_eq!(normalize_origin("null"), None);
        assert_eq!(normalize_origin("ftp://x"), None);
        assert_eq!(normalize_origin("https://a.example/room"), None);
        assert_eq!(normalize_origin("https://"), None);
    }

    #[test]
    fn deployment_keys_are_checked() {
        let e = |pairs: &[(&str, &str)]| Config::load(None, env(pairs)).unwrap_err().to_string();
        let err = e(&[("MM_REDIS_URL", "redis://127.0.0.1:6379")]);
        assert!(err.contains("cookieSecret"), "{err}");
        let err = e(&[("MM_REDIS_URL", "redis://x"), ("MM_COOKIE_SECRET", "short")]);
        assert!(
            err.contains("cookieSecret") && err.contains("openssl rand"),
            "{err}"
        );
        let err = e(&[("MM_COOKIE_SECRET", EXAMPLE_COOKIE_SECRET)]);
        assert!(err.contains("cookieSecret"), "{err}");
        let err = e(&[("MM_TRUST_PROXY", "10.0.0.1")]);
        assert!(err.contains("behindReverseProxy"), "{err}");
        let err = e(&[
            ("MM_BEHIND_REVERSE_PROXY", "true"),
            ("MM_TRUST_PROXY", "10.0.0.0/33"),
        ]);
        assert!(err.contains("trustProxy"), "{err}");
        let err = e(&[("MM_HTTP_ONLY", "false")]);
        assert!(err.contains("tls.cert"), "{err}");
        let err = e(&[("MM_LISTENING_REDIRECT_PORT", "8080")]);
        assert!(
            err.contains("listeningRedirectPort") && err.contains("httpOnly"),
            "{err}"
        );
        // Development accepts a weak secret.
        let ok = Config::load(
            None,
            env(&[
                ("MM_REDIS_URL", "redis://x"),
                ("MM_COOKIE_SECRET", "dev"),
                ("MM_DEVELOPMENT", "true"),
            ]),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn trusted_proxies_default_to_loopback_behind_a_proxy() {
        let c = Config::default();
        assert!(c.trusted_proxies().is_empty());
        let c = Config {
            behind_reverse_proxy: true,
            ..Config::default()
        };
        let nets = c.trusted_proxies();
        assert!(nets
            .iter()
            .any(|n| n.contains(&"127.0.0.1".parse::<IpAddr>().unwrap())));
        assert!(nets
            .iter()
            .any(|n| n.contains(&"::1".parse::<IpAddr>().unwrap())));
        let c = Config {
            behind_reverse_proxy: true,
            trust_proxy: vec!["10.1.0.0/16".into(), "192.0.2.7".into()],
            ..Config::default()
        };
        let nets = c.trusted_proxies();
        assert!(nets
            .iter()
            .any(|n| n.contains(&"10.1.2.3".parse::<IpAddr>().unwrap())));
        assert!(!nets
            .iter()
            .any(|n| n.contains(&"127.0.0.1".parse::<IpAddr>().unwrap())));
    }

    #[test]
    fn env_names_map_to_camel_case_keys() {
        assert_eq!(screaming_to_camel("MAX_USERS_PER_ROOM"), "maxUsersPerRoom");
        assert_eq!(screaming_to_camel("HTTP_ONLY"), "httpOnly");
    }

    fn tempfile() -> (std::path::PathBuf, std::fs::File) {
        let path = std::env::temp_dir().join(format!("mm-config-{}.toml", rand::random::<u64>()));
        let file = std::fs::File::create(&path).expect("temp file");
        (path, file)
    }
}
