//! Group commit: appends that arrive while a transaction is committing wait
//! for the next one, and share it, so one fsync acknowledges many messages.
//!
//! One committer task per node takes every append queued (up to
//! `MAX_BATCH`), stores them in one transaction (`Store::append_batch`) and
//! answers each. A lone message is committed at once, as before: nothing
//! waits for company. Under load a batch grows to whatever arrived during
//! the previous commit, which is what keeps the latency flat while the
//! throughput grows. Each answer still follows the durable commit of the
//! transaction that holds its message; if that commit fails, every message
//! in it is refused, so nothing unstored is ever acknowledged. Seqs stay
//! gap-free per room: they are taken in the transaction, in queue order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::{Appended, NewEntry, Result, Store, StoreError};

/// Most messages in one transaction.
pub const MAX_BATCH: usize = 256;
/// Appends waiting for the committer; past this, `append` waits (the
/// sender's connection stops reading, which is the backpressure we want).
const QUEUE: usize = 4 * MAX_BATCH;

pub struct GroupCommit {
    queue: mpsc::Sender<Job>,
    stats: Arc<Stats>,
}

/// Counts, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub messages: AtomicU64,
    pub commits: AtomicU64,
}

struct Job {
    entry: NewEntry,
    reply: oneshot::Sender<Result<Appended>>,
}

impl GroupCommit {
    /// Starts the committer for `store`; it stops when this is dropped.
    pub fn start(store: Arc<dyn Store>) -> GroupCommit {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let stats = Arc::new(Stats::default());
        tokio::spawn(commit_loop(store, jobs, stats.clone()));
        GroupCommit { queue, stats }
    }

    /// Stores the message (or finds the earlier one with its `client_id`)
    /// in the next transaction, and answers once that is committed.
    pub async fn append(&self, entry: NewEntry) -> Result<Appended> {
        self.submit(entry).await?.await.map_err(|_| stopped())?
    }

    /// Queues the message (waiting while the queue is full) and returns
    /// where its answer will come. Messages submitted one after another get
    /// seqs in that order, whether or not anyone waits in between: that is
    /// how one connection can have many messages in flight, in order.
    pub async fn submit(&self, entry: NewEntry) -> Result<oneshot::Receiver<Result<Appended>>> {
        self.submit_with(|| entry).await
    }

    /// `submit` of the entry `make` builds once there is room in the
    /// queue: a sender waiting for room holds what it was given, not the
    /// entry as well (every connection's task is sized for its biggest
    /// wait).
    pub async fn submit_with(
        &self,
        make: impl FnOnce() -> NewEntry,
    ) -> Result<oneshot::Receiver<Result<Appended>>> {
        let permit = self.queue.reserve().await.map_err(|_| stopped())?;
        let (reply, answer) = oneshot::channel();
        let entry = make();
        // Here, on the sender's task: the committer holds the transaction.
        entry.prepare();
        permit.send(Job { entry, reply });
        Ok(answer)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

fn stopped() -> StoreError {
    StoreError::Config("the committer has stopped".into())
}

async fn commit_loop(store: Arc<dyn Store>, mut jobs: mpsc::Receiver<Job>, stats: Arc<Stats>) {
    let mut entries: Vec<NewEntry> = Vec::new();
    let mut replies: Vec<oneshot::Sender<Result<Appended>>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.recv().await {
        let mut next = Some(first);
        while let Some(Job { entry, reply }) = next {
            entries.push(entry);
            replies.push(reply);
            next = if entries.len() < MAX_BATCH {
                jobs.try_recv().ok()
            } else {
                None
            };
        }
        let count = entries.len();
        let started = std::time::Instant::now();
        // The entries move into the store, and from there into the
        // messages that are delivered.
        let outcome = store.append_batch(std::mem::take(&mut entries)).await;
        metrics::histogram!(crate::prometheus::STORE_APPEND_SECONDS)
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!(crate::prometheus::STORE_APPEND_BATCH).record(count as f64);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.messages.fetch_add(count as u64, Ordering::Relaxed);
        match outcome {
            Ok(results) => {
                let stored = results
                    .iter()
                    .filter(|r| r.as_ref().is_ok_and(|a| !a.duplicate))
                    .count();
                metrics::counter!(crate::prometheus::MESSAGES_STORED).increment(stored as u64);
                for (reply, result) in replies.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                metrics::counter!(crate::prometheus::STORE_ERRORS).increment(1);
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(err.shared()));
                }
            }
        }
    }
}
