//! The node's background loops, each on one tracker that sees the
//! shutdown: retention, the store probe, the revocation (and deleted-room)
//! poll, unloading idle rooms, forgetting idle rate-limit buckets, outgoing
//! webhooks, and,
//! between nodes, the tail check, remote delivery and presence.
//!
//! Every loop runs under `Tasks::spawn`, which ends it at its next `.await`
//! once the server shuts down, and `Server::wait` waits for all of them: a
//! test that starts a server again on the same data dir in one runtime
//! does not find the old one's loops still writing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::AppState;
use crate::broker::{Broker, Delivery};
use crate::config::Config;
use crate::hub::Hub;
use crate::store::{Blobs, Store};

/// Where background loops run: tracked, and stopped on shutdown.
#[derive(Clone)]
pub struct Tasks {
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Tasks {
    pub fn new(shutdown: CancellationToken) -> Tasks {
        Tasks {
            tracker: TaskTracker::new(),
            shutdown,
        }
    }

    /// Runs `task` until it ends or the server shuts down.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => tracing::debug!(task = name, "stopped for shutdown"),
                _ = task => {}
            }
        });
    }

    /// Waits for every loop to have stopped, at most `grace`; false if
    /// some did not.
    pub async fn stopped(&self, grace: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

pub fn retention(tasks: &Tasks, config: &Config, store: Arc<dyn Store>) {
    let keep = (config.retain_messages > 0).then_some(config.retain_messages);
    let max_age_ms =
        (config.retain_secs > 0).then(|| config.retain_secs.saturating_mul(1000) as i64);
    if keep.is_none() && max_age_ms.is_none() {
        return;
    }
    let every = Duration::from_secs(config.retention_interval_secs.max(1));
    tasks.spawn("retention", async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let cutoff = max_age_ms.map(|age| crate::hub::now_millis() - age);
            match store.prune(keep, cutoff).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "retention removed old messages"),
                Err(err) => tracing::warn!(%err, "retention failed"),
            }
        }
    });
}

/// Keeps the file store to what files refer to (`store/file_sweep.rs`).
pub fn file_sweep(tasks: &Tasks, config: &Config, store: Arc<dyn Store>, blobs: Arc<dyn Blobs>) {
    let every = Duration::from_secs(config.file_sweep_secs.max(1));
    tasks.spawn("file sweep", async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let now = crate::hub::now_millis();
            match crate::store::file_sweep::sweep(&*store, &*blobs, now).await {
                Ok(swept) if swept == Default::default() => {}
                Ok(swept) => tracing::info!(
                    files = swept.files,
                    contents = swept.contents,
                    "file sweep removed what nothing refers to"
                ),
                Err(err) => tracing::warn!(%err, "file sweep failed"),
            }
        }
    });
}

pub fn store_probe(tasks: &Tasks, config: &Config, store: Arc<dyn Store>) {
    let failing_every = Duration::from_millis(config.store_probe_ms.max(10));
    let healthy_every = failing_every * 10;
    tasks.spawn("store probe", async move {
        loop {
            let wait = if store.health().is_failing() {
                failing_every
            } else {
                healthy_every
            };
            tokio::time::sleep(wait).await;
            if let Err(err) = store.probe(crate::hub::now_millis()).await {
                tracing::debug!(%err, "store probe failed");
            }
        }
    });
}

pub fn revocation_poll(tasks: &Tasks, config: &Config, hub: Arc<Hub>) {
    let every = Duration::from_millis(config.revocation_poll_ms.max(100));
    tasks.spawn("revocation poll", async move {
        // Overlapping windows: a revocation committed just before a poll
        // with a slightly skewed clock is still seen.
        let overlap = (every.as_millis() as i64) * 2 + 5_000;
        let mut since = crate::hub::now_millis() - overlap;
        let mut last_prune = std::time::Instant::now() - Duration::from_secs(3600);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let started = crate::hub::now_millis();
            // Hourly: sessions that ended a week ago are forgotten (a
            // revoked one only needs to be seen by every node's poll).
            if last_prune.elapsed() >= Duration::from_secs(3600) {
                last_prune = std::time::Instant::now();
                let week = 7 * 24 * 3600;
                let now = crate::auth::now_secs();
                match hub
                    .store()
                    .prune_sessions(now.saturating_sub(week), started - week as i64 * 1000)
                    .await
                {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "forgot old sessions"),
                    Err(err) => tracing::debug!(%err, "pruning sessions failed"),
                }
            }
            // Revoked sessions close their sockets, and deleted rooms are
            // unloaded (`hearth admin` runs apart from the nodes).
            let revoked = hub.store().revoked_since(since).await;
            let deleted = hub.store().deleted_rooms_since(since).await;
            match (revoked, deleted) {
                (Ok(ids), Ok(rooms)) => {
                    let closed = hub.live_sessions().revoke(&ids);
                    if closed > 0 {
                        tracing::info!(closed, "closed sockets of revoked sessions");
                    }
                    for (room, created_at) in rooms {
                        hub.unload_deleted(&room, created_at);
                    }
                    since = started - overlap;
                }
                (Err(err), _) | (_, Err(err)) => {
                    tracing::debug!(%err, "polling revoked sessions and deleted rooms failed");
                }
            }
        }
    });
}

pub fn room_unloading(tasks: &Tasks, config: &Config, hub: Arc<Hub>) {
    let grace = Duration::from_secs(config.room_unload_secs);
    let every = (grace / 4).clamp(Duration::from_millis(250), Duration::from_secs(15));
    tasks.spawn("room unloading", async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let unloaded = hub.unload_idle(grace);
            if unloaded > 0 {
                tracing::debug!(unloaded, loaded = hub.loaded_rooms(), "unloaded idle rooms");
            }
        }
    });
}

pub fn throttle_cleanup(tasks: &Tasks, state: Arc<AppState>) {
    tasks.spawn("throttle cleanup", async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            state.throttle.forget_idle();
        }
    });
}

pub fn tail_check(tasks: &Tasks, config: &Config, hub: Arc<Hub>) {
    let every = Duration::from_millis(config.tail_check_ms.max(100));
    tasks.spawn("tail check", async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            hub.check_tails(every * 15).await;
        }
    });
}

pub fn remote_delivery(tasks: &Tasks, hub: Arc<Hub>, broker: &dyn Broker) {
    use tokio::sync::broadcast::error::RecvError;
    let mut deliveries = broker.subscribe();
    tasks.spawn("remote delivery", async move {
        loop {
            match deliveries.recv().await {
                Ok(Delivery::Envelope(envelope)) => hub.deliver_remote(&envelope),
                Ok(Delivery::Resubscribed) => {
                    metrics::counter!(crate::prometheus::BROKER_RECONNECTS).increment(1);
                    tracing::info!("broker reconnected; catching up from the store");
                    hub.catch_up().await;
                }
                Err(RecvError::Lagged(missed)) => {
                    metrics::counter!(crate::prometheus::BROKER_LAGGED).increment(missed);
                    // Same remedy as a reconnect: the store has everything.
                    tracing::warn!(missed, "broker delivery lagged; catching up from the store");
                    hub.catch_up().await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

pub fn presence(tasks: &Tasks, config: &Config, hub: Arc<Hub>) {
    let every = Duration::from_millis(config.presence_refresh_ms.max(50));
    let ttl = Duration::from_millis(config.presence_ttl_ms.max(config.presence_refresh_ms * 2));
    tasks.spawn("presence", async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = hub.presence_changed() => {
                    // Let a burst of joins settle into one write.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let started = std::time::Instant::now();
            hub.sync_presence(ttl, every).await;
            metrics::histogram!(crate::prometheus::PRESENCE_SYNC_SECONDS)
                .record(started.elapsed().as_secs_f64());
        }
    });
}

/// Outgoing webhooks: this node delivers those whose lease it holds
/// (`webhooks/mod.rs`).
pub fn webhooks(tasks: &Tasks, config: &Config, store: Arc<dyn Store>, node: String) {
    match crate::webhooks::deliveries(config, store, node) {
        Ok(deliveries) => tasks.spawn("webhooks", deliveries),
        Err(err) => tracing::error!(%err, "webhooks are off: no HTTP client"),
    }
}

/// Writes read positions together (`hub/read_marks.rs`): every
/// `FLUSH_EVERY`, or sooner when many wait. Shutdown writes the last ones
/// (`Server::wait`).
pub fn read_marks(tasks: &Tasks, hub: Arc<Hub>) {
    tasks.spawn("read marks", async move {
        loop {
            hub.reads_due().await;
            hub.flush_reads().await;
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A loop that never ends by itself stops at shutdown, and `stopped`
    /// says when it has.
    #[tokio::test]
    async fn loops_stop_at_shutdown_and_are_waited_for() {
        let shutdown = CancellationToken::new();
        let tasks = Tasks::new(shutdown.clone());
        let ticks = Arc::new(AtomicU32::new(0));
        let counted = ticks.clone();
        tasks.spawn("ticker", async move {
            loop {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !tasks.stopped(Duration::from_millis(50)).await,
            "still running before the shutdown"
        );
        shutdown.cancel();
        assert!(tasks.stopped(Duration::from_secs(1)).await);
        let after = ticks.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            ticks.load(Ordering::Relaxed),
            after,
            "nothing runs any more"
        );
    }
}
