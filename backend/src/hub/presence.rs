//! Presence between nodes: what this node writes to the shared registry,
//! and what it concludes about the other nodes.
//!
//! Everything here costs per change, never per room:
//! - a membership change marks its room; the presence task writes only the
//!   marked rooms (`sync_presence`), and only then publishes the change.
//!   That order is what makes a node loading a room see everyone: it
//!   subscribes to the room, then reads the registry, so a change is either
//!   already in what it reads or published after it listens;
//! - each refresh, one liveness beat says which nodes are alive; a node
//!   that stopped beating is dead: its users leave every room here and its
//!   registry entries are removed (once, by whichever node is first);
//! - the registry is re-read for the loaded rooms only when events may have
//!   been missed: the broker reconnected or lagged, a node that was
//!   declared dead is back, or a node says it could not publish an event
//!   (its epoch moved).
//!
//! The decisions are in `Nodes::judge`, which is pure.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::User;

use super::{Hub, Room, lock};
use crate::broker::{Envelope, Event, PresenceEntry};

/// Dead nodes remembered, to ignore registry entries they left behind.
const DEPARTED_KEPT: usize = 256;
/// Rooms re-read from the registry in one round trip.
const REREAD_BATCH: usize = 500;

#[derive(Default)]
pub(super) struct Tracker {
    /// Off on a single node, which has nobody to tell.
    enabled: AtomicBool,
    /// Rooms whose local membership changed since the last write.
    dirty: Mutex<HashSet<Arc<str>>>,
    /// The changes, to publish once written, in order.
    events: Mutex<Vec<(Arc<str>, User, bool)>>,
    nodes: Mutex<Nodes>,
    /// How long a remote member learned from an event is kept although the
    /// registry does not list it yet (its node writes shortly after it
    /// publishes). The refresh interval, in ms.
    grace_ms: AtomicU64,
}

impl Tracker {
    /// Records a change for the presence task; false on a single node.
    pub(super) fn changed(&self, room: &Arc<str>, user: &User, present: bool) -> bool {
        if !self.enabled.load(Ordering::Relaxed) {
            return false;
        }
        lock(&self.dirty).insert(room.clone());
        lock(&self.events).push((room.clone(), user.clone(), present));
        true
    }

    /// A node with members here, whose death must then be noticed.
    pub(super) fn heard_of(&self, node: &Arc<str>) {
        let mut nodes = lock(&self.nodes);
        if !nodes.heard.contains(node) {
            // Cloned only the first time: this runs per presence event.
            nodes.heard.insert(node.clone());
        }
    }

    /// Registry entries of other nodes that are not known to be dead,
    /// keyed as in `RoomState::remote`.
    pub(super) fn of_others<'a>(
        &'a self,
        me: &'a str,
        entries: Vec<PresenceEntry>,
    ) -> impl Iterator<Item = ((Arc<str>, Arc<str>), User)> + 'a {
        let mut nodes = lock(&self.nodes);
        let mut kept = Vec::with_capacity(entries.len());
        for e in entries {
            if e.node == me || nodes.departed.contains(&e.node) {
                continue;
            }
            let node: Arc<str> = Arc::from(e.node.as_str());
            nodes.heard.insert(node.clone());
            kept.push(((node, Arc::from(e.user.id.as_str())), e.user));
        }
        drop(nodes);
        kept.into_iter()
    }
}

/// What this node knows of the others.
#[derive(Default)]
pub(super) struct Nodes {
    /// Alive at the last beat, with their epochs.
    alive: HashMap<String, u64>,
    /// Nodes with members in some room here.
    heard: HashSet<Arc<str>>,
    /// Declared dead, newest last.
    departed: HashSet<String>,
    departed_order: VecDeque<String>,
    /// Since when beats have succeeded without a break: right after the
    /// registry was unreachable, a missing node may only not have beaten
    /// yet, so nobody is declared dead until a full TTL has passed.
    beating_since: Option<Instant>,
}

/// What one beat means.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Verdict {
    /// Nodes that stopped beating.
    pub dead: Vec<String>,
    /// Events may have been missed: re-read the registry.
    pub reread: bool,
}

impl Nodes {
    /// Takes the nodes alive now (`beat`, with epochs) and says who died and
    /// whether to re-read.
    pub(super) fn judge(
        &mut self,
        me: &str,
        beat: &[(String, u64)],
        now: Instant,
        ttl: Duration,
    ) -> Verdict {
        let since = *self.beating_since.get_or_insert(now);
        let mut verdict = Verdict::default();
        let alive: HashMap<String, u64> = beat
            .iter()
            .filter(|(node, _)| node != me)
            .cloned()
            .collect();
        for (node, epoch) in &alive {
            if self.departed.remove(node) {
                self.departed_order.retain(|d| d != node);
                verdict.reread = true;
            }
            if self.alive.get(node).is_some_and(|before| before != epoch) {
                verdict.reread = true;
            }
        }
        if now.saturating_duration_since(since) < ttl {
            // Too soon to tell the dead from the not-yet-beaten.
            self.alive.extend(alive);
            return verdict;
        }
        let known: HashSet<&str> = self
            .alive
            .keys()
            .map(String::as_str)
            .chain(self.heard.iter().map(|n| n.as_ref()))
            .collect();
        verdict.dead = known
            .into_iter()
            .filter(|node| *node != me && !alive.contains_key(*node))
            .map(str::to_owned)
            .collect();
        verdict.dead.sort();
        for node in &verdict.dead {
            self.heard.remove(node.as_str());
            if self.departed.insert(node.clone()) {
                self.departed_order.push_back(node.clone());
            }
        }
        while self.departed_order.len() > DEPARTED_KEPT {
            if let Some(oldest) = self.departed_order.pop_front() {
                self.departed.remove(&oldest);
            }
        }
        self.alive = alive;
        verdict
    }

    /// The registry could not be reached: start the TTL over.
    fn lost_touch(&mut self) {
        self.beating_since = None;
    }
}

impl Hub {
    /// Starts recording presence changes for other nodes (see
    /// `sync_presence`, which must then run).
    pub fn share_presence(&self) {
        self.presence.enabled.store(true, Ordering::Relaxed);
    }

    /// One round of the presence task: write this node's changes, publish
    /// them, beat, and act on what the beat says.
    pub async fn sync_presence(self: &Arc<Self>, ttl: Duration, grace: Duration) {
        self.presence
            .grace_ms
            .store(grace.as_millis() as u64, Ordering::Relaxed);
        let dirty: Vec<Arc<str>> = lock(&self.presence.dirty).drain().collect();
        let events = std::mem::take(&mut *lock(&self.presence.events));
        let mut written = true;
        if !dirty.is_empty() {
            let rooms: Vec<(Arc<str>, Vec<User>)> = dirty
                .iter()
                .map(|name| {
                    let users = self
                        .existing(name)
                        .map(|room| {
                            room.lock()
                                .members
                                .values()
                                .map(|m| m.user.clone())
                                .collect()
                        })
                        .unwrap_or_default();
                    (name.clone(), users)
                })
                .collect();
            if let Err(err) = self.broker.write_presence(&self.node_id, &rooms).await {
                tracing::warn!(%err, "could not write presence");
                lock(&self.presence.dirty).extend(dirty);
                written = false;
            }
        }
        // Published even if the write failed: nodes that hear it are right
        // sooner, and the write is retried.
        for (room, user, present) in events {
            self.broker.publish(Envelope {
                origin: self.node_id.clone(),
                room,
                event: Event::Presence { user, present },
            });
        }
        if !written {
            return;
        }
        let beat = match self.broker.heartbeat(&self.node_id, ttl).await {
            Ok(beat) => beat,
            Err(err) => {
                tracing::warn!(%err, "could not renew this node's liveness");
                lock(&self.presence.nodes).lost_touch();
                return;
            }
        };
        if beat.rejoined {
            // Declared dead by the others (or just started): everything
            // this node has must be written again, and they must re-read it
            // after that, so the epoch moves.
            let all: Vec<Arc<str>> = lock(&self.rooms).keys().cloned().collect();
            if !all.is_empty() {
                tracing::info!(rooms = all.len(), "rewriting this node's presence");
                lock(&self.presence.dirty).extend(all);
                self.broker.missed_presence();
                self.presence_changed.notify_one();
            }
        }
        let verdict =
            lock(&self.presence.nodes).judge(&self.node_id, &beat.nodes, Instant::now(), ttl);
        if !verdict.dead.is_empty() {
            self.bury(&verdict.dead).await;
        }
        if verdict.reread {
            let rooms: Vec<Arc<Room>> = lock(&self.rooms).values().cloned().collect();
            self.reconcile(rooms).await;
        }
    }

    /// Dead nodes' users leave every room here, and their registry entries
    /// go. A dead node may have committed (and acked) a room's newest
    /// message without publishing it, and nothing later would reveal the
    /// gap: its rooms are caught up from the store.
    async fn bury(self: &Arc<Self>, dead: &[String]) {
        tracing::warn!(nodes = ?dead, "nodes stopped beating; dropping their users");
        let rooms: Vec<Arc<Room>> = lock(&self.rooms).values().cloned().collect();
        let mut touched = Vec::new();
        for room in rooms {
            let mut state = room.lock();
            let gone: Vec<(Arc<str>, Arc<str>)> = state
                .remote
                .keys()
                .filter(|(node, _)| dead.iter().any(|d| d.as_str() == node.as_ref()))
                .cloned()
                .collect();
            if gone.is_empty() {
                continue;
            }
            for key in gone {
                let before = state.visible(&key.1);
                if let Some((user, _)) = state.remote.remove(&key) {
                    state.announce_change(&room, &user, before);
                }
            }
            drop(state);
            touched.push(room);
        }
        for node in dead {
            if let Err(err) = self.broker.forget_node(node, false).await {
                tracing::warn!(%err, node, "could not remove a dead node's entries");
            }
        }
        self.catch_up_rooms(touched).await;
    }

    /// Makes these rooms' remote members what the registry says, except
    /// ones learned from an event so recently that their node may not have
    /// written the registry yet.
    pub(super) async fn reconcile(self: &Arc<Self>, rooms: Vec<Arc<Room>>) {
        let grace = Duration::from_millis(self.presence.grace_ms.load(Ordering::Relaxed));
        for batch in rooms.chunks(REREAD_BATCH) {
            let names: Vec<&str> = batch.iter().map(|room| room.name.as_ref()).collect();
            let listed = match self.broker.members_of_many(&names).await {
                Ok(listed) => listed,
                Err(err) => {
                    tracing::warn!(%err, "could not read presence");
                    return;
                }
            };
            for (room, entries) in batch.iter().zip(listed) {
                let listed: HashMap<(Arc<str>, Arc<str>), User> =
                    self.presence.of_others(&self.node_id, entries).collect();
                let mut state = room.lock();
                let now = Instant::now();
                let expired: Vec<(Arc<str>, Arc<str>)> = state
                    .remote
                    .iter()
                    .filter(|(key, (_, learned))| {
                        !listed.contains_key(*key) && now.duration_since(*learned) > grace
                    })
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in expired {
                    let before = state.visible(&key.1);
                    if let Some((user, _)) = state.remote.remove(&key) {
                        state.announce_change(room, &user, before);
                    }
                }
                for (key, user) in listed {
                    let before = state.visible(&key.1);
                    state.remote.insert(key, (user.clone(), now));
                    state.announce_change(room, &user, before);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(6);

    fn beat(nodes: &[(&str, u64)]) -> Vec<(String, u64)> {
        nodes.iter().map(|(n, e)| (n.to_string(), *e)).collect()
    }

    #[test]
    fn a_node_that_stops_beating_is_dead_once() {
        let mut nodes = Nodes::default();
        let t0 = Instant::now();
        let all = beat(&[("me", 1), ("a", 1), ("b", 1)]);
        assert_eq!(nodes.judge("me", &all, t0, TTL), Verdict::default());
        let later = t0 + TTL;
        assert_eq!(nodes.judge("me", &all, later, TTL), Verdict::default());
        let without_b = beat(&[("me", 1), ("a", 1)]);
        let verdict = nodes.judge("me", &without_b, later + Duration::from_secs(2), TTL);
        assert_eq!(verdict.dead, ["b"]);
        assert!(!verdict.reread);
        // Said once, not at every beat.
        let again = nodes.judge("me", &without_b, later + Duration::from_secs(4), TTL);
        assert_eq!(again, Verdict::default());
        // Back after being declared dead: its users must be re-read.
        let back = nodes.judge("me", &all, later + Duration::from_secs(6), TTL);
        assert_eq!(
            back,
            Verdict {
                dead: vec![],
                reread: true
            }
        );
    }

    #[test]
    fn a_node_only_heard_of_is_dead_if_it_does_not_beat() {
        let mut nodes = Nodes::default();
        let t0 = Instant::now();
        nodes.judge("me", &beat(&[("me", 1)]), t0, TTL);
        nodes.heard.insert(Arc::from("ghost"));
        let verdict = nodes.judge("me", &beat(&[("me", 1)]), t0 + TTL, TTL);
        assert_eq!(verdict.dead, ["ghost"]);
        assert!(nodes.departed.contains("ghost"));
    }

    #[test]
    fn nobody_is_declared_dead_within_a_ttl_of_losing_touch() {
        let mut nodes = Nodes::default();
        let t0 = Instant::now();
        nodes.judge("me", &beat(&[("me", 1), ("a", 1)]), t0, TTL);
        nodes.judge("me", &beat(&[("me", 1), ("a", 1)]), t0 + TTL, TTL);
        nodes.lost_touch();
        // The registry is back (maybe restarted, empty): "a" has not beaten yet.
        let t1 = t0 + TTL * 3;
        assert_eq!(
            nodes.judge("me", &beat(&[("me", 1)]), t1, TTL),
            Verdict::default()
        );
        // It beats within the TTL: never declared dead.
        let back = nodes.judge("me", &beat(&[("me", 1), ("a", 1)]), t1 + TTL / 2, TTL);
        assert!(back.dead.is_empty());
        // One that never comes back is, after a full TTL.
        let gone = nodes.judge("me", &beat(&[("me", 1)]), t1 + TTL * 2, TTL);
        assert_eq!(gone.dead, ["a"]);
    }

    #[test]
    fn an_epoch_that_moves_asks_for_a_reread() {
        let mut nodes = Nodes::default();
        let t0 = Instant::now();
        nodes.judge("me", &beat(&[("me", 1), ("a", 7)]), t0, TTL);
        let same = nodes.judge("me", &beat(&[("me", 1), ("a", 7)]), t0 + TTL, TTL);
        assert!(!same.reread);
        let moved = nodes.judge("me", &beat(&[("me", 1), ("a", 8)]), t0 + TTL * 2, TTL);
        assert!(moved.reread);
        // Our own epoch is nobody's business here.
        let mine = nodes.judge("me", &beat(&[("me", 2), ("a", 8)]), t0 + TTL * 3, TTL);
        assert!(!mine.reread);
    }
}
