//! The statements of the `Store` trait, and `Store` for every SQL database
//! (`SqlStore`, see `sql_store.rs`). Appends, the hot path, are in
//! `append_sql.rs`; accounts, operations and search have their own files.

use super::accounts_sql::{parse_role, parse_visibility};
use super::health::Access;
use super::sql_store::{Dialect, SqlStore, placeholders};
use super::statement::{Columns, Driver, Read, RowsAffected, Statement};
use super::{
    Appended, Departure, Entered, JoinState, NewEntry, Result, RoomAccess, Store, StoreHealth,
    StoredRoom, db_seq,
};
use common::ChatMessage;
use sqlx::Connection;

/// A deleted room (see `operations.rs`) comes back as a new public room
/// whose seqs continue the old ones.
pub const ENSURE_ROOM: &str = "INSERT INTO rooms (name, created_at, created_by, last_seq) VALUES ($1, $2, $3, 0) \
     ON CONFLICT (name) DO UPDATE SET visibility = 'public', created_at = excluded.created_at, \
     created_by = excluded.created_by, topic = '', deleted_at = NULL \
     WHERE rooms.visibility = 'deleted'";
/// Followed by `…)`: the rooms' names (see `placeholders`).
pub const LAST_SEQS: &str = "SELECT name, last_seq FROM rooms WHERE name IN (";
/// Rooms per `LAST_SEQS` statement: within both databases' limits on
/// parameters (SQLite's is 32 766), and a statement a node's every active
/// room fits in at once on most deployments.
const LAST_SEQS_AT_ONCE: usize = 1_000;
/// A user's access to a room, with its newest seq (`Store::enter_room`).
pub const ENTER_ROOM: &str = "SELECT r.visibility, m.role, r.created_by, r.last_seq, r.created_at \
     FROM rooms r \
     LEFT JOIN room_members m ON m.room = r.name AND m.user_id = $2 \
     WHERE r.name = $1 AND r.visibility <> 'deleted'";

/// The columns of a log entry, in the order `ChatMessage` reads them.
macro_rules! entry_columns {
    () => {
        "room, seq, id, user_id, user_name, content, ts, client_id, username, \
         kind, target, reply_to, edited_at, deleted_at, files"
    };
}
pub(crate) use entry_columns;

pub const RANGE: &str = concat!(
    "SELECT ",
    entry_columns!(),
    " FROM messages WHERE room = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4"
);
pub const PAGE_BEFORE: &str = concat!(
    "SELECT ",
    entry_columns!(),
    " FROM messages WHERE room = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
);
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

/// A LIKE pattern (with `ESCAPE '\\'`) for names starting with `prefix`.
pub fn prefix_pattern(prefix: &str) -> String {
    like_pattern("", prefix)
}

/// `start`, then `text` with LIKE's wildcards escaped, then anything.
fn like_pattern(start: &str, text: &str) -> String {
    let mut pattern = String::with_capacity(start.len() + text.len() + 1);
    pattern.push_str(start);
    for c in text.chars() {
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
/// The files of the messages `PRUNE_COUNT` deletes, deleted before them.
pub const PRUNE_FILES_COUNT: &str = "DELETE FROM files WHERE claimed_by IS NOT NULL AND EXISTS \
     (SELECT 1 FROM messages m WHERE m.room = files.room AND m.user_id = files.uploader \
     AND m.client_id = files.claimed_by \
     AND m.seq <= (SELECT last_seq FROM rooms WHERE rooms.name = m.room) - $1)";
/// The files of the messages `PRUNE_AGE` deletes, deleted before them.
pub const PRUNE_FILES_AGE: &str = "DELETE FROM files WHERE claimed_by IS NOT NULL AND EXISTS \
     (SELECT 1 FROM messages m WHERE m.room = files.room AND m.user_id = files.uploader \
     AND m.client_id = files.claimed_by AND m.ts < $1)";
/// Reactions whose message retention deleted go too.
pub const PRUNE_REACTIONS: &str = "DELETE FROM reactions WHERE NOT EXISTS \
     (SELECT 1 FROM messages m WHERE m.room = reactions.room AND m.seq = reactions.target)";
pub const MARK_READ: &str = "INSERT INTO read_marks (user_id, room, seq) VALUES ($1, $2, $3) \
     ON CONFLICT (user_id, room) DO UPDATE SET seq = CASE WHEN excluded.seq > read_marks.seq \
     THEN excluded.seq ELSE read_marks.seq END";
/// `MARK_READ`'s conflict clause, for many rows at once.
const MARK_READ_CONFLICT: &str = "ON CONFLICT (user_id, room) DO UPDATE SET seq = \
     CASE WHEN excluded.seq > read_marks.seq THEN excluded.seq ELSE read_marks.seq END";
/// Read positions per statement in `mark_read_batch`.
const MARKS_PER_STATEMENT: usize = 500;
/// The room's topic, how far the user has read it, who created it, and the
/// user's role in it, what of it notifies them, whether they are only
/// invited so far, and their draft.
pub const JOIN_STATE: &str = "SELECT r.topic, m.seq, r.created_by, rm.role, r.visibility, rm.notify, \
     rm.invited_by, rm.draft, d.why \
     FROM rooms r \
     LEFT JOIN read_marks m ON m.room = r.name AND m.user_id = $1 \
     LEFT JOIN room_members rm ON rm.room = r.name AND rm.user_id = $1 \
     LEFT JOIN departures d ON d.room = r.name AND d.user_id = $1 WHERE r.name = $2";
/// Bounded: a badge says "99+" beyond that, and the count stays an index
/// scan. Edits, deletes and topic changes are not news; deleted messages
/// are gone.
pub const UNREAD: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM messages \
     WHERE room = $1 AND seq > $2 AND user_id <> $3 AND kind = 'message' \
     AND deleted_at IS NULL LIMIT 100) AS unread";
/// Unread messages that may mention the user (`$4`: a LIKE pattern for
/// `@username`); `common::mentions` decides. Usually none, so cheap.
pub const MENTION_CANDIDATES: &str = "SELECT content FROM messages \
     WHERE room = $1 AND seq > $2 AND user_id <> $3 AND kind = 'message' \
     AND deleted_at IS NULL AND LOWER(content) LIKE $4 ESCAPE '\\' LIMIT 100";

/// A LIKE pattern for text containing `@username`.
pub fn mention_pattern(username: &str) -> String {
    like_pattern("%@", username)
}

pub const PROBE: &str = "INSERT INTO hearth_probe (id, at) VALUES (1, $1) \
     ON CONFLICT (id) DO UPDATE SET at = excluded.at";

/// A log entry, read in `entry_columns!()` order.
impl Read for ChatMessage {
    fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self> {
        let room = columns.next()?;
        let seq: i64 = columns.next()?;
        let id = columns.next()?;
        let user_id = columns.next()?;
        let user_name = columns.next()?;
        let content: String = columns.next()?;
        let ts = columns.next()?;
        let client_id = columns.next()?;
        let username = columns.next()?;
        let kind: String = columns.next()?;
        let target: Option<i64> = columns.next()?;
        let reply_to: Option<i64> = columns.next()?;
        let edited = columns.next()?;
        let deleted_at: Option<i64> = columns.next()?;
        let files: Option<String> = columns.next()?;
        let kind = common::EntryKind::parse(&kind);
        // Formatted as it is read (a parse of a few microseconds per
        // message): what a message looks like is decided by this server's
        // parser, for messages stored before it too. (A deleted one has
        // no text, so no tree.)
        let formatted = crate::store::formatted(kind, &content);
        Ok(ChatMessage {
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
            kind,
            target: target.map(|seq| seq as u64),
            reply_to: reply_to.map(|seq| seq as u64),
            edited,
            deleted: deleted_at.is_some(),
            reactions: Vec::new(),
            // Written by `NewEntry::files_column`; a row it cannot read
            // (a hand edit) shows no files rather than failing the page.
            files: files
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_default(),
            formatted,
        })
    }
}

/// The reactions to the messages with seqs in `$2..=$3`, in the order
/// they were added.
pub const REACTIONS: &str = "SELECT target, emoji, user_id, user_name FROM reactions \
     WHERE room = $1 AND target >= $2 AND target <= $3 ORDER BY target, added_at, emoji, user_id";

pub type ReactionRow = (i64, String, String, String);

/// Puts each reaction on its message (`messages` in seq order).
pub fn attach_reactions(messages: &mut [ChatMessage], rows: Vec<ReactionRow>) {
    for (target, emoji, user_id, user_name) in rows {
        let Ok(at) = messages.binary_search_by_key(&(target as u64), |m| m.seq) else {
            continue;
        };
        let reactions = &mut messages[at].reactions;
        let user = common::User {
            id: user_id,
            name: user_name,
            username: None,
        };
        match reactions.iter_mut().find(|r| r.emoji == emoji) {
            Some(reaction) => reaction.users.push(user),
            None => reactions.push(common::Reaction {
                emoji,
                users: vec![user],
            }),
        }
    }
}

/// A room, in `ROOMS` order (fields are read in the order they are
/// written).
impl Read for StoredRoom {
    fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self> {
        Ok(StoredRoom {
            name: columns.next()?,
            created_at: columns.next()?,
            created_by: columns.next()?,
            last_seq: columns.next::<i64>()? as u64,
            last_active: columns.next()?,
            visibility: parse_visibility(&columns.next::<String>()?),
        })
    }
}

/// Followed by the user's parameter and `AND rm.room IN (…)`: for each of
/// those rooms the user is a member of, how far they read, what notifies
/// them and their draft. (Parameters built at run time: see
/// `placeholders`.)
pub const MEMBER_STATES: &str = "SELECT rm.room, m.seq, rm.notify, rm.draft FROM room_members rm \
     LEFT JOIN read_marks m ON m.room = rm.room AND m.user_id = rm.user_id WHERE rm.user_id = ";

impl<DB: Dialect> SqlStore<DB> {
    /// Messages of other people in `room` after `seq` (up to 100), and how
    /// many of those mention `username`.
    async fn unread(
        conn: &mut DB::Connection,
        room: &str,
        seq: i64,
        user_id: &str,
        username: Option<&str>,
    ) -> Result<(u32, u32)> {
        let unread: i64 = DB::query(UNREAD)
            .bind(room)
            .bind(seq)
            .bind(user_id)
            .fetch_one(&mut *conn)
            .await?;
        let mut mentions = 0;
        if let Some(username) = username
            && unread > 0
        {
            let candidates: Vec<String> = DB::query(MENTION_CANDIDATES)
                .bind(room)
                .bind(seq)
                .bind(user_id)
                .bind(mention_pattern(username))
                .fetch_all(&mut *conn)
                .await?;
            mentions = candidates
                .iter()
                .filter(|text| common::mentions::mentions(text, username))
                .count() as u32;
        }
        Ok((unread as u32, mentions))
    }

    /// The messages of `room` that `select` finds, in seq order, with
    /// their reactions.
    async fn messages(
        &self,
        room: &str,
        select: Statement<'_, DB>,
        newest_first: bool,
    ) -> Result<Vec<ChatMessage>> {
        self.guarded(Access::Read, async |conn| {
            let mut messages: Vec<ChatMessage> = select.fetch_all(&mut *conn).await?;
            if newest_first {
                messages.reverse();
            }
            Self::with_reactions(conn, room, &mut messages).await?;
            Ok(messages)
        })
        .await
    }
}

/// `Store` for every SQL database (see `SqlStore`).
#[async_trait::async_trait]
impl<DB: Dialect> Store for SqlStore<DB> {
    async fn enter_room(
        &self,
        name: &str,
        user_id: &str,
        create: bool,
        now_ms: i64,
    ) -> Result<Option<Entered>> {
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            if create {
                DB::query(ENSURE_ROOM)
                    .bind(name)
                    .bind(now_ms)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let row: Option<(String, Option<String>, String, i64, i64)> = DB::query(ENTER_ROOM)
                .bind(name)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(row.map(
                |(visibility, role, created_by, last_seq, created_at)| Entered {
                    last_seq: last_seq as u64,
                    created_at,
                    access: RoomAccess {
                        visibility: parse_visibility(&visibility),
                        role: role.as_deref().map(parse_role),
                        creator: created_by == user_id,
                    },
                },
            ))
        })
        .await
    }

    async fn append_batch(&self, batch: Vec<NewEntry>) -> Result<Vec<Result<Appended>>> {
        self.append_many(batch).await
    }

    async fn range(
        &self,
        room: &str,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>> {
        let select = DB::query(RANGE)
            .bind(room)
            .bind(db_seq(after))
            .bind(db_seq(up_to))
            .bind(i64::from(limit));
        self.messages(room, select, false).await
    }

    async fn page_before(&self, room: &str, before: u64, limit: u32) -> Result<Vec<ChatMessage>> {
        let select = DB::query(PAGE_BEFORE)
            .bind(room)
            .bind(db_seq(before))
            .bind(i64::from(limit));
        self.messages(room, select, true).await
    }

    async fn last_seqs(&self, rooms: &[&str]) -> Result<Vec<(String, u64)>> {
        let mut found = Vec::with_capacity(rooms.len());
        for chunk in rooms.chunks(LAST_SEQS_AT_ONCE) {
            let statement = format!("{LAST_SEQS}{})", placeholders::<DB>(1, chunk.len()));
            let mut select = DB::query(&statement);
            for room in chunk {
                select = select.bind(*room);
            }
            let rows: Vec<(String, i64)> = self.all(Access::Read, select).await?;
            found.extend(rows.into_iter().map(|(room, seq)| (room, seq as u64)));
        }
        Ok(found)
    }

    async fn rooms(&self) -> Result<Vec<StoredRoom>> {
        self.all(Access::Read, DB::query(ROOMS)).await
    }

    async fn rooms_page(
        &self,
        user_id: &str,
        after: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<(StoredRoom, Option<common::Role>)>> {
        let select = DB::query(ROOMS_PAGE)
            .bind(user_id)
            .bind(after)
            .bind(prefix_pattern(prefix))
            .bind(i64::from(limit));
        let rows: Vec<(StoredRoom, Option<String>)> = self.all(Access::Read, select).await?;
        Ok(rows
            .into_iter()
            .map(|(room, role)| (room, role.as_deref().map(parse_role)))
            .collect())
    }

    async fn prune(&self, keep_per_room: Option<u64>, older_than_ms: Option<i64>) -> Result<u64> {
        self.guarded(Access::Write, async |conn| {
            let mut deleted = 0;
            if let Some(keep) = keep_per_room {
                let files = DB::query(PRUNE_FILES_COUNT).bind(db_seq(keep));
                files.execute(&mut *conn).await?;
                let delete = DB::query(PRUNE_COUNT).bind(db_seq(keep));
                deleted += delete.execute(&mut *conn).await?.rows_affected();
            }
            if let Some(cutoff) = older_than_ms {
                let files = DB::query(PRUNE_FILES_AGE).bind(cutoff);
                files.execute(&mut *conn).await?;
                let delete = DB::query(PRUNE_AGE).bind(cutoff);
                deleted += delete.execute(&mut *conn).await?.rows_affected();
            }
            if deleted > 0 {
                DB::query(PRUNE_REACTIONS).execute(&mut *conn).await?;
            }
            Ok(deleted)
        })
        .await
    }

    async fn mark_read(&self, user_id: &str, room: &str, seq: u64) -> Result<()> {
        let upsert = DB::query(MARK_READ)
            .bind(user_id)
            .bind(room)
            .bind(db_seq(seq));
        self.change(upsert).await.map(drop)
    }

    async fn mark_read_batch(&self, marks: &[(&str, &str, u64)]) -> Result<()> {
        if marks.is_empty() {
            return Ok(());
        }
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            // Rows per statement: 3 parameters each, well under every
            // database's limit.
            for chunk in marks.chunks(MARKS_PER_STATEMENT) {
                let statement = format!(
                    "INSERT INTO read_marks (user_id, room, seq) VALUES {} {MARK_READ_CONFLICT}",
                    super::sql_store::value_rows::<DB>(1, chunk.len(), 3)
                );
                let mut upsert = DB::query(&statement);
                for &(user, room, seq) in chunk {
                    upsert = upsert.bind(user).bind(room).bind(db_seq(seq));
                }
                upsert.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn join_state(
        &self,
        user_id: &str,
        username: Option<&str>,
        room: &str,
    ) -> Result<JoinState> {
        self.guarded(Access::Read, async |conn| {
            type Row = (
                String,
                Option<i64>,
                String,
                Option<String>,
                String,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            );
            let row: Option<Row> = DB::query(JOIN_STATE)
                .bind(user_id)
                .bind(room)
                .fetch_optional(&mut *conn)
                .await?;
            let (topic, seq, created_by, role, visibility, notify, invited, draft, departed) =
                row.unwrap_or_default();
            let access = RoomAccess {
                visibility: parse_visibility(&visibility),
                role: role.as_deref().map(parse_role),
                creator: created_by == user_id,
            };
            let seq = seq.unwrap_or(0);
            let (unread, mentions) = Self::unread(conn, room, seq, user_id, username).await?;
            Ok(JoinState {
                read_seq: seq as u64,
                unread,
                mentions,
                topic,
                moderator: access.moderates(),
                member: access.role.is_some(),
                notify: notify.as_deref().and_then(common::Notify::parse),
                invited: invited.is_some(),
                departed: departed.as_deref().map(Departure::parse),
                draft,
            })
        })
        .await
    }

    async fn member_states(
        &self,
        user_id: &str,
        username: Option<&str>,
        rooms: &[(&str, u64)],
    ) -> Result<Vec<(String, JoinState)>> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let statement = format!(
            "{MEMBER_STATES}{} AND rm.room IN ({})",
            placeholders::<DB>(1, 1),
            placeholders::<DB>(2, rooms.len())
        );
        self.guarded(Access::Read, async |conn| {
            let mut select = DB::query(&statement).bind(user_id);
            for (room, _) in rooms {
                select = select.bind(*room);
            }
            type Row = (String, Option<i64>, Option<String>, Option<String>);
            let rows: Vec<Row> = select.fetch_all(&mut *conn).await?;
            let mut states = Vec::with_capacity(rows.len());
            for (room, seq, notify, draft) in rows {
                let seq = seq.unwrap_or(0);
                let last_seq = rooms
                    .iter()
                    .find(|(name, _)| *name == room)
                    .map_or(0, |(_, last)| *last);
                // Only where something follows the read position.
                let (unread, mentions) = if last_seq > seq as u64 {
                    Self::unread(conn, &room, seq, user_id, username).await?
                } else {
                    (0, 0)
                };
                let state = JoinState {
                    read_seq: seq as u64,
                    unread,
                    mentions,
                    member: true,
                    notify: notify.as_deref().and_then(common::Notify::parse),
                    draft,
                    ..JoinState::default()
                };
                states.push((room, state));
            }
            Ok(states)
        })
        .await
    }

    async fn probe(&self, now_ms: i64) -> Result<()> {
        self.change(DB::query(PROBE).bind(now_ms)).await.map(drop)
    }

    fn health(&self) -> &StoreHealth {
        &self.health
    }

    fn kind(&self) -> &'static str {
        DB::KIND
    }
}
