//! Outgoing webhooks: every new entry of a webhook's rooms (messages, and
//! by choice every change) POSTed as JSON to its URL, signed, at least
//! once, in seq order per room, retried with backoff for up to a day.
//!
//! Nothing is queued in memory. A webhook keeps a cursor per room in the
//! store (`store::Webhooks`) and its worker reads the room's log after it,
//! a page at a time, a few rooms at once: a receiver that is down for a day
//! costs the rows the rooms keep anyway, and a node that dies is followed
//! by whichever node takes the webhook next, from the last entry the
//! receiver acknowledged. An entry is acknowledged by a 2xx answer, and
//! only then is the cursor moved past it (recorded a page of entries at a
//! time, and before a failure's wait); so a crash between the two delivers
//! it again, with the same `Idempotency-Key`.
//!
//! Among several nodes, one delivers a webhook at a time: the holder of its
//! lease in the store (`webhook:<id>`), renewed every poll and taken over
//! once it expires. A node restarted under the same `--node-id` takes its
//! leases back at once.
//!
//! `signature.rs` signs, `retry.rs` decides when to try again or pause,
//! `target.rs` refuses addresses inside the deployment.

pub mod retry;
pub mod signature;
pub mod target;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::{ChatMessage, EntryKind};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::task::{AbortHandle, JoinSet};

use crate::config::Config;
use crate::prometheus;
use crate::store::{Backlog, Store, StoreError, Webhook};
use retry::Outcome;

/// Rooms of one webhook delivered at once, and entries read per room at a
/// time: what a webhook holds in memory, however far behind it is.
const ROOMS_AT_ONCE: usize = 8;
const PAGE: u32 = 32;
/// Rooms with something to deliver, looked up per round.
const ROOMS_PER_ROUND: u32 = 256;

/// How deliveries behave (from `Config`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub poll: Duration,
    pub lease: Duration,
    pub timeout: Duration,
    pub allow_private: bool,
    pub retry: retry::Policy,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            poll: Duration::from_millis(config.webhook_poll_ms.max(10)),
            lease: Duration::from_millis(config.webhook_lease_ms.max(100)),
            timeout: Duration::from_millis(config.webhook_timeout_ms.max(100)),
            allow_private: config.webhook_allow_private,
            retry: retry::Policy {
                base: Duration::from_millis(config.webhook_retry_base_ms.max(1)),
                max: Duration::from_millis(config.webhook_retry_max_ms.max(1)),
                give_up_after: Duration::from_millis(config.webhook_pause_after_ms),
            },
        }
    }
}

/// What a receiver gets: the entry as clients get it, and where it is from.
#[derive(Serialize)]
struct Payload<'a> {
    webhook: &'a str,
    /// `message`, or with `--changes`: `edit`, `delete`, `topic`, `react`,
    /// `unreact`.
    event: EntryKind,
    room: &'a str,
    seq: u64,
    message: &'a ChatMessage,
}

/// What one node's webhook workers share.
struct Deliverer {
    store: Arc<dyn Store>,
    http: reqwest::Client,
    settings: Settings,
}

/// Why a round stopped.
enum Stop {
    /// The receiver failed (or is gone): counts against the webhook.
    Receiver(Outcome),
    /// The store failed: not the receiver's fault; try again next poll.
    Store(StoreError),
    /// The webhook was deleted meanwhile.
    Deleted,
}

impl From<StoreError> for Stop {
    fn from(err: StoreError) -> Self {
        Stop::Store(err)
    }
}

/// This node's part, to run as a background loop (`tasks::webhooks`): it
/// takes the leases of the webhooks it can, and runs a worker for each
/// one it holds.
pub fn deliveries(
    config: &Config,
    store: Arc<dyn Store>,
    node: String,
) -> reqwest::Result<impl Future<Output = ()> + Send + 'static> {
    let settings = Settings::from_config(config);
    let http = client(&settings)?;
    let deliverer = Arc::new(Deliverer {
        store,
        http,
        settings,
    });
    Ok(coordinate(deliverer, node))
}

fn client(settings: &Settings) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("hearth-webhook/", env!("CARGO_PKG_VERSION")));
    let builder = if settings.allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(target::Guarded))
    };
    builder.build()
}

/// Every poll: renews or takes each webhook's lease, starts a worker for
/// each one held, stops those lost, paused or deleted, and reports the
/// paused and failing ones. The workers end with this loop (the `JoinSet`
/// aborts them when dropped at shutdown).
async fn coordinate(deliverer: Arc<Deliverer>, node: String) {
    let mut workers: HashMap<String, AbortHandle> = HashMap::new();
    let mut running = JoinSet::new();
    let mut tick = tokio::time::interval(deliverer.settings.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        while running.try_join_next().is_some() {}
        let hooks = match deliverer.store.webhooks().await {
            Ok(hooks) => hooks,
            Err(err) => {
                tracing::warn!(%err, "could not read the webhooks");
                continue;
            }
        };
        let paused = hooks.iter().filter(|h| h.state.paused_at.is_some()).count();
        let failing = hooks
            .iter()
            .filter(|h| h.state.paused_at.is_none() && h.state.failures > 0)
            .count();
        metrics::gauge!(prometheus::WEBHOOKS_PAUSED).set(paused as f64);
        metrics::gauge!(prometheus::WEBHOOKS_FAILING).set(failing as f64);
        workers.retain(|id, worker| {
            let keep = !worker.is_finished() && hooks.iter().any(|h| &h.id == id);
            if !keep {
                worker.abort();
            }
            keep
        });
        for hook in hooks {
            let lease = format!("webhook:{}", hook.id);
            let held = hook.state.paused_at.is_none() && {
                let now = crate::store::now_millis();
                let until = now + deliverer.settings.lease.as_millis() as i64;
                match deliverer.store.take_lease(&lease, &node, now, until).await {
                    Ok(held) => held,
                    Err(err) => {
                        tracing::warn!(%err, webhook = %hook.id, "could not renew a lease");
                        false
                    }
                }
            };
            match (held, workers.contains_key(&hook.id)) {
                (true, false) => {
                    let id = hook.id.clone();
                    tracing::info!(webhook = %id, "delivering this webhook from this node");
                    let worker = running.spawn(work(deliverer.clone(), hook));
                    workers.insert(id, worker);
                }
                (false, true) => {
                    if let Some(worker) = workers.remove(&hook.id) {
                        worker.abort();
                    }
                }
                _ => {}
            }
        }
    }
}

/// One webhook's deliveries, while this node holds its lease: rounds over
/// its rooms' backlogs, waiting between failures as `retry` says, until it
/// is paused.
async fn work(deliverer: Arc<Deliverer>, mut hook: Webhook) {
    let settings = &deliverer.settings;
    loop {
        let wait = hook.state.next_attempt_at - crate::store::now_millis();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let outcome = match round(&deliverer, &hook).await {
            Ok(0) => {
                tokio::time::sleep(settings.poll).await;
                continue;
            }
            Ok(_) => Outcome::Delivered,
            Err(Stop::Store(err)) => {
                tracing::warn!(%err, webhook = %hook.id, "webhook paused by the store");
                tokio::time::sleep(settings.poll).await;
                continue;
            }
            Err(Stop::Receiver(outcome)) => outcome,
            Err(Stop::Deleted) => return,
        };
        if outcome == Outcome::Delivered && hook.state.failures == 0 {
            continue;
        }
        if let Outcome::Failed(why) | Outcome::Gone(why) = &outcome {
            tracing::warn!(webhook = %hook.id, url = %hook.url, why, "webhook delivery failed");
        }
        let now = crate::store::now_millis();
        let state = retry::after(&settings.retry, &hook.state, outcome, now, rand::random());
        if state.paused_at.is_some() {
            tracing::warn!(webhook = %hook.id, failures = state.failures, "webhook paused");
        }
        // Kept before waiting, so a restart waits too and the day counts
        // from the first failure, whichever node retries.
        while let Err(err) = deliverer.store.set_delivery_state(&hook.id, &state).await {
            tracing::warn!(%err, webhook = %hook.id, "could not record a webhook's state");
            tokio::time::sleep(settings.poll).await;
        }
        hook.state = state;
        if hook.state.paused_at.is_some() {
            return;
        }
    }
}

/// Delivers what the webhook's rooms have past their cursors, a few rooms
/// at once: how many entries were delivered. Stops at the first failure;
/// the rooms already moved on keep their progress.
async fn round(deliverer: &Deliverer, hook: &Webhook) -> Result<usize, Stop> {
    let backlog = deliverer
        .store
        .webhook_backlog(hook, ROOMS_PER_ROUND)
        .await?;
    let mut rooms = futures_util::stream::iter(backlog)
        .map(|room| deliver_room(deliverer, hook, room))
        .buffer_unordered(ROOMS_AT_ONCE);
    let mut delivered = 0;
    while let Some(result) = rooms.next().await {
        delivered += result?;
    }
    Ok(delivered)
}

/// One room's entries after the cursor, in seq order, each POSTed and
/// acknowledged before the next is sent. The cursor is recorded after
/// each page and before a failure's wait: one store write per page, not
/// per entry (it was the limit: ~270 entries/s per room, one commit
/// each); a crash in the middle of a page delivers up to a page again,
/// with the same `Idempotency-Key`s.
async fn deliver_room(deliverer: &Deliverer, hook: &Webhook, room: Backlog) -> Result<usize, Stop> {
    let store = &deliverer.store;
    let mut after = room.delivered_seq;
    let mut delivered = 0;
    while after < room.last_seq {
        let page = store.range(&room.room, after, room.last_seq, PAGE).await?;
        let Some(last) = page.last().map(|entry| entry.seq) else {
            // Gone from the log (retention, a deleted room's messages):
            // nothing left to deliver up to there.
            advance(store, hook, &room.room, room.last_seq).await?;
            break;
        };
        // Everything up to here was acknowledged (or is not for this
        // webhook).
        let mut acked = after;
        for entry in &page {
            if wanted(hook, entry) {
                if let Err(outcome) = post(deliverer, hook, entry).await {
                    if acked > after {
                        advance(store, hook, &room.room, acked).await?;
                    }
                    return Err(Stop::Receiver(outcome));
                }
                metrics::counter!(prometheus::WEBHOOK_DELIVERIES, "result" => "delivered")
                    .increment(1);
                delivered += 1;
            }
            acked = entry.seq;
        }
        advance(store, hook, &room.room, last).await?;
        after = last;
    }
    Ok(delivered)
}

/// Moves the room's cursor; stops the round if the webhook was deleted.
async fn advance(store: &Arc<dyn Store>, hook: &Webhook, room: &str, seq: u64) -> Result<(), Stop> {
    match store.advance_webhook(&hook.id, room, seq).await? {
        true => Ok(()),
        false => Err(Stop::Deleted),
    }
}

/// Messages always (not one deleted before it was delivered); edits,
/// deletes, topics and reactions with `--changes`.
fn wanted(hook: &Webhook, entry: &ChatMessage) -> bool {
    match entry.kind {
        EntryKind::Message if !entry.deleted => true,
        EntryKind::Message => hook.changes,
        EntryKind::Edit
        | EntryKind::Delete
        | EntryKind::Topic
        | EntryKind::React
        | EntryKind::Unreact => hook.changes,
        _ => false,
    }
}

/// One attempt to deliver one entry.
async fn post(deliverer: &Deliverer, hook: &Webhook, entry: &ChatMessage) -> Result<(), Outcome> {
    let failed = |why: String| {
        metrics::counter!(prometheus::WEBHOOK_DELIVERIES, "result" => "failed").increment(1);
        Outcome::Failed(why)
    };
    let url = target::parse_url(&hook.url).map_err(failed)?;
    if !deliverer.settings.allow_private
        && let Some(why) = target::refuse_host(&url)
    {
        return Err(failed(format!(
            "refused: {why} (see --webhook-allow-private)"
        )));
    }
    let body = serde_json::to_vec(&Payload {
        webhook: &hook.id,
        event: entry.kind,
        room: &entry.room,
        seq: entry.seq,
        message: entry,
    })
    .expect("entries serialize");
    let signed = signature::sign(&hook.secret, crate::store::now_millis() / 1000, &body);
    let response = deliverer
        .http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("hearth-webhook", &hook.id)
        .header("idempotency-key", format!("{}/{}", hook.id, entry.id))
        .header(signature::HEADER, signed)
        .body(body)
        .send()
        .await
        .map_err(|err| failed(describe(&err)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status == reqwest::StatusCode::GONE {
        metrics::counter!(prometheus::WEBHOOK_DELIVERIES, "result" => "failed").increment(1);
        Err(Outcome::Gone(format!(
            "HTTP {status}: the receiver is gone"
        )))
    } else {
        Err(failed(format!("HTTP {status}")))
    }
}

/// An HTTP error with its causes (reqwest's own message is only the first
/// line: "error sending request"), as `hearth admin webhook list` shows it.
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
