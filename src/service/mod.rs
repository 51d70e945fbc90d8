//! The HTTP/WebSocket edge and server assembly: builds the media plane, the room registry,
//! sessions and the actix-web listeners (main, the optional https redirect, the optional
//! metrics listener), and hands back a [`RunningServer`] that can drain and stop. The edge
//! moves messages, decides who the client is ([`proxy`]) and which pages may connect
//! ([`origin`]), enforces the limits ([`limits`]), hands out ICE servers ([`turn`]), counts
//! ([`metrics`]), writes long messages frame by frame ([`frames`]) and serves files; it
//! never touches RTP.

pub mod frames;
pub mod http;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod policy;
pub mod proxy;
pub mod relay;
pub mod session;
pub mod tls;
pub mod turn;
pub mod ws;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use actix_web::dev::Service;
use actix_web::{web, App, HttpMessage, HttpServer};
use futures_util::FutureExt;
use tracing::{debug, info};

use crate::auth::Tokens;
use crate::config::Config;
use crate::ids::NodeId;
use crate::room::messages::{Drain, EvictAll, GetRegistryStats, SetInternalUrl, Withdraw};
use crate::room::{Heartbeat, RegistryActor, RoomSettings};
use crate::routing::{DirectoryError, InMemoryDirectory, RedisDirectory, RoomDirectory};
use crate::sfu::{MediaPlane, MediaStartError};
use crate::store::{MeetingStore, NoStore, RedisStore};
use limits::Limits;
use metrics::{CountingDirectory, Metrics};
use origin::{OriginPolicy, SecurityHeaders};
use policy::EdgePolicy;
use proxy::TrustedProxies;
use relay::{RelayAuth, RelayTracker};
use session::{RedisMonitor, RedisState, SessionSetupError, Sessions};
use turn::IceServers;

/// Shared by every request handler.
pub struct AppState {
    /// Finds and opens rooms.
    pub registry: Addr<RegistryActor>,
    /// Heartbeat timing for new peers.
    pub heartbeat: Heartbeat,
    /// This instance's id.
    pub node: NodeId,
    /// When the server started.
    pub started: Instant,
    /// Whose forwarded headers are believed.
    pub trusted: TrustedProxies,
    /// Redis reachability for `/health`.
    pub redis: RedisMonitor,
    /// True when instances share a room directory (Redis): rooms may live elsewhere.
    pub directory_shared: bool,
    /// Signs relay headers of this instance's participants and checks those of others.
    pub relay_auth: RelayAuth,
    /// Participants this instance relays to other instances.
    pub relays: Arc<RelayTracker>,
    /// Which pages may open the signaling WebSocket.
    pub origins: OriginPolicy,
    /// Connections per address, signaling rate (one per process).
    pub limits: Arc<Limits>,
    /// What the participants started here are subject to (limits, ICE servers, metrics).
    pub policy: Arc<EdgePolicy>,
    /// The edge's counters (one per process).
    pub metrics: Arc<Metrics>,
    /// True once the instance stops taking new meetings.
    draining: Arc<AtomicBool>,
}

impl AppState {
    /// True while the instance drains.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// True while the balancer may send new meetings here.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.redis.state() != RedisState::Unreachable
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The media workers could not bind their UDP ports.
    #[error(transparent)]
    Media(#[from] MediaStartError),
    /// Sessions could not be set up (Redis unreachable).
    #[error(transparent)]
    Sessions(#[from] SessionSetupError),
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The room directory could not be set up (bad `redisUrl`).
    #[error("room directory: {0}. Fix redisUrl")]
    Directory(#[from] DirectoryError),
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({key}): {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The config key to change.
        key: &'static str,
        /// The socket error.
        source: std::io::Error,
    },
}

/// A started server.
pub struct RunningServer {
    /// Where HTTP(S) and WebSocket requests are served.
    pub http_addr: SocketAddr,
    /// The plain-HTTP redirect listener, when configured.
    pub redirect_addr: Option<SocketAddr>,
    /// The Prometheus `/metrics` listener (`metricsListen`), when configured.
    pub metrics_addr: Option<SocketAddr>,
    /// The UDP address of each media worker.
    pub media_addrs: Vec<SocketAddr>,
    /// This instance's id.
    pub node: NodeId,
    handles: Vec<actix_web::dev::ServerHandle>,
    media: MediaPlane,
    /// Finds rooms; exposed for tests.
    pub registry: Addr<RegistryActor>,
    /// Participants relayed to other instances.
    relays: Arc<RelayTracker>,
    draining: Arc<AtomicBool>,
}

impl RunningServer {
    /// Stops accepting, closes connections, stops the media workers, and leaves the shared
    /// directory (its rooms released, its announcement removed).
    pub async fn stop(self) {
        self.draining.store(true, Ordering::SeqCst);
        let _ = self
            .registry
            .send(EvictAll {
                reason: "this server is shutting down; reconnecting".into(),
            })
            .await;
        self.relays
            .evict_all("this server is shutting down; reconnecting");
        let _ = self.registry.send(Withdraw).await;
        for h in &self.handles {
            h.stop(true).await;
        }
        self.media.stop();
    }

    /// The media plane, for stats.
    pub fn media(&self) -> &MediaPlane {
        &self.media
    }

    /// Graceful drain: `/health` turns 503 and no new room opens at once; running meetings
    /// continue until they end or `deadline` passes; then remaining peers are told to
    /// reconnect (they come back through the balancer, to another instance).
    pub async fn drain(&self, deadline: Duration) {
        self.draining.store(true, Ordering::SeqCst);
        self.registry.do_send(Drain);
        let until = Instant::now() + deadline;
        info!(
            ?deadline,
            "draining: no new rooms; waiting for running meetings"
        );
        loop {
            let stats = self
                .registry
                .send(GetRegistryStats)
                .await
                .unwrap_or_default();
            let relayed = self.relays.active();
            if stats.peers == 0 && relayed == 0 {
                info!("drained: no participant left");
                return;
            }
            if Instant::now() >= until {
                info!(
                    peers = stats.peers,
                    relayed, "drain deadline reached: asking participants to reconnect"
                );
                let reason = "this server is shutting down; reconnecting";
                // Rooms are released before their participants are told, so the first of them
                // to reach a live instance opens the meeting there.
                let _ = self
                    .registry
                    .send(EvictAll {
                        reason: reason.into(),
                    })
                    .await;
                self.relays.evict_all(reason);
                // Let the reconnect notifications and close frames go out.
                tokio::time::sleep(Duration::from_millis(500)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Starts the media plane, the registry, sessions and the HTTP listeners. Must run inside
/// an actix system.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let node = config
        .node_id
        .clone()
        .map(NodeId::from_raw)
        .unwrap_or_else(NodeId::random);
    // Everything counted or limited across requests is made here, once per process.
    let metrics = Arc::new(Metrics::default());
    let limits = Limits::new(&config.limits);
    let sessions = Sessions::from_config(&config, metrics.redis_session_errors.clone()).await?;
    let media = MediaPlane::start(&config)?;
    let directory: Arc<dyn RoomDirectory> = match &config.redis_url {
        Some(url) => {
            info!("rooms are shared by every instance using this Redis: one meeting per room name, hosted by one instance, the others relaying");
            Arc::new(CountingDirectory::new(
                Arc::new(RedisDirectory::new(url, node.clone())?),
                metrics.redis_directory_errors.clone(),
            ))
        }
        None => Arc::new(InMemoryDirectory),
    };
    let directory_shared = directory.shared();
    let store: Arc<dyn MeetingStore> = match &config.redis_url {
        Some(url) => Arc::new(RedisStore::new(url)?),
        None => Arc::new(NoStore),
    };
    let registry = RegistryActor::new(
        node.clone(),
        Arc::new(media.clone()),
        RoomSettings::from_config(&config, store),
        directory,
    )
    .with_max_rooms(config.limits.max_rooms as usize)
    .start();
    let relays = Arc::new(RelayTracker::default());
    let draining = Arc::new(AtomicBool::new(false));
    let trusted = TrustedProxies::new(config.trusted_proxies());
    if config.behind_reverse_proxy {
        info!(trusted = ?config.trusted_proxies(), "behind a reverse proxy: forwarded headers believed from these addresses only");
    }
    let ice = IceServers::from_config(&config);
    if ice.is_empty() {
        info!("no iceServers and no [turn]: participants whose network blocks UDP to the media ports, or that are behind a symmetric NAT, get no media; see TURN in the README");
    }
    let policy = Arc::new(EdgePolicy {
        limits: limits.clone(),
        ice,
        metrics: metrics.clone(),
        tokens: Tokens::new(config.auth.mode, config.auth.keys.clone()),
    });
    let state = web::Data::new(AppState {
        registry: registry.clone(),
        heartbeat: Heartbeat {
            interval: config.heartbeat_interval(),
            timeout: config.heartbeat_timeout(),
        },
        node: node.clone(),
        started: Instant::now(),
        trusted: trusted.clone(),
        redis: RedisMonitor::start(
            config.redis_url.clone(),
            metrics.redis_health_errors.clone(),
        ),
        directory_shared,
        relay_auth: RelayAuth::new(config.cookie_secret.as_deref()),
        relays: relays.clone(),
        origins: OriginPolicy::new(&config.allowed_origins),
        limits,
        policy,
        metrics: metrics.clone(),
        draining: draining.clone(),
    });
    // Everything shared by the HTTP workers is made here, once per process: the closure below
    // runs once per worker, and state built inside it (a random cookie key, a counter, a
    // limiter) would be per worker, so requests on different connections would disagree.
    let cookie_key = session::cookie_key(&config);
    let security = SecurityHeaders::new(&config.frame_ancestors);
    let cfg = config.clone();
    let server = HttpServer::new(move || {
        let trusted = trusted.clone();
        let security = security.clone();
        App::new()
            .app_data(state.clone())
            .wrap(sessions.clone().middleware(cookie_key.clone(), &cfg))
            // Outermost: resolve the client once, log the request, mark cookies Secure
            // when the user came over https.
            .wrap_fn(move |req, srv| {
                let client = proxy::client_info_of(&req, &trusted);
                let (method, path) = (req.method().clone(), req.path().to_string());
                req.extensions_mut().insert(client.clone());
                let security = security.clone();
                srv.call(req).map(move |res| {
                    let mut res = res?;
                    security.apply(res.headers_mut());
                    if client.is_https() {
                        session::secure_cookies(res.headers_mut());
                    }
                    let status = res.status().as_u16();
                    if path.starts_with("/static/") || path.starts_with("/health") {
                        debug!(client = %client.ip, scheme = %client.scheme, %method, %path, status, "request");
                    } else {
                        info!(client = %client.ip, scheme = %client.scheme, host = %client.host, %method, %path, status, "request");
                    }
                    Ok(res)
                })
            })
            .route("/health", web::get().to(http::health))
            .route("/health", web::head().to(http::health))
            .route("/health/live", web::get().to(http::live))
            .route("/health/live", web::head().to(http::live))
            .route("/api/session", web::get().to(http::session_info))
            .route("/ws/{room}", web::get().to(ws::connect))
            .route("/static/{path:.*}", web::get().to(http::static_file))
            .route("/static/{path:.*}", web::head().to(http::static_file))
            .route("/", web::get().to(http::home))
            .route("/", web::head().to(http::home))
            // HEAD answers as GET does (link checkers, uptime probes); actix sends no body.
            .route("/{room}", web::get().to(http::room_page))
            .route("/{room}", web::head().to(http::room_page))
    })
    .workers(2)
    // Write to the socket every 8 KiB of frames rather than every 32 KiB: with large
    // WebSocket messages sent frame by frame (`frames::send_text`), a connection's write buffer
    // then stays at its initial 8 KiB.
    .h1_write_buffer_size(2 * frames::FRAME_BYTES)
    .shutdown_timeout(5)
    .disable_signals();
    let addr = format!("{}:{}", config.listening_host, config.listening_port);
    let listen_err = |source| StartError::Listen {
        addr: addr.clone(),
        key: "listeningHost/listeningPort",
        source,
    };
    let server = if config.http_only {
        server.bind(&addr).map_err(listen_err)?
    } else {
        let (cert, key) = (
            config.tls.cert.clone().unwrap_or_default(),
            config.tls.key.clone().unwrap_or_default(),
        );
        let tls = tls::server_config(&cert, &key)?;
        server.bind_rustls_0_23(&addr, tls).map_err(listen_err)?
    };
    let http_addr = server.addrs()[0];
    let internal_url = config.internal_url.clone().unwrap_or_else(|| {
        let host = match http_addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}", http_addr.port())
    });
    if directory_shared {
        if config.internal_url.is_none() && !http_addr.ip().is_loopback() {
            tracing::warn!(%internal_url, "internalUrl is not set: the other instances will try to reach this one at {internal_url}, which only works when they all run on this machine; set internalUrl (MM_INTERNAL_URL) to this instance's address on the network they share");
        }
        info!(%internal_url, "announcing this instance to the others");
    }
    registry.do_send(SetInternalUrl(internal_url));
    let server = server.run();
    let mut handles = vec![server.handle()];
    actix_web::rt::spawn(server);

    let mut redirect_addr = None;
    if let Some(port) = config.redirect_port() {
        let target = web::Data::new(tls::RedirectTarget {
            https_port: http_addr.port(),
            trusted: TrustedProxies::new(config.trusted_proxies()),
        });
        let raddr = format!("{}:{}", config.listening_host, port);
        let redirect = HttpServer::new(move || {
            App::new()
                .app_data(target.clone())
                .default_service(web::to(tls::redirect))
        })
        .workers(1)
        .disable_signals()
        .bind(&raddr)
        .map_err(|source| StartError::Listen {
            addr: raddr.clone(),
            key: "listeningRedirectPort",
            source,
        })?;
        redirect_addr = Some(redirect.addrs()[0]);
        let redirect = redirect.run();
        handles.push(redirect.handle());
        actix_web::rt::spawn(redirect);
    }
    let mut metrics_addr = None;
    if let Some(listen) = &config.metrics_listen {
        let sources = web::Data::new(metrics::Sources {
            node: node.clone(),
            registry: registry.clone(),
            media: media.clone(),
            relays: relays.clone(),
            metrics,
        });
        let listener = HttpServer::new(move || {
            App::new()
                .app_data(sources.clone())
                .route("/metrics", web::get().to(metrics::scrape))
        })
        .workers(1)
        .disable_signals()
        .bind(listen)
        .map_err(|source| StartError::Listen {
            addr: listen.clone(),
            key: "metricsListen",
            source,
        })?;
        let addr = listener.addrs()[0];
        if !addr.ip().is_loopback() {
            info!(%addr, "metrics are served to whoever reaches {addr}: keep it on a private network or firewall it");
        }
        metrics_addr = Some(addr);
        let listener = listener.run();
        handles.push(listener.handle());
        actix_web::rt::spawn(listener);
    }
    let media_addrs = media.workers().iter().map(|w| w.local_addr()).collect();
    info!(%http_addr, ?redirect_addr, ?metrics_addr, node = %node, "serving");
    Ok(RunningServer {
        http_addr,
        redirect_addr,
        metrics_addr,
        media_addrs,
        node,
        handles,
        media,
        registry,
        relays,
        draining,
    })
}
