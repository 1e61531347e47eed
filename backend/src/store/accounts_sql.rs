//! The SQL of `Accounts`, shared by SQLite and PostgreSQL like `sql.rs`.

use super::health::Access;
use super::sql_store::{Dialect, SqlStore, placeholders};
use super::statement::{Columns, Driver, Read, RowsAffected};
use super::{
    Accounts, Credentials, Departure, NewSession, NewUser, Result, RoomAccess, SessionRecord,
    db_seq,
};
use sqlx::Connection;
pub const CREATE_USER: &str = "INSERT INTO users (id, username, display_name, password_hash, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
pub const CREDENTIALS: &str =
    "SELECT id, display_name, username, password_hash FROM users WHERE username = $1";
pub const CREDENTIALS_BY_ID: &str =
    "SELECT id, display_name, username, password_hash FROM users WHERE id = $1";
pub const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2 WHERE id = $1";
pub const SET_DISPLAY_NAME: &str = "UPDATE users SET display_name = $2 WHERE id = $1";
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
/// A member of a public room (joining one makes you one); a role they
/// have already stays.
pub const ADD_MEMBER: &str = "INSERT INTO room_members (room, user_id, role, added_at) \
     VALUES ($1, $2, 'member', $3) ON CONFLICT (room, user_id) DO NOTHING";
pub const INVITE_MEMBER: &str = "INSERT INTO room_members (room, user_id, role, added_at, invited_by) \
     VALUES ($1, $2, 'member', $4, $3) ON CONFLICT (room, user_id) DO NOTHING";
pub const ACCEPT_INVITATION: &str = "UPDATE room_members SET invited_by = NULL \
     WHERE room = $1 AND user_id = $2 AND invited_by IS NOT NULL";
/// An inviter whose account is gone leaves no invitation to show (the
/// room is still theirs to open under "Other rooms").
pub const INVITATIONS: &str = "SELECT m.room, u.id, u.display_name, u.username FROM room_members m \
     JOIN users u ON u.id = m.invited_by WHERE m.user_id = $1 ORDER BY m.added_at, m.room";
pub const REMOVE_MEMBER: &str = "DELETE FROM room_members WHERE room = $1 AND user_id = $2";
pub const RECORD_DEPARTURE: &str = "INSERT INTO departures (room, user_id, why, at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (room, user_id) DO UPDATE SET why = excluded.why, at = excluded.at";
/// `ADD_MEMBER` unless a departure is recorded. (SQLite needs the `WHERE`
/// before an upsert's `ON CONFLICT` after a `SELECT`.)
pub const RESUME_MEMBER: &str = "INSERT INTO room_members (room, user_id, role, added_at) \
     SELECT $1, $2, 'member', $3 WHERE NOT EXISTS \
     (SELECT 1 FROM departures WHERE room = $1 AND user_id = $2) \
     ON CONFLICT (room, user_id) DO NOTHING";
pub const IS_MEMBER: &str = "SELECT COUNT(*) FROM room_members WHERE room = $1 AND user_id = $2";
pub const FORGET_DEPARTURE: &str = "DELETE FROM departures WHERE room = $1 AND user_id = $2";
pub const SET_DRAFT: &str = "UPDATE room_members SET draft = $3 WHERE room = $1 AND user_id = $2";
pub const SET_NOTIFY: &str = "UPDATE room_members SET notify = $3 WHERE room = $1 AND user_id = $2";
pub const ROOM_MEMBERS: &str = "SELECT u.id, u.display_name, u.username, m.role, m.invited_by FROM room_members m \
     JOIN users u ON u.id = m.user_id WHERE m.room = $1 ORDER BY m.added_at, u.id";
/// Followed by the user's parameter and `AND m.room IN (…)`: the rooms'
/// members but one. (Parameters built at run time: see `placeholders`.)
pub const OTHER_MEMBERS: &str = "SELECT m.room, u.id, u.display_name, u.username FROM room_members m \
     JOIN users u ON u.id = m.user_id WHERE m.user_id <> ";
pub const MEMBERSHIPS: &str = "SELECT room, role FROM room_members WHERE user_id = $1";

/// A session and its user, in `SESSION_COLUMNS` order.
impl Read for super::SessionRecord {
    fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self> {
        let id = columns.next()?;
        let expires_at: i64 = columns.next()?;
        let user = common::User {
            id: columns.next()?,
            name: columns.next()?,
            username: columns.next()?,
        };
        Ok(super::SessionRecord {
            id,
            user,
            expires_at: expires_at.max(0) as u64,
        })
    }
}

/// A user's credentials, in `CREDENTIALS` order (fields are read in the
/// order they are written).
impl Read for super::Credentials {
    fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self> {
        Ok(super::Credentials {
            user: common::User {
                id: columns.next()?,
                name: columns.next()?,
                username: columns.next()?,
            },
            password_hash: columns.next()?,
        })
    }
}

/// An unknown role in the database (written by a newer version) reads as
/// the least privileged one.
pub fn parse_role(text: &str) -> common::Role {
    common::Role::parse(text).unwrap_or(common::Role::Member)
}

pub fn parse_visibility(text: &str) -> common::Visibility {
    common::Visibility::parse(text).unwrap_or(common::Visibility::Private)
}

/// `Accounts` for every SQL database (see `SqlStore`).
#[async_trait::async_trait]
impl<DB: Dialect> Accounts for SqlStore<DB> {
    async fn create_user(&self, user: &NewUser<'_>) -> Result<bool> {
        let insert = DB::query(CREATE_USER)
            .bind(user.id)
            .bind(user.username)
            .bind(user.display_name)
            .bind(user.password_hash)
            .bind(user.created_at_ms);
        Ok(self.change(insert).await? == 1)
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let select = DB::query(CREDENTIALS).bind(username);
        self.one(select).await
    }

    async fn credentials_by_id(&self, user_id: &str) -> Result<Option<Credentials>> {
        let select = DB::query(CREDENTIALS_BY_ID).bind(user_id);
        self.one(select).await
    }

    async fn set_password(&self, user_id: &str, password_hash: &str) -> Result<()> {
        let update = DB::query(SET_PASSWORD).bind(user_id).bind(password_hash);
        self.change(update).await.map(drop)
    }

    async fn set_display_name(&self, user_id: &str, name: &str) -> Result<()> {
        let update = DB::query(SET_DISPLAY_NAME).bind(user_id).bind(name);
        self.change(update).await.map(drop)
    }

    async fn create_session(&self, session: &NewSession<'_>) -> Result<()> {
        let insert = DB::query(CREATE_SESSION)
            .bind(session.id)
            .bind(session.token_hash)
            .bind(session.user_id)
            .bind(session.created_at_ms)
            .bind(db_seq(session.expires_at));
        self.change(insert).await.map(drop)
    }

    async fn session(&self, token_hash: &str, now_secs: u64) -> Result<Option<SessionRecord>> {
        let statement = session_by_hash();
        let select = DB::query(&statement)
            .bind(token_hash)
            .bind(db_seq(now_secs));
        self.one(select).await
    }

    async fn revoke_session(&self, id: &str, now_ms: i64) -> Result<bool> {
        let update = DB::query(REVOKE_SESSION).bind(id).bind(now_ms);
        Ok(self.change(update).await? > 0)
    }

    async fn revoke_sessions_except(
        &self,
        user_id: &str,
        keep: &str,
        now_ms: i64,
    ) -> Result<Vec<String>> {
        let update = DB::query(REVOKE_OTHERS)
            .bind(user_id)
            .bind(keep)
            .bind(now_ms);
        self.all(Access::Write, update).await
    }

    async fn revoked_since(&self, since_ms: i64) -> Result<Vec<String>> {
        self.all(Access::Read, DB::query(REVOKED_SINCE).bind(since_ms))
            .await
    }

    async fn prune_sessions(&self, expired_before: u64, revoked_before_ms: i64) -> Result<u64> {
        let delete = DB::query(PRUNE_SESSIONS)
            .bind(db_seq(expired_before))
            .bind(revoked_before_ms);
        self.change(delete).await
    }

    async fn save_ticket(
        &self,
        hash: &str,
        session_id: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<()> {
        self.guarded(Access::Write, async |conn| {
            DB::query(FORGET_TICKETS)
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
            DB::query(SAVE_TICKET)
                .bind(hash)
                .bind(session_id)
                .bind(expires_at_ms)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn take_ticket(
        &self,
        hash: &str,
        now_ms: i64,
        now_secs: u64,
    ) -> Result<Option<SessionRecord>> {
        self.guarded(Access::Write, async |conn| {
            let ticket: Option<(String, i64)> = DB::query(TAKE_TICKET)
                .bind(hash)
                .fetch_optional(&mut *conn)
                .await?;
            let Some((session_id, _)) = ticket.filter(|(_, expires_at)| *expires_at >= now_ms)
            else {
                return Ok(None);
            };
            Ok(DB::query(&session_by_id())
                .bind(session_id)
                .bind(db_seq(now_secs))
                .fetch_optional(&mut *conn)
                .await?)
        })
        .await
    }

    async fn create_room(
        &self,
        name: &str,
        visibility: common::Visibility,
        owner_id: &str,
        now_ms: i64,
    ) -> Result<bool> {
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            let created = DB::query(CREATE_ROOM)
                .bind(name)
                .bind(now_ms)
                .bind(owner_id)
                .bind(visibility.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if created {
                DB::query(SET_ROLE)
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
            Ok(created)
        })
        .await
    }

    async fn room_access(&self, room: &str, user_id: &str) -> Result<Option<RoomAccess>> {
        let select = DB::query(ROOM_ACCESS).bind(room).bind(user_id);
        let row: Option<(String, Option<String>, String)> = self.one(select).await?;
        Ok(row.map(|(visibility, role, created_by)| RoomAccess {
            visibility: parse_visibility(&visibility),
            role: role.as_deref().map(parse_role),
            creator: created_by == user_id,
        }))
    }

    async fn set_role(
        &self,
        room: &str,
        user_id: &str,
        role: common::Role,
        now_ms: i64,
    ) -> Result<()> {
        let upsert = DB::query(SET_ROLE)
            .bind(room)
            .bind(user_id)
            .bind(role.as_str())
            .bind(now_ms);
        self.change(upsert).await.map(drop)
    }

    async fn add_member(&self, room: &str, user_id: &str, now_ms: i64) -> Result<bool> {
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            let added = DB::query(ADD_MEMBER)
                .bind(room)
                .bind(user_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            if added {
                DB::query(FORGET_DEPARTURE)
                    .bind(room)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(added)
        })
        .await
    }

    async fn resume_member(&self, room: &str, user_id: &str, now_ms: i64) -> Result<Option<bool>> {
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            let added = DB::query(RESUME_MEMBER)
                .bind(room)
                .bind(user_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            let outcome = if added {
                Some(true)
            } else {
                // A member already, or departed.
                let member: i64 = DB::query(IS_MEMBER)
                    .bind(room)
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?;
                (member > 0).then_some(false)
            };
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    async fn invite_member(
        &self,
        room: &str,
        user_id: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let insert = DB::query(INVITE_MEMBER)
            .bind(room)
            .bind(user_id)
            .bind(by)
            .bind(now_ms);
        Ok(self.change(insert).await? > 0)
    }

    async fn accept_invitation(&self, room: &str, user_id: &str) -> Result<bool> {
        let update = DB::query(ACCEPT_INVITATION).bind(room).bind(user_id);
        Ok(self.change(update).await? > 0)
    }

    async fn invitations(&self, user_id: &str) -> Result<Vec<(String, common::User)>> {
        let rows: Vec<(String, String, String, Option<String>)> = self
            .all(Access::Read, DB::query(INVITATIONS).bind(user_id))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(room, id, name, username)| (room, common::User { id, name, username }))
            .collect())
    }

    async fn remove_member(
        &self,
        room: &str,
        user_id: &str,
        why: Departure,
        now_ms: i64,
    ) -> Result<bool> {
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            let removed = DB::query(REMOVE_MEMBER)
                .bind(room)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            DB::query(RECORD_DEPARTURE)
                .bind(room)
                .bind(user_id)
                .bind(why.as_str())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(removed)
        })
        .await
    }

    async fn set_draft(&self, room: &str, user_id: &str, draft: Option<&str>) -> Result<bool> {
        let update = DB::query(SET_DRAFT).bind(room).bind(user_id).bind(draft);
        Ok(self.change(update).await? > 0)
    }

    async fn set_notify(&self, room: &str, user_id: &str, notify: common::Notify) -> Result<bool> {
        let update = DB::query(SET_NOTIFY)
            .bind(room)
            .bind(user_id)
            .bind(notify.as_str());
        Ok(self.change(update).await? > 0)
    }

    async fn room_members(&self, room: &str) -> Result<Vec<common::RoomMember>> {
        let select = DB::query(ROOM_MEMBERS).bind(room);
        type Row = (String, String, Option<String>, String, Option<String>);
        let rows: Vec<Row> = self.all(Access::Read, select).await?;
        let mut members: Vec<common::RoomMember> = rows
            .into_iter()
            .map(
                |(id, name, username, role, invited_by)| common::RoomMember {
                    user: common::User { id, name, username },
                    role: parse_role(&role),
                    invited: invited_by.is_some(),
                },
            )
            .collect();
        // Stable: by role, then in the order they were added.
        members.sort_by_key(|m| std::cmp::Reverse(m.role));
        Ok(members)
    }

    async fn other_members(
        &self,
        rooms: &[&str],
        user_id: &str,
    ) -> Result<Vec<(String, common::User)>> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let statement = format!(
            "{OTHER_MEMBERS}{} AND m.room IN ({})",
            placeholders::<DB>(1, 1),
            placeholders::<DB>(2, rooms.len())
        );
        let mut select = DB::query(&statement).bind(user_id);
        for room in rooms {
            select = select.bind(*room);
        }
        let rows: Vec<(String, String, String, Option<String>)> =
            self.all(Access::Read, select).await?;
        Ok(rows
            .into_iter()
            .map(|(room, id, name, username)| (room, common::User { id, name, username }))
            .collect())
    }

    async fn memberships(&self, user_id: &str) -> Result<Vec<(String, common::Role)>> {
        let select = DB::query(MEMBERSHIPS).bind(user_id);
        let rows: Vec<(String, String)> = self.all(Access::Read, select).await?;
        Ok(rows
            .into_iter()
            .map(|(room, role)| (room, parse_role(&role)))
            .collect())
    }
}
