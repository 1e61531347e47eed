//! The writer half of a connection: it drains the connection's outbound
//! queue into the socket, a backlog per write, and is the one place that
//! may wait for a slow client. A kick (see `outbox.rs`) stops it, and it
//! then says why with a close frame.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;

use crate::outbox::{Frames, Kick};
use crate::prometheus;

/// Frames written per flush when the queue has a backlog.
const WRITE_BATCH: usize = 64;
/// How long the writer keeps trying to deliver a close frame. A slow
/// consumer's socket is full when it is kicked; the frame goes out when
/// the client reads again, and the client must see 4009 (reconnect and
/// resume) rather than a bare drop. Long enough for a stalled client (a
/// phone waking up), short enough to bound what a dead one holds: its
/// queue is already closed, so only the socket's buffers remain.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
pub async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: Frames,
    kick: Arc<Kick>,
) {
    // Looked at before every batch of frames on every connection of a busy
    // room, so lock-free (see `Kick::for_writer`).
    let mut kicked = std::future::poll_fn(|cx| kick.for_writer(cx));
    // Looked up once: a registry lookup per wake-up would be per recipient.
    let queue_depth = metrics::histogram!(prometheus::OUTBOUND_QUEUE_DEPTH);
    let reason = loop {
        let (first, queued) = tokio::select! {
            biased;
            reason = &mut kicked => break reason,
            next = frames.next() => next,
        };
        queue_depth.record(queued as f64);
        let write = async {
            sink.feed(Message::Text(first)).await?;
            // Drain a backlog before flushing: one write syscall, not many.
            for _ in 0..WRITE_BATCH {
                match frames.try_next() {
                    Some((frame, _)) => sink.feed(Message::Text(frame)).await?,
                    None => break,
                }
            }
            sink.flush().await
        };
        // A client that stopped reading blocks the write; a kick must still
        // get through, so race them.
        tokio::select! {
            biased;
            reason = &mut kicked => break reason,
            written = write => if written.is_err() { return },
        }
    };
    let frame = CloseFrame {
        code: reason.code,
        reason: Utf8Bytes::from_static(reason.reason),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}
