//! `PUT /api/rooms/{room}/draft`: what a member typed in a room and has
//! not sent, kept for their account so that their other devices show it
//! (in `GET /api/rooms`). Not pushed to those devices as it is typed: a
//! draft is picked up when a device lists its rooms.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::validate::MAX_CONTENT_BYTES;
use common::{ApiErrorCode, SetDraft};

use super::rooms::room_name;
use super::{Authenticated, body, error, internal};
use crate::AppState;

/// `204`; `404 not_a_member`; `400 invalid_content` for a draft longer
/// than a message may be.
pub async fn set(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    Path(room): Path<String>,
    request: Result<Json<SetDraft>, JsonRejection>,
) -> Response {
    let SetDraft { text } = match body(request) {
        Ok(request) => request,
        Err(response) => return response,
    };
    if text.len() > MAX_CONTENT_BYTES {
        return error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::InvalidContent,
            "a draft is at most as long as a message (4096 bytes)",
        );
    }
    let room = match room_name(&room) {
        Ok(room) => room,
        Err(response) => return response,
    };
    let draft = (!text.is_empty()).then_some(text.as_str());
    match app.hub.store().set_draft(&room, &who.user.id, draft).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            ApiErrorCode::NotAMember,
            "you are not a member of this room",
        ),
        Err(err) => internal(err),
    }
}
