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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::hub::ConnId;
use crate::outbox::{CloseReason, Kick};

/// Each session's sockets on this node.
type Sockets = HashMap<Arc<str>, Vec<(ConnId, Arc<Kick>)>>;

#[derive(Default)]
pub struct LiveSessions {
    sockets: Mutex<Sockets>,
}

impl LiveSessions {
    pub fn register(&self, session: &Arc<str>, conn: ConnId, kick: Arc<Kick>) {
        self.lock()
            .entry(session.clone())
            .or_default()
            .push((conn, kick));
    }

    pub fn unregister(&self, session: &str, conn: ConnId) {
        let mut sockets = self.lock();
        if let Some(list) = sockets.get_mut(session) {
            list.retain(|(id, _)| *id != conn);
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
            for (_, kick) in sockets.get(session.as_ref()).into_iter().flatten() {
                kick.kick(CloseReason::SESSION_REVOKED);
                closed += 1;
            }
        }
        closed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sockets> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_revoked_sessions_sockets_are_kicked() {
        let live = LiveSessions::default();
        let (a, b) = (Arc::<str>::from("a"), Arc::<str>::from("b"));
        let kicks: Vec<Arc<Kick>> = (0..3).map(|_| Arc::new(Kick::default())).collect();
        live.register(&a, 1, kicks[0].clone());
        live.register(&a, 2, kicks[1].clone());
        live.register(&b, 3, kicks[2].clone());
        live.unregister("a", 2);
        assert_eq!(live.revoke(&["a", "nobody"]), 1);
        assert_eq!(kicks[0].reason(), Some(CloseReason::SESSION_REVOKED));
        assert_eq!(kicks[1].reason(), None, "unregistered");
        assert_eq!(kicks[2].reason(), None, "another session");
    }
}
