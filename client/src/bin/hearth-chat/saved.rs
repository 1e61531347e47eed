//! Sessions kept between runs: one token per server, in
//! `<config dir>/hearth/sessions.json` (`$XDG_CONFIG_HOME` on Linux, or
//! `$HEARTH_CONFIG_DIR`), readable by its owner only (0600 in a 0700
//! directory): a token is a password until it is signed out.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Saved {
    pub username: String,
    pub token: String,
}

pub struct Sessions {
    path: PathBuf,
}

impl Sessions {
    pub fn open() -> Result<Sessions> {
        let dir = match std::env::var_os("HEARTH_CONFIG_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => dirs::config_dir()
                .context("this system has no config directory: set HEARTH_CONFIG_DIR")?
                .join("hearth"),
        };
        Ok(Sessions {
            path: dir.join("sessions.json"),
        })
    }

    pub fn get(&self, server: &str) -> Option<Saved> {
        self.read().remove(server)
    }

    pub fn put(&self, server: &str, saved: Option<Saved>) -> Result<()> {
        let mut all = self.read();
        match saved {
            Some(saved) => all.insert(server.to_owned(), saved),
            None => all.remove(server),
        };
        self.write(&all)
            .with_context(|| format!("could not save the session in {}", self.path.display()))
    }

    fn read(&self) -> BTreeMap<String, Saved> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Written to a new file (created 0600) and renamed over the old: a
    /// crash leaves the old file or the new one, never half of either.
    fn write(&self, all: &BTreeMap<String, Saved>) -> std::io::Result<()> {
        let dir = self.path.parent().expect("a file in a directory");
        create_private_dir(dir)?;
        let temp = self.path.with_extension("json.new");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&temp)?;
        serde_json::to_writer_pretty(&file, all)?;
        file.sync_all()?;
        std::fs::rename(&temp, &self.path)
    }

    #[cfg(test)]
    fn at(path: PathBuf) -> Sessions {
        Sessions { path }
    }
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_kept_per_server_readable_by_its_owner_only() {
        let dir = std::env::temp_dir().join(format!("hearth-chat-{}", uuid::Uuid::new_v4()));
        let sessions = Sessions::at(dir.join("hearth").join("sessions.json"));
        assert_eq!(sessions.get("https://a"), None);
        let alice = Saved {
            username: "alice".into(),
            token: "t1".into(),
        };
        sessions.put("https://a", Some(alice.clone())).unwrap();
        sessions
            .put(
                "https://b",
                Some(Saved {
                    username: "bob".into(),
                    token: "t2".into(),
                }),
            )
            .unwrap();
        assert_eq!(sessions.get("https://a"), Some(alice));
        sessions.put("https://b", None).unwrap();
        assert_eq!(sessions.get("https://b"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = std::fs::metadata(dir.join("hearth/sessions.json")).unwrap();
            assert_eq!(file.permissions().mode() & 0o777, 0o600);
            let folder = std::fs::metadata(dir.join("hearth")).unwrap();
            assert_eq!(folder.permissions().mode() & 0o777, 0o700);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
