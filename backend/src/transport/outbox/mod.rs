//! A connection's bounded outbound queue, the socket it drains into, and
//! the "kick" that closes it.
//!
//! Fan-out must never wait for a slow socket. A frame pushed to an idle
//! connection is written at once by whoever pushed it: one non-blocking
//! `write` of bytes framed once for every recipient (see `frame.rs`), with
//! no task woken, which is what a delivery costs the minimal "floor" server
//! (docs/benchmarks.md). Only when the socket cannot take it all does the
//! rest wait in the queue, and the connection's writer task (`writer.rs`)
//! takes over until the backlog is gone. When the queue is full the
//! connection is kicked with 4009 rather than letting it grow: memory per
//! connection stays bounded, and everyone else keeps receiving at full
//! speed.
//!
//! One writer at a time: `State::owner` says who is writing (a pusher, or
//! the writer task), so frames reach the socket whole and in queue order
//! whoever pushed them, and nobody holds the lock across a write.
//!
//! Over 500 lines: one data structure, whose invariant (one writer at a
//! time, frames whole and in order) is best read in one place; its tests
//! are `tests.rs`.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::task::Poll;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

pub use super::kick::{CloseReason, Kick};
use crate::transport::frame::Frame;
use crate::transport::socket::Socket;

/// Who is writing to the socket. Whoever changes it from `Idle` writes
/// until the queue is empty, then sets it back; nobody else writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Idle,
    /// A pusher, writing without waiting (`Outbox::flush`).
    Direct,
    /// The writer task, which may wait for the socket.
    Writer,
}

#[derive(Debug)]
struct State {
    /// Frames not yet wholly written, in order; the front one may be
    /// partly written.
    frames: VecDeque<Frame>,
    /// Wire bytes of `frames`, whole (the written part of the front one
    /// included): what the queue holds on to, bounded like its length.
    bytes: usize,
    /// Bytes of the front frame already written.
    written: usize,
    owner: Owner,
    /// The writer is gone: frames would never be sent.
    closed: bool,
    /// Given back when the writer is gone, so a lingering `Peer` does not
    /// keep the file descriptor open.
    socket: Option<Arc<dyn Socket>>,
}

/// A plain deque under a mutex, not a channel: an idle connection's queue
/// holds no memory at all, it shrinks back after a burst, and the writer
/// takes a backlog out in one pass. The mutex is held only to push, pop or
/// look, never across a write or an `.await`.
impl State {
    fn push_back(&mut self, frame: Frame) {
        self.bytes += frame.wire().len();
        self.frames.push_back(frame);
    }

    fn push_front(&mut self, frame: Frame) {
        self.bytes += frame.wire().len();
        self.frames.push_front(frame);
    }

    fn pop_front(&mut self) {
        if let Some(frame) = self.frames.pop_front() {
            self.bytes -= frame.wire().len();
        }
    }

    fn truncate(&mut self, keep: usize) {
        self.frames.truncate(keep);
        self.bytes = self.frames.iter().map(|f| f.wire().len()).sum();
    }

    fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }
}

#[derive(Debug)]
struct Queue {
    state: Mutex<State>,
    capacity: usize,
    /// Most bytes the queue may hold: a backlog of big frames is bounded by
    /// what it weighs, not only by how many there are.
    capacity_bytes: usize,
    /// Wakes the writer task: the backlog was handed over to it.
    handed_over: AtomicWaker,
    /// Wakes `push_patiently` callers when frames went out.
    room: Notify,
    /// How many `push_patiently` calls are waiting for room; writes wake
    /// them only if there are any.
    patient: AtomicUsize,
}

/// A queue that grew beyond this many slots in a burst shrinks back to it
/// once emptied.
const SHRINK_ABOVE: usize = 64;
/// Frames gathered into one `writev`.
const WRITE_BATCH: usize = 32;

/// The front of a queue, to write with one system call outside its lock:
/// the frames are shared buffers, so gathering them copies no payload, and
/// the array lives on the stack.
struct Batch {
    frames: [Bytes; WRITE_BATCH],
    count: usize,
    /// Bytes of the first frame already written.
    skip: usize,
}

impl Batch {
    fn of(state: &State) -> Batch {
        let mut frames: [Bytes; WRITE_BATCH] = std::array::from_fn(|_| Bytes::new());
        let mut count = 0;
        for (slot, frame) in frames.iter_mut().zip(&state.frames) {
            *slot = frame.wire().clone();
            count += 1;
        }
        Batch {
            frames,
            count,
            skip: state.written,
        }
    }

    /// Bytes left to write.
    fn len(&self) -> usize {
        self.frames[..self.count]
            .iter()
            .map(Bytes::len)
            .sum::<usize>()
            - self.skip
    }

    fn write(&self, socket: &dyn Socket) -> io::Result<usize> {
        let slices: [IoSlice<'_>; WRITE_BATCH] = std::array::from_fn(|i| {
            let bytes = &self.frames[i];
            IoSlice::new(if i == 0 { &bytes[self.skip..] } else { bytes })
        });
        socket.try_write_vectored(&slices[..self.count])
    }
}

/// The producer side of a connection's queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    queue: Arc<Queue>,
    kick: Arc<Kick>,
}

/// A frame whose pusher owns the socket and must write it (`Outbox::flush`).
/// One dropped without being flushed hands its frame (first in line) and
/// the socket to the writer task, so the connection never stays owned by
/// nobody (every later frame would queue until a kick).
#[must_use = "the socket is owned until the frame is flushed"]
pub struct Owed {
    /// Taken by `flush`; still here when dropped unflushed.
    frame: Option<Frame>,
    socket: Arc<dyn Socket>,
    queue: Arc<Queue>,
}

impl Drop for Owed {
    fn drop(&mut self) {
        if let Some(frame) = self.frame.take() {
            let mut state = lock(&self.queue.state);
            state.push_front(frame);
            self.queue.hand_over(state);
        }
    }
}

/// The writer task's side of a connection's queue.
#[derive(Debug)]
pub struct Drain {
    queue: Arc<Queue>,
}

/// What one write of the writer task achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// The queue is empty; the writer's turn is over.
    Done,
    /// Frames went out and more are queued.
    More,
    /// The socket is full: wait until it is writable.
    Blocked,
}

impl Outbox {
    /// A queue of at most `capacity` frames and `capacity_bytes` bytes in
    /// front of `socket`.
    pub fn new(capacity: usize, capacity_bytes: usize, socket: Arc<dyn Socket>) -> (Outbox, Drain) {
        let queue = Arc::new(Queue {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                bytes: 0,
                written: 0,
                owner: Owner::Idle,
                closed: false,
                socket: Some(socket),
            }),
            capacity: capacity.max(1),
            capacity_bytes: capacity_bytes.max(1),
            handed_over: AtomicWaker::new(),
            room: Notify::new(),
            patient: AtomicUsize::new(0),
        });
        (
            Outbox {
                queue: queue.clone(),
                kick: Arc::new(Kick::default()),
            },
            Drain { queue },
        )
    }

    /// Queues a frame and, unless someone is already writing, writes it
    /// now, without waiting. A full queue kicks the connection.
    pub fn push(&self, frame: Frame) {
        if let Some(owed) = self.push_deferred(frame) {
            self.flush(owed);
        }
    }

    /// Queues a frame without writing it. `Some`: nobody was writing, so the
    /// caller now owns the socket and must `flush` the frame soon (once it
    /// let go of its locks: a room's fan-out queues under the room's lock
    /// and writes after it).
    pub fn push_deferred(&self, frame: Frame) -> Option<Owed> {
        match self.try_push(frame, self.queue.capacity_bytes) {
            Ok(owed) => owed,
            Err(true) => {
                self.slow_consumer();
                None
            }
            Err(false) => None,
        }
    }

    /// `Ok(Some)`: the caller owns the socket and holds the frame, which
    /// goes before anything queued after it; `Ok(None)`: queued behind
    /// someone who is writing; `Err(true)`: the queue is full (in frames,
    /// or it would hold more than `max_bytes`); `Err(false)`: the
    /// connection is closing.
    fn try_push(&self, frame: Frame, max_bytes: usize) -> Result<Option<Owed>, bool> {
        if self.kick.reason().is_some() {
            return Err(false);
        }
        let mut state = lock(&self.queue.state);
        if state.closed {
            return Err(false);
        }
        if state.owner == Owner::Idle {
            // Idle means the queue is empty: the frame need not go in it.
            let socket = state.socket.clone().ok_or(false)?;
            state.owner = Owner::Direct;
            return Ok(Some(Owed {
                frame: Some(frame),
                socket,
                queue: self.queue.clone(),
            }));
        }
        if state.frames.len() >= self.queue.capacity || state.bytes + frame.wire().len() > max_bytes
        {
            return Err(true);
        }
        state.push_back(frame);
        Ok(None)
    }

    /// Writes the owed frame and whatever was queued behind it, as far as
    /// the socket takes them without waiting; the writer task takes over
    /// the rest. A few short holds of the queue's lock, and one system call
    /// (a `writev` when frames were queued behind it).
    pub fn flush(&self, mut owed: Owed) {
        let frame = owed.frame.take().expect("an owed frame is flushed once");
        let socket = &owed.socket;
        let queue = &self.queue;
        let mut state = lock(&queue.state);
        if state.frames.is_empty() {
            // The usual case: one frame, one write.
            drop(state);
            let result = socket.try_write(frame.wire());
            state = lock(&queue.state);
            match result {
                Ok(n) if n == frame.wire().len() => {}
                // Partly written, not at all (full), or broken: what is left
                // goes first, and the writer waits or finds out.
                result => {
                    state.push_front(frame);
                    state.written = result.unwrap_or(0);
                    return queue.hand_over(state);
                }
            }
        } else {
            // A fan-out that released several messages at once queued the
            // rest behind this one: one write for them all, as few packets
            // as the client must read.
            state.push_front(frame);
        }
        loop {
            if self.kick.reason().is_some() {
                // Closing: the writer finishes a partly written frame and
                // then says why. Looked at under the lock, so a writer that
                // found us writing after the kick is always handed over to.
                return queue.hand_over(state);
            }
            if state.frames.is_empty() {
                state.owner = Owner::Idle;
                return;
            }
            let batch = Batch::of(&state);
            drop(state);
            let result = batch.write(&**socket);
            state = lock(&queue.state);
            match result {
                Ok(n) if n == batch.len() => queue.advance(&mut state, n),
                result => {
                    queue.advance(&mut state, result.unwrap_or(0));
                    return queue.hand_over(state);
                }
            }
        }
    }

    /// Queues a frame, waiting for room in the queue: for replaying
    /// history, which is bulk and belongs to this connection alone. Room
    /// means fewer than `capacity` frames and at most `max_bytes` queued
    /// with this one (an empty queue always has room), so a replay holds
    /// little more than `max_bytes` here however much it sends. Gives up
    /// (and returns false) if the connection is kicked or makes no room
    /// within `patience`, which kicks it as a slow consumer.
    pub async fn push_patiently(
        &self,
        frame: Frame,
        max_bytes: usize,
        patience: std::time::Duration,
    ) -> bool {
        let max_bytes = max_bytes
            .min(self.queue.capacity_bytes)
            .max(frame.wire().len());
        let deadline = tokio::time::Instant::now() + patience;
        self.queue.patient.fetch_add(1, Ordering::AcqRel);
        let pushed = async {
            loop {
                // Registered before looking, so room made in between is
                // not missed.
                let room = self.queue.room.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                match self.try_push(frame.clone(), max_bytes) {
                    Ok(owed) => {
                        if let Some(owed) = owed {
                            self.flush(owed);
                        }
                        return true;
                    }
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

impl Queue {
    /// The socket took `n` more bytes of the queue's frames.
    fn advance(&self, state: &mut State, mut n: usize) {
        let mut popped = false;
        while let Some(front) = state.frames.front() {
            let left = front.wire().len() - state.written;
            if n < left {
                state.written += n;
                break;
            }
            n -= left;
            state.written = 0;
            state.pop_front();
            popped = true;
        }
        if state.frames.is_empty() && state.frames.capacity() > SHRINK_ABOVE {
            state.frames.shrink_to(SHRINK_ABOVE);
        }
        if popped && self.patient.load(Ordering::Acquire) > 0 {
            self.room.notify_waiters();
        }
    }

    /// The writer task takes over: the socket is full, broken, or closing.
    fn hand_over(&self, mut state: std::sync::MutexGuard<'_, State>) {
        state.owner = Owner::Writer;
        drop(state);
        self.handed_over.wake();
    }
}

impl Drain {
    /// Resolves once the writer task owns the socket: handed over by a
    /// pusher, or, with `closing`, taken while nobody was writing (a
    /// pusher that is writing hands over as soon as it sees the kick).
    /// Returns how many frames are queued.
    pub async fn turn(&self, closing: bool) -> usize {
        std::future::poll_fn(|cx| {
            // Registered before looking, so a hand-over in between is seen.
            self.queue.handed_over.register(cx.waker());
            let mut state = lock(&self.queue.state);
            if closing && state.owner == Owner::Idle {
                state.owner = Owner::Writer;
            }
            match state.owner {
                Owner::Writer => Poll::Ready(state.frames.len()),
                _ => Poll::Pending,
            }
        })
        .await
    }

    /// For closing (the writer owns the socket): drops what was not begun,
    /// so the close frame does not wait behind a backlog a stuck client will
    /// never read, and queues `last` after a partly written frame.
    pub fn replace_backlog(&self, last: Frame) {
        let mut state = lock(&self.queue.state);
        let keep = usize::from(state.written > 0);
        state.truncate(keep);
        state.push_back(last);
    }

    /// One `writev` of up to `WRITE_BATCH` queued frames (for the owner).
    pub fn write_some(&self) -> io::Result<Progress> {
        let mut state = lock(&self.queue.state);
        let Some(socket) = state.socket.clone() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if state.frames.is_empty() {
            if state.owner == Owner::Writer && !state.closed {
                state.owner = Owner::Idle;
            }
            return Ok(Progress::Done);
        }
        let batch = Batch::of(&state);
        drop(state);
        match batch.write(&*socket) {
            Ok(n) => {
                self.queue.advance(&mut lock(&self.queue.state), n);
                Ok(Progress::More)
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(Progress::Blocked),
            Err(err) => Err(err),
        }
    }

    /// The socket, to wait until it is writable.
    pub fn socket(&self) -> Option<Arc<dyn Socket>> {
        lock(&self.queue.state).socket.clone()
    }

    /// No more frames will be written: closing, or the socket is gone.
    pub fn close(&self) {
        lock(&self.queue.state).closed = true;
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        let mut state = lock(&self.queue.state);
        state.closed = true;
        state.clear();
        state.socket = None;
        drop(state);
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

/// A connected pair of loopback sockets: the server's end (for an
/// `Outbox`) and the client's.
#[cfg(test)]
pub(crate) async fn loopback() -> (Arc<dyn Socket>, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    (Arc::new(accepted.unwrap().0), client.unwrap())
}

#[cfg(test)]
mod tests;
