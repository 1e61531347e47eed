//! Rooms on this node: who is in them, and fan-out of events to them.
//!
//! Locking: one `std::sync::Mutex` for the room map, and one per room. Both
//! are held only for in-memory work and never across an `.await`. A room's
//! lock is held while its events are queued to every connection, which is
//! what guarantees that every member sees a room's messages in `seq` order:
//! seq assignment and queueing happen as one step, and each connection's queue
//! is FIFO. Queueing never blocks (see `Outbox`), so holding the lock is cheap.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use common::{ChatMessage, RoomSummary, ServerMsg, User};

use crate::broker::{Broker, Envelope};
use crate::outbox::Outbox;

pub type ConnId = u64;

/// One WebSocket connection, as the rooms see it.
#[derive(Debug)]
pub struct Peer {
    pub id: ConnId,
    pub user: User,
    /// `user.id` again, shared cheaply with envelopes.
    pub user_id: Arc<str>,
    pub outbox: Outbox,
}

/// Result of posting a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub seq: u64,
}

pub struct Hub {
    node_id: Arc<str>,
    broker: Arc<dyn Broker>,
    typing_interval: Duration,
    rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
}

struct Room {
    name: Arc<str>,
    state: Mutex<RoomState>,
}

#[derive(Default)]
struct RoomState {
    last_seq: u64,
    /// This node's connections in the room.
    peers: HashMap<ConnId, Arc<Peer>>,
    /// Distinct users, with how many of their connections are in the room.
    members: HashMap<Arc<str>, Member>,
    /// When each user's last `typing` was forwarded.
    last_typing: HashMap<Arc<str>, Instant>,
}

struct Member {
    user: User,
    connections: usize,
}

impl Hub {
    pub fn new(node_id: Arc<str>, broker: Arc<dyn Broker>, typing_interval: Duration) -> Arc<Hub> {
        Arc::new(Hub {
            node_id,
            broker,
            typing_interval,
            rooms: Mutex::new(HashMap::new()),
        })
    }

    pub fn node_id(&self) -> &Arc<str> {
        &self.node_id
    }

    /// Adds `peer` to `room`, creating the room if it is new. Joining twice is
    /// harmless. Others are told only when the user was not already present
    /// (through another tab).
    ///
    /// `joined` is queued to the peer under the room lock, so it arrives
    /// before any live event of the room.
    pub fn join(&self, room: &str, peer: &Arc<Peer>, since: Option<u64>) {
        let room = self.room(room);
        let mut state = lock(&room.state);
        let rejoin = state.peers.insert(peer.id, peer.clone()).is_some();
        let newcomer = !rejoin
            && match state.members.entry(peer.user_id.clone()) {
                Entry::Occupied(mut member) => {
                    member.get_mut().connections += 1;
                    false
                }
                Entry::Vacant(slot) => {
                    slot.insert(Member {
                        user: peer.user.clone(),
                        connections: 1,
                    });
                    true
                }
            };
        if newcomer {
            let frame = encode(&ServerMsg::UserJoined {
                room: room.name.to_string(),
                user: peer.user.clone(),
            });
            self.fan_out(&room.name, &state, &frame, Some(&peer.user_id));
        }
        let joined = ServerMsg::Joined {
            room: room.name.to_string(),
            members: state.members.values().map(|m| m.user.clone()).collect(),
            last_seq: state.last_seq,
            // Without history (see the store) nothing can be replayed, so a
            // resume is only complete if nothing was missed.
            recovered: since.is_none_or(|seen| seen >= state.last_seq),
        };
        peer.outbox.push(encode(&joined));
    }

    /// Removes `peer` from `room`. Returns false if it was not in it.
    pub fn leave(&self, room: &str, peer: &Peer) -> bool {
        let Some(room) = self.existing(room) else {
            return false;
        };
        let mut state = lock(&room.state);
        if state.peers.remove(&peer.id).is_none() {
            return false;
        }
        let gone = match state.members.get_mut(&peer.user_id) {
            Some(member) if member.connections > 1 => {
                member.connections -= 1;
                false
            }
            Some(_) => {
                state.members.remove(&peer.user_id);
                state.last_typing.remove(&peer.user_id);
                true
            }
            None => false,
        };
        if gone {
            let frame = encode(&ServerMsg::UserLeft {
                room: room.name.to_string(),
                user: peer.user.clone(),
            });
            self.fan_out(&room.name, &state, &frame, None);
        }
        true
    }

    /// Assigns the next seq and delivers the message to every connection in
    /// the room, the sender's included. The caller must have checked that
    /// `peer` is in the room.
    pub fn post(&self, room: &str, peer: &Peer, content: String, client_id: String) -> Posted {
        let room = self.room(room);
        let mut state = lock(&room.state);
        state.last_seq += 1;
        let seq = state.last_seq;
        let message = ServerMsg::Message(ChatMessage {
            room: room.name.to_string(),
            seq,
            id: uuid::Uuid::now_v7().to_string(),
            user: peer.user.clone(),
            content,
            ts: now_millis(),
            client_id,
        });
        // Serialized once; every recipient shares these bytes.
        let frame = encode(&message);
        self.fan_out(&room.name, &state, &frame, None);
        Posted { seq }
    }

    /// Forwards "typing" to the room's other users, at most once per
    /// `typing_interval` per user. Returns whether it was forwarded.
    pub fn typing(&self, room: &str, peer: &Peer, now: Instant) -> bool {
        let Some(room) = self.existing(room) else {
            return false;
        };
        let mut state = lock(&room.state);
        if let Some(last) = state.last_typing.get(&peer.user_id)
            && now.saturating_duration_since(*last) < self.typing_interval
        {
            return false;
        }
        state.last_typing.insert(peer.user_id.clone(), now);
        let frame = encode(&ServerMsg::Typing {
            room: room.name.to_string(),
            user: peer.user.clone(),
        });
        self.fan_out(&room.name, &state, &frame, Some(&peer.user_id));
        true
    }

    /// Every room with its number of distinct members, by name.
    pub fn rooms(&self) -> Vec<RoomSummary> {
        let rooms: Vec<Arc<Room>> = lock(&self.rooms).values().cloned().collect();
        let mut list: Vec<RoomSummary> = rooms
            .iter()
            .map(|room| RoomSummary {
                name: room.name.to_string(),
                members: lock(&room.state).members.len() as u32,
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Delivers an envelope from another node to this node's connections.
    pub fn deliver_remote(&self, envelope: &Envelope) {
        if envelope.origin == self.node_id {
            return;
        }
        let Some(room) = self.existing(&envelope.room) else {
            return;
        };
        let state = lock(&room.state);
        deliver(&state, &envelope.frame, envelope.skip_user.as_ref());
    }

    /// Queues `frame` for the room's local connections and publishes it.
    fn fan_out(
        &self,
        room: &Arc<str>,
        state: &RoomState,
        frame: &Utf8Bytes,
        skip_user: Option<&Arc<str>>,
    ) {
        deliver(state, frame, skip_user);
        self.broker.publish(Envelope {
            origin: self.node_id.clone(),
            room: room.clone(),
            skip_user: skip_user.cloned(),
            frame: frame.clone(),
        });
    }

    fn room(&self, name: &str) -> Arc<Room> {
        let mut rooms = lock(&self.rooms);
        if let Some(room) = rooms.get(name) {
            return room.clone();
        }
        let name: Arc<str> = Arc::from(name);
        let room = Arc::new(Room {
            name: name.clone(),
            state: Mutex::new(RoomState::default()),
        });
        rooms.insert(name, room.clone());
        room
    }

    fn existing(&self, name: &str) -> Option<Arc<Room>> {
        lock(&self.rooms).get(name).cloned()
    }
}

fn deliver(state: &RoomState, frame: &Utf8Bytes, skip_user: Option<&Arc<str>>) {
    for peer in state.peers.values() {
        if skip_user.is_some_and(|skip| *skip == peer.user_id) {
            continue;
        }
        peer.outbox.push(frame.clone());
    }
}

pub fn encode(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(msg).expect("server messages always serialize"))
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Poisoning only happens if a thread panicked while holding the lock; the
/// data is plain bookkeeping that stays consistent, so carry on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
