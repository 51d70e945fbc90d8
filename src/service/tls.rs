//! HTTPS served by the binary itself (`httpOnly = false`): a rustls configuration from the
//! PEM files `tls.cert` and `tls.key`, and the plain-HTTP redirect listener
//! (`listeningRedirectPort`).

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be opened or parsed.
    #[error("config key `{key}`: cannot use '{path}': {message}")]
    File {
        /// `tls.cert` or `tls.key`.
        key: &'static str,
        /// The path.
        path: String,
        /// What failed.
        message: String,
    },
    /// rustls refused the pair.
    #[error("config keys `tls.cert`/`tls.key`: the certificate and key do not work together: {0}")]
    Mismatch(String),
}

/// Reads the PEM certificate chain and private key into a rustls server configuration.
pub fn server_config(cert: &str, key: &str) -> Result<rustls::ServerConfig, TlsError> {
    let file_err = |key: &'static str, path: &str, message: String| TlsError::File {
        key,
        path: path.to_string(),
        message,
    };
    let mut reader =
        BufReader::new(File::open(cert).map_err(|e| file_err("tls.cert", cert, e.to_string()))?);
    let certs: Vec<_> = rustls_pemfile::certs(&mut reader)
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("tls.cert", cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err(
            "tls.cert",
            cert,
            "no PEM certificate in it".into(),
        ));
    }
    let mut reader =
        BufReader::new(File::open(key).map_err(|e| file_err("tls.key", key, e.to_string()))?);
    let private = rustls_pemfile::private_key(&mut reader)
        .map_err(|e| file_err("tls.key", key, e.to_string()))?
        .ok_or_else(|| file_err("tls.key", key, "no PEM private key in it".into()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Mismatch(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, private)
    .map_err(|e| TlsError::Mismatch(e.to_string()))
}

/// Where the redirect listener sends people: `https://<host><:port><path?query>`.
#[derive(Clone)]
pub struct RedirectTarget {
    /// The https port (`listeningPort`).
    pub https_port: u16,
    /// Whose `X-Forwarded-Host` is believed for the target host.
    pub trusted: super::proxy::TrustedProxies,
}

/// Every request on the redirect listener: 301 (GET/HEAD) or 308 to the https URL.
pub async fn redirect(req: HttpRequest, target: web::Data<RedirectTarget>) -> HttpResponse {
    let client = target
        .trusted
        .resolve(req.peer_addr(), "http", req.headers());
    let host = Some(strip_port(&client.host))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let port = if target.https_port == 443 {
        String::new()
    } else {
        format!(":{}", target.https_port)
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = format!("https://{host}{port}{path}");
    let mut res = if req.method() == actix_web::http::Method::GET
        || req.method() == actix_web::http::Method::HEAD
    {
        HttpResponse::MovedPermanently()
    } else {
        HttpResponse::PermanentRedirect()
    };
    res.insert_header(("location", location)).finish()
}

fn strip_port(host: &str) -> String {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return format!("[{}]", rest.split(']').next().unwrap_or(""));
    }
    host.split(':').next().unwrap_or("").to_string()
}
