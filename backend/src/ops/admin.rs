//! `hearth admin …`: operators' commands, run against the same store as the
//! server (the same `--data-dir` or `--database-url`), while it runs.
//!
//! Output is JSON Lines, one object per line, so it can be piped into `jq`
//! or a script. A running server notices what these commands change the way
//! it notices its own nodes' changes: revoked sessions through its
//! revocation poll (`--revocation-poll-ms`); API keys on their next use;
//! webhooks on their next poll (`--webhook-poll-ms`).
//! A deleted room is gone for everyone who looks it up; people connected
//! to it at that moment see it as left when they next send (`not_joined`).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::Subcommand;
use serde_json::json;

use crate::Config;
use crate::store::{self, ApiKey, DeliveryState, RoomScope, Store, StoreOptions, Webhook};

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Every room, or those whose name starts with PREFIX: name,
    /// visibility, newest seq, creator, last activity.
    Rooms { prefix: Option<String> },
    /// Accounts and guests, oldest first: all of them, or those whose
    /// username or display name starts with PREFIX.
    Users {
        prefix: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// One account: its id, names and room memberships.
    User {
        /// The username (case does not matter).
        username: String,
    },
    /// Deletes a room: its messages, members and read positions. Its name
    /// may be used again later; seqs then continue where they stopped.
    DeleteRoom { room: String },
    /// Deletes what a user sent: everywhere, or in one room.
    DeleteMessages {
        /// The username, or the user id (a guest has no username).
        user: String,
        #[arg(long)]
        room: Option<String>,
    },
    /// API keys for `POST /api/rooms/{room}/messages`.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Signs the user out everywhere: every session is revoked, and the
    /// servers close its sockets (4001) within their revocation poll.
    RevokeSessions { username: String },
    /// A room's whole history, oldest first, one message per line.
    Export { room: String },
    /// Outgoing webhooks: new messages POSTed to a URL, signed.
    #[command(subcommand)]
    Webhook(WebhookCommand),
}

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// POSTs every new message of these rooms to URL, from now on, and
    /// prints the webhook (with its secret, if one was made for it).
    Create {
        /// Where to POST: http or https.
        url: String,
        /// Room names separated by commas, or `*` for every public room
        /// (private rooms and direct messages only when named).
        #[arg(long)]
        rooms: String,
        /// The HMAC-SHA256 key the receiver checks `Hearth-Signature` with
        /// (at least 16 characters). Made up and printed once if not given.
        #[arg(long, env = "HEARTH_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Also edits, deletes, topics and reactions.
        #[arg(long)]
        changes: bool,
        /// Allows a loopback, private or link-local address (the server
        /// also needs `--webhook-allow-private` to deliver there).
        #[arg(long)]
        allow_private: bool,
    },
    /// Every webhook (never its secret): rooms, state (delivering, failing,
    /// paused), the last error, and how many entries wait.
    List,
    /// Deletes a webhook: nothing more is delivered.
    Delete { id: String },
    /// Resumes a paused webhook: it delivers what waits, from where it
    /// stopped.
    Resume { id: String },
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Makes a key and prints it, once: only its hash is kept.
    Create {
        /// The name its messages are sent under (a bot's display name).
        name: String,
        /// The rooms it may post to: names separated by commas, or `*` for
        /// every room.
        #[arg(long)]
        rooms: String,
    },
    /// Revokes a key by its id: it is refused (401) from its next use.
    Revoke { id: String },
    /// Every key (never the key itself): id, name, rooms, when created and
    /// revoked.
    List,
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
        AdminCommand::Rooms { prefix } => {
            let prefix = common::validate::canonical_room(prefix.as_deref().unwrap_or_default());
            for room in store.rooms().await? {
                if !room.name.starts_with(&prefix) {
                    continue;
                }
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
        AdminCommand::Users { prefix, limit } => {
            let prefix = prefix.unwrap_or_default();
            for found in store.find_users(prefix.trim(), limit).await? {
                writeln!(
                    out,
                    "{}",
                    json!({ "user": found.user, "created_at": found.created_at })
                )?;
            }
        }
        AdminCommand::DeleteRoom { room } => {
            let room = common::validate::canonical_room(&room);
            let Some(messages) = store.delete_room(&room, crate::hub::now_millis()).await? else {
                bail!("no room named {room:?}");
            };
            writeln!(
                out,
                "{}",
                json!({ "deleted_room": room, "deleted_messages": messages })
            )?;
        }
        AdminCommand::DeleteMessages { user, room } => {
            let user = match find(store.as_ref(), &user).await {
                Ok(found) => found,
                Err(by_name) => match store.credentials_by_id(user.trim()).await? {
                    Some(found) => found.user,
                    None => return Err(by_name.context("no user with that id either")),
                },
            };
            let room = room.map(|room| common::validate::canonical_room(&room));
            let deleted = store
                .delete_user_messages(&user.id, room.as_deref())
                .await?;
            writeln!(
                out,
                "{}",
                json!({ "user": user.id, "room": room, "deleted_messages": deleted })
            )?;
        }
        AdminCommand::ApiKey(command) => api_key(store.as_ref(), command, out).await?,
        AdminCommand::Webhook(command) => webhook(store.as_ref(), command, out).await?,
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

async fn api_key(
    store: &dyn Store,
    command: ApiKeyCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create { name, rooms } => {
            let name = common::validate::display_name(&name)
                .map_err(|why| anyhow::anyhow!("the name: {why}"))?;
            let Some(rooms) = RoomScope::parse(&rooms) else {
                bail!("--rooms: room names separated by commas, or * for every room");
            };
            let key = ApiKey {
                id: uuid::Uuid::new_v4().to_string(),
                name: name.to_owned(),
                rooms,
                created_at: crate::hub::now_millis(),
                revoked_at: None,
            };
            let secret = crate::auth::new_secret(crate::auth::API_KEY_PREFIX);
            store
                .create_api_key(&key, &crate::auth::secret_hash(&secret))
                .await?;
            writeln!(
                out,
                "{}",
                json!({ "key": secret, "api_key": summary(&key) })
            )?;
            eprintln!("Keep the key now: it is not stored and cannot be shown again.");
        }
        ApiKeyCommand::Revoke { id } => {
            ensure!(
                store
                    .revoke_api_key(id.trim(), crate::hub::now_millis())
                    .await?,
                "no live API key with id {id:?}"
            );
            writeln!(out, "{}", json!({ "revoked": id.trim() }))?;
        }
        ApiKeyCommand::List => {
            for key in store.api_keys().await? {
                writeln!(out, "{}", summary(&key))?;
            }
        }
    }
    Ok(())
}

/// The shortest secret `webhook create --secret` takes.
const MIN_WEBHOOK_SECRET: usize = 16;
/// Rooms counted per webhook by `webhook list`.
const LIST_BACKLOG_ROOMS: u32 = 10_000;

async fn webhook(
    store: &dyn Store,
    command: WebhookCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match command {
        WebhookCommand::Create {
            url,
            rooms,
            secret,
            changes,
            allow_private,
        } => {
            let url = crate::webhooks::target::parse_url(&url).map_err(anyhow::Error::msg)?;
            if !allow_private && let Some(why) = crate::webhooks::target::refuse_host(&url) {
                bail!(
                    "{why}: a webhook may not reach the server's own network \
                     (--allow-private here and --webhook-allow-private on the server allow it)"
                );
            }
            let Some(rooms) = RoomScope::parse(&rooms) else {
                bail!("--rooms: room names separated by commas, or * for every public room");
            };
            let made = secret.is_none();
            let secret = match secret {
                Some(secret) => {
                    ensure!(
                        secret.chars().count() >= MIN_WEBHOOK_SECRET,
                        "--secret: at least {MIN_WEBHOOK_SECRET} characters"
                    );
                    secret
                }
                None => crate::auth::new_secret("whsec_"),
            };
            let hook = Webhook {
                id: uuid::Uuid::new_v4().to_string(),
                url: url.to_string(),
                rooms,
                secret,
                changes,
                created_at: crate::hub::now_millis(),
                state: DeliveryState::default(),
            };
            store.create_webhook(&hook).await?;
            let mut line = json!({ "webhook": webhook_summary(&hook, 0) });
            if made {
                line["secret"] = json!(hook.secret);
                eprintln!("Keep the secret now: give it to the receiver; it is not shown again.");
            }
            writeln!(out, "{line}")?;
        }
        WebhookCommand::List => {
            for hook in store.webhooks().await? {
                let pending: u64 = store
                    .webhook_backlog(&hook, LIST_BACKLOG_ROOMS)
                    .await?
                    .iter()
                    .map(|room| room.last_seq - room.delivered_seq)
                    .sum();
                writeln!(out, "{}", webhook_summary(&hook, pending))?;
            }
        }
        WebhookCommand::Delete { id } => {
            ensure!(
                store.delete_webhook(id.trim()).await?,
                "no webhook with id {id:?}"
            );
            writeln!(out, "{}", json!({ "deleted": id.trim() }))?;
        }
        WebhookCommand::Resume { id } => {
            let id = id.trim();
            let Some(hook) = store.webhooks().await?.into_iter().find(|h| h.id == id) else {
                bail!("no webhook with id {id:?}");
            };
            // From a clean slate: the day of retries counts again.
            store
                .set_delivery_state(id, &DeliveryState::default())
                .await?;
            writeln!(
                out,
                "{}",
                json!({ "resumed": id, "was_paused": hook.state.paused_at.is_some() })
            )?;
        }
    }
    Ok(())
}

/// A webhook as `webhook list` shows it. `pending`: entries of its rooms
/// after its cursors (those it will skip, such as changes, included).
fn webhook_summary(hook: &Webhook, pending: u64) -> serde_json::Value {
    let state = &hook.state;
    let status = match (state.paused_at, state.failures) {
        (Some(_), _) => "paused",
        (None, 0) => "delivering",
        (None, _) => "failing",
    };
    json!({
        "id": hook.id,
        "url": hook.url,
        "rooms": hook.rooms.to_text(),
        "changes": hook.changes,
        "created_at": hook.created_at,
        "status": status,
        "failures": state.failures,
        "failing_since": state.failing_since,
        "next_attempt_at": (state.failures > 0).then_some(state.next_attempt_at),
        "last_error": state.last_error,
        "paused_at": state.paused_at,
        "pending": pending,
    })
}

fn summary(key: &ApiKey) -> serde_json::Value {
    json!({
        "id": key.id,
        "name": key.name,
        "rooms": key.rooms.to_text(),
        "bot": key.bot().id,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    })
}

async fn find(store: &dyn Store, username: &str) -> anyhow::Result<common::User> {
    let username = common::validate::canonical_username(username);
    match store.credentials(&username).await? {
        Some(found) => Ok(found.user),
        None => bail!("no account named {username:?}"),
    }
}
