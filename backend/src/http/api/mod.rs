//! The HTTP API beside the WebSocket: accounts and sessions
//! (`accounts.rs`), rooms and their members (`rooms.rs`), posting with an
//! API key (`publish.rs`), health.
//!
//! Every non-2xx answer has the same JSON body, `{error, message}`, with a
//! stable code (documented in docs/protocol.md).

// Handlers return early with a finished error response (`Result<_,
// Response>`); that is the cold path, so its size does not matter.
#![allow(clippy::result_large_err)]

pub(crate) mod accounts;
mod downloads;
mod drafts;
mod emoji;
mod files;
mod notify;
pub mod publish;
mod rooms;
mod search;

use common::ApiErrorCode;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::extract::rejection::JsonRejection;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use common::ApiError;

use crate::AppState;
use crate::auth::{Identity, bearer, now_secs, secret_hash};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/server", get(accounts::server_info))
        .route("/accounts", post(accounts::sign_up))
        .route(
            "/session",
            post(accounts::sign_in)
                .get(accounts::whoami)
                .delete(accounts::sign_out),
        )
        .route("/session/handoff", post(accounts::handoff))
        .route("/account", patch(accounts::change_account))
        .route("/account/password", put(accounts::change_password))
        .route("/account/sessions", delete(accounts::sign_out_everywhere))
        .route("/ws-ticket", post(accounts::create_ws_ticket))
        .route("/rooms", get(rooms::list).post(rooms::create))
        .route(
            "/rooms/{room}/messages",
            get(rooms::history).post(publish::publish),
        )
        .route(
            "/rooms/{room}/members",
            get(rooms::members).post(rooms::invite),
        )
        .route(
            "/rooms/{room}/members/{user_id}",
            put(rooms::set_role).delete(rooms::remove),
        )
        .route("/rooms/{room}/notifications", put(notify::set))
        .route("/rooms/{room}/draft", put(drafts::set))
        .route("/search", get(search::search))
        .route("/dms", post(rooms::start_direct))
        .route("/emoji", get(emoji::catalog))
        .route(
            "/rooms/{room}/files",
            post(files::upload).get(downloads::room_files),
        )
        .route("/files/{id}", get(downloads::download))
        .route("/files/{id}/thumbnail", get(downloads::thumbnail))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                ApiErrorCode::NotFound,
                "no such API endpoint",
            )
        })
}

/// Every API request counts against its address's and its token's quota
/// (`429 rate_limited` with `Retry-After` past either). Checked before
/// anything else, so a flood costs a hash-map lookup per request, not a
/// store query.
pub async fn rate_limit(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let ip = app.throttle.client_ip(peer, request.headers());
    if let Err(wait) = app.throttle.api_request(ip, bearer(request.headers())) {
        tracing::debug!(%ip, path = request.uri().path(), "API rate limited");
        crate::prometheus::rate_limited("api");
        return rate_limited(wait);
    }
    next.run(request).await
}

/// A JSON body, or the API's `400 invalid_body`.
fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Response> {
    body.map(|Json(body)| body).map_err(|rejection| {
        error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::InvalidBody,
            &rejection.body_text(),
        )
    })
}

fn internal(err: crate::store::StoreError) -> Response {
    tracing::error!(%err, "store error in the API");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ApiErrorCode::Internal,
        "the server could not use its store",
    )
}

/// `GET /healthz`: `ok`, or `degraded` with the reason: writes to the store
/// are failing (sends are refused with `internal`), or this node cannot
/// reach the other nodes. Either way 200: a degraded node still serves
/// reads and presence, and recovers by itself.
pub async fn healthz(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
) -> Json<serde_json::Value> {
    let node = app.hub.node_id().as_ref();
    let problems = faults(&app);
    let mut health = if problems.is_empty() {
        serde_json::json!({ "status": "ok", "node": node })
    } else {
        serde_json::json!({ "status": "degraded", "reason": problems.join("; "), "node": node })
    };
    // What this node holds right now: rooms in memory, open WebSockets.
    health["rooms_loaded"] = app.hub.loaded_rooms().into();
    health["connections"] = app.slots.open().into();
    Json(health)
}

/// What is failing under this node: its store, its link to the other nodes.
fn faults(app: &AppState) -> Vec<String> {
    [app.hub.store().health().status(), app.hub.broker_health()]
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

/// `GET /readyz`: whether a load balancer should send new clients here.
/// 200 `ready`, or 503 with why not: the node is draining before it shuts
/// down (SIGTERM, see `--drain-ms`), or it cannot write to its store or
/// reach the other nodes. `/healthz` is the liveness check: a degraded node
/// is alive (and recovers by itself) but not ready.
pub async fn readyz(axum::extract::State(app): axum::extract::State<Arc<AppState>>) -> Response {
    let node = app.hub.node_id().as_ref();
    let mut problems = faults(&app);
    if app.is_draining() {
        problems.insert(0, "draining: shutting down soon".into());
    }
    if problems.is_empty() {
        return Json(serde_json::json!({ "status": "ready", "node": node })).into_response();
    }
    let status = if app.is_draining() {
        "draining"
    } else {
        "not_ready"
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({ "status": status, "reason": problems.join("; "), "node": node })),
    )
        .into_response()
}

/// An extractor for `Authorization: Bearer <token>` naming a live session.
/// A revoked or expired session is refused at once: the store is asked on
/// every request.
pub struct Authenticated(pub Identity);

impl FromRequestParts<Arc<AppState>> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> Result<Self, Response> {
        let Some(token) = bearer(&parts.headers) else {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                ApiErrorCode::MissingToken,
                "send Authorization: Bearer <token>",
            ));
        };
        authenticate(app, token).await.map(Authenticated)
    }
}

/// The live session of `token`, or the API's 401 (or 503 if the store
/// cannot say).
pub async fn authenticate(app: &AppState, token: &str) -> Result<Identity, Response> {
    match app
        .hub
        .store()
        .session(&secret_hash(token), now_secs())
        .await
    {
        Ok(Some(session)) => Ok(session.into()),
        Ok(None) => Err(error(
            StatusCode::UNAUTHORIZED,
            ApiErrorCode::InvalidToken,
            "the session has ended (signed out, expired or revoked); sign in again",
        )),
        Err(err) => {
            tracing::warn!(%err, "could not check a session");
            Err(unavailable())
        }
    }
}

pub fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        ApiErrorCode::Unavailable,
        "sessions cannot be checked right now; try again",
    )
}

pub fn error(status: StatusCode, code: ApiErrorCode, message: &str) -> Response {
    let body = ApiError {
        error: code,
        message: message.to_owned(),
    };
    (status, Json(body)).into_response()
}

/// `429 rate_limited` with `Retry-After` (whole seconds, at least 1).
pub fn rate_limited(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        ApiErrorCode::RateLimited,
        "too many attempts; wait before trying again",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}
