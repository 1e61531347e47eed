//! A room's messages go out in seq order: whatever order they are stored
//! or heard from other nodes in, they wait in the room's reorder buffer
//! until every earlier seq has gone out, and a gap is filled from the store.

use std::sync::Arc;
use std::time::Instant;

use common::ChatMessage;

use super::{GAP_REFILL_AFTER, Hub, Pending, Room, RoomState};
use crate::transport::frame::Frame;

/// Where a message given to `Hub::accept` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoredBy {
    /// This node stored it.
    ThisNode,
    /// Another node did: its frame came through the broker.
    OtherNode,
}

impl Hub {
    /// Takes a message into the reorder buffer and delivers every message
    /// that is now in sequence. `StoredBy::ThisNode`: this node stored it, and
    /// publishes it to the others now (they put it in order themselves).
    /// Only then: a copy from another node or from the store was published
    /// by the node that stored it, and publishing every copy again, as
    /// every node once did when it delivered one, sent each message to
    /// Redis once per node and each node received it once per node
    /// (docs/benchmarks.md, workload 2).
    pub(super) fn accept(
        self: &Arc<Self>,
        room: &Arc<Room>,
        state: &mut RoomState,
        seq: u64,
        pending: Pending,
        stored_by: StoredBy,
    ) {
        state.last_message = Some(Instant::now());
        if stored_by == StoredBy::ThisNode {
            self.publish_frame(&room.name, &pending.frame, None, Some(seq));
        }
        // Already delivered: a refill from the store raced with this
        // append. The message is out; its ack must still go.
        if let Some((peer, ack)) = state.order.insert(seq, pending) {
            state.owe(&peer, ack);
        }
        self.drain(room, state);
    }

    pub(super) fn drain(self: &Arc<Self>, room: &Arc<Room>, state: &mut RoomState) {
        while let Some((_, next)) = state.order.pop_ready() {
            state.deliver(&next.frame, None);
            if let Some((peer, ack)) = next.ack {
                state.owe(&peer, ack);
            }
        }
        if !state.order.is_empty() && !state.refill_scheduled {
            state.refill_scheduled = true;
            let hub = self.clone();
            let room = room.clone();
            tokio::spawn(async move { hub.refill(room).await });
        }
    }

    /// Fills seq gaps from the store until none is left. Runs as one task
    /// per room at most (`refill_scheduled`).
    pub(super) async fn refill(self: Arc<Self>, room: Arc<Room>) {
        loop {
            tokio::time::sleep(GAP_REFILL_AFTER).await;
            let (from, to) = {
                let mut state = room.lock();
                match state.order.gap() {
                    Some(gap) => gap,
                    None => {
                        state.refill_scheduled = false;
                        return;
                    }
                }
            };
            tracing::debug!(room = %room.name, from, to, "refilling a seq gap from the store");
            let count = u32::try_from(to - from).unwrap_or(u32::MAX);
            let missing = match self.store.range(&room.name, from - 1, to - 1, count).await {
                Ok(found) => found,
                Err(err) => {
                    tracing::warn!(room = %room.name, %err, "gap refill failed; retrying");
                    continue;
                }
            };
            let mut state = room.lock();
            take_stored(&mut state, missing);
            // Appends to a room are serialized by the store, so once `to` is
            // committed every earlier seq is final: one the store does not
            // have was deleted by retention and will never arrive.
            for seq in state.order.skip_missing_below(to) {
                tracing::warn!(room = %room.name, seq, "seq missing from the store; skipping it");
            }
            self.drain(&room, &mut state);
        }
    }
}

/// Takes messages read back from the store (a refill, a catch-up) into the
/// reorder buffer. They are copies without an ack, so nothing comes back to
/// queue; ones already delivered are skipped before they are encoded.
pub(super) fn take_stored(state: &mut RoomState, messages: Vec<ChatMessage>) {
    for message in messages {
        let seq = message.seq;
        if seq < state.order.next_seq() {
            continue;
        }
        let frame = Frame::encode(&message.into_server_msg());
        let _no_ack = state.order.insert(seq, Pending { frame, ack: None });
    }
}
