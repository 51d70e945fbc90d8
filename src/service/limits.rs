//! Limits against abuse (`[limits]`): signaling messages per second per connection, WebSocket
//! connections and joins per client address, participants per instance. Each check refuses
//! only the excess, with a typed error ([`LimitExceeded`] -> `rateLimited` or `tooMany`), and
//! the counted resources are guards that give their place back when dropped, whatever way the
//! connection or the participant ends. Rooms per instance are counted by the registry, which
//! opens them.
//!
//! One [`Limits`] per process, made before the HTTP workers start: counters per worker would
//! let each worker admit the full amount.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ipnet::IpNet;

use crate::config::{parse_net, LimitsConfig};
use crate::signaling::{ErrorCode, SignalError};

/// Per-address entries kept before idle ones are dropped (bounds memory under a spray of
/// addresses).
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Which limit refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// `limits.signalingRate`/`signalingBurst` on this connection.
    #[error("more than {rate} messages per second (burst {burst}) on this connection; slow down")]
    SignalingRate {
        /// Messages per second.
        rate: u32,
        /// Burst.
        burst: u32,
    },
    /// `limits.connectionsPerIp`.
    #[error("{0} connections from your address are open already")]
    ConnectionsPerIp(u32),
    /// `limits.joinsPerIpPerMinute`.
    #[error("more than {0} joins per minute from your address; try again in a minute")]
    JoinsPerIp(u32),
    /// `limits.maxPeers`.
    #[error("this server hosts its maximum of {0} participants; try again later")]
    Peers(u32),
}

impl LimitExceeded {
    /// The signaling error a client gets.
    pub fn to_signal_error(&self) -> SignalError {
        let code = match self {
            LimitExceeded::SignalingRate { .. } | LimitExceeded::JoinsPerIp(_) => {
                ErrorCode::RateLimited
            }
            LimitExceeded::ConnectionsPerIp(_) | LimitExceeded::Peers(_) => ErrorCode::TooMany,
        };
        SignalError::new(code, self.to_string())
    }
}

/// A token bucket: `rate` tokens per second up to `capacity`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_second: f64, capacity: u32) -> Self {
        Self {
            capacity: f64::from(capacity),
            rate: rate_per_second,
            tokens: f64::from(capacity),
            last: Instant::now(),
        }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
    }

    /// True when the bucket is full again at `now` (nothing to remember).
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

/// The limits of this process.
#[derive(Debug)]
pub struct Limits {
    config: LimitsConfig,
    exempt: Vec<IpNet>,
    /// Open WebSocket connections per client address.
    connections: Mutex<HashMap<IpAddr, u32>>,
    /// Join budget per client address.
    joins: Mutex<HashMap<IpAddr, TokenBucket>>,
    /// Participants hosted here.
    peers: AtomicU32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere mid-update; the counters stay usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Limits {
    /// The limits of `config` (validated).
    pub fn new(config: &LimitsConfig) -> Arc<Self> {
        Arc::new(Self {
            exempt: config
                .exempt_ips
                .iter()
                .filter_map(|s| parse_net(s))
                .collect(),
            config: config.clone(),
            connections: Mutex::default(),
            joins: Mutex::default(),
            peers: AtomicU32::new(0),
        })
    }

    /// The per-address address of a client, or None when per-address limits skip it.
    fn counted(&self, ip: Option<IpAddr>) -> Option<IpAddr> {
        ip.filter(|ip| !self.exempt.iter().any(|n| n.contains(ip)))
    }

    /// The message budget of a new connection, None without a limit.
    pub fn signaling_bucket(&self) -> Option<TokenBucket> {
        (self.config.signaling_rate > 0).then(|| {
            TokenBucket::new(
                f64::from(self.config.signaling_rate),
                self.config.signaling_burst,
            )
        })
    }

    /// The error for a connection whose bucket ran empty.
    pub fn signaling_exceeded(&self) -> LimitExceeded {
        LimitExceeded::SignalingRate {
            rate: self.config.signaling_rate,
            burst: self.config.signaling_burst,
        }
    }

    /// Counts a new WebSocket connection of `ip` until the returned guard is dropped.
    pub fn open_connection(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
    ) -> Result<ConnectionSlot, LimitExceeded> {
        let max = self.config.connections_per_ip;
        let Some(ip) = self.counted(ip).filter(|_| max > 0) else {
            return Ok(ConnectionSlot {
                limits: self.clone(),
                ip: None,
            });
        };
        let mut open = lock(&self.connections);
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return Err(LimitExceeded::ConnectionsPerIp(max));
        }
        *count += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip: Some(ip),
        })
    }

    /// Admits a join from `ip`: within the address's join rate and the instance's peer
    /// limit. The guard holds the participant's place until dropped.
    pub fn admit_join(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<PeerSlot, LimitExceeded> {
        let per_minute = self.config.joins_per_ip_per_minute;
        if let Some(ip) = self.counted(ip).filter(|_| per_minute > 0) {
            let now = Instant::now();
            let mut joins = lock(&self.joins);
            if joins.len() >= MAX_TRACKED_ADDRESSES {
                joins.retain(|_, b| !b.is_full(now));
            }
            let bucket = joins
                .entry(ip)
                .or_insert_with(|| TokenBucket::new(f64::from(per_minute) / 60.0, per_minute));
            if !bucket.take(now) {
                return Err(LimitExceeded::JoinsPerIp(per_minute));
            }
        }
        let max = self.config.max_peers;
        let admitted = self
            .peers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (max == 0 || n < max).then_some(n + 1)
            });
        match admitted {
            Ok(_) => Ok(PeerSlot {
                limits: self.clone(),
            }),
            Err(_) => Err(LimitExceeded::Peers(max)),
        }
    }

    /// Participants admitted and not gone.
    pub fn peers(&self) -> u32 {
        self.peers.load(Ordering::SeqCst)
    }

    /// Connections counted for `ip` now (tests, diagnostics).
    pub fn connections_of(&self, ip: IpAddr) -> u32 {
        lock(&self.connections).get(&ip).copied().unwrap_or(0)
    }
}

/// One counted WebSocket connection; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<Limits>,
    /// The counted address (None: exempt or unlimited).
    ip: Option<IpAddr>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else {
            return;
        };
        let mut open = lock(&self.limits.connections);
        if let Some(count) = open.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// One admitted participant; dropping it frees the place.
#[derive(Debug)]
pub struct PeerSlot {
    limits: Arc<Limits>,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let _ = self
            .limits
            .peers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config() -> LimitsConfig {
        LimitsConfig {
            signaling_rate: 10,
            signaling_burst: 5,
            connections_per_ip: 2,
            joins_per_ip_per_minute: 3,
            max_peers: 4,
            max_rooms: 0,
            exempt_ips: vec!["127.0.0.0/8".into()],
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let start = Instant::now();
        let mut b = TokenBucket::new(10.0, 5);
        b.last = start;
        assert!((0..5).all(|_| b.take(start)));
        assert!(!b.take(start), "the burst is spent");
        assert!(
            b.take(start + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!b.take(start + Duration::from_millis(150)));
        assert!(b.is_full(start + Duration::from_secs(10)));
    }

    #[test]
    fn connections_per_address_are_counted_until_dropped() {
        let limits = Limits::new(&config());
        let a = limits.open_connection(ip("198.51.100.1")).unwrap();
        let _b = limits.open_connection(ip("198.51.100.1")).unwrap();
        assert_eq!(
            limits.open_connection(ip("198.51.100.1")).unwrap_err(),
            LimitExceeded::ConnectionsPerIp(2)
        );
        assert_eq!(
            limits
                .open_connection(ip("198.51.100.1"))
                .unwrap_err()
                .to_signal_error()
                .code,
            ErrorCode::TooMany
        );
        // Another address, an exempt one, and an unknown one are not affected.
        let _c = limits.open_connection(ip("198.51.100.2")).unwrap();
        let exempt: Vec<_> = (0..5)
            .map(|_| limits.open_connection(ip("127.0.0.1")).unwrap())
            .collect();
        assert_eq!(limits.connections_of("127.0.0.1".parse().unwrap()), 0);
        drop(exempt);
        let _d = limits.open_connection(None).unwrap();
        drop(a);
        assert_eq!(limits.connections_of("198.51.100.1".parse().unwrap()), 1);
        let _e = limits.open_connection(ip("198.51.100.1")).unwrap();
    }

    #[test]
    fn joins_are_limited_per_address_and_peers_per_instance() {
        let limits = Limits::new(&config());
        let slots: Vec<_> = (0..3)
            .map(|_| limits.admit_join(ip("198.51.100.1")).unwrap())
            .collect();
        let refused = limits.admit_join(ip("198.51.100.1")).unwrap_err();
        assert_eq!(refused, LimitExceeded::JoinsPerIp(3));
        assert_eq!(refused.to_signal_error().code, ErrorCode::RateLimited);
        assert_eq!(limits.peers(), 3, "a refused join holds no place");
        let fourth = limits.admit_join(ip("198.51.100.2")).unwrap();
        let full = limits.admit_join(ip("127.0.0.1")).unwrap_err();
        assert_eq!(full, LimitExceeded::Peers(4));
        assert_eq!(full.to_signal_error().code, ErrorCode::TooMany);
        drop(fourth);
        assert_eq!(limits.peers(), 3);
        let _again = limits.admit_join(ip("127.0.0.1")).unwrap();
        drop(slots);
        assert_eq!(limits.peers(), 1);
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = Limits::new(&LimitsConfig {
            signaling_rate: 0,
            connections_per_ip: 0,
            joins_per_ip_per_minute: 0,
            max_peers: 0,
            exempt_ips: Vec::new(),
            ..config()
        });
        assert!(limits.signaling_bucket().is_none());
        let held: Vec<_> = (0..100)
            .map(|_| {
                (
                    limits.open_connection(ip("198.51.100.1")).unwrap(),
                    limits.admit_join(ip("198.51.100.1")).unwrap(),
                )
            })
            .collect();
        assert_eq!(limits.peers(), 100);
        drop(held);
        assert_eq!(limits.peers(), 0);
    }
}
