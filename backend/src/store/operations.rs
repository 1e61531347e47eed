//! The store's third part: what operators do with `hearth admin` (find
//! users, delete a room or a user's messages) and the API keys that other
//! systems publish with (`POST /api/rooms/{room}/messages`). Like
//! `accounts.rs`, one trait with the SQL shared by both stores.
//!
//! A deleted room keeps its row, marked `visibility = 'deleted'`, and its
//! `last_seq`: every query that shows or opens rooms skips it, and a room
//! created later under the same name continues its seqs. So a seq is never
//! reused, even by a node that still holds the old room in memory.

use async_trait::async_trait;
use common::User;

use super::Result;
use super::health::Access;
use super::sql_store::{Dialect, SqlStore};
use super::statement::{Columns, Driver, Read, RowsAffected};
use sqlx::Connection;

/// Which rooms an API key may post to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomScope {
    /// `*`: every room, present and future.
    All,
    /// These rooms (canonical names) only.
    Only(Vec<String>),
}

impl RoomScope {
    /// `*`, or room names separated by commas or spaces (case does not
    /// matter). `None` if a name is not a valid room name or none is given.
    pub fn parse(text: &str) -> Option<RoomScope> {
        if text.trim() == "*" {
            return Some(RoomScope::All);
        }
        let mut rooms: Vec<String> = text
            .split([',', ' '])
            .filter(|name| !name.is_empty())
            .map(common::validate::canonical_room)
            .collect();
        if rooms.is_empty()
            || rooms
                .iter()
                .any(|room| common::validate::room_name(room).is_err())
        {
            return None;
        }
        rooms.sort();
        rooms.dedup();
        Some(RoomScope::Only(rooms))
    }

    /// `room` is canonical (lowercase).
    pub fn allows(&self, room: &str) -> bool {
        match self {
            RoomScope::All => true,
            RoomScope::Only(rooms) => rooms.binary_search_by(|r| r.as_str().cmp(room)).is_ok(),
        }
    }

    /// As stored, and as `parse` reads it back.
    pub fn to_text(&self) -> String {
        match self {
            RoomScope::All => "*".to_owned(),
            RoomScope::Only(rooms) => rooms.join(" "),
        }
    }
}

/// An API key, as the store keeps it (the key itself is only hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    /// The name its messages are sent under (see `ApiKey::bot`).
    pub name: String,
    pub rooms: RoomScope,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    /// The identity its messages carry: keys with the same name speak as
    /// the same bot (so `client_id`s are shared, and a rotated key keeps
    /// deduplicating).
    pub fn bot(&self) -> User {
        User {
            id: format!("{}{}", common::BOT_ID_PREFIX, self.name),
            name: self.name.clone(),
            username: None,
        }
    }
}

/// An account as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub user: User,
    pub created_at: i64,
}

#[async_trait]
pub trait Operations: Send + Sync + 'static {
    async fn create_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<()>;

    /// The live (not revoked) key with this hash.
    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>>;

    /// `false`: no live key has this id.
    async fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<bool>;

    /// Every key, revoked ones too, oldest first.
    async fn api_keys(&self) -> Result<Vec<ApiKey>>;

    /// Accounts and guests whose username or display name starts with
    /// `prefix` (case-insensitive; empty: everyone), oldest first.
    async fn find_users(&self, prefix: &str, limit: u32) -> Result<Vec<UserSummary>>;

    /// Deletes the room's messages, members and read positions, and the
    /// room. `None`: there is no such room; otherwise how many messages
    /// were deleted.
    async fn delete_room(&self, room: &str, now_ms: i64) -> Result<Option<u64>>;

    /// Rooms deleted at or after `since_ms`, with when each was created:
    /// every node polls this and unloads them, so nobody shares a deleted
    /// room's presence or typing.
    async fn deleted_rooms_since(&self, since_ms: i64) -> Result<Vec<(String, i64)>>;

    /// Deletes what `user_id` sent, in `room` or everywhere. Returns how
    /// many messages were deleted.
    async fn delete_user_messages(&self, user_id: &str, room: Option<&str>) -> Result<u64>;
}

pub const CREATE_KEY: &str = "INSERT INTO api_keys (id, key_hash, name, rooms, created_at) \
     VALUES ($1, $2, $3, $4, $5)";
pub const KEY_COLUMNS: &str = "SELECT id, name, rooms, created_at, revoked_at FROM api_keys";
pub const REVOKE_KEY: &str =
    "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
pub const FIND_USERS: &str = "SELECT id, display_name, username, created_at FROM users \
     WHERE username LIKE $1 ESCAPE '\\' OR lower(display_name) LIKE $1 ESCAPE '\\' \
     ORDER BY created_at, id LIMIT $2";
/// A deleted room keeps only what its seqs need: its name and `last_seq`.
pub const MARK_ROOM_DELETED: &str = "UPDATE rooms SET visibility = 'deleted', topic = '', \
     created_by = '', deleted_at = $2 WHERE name = $1 AND visibility <> 'deleted'";
pub const DELETED_SINCE: &str =
    "SELECT name, created_at FROM rooms WHERE visibility = 'deleted' AND deleted_at >= $1";
pub const DELETE_ROOM_MESSAGES: &str = "DELETE FROM messages WHERE room = $1";
pub const DELETE_ROOM_MEMBERS: &str = "DELETE FROM room_members WHERE room = $1";
pub const DELETE_ROOM_DEPARTURES: &str = "DELETE FROM departures WHERE room = $1";
pub const DELETE_ROOM_READ_MARKS: &str = "DELETE FROM read_marks WHERE room = $1";
pub const DELETE_ROOM_REACTIONS: &str = "DELETE FROM reactions WHERE room = $1";
/// Sent or not: their bytes go with the next sweep (`Uploads::sweep_files`).
pub const DELETE_ROOM_FILES: &str = "DELETE FROM files WHERE room = $1";
pub const DELETE_USER_MESSAGES: &str = "DELETE FROM messages WHERE user_id = $1";
pub const DELETE_USER_MESSAGES_IN: &str = "DELETE FROM messages WHERE user_id = $1 AND room = $2";
/// Their reactions go with their messages (the events that made them did).
pub const DELETE_USER_REACTIONS: &str = "DELETE FROM reactions WHERE user_id = $1";
pub const DELETE_USER_REACTIONS_IN: &str = "DELETE FROM reactions WHERE user_id = $1 AND room = $2";
/// Their files go too: those of their messages, and those not sent yet.
pub const DELETE_USER_FILES: &str = "DELETE FROM files WHERE uploader = $1";
pub const DELETE_USER_FILES_IN: &str = "DELETE FROM files WHERE uploader = $1 AND room = $2";

/// An API key, in `KEY_COLUMNS` order (fields are read in the order they
/// are written).
impl Read for ApiKey {
    fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self> {
        Ok(ApiKey {
            id: columns.next()?,
            name: columns.next()?,
            // Written by `to_text`; anything else (a hand edit) allows nothing.
            rooms: RoomScope::parse(&columns.next::<String>()?)
                .unwrap_or(RoomScope::Only(Vec::new())),
            created_at: columns.next()?,
            revoked_at: columns.next()?,
        })
    }
}

/// A user, in `FIND_USERS` order (fields are read in the order they are
/// written).
impl Read for UserSummary {
    fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self> {
        Ok(UserSummary {
            user: User {
                id: columns.next()?,
                name: columns.next()?,
                username: columns.next()?,
            },
            created_at: columns.next()?,
        })
    }
}

/// `Operations` for every SQL database (see `SqlStore`).
#[async_trait::async_trait]
impl<DB: Dialect> Operations for SqlStore<DB> {
    async fn create_api_key(&self, key: &ApiKey, key_hash: &str) -> Result<()> {
        let insert = DB::query(CREATE_KEY)
            .bind(&key.id)
            .bind(key_hash)
            .bind(&key.name)
            .bind(key.rooms.to_text())
            .bind(key.created_at);
        self.change(insert).await.map(drop)
    }

    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let statement = format!("{KEY_COLUMNS} WHERE key_hash = $1 AND revoked_at IS NULL");
        self.one(DB::query(&statement).bind(key_hash)).await
    }

    async fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<bool> {
        let update = DB::query(REVOKE_KEY).bind(id).bind(now_ms);
        Ok(self.change(update).await? > 0)
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let statement = format!("{KEY_COLUMNS} ORDER BY created_at, id");
        self.all(Access::Read, DB::query(&statement)).await
    }

    async fn find_users(&self, prefix: &str, limit: u32) -> Result<Vec<UserSummary>> {
        let pattern = super::sql::prefix_pattern(&prefix.to_lowercase());
        let select = DB::query(FIND_USERS).bind(pattern).bind(i64::from(limit));
        self.all(Access::Read, select).await
    }

    async fn delete_room(&self, room: &str, now_ms: i64) -> Result<Option<u64>> {
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            let mark = DB::query(MARK_ROOM_DELETED).bind(room).bind(now_ms);
            if mark.execute(&mut *tx).await?.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            let delete = DB::query(DELETE_ROOM_MESSAGES).bind(room);
            let messages = delete.execute(&mut *tx).await?.rows_affected();
            for statement in [
                DELETE_ROOM_MEMBERS,
                DELETE_ROOM_DEPARTURES,
                DELETE_ROOM_READ_MARKS,
                DELETE_ROOM_REACTIONS,
                DELETE_ROOM_FILES,
            ] {
                DB::query(statement).bind(room).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(Some(messages))
        })
        .await
    }

    async fn deleted_rooms_since(&self, since_ms: i64) -> Result<Vec<(String, i64)>> {
        self.all(Access::Read, DB::query(DELETED_SINCE).bind(since_ms))
            .await
    }

    async fn delete_user_messages(&self, user_id: &str, room: Option<&str>) -> Result<u64> {
        let (reactions, files, messages) = match room {
            Some(_) => (
                DELETE_USER_REACTIONS_IN,
                DELETE_USER_FILES_IN,
                DELETE_USER_MESSAGES_IN,
            ),
            None => (
                DELETE_USER_REACTIONS,
                DELETE_USER_FILES,
                DELETE_USER_MESSAGES,
            ),
        };
        // `$1` the user, and `$2` the room where there is one.
        let of_user = |statement| {
            let query = DB::query(statement).bind(user_id);
            match room {
                Some(room) => query.bind(room),
                None => query,
            }
        };
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            of_user(reactions).execute(&mut *tx).await?;
            of_user(files).execute(&mut *tx).await?;
            let deleted = of_user(messages).execute(&mut *tx).await?.rows_affected();
            // And other people's reactions to the messages now gone.
            DB::query(super::sql::PRUNE_REACTIONS)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(deleted)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::RoomScope;

    #[test]
    fn scopes_parse_normalize_and_allow_only_their_rooms() {
        assert_eq!(RoomScope::parse(" * "), Some(RoomScope::All));
        let scope = RoomScope::parse("Alerts, ops  deploys,ops").unwrap();
        assert_eq!(scope.to_text(), "alerts deploys ops");
        assert_eq!(RoomScope::parse(&scope.to_text()), Some(scope.clone()));
        assert!(scope.allows("ops") && scope.allows("alerts"));
        assert!(!scope.allows("general") && !scope.allows("op"));
        assert!(RoomScope::All.allows("anything"));
        assert_eq!(RoomScope::parse(""), None);
        assert_eq!(RoomScope::parse("ok, not/ok"), None);
    }
}
