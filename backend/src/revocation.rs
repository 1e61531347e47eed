//! Closing the sockets of a revoked session, on every node, within a
//! second.
//!
//! A token is checked when a socket opens; afterwards the socket lives on
//! its own. So each node keeps its live sockets by session id, and a
//! revocation reaches them two ways: at once through the broker (the node
//! that revoked publishes the ids), and, for a node that missed that event
//! (the broker was down, the node was partitioned), by polling the store
//! for recently revoked sessions. The store is the authority; the event is
//! only the fast path.
//!
//! The same registry reaches all of one user's sockets on this node, in
//! whatever rooms, for the rare word that is about the user and not a room
//! (`rooms_changed`): a scan, as rare as revocations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;

use crate::hub::{ConnId, Peer};
use crate::outbox::CloseReason;

/// Each session's sockets on this node.
type Sockets = HashMap<Arc<str>, Vec<Arc<Peer>>>;

#[derive(Default)]
pub struct LiveSessions {
    sockets: Mutex<Sockets>,
}

impl LiveSessions {
    pub fn register(&self, session: &Arc<str>, peer: Arc<Peer>) {
        self.lock().entry(session.clone()).or_default().push(peer);
    }

    pub fn unregister(&self, session: &str, conn: ConnId) {
        let mut sockets = self.lock();
        if let Some(list) = sockets.get_mut(session) {
            list.retain(|peer| peer.id != conn);
            if list.is_empty() {
                sockets.remove(session);
            }
        }
    }

    /// Closes every socket of these sessions with 4001. Returns how many.
    pub fn revoke<S: AsRef<str>>(&self, sessions: &[S]) -> usize {
        let sockets = self.lock();
        let mut closed = 0;
        for session in sessions {
            for peer in sockets.get(session.as_ref()).into_iter().flatten() {
                peer.outbox.kick().kick(CloseReason::SESSION_REVOKED);
                closed += 1;
            }
        }
        closed
    }

    /// Queues `frame` on every socket of `user_id` here. Returns how many.
    pub fn to_user(&self, user_id: &str, frame: &Utf8Bytes) -> usize {
        let sockets = self.lock();
        let mut told = 0;
        for peer in sockets.values().flatten() {
            if &*peer.user_id == user_id {
                peer.outbox.push(frame.clone());
                told += 1;
            }
        }
        told
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sockets> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: ConnId, user: &str) -> Arc<Peer> {
        Arc::new(Peer {
            id,
            user: common::User {
                id: user.into(),
                name: user.into(),
                username: None,
            },
            user_id: Arc::from(user),
            outbox: crate::outbox::Outbox::new(8).0,
            evicted: std::sync::Mutex::new(Vec::new()),
        })
    }

    #[test]
    fn only_the_revoked_sessions_sockets_are_kicked() {
        let live = LiveSessions::default();
        let (a, b) = (Arc::<str>::from("a"), Arc::<str>::from("b"));
        let peers: Vec<Arc<Peer>> = (0..3).map(|i| peer(i + 1, "u")).collect();
        live.register(&a, peers[0].clone());
        live.register(&a, peers[1].clone());
        live.register(&b, peers[2].clone());
        live.unregister("a", 2);
        assert_eq!(live.revoke(&["a", "nobody"]), 1);
        let reason = |i: usize| peers[i].outbox.kick().reason();
        assert_eq!(reason(0), Some(CloseReason::SESSION_REVOKED));
        assert_eq!(reason(1), None, "unregistered");
        assert_eq!(reason(2), None, "another session");
    }

    #[test]
    fn a_word_for_a_user_reaches_each_of_their_sockets_only() {
        let live = LiveSessions::default();
        let (s1, s2, s3) = (
            Arc::<str>::from("s1"),
            Arc::<str>::from("s2"),
            Arc::<str>::from("s3"),
        );
        live.register(&s1, peer(1, "ann"));
        live.register(&s2, peer(2, "ann"));
        live.register(&s3, peer(3, "bob"));
        assert_eq!(live.to_user("ann", &Utf8Bytes::from_static("{}")), 2);
        assert_eq!(live.to_user("nobody", &Utf8Bytes::from_static("{}")), 0);
    }
}
