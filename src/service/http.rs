//! Plain HTTP routes: the web client (embedded `static/`), room pages and `/health`. One
//! place maps errors to status codes: [`HttpError`].

use actix_web::http::header;
use actix_web::{web, HttpResponse, ResponseError};
use include_dir::{include_dir, Dir};
use serde_json::json;

use super::AppState;
use crate::ids::RoomId;
use crate::room::messages::GetRegistryStats;

/// The web client, compiled into the binary.
static STATIC: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/static");

/// Errors of the HTTP routes, each with its status code.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No such file or room name.
    #[error("not found: {0}")]
    NotFound(String),
}

impl ResponseError for HttpError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        match self {
            HttpError::NotFound(_) => actix_web::http::StatusCode::NOT_FOUND,
        }
    }
}

fn index() -> HttpResponse {
    match STATIC.get_file("index.html") {
        Some(f) => HttpResponse::Ok()
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

/// `GET /{room}`: the meeting page.
pub async fn room_page(path: web::Path<String>) -> Result<HttpResponse, HttpError> {
    RoomId::parse(&path).map_err(|e| HttpError::NotFound(format!("{}: {e}", path.as_str())))?;
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

/// `GET|HEAD /health`: readiness for the load balancer.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let stats = state
        .registry
        .send(GetRegistryStats)
        .await
        .unwrap_or_default();
    let draining = state.is_draining();
    let body = json!({
        "status": if draining { "draining" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "nodeId": state.node,
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "rooms": stats.rooms,
        "peers": stats.peers,
    });
    if draining {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}
