//! `POST /api/ws-ticket`: a one-time ticket for each WebSocket attempt.

use gloo_net::http::Request;

/// Why a ticket could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketError {
    /// The token is no good: sign in again.
    SignIn,
    /// The server cannot be reached, or failed: try again later.
    Unavailable,
}

/// A one-time ticket for `/ws?ticket=`, so the token never goes in a URL.
/// `api_base` is the origin to ask (empty: this page's).
pub async fn ws_ticket(api_base: &str, token: &str) -> Result<String, TicketError> {
    let response = Request::post(&format!("{api_base}/api/ws-ticket"))
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
