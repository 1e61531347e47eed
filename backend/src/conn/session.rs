//! One WebSocket connection: a reader that handles client frames, beside
//! the connection's bounded outbound queue (`outbox.rs`) and the writer task
//! that drains it when the client is slow (`writer.rs`).
//!
//! The reader never writes to the socket itself; everything it sends, the
//! answer to a ping included, goes through the same queue as room fan-out.
//! That keeps a single ordered stream of frames per connection and a single
//! place (the writer) that can wait for a slow client.

use std::collections::{HashSet, VecDeque};
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use common::{ClientMsg, ErrorCode, PROTOCOL_VERSION, Post, SendLimit, ServerMsg, validate};
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;

use crate::AppState;
use crate::auth::{Identity, now_secs};
use crate::conn::Peer;
use crate::hub::{JoinError, JoinTicket, NewEntry};
use crate::limits::bucket::TokenBucket;
use crate::prometheus;
use crate::transport::frame::Frame;
use crate::transport::handshake::Inbound;
use crate::transport::outbox::{CloseReason, Outbox};

/// The `ping` frame, framed once for every connection.
static PING: std::sync::LazyLock<Frame> =
    std::sync::LazyLock::new(|| Frame::text(r#"{"type":"ping"}"#));
/// Client pings answered: a burst, then this many a second; each one over
/// it goes unanswered and counts as a protocol error (so a flood ends with
/// 4008). Browsers never send pings; other clients send one every few
/// seconds at most.
const PING_BURST: u32 = 32;
const PINGS_PER_SEC: f64 = 4.0;
/// How long a joiner may take to make room in its queue during a replay.
const REPLAY_PATIENCE: Duration = Duration::from_secs(10);
/// Entries fetched for a replay at once: at most this many (each at most a
/// few KiB) are held per joining connection besides its queue.
const REPLAY_PAGE: u32 = 16;
/// How much of a replay may wait in a connection's queue: the next frame
/// is queued only once the socket has taken the rest below this.
const REPLAY_QUEUE_BYTES: usize = 32 * 1024;
/// Longest a join waits for its replay budget before it is refused.
const REPLAY_BUDGET_WAIT: Duration = Duration::from_secs(5);

/// Sets the connection up and returns what runs it until it closes, to be
/// spawned as it is: every idle connection's task is this future, so it is
/// kept small. Not an `async fn`, which would keep its arguments for its
/// whole life; and not wrapped in another `async` block by the caller, which
/// would hold it twice (once captured, once awaited).
pub fn run(
    socket: Arc<TcpStream>,
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
    // Revoking the session (sign-out, password change) closes this socket.
    app.hub
        .live_sessions()
        .register(&identity.session_id, peer.clone());
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
        session.close(&session_id, writer, stream, ending).await;
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
        if ending != Ending::ByClient {
            // Our close frame is the last thing we write: say so with a FIN
            // at once, so a client that waits for the server to close TCP
            // (RFC 6455 7.1.1) does not wait for the linger's deadline.
            let _ = socket2::SockRef::from(&**stream.get_ref().socket())
                .shutdown(std::net::Shutdown::Write);
        }
        match ending {
            Ending::ByServer => linger(&mut stream, LINGER).await,
            Ending::ProtocolError => discard_until(stream.get_ref().socket(), LINGER).await,
            Ending::ByClient => {}
        }
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

/// How many of one connection's sends may wait for the store at once.
const SENDS_IN_FLIGHT: usize = 64;

/// A send that the store answered: its room, its client id, and the result.
type SendOutcome = (String, String, Result<(), crate::store::StoreError>);

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
            ClientMsg::Join { room, since } => self.join(room, since).await,
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

    async fn join(&mut self, room: String, since: Option<u64>) {
        if let Err(why) = validate::room_name(&room) {
            return self.reject(ErrorCode::InvalidRoom, why, Some(room));
        }
        if !self.rooms.contains(&room) && self.rooms.len() >= self.app.config.max_rooms {
            return self.tell(
                ErrorCode::TooManyRooms,
                "leave a room before joining another",
                Some(room),
            );
        }
        if !self.membership_bucket.try_take(std::time::Instant::now()) {
            prometheus::rate_limited("join");
            return self.tell(ErrorCode::RateLimited, "joining too fast", Some(room));
        }
        // Private rooms are for their members. (A room that does not exist
        // yet is created, public, by joining it, within the user's quota.)
        // A public room loaded here needs no check, and no store query: a
        // reconnect storm, or a store that is paused, does not stop joins.
        // The hub decides in the end, on what the store says as it loads
        // or creates the room (`hub/admission.rs`); what is checked here
        // only spares it the work, and decides whether to spend the quota.
        // A room deleted meanwhile is looked at once more, as a new one.
        let mut ticket = None;
        for _ in 0..2 {
            match self.enter(&room, since).await {
                Ok(Some(entered)) => {
                    ticket = Some(entered);
                    break;
                }
                Ok(None) => return,
                Err(JoinError::Gone) => continue,
                Err(JoinError::Refused) => {
                    return self.tell(
                        ErrorCode::Forbidden,
                        "this room is private; ask a member to invite you",
                        Some(room),
                    );
                }
                Err(JoinError::Store(err)) => {
                    tracing::error!(%err, room, "join failed");
                    return self.tell(
                        ErrorCode::Internal,
                        "could not load the room; try again",
                        Some(room),
                    );
                }
            }
        }
        let Some(ticket) = ticket else {
            return self.tell(
                ErrorCode::Internal,
                "could not load the room; try again",
                Some(room),
            );
        };
        let mut ticket = ticket;
        self.rooms.insert(room.clone());
        match self.replay(&mut ticket).await {
            Ok(()) => {}
            Err(Unsent::Kicked) => return,
            Err(why) => {
                self.app.hub.leave(&room, &self.peer);
                self.rooms.remove(&room);
                return match why {
                    Unsent::OverBudget => {
                        prometheus::rate_limited("replay");
                        self.tell(
                            ErrorCode::RateLimited,
                            "joining with history too fast; try again in a few seconds",
                            Some(room),
                        )
                    }
                    Unsent::Store(err) => {
                        tracing::error!(%err, room, "replay failed");
                        self.tell(
                            ErrorCode::Internal,
                            "could not load the room; try again",
                            Some(room),
                        )
                    }
                    Unsent::Kicked => {}
                };
            }
        }
        self.app.hub.finish_join(ticket, &self.peer);
        metrics::counter!(prometheus::JOINS).increment(1);
    }

    /// Sends a join's history, a page at a time, each page fetched only
    /// once the previous one is (nearly) written: a client that does not
    /// read holds one page and `REPLAY_QUEUE_BYTES` of queue, however long
    /// the history. Every page is paid for from the connection's, the
    /// user's and the address's history budgets first, waiting for them up
    /// to `REPLAY_BUDGET_WAIT` a page.
    async fn replay(&mut self, ticket: &mut JoinTicket) -> Result<(), Unsent> {
        let mut after = ticket.replay_after;
        let mut first_page = true;
        while after < ticket.up_to {
            let page = self
                .app
                .hub
                .replay_page(ticket, after, REPLAY_PAGE)
                .await
                .map_err(Unsent::Store)?;
            let Some((first, last, frames)) = page else {
                break;
            };
            if first_page && ticket.resuming {
                ticket.recovered = first == after + 1;
            }
            first_page = false;
            after = last;
            let bytes: usize = frames.iter().map(|frame| frame.wire().len()).sum();
            self.pay_for_replay(bytes).await?;
            for frame in frames {
                if !self
                    .peer
                    .outbox
                    .push_patiently(frame, REPLAY_QUEUE_BYTES, REPLAY_PATIENCE)
                    .await
                {
                    return Err(Unsent::Kicked);
                }
            }
        }
        if first_page && ticket.resuming {
            // Nothing was left of what was missed (retention).
            ticket.recovered = false;
        }
        Ok(())
    }

    /// Takes `bytes` of history from every budget that meters it.
    async fn pay_for_replay(&mut self, bytes: usize) -> Result<(), Unsent> {
        let deadline = Instant::now() + REPLAY_BUDGET_WAIT;
        match self.replay_bucket.reserve(
            bytes as f64,
            REPLAY_BUDGET_WAIT,
            std::time::Instant::now(),
        ) {
            Some(wait) if wait.is_zero() => {}
            Some(wait) => {
                tracing::debug!(
                    conn = self.peer.id,
                    bytes,
                    ?wait,
                    "replay waits for its budget"
                );
                tokio::time::sleep(wait).await;
            }
            None => return Err(Unsent::OverBudget),
        }
        if self
            .app
            .throttle
            .wait_for_history_bytes(self.ip, &self.peer.user.id, bytes, deadline)
            .await
        {
            Ok(())
        } else {
            Err(Unsent::OverBudget)
        }
    }

    /// The checks before the hub's own, and the join itself. `Ok(None)`:
    /// refused here, and the client was told why.
    async fn enter(
        &mut self,
        room: &str,
        since: Option<u64>,
    ) -> Result<Option<JoinTicket>, JoinError> {
        let hub = &self.app.hub;
        let loaded_public = hub.loaded_visibility(room) == Some(common::Visibility::Public);
        let (seen, create) = if self.rooms.contains(room) || loaded_public {
            (None, false)
        } else {
            if !hub.is_loaded(room) && hub.loaded_rooms() >= self.app.config.max_loaded_rooms {
                self.tell(
                    ErrorCode::RoomLimit,
                    "this server holds as many rooms as it can right now; try again later",
                    Some(room.to_owned()),
                );
                return Ok(None);
            }
            let seen = hub.store().room_access(room, &self.peer.user.id).await?;
            match seen {
                Some(access) if !access.may_enter() => return Err(JoinError::Refused),
                Some(_) => {}
                None if validate::reserved_room(room) => {
                    self.tell(
                        ErrorCode::Forbidden,
                        "no such conversation; start one from a member's name",
                        Some(room.to_owned()),
                    );
                    return Ok(None);
                }
                None => {
                    if let Err((by_address, _)) =
                        self.app.throttle.create_room(&self.peer.user.id, self.ip)
                    {
                        prometheus::rate_limited(if by_address {
                            "rooms_created_per_ip"
                        } else {
                            "rooms_created"
                        });
                        self.tell(
                            ErrorCode::RateLimited,
                            "creating rooms too fast; join an existing one or wait",
                            Some(room.to_owned()),
                        );
                        return Ok(None);
                    }
                }
            }
            (seen, seen.is_none())
        };
        hub.start_join(room, &self.peer, since, seen, create)
            .await
            .map(Some)
    }

    async fn read(&mut self, room: String, seq: u64) {
        if !self.rooms.contains(&room) {
            return self.reject(ErrorCode::NotJoined, "join the room first", Some(room));
        }
        // Each one is a write: limited like joins (a client sends about one
        // a second per room it is looking at).
        if !self.membership_bucket.try_take(std::time::Instant::now()) {
            prometheus::rate_limited("read");
            return self.tell(ErrorCode::RateLimited, "marking read too fast", Some(room));
        }
        if let Err(err) = self.app.hub.mark_read(&room, &self.peer, seq).await {
            // Not worth bothering the reader: the next one will do.
            tracing::debug!(%err, room, "storing a read position failed");
        }
    }

    fn leave(&mut self, room: String) {
        if !self.rooms.remove(&room) {
            return self.reject(ErrorCode::NotJoined, "not in that room", Some(room));
        }
        if !self.membership_bucket.try_take(std::time::Instant::now()) {
            // Still leave: refusing to let someone out helps nobody.
            tracing::debug!(conn = self.peer.id, "leave over the membership rate");
        }
        self.app.hub.leave(&room, &self.peer);
        self.peer
            .outbox
            .push(Frame::encode(&ServerMsg::Left { room, reason: None }));
    }

    /// Adds an entry to the room's log: a message, or a change. All of them
    /// are paced by the same send limit, stored in order, and acked.
    async fn send(&mut self, room: String, client_id: String, entry: Post) {
        if let Err(why) = validate::client_id(&client_id) {
            return self.reject(ErrorCode::InvalidClientId, why, Some(client_id));
        }
        if !self.rooms.contains(&room) {
            return self.reject(ErrorCode::NotJoined, "join the room first", Some(client_id));
        }
        let checked = match &entry {
            // A reply answers a message the sender could have seen (asked
            // of the room only for replies: a plain send takes no lock).
            Post::Message {
                reply_to: Some(seq),
                ..
            } if *seq == 0 || *seq > self.app.hub.delivered_seq(&room).unwrap_or(0) => {
                Err("reply_to is not a message of this room")
            }
            Post::Message { content, .. } | Post::Edit { content, .. } => {
                validate::content(content)
            }
            Post::Topic { topic } => validate::topic(topic),
            Post::React { emoji, .. } => validate::reaction(emoji),
            Post::Delete { .. } => Ok(()),
        };
        if let Err(why) = checked {
            return self.reject(ErrorCode::InvalidContent, why, Some(client_id));
        }
        if !self.send_bucket.try_take(std::time::Instant::now()) {
            prometheus::rate_limited("send");
            return self.tell(
                ErrorCode::RateLimited,
                "sending too fast; the message was not sent",
                Some(client_id),
            );
        }
        // Whether this user may change other people's things: asked of the
        // store each time, so a role taken away counts at once. Only for
        // deletes and topics, which are rare.
        let moderator = match &entry {
            Post::Delete { .. } | Post::Topic { .. } => {
                match self
                    .app
                    .hub
                    .store()
                    .room_access(&room, &self.peer.user.id)
                    .await
                {
                    Ok(access) => access.is_some_and(|a| a.moderates()),
                    Err(err) => {
                        tracing::error!(%err, room, "checking a role failed");
                        return self.tell(
                            ErrorCode::Internal,
                            "the change could not be stored; try again",
                            Some(client_id),
                        );
                    }
                }
            }
            _ => false,
        };
        if matches!(entry, Post::Topic { .. }) && !moderator {
            return self.reject(
                ErrorCode::Forbidden,
                "only the room's owners and moderators set its topic",
                Some(client_id),
            );
        }
        let post = NewEntry::of(&entry, &client_id, moderator);
        // Queued for the store now, in the order read; delivered (with our
        // ack) once stored. The delivery runs as its own task so that it
        // happens even if this connection ends first: others must get the
        // message.
        match self.app.hub.submit(&room, &self.peer, post).await {
            Ok(submitted) => self.sends.push_back(tokio::spawn(async move {
                (room, client_id, submitted.finish().await)
            })),
            Err(err) => {
                if let crate::store::StoreError::UnknownRoom(_) = err {
                    // Removed from the room while this was on its way.
                    self.rooms.remove(&room);
                }
                self.sent((room, client_id, Err(err)))
            }
        }
    }

    /// Tells the client about a send the store refused.
    fn sent(&mut self, (room, client_id, result): SendOutcome) {
        let Err(err) = result else {
            return;
        };
        if let crate::store::StoreError::UnknownRoom(_) = err {
            // Not `self.rooms.remove`: this answer can come after the client
            // joined the room again (a deleted room made anew), and a room
            // found deleted here evicts its connections anyway (see
            // `Hub::forget_deleted`), which `take_evicted` applies.
            return self.tell(ErrorCode::NotJoined, "not in that room", Some(client_id));
        }
        if let crate::store::StoreError::NoSuchMessage = err {
            return self.tell(
                ErrorCode::NoSuchMessage,
                "that message does not exist, was deleted, or is not yours to change",
                Some(client_id),
            );
        }
        tracing::error!(%err, room, "storing a message failed");
        self.tell(
            ErrorCode::Internal,
            "the message could not be stored; send it again",
            Some(client_id),
        );
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

/// The close code for a read error the client caused: 1009 for a frame over
/// the size limit, 1007 for a text frame that is not UTF-8.
/// The close code for a read error, the one place where tungstenite's
/// errors become close codes: a frame over the limit 1009, text that is not
/// UTF-8 1007, any other violation of RFC 6455 (reserved bits or opcodes,
/// bad control frames, a continuation without a start, an unmasked frame, a
/// malformed close) 1002. `None`: the connection itself broke; there is
/// nobody to tell.
fn close_reason_for(err: &tungstenite::Error) -> Option<CloseReason> {
    match err {
        tungstenite::Error::Capacity(_) => Some(CloseReason::TOO_BIG),
        tungstenite::Error::Utf8(_) => Some(CloseReason::INVALID_UTF8),
        // The connection ended without a close frame: nobody to tell.
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => None,
        tungstenite::Error::Protocol(_) => Some(CloseReason::PROTOCOL_ERROR),
        tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Io(_) => None,
        // Not produced by reading a server-side stream; treat as broken
        // framing all the same.
        _ => Some(CloseReason::PROTOCOL_ERROR),
    }
}

/// The answer to a client's close frame: its own code (RFC 6455 5.5.1),
/// 1002 if that code may not be sent (tungstenite replaces it with 1002),
/// 1000 if it had none.
fn close_reply(frame: Option<&tungstenite::protocol::CloseFrame>) -> CloseReason {
    match frame {
        Some(frame) => CloseReason {
            code: u16::from(frame.code),
            reason: "",
        },
        None => CloseReason::NORMAL,
    }
}

/// Why a join's history was not all sent.
#[derive(Debug)]
enum Unsent {
    /// The connection is closing (kicked, or too slow to take it).
    Kicked,
    /// Over the history budgets for longer than a join may wait.
    OverBudget,
    Store(crate::store::StoreError),
}

/// How a session's reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client closed (or the connection is gone): nothing to wait for.
    ByClient,
    /// The server closes: the client's own close is still to come.
    ByServer,
    /// The client broke the protocol: its stream cannot be parsed further.
    ProtocolError,
}

/// How long a server that closed waits for the client's close before it
/// closes the TCP connection (RFC 6455 7.1.1: the server closes TCP after
/// the closing handshake). Dropping the socket with the client's bytes
/// unread would send a reset, and a client that sees it first never reads
/// our close code.
const LINGER: Duration = Duration::from_secs(2);

/// After the server's close frame: reads and discards client frames until
/// its close, the end of the stream, or `deadline`.
async fn linger(stream: &mut WebSocketStream<Inbound>, deadline: Duration) {
    let socket = stream.get_ref().socket().clone();
    let until = Instant::now() + deadline;
    let done = tokio::time::timeout_at(until, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(_))) | None => return true,
                Some(Ok(_)) => {}
                Some(Err(_)) => return false,
            }
        }
    })
    .await;
    if done == Ok(false) {
        discard_until(&socket, until.saturating_duration_since(Instant::now())).await;
    }
}

/// Reads and throws away raw bytes until the client closes its side or
/// `deadline` passes: a stream that broke the protocol is not parsed
/// further, but what the client still sends must not turn our FIN into a
/// reset.
async fn discard_until(socket: &TcpStream, deadline: Duration) {
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(deadline, async {
        loop {
            if socket.readable().await.is_err() {
                return;
            }
            match socket.try_read(&mut sink) {
                // The client closed its side.
                Ok(0) => return,
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => pending().await,
    }
}

/// The oldest pipelined send's outcome, once it has one.
async fn next_send(
    sends: &mut VecDeque<tokio::task::JoinHandle<SendOutcome>>,
) -> Result<SendOutcome, tokio::task::JoinError> {
    let done = match sends.front_mut() {
        Some(oldest) => oldest.await,
        None => pending().await,
    };
    sends.pop_front();
    if sends.is_empty() && sends.capacity() > 8 {
        // A burst's slots go back; an idle connection holds none.
        sends.shrink_to_fit();
    }
    done
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
