//! Appending entries to a room's log, the store's hot path, shared by
//! SQLite and PostgreSQL like `sql.rs`. A batch (see `group_commit.rs`) is
//! one transaction. Per room in it: one or two messages take two statements
//! each (the next seq, then an insert that says by itself whether the
//! `client_id` was new); more share four statements whatever their number
//! (lock the room and read its seq, find the `client_id`s it already has,
//! insert the new ones, set its seq), so a busy room costs a few round
//! trips per commit instead of two per message. Changes (edits, deletes,
//! topics) are rare and change another row: a room with one in the batch
//! takes its entries one at a time.

use super::health::Access;
use super::sql::entry_columns;
use super::sql_store::{Dialect, SqlStore, placeholders, value_rows};
use super::statement::{Driver, Statement};
use super::{Appended, NewEntry, StoreError};
use common::EntryKind;
use sqlx::Connection;

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
pub const FIND_CLIENT_ID: &str = concat!(
    "SELECT ",
    entry_columns!(),
    " FROM messages WHERE room = $1 AND user_id = $2 AND client_id = $3"
);
/// Nothing (no row returned) if the user already sent this `client_id` to
/// the room: `messages_client_id` is unique.
pub const INSERT_MESSAGE: &str = "INSERT INTO messages (room, seq, id, user_id, user_name, content, ts, \
     client_id, username, files, search_text, kind, target, reply_to) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
     ON CONFLICT (room, user_id, client_id) DO NOTHING RETURNING seq";
/// A lone new message on SQLite, in one call to the connection's thread
/// (see `SqliteStore::lone_message`): the insert takes the room's next seq
/// itself, and the seq moves only if the row went in (not for a
/// duplicate `client_id` or a deleted room). `$N` parameters are shared by
/// the statements.
pub const SQLITE_LONE_MESSAGE: &str = "BEGIN IMMEDIATE;      INSERT INTO messages (room, seq, id, user_id, user_name, content, ts,      client_id, username, files, search_text, kind, target, reply_to)      SELECT $1, last_seq + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'message', NULL, $11 FROM rooms      WHERE name = $1 AND visibility <> 'deleted'      ON CONFLICT (room, user_id, client_id) DO NOTHING RETURNING seq;      UPDATE rooms SET last_seq = last_seq + 1 WHERE name = $1      AND EXISTS (SELECT 1 FROM messages WHERE room = $1 AND seq = rooms.last_seq + 1);      COMMIT;";
/// Undoes `INSERT_MESSAGE` in the same transaction (a refused change).
pub const UNDO_INSERT: &str = "DELETE FROM messages WHERE room = $1 AND seq = $2";
/// A room with at most this many messages in a batch takes them one at a
/// time (two statements each); more share four statements and a
/// multi-row insert.
pub const ONE_BY_ONE: usize = 2;
/// Followed by the room's parameter, `AND user_id IN (…) AND client_id IN
/// (…)`, all built at run time (see `placeholders`). Both columns, so that
/// all of the unique index (room, user_id, client_id) can be used: by
/// `client_id` alone only its `room` prefix could, and PostgreSQL walked
/// the room's whole index (`_bt_checkkeys`, 3.5 % of its profile under
/// `loadgen fanout 20 30000 64`, now 0.9 %). The rows are matched to the
/// batch by pair below.
pub const FIND_CLIENT_IDS: &str =
    concat!("SELECT ", entry_columns!(), " FROM messages WHERE room = ");
/// Followed by `(…), (…)`: the room's new messages, which the duplicate
/// check under the room's lock has shown to be new.
pub const INSERT_MESSAGES: &str = "INSERT INTO messages (room, seq, id, user_id, user_name, content, ts, \
     client_id, username, files, search_text, kind, target, reply_to) VALUES ";
/// The columns of `INSERT_MESSAGES`.
pub const INSERT_COLUMNS: usize = 14;
/// Rows per INSERT: `INSERT_COLUMNS` parameters each, well under SQLite's and
/// PostgreSQL's limits on parameters per statement.
pub const INSERT_ROWS: usize = 100;
pub const SET_LAST_SEQ: &str = "UPDATE rooms SET last_seq = $2 WHERE name = $1";

/// An edit: the author's own message, not deleted, gets the new text.
pub const EDIT: &str = "UPDATE messages SET content = $4, edited_at = $5, search_text = $6 \
     WHERE room = $1 AND seq = $2 AND user_id = $3 AND kind = 'message' \
     AND deleted_at IS NULL RETURNING seq";
/// A delete by the author: the text goes, the row stays (its seq is taken).
pub const DELETE_OWN: &str = "UPDATE messages SET content = '', files = NULL, search_text = NULL, \
     deleted_at = $4 \
     WHERE room = $1 AND seq = $2 AND user_id = $3 AND kind = 'message' \
     AND deleted_at IS NULL RETURNING seq";
/// A delete by an owner or moderator: anyone's message.
pub const DELETE_ANY: &str = "UPDATE messages SET content = '', files = NULL, search_text = NULL, \
     deleted_at = $3 \
     WHERE room = $1 AND seq = $2 AND kind = 'message' AND deleted_at IS NULL RETURNING seq";
/// A deleted message's earlier texts, kept by its edits, go too.
pub const ERASE_EDITS: &str = "UPDATE messages SET content = '', search_text = NULL WHERE room = $1 AND target = $2 AND kind = 'edit'";
pub const SET_TOPIC: &str = "UPDATE rooms SET topic = $2 WHERE name = $1";
/// A reaction needs a message that is there (not deleted).
pub const REACTABLE: &str = "SELECT seq FROM messages WHERE room = $1 AND seq = $2 \
     AND kind = 'message' AND deleted_at IS NULL";
/// Reacting twice is reacting once.
pub const REACT: &str = "INSERT INTO reactions (room, target, emoji, user_id, user_name, added_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (room, target, emoji, user_id) DO NOTHING";
pub const UNREACT: &str =
    "DELETE FROM reactions WHERE room = $1 AND target = $2 AND emoji = $3 AND user_id = $4";
/// A deleted message's reactions go with it.
pub const ERASE_REACTIONS: &str = "DELETE FROM reactions WHERE room = $1 AND target = $2";
/// And its files: no longer served, and their bytes removed by the next
/// sweep (`Uploads::sweep_files`) once no other file holds them.
pub const ERASE_FILES: &str = "DELETE FROM files WHERE room = $1 AND claimed_by IS NOT NULL \
     AND EXISTS (SELECT 1 FROM messages m WHERE m.room = $1 AND m.seq = $2 \
     AND m.user_id = files.uploader AND m.client_id = files.claimed_by)";

/// Seqs are u64 on the wire and BIGINT in the database.
pub fn db_seq(seq: Option<u64>) -> Option<i64> {
    seq.map(|seq| i64::try_from(seq).unwrap_or(i64::MAX))
}

/// Whether any of these entries changes another row (so the room's entries
/// go one at a time).
pub fn has_change(batch: &[NewEntry], positions: &[usize]) -> bool {
    positions
        .iter()
        .any(|&i| batch[i].kind != EntryKind::Message)
}

/// The positions of a batch's messages, by room, each room's in batch
/// order; rooms in name order.
///
/// Name order because a batch locks its rooms' rows one after another in
/// one transaction: two nodes whose batches hold the same two rooms in
/// opposite orders would each lock one and wait for the other, and
/// PostgreSQL would abort one of them ("deadlock detected"), failing
/// every send in it. Taken in one global order, the second node waits
/// for the first instead.
pub fn room_groups(batch: &[NewEntry]) -> Vec<(&str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        match groups.iter_mut().find(|(room, _)| *room == m.room) {
            Some((_, positions)) => positions.push(i),
            None => groups.push((m.room.as_str(), vec![i])),
        }
    }
    groups.sort_unstable_by(|a, b| a.0.cmp(b.0));
    groups
}

/// What the transaction did with one entry of a batch.
pub(super) enum Outcome {
    /// Stored under this seq.
    Stored(u64),
    /// A retry of this message, stored before (rare: boxed, so the
    /// usual outcome stays small).
    Duplicate(Box<common::ChatMessage>),
    /// A retry of the batch's entry at this position.
    SameAs(usize),
    /// Not stored, for this reason (the others go on).
    Refused(StoreError),
}

/// Binds what the sender sent, in the order of the columns that follow
/// `room, seq` in every insert of an entry: `id, user_id, user_name,
/// content, ts, client_id, username, files, search_text`.
pub fn bind_sent<'q, DB: Driver>(query: Statement<'q, DB>, m: &'q NewEntry) -> Statement<'q, DB> {
    query
        .bind(m.id.as_str())
        .bind(&m.user.id)
        .bind(&m.user.name)
        .bind(m.content.as_str())
        .bind(m.ts)
        .bind(m.client_id.as_str())
        .bind(&m.user.username)
        .bind(m.files_column())
        .bind(m.search_text())
}

/// Appends, for every SQL database (see `SqlStore`).
impl<DB: Dialect> SqlStore<DB> {
    /// Reads the reactions of `messages` (a page, in seq order) and
    /// attaches them: one query per page, none if no message has any.
    pub(super) async fn with_reactions(
        conn: &mut DB::Connection,
        room: &str,
        messages: &mut [common::ChatMessage],
    ) -> std::result::Result<(), sqlx::Error> {
        if let (Some(first), Some(last)) = (messages.first(), messages.last()) {
            let rows: Vec<super::sql::ReactionRow> = DB::query(super::sql::REACTIONS)
                .bind(room)
                .bind(first.seq as i64)
                .bind(last.seq as i64)
                .fetch_all(&mut *conn)
                .await?;
            super::sql::attach_reactions(messages, rows);
        }
        Ok(())
    }

    /// Binds an entry's `INSERT_COLUMNS`, stored under `seq`.
    fn bind_entry<'q>(query: Statement<'q, DB>, m: &'q NewEntry, seq: i64) -> Statement<'q, DB> {
        bind_sent(query.bind(m.room.as_str()).bind(seq), m)
            .bind(m.kind.as_str())
            .bind(db_seq(m.target))
            .bind(db_seq(m.reply_to))
    }

    /// One message, in two round trips: the room's next seq (which
    /// also locks the room), then the insert, which says by itself
    /// whether the `client_id` was new. Fewer statements than a
    /// batch's for one or two messages, the usual case at light load.
    pub(super) async fn append_alone<'c>(
        tx: &mut sqlx::Transaction<'c, DB>,
        m: &NewEntry,
    ) -> std::result::Result<Outcome, sqlx::Error> {
        let seq: Option<i64> = DB::query(NEXT_SEQ)
            .bind(m.room.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        let Some(seq) = seq else {
            return Ok(Outcome::Refused(StoreError::UnknownRoom(m.room.clone())));
        };
        let inserted: Option<i64> = Self::bind_entry(DB::query(INSERT_MESSAGE), m, seq)
            .fetch_optional(&mut **tx)
            .await?;
        if inserted.is_none() {
            let earlier: common::ChatMessage = DB::query(FIND_CLIENT_ID)
                .bind(m.room.as_str())
                .bind(&m.user.id)
                .bind(m.client_id.as_str())
                .fetch_one(&mut **tx)
                .await?;
            // Give the seq back. This transaction has held the
            // room's row since it took the seq, so the seq is still
            // the room's newest.
            let give_back = DB::query(RETURN_SEQ).bind(m.room.as_str());
            give_back.execute(&mut **tx).await?;
            return Ok(Outcome::Duplicate(Box::new(earlier)));
        }
        if !Self::apply_change(tx, m).await? {
            // Nothing to change: the entry and its seq go again.
            let undo = DB::query(UNDO_INSERT).bind(m.room.as_str()).bind(seq);
            undo.execute(&mut **tx).await?;
            let give_back = DB::query(RETURN_SEQ).bind(m.room.as_str());
            give_back.execute(&mut **tx).await?;
            return Ok(Outcome::Refused(StoreError::NoSuchMessage));
        }
        Ok(Outcome::Stored(seq as u64))
    }

    /// What a change entry changes, in the transaction that stores
    /// it. False if there was nothing (of the user's) to change.
    async fn apply_change<'c>(
        tx: &mut sqlx::Transaction<'c, DB>,
        m: &NewEntry,
    ) -> std::result::Result<bool, sqlx::Error> {
        let target = db_seq(m.target).unwrap_or(0);
        let changed: Option<i64> = match m.kind {
            EntryKind::Message => return Ok(true),
            EntryKind::Topic => {
                DB::query(SET_TOPIC)
                    .bind(m.room.as_str())
                    .bind(m.content.as_str())
                    .execute(&mut **tx)
                    .await?;
                return Ok(true);
            }
            EntryKind::Edit => {
                DB::query(EDIT)
                    .bind(m.room.as_str())
                    .bind(target)
                    .bind(&m.user.id)
                    .bind(m.content.as_str())
                    .bind(m.ts)
                    .bind(m.search_text())
                    .fetch_optional(&mut **tx)
                    .await?
            }
            EntryKind::Delete if m.moderator => {
                DB::query(DELETE_ANY)
                    .bind(m.room.as_str())
                    .bind(target)
                    .bind(m.ts)
                    .fetch_optional(&mut **tx)
                    .await?
            }
            EntryKind::Delete => {
                DB::query(DELETE_OWN)
                    .bind(m.room.as_str())
                    .bind(target)
                    .bind(&m.user.id)
                    .bind(m.ts)
                    .fetch_optional(&mut **tx)
                    .await?
            }
            EntryKind::React | EntryKind::Unreact => {
                let there: Option<i64> = DB::query(REACTABLE)
                    .bind(m.room.as_str())
                    .bind(target)
                    .fetch_optional(&mut **tx)
                    .await?;
                if there.is_none() {
                    return Ok(false);
                }
                if m.kind == EntryKind::React {
                    DB::query(REACT)
                        .bind(m.room.as_str())
                        .bind(target)
                        .bind(m.content.as_str())
                        .bind(&m.user.id)
                        .bind(&m.user.name)
                        .bind(m.ts)
                        .execute(&mut **tx)
                        .await?;
                } else {
                    DB::query(UNREACT)
                        .bind(m.room.as_str())
                        .bind(target)
                        .bind(m.content.as_str())
                        .bind(&m.user.id)
                        .execute(&mut **tx)
                        .await?;
                }
                there
            }
            EntryKind::Unknown => None,
        };
        if changed.is_some() && m.kind == EntryKind::Delete {
            for erase in [ERASE_EDITS, ERASE_REACTIONS, ERASE_FILES] {
                DB::query(erase)
                    .bind(m.room.as_str())
                    .bind(target)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(changed.is_some())
    }

    /// `Store::append_batch`: the batch's outcomes in one transaction,
    /// then each entry moved into its message.
    pub(super) async fn append_many(
        &self,
        batch: Vec<NewEntry>,
    ) -> crate::store::Result<Vec<crate::store::Result<Appended>>> {
        let outcomes = self.store_batch(&batch).await?;
        let mut answers: Vec<crate::store::Result<Appended>> = Vec::with_capacity(batch.len());
        for (entry, outcome) in batch.into_iter().zip(outcomes) {
            answers.push(match outcome {
                Outcome::Stored(seq) => Ok(Appended {
                    message: entry.into_message(seq),
                    duplicate: false,
                }),
                Outcome::Duplicate(message) => Ok(Appended {
                    message: *message,
                    duplicate: true,
                }),
                Outcome::SameAs(first) => match &answers[first] {
                    Ok(first) => Ok(Appended {
                        message: first.message.clone(),
                        duplicate: true,
                    }),
                    Err(err) => Err(err.shared()),
                },
                Outcome::Refused(err) => Err(err),
            });
        }
        Ok(answers)
    }

    /// Stores a batch in one transaction: what became of each entry.
    async fn store_batch(&self, batch: &[NewEntry]) -> crate::store::Result<Vec<Outcome>> {
        self.guarded(Access::Write, async |conn| {
            if let Some(seq) = DB::lone_message(conn, batch).await? {
                return Ok(vec![Outcome::Stored(seq as u64)]);
            }
            let mut tx = conn.begin().await?;
            let mut results: Vec<Option<Outcome>> = (0..batch.len()).map(|_| None).collect();
            // A few round trips per room, whatever the number of
            // its messages (see `room_groups`).
            for (room, positions) in room_groups(batch) {
                if positions.len() <= ONE_BY_ONE || has_change(batch, &positions) {
                    for &i in &positions {
                        let m = &batch[i];
                        results[i] = Some(Self::append_alone(&mut tx, m).await?);
                    }
                    continue;
                }
                // Locks the room's row (PostgreSQL) or takes the
                // write lock (SQLite) before anything is read, so
                // appends to a room are serialized across nodes.
                let last: Option<i64> = DB::query(LOCK_ROOM)
                    .bind(room)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(mut last) = last else {
                    // Nothing was changed for them; the others go on.
                    for &i in &positions {
                        results[i] =
                            Some(Outcome::Refused(StoreError::UnknownRoom(room.to_owned())));
                    }
                    continue;
                };
                // Which of them this room has already stored.
                let find = format!(
                    "{FIND_CLIENT_IDS}{} AND user_id IN ({}) AND client_id IN ({})",
                    placeholders::<DB>(1, 1),
                    placeholders::<DB>(2, positions.len()),
                    placeholders::<DB>(2 + positions.len(), positions.len())
                );
                let mut query = DB::query(&find).bind(room);
                for &i in &positions {
                    query = query.bind(batch[i].user.id.as_str());
                }
                for &i in &positions {
                    query = query.bind(batch[i].client_id.as_str());
                }
                // Usually none: these are retries.
                let stored: Vec<common::ChatMessage> = query.fetch_all(&mut *tx).await?;
                let mut first_of: std::collections::HashMap<(&str, &str), usize> =
                    std::collections::HashMap::with_capacity(positions.len());
                let mut fresh = Vec::with_capacity(positions.len());
                for &i in &positions {
                    let m = &batch[i];
                    let key = (m.user.id.as_str(), m.client_id.as_str());
                    if let Some(&first) = first_of.get(&key) {
                        // The same client_id twice in one batch: the
                        // second is a retry of the first.
                        results[i] = Some(Outcome::SameAs(first));
                        continue;
                    }
                    if let Some(earlier) = stored
                        .iter()
                        .find(|s| s.user.id == m.user.id && s.client_id == m.client_id)
                    {
                        results[i] = Some(Outcome::Duplicate(Box::new(earlier.clone())));
                        continue;
                    }
                    last += 1;
                    first_of.insert(key, i);
                    fresh.push((i, last));
                    results[i] = Some(Outcome::Stored(last as u64));
                }
                if fresh.is_empty() {
                    continue;
                }
                for rows in fresh.chunks(INSERT_ROWS) {
                    let statement = format!(
                        "{}{}",
                        INSERT_MESSAGES,
                        value_rows::<DB>(1, rows.len(), INSERT_COLUMNS)
                    );
                    let mut insert = DB::query(&statement);
                    for &(i, seq) in rows {
                        insert = Self::bind_entry(insert, &batch[i], seq);
                    }
                    insert.execute(&mut *tx).await?;
                }
                DB::query(SET_LAST_SEQ)
                    .bind(room)
                    .bind(last)
                    .execute(&mut *tx)
                    .await?;
            }
            // Only a commit that reports success makes an ack, for
            // every message of the batch alike.
            tx.commit().await?;
            Ok(results
                .into_iter()
                .map(|answer| answer.expect("every message has an answer"))
                .collect())
        })
        .await
    }
}
