//! A connection's bounded outbound queue, and the "kick" that closes it.
//!
//! Fan-out must never wait for a slow socket, so producers only ever
//! `try_send`. When a queue is full the connection is kicked with 4009 rather
//! than letting it grow: memory per connection stays bounded, and everyone
//! else keeps receiving at full speed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use std::task::Poll;

use axum::extract::ws::Utf8Bytes;
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

/// The frames waiting for one connection's writer, shared by the
/// producers (`Outbox`) and the writer (`Frames`).
///
/// A plain deque under a mutex, not a channel: an idle connection's queue
/// holds no memory at all (a bounded tokio channel keeps a block of 32
/// slots, 1 KiB, per connection from the start), it shrinks back after a
/// burst, and the writer takes a backlog out in one pass. The mutex is
/// held only to push or pop, never across an `.await`.
#[derive(Debug)]
struct Queue {
    frames: Mutex<VecDeque<Utf8Bytes>>,
    capacity: usize,
    /// Wakes the writer: a frame was queued. The writer registers before it
    /// looks at the queue a second time, so no wake-up is lost; lock-free,
    /// unlike a `Notify`, as this is per frame and per recipient.
    ready: AtomicWaker,
    /// Wakes `push_patiently` callers when the writer made room.
    room: Notify,
    /// How many `push_patiently` calls are waiting for room; the writer
    /// wakes them only if there are any.
    patient: AtomicUsize,
    /// The writer is gone: frames would never be sent.
    closed: AtomicBool,
}

/// A queue that grew beyond this many slots in a burst shrinks back to it
/// once the writer has emptied it.
const SHRINK_ABOVE: usize = 64;

/// The producer side of a connection's queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    queue: Arc<Queue>,
    kick: Arc<Kick>,
}

/// The writer's side of a connection's queue.
#[derive(Debug)]
pub struct Frames {
    queue: Arc<Queue>,
}

impl Outbox {
    pub fn new(capacity: usize) -> (Outbox, Frames) {
        let queue = Arc::new(Queue {
            frames: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            ready: AtomicWaker::new(),
            room: Notify::new(),
            patient: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        });
        (
            Outbox {
                queue: queue.clone(),
                kick: Arc::new(Kick::default()),
            },
            Frames { queue },
        )
    }

    /// Queues a frame without waiting. A full queue kicks the connection.
    pub fn push(&self, frame: Utf8Bytes) {
        if let Err(true) = self.try_push(frame) {
            self.slow_consumer();
        }
    }

    /// `Err(true)`: the queue is full; `Err(false)`: the writer is gone.
    fn try_push(&self, frame: Utf8Bytes) -> Result<(), bool> {
        if self.queue.closed.load(Ordering::Acquire) {
            return Err(false);
        }
        let mut frames = lock(&self.queue.frames);
        if frames.len() >= self.queue.capacity {
            return Err(true);
        }
        frames.push_back(frame);
        drop(frames);
        self.queue.ready.wake();
        Ok(())
    }

    /// Queues a frame, waiting for room in the queue: for replaying
    /// history, which is bulk and belongs to this connection alone. Gives up
    /// (and returns false) if the connection is kicked or makes no room
    /// within `patience`, which kicks it as a slow consumer.
    pub async fn push_patiently(&self, frame: Utf8Bytes, patience: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        self.queue.patient.fetch_add(1, Ordering::AcqRel);
        let pushed = async {
            loop {
                // Registered before looking, so room made in between is
                // not missed.
                let room = self.queue.room.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                match self.try_push(frame.clone()) {
                    Ok(()) => return true,
                    Err(false) => return false,
                    Err(true) => {}
                }
                tokio::select! {
                    _ = self.kick.kicked() => return false,
                    _ = &mut room => {}
                    _ = tokio::time::sleep_until(deadline) => {
                        self.slow_consumer();
                        return false;
                    }
                }
            }
        }
        .await;
        self.queue.patient.fetch_sub(1, Ordering::AcqRel);
        pushed
    }

    fn slow_consumer(&self) {
        if self.kick.reason().is_none() {
            metrics::counter!(crate::prometheus::SLOW_CONSUMER_KICKS).increment(1);
        }
        self.kick.kick(CloseReason::SLOW_CONSUMER);
    }

    /// The queue's size in frames.
    pub fn capacity(&self) -> usize {
        self.queue.capacity
    }

    pub fn kick(&self) -> &Arc<Kick> {
        &self.kick
    }
}

impl Frames {
    /// The next frame, waiting for one if need be, and how many were
    /// queued with it (for the queue-depth histogram).
    pub async fn next(&mut self) -> (Utf8Bytes, usize) {
        std::future::poll_fn(|cx| {
            if let Some(next) = self.try_next() {
                return Poll::Ready(next);
            }
            self.queue.ready.register(cx.waker());
            // A frame pushed before the registration woke nobody.
            match self.try_next() {
                Some(next) => Poll::Ready(next),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// The next frame if one is queued, and how many were queued.
    pub fn try_next(&mut self) -> Option<(Utf8Bytes, usize)> {
        let mut frames = lock(&self.queue.frames);
        let queued = frames.len();
        let frame = frames.pop_front()?;
        if frames.is_empty() && frames.capacity() > SHRINK_ABOVE {
            frames.shrink_to(SHRINK_ABOVE);
        }
        drop(frames);
        if self.queue.patient.load(Ordering::Acquire) > 0 {
            self.queue.room.notify_waiters();
        }
        Some((frame, queued))
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Release);
        lock(&self.queue.frames).clear();
        self.queue.room.notify_waiters();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing is left half-done under this lock: a panic elsewhere does
    // not make the queue unusable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(text: &'static str) -> Utf8Bytes {
        Utf8Bytes::from_static(text)
    }

    #[tokio::test]
    async fn frames_come_out_in_order_and_a_full_queue_kicks() {
        let (outbox, mut frames) = Outbox::new(2);
        outbox.push(frame("a"));
        outbox.push(frame("b"));
        assert_eq!(outbox.kick().reason(), None);
        outbox.push(frame("c"));
        assert_eq!(outbox.kick().reason(), Some(CloseReason::SLOW_CONSUMER));
        assert_eq!(frames.next().await, (frame("a"), 2));
        assert_eq!(frames.try_next(), Some((frame("b"), 1)));
        assert_eq!(frames.try_next(), None);
    }

    #[tokio::test]
    async fn the_writer_wakes_for_a_frame_pushed_while_it_waits() {
        let (outbox, mut frames) = Outbox::new(4);
        let writer = tokio::spawn(async move { frames.next().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        outbox.push(frame("late"));
        let got = tokio::time::timeout(Duration::from_secs(5), writer).await;
        assert_eq!(got.unwrap().unwrap(), (frame("late"), 1));
    }

    #[tokio::test]
    async fn a_kick_wakes_the_waiting_writer() {
        let (outbox, _frames) = Outbox::new(4);
        let kick = outbox.kick().clone();
        let writer =
            tokio::spawn(async move { std::future::poll_fn(|cx| kick.for_writer(cx)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        outbox.kick().kick(CloseReason::GOING_AWAY);
        let woke = tokio::time::timeout(Duration::from_secs(5), writer).await;
        assert_eq!(woke.unwrap().unwrap(), CloseReason::GOING_AWAY);
    }

    #[tokio::test]
    async fn a_patient_push_waits_for_room_or_gives_up() {
        let (outbox, mut frames) = Outbox::new(1);
        outbox.push(frame("first"));
        let patient = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                outbox
                    .push_patiently(frame("second"), Duration::from_secs(5))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(frames.next().await.0, frame("first"));
        assert!(patient.await.unwrap(), "room was made");
        assert_eq!(frames.next().await.0, frame("second"));

        // Full, and nobody makes room: a slow consumer.
        outbox.push(frame("third"));
        assert!(
            !outbox
                .push_patiently(frame("fourth"), Duration::from_millis(50))
                .await
        );
        assert_eq!(outbox.kick().reason(), Some(CloseReason::SLOW_CONSUMER));
    }

    #[tokio::test]
    async fn a_burst_is_given_back_once_written() {
        let (outbox, mut frames) = Outbox::new(1000);
        for _ in 0..500 {
            outbox.push(frame("x"));
        }
        while frames.try_next().is_some() {}
        assert!(lock(&frames.queue.frames).capacity() <= SHRINK_ABOVE);
        // Without a writer, frames are dropped, not kept.
        drop(frames);
        outbox.push(frame("y"));
        assert_eq!(outbox.kick().reason(), None);
    }
}
