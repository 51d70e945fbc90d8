//! The HTTP/WebSocket edge and server assembly: builds the media plane, the room registry and
//! the actix-web server, and hands back a [`RunningServer`] to stop it. The edge moves
//! messages and serves files; it never touches RTP.

pub mod http;
pub mod ws;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Addr};
use actix_web::{web, App, HttpServer};
use tracing::info;

use crate::config::Config;
use crate::ids::NodeId;
use crate::room::{Heartbeat, RegistryActor, RoomSettings};
use crate::routing::InMemoryDirectory;
use crate::sfu::{MediaPlane, MediaStartError};

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
    /// True once the instance stops taking new meetings.
    draining: Arc<AtomicBool>,
}

impl AppState {
    /// True while the instance drains.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The media workers could not bind their UDP ports.
    #[error(transparent)]
    Media(#[from] MediaStartError),
    /// The HTTP listener could not bind.
    #[error("cannot listen on {addr} (listeningHost/listeningPort): {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
}

/// A started server.
pub struct RunningServer {
    /// Where HTTP and WebSocket requests are served.
    pub http_addr: SocketAddr,
    /// The UDP address of each media worker.
    pub media_addrs: Vec<SocketAddr>,
    /// This instance's id.
    pub node: NodeId,
    handle: actix_web::dev::ServerHandle,
    media: MediaPlane,
    /// Finds rooms; exposed for tests.
    pub registry: Addr<RegistryActor>,
    draining: Arc<AtomicBool>,
}

impl RunningServer {
    /// Stops accepting, closes connections, stops the media workers.
    pub async fn stop(self) {
        self.draining.store(true, Ordering::SeqCst);
        self.handle.stop(true).await;
        self.media.stop();
    }

    /// The media plane, for stats.
    pub fn media(&self) -> &MediaPlane {
        &self.media
    }
}

/// Starts the media plane, the registry and the HTTP server. Must run inside an actix system.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let node = config
        .node_id
        .clone()
        .map(NodeId::from_raw)
        .unwrap_or_else(NodeId::random);
    let media = MediaPlane::start(&config)?;
    let registry = RegistryActor::new(
        node.clone(),
        media.clone(),
        RoomSettings {
            max_users: config.max_users_per_room,
            close_delay: config.empty_room_close_delay(),
        },
        Arc::new(InMemoryDirectory::default()),
    )
    .start();
    let draining = Arc::new(AtomicBool::new(false));
    let state = web::Data::new(AppState {
        registry: registry.clone(),
        heartbeat: Heartbeat {
            interval: config.heartbeat_interval(),
            timeout: config.heartbeat_timeout(),
        },
        node: node.clone(),
        started: Instant::now(),
        draining: draining.clone(),
    });
    let addr = format!("{}:{}", config.listening_host, config.listening_port);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/health", web::get().to(http::health))
            .route("/health", web::head().to(http::health))
            .route("/ws/{room}", web::get().to(ws::connect))
            .route("/static/{path:.*}", web::get().to(http::static_file))
            .route("/", web::get().to(http::home))
            .route("/{room}", web::get().to(http::room_page))
    })
    .workers(2)
    .shutdown_timeout(5)
    .bind(&addr)
    .map_err(|source| StartError::Listen {
        addr: addr.clone(),
        source,
    })?;
    let http_addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let media_addrs = media.workers().iter().map(|w| w.local_addr()).collect();
    info!(%http_addr, node = %node, "serving");
    Ok(RunningServer {
        http_addr,
        media_addrs,
        node,
        handle,
        media,
        registry,
        draining,
    })
}
