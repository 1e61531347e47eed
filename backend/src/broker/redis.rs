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

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::frame::Frame;
use async_trait::async_trait;
use common::User;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::redis_registry::Registry;
use super::redis_subscriptions::{Command, Subscriptions};
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

#[derive(Default)]
pub(super) struct Status {
    pub(super) subscription: Mutex<Option<String>>,
    publishing: Mutex<Option<String>>,
}

impl Status {
    pub(super) fn set(slot: &Mutex<Option<String>>, value: Option<String>) {
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if *slot != value {
            match &value {
                Some(reason) => tracing::warn!(%reason, "broker degraded"),
                None => tracing::info!("broker healthy"),
            }
            *slot = value;
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    origin: Cow<'a, str>,
    #[serde(borrow)]
    room: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    skip_user: Option<Cow<'a, str>>,
    /// `ToUser` events only: whose connections.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    to_user: Option<Cow<'a, str>>,
    /// `Revoke` events only: the session ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoke: Option<Vec<String>>,
    /// `Evict` events only: the user removed from the room.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    evict: Option<Cow<'a, str>>,
    /// Presence events only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<User>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    present: Option<bool>,
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
        let mut header = Header {
            origin: Cow::Borrowed(&envelope.origin),
            room: Cow::Borrowed(&envelope.room),
            seq: None,
            skip_user: None,
            to_user: None,
            revoke: None,
            evict: None,
            user: None,
            present: None,
        };
        let body: &[u8] = match &envelope.event {
            Event::Frame {
                frame,
                skip_user,
                seq,
            } => {
                header.seq = *seq;
                header.skip_user = skip_user.as_deref().map(Cow::Borrowed);
                frame.payload()
            }
            Event::Presence { user, present } => {
                header.user = Some(user.clone());
                header.present = Some(*present);
                b""
            }
            Event::ToUser { user_id, frame } => {
                header.to_user = Some(Cow::Borrowed(user_id));
                frame.payload()
            }
            Event::Revoke { sessions } => {
                header.revoke = Some(sessions.iter().map(|s| s.to_string()).collect());
                b""
            }
            Event::Evict { user_id } => {
                header.evict = Some(Cow::Borrowed(user_id));
                b""
            }
        };
        let mut payload = serde_json::to_vec(&header).expect("headers serialize");
        payload.push(b'\n');
        payload.extend_from_slice(body);
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

pub(super) fn decode(payload: &[u8]) -> Option<Envelope> {
    let split = payload.iter().position(|&b| b == b'\n')?;
    let header: Header = serde_json::from_slice(&payload[..split]).ok()?;
    let body = &payload[split + 1..];
    let event = match (header.user, header.present, header.to_user) {
        _ if header.revoke.is_some() => Event::Revoke {
            sessions: header
                .revoke
                .unwrap_or_default()
                .into_iter()
                .map(Arc::from)
                .collect(),
        },
        _ if header.evict.is_some() => Event::Evict {
            user_id: Arc::from(header.evict.as_deref().unwrap_or_default()),
        },
        (Some(user), Some(present), _) => Event::Presence { user, present },
        (_, _, Some(user_id)) => Event::ToUser {
            user_id: Arc::from(user_id.as_ref()),
            frame: Frame::text(std::str::from_utf8(body).ok()?),
        },
        _ => Event::Frame {
            frame: Frame::text(std::str::from_utf8(body).ok()?),
            skip_user: header.skip_user.map(|s| Arc::from(s.as_ref())),
            seq: header.seq,
        },
    };
    Some(Envelope {
        origin: Arc::from(header.origin.as_ref()),
        room: Arc::from(header.room.as_ref()),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_through_the_wire_format() {
        let header = Header {
            origin: "n1".into(),
            room: "general".into(),
            seq: Some(7),
            skip_user: Some("u1".into()),
            to_user: None,
            revoke: None,
            evict: None,
            user: None,
            present: None,
        };
        let mut payload = serde_json::to_vec(&header).unwrap();
        payload.push(b'\n');
        payload.extend_from_slice(
            br#"{"type":"message","text":"with
newline"}"#,
        );
        let envelope = decode(&payload).unwrap();
        assert_eq!(envelope.origin.as_ref(), "n1");
        match envelope.event {
            Event::Frame {
                frame,
                skip_user,
                seq,
            } => {
                assert_eq!(seq, Some(7));
                assert_eq!(skip_user.as_deref(), Some("u1"));
                assert!(frame.text_payload().ends_with("newline\"}"));
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(b"no header").is_none());
        let to_user = decode(b"{\"origin\":\"n1\",\"room\":\"r\",\"to_user\":\"u9\"}\n{\"type\":\"read\",\"room\":\"r\",\"seq\":4}").unwrap();
        match to_user.event {
            Event::ToUser { user_id, frame } => {
                assert_eq!(user_id.as_ref(), "u9");
                assert!(frame.text_payload().contains("\"seq\":4"));
            }
            other => panic!("{other:?}"),
        }
        let revoke =
            decode(b"{\"origin\":\"n1\",\"room\":\"\",\"revoke\":[\"s1\",\"s2\"]}\n").unwrap();
        match revoke.event {
            Event::Revoke { sessions } => assert_eq!(sessions.len(), 2),
            other => panic!("{other:?}"),
        }
        let evict = decode(b"{\"origin\":\"n1\",\"room\":\"r\",\"evict\":\"u3\"}\n").unwrap();
        match evict.event {
            Event::Evict { user_id } => assert_eq!(user_id.as_ref(), "u3"),
            other => panic!("{other:?}"),
        }
    }
}
