//! Messages in: from a connection (`submit`, pipelined) or from another
//! system through the publish API (`publish`). Each is queued for the
//! group commit, and delivered in seq order once stored.

use std::sync::Arc;
use std::time::Instant;

use crate::transport::frame::Frame;
use common::{ChatMessage, ServerMsg, User};

use super::ordering::StoredBy;
use super::{Hub, Peer, Pending, Room, lock};
use crate::store::{Appended, NewEntry, StoreError};

/// A message on its way into the store (see `Hub::submit`).
pub struct Submitted {
    hub: Arc<Hub>,
    room: Arc<Room>,
    peer: Arc<Peer>,
    answer: tokio::sync::oneshot::Receiver<crate::store::Result<Appended>>,
}

impl Submitted {
    /// Waits for the store, then delivers the message to the room and the
    /// ack to its sender, in seq order.
    pub async fn finish(self) -> Result<(), StoreError> {
        let appended = self.hub.stored(&self.room, self.answer).await?;
        let first_direct = self.room.visibility == common::Visibility::Direct
            && appended.message.seq == 1
            && !appended.duplicate;
        let message = appended.message;
        let ack = Frame::encode(&ServerMsg::Ack {
            room: self.room.name.to_string(),
            client_id: message.client_id.clone(),
            seq: message.seq,
        });
        self.hub
            .deliver_stored(&self.room, message, Some((self.peer.clone(), ack)));
        if first_direct {
            // The other person learns of the conversation now, not at their
            // next look at the room list.
            match self
                .hub
                .store
                .other_members(&[&self.room.name], &self.peer.user.id)
                .await
            {
                Ok(others) => {
                    for (_, user) in others {
                        self.hub.rooms_changed_for(&user.id);
                    }
                }
                Err(err) => tracing::warn!(%err, "could not tell of a new conversation"),
            }
        }
        Ok(())
    }
}

impl Hub {
    /// Queues a message for storing (see `GroupCommit::submit`): messages
    /// submitted one after another are stored in that order. The returned
    /// `Submitted` delivers it once stored; it must be finished even if the
    /// sender goes away, so that everyone else still gets the message.
    pub async fn submit(
        self: &Arc<Self>,
        room: &str,
        peer: &Arc<Peer>,
        entry: impl FnOnce() -> NewEntry,
    ) -> Result<Submitted, StoreError> {
        let Some(room) = self.existing(room) else {
            return Err(StoreError::UnknownRoom(room.to_owned()));
        };
        // Removed meanwhile: nothing is stored for someone no longer in it.
        if !Self::is_in(&room.lock(), peer) {
            return Err(StoreError::UnknownRoom(room.name.to_string()));
        }
        let answer = self.appends.submit_with(entry).await?;
        Ok(Submitted {
            hub: self.clone(),
            room,
            peer: peer.clone(),
            answer,
        })
    }

    /// Stores a message that comes from no connection (the publish API,
    /// `api/publish.rs`) and delivers it like a member's. The room must
    /// exist. If nobody is in it on this node, it is loaded for the
    /// delivery and unloaded again after the grace period, as if someone
    /// had just left it. Returns where it is stored, and whether it was a
    /// retry of a message stored before.
    pub async fn publish(
        self: &Arc<Self>,
        room: &str,
        user: &User,
        content: &str,
        client_id: &str,
    ) -> Result<(common::Published, bool), StoreError> {
        let room = match self.existing(room) {
            Some(room) => room,
            None => {
                let Some((room, _)) = self.load(room, &user.id, false).await? else {
                    return Err(StoreError::UnknownRoom(room.to_owned()));
                };
                let state = room.lock();
                if state.peers.is_empty() && state.joining.is_empty() {
                    lock(&self.emptied).push((room.name.clone(), Instant::now()));
                }
                drop(state);
                room
            }
        };
        let entry = NewEntry::message(
            room.name.to_string(),
            user.clone(),
            content.to_owned(),
            client_id.to_owned(),
        );
        let answer = self.appends.submit(entry).await?;
        let appended = self.stored(&room, answer).await?;
        let published = common::Published {
            seq: appended.message.seq,
            id: appended.message.id.clone(),
        };
        self.deliver_stored(&room, appended.message, None);
        Ok((published, appended.duplicate))
    }

    /// The committer's answer for a message to `room`. A loaded room the
    /// store does not know was deleted meanwhile.
    pub(super) async fn stored(
        &self,
        room: &Arc<Room>,
        answer: tokio::sync::oneshot::Receiver<crate::store::Result<Appended>>,
    ) -> Result<Appended, StoreError> {
        let result = answer
            .await
            .map_err(|_| StoreError::Config("the committer has stopped".into()))?;
        if let Err(StoreError::UnknownRoom(_)) = &result {
            self.forget_deleted(room);
        }
        result
    }

    /// Delivers a stored message to the room in seq order, and then the
    /// sender's ack, if any.
    pub(super) fn deliver_stored(
        self: &Arc<Self>,
        room: &Arc<Room>,
        message: ChatMessage,
        ack: Option<(Arc<Peer>, Frame)>,
    ) {
        // A duplicate goes through the reorder buffer too: usually it was
        // delivered long ago and only the ack goes out, but if the first
        // attempt was committed and then reported as failed (a connection
        // lost during COMMIT, a timeout), this is its first delivery.
        let seq = message.seq;
        // Serialized once; every recipient shares these bytes.
        let frame = Frame::encode(&message.into_server_msg());
        let mut state = room.lock();
        self.accept(
            room,
            &mut state,
            seq,
            Pending { frame, ack },
            StoredBy::ThisNode,
        );
    }
}
