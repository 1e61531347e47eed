//! Delivering under a room's lock, writing after it.
//!
//! A room's fan-out queues each member's frame while it holds the room's
//! lock, which keeps every member's frames in seq order. A member whose
//! socket nobody is writing to gets its frame written straight into the
//! socket (`Outbox::push_deferred` hands the write over as an `Owed`) — but
//! not under the lock: a write is a system call, and nobody may wait for
//! the room while a thousand of them are made. So the owed writes are held
//! by the locked state itself (`RoomState::owed`), and the guard
//! (`RoomGuard`) writes them as it lets the lock go. Only code holding the
//! room's state can owe a write, and every owed write is written when that
//! state is let go: the rule is the types', not a convention.

use std::sync::{Arc, MutexGuard};

use common::{ServerMsg, User};

use super::{Room, RoomState, lock};
use crate::conn::{ConnId, Peer};
use crate::transport::frame::Frame;
use crate::transport::outbox::Owed;

impl Room {
    /// The room's state, locked.
    pub(super) fn lock(&self) -> RoomGuard<'_> {
        RoomGuard(Some(lock(&self.state)))
    }
}

/// A locked room: its state, whose owed writes are written when the lock
/// is let go.
pub(super) struct RoomGuard<'a>(Option<MutexGuard<'a, RoomState>>);

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
        let Some(mut state) = self.0.take() else {
            return;
        };
        let owed = std::mem::take(&mut state.owed);
        drop(state);
        for (peer, owed) in owed {
            peer.outbox.flush(owed);
        }
    }
}

impl RoomState {
    /// Queues `frame` for `peer`; if nobody is writing to its socket, the
    /// write is owed, and made when the lock goes (`RoomGuard`).
    pub(super) fn owe(&mut self, peer: &Arc<Peer>, frame: Frame) {
        queue(&mut self.owed, self.peers.len(), peer, frame);
    }

    /// Queues `frame` for the room's connections, but those of
    /// `skip_user`; joiners get it after their replay.
    pub(super) fn deliver(&mut self, frame: &Frame, skip_user: Option<&Arc<str>>) {
        metrics::counter!(crate::prometheus::DELIVERIES)
            .increment((self.peers.len() + self.joining.len()) as u64);
        let skip = |peer: &Peer| skip_user.is_some_and(|skip| *skip == peer.user_id);
        let RoomState {
            peers,
            joining,
            owed,
            ..
        } = self;
        for peer in peers.values() {
            if !skip(peer) {
                queue(owed, peers.len(), peer, frame.clone());
            }
        }
        for (peer, buffered) in joining.values_mut() {
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

    /// Queues `frame` for one user's connections in the room, but `except`.
    pub(super) fn deliver_to_user(
        &mut self,
        user_id: &Arc<str>,
        frame: &Frame,
        except: Option<ConnId>,
    ) {
        let RoomState { peers, owed, .. } = self;
        for peer in peers.values() {
            if peer.user_id == *user_id && Some(peer.id) != except {
                queue(owed, peers.len(), peer, frame.clone());
            }
        }
    }

    /// Tells this node's connections if `user` appeared or disappeared.
    pub(super) fn announce_change(&mut self, room: &Room, user: &User, was_visible: bool) {
        let now_visible = self.visible(&user.id);
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
        self.deliver(&Frame::encode(&msg), None);
    }
}

/// Queues `frame` for `peer`, and keeps the write if it is owed (nobody is
/// writing to the socket). The first owed write of a fan-out reserves room
/// for `members` of them: one allocation per fan-out, not a growing list.
fn queue(owed: &mut Vec<(Arc<Peer>, Owed)>, members: usize, peer: &Arc<Peer>, frame: Frame) {
    if let Some(write) = peer.outbox.push_deferred(frame) {
        if owed.capacity() == 0 {
            owed.reserve(members.max(1));
        }
        owed.push((peer.clone(), write));
    }
}
