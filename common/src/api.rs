//! Bodies of the small HTTP API next to the WebSocket.

use serde::{Deserialize, Serialize};

use crate::User;

/// `POST /api/accounts` request: create an account and sign in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignUpRequest {
    pub username: String,
    pub password: String,
    pub display_name: String,
}

/// `POST /api/session` request: a password sign-in, or (only where the
/// server runs with `--allow-guests`) a guest who gives a display name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SessionRequest {
    Password { username: String, password: String },
    Guest { name: String },
}

/// `POST /api/accounts` and `POST /api/session` response: a session token
/// for `Authorization: Bearer`. It never goes in a URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionResponse {
    pub token: String,
    pub user: User,
}

/// `PUT /api/account/password` request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PasswordChange {
    pub old: String,
    pub new: String,
}

/// `PATCH /api/account` request: what to change (today the display name).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountChange {
    pub display_name: String,
}

/// `GET /api/server`: what a client needs to know before signing in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerInfo {
    /// Whether `POST /api/session {name}` (a guest) is accepted.
    pub allow_guests: bool,
}

/// Who may see and join a room.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed to everyone signed in; anyone may join.
    #[default]
    Public,
    /// Listed to, joined and read by its members only.
    Private,
    /// A conversation between two people (`POST /api/dms`): private, with
    /// no owner or moderator, and nobody else can be invited.
    Direct,
}

/// A member's role in a room.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    /// Invites and removes members.
    Moderator,
    /// Created the room; also promotes and demotes.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Moderator => "moderator",
            Role::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "member" => Some(Role::Member),
            "moderator" => Some(Role::Moderator),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// Owners and moderators invite and remove.
    pub fn moderates(self) -> bool {
        self >= Role::Moderator
    }
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Direct => "direct",
        }
    }

    pub fn parse(text: &str) -> Option<Visibility> {
        match text {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            "direct" => Some(Visibility::Direct),
            _ => None,
        }
    }
}

/// `POST /api/rooms` request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateRoom {
    pub name: String,
    #[serde(default)]
    pub visibility: Visibility,
}

/// `POST /api/rooms/{room}/members` request: invite by username.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Invite {
    pub username: String,
}

/// `PUT /api/rooms/{room}/members/{user_id}` request (owner only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetRole {
    pub role: Role,
}

/// What of a room's messages reach a member as a notification does: a
/// badge that counts, the tab's title, a desktop notification while the
/// tab is hidden. Kept on the server per member (`PUT
/// /api/rooms/{room}/notifications`), so every device of theirs agrees.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Notify {
    /// Every message of others.
    All,
    /// Messages that mention the member's `@username`.
    Mentions,
    /// Nothing: unread messages show as a dot, never a count.
    Mute,
}

impl Notify {
    pub fn as_str(self) -> &'static str {
        match self {
            Notify::All => "all",
            Notify::Mentions => "mentions",
            Notify::Mute => "mute",
        }
    }

    pub fn parse(text: &str) -> Option<Notify> {
        match text {
            "all" => Some(Notify::All),
            "mentions" => Some(Notify::Mentions),
            "mute" => Some(Notify::Mute),
            _ => None,
        }
    }

    /// Until the member says otherwise: everything in a direct
    /// conversation (it is all for them), mentions elsewhere.
    pub fn default_for(room: &str) -> Notify {
        if crate::validate::reserved_room(room) {
            Notify::All
        } else {
            Notify::Mentions
        }
    }
}

/// `PUT /api/rooms/{room}/notifications` request (members only) → `204`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetNotify {
    pub notify: Notify,
}

/// One entry of `GET /api/rooms/{room}/members`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomMember {
    pub user: User,
    pub role: Role,
    /// Invited, and has not joined the room yet (absent: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invited: bool,
}

/// `GET /api/rooms/{room}/files`: one file shared in the room, newest
/// first, with the message it was shared in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SharedFile {
    pub file: crate::FileInfo,
    /// The message it was sent in.
    pub seq: u64,
    pub user: crate::User,
    pub ts: i64,
}

/// `POST /api/ws-ticket` response: a one-time ticket for `/ws?ticket=`,
/// valid for `expires_in_secs`, so the long-lived token never goes in a URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WsTicket {
    pub ticket: String,
    pub expires_in_secs: u64,
}

/// `POST /api/session/handoff` response: the session the server's sign-in
/// page opened, and a first WebSocket ticket for it, so the app's first
/// connection needs no `POST /api/ws-ticket` of its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Handoff {
    pub token: String,
    pub user: User,
    pub ws_ticket: WsTicket,
}

/// One entry of `GET /api/rooms`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomSummary {
    pub name: String,
    /// Distinct users currently in the room.
    pub members: u32,
    #[serde(default)]
    pub visibility: Visibility,
    /// The caller's role, if they are a member (rooms joined without an
    /// invitation have members without a role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// For a direct conversation: the other person, whose name it goes by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<crate::User>,
    /// In a room of the caller's (`role` set): messages of others they
    /// have not read, counted up to 100, as `joined` says them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unread: u32,
    /// Of those, the ones that mention the caller's `@username`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mentions: u32,
    /// In a room of the caller's: what of it notifies them (their choice,
    /// or `Notify::default_for` the room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// The caller is invited to this (private) room and has not joined it
    /// yet: who invited them. Joining takes the invitation up; leaving
    /// (removing yourself) declines it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited_by: Option<crate::User>,
    /// In a room of the caller's: what they typed there and have not sent,
    /// on any device (`PUT /api/rooms/{room}/draft`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<String>,
}

/// `PUT /api/rooms/{room}/draft` request: what is typed and not sent
/// (empty: nothing).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetDraft {
    pub text: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `POST /api/dms` request: talk to `username` in private.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StartDirect {
    pub username: String,
}

/// The name of the direct conversation between two users: the same
/// whoever starts it, and not one a person could choose (see
/// `validate::reserved_room`).
pub fn direct_room(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    // FNV-1a, 64 bits, twice (two seeds): enough to tell conversations
    // apart, and stable across versions (unlike std's hasher).
    let fnv = |seed: u64| {
        let mut hash = seed;
        for byte in first.bytes().chain([0]).chain(second.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    };
    format!(
        "dm-{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x84222325_cbf29ce4)
    )
}

/// `GET /api/search` response: matching messages, newest first, and the
/// cursor of the next page (`before=`), if there may be one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SearchResults {
    pub messages: Vec<crate::ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Every non-2xx API response has this body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    /// A stable, machine-readable code such as `invalid_name`.
    pub error: ApiErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

/// The `error` of an API response: every code the HTTP API answers with,
/// one type for the server that sends them and the clients that read them
/// (the WebSocket's are `ErrorCode`). What each means, endpoint by
/// endpoint: docs/protocol.md.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorCode {
    BadCredentials,
    Busy,
    Forbidden,
    ForbiddenOrigin,
    Guest,
    GuestsDisabled,
    Internal,
    InvalidApiKey,
    InvalidBody,
    InvalidClientId,
    InvalidContent,
    InvalidName,
    InvalidQuery,
    InvalidRole,
    InvalidRoom,
    InvalidTicket,
    InvalidToken,
    InvalidUser,
    InvalidUsername,
    MissingToken,
    NotAMember,
    NotAWebsocketUpgrade,
    NotFound,
    RateLimited,
    RequestTimeout,
    RoomExists,
    QuotaExceeded,
    ServerFull,
    TokenInUrl,
    TooLarge,
    TooManyConnections,
    Unavailable,
    UnknownRoom,
    UnknownUser,
    UsernameTaken,
    WeakPassword,
    /// A code this client version does not know yet.
    #[serde(other)]
    Unknown,
}

impl ApiErrorCode {
    /// Every code the server sends (not `Unknown`, the client's fallback).
    pub const ALL: [ApiErrorCode; 36] = [
        ApiErrorCode::BadCredentials,
        ApiErrorCode::Busy,
        ApiErrorCode::Forbidden,
        ApiErrorCode::ForbiddenOrigin,
        ApiErrorCode::Guest,
        ApiErrorCode::GuestsDisabled,
        ApiErrorCode::Internal,
        ApiErrorCode::InvalidApiKey,
        ApiErrorCode::InvalidBody,
        ApiErrorCode::InvalidClientId,
        ApiErrorCode::InvalidContent,
        ApiErrorCode::InvalidName,
        ApiErrorCode::InvalidQuery,
        ApiErrorCode::InvalidRole,
        ApiErrorCode::InvalidRoom,
        ApiErrorCode::InvalidTicket,
        ApiErrorCode::InvalidToken,
        ApiErrorCode::InvalidUser,
        ApiErrorCode::InvalidUsername,
        ApiErrorCode::MissingToken,
        ApiErrorCode::NotAMember,
        ApiErrorCode::NotAWebsocketUpgrade,
        ApiErrorCode::NotFound,
        ApiErrorCode::RateLimited,
        ApiErrorCode::RequestTimeout,
        ApiErrorCode::RoomExists,
        ApiErrorCode::QuotaExceeded,
        ApiErrorCode::ServerFull,
        ApiErrorCode::TokenInUrl,
        ApiErrorCode::TooLarge,
        ApiErrorCode::TooManyConnections,
        ApiErrorCode::Unavailable,
        ApiErrorCode::UnknownRoom,
        ApiErrorCode::UnknownUser,
        ApiErrorCode::UsernameTaken,
        ApiErrorCode::WeakPassword,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiErrorCode::BadCredentials => "bad_credentials",
            ApiErrorCode::Busy => "busy",
            ApiErrorCode::Forbidden => "forbidden",
            ApiErrorCode::ForbiddenOrigin => "forbidden_origin",
            ApiErrorCode::Guest => "guest",
            ApiErrorCode::GuestsDisabled => "guests_disabled",
            ApiErrorCode::Internal => "internal",
            ApiErrorCode::InvalidApiKey => "invalid_api_key",
            ApiErrorCode::InvalidBody => "invalid_body",
            ApiErrorCode::InvalidClientId => "invalid_client_id",
            ApiErrorCode::InvalidContent => "invalid_content",
            ApiErrorCode::InvalidName => "invalid_name",
            ApiErrorCode::InvalidQuery => "invalid_query",
            ApiErrorCode::InvalidRole => "invalid_role",
            ApiErrorCode::InvalidRoom => "invalid_room",
            ApiErrorCode::InvalidTicket => "invalid_ticket",
            ApiErrorCode::InvalidToken => "invalid_token",
            ApiErrorCode::InvalidUser => "invalid_user",
            ApiErrorCode::InvalidUsername => "invalid_username",
            ApiErrorCode::MissingToken => "missing_token",
            ApiErrorCode::NotAMember => "not_a_member",
            ApiErrorCode::NotAWebsocketUpgrade => "not_a_websocket_upgrade",
            ApiErrorCode::NotFound => "not_found",
            ApiErrorCode::RateLimited => "rate_limited",
            ApiErrorCode::RequestTimeout => "request_timeout",
            ApiErrorCode::RoomExists => "room_exists",
            ApiErrorCode::QuotaExceeded => "quota_exceeded",
            ApiErrorCode::ServerFull => "server_full",
            ApiErrorCode::TokenInUrl => "token_in_url",
            ApiErrorCode::TooLarge => "too_large",
            ApiErrorCode::TooManyConnections => "too_many_connections",
            ApiErrorCode::Unavailable => "unavailable",
            ApiErrorCode::UnknownRoom => "unknown_room",
            ApiErrorCode::UnknownUser => "unknown_user",
            ApiErrorCode::UsernameTaken => "username_taken",
            ApiErrorCode::WeakPassword => "weak_password",
            ApiErrorCode::Unknown => "unknown",
        }
    }
}

/// `POST /api/rooms/{room}/messages` request (with an API key): a message
/// from another system, sent under the key's bot name. `client_id` makes
/// it idempotent, as for a WebSocket `send`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishRequest {
    pub content: String,
    pub client_id: String,
}

/// `POST /api/rooms/{room}/messages` response: where the message is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Published {
    pub seq: u64,
    pub id: String,
}

#[cfg(test)]
mod tests {

    #[test]
    fn api_error_codes_are_their_snake_case_names() {
        for code in ApiErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ApiErrorCode>(&json).unwrap(), code);
        }
        let later: ApiErrorCode = serde_json::from_str("\"some_new_code\"").unwrap();
        assert_eq!(later, ApiErrorCode::Unknown);
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn direct_conversations_and_search_match_the_documented_shapes() {
        let bob = crate::User {
            id: "u2".into(),
            name: "Bob".into(),
            username: Some("bob".into()),
        };
        let summary = RoomSummary {
            name: direct_room("u1", "u2"),
            members: 0,
            visibility: Visibility::Direct,
            role: Some(Role::Member),
            with: Some(bob),
            unread: 3,
            ..RoomSummary::default()
        };
        let wire = serde_json::to_value(&summary).unwrap();
        assert_eq!(wire["unread"], 3);
        assert!(wire.get("mentions").is_none(), "zero is left out");
        assert_eq!(wire["visibility"], "direct");
        assert_eq!(wire["with"]["username"], "bob");
        assert_eq!(
            serde_json::from_value::<RoomSummary>(wire).unwrap(),
            summary
        );
        // Without `with` (an older server), still a summary.
        let plain: RoomSummary =
            serde_json::from_value(json!({"name": "general", "members": 1})).unwrap();
        assert_eq!((plain.with, plain.visibility), (None, Visibility::Public));
        assert_eq!(
            serde_json::from_value::<StartDirect>(json!({"username": "bob"})).unwrap(),
            StartDirect {
                username: "bob".into()
            }
        );
        let found = SearchResults {
            messages: vec![],
            next: Some("0190".into()),
        };
        let wire = serde_json::to_value(&found).unwrap();
        assert_eq!(wire, json!({"messages": [], "next": "0190"}));
        assert_eq!(
            serde_json::from_value::<SearchResults>(wire).unwrap(),
            found
        );
    }

    /// What notifies: its wire names (the API's and the database's), and
    /// the default of each kind of room.
    #[test]
    fn notify_levels_are_their_names_and_default_by_kind_of_room() {
        for notify in [Notify::All, Notify::Mentions, Notify::Mute] {
            let json = serde_json::to_string(&notify).unwrap();
            assert_eq!(json, format!("\"{}\"", notify.as_str()));
            assert_eq!(Notify::parse(notify.as_str()), Some(notify));
        }
        assert_eq!(Notify::parse("loudly"), None);
        assert_eq!(Notify::default_for("general"), Notify::Mentions);
        assert_eq!(Notify::default_for(&direct_room("a", "b")), Notify::All);
        let listed = RoomSummary {
            name: "general".into(),
            notify: Some(Notify::Mute),
            ..RoomSummary::default()
        };
        let wire = serde_json::to_value(&listed).unwrap();
        assert_eq!(wire["notify"], "mute");
        let other = serde_json::to_value(RoomSummary::default()).unwrap();
        assert!(other.get("notify").is_none(), "left out where not a member");
    }

    #[test]
    fn a_direct_room_is_the_same_whoever_starts_it_and_a_reserved_name() {
        let name = direct_room("alice-id", "bob-id");
        assert_eq!(name, direct_room("bob-id", "alice-id"));
        assert_ne!(name, direct_room("alice-id", "carol-id"));
        assert_ne!(
            direct_room("ab", "c"),
            direct_room("a", "bc"),
            "ids are delimited"
        );
        assert!(crate::validate::room_name(&name).is_ok());
        assert!(crate::validate::reserved_room(&name));
    }
}
