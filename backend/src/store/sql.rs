//! The store's SQL, shared by SQLite and PostgreSQL: both accept `$n`
//! placeholders, `ON CONFLICT` and `RETURNING`. `impl_store!` implements
//! `Store` for a pool type with these statements; each backend module only
//! adds how to connect and migrate.
//!
//! Every call goes through `guarded!`: a deadline, health bookkeeping, and a
//! connection that is discarded unless the call succeeded (see `health.rs`).

/// A deleted room (see `operations.rs`) comes back as a new public room
/// whose seqs continue the old ones.
pub const ENSURE_ROOM: &str = "INSERT INTO rooms (name, created_at, created_by, last_seq) VALUES ($1, $2, $3, 0) \
     ON CONFLICT (name) DO UPDATE SET visibility = 'public', created_at = excluded.created_at, \
     created_by = excluded.created_by WHERE rooms.visibility = 'deleted'";
pub const LAST_SEQ: &str = "SELECT last_seq FROM rooms WHERE name = $1";
/// First statement of an append: takes the room's row lock (PostgreSQL) or
/// the write lock (SQLite) before anything is read, so appends to a room are
/// serialized and a deferred SQLite transaction never has to upgrade a lock.
/// A deleted room (see `operations.rs`) takes no messages.
pub const LOCK_ROOM: &str = "UPDATE rooms SET last_seq = last_seq WHERE name = $1 \
     AND visibility <> 'deleted' RETURNING last_seq";
/// A room's next seq, for one message at a time (see `append_alone`).
pub const NEXT_SEQ: &str = "UPDATE rooms SET last_seq = last_seq + 1 WHERE name = $1 \
     AND visibility <> 'deleted' RETURNING last_seq";
/// Undoes `NEXT_SEQ` in the same transaction (a duplicate `client_id`).
pub const RETURN_SEQ: &str = "UPDATE rooms SET last_seq = last_seq - 1 WHERE name = $1";
pub const FIND_CLIENT_ID: &str = "SELECT room, seq, id, user_id, user_name, content, ts, client_id, username FROM messages \
     WHERE room = $1 AND user_id = $2 AND client_id = $3";
/// Nothing (no row returned) if the user already sent this `client_id` to
/// the room: `messages_client_id` is unique.
pub const INSERT_MESSAGE: &str = "INSERT INTO messages (room, seq, id, user_id, user_name, content, ts, client_id, username) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (room, user_id, client_id) DO NOTHING RETURNING seq";
/// A room with at most this many messages in a batch takes them one at a
/// time (two statements each); more share four statements and a
/// multi-row insert.
pub const ONE_BY_ONE: usize = 2;
/// Followed by the room, then ` AND client_id IN (…)`.
pub const FIND_CLIENT_IDS: &str = "SELECT room, seq, id, user_id, user_name, content, ts, client_id, username \
     FROM messages WHERE room = ";
/// Followed by `VALUES (…), (…)`: the room's new messages, which the
/// duplicate check under the room's lock has shown to be new.
pub const INSERT_MESSAGES: &str =
    "INSERT INTO messages (room, seq, id, user_id, user_name, content, ts, client_id, username) ";
/// Rows per INSERT: 9 parameters each, well under SQLite's and
/// PostgreSQL's limits on parameters per statement.
pub const INSERT_ROWS: usize = 100;
pub const SET_LAST_SEQ: &str = "UPDATE rooms SET last_seq = $2 WHERE name = $1";

/// The positions of a batch's messages, by room, each room's in batch
/// order; rooms in the order they first appear.
pub fn room_groups<'a>(batch: &'a [super::NewMessage<'_>]) -> Vec<(&'a str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        match groups.iter_mut().find(|(room, _)| *room == m.room) {
            Some((_, positions)) => positions.push(i),
            None => groups.push((m.room, vec![i])),
        }
    }
    groups
}

pub const RANGE: &str = "SELECT room, seq, id, user_id, user_name, content, ts, client_id, username FROM messages \
     WHERE room = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4";
pub const PAGE_BEFORE: &str = "SELECT room, seq, id, user_id, user_name, content, ts, client_id, username FROM messages \
     WHERE room = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3";
/// The newest message is found by its primary key `(room, last_seq)`.
pub const ROOMS: &str = "SELECT r.name, r.created_at, r.created_by, r.last_seq, \
     COALESCE((SELECT m.ts FROM messages m WHERE m.room = r.name AND m.seq = r.last_seq), r.created_at), \
     r.visibility FROM rooms r WHERE r.visibility <> 'deleted' ORDER BY r.name";
/// A page of the rooms a user may see. `$3` is a LIKE pattern (a prefix
/// with `_` escaped). Walks the primary key from the cursor.
pub const ROOMS_PAGE: &str = "SELECT r.name, r.created_at, r.created_by, r.last_seq, \
     COALESCE((SELECT m.ts FROM messages m WHERE m.room = r.name AND m.seq = r.last_seq), r.created_at), \
     r.visibility, rm.role FROM rooms r \
     LEFT JOIN room_members rm ON rm.room = r.name AND rm.user_id = $1 \
     WHERE r.name > $2 AND r.name LIKE $3 ESCAPE '\\' \
       AND (r.visibility = 'public' OR (rm.role IS NOT NULL AND r.visibility <> 'deleted')) \
     ORDER BY r.name LIMIT $4";

/// A LIKE pattern for names starting with `prefix`.
pub fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Seqs are contiguous, so "beyond the newest N" is `seq <= last_seq - N`.
pub const PRUNE_COUNT: &str = "DELETE FROM messages WHERE seq <= (SELECT last_seq FROM rooms WHERE rooms.name = messages.room) - $1";
pub const PRUNE_AGE: &str = "DELETE FROM messages WHERE ts < $1";
pub const MARK_READ: &str = "INSERT INTO read_marks (user_id, room, seq) VALUES ($1, $2, $3) \
     ON CONFLICT (user_id, room) DO UPDATE SET seq = CASE WHEN excluded.seq > read_marks.seq \
     THEN excluded.seq ELSE read_marks.seq END";
pub const READ_SEQ: &str = "SELECT seq FROM read_marks WHERE user_id = $1 AND room = $2";
/// Bounded: a badge says "99+" beyond that, and the count stays an index scan.
pub const UNREAD: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM messages \
     WHERE room = $1 AND seq > $2 AND user_id <> $3 LIMIT 100) AS unread";
pub const PROBE: &str = "INSERT INTO hearth_probe (id, at) VALUES (1, $1) \
     ON CONFLICT (id) DO UPDATE SET at = excluded.at";

pub type MessageRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
    String,
    Option<String>,
);

pub fn message(row: MessageRow) -> common::ChatMessage {
    let (room, seq, id, user_id, user_name, content, ts, client_id, username) = row;
    common::ChatMessage {
        room,
        seq: seq as u64,
        id,
        user: common::User {
            id: user_id,
            name: user_name,
            username,
        },
        content,
        ts,
        client_id,
    }
}

/// Runs `$body` with `$conn` bound to a connection checked out of
/// `$self.pool`, under the store's deadline. The connection goes back to the
/// pool only if `$body` succeeded; otherwise it is closed.
macro_rules! guarded {
    ($self:ident, $access:expr, |$conn:ident| $body:expr) => {
        $self
            .health
            .run($access, async {
                let mut checkout =
                    $crate::store::health::Checkout::new($self.pool.acquire().await?);
                let $conn = &mut *checkout;
                let out = $body;
                checkout.keep();
                Ok(out)
            })
            .await
    };
}

pub(crate) use guarded;

/// The sqlx database of a store type, for code shared through the macros.
pub trait HasDatabase {
    type Database: sqlx::Database;
}

impl HasDatabase for super::SqliteStore {
    type Database = sqlx::Sqlite;
}

impl HasDatabase for super::PostgresStore {
    type Database = sqlx::Postgres;
}

/// Implements `Store` for `$store`, whose `pool` field is a sqlx pool and
/// whose `health` field is a `StoreHealth`.
macro_rules! impl_store {
    ($store:ty, $kind:literal) => {
        impl $store {
            /// One message, in two round trips: the room's next seq (which
            /// also locks the room), then the insert, which says by itself
            /// whether the `client_id` was new. Fewer statements than a
            /// batch's for one or two messages, the usual case at light load.
            async fn append_alone<'c>(
                tx: &mut sqlx::Transaction<'c, <Self as $crate::store::sql::HasDatabase>::Database>,
                m: &$crate::store::NewMessage<'_>,
            ) -> std::result::Result<$crate::store::Result<$crate::store::Appended>, sqlx::Error> {
                use $crate::store::sql;
                use $crate::store::{Appended, StoreError};
                let seq: Option<i64> = sqlx::query_scalar(sql::NEXT_SEQ)
                    .bind(m.room)
                    .fetch_optional(&mut **tx)
                    .await?;
                let Some(seq) = seq else {
                    return Ok(Err(StoreError::UnknownRoom(m.room.to_owned())));
                };
                let inserted: Option<i64> = sqlx::query_scalar(sql::INSERT_MESSAGE)
                    .bind(m.room)
                    .bind(seq)
                    .bind(m.id)
                    .bind(&m.user.id)
                    .bind(&m.user.name)
                    .bind(m.content)
                    .bind(m.ts)
                    .bind(m.client_id)
                    .bind(&m.user.username)
                    .fetch_optional(&mut **tx)
                    .await?;
                if inserted.is_none() {
                    let earlier: sql::MessageRow = sqlx::query_as(sql::FIND_CLIENT_ID)
                        .bind(m.room)
                        .bind(&m.user.id)
                        .bind(m.client_id)
                        .fetch_one(&mut **tx)
                        .await?;
                    // Give the seq back. This transaction has held the
                    // room's row since it took the seq, so the seq is still
                    // the room's newest.
                    sqlx::query(sql::RETURN_SEQ)
                        .bind(m.room)
                        .execute(&mut **tx)
                        .await?;
                    return Ok(Ok(Appended {
                        message: sql::message(earlier),
                        duplicate: true,
                    }));
                }
                Ok(Ok(Appended {
                    message: common::ChatMessage {
                        room: m.room.to_owned(),
                        seq: seq as u64,
                        id: m.id.to_owned(),
                        user: m.user.clone(),
                        content: m.content.to_owned(),
                        ts: m.ts,
                        client_id: m.client_id.to_owned(),
                    },
                    duplicate: false,
                }))
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn ensure_room(
                &self,
                name: &str,
                created_by: &str,
                now_ms: i64,
            ) -> $crate::store::Result<u64> {
                use $crate::store::health::Access;
                use $crate::store::sql::{self, guarded};
                guarded!(self, Access::Write, |conn| {
                    sqlx::query(sql::ENSURE_ROOM)
                        .bind(name)
                        .bind(now_ms)
                        .bind(created_by)
                        .execute(&mut *conn)
                        .await?;
                    let last: i64 = sqlx::query_scalar(sql::LAST_SEQ)
                        .bind(name)
                        .fetch_one(&mut *conn)
                        .await?;
                    last as u64
                })
            }

            async fn append_batch(
                &self,
                batch: &[$crate::store::NewMessage<'_>],
            ) -> $crate::store::Result<Vec<$crate::store::Result<$crate::store::Appended>>> {
                use sqlx::Connection;
                use $crate::store::health::Access;
                use $crate::store::sql::{self, guarded};
                use $crate::store::{Appended, StoreError};
                guarded!(self, Access::Write, |conn| {
                    let mut tx = conn.begin().await?;
                    let mut results: Vec<Option<$crate::store::Result<Appended>>> =
                        (0..batch.len()).map(|_| None).collect();
                    // A few round trips per room, whatever the number of
                    // its messages (see `sql::room_groups`).
                    for (room, positions) in sql::room_groups(batch) {
                        if positions.len() <= sql::ONE_BY_ONE {
                            for &i in &positions {
                                let m = &batch[i];
                                results[i] = Some(Self::append_alone(&mut tx, m).await?);
                            }
                            continue;
                        }
                        // Locks the room's row (PostgreSQL) or takes the
                        // write lock (SQLite) before anything is read, so
                        // appends to a room are serialized across nodes.
                        let last: Option<i64> = sqlx::query_scalar(sql::LOCK_ROOM)
                            .bind(room)
                            .fetch_optional(&mut *tx)
                            .await?;
                        let Some(mut last) = last else {
                            // Nothing was changed for them; the others go on.
                            for &i in &positions {
                                results[i] = Some(Err(StoreError::UnknownRoom(room.to_owned())));
                            }
                            continue;
                        };
                        // Which of them this room has already stored.
                        let mut query = sqlx::QueryBuilder::new(sql::FIND_CLIENT_IDS);
                        query.push_bind(room).push(" AND client_id IN (");
                        let mut ids = query.separated(", ");
                        for &i in &positions {
                            ids.push_bind(batch[i].client_id);
                        }
                        query.push(")");
                        // Usually none: these are retries.
                        let stored: Vec<common::ChatMessage> = query
                            .build_query_as::<sql::MessageRow>()
                            .fetch_all(&mut *tx)
                            .await?
                            .into_iter()
                            .map(sql::message)
                            .collect();
                        let mut first_of: std::collections::HashMap<(&str, &str), usize> =
                            std::collections::HashMap::with_capacity(positions.len());
                        let mut fresh = Vec::with_capacity(positions.len());
                        for &i in &positions {
                            let m = &batch[i];
                            let key = (m.user.id.as_str(), m.client_id);
                            let original = match first_of.get(&key) {
                                // The same client_id twice in one batch: the
                                // second is a retry of the first.
                                Some(&first) => match &results[first] {
                                    Some(Ok(first)) => Some(first.message.clone()),
                                    _ => None,
                                },
                                None => stored
                                    .iter()
                                    .find(|s| s.user.id == m.user.id && s.client_id == m.client_id)
                                    .cloned(),
                            };
                            if let Some(message) = original {
                                results[i] = Some(Ok(Appended {
                                    message,
                                    duplicate: true,
                                }));
                                continue;
                            }
                            last += 1;
                            first_of.insert(key, i);
                            fresh.push((i, last));
                            results[i] = Some(Ok(Appended {
                                message: common::ChatMessage {
                                    room: m.room.to_owned(),
                                    seq: last as u64,
                                    id: m.id.to_owned(),
                                    user: m.user.clone(),
                                    content: m.content.to_owned(),
                                    ts: m.ts,
                                    client_id: m.client_id.to_owned(),
                                },
                                duplicate: false,
                            }));
                        }
                        if fresh.is_empty() {
                            continue;
                        }
                        for rows in fresh.chunks(sql::INSERT_ROWS) {
                            let mut insert = sqlx::QueryBuilder::new(sql::INSERT_MESSAGES);
                            insert.push_values(rows, |mut row, &(i, seq)| {
                                let m = &batch[i];
                                row.push_bind(m.room)
                                    .push_bind(seq)
                                    .push_bind(m.id)
                                    .push_bind(&m.user.id)
                                    .push_bind(&m.user.name)
                                    .push_bind(m.content)
                                    .push_bind(m.ts)
                                    .push_bind(m.client_id)
                                    .push_bind(&m.user.username);
                            });
                            insert.build().execute(&mut *tx).await?;
                        }
                        sqlx::query(sql::SET_LAST_SEQ)
                            .bind(room)
                            .bind(last)
                            .execute(&mut *tx)
                            .await?;
                    }
                    // Only a commit that reports success makes an ack, for
                    // every message of the batch alike.
                    tx.commit().await?;
                    results
                        .into_iter()
                        .map(|answer| answer.expect("every message has an answer"))
                        .collect()
                })
            }

            async fn range(
                &self,
                room: &str,
                after: u64,
                up_to: u64,
                limit: u32,
            ) -> $crate::store::Result<Vec<common::ChatMessage>> {
                use $crate::store::db_seq;
                use $crate::store::health::Access;
                use $crate::store::sql::{self, guarded};
                guarded!(self, Access::Read, |conn| {
                    let rows: Vec<sql::MessageRow> = sqlx::query_as(sql::RANGE)
                        .bind(room)
                        .bind(db_seq(after))
                        .bind(db_seq(up_to))
                        .bind(i64::from(limit))
                        .fetch_all(&mut *conn)
                        .await?;
                    rows.into_iter().map(sql::message).collect()
                })
            }

            async fn page_before(
                &self,
                room: &str,
                before: u64,
                limit: u32,
            ) -> $crate::store::Result<Vec<common::ChatMessage>> {
                use $crate::store::db_seq;
                use $crate::store::health::Access;
                use $crate::store::sql::{self, guarded};
                guarded!(self, Access::Read, |conn| {
                    let rows: Vec<sql::MessageRow> = sqlx::query_as(sql::PAGE_BEFORE)
                        .bind(room)
                        .bind(db_seq(before))
                        .bind(i64::from(limit))
                        .fetch_all(&mut *conn)
                        .await?;
                    rows.into_iter().rev().map(sql::message).collect()
                })
            }

            async fn last_seq(&self, room: &str) -> $crate::store::Result<Option<u64>> {
                use $crate::store::health::Access;
                use $crate::store::sql::{self, guarded};
                guarded!(self, Access::Read, |conn| {
                    let last: Option<i64> = sqlx::query_scalar(sql::LAST_SEQ)
                        .bind(room)
                        .fetch_optional(&mut *conn)
                        .await?;
                    last.map(|seq| seq as u64)
                })
            }

            async fn rooms(&self) -> $crate::store::Result<Vec<$crate::store::StoredRoom>> {
                use $crate::store::StoredRoom;
                use $crate::store::health::Access;
                use $crate::store::sql::{self, guarded};
                guarded!(self, Access::Read, |conn| {
                    let rows: Vec<(String, i64, String, i64, i64, String)> =
                        sqlx::query_as(sql::ROOMS).fetch_all(&mut *conn).await?;
                    rows.into_iter()
                        .map(
                            |(name, created_at, created_by, last_seq, last_active, visibility)| {
                                StoredRoom {
                                    name,
                                    created_at,
                                    created_by,
                                    last_seq: last_seq as u64,
                                    last_active,
                                    visibility: $crate::store::accounts_sql::visibility(
                                        &visibility,
                                    ),
                                }
                            },
                        )
                        .collect()
                })
            }

            async fn rooms_page(
                &self,
                user_id: &str,
                after: &str,
                prefix: &str,
                limit: u32,
            ) -> $crate::store::Result<Vec<($crate::store::StoredRoom, Option<common::Role>)>> {
                use $crate::store::StoredRoom;
                use $crate::store::accounts_sql;
                use $crate::store::health::Access;
                use $crate::store::sql::{self, guarded};
                guarded!(self, Access::Read, |conn| {
                    let rows: Vec<(String, i64, String, i64, i64, String, Option<String>)> =
                        sqlx::query_as(sql::ROOMS_PAGE)
                            .bind(user_id)
                            .bind(after)
                            .bind(sql::prefix_pattern(prefix))
                            .bind(i64::from(limit))
                            .fetch_all(&mut *conn)
                            .await?;
                    rows.into_iter()
                        .map(
                            |(
                                name,
                                created_at,
                                created_by,
                                last_seq,
                                last_active,
                                visibility,
                                role,
                            )| {
                                (
                                    StoredRoom {
                                        name,
                                        created_at,
                                        created_by,
                                        last_seq: last_seq as u64,
                                        last_active,
                                        visibility: accounts_sql::visibility(&visibility),
                                    },
                                    role.as_deref().map(accounts_sql::role),
                                )
                            },
                        )
                        .collect()
                })
            }

            async fn prune(
                &self,
                keep_per_room: Option<u64>,
                older_than_ms: Option<i64>,
            ) -> $crate::store::Result<u64> {
                use $crate::store::db_seq;
                use $crate::store::health::Access;
                use $crate::store::sql::{self, guarded};
                guarded!(self, Access::Write, |conn| {
                    let mut deleted = 0;
                    if let Some(keep) = keep_per_room {
                        deleted += sqlx::query(sql::PRUNE_COUNT)
                            .bind(db_seq(keep))
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                    }
                    if let Some(cutoff) = older_than_ms {
                        deleted += sqlx::query(sql::PRUNE_AGE)
                            .bind(cutoff)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                    }
                    deleted
                })
            }

            async fn mark_read(
                &self,
                user_id: &str,
                room: &str,
                seq: u64,
            ) -> $crate::store::Result<()> {
                use $crate::store::db_seq;
                use $crate::store::health::Access;
                use $crate::store::sql::{self, guarded};
                guarded!(self, Access::Write, |conn| {
                    sqlx::query(sql::MARK_READ)
                        .bind(user_id)
                        .bind(room)
                        .bind(db_seq(seq))
                        .execute(&mut *conn)
                        .await?;
                })
            }

            async fn read_state(
                &self,
                user_id: &str,
                room: &str,
            ) -> $crate::store::Result<(u64, u32)> {
                use $crate::store::health::Access;
                use $crate::store::sql::{self, guarded};
                guarded!(self, Access::Read, |conn| {
                    let seq: Option<i64> = sqlx::query_scalar(sql::READ_SEQ)
                        .bind(user_id)
                        .bind(room)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let seq = seq.unwrap_or(0);
                    let unread: i64 = sqlx::query_scalar(sql::UNREAD)
                        .bind(room)
                        .bind(seq)
                        .bind(user_id)
                        .fetch_one(&mut *conn)
                        .await?;
                    (seq as u64, unread as u32)
                })
            }

            async fn probe(&self, now_ms: i64) -> $crate::store::Result<()> {
                use $crate::store::health::Access;
                use $crate::store::sql::{self, guarded};
                guarded!(self, Access::Write, |conn| {
                    sqlx::query(sql::PROBE)
                        .bind(now_ms)
                        .execute(&mut *conn)
                        .await?;
                })
            }

            fn health(&self) -> &$crate::store::StoreHealth {
                &self.health
            }

            fn kind(&self) -> &'static str {
                $kind
            }
        }
    };
}

pub(crate) use impl_store;
