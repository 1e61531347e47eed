//! WebSocket close codes the server uses. Each code has exactly one meaning,
//! and the client's reconnect policy is keyed on it.

/// The server is shutting down or restarting. Reconnect.
pub const GOING_AWAY: u16 = 1001;
/// The client broke the WebSocket protocol (RFC 6455): a reserved bit or
/// opcode, a bad control frame, an unmasked frame, a malformed close.
/// Reconnecting is allowed.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A text frame was not valid UTF-8. Reconnecting is allowed; the same
/// frame will be refused again.
pub const INVALID_DATA: u16 = 1007;
/// A frame was larger than the server accepts. Reconnecting is allowed, but
/// the same frame will be refused again.
pub const TOO_BIG: u16 = 1009;
/// The token is invalid or has expired. Do not reconnect: sign in again.
pub const TOKEN_INVALID: u16 = 4001;
/// Policy violation, for example repeated malformed frames. Reconnect later.
pub const POLICY: u16 = 4008;
/// The client read too slowly and its outbound queue filled. Reconnect.
pub const SLOW_CONSUMER: u16 = 4009;
/// No frame arrived in time after a `ping`. Reconnect.
pub const HEARTBEAT_TIMEOUT: u16 = 4010;

/// What a client should do after the connection closed with `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAdvice {
    /// Open a new connection after a backoff delay.
    Reconnect,
    /// The credentials are no good; go back to sign-in.
    SignIn,
}

/// The reconnect policy for a close code received from the server. Any code
/// not listed (including 1006, an unclean drop) means "reconnect".
pub fn advice(code: u16) -> CloseAdvice {
    match code {
        TOKEN_INVALID => CloseAdvice::SignIn,
        _ => CloseAdvice::Reconnect,
    }
}
