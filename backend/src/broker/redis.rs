//! Fan-out between nodes over Redis pub/sub.
//!
//! Channels: one per room, `<prefix>:room:<name>`, which a node subscribes
//! to while the room is loaded there (`redis_subscriptions.rs`), and one
//! node-wide, `<prefix>:everyone`, for session revocations. So a node
//! receives only the traffic of the rooms it hosts.
//!
//! Wire format of a published payload: one JSON header line, then for frame
//! events the frame's bytes exactly as clients receive them, so nothing is
//! serialized twice.
//!
//! The presence registry is in `redis_registry.rs`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::User;
use redis::aio::ConnectionManager;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::redis_registry::Registry;
use super::redis_status::Status;
use super::redis_subscriptions::{Command, Subscriptions};
use super::redis_wire::encode;
use super::{Broker, Delivery, Envelope, Event, Liveness, PresenceEntry};

/// Envelopes waiting to be published. Past this, new ones are dropped (and
/// chat messages are refilled from the store by whoever misses them).
const PUBLISH_QUEUE: usize = 10_000;
/// How long a room load waits for its subscription before going on (and
/// relying on the catch-up after Redis is back).
const WATCH_PATIENCE: Duration = Duration::from_secs(2);

/// A payload on its way out: channel, bytes, and whether it is a presence
/// event (whose loss others must learn of, see `Registry::missed_an_event`).
type Outgoing = (String, Vec<u8>, bool);

pub struct RedisBroker {
    prefix: String,
    tx: broadcast::Sender<Delivery>,
    outgoing: mpsc::Sender<Outgoing>,
    /// To the subscription task. Unbounded: one command per room load or
    /// unload, each of which already waits on the store.
    watch: mpsc::UnboundedSender<Command>,
    registry: Arc<Registry>,
    status: Arc<Status>,
}

impl RedisBroker {
    /// Connects (failing if Redis is unreachable now), then keeps the
    /// subscription alive in the background, reconnecting with backoff.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Arc<RedisBroker>> {
        let client = redis::Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        let (tx, _) = broadcast::channel(4096);
        let (outgoing, queue) = mpsc::channel(PUBLISH_QUEUE);
        let (watch, commands) = mpsc::unbounded_channel();
        let status = Arc::new(Status::default());
        let registry = Arc::new(Registry::new(prefix, conn.clone()));
        tokio::spawn(
            Subscriptions {
                client,
                everyone: format!("{prefix}:everyone"),
                room_prefix: format!("{prefix}:room:"),
                commands,
                tx: tx.clone(),
                status: status.clone(),
            }
            .run(),
        );
        tokio::spawn(publish_loop(conn, queue, status.clone(), registry.clone()));
        Ok(Arc::new(RedisBroker {
            prefix: prefix.to_owned(),
            tx,
            outgoing,
            watch,
            registry,
            status,
        }))
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn publish(&self, envelope: Envelope) {
        let channel = if envelope.room.is_empty() {
            format!("{}:everyone", self.prefix)
        } else {
            format!("{}:room:{}", self.prefix, envelope.room)
        };
        let presence = matches!(envelope.event, Event::Presence { .. });
        let payload = encode(&envelope);
        if self
            .outgoing
            .try_send((channel, payload, presence))
            .is_err()
        {
            tracing::warn!(room = %envelope.room, "publish queue full; dropping an event");
            if presence {
                self.registry.missed_an_event();
            }
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.tx.subscribe()
    }

    async fn watch_room(&self, room: &str) {
        let (done, subscribed) = oneshot::channel();
        if self
            .watch
            .send(Command::Watch(room.to_owned(), Some(done)))
            .is_ok()
        {
            let _ = tokio::time::timeout(WATCH_PATIENCE, subscribed).await;
        }
    }

    fn unwatch_room(&self, room: &str) {
        let _ = self.watch.send(Command::Unwatch(room.to_owned()));
    }

    async fn write_presence(
        &self,
        node: &str,
        rooms: &[(Arc<str>, Vec<User>)],
    ) -> Result<(), String> {
        self.registry.write(node, rooms).await
    }

    async fn heartbeat(&self, node: &str, ttl: Duration) -> Result<Liveness, String> {
        self.registry.heartbeat(node, ttl).await
    }

    fn missed_presence(&self) {
        self.registry.missed_an_event();
    }

    async fn forget_node(&self, node: &str, force: bool) -> Result<(), String> {
        self.registry.forget(node, force).await
    }

    async fn members(&self, room: &str) -> Result<Vec<PresenceEntry>, String> {
        Ok(self
            .registry
            .members_of_many(&[room])
            .await?
            .pop()
            .unwrap_or_default())
    }

    async fn members_of_many(&self, rooms: &[&str]) -> Result<Vec<Vec<PresenceEntry>>, String> {
        self.registry.members_of_many(rooms).await
    }

    fn health(&self) -> Result<(), String> {
        for slot in [&self.status.subscription, &self.status.publishing] {
            if let Some(reason) = slot.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return Err(reason);
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

async fn publish_loop(
    mut conn: ConnectionManager,
    mut queue: mpsc::Receiver<Outgoing>,
    status: Arc<Status>,
    registry: Arc<Registry>,
) {
    while let Some((channel, payload, presence)) = queue.recv().await {
        let published: redis::RedisResult<()> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload)
            .query_async(&mut conn)
            .await;
        match published {
            Ok(()) => {
                metrics::counter!(crate::prometheus::BROKER_PUBLISHED).increment(1);
                Status::set(&status.publishing, None)
            }
            // At-most-once: the event is dropped; the store covers
            // messages, and the registry presence (others re-read it when
            // this node's epoch moves).
            Err(err) => {
                if presence {
                    registry.missed_an_event();
                }
                Status::set(
                    &status.publishing,
                    Some(format!("cannot publish to Redis: {err}")),
                )
            }
        }
    }
}
