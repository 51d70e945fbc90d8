//! Actor-level tests of the meeting features: every permission rule (a normal peer is refused
//! with `Forbidden` and nothing changes; a moderator's action takes effect and every member is
//! told), the lobby and its admission order, role levels, lock and access code,
//! `maxUsersPerRoom` with the lobby counted, and the lasting state kept by a store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use super::messages::*;
use super::tests::{publish, settle, FakeWorker, Recorder, Seen};
use super::*;
use crate::ids::{PeerId, RoomId};
use crate::model::{Permission, Role, Source};
use crate::store::{MeetingState, MeetingStore, StoreFuture};

/// A room on a fake worker with `settings`.
fn room_with(settings: RoomSettings) -> (Addr<RoomActor>, FakeWorker) {
    let worker = FakeWorker::default();
    let room = RoomActor::new(
        RoomId::parse("meeting").unwrap(),
        1,
        settings,
        Arc::new(worker.clone()),
        None,
    )
    .start();
    (room, worker)
}

fn settings() -> RoomSettings {
    RoomSettings {
        close_delay: Duration::from_secs(30),
        ..RoomSettings::default()
    }
}

/// How a test participant enters.
#[derive(Default, Clone)]
struct Entry {
    user: Option<&'static str>,
    code: Option<&'static str>,
    roles: Vec<Role>,
}

async fn enter(
    room: &Addr<RoomActor>,
    name: &str,
    how: Entry,
) -> (PeerId, Recorder, Result<Joined, JoinError>) {
    let rec = Recorder::default();
    let addr = rec.clone().start();
    let peer = PeerId::random();
    let joined = room
        .send(Join {
            peer: peer.clone(),
            display_name: name.into(),
            user: how.user.map(str::to_string),
            access_code: how.code.map(str::to_string),
            granted_roles: how.roles,
            events: addr.clone().recipient(),
            media_events: addr.recipient(),
        })
        .await
        .expect("room alive");
    (peer, rec, joined)
}

async fn joined(room: &Addr<RoomActor>, name: &str) -> (PeerId, Recorder, Joined) {
    let (p, r, j) = enter(room, name, Entry::default()).await;
    let j = j.expect("join accepted");
    assert!(!j.lobby, "{name} entered the meeting");
    (p, r, j)
}

async fn act(room: &Addr<RoomActor>, peer: &PeerId, action: Action) -> Result<(), RoomError> {
    room.send(Act {
        peer: peer.clone(),
        action,
    })
    .await
    .expect("room alive")
}

fn forbidden(r: &Result<(), RoomError>) -> bool {
    matches!(r, Err(RoomError::Forbidden(_)))
}

/// Moderator M (first in), normal N, normal O publishing a microphone, camera and screen.
struct Meeting {
    room: Addr<RoomActor>,
    worker: FakeWorker,
    m: PeerId,
    m_rec: Recorder,
    n: PeerId,
    n_rec: Recorder,
    o: PeerId,
    o_rec: Recorder,
    o_mic: crate::ids::ProducerId,
    o_cam: crate::ids::ProducerId,
    o_screen: crate::ids::ProducerId,
}

async fn meeting() -> Meeting {
    let (room, worker) = room_with(settings());
    let (m, m_rec, jm) = joined(&room, "M").await;
    assert!(
        jm.roles.contains(&Role::Moderator),
        "the first peer moderates"
    );
    assert!(jm.permissions.contains(&Permission::ModerateRoom));
    let (n, n_rec, jn) = joined(&room, "N").await;
    assert_eq!(jn.roles, vec![Role::Normal], "the second is a normal peer");
    assert!(!jn.permissions.contains(&Permission::ModerateRoom));
    let (o, o_rec, _) = joined(&room, "O").await;
    let ids = publish(&room, &o, &[Source::Mic, Source::Webcam, Source::Screen]).await;
    settle().await;
    Meeting {
        room,
        worker,
        m,
        m_rec,
        n,
        n_rec,
        o,
        o_rec,
        o_mic: ids[0].clone(),
        o_cam: ids[1].clone(),
        o_screen: ids[2].clone(),
    }
}

#[actix_rt::test]
async fn moderator_actions_by_a_normal_peer_are_refused_and_change_nothing() {
    let t = meeting().await;
    let snap_before = t.room.send(GetSnapshot).await.unwrap();
    let seen_before = t.worker.seen().len();
    let events_before: Vec<usize> = [&t.m_rec, &t.n_rec, &t.o_rec]
        .iter()
        .map(|r| r.events().len())
        .collect();
    act(&t.room, &t.o, Action::RaiseHand(true)).await.unwrap();
    settle().await;
    let events_before: Vec<usize> = events_before.iter().map(|n| n + 1).collect();
    let snap_before = GetSnapshotWithHand::from(snap_before, &t.o);
    let refused = [
        Action::ClearChat,
        Action::LowerHand(t.o.clone()),
        Action::SetLocked(true),
        Action::SetAccessCode(Some("1234".into())),
        Action::GiveRole(t.o.clone(), Role::Presenter),
        Action::GiveRole(t.n.clone(), Role::Moderator),
        Action::RemoveRole(t.m.clone(), Role::Moderator),
        Action::Block(t.o.clone(), MediaBlock::Audio),
        Action::Block(t.o.clone(), MediaBlock::Video),
        Action::Block(t.o.clone(), MediaBlock::Screen),
        Action::BlockAll(MediaBlock::Audio),
        Action::BlockAll(MediaBlock::Video),
        Action::Allow(t.o.clone(), MediaBlock::Audio),
        Action::Kick(t.o.clone()),
        Action::CloseMeeting,
    ];
    for action in refused {
        let r = act(&t.room, &t.n, action.clone()).await;
        assert!(forbidden(&r), "{action:?} by a normal peer: {r:?}");
    }
    settle().await;
    let snap_after = t.room.send(GetSnapshot).await.unwrap();
    assert_eq!(snap_after, snap_before.0, "nothing changed in the room");
    assert_eq!(
        t.worker.seen().len(),
        seen_before,
        "the media worker was told nothing: {:?}",
        &t.worker.seen()[seen_before..]
    );
    let events_after: Vec<usize> = [&t.m_rec, &t.n_rec, &t.o_rec]
        .iter()
        .map(|r| r.events().len())
        .collect();
    assert_eq!(events_after, events_before, "nobody was told anything");
    assert!(t.room.connected(), "the meeting goes on");
}

/// A snapshot taken before O raised its hand, corrected for the raised hand.
struct GetSnapshotWithHand(RoomSnapshot);

impl GetSnapshotWithHand {
    fn from(mut snap: RoomSnapshot, raised: &PeerId) -> Self {
        for p in &mut snap.peers {
            if &p.id == raised {
                p.raised_hand = true;
            }
        }
        Self(snap)
    }
}

#[actix_rt::test]
async fn a_moderators_mute_is_enforced_until_allowed_and_everyone_is_told() {
    let t = meeting().await;
    act(&t.room, &t.m, Action::Block(t.o.clone(), MediaBlock::Audio))
        .await
        .unwrap();
    settle().await;
    assert!(t
        .worker
        .seen()
        .contains(&Seen::SetProducerPaused(t.o_mic.clone(), true)));
    for rec in [&t.m_rec, &t.n_rec, &t.o_rec] {
        assert!(
            rec.events().iter().any(|e| matches!(e,
                RoomEvent::ProducerPaused { producer, paused: true, by_moderator: true, .. } if *producer == t.o_mic)),
            "everyone, the owner too, is told of the moderator's pause: {:?}",
            rec.events()
        );
    }
    assert!(t
        .o_rec
        .events()
        .contains(&RoomEvent::MediaBlocked(MediaBlock::Audio)));
    // The owner can neither resume nor publish a new microphone.
    let resume = t
        .room
        .send(SetProducerPaused {
            peer: t.o.clone(),
            producer: t.o_mic.clone(),
            paused: false,
        })
        .await
        .unwrap();
    assert!(matches!(resume, Err(RoomError::Forbidden(_))), "{resume:?}");
    let republish = t
        .room
        .send(Publish {
            peer: t.o.clone(),
            sdp: "offer".into(),
            tracks: vec![NewTrack {
                mid: "9".into(),
                kind: Source::Mic.kind(),
                source: Source::Mic,
            }],
        })
        .await
        .unwrap();
    assert!(matches!(republish, Err(RoomError::Forbidden(_))));
    assert!(
        !t.worker
            .seen()
            .contains(&Seen::SetProducerPaused(t.o_mic.clone(), false)),
        "the worker still holds the microphone"
    );
    // The camera is untouched; a moderator allows the microphone again, the owner resumes it.
    act(&t.room, &t.m, Action::Allow(t.o.clone(), MediaBlock::Audio))
        .await
        .unwrap();
    settle().await;
    assert!(t
        .o_rec
        .events()
        .contains(&RoomEvent::MediaAllowed(MediaBlock::Audio)));
    assert!(
        !t.worker
            .seen()
            .contains(&Seen::SetProducerPaused(t.o_mic.clone(), false)),
        "allowing never turns a microphone on by itself"
    );
    t.room
        .send(SetProducerPaused {
            peer: t.o.clone(),
            producer: t.o_mic.clone(),
            paused: false,
        })
        .await
        .unwrap()
        .expect("resumed after allowMedia");
    settle().await;
    assert!(t
        .worker
        .seen()
        .contains(&Seen::SetProducerPaused(t.o_mic.clone(), false)));
    assert!(!t
        .worker
        .seen()
        .contains(&Seen::SetProducerPaused(t.o_cam.clone(), true)));
}

#[actix_rt::test]
async fn stopping_video_pauses_cameras_and_stopping_a_share_closes_it() {
    let t = meeting().await;
    act(&t.room, &t.m, Action::BlockAll(MediaBlock::Video))
        .await
        .unwrap();
    act(
        &t.room,
        &t.m,
        Action::Block(t.o.clone(), MediaBlock::Screen),
    )
    .await
    .unwrap();
    settle().await;
    let seen = t.worker.seen();
    assert!(seen.contains(&Seen::SetProducerPaused(t.o_cam.clone(), true)));
    assert!(seen.contains(&Seen::CloseProducer(t.o_screen.clone())));
    assert!(!seen.contains(&Seen::SetProducerPaused(t.o_mic.clone(), true)));
    for rec in [&t.m_rec, &t.n_rec] {
        assert!(rec.events().iter().any(|e| matches!(e,
            RoomEvent::ProducerClosed { producer, .. } if *producer == t.o_screen)));
    }
    assert!(t
        .o_rec
        .events()
        .contains(&RoomEvent::MediaBlocked(MediaBlock::Screen)));
    // stopAllVideo spares the moderator who asked, and N has no camera: only O is told.
    assert!(!t
        .m_rec
        .events()
        .contains(&RoomEvent::MediaBlocked(MediaBlock::Video)));
    assert!(t
        .n_rec
        .events()
        .contains(&RoomEvent::MediaBlocked(MediaBlock::Video)));
}

#[actix_rt::test]
async fn hands_are_raised_by_their_owner_and_lowered_by_a_moderator() {
    let t = meeting().await;
    act(&t.room, &t.o, Action::RaiseHand(true)).await.unwrap();
    settle().await;
    let raised = |rec: &Recorder, up: bool| {
        rec.events().iter().any(|e| {
            matches!(e,
            RoomEvent::PeerUpdated { peer, raised_hand: Some(r), .. } if *peer == t.o && *r == up)
        })
    };
    assert!(raised(&t.m_rec, true) && raised(&t.n_rec, true) && raised(&t.o_rec, true));
    act(&t.room, &t.m, Action::LowerHand(t.o.clone()))
        .await
        .unwrap();
    settle().await;
    assert!(raised(&t.n_rec, false) && raised(&t.o_rec, false));
    let snap = t.room.send(GetSnapshot).await.unwrap();
    assert!(snap.peers.iter().all(|p| !p.raised_hand));
}

#[actix_rt::test]
async fn kick_removes_the_peer_and_tells_it_why() {
    let t = meeting().await;
    act(&t.room, &t.m, Action::Kick(t.o.clone())).await.unwrap();
    settle().await;
    assert!(
        t.o_rec
            .events()
            .iter()
            .any(|e| matches!(e, RoomEvent::Kicked(reason) if reason.contains('M'))),
        "{:?}",
        t.o_rec.events()
    );
    assert!(t.n_rec.events().contains(&RoomEvent::PeerLeft(t.o.clone())));
    let snap = t.room.send(GetSnapshot).await.unwrap();
    assert!(snap.peers.iter().all(|p| p.id != t.o));
    assert!(t.worker.seen().contains(&Seen::RemovePeer(t.o.clone())));
    // Its later Leave (socket closed) is harmless.
    t.room.send(Leave { peer: t.o.clone() }).await.unwrap();
    assert_eq!(
        act(&t.room, &t.m, Action::Kick(t.o.clone())).await,
        Err(RoomError::UnknownPeer(t.o.clone()))
    );
}

#[actix_rt::test]
async fn close_meeting_ends_it_for_everyone() {
    let t = meeting().await;
    t.room
        .send(Act {
            peer: t.m.clone(),
            action: Action::SetLocked(true),
        })
        .await
        .unwrap()
        .unwrap();
    let (_w, w_rec, w) = enter(&t.room, "W", Entry::default()).await;
    assert!(w.unwrap().lobby);
    act(&t.room, &t.m, Action::CloseMeeting).await.unwrap();
    settle().await;
    for rec in [&t.m_rec, &t.n_rec, &t.o_rec, &w_rec] {
        assert!(rec.events().contains(&RoomEvent::MeetingClosed));
    }
    assert!(!t.room.connected(), "the room stopped");
}

#[actix_rt::test]
async fn chat_reaches_everyone_and_late_joiners_get_the_bounded_history() {
    let (room, _w) = room_with(RoomSettings {
        chat_history_messages: 3,
        ..settings()
    });
    let (m, m_rec, _) = joined(&room, "M").await;
    let (n, n_rec, _) = joined(&room, "N").await;
    let xss = "<img src=x onerror=alert(1)>";
    for text in ["one", "two", "three", xss] {
        act(&room, &n, Action::Chat(text.into())).await.unwrap();
    }
    settle().await;
    for rec in [&m_rec, &n_rec] {
        let texts: Vec<String> = rec
            .events()
            .iter()
            .filter_map(|e| match e {
                RoomEvent::Chat(c) => Some(c.text.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            texts,
            ["one", "two", "three", xss],
            "everyone, the writer too"
        );
    }
    let (_late, _, late) = joined(&room, "Late").await;
    let history: Vec<&str> = late.chat_history.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(history, ["two", "three", xss], "the newest three, verbatim");
    assert!(late.chat_history.iter().all(|c| c.display_name == "N"));
    // Empty, too long and control characters are refused.
    for bad in ["   ", &"x".repeat(2001), "bell\u{7}"] {
        assert!(matches!(
            act(&room, &n, Action::Chat(bad.to_string())).await,
            Err(RoomError::Invalid(_))
        ));
    }
    assert!(act(&room, &n, Action::Chat("two\nlines\tok".into()))
        .await
        .is_ok());
    // Only a moderator clears.
    assert!(forbidden(&act(&room, &n, Action::ClearChat).await));
    act(&room, &m, Action::ClearChat).await.unwrap();
    settle().await;
    assert!(n_rec.events().contains(&RoomEvent::ChatCleared));
    assert!(room.send(GetSnapshot).await.unwrap().chat.is_empty());
}

#[actix_rt::test]
async fn a_locked_room_keeps_newcomers_in_the_lobby_until_admitted_in_arrival_order() {
    let (room, worker) = room_with(settings());
    let (m, m_rec, _) = joined(&room, "M").await;
    act(&room, &m, Action::SetLocked(true)).await.unwrap();
    let mut waiting = Vec::new();
    for name in ["A", "B", "C"] {
        let (p, rec, j) = enter(&room, name, Entry::default()).await;
        let j = j.unwrap();
        assert!(
            j.lobby && j.peers.is_empty() && j.chat_history.is_empty(),
            "{name} waits"
        );
        waiting.push((p, rec));
    }
    settle().await;
    let lobby_views: Vec<Vec<String>> = m_rec
        .events()
        .iter()
        .filter_map(|e| match e {
            RoomEvent::LobbyPeers(l) => Some(l.iter().map(|p| p.display_name.clone()).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(
        lobby_views,
        [vec!["A"], vec!["A", "B"], vec!["A", "B", "C"]]
    );
    // Waiting peers have no media session and may only rename themselves.
    assert!(!worker
        .seen()
        .iter()
        .any(|s| matches!(s, Seen::AddPeer(p) if waiting.iter().any(|(w, _)| w == p))));
    assert_eq!(
        act(&room, &waiting[0].0, Action::Chat("hi".into())).await,
        Err(RoomError::InLobby)
    );
    room.send(ChangeDisplayName {
        peer: waiting[1].0.clone(),
        display_name: "Bea".into(),
    })
    .await
    .unwrap()
    .unwrap();
    settle().await;
    assert!(
        matches!(m_rec.events().last(), Some(RoomEvent::LobbyPeers(l)) if l[1].display_name == "Bea")
    );
    act(&room, &m, Action::AdmitAll).await.unwrap();
    settle().await;
    let joined_order: Vec<PeerId> = m_rec
        .events()
        .iter()
        .filter_map(|e| match e {
            RoomEvent::PeerJoined(p) => Some(p.id.clone()),
            _ => None,
        })
        .collect();
    let arrival: Vec<PeerId> = waiting.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(joined_order, arrival, "admitted in arrival order");
    for (_, rec) in &waiting {
        assert!(rec
            .events()
            .iter()
            .any(|e| matches!(e, RoomEvent::Admitted(j) if !j.lobby && j.locked)));
    }
    assert!(matches!(m_rec.events().last(), Some(RoomEvent::LobbyPeers(l)) if l.is_empty()));
    // One more: refused.
    let (d, d_rec, _) = enter(&room, "D", Entry::default()).await;
    act(&room, &m, Action::Deny(d.clone())).await.unwrap();
    settle().await;
    assert!(d_rec.events().contains(&RoomEvent::Denied));
    assert!(room.send(GetSnapshot).await.unwrap().lobby.is_empty());
    assert_eq!(
        act(&room, &m, Action::Admit(d.clone())).await,
        Err(RoomError::UnknownPeer(d))
    );
}

#[actix_rt::test]
async fn the_access_code_is_checked_and_returning_users_skip_the_lobby() {
    let (room, _w) = room_with(settings());
    let (m, _m_rec, _) = joined(&room, "M").await;
    act(&room, &m, Action::SetAccessCode(Some("1234".into())))
        .await
        .unwrap();
    act(&room, &m, Action::SetLocked(true)).await.unwrap();
    let (_, _, wrong) = enter(
        &room,
        "W",
        Entry {
            code: Some("9999"),
            ..Entry::default()
        },
    )
    .await;
    assert_eq!(wrong, Err(JoinError::WrongAccessCode));
    let (_, _, right) = enter(
        &room,
        "R",
        Entry {
            code: Some("1234"),
            user: Some("u-r"),
            ..Entry::default()
        },
    )
    .await;
    assert!(
        !right.unwrap().lobby,
        "the right code skips the lobby of a locked room"
    );
    let (_, _, none) = enter(&room, "N", Entry::default()).await;
    assert!(none.unwrap().lobby, "no code: the lobby of a locked room");
    // R comes back (a reload: new peer, same session): straight in, without the code.
    let (_, _, back) = enter(
        &room,
        "R",
        Entry {
            user: Some("u-r"),
            ..Entry::default()
        },
    )
    .await;
    assert!(!back.unwrap().lobby, "a returning user skips the lobby");
    assert!(matches!(
        act(&room, &m, Action::SetAccessCode(Some(String::new()))).await,
        Err(RoomError::Invalid(_))
    ));
    act(&room, &m, Action::SetLocked(false)).await.unwrap();
    let (_, _, open) = enter(&room, "O", Entry::default()).await;
    assert!(!open.unwrap().lobby, "an unlocked room lets everyone in");
    // An admin (from a token) enters a locked room.
    act(&room, &m, Action::SetLocked(true)).await.unwrap();
    let (_, _, admin) = enter(
        &room,
        "Ad",
        Entry {
            roles: vec![Role::Admin],
            ..Entry::default()
        },
    )
    .await;
    assert!(!admin.unwrap().lobby);
}

#[actix_rt::test]
async fn max_users_counts_the_lobby() {
    let (room, _w) = room_with(RoomSettings {
        max_users: 2,
        ..settings()
    });
    let (m, _, _) = joined(&room, "M").await;
    act(&room, &m, Action::SetLocked(true)).await.unwrap();
    let (_, _, a) = enter(&room, "A", Entry::default()).await;
    assert!(a.unwrap().lobby);
    let (_, _, b) = enter(&room, "B", Entry::default()).await;
    assert_eq!(
        b,
        Err(JoinError::RoomFull(2)),
        "one joined and one waiting make two"
    );
}

#[actix_rt::test]
async fn roles_are_given_and_taken_at_or_below_ones_own_level() {
    let t = meeting().await;
    act(
        &t.room,
        &t.m,
        Action::GiveRole(t.n.clone(), Role::Presenter),
    )
    .await
    .unwrap();
    settle().await;
    for rec in [&t.m_rec, &t.o_rec] {
        assert!(rec.events().iter().any(|e| matches!(e,
            RoomEvent::PeerUpdated { peer, roles: Some(r), .. } if *peer == t.n && r.contains(&Role::Presenter))));
    }
    assert!(t.n_rec.events().iter().any(|e| matches!(e,
        RoomEvent::PermissionsChanged { roles, .. } if roles.contains(&Role::Presenter))));
    // A presenter may give presenter, not moderator, and cannot take the moderator's role.
    assert!(act(
        &t.room,
        &t.n,
        Action::GiveRole(t.o.clone(), Role::Presenter)
    )
    .await
    .is_ok());
    assert!(forbidden(
        &act(
            &t.room,
            &t.n,
            Action::GiveRole(t.o.clone(), Role::Moderator)
        )
        .await
    ));
    assert!(forbidden(
        &act(
            &t.room,
            &t.n,
            Action::RemoveRole(t.m.clone(), Role::Moderator)
        )
        .await
    ));
    // Nobody gives admin or takes normal in a meeting.
    assert!(forbidden(
        &act(&t.room, &t.m, Action::GiveRole(t.o.clone(), Role::Admin)).await
    ));
    assert!(forbidden(
        &act(&t.room, &t.m, Action::RemoveRole(t.o.clone(), Role::Normal)).await
    ));
    // A new moderator moderates at once.
    act(
        &t.room,
        &t.m,
        Action::GiveRole(t.n.clone(), Role::Moderator),
    )
    .await
    .unwrap();
    assert!(act(&t.room, &t.n, Action::LowerHand(t.o.clone()))
        .await
        .is_ok());
    act(
        &t.room,
        &t.m,
        Action::RemoveRole(t.n.clone(), Role::Moderator),
    )
    .await
    .unwrap();
    assert!(forbidden(
        &act(&t.room, &t.n, Action::LowerHand(t.o.clone())).await
    ));
}

#[actix_rt::test]
async fn the_lock_is_anyones_while_no_moderator_is_present() {
    let (room, _w) = room_with(RoomSettings {
        access: AccessPolicy {
            first_peer_moderator: false,
            ..AccessPolicy::default()
        },
        ..settings()
    });
    let (a, _, ja) = joined(&room, "A").await;
    assert_eq!(
        ja.roles,
        vec![Role::Normal],
        "no first-peer moderator when configured off"
    );
    assert!(ja.permissions.contains(&Permission::ChangeRoomLock));
    act(&room, &a, Action::SetLocked(true)).await.unwrap();
    act(&room, &a, Action::SetLocked(false)).await.unwrap();
    let (_, _, jm) = enter(
        &room,
        "Mod",
        Entry {
            roles: vec![Role::Moderator],
            ..Entry::default()
        },
    )
    .await;
    assert!(!jm.unwrap().lobby);
    assert!(
        forbidden(&act(&room, &a, Action::SetLocked(true)).await),
        "with a moderator present the lock is the moderator's"
    );
}

#[actix_rt::test]
async fn waiting_for_a_moderator_admits_when_one_arrives() {
    let (room, _w) = room_with(RoomSettings {
        access: AccessPolicy {
            first_peer_moderator: false,
            wait_for_moderator: true,
            ..AccessPolicy::default()
        },
        ..settings()
    });
    let (a, a_rec, ja) = enter(&room, "A", Entry::default()).await;
    assert!(ja.unwrap().lobby, "nobody moderates yet");
    let (_, _, jm) = enter(
        &room,
        "Mod",
        Entry {
            roles: vec![Role::Moderator],
            ..Entry::default()
        },
    )
    .await;
    assert!(!jm.unwrap().lobby);
    settle().await;
    assert!(a_rec
        .events()
        .iter()
        .any(|e| matches!(e, RoomEvent::Admitted(_))));
    assert!(room
        .send(GetSnapshot)
        .await
        .unwrap()
        .peers
        .iter()
        .any(|p| p.id == a));
}

/// A store that keeps states in memory, shared between room actors (as Redis would be).
#[derive(Default, Clone)]
struct MemStore(Arc<Mutex<HashMap<RoomId, MeetingState>>>);

impl MeetingStore for MemStore {
    fn load(&self, room: &RoomId) -> StoreFuture<Option<MeetingState>> {
        let got = self.0.lock().unwrap().get(room).cloned();
        Box::pin(async move { Ok(got) })
    }
    fn save(&self, room: &RoomId, state: &MeetingState) -> StoreFuture<()> {
        self.0.lock().unwrap().insert(room.clone(), state.clone());
        Box::pin(async { Ok(()) })
    }
    fn delete(&self, room: &RoomId) -> StoreFuture<()> {
        self.0.lock().unwrap().remove(room);
        Box::pin(async { Ok(()) })
    }
}

#[actix_rt::test]
async fn a_meeting_reopened_elsewhere_keeps_its_lock_chat_and_roles() {
    let store = MemStore::default();
    let with_store = || RoomSettings {
        store: Arc::new(store.clone()),
        ..settings()
    };
    let (first, _w) = room_with(with_store());
    let (m, _, jm) = enter(
        &first,
        "M",
        Entry {
            user: Some("u-mod"),
            ..Entry::default()
        },
    )
    .await;
    assert!(jm.unwrap().roles.contains(&Role::Moderator));
    let (n, _, _) = enter(
        &first,
        "N",
        Entry {
            user: Some("u-n"),
            ..Entry::default()
        },
    )
    .await;
    act(&first, &n, Action::Chat("before the crash".into()))
        .await
        .unwrap();
    act(&first, &m, Action::SetLocked(true)).await.unwrap();
    settle().await;
    // The instance dies (the actor is gone without closing the meeting); another opens it.
    first
        .send(EvictAll {
            reason: "moved".into(),
        })
        .await
        .unwrap();
    drop(first);
    let (second, _w2) = room_with(with_store());
    // N comes back first: it is not made moderator, and finds the chat and the lock.
    let (_, _, jn) = enter(
        &second,
        "N",
        Entry {
            user: Some("u-n"),
            ..Entry::default()
        },
    )
    .await;
    let jn = jn.unwrap();
    assert!(!jn.lobby, "a returning user skips the lock");
    assert_eq!(jn.roles, vec![Role::Normal]);
    assert!(jn.locked);
    assert_eq!(jn.chat_history[0].text, "before the crash");
    let (_, _, jm) = enter(
        &second,
        "M",
        Entry {
            user: Some("u-mod"),
            ..Entry::default()
        },
    )
    .await;
    assert!(
        jm.unwrap().roles.contains(&Role::Moderator),
        "the moderator gets its role back"
    );
    let (_, _, stranger) = enter(&second, "S", Entry::default()).await;
    assert!(stranger.unwrap().lobby, "still locked for newcomers");
}
