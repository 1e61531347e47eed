//! Statements for SQL written once for every database.
//!
//! sqlx's `query(…).bind(…).fetch_all(…)` is generic over the database,
//! but only under a dozen bounds on types other than `DB` (`i64:
//! Encode<DB>`, `&mut DB::Connection: Executor`, …). Rust does not infer
//! such bounds from a trait on `DB`, so every impl block of the store would
//! repeat them. Here they are written once, on the blanket impl of
//! `Driver`; the store's SQL says `DB: Dialect` (which implies `Driver`) and
//! reaches sqlx through `Statement`, which binds and reads the few column
//! types the schema uses. Each call is sqlx's own, chosen at compile time;
//! rows are read by position, as sqlx reads a tuple.

use std::future::Future;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

/// sqlx's statement with its arguments, for `DB`.
pub type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// How many rows a statement changed (each driver has its own type).
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// What the store's SQL needs of a database: binding the schema's value
/// types, running a statement, and reading a column. Implemented for every
/// sqlx database that has them (SQLite and PostgreSQL here); use it
/// through `Statement` and `Columns`.
pub trait Driver: Database<QueryResult: RowsAffected> {
    fn bind_int<'q>(query: Query<'q, Self>, value: Option<i64>) -> Query<'q, Self>;
    fn bind_text<'q>(query: Query<'q, Self>, value: Option<&'q str>) -> Query<'q, Self>;
    fn bind_string<'q>(query: Query<'q, Self>, value: String) -> Query<'q, Self>;
    fn bind_bytes<'q>(query: Query<'q, Self>, value: &'q [u8]) -> Query<'q, Self>;

    fn execute<'c, 'q: 'c>(
        query: Query<'q, Self>,
        conn: &'c mut Self::Connection,
    ) -> impl Future<Output = sqlx::Result<Self::QueryResult>> + Send + 'c;
    fn fetch_optional<'c, 'q: 'c>(
        query: Query<'q, Self>,
        conn: &'c mut Self::Connection,
    ) -> impl Future<Output = sqlx::Result<Option<Self::Row>>> + Send + 'c;
    fn fetch_all<'c, 'q: 'c>(
        query: Query<'q, Self>,
        conn: &'c mut Self::Connection,
    ) -> impl Future<Output = sqlx::Result<Vec<Self::Row>>> + Send + 'c;

    fn int(row: &Self::Row, at: usize) -> sqlx::Result<Option<i64>>;
    fn text(row: &Self::Row, at: usize) -> sqlx::Result<Option<String>>;

    /// A statement to bind and run: `DB::query(SQL).bind(…).execute(conn)`.
    fn query(sql: &str) -> Statement<'_, Self> {
        Statement(sqlx::query(sql))
    }
}

/// A Rust type that goes into and comes out of `DB`'s columns.
trait Value<DB: Database>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> {}

impl<DB: Database, T> Value<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>
{
}

/// The one place that names sqlx's bounds (see the top of this file).
impl<DB> Driver for DB
where
    DB: Database<QueryResult: RowsAffected>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    String: Value<DB>,
    Option<i64>: Value<DB>,
    Option<String>: Value<DB>,
{
    fn bind_int<'q>(query: Query<'q, Self>, value: Option<i64>) -> Query<'q, Self> {
        query.bind(value)
    }

    fn bind_text<'q>(query: Query<'q, Self>, value: Option<&'q str>) -> Query<'q, Self> {
        query.bind(value)
    }

    fn bind_string<'q>(query: Query<'q, Self>, value: String) -> Query<'q, Self> {
        query.bind(value)
    }

    fn bind_bytes<'q>(query: Query<'q, Self>, value: &'q [u8]) -> Query<'q, Self> {
        query.bind(value)
    }

    fn execute<'c, 'q: 'c>(
        query: Query<'q, Self>,
        conn: &'c mut Self::Connection,
    ) -> impl Future<Output = sqlx::Result<Self::QueryResult>> + Send + 'c {
        query.execute(conn)
    }

    fn fetch_optional<'c, 'q: 'c>(
        query: Query<'q, Self>,
        conn: &'c mut Self::Connection,
    ) -> impl Future<Output = sqlx::Result<Option<Self::Row>>> + Send + 'c {
        query.fetch_optional(conn)
    }

    fn fetch_all<'c, 'q: 'c>(
        query: Query<'q, Self>,
        conn: &'c mut Self::Connection,
    ) -> impl Future<Output = sqlx::Result<Vec<Self::Row>>> + Send + 'c {
        query.fetch_all(conn)
    }

    fn int(row: &Self::Row, at: usize) -> sqlx::Result<Option<i64>> {
        row.try_get(at)
    }

    fn text(row: &Self::Row, at: usize) -> sqlx::Result<Option<String>> {
        row.try_get(at)
    }
}

/// A statement and the parameters bound to it so far.
pub struct Statement<'q, DB: Database>(Query<'q, DB>);

impl<'q, DB: Driver> Statement<'q, DB> {
    /// Binds the next parameter (`$n` in order, or the next `?`).
    pub fn bind(self, value: impl Param<'q>) -> Self {
        Statement(value.bind_to::<DB>(self.0))
    }

    /// sqlx's own statement, for code written for one database.
    pub fn into_query(self) -> Query<'q, DB> {
        self.0
    }

    pub async fn execute(self, conn: &mut DB::Connection) -> sqlx::Result<DB::QueryResult> {
        DB::execute(self.0, conn).await
    }

    /// The first row, if any.
    pub async fn fetch_optional<R: Read>(
        self,
        conn: &mut DB::Connection,
    ) -> sqlx::Result<Option<R>> {
        match DB::fetch_optional(self.0, conn).await? {
            Some(row) => Ok(Some(R::read(&mut Columns::<DB>::of(&row))?)),
            None => Ok(None),
        }
    }

    /// The first row; an error if there is none.
    pub async fn fetch_one<R: Read>(self, conn: &mut DB::Connection) -> sqlx::Result<R> {
        self.fetch_optional(conn)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    pub async fn fetch_all<R: Read>(self, conn: &mut DB::Connection) -> sqlx::Result<Vec<R>> {
        DB::fetch_all(self.0, conn)
            .await?
            .iter()
            .map(|row| R::read(&mut Columns::<DB>::of(row)))
            .collect()
    }
}

/// A value a statement takes as a parameter.
pub trait Param<'q> {
    fn bind_to<DB: Driver>(self, query: Query<'q, DB>) -> Query<'q, DB>;
}

impl<'q> Param<'q> for i64 {
    fn bind_to<DB: Driver>(self, query: Query<'q, DB>) -> Query<'q, DB> {
        DB::bind_int(query, Some(self))
    }
}

impl<'q> Param<'q> for Option<i64> {
    fn bind_to<DB: Driver>(self, query: Query<'q, DB>) -> Query<'q, DB> {
        DB::bind_int(query, self)
    }
}

impl<'q> Param<'q> for &'q str {
    fn bind_to<DB: Driver>(self, query: Query<'q, DB>) -> Query<'q, DB> {
        DB::bind_text(query, Some(self))
    }
}

impl<'q> Param<'q> for Option<&'q str> {
    fn bind_to<DB: Driver>(self, query: Query<'q, DB>) -> Query<'q, DB> {
        DB::bind_text(query, self)
    }
}

impl<'q> Param<'q> for &'q String {
    fn bind_to<DB: Driver>(self, query: Query<'q, DB>) -> Query<'q, DB> {
        DB::bind_text(query, Some(self))
    }
}

impl<'q> Param<'q> for &'q Option<String> {
    fn bind_to<DB: Driver>(self, query: Query<'q, DB>) -> Query<'q, DB> {
        DB::bind_text(query, self.as_deref())
    }
}

impl<'q> Param<'q> for String {
    fn bind_to<DB: Driver>(self, query: Query<'q, DB>) -> Query<'q, DB> {
        DB::bind_string(query, self)
    }
}

impl<'q> Param<'q> for &'q [u8] {
    fn bind_to<DB: Driver>(self, query: Query<'q, DB>) -> Query<'q, DB> {
        DB::bind_bytes(query, self)
    }
}

/// A row's columns, read left to right.
pub struct Columns<'r, DB: Database> {
    row: &'r DB::Row,
    at: usize,
}

impl<'r, DB: Driver> Columns<'r, DB> {
    fn of(row: &'r DB::Row) -> Self {
        Columns { row, at: 0 }
    }

    /// The next column, as `T`.
    pub fn next<T: Column>(&mut self) -> sqlx::Result<T> {
        let value = T::get::<DB>(self.row, self.at);
        self.at += 1;
        value
    }
}

/// A type a column reads as: the schema's integers and texts, nullable or
/// not.
pub trait Column: Sized {
    fn get<DB: Driver>(row: &DB::Row, at: usize) -> sqlx::Result<Self>;
}

impl Column for Option<i64> {
    fn get<DB: Driver>(row: &DB::Row, at: usize) -> sqlx::Result<Self> {
        DB::int(row, at)
    }
}

impl Column for Option<String> {
    fn get<DB: Driver>(row: &DB::Row, at: usize) -> sqlx::Result<Self> {
        DB::text(row, at)
    }
}

impl Column for i64 {
    fn get<DB: Driver>(row: &DB::Row, at: usize) -> sqlx::Result<Self> {
        Option::<i64>::get::<DB>(row, at)?.ok_or_else(|| null_in(at))
    }
}

impl Column for String {
    fn get<DB: Driver>(row: &DB::Row, at: usize) -> sqlx::Result<Self> {
        Option::<String>::get::<DB>(row, at)?.ok_or_else(|| null_in(at))
    }
}

/// What sqlx says when a NULL is read as a type that has none.
fn null_in(at: usize) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: at.to_string(),
        source: "unexpected NULL".into(),
    }
}

/// What a row reads as: a column, a tuple of columns, or a type of the
/// store's (`impl Read for SessionRecord`, …) that reads its fields in the
/// statement's column order.
pub trait Read: Sized {
    fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self>;
}

impl<T: Column> Read for T {
    fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self> {
        columns.next()
    }
}

/// `Read` for tuples, each part read in turn: columns, or a type of the
/// store's followed by more columns (`(StoredRoom, Option<String>)`).
macro_rules! read_tuple {
    ($($part:ident),+) => {
        impl<$($part: Read),+> Read for ($($part,)+) {
            fn read<DB: Driver>(columns: &mut Columns<'_, DB>) -> sqlx::Result<Self> {
                Ok(($($part::read(columns)?,)+))
            }
        }
    };
}

read_tuple!(A, B);
read_tuple!(A, B, C);
read_tuple!(A, B, C, D);
read_tuple!(A, B, C, D, E);
read_tuple!(A, B, C, D, E, F);
read_tuple!(A, B, C, D, E, F, G);
read_tuple!(A, B, C, D, E, F, G, H);
read_tuple!(A, B, C, D, E, F, G, H, I);
