//! The embedded default: one SQLite file in WAL mode.

use std::future::Future;
use std::str::FromStr;

use sqlx::Row;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql_store::{Dialect, SqlStore};
use super::statement::Driver;
use super::{NewEntry, Result, StoreHealth, StoreOptions};
use super::{append_sql, migrate};

/// How long a pooled connection may sit idle before it is closed.
pub const SQLITE_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Finds the table where an older Hearth kept its schema's version (see
/// `migrate.rs`).
const HEARTH_SCHEMA: &str =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'hearth_schema'";

/// The store on one SQLite file.
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

impl SqliteStore {
    pub async fn open(url: &str, store: StoreOptions) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged message is on disk, even across a power
            // cut, not only across a crash of the process.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Writers queue on the file lock instead of failing, but no
            // longer than a store call may take anyway.
            .busy_timeout(store.timeout);
        // An in-memory database exists per connection: keep exactly one.
        let max = if url.contains(":memory:") { 1 } else { 4 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            // Each connection keeps a page cache of up to 2 MiB: one that
            // was needed only for a burst gives it back after a minute.
            .idle_timeout(SQLITE_IDLE)
            // A connection to a local file does not go stale the way one
            // over a network does, and the ping sqlx sends before lending
            // one out is a round trip to the connection's own thread on
            // every store call: about a tenth of a message's cost.
            .test_before_acquire(false)
            .acquire_timeout(store.timeout)
            .connect_with(options)
            .await?;
        migrate::apply(&pool, &migrate::SQLITE, HEARTH_SCHEMA, None).await?;
        Ok(SqlStore::new(pool, StoreHealth::new(store.timeout)))
    }
}

impl Dialect for sqlx::Sqlite {
    const KIND: &'static str = "sqlite";
    const NUMBERED: bool = false;

    /// A batch of one new message (the usual case at light load) in a
    /// single call to the connection's thread, instead of four (begin, next
    /// seq, insert, commit): each call is a hand-off between threads, and
    /// those were most of a message's CPU cost. `None` when it is not that
    /// case or the message did not go in (a duplicate `client_id`, an
    /// unknown or deleted room): nothing was changed, and the general path
    /// finds out which.
    fn lone_message<'c>(
        conn: &'c mut sqlx::SqliteConnection,
        batch: &'c [NewEntry],
    ) -> impl Future<Output = std::result::Result<Option<i64>, sqlx::Error>> + Send + 'c {
        let insert = match batch {
            [m] if m.kind == common::EntryKind::Message => {
                let insert = Self::query(append_sql::SQLITE_LONE_MESSAGE).bind(m.room.as_str());
                Some(append_sql::bind_sent(insert, m).bind(append_sql::db_seq(m.reply_to)))
            }
            _ => None,
        };
        // Every statement's results are read, so the worker runs them all,
        // through the commit. If one fails the transaction is left open,
        // and the connection is closed (`SqlStore::guarded`), which rolls it back.
        async move {
            let Some(insert) = insert else {
                return Ok(None);
            };
            // sqlx's own call: `Statement`'s, generic, trips a limit of
            // the compiler's (rust-lang/rust#100013) in this `Send` future.
            let rows = insert.into_query().fetch_all(conn).await?;
            rows.first().map(|row| row.try_get(0)).transpose()
        }
    }
}
