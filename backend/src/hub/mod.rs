//! Rooms on this node: who is in them, and delivery of events to them.
//!
//! Message flow: `submit` queues a message for the store, which assigns the
//! seq and makes it durable; `Submitted::finish` then hands it to the room's
//! reorder buffer. The buffer delivers messages to connections strictly in seq
//! order, each followed by its sender's `ack`, whatever order the concurrent
//! appends finished in. A seq that does not show up in time is refilled from
//! the store, so a member never sees a gap.
//!
//! Locking: one `std::sync::Mutex` for the room map, and one per room. Both
//! guard in-memory work only and are never held across an `.await`; store
//! calls happen outside them. Queueing to a connection never blocks (see
//! `Outbox`), so delivering under the room lock is cheap.
//!
//! Besides joins, leaves and presence (here): messages in (`sending.rs`),
//! seq order out (`ordering.rs`), rooms loaded and unloaded (`rooms.rs`),
//! presence between nodes (`presence.rs`).
//!
//! Over 500 lines: the hub's state and the glue its parts share (the room
//! map, remote delivery, catching up); every part that stands alone is a
//! sibling module.

mod admission;
mod delivery;
mod joins;
mod ordering;
mod presence;
pub mod read_marks;
pub mod reorder;
mod rooms;
mod sending;

pub use joins::{JoinError, JoinTicket};
use ordering::{StoredBy, take_stored};
pub use sending::Submitted;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::transport::frame::Frame;
use common::{ServerMsg, User};

use crate::broker::{Broker, Envelope, Event};
use crate::conn::revocation::LiveSessions;
use crate::conn::{ConnId, Peer};
use crate::hub::reorder::Reorder;
use crate::store::group_commit::GroupCommit;
use crate::store::{Store, StoreError};
use crate::transport::outbox::Owed;

/// How long a missing seq may hold back later messages before it is
/// fetched from the store.
const GAP_REFILL_AFTER: Duration = Duration::from_millis(250);

/// `left.reason` for a connection whose user was removed from the room.
pub const REMOVED: &str = "removed";

/// History limits for joins.
#[derive(Debug, Clone, Copy)]
pub struct HistoryPolicy {
    /// A resume missing more than this gets only the newest page.
    pub resume_limit: u32,
    /// Messages sent on a fresh join, and the size of the newest page.
    pub page: u32,
}

pub struct Hub {
    node_id: Arc<str>,
    broker: Arc<dyn Broker>,
    store: Arc<dyn Store>,
    /// Appends go through here: concurrent ones share a transaction.
    appends: GroupCommit,
    history: HistoryPolicy,
    typing_interval: Duration,
    rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
    /// Wakes the presence task when local membership changed.
    presence_changed: tokio::sync::Notify,
    /// What the presence task must write, and what it knows of other nodes.
    presence: presence::Tracker,
    /// This node's sockets by session, to close them on revocation.
    live_sessions: LiveSessions,
    /// Rooms whose last connection left, and when: the candidates for
    /// unloading (see `unload_idle`). Kept so that unloading costs per
    /// room that emptied, never a scan of every loaded room.
    emptied: Mutex<Vec<(Arc<str>, Instant)>>,
    /// Store reads of join replays in flight at once. Replays are bulk:
    /// hundreds of joins at once (a reconnect storm, an attack) must not
    /// take every pooled connection and make a message wait behind them.
    replay_reads: tokio::sync::Semaphore,
    /// Read positions waiting to be written together (`read_marks.rs`).
    read_marks: read_marks::ReadMarks,
}

/// Replay pages read from the store at once, node-wide (`replay_reads`);
/// the pool has room for appends and interactive reads beside them.
const REPLAY_READS: usize = 2;

struct Room {
    name: Arc<str>,
    /// When this incarnation of the name was created (a deleted room's
    /// name may be taken again): tells a deletion of this room from one of
    /// an earlier room of the same name.
    created_at: i64,
    /// Fixed when the room is created, so known without the store while
    /// the room is loaded (see `loaded_visibility`).
    visibility: common::Visibility,
    state: Mutex<RoomState>,
}

struct RoomState {
    /// Messages in, strictly in seq order out (see `reorder.rs`).
    order: Reorder<Frame, (Arc<Peer>, Frame)>,
    refill_scheduled: bool,
    /// Connections receiving the room's events live.
    peers: HashMap<ConnId, Arc<Peer>>,
    /// Connections catching up on history: their live events wait here
    /// until the replay is queued, so order is replay, `joined`, live.
    joining: HashMap<ConnId, (Arc<Peer>, Vec<Frame>)>,
    /// Distinct users on this node, with how many of their connections are
    /// in the room.
    members: HashMap<Arc<str>, Member>,
    /// Users present on other nodes, by (node, user id), with when this node
    /// learned of them. A room's members are `members` ∪ `remote`.
    remote: HashMap<(Arc<str>, Arc<str>), (User, Instant)>,
    /// When each user's last `typing` was forwarded.
    last_typing: HashMap<Arc<str>, Instant>,
    /// When a message last reached this room's buffer (see `check_tails`).
    last_message: Option<Instant>,
    /// Removed from the hub's map (see `unload_idle`): whoever still holds
    /// this `Room` must load it again.
    unloaded: bool,
    /// Writes queued under the lock for sockets nobody was writing to,
    /// made as the lock goes (`delivery.rs`). Empty whenever unlocked.
    owed: Vec<(Arc<Peer>, Owed)>,
}

/// A message waiting in the reorder buffer, with the sender's connection
/// and its `ack` if it was appended here.
type Pending = crate::hub::reorder::Pending<Frame, (Arc<Peer>, Frame)>;

struct Member {
    user: User,
    connections: usize,
}

impl Hub {
    pub fn new(
        node_id: Arc<str>,
        broker: Arc<dyn Broker>,
        store: Arc<dyn Store>,
        history: HistoryPolicy,
        typing_interval: Duration,
    ) -> Arc<Hub> {
        Arc::new(Hub {
            node_id,
            broker,
            appends: GroupCommit::start(store.clone()),
            store,
            history,
            typing_interval,
            rooms: Mutex::new(HashMap::new()),
            presence_changed: tokio::sync::Notify::new(),
            presence: presence::Tracker::default(),
            live_sessions: LiveSessions::default(),
            emptied: Mutex::new(Vec::new()),
            replay_reads: tokio::sync::Semaphore::new(REPLAY_READS),
            read_marks: read_marks::ReadMarks::default(),
        })
    }

    pub fn node_id(&self) -> &Arc<str> {
        &self.node_id
    }

    /// How appends were grouped into transactions.
    pub fn commit_stats(&self) -> &crate::store::group_commit::Stats {
        self.appends.stats()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn live_sessions(&self) -> &LiveSessions {
        &self.live_sessions
    }

    /// Tells every socket of `user_id`, on every node, that the rooms they
    /// may see changed (`rooms_changed`). Rare: an invitation, a new direct
    /// conversation.
    pub fn rooms_changed_for(&self, user_id: &str) {
        self.rooms_changed_except(user_id, None);
    }

    /// `rooms_changed_for`, but not to the connection `except` (the one
    /// that changed them, which knows).
    pub fn rooms_changed_except(&self, user_id: &str, except: Option<ConnId>) {
        self.tell_user(user_id, except, Frame::encode(&ServerMsg::RoomsChanged));
    }

    /// Tells every socket of the user, on every node, what their account
    /// is now (`account_changed`): each reconnects under its new name.
    pub fn account_changed(&self, user: &common::User) {
        let frame = Frame::encode(&ServerMsg::AccountChanged { user: user.clone() });
        self.tell_user(&user.id, None, frame);
    }

    /// `frame` to every socket of `user_id` (but `except`), here and,
    /// through the broker, on the other nodes.
    fn tell_user(&self, user_id: &str, except: Option<ConnId>, frame: Frame) {
        self.live_sessions.to_user_except(user_id, except, &frame);
        self.broker.publish(Envelope {
            origin: self.node_id.clone(),
            // Node-wide: the user's sockets may be in no room at all.
            room: Arc::from(""),
            event: Event::ToUser {
                user_id: Arc::from(user_id),
                frame,
            },
        });
    }

    /// Closes the sockets of these (already revoked) sessions here, and
    /// tells the other nodes to close theirs.
    pub fn revoke_sessions(&self, sessions: Vec<Arc<str>>) {
        if sessions.is_empty() {
            return;
        }
        self.live_sessions.revoke(&sessions);
        self.broker.publish(Envelope {
            origin: self.node_id.clone(),
            room: Arc::from(""),
            event: Event::Revoke { sessions },
        });
    }

    /// The user read `room` up to `seq` (at most its newest message):
    /// told to the user's other connections in the room at once, on this
    /// node and (through the broker) on nodes where the room lists them,
    /// and stored with the next batch of read positions (`read_marks.rs`).
    pub fn mark_read(&self, room: &str, peer: &Peer, seq: u64) -> Result<(), StoreError> {
        let Some(loaded) = self.existing(room) else {
            return Err(StoreError::UnknownRoom(room.to_owned()));
        };
        let newest = loaded.lock().order.next_seq() - 1;
        let seq = seq.min(newest);
        self.read_marks.note(&peer.user_id, &loaded.name, seq);
        let frame = Frame::encode(&ServerMsg::Read {
            room: room.to_owned(),
            seq,
        });
        let elsewhere = {
            let mut state = loaded.lock();
            state.deliver_to_user(&peer.user_id, &frame, Some(peer.id));
            state.remote_has(&peer.user_id)
        };
        // And to their tabs and devices on other nodes, if they are in the
        // room there: most people have one, and publishing every read
        // anyway was most of the Redis traffic of a busy node (five reads
        // for each message, each sent to every node with the room loaded:
        // docs/benchmarks.md, workload 2).
        if !elsewhere {
            return Ok(());
        }
        self.broker.publish(Envelope {
            origin: self.node_id.clone(),
            room: loaded.name.clone(),
            event: Event::ToUser {
                user_id: peer.user_id.clone(),
                frame,
            },
        });
        Ok(())
    }

    /// Writes every pending read position, in one transaction; what could
    /// not be written waits for the next time. `tasks::read_marks` calls
    /// it every `read_marks::FLUSH_EVERY`, and shutdown once more.
    pub async fn flush_reads(&self) {
        let marks = self.read_marks.take_all();
        self.write_reads(marks).await;
    }

    /// Writes `user_id`'s pending read positions before something reads
    /// them from the store (a join's unread count, the room list).
    pub async fn flush_reads_of(&self, user_id: &str) {
        let marks = self.read_marks.take_user(user_id);
        self.write_reads(marks).await;
    }

    /// Waits until read positions are due to be written.
    pub async fn reads_due(&self) {
        self.read_marks.due().await;
    }

    async fn write_reads(&self, marks: Vec<read_marks::Mark>) {
        if marks.is_empty() {
            return;
        }
        let rows: Vec<(&str, &str, u64)> = marks
            .iter()
            .map(|(user, room, seq)| (&**user, &**room, *seq))
            .collect();
        if let Err(err) = self.store.mark_read_batch(&rows).await {
            tracing::debug!(%err, count = rows.len(), "storing read positions failed; retried");
            drop(rows);
            self.read_marks.put_back(marks);
        }
    }

    /// Forwards "typing" to the room's other users, at most once per
    /// `typing_interval` per user. Returns whether it was forwarded.
    pub fn typing(&self, room: &str, peer: &Peer, now: Instant) -> bool {
        let Some(room) = self.existing(room) else {
            return false;
        };
        let mut state = room.lock();
        if !Self::is_in(&state, peer) {
            return false;
        }
        if let Some(last) = state.last_typing.get(&peer.user_id)
            && now.saturating_duration_since(*last) < self.typing_interval
        {
            return false;
        }
        state.last_typing.insert(peer.user_id.clone(), now);
        let frame = Frame::encode(&ServerMsg::Typing {
            room: room.name.to_string(),
            user: peer.user.clone(),
        });
        self.fan_out(&room.name, &mut state, &frame, Some(&peer.user_id), None);
        true
    }

    /// Delivers an envelope from another node to this node's connections.
    pub fn deliver_remote(self: &Arc<Self>, envelope: &Envelope) {
        if envelope.origin == self.node_id {
            return;
        }
        match &envelope.event {
            Event::Evict { user_id, left } => {
                return self.evict_local(&envelope.room, user_id, *left);
            }
            Event::Revoke { sessions } => {
                self.live_sessions.revoke(sessions);
                return;
            }
            // For a user wherever they are (`rooms_changed_for`).
            Event::ToUser { user_id, frame } if envelope.room.is_empty() => {
                self.live_sessions.to_user(user_id, frame);
                return;
            }
            _ => {}
        }
        let Some(room) = self.existing(&envelope.room) else {
            return;
        };
        let mut state = room.lock();
        match &envelope.event {
            // Messages go through the reorder buffer like local ones.
            Event::Frame {
                frame,
                seq: Some(seq),
                ..
            } => self.accept(
                &room,
                &mut state,
                *seq,
                Pending {
                    frame: frame.clone(),
                    ack: None,
                },
                StoredBy::OtherNode,
            ),
            Event::Frame {
                frame,
                skip_user,
                seq: None,
            } => state.deliver(frame, skip_user.as_ref()),
            Event::ToUser { user_id, frame } => state.deliver_to_user(user_id, frame, None),
            // Handled above, and by `revocation` (node-wide).
            Event::Evict { .. } | Event::Revoke { .. } => {}
            Event::Presence { user, present } => {
                self.presence.heard_of(&envelope.origin);
                let key = (envelope.origin.clone(), Arc::from(user.id.as_str()));
                let before = state.visible(&key.1);
                if *present {
                    state
                        .remote
                        .insert(key.clone(), (user.clone(), Instant::now()));
                } else {
                    state.remote.remove(&key);
                }
                state.announce_change(&room, user, before);
            }
        }
    }

    /// After the broker lost its connection: fetch from the store whatever
    /// messages were published meanwhile, for every room loaded here.
    /// Presence events may have been missed too: re-read the registry.
    pub async fn catch_up(self: &Arc<Self>) {
        let rooms: Vec<Arc<Room>> = lock(&self.rooms).values().cloned().collect();
        self.catch_up_rooms(rooms.clone()).await;
        self.reconcile(rooms).await;
    }

    /// Delivers whatever the store has beyond what these rooms delivered.
    async fn catch_up_rooms(self: &Arc<Self>, rooms: Vec<Arc<Room>>) {
        for room in rooms {
            let from = room.lock().order.next_seq();
            match self
                .store
                .range(
                    &room.name,
                    from - 1,
                    u64::MAX / 2,
                    self.history.resume_limit,
                )
                .await
            {
                Ok(missed) => {
                    let mut state = room.lock();
                    take_stored(&mut state, missed);
                    self.drain(&room, &mut state);
                }
                Err(err) => {
                    tracing::warn!(room = %room.name, %err, "catch-up from the store failed")
                }
            }
        }
    }

    /// Between nodes, a message can be stored and acked and yet never be
    /// published: its node died between the two, or its publish queue was
    /// full. A later message would reveal the gap, but in a room that goes
    /// quiet nothing does. So rooms that had a message within `window` ask
    /// the store for their newest seq and catch up if it is ahead. One
    /// statement for all of them (per thousand): asked one room at a time,
    /// a node with 1 500 busy rooms ran 750 statements a second, 1.5 for
    /// every message, on every node (docs/benchmarks.md, workload 2).
    /// Nothing for idle rooms.
    pub async fn check_tails(self: &Arc<Self>, window: Duration) {
        let now = Instant::now();
        let active: Vec<(Arc<Room>, u64)> = lock(&self.rooms)
            .values()
            .filter_map(|room| {
                let state = room.lock();
                let recent = state
                    .last_message
                    .is_some_and(|at| now.saturating_duration_since(at) < window);
                recent.then(|| (room.clone(), state.order.next_seq()))
            })
            .collect();
        if active.is_empty() {
            return;
        }
        let names: Vec<&str> = active.iter().map(|(room, _)| &*room.name).collect();
        let stored: HashMap<String, u64> = match self.store.last_seqs(&names).await {
            Ok(stored) => stored.into_iter().collect(),
            Err(err) => return tracing::debug!(%err, "tail check failed"),
        };
        for (room, next_seq) in active {
            match stored.get(&*room.name) {
                Some(&last) if last >= next_seq => {
                    tracing::info!(room = %room.name, last, next_seq, "store is ahead of this node; catching up");
                    self.catch_up_rooms(vec![room]).await;
                }
                _ => {}
            }
        }
    }

    /// Distinct members of a room that is not loaded on this node, from the
    /// shared registry.
    /// Distinct people in each room: from memory for rooms loaded here,
    /// and from the registry, in one call, for the others.
    pub async fn member_counts(&self, rooms: &[&str]) -> Vec<u32> {
        let mut counts: Vec<Option<u32>> = rooms.iter().map(|r| self.member_count(r)).collect();
        let unloaded: Vec<&str> = rooms
            .iter()
            .zip(&counts)
            .filter(|(_, count)| count.is_none())
            .map(|(room, _)| *room)
            .collect();
        let mut remote = match self.broker.members_of_many(&unloaded).await {
            Ok(entries) => entries
                .into_iter()
                .map(|entries| {
                    let users: std::collections::HashSet<String> =
                        entries.into_iter().map(|e| e.user.id).collect();
                    users.len() as u32
                })
                .collect::<Vec<_>>()
                .into_iter(),
            Err(_) => Vec::new().into_iter(),
        };
        for count in counts.iter_mut().filter(|c| c.is_none()) {
            *count = Some(remote.next().unwrap_or(0));
        }
        counts.into_iter().map(Option::unwrap_or_default).collect()
    }

    pub fn broker_health(&self) -> Result<(), String> {
        self.broker.health()
    }

    /// Resolves when local membership changed since the last call.
    pub async fn presence_changed(&self) {
        self.presence_changed.notified().await;
    }

    /// Distinct members of a room, on any node, as far as this node knows.
    pub fn member_count(&self, room: &str) -> Option<u32> {
        let room = self.existing(room)?;
        Some(room.lock().visible_members().len() as u32)
    }

    /// Tells the other nodes, through the presence task: registry first,
    /// then the event (see `hub::presence`). Nothing to do on a single node.
    fn publish_presence(&self, room: &Arc<str>, user: &User, present: bool) {
        if self.presence.changed(room, user, present) {
            self.presence_changed.notify_one();
        }
    }

    /// Queues `frame` for the room's connections and publishes it.
    fn fan_out(
        &self,
        room: &Arc<str>,
        state: &mut RoomState,
        frame: &Frame,
        skip_user: Option<&Arc<str>>,
        seq: Option<u64>,
    ) {
        state.deliver(frame, skip_user);
        self.publish_frame(room, frame, skip_user, seq);
    }

    /// Publishes `frame` to the other nodes with the room.
    fn publish_frame(
        &self,
        room: &Arc<str>,
        frame: &Frame,
        skip_user: Option<&Arc<str>>,
        seq: Option<u64>,
    ) {
        self.broker.publish(Envelope {
            origin: self.node_id.clone(),
            room: room.clone(),
            event: Event::Frame {
                frame: frame.clone(),
                skip_user: skip_user.cloned(),
                seq,
            },
        });
    }
}

impl RoomState {
    fn remote_has(&self, user_id: &str) -> bool {
        self.remote.keys().any(|(_, id)| id.as_ref() == user_id)
    }

    /// Present on this node or another.
    fn visible(&self, user_id: &str) -> bool {
        self.members.contains_key(user_id) || self.remote_has(user_id)
    }

    /// Every distinct user in the room, on any node.
    fn visible_members(&self) -> Vec<User> {
        let mut users: HashMap<&str, &User> = self
            .remote
            .values()
            .map(|(u, _)| (u.id.as_str(), u))
            .collect();
        for member in self.members.values() {
            users.insert(member.user.id.as_str(), &member.user);
        }
        users.into_values().cloned().collect()
    }
}

pub use crate::store::now_millis;

/// Poisoning only happens if a thread panicked while holding the lock; the
/// data is plain bookkeeping that stays consistent, so carry on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
