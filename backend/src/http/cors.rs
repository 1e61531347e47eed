//! Cross-origin calls to the JSON API, for pages of the origins the operator
//! allowed (`--allowed-origin`, and `trunk serve`'s with `--dev`): a web app
//! elsewhere that uses the JavaScript package (`@hearth/client`) signs in,
//! takes WebSocket tickets and reads history from its own origin. The
//! WebSocket itself checks the same list (`origin.rs`).
//!
//! Safe to open this far because the API authenticates with a bearer token
//! the page must hold, never with cookies: no credentials are allowed
//! across origins, so another site's page gets nothing from a browser that
//! merely visits it. Any other origin gets no CORS headers, and the browser
//! keeps the answer from its page.

use std::time::Duration;

use axum::http::{HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::origin::DEV_ORIGINS;

/// The layer for `/api`, or none when no other origin is allowed.
pub fn layer(allowed: &[String], dev: bool) -> Option<CorsLayer> {
    let dev_origins = if dev { &DEV_ORIGINS[..] } else { &[] };
    let origins: Vec<HeaderValue> = allowed
        .iter()
        .map(|origin| origin.trim_end_matches('/'))
        .chain(dev_origins.iter().copied())
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::RETRY_AFTER])
            // Preflights are remembered for ten minutes.
            .max_age(Duration::from_secs(600)),
    )
}
