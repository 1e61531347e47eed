//! A connection as the rooms see it: who it is and where its frames go.
//! Made by its session, held by the rooms it is in (`hub`) and by the
//! registry that closes it when its session is revoked (`revocation`).

use std::sync::{Arc, Mutex};

use common::User;

use crate::transport::outbox::Outbox;

pub type ConnId = u64;

/// One WebSocket connection, as the rooms see it.
#[derive(Debug)]
pub struct Peer {
    pub id: ConnId,
    pub user: User,
    /// `user.id` again, shared cheaply with envelopes.
    pub user_id: Arc<str>,
    pub outbox: Outbox,
    /// Rooms this connection was removed from (by a moderator), for its
    /// session to forget; see `Hub::evict`.
    pub evicted: Mutex<Vec<String>>,
}

impl Peer {
    /// Rooms removed from since the last call.
    pub fn take_evicted(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .evicted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}
