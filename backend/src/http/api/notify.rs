//! `PUT /api/rooms/{room}/notifications`: what of a room notifies the
//! caller (all messages, mentions, or nothing). Kept for the account, so
//! every device of theirs agrees; each is told to list its rooms again.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{ApiErrorCode, SetNotify};

use super::rooms::room_name;
use super::{Authenticated, body, error, internal};
use crate::AppState;

/// `204`; `404 not_a_member` if the caller is not a member of the room
/// (joining a public room makes you one).
pub async fn set(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    Path(room): Path<String>,
    request: Result<Json<SetNotify>, JsonRejection>,
) -> Response {
    let SetNotify { notify } = match body(request) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let room = match room_name(&room) {
        Ok(room) => room,
        Err(response) => return response,
    };
    match app
        .hub
        .store()
        .set_notify(&room, &who.user.id, notify)
        .await
    {
        Ok(true) => {
            tracing::debug!(room, user = %who.user.id, notify = notify.as_str(), "notifications set");
            app.hub.rooms_changed_for(&who.user.id);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            ApiErrorCode::NotAMember,
            "you are not a member of this room",
        ),
        Err(err) => internal(err),
    }
}
