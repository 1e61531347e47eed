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
//! PostgreSQL has its own tool for this: `pg_dump` (see docs/deploy.md).

use std::path::Path;
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
    Ok(std::fs::metadata(target)?.len())
}
