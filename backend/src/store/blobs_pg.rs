//! The file store in PostgreSQL (`file_chunks`, migration 0016): shared
//! by every node, backed up with the database. Files are kept in chunks of
//! at most 256 KiB, written in one transaction and read one at a time as a
//! download is sent, so neither holds a whole file in memory.

use std::io;
use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::PgPool;
use tokio::io::AsyncReadExt;

use super::blobs::{BlobStream, Blobs, is_hash};

/// Largest chunk of a file in one row.
const CHUNK: usize = 256 * 1024;

pub struct PgBlobs {
    pool: PgPool,
}

impl PgBlobs {
    /// A pool of its own, small: file transfers never hold the
    /// connections that messages are stored with.
    pub async fn connect(url: &str) -> sqlx::Result<PgBlobs> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(PgBlobs { pool })
    }
}

fn checked(sha256: &str) -> io::Result<&str> {
    if is_hash(sha256) {
        Ok(sha256)
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "not a SHA-256"))
    }
}

#[async_trait]
impl Blobs for PgBlobs {
    async fn put(&self, sha256: &str, temp: &Path) -> io::Result<()> {
        let sha256 = checked(sha256)?;
        let mut tx = self.pool.begin().await.map_err(io::Error::other)?;
        let now = super::now_millis();
        // Locks the first chunk's row, so a sweep's `delete` of the same
        // bytes waits for this to renew them, or went before.
        let kept: Option<i64> =
            sqlx::query_scalar("SELECT n FROM file_chunks WHERE sha256 = $1 AND n = 0 FOR UPDATE")
                .bind(sha256)
                .fetch_optional(&mut *tx)
                .await
                .map_err(io::Error::other)?;
        if kept.is_some() {
            sqlx::query("UPDATE file_chunks SET stored_at = $2 WHERE sha256 = $1 AND n = 0")
                .bind(sha256)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(io::Error::other)?;
        } else {
            let mut file = tokio::fs::File::open(temp).await?;
            let mut buffer = vec![0; CHUNK];
            let mut n: i64 = 0;
            loop {
                let mut filled = 0;
                while filled < CHUNK {
                    let read = file.read(&mut buffer[filled..]).await?;
                    if read == 0 {
                        break;
                    }
                    filled += read;
                }
                if filled == 0 && n > 0 {
                    break;
                }
                // Another node storing the same new bytes at once
                // wrote the same chunks.
                sqlx::query(
                    "INSERT INTO file_chunks (sha256, n, data, stored_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(sha256)
                .bind(n)
                .bind(&buffer[..filled])
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(io::Error::other)?;
                n += 1;
                if filled < CHUNK {
                    break;
                }
            }
        }
        tx.commit().await.map_err(io::Error::other)?;
        tokio::fs::remove_file(temp).await
    }

    async fn get(&self, sha256: &str) -> io::Result<Option<BlobStream>> {
        let sha256 = checked(sha256)?.to_owned();
        let first: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT data FROM file_chunks WHERE sha256 = $1 AND n = 0")
                .bind(&sha256)
                .fetch_optional(&self.pool)
                .await
                .map_err(io::Error::other)?;
        let Some(first) = first else {
            return Ok(None);
        };
        let pool = self.pool.clone();
        // The first chunk in hand, then one query per chunk as it is sent.
        let rest = futures_util::stream::try_unfold(1i64, move |n| {
            let (pool, sha256) = (pool.clone(), sha256.clone());
            async move {
                let chunk: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT data FROM file_chunks WHERE sha256 = $1 AND n = $2")
                        .bind(&sha256)
                        .bind(n)
                        .fetch_optional(&pool)
                        .await
                        .map_err(io::Error::other)?;
                Ok(chunk.map(|data| (Bytes::from(data), n + 1)))
            }
        });
        let first = futures_util::stream::once(async move { Ok(Bytes::from(first)) });
        Ok(Some(Box::pin(futures_util::StreamExt::chain(first, rest))))
    }

    async fn stored_before(&self, cutoff_ms: i64) -> io::Result<Vec<String>> {
        sqlx::query_scalar("SELECT sha256 FROM file_chunks WHERE n = 0 AND stored_at < $1")
            .bind(cutoff_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(io::Error::other)
    }

    async fn delete(&self, sha256: &str, cutoff_ms: i64) -> io::Result<bool> {
        let sha256 = checked(sha256)?;
        let mut tx = self.pool.begin().await.map_err(io::Error::other)?;
        let stored_at: Option<i64> = sqlx::query_scalar(
            "SELECT stored_at FROM file_chunks WHERE sha256 = $1 AND n = 0 FOR UPDATE",
        )
        .bind(sha256)
        .fetch_optional(&mut *tx)
        .await
        .map_err(io::Error::other)?;
        if stored_at.is_none_or(|at| at >= cutoff_ms) {
            return Ok(false);
        }
        sqlx::query("DELETE FROM file_chunks WHERE sha256 = $1")
            .bind(sha256)
            .execute(&mut *tx)
            .await
            .map_err(io::Error::other)?;
        tx.commit().await.map_err(io::Error::other)?;
        Ok(true)
    }
}
