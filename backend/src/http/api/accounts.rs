//! Accounts and sessions: sign-up, sign-in (password, or guest where
//! allowed), sign-out (here or everywhere), renaming, password change,
//! WebSocket tickets.

use common::ApiErrorCode;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{
    AccountChange, PasswordChange, ServerInfo, SessionRequest, SessionResponse, SignUpRequest,
    User, validate,
};
use unicode_normalization::UnicodeNormalization;

use super::{Authenticated, authenticate, body, error, internal, rate_limited};
use crate::AppState;
use crate::auth::passwords::{HashError, weakness};
use crate::auth::{new_secret, new_token, now_secs, secret_hash};
use crate::hub::now_millis;
use crate::store::{NewSession, NewUser};

/// How long a WebSocket ticket may wait to be used.
const TICKET_TTL_SECS: u64 = 30;

/// `GET /api/server`: what the sign-in page needs to know.
pub async fn server_info(State(app): State<Arc<AppState>>) -> Json<ServerInfo> {
    Json(ServerInfo {
        allow_guests: app.config.allow_guests,
    })
}

/// A display name as stored: NFC, so one "é" is one spelling, then the
/// shared rules (no invisible characters, 1–32 characters).
fn display_name(raw: &str) -> Result<String, Response> {
    let normalized: String = raw.nfc().collect();
    validate::display_name(&normalized)
        .map(str::to_owned)
        .map_err(|why| error(StatusCode::BAD_REQUEST, ApiErrorCode::InvalidName, why))
}

/// How long a sign-in waits before its password is checked while its
/// username is being guessed at from everywhere.
const USERNAME_SLOWDOWN: std::time::Duration = std::time::Duration::from_secs(1);

/// One attempt against the sign-in limits.
fn throttle(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    username: Option<&str>,
) -> Result<(), Response> {
    let ip = app.throttle.client_ip(peer, headers);
    app.throttle.check(ip, username).map_err(|wait| {
        tracing::info!(%ip, username, "sign-in rate limited");
        crate::prometheus::rate_limited("sign_in");
        rate_limited(wait)
    })
}

fn hash_failed(err: HashError) -> Response {
    match err {
        HashError::Busy => error(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiErrorCode::Busy,
            "too many sign-ins at once; try again shortly",
        ),
        HashError::Failed(why) => {
            tracing::error!(why, "password hashing failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                ApiErrorCode::Internal,
                "could not check the password",
            )
        }
    }
}

/// A new session for `user`.
async fn open_session(app: &AppState, user: User) -> Result<SessionResponse, Response> {
    let token = new_token();
    let id = uuid::Uuid::new_v4().to_string();
    let expires_at = now_secs() + app.config.session_ttl_secs;
    app.hub
        .store()
        .create_session(&NewSession {
            id: &id,
            token_hash: &secret_hash(&token),
            user_id: &user.id,
            created_at_ms: now_millis(),
            expires_at,
        })
        .await
        .map_err(internal)?;
    tracing::info!(user = %user.id, session = %id, "session created");
    Ok(SessionResponse { token, user })
}

/// `POST /api/accounts {username, password, display_name}` → `201`.
pub async fn sign_up(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Result<Json<SignUpRequest>, JsonRejection>,
) -> Response {
    let request = match body(request) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let username = validate::canonical_username(&request.username);
    // Per address only: trying taken usernames must not spend anybody's
    // sign-in budget.
    if let Err(response) = throttle(&app, peer, &headers, None) {
        return response;
    }
    if let Err(why) = validate::username(&username) {
        return error(StatusCode::BAD_REQUEST, ApiErrorCode::InvalidUsername, why);
    }
    let name = match display_name(&request.display_name) {
        Ok(name) => name,
        Err(response) => return response,
    };
    if let Some(why) = weakness(&request.password, &username) {
        return error(StatusCode::BAD_REQUEST, ApiErrorCode::WeakPassword, why);
    }
    let store = app.hub.store();
    let taken = || {
        error(
            StatusCode::CONFLICT,
            ApiErrorCode::UsernameTaken,
            "that username is taken; choose another",
        )
    };
    // Checked before hashing too, so a taken name costs no CPU.
    match store.credentials(&username).await {
        Ok(Some(_)) => return taken(),
        Ok(None) => {}
        Err(err) => return internal(err),
    }
    let hash = match app.passwords.hash(&request.password).await {
        Ok(hash) => hash,
        Err(err) => return hash_failed(err),
    };
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        username: Some(username),
    };
    let created = store
        .create_user(&NewUser {
            id: &user.id,
            username: user.username.as_deref(),
            display_name: &user.name,
            password_hash: Some(&hash),
            created_at_ms: now_millis(),
        })
        .await;
    match created {
        Ok(true) => {}
        Ok(false) => return taken(),
        Err(err) => return internal(err),
    }
    match open_session(&app, user).await {
        Ok(session) => (StatusCode::CREATED, Json(session)).into_response(),
        Err(response) => response,
    }
}

/// `POST /api/session {username, password}` (or `{name}` for a guest).
pub async fn sign_in(
    state: State<Arc<AppState>>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Result<Json<SessionRequest>, JsonRejection>,
) -> Response {
    let response = sign_in_answer(state, peer, headers, request).await;
    let result = match response.status() {
        StatusCode::OK => "ok",
        StatusCode::UNAUTHORIZED => "bad_credentials",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "busy",
        status if status.is_client_error() => "refused",
        _ => "error",
    };
    metrics::counter!(crate::prometheus::SIGN_INS, "result" => result).increment(1);
    response
}

async fn sign_in_answer(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Result<Json<SessionRequest>, JsonRejection>,
) -> Response {
    let request = match body(request) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let user = match request {
        SessionRequest::Password { username, password } => {
            let username = validate::canonical_username(&username);
            if let Err(response) = throttle(&app, peer, &headers, Some(&username)) {
                return response;
            }
            // Guessed at too often from everywhere: slowed down, and a
            // wrong password is refused as rate limited; the right one
            // still gets in (see `throttle.rs` for why).
            let under_attack = app.throttle.attempt_on_username(&username);
            if under_attack.is_some() {
                tokio::time::sleep(USERNAME_SLOWDOWN).await;
            }
            let found = match app.hub.store().credentials(&username).await {
                Ok(found) => found,
                Err(err) => return internal(err),
            };
            // Whether or not the user exists, one argon2 verification runs
            // (against a decoy hash if not), and the answer is the same.
            let hash = found.as_ref().and_then(|c| c.password_hash.as_deref());
            match app.passwords.verify(&password, hash).await {
                Ok(true) => found.map(|c| c.user).expect("a verified hash has a user"),
                Ok(false) => {
                    if let Some(wait) = under_attack {
                        tracing::info!(username, "sign-in refused: username under attack");
                        crate::prometheus::rate_limited("sign_in_username");
                        return rate_limited(wait);
                    }
                    return error(
                        StatusCode::UNAUTHORIZED,
                        ApiErrorCode::BadCredentials,
                        "wrong username or password",
                    );
                }
                Err(err) => return hash_failed(err),
            }
        }
        SessionRequest::Guest { name } => {
            if !app.config.allow_guests {
                return error(
                    StatusCode::FORBIDDEN,
                    ApiErrorCode::GuestsDisabled,
                    "this server needs an account: sign up or sign in",
                );
            }
            if let Err(response) = throttle(&app, peer, &headers, None) {
                return response;
            }
            let name = match display_name(&name) {
                Ok(name) => name,
                Err(response) => return response,
            };
            let user = User {
                id: uuid::Uuid::new_v4().to_string(),
                name,
                username: None,
            };
            let created = app
                .hub
                .store()
                .create_user(&NewUser {
                    id: &user.id,
                    username: None,
                    display_name: &user.name,
                    password_hash: None,
                    created_at_ms: now_millis(),
                })
                .await;
            if let Err(err) = created {
                return internal(err);
            }
            user
        }
    };
    match open_session(&app, user).await {
        Ok(session) => Json(session).into_response(),
        Err(response) => response,
    }
}

/// `GET /api/session`: who this token belongs to (a client checks a stored
/// token with it).
pub async fn whoami(Authenticated(identity): Authenticated) -> Json<User> {
    Json(identity.user)
}

/// `DELETE /api/session` → `204`: the token stops working at once, and
/// its sockets close with 4001 on every node.
pub async fn sign_out(
    State(app): State<Arc<AppState>>,
    Authenticated(identity): Authenticated,
) -> Response {
    if let Err(err) = app
        .hub
        .store()
        .revoke_session(&identity.session_id, now_millis())
        .await
    {
        return internal(err);
    }
    tracing::info!(user = %identity.user.id, session = %identity.session_id, "signed out");
    app.hub.revoke_sessions(vec![identity.session_id]);
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE /api/account/sessions` → `204`: "sign out everywhere". Every
/// session of the account, this one too, stops working at once, and their
/// sockets close with 4001 on every node.
pub async fn sign_out_everywhere(
    State(app): State<Arc<AppState>>,
    Authenticated(identity): Authenticated,
) -> Response {
    // No session has the empty id: "every session but none".
    let revoked = match app
        .hub
        .store()
        .revoke_sessions_except(&identity.user.id, "", now_millis())
        .await
    {
        Ok(revoked) => revoked,
        Err(err) => return internal(err),
    };
    tracing::info!(user = %identity.user.id, revoked = revoked.len(), "signed out everywhere");
    app.hub
        .revoke_sessions(revoked.into_iter().map(Arc::from).collect());
    StatusCode::NO_CONTENT.into_response()
}

/// `PATCH /api/account {display_name}` → `200 <user>`: the account as it
/// is now. Every socket of the account is told (`account_changed`) and
/// reconnects, so its presence and new messages carry the new name;
/// messages already sent keep the name they were sent under.
pub async fn change_account(
    State(app): State<Arc<AppState>>,
    Authenticated(identity): Authenticated,
    request: Result<Json<AccountChange>, JsonRejection>,
) -> Response {
    let request = match body(request) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let name = match display_name(&request.display_name) {
        Ok(name) => name,
        Err(response) => return response,
    };
    let mut user = identity.user;
    if name != user.name {
        if let Err(err) = app.hub.store().set_display_name(&user.id, &name).await {
            return internal(err);
        }
        tracing::info!(user = %user.id, "renamed");
        user.name = name;
        app.hub.account_changed(&user);
    }
    Json(user).into_response()
}

/// `PUT /api/account/password {old, new}` → `204`, and every other
/// session of the account is revoked (this one stays).
pub async fn change_password(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Authenticated(identity): Authenticated,
    request: Result<Json<PasswordChange>, JsonRejection>,
) -> Response {
    let request = match body(request) {
        Ok(request) => request,
        Err(response) => return response,
    };
    let Some(username) = identity.user.username.clone() else {
        return error(
            StatusCode::FORBIDDEN,
            ApiErrorCode::Guest,
            "guests have no password; sign up for an account",
        );
    };
    if let Err(response) = throttle(&app, peer, &headers, Some(&username)) {
        return response;
    }
    let store = app.hub.store();
    let current = match store.credentials_by_id(&identity.user.id).await {
        Ok(found) => found.and_then(|c| c.password_hash),
        Err(err) => return internal(err),
    };
    match app.passwords.verify(&request.old, current.as_deref()).await {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::FORBIDDEN,
                ApiErrorCode::BadCredentials,
                "the current password is wrong",
            );
        }
        Err(err) => return hash_failed(err),
    }
    if let Some(why) = weakness(&request.new, &username) {
        return error(StatusCode::BAD_REQUEST, ApiErrorCode::WeakPassword, why);
    }
    let hash = match app.passwords.hash(&request.new).await {
        Ok(hash) => hash,
        Err(err) => return hash_failed(err),
    };
    if let Err(err) = store.set_password(&identity.user.id, &hash).await {
        return internal(err);
    }
    let revoked = match store
        .revoke_sessions_except(&identity.user.id, &identity.session_id, now_millis())
        .await
    {
        Ok(revoked) => revoked,
        Err(err) => return internal(err),
    };
    tracing::info!(user = %identity.user.id, revoked = revoked.len(), "password changed");
    app.hub
        .revoke_sessions(revoked.into_iter().map(Arc::from).collect());
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /api/ws-ticket`: a one-time ticket for `/ws?ticket=`, so the
/// long-lived token never travels in a URL (where proxies, browser history
/// and logs keep URLs). Stored hashed in the shared store, so any node
/// redeems it, once; it names the session, so it dies with it.
pub async fn create_ws_ticket(
    State(app): State<Arc<AppState>>,
    Authenticated(identity): Authenticated,
) -> Response {
    match new_ws_ticket(&app, &identity.session_id).await {
        Ok(ticket) => (StatusCode::CREATED, Json(ticket)).into_response(),
        Err(response) => response,
    }
}

/// A one-time WebSocket ticket for `session_id`, stored hashed.
async fn new_ws_ticket(app: &AppState, session_id: &str) -> Result<common::WsTicket, Response> {
    let ticket = new_secret("");
    let now = now_millis();
    let expires_at = now + (TICKET_TTL_SECS * 1000) as i64;
    app.hub
        .store()
        .save_ticket(&secret_hash(&ticket), session_id, expires_at, now)
        .await
        .map_err(internal)?;
    Ok(common::WsTicket {
        ticket,
        expires_in_secs: TICKET_TTL_SECS,
    })
}

/// `POST /api/session/handoff`: the session `POST /signin` (`http/signin/`)
/// just opened, for the app to keep, once (the cookie that carried it is
/// cleared), with a first WebSocket ticket (`common::Handoff`): the app's
/// first connection saves a round trip. `404 not_found` without one.
pub async fn handoff(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    use crate::auth::cookies::{HANDOFF_COOKIE, HANDOFF_PATH, cookie};
    let clear =
        format!("{HANDOFF_COOKIE}=; Path={HANDOFF_PATH}; Max-Age=0; HttpOnly; SameSite=Strict");
    let mut response = match cookie(&headers, HANDOFF_COOKIE).filter(|t| !t.is_empty()) {
        None => error(
            StatusCode::NOT_FOUND,
            ApiErrorCode::NotFound,
            "no session is waiting to be picked up; sign in",
        ),
        Some(token) => match authenticate(&app, token).await {
            Ok(identity) => match new_ws_ticket(&app, &identity.session_id).await {
                Ok(ws_ticket) => Json(common::Handoff {
                    token: token.to_owned(),
                    user: identity.user,
                    ws_ticket,
                })
                .into_response(),
                Err(response) => response,
            },
            Err(response) => response,
        },
    };
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
