//! The single-process broker: nodes that share one instance see each other's
//! events. It is the default for a single node, where it has nobody to talk
//! to but costs almost nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::User;
use tokio::sync::broadcast;

use super::{Broker, Delivery, Envelope, PresenceEntry};

type Registry = HashMap<String, Vec<(Arc<str>, User, Instant)>>;

pub struct MemoryBroker {
    tx: broadcast::Sender<Delivery>,
    /// node -> what it last reported, with the expiry.
    presence: Mutex<Registry>,
}

impl MemoryBroker {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        MemoryBroker {
            tx,
            presence: Mutex::new(HashMap::new()),
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
        // Err only means nobody is subscribed, which is fine.
        let _ = self.tx.send(Delivery::Envelope(envelope));
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
        let until = Instant::now() + ttl;
        let entries = present
            .iter()
            .map(|(room, user)| (room.clone(), user.clone(), until))
            .collect();
        self.presence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.to_owned(), entries);
        Ok(())
    }

    async fn members(&self, room: &str) -> Result<Vec<PresenceEntry>, String> {
        let now = Instant::now();
        let registry = self.presence.lock().unwrap_or_else(|p| p.into_inner());
        Ok(registry
            .iter()
            .flat_map(|(node, entries)| {
                entries
                    .iter()
                    .filter(move |(r, _, until)| r.as_ref() == room && *until > now)
                    .map(move |(_, user, _)| PresenceEntry {
                        node: node.clone(),
                        user: user.clone(),
                    })
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
