//! Joining and leaving a room: who may enter (`admission.rs`), what a
//! join replays (`HistoryPolicy::replay_for`, a page at a time through
//! `replay_page`), the switch from catching up to live delivery
//! (`finish_join`), and leaving, alone or removed by a moderator or a
//! deleted room.

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Instant;

use common::ServerMsg;

use super::admission::{Admission, admit};
use super::{HistoryPolicy, Hub, Member, REMOVED, Room, RoomState, lock};
use crate::broker::{Envelope, Event};
use crate::conn::Peer;
use crate::store::{Departure, JoinState, RoomAccess, StoreError};
use crate::transport::frame::Frame;

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
    /// A resume of a public room the user left (or was removed from) on
    /// another device while this one was away: the departure stands.
    #[error("left this room meanwhile")]
    Departed(Departure),
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
            let mut room_state = room.lock();
            if room_state.unloaded && attempts < 5 {
                continue;
            }
            let already_live = room_state.peers.contains_key(&peer.id);
            if !already_live && !room_state.joining.contains_key(&peer.id) {
                room_state
                    .joining
                    .insert(peer.id, (peer.clone(), Vec::new()));
                self.add_member(&room, &mut room_state, peer);
            }
            let up_to = room_state.order.next_seq() - 1;
            drop(room_state);
            break (room, up_to, already_live);
        };
        // The user's standing, read only now that the connection is in the
        // room: a removal (or a leave on another device) that committed
        // before this read is seen here; one after it finds the connection
        // in the room and takes it out (`evict`). Read before entering, a
        // removal in between would have found nobody to evict.
        let join_state = self.join_state(&room, peer).await;
        if !already_live && !join_state.member {
            // Not public: nobody stays in without membership.
            if room.visibility != common::Visibility::Public {
                self.leave_room(&room, peer);
                return Err(JoinError::Refused);
            }
            // A device that resumes a public room (`since`) was in it
            // before it went away; if its user has left it since, on
            // another device, this one follows rather than making them a
            // member again. (A fresh join is a choice to come back.)
            if since.is_some()
                && let Some(why) = join_state.departed
            {
                self.leave_room(&room, peer);
                return Err(JoinError::Departed(why));
            }
        }
        let JoinState {
            read_seq,
            unread,
            mentions,
            topic,
            moderator,
            member,
            invited,
            ..
        } = join_state;
        if invited {
            self.accept_invitation(&room.name, peer).await;
        }
        if !member
            && room.visibility == common::Visibility::Public
            && !self.become_member(&room.name, peer, since.is_some()).await
        {
            // They left on another device while this one was entering.
            self.leave_room(&room, peer);
            return Err(JoinError::Departed(Departure::Left));
        }
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

    /// The user's standing in the room, read for a join. Unread counts
    /// are a convenience: a join does not fail for them (the topic arrives
    /// with the next topic change, or join).
    async fn join_state(&self, room: &Room, peer: &Peer) -> JoinState {
        self.flush_reads_of(&peer.user.id).await;
        match self
            .store
            .join_state(&peer.user.id, peer.user.username.as_deref(), &room.name)
            .await
        {
            Ok(state) => state,
            Err(err) => {
                tracing::warn!(%err, room = %room.name, "could not read the read position");
                JoinState {
                    member: true,
                    ..Default::default()
                }
            }
        }
    }

    /// Before a join replays from `since`: the client may have seen more
    /// on another node than this node has delivered yet (it missed broker
    /// traffic, or it is catching up): the store has it, so catch up first.
    /// Only a client still ahead after that is really ahead (its history
    /// was reset).
    pub(super) async fn catch_up_to(self: &Arc<Self>, room: &Arc<Room>, since: Option<u64>) {
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
        let joined = Frame::encode(&ServerMsg::Joined {
            room: room.name.to_string(),
            members: state.visible_members(),
            last_seq: ticket.up_to,
            recovered: ticket.recovered,
            read_seq: ticket.read_seq,
            unread: ticket.unread,
            mentions: ticket.mentions,
            topic: ticket.topic,
            moderator: ticket.moderator,
        });
        state.owe(peer, joined);
        for frame in buffered {
            state.owe(peer, frame);
        }
        state.peers.insert(peer.id, peer.clone());
    }

    /// Removes `peer` from `room`. Returns false if it was not in it.
    pub fn leave(&self, room: &str, peer: &Peer) -> bool {
        self.existing(room)
            .is_some_and(|room| self.leave_room(&room, peer))
    }

    /// `leave`, for a room in hand (which may be unloaded already).
    pub(super) fn leave_room(&self, room: &Room, peer: &Peer) -> bool {
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
                state.deliver(&frame, None);
            }
        }
        true
    }

    /// Joining a public room makes the user a member: it is one of their
    /// rooms on every device (`GET /api/rooms`), whose other connections
    /// hear of it at once. Only the first join writes; a failure costs the
    /// join nothing.
    ///
    /// A resume does not undo a departure (`Store::resume_member`): `false`
    /// if one was recorded since the join looked.
    async fn become_member(&self, room: &str, peer: &Peer, resuming: bool) -> bool {
        let now = super::now_millis();
        let added = if resuming {
            self.store.resume_member(room, &peer.user.id, now).await
        } else {
            self.store
                .add_member(room, &peer.user.id, now)
                .await
                .map(Some)
        };
        match added {
            Ok(Some(true)) => self.rooms_changed_except(&peer.user.id, Some(peer.id)),
            Ok(Some(false)) => {}
            Ok(None) => return false,
            Err(err) => tracing::warn!(%err, room, "could not record the membership"),
        }
        true
    }

    /// Joining a room one is invited to takes the invitation up: the
    /// user's other devices list it as theirs, no longer as an invitation.
    async fn accept_invitation(&self, room: &str, peer: &Peer) {
        match self.store.accept_invitation(room, &peer.user.id).await {
            Ok(true) => self.rooms_changed_except(&peer.user.id, Some(peer.id)),
            Ok(false) => {}
            Err(err) => tracing::warn!(%err, room, "could not take up the invitation"),
        }
    }

    /// The user was removed from the room (`left: false`), or left it
    /// themselves on some device (`left: true`): their connections leave
    /// it, on this node and (through the broker) every other, each told
    /// with `left`, whose reason is "removed" for a removal.
    pub fn evict(&self, room: &str, user_id: &str, left: bool) {
        self.evict_local(room, user_id, left);
        self.broker.publish(Envelope {
            origin: self.node_id.clone(),
            room: Arc::from(room),
            event: Event::Evict {
                user_id: Arc::from(user_id),
                left,
            },
        });
    }

    pub(super) fn evict_local(&self, room: &str, user_id: &str, left: bool) {
        let Some(loaded) = self.existing(room) else {
            return;
        };
        let reason = (!left).then_some(REMOVED);
        self.remove_where(&loaded, reason, |peer| &*peer.user_id == user_id);
    }

    /// Takes the room's connections that match out of it, each told with
    /// `left {reason}`.
    pub(super) fn remove_where(
        &self,
        loaded: &Room,
        reason: Option<&str>,
        matches: impl Fn(&Peer) -> bool,
    ) {
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
                    reason: reason.map(str::to_owned),
                }));
            }
        }
    }

    /// Whether the connection is in the room (live or joining).
    pub(super) fn is_in(state: &RoomState, peer: &Peer) -> bool {
        state.peers.contains_key(&peer.id) || state.joining.contains_key(&peer.id)
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

    pub(super) fn add_member(&self, room: &Room, state: &mut RoomState, peer: &Arc<Peer>) {
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
                state.deliver(&frame, Some(&peer.user_id));
            }
        }
    }
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
