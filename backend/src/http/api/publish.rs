//! `POST /api/rooms/{room}/messages`: other systems (alerts, deploys,
//! bots) post into rooms with an API key made by `hearth admin api-key
//! create`. The message is stored and delivered exactly like a member's,
//! through the same group commit and reorder buffer, under the key's bot
//! name, with the same validation; `client_id` makes a retry safe.
//!
//! An API key is not a session: it opens no WebSocket and reads nothing.
//! Only its SHA-256 is stored, and it may post only to the rooms of its
//! scope.

use common::ApiErrorCode;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{PublishRequest, validate};

use super::{body, error};
use crate::AppState;
use crate::auth::{API_KEY_PREFIX, bearer, secret_hash};
use crate::store::{ApiKey, RoomScope, StoreError};

pub async fn publish(
    State(app): State<Arc<AppState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    request: Result<Json<PublishRequest>, JsonRejection>,
) -> Response {
    match post(&app, &room, &headers, request).await {
        Ok(response) | Err(response) => response,
    }
}

async fn post(
    app: &AppState,
    room: &str,
    headers: &HeaderMap,
    request: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Response, Response> {
    let key = api_key(app, headers).await?;
    let room = validate::canonical_room(room);
    validate::room_name(&room)
        .map_err(|why| error(StatusCode::BAD_REQUEST, ApiErrorCode::InvalidRoom, why))?;
    if !key.rooms.allows(&room) {
        return Err(error(
            StatusCode::FORBIDDEN,
            ApiErrorCode::Forbidden,
            "this API key may not post to this room",
        ));
    }
    let PublishRequest { content, client_id } = body(request)?;
    validate::client_id(&client_id)
        .map_err(|why| error(StatusCode::BAD_REQUEST, ApiErrorCode::InvalidClientId, why))?;
    validate::content(&content)
        .map_err(|why| error(StatusCode::BAD_REQUEST, ApiErrorCode::InvalidContent, why))?;
    let unknown = || {
        error(
            StatusCode::NOT_FOUND,
            ApiErrorCode::UnknownRoom,
            "no such room",
        )
    };
    match app.hub.store().room_access(&room, "").await {
        // `*` means every public room: a private room or a direct
        // conversation is posted to only by a key that names it.
        Ok(Some(access))
            if key.rooms == RoomScope::All && access.visibility != common::Visibility::Public =>
        {
            return Err(error(
                StatusCode::FORBIDDEN,
                ApiErrorCode::Forbidden,
                "a `*` key posts to public rooms only; name a private room to post to it",
            ));
        }
        Ok(Some(_)) => {}
        Ok(None) => return Err(unknown()),
        Err(err) => return Err(store_failed(err)),
    }
    let bot = key.bot();
    match app.hub.publish(&room, &bot, &content, &client_id).await {
        Ok((published, duplicate)) => {
            // A retry of a stored message gets the original back, not a
            // second copy: 200 instead of 201.
            let status = if duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            crate::prometheus::published(duplicate);
            Ok((status, Json(published)).into_response())
        }
        Err(StoreError::UnknownRoom(_)) => Err(unknown()),
        Err(err) => Err(store_failed(err)),
    }
}

/// The live key in `Authorization: Bearer`, or `401`.
async fn api_key(app: &AppState, headers: &HeaderMap) -> Result<ApiKey, Response> {
    let Some(key) = bearer(headers) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            ApiErrorCode::MissingToken,
            "send Authorization: Bearer <API key>",
        ));
    };
    let invalid = |message| {
        error(
            StatusCode::UNAUTHORIZED,
            ApiErrorCode::InvalidApiKey,
            message,
        )
    };
    if !key.starts_with(API_KEY_PREFIX) {
        return Err(invalid(
            "posting needs an API key (hearth admin api-key create), not a session token",
        ));
    }
    match app.hub.store().api_key(&secret_hash(key)).await {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(invalid("this API key is unknown or was revoked")),
        Err(err) => Err(store_failed(err)),
    }
}

/// The store could not answer or could not store: nothing was stored, so
/// the caller may retry with the same `client_id`.
fn store_failed(err: StoreError) -> Response {
    tracing::error!(%err, "publishing a message failed");
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        ApiErrorCode::Unavailable,
        "the message could not be stored; retry with the same client_id",
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}
