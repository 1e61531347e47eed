//! Durable rooms, messages, accounts and operators' data behind the `Store`
//! trait and its parts (`Accounts`, `Operations`, `Search`, `Uploads`,
//! `Webhooks`), with two
//! implementations: SQLite (the embedded default) and PostgreSQL (shared by
//! several nodes). Which one is chosen by the URL scheme.
//!
//! The store is the authority on `seq`: `append` allocates the next seq of a
//! room and writes the message in one transaction, so seq is strictly +1 per
//! room, across restarts and across nodes sharing the database. Retention
//! deletes old messages but never lowers a room's `last_seq`, so a seq is
//! never reused.

mod accounts;
pub(crate) mod accounts_sql;
pub(crate) mod append_sql;
pub mod blobs;
mod blobs_pg;
pub mod file_sweep;
pub mod files;
pub mod group_commit;
mod health;
mod migrate;
pub(crate) mod operations;
mod postgres;
pub(crate) mod search;
mod sql;
mod sql_store;
mod sqlite;
mod statement;
mod uploads;
mod webhooks;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use common::{ChatMessage, EntryKind, Post, User};

pub use accounts::{
    Accounts, Credentials, Departure, NewSession, NewUser, RoomAccess, SessionRecord,
};
pub use blobs::{BlobStream, Blobs, DiskBlobs};
pub use blobs_pg::PgBlobs;
pub use health::StoreHealth;
pub use operations::{ApiKey, Operations, RoomScope, UserSummary};
pub use postgres::PostgresStore;
pub use search::{Search, SearchQuery, words as search_words};
pub use sqlite::SqliteStore;
pub use uploads::{FileRecord, Shared, UNSENT_FILES_KEPT_MS, Uploads};
pub use webhooks::{Backlog, DeliveryState, Webhook, Webhooks};

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("room {0:?} does not exist")]
    UnknownRoom(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("{0}")]
    Config(String),
    /// An edit or delete whose message does not exist, was deleted, is not
    /// a message, or is not this user's to change. Nothing was stored.
    #[error("no such message to change")]
    NoSuchMessage,
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database(err.into())
    }
}

impl StoreError {
    /// The same error for each of several callers (a failed batch).
    pub fn shared(&self) -> StoreError {
        match self {
            StoreError::UnknownRoom(room) => StoreError::UnknownRoom(room.clone()),
            StoreError::Database(err) => {
                StoreError::Database(sqlx::Error::Protocol(err.to_string()))
            }
            StoreError::Timeout(after) => StoreError::Timeout(*after),
            StoreError::Config(why) => StoreError::Config(why.clone()),
            StoreError::NoSuchMessage => StoreError::NoSuchMessage,
        }
    }

    /// A fault of the store itself (as opposed to a refusal of this one
    /// request): it makes the store unhealthy until a write succeeds.
    pub fn is_fault(&self) -> bool {
        matches!(self, StoreError::Database(_) | StoreError::Timeout(_))
    }
}

/// An entry on its way into a room's log (a message, or a change: see
/// `common::EntryKind`). Built once where it comes in (a connection's
/// `send`, the publish API), moved to the committer and through the store,
/// and moved again into the `ChatMessage` that is delivered: its text is
/// never copied on the way. The store assigns `seq`.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub room: String,
    /// A UUIDv7: unique, and sorted by time (search pages by it).
    pub id: String,
    pub user: User,
    pub content: String,
    pub ts: i64,
    pub client_id: String,
    pub kind: EntryKind,
    /// An edit's or a delete's message.
    pub target: Option<u64>,
    /// The message a message answers.
    pub reply_to: Option<u64>,
    /// A delete may remove anyone's message (the user owns or moderates
    /// the room), not only the user's own.
    pub moderator: bool,
    /// A message's files, claimed for it (`Uploads::claim_files`).
    pub files: Vec<common::FileInfo>,
    /// The columns derived from the above (`files_column`, `search_text`),
    /// worked out once: by `prepare` before the entry is queued, so the
    /// committer, which holds the transaction, does not. Opaque: public
    /// only so that `NewEntry { files, ..entry }` can be written.
    pub derived: Derived,
}

/// `NewEntry`'s derived columns, each made on first use.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    files: std::sync::OnceLock<Option<String>>,
    search_text: std::sync::OnceLock<Option<String>>,
    /// Not a column: the text's formatting, for the delivered message.
    formatted: std::sync::OnceLock<Option<Box<[common::markup::Block]>>>,
}

impl NewEntry {
    /// A plain message, with a new id, stamped now.
    pub fn message(room: String, user: User, content: String, client_id: String) -> Self {
        NewEntry {
            room,
            id: uuid::Uuid::now_v7().to_string(),
            user,
            content,
            ts: now_millis(),
            client_id,
            kind: EntryKind::Message,
            target: None,
            reply_to: None,
            moderator: false,
            files: Vec::new(),
            derived: Derived::default(),
        }
    }

    /// What a person's `Post` stores. `moderator`: the sender may delete
    /// anyone's message.
    pub fn of(post: Post, room: String, user: User, client_id: String, moderator: bool) -> Self {
        let (kind, content, target, reply_to) = match post {
            // Its files' ids become the files themselves when they are
            // claimed (`Uploads::claim_files`).
            Post::Message {
                content, reply_to, ..
            } => (EntryKind::Message, content, None, reply_to),
            Post::Edit { target, content } => (EntryKind::Edit, content, Some(target), None),
            Post::Delete { target } => (EntryKind::Delete, String::new(), Some(target), None),
            Post::Topic { topic } => (EntryKind::Topic, topic, None, None),
            Post::React { target, emoji, on } => {
                let kind = if on {
                    EntryKind::React
                } else {
                    EntryKind::Unreact
                };
                (kind, emoji, Some(target), None)
            }
        };
        NewEntry {
            kind,
            content,
            target,
            reply_to,
            moderator,
            ..NewEntry::message(room, user, String::new(), client_id)
        }
    }

    /// The entry as stored under `seq`.
    pub fn into_message(mut self, seq: u64) -> ChatMessage {
        self.formatted();
        let formatted = self.derived.formatted.take().flatten();
        ChatMessage {
            room: self.room,
            seq,
            id: self.id,
            user: self.user,
            content: self.content,
            ts: self.ts,
            client_id: self.client_id,
            kind: self.kind,
            target: self.target,
            reply_to: self.reply_to,
            edited: None,
            deleted: false,
            reactions: Vec::new(),
            files: self.files,
            formatted,
        }
    }

    /// Its text's formatting, as delivered (`ChatMessage::formatted`).
    fn formatted(&self) -> Option<&[common::markup::Block]> {
        let tree = self
            .derived
            .formatted
            .get_or_init(|| formatted(self.kind, &self.content));
        tree.as_deref()
    }

    /// What search indexes of its text, if not the text itself
    /// (`messages.search_text`; see `search::indexed_text`).
    pub fn search_text(&self) -> Option<&str> {
        let text = self.derived.search_text.get_or_init(|| match self.kind {
            EntryKind::Message | EntryKind::Edit => search::indexed_text(&self.content),
            _ => None,
        });
        text.as_deref()
    }

    /// Its files as stored (`messages.files`): JSON, or NULL for none.
    pub fn files_column(&self) -> Option<&str> {
        let json = self.derived.files.get_or_init(|| {
            (!self.files.is_empty())
                .then(|| serde_json::to_string(&self.files).expect("files serialize"))
        });
        json.as_deref()
    }

    /// Works out the derived columns (and the formatting) now, on the
    /// caller's task.
    pub fn prepare(&self) {
        self.search_text();
        self.files_column();
        self.formatted();
    }
}

/// What `ChatMessage::formatted` carries for an entry of this kind and
/// text: the tree of a message's or an edit's text, if it is more than the
/// text itself. Made once per entry as it is sent, and as it is read back.
pub fn formatted(kind: EntryKind, content: &str) -> Option<Box<[common::markup::Block]>> {
    match kind {
        EntryKind::Message | EntryKind::Edit => common::markup::format(content),
        _ => None,
    }
}

/// Milliseconds since the Unix epoch: every `ts` and `*_at` column.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What a joiner learns from the store besides history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinState {
    /// How far the user has read the room.
    pub read_seq: u64,
    /// Messages of other people after `read_seq`, counted up to 100.
    pub unread: u32,
    /// Of those, the ones that mention the user's `@username`.
    pub mentions: u32,
    /// The room's topic (empty: none).
    pub topic: String,
    /// The user owns or moderates the room, or created it: they set its
    /// topic and delete anyone's messages (see `RoomAccess::moderates`).
    pub moderator: bool,
    /// The user is a member (has a role): the room is one of theirs on
    /// every device.
    pub member: bool,
    /// What of the room notifies them, if they chose (`Accounts::set_notify`).
    pub notify: Option<common::Notify>,
    /// They are a member by an invitation not taken up yet.
    pub invited: bool,
    /// What they typed here and have not sent (`Accounts::set_draft`).
    pub draft: Option<String>,
    /// They left the room or were removed from it, and have not joined it
    /// afresh since (`Accounts::remove_member`).
    pub departed: Option<Departure>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub message: ChatMessage,
    /// The same user already sent this `client_id` to this room; `message`
    /// is the original and nothing new was stored.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    pub name: String,
    pub created_at: i64,
    pub created_by: String,
    pub last_seq: u64,
    /// When its newest message was sent (when it was created, if it has
    /// none), in ms since the epoch.
    pub last_active: i64,
    pub visibility: common::Visibility,
}

/// A room as a user entering it finds it (`Store::enter_room`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entered {
    pub last_seq: u64,
    pub access: RoomAccess,
    /// When this room (this incarnation of the name) was created.
    pub created_at: i64,
}

/// Messages and rooms; accounts, sessions and membership are a
/// supertrait's (`accounts.rs`), and so are operators' commands and API
/// keys (`operations.rs`), and full-text search (`search.rs`).
#[async_trait]
pub trait Store: Accounts + Operations + Search + Uploads + Webhooks {
    /// Enters `name` as `user_id` in one transaction: creates it (public,
    /// created by the user) if it does not exist and `create` is set, then
    /// reads its newest seq and what the user may do in it. `None`: there
    /// is no such room (and `create` was not set).
    ///
    /// Access is read in the same transaction that creates the room, after
    /// it exists: a join racing the creation of a private room of the same
    /// name then sees the private room, never the public one it meant to
    /// make (see `hub/admission.rs`).
    async fn enter_room(
        &self,
        name: &str,
        user_id: &str,
        create: bool,
        now_ms: i64,
    ) -> Result<Option<Entered>>;

    /// Creates the room, public, if it is new. Returns its `last_seq`.
    async fn ensure_room(&self, name: &str, created_by: &str, now_ms: i64) -> Result<u64> {
        Ok(self
            .enter_room(name, created_by, true, now_ms)
            .await?
            .map_or(0, |entered| entered.last_seq))
    }

    /// Allocates the next seq and stores the entry, unless this user
    /// already sent this `client_id` to this room. An edit or a delete
    /// changes its message in the same transaction (a deleted message's
    /// text, and that of its edits, is erased), and a topic the room's; one
    /// whose message is not there to change is refused (`NoSuchMessage`).
    async fn append(&self, entry: NewEntry) -> Result<Appended> {
        self.append_batch(vec![entry])
            .await?
            .pop()
            .expect("one answer per message")
    }

    /// `append` for each message, in order, in one transaction: one commit
    /// (one fsync) for all. A message for an unknown room is refused on its
    /// own; any other failure refuses the whole batch, so nothing is
    /// acknowledged that was not committed. See `group_commit`.
    async fn append_batch(&self, batch: Vec<NewEntry>) -> Result<Vec<Result<Appended>>>;

    /// Log entries with `after < seq <= up_to`, oldest first, at most
    /// `limit`; messages in their current state (edited, deleted).
    async fn range(
        &self,
        room: &str,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<Vec<ChatMessage>>;

    /// The newest `limit` log entries with `seq < before`, oldest first;
    /// messages in their current state.
    async fn page_before(&self, room: &str, before: u64, limit: u32) -> Result<Vec<ChatMessage>>;

    /// The newest seq of each of these rooms that exists, in no order:
    /// one statement per thousand rooms, however many ask (a node checks
    /// all its active rooms at once, `Hub::check_tails`).
    async fn last_seqs(&self, rooms: &[&str]) -> Result<Vec<(String, u64)>>;

    /// Every room, by name.
    async fn rooms(&self) -> Result<Vec<StoredRoom>>;

    /// One page of the rooms `user_id` may see (public ones, and private
    /// ones they belong to, with their role), by name: those after `after`
    /// whose name starts with `prefix`, at most `limit`.
    async fn rooms_page(
        &self,
        user_id: &str,
        after: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<(StoredRoom, Option<common::Role>)>>;

    /// Deletes messages beyond the newest `keep_per_room` of each room, and
    /// messages older than `older_than_ms`. Returns how many were deleted.
    async fn prune(&self, keep_per_room: Option<u64>, older_than_ms: Option<i64>) -> Result<u64>;

    /// `user_id` has read `room` up to `seq`; a lower seq than before is
    /// ignored (another tab may report late).
    async fn mark_read(&self, user_id: &str, room: &str, seq: u64) -> Result<()>;

    /// `mark_read` for each (user, room, seq), in one transaction (the hub
    /// writes read positions together: `hub/read_marks.rs`). Each (user,
    /// room) at most once.
    async fn mark_read_batch(&self, marks: &[(&str, &str, u64)]) -> Result<()>;

    /// How far `user_id` has read `room`, how many messages of other people
    /// follow (counted up to 100) and how many of those mention `username`,
    /// the room's topic, and whether the user moderates it.
    async fn join_state(
        &self,
        user_id: &str,
        username: Option<&str>,
        room: &str,
    ) -> Result<JoinState>;

    /// For a list of rooms (each with its last seq): `join_state`'s read
    /// position, unread counts, notification choice and draft, for those
    /// the user is a member of. One query for all, then the counts of the
    /// rooms with something past the read position, on one connection.
    async fn member_states(
        &self,
        user_id: &str,
        username: Option<&str>,
        rooms: &[(&str, u64)],
    ) -> Result<Vec<(String, JoinState)>>;

    /// A tiny write, to learn whether the store takes writes again.
    async fn probe(&self, now_ms: i64) -> Result<()>;

    /// Whether writes are failing right now, and why.
    fn health(&self) -> &StoreHealth;

    /// "sqlite" or "postgres".
    fn kind(&self) -> &'static str;
}

/// How the store connects: one deadline for every call (and for SQLite's
/// busy wait and PostgreSQL's `statement_timeout`).
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    pub timeout: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// Opens the store named by `url`: `sqlite://path` (or `sqlite::memory:`) or
/// `postgres://…`. Without a URL, an SQLite file in the data dir.
/// The file store that goes with the database at `url`: the data dir's
/// `files/` beside SQLite, the database itself with PostgreSQL (which every
/// node shares).
pub async fn open_blobs(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Blobs>> {
    match url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(PgBlobs::connect(url).await?))
        }
        _ => {
            let root = data_dir.join("files");
            let blobs = DiskBlobs::open(root.clone())
                .map_err(|e| StoreError::Config(format!("creating {}: {e}", root.display())))?;
            Ok(Arc::new(blobs))
        }
    }
}

pub async fn open(
    url: Option<&str>,
    data_dir: &Path,
    options: StoreOptions,
) -> Result<Arc<dyn Store>> {
    let url = match url {
        Some(url) => url.to_owned(),
        None => {
            let file = data_dir.join("hearth.db");
            crate::store::files::private_dir(data_dir)
                .and_then(|()| crate::store::files::private_file(&file))
                .map_err(|e| StoreError::Config(format!("creating {}: {e}", file.display())))?;
            format!("sqlite://{}", file.display())
        }
    };
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(&url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(&url, options).await?))
    } else {
        Err(StoreError::Config(format!(
            "unsupported database URL {:?}: use sqlite://… or postgres://…",
            url.split(':').next().unwrap_or_default()
        )))
    }
}

/// Seqs are u64 on the wire and BIGINT in the database.
fn db_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}
