//! The Redis subscription: one connection that listens to the node-wide
//! channel and to the channel of each room loaded on this node, so a node
//! receives only the traffic of the rooms it hosts.
//!
//! Rooms come and go with loading, so subscriptions change while messages
//! flow: one task owns the connection's sink (subscribe, unsubscribe) and
//! its stream, and takes commands from the hub through a channel. Rooms are
//! counted, not flagged, so that a load racing an unload never ends up
//! unsubscribed while loaded. When the connection drops, the task
//! reconnects with backoff, subscribes everything again, and announces
//! `Resubscribed`: what was published meanwhile is caught up from the
//! store.
//!
//! Plain SUBSCRIBE, not sharded SSUBSCRIBE: on one Redis they behave the
//! same, and a Redis Cluster deployment would need a cluster client
//! throughout. See docs/deploy.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::Delivery;
use super::redis_status::Status;
use super::redis_wire::decode;

/// Channels subscribed in one command when subscribing everything again.
const SUBSCRIBE_BATCH: usize = 500;

pub(super) enum Command {
    /// Count one more user of the room's channel; `done` is told once it
    /// is subscribed (dropped unsubscribed if Redis is unreachable).
    Watch(String, Option<oneshot::Sender<()>>),
    Unwatch(String),
}

pub(super) struct Subscriptions {
    pub client: redis::Client,
    /// The node-wide channel.
    pub everyone: String,
    /// `<prefix>:room:`; a room's channel is this plus its name.
    pub room_prefix: String,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub tx: broadcast::Sender<Delivery>,
    pub status: Arc<Status>,
}

impl Subscriptions {
    pub(super) async fn run(mut self) {
        let mut rooms: HashMap<String, usize> = HashMap::new();
        let mut backoff = Duration::from_millis(100);
        let mut connected_before = false;
        loop {
            match self.connect(&rooms).await {
                Ok((mut sink, mut stream)) => {
                    Status::set(&self.status.subscription, None);
                    backoff = Duration::from_millis(100);
                    if connected_before {
                        let _ = self.tx.send(Delivery::Resubscribed);
                    }
                    connected_before = true;
                    loop {
                        tokio::select! {
                            msg = stream.next() => match msg {
                                Some(msg) => {
                                    metrics::counter!(crate::prometheus::BROKER_RECEIVED).increment(1);
                                    if let Some(envelope) = decode(msg.get_payload_bytes()) {
                                        let _ = self.tx.send(Delivery::Envelope(envelope));
                                    }
                                }
                                None => break,
                            },
                            command = self.commands.recv() => {
                                let Some(command) = command else { return };
                                if self.apply(&mut rooms, command, Some(&mut sink)).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    Status::set(
                        &self.status.subscription,
                        Some("lost the Redis subscription; reconnecting".into()),
                    );
                }
                Err(err) => Status::set(
                    &self.status.subscription,
                    Some(format!("cannot subscribe to Redis: {err}")),
                ),
            }
            // Keep counting rooms while away, so the reconnect subscribes
            // exactly the rooms loaded by then.
            let jitter = rand::random::<f64>() * 0.5 + 0.75;
            let pause = tokio::time::sleep(backoff.mul_f64(jitter));
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    _ = &mut pause => break,
                    command = self.commands.recv() => {
                        let Some(command) = command else { return };
                        let _ = self.apply(&mut rooms, command, None).await;
                    }
                }
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn connect(
        &self,
        rooms: &HashMap<String, usize>,
    ) -> redis::RedisResult<(PubSubSink, redis::aio::PubSubStream)> {
        let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
        sink.subscribe(&self.everyone).await?;
        let channels: Vec<String> = rooms
            .keys()
            .map(|room| format!("{}{room}", self.room_prefix))
            .collect();
        for batch in channels.chunks(SUBSCRIBE_BATCH) {
            sink.subscribe(batch).await?;
        }
        Ok((sink, stream))
    }

    /// Counts the command and, connected, (un)subscribes when a count
    /// moves between 0 and 1. An error means the connection is gone.
    async fn apply(
        &self,
        rooms: &mut HashMap<String, usize>,
        command: Command,
        sink: Option<&mut PubSubSink>,
    ) -> redis::RedisResult<()> {
        match command {
            Command::Watch(room, done) => {
                let count = rooms.entry(room.clone()).or_insert(0);
                *count += 1;
                let first = *count == 1;
                match sink {
                    Some(sink) if first => {
                        sink.subscribe(format!("{}{room}", self.room_prefix))
                            .await?;
                    }
                    Some(_) => {}
                    // Not connected: `done` is dropped, the loader stops
                    // waiting, and the reconnect subscribes the room.
                    None => return Ok(()),
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Unwatch(room) => {
                let Some(count) = rooms.get_mut(&room) else {
                    return Ok(());
                };
                *count -= 1;
                if *count == 0 {
                    rooms.remove(&room);
                    if let Some(sink) = sink {
                        sink.unsubscribe(format!("{}{room}", self.room_prefix))
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }
}
