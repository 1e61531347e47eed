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

mod admission;
mod ordering;
mod presence;
pub mod reorder;
mod rooms;
mod sending;

use ordering::take_stored;
pub use sending::{NewEntry, Submitted};

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::transport::frame::Frame;
use common::{ServerMsg, User};

use crate::broker::{Broker, Envelope, Event};
use crate::conn::revocation::LiveSessions;
use crate::conn::{ConnId, Peer};
use crate::hub::reorder::Reorder;
use crate::store::group_commit::GroupCommit;
use crate::store::{RoomAccess, Store, StoreError};
use crate::transport::outbox::Owed;
use admission::{Admission, admit};

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
}

/// A message waiting in the reorder buffer, with the sender's connection
/// and its `ack` if it was appended here.
type Pending = crate::hub::reorder::Pending<Frame, (Arc<Peer>, Frame)>;

struct Member {
    user: User,
    connections: usize,
}

/// Why a join did not start.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The room is not one the user may enter (private, not a member).
    #[error("not a member of this room")]
    Refused,
    /// The room stopped existing (deleted) while the join looked at it.
    #[error("the room no longer exists")]
    Gone,
}

/// What a join must replay before `joined`: the room's entries after
/// `replay_after` up to `up_to`, fetched page by page as the socket takes
/// them (`Hub::replay_page`), never all at once.
pub struct JoinTicket {
    room: Arc<Room>,
    /// The seq up to which history is replayed; live delivery covers the rest.
    pub up_to: u64,
    /// Replay the entries after this seq (none if it is `up_to`).
    pub replay_after: u64,
    /// The replay is a resume from `replay_after`: it is complete (and
    /// `recovered` true) only if its first entry is the one right after
    /// (retention may have deleted part of what was missed).
    pub resuming: bool,
    pub recovered: bool,
    /// The user's read position in the room, and how many messages of
    /// other people follow it.
    pub read_seq: u64,
    pub unread: u32,
    pub mentions: u32,
    pub topic: String,
    pub moderator: bool,
}

impl HistoryPolicy {
    /// What a join replays, given the last seq the client saw (`since`)
    /// and the newest the room has delivered: `(after, resuming,
    /// recovered)`. A fresh join gets the newest page; a resume, what it
    /// missed, unless that is more than `resume_limit` or the client is
    /// ahead of the room (its history was reset): then the newest page,
    /// and not `recovered`.
    fn replay_for(&self, since: Option<u64>, up_to: u64) -> (u64, bool, bool) {
        let newest_page = up_to.saturating_sub(u64::from(self.page));
        match since {
            None => (newest_page, false, true),
            Some(seen) if seen == up_to => (up_to, false, true),
            Some(seen) if seen < up_to && up_to - seen <= u64::from(self.resume_limit) => {
                (seen, true, true)
            }
            Some(_) => (newest_page, false, false),
        }
    }
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
        let frame = Frame::encode(&ServerMsg::RoomsChanged);
        self.live_sessions.to_user(user_id, &frame);
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

    /// First half of a join: enters the room (creating it if new, telling
    /// the others if the user was not there yet) and fetches the history to
    /// replay. `since` is the last seq the client saw. The caller queues
    /// `history`, then calls `finish_join`.
    ///
    /// Whether the user may enter is decided here, on what the store said
    /// while loading or creating the room (`admission.rs`); `seen` is what
    /// the caller found before (`None`: no such room), and `create` lets
    /// this join create the room, public, if it still does not exist.
    pub async fn start_join(
        self: &Arc<Self>,
        name: &str,
        peer: &Arc<Peer>,
        since: Option<u64>,
        seen: Option<RoomAccess>,
        create: bool,
    ) -> Result<JoinTicket, JoinError> {
        // A room unloaded between `load` and entering it is loaded again.
        let mut attempts = 0;
        let (room, up_to, already_live) = loop {
            attempts += 1;
            let Some((room, fresh)) = self.load(name, &peer.user.id, create).await? else {
                return Err(JoinError::Gone);
            };
            let admitted = match admit(room.visibility, seen, fresh) {
                Admission::AskStore => match self.store.room_access(name, &peer.user.id).await? {
                    Some(fresh) => admit(room.visibility, seen, Some(fresh)),
                    // Deleted since it was loaded; a new room by this name
                    // would be another.
                    None => return Err(JoinError::Gone),
                },
                decided => decided,
            };
            if admitted != Admission::Enter {
                return Err(JoinError::Refused);
            }
            self.catch_up_to(&room, since).await;
            let mut state = room.lock();
            if state.unloaded && attempts < 5 {
                continue;
            }
            let already_live = state.peers.contains_key(&peer.id);
            if !already_live && !state.joining.contains_key(&peer.id) {
                state.joining.insert(peer.id, (peer.clone(), Vec::new()));
                self.add_member(&room, &mut state, peer);
            }
            let up_to = state.order.next_seq() - 1;
            drop(state);
            break (room, up_to, already_live);
        };
        let crate::store::JoinState {
            read_seq,
            unread,
            mentions,
            topic,
            moderator,
        } = match self
            .store
            .join_state(&peer.user.id, peer.user.username.as_deref(), &room.name)
            .await
        {
            Ok(state) => state,
            // Unread counts are a convenience: a join does not fail for them.
            // (The topic arrives with the next topic change, or join.)
            Err(err) => {
                tracing::warn!(%err, room = %room.name, "could not read the read position");
                crate::store::JoinState::default()
            }
        };
        if already_live {
            // A repeated join: it already has everything, and replaying
            // history now would interleave old messages with live ones.
            return Ok(JoinTicket {
                room,
                up_to,
                replay_after: up_to,
                resuming: false,
                recovered: true,
                read_seq,
                unread,
                mentions,
                topic,
                moderator,
            });
        }
        let (replay_after, resuming, recovered) = self.history.replay_for(since, up_to);
        Ok(JoinTicket {
            room,
            up_to,
            replay_after,
            resuming,
            recovered,
            read_seq,
            unread,
            mentions,
            topic,
            moderator,
        })
    }

    /// Before a join replays from `since`: the client may have seen more
    /// on another node than this node has delivered yet (it missed broker
    /// traffic, or it is catching up): the store has it, so catch up first.
    /// Only a client still ahead after that is really ahead (its history
    /// was reset).
    async fn catch_up_to(self: &Arc<Self>, room: &Arc<Room>, since: Option<u64>) {
        let Some(seen) = since else {
            return;
        };
        let mut rounds = 0;
        while room.lock().order.next_seq() <= seen && rounds < 4 {
            rounds += 1;
            let before = room.lock().order.next_seq();
            self.catch_up_rooms(vec![room.clone()]).await;
            if room.lock().order.next_seq() == before {
                break;
            }
        }
    }

    /// The user read `room` up to `seq` (at most its newest message): stored,
    /// and told to the user's other connections in the room, on this node
    /// and (through the broker) on others.
    pub async fn mark_read(&self, room: &str, peer: &Peer, seq: u64) -> Result<(), StoreError> {
        let Some(loaded) = self.existing(room) else {
            return Err(StoreError::UnknownRoom(room.to_owned()));
        };
        let newest = loaded.lock().order.next_seq() - 1;
        let seq = seq.min(newest);
        self.store.mark_read(&peer.user.id, room, seq).await?;
        let frame = Frame::encode(&ServerMsg::Read {
            room: room.to_owned(),
            seq,
        });
        deliver_to_user(&loaded.lock(), &peer.user_id, &frame, Some(peer.id));
        // And to their tabs and devices on other nodes.
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

    /// Second half of a join: queues `joined`, then whatever arrived live
    /// meanwhile, and switches the connection to live delivery.
    pub fn finish_join(&self, ticket: JoinTicket, peer: &Arc<Peer>) {
        let room = ticket.room;
        let mut state = room.lock();
        let buffered = match state.joining.remove(&peer.id) {
            Some((_, buffered)) => buffered,
            // Already live (a repeated join), or left meanwhile.
            None if state.peers.contains_key(&peer.id) => Vec::new(),
            None => return,
        };
        owe(
            peer,
            Frame::encode(&ServerMsg::Joined {
                room: room.name.to_string(),
                members: state.visible_members(),
                last_seq: ticket.up_to,
                recovered: ticket.recovered,
                read_seq: ticket.read_seq,
                unread: ticket.unread,
                mentions: ticket.mentions,
                topic: ticket.topic,
                moderator: ticket.moderator,
            }),
        );
        for frame in buffered {
            owe(peer, frame);
        }
        state.peers.insert(peer.id, peer.clone());
    }

    /// Removes `peer` from `room`. Returns false if it was not in it.
    pub fn leave(&self, room: &str, peer: &Peer) -> bool {
        self.existing(room)
            .is_some_and(|room| self.leave_room(&room, peer))
    }

    /// `leave`, for a room in hand (which may be unloaded already).
    fn leave_room(&self, room: &Room, peer: &Peer) -> bool {
        let mut state = room.lock();
        let was_in =
            state.peers.remove(&peer.id).is_some() | state.joining.remove(&peer.id).is_some();
        if !was_in {
            return false;
        }
        if state.peers.is_empty() && state.joining.is_empty() {
            lock(&self.emptied).push((room.name.clone(), Instant::now()));
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
            self.publish_presence(&room.name, &peer.user, false);
            if !state.visible(&peer.user_id) {
                let frame = Frame::encode(&ServerMsg::UserLeft {
                    room: room.name.to_string(),
                    user: peer.user.clone(),
                });
                deliver(&mut state, &frame, None);
            }
        }
        true
    }

    /// The user was removed from the room: their connections leave it, on
    /// this node and (through the broker) every other, each told with
    /// `left {reason: "removed"}`.
    pub fn evict(&self, room: &str, user_id: &str) {
        self.evict_local(room, user_id);
        self.broker.publish(Envelope {
            origin: self.node_id.clone(),
            room: Arc::from(room),
            event: Event::Evict {
                user_id: Arc::from(user_id),
            },
        });
    }

    fn evict_local(&self, room: &str, user_id: &str) {
        let Some(loaded) = self.existing(room) else {
            return;
        };
        self.remove_where(&loaded, |peer| &*peer.user_id == user_id);
    }

    /// Takes the room's connections that match out of it, each told with
    /// `left {reason: "removed"}`.
    fn remove_where(&self, loaded: &Room, matches: impl Fn(&Peer) -> bool) {
        let room = &*loaded.name;
        let peers: Vec<Arc<Peer>> = {
            let state = loaded.lock();
            state
                .peers
                .values()
                .chain(state.joining.values().map(|(peer, _)| peer))
                .filter(|peer| matches(peer))
                .cloned()
                .collect()
        };
        for peer in peers {
            if self.leave_room(loaded, &peer) {
                lock(&peer.evicted).push(room.to_owned());
                peer.outbox.push(Frame::encode(&ServerMsg::Left {
                    room: room.to_owned(),
                    reason: Some(REMOVED.to_owned()),
                }));
            }
        }
    }

    /// Whether the connection is in the room (live or joining).
    fn is_in(state: &RoomState, peer: &Peer) -> bool {
        state.peers.contains_key(&peer.id) || state.joining.contains_key(&peer.id)
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
            Event::Evict { user_id } => return self.evict_local(&envelope.room, user_id),
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
            ),
            Event::Frame {
                frame,
                skip_user,
                seq: None,
            } => deliver(&mut state, frame, skip_user.as_ref()),
            Event::ToUser { user_id, frame } => deliver_to_user(&state, user_id, frame, None),
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
                announce_change(&room, &mut state, user, before);
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
    /// the store for their newest seq (a primary-key lookup each) and catch
    /// up if it is ahead. Cost: one lookup per recently active room per
    /// call, nothing for idle rooms.
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
        for (room, next_seq) in active {
            match self.store.last_seq(&room.name).await {
                Ok(Some(last)) if last >= next_seq => {
                    tracing::info!(room = %room.name, last, next_seq, "store is ahead of this node; catching up");
                    self.catch_up_rooms(vec![room]).await;
                }
                Ok(_) => {}
                Err(err) => tracing::debug!(%err, "tail check failed"),
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

    /// A page of a join's replay: up to `limit` of the room's entries after
    /// `after`, up to `up_to`, each framed, with the seq of the first and
    /// the last (`None`: nothing left).
    pub async fn replay_page(
        &self,
        ticket: &JoinTicket,
        after: u64,
        limit: u32,
    ) -> Result<Option<(u64, u64, Vec<Frame>)>, StoreError> {
        let entries = {
            let _turn = self
                .replay_reads
                .acquire()
                .await
                .expect("the semaphore is never closed");
            self.store
                .range(&ticket.room.name, after, ticket.up_to, limit)
                .await?
        };
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(None);
        };
        let (first, last) = (first.seq, last.seq);
        let frames = entries
            .into_iter()
            .map(|entry| Frame::encode(&entry.into_server_msg()))
            .collect();
        Ok(Some((first, last, frames)))
    }

    fn add_member(&self, room: &Room, state: &mut RoomState, peer: &Arc<Peer>) {
        let newcomer = match state.members.entry(peer.user_id.clone()) {
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
            self.publish_presence(&room.name, &peer.user, true);
            if !state.remote_has(&peer.user_id) {
                let frame = Frame::encode(&ServerMsg::UserJoined {
                    room: room.name.to_string(),
                    user: peer.user.clone(),
                });
                deliver(state, &frame, Some(&peer.user_id));
            }
        }
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
        deliver(state, frame, skip_user);
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

/// Tells this node's connections if `user` appeared or disappeared.
fn announce_change(room: &Room, state: &mut RoomState, user: &User, was_visible: bool) {
    let now_visible = state.visible(&user.id);
    let msg = match (was_visible, now_visible) {
        (false, true) => ServerMsg::UserJoined {
            room: room.name.to_string(),
            user: user.clone(),
        },
        (true, false) => ServerMsg::UserLeft {
            room: room.name.to_string(),
            user: user.clone(),
        },
        _ => return,
    };
    deliver(state, &Frame::encode(&msg), None);
}

/// Queues `frame` for one user's connections in the room, but `except`.
fn deliver_to_user(state: &RoomState, user_id: &Arc<str>, frame: &Frame, except: Option<ConnId>) {
    for peer in state.peers.values() {
        if peer.user_id == *user_id && Some(peer.id) != except {
            owe(peer, frame.clone());
        }
    }
}

fn deliver(state: &mut RoomState, frame: &Frame, skip_user: Option<&Arc<str>>) {
    metrics::counter!(crate::prometheus::DELIVERIES)
        .increment((state.peers.len() + state.joining.len()) as u64);
    let skip = |peer: &Peer| skip_user.is_some_and(|skip| *skip == peer.user_id);
    for peer in state.peers.values() {
        if !skip(peer) {
            owe(peer, frame.clone());
        }
    }
    for (peer, buffered) in state.joining.values_mut() {
        if !skip(peer) {
            buffered.push(frame.clone());
            if buffered.len() > peer.outbox.capacity() {
                // It cannot keep up even before it has joined.
                peer.outbox
                    .kick()
                    .kick(crate::transport::outbox::CloseReason::SLOW_CONSUMER);
                buffered.clear();
            }
        }
    }
}

thread_local! {
    /// Frames queued under a room's lock for connections nobody was writing
    /// to, which this thread must write once the lock is released (see
    /// `RoomGuard`).
    static OWED: std::cell::Cell<Vec<(Arc<Peer>, Owed)>> =
        const { std::cell::Cell::new(Vec::new()) };
}

/// Queues `frame` for `peer` under a room's lock; if nobody is writing to
/// its socket, the write is owed when the lock goes (see `RoomGuard`).
fn owe(peer: &Arc<Peer>, frame: Frame) {
    if let Some(owed) = peer.outbox.push_deferred(frame) {
        let mut list = OWED.take();
        list.push((peer.clone(), owed));
        OWED.set(list);
    }
}

impl Room {
    /// The room's state, locked.
    fn lock(&self) -> RoomGuard<'_> {
        RoomGuard(Some(lock(&self.state)))
    }
}

/// A locked room. Its fan-out queues each member's frame under the lock,
/// which keeps every member's frames in seq order, and the sockets it found
/// idle are written once the lock is let go: a write is a system call,
/// and nobody waits for the room while a thousand of them are made.
struct RoomGuard<'a>(Option<MutexGuard<'a, RoomState>>);

impl std::ops::Deref for RoomGuard<'_> {
    type Target = RoomState;
    fn deref(&self) -> &RoomState {
        self.0.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for RoomGuard<'_> {
    fn deref_mut(&mut self) -> &mut RoomState {
        self.0.as_mut().expect("held until dropped")
    }
}

impl Drop for RoomGuard<'_> {
    fn drop(&mut self) {
        drop(self.0.take());
        let mut list = OWED.take();
        for (peer, owed) in list.drain(..) {
            peer.outbox.flush(owed);
        }
        // Its capacity is kept for the next fan-out on this thread.
        OWED.set(list);
    }
}

pub fn now_millis() -> i64 {
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

#[cfg(test)]
mod tests {
    use super::HistoryPolicy;

    #[test]
    fn a_join_replays_the_newest_page_or_what_it_missed() {
        let policy = HistoryPolicy {
            resume_limit: 100,
            page: 50,
        };
        // (after, resuming, recovered)
        assert_eq!(policy.replay_for(None, 1000), (950, false, true));
        assert_eq!(policy.replay_for(None, 20), (0, false, true));
        assert_eq!(policy.replay_for(Some(1000), 1000), (1000, false, true));
        assert_eq!(policy.replay_for(Some(900), 1000), (900, true, true));
        assert_eq!(
            policy.replay_for(Some(899), 1000),
            (950, false, false),
            "more missed than a resume replays"
        );
        assert_eq!(
            policy.replay_for(Some(1200), 1000),
            (950, false, false),
            "ahead of the room: its history was reset"
        );
    }
}
