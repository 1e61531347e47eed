//! `GET /ws?ticket=…` (browsers: a one-time ticket from
//! `POST /api/ws-ticket`) or `GET /ws` with `Authorization: Bearer`
//! (clients that can set headers): check the page's origin, authenticate,
//! then upgrade to a WebSocket session. The session token itself is never
//! accepted in the URL, where proxies, logs and browser history keep it.

use common::ApiErrorCode;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use std::net::SocketAddr;
use tracing::Instrument;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tungstenite::protocol::WebSocketConfig;

use crate::AppState;
use crate::auth::{bearer, now_secs, secret_hash};
use crate::conn::session;
use crate::http::api::{authenticate, error, unavailable};
use crate::hub::now_millis;
use crate::limits::slots::Refusal;
use crate::transport::handshake::{Handshake, Rejected};

/// Read buffer per connection: how much one read takes from the socket.
/// Client frames are small (a chat message is at most 4 KiB of content) and
/// rare next to what the server sends, and this is memory every idle
/// connection holds: 1 KiB instead of 4 KiB took 13.9 KiB per idle
/// connection down to 11.0 KiB at 10 000 connections, and 512 bytes
/// instead of 1 KiB saves half a KiB more (docs/benchmarks.md). A larger
/// frame is read in several reads (the buffer grows to hold its payload).
const READ_BUFFER_BYTES: usize = 512;

#[derive(Deserialize)]
pub struct Params {
    token: Option<String>,
    ticket: Option<String>,
}

pub async fn upgrade(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
    ws: Result<Handshake, Rejected>,
) -> Response {
    // Malformed requests get the API's JSON errors too (a repeated
    // `token`, for one), never a plain-text rejection.
    let Ok(Query(params)) = params else {
        return error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::InvalidQuery,
            "pass exactly one ?ticket=<ticket>",
        );
    };
    // A request that is not a valid upgrade is refused before anything is
    // spent on it: a one-time ticket redeemed for a handshake that then
    // fails would be gone for nothing.
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejected) => return rejected.into_response(),
    };
    // A browser always says which page opens a WebSocket, and a WebSocket is
    // not covered by the same-origin policy: without this check any site a
    // signed-in person visits could act as them (cross-site WebSocket
    // hijacking). Clients that are not browsers send no Origin.
    // Two `Origin` headers: which one would the browser have meant? None.
    if headers.get_all(header::ORIGIN).iter().nth(1).is_some() {
        return error(
            StatusCode::FORBIDDEN,
            ApiErrorCode::ForbiddenOrigin,
            "a request has at most one Origin",
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let allowed = origin.to_str().is_ok_and(|origin| {
            super::origin::origin_allowed(origin, host, &app.config.allowed_origins, app.config.dev)
        });
        if !allowed {
            return error(
                StatusCode::FORBIDDEN,
                ApiErrorCode::ForbiddenOrigin,
                "pages from this origin may not connect; see --allowed-origin",
            );
        }
    }
    // Authenticate before upgrading: a bad token never gets a WebSocket.
    let identity = if params.token.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::TokenInUrl,
            "a session token must never be in a URL: use ?ticket=<from POST /api/ws-ticket> \
             or the Authorization header",
        );
    } else if let Some(ticket) = params.ticket.as_deref() {
        let redeemed = app
            .hub
            .store()
            .take_ticket(&secret_hash(ticket), now_millis(), now_secs())
            .await;
        match redeemed {
            Ok(Some(session)) => {
                tracing::debug!(user = %session.user.id, "websocket authenticated by a ticket");
                session.into()
            }
            Ok(None) => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    ApiErrorCode::InvalidTicket,
                    "the ticket is unknown, used or expired, or its session ended: get a new one",
                );
            }
            Err(err) => {
                tracing::warn!(%err, "could not redeem a WebSocket ticket");
                return unavailable();
            }
        }
    } else if let Some(token) = bearer(&headers) {
        match authenticate(&app, token).await {
            Ok(identity) => {
                tracing::debug!(user = %identity.user.id, "websocket authenticated by a header");
                identity
            }
            Err(response) => return response,
        }
    } else {
        return error(
            StatusCode::UNAUTHORIZED,
            ApiErrorCode::MissingToken,
            "pass ?ticket=<from POST /api/ws-ticket> or Authorization: Bearer <token>",
        );
    };
    // A place among the node's, the address's and the user's WebSockets,
    // held until the session ends.
    let ip = app.throttle.client_ip(peer, &headers);
    let slot = match app.slots.acquire(ip, &identity.user.id) {
        Ok(slot) => slot,
        Err(Refusal::NodeFull) => {
            crate::prometheus::rate_limited("connections_per_node");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                ApiErrorCode::ServerFull,
                "this server has as many connections as it can take; try again later",
            );
        }
        Err(refusal) => {
            tracing::info!(%ip, user = %identity.user.id, ?refusal, "WebSocket refused");
            crate::prometheus::rate_limited(match refusal {
                Refusal::TooManyForUser => "connections_per_user",
                _ => "connections_per_ip",
            });
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                ApiErrorCode::TooManyConnections,
                match refusal {
                    Refusal::TooManyForUser => {
                        "too many connections for this user; close a tab or device"
                    }
                    _ => "too many connections from this address",
                },
            );
        }
    };
    let request_id = headers
        .get(crate::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let max = app.config.max_frame_bytes;
    // What tungstenite writes is dropped (see `handshake::Inbound`), so it
    // needs no write buffer.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    ws.accept(config, move |socket, stream| {
        let sessions = app.sessions.clone();
        // The session's logs carry the upgrade request's id and the user.
        let span = tracing::info_span!("ws", request_id = %request_id, user = %identity.user.id);
        let session = span.in_scope(|| session::run(socket, stream, app, identity, slot, ip));
        sessions.track_future(session.instrument(span))
    })
}

/// A refused upgrade is a JSON error like the API's (`Rejected` is the
/// transport's; what it looks like over HTTP is decided here).
impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        let mut response = error(
            self.status,
            ApiErrorCode::NotAWebsocketUpgrade,
            self.message,
        );
        // RFC 6455 4.4: a version we do not speak is answered with the one
        // we do.
        if self.status == StatusCode::UPGRADE_REQUIRED {
            response.headers_mut().insert(
                axum::http::header::SEC_WEBSOCKET_VERSION,
                axum::http::HeaderValue::from_static("13"),
            );
        }
        response
    }
}
