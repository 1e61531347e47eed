//! The handle people use: a `Client` (cheap to clone, one connection
//! behind it) sends commands to the driver task and awaits its answers.

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use client_core::connection::{Phase, Policy, Post};
use common::User;

use crate::{Error, Event, Session};

/// How a client behaves; `Default` is what the browser app does.
#[derive(Debug, Clone)]
pub struct Options {
    /// Backoff, watchdog and gate timing (`client_core`'s production
    /// policy by default).
    pub policy: Policy,
    /// Events each subscriber may fall behind by before it misses some
    /// (and is told so with `Event::Lagged`).
    pub event_buffer: usize,
    /// Posts that may wait for their acknowledgement at once; one more is
    /// refused with `Error::OutboxFull`. Bounds the memory of a client
    /// whose server is away.
    pub max_outbox: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            policy: Policy::default(),
            event_buffer: 1024,
            max_outbox: 1000,
        }
    }
}

/// What the driver is asked to do.
pub(crate) enum Command {
    Join {
        room: String,
        reply: oneshot::Sender<Result<Joined, Error>>,
    },
    Leave {
        room: String,
    },
    Post {
        room: String,
        client_id: String,
        post: Post,
        /// Answered as soon as the post is in the outbox (or refused:
        /// `OutboxFull`, `SignedOut`), so `submit` can say so itself.
        queued: oneshot::Sender<Result<(), Error>>,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    Typing {
        room: String,
    },
    Read {
        room: String,
        seq: u64,
    },
    /// Try again now, if waiting to.
    Wake,
    Close,
}

/// A room joined: what the server said of it (`joined`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub room: String,
    pub members: Vec<User>,
    /// The newest seq in the room.
    pub last_seq: u64,
    /// How far this person has read it.
    pub read_seq: u64,
    /// Messages of others after `read_seq`, counted up to 100.
    pub unread: u32,
    pub topic: String,
    /// This person owns or moderates the room.
    pub moderator: bool,
}

/// One connection to a server, kept up until it is closed or its session
/// ends. Clones share it.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    /// Weak: the driver holds the sender, so subscriptions end when it
    /// stops, not when the last handle goes.
    events: broadcast::WeakSender<Event>,
    phase: watch::Receiver<Phase>,
}

impl Client {
    /// Connects as `session`, in the background: call it within a tokio
    /// runtime. Returns at once; the connection comes up (and back) by
    /// itself, and joins and posts wait for it.
    pub fn connect(session: &Session) -> Client {
        Client::connect_with(session, Options::default())
    }

    pub fn connect_with(session: &Session, options: Options) -> Client {
        // Commands are small and answered at once; the bound only makes a
        // caller that outruns the driver wait instead of piling up.
        let (commands, inbox) = mpsc::channel(256);
        let (events, _) = broadcast::channel(options.event_buffer.max(1));
        let (phase_tx, phase) = watch::channel(Phase::Idle);
        let weak = events.downgrade();
        crate::driver::spawn(session, options, inbox, events, phase_tx);
        Client {
            commands,
            events: weak,
            phase,
        }
    }

    /// What happens from now on (take it before joining, to see the
    /// room's first messages). Each subscriber gets every event.
    pub fn events(&self) -> Events {
        let inner = match self.events.upgrade() {
            Some(events) => events.subscribe(),
            // Stopped already: a subscription that has ended.
            None => broadcast::channel(1).1,
        };
        Events { inner }
    }

    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Waits until the server has welcomed this client.
    pub async fn opened(&self) -> Result<(), Error> {
        let mut phase = self.phase.clone();
        let reached = phase
            .wait_for(|p| matches!(p, Phase::Open | Phase::SignedOut | Phase::Stopped))
            .await
            .map(|p| *p);
        match reached {
            Ok(Phase::Open) => Ok(()),
            Ok(Phase::SignedOut) => Err(Error::SignedOut("the session ended".into())),
            _ => Err(Error::Closed),
        }
    }

    /// Enters `room` (creating it if it is new and public), and stays in it
    /// across reconnects. Returns once the server has let this client in.
    pub async fn join(&self, room: &str) -> Result<Joined, Error> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Join {
            room: room.to_owned(),
            reply,
        })
        .await?;
        answer.await.unwrap_or(Err(Error::Closed))
    }

    pub async fn leave(&self, room: &str) -> Result<(), Error> {
        self.command(Command::Leave {
            room: room.to_owned(),
        })
        .await
    }

    /// Sends a message; returns its seq once the server has stored it.
    pub async fn send(&self, room: &str, text: &str) -> Result<u64, Error> {
        self.post(room, Post::text(text)).await
    }

    /// Adds `post` (a message, an edit, a delete, a reaction, a topic) to
    /// `room`'s log; returns its seq once stored. A room not joined yet is
    /// joined first.
    pub async fn post(&self, room: &str, post: Post) -> Result<u64, Error> {
        self.submit(room, post).await?.stored().await
    }

    /// Queues `post` and returns as soon as it is in the outbox, in order
    /// behind every earlier one; its `Receipt` says when it is stored.
    pub async fn submit(&self, room: &str, post: Post) -> Result<Receipt, Error> {
        self.submit_as(room, &new_client_id(), post).await
    }

    /// `submit` under a `client_id` of the caller's (at most 64 bytes): a
    /// program that keeps it can offer the same post again after its own
    /// restart, and the server still stores it once.
    pub async fn submit_as(
        &self,
        room: &str,
        client_id: &str,
        post: Post,
    ) -> Result<Receipt, Error> {
        let (reply, answer) = oneshot::channel();
        let (queued, in_outbox) = oneshot::channel();
        self.command(Command::Post {
            room: room.to_owned(),
            client_id: client_id.to_owned(),
            post,
            queued,
            reply,
        })
        .await?;
        in_outbox.await.unwrap_or(Err(Error::Closed))?;
        Ok(Receipt {
            client_id: client_id.to_owned(),
            answer,
        })
    }

    /// Changes the text of your message `target`.
    pub async fn edit(&self, room: &str, target: u64, content: &str) -> Result<u64, Error> {
        let content = content.to_owned();
        self.post(room, Post::Edit { target, content }).await
    }

    /// Deletes message `target` (yours, or anyone's in a room you moderate).
    pub async fn delete(&self, room: &str, target: u64) -> Result<u64, Error> {
        self.post(room, Post::Delete { target }).await
    }

    /// Reacts to message `target` with `emoji` (`on`), or takes it back.
    pub async fn react(
        &self,
        room: &str,
        target: u64,
        emoji: &str,
        on: bool,
    ) -> Result<u64, Error> {
        let emoji = emoji.to_owned();
        self.post(room, Post::React { target, emoji, on }).await
    }

    /// "I am typing in `room`" (if connected; never queued).
    pub async fn typing(&self, room: &str) -> Result<(), Error> {
        self.command(Command::Typing {
            room: room.to_owned(),
        })
        .await
    }

    /// "I have read `room` up to `seq`" (if connected; never queued).
    pub async fn read(&self, room: &str, seq: u64) -> Result<(), Error> {
        self.command(Command::Read {
            room: room.to_owned(),
            seq,
        })
        .await
    }

    /// If waiting to reconnect, tries again now (after a short jitter, and
    /// at most once a second however often it is called).
    pub async fn retry_now(&self) -> Result<(), Error> {
        self.command(Command::Wake).await
    }

    /// Closes the connection (cleanly) and stops. Posts still waiting fail
    /// with `Error::Closed`.
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
        let mut phase = self.phase.clone();
        let _ = phase.wait_for(|p| *p == Phase::Stopped).await;
    }

    async fn command(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).await.map_err(|_| Error::Closed)
    }
}

/// A post in the outbox.
#[derive(Debug)]
pub struct Receipt {
    client_id: String,
    answer: oneshot::Receiver<Result<u64, Error>>,
}

impl Receipt {
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Its seq, once the server has stored it.
    pub async fn stored(self) -> Result<u64, Error> {
        self.answer.await.unwrap_or(Err(Error::Closed))
    }
}

/// A subscription to a client's events.
pub struct Events {
    inner: broadcast::Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the client has stopped and every event
    /// before that was read.
    pub async fn next(&mut self) -> Option<Event> {
        match self.inner.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Event::Lagged(missed)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// A fresh `client_id`: random, so two clients never pick the same.
fn new_client_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
