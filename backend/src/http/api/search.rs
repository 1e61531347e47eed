//! `GET /api/search?q=&room=&before=&limit=`: messages matching every word
//! of `q` (each as a prefix), newest first, in the rooms the caller may
//! read, or in `room` only. Pages: pass the answer's `next` as `before`.

use common::ApiErrorCode;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{SearchResults, validate};
use serde::Deserialize;

use super::{Authenticated, error, internal};
use crate::AppState;
use crate::store::{self, search_words};

#[derive(Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    room: Option<String>,
    before: Option<String>,
    limit: Option<u32>,
}

/// Largest page.
const MAX_PAGE: u32 = 100;

pub async fn search(
    State(app): State<Arc<AppState>>,
    Authenticated(who): Authenticated,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::InvalidQuery,
            "limit must be a whole number",
        );
    };
    let words = search_words(query.q.as_deref().unwrap_or_default());
    if words.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::InvalidQuery,
            "q must contain a word to search for",
        );
    }
    let room = match query.room.as_deref().filter(|r| !r.is_empty()) {
        Some(raw) => {
            let room = validate::canonical_room(raw);
            if let Err(why) = validate::room_name(&room) {
                return error(StatusCode::BAD_REQUEST, ApiErrorCode::InvalidRoom, why);
            }
            Some(room)
        }
        None => None,
    };
    // A cursor is a message id from an earlier answer.
    let before = query.before.filter(|b| !b.is_empty());
    if before.as_ref().is_some_and(|b| b.len() > 64) {
        return error(
            StatusCode::BAD_REQUEST,
            ApiErrorCode::InvalidQuery,
            "before is not a cursor",
        );
    }
    let limit = query.limit.unwrap_or(30).clamp(1, MAX_PAGE);
    match app
        .hub
        .store()
        .search(&store::SearchQuery {
            user_id: &who.user.id,
            words: &words,
            room: room.as_deref(),
            before: before.as_deref(),
            limit,
        })
        .await
    {
        Ok(messages) => {
            let next = (messages.len() == limit as usize)
                .then(|| messages.last().map(|m| m.id.clone()))
                .flatten();
            Json(SearchResults { messages, next }).into_response()
        }
        Err(err) => internal(err),
    }
}
