//! Who the client really is behind a reverse proxy. Forwarded headers (`Forwarded`,
//! `X-Forwarded-For/-Proto/-Host`, `X-Real-IP`) are believed only when the TCP peer is a
//! trusted proxy; the client address is the right-most untrusted hop of the chain. Owns that
//! rule and nothing else: it does not route or rewrite requests.

use std::net::{IpAddr, SocketAddr};

use actix_web::dev::ServiceRequest;
use actix_web::http::header::HeaderMap;
use actix_web::HttpRequest;
use ipnet::IpNet;

/// The original request as the user made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The user's address.
    pub ip: IpAddr,
    /// `http` or `https` as the user typed it.
    pub scheme: String,
    /// Host (and port) the user asked for.
    pub host: String,
    /// True when the values come from a trusted proxy's headers.
    pub forwarded: bool,
}

impl ClientInfo {
    /// True when the user reached us over https.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }
}

/// The proxies whose headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trust the given networks (empty = trust nobody).
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// True if `ip` is a trusted proxy.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        let ip = canonical(*ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Resolves the original client of a request that arrived from `peer` over
    /// `direct_scheme` with these headers.
    pub fn resolve(
        &self,
        peer: Option<SocketAddr>,
        direct_scheme: &str,
        headers: &HeaderMap,
    ) -> ClientInfo {
        let host_header = header(headers, "host").unwrap_or_default();
        let peer_ip = peer
            .map(|p| canonical(p.ip()))
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let direct = ClientInfo {
            ip: peer_ip,
            scheme: direct_scheme.to_string(),
            host: host_header.clone(),
            forwarded: false,
        };
        if !self.contains(&peer_ip) {
            return direct;
        }
        let mut info = direct;
        let mut from_headers = false;
        // RFC 7239 `Forwarded` first, then the de-facto X-Forwarded-* headers.
        let forwarded = parse_forwarded(headers);
        let chain: Vec<IpAddr> = if !forwarded.is_empty() {
            forwarded.iter().filter_map(|e| e.for_ip).collect()
        } else {
            headers
                .get_all("x-forwarded-for")
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(parse_ip)
                .collect()
        };
        if let Some(ip) = self.right_most_untrusted(&chain) {
            info.ip = ip;
            from_headers = true;
        } else if let Some(ip) = header(headers, "x-real-ip").and_then(|v| parse_ip(&v)) {
            info.ip = ip;
            from_headers = true;
        }
        let proto = forwarded
            .first()
            .and_then(|e| e.proto.clone())
            .or_else(|| header(headers, "x-forwarded-proto").map(|v| first_item(&v)));
        if let Some(p) = proto.map(|p| p.to_ascii_lowercase()) {
            if p == "http" || p == "https" {
                info.scheme = p;
                from_headers = true;
            }
        }
        let host = forwarded
            .first()
            .and_then(|e| e.host.clone())
            .or_else(|| header(headers, "x-forwarded-host").map(|v| first_item(&v)));
        if let Some(h) = host.filter(|h| valid_host(h)) {
            info.host = h;
            from_headers = true;
        }
        info.forwarded = from_headers;
        info
    }

    /// Walks the chain from the right (nearest hop) and returns the first address that is
    /// not a trusted proxy; if every hop is trusted, the left-most one.
    fn right_most_untrusted(&self, chain: &[IpAddr]) -> Option<IpAddr> {
        chain
            .iter()
            .rev()
            .find(|ip| !self.contains(ip))
            .or_else(|| chain.first())
            .copied()
    }
}

/// Convenience for handlers.
pub fn client_info(req: &HttpRequest, trusted: &TrustedProxies) -> ClientInfo {
    let info = trusted.resolve(
        req.peer_addr(),
        req.connection_info().scheme(),
        req.headers(),
    );
    with_authority(info, req.uri())
}

/// HTTP/2 carries the host in the `:authority` pseudo-header, which actix puts in the URI,
/// not in a `Host` header: use it when no header named the host.
fn with_authority(mut info: ClientInfo, uri: &actix_web::http::Uri) -> ClientInfo {
    if info.host.is_empty() {
        if let Some(authority) = uri.authority().filter(|a| valid_host(a.as_str())) {
            info.host = authority.as_str().to_string();
        }
    }
    info
}

/// Same, for middleware.
pub fn client_info_of(req: &ServiceRequest, trusted: &TrustedProxies) -> ClientInfo {
    let direct_scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let info = trusted.resolve(req.peer_addr(), direct_scheme, req.headers());
    with_authority(info, req.uri())
}

#[derive(Debug, Default)]
struct ForwardedElement {
    for_ip: Option<IpAddr>,
    proto: Option<String>,
    host: Option<String>,
}

fn parse_forwarded(headers: &HeaderMap) -> Vec<ForwardedElement> {
    let mut out = Vec::new();
    for value in headers.get_all("forwarded").filter_map(|v| v.to_str().ok()) {
        for element in value.split(',') {
            let mut e = ForwardedElement::default();
            for pair in element.split(';') {
                let Some((k, v)) = pair.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "for" => e.for_ip = parse_ip(v),
                    "proto" => e.proto = Some(v.to_string()),
                    "host" => e.host = Some(v.to_string()),
                    _ => {}
                }
            }
            out.push(e);
        }
    }
    out
}

/// Parses `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80` or `::1`.
fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let s = s.trim_start_matches('[');
    let s = s.split(']').next()?;
    s.parse::<IpAddr>().ok().map(canonical)
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn first_item(v: &str) -> String {
    v.split(',').next().unwrap_or("").trim().to_string()
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn loopback() -> TrustedProxies {
        TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()])
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    const FORGED: &[(&str, &str)] = &[
        ("host", "meet.example.org"),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
        ("x-real-ip", "203.0.113.9"),
    ];

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let info = loopback().resolve(peer("198.51.100.4"), "http", &headers(FORGED));
        assert_eq!(info.ip, "198.51.100.4".parse::<IpAddr>().unwrap());
        assert_eq!(info.scheme, "http");
        assert_eq!(info.host, "meet.example.org");
        assert!(!info.forwarded);
        let nobody = TrustedProxies::default();
        let info = nobody.resolve(peer("127.0.0.1"), "http", &headers(FORGED));
        assert_eq!(info.ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(info.scheme, "http");
    }

    #[test]
    fn headers_from_a_trusted_peer_are_used() {
        let info = loopback().resolve(peer("127.0.0.1"), "http", &headers(FORGED));
        assert_eq!(info.ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        assert!(info.is_https());
        assert_eq!(info.host, "evil.example");
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        // client spoofs a first hop; 198.51.100.7 is what our proxy saw.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 127.0.0.5")]);
        let info = loopback().resolve(peer("127.0.0.1"), "http", &h);
        assert_eq!(info.ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        // Several headers are one list.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "198.51.100.8"),
        ]);
        let info = loopback().resolve(peer("127.0.0.1"), "http", &h);
        assert_eq!(info.ip, "198.51.100.8".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn rfc7239_forwarded_is_understood() {
        let h = headers(&[(
            "forwarded",
            r#"for="[2001:db8::1]:4711";proto=https;host=meet.example.org, for=127.0.0.2"#,
        )]);
        let info = loopback().resolve(peer("127.0.0.1"), "http", &h);
        assert_eq!(info.ip, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert!(info.is_https());
        assert_eq!(info.host, "meet.example.org");
    }

    #[test]
    fn an_http2_request_without_host_header_takes_the_authority() {
        let info = loopback().resolve(peer("198.51.100.4"), "https", &headers(&[]));
        let uri: actix_web::http::Uri = "https://meet.example.org:8443/room".parse().unwrap();
        assert_eq!(with_authority(info, &uri).host, "meet.example.org:8443");
        let info = loopback().resolve(peer("198.51.100.4"), "https", &headers(FORGED));
        assert_eq!(
            with_authority(info, &uri).host,
            "meet.example.org",
            "Host header wins"
        );
    }

    #[test]
    fn x_real_ip_is_used_without_a_chain_and_garbage_is_ignored() {
        let h = headers(&[("x-real-ip", "192.0.2.1"), ("x-forwarded-proto", "gopher")]);
        let info = loopback().resolve(peer("::ffff:127.0.0.1"), "http", &h);
        assert_eq!(info.ip, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(info.scheme, "http");
    }
}
