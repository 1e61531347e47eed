//! `GET /metrics` on the main listener, behind `--metrics-token` (the
//! names and the recorder are `prometheus.rs`'s).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::prometheus::render;

/// `GET /metrics` on the main listener: needs `Authorization: Bearer
/// <--metrics-token>`. 404 when metrics are off, as if it did not exist.
pub async fn scrape(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let (Some(handle), Some(token)) = (&app.metrics, &app.config.metrics_token) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = crate::auth::bearer(&headers).unwrap_or_default();
    // Compared in constant time, like any secret.
    if !crate::auth::same_secret(given, token) {
        return (
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer <metrics token>\n",
        )
            .into_response();
    }
    render(handle)
}
