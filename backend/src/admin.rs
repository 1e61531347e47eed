//! `hearth admin …`: operators' commands, run against the same store as the
//! server (the same `--data-dir` or `--database-url`), while it runs.
//!
//! Output is JSON Lines, one object per line, so it can be piped into `jq`
//! or a script. A running server notices what these commands change the way
//! it notices its own nodes' changes: revoked sessions through its
//! revocation poll (`--revocation-poll-ms`).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::Subcommand;
use serde_json::json;

use crate::Config;
use crate::store::{self, Store, StoreOptions};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Every room: name, visibility, newest seq, creator, last activity.
    Rooms,
    /// One account: its id, names and room memberships.
    User {
        /// The username (case does not matter).
        username: String,
    },
    /// Signs the user out everywhere: every session is revoked, and the
    /// servers close its sockets (4001) within their revocation poll.
    RevokeSessions { username: String },
    /// A room's whole history, oldest first, one message per line.
    Export { room: String },
}

/// Messages read from the store per query while exporting.
const EXPORT_PAGE: u32 = 1_000;

pub async fn run(
    config: &Config,
    command: AdminCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if config.database_url.is_none() {
        let file = config.data_dir.join("hearth.db");
        ensure!(
            file.exists(),
            "no database at {} (is --data-dir / HEARTH_DATA_DIR the server's?)",
            file.display()
        );
    }
    let store = store::open(
        config.database_url.as_deref(),
        &config.data_dir,
        StoreOptions {
            timeout: Duration::from_millis(config.store_timeout_ms.max(1)),
        },
    )
    .await
    .context("opening the store")?;
    match command {
        AdminCommand::Rooms => {
            for room in store.rooms().await? {
                writeln!(
                    out,
                    "{}",
                    json!({
                        "name": room.name,
                        "visibility": room.visibility,
                        "last_seq": room.last_seq,
                        "created_by": room.created_by,
                        "created_at": room.created_at,
                        "last_active": room.last_active,
                    })
                )?;
            }
        }
        AdminCommand::User { username } => {
            let user = find(store.as_ref(), &username).await?;
            let rooms: Vec<_> = store
                .memberships(&user.id)
                .await?
                .into_iter()
                .map(|(room, role)| json!({ "room": room, "role": role }))
                .collect();
            writeln!(out, "{}", json!({ "user": user, "memberships": rooms }))?;
        }
        AdminCommand::RevokeSessions { username } => {
            let user = find(store.as_ref(), &username).await?;
            let revoked = store
                .revoke_sessions_except(&user.id, "", crate::hub::now_millis())
                .await?;
            writeln!(
                out,
                "{}",
                json!({ "user": user.id, "revoked_sessions": revoked.len() })
            )?;
        }
        AdminCommand::Export { room } => {
            let room = common::validate::canonical_room(&room);
            if store.room_access(&room, "").await?.is_none() {
                bail!("no room named {room:?}");
            }
            let mut after = 0;
            loop {
                let page = store.range(&room, after, u64::MAX / 2, EXPORT_PAGE).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for message in &page {
                    serde_json::to_writer(&mut *out, message)?;
                    out.write_all(b"\n")?;
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

async fn find(store: &dyn Store, username: &str) -> anyhow::Result<common::User> {
    let username = common::validate::canonical_username(username);
    match store.credentials(&username).await? {
        Some(found) => Ok(found.user),
        None => bail!("no account named {username:?}"),
    }
}
