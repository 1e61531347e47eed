//! The data dir and the files in it hold every message, account and
//! session: only the server's own user may read them. New ones are created
//! private (0700 and 0600); existing ones that are wider get a warning, not
//! a silent change, since an operator may have a reason (a backup group).

use std::path::Path;

/// Creates `dir` (and its parents) as 0700 if it is missing; warns if it
/// exists and others may read it.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    private(
        dir,
        "the data dir is readable by other users; chmod 700 it",
        |dir| {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
        },
    )
}

/// Empties `dir` of what an earlier run left in it (uploads cut off by a
/// crash); nothing if it does not exist.
pub fn clear_dir(dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        if path.is_file() {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Creates `file` empty as 0600 if it is missing, so the database (and the
/// -wal and -shm files SQLite gives the same mode) start private; warns if
/// it exists and others may read it.
pub fn private_file(file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    private(
        file,
        "the database is readable by other users; chmod 600 it",
        |file| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(file)
                .map(drop)
        },
    )
}

/// Makes `path` with `create` if it is missing; logs `warning` if it
/// exists and others may read it.
fn private(
    path: &Path,
    warning: &'static str,
    create: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "{warning}");
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(err) => Err(err),
    }
}
