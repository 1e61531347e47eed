//! The schema: numbered SQL files per database (`backend/migrations/sqlite`
//! and `backend/migrations/postgres`), embedded in the binary by
//! `sqlx::migrate!` so the binary is all an operator needs, applied in
//! order at start, each in its own transaction, and recorded in
//! `_sqlx_migrations`.
//!
//! A database made before Hearth used sqlx's migrator recorded its versions
//! in `hearth_schema` instead. Its files are the same scripts under the same
//! numbers, so `adopt_hearth_schema` records those versions as applied (with
//! the checksums of the embedded files) and drops the old table; the
//! migrator then applies whatever is newer. Tested from databases made by
//! that older Hearth (`backend/tests/fixtures/schema-10.*`).

use sqlx::Pool;

use super::Result;
use super::statement::Driver;
use sqlx::migrate::{Migrate, Migrator};

pub static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
pub static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// Brings `pool`'s database to `migrator`'s newest version: adopts an
/// older Hearth's versions (`exists`: see `adopt_hearth_schema`), then
/// applies what is newer. `first` runs first in the adopting transaction:
/// what makes nodes starting together take turns, where the database needs
/// it said.
pub async fn apply<DB>(
    pool: &Pool<DB>,
    migrator: &Migrator,
    exists: &str,
    first: Option<&str>,
) -> Result<()>
where
    DB: Driver,
    DB::Connection: Migrate,
{
    let mut tx = pool.begin().await?;
    if let Some(first) = first {
        DB::query(first).execute(&mut tx).await?;
    }
    adopt_hearth_schema::<DB>(&mut tx, migrator, exists).await?;
    tx.commit().await?;
    // sqlx's migrator takes a lock of its own while it applies.
    migrator.run(pool).await?;
    Ok(())
}

/// Records the versions in an older Hearth's `hearth_schema` as applied
/// and drops that table, on `conn` (inside the caller's transaction).
/// `exists` is this database's query for whether `hearth_schema` exists
/// (one row if it does). Does nothing on a new or an adopted database.
pub async fn adopt_hearth_schema<DB>(
    conn: &mut DB::Connection,
    migrator: &Migrator,
    exists: &str,
) -> Result<()>
where
    DB: Driver,
    DB::Connection: Migrate,
{
    let found: Option<i64> = DB::query(exists).fetch_optional(&mut *conn).await?;
    if found.is_none() {
        return Ok(());
    }
    let applied: i64 =
        DB::query("SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM hearth_schema")
            .fetch_one(&mut *conn)
            .await?;
    conn.ensure_migrations_table().await?;
    for migration in migrator.iter().filter(|m| m.version <= applied) {
        DB::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, TRUE, $3, 0) ON CONFLICT (version) DO NOTHING",
        )
        .bind(migration.version)
        .bind(&*migration.description)
        .bind(&*migration.checksum)
        .execute(&mut *conn)
        .await?;
    }
    DB::query("DROP TABLE hearth_schema")
        .execute(&mut *conn)
        .await?;
    tracing::info!(applied, "adopted the schema versions of an older Hearth");
    Ok(())
}
