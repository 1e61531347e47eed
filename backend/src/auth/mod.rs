//! Sessions: who a request or a socket is.
//!
//! A session token is 32 random bytes, opaque to the client, and the store
//! keeps only its SHA-256. We chose this over a signed token (a JWT with a
//! session id in it) because revocation must work at once and on every
//! node: that means every use of a token is checked against the store
//! anyway, and once it is, a signature adds nothing but a secret to manage
//! and rotate. A leaked database holds no usable token (only hashes; a
//! 256-bit random token needs no slow hash), and "sign out everywhere" is
//! one `UPDATE`.
//!
//! Where a token is checked: the HTTP API (`Authorization: Bearer`), the
//! WebSocket upgrade (a one-time ticket, or the same header for clients
//! that are not browsers), and, for sockets already open, `revocation.rs`.

pub mod cookies;
pub mod passwords;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::User;

use crate::store::SessionRecord;

/// Prefix of every session token, so a leaked one is easy to recognize
/// (secret scanners, logs).
const TOKEN_PREFIX: &str = "hth_";

/// A verified session: who, which session, and until when (seconds since
/// the Unix epoch).
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: User,
    pub session_id: Arc<str>,
    pub expires_at: u64,
}

impl From<SessionRecord> for Identity {
    fn from(record: SessionRecord) -> Self {
        Identity {
            user: record.user,
            session_id: Arc::from(record.id),
            expires_at: record.expires_at,
        }
    }
}

/// What every API key starts with (`hearth admin api-key create`), and no
/// session token does: a key is recognizable in a config file or a leaked
/// log, and never taken for a session token.
pub const API_KEY_PREFIX: &str = "hk_";

/// A new random token (or ticket): 256 bits, base64url.
pub fn new_secret(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", B64.encode(bytes))
}

/// A new session token.
pub fn new_token() -> String {
    new_secret(TOKEN_PREFIX)
}

/// What the store keeps of a token or ticket: its SHA-256, in hex. A random
/// 256-bit secret cannot be guessed from it, so no slow hash is needed.
pub fn secret_hash(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether two secrets are equal, without an early exit that would tell an
/// attacker how much of a guess was right.
pub fn same_secret(given: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(given.as_bytes()) == Sha256::digest(expected.as_bytes())
}

/// `Authorization: Bearer <token>`, if present.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with("hth_"));
        assert_eq!(a.len(), 4 + 43);
        assert_eq!(secret_hash(&a), secret_hash(&a));
        assert_ne!(secret_hash(&a), secret_hash(&b));
        assert_eq!(secret_hash(&a).len(), 64);
        assert!(!secret_hash(&a).contains(&a[4..]));
    }

    #[test]
    fn the_bearer_header_is_parsed_strictly() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert("authorization", "Bearer hth_x".parse().unwrap());
        assert_eq!(bearer(&headers), Some("hth_x"));
    }
}
