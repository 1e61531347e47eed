//! What the transport needs of a connected stream socket, as one small
//! trait: writes and reads that never wait, from a shared reference (a
//! room's fan-out writes to a connection from whatever task delivers, see
//! `outbox`), readiness to wait on, and half-closing.
//!
//! Two implementations: TCP, which every connection is, and Unix domain
//! sockets, over which the transport is tested in memory (`UnixStream::
//! pair()`, with exactly the buffer sizes a test needs to make a write
//! partial). Connections hold an `Arc<dyn Socket>`: one indirect call per
//! system call, which is nothing beside the system call.

use std::io::{self, IoSlice};
use std::task::{Context, Poll};

pub trait Socket: Send + Sync + std::fmt::Debug + 'static {
    /// Writes what the socket takes now; `WouldBlock` if nothing.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    /// `try_write` of several buffers in one system call.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Reads what has arrived; `WouldBlock` if nothing.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Sends a FIN: nothing more will be written.
    fn shutdown_write(&self) -> io::Result<()>;
}

/// Waits until `socket` can take more bytes.
pub async fn writable(socket: &dyn Socket) -> io::Result<()> {
    std::future::poll_fn(|cx| socket.poll_write_ready(cx)).await
}

/// Waits until `socket` has something to read (or is closed).
pub async fn readable(socket: &dyn Socket) -> io::Result<()> {
    std::future::poll_fn(|cx| socket.poll_read_ready(cx)).await
}

/// The same calls on both kinds of tokio stream.
macro_rules! socket_for {
    ($stream:ty) => {
        impl Socket for $stream {
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$stream>::try_write(self, buf)
            }
            fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                <$stream>::try_write_vectored(self, bufs)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$stream>::try_read(self, buf)
            }
            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$stream>::poll_read_ready(self, cx)
            }
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$stream>::poll_write_ready(self, cx)
            }
            fn shutdown_write(&self) -> io::Result<()> {
                socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write)
            }
        }
    };
}

socket_for!(tokio::net::TcpStream);
socket_for!(tokio::net::UnixStream);
