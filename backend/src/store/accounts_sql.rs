//! The SQL of `Accounts`, shared by SQLite and PostgreSQL like `sql.rs`.

pub const CREATE_USER: &str = "INSERT INTO users (id, username, display_name, password_hash, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
pub const CREDENTIALS: &str =
    "SELECT id, display_name, username, password_hash FROM users WHERE username = $1";
pub const CREDENTIALS_BY_ID: &str =
    "SELECT id, display_name, username, password_hash FROM users WHERE id = $1";
pub const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
pub const CREATE_SESSION: &str = "INSERT INTO sessions (id, token_hash, user_id, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5)";
const SESSION_COLUMNS: &str = "SELECT s.id, s.expires_at, u.id, u.display_name, u.username \
     FROM sessions s JOIN users u ON u.id = s.user_id";
pub fn session_by_hash() -> String {
    format!(
        "{SESSION_COLUMNS} WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2"
    )
}
pub fn session_by_id() -> String {
    format!("{SESSION_COLUMNS} WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2")
}
pub const REVOKE_SESSION: &str =
    "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
pub const REVOKE_OTHERS: &str = "UPDATE sessions SET revoked_at = $3 \
     WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL RETURNING id";
pub const REVOKED_SINCE: &str = "SELECT id FROM sessions WHERE revoked_at >= $1";
pub const PRUNE_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $2";
pub const SAVE_TICKET: &str =
    "INSERT INTO ws_tickets (hash, session_id, expires_at) VALUES ($1, $2, $3)";
pub const FORGET_TICKETS: &str = "DELETE FROM ws_tickets WHERE expires_at < $1";
/// Deleting is redeeming: two sockets racing for one ticket cannot both win.
pub const TAKE_TICKET: &str =
    "DELETE FROM ws_tickets WHERE hash = $1 RETURNING session_id, expires_at";
/// A deleted room's name may be taken again (its seqs continue).
pub const CREATE_ROOM: &str = "INSERT INTO rooms (name, created_at, created_by, last_seq, visibility) \
     VALUES ($1, $2, $3, 0, $4) ON CONFLICT (name) DO UPDATE SET visibility = excluded.visibility, \
     created_at = excluded.created_at, created_by = excluded.created_by, topic = '', \
     deleted_at = NULL WHERE rooms.visibility = 'deleted'";
pub const ROOM_ACCESS: &str = "SELECT r.visibility, m.role, r.created_by FROM rooms r \
     LEFT JOIN room_members m ON m.room = r.name AND m.user_id = $2 \
     WHERE r.name = $1 AND r.visibility <> 'deleted'";
pub const SET_ROLE: &str = "INSERT INTO room_members (room, user_id, role, added_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (room, user_id) DO UPDATE SET role = excluded.role";
pub const REMOVE_MEMBER: &str = "DELETE FROM room_members WHERE room = $1 AND user_id = $2";
pub const ROOM_MEMBERS: &str = "SELECT u.id, u.display_name, u.username, m.role FROM room_members m \
     JOIN users u ON u.id = m.user_id WHERE m.room = $1 ORDER BY m.added_at, u.id";
/// Followed by `IN (…)`: the rooms' members but one.
pub const OTHER_MEMBERS: &str = "SELECT m.room, u.id, u.display_name, u.username FROM room_members m \
     JOIN users u ON u.id = m.user_id WHERE m.user_id <> ";
pub const MEMBERSHIPS: &str = "SELECT room, role FROM room_members WHERE user_id = $1";

pub type SessionRow = (String, i64, String, String, Option<String>);

pub fn session(row: SessionRow) -> super::SessionRecord {
    let (id, expires_at, user_id, name, username) = row;
    super::SessionRecord {
        id,
        user: common::User {
            id: user_id,
            name,
            username,
        },
        expires_at: expires_at.max(0) as u64,
    }
}

pub type CredentialsRow = (String, String, Option<String>, Option<String>);

pub fn credentials(row: CredentialsRow) -> super::Credentials {
    let (id, name, username, password_hash) = row;
    super::Credentials {
        user: common::User { id, name, username },
        password_hash,
    }
}

/// An unknown role in the database (written by a newer version) reads as
/// the least privileged one.
pub fn role(text: &str) -> common::Role {
    common::Role::parse(text).unwrap_or(common::Role::Member)
}

pub fn visibility(text: &str) -> common::Visibility {
    common::Visibility::parse(text).unwrap_or(common::Visibility::Private)
}

/// Implements `Accounts` for `$store` (see `sql::impl_store!`).
macro_rules! impl_accounts {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Accounts for $store {
            async fn create_user(
                &self,
                user: &$crate::store::NewUser<'_>,
            ) -> $crate::store::Result<bool> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Write, |conn| {
                    sqlx::query(sql::CREATE_USER)
                        .bind(user.id)
                        .bind(user.username)
                        .bind(user.display_name)
                        .bind(user.password_hash)
                        .bind(user.created_at_ms)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected()
                        == 1
                })
            }

            async fn credentials(
                &self,
                username: &str,
            ) -> $crate::store::Result<Option<$crate::store::Credentials>> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Read, |conn| {
                    let row: Option<sql::CredentialsRow> = sqlx::query_as(sql::CREDENTIALS)
                        .bind(username)
                        .fetch_optional(&mut *conn)
                        .await?;
                    row.map(sql::credentials)
                })
            }

            async fn credentials_by_id(
                &self,
                user_id: &str,
            ) -> $crate::store::Result<Option<$crate::store::Credentials>> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Read, |conn| {
                    let row: Option<sql::CredentialsRow> = sqlx::query_as(sql::CREDENTIALS_BY_ID)
                        .bind(user_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    row.map(sql::credentials)
                })
            }

            async fn set_password(
                &self,
                user_id: &str,
                password_hash: &str,
            ) -> $crate::store::Result<()> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Write, |conn| {
                    sqlx::query(sql::SET_PASSWORD)
                        .bind(user_id)
                        .bind(password_hash)
                        .execute(&mut *conn)
                        .await?;
                })
            }

            async fn create_session(
                &self,
                id: &str,
                token_hash: &str,
                user_id: &str,
                now_ms: i64,
                expires_at: u64,
            ) -> $crate::store::Result<()> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::db_seq;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Write, |conn| {
                    sqlx::query(sql::CREATE_SESSION)
                        .bind(id)
                        .bind(token_hash)
                        .bind(user_id)
                        .bind(now_ms)
                        .bind(db_seq(expires_at))
                        .execute(&mut *conn)
                        .await?;
                })
            }

            async fn session(
                &self,
                token_hash: &str,
                now_secs: u64,
            ) -> $crate::store::Result<Option<$crate::store::SessionRecord>> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::db_seq;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Read, |conn| {
                    let row: Option<sql::SessionRow> = sqlx::query_as(&sql::session_by_hash())
                        .bind(token_hash)
                        .bind(db_seq(now_secs))
                        .fetch_optional(&mut *conn)
                        .await?;
                    row.map(sql::session)
                })
            }

            async fn revoke_session(&self, id: &str, now_ms: i64) -> $crate::store::Result<bool> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Write, |conn| {
                    sqlx::query(sql::REVOKE_SESSION)
                        .bind(id)
                        .bind(now_ms)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected()
                        > 0
                })
            }

            async fn revoke_sessions_except(
                &self,
                user_id: &str,
                keep: &str,
                now_ms: i64,
            ) -> $crate::store::Result<Vec<String>> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Write, |conn| {
                    sqlx::query_scalar(sql::REVOKE_OTHERS)
                        .bind(user_id)
                        .bind(keep)
                        .bind(now_ms)
                        .fetch_all(&mut *conn)
                        .await?
                })
            }

            async fn revoked_since(&self, since_ms: i64) -> $crate::store::Result<Vec<String>> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Read, |conn| {
                    sqlx::query_scalar(sql::REVOKED_SINCE)
                        .bind(since_ms)
                        .fetch_all(&mut *conn)
                        .await?
                })
            }

            async fn prune_sessions(
                &self,
                expired_before: u64,
                revoked_before_ms: i64,
            ) -> $crate::store::Result<u64> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::db_seq;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Write, |conn| {
                    sqlx::query(sql::PRUNE_SESSIONS)
                        .bind(db_seq(expired_before))
                        .bind(revoked_before_ms)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected()
                })
            }

            async fn save_ticket(
                &self,
                hash: &str,
                session_id: &str,
                expires_at_ms: i64,
                now_ms: i64,
            ) -> $crate::store::Result<()> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Write, |conn| {
                    sqlx::query(sql::FORGET_TICKETS)
                        .bind(now_ms)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query(sql::SAVE_TICKET)
                        .bind(hash)
                        .bind(session_id)
                        .bind(expires_at_ms)
                        .execute(&mut *conn)
                        .await?;
                })
            }

            async fn take_ticket(
                &self,
                hash: &str,
                now_ms: i64,
                now_secs: u64,
            ) -> $crate::store::Result<Option<$crate::store::SessionRecord>> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::db_seq;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Write, |conn| {
                    let ticket: Option<(String, i64)> = sqlx::query_as(sql::TAKE_TICKET)
                        .bind(hash)
                        .fetch_optional(&mut *conn)
                        .await?;
                    match ticket {
                        Some((session_id, expires_at)) if expires_at >= now_ms => {
                            let row: Option<sql::SessionRow> =
                                sqlx::query_as(&sql::session_by_id())
                                    .bind(session_id)
                                    .bind(db_seq(now_secs))
                                    .fetch_optional(&mut *conn)
                                    .await?;
                            row.map(sql::session)
                        }
                        _ => None,
                    }
                })
            }

            async fn create_room(
                &self,
                name: &str,
                visibility: common::Visibility,
                owner_id: &str,
                now_ms: i64,
            ) -> $crate::store::Result<bool> {
                use sqlx::Connection;
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Write, |conn| {
                    let mut tx = conn.begin().await?;
                    let created = sqlx::query(sql::CREATE_ROOM)
                        .bind(name)
                        .bind(now_ms)
                        .bind(owner_id)
                        .bind(visibility.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    if created {
                        sqlx::query(sql::SET_ROLE)
                            .bind(name)
                            .bind(owner_id)
                            .bind(common::Role::Owner.as_str())
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await?;
                    } else {
                        tx.rollback().await?;
                    }
                    created
                })
            }

            async fn room_access(
                &self,
                room: &str,
                user_id: &str,
            ) -> $crate::store::Result<Option<$crate::store::RoomAccess>> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Read, |conn| {
                    let row: Option<(String, Option<String>, String)> =
                        sqlx::query_as(sql::ROOM_ACCESS)
                            .bind(room)
                            .bind(user_id)
                            .fetch_optional(&mut *conn)
                            .await?;
                    row.map(|(visibility, role, created_by)| $crate::store::RoomAccess {
                        visibility: sql::visibility(&visibility),
                        role: role.as_deref().map(sql::role),
                        creator: created_by == user_id,
                    })
                })
            }

            async fn set_role(
                &self,
                room: &str,
                user_id: &str,
                role: common::Role,
                now_ms: i64,
            ) -> $crate::store::Result<()> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Write, |conn| {
                    sqlx::query(sql::SET_ROLE)
                        .bind(room)
                        .bind(user_id)
                        .bind(role.as_str())
                        .bind(now_ms)
                        .execute(&mut *conn)
                        .await?;
                })
            }

            async fn remove_member(
                &self,
                room: &str,
                user_id: &str,
            ) -> $crate::store::Result<bool> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Write, |conn| {
                    sqlx::query(sql::REMOVE_MEMBER)
                        .bind(room)
                        .bind(user_id)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected()
                        > 0
                })
            }

            async fn room_members(
                &self,
                room: &str,
            ) -> $crate::store::Result<Vec<(common::User, common::Role)>> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Read, |conn| {
                    let rows: Vec<(String, String, Option<String>, String)> =
                        sqlx::query_as(sql::ROOM_MEMBERS)
                            .bind(room)
                            .fetch_all(&mut *conn)
                            .await?;
                    let mut members: Vec<(common::User, common::Role)> = rows
                        .into_iter()
                        .map(|(id, name, username, role)| {
                            (common::User { id, name, username }, sql::role(&role))
                        })
                        .collect();
                    // Stable: by role, then in the order they were added.
                    members.sort_by(|a, b| b.1.cmp(&a.1));
                    members
                })
            }

            async fn other_members(
                &self,
                rooms: &[&str],
                user_id: &str,
            ) -> $crate::store::Result<Vec<(String, common::User)>> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                if rooms.is_empty() {
                    return Ok(Vec::new());
                }
                guarded!(self, Access::Read, |conn| {
                    let mut query = sqlx::QueryBuilder::new(sql::OTHER_MEMBERS);
                    query.push_bind(user_id).push(" AND m.room IN (");
                    let mut names = query.separated(", ");
                    for room in rooms {
                        names.push_bind(*room);
                    }
                    query.push(")");
                    let rows: Vec<(String, String, String, Option<String>)> =
                        query.build_query_as().fetch_all(&mut *conn).await?;
                    rows.into_iter()
                        .map(|(room, id, name, username)| {
                            (room, common::User { id, name, username })
                        })
                        .collect()
                })
            }

            async fn memberships(
                &self,
                user_id: &str,
            ) -> $crate::store::Result<Vec<(String, common::Role)>> {
                use $crate::store::accounts_sql as sql;
                use $crate::store::health::Access;
                use $crate::store::health::guarded;
                guarded!(self, Access::Read, |conn| {
                    let rows: Vec<(String, String)> = sqlx::query_as(sql::MEMBERSHIPS)
                        .bind(user_id)
                        .fetch_all(&mut *conn)
                        .await?;
                    rows.into_iter()
                        .map(|(room, role)| (room, sql::role(&role)))
                        .collect()
                })
            }
        }
    };
}

pub(crate) use impl_accounts;
