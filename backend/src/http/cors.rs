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

use super::origin::origin_allowed;

/// The layer for `/api`, or none when no other origin is allowed. Which
/// origins: `origin_allowed`'s rule, the one the WebSocket upgrade keeps
/// (case-insensitive, a trailing slash in the flag ignored); the server's
/// own origin needs no CORS.
pub fn layer(allowed: &[String], dev: bool) -> Option<CorsLayer> {
    if allowed.is_empty() && !dev {
        return None;
    }
    let allowed = allowed.to_vec();
    let allow = AllowOrigin::predicate(move |origin: &HeaderValue, _| {
        origin
            .to_str()
            .is_ok_and(|origin| origin_allowed(origin, None, &allowed, dev))
    });
    Some(
        CorsLayer::new()
            .allow_origin(allow)
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
