//! Who may do what in a meeting, and where a newcomer goes: roles with levels, the permission
//! map of the configuration, and the admission rule (the room, the lobby, or a refusal).
//! Plain functions over plain data, so that every rule is tested here without actors; the
//! [`RoomActor`](super::RoomActor) applies them.

use crate::config::{Config, PermissionMap};
use crate::model::{Permission, Role};

/// The rules of every room of this instance, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    pub(crate) permissions: PermissionMap,
    pub(crate) allow_when_role_missing: Vec<Permission>,
    /// The first participant of a new meeting becomes moderator.
    pub first_peer_moderator: bool,
    /// Newcomers wait in the lobby while no moderator is present.
    pub wait_for_moderator: bool,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        Self::from_config(&Config::default())
    }
}

/// Why a role cannot be given or taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// Only `presenter` and `moderator` are given in a meeting.
    #[error("the role {0:?} is not given in a meeting")]
    NotPromotable(Role),
    /// The role is above every role of the giver.
    #[error("the role {0:?} is above your own roles")]
    AboveGiver(Role),
}

impl AccessPolicy {
    /// The rules of `config`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            permissions: config.permissions.clone(),
            allow_when_role_missing: config.allow_when_role_missing.clone(),
            first_peer_moderator: config.first_peer_moderator,
            wait_for_moderator: config.wait_for_moderator,
        }
    }

    /// True when `roles` hold `permission` by themselves: one of them is listed for it, or is
    /// above a listed role.
    pub fn holds(&self, roles: &[Role], permission: Permission) -> bool {
        let listed = self.permissions.roles(permission);
        roles
            .iter()
            .any(|r| listed.iter().any(|l| r.level() >= l.level()))
    }

    /// True when a participant with `roles` may use `permission` now: it holds it, or the
    /// permission is one anyone may use while nobody holding it is present (`present` lists
    /// the roles of everyone in the room, the participant included).
    pub fn allows<'a>(
        &self,
        roles: &[Role],
        permission: Permission,
        present: impl IntoIterator<Item = &'a [Role]>,
    ) -> bool {
        if self.holds(roles, permission) {
            return true;
        }
        self.allow_when_role_missing.contains(&permission)
            && !present.into_iter().any(|r| self.holds(r, permission))
    }

    /// Whether someone holding `giver` may give or take `role` (the `modifyRole` permission is
    /// checked separately).
    pub fn may_change(&self, giver: &[Role], role: Role) -> Result<(), RoleError> {
        if !role.promotable() {
            return Err(RoleError::NotPromotable(role));
        }
        let top = giver.iter().map(|r| r.level()).max().unwrap_or(0);
        if role.level() > top {
            return Err(RoleError::AboveGiver(role));
        }
        Ok(())
    }

    /// Where a newcomer goes.
    pub fn admit(&self, n: &Newcomer) -> Admission {
        if n.returning || self.holds(&n.roles, Permission::BypassRoomLock) {
            return Admission::Room;
        }
        if n.room_full {
            return Admission::Full;
        }
        match n.access_code {
            CodeCheck::Right => return Admission::Room,
            CodeCheck::Wrong => return Admission::WrongAccessCode,
            CodeCheck::NotGiven => {}
        }
        if n.locked {
            return Admission::Lobby(LobbyReason::Locked);
        }
        let moderator = |roles: &[Role]| self.holds(roles, Permission::ModerateRoom);
        if self.wait_for_moderator && !moderator(&n.roles) && !n.moderator_present {
            return Admission::Lobby(LobbyReason::WaitingForModerator);
        }
        Admission::Room
    }
}

/// How a newcomer's access code compares with the room's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// No code given, or the room has none.
    NotGiven,
    /// The room's code.
    Right,
    /// Another code while the room has one.
    Wrong,
}

/// What the admission rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Newcomer {
    /// Its roles.
    pub roles: Vec<Role>,
    /// It was in this meeting before (same browser session): back in without the lobby.
    pub returning: bool,
    /// The room has `maxUsersPerRoom` participants, joined and waiting.
    pub room_full: bool,
    /// The room is locked.
    pub locked: bool,
    /// Its access code against the room's.
    pub access_code: CodeCheck,
    /// Someone holding `moderateRoom` is in the room.
    pub moderator_present: bool,
}

/// Where a newcomer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Into the meeting.
    Room,
    /// Into the lobby, until someone admits it.
    Lobby(LobbyReason),
    /// Refused: the room is full.
    Full,
    /// Refused: a wrong access code.
    WrongAccessCode,
}

/// Why a newcomer waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LobbyReason {
    /// The room is locked.
    Locked,
    /// `waitForModerator` and no moderator is present.
    WaitingForModerator,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newcomer() -> Newcomer {
        Newcomer {
            roles: vec![Role::Normal],
            returning: false,
            room_full: false,
            locked: false,
            access_code: CodeCheck::NotGiven,
            moderator_present: false,
        }
    }

    #[test]
    fn the_default_map_is_the_original_one_and_higher_roles_inherit() {
        let p = AccessPolicy::default();
        let normal = [Role::Normal];
        let moderator = [Role::Normal, Role::Moderator];
        for perm in [
            Permission::SendChat,
            Permission::ShareAudio,
            Permission::ShareVideo,
            Permission::ShareScreen,
            Permission::PromotePeer,
            Permission::ModifyRole,
        ] {
            assert!(p.holds(&normal, perm), "{perm:?} is everyone's");
        }
        for perm in [
            Permission::ChangeRoomLock,
            Permission::ModerateChat,
            Permission::ModerateRoom,
        ] {
            assert!(!p.holds(&normal, perm), "{perm:?} is not a normal peer's");
            assert!(p.holds(&moderator, perm), "{perm:?} is a moderator's");
            assert!(
                p.holds(&[Role::Admin], perm),
                "an admin is above a moderator"
            );
            assert!(!p.holds(&[Role::Presenter], perm));
        }
        assert!(!p.holds(&moderator, Permission::BypassRoomLock));
        assert!(p.holds(&[Role::Admin], Permission::BypassRoomLock));
    }

    #[test]
    fn a_missing_holder_lets_anyone_change_the_lock() {
        let p = AccessPolicy::default();
        let normal: &[Role] = &[Role::Normal];
        let moderator: &[Role] = &[Role::Normal, Role::Moderator];
        assert!(p.allows(normal, Permission::ChangeRoomLock, [normal, normal]));
        assert!(!p.allows(normal, Permission::ChangeRoomLock, [normal, moderator]));
        // Only the listed permissions fall back to everyone.
        assert!(!p.allows(normal, Permission::ModerateRoom, [normal]));
    }

    #[test]
    fn roles_are_given_at_or_below_ones_own_level_and_only_promotable_ones() {
        let p = AccessPolicy::default();
        let moderator = [Role::Normal, Role::Moderator];
        let presenter = [Role::Normal, Role::Presenter];
        assert_eq!(p.may_change(&moderator, Role::Moderator), Ok(()));
        assert_eq!(p.may_change(&moderator, Role::Presenter), Ok(()));
        assert_eq!(p.may_change(&presenter, Role::Presenter), Ok(()));
        assert_eq!(
            p.may_change(&presenter, Role::Moderator),
            Err(RoleError::AboveGiver(Role::Moderator))
        );
        assert_eq!(
            p.may_change(&[Role::Normal], Role::Presenter),
            Err(RoleError::AboveGiver(Role::Presenter))
        );
        assert_eq!(
            p.may_change(&[Role::Admin], Role::Admin),
            Err(RoleError::NotPromotable(Role::Admin))
        );
        assert_eq!(
            p.may_change(&moderator, Role::Normal),
            Err(RoleError::NotPromotable(Role::Normal))
        );
    }

    #[test]
    fn admission_follows_the_original_order() {
        let p = AccessPolicy::default();
        assert_eq!(p.admit(&newcomer()), Admission::Room);
        let locked = Newcomer {
            locked: true,
            ..newcomer()
        };
        assert_eq!(p.admit(&locked), Admission::Lobby(LobbyReason::Locked));
        // A returning participant and an admin skip the lock, even in a full room.
        let back = Newcomer {
            returning: true,
            room_full: true,
            ..locked.clone()
        };
        assert_eq!(p.admit(&back), Admission::Room);
        let admin = Newcomer {
            roles: vec![Role::Normal, Role::Admin],
            ..locked.clone()
        };
        assert_eq!(p.admit(&admin), Admission::Room);
        // Full comes before the code and the lock.
        let full = Newcomer {
            room_full: true,
            access_code: CodeCheck::Right,
            ..locked.clone()
        };
        assert_eq!(p.admit(&full), Admission::Full);
        // The right code skips the lobby, a wrong one is refused.
        let right = Newcomer {
            access_code: CodeCheck::Right,
            ..locked.clone()
        };
        assert_eq!(p.admit(&right), Admission::Room);
        let wrong = Newcomer {
            access_code: CodeCheck::Wrong,
            ..newcomer()
        };
        assert_eq!(p.admit(&wrong), Admission::WrongAccessCode);
    }

    #[test]
    fn waiting_for_a_moderator_is_configurable() {
        let p = AccessPolicy {
            wait_for_moderator: true,
            ..AccessPolicy::default()
        };
        assert_eq!(
            p.admit(&newcomer()),
            Admission::Lobby(LobbyReason::WaitingForModerator)
        );
        let with_moderator = Newcomer {
            moderator_present: true,
            ..newcomer()
        };
        assert_eq!(p.admit(&with_moderator), Admission::Room);
        let moderator = Newcomer {
            roles: vec![Role::Normal, Role::Moderator],
            ..newcomer()
        };
        assert_eq!(p.admit(&moderator), Admission::Room);
    }
}
