//! The native driver: one tokio task that owns the connection machine, its
//! socket and its timers, performs the machine's effects, and feeds back
//! what happens as events. Like the browser's driver
//! (`client-web/src/driver.rs`), it holds no policy: when to connect, what to
//! re-join, what to re-send and when to give up are all
//! `client_core::connection`'s. What is here is I/O, and the bookkeeping
//! that turns acknowledgements into answers for whoever is awaiting them.
//!
//! One task, no locks: the socket's reader, the commands from `Client`
//! handles and the earliest timer are awaited together, and each wake-up is
//! handled to the end before the next. The socket's writer is a task of its
//! own behind a bounded queue, so a server that stops reading can never
//! stall the timers: a full queue is a dead link.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use client_core::connection::{Connection, Effect, Event as MachineEvent, Phase};
use common::{ApiError, ErrorCode, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::client::{Command, Joined, Options};
use crate::timers::{Timer, Timers};
use crate::{Error, Event, Session};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reader = futures_util::stream::SplitStream<Socket>;

/// Frames waiting to be written on one socket. The machine sends little
/// (joins, posts at the paced rate, pongs): a queue this long means the
/// link or the server has stopped taking them.
const WRITE_QUEUE: usize = 256;

pub(crate) fn spawn(
    session: &Session,
    options: Options,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
    phase: watch::Sender<Phase>,
) {
    let driver = Driver {
        machine: Connection::new(options.policy),
        target: Arc::new(Target {
            url: session.server.ws_url(),
            token: session.token.clone(),
            tls: session.server.tls(),
        }),
        max_outbox: options.max_outbox,
        commands,
        events,
        phase,
        connecting: None,
        socket: None,
        timers: Timers::default(),
        queue: VecDeque::new(),
        sends: HashMap::new(),
        joins: HashMap::new(),
        joined: HashMap::new(),
        signed_out: None,
    };
    tokio::spawn(driver.run());
}

/// Where and as whom every attempt connects.
struct Target {
    url: String,
    token: String,
    tls: Arc<rustls::ClientConfig>,
}

/// The open socket: its reading half here, its writing half in a task.
struct Link {
    reader: Reader,
    writer: mpsc::Sender<Message>,
}

/// Why an attempt did not give a socket.
enum Refusal {
    /// The server refused the token (401): as a close with 4001.
    SignedOut(String),
    Failed,
}

/// What woke the driver.
enum Wake {
    Command(Option<Command>),
    Frame(Option<Result<Message, tungstenite::Error>>),
    Connected(Result<Box<Socket>, Refusal>),
    Timer(Timer),
}

struct Driver {
    machine: Connection,
    target: Arc<Target>,
    max_outbox: usize,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
    phase: watch::Sender<Phase>,
    /// The attempt in progress (TCP, TLS, the upgrade).
    connecting: Option<JoinHandle<Result<Box<Socket>, Refusal>>>,
    socket: Option<Link>,
    timers: Timers,
    /// Events for the machine, fed one at a time (an effect may cause one).
    queue: VecDeque<MachineEvent>,
    /// Posts awaiting their ack, by `client_id`.
    sends: HashMap<String, oneshot::Sender<Result<u64, Error>>>,
    /// Joins awaiting their `joined`, by room.
    joins: HashMap<String, Vec<oneshot::Sender<Result<Joined, Error>>>>,
    /// Rooms joined on this socket, as the server described them.
    joined: HashMap<String, Joined>,
    /// Why the session ended, when the server said.
    signed_out: Option<String>,
}

impl Driver {
    async fn run(mut self) {
        self.feed(MachineEvent::Start);
        loop {
            let wake = {
                let next = self.timers.next();
                tokio::select! {
                    command = self.commands.recv() => Wake::Command(command),
                    frame = read(&mut self.socket) => Wake::Frame(frame),
                    result = connected(&mut self.connecting) => Wake::Connected(result),
                    () = sleep_until(next) => Wake::Timer(next.expect("sleeps only with a timer").0),
                }
            };
            match wake {
                // Closed, or every `Client` dropped: stop, closing cleanly.
                Wake::Command(None | Some(Command::Close)) => self.feed(MachineEvent::Stop),
                Wake::Command(Some(command)) => self.command(command),
                Wake::Frame(frame) => self.frame(frame),
                Wake::Connected(result) => {
                    self.connecting = None;
                    match result {
                        Ok(socket) => self.opened(*socket),
                        Err(Refusal::SignedOut(reason)) => {
                            self.signed_out = Some(reason);
                            self.feed(MachineEvent::Closed {
                                code: Some(common::close::TOKEN_INVALID),
                            });
                        }
                        Err(Refusal::Failed) => self.feed(MachineEvent::Closed { code: None }),
                    }
                }
                Wake::Timer(timer) => {
                    self.timers.cancel(timer);
                    self.feed(timer.event());
                }
            }
            if self.machine.phase() == Phase::Stopped {
                break;
            }
        }
        self.fail_all(|| Error::Closed);
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Join { room, reply } => {
                if let Some(joined) = self.joined.get(&room) {
                    let _ = reply.send(Ok(joined.clone()));
                } else if let Some(error) = self.ended() {
                    let _ = reply.send(Err(error));
                } else {
                    self.joins.entry(room.clone()).or_default().push(reply);
                    self.feed(MachineEvent::Join { room });
                }
            }
            Command::Leave { room } => {
                self.joined.remove(&room);
                self.fail_joins(
                    &room,
                    Error::Refused {
                        code: ErrorCode::NotJoined,
                        message: "left before it was joined".into(),
                    },
                );
                self.feed(MachineEvent::Leave { room });
            }
            Command::Post {
                room,
                client_id,
                post,
                queued,
                reply,
            } => {
                if let Some(error) = self.ended() {
                    let _ = queued.send(Err(error));
                    return;
                }
                let waiting = self.machine.outbox().len();
                if waiting >= self.max_outbox {
                    let _ = queued.send(Err(Error::OutboxFull(waiting)));
                    return;
                }
                let _ = queued.send(Ok(()));
                // Posting to a room joins it: the machine sends a room's
                // posts once it is joined.
                if !self.machine.rooms().any(|r| r == room) {
                    self.feed(MachineEvent::Join { room: room.clone() });
                }
                if let Some(earlier) = self.sends.insert(client_id.clone(), reply) {
                    // The same client_id again: one post; the newer asker
                    // gets the answer, the older is told it was replaced.
                    let _ = earlier.send(Err(Error::Closed));
                }
                self.feed(MachineEvent::Send {
                    room,
                    client_id,
                    post,
                });
            }
            Command::Typing { room } => self.feed(MachineEvent::Typing { room }),
            Command::Read { room, seq } => self.feed(MachineEvent::Read { room, seq }),
            Command::Wake => self.feed(MachineEvent::Wake),
            Command::Close => self.feed(MachineEvent::Stop),
        }
    }

    /// Why nothing more can be done, if the client stopped.
    fn ended(&self) -> Option<Error> {
        match self.machine.phase() {
            Phase::SignedOut => Some(Error::SignedOut(self.reason())),
            Phase::Stopped => Some(Error::Closed),
            _ => None,
        }
    }

    fn reason(&self) -> String {
        self.signed_out
            .clone()
            .unwrap_or_else(|| "the session ended: sign in again".into())
    }

    fn opened(&mut self, socket: Socket) {
        let (mut sink, reader) = socket.split();
        let (writer, mut frames) = mpsc::channel::<Message>(WRITE_QUEUE);
        tokio::spawn(async move {
            while let Some(frame) = frames.recv().await {
                if sink.send(frame).await.is_err() {
                    return;
                }
            }
            // The driver let this socket go: close it properly, briefly.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), sink.close()).await;
        });
        self.socket = Some(Link { reader, writer });
        self.feed(MachineEvent::Opened);
    }

    fn frame(&mut self, frame: Option<Result<Message, tungstenite::Error>>) {
        match frame {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerMsg>(&text) {
                Ok(msg) => self.received(msg),
                Err(err) => tracing::warn!(%err, "a frame this client does not understand"),
            },
            Some(Ok(Message::Close(close))) => {
                let code = close.as_ref().map(|c| u16::from(c.code));
                if code == Some(common::close::TOKEN_INVALID) {
                    self.signed_out = close
                        .map(|c| c.reason.to_string())
                        .filter(|r| !r.is_empty());
                }
                self.socket = None;
                self.feed(MachineEvent::Closed { code });
            }
            // Pings are answered by tungstenite; binary frames are not ours.
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                self.socket = None;
                self.feed(MachineEvent::Closed { code: None });
            }
        }
    }

    fn received(&mut self, msg: ServerMsg) {
        // A message already seen (delivered live before a reconnect): the
        // machine still learns of it, the user is not told twice.
        let seen = match &msg {
            ServerMsg::Message(m) | ServerMsg::Event(m) => self
                .machine
                .last_seq(&m.room)
                .is_some_and(|last| m.seq <= last),
            ServerMsg::Ping => true,
            _ => false,
        };
        match &msg {
            ServerMsg::Ack { client_id, seq, .. } => {
                if let Some(reply) = self.sends.remove(client_id) {
                    let _ = reply.send(Ok(*seq));
                }
            }
            ServerMsg::Joined {
                room,
                members,
                last_seq,
                read_seq,
                unread,
                topic,
                moderator,
                ..
            } if self.machine.rooms().any(|r| r == room) => {
                let joined = Joined {
                    room: room.clone(),
                    members: members.clone(),
                    last_seq: *last_seq,
                    read_seq: *read_seq,
                    unread: *unread,
                    topic: topic.clone(),
                    moderator: *moderator,
                };
                for reply in self.joins.remove(room).unwrap_or_default() {
                    let _ = reply.send(Ok(joined.clone()));
                }
                self.joined.insert(room.clone(), joined);
            }
            ServerMsg::Left { room, reason } => {
                self.joined.remove(room);
                let reason = reason.clone().unwrap_or_else(|| "left".into());
                self.fail_joins(
                    room,
                    Error::Refused {
                        code: ErrorCode::Forbidden,
                        message: reason,
                    },
                );
            }
            ServerMsg::Error {
                code,
                message,
                reference: Some(reference),
            } => {
                let refused = || Error::Refused {
                    code: *code,
                    message: message.clone(),
                };
                // `internal` and `rate_limited` posts stay in the outbox:
                // the machine tries them again.
                if !matches!(code, ErrorCode::Internal | ErrorCode::RateLimited)
                    && let Some(reply) = self.sends.remove(reference)
                {
                    let _ = reply.send(Err(refused()));
                }
                if !self.joined.contains_key(reference) {
                    self.fail_joins(reference, refused());
                }
            }
            _ => {}
        }
        if !seen && self.events.receiver_count() > 0 {
            let _ = self.events.send(Event::Server(msg.clone()));
        }
        self.feed(MachineEvent::Received(msg));
    }

    /// Gives the machine `event`, and every event its effects cause, in
    /// order.
    fn feed(&mut self, event: MachineEvent) {
        self.queue.push_back(event);
        while let Some(event) = self.queue.pop_front() {
            let before = self.machine.phase();
            let effects = self.machine.handle(event, &mut rand::random::<f64>);
            for effect in effects {
                self.perform(effect);
            }
            let after = self.machine.phase();
            if before != after {
                if !matches!(after, Phase::Open) {
                    self.joined.clear();
                }
                self.phase.send_replace(after);
                let _ = self.events.send(Event::Phase(after));
            }
        }
    }

    fn perform(&mut self, effect: Effect) {
        match effect {
            Effect::Connect => {
                self.drop_socket();
                let target = self.target.clone();
                self.connecting = Some(tokio::spawn(connect(target)));
            }
            Effect::Disconnect => self.drop_socket(),
            Effect::SendFrame(msg) => {
                let Some(link) = &self.socket else { return };
                let text = serde_json::to_string(&msg).expect("client messages serialize");
                if link.writer.try_send(Message::text(text)).is_err() {
                    // The writer cannot keep up: the link is as good as dead.
                    tracing::warn!("the socket stopped taking frames; reconnecting");
                    self.drop_socket();
                    self.queue.push_back(MachineEvent::Closed { code: None });
                }
            }
            Effect::StartRetryTimer { ms } => self.timers.start(Timer::Retry, ms),
            Effect::CancelRetryTimer => self.timers.cancel(Timer::Retry),
            Effect::ArmWatchdog { ms } => self.timers.start(Timer::Watchdog, ms),
            Effect::CancelWatchdog => self.timers.cancel(Timer::Watchdog),
            Effect::StartPaceTimer { ms } => self.timers.start(Timer::Pace, ms),
            Effect::StartStableTimer { ms } => self.timers.start(Timer::Stable, ms),
            Effect::StartGateTimer { ms } => self.timers.start(Timer::Gate, ms),
            Effect::StartResendTimer { ms } => self.timers.start(Timer::Resend, ms),
            Effect::RequireSignIn => {
                let reason = self.reason();
                tracing::warn!(%reason, "the session ended; not reconnecting");
                self.drop_socket();
                self.fail_all(|| Error::SignedOut(reason.clone()));
                let _ = self.events.send(Event::SignedOut(reason));
            }
            Effect::SendFailed { client_id } => {
                if let Some(reply) = self.sends.remove(&client_id) {
                    let _ = reply.send(Err(Error::NotSent));
                }
            }
        }
    }

    fn drop_socket(&mut self) {
        if let Some(attempt) = self.connecting.take() {
            attempt.abort();
        }
        // Dropping the writer's queue ends its task, which closes the socket.
        self.socket = None;
    }

    fn fail_joins(&mut self, room: &str, error: Error) {
        for reply in self.joins.remove(room).unwrap_or_default() {
            let _ = reply.send(Err(error.clone()));
        }
    }

    fn fail_all(&mut self, error: impl Fn() -> Error) {
        for (_, reply) in self.sends.drain() {
            let _ = reply.send(Err(error()));
        }
        for (_, replies) in self.joins.drain() {
            for reply in replies {
                let _ = reply.send(Err(error()));
            }
        }
    }
}

/// One attempt: TCP, TLS for `wss://`, and the upgrade with the token in
/// the `Authorization` header (never in the URL).
async fn connect(target: Arc<Target>) -> Result<Box<Socket>, Refusal> {
    let mut request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|_| Refusal::Failed)?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", target.token))
        .map_err(|_| Refusal::SignedOut("the token is not a valid header value".into()))?;
    request.headers_mut().insert(header::AUTHORIZATION, bearer);
    let connector = Connector::Rustls(target.tls.clone());
    match tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector))
        .await
    {
        Ok((socket, _)) => Ok(Box::new(socket)),
        Err(tungstenite::Error::Http(response))
            if response.status() == StatusCode::UNAUTHORIZED =>
        {
            let reason = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice::<ApiError>(body).ok())
                .map_or_else(|| "the server refused the session".into(), |e| e.message);
            Err(Refusal::SignedOut(reason))
        }
        Err(err) => {
            tracing::debug!(%err, "connection attempt failed");
            Err(Refusal::Failed)
        }
    }
}

/// The socket's next frame; never, without a socket.
async fn read(socket: &mut Option<Link>) -> Option<Result<Message, tungstenite::Error>> {
    match socket {
        Some(link) => link.reader.next().await,
        None => std::future::pending().await,
    }
}

/// The attempt's outcome; never, without one.
async fn connected(
    attempt: &mut Option<JoinHandle<Result<Box<Socket>, Refusal>>>,
) -> Result<Box<Socket>, Refusal> {
    match attempt {
        Some(handle) => handle.await.unwrap_or(Err(Refusal::Failed)),
        None => std::future::pending().await,
    }
}

async fn sleep_until(next: Option<(Timer, tokio::time::Instant)>) {
    match next {
        Some((_, at)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
