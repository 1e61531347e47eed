//! `hearth backup <file>`: a consistent copy of the SQLite store, taken
//! while the server runs.
//!
//! `VACUUM INTO` reads the database inside one read transaction, so the
//! copy is the database as of one instant: every message committed before
//! it, none after, and each room's `last_seq` agreeing with its messages.
//! In WAL mode a reader never blocks the server's writers (nor they it), so
//! messages keep flowing while it runs. The copy is compact (vacuumed), a
//! plain SQLite file with no -wal beside it, and private (mode 0600).
//!
//! Uploaded files (the data dir's `files/`, kept by content and never
//! changed) are copied after it into `<file>.files/`: every file the copy
//! of the database names exists by then (a file's bytes are stored before
//! its record). To restore, the copy is `hearth.db` and `<file>.files/` is
//! `files/` in a data dir.
//!
//! PostgreSQL has its own tool for this: `pg_dump` (see docs/deploy.md),
//! which includes the files (`file_chunks`).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::Config;

/// Writes the copy to `target` (which must not exist) and returns its size.
pub async fn sqlite(config: &Config, target: &Path) -> anyhow::Result<u64> {
    let url = match &config.database_url {
        Some(url) if url.starts_with("sqlite:") => url.clone(),
        Some(_) => bail!(
            "this server uses PostgreSQL: back it up with pg_dump (see docs/deploy.md, \"Backups\")"
        ),
        None => {
            let file = config.data_dir.join("hearth.db");
            ensure!(
                file.exists(),
                "no database at {} (is --data-dir / HEARTH_DATA_DIR the server's?)",
                file.display()
            );
            format!("sqlite://{}", file.display())
        }
    };
    ensure!(
        !target.exists(),
        "{} exists already; choose a new file",
        target.display()
    );
    let target_name = target
        .to_str()
        .context("the backup file's name must be UTF-8")?;
    // Created empty and private first, so the copy is never readable by
    // others, not even while it is being written (VACUUM INTO accepts an
    // empty file).
    crate::store::files::private_file(target)
        .with_context(|| format!("creating {}", target.display()))?;
    let mut conn = SqliteConnectOptions::from_str(&url)?
        .read_only(true)
        // The server may be checkpointing; wait for it rather than fail.
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("opening {url}"))?;
    sqlx::query("VACUUM INTO ?")
        .bind(target_name)
        .execute(&mut conn)
        .await
        .context("copying the database")?;
    let mut bytes = std::fs::metadata(target)?.len();
    let files = config.data_dir.join("files");
    if files.is_dir() {
        let copy = PathBuf::from(format!("{target_name}.files"));
        ensure!(!copy.exists(), "{} exists already", copy.display());
        bytes += copy_tree(&files, &copy)
            .with_context(|| format!("copying the files to {}", copy.display()))?;
    }
    Ok(bytes)
}

/// Copies `from` into `to` (created private), file by file: their bytes.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    crate::store::files::private_dir(to)?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            bytes += copy_tree(&entry.path(), &target)?;
        } else {
            bytes += std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(bytes)
}
