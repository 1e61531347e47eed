//! The sign-in page, served by the server rather than drawn by the app.
//!
//! Why: a first visit is someone signing in, and the app's wasm (the whole
//! chat) is hundreds of kilobytes they cannot use yet. So a browser that
//! is not signed in here gets this page (a few kilobytes of HTML and the
//! stylesheet, no script), and the app is downloaded once it has a
//! session to use (issue 27's budget, `scripts/size-budget`).
//!
//! How the two meet:
//! - The `hearth` cookie (not a secret) says whether this browser is
//!   signed in: `in` (the app is served), `out` (signed in here before:
//!   "Welcome back"), or absent. The app keeps it true: it sets `in`
//!   while it holds a session and `out` when it signs out or finds its
//!   session gone.
//! - `POST /signin` takes the form, asks the same account logic the JSON
//!   API uses (same rules, rate limits and metrics), and on success
//!   redirects (303) to where the person was going with the new session's
//!   token in the `hearth_handoff` cookie: `HttpOnly`, `SameSite=Strict`,
//!   sent only to `POST /api/session/handoff`, for a minute only, and
//!   `Secure` when the page is HTTPS. The app trades it there for the
//!   session (`api::accounts::handoff`), which clears it.
//! - The page is at every path of the app for a browser not signed in, and
//!   at `/signin?next=PATH` for anyone (where the app sends people; also
//!   what `trunk serve` proxies in development).
//! - On an error the page comes back with the error under its field and
//!   what was typed (never the password).

pub mod form;
mod page;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, body::Body};
use common::{ApiError, ApiErrorCode, SessionRequest, SessionResponse, SignUpRequest};
use serde::Deserialize;

use self::form::{Field, Mode, capitalized, check, field_for, safe_next};
use self::page::SignInPage;
use super::api::accounts;
use super::origin::origin_allowed;
use crate::AppState;
use crate::auth::cookies::{
    HANDOFF_COOKIE, HANDOFF_PATH, HANDOFF_SECS, STATE_COOKIE, STATE_SECS, signed_in,
};

/// The sign-in page has no script, no frames and posts only here.
/// (`connect-src 'self'` only lets tools that audit the page from inside
/// it, Lighthouse's robots.txt check among them, fetch from this origin.)
const CSP: &str = "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// What a link to the page may ask for.
#[derive(Deserialize, Default)]
struct PageQuery {
    mode: Option<String>,
    username: Option<String>,
    /// Why the app sent the person here.
    notice: Option<String>,
    /// Where to go once signed in, for `/signin` itself (any other path
    /// of the app leads back to that path).
    next: Option<String>,
}

/// The words for a notice the app sends someone here with.
fn notice(name: &str) -> Option<&'static str> {
    match name {
        "session-ended" => Some(
            "Your session has ended (signed out on another device, password changed, or expired). \
             Please sign in again.",
        ),
        "signed-out-everywhere" => {
            Some("You signed out on every device. Sign in again to continue here.")
        }
        _ => None,
    }
}

/// `GET` of any page of the app (`path`) by a browser that is not signed
/// in: the sign-in form, which leads back to `path` (or, at `/signin`
/// itself, to `?next=`).
pub fn show(
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    allow_guests: bool,
    stylesheet: &str,
) -> Response {
    let query: PageQuery = query
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let mut mode = Mode::parse(query.mode.as_deref());
    if mode == Mode::Guest && !allow_guests {
        mode = Mode::SignIn;
    }
    let mut errors = BTreeMap::new();
    if let Some(why) = query.notice.as_deref().and_then(notice) {
        errors.insert(Field::Form, why.to_owned());
    }
    let username = query.username.unwrap_or_default();
    let page = SignInPage {
        mode,
        allow_guests,
        returning: signed_in(headers).is_some(),
        username: &username,
        display_name: "",
        errors,
        offer_sign_up: None,
        next: if path == "/signin" {
            safe_next(query.next.as_deref())
        } else {
            safe_next(Some(path))
        },
        stylesheet,
    };
    html(StatusCode::OK, page.render())
}

/// The app's stylesheet `<link>` as trunk wrote it into the built page
/// (its name carries a content hash).
pub fn stylesheet(static_dir: &std::path::Path) -> String {
    let html = std::fs::read_to_string(static_dir.join("index.html")).unwrap_or_default();
    stylesheet_link(&html).unwrap_or_default().to_owned()
}

/// The first `<link>` tag with `rel=stylesheet` in a page, whatever the
/// order and quoting of its attributes: a release build's page is minified
/// (`<link href=/hearth-….css integrity=sha384-… rel=stylesheet>`), a debug
/// build's is not.
fn stylesheet_link(html: &str) -> Option<&str> {
    html.match_indices("<link").find_map(|(start, _)| {
        let tag = &html[start..=start + html[start..].find('>')?];
        let is_stylesheet = tag
            .split(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            .any(|attr| {
                matches!(
                    attr,
                    "rel=stylesheet" | "rel=\"stylesheet\"" | "rel='stylesheet'"
                )
            });
        is_stylesheet.then_some(tag)
    })
}

/// `GET /signin`: the form, whether or not this browser is signed in (to
/// sign in as someone else); `?next=` says where to go after.
pub async fn page(
    State(app): State<Arc<AppState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    show(
        uri.path(),
        uri.query(),
        &headers,
        app.config.allow_guests,
        &stylesheet(&app.config.static_dir),
    )
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::VARY, "cookie"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The form as posted.
#[derive(Deserialize)]
pub struct Submitted {
    mode: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /signin`: signs in, signs up or lets a guest in, then goes on to
/// the app (303), or shows the form again with what went wrong.
pub async fn submit(
    State(app): State<Arc<AppState>>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Submitted>,
) -> Response {
    let mode = Mode::parse(form.mode.as_deref());
    let next = safe_next(form.next.as_deref()).to_owned();
    let stylesheet = stylesheet(&app.config.static_dir);
    let again = |status: StatusCode, errors: BTreeMap<Field, String>, offer: bool| {
        let page = SignInPage {
            mode,
            allow_guests: app.config.allow_guests,
            returning: signed_in(&headers).is_some(),
            username: &form.username,
            display_name: &form.display_name,
            errors,
            offer_sign_up: offer.then_some(form.username.as_str()),
            next: &next,
            stylesheet: &stylesheet,
        };
        html(status, page.render())
    };
    // Signing someone in from another site's form (into the attacker's
    // account, to read what they then type) is refused.
    if from_another_site(&headers, &app.config.allowed_origins, app.config.dev) {
        let errors = BTreeMap::from([(
            Field::Form,
            "This form was sent from another site. Sign in here.".to_owned(),
        )]);
        return again(StatusCode::FORBIDDEN, errors, false);
    }
    let problems = check(mode, &form.username, &form.display_name, &form.password);
    if !problems.is_empty() {
        let errors = problems
            .iter()
            .map(|(field, why)| (*field, capitalized(why)))
            .collect();
        return again(StatusCode::BAD_REQUEST, errors, false);
    }
    let answer = match mode {
        Mode::SignUp => {
            let request = SignUpRequest {
                username: form.username.clone(),
                password: form.password.clone(),
                display_name: form.display_name.clone(),
            };
            accounts::sign_up(State(app.clone()), peer, headers.clone(), Ok(Json(request))).await
        }
        Mode::SignIn | Mode::Guest => {
            let request = match mode {
                Mode::Guest => SessionRequest::Guest {
                    name: form.display_name.clone(),
                },
                _ => SessionRequest::Password {
                    username: form.username.clone(),
                    password: form.password.clone(),
                },
            };
            accounts::sign_in(State(app.clone()), peer, headers.clone(), Ok(Json(request))).await
        }
    };
    let status = answer.status();
    let retry_after = answer
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Ok(body) = axum::body::to_bytes(answer.into_body(), 64 * 1024).await else {
        let errors = BTreeMap::from([(Field::Form, "Something went wrong; try again.".to_owned())]);
        return again(StatusCode::INTERNAL_SERVER_ERROR, errors, false);
    };
    if status.is_success() {
        let Ok(session) = serde_json::from_slice::<SessionResponse>(&body) else {
            let errors =
                BTreeMap::from([(Field::Form, "Something went wrong; try again.".to_owned())]);
            return again(StatusCode::INTERNAL_SERVER_ERROR, errors, false);
        };
        return signed_in_redirect(&next, &session.token, over_https(&headers));
    }
    let refused: Option<ApiError> = serde_json::from_slice(&body).ok();
    let code = refused.as_ref().map(|e| e.error);
    let why = match (code, retry_after) {
        (Some(ApiErrorCode::RateLimited), Some(secs)) => {
            format!("Too many attempts. Try again in {secs} s.")
        }
        _ => capitalized(
            refused
                .as_ref()
                .map_or("something went wrong; try again", |e| e.message.as_str()),
        ),
    };
    let offer = mode == Mode::SignIn && code == Some(ApiErrorCode::BadCredentials);
    again(status, BTreeMap::from([(field_for(code), why)]), offer)
}

/// A browser says where a form came from (`Sec-Fetch-Site`, or `Origin`,
/// judged as the WebSocket upgrade judges it: `origin::origin_allowed`);
/// a form from elsewhere is refused. Clients that say neither (curl, old
/// browsers) are let through: they are not a browser being used against
/// its owner.
fn from_another_site(headers: &HeaderMap, allowed_origins: &[String], dev: bool) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    headers.get(header::ORIGIN).is_some_and(|origin| {
        !origin
            .to_str()
            .is_ok_and(|origin| origin_allowed(origin, host, allowed_origins, dev))
    })
}

/// The form was posted from a page served over HTTPS (the browser's
/// `Origin` says so, whatever a proxy in front of us speaks to us).
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| origin.starts_with("https://"))
}

/// 303 to `next`, signed in: the `hearth` cookie says so, and the token
/// waits for the app in `hearth_handoff` (`Secure` when the page is
/// HTTPS: then the token never goes out in the clear).
fn signed_in_redirect(next: &str, token: &str, secure: bool) -> Response {
    let secure = if secure { "; Secure" } else { "" };
    let mut response = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, next)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::empty())
        .expect("a redirect is a valid response");
    let headers = response.headers_mut();
    for cookie in [
        format!("{STATE_COOKIE}=in; Path=/; Max-Age={STATE_SECS}; SameSite=Lax{secure}"),
        format!(
            "{HANDOFF_COOKIE}={token}; Path={HANDOFF_PATH}; Max-Age={HANDOFF_SECS}; HttpOnly; \
             SameSite=Strict{secure}"
        ),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::auth::cookies::headers;

    #[test]
    fn an_origin_the_operator_allowed_is_this_site() {
        let behind_proxy = headers(&[
            ("origin", "https://chat.example.com"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(from_another_site(&behind_proxy, &[], false));
        assert!(!from_another_site(
            &behind_proxy,
            &["https://chat.example.com".to_owned()],
            false
        ));
        assert!(over_https(&behind_proxy));
        assert!(!over_https(&headers(&[(
            "origin",
            "http://localhost:8080"
        )])));
    }

    #[test]
    fn a_form_from_another_site_is_told_apart() {
        assert!(!from_another_site(
            &headers(&[("sec-fetch-site", "same-origin")]),
            &[],
            false
        ));
        assert!(from_another_site(
            &headers(&[("sec-fetch-site", "cross-site")]),
            &[],
            false
        ));
        assert!(from_another_site(
            &headers(&[("sec-fetch-site", "same-site")]),
            &[],
            false
        ));
        assert!(!from_another_site(
            &headers(&[
                ("origin", "http://chat.example:8080"),
                ("host", "chat.example:8080")
            ]),
            &[],
            false
        ));
        assert!(from_another_site(
            &headers(&[("origin", "https://evil.example"), ("host", "chat.example")]),
            &[],
            false
        ));
        assert!(from_another_site(
            &headers(&[("origin", "null"), ("host", "chat.example")]),
            &[],
            false
        ));
        assert!(
            !from_another_site(&headers(&[]), &[], false),
            "curl says nothing"
        );
    }

    #[test]
    fn only_the_notices_the_app_sends_are_shown() {
        assert!(notice("session-ended").is_some());
        assert!(notice("signed-out-everywhere").is_some());
        assert!(notice("<script>").is_none());
    }

    #[test]
    fn the_stylesheet_link_is_found_in_a_plain_or_a_minified_page() {
        let plain = r#"<head><link rel="icon" href="/favicon.ico"><link rel="stylesheet" href="/hearth-1.css" integrity="sha384-a/b+c"></head>"#;
        assert_eq!(
            stylesheet_link(plain),
            Some(r#"<link rel="stylesheet" href="/hearth-1.css" integrity="sha384-a/b+c">"#)
        );
        let minified = "<link href=/favicon.ico rel=icon sizes=32x32><link href=/hearth-2.css integrity=sha384-x/y+z rel=stylesheet><script type=module>";
        assert_eq!(
            stylesheet_link(minified),
            Some("<link href=/hearth-2.css integrity=sha384-x/y+z rel=stylesheet>")
        );
        assert_eq!(
            stylesheet_link(r#"<link rel="stylesheet" href="/hearth-3.css"/>"#),
            Some(r#"<link rel="stylesheet" href="/hearth-3.css"/>"#)
        );
        assert_eq!(stylesheet_link("<link rel=modulepreload href=/a.js>"), None);
        assert_eq!(stylesheet_link(""), None);
    }
}
