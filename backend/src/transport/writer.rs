//! The writer task of a connection: the one place that may wait for a
//! slow client. Frames normally go out without it, written by whoever
//! pushed them (see `outbox.rs`); it wakes only when the socket could not
//! take a frame at once, writes the backlog as the client reads it, and
//! hands the socket back when the backlog is gone. A kick (see `outbox.rs`)
//! stops it, and it then says why with a close frame.

use std::sync::Arc;
use std::time::Duration;

use crate::prometheus;
use crate::transport::frame::Frame;
use crate::transport::outbox::{Drain, Kick, Progress};

/// How long the writer keeps trying to deliver a close frame. A slow
/// consumer's socket is full when it is kicked; the frame goes out when
/// the client reads again, and the client must see 4009 (reconnect and
/// resume) rather than a bare drop. Long enough for a stalled client (a
/// phone waking up), short enough to bound what a dead one holds: its
/// backlog is dropped at the kick, so only the socket's buffers remain.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn write_loop(drain: Drain, kick: Arc<Kick>) {
    // Looked at while the writer waits, so lock-free (see `Kick::for_writer`).
    let mut kicked = std::future::poll_fn(|cx| kick.for_writer(cx));
    // Looked up once: a registry lookup per wake-up would be per backlog.
    let queue_depth = metrics::histogram!(prometheus::OUTBOUND_QUEUE_DEPTH);
    let reason = 'serve: loop {
        let queued = tokio::select! {
            biased;
            reason = &mut kicked => break reason,
            queued = drain.turn(false) => queued,
        };
        queue_depth.record(queued as f64);
        loop {
            match drain.write_some() {
                Ok(Progress::Done) => break,
                Ok(Progress::More) => {}
                Ok(Progress::Blocked) => {
                    // A client that stopped reading blocks here; a kick must
                    // still get through, so race them.
                    tokio::select! {
                        biased;
                        reason = &mut kicked => break 'serve reason,
                        writable = writable(&drain) => if writable.is_err() { return },
                    }
                }
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, say_why(&drain, reason.code, reason.reason)).await;
}

/// Ends the connection with a close frame, after whatever frame is partly
/// written (a frame cut short would garble the close); nothing else queued
/// goes out.
async fn say_why(drain: &Drain, code: u16, reason: &str) {
    drain.close();
    drain.turn(true).await;
    drain.replace_backlog(Frame::close(code, reason));
    loop {
        match drain.write_some() {
            Ok(Progress::Done) | Err(_) => return,
            Ok(Progress::More) => {}
            Ok(Progress::Blocked) => {
                if writable(drain).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn writable(drain: &Drain) -> std::io::Result<()> {
    match drain.socket() {
        Some(socket) => crate::transport::socket::writable(&*socket).await,
        None => Err(std::io::ErrorKind::NotConnected.into()),
    }
}
