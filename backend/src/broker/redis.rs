//! Fan-out between nodes over Redis pub/sub, and a presence registry in
//! Redis sorted sets.
//!
//! Channels: one per room, `<prefix>:room:<name>`, and every node
//! subscribes to the pattern `<prefix>:room:*`. Publishing to a room's own
//! channel keeps the door open for per-room subscriptions later; the pattern
//! keeps subscriptions static (nothing to (un)subscribe as rooms come and
//! go, nothing to get wrong on reconnect). The cost is that every node sees
//! every room's traffic, which is fine for tens of nodes. See docs/deploy.md.
//!
//! Wire format of a published payload: one JSON header line, then for frame
//! events the frame's bytes exactly as clients receive them, so nothing is
//! serialized twice.
//!
//! Node-wide events (session revocations) go to `<prefix>:room:` (an empty
//! room name), which the same pattern covers.
//!
//! Presence: `<prefix>:presence:<room>` is a sorted set whose members are
//! "node␟user id␟username␟user name" (U+001F, which no name may contain;
//! an empty username for a guest) and whose scores are expiry times (ms). Each node
//! rewrites its own entries every refresh; readers ignore expired ones.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use common::User;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::{Broker, Delivery, Envelope, Event, PresenceEntry};

/// Envelopes waiting to be published. Past this, new ones are dropped (and
/// chat messages are refilled from the store by whoever misses them).
const PUBLISH_QUEUE: usize = 10_000;
const SEPARATOR: char = '\u{1f}';

pub struct RedisBroker {
    prefix: String,
    tx: broadcast::Sender<Delivery>,
    outgoing: mpsc::Sender<(String, Vec<u8>)>,
    conn: ConnectionManager,
    status: Arc<Status>,
    /// Presence members this node wrote last time, to remove the ones gone.
    reported: Mutex<HashSet<(String, String)>>,
}

#[derive(Default)]
struct Status {
    subscription: Mutex<Option<String>>,
    publishing: Mutex<Option<String>>,
}

impl Status {
    fn set(slot: &Mutex<Option<String>>, value: Option<String>) {
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
        let broker = Arc::new(RedisBroker {
            prefix: prefix.to_owned(),
            tx: tx.clone(),
            outgoing,
            conn: conn.clone(),
            status: Arc::new(Status::default()),
            reported: Mutex::new(HashSet::new()),
        });
        let pattern = format!("{prefix}:room:*");
        tokio::spawn(subscribe_loop(client, pattern, tx, broker.status.clone()));
        tokio::spawn(publish_loop(conn, queue, broker.status.clone()));
        Ok(broker)
    }

    fn presence_key(&self, room: &str) -> String {
        format!("{}:presence:{room}", self.prefix)
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn publish(&self, envelope: Envelope) {
        let channel = format!("{}:room:{}", self.prefix, envelope.room);
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
                frame.as_bytes()
            }
            Event::Presence { user, present } => {
                header.user = Some(user.clone());
                header.present = Some(*present);
                b""
            }
            Event::ToUser { user_id, frame } => {
                header.to_user = Some(Cow::Borrowed(user_id));
                frame.as_bytes()
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
        if self.outgoing.try_send((channel, payload)).is_err() {
            tracing::warn!(room = %envelope.room, "publish queue full; dropping an event");
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.tx.subscribe()
    }

    async fn refresh_presence(
        &self,
        node: &str,
        present: &[(Arc<str>, User)],
        ttl: Duration,
    ) -> Result<(), String> {
        let until = now_ms() + ttl.as_millis() as i64;
        let now: HashSet<(String, String)> = present
            .iter()
            .map(|(room, user)| {
                (
                    room.to_string(),
                    format!(
                        "{node}{SEPARATOR}{}{SEPARATOR}{}{SEPARATOR}{}",
                        user.id,
                        user.username.as_deref().unwrap_or_default(),
                        user.name
                    ),
                )
            })
            .collect();
        let gone: Vec<(String, String)> = {
            let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
            let gone = reported.difference(&now).cloned().collect();
            *reported = now.clone();
            gone
        };
        let mut pipe = redis::pipe();
        for (room, member) in &now {
            let key = self.presence_key(room);
            pipe.cmd("ZADD").arg(&key).arg(until).arg(member).ignore();
            // Expired entries of crashed nodes are cleaned up by whoever writes.
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(now_ms())
                .ignore();
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl.as_millis() as i64 * 4)
                .ignore();
        }
        for (room, member) in &gone {
            pipe.cmd("ZREM")
                .arg(self.presence_key(room))
                .arg(member)
                .ignore();
        }
        if now.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    async fn members(&self, room: &str) -> Result<Vec<PresenceEntry>, String> {
        Ok(self
            .members_of_many(&[room])
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// One pipeline for all the rooms: a page of the room list costs one
    /// round trip, whatever its length.
    async fn members_of_many(&self, rooms: &[&str]) -> Result<Vec<Vec<PresenceEntry>>, String> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let now = now_ms();
        let mut pipe = redis::pipe();
        for room in rooms {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(self.presence_key(room))
                .arg(now)
                .arg("+inf");
        }
        let answers: Vec<Vec<String>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(answers
            .iter()
            .map(|members| members.iter().filter_map(|m| parse_entry(m)).collect())
            .collect())
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

/// Keeps a pattern subscription open, reconnecting with capped exponential
/// backoff. After a reconnect it announces `Resubscribed`, since whatever
/// was published meanwhile is gone.
async fn subscribe_loop(
    client: redis::Client,
    pattern: String,
    tx: broadcast::Sender<Delivery>,
    status: Arc<Status>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        match subscribed {
            Ok(pubsub) => {
                Status::set(&status.subscription, None);
                backoff = Duration::from_millis(100);
                if connected_before {
                    let _ = tx.send(Delivery::Resubscribed);
                }
                connected_before = true;
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    if let Some(envelope) = decode(msg.get_payload_bytes()) {
                        let _ = tx.send(Delivery::Envelope(envelope));
                    }
                }
                Status::set(
                    &status.subscription,
                    Some("lost the Redis subscription; reconnecting".into()),
                );
            }
            Err(err) => {
                Status::set(
                    &status.subscription,
                    Some(format!("cannot subscribe to Redis: {err}")),
                );
            }
        }
        let jitter = rand::random::<f64>() * 0.5 + 0.75;
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn publish_loop(
    mut conn: ConnectionManager,
    mut queue: mpsc::Receiver<(String, Vec<u8>)>,
    status: Arc<Status>,
) {
    while let Some((channel, payload)) = queue.recv().await {
        let published: redis::RedisResult<()> = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload)
            .query_async(&mut conn)
            .await;
        match published {
            Ok(()) => Status::set(&status.publishing, None),
            // At-most-once: the event is dropped; the store covers messages.
            Err(err) => Status::set(
                &status.publishing,
                Some(format!("cannot publish to Redis: {err}")),
            ),
        }
    }
}

/// A registry member: "node␟user id␟username␟user name".
fn parse_entry(member: &str) -> Option<PresenceEntry> {
    let mut parts = member.splitn(4, SEPARATOR);
    let node = parts.next()?.to_owned();
    let id = parts.next()?.to_owned();
    let username = parts.next()?;
    Some(PresenceEntry {
        node,
        user: User {
            id,
            name: parts.next()?.to_owned(),
            username: (!username.is_empty()).then(|| username.to_owned()),
        },
    })
}

fn decode(payload: &[u8]) -> Option<Envelope> {
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
            frame: Utf8Bytes::try_from(bytes::Bytes::copy_from_slice(body)).ok()?,
        },
        _ => Event::Frame {
            frame: Utf8Bytes::try_from(bytes::Bytes::copy_from_slice(body)).ok()?,
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
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
                assert!(frame.as_str().ends_with("newline\"}"));
            }
            other => panic!("{other:?}"),
        }
        assert!(decode(b"no header").is_none());
        let to_user = decode(b"{\"origin\":\"n1\",\"room\":\"r\",\"to_user\":\"u9\"}\n{\"type\":\"read\",\"room\":\"r\",\"seq\":4}").unwrap();
        match to_user.event {
            Event::ToUser { user_id, frame } => {
                assert_eq!(user_id.as_ref(), "u9");
                assert!(frame.as_str().contains("\"seq\":4"));
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
