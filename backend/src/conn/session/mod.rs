//! One WebSocket connection: a reader that handles client frames, beside
//! the connection's bounded outbound queue (`transport::outbox`) and the
//! writer task that drains it when the client is slow (`transport::writer`).
//! Joining, leaving and read positions are `joining.rs`; posts are
//! `sending.rs`; how the connection ends is `transport::closing`.
//!
//! The reader never writes to the socket itself; everything it sends, the
//! answer to a ping included, goes through the same queue as room fan-out.
//! That keeps a single ordered stream of frames per connection and a single
//! place (the writer) that can wait for a slow client.

mod joining;
mod sending;

use std::collections::{HashSet, VecDeque};
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use common::{ClientMsg, ErrorCode, PROTOCOL_VERSION, SendLimit, ServerMsg};
use futures_util::StreamExt;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;

use crate::AppState;
use crate::auth::{Identity, now_secs};
use crate::conn::Peer;
use crate::limits::bucket::TokenBucket;
use crate::prometheus;
use crate::transport::closing::{self, Ending, close_reason_for, close_reply};
use crate::transport::frame::Frame;
use crate::transport::handshake::Inbound;
use crate::transport::outbox::{CloseReason, Outbox};
use sending::{SENDS_IN_FLIGHT, SendOutcome, next_send};

/// The `ping` frame, framed once for every connection.
static PING: std::sync::LazyLock<Frame> =
    std::sync::LazyLock::new(|| Frame::text(r#"{"type":"ping"}"#));
/// Client pings answered: a burst, then this many a second; each one over
/// it goes unanswered and counts as a protocol error (so a flood ends with
/// 4008). Browsers never send pings; other clients send one every few
/// seconds at most.
const PING_BURST: u32 = 32;
const PINGS_PER_SEC: f64 = 4.0;
/// Sets the connection up and returns what runs it until it closes, to be
/// spawned as it is: every idle connection's task is this future, so it is
/// kept small. Not an `async fn`, which would keep its arguments for its
/// whole life; and not wrapped in another `async` block by the caller, which
/// would hold it twice (once captured, once awaited).
pub fn run(
    socket: Arc<dyn crate::transport::socket::Socket>,
    stream: WebSocketStream<Inbound>,
    app: Arc<AppState>,
    identity: Identity,
    slot: crate::limits::slots::Slot,
    ip: std::net::IpAddr,
) -> impl std::future::Future<Output = ()> + Send {
    let limits = &app.config;
    let (outbox, drain) = Outbox::new(limits.outbound_queue, limits.outbound_queue_bytes, socket);
    let peer = Arc::new(Peer {
        id: app.next_conn_id(),
        user_id: Arc::from(identity.user.id.as_str()),
        user: identity.user,
        outbox,
        evicted: std::sync::Mutex::new(Vec::new()),
    });
    let writer = tokio::spawn(crate::transport::writer::write_loop(
        drain,
        peer.outbox.kick().clone(),
    ));
    tracing::debug!(conn = peer.id, user = %peer.user.id, "connected");
    metrics::counter!(prometheus::CONNECTIONS_OPENED).increment(1);
    metrics::gauge!(prometheus::CONNECTIONS_OPEN).increment(1.0);

    peer.outbox.push(Frame::encode(&ServerMsg::Welcome {
        user: peer.user.clone(),
        heartbeat_ms: limits.heartbeat_ms,
        protocol: PROTOCOL_VERSION,
        send_limit: SendLimit {
            burst: limits.send_burst,
            refill_ms: (1000.0 / limits.send_rate.max(0.001))
                .ceil()
                .min(f64::from(u32::MAX)) as u32,
        },
    }));
    // Revoking the session (sign-out, password change) closes this socket,
    // and what is sent to the user (`rooms_changed`) reaches it from now
    // on: after `welcome`, which must be the first frame.
    app.hub
        .live_sessions()
        .register(&identity.session_id, peer.clone());

    let now = std::time::Instant::now();
    let mut session = Session {
        send_bucket: TokenBucket::new(limits.send_burst, limits.send_rate, now),
        // Joins and leaves fan out presence, so they are limited too, but
        // generously: a reconnecting client re-joins all its rooms at once.
        membership_bucket: TokenBucket::new((limits.max_rooms * 2) as u32, limits.send_rate, now),
        error_bucket: TokenBucket::new(limits.error_budget, 1.0, now),
        ping_bucket: TokenBucket::new(PING_BURST, PINGS_PER_SEC, now),
        replay_bucket: TokenBucket::new(
            limits.replay_bytes_per_sec.saturating_mul(2),
            f64::from(limits.replay_bytes_per_sec.max(1)),
            now,
        ),
        rooms: HashSet::new(),
        ip,
        sends: VecDeque::new(),
        peer: peer.clone(),
        app: app.clone(),
    };
    let (session_id, expires_at) = (identity.session_id, identity.expires_at);
    async move {
        // Held until the connection is gone: it counts against the caps.
        let _slot = slot;
        let mut stream = stream;
        let ending = session.read_loop(&mut stream, expires_at).await;
        // Boxed: closing (the writer's last frames, the closing handshake)
        // is rare and its state is large; inline, every idle connection's
        // future would be as large as it.
        Box::pin(session.close(&session_id, writer, stream, ending)).await;
    }
}

impl Session {
    /// Leaves every room, stops the writer (which sends the close frame),
    /// lingers for the client's close if the server started it, and counts
    /// the close.
    async fn close(
        self,
        session_id: &str,
        writer: tokio::task::JoinHandle<()>,
        mut stream: WebSocketStream<Inbound>,
        ending: Ending,
    ) {
        let Session {
            app, peer, rooms, ..
        } = self;
        for room in rooms {
            app.hub.leave(&room, &peer);
        }
        app.hub.live_sessions().unregister(session_id, peer.id);
        // The writer stops on a kick; a normal end (the client closed) needs one too.
        peer.outbox.kick().kick(CloseReason::NORMAL);
        let _ = writer.await;
        closing::finish(&mut stream, ending).await;
        let reason = peer.outbox.kick().reason();
        tracing::debug!(conn = peer.id, ?reason, "disconnected");
        metrics::gauge!(prometheus::CONNECTIONS_OPEN).decrement(1.0);
        let code = reason.map_or(CloseReason::NORMAL.code, |r| r.code);
        metrics::counter!(prometheus::CONNECTIONS_CLOSED, "code" => code.to_string()).increment(1);
    }
}

struct Session {
    app: Arc<AppState>,
    peer: Arc<Peer>,
    /// The client's address, for the budgets shared by its connections.
    ip: std::net::IpAddr,
    /// Rooms this connection is in.
    rooms: HashSet<String>,
    send_bucket: TokenBucket,
    membership_bucket: TokenBucket,
    error_bucket: TokenBucket,
    /// Pings answered: each costs a pong, so a flood of them is metered
    /// like any other work a client asks of the server.
    ping_bucket: TokenBucket,
    /// Bytes of history replayed on joins: a join/leave loop cannot turn
    /// a few bytes in into megabytes out.
    replay_bucket: TokenBucket,
    /// Sends on their way into the store, in the order they were read; a
    /// client may pipeline up to `SENDS_IN_FLIGHT` of them (they then share
    /// the store's transactions), beyond which the connection stops reading.
    /// Taken in that order too: the store commits them in order anyway, and
    /// an idle connection's empty deque holds no memory.
    sends: VecDeque<tokio::task::JoinHandle<SendOutcome>>,
}

impl Session {
    async fn read_loop(
        &mut self,
        stream: &mut WebSocketStream<Inbound>,
        expires_at: u64,
    ) -> Ending {
        let heartbeat = self.app.config.heartbeat();
        let pong_timeout = self.app.config.pong_timeout();
        let mut ping = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Set when a ping goes out, cleared by any frame from the client.
        let mut pong_deadline: Option<Instant> = None;
        let token_expiry = sleep(Duration::from_secs(expires_at.saturating_sub(now_secs())));
        tokio::pin!(token_expiry);
        let kick = self.peer.outbox.kick().clone();
        let shutdown = self.app.shutdown.clone();

        let kicked = kick.kicked();
        tokio::pin!(kicked);
        let server_closes = |reason| {
            kick.kick(reason);
            Ending::ByServer
        };
        loop {
            tokio::select! {
                _ = &mut kicked => return Ending::ByServer,
                _ = shutdown.cancelled() => {
                    return server_closes(CloseReason::GOING_AWAY);
                }
                _ = ping.tick() => {
                    self.peer.outbox.push(PING.clone());
                    pong_deadline.get_or_insert(Instant::now() + pong_timeout);
                }
                _ = sleep_until_some(pong_deadline) => {
                    return server_closes(CloseReason::HEARTBEAT_TIMEOUT);
                }
                _ = &mut token_expiry => {
                    return server_closes(CloseReason::TOKEN_EXPIRED);
                }
                done = next_send(&mut self.sends), if !self.sends.is_empty() => {
                    if let Ok(outcome) = done {
                        self.sent(outcome);
                    }
                }
                frame = stream.next(), if self.sends.len() < SENDS_IN_FLIGHT => {
                    pong_deadline = None;
                    match frame {
                        Some(Ok(Message::Text(text))) => self.handle_text(text.as_str()).await,
                        Some(Ok(Message::Binary(_))) => {
                            self.reject(ErrorCode::BadFrame, "binary frames are not supported", None);
                        }
                        Some(Ok(Message::Ping(payload))) => {
                            // Each ping costs a pong: metered, or one socket
                            // makes the server write without end.
                            if self.ping_bucket.try_take(std::time::Instant::now()) {
                                self.peer.outbox.push(Frame::pong(&payload));
                            } else if !self.error_bucket.try_take(std::time::Instant::now()) {
                                return server_closes(CloseReason::TOO_MANY_ERRORS);
                            }
                        }
                        Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                        // The client's close is answered with its own code
                        // (tungstenite turned an invalid one into 1002).
                        Some(Ok(Message::Close(frame))) => {
                            kick.kick(close_reply(frame.as_ref()));
                            return Ending::ByClient;
                        }
                        None => return Ending::ByClient,
                        Some(Err(err)) => {
                            // A protocol error says why it closes (RFC 6455
                            // 7.4.1); a broken connection just ends.
                            return match close_reason_for(&err) {
                                Some(reason) => {
                                    kick.kick(reason);
                                    Ending::ProtocolError
                                }
                                None => Ending::ByClient,
                            };
                        }
                    }
                }
            }
        }
    }

    async fn handle_text(&mut self, text: &str) {
        // Rooms a moderator removed this connection from are gone.
        for room in self.peer.take_evicted() {
            self.rooms.remove(&room);
        }
        let msg = match serde_json::from_str::<ClientMsg>(text) {
            Ok(msg) => msg,
            Err(_) => {
                let (code, message) = classify_bad_frame(text);
                return self.reject(code, message, None);
            }
        };
        let mut msg = msg;
        // Room names are case-insensitive: one spelling from here on.
        match &mut msg {
            ClientMsg::Join { room, .. }
            | ClientMsg::Leave { room }
            | ClientMsg::Send { room, .. }
            | ClientMsg::Edit { room, .. }
            | ClientMsg::Delete { room, .. }
            | ClientMsg::SetTopic { room, .. }
            | ClientMsg::React { room, .. }
            | ClientMsg::Typing { room }
            | ClientMsg::Read { room, .. } => room.make_ascii_lowercase(),
            ClientMsg::Pong => {}
        }
        let msg = match msg.into_post() {
            Ok((room, client_id, post)) => return self.send(room, client_id, post).await,
            Err(msg) => msg,
        };
        match msg {
            // Boxed for the same reason: a join (checks, store, replay,
            // budgets) is rare next to the time a connection sits idle.
            ClientMsg::Join { room, since } => Box::pin(self.join(room, since)).await,
            ClientMsg::Leave { room } => self.leave(room),
            ClientMsg::Typing { room } => {
                if self.rooms.contains(&room) {
                    self.app
                        .hub
                        .typing(&room, &self.peer, std::time::Instant::now());
                } else {
                    self.reject(ErrorCode::NotJoined, "join the room first", Some(room));
                }
            }
            ClientMsg::Pong => {}
            ClientMsg::Read { room, seq } => self.read(room, seq).await,
            // Posts were handled above.
            ClientMsg::Send { .. }
            | ClientMsg::Edit { .. }
            | ClientMsg::Delete { .. }
            | ClientMsg::React { .. }
            | ClientMsg::SetTopic { .. } => {}
        }
    }

    /// Reports an error the client caused. Too many of them close the
    /// connection with 4008.
    fn reject(&mut self, code: ErrorCode, message: &str, reference: Option<String>) {
        self.tell(code, message, reference);
        if !self.error_bucket.try_take(std::time::Instant::now()) {
            self.peer.outbox.kick().kick(CloseReason::TOO_MANY_ERRORS);
        }
    }

    /// Reports an error that does not count against the error budget.
    fn tell(&mut self, code: ErrorCode, message: &str, reference: Option<String>) {
        metrics::counter!(prometheus::ERRORS, "code" => code.as_str()).increment(1);
        self.peer.outbox.push(Frame::encode(&ServerMsg::Error {
            code,
            message: message.to_owned(),
            reference,
        }));
    }
}

/// Only called for frames that failed to parse, so the second parse costs
/// nothing on the normal path.
fn classify_bad_frame(text: &str) -> (ErrorCode, &'static str) {
    #[derive(serde::Deserialize)]
    struct Tagged<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    match serde_json::from_str::<Tagged>(text) {
        Ok(tagged)
            if !matches!(
                tagged.kind.as_ref(),
                "join"
                    | "leave"
                    | "send"
                    | "edit"
                    | "delete"
                    | "set_topic"
                    | "react"
                    | "typing"
                    | "pong"
                    | "read"
            ) =>
        {
            (ErrorCode::UnknownType, "unknown message type")
        }
        Ok(_) => (ErrorCode::BadFrame, "missing or invalid fields"),
        Err(_) => (ErrorCode::BadFrame, "frame is not a JSON message"),
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_ping_is_the_protocol_ping() {
        assert_eq!(Frame::encode(&ServerMsg::Ping), *PING);
    }

    #[test]
    fn bad_frames_are_classified() {
        assert_eq!(classify_bad_frame("not json").0, ErrorCode::BadFrame);
        assert_eq!(
            classify_bad_frame(r#"{"type":"dance"}"#).0,
            ErrorCode::UnknownType
        );
        assert_eq!(
            classify_bad_frame(r#"{"type":"send","room":"r"}"#).0,
            ErrorCode::BadFrame
        );
        assert_eq!(
            classify_bad_frame(r#"{"no":"type"}"#).0,
            ErrorCode::BadFrame
        );
    }
}
