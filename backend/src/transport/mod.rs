//! The WebSocket transport, below everything that knows about rooms: the
//! accept loop and its limits (`listener`), the opening handshake on hyper
//! (`handshake`), server frames encoded once for every recipient
//! (`frame`), each connection's bounded outbound queue written straight
//! into its socket (`outbox`), its writer task for slow clients
//! (`writer`), closing a connection from anywhere (`kick`), and how a
//! connection ends (`closing`); `socket`, what all of them need of a
//! connected socket.

pub mod closing;
pub mod frame;
pub mod handshake;
pub mod kick;
pub mod listener;
pub mod outbox;
pub mod socket;
pub mod writer;
