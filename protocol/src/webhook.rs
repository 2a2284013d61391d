//! Standard Webhooks signing and verification: `v1` (HMAC-SHA256) with
//! `whsec_` secrets, and the optional asymmetric `v1a` (ed25519) with
//! `whsk_` signing keys and `whpk_` public keys (see [`asymmetric`]).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`. A
//! signature is its identifier (`v1` or `v1a`), a comma and the padded
//! standard base64 of the MAC or ed25519 signature. `webhook-signature`
//! lists one signature per key, separated by single spaces, so that a
//! receiver keeps working while keys are rotated or the scheme changes.
//! Receivers trust only the secrets and public keys in their configuration,
//! never a key sent with the request.
//! Source: the Standard Webhooks specification, `spec/standard-webhooks.md`.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub mod asymmetric;

pub use asymmetric::{PublicKey, PublicKeyError, SigningKey, SigningKeyError};

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

/// Error parsing a secret string.
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

/// Returns a `webhook-signature` value that mixes both schemes: one `v1`
/// signature per secret, then one `v1a` signature per signing key, separated
/// by single spaces. A receiver that trusts any one of these keys accepts it.
pub fn mixed_signature_header(
    secrets: &[Secret],
    signing_keys: &[SigningKey],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let v1 = secrets
        .iter()
        .map(|secret| secret.sign(msg_id, timestamp, body));
    let v1a = signing_keys
        .iter()
        .map(|key| key.sign_v1a(msg_id, timestamp, body));
    v1.chain(v1a).collect::<Vec<_>>().join(" ")
}

/// Reason a delivery failed verification.
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
    #[error("no signature in webhook-signature matches a configured secret or public key")]
    NoMatchingSignature,
}

/// Verifies deliveries against secrets (`v1`) and public keys (`v1a`).
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    public_keys: Vec<PublicKey>,
    tolerance: Duration,
}

impl Verifier {
    /// Creates a verifier that accepts a `v1` signature made with any of
    /// `secrets` and a timestamp within `tolerance` of the receiver's clock.
    pub fn new(secrets: Vec<Secret>, tolerance: Duration) -> Self {
        Self::with_public_keys(secrets, Vec::new(), tolerance)
    }

    /// Creates a verifier that accepts a `v1` signature made with any of
    /// `secrets` or a `v1a` signature that verifies under any of
    /// `public_keys`, and a timestamp within `tolerance` of the receiver's
    /// clock. Either list may be empty.
    pub fn with_public_keys(
        secrets: Vec<Secret>,
        public_keys: Vec<PublicKey>,
        tolerance: Duration,
    ) -> Self {
        Self {
            secrets,
            public_keys,
            tolerance,
        }
    }

    /// Verifies one delivery. `now` is the receiver's Unix time in seconds.
    ///
    /// Each `v1` signature is compared in constant time, and each `v1a`
    /// signature is checked with ed25519 strict verification. Entries with
    /// another identifier or invalid base64 are skipped.
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
        // Not `-age_secs`: the saturated difference may be i64::MIN.
        let ahead_secs = timestamp.saturating_sub(now);
        if ahead_secs > tolerance_secs {
            return Err(VerifyError::TimestampTooNew {
                ahead_secs,
                tolerance_secs,
            });
        }

        if self.matches_v1(signatures, msg_id, timestamp, body)
            || self.matches_v1a(signatures, msg_id, timestamp, body)
        {
            return Ok(());
        }
        Err(VerifyError::NoMatchingSignature)
    }

    /// Returns whether a listed `v1` signature matches a secret.
    fn matches_v1(&self, signatures: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> bool {
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
                    return true;
                }
            }
        }
        false
    }

    /// Returns whether a listed `v1a` signature verifies under a public key.
    ///
    /// NOTE: the cost is one ed25519 verification per listed `v1a` entry and
    /// public key, and only the HTTP server's header size limit bounds the
    /// number of entries.
    fn matches_v1a(&self, signatures: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> bool {
        if self.public_keys.is_empty() {
            return false;
        }
        let candidates: Vec<_> = signatures
            .split(' ')
            .filter_map(|entry| entry.strip_prefix(asymmetric::V1A_PREFIX))
            .filter_map(asymmetric::decode_v1a)
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let content = asymmetric::signed_content(msg_id, timestamp, body);
        self.public_keys.iter().any(|key| {
            candidates
                .iter()
                .any(|signature| key.verifies(&content, signature))
        })
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

    /// A fixed `v1a` vector: the RFC 8032 test 1 key pair, and the body of
    /// the specification's signed-content example. The signature was
    /// computed with Python's `cryptography` 48.0.0 and checked here.
    const V1A_SIGNING_KEY: &str = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGg==";
    const V1A_PUBLIC_KEY: &str = "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    const V1A_ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    const V1A_TIMESTAMP: i64 = 1674087231;
    const V1A_BODY: &str = r#"{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52-5198-4599-803e-771906343485"}}"#;
    const V1A_SIGNATURE: &str = "v1a,pbpYBMlty2hExn4zt0UTGb6BaP2Vq5AfyzjB9GGV3x/wCJKd8UjOCf8Qhaji6TKY9C5eNMnlF0GG4udaO6B7Ag==";

    fn v1a_verifier(public_keys: Vec<PublicKey>) -> Verifier {
        Verifier::with_public_keys(Vec::new(), public_keys, DEFAULT_TOLERANCE)
    }

    fn verify_v1a_vector(
        verifier: &Verifier,
        signature: &str,
        body: &str,
    ) -> Result<(), VerifyError> {
        let timestamp = V1A_TIMESTAMP.to_string();
        verifier.verify(
            Some(V1A_ID),
            Some(&timestamp),
            Some(signature),
            body.as_bytes(),
            V1A_TIMESTAMP + 10,
        )
    }

    #[test]
    fn v1a_vector_signs() {
        let key = SigningKey::parse(V1A_SIGNING_KEY).unwrap();
        assert_eq!(key.public_key().to_string(), V1A_PUBLIC_KEY);
        let signature = key.sign_v1a(V1A_ID, V1A_TIMESTAMP, V1A_BODY.as_bytes());
        assert_eq!(signature, V1A_SIGNATURE);
    }

    #[test]
    fn v1a_vector_verifies() {
        let verifier = v1a_verifier(vec![PublicKey::parse(V1A_PUBLIC_KEY).unwrap()]);
        assert_eq!(
            verify_v1a_vector(&verifier, V1A_SIGNATURE, V1A_BODY),
            Ok(())
        );
    }

    #[test]
    fn v1a_rejects_tampered_body_and_wrong_key() {
        let public_key = PublicKey::parse(V1A_PUBLIC_KEY).unwrap();
        let verifier = v1a_verifier(vec![public_key]);
        let tampered = V1A_BODY.replace("contact.created", "contact.deleted");
        assert_eq!(
            verify_v1a_vector(&verifier, V1A_SIGNATURE, &tampered),
            Err(VerifyError::NoMatchingSignature)
        );

        let other = v1a_verifier(vec![SigningKey::generate().public_key()]);
        assert_eq!(
            verify_v1a_vector(&other, V1A_SIGNATURE, V1A_BODY),
            Err(VerifyError::NoMatchingSignature)
        );

        let no_public_keys = Verifier::new(vec![Secret::generate()], DEFAULT_TOLERANCE);
        assert_eq!(
            verify_v1a_vector(&no_public_keys, V1A_SIGNATURE, V1A_BODY),
            Err(VerifyError::NoMatchingSignature)
        );

        // A v1a signature presented as v1 must not match anything.
        let relabelled = V1A_SIGNATURE.replacen("v1a,", "v1,", 1);
        assert_eq!(
            verify_v1a_vector(&verifier, &relabelled, V1A_BODY),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn v1a_checks_timestamp_tolerance() {
        let key = SigningKey::generate();
        let verifier = v1a_verifier(vec![key.public_key()]);
        let signature = key.sign_v1a("msg_1", 1000, b"{}");
        assert_eq!(verify_one(&verifier, &signature, "{}", 1000), Ok(()));
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
    fn mixed_header_verifies_with_either_key() {
        let secret = Secret::generate();
        let signing_key = SigningKey::generate();
        let header = mixed_signature_header(
            std::slice::from_ref(&secret),
            std::slice::from_ref(&signing_key),
            "msg_1",
            1000,
            b"{}",
        );
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert!(entries[0].starts_with("v1,"), "{header}");
        assert!(entries[1].starts_with("v1a,"), "{header}");

        let by_secret = Verifier::new(vec![secret], DEFAULT_TOLERANCE);
        assert_eq!(verify_one(&by_secret, &header, "{}", 1000), Ok(()));
        let by_public_key = v1a_verifier(vec![signing_key.public_key()]);
        assert_eq!(verify_one(&by_public_key, &header, "{}", 1000), Ok(()));

        let strangers = Verifier::with_public_keys(
            vec![Secret::generate()],
            vec![SigningKey::generate().public_key()],
            DEFAULT_TOLERANCE,
        );
        assert_eq!(
            verify_one(&strangers, &header, "{}", 1000),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn verifier_debug_hides_secrets() {
        let secret = Secret::generate();
        let verifier = Verifier::with_public_keys(
            vec![secret.clone()],
            vec![PublicKey::parse(V1A_PUBLIC_KEY).unwrap()],
            DEFAULT_TOLERANCE,
        );
        let debug = format!("{verifier:?}");
        assert!(
            !debug.contains(&secret.expose()["whsec_".len()..]),
            "{debug}"
        );
        assert!(debug.contains(V1A_PUBLIC_KEY), "{debug}");
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
