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

use crate::transport::frame::Frame;

use crate::conn::{ConnId, Peer};
use crate::transport::outbox::CloseReason;

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
    pub fn to_user(&self, user_id: &str, frame: &Frame) -> usize {
        self.to_user_except(user_id, None, frame)
    }

    /// `to_user`, but not to the connection `except` (the one that caused
    /// it, which knows).
    pub fn to_user_except(&self, user_id: &str, except: Option<ConnId>, frame: &Frame) -> usize {
        let sockets = self.lock();
        let mut told = 0;
        for peer in sockets.values().flatten() {
            if &*peer.user_id == user_id && Some(peer.id) != except {
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

    /// A peer on a real loopback socket, and the client's end of it (with
    /// the writer's side of the queue: without it the socket closes).
    async fn peer(
        id: ConnId,
        user: &str,
    ) -> (
        Arc<Peer>,
        (tokio::net::TcpStream, crate::transport::outbox::Drain),
    ) {
        let (socket, client) = crate::transport::outbox::loopback().await;
        let (outbox, drain) = crate::transport::outbox::Outbox::new(8, usize::MAX, socket);
        let peer = Arc::new(Peer {
            id,
            user: common::User {
                id: user.into(),
                name: user.into(),
                username: None,
            },
            user_id: Arc::from(user),
            outbox,
            evicted: std::sync::Mutex::new(Vec::new()),
        });
        (peer, (client, drain))
    }

    #[tokio::test]
    async fn only_the_revoked_sessions_sockets_are_kicked() {
        let live = LiveSessions::default();
        let (a, b) = (Arc::<str>::from("a"), Arc::<str>::from("b"));
        let mut peers = Vec::new();
        let mut clients = Vec::new();
        for i in 0..3 {
            let (peer, client) = peer(i + 1, "u").await;
            peers.push(peer);
            clients.push(client);
        }
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

    #[tokio::test]
    async fn a_word_for_a_user_reaches_each_of_their_sockets_only() {
        use tokio::io::AsyncReadExt;
        let live = LiveSessions::default();
        let (s1, s2, s3) = (
            Arc::<str>::from("s1"),
            Arc::<str>::from("s2"),
            Arc::<str>::from("s3"),
        );
        let (ann1, (mut ann1_client, _d1)) = peer(1, "ann").await;
        let (ann2, (mut ann2_client, _d2)) = peer(2, "ann").await;
        let (bob, (mut bob_client, _d3)) = peer(3, "bob").await;
        live.register(&s1, ann1);
        live.register(&s2, ann2);
        live.register(&s3, bob);
        let frame = Frame::text("{}");
        assert_eq!(live.to_user("ann", &frame), 2);
        assert_eq!(live.to_user("nobody", &frame), 0);
        // Written straight into each of Ann's sockets, nothing into Bob's.
        for client in [&mut ann1_client, &mut ann2_client] {
            let mut got = vec![0; frame.wire().len()];
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(got, frame.wire().as_ref());
        }
        let mut byte = [0];
        let nothing = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            bob_client.read(&mut byte),
        );
        assert!(nothing.await.is_err(), "Bob got nothing");
    }
}
