//! A connection's bounded outbound queue, and the "kick" that closes it.
//!
//! Fan-out must never wait for a slow socket, so producers only ever
//! `try_send`. When a queue is full the connection is kicked with 4009 rather
//! than letting it grow: memory per connection stays bounded, and everyone
//! else keeps receiving at full speed.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{Notify, mpsc};

/// Why a connection is being closed: a WebSocket close code and a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

impl CloseReason {
    /// The client closed, or the connection ended normally.
    pub const NORMAL: CloseReason = CloseReason {
        code: 1000,
        reason: "",
    };
    pub const GOING_AWAY: CloseReason = CloseReason {
        code: common::close::GOING_AWAY,
        reason: "server going away",
    };
    pub const TOO_BIG: CloseReason = CloseReason {
        code: common::close::TOO_BIG,
        reason: "frame too big",
    };
    pub const TOKEN_EXPIRED: CloseReason = CloseReason {
        code: common::close::TOKEN_INVALID,
        reason: "token expired",
    };
    /// Signed out, or the password changed: the session is gone.
    pub const SESSION_REVOKED: CloseReason = CloseReason {
        code: common::close::TOKEN_INVALID,
        reason: "session revoked",
    };
    pub const TOO_MANY_ERRORS: CloseReason = CloseReason {
        code: common::close::POLICY,
        reason: "too many errors",
    };
    pub const INVALID_UTF8: CloseReason = CloseReason {
        code: common::close::INVALID_DATA,
        reason: "text frame is not UTF-8",
    };
    pub const SLOW_CONSUMER: CloseReason = CloseReason {
        code: common::close::SLOW_CONSUMER,
        reason: "slow consumer",
    };
    pub const HEARTBEAT_TIMEOUT: CloseReason = CloseReason {
        code: common::close::HEARTBEAT_TIMEOUT,
        reason: "heartbeat timeout",
    };
}

/// Set once (the first reason wins) and wakes the connection's tasks.
#[derive(Default, Debug)]
pub struct Kick {
    reason: OnceLock<CloseReason>,
    notify: Notify,
}

impl Kick {
    pub fn kick(&self, reason: CloseReason) {
        if self.reason.set(reason).is_ok() {
            // notify_waiters wakes every current waiter; the OnceLock covers
            // a waiter that registers later.
            self.notify.notify_waiters();
        }
    }

    pub fn reason(&self) -> Option<CloseReason> {
        self.reason.get().copied()
    }

    /// Resolves once the connection has been kicked.
    pub async fn kicked(&self) -> CloseReason {
        loop {
            let notified = self.notify.notified();
            if let Some(reason) = self.reason() {
                return reason;
            }
            notified.await;
        }
    }
}

/// The producer side of a connection's queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Utf8Bytes>,
    kick: Arc<Kick>,
}

impl Outbox {
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Outbox {
                tx,
                kick: Arc::new(Kick::default()),
            },
            rx,
        )
    }

    /// Queues a frame without waiting. A full queue kicks the connection.
    pub fn push(&self, frame: Utf8Bytes) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(frame) {
            self.slow_consumer();
        }
    }

    /// Queues a frame, waiting for room in the queue: for replaying
    /// history, which is bulk and belongs to this connection alone. Gives up
    /// (and returns false) if the connection is kicked or makes no room
    /// within `patience`, which kicks it as a slow consumer.
    pub async fn push_patiently(&self, frame: Utf8Bytes, patience: std::time::Duration) -> bool {
        tokio::select! {
            _ = self.kick.kicked() => false,
            sent = tokio::time::timeout(patience, self.tx.send(frame)) => match sent {
                Ok(Ok(())) => true,
                Ok(Err(_)) => false,
                Err(_) => {
                    self.slow_consumer();
                    false
                }
            },
        }
    }

    fn slow_consumer(&self) {
        if self.kick.reason().is_none() {
            metrics::counter!(crate::prometheus::SLOW_CONSUMER_KICKS).increment(1);
        }
        self.kick.kick(CloseReason::SLOW_CONSUMER);
    }

    /// The queue's size in frames.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    pub fn kick(&self) -> &Arc<Kick> {
        &self.kick
    }
}
