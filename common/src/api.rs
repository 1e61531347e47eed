//! Bodies of the small HTTP API next to the WebSocket.

use serde::{Deserialize, Serialize};

use crate::User;

/// `POST /api/session` request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRequest {
    pub name: String,
}

/// `POST /api/session` response: a signed token to pass as `/ws?token=`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionResponse {
    pub token: String,
    pub user: User,
}

/// `POST /api/ws-ticket` response: a one-time ticket for `/ws?ticket=`,
/// valid for `expires_in_secs`, so the long-lived token never goes in a URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WsTicket {
    pub ticket: String,
    pub expires_in_secs: u64,
}

/// One entry of `GET /api/rooms`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoomSummary {
    pub name: String,
    /// Distinct users currently in the room.
    pub members: u32,
}

/// Every non-2xx API response has this body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    /// A stable, machine-readable code such as `invalid_name`.
    pub error: String,
    /// A human-readable explanation.
    pub message: String,
}
