//! How a connection ends, by RFC 6455: the one place where read errors
//! become close codes (`close_reason_for`), the answer to a client's close
//! (`close_reply`), and the closing handshake when the server closes
//! (`finish`): a FIN right after the close frame, then reading and
//! discarding what the client still sends until its close, so the socket
//! ends without a reset that would hide the code from the client.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;

use super::handshake::Inbound;
use super::outbox::CloseReason;
use super::socket::{Socket, readable};

/// The close code for a read error, the one place where tungstenite's
/// errors become close codes: a frame over the limit 1009, text that is not
/// UTF-8 1007, any other violation of RFC 6455 (reserved bits or opcodes,
/// bad control frames, a continuation without a start, an unmasked frame, a
/// malformed close) 1002. `None`: the connection itself broke; there is
/// nobody to tell.
pub fn close_reason_for(err: &tungstenite::Error) -> Option<CloseReason> {
    match err {
        tungstenite::Error::Capacity(_) => Some(CloseReason::TOO_BIG),
        tungstenite::Error::Utf8(_) => Some(CloseReason::INVALID_UTF8),
        // The connection ended without a close frame: nobody to tell.
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => None,
        tungstenite::Error::Protocol(_) => Some(CloseReason::PROTOCOL_ERROR),
        tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Io(_) => None,
        // Not produced by reading a server-side stream; treat as broken
        // framing all the same.
        _ => Some(CloseReason::PROTOCOL_ERROR),
    }
}

/// The answer to a client's close frame: its own code (RFC 6455 5.5.1),
/// 1002 if that code may not be sent (tungstenite replaces it with 1002),
/// 1000 if it had none.
pub fn close_reply(frame: Option<&tungstenite::protocol::CloseFrame>) -> CloseReason {
    match frame {
        Some(frame) => CloseReason {
            code: u16::from(frame.code),
            reason: "",
        },
        None => CloseReason::NORMAL,
    }
}

/// How a connection's reading ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client closed (or the connection is gone): nothing to wait for.
    ByClient,
    /// The server closes: the client's own close is still to come.
    ByServer,
    /// The client broke the protocol: its stream cannot be parsed further.
    ProtocolError,
}

/// How long a server that closed waits for the client's close before it
/// closes the TCP connection (RFC 6455 7.1.1: the server closes TCP after
/// the closing handshake). Dropping the socket with the client's bytes
/// unread would send a reset, and a client that sees it first never reads
/// our close code.
const LINGER: Duration = Duration::from_secs(2);

/// After the server's close frame: reads and discards client frames until
/// its close, the end of the stream, or `deadline`.
async fn linger(stream: &mut WebSocketStream<Inbound>, deadline: Duration) {
    let socket = stream.get_ref().socket().clone();
    let until = Instant::now() + deadline;
    let done = tokio::time::timeout_at(until, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(_))) | None => return true,
                Some(Ok(_)) => {}
                Some(Err(_)) => return false,
            }
        }
    })
    .await;
    if done == Ok(false) {
        discard_until(&*socket, until.saturating_duration_since(Instant::now())).await;
    }
}

/// Reads and throws away raw bytes until the client closes its side or
/// `deadline` passes: a stream that broke the protocol is not parsed
/// further, but what the client still sends must not turn our FIN into a
/// reset.
async fn discard_until(socket: &dyn Socket, deadline: Duration) {
    let mut sink = vec![0u8; 1024];
    let _ = tokio::time::timeout(deadline, async {
        loop {
            if readable(socket).await.is_err() {
                return;
            }
            match socket.try_read(&mut sink) {
                // The client closed its side.
                Ok(0) => return,
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}

/// Once the server's close frame is written (the writer task is done):
/// after a close the server started, a FIN at once (our close frame is the
/// last thing we write, and a client that waits for the server to close
/// TCP, RFC 6455 7.1.1, need not wait for the deadline), then what the
/// client still sends is read and discarded until its close, or, after a
/// protocol error, until it closes its side: at most `LINGER`.
pub async fn finish(stream: &mut WebSocketStream<Inbound>, ending: Ending) {
    if ending == Ending::ByClient {
        return;
    }
    let _ = stream.get_ref().socket().shutdown_write();
    match ending {
        Ending::ByServer => linger(stream, LINGER).await,
        Ending::ProtocolError => discard_until(&**stream.get_ref().socket(), LINGER).await,
        Ending::ByClient => {}
    }
}

/// The closing handshake over an in-memory pair of Unix sockets: what the
/// client sees, byte for byte, when the server ends a connection.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixStream;
    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::protocol::{CloseFrame, Role};

    use super::*;
    use crate::transport::frame::Frame;

    /// The server's reading side and raw socket, and the client's end.
    async fn pair() -> (WebSocketStream<Inbound>, Arc<dyn Socket>, UnixStream) {
        let (server, client) = UnixStream::pair().unwrap();
        let socket: Arc<dyn Socket> = Arc::new(server);
        let stream =
            WebSocketStream::from_raw_socket(Inbound::new(socket.clone()), Role::Server, None)
                .await;
        (stream, socket, client)
    }

    fn write_all(socket: &dyn Socket, bytes: &[u8]) {
        assert_eq!(socket.try_write(bytes).unwrap(), bytes.len());
    }

    #[tokio::test]
    async fn after_the_servers_close_the_client_reads_the_code_then_the_end() {
        let (mut server, socket, client) = pair().await;
        write_all(&*socket, Frame::close(4009, "too slow").wire());
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let finishing = tokio::spawn(async move {
            let started = Instant::now();
            finish(&mut server, Ending::ByServer).await;
            started.elapsed()
        });
        let Some(Ok(Message::Close(Some(frame)))) = client.next().await else {
            panic!("the close frame first");
        };
        assert_eq!(u16::from(frame.code), 4009);
        assert_eq!(frame.reason.as_str(), "too slow");
        // tungstenite answers the close; the server reads it and is done,
        // long before its linger deadline.
        let _ = client.flush().await;
        let took = finishing.await.unwrap();
        assert!(took < LINGER, "finished after the client's close: {took:?}");
        // And the server's FIN (its socket is still open here): the
        // stream ends cleanly.
        let end = tokio::time::timeout(Duration::from_secs(1), client.next()).await;
        assert!(matches!(end, Ok(None)), "{end:?}");
        drop(socket);
    }

    #[tokio::test]
    async fn after_a_protocol_error_the_server_half_closes_and_discards() {
        let (mut server, socket, mut client) = pair().await;
        write_all(&*socket, Frame::close(1002, "").wire());
        let finishing = tokio::spawn(async move {
            finish(&mut server, Ending::ProtocolError).await;
        });
        // The client reads the close frame and then the FIN (0 bytes),
        // although it keeps sending: what it sends is read and dropped.
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let n = tokio::time::timeout(LINGER, client.read(&mut buf))
                .await
                .expect("the FIN comes at once")
                .unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            let _ = tokio::io::AsyncWriteExt::write_all(&mut client, b"\x81\x05junk!").await;
        }
        assert_eq!(got, Frame::close(1002, "").wire().as_ref());
        // The client closes its side: the server stops discarding.
        drop(client);
        tokio::time::timeout(LINGER, finishing)
            .await
            .expect("done when the client closes")
            .unwrap();
    }

    #[tokio::test]
    async fn a_client_that_closed_first_is_not_waited_for() {
        let (mut server, _socket, client) = pair().await;
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        client
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await
            .unwrap();
        let Some(Ok(Message::Close(_))) = server.next().await else {
            panic!("the server reads the client's close");
        };
        tokio::time::timeout(
            Duration::from_millis(100),
            finish(&mut server, Ending::ByClient),
        )
        .await
        .expect("nothing to wait for");
    }
}
