//! A native Hearth client, on tokio.
//!
//! ```no_run
//! # async fn run() -> Result<(), hearth_client::Error> {
//! use hearth_client::{Client, Event, Server, ServerMsg};
//!
//! let server = Server::new("https://chat.example.com")?;
//! let session = server.sign_in("alice", "correct horse battery staple").await?;
//! let client = Client::connect(&session);
//! let mut events = client.events();
//! client.join("general").await?;
//! let seq = client.send("general", "hello").await?; // returns once stored
//! while let Some(event) = events.next().await {
//!     if let Event::Server(ServerMsg::Message(m)) = event {
//!         println!("{}: {}", m.user.name, m.content);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! What happens underneath is the browser app's policy, from the same code
//! (`client_core::connection`): the token goes in the `Authorization`
//! header; a lost connection comes back with backoff and jitter (1 s, 2 s,
//! 4 s … 30 s, ±50 %); a silent one is caught by a heartbeat watchdog; every
//! room is re-joined from the last seq seen, so what was missed is replayed
//! and nothing is delivered twice; and every send waits in an outbox under
//! its `client_id` until the server acknowledges it, re-sent after each
//! reconnect, so it is stored exactly once. Sends are paced to the rate the
//! server announces. A session that ends (signed out, revoked) stops the
//! client, which says why (`Event::SignedOut`, `Error::SignedOut`).
//!
//! This crate performs the machine's effects with tokio-tungstenite and
//! tokio timers (`driver`), and holds no policy of its own.

mod client;
mod driver;
mod server;
mod timers;

pub use client::{Client, Events, Joined, Options, Receipt};
pub use client_core::connection::{Phase, Policy, Post};
pub use common::{ChatMessage, ErrorCode, RoomSummary, ServerMsg, User};
pub use server::{Server, Session};

/// What a client tells its user.
// Nearly every event is a `Server` one: boxing it to shrink the rare
// others would cost an allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Event {
    /// A frame from the server: messages, changes, presence, typing, reads.
    /// Each message and change once: one seen before a reconnect is not
    /// delivered again when the room is resumed. (`ping` is answered here
    /// and not passed on.)
    Server(ServerMsg),
    /// The connection's phase changed (connecting, open, waiting to retry).
    Phase(Phase),
    /// The session ended (signed out, revoked, expired): the client stopped
    /// and will not reconnect. The server's reason.
    SignedOut(String),
    /// This subscriber fell behind by this many events, which it missed:
    /// each subscriber has `Options::event_buffer` of room. Read the
    /// history (`Session::history`) to catch up.
    Lagged(u64),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("not a server address: {0}")]
    InvalidServer(String),
    /// The server could not be reached, or did not answer as Hearth does.
    #[error("could not reach the server: {0}")]
    Unreachable(String),
    /// The HTTP API refused (`code` is its `error`, as in docs/protocol.md).
    #[error("{message}")]
    Api {
        status: u16,
        code: Option<common::ApiErrorCode>,
        message: String,
    },
    /// The server refused a join or a post (`code`: docs/protocol.md).
    #[error("{message} ({code:?})")]
    Refused { code: ErrorCode, message: String },
    /// The server could not store the post after
    /// `client_core::connection::MAX_STORE_ATTEMPTS` tries, or its room
    /// was left (or this person removed from it) before it was sent.
    #[error("not sent: the server could not store it, or the room was left")]
    NotSent,
    /// More posts are waiting for their acknowledgement than
    /// `Options::max_outbox`: wait for some before adding more.
    #[error("{0} posts are already waiting to be sent")]
    OutboxFull(usize),
    /// The session ended: sign in again. The server's reason.
    #[error("signed out: {0}")]
    SignedOut(String),
    /// `Client::close` was called, or every handle to the client dropped.
    #[error("the client is closed")]
    Closed,
}
