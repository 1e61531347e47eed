//! The HTTP API beside the WebSocket: sign-in, the room list, health.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{ApiError, RoomSummary, SessionRequest, SessionResponse, User, validate};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Identity;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/session", post(create_session))
        .route("/ws-ticket", post(create_ws_ticket))
        .route("/rooms", get(list_rooms))
        .route("/rooms/{room}/messages", get(room_history))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such API endpoint") })
}

/// `POST /api/session`: exchange a display name for a signed token.
async fn create_session(
    State(app): State<Arc<AppState>>,
    body: Result<Json<SessionRequest>, JsonRejection>,
) -> Response {
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                &rejection.body_text(),
            );
        }
    };
    let name = match validate::display_name(&request.name) {
        Ok(name) => name,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_name", why),
    };
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
    };
    let token = app.tokens.issue(&user);
    tracing::info!(user = %user.id, "session created");
    Json(SessionResponse { token, user }).into_response()
}

/// How long a WebSocket ticket may wait to be used.
const TICKET_TTL_SECS: u64 = 30;

/// `POST /api/ws-ticket`: a one-time ticket for `/ws?ticket=`, so the
/// long-lived token never travels in a URL (where proxies, browser history
/// and logs keep URLs). Stored hashed in the shared store, so any node
/// redeems it, once.
async fn create_ws_ticket(
    State(app): State<Arc<AppState>>,
    Authenticated(identity): Authenticated,
) -> Response {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = crate::hub::now_millis();
    let expires_at = now + (TICKET_TTL_SECS * 1000) as i64;
    match app
        .hub
        .store()
        .save_ticket(
            &crate::ws::ticket_hash(&ticket),
            &identity.user,
            identity.expires_at,
            expires_at,
            now,
        )
        .await
    {
        Ok(()) => (
            StatusCode::CREATED,
            Json(common::WsTicket {
                ticket,
                expires_in_secs: TICKET_TTL_SECS,
            }),
        )
            .into_response(),
        Err(err) => internal(err),
    }
}

/// `GET /api/rooms`: every room and how many people are in it.
async fn list_rooms(State(app): State<Arc<AppState>>, _: Authenticated) -> Response {
    let rooms = match app.hub.store().rooms().await {
        Ok(rooms) => rooms,
        Err(err) => return internal(err),
    };
    let mut list = Vec::with_capacity(rooms.len());
    let idle_ms =
        i64::try_from(app.config.room_list_idle_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let active_since = crate::hub::now_millis().saturating_sub(idle_ms);
    for room in rooms {
        let members = match app.hub.member_count(&room.name) {
            Some(count) => count,
            // Not loaded on this node: ask the registry (other nodes).
            None => app.hub.remote_member_count(&room.name).await,
        };
        // Abandoned rooms are not listed forever.
        if members == 0 && room.last_active < active_since {
            continue;
        }
        list.push(RoomSummary {
            name: room.name,
            members,
        });
    }
    Json(list).into_response()
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<u64>,
    limit: Option<u32>,
}

/// Largest page `GET /api/rooms/{room}/messages` returns.
const MAX_PAGE: u32 = 200;

/// `GET /api/rooms/{room}/messages?before=<seq>&limit=50`: the newest
/// `limit` messages before `before` (default: the newest), oldest first.
async fn room_history(
    State(app): State<Arc<AppState>>,
    _: Authenticated,
    Path(room): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "before and limit must be whole numbers",
        );
    };
    let room = validate::canonical_room(&room);
    if let Err(why) = validate::room_name(&room) {
        return error(StatusCode::BAD_REQUEST, "invalid_room", why);
    }
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let before = query.before.unwrap_or(u64::MAX);
    let store = app.hub.store();
    match store.page_before(&room, before, limit).await {
        Ok(page) if page.is_empty() => match store.rooms().await {
            Ok(rooms) if rooms.iter().any(|r| r.name == room) => Json(page).into_response(),
            Ok(_) => error(StatusCode::NOT_FOUND, "unknown_room", "no such room"),
            Err(err) => internal(err),
        },
        Ok(page) => Json(page).into_response(),
        Err(err) => internal(err),
    }
}

fn internal(err: crate::store::StoreError) -> Response {
    tracing::error!(%err, "store error in the API");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server could not read its store",
    )
}

/// `GET /healthz`: `ok`, or `degraded` with the reason: writes to the store
/// are failing (sends are refused with `internal`), or this node cannot
/// reach the other nodes. Either way 200: a degraded node still serves
/// reads and presence, and recovers by itself.
pub async fn healthz(State(app): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let node = app.hub.node_id().as_ref();
    let problems: Vec<String> = [app.hub.store().health().status(), app.hub.broker_health()]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    Json(if problems.is_empty() {
        serde_json::json!({ "status": "ok", "node": node })
    } else {
        serde_json::json!({ "status": "degraded", "reason": problems.join("; "), "node": node })
    })
}

/// An extractor for `Authorization: Bearer <token>`.
pub struct Authenticated(pub Identity);

impl FromRequestParts<Arc<AppState>> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> Result<Self, Response> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match token.map(|token| app.tokens.verify(token)) {
            Some(Ok(identity)) => Ok(Authenticated(identity)),
            Some(Err(_)) => Err(error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is invalid or expired",
            )),
            None => Err(error(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "send Authorization: Bearer <token>",
            )),
        }
    }
}

pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ApiError {
        error: code.to_owned(),
        message: message.to_owned(),
    };
    (status, Json(body)).into_response()
}
