//! Standard Webhooks asymmetric `v1a` signatures (ed25519).
//!
//! A `v1a` signature is `v1a,` followed by the padded standard base64 of the
//! 64-byte ed25519 signature of `{webhook-id}.{webhook-timestamp}.{body}`,
//! the same content that `v1` signs. Keys are written as `whsk_` (signing
//! key) or `whpk_` (public key) followed by padded standard base64. The
//! specification requires only a "standard ed25519 key pair", so the byte
//! layout follows the Svix server (svix/svix-webhooks): `whsk_` holds the
//! 64-byte key pair, the 32-byte seed followed by the 32-byte public key,
//! and `whpk_` holds the 32-byte public key. [`SigningKey::parse`] also
//! accepts a `whsk_` key of only the 32-byte seed.
//!
//! Source: the Standard Webhooks specification, `spec/standard-webhooks.md`
//! (section "Signature scheme"), and for the key layout
//! `server/svix-server/src/core/types/mod.rs` of svix/svix-webhooks.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, VerifyingKey};

/// Prefix of an ed25519 signing key in its text form.
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
/// Prefix of an ed25519 public key in its text form.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Identifier that starts every asymmetric signature.
pub const V1A_PREFIX: &str = "v1a,";

/// An ed25519 signing key for `v1a` signatures. It belongs to the sender
/// only. Its `Debug` output shows the public key, never the secret half.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
}

/// An ed25519 public key that a receiver trusts for `v1a` signatures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

/// An error from parsing a `whsk_` signing key. No message contains the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    #[error("ed25519 signing key does not start with \"whsk_\": generate a key pair with `floorwatch keys generate --v1a`")]
    MissingPrefix,
    #[error("ed25519 signing key is not valid base64 after the \"whsk_\" prefix: generate a key pair with `floorwatch keys generate --v1a`")]
    InvalidBase64,
    #[error("ed25519 signing key decodes to {len} bytes: use the 64-byte key pair (or its 32-byte seed) that `floorwatch keys generate --v1a` prints")]
    BadLength { len: usize },
    #[error("ed25519 signing key is corrupted: its last 32 bytes are not the public key of its first 32 bytes (generate a new pair with `floorwatch keys generate --v1a`)")]
    MismatchedPublicKey,
}

/// An error from parsing a `whpk_` public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    #[error("ed25519 public key does not start with \"whpk_\": use the public key line that `floorwatch keys generate --v1a` prints")]
    MissingPrefix,
    /// A `whsk_` signing key or a `whsec_` secret was given where a public
    /// key belongs. The value is left out of the message.
    #[error("text starting with \"{prefix}\" is a secret, not a public key: keep it with the sender and configure the matching \"whpk_\" public key instead")]
    SecretGiven { prefix: &'static str },
    #[error("ed25519 public key is not valid base64 after the \"whpk_\" prefix")]
    InvalidBase64,
    #[error("ed25519 public key decodes to {len} bytes: a \"whpk_\" key is 32 bytes")]
    BadLength { len: usize },
    #[error("ed25519 public key is not a valid curve point")]
    InvalidPoint,
    /// A small-order key, for which forged signatures are easy to make.
    #[error("ed25519 public key is a weak (small-order) key: generate a new pair with `floorwatch keys generate --v1a`")]
    WeakKey,
}

impl SigningKey {
    /// Parses `whsk_` followed by standard base64 of the 64-byte key pair
    /// or of the 32-byte seed. The prefix is required, because it keeps a
    /// signing key apart from a `whsec_` secret and a `whpk_` public key.
    pub fn parse(text: &str) -> Result<Self, SigningKeyError> {
        let encoded = text
            .trim()
            .strip_prefix(SIGNING_KEY_PREFIX)
            .ok_or(SigningKeyError::MissingPrefix)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SigningKeyError::InvalidBase64)?;
        let key = if let Ok(pair) = <[u8; 64]>::try_from(bytes.as_slice()) {
            // `from_keypair_bytes` rejects a pair whose public half does not
            // belong to its seed.
            ed25519_dalek::SigningKey::from_keypair_bytes(&pair)
                .map_err(|_| SigningKeyError::MismatchedPublicKey)?
        } else if let Ok(seed) = <[u8; 32]>::try_from(bytes.as_slice()) {
            ed25519_dalek::SigningKey::from_bytes(&seed)
        } else {
            return Err(SigningKeyError::BadLength { len: bytes.len() });
        };
        Ok(Self { key })
    }

    /// Generates a new key pair from the operating system's random source.
    pub fn generate() -> Self {
        Self {
            key: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// Returns the text form, `whsk_` followed by base64 of the 64-byte key
    /// pair. This reveals the key: write it only where the sender reads it.
    pub fn expose(&self) -> String {
        format!(
            "{SIGNING_KEY_PREFIX}{}",
            STANDARD.encode(self.key.to_keypair_bytes())
        )
    }

    /// Returns the public key that verifies this key's signatures.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: self.key.verifying_key(),
        }
    }

    /// Returns the `v1a,` signature of one message.
    pub fn sign_v1a(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let signature = self.key.sign(&signed_content(msg_id, timestamp, body));
        format!("{V1A_PREFIX}{}", STANDARD.encode(signature.to_bytes()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Parses `whpk_` followed by standard base64 of the 32-byte key. The
    /// prefix is required, so that a `whsk_` signing key or a `whsec_`
    /// secret pasted here is named as such.
    pub fn parse(text: &str) -> Result<Self, PublicKeyError> {
        let text = text.trim();
        for prefix in [SIGNING_KEY_PREFIX, super::SECRET_PREFIX] {
            if text.starts_with(prefix) {
                return Err(PublicKeyError::SecretGiven { prefix });
            }
        }
        let encoded = text
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(PublicKeyError::MissingPrefix)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| PublicKeyError::InvalidBase64)?;
        let bytes = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| PublicKeyError::BadLength { len: bytes.len() })?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| PublicKeyError::InvalidPoint)?;
        if key.is_weak() {
            return Err(PublicKeyError::WeakKey);
        }
        Ok(Self { key })
    }

    /// Checks `signature` over the content of one message with
    /// `verify_strict`, which also rejects non-canonical signatures.
    pub(super) fn verifies(&self, content: &[u8], signature: &Signature) -> bool {
        self.key.verify_strict(content, signature).is_ok()
    }
}

/// Writes the text form, `whpk_` followed by base64 of the 32-byte key.
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PUBLIC_KEY_PREFIX}{}",
            STANDARD.encode(self.key.as_bytes())
        )
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// Returns the signed content, `{msg_id}.{timestamp}.{body}`.
pub(super) fn signed_content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{msg_id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}

/// Decodes the base64 after `v1a,` into a signature. Returns `None` for
/// invalid base64 or a length other than 64 bytes.
pub(super) fn decode_v1a(encoded: &str) -> Option<Signature> {
    let bytes = STANDARD.decode(encoded).ok()?;
    let bytes = <[u8; 64]>::try_from(bytes.as_slice()).ok()?;
    Some(Signature::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 section 7.1, test 1: the seed, then its public key.
    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn from_hex(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fixed_key() -> SigningKey {
        let mut pair = from_hex(RFC8032_SEED);
        pair.extend(from_hex(RFC8032_PUBLIC));
        SigningKey::parse(&format!("whsk_{}", STANDARD.encode(pair))).unwrap()
    }

    #[test]
    fn fixed_key_text_forms() {
        let key = fixed_key();
        assert_eq!(
            key.public_key().to_string(),
            format!("whpk_{}", STANDARD.encode(from_hex(RFC8032_PUBLIC)))
        );
        let seed_only = format!("whsk_{}", STANDARD.encode(from_hex(RFC8032_SEED)));
        assert_eq!(SigningKey::parse(&seed_only), Ok(key.clone()));
        assert_eq!(SigningKey::parse(&key.expose()), Ok(key));
    }

    #[test]
    fn generated_key_round_trips() {
        let key = SigningKey::generate();
        assert!(key.expose().starts_with("whsk_"));
        assert_eq!(SigningKey::parse(&key.expose()), Ok(key.clone()));
        let public = key.public_key();
        assert_eq!(PublicKey::parse(&public.to_string()), Ok(public));
        assert_ne!(SigningKey::generate(), key);
    }

    #[test]
    fn debug_hides_signing_key() {
        let key = fixed_key();
        let debug = format!("{key:?}");
        let secret_base64 = key.expose()["whsk_".len()..].to_owned();
        assert!(!debug.contains(&secret_base64), "{debug}");
        assert!(!debug.contains(&secret_base64[..43]), "{debug}");
        assert!(debug.contains(&key.public_key().to_string()), "{debug}");
    }

    #[test]
    fn signing_key_parse_errors() {
        let pair = fixed_key().key.to_keypair_bytes();
        assert_eq!(
            SigningKey::parse(&STANDARD.encode(pair)),
            Err(SigningKeyError::MissingPrefix)
        );
        assert_eq!(
            SigningKey::parse("whsk_!!"),
            Err(SigningKeyError::InvalidBase64)
        );
        assert_eq!(
            SigningKey::parse("whsk_AAAA"),
            Err(SigningKeyError::BadLength { len: 3 })
        );
        let mut mismatched = pair;
        mismatched[40] ^= 1;
        assert_eq!(
            SigningKey::parse(&format!("whsk_{}", STANDARD.encode(mismatched))),
            Err(SigningKeyError::MismatchedPublicKey)
        );
    }

    #[test]
    fn public_key_parse_errors() {
        let key = fixed_key();
        assert_eq!(
            PublicKey::parse(&key.expose()),
            Err(PublicKeyError::SecretGiven { prefix: "whsk_" })
        );
        assert_eq!(
            PublicKey::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
            Err(PublicKeyError::SecretGiven { prefix: "whsec_" })
        );
        assert_eq!(
            PublicKey::parse(&STANDARD.encode(from_hex(RFC8032_PUBLIC))),
            Err(PublicKeyError::MissingPrefix)
        );
        assert_eq!(
            PublicKey::parse("whpk_!!"),
            Err(PublicKeyError::InvalidBase64)
        );
        assert_eq!(
            PublicKey::parse("whpk_AAAA"),
            Err(PublicKeyError::BadLength { len: 3 })
        );
        // The identity point (y = 1) has order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            PublicKey::parse(&format!("whpk_{}", STANDARD.encode(identity))),
            Err(PublicKeyError::WeakKey)
        );
        // y = 2 is not the y-coordinate of any point on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(
            PublicKey::parse(&format!("whpk_{}", STANDARD.encode(off_curve))),
            Err(PublicKeyError::InvalidPoint)
        );
    }

    #[test]
    fn decode_v1a_checks_length() {
        assert!(decode_v1a(&STANDARD.encode([0u8; 64])).is_some());
        assert!(decode_v1a(&STANDARD.encode([0u8; 63])).is_none());
        assert!(decode_v1a("!!").is_none());
    }
}
