//! Calls to the HTTP API, on the origin the page was served from.

use common::{ApiError, ChatMessage, RoomSummary, SessionRequest, SessionResponse};
use gloo_net::http::Request;

pub async fn sign_in(name: &str) -> Result<SessionResponse, String> {
    let request = Request::post("/api/session")
        .json(&SessionRequest {
            name: name.to_owned(),
        })
        .map_err(|e| e.to_string())?;
    let response = request
        .send()
        .await
        .map_err(|_| "the server cannot be reached".to_owned())?;
    if response.ok() {
        response.json().await.map_err(|e| e.to_string())
    } else {
        Err(error_text(response).await)
    }
}

pub async fn rooms(token: &str) -> Result<Vec<RoomSummary>, String> {
    get_json("/api/rooms", token).await
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
    get_json(&url, token).await
}

/// Why a ticket could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketError {
    /// The token is no good: sign in again.
    SignIn,
    /// The server cannot be reached, or failed: try again later.
    Unavailable,
}

/// A one-time ticket for `/ws?ticket=`, so the token never goes in a URL.
pub async fn ws_ticket(token: &str) -> Result<String, TicketError> {
    let response = Request::post("/api/ws-ticket")
        .header("Authorization", &format!("Bearer {token}"))
        .send()
        .await
        .map_err(|_| TicketError::Unavailable)?;
    match response.status() {
        200..=299 => response
            .json::<common::WsTicket>()
            .await
            .map(|t| t.ticket)
            .map_err(|_| TicketError::Unavailable),
        401 => Err(TicketError::SignIn),
        _ => Err(TicketError::Unavailable),
    }
}

/// An authenticated GET whose answer is JSON.
async fn get_json<T: serde::de::DeserializeOwned>(url: &str, token: &str) -> Result<T, String> {
    let response = Request::get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .send()
        .await
        .map_err(|_| "the server cannot be reached".to_owned())?;
    if response.ok() {
        response.json().await.map_err(|e| e.to_string())
    } else {
        Err(error_text(response).await)
    }
}

async fn error_text(response: gloo_net::http::Response) -> String {
    match response.json::<ApiError>().await {
        Ok(error) => error.message,
        Err(_) => format!("the server answered {}", response.status()),
    }
}
