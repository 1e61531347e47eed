//! The outbox against real sockets: direct writes, hand-overs to the
//! writer, slow consumers, byte bounds, kicks, and pushers on several
//! threads. Each test runs twice (`over_both!`): over a loopback TCP
//! connection, as in production, and over an in-memory pair of Unix
//! sockets whose send buffer is a few KiB, so that big frames are written
//! in parts and the hand-over happens on almost every frame.

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::Role;

use super::*;

/// The client's end of either kind of socket.
trait ClientIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ClientIo for T {}
type ClientEnd = Box<dyn ClientIo>;

/// Which connection a test runs over.
#[derive(Clone, Copy)]
enum Pair {
    Tcp,
    Memory,
}

impl Pair {
    /// The server's end (for an `Outbox`) and the client's.
    async fn open(self) -> (Arc<dyn Socket>, ClientEnd) {
        match self {
            Pair::Tcp => {
                let (server, client) = loopback().await;
                (server, Box::new(client))
            }
            Pair::Memory => {
                let (server, client) = tokio::net::UnixStream::pair().unwrap();
                // The kernel doubles it, and keeps a minimum: a few KiB.
                socket2::SockRef::from(&server)
                    .set_send_buffer_size(2048)
                    .unwrap();
                (Arc::new(server), Box::new(client))
            }
        }
    }
}

/// The client's end, read as a browser would.
async fn client(socket: ClientEnd) -> WebSocketStream<ClientEnd> {
    WebSocketStream::from_raw_socket(socket, Role::Client, None).await
}

async fn next_text(client: &mut WebSocketStream<ClientEnd>) -> String {
    let next = tokio::time::timeout(Duration::from_secs(5), client.next()).await;
    match next
        .expect("a frame in time")
        .expect("open")
        .expect("valid")
    {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Frames big enough that a few fill a loopback socket's buffers.
fn big(i: usize) -> Frame {
    Frame::text(&format!("{i:06}{}", "x".repeat(64 * 1024)))
}

async fn a_frame_to_an_idle_connection_is_written_at_once_without_the_writer(pair: Pair) {
    let (socket, client_end) = pair.open().await;
    let (outbox, _drain) = Outbox::new(4, usize::MAX, socket);
    for text in ["a", "b", "c"] {
        outbox.push(Frame::text(text));
    }
    assert_eq!(outbox.queue.state.lock().unwrap().owner, Owner::Idle);
    let mut client = client(client_end).await;
    for text in ["a", "b", "c"] {
        assert_eq!(next_text(&mut client).await, text);
    }
}

async fn a_full_socket_hands_the_backlog_to_the_writer_in_order(pair: Pair) {
    let (socket, client_end) = pair.open().await;
    let (outbox, drain) = Outbox::new(1000, usize::MAX, socket);
    let writer = tokio::spawn(crate::transport::writer::write_loop(
        drain,
        outbox.kick().clone(),
    ));
    // Nobody reads yet: the socket fills, the rest queues.
    for i in 0..200 {
        outbox.push(big(i));
    }
    assert!(!lock(&outbox.queue.state).frames.is_empty(), "a backlog");
    assert_eq!(outbox.kick().reason(), None);
    let mut client = client(client_end).await;
    for i in 0..200 {
        assert!(next_text(&mut client).await.starts_with(&format!("{i:06}")));
    }
    // Back to direct writes once the backlog is gone.
    outbox.push(Frame::text("after"));
    assert_eq!(next_text(&mut client).await, "after");
    assert_eq!(lock(&outbox.queue.state).owner, Owner::Idle);
    outbox.kick().kick(CloseReason::GOING_AWAY);
    writer.await.unwrap();
}

/// Pushers on several threads at once, frames of every size, a client
/// that reads in bursts: every frame arrives whole (the client's parser
/// would fail on a garbled one), each pusher's in its order, whether it
/// was written by a pusher or by the writer task.
async fn concurrent_pushers_never_interleave_or_reorder_frames(pair: Pair) {
    const PUSHERS: usize = 4;
    const EACH: usize = 500;
    let (socket, client_end) = pair.open().await;
    let (outbox, drain) = Outbox::new(PUSHERS * EACH, usize::MAX, socket);
    let writer = tokio::spawn(crate::transport::writer::write_loop(
        drain,
        outbox.kick().clone(),
    ));
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|p| {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    // From a few bytes to 40 KiB: some fill the socket.
                    let pad = "y".repeat((i * 7919 + p * 104_729) % 40_000);
                    outbox.push(Frame::text(&format!("{p}:{i:05}:{pad}")));
                    if i % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    // Read nothing at first, so the socket fills and frames queue.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut client = client(client_end).await;
    let mut next = [0usize; PUSHERS];
    for _ in 0..PUSHERS * EACH {
        let text = next_text(&mut client).await;
        let mut parts = text.splitn(3, ':');
        let p: usize = parts.next().unwrap().parse().unwrap();
        let i: usize = parts.next().unwrap().parse().unwrap();
        assert_eq!(i, next[p], "pusher {p}'s frames in order");
        next[p] += 1;
    }
    for pusher in pushers {
        pusher.await.unwrap();
    }
    assert_eq!(outbox.kick().reason(), None);
    outbox.kick().kick(CloseReason::GOING_AWAY);
    writer.await.unwrap();
}

async fn a_slow_consumer_is_kicked_and_still_told_why_after_whole_frames(pair: Pair) {
    let (socket, client_end) = pair.open().await;
    let (outbox, drain) = Outbox::new(8, usize::MAX, socket);
    let writer = tokio::spawn(crate::transport::writer::write_loop(
        drain,
        outbox.kick().clone(),
    ));
    let mut pushed = 0;
    while outbox.kick().reason().is_none() {
        outbox.push(big(pushed));
        pushed += 1;
        assert!(pushed < 1000, "the queue is bounded");
    }
    assert_eq!(outbox.kick().reason(), Some(CloseReason::SLOW_CONSUMER));
    // The client reads again: whole frames in order, then 4009.
    let mut client = client(client_end).await;
    let mut got = 0;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), client.next()).await;
        match next.unwrap().unwrap().unwrap() {
            Message::Text(text) => {
                assert!(text.starts_with(&format!("{got:06}")));
                got += 1;
            }
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), common::close::SLOW_CONSUMER);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got < pushed, "the backlog was dropped, not sent");
    writer.await.unwrap();
}

async fn a_patient_push_waits_for_room_or_gives_up(pair: Pair) {
    let (socket, client_end) = pair.open().await;
    let (outbox, drain) = Outbox::new(2, usize::MAX, socket);
    let writer = tokio::spawn(crate::transport::writer::write_loop(
        drain,
        outbox.kick().clone(),
    ));
    // Fill the socket and the queue.
    let mut pushed = 0;
    while lock(&outbox.queue.state).frames.len() < 2 {
        outbox.push(big(pushed));
        pushed += 1;
    }
    let patient = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            outbox
                .push_patiently(Frame::text("patient"), usize::MAX, Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!patient.is_finished(), "no room yet");
    let mut client = client(client_end).await;
    for i in 0..pushed {
        assert!(next_text(&mut client).await.starts_with(&format!("{i:06}")));
    }
    assert!(patient.await.unwrap(), "room was made");
    assert_eq!(next_text(&mut client).await, "patient");

    outbox.kick().kick(CloseReason::GOING_AWAY);
    writer.await.unwrap();
    drop(client);

    // Full, and nobody makes room: a slow consumer.
    let (socket, _client_end) = pair.open().await;
    let (outbox, _drain) = Outbox::new(1, usize::MAX, socket);
    while lock(&outbox.queue.state).frames.is_empty() {
        outbox.push(big(0));
    }
    assert!(
        !outbox
            .push_patiently(Frame::text("late"), usize::MAX, Duration::from_millis(50))
            .await
    );
    assert_eq!(outbox.kick().reason(), Some(CloseReason::SLOW_CONSUMER));
}

async fn a_kick_wakes_the_waiting_writer(pair: Pair) {
    let (socket, client_end) = pair.open().await;
    let (outbox, drain) = Outbox::new(4, usize::MAX, socket);
    let writer = tokio::spawn(crate::transport::writer::write_loop(
        drain,
        outbox.kick().clone(),
    ));
    tokio::time::sleep(Duration::from_millis(20)).await;
    outbox.kick().kick(CloseReason::GOING_AWAY);
    tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .unwrap()
        .unwrap();
    let mut client = client(client_end).await;
    match client.next().await.unwrap().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("unexpected {other:?}"),
    }
    // Nothing is accepted after the kick.
    outbox.push(Frame::text("late"));
    assert!(lock(&outbox.queue.state).frames.is_empty());
}

async fn a_burst_is_given_back_once_written(pair: Pair) {
    let (socket, client_end) = pair.open().await;
    let (outbox, drain) = Outbox::new(1000, usize::MAX, socket);
    let writer = tokio::spawn(crate::transport::writer::write_loop(
        drain,
        outbox.kick().clone(),
    ));
    for i in 0..300 {
        outbox.push(big(i));
    }
    let mut client = client(client_end).await;
    for _ in 0..300 {
        next_text(&mut client).await;
    }
    assert!(lock(&outbox.queue.state).frames.capacity() <= SHRINK_ABOVE);
    outbox.kick().kick(CloseReason::GOING_AWAY);
    writer.await.unwrap();
    // Without a writer, frames are dropped, not kept.
    outbox.push(Frame::text("y"));
    assert!(lock(&outbox.queue.state).frames.is_empty());
}

/// A backlog is bounded by its bytes as well as its frames: a few big
/// frames kick a slow consumer long before the frame count would, and
/// a patient push (a replay) waits until the queue holds less than
/// what it asks for.
async fn the_queue_is_bounded_in_bytes(pair: Pair) {
    let (socket, client_end) = pair.open().await;
    let frame_bytes = big(0).wire().len();
    let (outbox, drain) = Outbox::new(1000, 4 * frame_bytes, socket);
    // Nobody reads: the socket fills, then the queue, by bytes.
    let mut pushed = 0;
    while outbox.kick().reason().is_none() {
        outbox.push(big(pushed));
        pushed += 1;
        assert!(pushed < 1000, "never kicked");
    }
    assert_eq!(outbox.kick().reason(), Some(CloseReason::SLOW_CONSUMER));
    {
        let state = lock(&outbox.queue.state);
        assert!(state.frames.len() <= 4, "{} queued", state.frames.len());
        assert_eq!(
            state.bytes,
            state.frames.iter().map(|f| f.wire().len()).sum::<usize>()
        );
    }
    drop((drain, client_end));

    // A patient push waits until the queue is under its own bound.
    let (socket, client_end) = pair.open().await;
    let (outbox, drain) = Outbox::new(1000, usize::MAX, socket);
    let writer = tokio::spawn(crate::transport::writer::write_loop(
        drain,
        outbox.kick().clone(),
    ));
    while lock(&outbox.queue.state).frames.len() < 3 {
        outbox.push(big(0));
    }
    let patient = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            outbox
                .push_patiently(
                    Frame::text("replayed"),
                    frame_bytes,
                    Duration::from_secs(10),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !patient.is_finished(),
        "waits while 3 big frames are queued"
    );
    let mut client = client(client_end).await;
    while next_text(&mut client).await != "replayed" {}
    assert!(patient.await.unwrap());
    outbox.kick().kick(CloseReason::GOING_AWAY);
    writer.await.unwrap();
}

/// An owed write that is dropped instead of flushed (a panic between
/// queueing and writing, say) does not leave the socket owned by
/// nobody: its frame goes first, and the writer task takes over.
async fn a_dropped_owed_write_hands_the_socket_to_the_writer(pair: Pair) {
    let (socket, client_end) = pair.open().await;
    let (outbox, drain) = Outbox::new(8, usize::MAX, socket);
    let writer = tokio::spawn(crate::transport::writer::write_loop(
        drain,
        outbox.kick().clone(),
    ));
    let owed = outbox
        .push_deferred(Frame::text("first"))
        .expect("idle: owed");
    outbox.push(Frame::text("second"));
    drop(owed);
    outbox.push(Frame::text("third"));
    let mut client = client(client_end).await;
    for text in ["first", "second", "third"] {
        assert_eq!(next_text(&mut client).await, text);
    }
    // And the connection is idle again afterwards: the next frame goes
    // out at once.
    tokio::time::sleep(Duration::from_millis(20)).await;
    outbox.push(Frame::text("fourth"));
    assert_eq!(next_text(&mut client).await, "fourth");
    outbox.kick().kick(CloseReason::GOING_AWAY);
    writer.await.unwrap();
}

/// Generates a test per kind of socket for each case.
macro_rules! over_both {
    ($($name:ident),* $(,)?) => {
        mod tcp {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Pair::Tcp).await })*
        }
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Pair::Memory).await })*
        }
    };
}

over_both!(
    a_frame_to_an_idle_connection_is_written_at_once_without_the_writer,
    a_full_socket_hands_the_backlog_to_the_writer_in_order,
    concurrent_pushers_never_interleave_or_reorder_frames,
    a_slow_consumer_is_kicked_and_still_told_why_after_whole_frames,
    a_patient_push_waits_for_room_or_gives_up,
    a_kick_wakes_the_waiting_writer,
    a_burst_is_given_back_once_written,
    the_queue_is_bounded_in_bytes,
    a_dropped_owed_write_hands_the_socket_to_the_writer,
);
