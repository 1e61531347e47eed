//! The HTTP API beside the WebSocket: sign-in, the room list, health.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{ApiError, RoomSummary, SessionRequest, SessionResponse, User, validate};

use crate::AppState;
use crate::auth::Identity;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/session", post(create_session))
        .route("/rooms", get(list_rooms))
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

/// `GET /api/rooms`: every room and how many people are in it.
async fn list_rooms(State(app): State<Arc<AppState>>, _: Authenticated) -> Json<Vec<RoomSummary>> {
    Json(app.hub.rooms())
}

/// `GET /healthz`.
pub async fn healthz(State(app): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "node": app.hub.node_id().as_ref(),
    }))
}

/// An extractor for `Authorization: Bearer <token>`.
pub struct Authenticated(#[allow(dead_code)] pub Identity);

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
