//! Closing a connection from anywhere: a `CloseReason` (a WebSocket close
//! code and its reason) set once on the connection's `Kick`, which wakes
//! its session and its writer task; the writer then says why with a close
//! frame (`writer.rs`) and the session finishes the closing handshake
//! (`closing.rs`).

use std::sync::OnceLock;
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

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
    /// The client broke RFC 6455 (reserved bits or opcodes, bad control
    /// frames, an unmasked frame, a malformed close).
    pub const PROTOCOL_ERROR: CloseReason = CloseReason {
        code: common::close::PROTOCOL_ERROR,
        reason: "protocol error",
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
    /// The writer's own wake-up (see `for_writer`): it looks for a kick
    /// before every batch of frames, and a `Notify` would take a lock each
    /// time.
    writer: AtomicWaker,
}

impl Kick {
    pub fn kick(&self, reason: CloseReason) {
        if self.reason.set(reason).is_ok() {
            // notify_waiters wakes every current waiter; the OnceLock covers
            // a waiter that registers later.
            self.notify.notify_waiters();
            self.writer.wake();
        }
    }

    /// Resolves once the connection has been kicked; for the writer alone
    /// (one waker), lock-free.
    pub fn for_writer(&self, cx: &mut std::task::Context<'_>) -> Poll<CloseReason> {
        if let Some(reason) = self.reason() {
            return Poll::Ready(reason);
        }
        self.writer.register(cx.waker());
        // A kick between the look and the registration woke nobody.
        self.reason().map_or(Poll::Pending, Poll::Ready)
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
