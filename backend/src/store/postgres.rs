//! PostgreSQL, for deployments where several nodes share one history.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::migrate;
use super::sql_store::{Dialect, SqlStore};
use super::{NewEntry, Result, StoreHealth, StoreOptions};

/// Any constant works; it only has to be the same on every node.
const MIGRATION_LOCK: i64 = 0x4845_4152_5448; // "HEARTH"

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
        migrate(&pool).await?;
        Ok(SqlStore::new(pool, StoreHealth::new(store.timeout)))
    }
}

async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    // Nodes starting together take turns; DDL is transactional here.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    migrate::adopt_hearth_schema::<sqlx::Postgres>(
        &mut tx,
        &migrate::POSTGRES,
        "SELECT CAST(1 AS BIGINT) WHERE to_regclass('hearth_schema') IS NOT NULL",
    )
    .await?;
    tx.commit().await?;
    // sqlx's migrator takes a lock of its own while it applies.
    migrate::POSTGRES.run(pool).await?;
    Ok(())
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
