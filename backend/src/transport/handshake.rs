//! The WebSocket opening handshake (RFC 6455 4.2), done on hyper directly.
//!
//! axum's `WebSocketUpgrade` would do it too, but it hands over a
//! `WebSocket` that owns the connection: every frame must then go through
//! it, from one task. We keep the `TcpStream` instead, so that a room's
//! fan-out can write a frame framed once straight into each member's socket
//! (`outbox.rs`), and tungstenite only parses what the client sends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::transport::socket::Socket;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};

/// A valid WebSocket upgrade request, not yet answered.
pub struct Handshake {
    key: HeaderValue,
    on_upgrade: hyper::upgrade::OnUpgrade,
}

/// Why a request is not a WebSocket upgrade.
#[derive(Debug)]
pub struct Rejected {
    pub status: StatusCode,
    pub message: &'static str,
}

impl<S: Send + Sync> FromRequestParts<S> for Handshake {
    type Rejection = Rejected;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejected> {
        let reject = |status, message| Err(Rejected { status, message });
        if parts.method != Method::GET {
            return reject(
                StatusCode::METHOD_NOT_ALLOWED,
                "a WebSocket upgrade must be a GET",
            );
        }
        if !header_has_token(&parts.headers, header::CONNECTION, "upgrade") {
            return reject(
                StatusCode::BAD_REQUEST,
                "`Connection` must include `upgrade`",
            );
        }
        if !header_is(&parts.headers, header::UPGRADE, "websocket") {
            return reject(StatusCode::BAD_REQUEST, "`Upgrade` must be `websocket`");
        }
        if !header_is(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return reject(
                StatusCode::UPGRADE_REQUIRED,
                "`Sec-WebSocket-Version` must be 13",
            );
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return reject(StatusCode::BAD_REQUEST, "`Sec-WebSocket-Key` is missing");
        };
        if !is_websocket_key(key.as_bytes()) {
            return reject(
                StatusCode::BAD_REQUEST,
                "`Sec-WebSocket-Key` must be 16 bytes in base64",
            );
        }
        let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return reject(
                StatusCode::BAD_REQUEST,
                "this connection cannot be upgraded",
            );
        };
        Ok(Handshake { key, on_upgrade })
    }
}

impl Handshake {
    /// Answers `101 Switching Protocols`; once hyper hands the connection
    /// over, `session` gets its socket (for writing) and a tungstenite
    /// stream over it (for reading), and what it returns is spawned as the
    /// connection's task.
    pub fn accept<F, Fut>(self, config: WebSocketConfig, session: F) -> Response
    where
        F: FnOnce(Arc<dyn Socket>, WebSocketStream<Inbound>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(err) => return tracing::debug!(%err, "WebSocket upgrade failed"),
            };
            // Our listener serves every connection as this type (see
            // `listener.rs`); anything else is a bug, not a client's doing.
            let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
                return tracing::error!("upgraded connection is not a TCP stream");
            };
            let socket: Arc<dyn Socket> = Arc::new(parts.io.into_inner());
            let stream = WebSocketStream::from_partially_read(
                Inbound(socket.clone()),
                parts.read_buf.to_vec(),
                Role::Server,
                Some(config),
            )
            .await;
            // Its own task, so the long-lived future is the session alone.
            tokio::spawn(session(socket, stream));
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
        );
        response
    }
}

/// RFC 6455 4.1: the key is a random 16-byte value, base64-encoded (24
/// characters with padding).
fn is_websocket_key(key: &[u8]) -> bool {
    use base64::Engine;
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|bytes| bytes.len() == 16)
}

fn header_is(headers: &HeaderMap, name: HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

fn header_has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// The reading side of a connection, for tungstenite: reads come from the
/// socket; writes are dropped, because everything we send, control frames
/// included, goes through the connection's outbox (tungstenite would
/// otherwise answer pings and closes on its own, out of order with our
/// frames). The session answers pings itself.
pub struct Inbound(Arc<dyn Socket>);

impl Inbound {
    pub fn new(socket: Arc<dyn Socket>) -> Self {
        Inbound(socket)
    }

    pub fn socket(&self) -> &Arc<dyn Socket> {
        &self.0
    }
}

impl AsyncRead for Inbound {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale: poll again, which registers us.
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for Inbound {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::is_websocket_key;

    #[test]
    fn a_key_is_sixteen_bytes_of_base64() {
        assert!(is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ"), "unpadded");
        assert!(!is_websocket_key(b"c2hvcnQ="), "5 bytes");
        assert!(!is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=!"), "not base64");
        assert!(!is_websocket_key(b""));
    }
}
