//! Rooms in memory: loaded from the store on first use, unloaded once
//! nobody on this node has been in them for the grace period, and dropped
//! at once when an operator deleted them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::User;

use super::{Hub, Room, RoomState, lock, now_millis};
use crate::hub::reorder::Reorder;
use crate::store::{Entered, RoomAccess, StoreError};

impl Hub {
    /// The store no longer has this loaded room: an operator deleted it
    /// (`hearth admin delete-room`). Everyone in it here is told they were
    /// removed, and it is unloaded at once, so that joining it again makes
    /// a new room instead of reusing this one.
    ///
    /// Unloaded first, then emptied: a connection told it was removed may
    /// join again at once, and must then find no room by this name here
    /// (and load the new one), not slip back into this one.
    pub(super) fn forget_deleted(&self, room: &Arc<Room>) {
        tracing::info!(room = %room.name, "the room was deleted; unloading it");
        {
            let mut rooms = lock(&self.rooms);
            if rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
                rooms.remove(&room.name);
                self.broker.unwatch_room(&room.name);
                metrics::gauge!(crate::prometheus::ROOMS_LOADED).set(rooms.len() as f64);
            }
            // Under the map's lock: a join holding this room sees it is
            // gone as soon as it looks (`start_join` loads again).
            room.lock().unloaded = true;
        }
        self.remove_where(room, Some(super::REMOVED), |_| true);
    }

    /// An operator deleted the room `name` created at `created_at` (seen by
    /// polling the store): if this node holds that room, its connections
    /// are told they were removed and it is unloaded now, not when one of
    /// them next sends. A newer room by that name is left alone.
    pub fn unload_deleted(&self, name: &str, created_at: i64) {
        if let Some(room) = self
            .existing(name)
            .filter(|room| room.created_at == created_at)
        {
            self.forget_deleted(&room);
        }
    }

    /// The room, loaded from the store on first use (and created there,
    /// public, if it does not exist and `create` is set), with what
    /// `user_id` may do in it if this call read that from the store while
    /// loading it (`None` if the room was loaded already). `Ok(None)`: no
    /// such room.
    pub(super) async fn load(
        &self,
        name: &str,
        user_id: &str,
        create: bool,
    ) -> Result<Option<(Arc<Room>, Option<RoomAccess>)>, StoreError> {
        if let Some(room) = self.existing(name) {
            return Ok(Some((room, None)));
        }
        // Listen before reading the store, so that a message stored after
        // the read is heard (see also `last_message` below).
        self.broker.watch_room(name).await;
        let loaded = self.load_watched(name, user_id, create).await;
        if !matches!(loaded, Ok(Some((_, _, true)))) {
            // Failed, absent, or another join loaded it first and holds
            // the watch.
            self.broker.unwatch_room(name);
        }
        loaded.map(|found| found.map(|(room, access, _)| (room, Some(access))))
    }

    /// `load` once the room's events are heard; true if this call put the
    /// room in the map.
    async fn load_watched(
        &self,
        name: &str,
        user_id: &str,
        create: bool,
    ) -> Result<Option<(Arc<Room>, RoomAccess, bool)>, StoreError> {
        let Some(Entered {
            last_seq,
            access,
            created_at,
        }) = self
            .store
            .enter_room(name, user_id, create, now_millis())
            .await?
        else {
            return Ok(None);
        };
        let visibility = access.visibility;
        // Who is here on other nodes; kept current by events, and re-read
        // from the registry when events may have been missed.
        let now = Instant::now();
        // A registry read right after the broker reconnected can fail once
        // on the dead connection: try again before starting without them.
        let mut read = self.broker.members(name).await;
        for _ in 0..2 {
            if read.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            read = self.broker.members(name).await;
        }
        let remote: HashMap<(Arc<str>, Arc<str>), (User, Instant)> = match read {
            Ok(entries) => self
                .presence
                .of_others(&self.node_id, entries)
                .map(|(key, user)| (key, (user, now)))
                .collect(),
            Err(err) => {
                tracing::warn!(%err, "could not read presence; starting without remote members");
                HashMap::new()
            }
        };
        let mut rooms = lock(&self.rooms);
        // Another join may have loaded it meanwhile; keep the first.
        let mut inserted = false;
        let room = rooms.entry(Arc::from(name)).or_insert_with_key(|name| {
            inserted = true;
            Arc::new(Room {
                name: name.clone(),
                created_at,
                visibility,
                state: Mutex::new(RoomState {
                    order: Reorder::new(last_seq + 1),
                    refill_scheduled: false,
                    peers: HashMap::new(),
                    joining: HashMap::new(),
                    members: HashMap::new(),
                    remote,
                    last_typing: HashMap::new(),
                    // A message published after the store was read and
                    // before this insert was dropped (no room to take it):
                    // the tail check looks at recently active rooms, so
                    // count the load as activity.
                    last_message: Some(now),
                    unloaded: false,
                    owed: Vec::new(),
                }),
            })
        });
        let room = room.clone();
        metrics::gauge!(crate::prometheus::ROOMS_LOADED).set(rooms.len() as f64);
        Ok(Some((room, access, inserted)))
    }

    /// Unloads rooms that have had no connection on this node for `grace`
    /// and have nothing pending (a reorder buffer waiting for a seq keeps
    /// its room). Their history is in the store and their members (on
    /// other nodes) in the registry: a later join loads them again. Only
    /// rooms that emptied are looked at. Returns how many were unloaded.
    pub fn unload_idle(&self, grace: Duration) -> usize {
        let now = Instant::now();
        let due: Vec<Arc<str>> = {
            let mut emptied = lock(&self.emptied);
            let (due, waiting): (Vec<_>, Vec<_>) = emptied
                .drain(..)
                .partition(|(_, since)| now.saturating_duration_since(*since) >= grace);
            *emptied = waiting;
            due.into_iter().map(|(name, _)| name).collect()
        };
        let mut unloaded = 0;
        let mut again = Vec::new();
        let mut rooms = lock(&self.rooms);
        for name in due {
            let Some(room) = rooms.get(&name).cloned() else {
                continue;
            };
            let mut state = room.lock();
            if !state.peers.is_empty() || !state.joining.is_empty() {
                // In use again; it is a candidate once more when it empties.
                continue;
            }
            if !state.order.is_empty() || state.refill_scheduled {
                again.push((name, now));
                continue;
            }
            state.unloaded = true;
            drop(state);
            rooms.remove(&name);
            self.broker.unwatch_room(&name);
            unloaded += 1;
        }
        metrics::gauge!(crate::prometheus::ROOMS_LOADED).set(rooms.len() as f64);
        // A map that held many rooms keeps their slots unless told.
        if unloaded > 0 && rooms.capacity() > 4 * rooms.len().max(64) {
            rooms.shrink_to_fit();
        }
        drop(rooms);
        let mut emptied = lock(&self.emptied);
        emptied.extend(again);
        // After a wave of abandoned rooms the list is short again; so is
        // what it holds on to.
        if emptied.capacity() > 4 * emptied.len().max(64) {
            emptied.shrink_to_fit();
        }
        drop(emptied);
        unloaded
    }

    /// A loaded room's visibility; `None` if it is not loaded here.
    pub fn loaded_visibility(&self, room: &str) -> Option<common::Visibility> {
        self.existing(room).map(|room| room.visibility)
    }

    /// How many rooms this node holds in memory.
    pub fn loaded_rooms(&self) -> usize {
        lock(&self.rooms).len()
    }

    /// The newest seq this node has delivered in `room`, if it holds it.
    pub fn delivered_seq(&self, room: &str) -> Option<u64> {
        self.existing(room)
            .map(|room| room.lock().order.next_seq() - 1)
    }

    pub fn is_loaded(&self, room: &str) -> bool {
        lock(&self.rooms).contains_key(room)
    }

    pub(super) fn existing(&self, name: &str) -> Option<Arc<Room>> {
        lock(&self.rooms).get(name).cloned()
    }
}
