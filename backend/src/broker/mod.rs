//! The seam between one node's rooms and the other nodes of a deployment.
//!
//! A node delivers events to its own connections directly, then publishes
//! them through the broker so other nodes can deliver them to theirs. Every
//! envelope names the node it came from, and a node ignores its own echoes.
//!
//! Delivery through a broker is at-most-once. Anything that must not be lost
//! (chat messages) is also in the store, and a node refills seq gaps from
//! there. Presence is kept twice for the same reason: changes are published
//! for immediacy, and every node also keeps its members in a registry with a
//! TTL, which the others re-read periodically. A node that dies stops
//! refreshing, so its users expire everywhere: no ghosts.
//!
//! Two implementations: `MemoryBroker` (one process; the default) and
//! `RedisBroker` (pub/sub plus a sorted set per room).

mod memory;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use common::User;
use tokio::sync::broadcast;

pub use self::redis::RedisBroker;
pub use memory::MemoryBroker;

/// One room event on its way between nodes.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The node that produced the event.
    pub origin: Arc<str>,
    pub room: Arc<str>,
    pub event: Event,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// A serialized `ServerMsg`, exactly as sent to clients.
    Frame {
        frame: Utf8Bytes,
        /// Don't deliver to this user's connections (their own `typing`).
        skip_user: Option<Arc<str>>,
        /// For chat messages, their seq: receivers deliver in seq order.
        seq: Option<u64>,
    },
    /// `user` is now present in the room on the origin node, or no longer.
    Presence { user: User, present: bool },
    /// A serialized `ServerMsg` for one user's connections in the room only
    /// (their read position, for their other tabs and devices).
    ToUser { user_id: Arc<str>, frame: Utf8Bytes },
    /// These sessions were revoked: close their sockets. Node-wide: the
    /// envelope's room is empty.
    Revoke { sessions: Vec<Arc<str>> },
    /// The user was removed from the room: their connections leave it.
    Evict { user_id: Arc<str> },
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    Envelope(Envelope),
    /// The broker lost its connection and has it back: events may have been
    /// missed, so catch up from the store.
    Resubscribed,
}

/// A user present in a room on some node, as the registry has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEntry {
    pub node: String,
    pub user: User,
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Hands the envelope to the other nodes. Never waits: a broker that
    /// cannot keep up drops envelopes rather than slowing fan-out.
    fn publish(&self, envelope: Envelope);

    /// Envelopes from every node (this node's own echoes included).
    fn subscribe(&self) -> broadcast::Receiver<Delivery>;

    /// Records that these (room, user) pairs are present on `node` for the
    /// next `ttl`, replacing what `node` recorded before.
    async fn refresh_presence(
        &self,
        node: &str,
        present: &[(Arc<str>, User)],
        ttl: Duration,
    ) -> Result<(), String>;

    /// Everyone present in `room`, on any node, whose entry has not expired.
    async fn members(&self, room: &str) -> Result<Vec<PresenceEntry>, String>;

    /// `members` of several rooms, in one round trip where the broker can.
    async fn members_of_many(&self, rooms: &[&str]) -> Result<Vec<Vec<PresenceEntry>>, String> {
        let mut all = Vec::with_capacity(rooms.len());
        for room in rooms {
            all.push(self.members(room).await?);
        }
        Ok(all)
    }

    /// `Err(reason)` while the broker cannot reach the other nodes.
    fn health(&self) -> Result<(), String>;

    /// "memory" or "redis".
    fn kind(&self) -> &'static str;
}
