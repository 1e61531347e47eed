//! One client connection above the transport: the session that reads its
//! frames and speaks the protocol (`session`), the connection as the rooms
//! see it (`Peer`), and the registry that closes a revoked session's sockets
//! (`revocation`).

mod peer;
pub mod revocation;
pub mod session;

pub use peer::{ConnId, Peer};
