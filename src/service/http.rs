//! Plain HTTP routes: the web client (embedded `static/`), room pages and `/health`. One
//! place maps errors to status codes: [`HttpError`].

use actix_web::http::header;
use actix_web::{web, HttpResponse, ResponseError};
use include_dir::{include_dir, Dir};
use serde_json::json;

use actix_session::Session;

use super::session::RedisState;
use super::AppState;
use crate::ids::{NodeId, RoomId};
use crate::room::messages::GetRegistryStats;

/// The web client, compiled into the binary.
static STATIC: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/static");

/// Errors of the HTTP routes, each with its status code.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No such file or room name.
    #[error("not found: {0}")]
    NotFound(String),
    /// The session store failed.
    #[error("session unavailable: {0}")]
    Session(String),
}

impl HttpError {
    fn session(e: impl std::fmt::Display) -> Self {
        HttpError::Session(e.to_string())
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        match self {
            HttpError::NotFound(_) => actix_web::http::StatusCode::NOT_FOUND,
            HttpError::Session(_) => actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

fn index() -> HttpResponse {
    index_with(HttpResponse::Ok())
}

fn index_with(mut builder: actix_web::HttpResponseBuilder) -> HttpResponse {
    match STATIC.get_file("index.html") {
        Some(f) => builder
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(f.contents()),
        None => HttpResponse::InternalServerError().body("web client missing from this build"),
    }
}

/// `GET /`: the landing page (choose a room).
pub async fn home() -> HttpResponse {
    index()
}

/// `GET /{room}`: the meeting page. Establishes the session, so reconnects and a later
/// login are tied to it.
pub async fn room_page(
    path: web::Path<String>,
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    if let Err(e) = RoomId::parse(&path) {
        // Still 404, but with the web client: it tells the person what is wrong with the
        // name and offers a valid one, instead of a bare error text with no way back.
        tracing::debug!(path = %path.as_str(), "not a room name: {e}");
        return Ok(index_with(HttpResponse::NotFound()));
    }
    // During a Redis outage the page is served without a session rather than not at all.
    if state.redis.state() == RedisState::Unreachable {
        return Ok(index());
    }
    if let Err(e) = ensure_session(&session, &state.node) {
        // The page still works without a session (Redis outage): meetings go on.
        tracing::warn!("no session for this page: {e}");
    }
    Ok(index())
}

/// `GET /static/{path}`: files of the web client.
pub async fn static_file(path: web::Path<String>) -> Result<HttpResponse, HttpError> {
    let file = STATIC
        .get_file(path.as_str())
        .ok_or_else(|| HttpError::NotFound(path.to_string()))?;
    let mime = mime_guess::from_path(path.as_str()).first_or_octet_stream();
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, mime.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(file.contents()))
}

/// `GET|HEAD /health`: readiness for the load balancer. 503 while draining or while the
/// configured Redis is unreachable.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let stats = state
        .registry
        .send(GetRegistryStats)
        .await
        .unwrap_or_default();
    let redis = state.redis.state();
    let status = if state.is_draining() {
        "draining"
    } else if redis == RedisState::Unreachable {
        "degraded"
    } else {
        "ok"
    };
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "nodeId": state.node,
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "rooms": stats.rooms,
        "peers": stats.peers,
        "relayedPeers": state.relays.active(),
        "redis": redis.as_str(),
    });
    let mut res = if state.is_ready() {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `GET|HEAD /health/live`: liveness; 200 whenever the process serves HTTP, whatever Redis
/// does.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"status": "alive"}))
}

/// Makes sure the browser has a session: a random user id and the instance that created it.
fn ensure_session(session: &Session, node: &NodeId) -> Result<(String, String, bool), HttpError> {
    let user: Option<String> = session.get("user").map_err(HttpError::session)?;
    match user {
        Some(user) => {
            let created_on = session
                .get::<String>("createdOn")
                .map_err(HttpError::session)?
                .unwrap_or_default();
            Ok((user, created_on, false))
        }
        None => {
            let user = format!("u-{:016x}", rand::random::<u64>());
            session.insert("user", &user).map_err(HttpError::session)?;
            session
                .insert("createdOn", node.as_str())
                .map_err(HttpError::session)?;
            Ok((user, node.to_string(), true))
        }
    }
}

/// `GET /api/session`: the caller's session (created if missing), and which instance
/// answered. A session created on one instance is known to all that share its Redis.
pub async fn session_info(
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (user, created_on, new) = ensure_session(&session, &state.node)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "user": user,
            "createdOn": created_on,
            "servedBy": state.node,
            "new": new,
        })))
}
