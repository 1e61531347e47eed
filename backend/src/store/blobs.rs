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
//!
//! Bytes are removed by a sweep (`tasks.rs`) once no file refers to them:
//! deleting a file (or its message, or its room) deletes only its record,
//! at once, so it is no longer served. The sweep removes only bytes last
//! stored before a cutoff, and storing the same bytes again renews them,
//! so an upload whose record is not written yet never loses its bytes to
//! a sweep that looked before it.

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

    /// The hashes of the bytes last stored (`put`) before `cutoff_ms`.
    async fn stored_before(&self, cutoff_ms: i64) -> io::Result<Vec<String>>;

    /// Forgets the bytes under `sha256` if they were last stored before
    /// `cutoff_ms` (not if a `put` renewed them since). Whether they went.
    async fn delete(&self, sha256: &str, cutoff_ms: i64) -> io::Result<bool>;
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
    /// Held by `put` and `delete` for one hash's check and change, so a
    /// delete never removes bytes a put has just renewed (one node owns
    /// its data dir).
    changing: tokio::sync::Mutex<()>,
}

impl DiskBlobs {
    /// `root` is created (private, 0700) if it is missing.
    pub fn open(root: PathBuf) -> io::Result<DiskBlobs> {
        super::files::private_dir(&root)?;
        Ok(DiskBlobs {
            root,
            changing: tokio::sync::Mutex::new(()),
        })
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
        // The bytes reach the disk before the name does.
        tokio::fs::File::open(temp).await?.sync_all().await?;
        let _changing = self.changing.lock().await;
        if tokio::fs::try_exists(&path).await? {
            // The same bytes are kept already: renewed, so a sweep leaves
            // them to the file about to refer to them.
            let kept = path.clone();
            tokio::task::spawn_blocking(move || {
                std::fs::File::options()
                    .write(true)
                    .open(kept)?
                    .set_modified(std::time::SystemTime::now())
            })
            .await
            .map_err(io::Error::other)??;
            return tokio::fs::remove_file(temp).await;
        }
        super::files::private_dir(dir)?;
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

    async fn stored_before(&self, cutoff_ms: i64) -> io::Result<Vec<String>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            for first in std::fs::read_dir(&root)? {
                let first = first?.path();
                if !first.is_dir() {
                    continue;
                }
                for second in std::fs::read_dir(&first)? {
                    let second = second?.path();
                    if !second.is_dir() {
                        continue;
                    }
                    for entry in std::fs::read_dir(&second)? {
                        let entry = entry?;
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if is_hash(&name) && modified_ms(&entry.metadata()?) < cutoff_ms {
                            found.push(name);
                        }
                    }
                }
            }
            Ok(found)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn delete(&self, sha256: &str, cutoff_ms: i64) -> io::Result<bool> {
        let path = self.path(sha256)?;
        let _changing = self.changing.lock().await;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if modified_ms(&meta) < cutoff_ms => {}
            Ok(_) => return Ok(false),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(err),
        }
        tokio::fs::remove_file(&path).await?;
        sync_dir(path.parent().expect("a file in a directory")).await?;
        Ok(true)
    }
}

/// When a kept file was last stored, in ms since the epoch (0 if unknown:
/// old enough to sweep).
fn modified_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}
