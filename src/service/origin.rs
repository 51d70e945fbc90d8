//! Which web pages may use this server: the `Origin` rule of the signaling WebSocket and the
//! security headers of every HTTP response (CSP, framing, `nosniff`, referrer). Owns those two
//! decisions; who the client is comes from [`super::proxy`].
//!
//! Browsers send cookies and open WebSockets to any site a page asks for, so without the
//! check any page on the internet could make its visitors' browsers join meetings here.

use std::collections::HashSet;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

use super::proxy::ClientInfo;
use crate::config::normalize_origin;

/// Why a WebSocket upgrade's `Origin` was refused (HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginRefused {
    /// `Origin` is not an http(s) origin (`null` from a sandboxed frame or a file page).
    #[error("Origin '{0}' is not a web origin")]
    Opaque(String),
    /// A page of another site.
    #[error("pages of {origin} may not connect (this server is {host}); add the origin to allowedOrigins to allow it")]
    Foreign {
        /// The page's origin as the browser sent it.
        origin: String,
        /// The host the request was made to (`Host` or a trusted `X-Forwarded-Host`).
        host: String,
    },
}

/// The `Origin` rule: the page's own site, the configured `allowedOrigins`, and clients that
/// send no `Origin` (not browsers: they cannot act for a visitor).
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// `allowedOrigins`, normalized as browsers serialize origins.
    allowed: HashSet<String>,
}

impl OriginPolicy {
    /// A policy admitting, besides the page's own origin, `allowed` (validated by the config).
    pub fn new(allowed: &[String]) -> Self {
        Self {
            allowed: allowed.iter().filter_map(|o| normalize_origin(o)).collect(),
        }
    }

    /// Decides on an upgrade whose `Origin` header is `origin`, made to `client.host`.
    ///
    /// Same site means the same host and port. The scheme is not compared: behind a TLS
    /// proxy that does not forward `X-Forwarded-Proto` the server cannot know it. A host
    /// without a port (nginx's `$host`, which drops it) matches the origin's host on any port:
    /// the port was lost on the way, and another port of the same host name is the same
    /// operator's.
    pub fn check(&self, origin: Option<&str>, client: &ClientInfo) -> Result<(), OriginRefused> {
        let Some(raw) = origin else {
            return Ok(());
        };
        let Some(origin) = normalize_origin(raw) else {
            return Err(OriginRefused::Opaque(raw.chars().take(100).collect()));
        };
        if self.allowed.contains(&origin) || same_site(&origin, &client.host) {
            return Ok(());
        }
        Err(OriginRefused::Foreign {
            origin,
            host: client.host.chars().take(100).collect(),
        })
    }
}

/// True when the normalized `origin` names `host` (a `Host` header value).
fn same_site(origin: &str, host: &str) -> bool {
    let Some((scheme, origin_authority)) = origin.split_once("://") else {
        return false;
    };
    let Some(request) = normalize_origin(&format!("{scheme}://{host}")) else {
        return false;
    };
    if request == origin {
        return true;
    }
    // The request's host carries no port (nginx's `$host` drops it): host names decide.
    let request_authority = &request[scheme.len() + 3..];
    split_port(host).1.is_none() && split_port(origin_authority).0 == request_authority
}

/// `host:port` -> (`host`, Some(`port`)); `[::1]:80` -> (`[::1]`, Some(`80`)); a bare host or
/// IPv6 literal -> (it, None).
fn split_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rsplit_once(':') {
        Some((h, p))
            if !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']')) =>
        {
            (h, Some(p))
        }
        _ => (authority, None),
    }
}

/// Headers added to every HTTP response of the public listener.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    /// The headers for a server whose page may be framed by `frame_ancestors` besides itself.
    ///
    /// The CSP allows scripts and styles only from this server's files (the web client has
    /// no inline script, inline style attribute or event handler attribute; it sets CSS
    /// custom properties through the CSSOM, which CSP allows), media from `MediaStream`s,
    /// connections to this origin (`'self'` covers `ws:`/`wss:` to it), and no plugins.
    pub fn new(frame_ancestors: &[String]) -> Self {
        let mut ancestors = String::from("'self'");
        for a in frame_ancestors {
            ancestors.push(' ');
            ancestors.push_str(a.trim().trim_end_matches('/'));
        }
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
             media-src 'self' blob: mediastream:; connect-src 'self'; font-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
        );
        let mut headers = vec![
            (
                HeaderName::from_static("content-security-policy"),
                // Invariant: the config validated every ancestor as an origin (ASCII letters,
                // digits and `-.:[]*/`), so the value has only visible ASCII.
                HeaderValue::from_str(&csp).expect("CSP is visible ASCII"),
            ),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            // Room URLs are the key to a meeting: never tell other sites which one a link
            // was followed from.
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
        ];
        // X-Frame-Options cannot list sites; browsers that know CSP follow frame-ancestors.
        if frame_ancestors.is_empty() {
            headers.push((
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("SAMEORIGIN"),
            ));
        }
        Self { headers }
    }

    /// Sets the headers on a response (replacing any a handler set).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(host: &str) -> ClientInfo {
        ClientInfo {
            ip: "203.0.113.5".parse().unwrap(),
            scheme: "https".into(),
            host: host.into(),
            forwarded: false,
        }
    }

    #[test]
    fn the_page_own_origin_and_listed_ones_pass() {
        let policy = OriginPolicy::new(&["https://intranet.example.org".into()]);
        let c = client("meet.example.org");
        assert_eq!(policy.check(None, &c), Ok(()));
        assert_eq!(policy.check(Some("https://meet.example.org"), &c), Ok(()));
        assert_eq!(policy.check(Some("https://MEET.example.org"), &c), Ok(()));
        assert_eq!(
            policy.check(Some("https://intranet.example.org"), &c),
            Ok(())
        );
        assert_eq!(
            policy.check(Some("http://127.0.0.1:3000"), &client("127.0.0.1:3000")),
            Ok(())
        );
        // nginx's $host drops the port: the host name decides.
        assert_eq!(
            policy.check(Some("https://localhost:8443"), &client("localhost")),
            Ok(())
        );
        assert_eq!(
            policy.check(
                Some("https://meet.example.org"),
                &client("meet.example.org:443")
            ),
            Ok(())
        );
    }

    #[test]
    fn other_sites_are_refused() {
        let policy = OriginPolicy::new(&[]);
        let c = client("meet.example.org");
        assert!(matches!(
            policy.check(Some("https://evil.example"), &c),
            Err(OriginRefused::Foreign { .. })
        ));
        assert!(matches!(
            policy.check(Some("https://meet.example.org.evil.example"), &c),
            Err(OriginRefused::Foreign { .. })
        ));
        assert!(matches!(
            policy.check(Some("null"), &c),
            Err(OriginRefused::Opaque(_))
        ));
        // With a port on both sides, the port counts.
        assert!(policy
            .check(Some("http://127.0.0.1:8080"), &client("127.0.0.1:3000"))
            .is_err());
        let err = policy
            .check(Some("https://evil.example"), &c)
            .unwrap_err()
            .to_string();
        assert!(err.contains("allowedOrigins"), "{err}");
    }

    #[test]
    fn framing_follows_frame_ancestors() {
        let mut h = HeaderMap::new();
        SecurityHeaders::new(&[]).apply(&mut h);
        let csp = h
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("frame-ancestors 'self'") && csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h.get("x-frame-options").unwrap(), "SAMEORIGIN");
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
        let mut h = HeaderMap::new();
        SecurityHeaders::new(&["https://lms.example.org".into()]).apply(&mut h);
        assert!(h
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with("frame-ancestors 'self' https://lms.example.org"));
        assert!(h.get("x-frame-options").is_none());
    }
}
