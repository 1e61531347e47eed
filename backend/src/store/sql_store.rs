//! The one SQL implementation of the store, generic over the database.
//!
//! SQLite and PostgreSQL both accept `$n` placeholders, `ON CONFLICT` and
//! `RETURNING`, so every statement is written once (`sql.rs`,
//! `append_sql.rs`, `accounts_sql.rs`, `operations.rs`, `search.rs`) and
//! runs on `SqlStore<DB>` for either. What differs is a `Dialect`: its name,
//! how full-text search is spelled, and a shortcut for a lone message that
//! only SQLite takes. Connecting and migrating are in `sqlite.rs` and
//! `postgres.rs`.
//!
//! The statements reach sqlx through `statement.rs`, so code generic over
//! the database says only `DB: Dialect`.
//!
//! Every call goes through `guarded`: a deadline, health bookkeeping, and a
//! connection that is discarded unless the call succeeded (see `health.rs`).

use std::future::Future;

use sqlx::{Database, Pool};

use super::health::{Access, Checkout};
use super::statement::{Driver, Read, RowsAffected, Statement};
use super::{NewEntry, Result, StoreHealth};

/// How a database spells "all of these words, each as a prefix" (its
/// implementations are in `search.rs`).
pub trait SearchSyntax {
    /// The search statement: `$1` the query, `$2` the user, `$3` the room
    /// ('' for all), `$4` the cursor, `$5` the limit.
    const SEARCH: &'static str;
    fn search_query(words: &[String]) -> String;
}

/// What a database adds to the shared SQL.
pub trait Dialect: Driver + SearchSyntax {
    /// "sqlite" or "postgres", as `/healthz` and the metrics say it.
    const KIND: &'static str;

    /// Whether run-time lists of parameters are numbered (`$3, $4`) or
    /// positional (`?, ?`). SQLite finds a numbered parameter by walking
    /// the statement's list of names, so binding a thousand of them (a
    /// batch's insert) is quadratic: 2 % of the server's CPU in the
    /// fan-out benchmark, gone with `?`.
    const NUMBERED: bool;

    /// A batch of one new message stored in one call, where the database
    /// makes that cheaper than the general path (see `sqlite.rs`). `None`
    /// when it is not that case or nothing was stored: the general path
    /// then finds out why.
    fn lone_message<'c>(
        conn: &'c mut Self::Connection,
        batch: &'c [NewEntry],
    ) -> impl Future<Output = std::result::Result<Option<i64>, sqlx::Error>> + Send + 'c;
}

/// The store on a SQL database: a pool and what the store knows of its
/// health.
pub struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
    pub(super) health: StoreHealth,
}

impl<DB: Database> SqlStore<DB> {
    pub(super) fn new(pool: Pool<DB>, health: StoreHealth) -> Self {
        SqlStore { pool, health }
    }

    /// Runs `call` on a connection checked out of the pool, under the
    /// store's deadline. The connection goes back to the pool only if
    /// `call` succeeded; otherwise it is closed.
    pub(super) async fn guarded<T>(
        &self,
        access: Access,
        call: impl AsyncFnOnce(&mut DB::Connection) -> Result<T>,
    ) -> Result<T> {
        self.health
            .run(access, async {
                let mut checkout = Checkout::new(self.pool.acquire().await?);
                let out = call(&mut checkout).await?;
                checkout.keep();
                Ok(out)
            })
            .await
    }
}

impl<DB: Dialect> SqlStore<DB> {
    /// Runs one statement that changes rows: how many it changed.
    pub(super) async fn change(&self, statement: Statement<'_, DB>) -> Result<u64> {
        self.guarded(Access::Write, async |conn| {
            Ok(statement.execute(conn).await?.rows_affected())
        })
        .await
    }

    /// The first row of one statement that reads, if any.
    pub(super) async fn one<R: Read + Send>(&self, select: Statement<'_, DB>) -> Result<Option<R>> {
        let read = async |conn: &mut DB::Connection| Ok(select.fetch_optional(conn).await?);
        self.guarded(Access::Read, read).await
    }

    /// Every row of one statement.
    pub(super) async fn all<R: Read + Send>(
        &self,
        access: Access,
        statement: Statement<'_, DB>,
    ) -> Result<Vec<R>> {
        self.guarded(access, async |conn| Ok(statement.fetch_all(conn).await?))
            .await
    }
}

/// `count` placeholders for parameters `first, first+1, …`, separated by
/// commas: for an `IN (…)` list built at run time. `$n`, or `?` where the
/// dialect binds by position (`Dialect::NUMBERED`). A statement uses one
/// kind only: sqlx binds a `?` to the next argument after the previous
/// `?`, whatever `$n` came before it, so every parameter of a statement
/// with run-time lists comes from here. (sqlx's `QueryBuilder` cannot be used
/// in code generic over the database: its arguments' lifetime does not
/// unify there.)
pub fn placeholders<DB: Dialect>(first: usize, count: usize) -> String {
    numbered_or_not(DB::NUMBERED, first, count)
}

fn numbered_or_not(numbered: bool, first: usize, count: usize) -> String {
    let mut out = String::with_capacity(count * 4);
    for n in first..first + count {
        if n > first {
            out.push_str(", ");
        }
        if numbered {
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push('?');
        }
    }
    out
}

/// `rows` tuples of `columns` placeholders each, from parameter `first`:
/// a multi-row `VALUES` list.
pub fn value_rows<DB: Dialect>(first: usize, rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * (columns * 5 + 4));
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        out.push_str(&placeholders::<DB>(first + row * columns, columns));
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_from_where_they_start_or_go_by_position() {
        assert_eq!(placeholders::<sqlx::Postgres>(2, 3), "$2, $3, $4");
        assert_eq!(placeholders::<sqlx::Postgres>(1, 0), "");
        assert_eq!(value_rows::<sqlx::Postgres>(1, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(placeholders::<sqlx::Sqlite>(2, 3), "?, ?, ?");
        assert_eq!(value_rows::<sqlx::Sqlite>(1, 2, 2), "(?, ?), (?, ?)");
    }
}
