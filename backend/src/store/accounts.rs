//! The store's second half: accounts, sessions, WebSocket tickets and room
//! membership. A separate trait from `Store` (which is about messages) so
//! each stays readable; every store implements both, with the SQL of
//! `accounts_sql.rs`.

use async_trait::async_trait;
use common::{Role, User, Visibility};

use super::Result;

/// An account (or a guest) to create.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub id: &'a str,
    /// Lowercase and unique; `None` for a guest.
    pub username: Option<&'a str>,
    pub display_name: &'a str,
    /// An argon2id PHC string; `None` for a guest.
    pub password_hash: Option<&'a str>,
    pub created_at_ms: i64,
}

/// A session to store (`Accounts::create_session`).
pub struct NewSession<'a> {
    pub id: &'a str,
    /// The SHA-256 of its token: the token itself is never stored.
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub created_at_ms: i64,
    /// Seconds since the epoch.
    pub expires_at: u64,
}

/// A user and what they sign in with.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
}

/// A live (not revoked, not expired) session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub user: User,
    /// Seconds since the epoch.
    pub expires_at: u64,
}

/// Why someone is no longer a member of a room (`Accounts::remove_member`):
/// kept until they join it again, so that a device of theirs that was
/// offline meanwhile does not make them a member again by resuming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// They left, on some device.
    Left,
    /// A moderator removed them.
    Removed,
}

impl Departure {
    pub fn as_str(self) -> &'static str {
        match self {
            Departure::Left => "left",
            Departure::Removed => "removed",
        }
    }

    pub fn parse(text: &str) -> Departure {
        if text == "removed" {
            Departure::Removed
        } else {
            Departure::Left
        }
    }
}

/// What a user may do with a room that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomAccess {
    pub visibility: Visibility,
    /// `None`: not a member (which is fine for a public room).
    pub role: Option<Role>,
    /// The user created the room. A room created by joining it has no
    /// owner among its members; its creator moderates it.
    pub creator: bool,
}

impl RoomAccess {
    /// Public rooms are open to everyone signed in; private ones to members.
    pub fn may_enter(&self) -> bool {
        self.visibility == Visibility::Public || self.role.is_some()
    }

    /// Owners, moderators and the creator set the topic and delete
    /// anyone's messages; nobody does in a direct conversation.
    pub fn moderates(&self) -> bool {
        self.visibility != Visibility::Direct
            && (self.creator || self.role.is_some_and(Role::moderates))
    }
}

#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    /// Creates the user. `false`: the username is taken.
    async fn create_user(&self, user: &NewUser<'_>) -> Result<bool>;

    /// The account with this (lowercase) username.
    async fn credentials(&self, username: &str) -> Result<Option<Credentials>>;

    /// The user with this id.
    async fn credentials_by_id(&self, user_id: &str) -> Result<Option<Credentials>>;

    async fn set_password(&self, user_id: &str, password_hash: &str) -> Result<()>;

    /// Renames the user (what people see; the username never changes).
    /// Messages already sent keep the name they were sent under.
    async fn set_display_name(&self, user_id: &str, name: &str) -> Result<()>;

    /// Stores a session by the SHA-256 of its token.
    async fn create_session(&self, session: &NewSession<'_>) -> Result<()>;

    /// The live session whose token has this hash.
    async fn session(&self, token_hash: &str, now_secs: u64) -> Result<Option<SessionRecord>>;

    /// Revokes one session. `false`: it was not live.
    async fn revoke_session(&self, id: &str, now_ms: i64) -> Result<bool>;

    /// Revokes every live session of `user_id` but `keep`; returns their ids.
    async fn revoke_sessions_except(
        &self,
        user_id: &str,
        keep: &str,
        now_ms: i64,
    ) -> Result<Vec<String>>;

    /// Sessions revoked at or after `since_ms` (for nodes that missed the
    /// broker's event).
    async fn revoked_since(&self, since_ms: i64) -> Result<Vec<String>>;

    /// Forgets sessions that expired before `expired_before` (seconds) or
    /// were revoked before `revoked_before_ms`. Returns how many.
    async fn prune_sessions(&self, expired_before: u64, revoked_before_ms: i64) -> Result<u64>;

    /// Keeps a WebSocket ticket (by its hash) for a session until
    /// `expires_at_ms`, and forgets expired ones.
    async fn save_ticket(
        &self,
        hash: &str,
        session_id: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<()>;

    /// Redeems a ticket once: its session, if the ticket has not expired and
    /// the session is still live. Gone afterwards either way.
    async fn take_ticket(
        &self,
        hash: &str,
        now_ms: i64,
        now_secs: u64,
    ) -> Result<Option<SessionRecord>>;

    /// Creates a room owned by `owner_id`. `false`: the name is taken.
    async fn create_room(
        &self,
        name: &str,
        visibility: Visibility,
        owner_id: &str,
        now_ms: i64,
    ) -> Result<bool>;

    /// The room's visibility and the user's role in it; `None` if the room
    /// does not exist.
    async fn room_access(&self, room: &str, user_id: &str) -> Result<Option<RoomAccess>>;

    /// Makes `user_id` a member with `role`, or changes their role.
    async fn set_role(&self, room: &str, user_id: &str, role: Role, now_ms: i64) -> Result<()>;

    /// Makes `user_id` a member of `room` unless they are one (with
    /// whatever role), forgetting a departure. `true`: they were not.
    async fn add_member(&self, room: &str, user_id: &str, now_ms: i64) -> Result<bool>;

    /// `add_member` for a device that resumes `room` (it was in it before
    /// it went away), which does not undo a departure recorded meanwhile:
    /// `None` if there is one (they left, or were removed, on another
    /// device), else whether they were not a member.
    async fn resume_member(&self, room: &str, user_id: &str, now_ms: i64) -> Result<Option<bool>>;

    /// Invites `user_id` to `room` on behalf of `by`: a member whose
    /// invitation is pending until they join the room (`accept_invitation`)
    /// or leave it (declining). `false`: they were a member already.
    async fn invite_member(&self, room: &str, user_id: &str, by: &str, now_ms: i64)
    -> Result<bool>;

    /// `user_id` joined `room`: an invitation to it is taken up. `true`:
    /// there was one.
    async fn accept_invitation(&self, room: &str, user_id: &str) -> Result<bool>;

    /// The rooms `user_id` is invited to and has not joined yet, each with
    /// who invited them.
    async fn invitations(&self, user_id: &str) -> Result<Vec<(String, User)>>;

    /// Ends `user_id`'s membership of `room`, recording why (`Departure`,
    /// read back by `Store::join_state`) even if they were not a member (a
    /// reader of a public room from before rooms had members). `false`:
    /// they were not a member.
    async fn remove_member(
        &self,
        room: &str,
        user_id: &str,
        why: Departure,
        now_ms: i64,
    ) -> Result<bool>;

    /// What `user_id`, a member, typed in `room` and has not sent (`None`:
    /// nothing). `false`: they are not a member.
    async fn set_draft(&self, room: &str, user_id: &str, draft: Option<&str>) -> Result<bool>;

    /// What of `room` notifies `user_id`, a member. `false`: they are not one.
    async fn set_notify(&self, room: &str, user_id: &str, notify: common::Notify) -> Result<bool>;

    /// The room's members and their roles, owners first.
    async fn room_members(&self, room: &str) -> Result<Vec<common::RoomMember>>;

    /// For each of `rooms`, its members other than `user_id`, in one query:
    /// who a page of direct conversations is with.
    async fn other_members(&self, rooms: &[&str], user_id: &str) -> Result<Vec<(String, User)>>;

    /// Every room the user is a member of, with their role.
    async fn memberships(&self, user_id: &str) -> Result<Vec<(String, Role)>>;
}
