//! Standard Webhooks v1 signing and verification (HMAC-SHA256).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, the
//! signature is `v1,` followed by the padded standard base64 of the MAC, and
//! `webhook-signature` lists one signature per secret, separated by single
//! spaces, so that a receiver keeps working while secrets are rotated.
//! Source: the Standard Webhooks specification, `spec/standard-webhooks.md`.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Header carrying the message id, identical on every retry.
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the attempt's Unix time in integer seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Prefix of a symmetric secret in its text form.
pub const SECRET_PREFIX: &str = "whsec_";

/// Default tolerance between the timestamp header and the receiver's clock.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

type HmacSha256 = Hmac<Sha256>;

/// A symmetric signing secret. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

/// Why a secret string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("webhook secret is not valid base64 after the \"whsec_\" prefix: generate one with `floorwatch keys generate`")]
    InvalidBase64,
    #[error("webhook secret decodes to {len} bytes: use 24 to 64 bytes (`floorwatch keys generate` makes one)")]
    BadLength { len: usize },
}

impl Secret {
    /// Parses `whsec_` followed by standard base64; the prefix is optional.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::InvalidBase64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::BadLength { len: key.len() });
        }
        Ok(Self { key })
    }

    /// Generates a new random 24-byte secret.
    pub fn generate() -> Self {
        let mut key = vec![0u8; 24];
        rand::thread_rng().fill_bytes(&mut key);
        Self { key }
    }

    /// Returns the text form, `whsec_` followed by base64. This reveals the
    /// key: write it only where the secret belongs.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// Returns the `v1,` signature of one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Returns the `webhook-signature` value for `secrets`: one signature per
/// secret, separated by single spaces.
pub fn signature_header(secrets: &[Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a delivery failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    #[error("header webhook-timestamp {0:?} is not an integer number of seconds")]
    InvalidTimestamp(String),
    #[error("webhook-timestamp is {age_secs} s old: the limit is {tolerance_secs} s (check the sender's clock)")]
    TimestampTooOld { age_secs: i64, tolerance_secs: i64 },
    #[error("webhook-timestamp is {ahead_secs} s in the future: the limit is {tolerance_secs} s (check the sender's clock)")]
    TimestampTooNew {
        ahead_secs: i64,
        tolerance_secs: i64,
    },
    #[error("no signature in webhook-signature matches a configured secret")]
    NoMatchingSignature,
}

/// Verifies deliveries against one or more secrets.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    tolerance: Duration,
}

impl Verifier {
    /// Creates a verifier that accepts a signature made with any of
    /// `secrets` and a timestamp within `tolerance` of the receiver's clock.
    pub fn new(secrets: Vec<Secret>, tolerance: Duration) -> Self {
        Self { secrets, tolerance }
    }

    /// Verifies one delivery. `now` is the receiver's Unix time in seconds.
    ///
    /// Each signature is compared in constant time.
    pub fn verify(
        &self,
        msg_id: Option<&str>,
        timestamp: Option<&str>,
        signatures: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let msg_id = msg_id.ok_or(VerifyError::MissingHeader(HEADER_ID))?;
        let timestamp = timestamp.ok_or(VerifyError::MissingHeader(HEADER_TIMESTAMP))?;
        let signatures = signatures.ok_or(VerifyError::MissingHeader(HEADER_SIGNATURE))?;

        let timestamp: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::InvalidTimestamp(timestamp.chars().take(40).collect()))?;
        let tolerance_secs = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        let age_secs = now.saturating_sub(timestamp);
        if age_secs > tolerance_secs {
            return Err(VerifyError::TimestampTooOld {
                age_secs,
                tolerance_secs,
            });
        }
        if -age_secs > tolerance_secs {
            return Err(VerifyError::TimestampTooNew {
                ahead_secs: -age_secs,
                tolerance_secs,
            });
        }

        let candidates: Vec<Vec<u8>> = signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|encoded| STANDARD.decode(encoded).ok())
            .collect();
        for secret in &self.secrets {
            for candidate in &candidates {
                if secret
                    .mac(msg_id, timestamp, body)
                    .verify_slice(candidate)
                    .is_ok()
                {
                    return Ok(());
                }
            }
        }
        Err(VerifyError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: [(&str, &str, i64, &str, &str); 2] = [
        (
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
    ];

    #[test]
    fn public_test_vectors_sign() {
        for (secret, id, ts, body, expected) in VECTORS {
            let secret = Secret::parse(secret).unwrap();
            assert_eq!(secret.sign(id, ts, body.as_bytes()), expected);
        }
    }

    #[test]
    fn public_test_vectors_verify() {
        for (secret, id, ts, body, signature) in VECTORS {
            let verifier = Verifier::new(vec![Secret::parse(secret).unwrap()], DEFAULT_TOLERANCE);
            let ts_text = ts.to_string();
            let result = verifier.verify(
                Some(id),
                Some(&ts_text),
                Some(signature),
                body.as_bytes(),
                ts + 10,
            );
            assert_eq!(result, Ok(()));
        }
    }

    fn verify_one(
        verifier: &Verifier,
        signature: &str,
        body: &str,
        now: i64,
    ) -> Result<(), VerifyError> {
        verifier.verify(
            Some("msg_1"),
            Some("1000"),
            Some(signature),
            body.as_bytes(),
            now,
        )
    }

    #[test]
    fn rejects_tampered_body_wrong_secret_and_stale_time() {
        let secret = Secret::generate();
        let verifier = Verifier::new(vec![secret.clone()], DEFAULT_TOLERANCE);
        let signature = secret.sign("msg_1", 1000, b"{}");
        assert_eq!(verify_one(&verifier, &signature, "{}", 1000), Ok(()));
        assert_eq!(
            verify_one(&verifier, &signature, "{ }", 1000),
            Err(VerifyError::NoMatchingSignature)
        );
        let other = Verifier::new(vec![Secret::generate()], DEFAULT_TOLERANCE);
        assert_eq!(
            verify_one(&other, &signature, "{}", 1000),
            Err(VerifyError::NoMatchingSignature)
        );
        assert!(matches!(
            verify_one(&verifier, &signature, "{}", 1000 + 600),
            Err(VerifyError::TimestampTooOld { age_secs: 600, .. })
        ));
        assert!(matches!(
            verify_one(&verifier, &signature, "{}", 1000 - 600),
            Err(VerifyError::TimestampTooNew {
                ahead_secs: 600,
                ..
            })
        ));
    }

    #[test]
    fn rotation_lists_every_signature() {
        let (old, new) = (Secret::generate(), Secret::generate());
        let header = signature_header(&[old.clone(), new.clone()], "msg_1", 1000, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        for secret in [old, new] {
            let verifier = Verifier::new(vec![secret], DEFAULT_TOLERANCE);
            assert_eq!(verify_one(&verifier, &header, "{}", 1000), Ok(()));
        }
    }

    #[test]
    fn rejects_missing_and_malformed_headers() {
        let verifier = Verifier::new(vec![Secret::generate()], DEFAULT_TOLERANCE);
        assert_eq!(
            verifier.verify(None, Some("1"), Some("v1,x"), b"", 1),
            Err(VerifyError::MissingHeader(HEADER_ID))
        );
        assert!(matches!(
            verifier.verify(Some("m"), Some("soon"), Some("v1,x"), b"", 1),
            Err(VerifyError::InvalidTimestamp(_))
        ));
        assert_eq!(
            verifier.verify(Some("m"), Some("1"), Some("v2,abc v1,!!"), b"", 1),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn secret_parse_and_generate() {
        let secret = Secret::generate();
        assert_eq!(Secret::parse(&secret.expose()), Ok(secret.clone()));
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(Secret::parse("whsec_!!"), Err(SecretError::InvalidBase64));
        assert_eq!(
            Secret::parse("whsec_AAAA"),
            Err(SecretError::BadLength { len: 3 })
        );
    }
}
