//! The seam between one node's rooms and the other nodes of a deployment.
//!
//! A node delivers events to its own connections directly, then publishes
//! them through the broker so other nodes can deliver them to theirs. Every
//! envelope names the node it came from, and a node ignores its own echoes.
//! A node hears only the rooms it has loaded (`watch_room`), plus the
//! node-wide events (revocations).
//!
//! Delivery through a broker is at-most-once. Anything that must not be lost
//! (chat messages) is also in the store, and a node refills seq gaps from
//! there. Presence is kept twice for the same reason: changes are published
//! for immediacy, and written to a shared registry, which a node reads when
//! it loads a room or when it may have missed events. Both cost per change,
//! never per room: nothing is rewritten or re-read periodically. What is
//! periodic is one liveness beat per node: a node that stops beating (it
//! crashed) is declared dead by the others, which drop its users and remove
//! its registry entries. No ghosts, and no per-room cost for it.
//!
//! Two implementations: `MemoryBroker` (one process; the default) and
//! `RedisBroker` (pub/sub with a channel per room, and the registry in sets).

mod memory;
mod redis;
mod redis_registry;
mod redis_status;
mod redis_subscriptions;
mod redis_wire;

use std::sync::Arc;
use std::time::Duration;

use crate::transport::frame::Frame;
use async_trait::async_trait;
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
        frame: Frame,
        /// Don't deliver to this user's connections (their own `typing`).
        skip_user: Option<Arc<str>>,
        /// For chat messages, their seq: receivers deliver in seq order.
        seq: Option<u64>,
    },
    /// `user` is now present in the room on the origin node, or no longer.
    Presence { user: User, present: bool },
    /// A serialized `ServerMsg` for one user's connections in the room only
    /// (their read position, for their other tabs and devices).
    ToUser { user_id: Arc<str>, frame: Frame },
    /// These sessions were revoked: close their sockets. Node-wide: the
    /// envelope's room is empty.
    Revoke { sessions: Vec<Arc<str>> },
    /// The user was removed from the room (or, `left`, left it on some
    /// device): their connections leave it.
    Evict { user_id: Arc<str>, left: bool },
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    Envelope(Envelope),
    /// The broker lost its connection and has it back: events may have been
    /// missed, so catch up from the store.
    Resubscribed,
}

/// What a liveness beat learned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Liveness {
    /// This node had been declared dead and its entries removed: they must
    /// all be written again.
    pub rejoined: bool,
    /// The nodes alive now, with their presence epoch. A node changes its
    /// epoch when others may have missed its presence events (it could not
    /// publish one), so they re-read the registry for their rooms.
    pub nodes: Vec<(String, u64)>,
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

    /// Envelopes from every node (this node's own echoes included), for the
    /// rooms watched here and the node-wide ones.
    fn subscribe(&self) -> broadcast::Receiver<Delivery>;

    /// Starts receiving `room`'s envelopes. Resolves once they flow, or
    /// after a short wait if the broker is unreachable (what is missed
    /// meanwhile is caught up from the store after it reconnects). Counted:
    /// each call needs its own `unwatch_room`.
    async fn watch_room(&self, room: &str);

    /// Undoes one `watch_room`; the last one stops the room's envelopes.
    fn unwatch_room(&self, room: &str);

    /// Replaces `node`'s registry entries for each of these rooms with the
    /// users listed (none: the node has nobody there any more).
    async fn write_presence(
        &self,
        node: &str,
        rooms: &[(Arc<str>, Vec<User>)],
    ) -> Result<(), String>;

    /// Renews `node`'s liveness for `ttl` and says who else is alive.
    async fn heartbeat(&self, node: &str, ttl: Duration) -> Result<Liveness, String>;

    /// Others may have missed this node's presence events and should
    /// re-read the registry (see `Liveness::nodes`).
    fn missed_presence(&self) {}

    /// Removes a dead node: its liveness and its registry entries. Does
    /// nothing if the node beat again meanwhile, unless `force` (a node
    /// clearing what an earlier run under its id left behind).
    async fn forget_node(&self, node: &str, force: bool) -> Result<(), String>;

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
