//! How a receiver knows a delivery is Hearth's: `Hearth-Signature: t=<unix
//! seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>`.
//!
//! The timestamp is signed with the body, so a receiver that refuses old
//! timestamps (docs/clients.md suggests five minutes) cannot be fed a
//! recorded delivery again later; `Idempotency-Key` lets it drop the
//! retries it already took. The scheme is Stripe's, which receivers know.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "hearth-signature";

/// The header's value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = format!("t={timestamp},v1=");
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn signs_the_timestamp_and_body_as_documented() {
        // The value docs/clients.md's receiver checks, worked out with
        // `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret`.
        assert_eq!(
            sign("s3cret", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

    #[test]
    fn any_change_changes_the_signature() {
        let base = sign("s3cret", 1, b"body");
        assert_ne!(base, sign("s3cret", 2, b"body"));
        assert_ne!(base, sign("s3cret", 1, b"bodY"));
        assert_ne!(base, sign("other", 1, b"body"));
    }
}
