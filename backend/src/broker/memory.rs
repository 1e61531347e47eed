//! The single-process broker: nodes that share one instance see each other's
//! events. It is the default for a single node, where it has nobody to talk
//! to but costs almost nothing. Nodes in one process never die alone, so
//! every node it has heard of stays alive.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::User;
use tokio::sync::broadcast;

use super::{Broker, Delivery, Envelope, Liveness, PresenceEntry};

/// room → (node, user id) → user.
type Registry = HashMap<Arc<str>, BTreeMap<(String, String), User>>;

pub struct MemoryBroker {
    tx: broadcast::Sender<Delivery>,
    presence: Mutex<Registry>,
    nodes: Mutex<BTreeMap<String, u64>>,
}

impl MemoryBroker {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        MemoryBroker {
            tx,
            presence: Mutex::new(HashMap::new()),
            nodes: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn publish(&self, envelope: Envelope) {
        let _ = self.tx.send(Delivery::Envelope(envelope));
    }

    fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.tx.subscribe()
    }

    async fn watch_room(&self, _room: &str) {}

    fn unwatch_room(&self, _room: &str) {}

    async fn write_presence(
        &self,
        node: &str,
        rooms: &[(Arc<str>, Vec<User>)],
    ) -> Result<(), String> {
        let mut registry = self.presence.lock().unwrap_or_else(|p| p.into_inner());
        for (room, users) in rooms {
            let entries = registry.entry(room.clone()).or_default();
            entries.retain(|(n, _), _| n != node);
            for user in users {
                entries.insert((node.to_owned(), user.id.clone()), user.clone());
            }
            if entries.is_empty() {
                registry.remove(room);
            }
        }
        Ok(())
    }

    async fn heartbeat(&self, node: &str, _ttl: Duration) -> Result<Liveness, String> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes.entry(node.to_owned()).or_insert(0);
        Ok(Liveness {
            rejoined: false,
            nodes: nodes.iter().map(|(n, e)| (n.clone(), *e)).collect(),
        })
    }

    async fn forget_node(&self, node: &str, _force: bool) -> Result<(), String> {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(node);
        let mut registry = self.presence.lock().unwrap_or_else(|p| p.into_inner());
        for entries in registry.values_mut() {
            entries.retain(|(n, _), _| n != node);
        }
        registry.retain(|_, entries| !entries.is_empty());
        Ok(())
    }

    async fn members(&self, room: &str) -> Result<Vec<PresenceEntry>, String> {
        let registry = self.presence.lock().unwrap_or_else(|p| p.into_inner());
        Ok(registry
            .get(room)
            .into_iter()
            .flatten()
            .map(|((node, _), user)| PresenceEntry {
                node: node.clone(),
                user: user.clone(),
            })
            .collect())
    }

    fn health(&self) -> Result<(), String> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
