//! The store's record of uploaded files: what was uploaded, by whom, to
//! which room (the bytes are in the file store, `blobs.rs`, by content).
//! One trait with its SQL, shared by both databases, like `accounts.rs`.

use async_trait::async_trait;

use super::Result;
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
}

pub const ADD_FILE: &str = "INSERT INTO files (id, room, uploader, name, size, content_type, sha256, \
     width, height, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub const FILE: &str = "SELECT id, room, uploader, name, size, content_type, sha256, width, height, \
     created_at FROM files WHERE id = $1";
/// (PostgreSQL sums a BIGINT as a NUMERIC: cast back.)
pub const STORED_BY: &str =
    "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files WHERE uploader = $1";
pub const SHARED_CONTENT: &str = "SELECT COUNT(*) FROM files WHERE sha256 = $1";

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
        })
    }
}

#[async_trait]
pub trait Uploads: Send + Sync + 'static {
    async fn add_file(&self, file: &FileRecord) -> Result<()>;

    /// The file with this id, if there is one.
    async fn file(&self, id: &str) -> Result<Option<FileRecord>>;

    /// How many bytes the files `user_id` uploaded take (their quota).
    async fn stored_by(&self, user_id: &str) -> Result<u64>;

    /// How many files have these bytes (the file store keeps them while
    /// one does).
    async fn files_with_content(&self, sha256: &str) -> Result<u64>;
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
            .bind(file.created_at);
        self.change(insert).await.map(drop)
    }

    async fn file(&self, id: &str) -> Result<Option<FileRecord>> {
        self.one(DB::query(FILE).bind(id)).await
    }

    async fn stored_by(&self, user_id: &str) -> Result<u64> {
        let total: Option<i64> = self.one(DB::query(STORED_BY).bind(user_id)).await?;
        Ok(total.unwrap_or(0).max(0) as u64)
    }

    async fn files_with_content(&self, sha256: &str) -> Result<u64> {
        let count: Option<i64> = self.one(DB::query(SHARED_CONTENT).bind(sha256)).await?;
        Ok(count.unwrap_or(0).max(0) as u64)
    }
}
