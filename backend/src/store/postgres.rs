//! PostgreSQL, for deployments where several nodes share one history.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::migrate;
use super::sql_store::{Dialect, SqlStore};
use super::{NewEntry, Result, StoreHealth, StoreOptions};

/// Any number works (this is "HEARTH" in ASCII); it only has to be the
/// same on every node.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(79462285857864)";

/// Finds the table where an older Hearth kept its schema's version (see
/// `migrate.rs`).
const HEARTH_SCHEMA: &str =
    "SELECT CAST(1 AS BIGINT) WHERE to_regclass('hearth_schema') IS NOT NULL";

/// The store on a PostgreSQL database, which several nodes may share.
pub type PostgresStore = SqlStore<sqlx::Postgres>;

impl PostgresStore {
    pub async fn open(url: &str, store: StoreOptions) -> Result<Self> {
        Self::open_with(PgConnectOptions::from_str(url)?, store).await
    }

    /// Opens with explicit options, e.g. a `search_path` for an isolated
    /// schema in tests.
    pub async fn open_with(options: PgConnectOptions, store: StoreOptions) -> Result<Self> {
        // The server gives up on a statement (a lock wait, a stalled disk)
        // at the same deadline as we do, so it does not keep working on
        // something nobody waits for.
        let statement_timeout = format!("{}ms", store.timeout.as_millis().max(1));
        let options = options.options([("statement_timeout", statement_timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(store.timeout)
            .connect_with(options)
            .await?;
        migrate::apply(
            &pool,
            &migrate::POSTGRES,
            HEARTH_SCHEMA,
            Some(MIGRATION_LOCK),
        )
        .await?;
        Ok(SqlStore::new(pool, StoreHealth::new(store.timeout)))
    }
}

impl Dialect for sqlx::Postgres {
    const KIND: &'static str = "postgres";
    const NUMBERED: bool = true;

    /// SQLite's shortcut for a lone message (see `sqlite.rs`): here every
    /// statement is a network round trip either way, and the general path
    /// is already two.
    async fn lone_message(
        _conn: &mut sqlx::PgConnection,
        _batch: &[NewEntry],
    ) -> std::result::Result<Option<i64>, sqlx::Error> {
        Ok(None)
    }
}
