//! Which pages may use the server: a WebSocket upgrade from another site's page gets 403,
//! the page's own site, `allowedOrigins` and clients without `Origin` get in, a trusted
//! proxy's `X-Forwarded-Host` names the site, relayed upgrades (no browser `Origin`, a signed
//! relay header) keep working; every response carries the security headers, and the web
//! client has nothing inline that its CSP would block.

#[path = "edge/support.rs"]
mod support;

use multiparty_meeting::ids::{NodeId, RoomId};
use multiparty_meeting::server::relay::{claims, RelayAuth, RELAY_HEADER};
use multiparty_meeting::{server, Config};
use support::{http_get, init_logs, ws, Refused};

const SECRET: &str = "an-edge-test-cookie-secret-0123456789abcdef";

fn status(result: &Result<support::Ws, Refused>) -> u16 {
    match result {
        Ok(_) => 101,
        Err(Refused::Status(s, _)) => *s,
        Err(Refused::Other(e)) => panic!("upgrade failed without a status: {e}"),
    }
}

#[actix_rt::test]
async fn a_foreign_origin_gets_403_and_the_own_site_gets_in() {
    init_logs();
    let srv = server::start(Config {
        allowed_origins: vec!["https://intranet.example.org".into()],
        ..Config::for_tests()
    })
    .await
    .expect("server starts");
    let addr = srv.http_addr;
    let own = format!("http://{addr}");

    let foreign = ws(addr, "origins", &[("Origin", "https://evil.example")]).await;
    match &foreign {
        Err(Refused::Status(403, body)) => assert!(
            body.contains("evil.example") && body.contains("allowedOrigins"),
            "the refusal says why and how to allow it: {body}"
        ),
        other => panic!(
            "a foreign Origin must get 403, got {:?}",
            other.as_ref().err()
        ),
    }
    assert_eq!(
        status(&ws(addr, "origins", &[("Origin", "null")]).await),
        403,
        "an opaque origin (sandboxed frame, file page) is another site"
    );
    assert_eq!(
        status(&ws(addr, "origins", &[("Origin", "http://127.0.0.1:1")]).await),
        403,
        "another port of the same host with a port on both sides is another site"
    );

    let mut same = ws(addr, "origins", &[("Origin", own.as_str())])
        .await
        .unwrap_or_else(|e| panic!("the page's own origin {own} is refused: {e:?}"));
    let joined = same.join("Alice").await;
    assert_eq!(joined["ok"], true, "{joined}");
    let mut listed = ws(
        addr,
        "origins",
        &[("Origin", "https://intranet.example.org")],
    )
    .await
    .expect("an allowedOrigins entry gets in");
    assert_eq!(listed.join("Bob").await["ok"], true);
    let mut no_origin = ws(addr, "origins", &[])
        .await
        .expect("a client without Origin (not a browser) gets in");
    assert_eq!(no_origin.join("Carol").await["ok"], true);
    srv.stop().await;
}

#[actix_rt::test]
async fn behind_a_proxy_the_forwarded_host_names_the_site() {
    init_logs();
    let srv = server::start(Config {
        behind_reverse_proxy: true,
        ..Config::for_tests()
    })
    .await
    .expect("server starts");
    let addr = srv.http_addr;
    // nginx's `$host` has no port: the browser's origin on port 8443 is the same site.
    let proxied = ws(
        addr,
        "proxied",
        &[
            ("Origin", "https://meet.example.org:8443"),
            ("X-Forwarded-Host", "meet.example.org"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    .await;
    assert_eq!(status(&proxied), 101);
    let other = ws(
        addr,
        "proxied",
        &[
            ("Origin", "https://evil.example"),
            ("X-Forwarded-Host", "meet.example.org"),
        ],
    )
    .await;
    assert_eq!(status(&other), 403);
    srv.stop().await;

    // From a peer that is not a trusted proxy the forwarded host is not believed.
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    let forged = ws(
        srv.http_addr,
        "proxied",
        &[
            ("Origin", "https://evil.example"),
            ("X-Forwarded-Host", "evil.example"),
        ],
    )
    .await;
    assert_eq!(status(&forged), 403);
    srv.stop().await;
}

#[actix_rt::test]
async fn a_relayed_upgrade_needs_no_origin_but_a_valid_signature() {
    init_logs();
    let srv = server::start(Config {
        cookie_secret: Some(SECRET.into()),
        ..Config::for_tests()
    })
    .await
    .expect("server starts");
    let room = RoomId::parse("relayed").unwrap();
    let header = RelayAuth::new(Some(SECRET)).sign(&claims(
        &NodeId::from_raw("edge-1"),
        &room,
        "198.51.100.20".into(),
        "https".into(),
        "meet.example.org".into(),
        None,
    ));
    let mut relayed = ws(srv.http_addr, "relayed", &[(RELAY_HEADER, header.as_str())])
        .await
        .expect("a signed relay upgrade gets in");
    assert_eq!(relayed.join("Relayed").await["ok"], true);
    let forged = RelayAuth::new(Some("another-secret-another-secret-another")).sign(&claims(
        &NodeId::from_raw("edge-1"),
        &room,
        "198.51.100.20".into(),
        "https".into(),
        "meet.example.org".into(),
        None,
    ));
    assert_eq!(
        status(&ws(srv.http_addr, "relayed", &[(RELAY_HEADER, forged.as_str())]).await),
        403
    );
    srv.stop().await;
}

#[actix_rt::test]
async fn every_response_carries_the_security_headers() {
    init_logs();
    let srv = server::start(Config::for_tests())
        .await
        .expect("server starts");
    for path in ["/", "/standup", "/static/js/app.js", "/health", "/nope/x"] {
        let (status, headers, _) = http_get(srv.http_addr, path, &[]).await;
        let csp = headers
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path} ({status}) has no CSP: {headers:?}"));
        assert!(
            csp.contains("script-src 'self'")
                && csp.contains("style-src 'self'")
                && csp.contains("frame-ancestors 'self'")
                && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(
            headers.get("x-content-type-options").map(String::as_str),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            headers.get("referrer-policy").map(String::as_str),
            Some("no-referrer"),
            "{path}"
        );
        assert_eq!(
            headers.get("x-frame-options").map(String::as_str),
            Some("SAMEORIGIN"),
            "{path}"
        );
    }
    srv.stop().await;

    let srv = server::start(Config {
        frame_ancestors: vec!["https://lms.example.org".into()],
        ..Config::for_tests()
    })
    .await
    .expect("server starts");
    let (_, headers, _) = http_get(srv.http_addr, "/standup", &[]).await;
    assert!(
        headers["content-security-policy"]
            .ends_with("frame-ancestors 'self' https://lms.example.org"),
        "{headers:?}"
    );
    assert!(
        !headers.contains_key("x-frame-options"),
        "X-Frame-Options cannot allow another site: {headers:?}"
    );
    srv.stop().await;
}

/// The CSP allows no inline script, no inline style and no event-handler attributes: the web
/// client must have none (a CSS custom property set through the CSSOM is allowed).
#[test]
fn the_web_client_has_nothing_inline_the_csp_would_block() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    let mut files = vec![root.join("index.html")];
    for entry in std::fs::read_dir(root.join("js")).expect("static/js") {
        files.push(entry.expect("entry").path());
    }
    let handler = handler_attribute();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let name = file.display();
        for (i, line) in text.lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            assert!(
                !lower.contains("<style"),
                "{name}:{}: a <style> element (CSP style-src 'self'): {line}",
                i + 1
            );
            assert!(
                !lower.contains(" style=\"") && !lower.contains(" style='"),
                "{name}:{}: an inline style attribute: {line}",
                i + 1
            );
            assert!(
                !handler(&lower),
                "{name}:{}: an inline event handler attribute: {line}",
                i + 1
            );
            if lower.contains("<script") {
                assert!(
                    lower.contains(" src="),
                    "{name}:{}: an inline <script>: {line}",
                    i + 1
                );
            }
            assert!(
                !lower.contains("eval(") && !lower.contains("new function("),
                "{name}:{}: eval (CSP forbids it): {line}",
                i + 1
            );
        }
    }
}

/// True for a line with an HTML attribute like ` onclick="` (not `el.onclick = ...`, which is
/// a property set from a script file and allowed).
fn handler_attribute() -> impl Fn(&str) -> bool {
    |line: &str| {
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(at) = line[i..].find(" on") {
            let start = i + at + 3;
            let end = start
                + bytes[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_lowercase())
                    .count();
            if end > start
                && bytes.get(end) == Some(&b'=')
                && matches!(bytes.get(end + 1), Some(b'"') | Some(b'\''))
            {
                return true;
            }
            i = start;
        }
        false
    }
}
