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

use common::User;
use tokio::sync::{mpsc, oneshot};

use super::{Appended, NewMessage, Result, Store, StoreError};

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
    message: Owned,
    reply: oneshot::Sender<Result<Appended>>,
}

/// A `NewMessage` that can wait in the queue.
struct Owned {
    room: String,
    id: String,
    user: User,
    content: String,
    ts: i64,
    client_id: String,
    kind: common::EntryKind,
    target: Option<u64>,
    reply_to: Option<u64>,
    moderator: bool,
}

impl Owned {
    fn borrow(&self) -> NewMessage<'_> {
        NewMessage {
            room: &self.room,
            id: &self.id,
            user: &self.user,
            content: &self.content,
            ts: self.ts,
            client_id: &self.client_id,
            kind: self.kind,
            target: self.target,
            reply_to: self.reply_to,
            moderator: self.moderator,
        }
    }
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
    pub async fn append(&self, m: NewMessage<'_>) -> Result<Appended> {
        self.submit(m).await?.await.map_err(|_| stopped())?
    }

    /// Queues the message (waiting while the queue is full) and returns
    /// where its answer will come. Messages submitted one after another get
    /// seqs in that order, whether or not anyone waits in between: that is
    /// how one connection can have many messages in flight, in order.
    pub async fn submit(&self, m: NewMessage<'_>) -> Result<oneshot::Receiver<Result<Appended>>> {
        let permit = self.queue.reserve().await.map_err(|_| stopped())?;
        let (reply, answer) = oneshot::channel();
        permit.send(Job {
            message: Owned {
                room: m.room.to_owned(),
                id: m.id.to_owned(),
                user: m.user.clone(),
                content: m.content.to_owned(),
                ts: m.ts,
                client_id: m.client_id.to_owned(),
                kind: m.kind,
                target: m.target,
                reply_to: m.reply_to,
                moderator: m.moderator,
            },
            reply,
        });
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
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let messages: Vec<NewMessage<'_>> = batch.iter().map(|job| job.message.borrow()).collect();
        let started = std::time::Instant::now();
        let outcome = store.append_batch(&messages).await;
        metrics::histogram!(crate::prometheus::STORE_APPEND_SECONDS)
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!(crate::prometheus::STORE_APPEND_BATCH).record(messages.len() as f64);
        drop(messages);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .messages
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        match outcome {
            Ok(results) => {
                let stored = results
                    .iter()
                    .filter(|r| r.as_ref().is_ok_and(|a| !a.duplicate))
                    .count();
                metrics::counter!(crate::prometheus::MESSAGES_STORED).increment(stored as u64);
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(err) => {
                metrics::counter!(crate::prometheus::STORE_ERRORS).increment(1);
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(err.shared()));
                }
            }
        }
    }
}
