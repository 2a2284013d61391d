//! Feeds arbitrary headers and bodies to the Standard Webhooks verifier,
//! which trusts one `v1` secret and one `v1a` public key. In the signing
//! modes the input is first signed with the matching key, so a delivery
//! within the tolerance must verify and any changed body byte must not.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use floorwatch_protocol::webhook::DEFAULT_TOLERANCE;
use floorwatch_protocol::{Secret, SigningKey, Verifier, VerifyError};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Mode {
    /// The headers as given.
    Raw,
    /// The headers with a `v1` signature of the input appended.
    SignV1,
    /// The headers with a `v1a` signature of the input appended.
    SignV1a,
    /// A `v1` or `v1a` signature of the input, and one body byte changed.
    SignThenChangeBody { v1a: bool, index: u16, flip: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    msg_id: Option<&'a str>,
    timestamp: Option<&'a str>,
    signature: Option<&'a str>,
    body: &'a [u8],
    now: i64,
    mode: Mode,
}

struct Keys {
    secret: Secret,
    signing_key: SigningKey,
    verifier: Verifier,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let secret = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let signing_key = SigningKey::parse(
            "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGg==",
        )
        .unwrap();
        let verifier = Verifier::with_public_keys(
            vec![secret.clone()],
            vec![signing_key.public_key()],
            DEFAULT_TOLERANCE,
        );
        Keys {
            secret,
            signing_key,
            verifier,
        }
    })
}

/// Returns the signature header with a signature of the input appended,
/// or `None` when the input has no id or no integer timestamp to sign.
fn signed_header(input: &Input<'_>, v1a: bool) -> Option<(String, i64)> {
    let msg_id = input.msg_id?;
    let timestamp: i64 = input.timestamp?.trim().parse().ok()?;
    let keys = keys();
    let signature = if v1a {
        keys.signing_key.sign_v1a(msg_id, timestamp, input.body)
    } else {
        keys.secret.sign(msg_id, timestamp, input.body)
    };
    // Other entries in the header must not stop a valid one from matching.
    let header = match input.signature {
        Some(others) => format!("{others} {signature}"),
        None => signature,
    };
    Some((header, timestamp))
}

fn within_tolerance(now: i64, timestamp: i64) -> bool {
    let tolerance = DEFAULT_TOLERANCE.as_secs() as i64;
    now.saturating_sub(timestamp) <= tolerance && timestamp.saturating_sub(now) <= tolerance
}

fuzz_target!(|input: Input<'_>| {
    let verifier = &keys().verifier;
    let verify = |signature: Option<&str>, body: &[u8]| {
        verifier.verify(input.msg_id, input.timestamp, signature, body, input.now)
    };
    match input.mode {
        Mode::Raw => {
            // Only a forged signature could verify unsigned input.
            assert!(verify(input.signature, input.body).is_err());
        }
        Mode::SignV1 | Mode::SignV1a => {
            let v1a = matches!(input.mode, Mode::SignV1a);
            let Some((header, timestamp)) = signed_header(&input, v1a) else {
                return;
            };
            let result = verify(Some(&header), input.body);
            if within_tolerance(input.now, timestamp) {
                assert_eq!(result, Ok(()), "a signed delivery failed to verify");
            } else {
                assert!(
                    matches!(
                        result,
                        Err(VerifyError::TimestampTooOld { .. }
                            | VerifyError::TimestampTooNew { .. })
                    ),
                    "{result:?}"
                );
            }
        }
        Mode::SignThenChangeBody { v1a, index, flip } => {
            if input.body.is_empty() || flip == 0 {
                return;
            }
            let Some((header, _)) = signed_header(&input, v1a) else {
                return;
            };
            let mut body = input.body.to_vec();
            let position = usize::from(index) % body.len();
            body[position] ^= flip;
            assert!(
                verify(Some(&header), &body).is_err(),
                "a changed body verified"
            );
        }
    }
});
