//! The store's record of uploaded files: what was uploaded, by whom, to
//! which room, and which message sent it (the bytes are in the file store,
//! `blobs.rs`, by content). One trait with its SQL, shared by both
//! databases, like `accounts.rs`.
//!
//! A file is uploaded first, then sent: a `send` names it, and checking
//! the send claims it for that message (`claim_files`), once. The claim is
//! the message's key (`room`, `uploader` = its sender, `claimed_by` = its
//! `client_id`), so a retried send claims the same files again, and
//! deleting the message (by its author, a moderator, an operator or
//! retention) finds and deletes them. Files never sent, and files whose
//! send never got stored, are deleted by the sweep (`sweep_files`) after
//! `UNSENT_FILES_KEPT_MS`.

use async_trait::async_trait;
use common::FileInfo;
use sqlx::Connection;

use super::Result;
use super::health::Access;
use super::sql_store::{Dialect, SqlStore};
use super::statement::{Columns, Driver, Read};

/// A file as uploaded (`POST /api/rooms/{room}/files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// A UUIDv7: unguessable, and sorts by time.
    pub id: String,
    pub room: String,
    pub uploader: String,
    /// The name it was uploaded under (shown, and offered when saving).
    pub name: String,
    pub size: u64,
    /// Sniffed from its bytes, never taken from the client.
    pub content_type: String,
    /// The SHA-256 of its bytes (hex): where the file store keeps them.
    pub sha256: String,
    /// For an image.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub created_at: i64,
    /// Where the file store keeps its thumbnail, if it has one (a large
    /// enough image).
    pub thumb_sha256: Option<String>,
}

impl FileRecord {
    /// What a message and the uploader are shown of it.
    pub fn info(&self) -> FileInfo {
        FileInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            size: self.size,
            content_type: self.content_type.clone(),
            width: self.width,
            height: self.height,
            thumbnail: self.thumb_sha256.is_some(),
        }
    }
}

/// One file shared in a room (`Uploads::room_files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    pub file: FileRecord,
    pub seq: u64,
    pub user: common::User,
    pub ts: i64,
}

/// A file uploaded but not sent, or claimed by a send that was never
/// stored, is kept this long (a client retrying a send after a day
/// offline uploads again).
pub const UNSENT_FILES_KEPT_MS: i64 = 24 * 60 * 60 * 1000;

/// The columns of a `FileRecord`, in `Read` order (of `files f`).
macro_rules! file_columns {
    () => {
        "f.id, f.room, f.uploader, f.name, f.size, f.content_type, f.sha256, f.width, f.height, \
         f.created_at, f.thumb_sha256"
    };
}

pub const ADD_FILE: &str = "INSERT INTO files (id, room, uploader, name, size, content_type, sha256, \
     width, height, created_at, thumb_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub const FILE: &str = concat!("SELECT ", file_columns!(), " FROM files f WHERE f.id = $1");
/// Claims one file for a message: the sender's, uploaded to this room, and
/// not claimed by another of the sender's messages.
pub const CLAIM: &str = concat!(
    "UPDATE files SET claimed_by = $4, claimed_at = $5 WHERE id = $1 AND room = $2 \
     AND uploader = $3 AND (claimed_by IS NULL OR claimed_by = $4) RETURNING ",
    "id, room, uploader, name, size, content_type, sha256, width, height, created_at, thumb_sha256"
);
/// The files shared in a room, by messages that are there (not deleted),
/// newest first, before `$2` (a seq).
pub const ROOM_FILES: &str = concat!(
    "SELECT ",
    file_columns!(),
    ", m.seq, m.user_id, m.user_name, m.username, m.ts FROM files f \
     JOIN messages m ON m.room = f.room AND m.user_id = f.uploader AND m.client_id = f.claimed_by \
     WHERE f.room = $1 AND m.seq < $2 AND m.kind = 'message' AND m.deleted_at IS NULL \
     ORDER BY m.seq DESC, f.id LIMIT $3"
);
/// (PostgreSQL sums a BIGINT as a NUMERIC: cast back.)
pub const STORED_BY: &str =
    "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files WHERE uploader = $1";
/// Files are the only holders of bytes: a file's own, or its thumbnail.
pub const SHARED_CONTENT: &str =
    "SELECT COUNT(*) FROM files WHERE sha256 = $1 OR thumb_sha256 = $1";
/// Uploaded before `$1` and never sent, or claimed before `$1` by a send
/// that was never stored.
pub const DELETE_UNSENT: &str = "DELETE FROM files WHERE created_at < $1 AND (claimed_by IS NULL \
     OR (claimed_at < $1 AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.room = files.room \
     AND m.user_id = files.uploader AND m.client_id = files.claimed_by)))";
/// Files of messages that are gone or deleted. A backstop: every path that
/// deletes a message deletes its files (see `operations.rs`, `sql.rs`,
/// `append_sql.rs`); this catches what a crash between them left.
pub const DELETE_OF_DELETED: &str = "DELETE FROM files WHERE claimed_by IS NOT NULL \
     AND EXISTS (SELECT 1 FROM messages m WHERE m.room = files.room \
     AND m.user_id = files.uploader AND m.client_id = files.claimed_by AND m.deleted_at IS NOT NULL)";

impl Read for FileRecord {
    fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self> {
        let dimension = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
        Ok(FileRecord {
            id: columns.next()?,
            room: columns.next()?,
            uploader: columns.next()?,
            name: columns.next()?,
            size: columns.next::<i64>()?.max(0) as u64,
            content_type: columns.next()?,
            sha256: columns.next()?,
            width: dimension(columns.next()?),
            height: dimension(columns.next()?),
            created_at: columns.next()?,
            thumb_sha256: columns.next()?,
        })
    }
}

impl Read for Shared {
    fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self> {
        let file = FileRecord::read(columns)?;
        let seq: i64 = columns.next()?;
        Ok(Shared {
            file,
            seq: seq.max(0) as u64,
            user: common::User {
                id: columns.next()?,
                name: columns.next()?,
                username: columns.next()?,
            },
            ts: columns.next()?,
        })
    }
}

#[async_trait]
pub trait Uploads: Send + Sync + 'static {
    async fn add_file(&self, file: &FileRecord) -> Result<()>;

    /// The file with this id, if there is one.
    async fn file(&self, id: &str) -> Result<Option<FileRecord>>;

    /// Claims the files `ids` for the message `client_id` that `uploader`
    /// is sending to `room`: all of them, in the order given, or none
    /// (`None`: one is not the sender's, not this room's, or was sent in
    /// another message). Claiming them again for the same message is a
    /// retry, and gives the same files.
    async fn claim_files(
        &self,
        room: &str,
        uploader: &str,
        client_id: &str,
        ids: &[String],
        now_ms: i64,
    ) -> Result<Option<Vec<FileRecord>>>;

    /// The files shared in `room` by messages that are there, newest
    /// first, in messages before seq `before`.
    async fn room_files(&self, room: &str, before: u64, limit: u32) -> Result<Vec<Shared>>;

    /// How many bytes the files `user_id` uploaded take (their quota).
    async fn stored_by(&self, user_id: &str) -> Result<u64>;

    /// How many files have these bytes, as theirs or as their thumbnail
    /// (the file store keeps them while one does).
    async fn files_with_content(&self, sha256: &str) -> Result<u64>;

    /// Deletes files never sent (uploaded before `unsent_before`), and
    /// files of deleted messages. How many went.
    async fn sweep_files(&self, unsent_before: i64) -> Result<u64>;
}

#[async_trait]
impl<DB: Dialect> Uploads for SqlStore<DB> {
    async fn add_file(&self, file: &FileRecord) -> Result<()> {
        let insert = DB::query(ADD_FILE)
            .bind(file.id.as_str())
            .bind(file.room.as_str())
            .bind(file.uploader.as_str())
            .bind(file.name.as_str())
            .bind(i64::try_from(file.size).unwrap_or(i64::MAX))
            .bind(file.content_type.as_str())
            .bind(file.sha256.as_str())
            .bind(file.width.map(i64::from))
            .bind(file.height.map(i64::from))
            .bind(file.created_at)
            .bind(file.thumb_sha256.as_deref());
        self.change(insert).await.map(drop)
    }

    async fn file(&self, id: &str) -> Result<Option<FileRecord>> {
        self.one(DB::query(FILE).bind(id)).await
    }

    async fn claim_files(
        &self,
        room: &str,
        uploader: &str,
        client_id: &str,
        ids: &[String],
        now_ms: i64,
    ) -> Result<Option<Vec<FileRecord>>> {
        self.guarded(Access::Write, async |conn| {
            let mut tx = conn.begin().await?;
            let mut claimed: Vec<FileRecord> = Vec::with_capacity(ids.len());
            for id in ids {
                if claimed.iter().any(|f| &f.id == id) {
                    continue;
                }
                let claim = DB::query(CLAIM)
                    .bind(id.as_str())
                    .bind(room)
                    .bind(uploader)
                    .bind(client_id)
                    .bind(now_ms);
                match claim.fetch_optional::<FileRecord>(&mut *tx).await? {
                    Some(file) => claimed.push(file),
                    None => {
                        tx.rollback().await?;
                        return Ok(None);
                    }
                }
            }
            tx.commit().await?;
            Ok(Some(claimed))
        })
        .await
    }

    async fn room_files(&self, room: &str, before: u64, limit: u32) -> Result<Vec<Shared>> {
        let select = DB::query(ROOM_FILES)
            .bind(room)
            .bind(i64::try_from(before).unwrap_or(i64::MAX))
            .bind(i64::from(limit));
        self.all(Access::Read, select).await
    }

    async fn stored_by(&self, user_id: &str) -> Result<u64> {
        let total: Option<i64> = self.one(DB::query(STORED_BY).bind(user_id)).await?;
        Ok(total.unwrap_or(0).max(0) as u64)
    }

    async fn files_with_content(&self, sha256: &str) -> Result<u64> {
        let count: Option<i64> = self.one(DB::query(SHARED_CONTENT).bind(sha256)).await?;
        Ok(count.unwrap_or(0).max(0) as u64)
    }

    async fn sweep_files(&self, unsent_before: i64) -> Result<u64> {
        let unsent = self
            .change(DB::query(DELETE_UNSENT).bind(unsent_before))
            .await?;
        let of_deleted = self.change(DB::query(DELETE_OF_DELETED)).await?;
        Ok(unsent + of_deleted)
    }
}
