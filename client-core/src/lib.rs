//! What every Hearth client does the same way, with no I/O: when to
//! (re)connect and how long to wait, the heartbeat watchdog, resuming each
//! room from the last seq seen, the outbox that re-sends without
//! duplicates, and pacing to the server's send limit.
//!
//! The browser app (`frontend`), the native client (`hearth-client`) and
//! its JavaScript build each drive this machine with their own sockets and
//! timers; none of them decides any of this itself. So a client fixed here
//! is fixed everywhere, and the policy is tested once, without a socket
//! (`tests/connection.rs`, `tests/connection_props.rs`).

pub mod connection;
