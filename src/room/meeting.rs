//! The meeting features of a [`RoomActor`]: chat, raised hands, lock and access code, lobby
//! decisions, roles, and the moderator's actions. Every action is checked against the
//! permissions of the peer that asks ([`super::access`]); a refused action changes nothing.
//! The server enforces what it announces: a muted microphone is paused in the media worker and
//! cannot be resumed or published again by its owner until a moderator allows it.

use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tracing::info;

use super::messages::*;
use super::room::{block_of, RoomActor};
use crate::ids::{PeerId, ProducerId};
use crate::model::{ChatEntry, Permission, Role};

/// Longest access code, in characters.
const MAX_ACCESS_CODE: usize = 64;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RoomActor {
    fn target(&self, peer: &PeerId) -> Result<(), RoomError> {
        if self.members.contains_key(peer) {
            Ok(())
        } else {
            Err(RoomError::UnknownPeer(peer.clone()))
        }
    }

    fn chat(
        &mut self,
        peer: &PeerId,
        text: String,
        ctx: &mut Context<Self>,
    ) -> Result<(), RoomError> {
        self.require(peer, Permission::SendChat)?;
        let chars = text.chars().count();
        if text.trim().is_empty() || chars > self.settings.max_chat_length {
            return Err(RoomError::Invalid(format!(
                "a chat message has 1 to {} characters",
                self.settings.max_chat_length
            )));
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        {
            return Err(RoomError::Invalid(
                "a chat message may not contain control characters other than newlines and tabs"
                    .into(),
            ));
        }
        let entry = ChatEntry {
            peer_id: peer.clone(),
            display_name: self.members[peer].display_name.clone(),
            text,
            time: now_ms(),
        };
        let (max_messages, max_bytes) = (
            self.settings.chat_history_messages,
            self.settings.chat_history_bytes,
        );
        self.state.push_chat(entry.clone(), max_messages, max_bytes);
        self.changed(ctx);
        self.notify_all(RoomEvent::Chat(entry));
        Ok(())
    }

    fn set_hand(&mut self, peer: &PeerId, raised: bool, ctx: &mut Context<Self>) {
        let Some(m) = self.members.get_mut(peer) else {
            return;
        };
        if m.raised_hand == raised {
            return;
        }
        m.raised_hand = raised;
        if let Some(user) = m.user.clone() {
            if raised {
                self.state.raised_hands.insert(user);
            } else {
                self.state.raised_hands.remove(&user);
            }
            self.changed(ctx);
        }
        self.notify_all(RoomEvent::PeerUpdated {
            peer: peer.clone(),
            display_name: None,
            raised_hand: Some(raised),
            roles: None,
        });
    }

    fn change_role(
        &mut self,
        peer: &PeerId,
        target: &PeerId,
        role: Role,
        give: bool,
        ctx: &mut Context<Self>,
    ) -> Result<(), RoomError> {
        self.require(peer, Permission::ModifyRole)?;
        self.target(target)?;
        let giver = self.members[peer].roles();
        self.settings
            .access
            .may_change(&giver, role)
            .map_err(|e| RoomError::Forbidden(e.to_string()))?;
        let admitted_before = self.allows(&self.members[target].roles(), Permission::PromotePeer);
        let Some(m) = self.members.get_mut(target) else {
            return Err(RoomError::UnknownPeer(target.clone()));
        };
        let changed = if give {
            m.roles.insert(role)
        } else {
            m.roles.remove(&role)
        };
        if !changed {
            return Ok(());
        }
        let roles = m.roles();
        if let Some(user) = m.user.clone() {
            let given = self.state.roles.entry(user.clone()).or_default();
            if give {
                given.insert(role);
            } else {
                given.remove(&role);
                if given.is_empty() {
                    self.state.roles.remove(&user);
                }
            }
            self.changed(ctx);
        }
        info!(room = %self.id, %peer, %target, ?role, give, "role changed");
        self.notify_all(RoomEvent::PeerUpdated {
            peer: target.clone(),
            display_name: None,
            raised_hand: None,
            roles: Some(roles.clone()),
        });
        // Everyone's permissions may change with it (a permission anyone may use while no
        // holder is present), the target's for sure.
        let everyone: Vec<(PeerId, Vec<Role>)> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.roles()))
            .collect();
        for (id, roles) in everyone {
            let permissions = self.permissions_of(&roles);
            self.notify(&id, RoomEvent::PermissionsChanged { roles, permissions });
        }
        let admits_now = self.allows(&roles, Permission::PromotePeer);
        if admits_now && !admitted_before && !self.lobby.is_empty() {
            self.notify(target, RoomEvent::LobbyPeers(self.lobby_view()));
        }
        Ok(())
    }

    /// Stops `target`'s media of `kind` and blocks it until a moderator allows it again.
    fn block(&mut self, target: &PeerId, kind: MediaBlock) {
        let Some(m) = self.members.get_mut(target) else {
            return;
        };
        m.blocked.insert(kind);
        let theirs: Vec<ProducerId> = self
            .producers
            .values()
            .filter(|p| &p.info.peer_id == target && block_of(p.info.source) == kind)
            .map(|p| p.info.id.clone())
            .collect();
        for producer in theirs {
            match kind {
                // A shared screen ends; a microphone or camera is paused (its owner sees it).
                MediaBlock::Screen => self.remove_producer(&producer),
                MediaBlock::Audio | MediaBlock::Video => self.set_paused(&producer, true, true),
            }
        }
        self.notify(target, RoomEvent::MediaBlocked(kind));
    }

    fn kick(&mut self, peer: &PeerId, target: &PeerId, ctx: &mut Context<Self>) {
        let reason = format!(
            "removed from the meeting by {}",
            self.members
                .get(peer)
                .map(|m| m.display_name.as_str())
                .unwrap_or("a moderator")
        );
        info!(room = %self.id, %peer, %target, "peer kicked");
        self.notify(target, RoomEvent::Kicked(reason));
        self.remove_member(target, ctx);
    }

    fn close_meeting(&mut self, peer: &PeerId, ctx: &mut Context<Self>) {
        info!(room = %self.id, %peer, "meeting closed by a moderator");
        self.notify_all(RoomEvent::MeetingClosed);
        for (_, w) in &self.lobby {
            w.events.do_send(RoomEvent::MeetingClosed);
        }
        self.finished = true;
        self.state = Default::default();
        ctx.stop();
    }
}

impl Handler<Act> for RoomActor {
    type Result = Result<(), RoomError>;

    fn handle(&mut self, msg: Act, ctx: &mut Self::Context) -> Self::Result {
        let peer = &msg.peer;
        self.member(peer)?;
        match msg.action {
            Action::Chat(text) => self.chat(peer, text, ctx)?,
            Action::ClearChat => {
                self.require(peer, Permission::ModerateChat)?;
                self.state.chat.clear();
                self.changed(ctx);
                self.notify_all(RoomEvent::ChatCleared);
            }
            Action::RaiseHand(raised) => self.set_hand(peer, raised, ctx),
            Action::LowerHand(target) => {
                self.require(peer, Permission::ModerateRoom)?;
                self.target(&target)?;
                self.set_hand(&target, false, ctx);
            }
            Action::SetLocked(locked) => {
                self.require(peer, Permission::ChangeRoomLock)?;
                if self.state.locked != locked {
                    self.state.locked = locked;
                    self.changed(ctx);
                    info!(room = %self.id, %peer, locked, "room lock changed");
                    self.notify_all(RoomEvent::Locked(locked));
                }
            }
            Action::SetAccessCode(code) => {
                self.require(peer, Permission::ChangeRoomLock)?;
                if let Some(c) = &code {
                    let n = c.chars().count();
                    if n == 0 || n > MAX_ACCESS_CODE || c.chars().any(char::is_control) {
                        return Err(RoomError::Invalid(format!(
                            "an access code has 1 to {MAX_ACCESS_CODE} printable characters, or is null"
                        )));
                    }
                }
                self.state.access_code = code;
                self.changed(ctx);
            }
            Action::Admit(target) => {
                self.require(peer, Permission::PromotePeer)?;
                if !self.admit_from_lobby(&target, ctx) {
                    return Err(RoomError::UnknownPeer(target));
                }
                self.announce_lobby();
            }
            Action::AdmitAll => {
                self.require(peer, Permission::PromotePeer)?;
                let waiting: Vec<PeerId> = self.lobby.iter().map(|(id, _)| id.clone()).collect();
                for target in waiting {
                    self.admit_from_lobby(&target, ctx);
                }
                self.announce_lobby();
            }
            Action::Deny(target) => {
                self.require(peer, Permission::PromotePeer)?;
                let Some(pos) = self.lobby.iter().position(|(id, _)| *id == target) else {
                    return Err(RoomError::UnknownPeer(target));
                };
                let (target, w) = self.lobby.remove(pos);
                info!(room = %self.id, %peer, %target, "refused from the lobby");
                w.events.do_send(RoomEvent::Denied);
                self.announce_lobby();
                self.after_departure(ctx);
            }
            Action::GiveRole(target, role) => self.change_role(peer, &target, role, true, ctx)?,
            Action::RemoveRole(target, role) => {
                self.change_role(peer, &target, role, false, ctx)?
            }
            Action::Block(target, kind) => {
                self.require(peer, Permission::ModerateRoom)?;
                self.target(&target)?;
                self.block(&target, kind);
            }
            Action::BlockAll(kind) => {
                self.require(peer, Permission::ModerateRoom)?;
                let others: Vec<PeerId> = self
                    .members
                    .keys()
                    .filter(|id| *id != peer)
                    .cloned()
                    .collect();
                for target in others {
                    self.block(&target, kind);
                }
            }
            Action::Allow(target, kind) => {
                self.require(peer, Permission::ModerateRoom)?;
                self.target(&target)?;
                if let Some(m) = self.members.get_mut(&target) {
                    if m.blocked.remove(&kind) {
                        self.notify(&target, RoomEvent::MediaAllowed(kind));
                    }
                }
            }
            Action::Kick(target) => {
                self.require(peer, Permission::ModerateRoom)?;
                self.target(&target)?;
                self.kick(peer, &target, ctx);
            }
            Action::CloseMeeting => {
                self.require(peer, Permission::ModerateRoom)?;
                self.close_meeting(peer, ctx);
            }
        }
        Ok(())
    }
}
