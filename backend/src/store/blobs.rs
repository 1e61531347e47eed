//! The file store: the bytes of uploaded files, kept by content (their
//! SHA-256), so the same file uploaded twice is kept once. Two kinds, one
//! trait: the data dir (one node, `DiskBlobs`) and PostgreSQL (shared by
//! every node, `PgBlobs` in `blobs_pg.rs`), checked by the same
//! conformance tests.
//!
//! An upload is written to a temp file on the local disk as it arrives
//! (hashed and counted on the way, never whole in memory), then `put`
//! moves it into the store: durably (fsynced, or committed) before the
//! upload is answered.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

/// A file's bytes, as they are read.
pub type BlobStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

#[async_trait]
pub trait Blobs: Send + Sync + 'static {
    /// Keeps the bytes of `temp` (a complete upload whose SHA-256 is
    /// `sha256`, in hex) under that hash, durably, and removes `temp`.
    /// Bytes kept already (the same file again) are kept once.
    async fn put(&self, sha256: &str, temp: &Path) -> io::Result<()>;

    /// The bytes kept under `sha256`, read as they are sent.
    async fn get(&self, sha256: &str) -> io::Result<Option<BlobStream>>;

    /// Forgets the bytes under `sha256` (nothing if there are none).
    async fn delete(&self, sha256: &str) -> io::Result<()>;
}

/// Whether `sha256` is 64 lowercase hex digits: the only names a file
/// store ever makes paths or keys of.
pub fn is_hash(sha256: &str) -> bool {
    sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn bad_hash() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a SHA-256")
}

/// The data dir's `files/`: `files/ab/cd/abcd…` (two levels, so no
/// directory holds more than 65 536 entries per level).
pub struct DiskBlobs {
    root: PathBuf,
}

impl DiskBlobs {
    /// `root` is created (private, 0700) if it is missing.
    pub fn open(root: PathBuf) -> io::Result<DiskBlobs> {
        super::files::private_dir(&root)?;
        Ok(DiskBlobs { root })
    }

    fn path(&self, sha256: &str) -> io::Result<PathBuf> {
        if !is_hash(sha256) {
            return Err(bad_hash());
        }
        Ok(self
            .root
            .join(&sha256[..2])
            .join(&sha256[2..4])
            .join(sha256))
    }
}

/// fsyncs a directory, so an entry made or removed in it survives a crash.
async fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(io::Error::other)?
}

#[async_trait]
impl Blobs for DiskBlobs {
    async fn put(&self, sha256: &str, temp: &Path) -> io::Result<()> {
        let path = self.path(sha256)?;
        let dir = path.parent().expect("a file in a directory");
        if tokio::fs::try_exists(&path).await? {
            // The same bytes are kept already.
            return tokio::fs::remove_file(temp).await;
        }
        super::files::private_dir(dir)?;
        // The bytes reach the disk before the name does.
        tokio::fs::File::open(temp).await?.sync_all().await?;
        tokio::fs::rename(temp, &path).await?;
        sync_dir(dir).await
    }

    async fn get(&self, sha256: &str) -> io::Result<Option<BlobStream>> {
        match tokio::fs::File::open(self.path(sha256)?).await {
            Ok(file) => Ok(Some(Box::pin(tokio_util::io::ReaderStream::new(file)))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn delete(&self, sha256: &str) -> io::Result<()> {
        let path = self.path(sha256)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => sync_dir(path.parent().expect("a file in a directory")).await,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        }
    }
}
