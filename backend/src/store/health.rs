//! What keeps a failing database from costing us an acknowledged message,
//! and tells the operator the truth about it.
//!
//! Two rules, applied to every store call:
//! - **A connection that saw an error is never reused.** A failed `COMMIT`
//!   (a full disk, an I/O error, a reset socket) can leave a connection
//!   inside a transaction the driver no longer knows about; the next
//!   "commit" on it would then land in a transaction that is never
//!   committed, and reads on it would see that uncommitted state. So a
//!   checked-out connection is closed, not returned to the pool, unless
//!   the call succeeded (`Checkout`). The same goes for a call that timed
//!   out half-way.
//! - **Every call has a deadline**, shorter while the store is known to be
//!   failing, so a send is answered `internal` within about a second
//!   instead of hanging on a busy wait, a stopped server or a dead socket.
//!
//! `StoreHealth` remembers whether writes are failing; `/healthz` reports it
//! and a background probe (`Store::probe`) notices recovery even when
//! nobody is sending.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::Database;
use sqlx::pool::PoolConnection;

use super::{Result, StoreError};

/// The deadline of a store call while the store is known to be failing.
const FAILING_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct StoreHealth {
    /// The normal deadline of one store call.
    timeout: Duration,
    failing: AtomicBool,
    /// Why, while `failing`.
    reason: Mutex<String>,
}

/// Whether a call changes the database. Only a successful write proves the
/// store is healthy again: reads still work on a full disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl StoreHealth {
    pub fn new(timeout: Duration) -> StoreHealth {
        StoreHealth {
            timeout,
            failing: AtomicBool::new(false),
            reason: Mutex::new(String::new()),
        }
    }

    /// `Err(reason)` while writes are failing.
    pub fn status(&self) -> std::result::Result<(), String> {
        if self.failing.load(Ordering::Acquire) {
            Err(self
                .reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone())
        } else {
            Ok(())
        }
    }

    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// The deadline for the next call: short while failing (fail fast).
    pub fn timeout(&self) -> Duration {
        if self.is_failing() {
            self.timeout.min(FAILING_TIMEOUT)
        } else {
            self.timeout
        }
    }

    /// Runs one store call under the deadline and records what it says
    /// about the store's health.
    pub async fn run<T>(&self, access: Access, call: impl Future<Output = Result<T>>) -> Result<T> {
        let limit = self.timeout();
        let result = match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(limit)),
        };
        match &result {
            Ok(_) if access == Access::Write => self.recovered(),
            Ok(_) => {}
            Err(err) if err.is_fault() => self.failed(err),
            Err(_) => {}
        }
        result
    }

    fn failed(&self, err: &StoreError) {
        let reason = format!("store: {err}");
        let mut current = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::error!(%reason, "the store is failing; sends are refused until it recovers");
        }
        *current = reason;
    }

    fn recovered(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!("the store has recovered");
        }
    }
}

/// A pooled connection that goes back to the pool only if `keep` is called;
/// dropped any other way (an error, a timeout, a panic) it is closed.
pub struct Checkout<DB: Database> {
    conn: PoolConnection<DB>,
    keep: bool,
}

impl<DB: Database> Checkout<DB> {
    pub fn new(conn: PoolConnection<DB>) -> Self {
        Checkout { conn, keep: false }
    }

    /// The call succeeded: the connection is in a known state.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl<DB: Database> Drop for Checkout<DB> {
    fn drop(&mut self) {
        if !self.keep {
            tracing::debug!("discarding a database connection after a failed call");
            self.conn.close_on_drop();
        }
    }
}

impl<DB: Database> Deref for Checkout<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: Database> DerefMut for Checkout<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_write_degrades_and_a_successful_write_recovers() {
        let health = StoreHealth::new(Duration::from_secs(5));
        assert!(health.status().is_ok());
        let err: Result<()> = health
            .run(Access::Write, async {
                Err(StoreError::Database(sqlx::Error::PoolTimedOut))
            })
            .await;
        assert!(err.is_err());
        assert!(health.status().unwrap_err().contains("timed out"));
        assert_eq!(
            health.timeout(),
            FAILING_TIMEOUT,
            "fails fast while failing"
        );
        // A read that works says nothing about writes.
        health.run(Access::Read, async { Ok(()) }).await.unwrap();
        assert!(health.is_failing());
        health.run(Access::Write, async { Ok(()) }).await.unwrap();
        assert!(health.status().is_ok());
        assert_eq!(health.timeout(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_call_that_hangs_times_out() {
        let health = StoreHealth::new(Duration::from_millis(50));
        let result: Result<()> = health.run(Access::Read, std::future::pending()).await;
        assert!(matches!(result, Err(StoreError::Timeout(_))));
        assert!(health.is_failing());
    }

    #[tokio::test]
    async fn a_refusal_is_not_a_fault() {
        let health = StoreHealth::new(Duration::from_secs(5));
        let _: Result<()> = health
            .run(Access::Write, async {
                Err(StoreError::UnknownRoom("r".into()))
            })
            .await;
        assert!(health.status().is_ok());
    }
}
