//! Session tokens: compact HS256 JWTs (`header.claims.signature`).
//!
//! Hand-rolled on `hmac` + `sha2` rather than a JWT crate: we only ever issue
//! and accept one algorithm, which keeps the attack surface (and the build)
//! small. The header is fixed, so "alg: none" style confusion cannot happen.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::User;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// `{"alg":"HS256","typ":"JWT"}`, base64url-encoded.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    name: String,
    iat: u64,
    exp: u64,
}

/// A verified token: who, and until when (seconds since the Unix epoch).
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: User,
    pub expires_at: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

#[derive(Clone)]
pub struct TokenKeys {
    secret: Vec<u8>,
    ttl: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        TokenKeys {
            secret: secret.to_vec(),
            ttl,
        }
    }

    pub fn issue(&self, user: &User) -> String {
        self.issue_at(user, now_secs())
    }

    fn issue_at(&self, user: &User, iat: u64) -> String {
        let claims = Claims {
            sub: user.id.clone(),
            name: user.name.clone(),
            iat,
            exp: iat + self.ttl.as_secs(),
        };
        let payload = B64.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let signing_input = format!("{HEADER}.{payload}");
        let signature = B64.encode(self.mac(signing_input.as_bytes()).finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        self.verify_at(token, now_secs())
    }

    fn verify_at(&self, token: &str, now: u64) -> Result<Identity, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        if header != HEADER {
            return Err(TokenError::Malformed);
        }
        let signature = B64.decode(signature).map_err(|_| TokenError::Malformed)?;
        // verify_slice compares in constant time.
        self.mac(signing_input.as_bytes())
            .verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = B64
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(Identity {
            user: User {
                id: claims.sub,
                name: claims.name,
            },
            expires_at: claims.exp,
        })
    }

    fn mac(&self, data: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(data);
        mac
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The configured secret, or the one kept in `data_dir/token.secret`,
/// generated on first start. Persisting it means tokens survive a restart.
pub fn load_or_create_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        anyhow::ensure!(
            secret.len() >= 16,
            "the token secret must be at least 16 bytes long"
        );
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join("token.secret");
    match std::fs::read_to_string(&path) {
        Ok(hex) if hex.trim().len() >= 32 => return Ok(hex.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!(
            "{} is too short; delete it to generate a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    crate::files::private_dir(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, hex.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new token secret");
    Ok(hex.into_bytes())
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60))
    }

    fn alice() -> User {
        User {
            id: "u-1".into(),
            name: "alice".into(),
        }
    }

    #[test]
    fn a_token_round_trips_until_it_expires() {
        let token = keys().issue_at(&alice(), 1000);
        let id = keys().verify_at(&token, 1059).unwrap();
        assert_eq!(id.user, alice());
        assert_eq!(id.expires_at, 1060);
        assert_eq!(
            keys().verify_at(&token, 1060).unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn tampering_is_detected() {
        let token = keys().issue_at(&alice(), 1000);
        let other = TokenKeys::new(b"another secret, also 32 bytes!!", Duration::from_secs(60));
        assert_eq!(
            other.verify_at(&token, 1001).unwrap_err(),
            TokenError::BadSignature
        );
        // Swap in claims for another user, keep the signature.
        let forged_claims = B64.encode(br#"{"sub":"u-2","name":"mallory","iat":1000,"exp":9999}"#);
        let sig = token.rsplit('.').next().unwrap();
        let forged = format!("{HEADER}.{forged_claims}.{sig}");
        assert_eq!(
            keys().verify_at(&forged, 1001).unwrap_err(),
            TokenError::BadSignature
        );
        assert_eq!(
            keys().verify_at("garbage", 1001).unwrap_err(),
            TokenError::Malformed
        );
        let none_alg = format!("{}.{forged_claims}.", B64.encode(br#"{"alg":"none"}"#));
        assert_eq!(
            keys().verify_at(&none_alg, 1001).unwrap_err(),
            TokenError::Malformed
        );
    }

    #[test]
    fn a_generated_secret_is_kept() {
        let dir = std::env::temp_dir().join(format!("hearth-secret-{}", uuid::Uuid::new_v4()));
        let first = load_or_create_secret(None, &dir).unwrap();
        let second = load_or_create_secret(None, &dir).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
        let configured = load_or_create_secret(Some("a configured secret!"), &dir).unwrap();
        assert_eq!(configured, b"a configured secret!");
        assert!(load_or_create_secret(Some("short"), &dir).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
