//! Room access tokens (`[auth]`): the real server in-process, tokens minted by the binary's
//! `token` subcommand exactly as an operator runs it, and the Rust client over the real
//! protocol. A valid token admits with its name and roles; a missing, forged, expired or
//! other-room token is refused with `unauthorized` and a message that says which; in
//! `open-with-roles` anyone joins and a token adds its roles.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime};

use multiparty_meeting::auth::{self, AuthMode};
use multiparty_meeting::client::{Client, ClientError, ClientOptions};
use multiparty_meeting::model::Role;
use multiparty_meeting::{server, Config};

const KEY_OLD: (&str, &str) = ("2026-11", "old-0123456789abcdef0123456789abcdef");
const KEY_NEW: (&str, &str) = ("2026-12", "new-0123456789abcdef0123456789abcdef");

fn config(mode: AuthMode) -> Config {
    let mut c = Config::for_tests();
    c.auth.mode = mode;
    c.auth.keys = BTreeMap::from([
        (KEY_OLD.0.to_string(), KEY_OLD.1.to_string()),
        (KEY_NEW.0.to_string(), KEY_NEW.1.to_string()),
    ]);
    c
}

/// `multiparty-meeting token --config FILE …` as an operator types it; the token it prints.
fn mint_with_binary(args: &[&str]) -> String {
    let dir = std::env::temp_dir().join(format!("mm-auth-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[auth]\nmode = \"token\"\nkeys = {{ \"{}\" = \"{}\", \"{}\" = \"{}\" }}\n",
            KEY_OLD.0, KEY_OLD.1, KEY_NEW.0, KEY_NEW.1
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_multiparty-meeting"))
        .arg("token")
        .arg("--config")
        .arg(&file)
        .args(args)
        // The binary refuses unknown MM_* variables, and the suite sets its own (MM_BIN):
        // only the file configures this run.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("the binary runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "token subcommand failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT on stdout: {token}");
    token
}

fn sign(kid: &str, secret: &str, room: &str, roles: Vec<Role>, exp_in: i64) -> String {
    let now = SystemTime::now();
    let mut c = auth::claims(room, None, roles, Duration::from_secs(3600), now);
    c.exp = (c.iat.unwrap() as i64 + exp_in) as u64;
    auth::sign(kid, secret, &c)
}

async fn join(
    base: &str,
    room: &str,
    name: &str,
    token: Option<String>,
) -> Result<Client, ClientError> {
    Client::connect_with(
        base,
        room,
        name,
        ClientOptions {
            token,
            ..ClientOptions::default()
        },
    )
    .await
}

/// The `unauthorized` refusal's message, or a panic saying what happened instead.
fn refusal(r: Result<Client, ClientError>) -> String {
    match r {
        Err(ClientError::Server { code, message }) => {
            assert_eq!(code, "unauthorized", "{message}");
            message
        }
        Err(e) => panic!("expected an unauthorized refusal, got {e}"),
        Ok(c) => panic!("joined without a valid token: {:?}", c.join_response()),
    }
}

#[actix_rt::test]
async fn token_mode_admits_valid_tokens_with_their_roles_and_refuses_the_others() {
    let srv = server::start(config(AuthMode::Token))
        .await
        .expect("server starts");
    let base = format!("http://{}", srv.http_addr);

    // Nobody gets in without a token, not even the first participant.
    let msg = refusal(join(&base, "standup", "Eve", None).await);
    assert!(msg.contains("access token"), "{msg}");

    // A token from the binary's subcommand: its name wins over the typed one, its roles are
    // granted, with `authenticated`.
    let token = mint_with_binary(&[
        "--room",
        "standup",
        "--name",
        "Teacher",
        "--role",
        "moderator",
        "--ttl",
        "1h",
        "--kid",
        KEY_NEW.0,
    ]);
    let teacher = join(&base, "standup", "typed name", Some(token))
        .await
        .expect("a valid token admits");
    let roles = &teacher.join_response().roles;
    assert!(
        roles.iter().any(|r| r == "moderator") && roles.iter().any(|r| r == "authenticated"),
        "{roles:?}"
    );
    // A `*` token under the old key of the rotation, without roles.
    let student = join(
        &base,
        "standup",
        "Student",
        Some(sign(KEY_OLD.0, KEY_OLD.1, "*", vec![], 600)),
    )
    .await
    .expect("a * token under the old key admits");
    let peers = &student.join_response().peers;
    assert_eq!(peers.len(), 1);
    assert_eq!(
        peers[0].display_name, "Teacher",
        "the token's name: {peers:?}"
    );
    let roles = &student.join_response().roles;
    assert!(!roles.iter().any(|r| r == "moderator"), "{roles:?}");
    assert!(roles.iter().any(|r| r == "authenticated"), "{roles:?}");

    // Each way a token can be bad, each with its own message.
    let forged = sign(
        KEY_NEW.0,
        "forged-0123456789abcdef0123456789ab",
        "standup",
        vec![Role::Admin],
        600,
    );
    assert!(refusal(join(&base, "standup", "F", Some(forged)).await).contains("signature"));
    let expired = sign(KEY_NEW.0, KEY_NEW.1, "standup", vec![], -600);
    assert!(refusal(join(&base, "standup", "X", Some(expired)).await).contains("expired"));
    let other = sign(KEY_NEW.0, KEY_NEW.1, "retro", vec![], 600);
    let msg = refusal(join(&base, "standup", "O", Some(other)).await);
    assert!(
        msg.contains("`retro`") && msg.contains("`standup`"),
        "{msg}"
    );
    let unknown = sign("2025-01", KEY_NEW.1, "standup", vec![], 600);
    assert!(refusal(join(&base, "standup", "U", Some(unknown)).await).contains("2025-01"));
    assert!(
        refusal(join(&base, "standup", "M", Some("not.a.token".into())).await)
            .contains("malformed")
    );

    // The refused never entered: the room still has its two participants.
    let late = join(
        &base,
        "standup",
        "Late",
        Some(sign(KEY_NEW.0, KEY_NEW.1, "standup", vec![], 600)),
    )
    .await
    .expect("late joiner");
    assert_eq!(late.join_response().peers.len(), 2);
    srv.stop().await;
}

#[actix_rt::test]
async fn open_with_roles_admits_anyone_and_a_token_adds_its_roles() {
    let mut c = config(AuthMode::OpenWithRoles);
    // Without the first-comer rule, moderators come only from tokens.
    c.first_peer_moderator = false;
    let srv = server::start(c).await.expect("server starts");
    let base = format!("http://{}", srv.http_addr);
    let guest = join(&base, "class", "Guest", None)
        .await
        .expect("anyone joins");
    let roles = &guest.join_response().roles;
    assert_eq!(roles, &vec!["normal".to_string()], "{roles:?}");
    let teacher = join(
        &base,
        "class",
        "Teacher",
        Some(sign(
            KEY_NEW.0,
            KEY_NEW.1,
            "class",
            vec![Role::Moderator],
            600,
        )),
    )
    .await
    .expect("token holder joins");
    assert!(teacher
        .join_response()
        .roles
        .iter()
        .any(|r| r == "moderator"));
    // A token that is sent but bad is refused, not silently ignored.
    let bad = sign(KEY_NEW.0, KEY_NEW.1, "other", vec![Role::Moderator], 600);
    refusal(join(&base, "class", "Mallory", Some(bad)).await);
    srv.stop().await;
}
