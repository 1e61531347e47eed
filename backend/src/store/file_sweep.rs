//! The sweep that keeps the file store to what files refer to. Deleting a
//! file (with its message, its room, by retention or by an operator)
//! deletes only its record, in the same transaction as the rest: it is no
//! longer served from that moment. Its bytes, and those of files never
//! sent, go here, run every `--file-sweep-secs` on every node (sweeps on
//! several nodes at once are safe: see `Blobs::delete`).

use super::{Blobs, Store, UNSENT_FILES_KEPT_MS};

/// Bytes stored this recently are left alone: an upload stores its bytes
/// before it writes the record that refers to them, within this.
pub const FRESH_BYTES_MS: i64 = 10 * 60 * 1000;

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Records of files never sent, or of deleted messages.
    pub files: u64,
    /// Bytes no file refers to (counted by distinct content).
    pub contents: u64,
}

/// One sweep, as of `now_ms`.
pub async fn sweep(store: &dyn Store, blobs: &dyn Blobs, now_ms: i64) -> anyhow::Result<Swept> {
    let files = store.sweep_files(now_ms - UNSENT_FILES_KEPT_MS).await?;
    let cutoff = now_ms - FRESH_BYTES_MS;
    let mut contents = 0;
    for sha256 in blobs.stored_before(cutoff).await? {
        if store.files_with_content(&sha256).await? == 0 && blobs.delete(&sha256, cutoff).await? {
            contents += 1;
        }
    }
    Ok(Swept { files, contents })
}
