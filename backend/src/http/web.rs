//! Serving the built frontend (trunk's `dist/`) the way a browser deserves:
//!
//! - **Precompressed.** Release builds carry `.br` and `.gz` copies of every
//!   asset (`scripts/lib/post-build.sh`, a trunk hook); the variant the
//!   browser accepts is sent as it is, costing no CPU per request.
//! - **Cached right.** File names with a content hash (`app-<hash>.js`,
//!   `app-<hash>_bg.wasm`) never change: `immutable` for a year. The page
//!   itself is `no-cache`, so a new release is picked up on the next load.
//! - **Locked down.** Every response says `nosniff` and `no-referrer`. The
//!   page gets a Content-Security-Policy that allows only this origin, plus
//!   `'wasm-unsafe-eval'` (to instantiate the wasm) and the SHA-256 of each
//!   inline script trunk wrote into the page (its loader).
//! - **Honest 404s.** A path that looks like a file (`/x.png`) and does not
//!   exist is a 404, not the app page; a path that looks like a route
//!   (`/rooms/general`) gets the page, for the client-side router.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use tower_http::services::ServeDir;

/// `Cache-Control` for content-hashed assets.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// For unhashed files beside them (favicon, robots.txt).
const SHORT: &str = "public, max-age=3600";

/// The frontend as a router, to be the app's fallback.
pub fn frontend<S: Clone + Send + Sync + 'static>(
    static_dir: &Path,
    allow_guests: bool,
) -> Router<S> {
    let page = Arc::new(Page::new(static_dir.join("index.html"), allow_guests));
    let files = ServeDir::new(static_dir)
        .precompressed_br()
        .precompressed_gzip()
        // Directories (and `/`) go to the page handler, which adds the CSP.
        .append_index_html_on_directories(false)
        .fallback(axum::routing::get(page_or_404).with_state(page.clone()));
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn_with_state(page, cache_and_csp))
}

/// `X-Content-Type-Options` and `Referrer-Policy`, for every response.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The app page, read from disk (it is small, and a rebuild replaces it),
/// with its CSP computed once per version of the file.
struct Page {
    path: PathBuf,
    cached: Mutex<Option<(SystemTime, HeaderValue)>>,
    /// For the sign-in page served in its place (`signin`).
    allow_guests: bool,
}

impl Page {
    fn new(path: PathBuf, allow_guests: bool) -> Page {
        Page {
            path,
            cached: Mutex::new(None),
            allow_guests,
        }
    }

    /// The page's Content-Security-Policy.
    fn csp(&self) -> HeaderValue {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(modified), Some((at, csp))) = (modified, cached.as_ref())
            && *at == modified
        {
            return csp.clone();
        }
        let html = std::fs::read_to_string(&self.path).unwrap_or_default();
        let csp = HeaderValue::from_str(&content_security_policy(&html))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
        if let Some(modified) = modified {
            *cached = Some((modified, csp.clone()));
        }
        csp
    }
}

async fn page_or_404(
    State(page): State<Arc<Page>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let last = uri.path().rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    // Not signed in: the sign-in page, without the app (see `signin`).
    if crate::auth::cookies::signed_in(&headers) != Some(true) {
        let dir = page.path.parent().unwrap_or(Path::new("."));
        return super::signin::show(
            uri.path(),
            uri.query(),
            &headers,
            page.allow_guests,
            &super::signin::stylesheet(dir),
        );
    }
    // The page's precompressed copy, as for every other asset (the
    // release build writes them beside it): the first thing a visit loads.
    let accepts = |coding: &str| {
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|c| c.split(';').next().unwrap_or_default().trim() == coding)
    };
    for (coding, ext) in [("br", "br"), ("gzip", "gz")] {
        if !accepts(coding) {
            continue;
        }
        let mut path = page.path.clone().into_os_string();
        path.push(format!(".{ext}"));
        if let Ok(bytes) = tokio::fs::read(&path).await {
            return (
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CONTENT_ENCODING, coding),
                    (header::VARY, "accept-encoding, cookie"),
                ],
                Body::from(bytes),
            )
                .into_response();
        }
    }
    match tokio::fs::read(&page.path).await {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::VARY, "accept-encoding, cookie"),
            ],
            Body::from(html),
        )
            .into_response(),
        Err(_) => (
            StatusCode::NOT_FOUND,
            "the frontend is not built (run trunk build)\n",
        )
            .into_response(),
    }
}

async fn cache_and_csp(State(page): State<Arc<Page>>, request: Request, next: Next) -> Response {
    let hashed = is_content_hashed(request.uri().path());
    let mut response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    let headers = response.headers_mut();
    if is_html(headers) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // The sign-in page brings its own, stricter one.
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(header::CONTENT_SECURITY_POLICY, page.csp());
        }
    } else if hashed {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    } else {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(SHORT));
    }
    response
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// trunk's names: `<name>-<16+ hex digits>.<ext>`, and `…-<hex>_bg.wasm`.
fn is_content_hashed(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or_default();
    let Some((stem, _ext)) = file.split_once('.') else {
        return false;
    };
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-')
        .is_some_and(|(_, hash)| hash.len() >= 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Only this origin, wasm instantiation, and the page's own inline scripts
/// (by hash: trunk writes its loader inline).
fn content_security_policy(html: &str) -> String {
    let mut script_src = String::from("'self' 'wasm-unsafe-eval'");
    for script in inline_scripts(html) {
        let digest = Sha256::digest(script.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest);
        script_src.push_str(&format!(" 'sha256-{hash}'"));
    }
    format!(
        "default-src 'self'; script-src {script_src}; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The bodies of `<script>` elements without `src`.
fn inline_scripts(html: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else {
            break;
        };
        let tag = &after[..open_end];
        let body_start = open_end + 1;
        let Some(close) = after[body_start..].find("</script>") else {
            break;
        };
        if !tag.contains("src=") {
            found.push(&after[body_start..body_start + close]);
        }
        rest = &after[body_start + close..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_are_recognised() {
        assert!(is_content_hashed("/frontend-4af4c177859b629a.js"));
        assert!(is_content_hashed("/frontend-4af4c177859b629a_bg.wasm"));
        assert!(is_content_hashed("/hearth-999a232bb130bf46.css"));
        assert!(!is_content_hashed("/favicon.ico"));
        assert!(!is_content_hashed("/robots.txt"));
        assert!(!is_content_hashed("/my-page.html"));
        assert!(!is_content_hashed("/"));
    }

    #[test]
    fn the_csp_carries_the_hash_of_each_inline_script_only() {
        let html = "<head><script type=\"module\">boot()</script>\
                    <script src=\"/x.js\"></script></head>";
        assert_eq!(inline_scripts(html), ["boot()"]);
        let csp = content_security_policy(html);
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"boot()"));
        assert!(csp.contains(&format!("'sha256-{expected}'")), "{csp}");
        assert!(csp.contains("'wasm-unsafe-eval'"));
        assert!(!csp.contains("unsafe-inline"));
    }
}
