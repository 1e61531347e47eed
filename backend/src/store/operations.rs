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
use super::statement::{Columns, Driver, Read, RowsAffected};
use super::sql_store::{Dialect, SqlStore};
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
pub const DELETE_ROOM_READ_MARKS: &str = "DELETE FROM read_marks WHERE room = $1";
pub const DELETE_ROOM_REACTIONS: &str = "DELETE FROM reactions WHERE room = $1";
pub const DELETE_USER_MESSAGES: &str = "DELETE FROM messages WHERE user_id = $1";
pub const DELETE_USER_MESSAGES_IN: &str = "DELETE FROM messages WHERE user_id = $1 AND room = $2";
/// Their reactions go with their messages (the events that made them did).
pub const DELETE_USER_REACTIONS: &str = "DELETE FROM reactions WHERE user_id = $1";
pub const DELETE_USER_REACTIONS_IN: &str = "DELETE FROM reactions WHERE user_id = $1 AND room = $2";

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

/// `Operations` for every SQL database (see `SqlStore`).
#[async_trait::async_trait]
impl<DB: Dialect> crate::store::Operations for SqlStore<DB> {
    async fn create_api_key(
        &self,
        key: &crate::store::ApiKey,
        key_hash: &str,
    ) -> crate::store::Result<()> {
        self.guarded(Access::Write, async |conn| {
            DB::query(CREATE_KEY)
                .bind(&key.id)
                .bind(key_hash)
                .bind(&key.name)
                .bind(key.rooms.to_text())
                .bind(key.created_at)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn api_key(&self, key_hash: &str) -> crate::store::Result<Option<crate::store::ApiKey>> {
        self.guarded(Access::Read, async |conn| {
            let query = format!("{} WHERE key_hash = $1 AND revoked_at IS NULL", KEY_COLUMNS);
            let row: Option<ApiKey> = DB::query(&query)
                .bind(key_hash)
                .fetch_optional(&mut *conn)
                .await?;
            Ok(row)
        })
        .await
    }

    async fn revoke_api_key(&self, id: &str, now_ms: i64) -> crate::store::Result<bool> {
        self.guarded(Access::Write, async |conn| {
            Ok(DB::query(REVOKE_KEY)
                .bind(id)
                .bind(now_ms)
                .execute(&mut *conn)
                .await?
                .rows_affected()
                > 0)
        })
        .await
    }

    async fn api_keys(&self) -> crate::store::Result<Vec<crate::store::ApiKey>> {
        self.guarded(Access::Read, async |conn| {
            let query = format!("{} ORDER BY created_at, id", KEY_COLUMNS);
            Ok(DB::query(&query).fetch_all(&mut *conn).await?)
        })
        .await
    }

    async fn find_users(
        &self,
        prefix: &str,
        limit: u32,
    ) -> crate::store::Result<Vec<crate::store::UserSummary>> {
        self.guarded(Access::Read, async |conn| {
            let pattern = crate::store::sql::prefix_pattern(&prefix.to_lowercase());
            let rows: Vec<(String, String, Option<String>, i64)> = DB::query(FIND_USERS)
                .bind(pattern)
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(id, name, username, created_at)| crate::store::UserSummary {
                        user: common::User { id, name, username },
                        created_at,
                    },
                )
                .collect())
        })
        .await
    }

    async fn delete_room(&self, room: &str, now_ms: i64) -> crate::store::Result<Option<u64>> {
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            let found = DB::query(MARK_ROOM_DELETED)
                .bind(room)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            Ok(if found {
                let messages = DB::query(DELETE_ROOM_MESSAGES)
                    .bind(room)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                for statement in [
                    DELETE_ROOM_MEMBERS,
                    DELETE_ROOM_READ_MARKS,
                    DELETE_ROOM_REACTIONS,
                ] {
                    DB::query(statement).bind(room).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Some(messages)
            } else {
                tx.rollback().await?;
                None
            })
        })
        .await
    }

    async fn deleted_rooms_since(&self, since_ms: i64) -> crate::store::Result<Vec<(String, i64)>> {
        self.guarded(Access::Read, async |conn| {
            Ok(DB::query(DELETED_SINCE)
                .bind(since_ms)
                .fetch_all(&mut *conn)
                .await?)
        })
        .await
    }

    async fn delete_user_messages(
        &self,
        user_id: &str,
        room: Option<&str>,
    ) -> crate::store::Result<u64> {
        self.guarded(Access::Write, async |conn| {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let deleted = match room {
                Some(room) => {
                    DB::query(DELETE_USER_REACTIONS_IN)
                        .bind(user_id)
                        .bind(room)
                        .execute(&mut *tx)
                        .await?;
                    DB::query(DELETE_USER_MESSAGES_IN)
                        .bind(user_id)
                        .bind(room)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                }
                None => {
                    DB::query(DELETE_USER_REACTIONS)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    DB::query(DELETE_USER_MESSAGES)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                }
            };
            // And other people's reactions to the messages now gone.
            DB::query(crate::store::sql::PRUNE_REACTIONS)
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
