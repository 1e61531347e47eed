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
