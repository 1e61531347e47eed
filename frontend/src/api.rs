//! Calls to the HTTP API, on the origin the page was served from.

use common::{
    ApiError, ApiErrorCode, ChatMessage, Role, RoomMember, RoomSummary, User, Visibility,
};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;

/// Why a call failed: the server's error code and message (documented in
/// docs/protocol.md); no code when no JSON answer came (the server was
/// unreachable, or answered something else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub code: Option<ApiErrorCode>,
    pub message: String,
    /// Seconds, from `Retry-After` (rate limits).
    pub retry_after: Option<u64>,
}

impl Failure {
    fn unreachable() -> Failure {
        Failure {
            status: 0,
            code: None,
            message: "the server cannot be reached; check your connection".into(),
            retry_after: None,
        }
    }

    /// The message to show, with the wait for a rate limit.
    pub fn text(&self) -> String {
        match self.retry_after {
            Some(secs) => format!("Too many attempts. Try again in {secs} s."),
            None => self.message.clone(),
        }
    }
}

impl From<Failure> for String {
    fn from(failure: Failure) -> String {
        failure.text()
    }
}

fn authorized(request: RequestBuilder, token: &str) -> RequestBuilder {
    request.header("Authorization", &format!("Bearer {token}"))
}

/// A JSON body, already serialized (not through `serde_json::Value`,
/// whose code would be in the bundle only for this).
type Body = Option<String>;

async fn send(request: RequestBuilder, body: Body) -> Result<Response, Failure> {
    let sent = match body {
        Some(body) => {
            request
                .header("Content-Type", "application/json")
                .body(body)
                .map_err(|_| Failure::unreachable())?
                .send()
                .await
        }
        None => request.send().await,
    };
    let response = sent.map_err(|_| Failure::unreachable())?;
    if response.ok() {
        Ok(response)
    } else {
        Err(failure(response).await)
    }
}

async fn json<T: DeserializeOwned>(request: RequestBuilder, body: Body) -> Result<T, Failure> {
    let response = send(request, body).await?;
    response.json().await.map_err(|e| Failure {
        status: response.status(),
        code: None,
        message: e.to_string(),
        retry_after: None,
    })
}

async fn failure(response: Response) -> Failure {
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.parse().ok());
    let status = response.status();
    match response.json::<ApiError>().await {
        Ok(error) => Failure {
            status,
            code: Some(error.error),
            message: error.message,
            retry_after,
        },
        Err(_) => Failure {
            status,
            code: None,
            message: format!("the server answered {status}"),
            retry_after,
        },
    }
}

fn to_json(value: &impl serde::Serialize) -> Body {
    serde_json::to_string(value).ok()
}

/// `POST /api/session/handoff`: the session the server's sign-in page
/// just opened (it waits in a cookie only that call gets); `None` if there
/// is none (this browser is not signed in).
pub async fn handoff() -> Option<common::Handoff> {
    json(Request::post("/api/session/handoff"), None).await.ok()
}

/// Ends the session on the server. Best effort: the page forgets the
/// token either way.
pub async fn sign_out(token: &str) -> Result<(), Failure> {
    send(authorized(Request::delete("/api/session"), token), None)
        .await
        .map(drop)
}

/// Keeps what is typed in `room` for the account (empty: nothing).
pub async fn save_draft(token: &str, room: &str, text: &str) -> Result<(), Failure> {
    let url = format!("/api/rooms/{room}/draft");
    let body = common::SetDraft {
        text: text.to_owned(),
    };
    send(authorized(Request::put(&url), token), to_json(&body))
        .await
        .map(drop)
}

/// Ends every session of the account, this one too.
pub async fn sign_out_everywhere(token: &str) -> Result<(), Failure> {
    send(
        authorized(Request::delete("/api/account/sessions"), token),
        None,
    )
    .await
    .map(drop)
}

/// Renames the account; the answer is the account as it is now.
pub async fn rename(token: &str, display_name: &str) -> Result<User, Failure> {
    let body = common::AccountChange {
        display_name: display_name.to_owned(),
    };
    json(
        authorized(Request::patch("/api/account"), token),
        to_json(&body),
    )
    .await
}

/// Changes the password; the account's other sessions end.
pub async fn change_password(token: &str, old: &str, new: &str) -> Result<(), Failure> {
    let body = common::PasswordChange {
        old: old.to_owned(),
        new: new.to_owned(),
    };
    send(
        authorized(Request::put("/api/account/password"), token),
        to_json(&body),
    )
    .await
    .map(drop)
}

pub async fn rooms(token: &str) -> Result<Vec<RoomSummary>, String> {
    Ok(json(authorized(Request::get("/api/rooms"), token), None).await?)
}

/// `limit` messages before seq `before` (the newest if `None`), oldest first.
pub async fn history(
    token: &str,
    room: &str,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<ChatMessage>, String> {
    let mut url = format!("/api/rooms/{room}/messages?limit={limit}");
    if let Some(before) = before {
        url.push_str(&format!("&before={before}"));
    }
    Ok(json(authorized(Request::get(&url), token), None).await?)
}

/// The direct conversation with `username` (made if new).
pub async fn start_direct(token: &str, username: &str) -> Result<RoomSummary, String> {
    let body = common::StartDirect {
        username: username.to_owned(),
    };
    Ok(json(authorized(Request::post("/api/dms"), token), to_json(&body)).await?)
}

/// Messages matching every word of `query` in the rooms this user may
/// read, newest first; `before` is the `next` of the page before.
pub async fn search(
    token: &str,
    query: &str,
    before: Option<&str>,
) -> Result<common::SearchResults, String> {
    let encode = |s: &str| String::from(js_sys::encode_uri_component(s));
    let mut url = format!("/api/search?q={}", encode(query));
    if let Some(before) = before {
        url.push_str(&format!("&before={}", encode(before)));
    }
    Ok(json(authorized(Request::get(&url), token), None).await?)
}

pub async fn create_room(
    token: &str,
    name: &str,
    visibility: Visibility,
) -> Result<RoomSummary, Failure> {
    let body = common::CreateRoom {
        name: name.to_owned(),
        visibility,
    };
    json(
        authorized(Request::post("/api/rooms"), token),
        to_json(&body),
    )
    .await
}

pub async fn members(token: &str, room: &str) -> Result<Vec<RoomMember>, Failure> {
    let url = format!("/api/rooms/{room}/members");
    json(authorized(Request::get(&url), token), None).await
}

/// `GET /api/rooms/{room}/files`: what was shared there, newest first.
pub async fn room_files(token: &str, room: &str) -> Result<Vec<common::SharedFile>, Failure> {
    let url = format!("/api/rooms/{room}/files?limit=100");
    json(authorized(Request::get(&url), token), None).await
}

pub async fn invite(token: &str, room: &str, username: &str) -> Result<RoomMember, Failure> {
    let url = format!("/api/rooms/{room}/members");
    let body = common::Invite {
        username: username.to_owned(),
    };
    json(authorized(Request::post(&url), token), to_json(&body)).await
}

pub async fn remove(token: &str, room: &str, user_id: &str) -> Result<(), Failure> {
    let url = format!("/api/rooms/{room}/members/{user_id}");
    send(authorized(Request::delete(&url), token), None)
        .await
        .map(drop)
}

pub async fn set_role(
    token: &str,
    room: &str,
    user_id: &str,
    role: Role,
) -> Result<RoomMember, Failure> {
    let url = format!("/api/rooms/{room}/members/{user_id}");
    let body = common::SetRole { role };
    json(authorized(Request::put(&url), token), to_json(&body)).await
}

/// What of `room` notifies this user, on every device of theirs.
pub async fn set_notify(token: &str, room: &str, notify: common::Notify) -> Result<(), Failure> {
    let url = format!("/api/rooms/{room}/notifications");
    let body = common::SetNotify { notify };
    send(authorized(Request::put(&url), token), to_json(&body))
        .await
        .map(drop)
}

/// Every emoji, for the picker (`GET /api/emoji`; no session needed).
pub async fn emoji_catalog() -> Result<Vec<crate::emoji::Group>, Failure> {
    let response = send(Request::get("/api/emoji"), None).await?;
    let text = response.text().await.map_err(|_| Failure::unreachable())?;
    crate::emoji::parse(&text).ok_or(Failure {
        status: response.status(),
        code: None,
        message: "the emoji list did not load".into(),
        retry_after: None,
    })
}
