//! `GET /ws?token=…`: authenticate, then upgrade to a WebSocket session.

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::api::error;
use crate::session;

/// Read buffer per connection. Client frames are small, and this is memory
/// every idle connection holds, so it is far below tungstenite's 128 KiB.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes gathered before a write reaches the socket. The writer flushes after
/// each batch anyway, so this only bounds how much one batch coalesces.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
pub struct Params {
    token: Option<String>,
}

pub async fn upgrade(
    State(app): State<Arc<AppState>>,
    Query(params): Query<Params>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Authenticate before upgrading: a bad token never gets a WebSocket.
    let identity = match params
        .token
        .as_deref()
        .map(|token| app.tokens.verify(token))
    {
        Some(Ok(identity)) => identity,
        Some(Err(_)) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is invalid or expired",
            );
        }
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "pass ?token=<token>",
            );
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let max = app.config.max_frame_bytes;
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        // The queue in front of the socket is bounded in frames; this bounds
        // what can pile up below it if writes start failing.
        .max_write_buffer_size(WRITE_BUFFER_BYTES + 2 * max)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            let sessions = app.sessions.clone();
            sessions.track_future(session::run(socket, app, identity))
        })
}
