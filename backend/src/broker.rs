//! The seam between one node's rooms and the other nodes of a deployment.
//!
//! A node delivers events to its own connections directly, then publishes them
//! through the broker so other nodes can deliver them to theirs. Every
//! envelope names the node it came from, and a node ignores its own echoes.
//! Delivery through a broker is at-most-once; anything that must not be lost
//! (chat messages) is also in the store and can be refilled from there.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;

/// One room event on its way between nodes.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The node that produced the event.
    pub origin: Arc<str>,
    pub room: Arc<str>,
    /// Don't deliver to this user's connections (e.g. their own `typing`).
    pub skip_user: Option<Arc<str>>,
    /// For chat messages, their seq: receivers deliver in seq order.
    pub seq: Option<u64>,
    /// The serialized `ServerMsg`, exactly as sent to clients.
    pub frame: Utf8Bytes,
}

pub trait Broker: Send + Sync + 'static {
    /// Hands the envelope to the other nodes. Never waits: a broker that
    /// cannot keep up drops envelopes rather than slowing fan-out.
    fn publish(&self, envelope: Envelope);

    /// Envelopes from every node, including this node's own echoes.
    fn subscribe(&self) -> broadcast::Receiver<Envelope>;
}

/// The single-process broker: nodes that share one instance (in one process)
/// see each other's events. It is the default for a single node.
pub struct MemoryBroker {
    tx: broadcast::Sender<Envelope>,
}

impl MemoryBroker {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        MemoryBroker { tx }
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker for MemoryBroker {
    fn publish(&self, envelope: Envelope) {
        // Err only means nobody is subscribed, which is fine.
        let _ = self.tx.send(envelope);
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }
}
