//! Property tests of the two parsers that see untrusted input first: the
//! reading payload parser and the Standard Webhooks verifier. The fuzz
//! targets in `fuzz/` check the same properties with coverage guidance.

use chrono::{DateTime, TimeDelta, Utc};
use floorwatch_protocol::reading::{MAX_FUTURE_SKEW_SECS, MAX_TEMPERATURE_C, MIN_TEMPERATURE_C};
use floorwatch_protocol::webhook::DEFAULT_TOLERANCE;
use floorwatch_protocol::{parse_payload, Reading, Secret, SigningKey, Verifier, VerifyError};
use proptest::prelude::*;

const SITE: &str = "plant-1";
const SENSOR: &str = "oven-1";

/// Every code that `Rejection::code` returns.
const REJECTION_CODES: [&str; 11] = [
    "invalid_topic_id",
    "too_large",
    "empty",
    "not_utf8",
    "invalid_json",
    "no_measurement",
    "not_finite",
    "impossible_value",
    "future_time",
    "mismatch",
    "unsupported_version",
];

fn received_at() -> DateTime<Utc> {
    "2026-12-04T12:00:00Z".parse().unwrap()
}

/// Checks the invariants of an accepted reading.
fn check_accepted(reading: &Reading) -> Result<(), TestCaseError> {
    prop_assert_eq!(reading.version, 1);
    prop_assert_eq!(reading.site.as_str(), SITE);
    prop_assert_eq!(reading.sensor.as_str(), SENSOR);
    if let Some(celsius) = reading.temperature_c {
        prop_assert!(celsius.is_finite(), "temperature {}", celsius);
        prop_assert!(
            (MIN_TEMPERATURE_C..=MAX_TEMPERATURE_C).contains(&celsius),
            "temperature {}",
            celsius
        );
    }
    if let Some(humidity) = reading.humidity_pct {
        prop_assert!(humidity.is_finite(), "humidity {}", humidity);
        prop_assert!((0.0..=100.0).contains(&humidity), "humidity {}", humidity);
    }
    let ahead = reading.time - received_at();
    prop_assert!(ahead <= TimeDelta::seconds(MAX_FUTURE_SKEW_SECS + 1));
    Ok(())
}

/// Parses `payload` and checks that it is accepted with valid values or
/// rejected with a known code and a non-empty reason.
fn check_payload(payload: &[u8]) -> Result<(), TestCaseError> {
    match parse_payload(SITE, SENSOR, payload, received_at()) {
        Ok(reading) => check_accepted(&reading),
        Err(rejection) => {
            prop_assert!(
                REJECTION_CODES.contains(&rejection.code()),
                "unknown code {}",
                rejection.code()
            );
            prop_assert!(!rejection.to_string().is_empty());
            Ok(())
        }
    }
}

/// Generates `"key":value` members of a reading object, valid or not.
fn json_field() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        any::<f64>().prop_map(|value| format!("{value:?}")),
        any::<i64>().prop_map(|value| value.to_string()),
        Just("1e999".to_owned()),
        Just("-1e999".to_owned()),
        Just("NaN".to_owned()),
        Just("null".to_owned()),
        Just("\"31.5\"".to_owned()),
    ];
    let key = prop_oneof![
        Just("v"),
        Just("site"),
        Just("sensor"),
        Just("seq"),
        Just("time"),
        Just("temperature_c"),
        Just("humidity_pct"),
        Just("quality"),
        Just("Temperature"),
        Just("name"),
        Just("unknown"),
    ];
    let text = prop_oneof![
        Just("\"plant-1\"".to_owned()),
        Just("\"oven-1\"".to_owned()),
        Just("\"ok\"".to_owned()),
        Just("\"checksum\"".to_owned()),
        Just("\"2026-12-04T11:59:00Z\"".to_owned()),
        Just("\"2026-12-04T12:10:00Z\"".to_owned()),
        Just("\"+262142-12-31T23:59:59Z\"".to_owned()),
        "\"[^\"\\\\]{0,12}\"",
    ];
    (key, prop_oneof![number, text]).prop_map(|(key, value)| format!("\"{key}\":{value}"))
}

/// Returns the payload in the form `form` picks, carrying `celsius`.
fn payload_in_form(form: u8, celsius: f64) -> String {
    match form % 4 {
        0 => format!("{celsius}"),
        1 => format!("{{\"Temperature\": {celsius:?}, \"name\": \"{SENSOR}\"}}"),
        2 => format!(
            "{{\"v\":1,\"site\":\"{SITE}\",\"sensor\":\"{SENSOR}\",\"seq\":1,\
             \"time\":\"2026-12-04T11:59:00Z\",\"temperature_c\":{celsius:?}}}"
        ),
        _ => format!("{{\"humidity_pct\": 50, \"temperature_c\": {celsius:?}}}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics_on_bytes(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_payload(&payload)?;
    }

    #[test]
    fn parser_never_panics_on_text(payload in "\\PC{0,64}") {
        check_payload(payload.as_bytes())?;
    }

    #[test]
    fn parser_checks_json_objects(fields in proptest::collection::vec(json_field(), 0..8)) {
        let payload = format!("{{{}}}", fields.join(","));
        check_payload(payload.as_bytes())?;
    }

    #[test]
    fn parser_keeps_in_range_values(form in any::<u8>(), celsius in MIN_TEMPERATURE_C..=MAX_TEMPERATURE_C) {
        let payload = payload_in_form(form, celsius);
        let reading = parse_payload(SITE, SENSOR, payload.as_bytes(), received_at());
        prop_assert!(reading.is_ok(), "{} was rejected: {:?}", payload, reading);
        let parsed = reading.unwrap().temperature_c.unwrap();
        // serde_json may round the last bit of a float, so allow one ulp.
        prop_assert!((parsed - celsius).abs() <= celsius.abs() * f64::EPSILON, "{} became {}", celsius, parsed);
    }

    #[test]
    fn parser_rejects_out_of_range_values(form in any::<u8>(), celsius in any::<f64>()) {
        prop_assume!(!(MIN_TEMPERATURE_C..=MAX_TEMPERATURE_C).contains(&celsius));
        let payload = payload_in_form(form, celsius);
        let rejection = parse_payload(SITE, SENSOR, payload.as_bytes(), received_at())
            .expect_err("an out-of-range value is rejected");
        // JSON has no NaN or infinity literal, so those fail as invalid JSON
        // in the object forms.
        let expected: &[&str] = match (celsius.is_finite(), form % 4) {
            (true, _) => &["impossible_value"],
            (false, 0) => &["not_finite"],
            (false, _) => &["invalid_json"],
        };
        prop_assert!(expected.contains(&rejection.code()), "{} gave {:?}", payload, rejection);
    }
}

fn v1_secret() -> Secret {
    Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap()
}

fn v1a_key() -> SigningKey {
    SigningKey::parse(
        "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGg==",
    )
    .unwrap()
}

fn verifier() -> Verifier {
    Verifier::with_public_keys(
        vec![v1_secret()],
        vec![v1a_key().public_key()],
        DEFAULT_TOLERANCE,
    )
}

/// A signed delivery: id, timestamp, signature header and body.
#[derive(Debug, Clone)]
struct Delivery {
    msg_id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    now: i64,
}

impl Delivery {
    fn verify(&self) -> Result<(), VerifyError> {
        verifier().verify(
            Some(&self.msg_id),
            Some(&self.timestamp),
            Some(&self.signature),
            &self.body,
            self.now,
        )
    }
}

/// Signed deliveries with `v1` (`asymmetric` false) or `v1a` signatures,
/// received up to a minute after they were signed.
fn delivery(asymmetric: bool) -> impl Strategy<Value = Delivery> {
    (
        "[A-Za-z0-9_-]{1,40}",
        1_000_000_000i64..4_000_000_000,
        proptest::collection::vec(any::<u8>(), 0..512),
        0i64..60,
    )
        .prop_map(move |(msg_id, timestamp, body, delay)| {
            let signature = if asymmetric {
                v1a_key().sign_v1a(&msg_id, timestamp, &body)
            } else {
                v1_secret().sign(&msg_id, timestamp, &body)
            };
            Delivery {
                msg_id,
                timestamp: timestamp.to_string(),
                signature,
                body,
                now: timestamp + delay,
            }
        })
}

/// Replaces the byte at `index % text.len()` of an ASCII string with another
/// printable ASCII byte chosen by `offset`.
fn change_ascii_byte(text: &str, index: usize, offset: u8) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let position = index % bytes.len();
    let old = bytes[position];
    // Printable ASCII is the 95 bytes 0x20..=0x7e, so a shift of 1 to 94
    // modulo 95 always gives another printable byte.
    let shift = 1 + offset % 94;
    bytes[position] = 0x20 + (old - 0x20 + shift) % 95;
    String::from_utf8(bytes).expect("printable ASCII")
}

// ed25519 is slow in unoptimized test builds, so these run fewer cases; the
// `webhook_verify` fuzz target runs millions.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn verify_accepts_what_was_signed(delivery in any::<bool>().prop_flat_map(delivery)) {
        prop_assert_eq!(delivery.verify(), Ok(()));
    }

    #[test]
    fn verify_rejects_changed_body(mut delivery in any::<bool>().prop_flat_map(delivery), index in any::<usize>(), flip in 1u8..=255) {
        prop_assume!(!delivery.body.is_empty());
        let position = index % delivery.body.len();
        delivery.body[position] ^= flip;
        prop_assert_eq!(delivery.verify(), Err(VerifyError::NoMatchingSignature));
    }

    #[test]
    fn verify_rejects_changed_headers(mut delivery in any::<bool>().prop_flat_map(delivery), which in 0u8..3, index in any::<usize>(), offset in any::<u8>()) {
        match which {
            0 => delivery.msg_id = change_ascii_byte(&delivery.msg_id, index, offset),
            1 => delivery.timestamp = change_ascii_byte(&delivery.timestamp, index, offset),
            _ => delivery.signature = change_ascii_byte(&delivery.signature, index, offset),
        }
        let result = delivery.verify();
        prop_assert!(result.is_err(), "{:?} verified", delivery);
        // A changed timestamp may also fall outside the tolerance or stop
        // being a number. Any other change leaves only the signature wrong.
        if which != 1 {
            prop_assert_eq!(result, Err(VerifyError::NoMatchingSignature));
        }
    }

    #[test]
    fn verify_never_panics_on_arbitrary_headers(
        msg_id in proptest::option::of("\\PC{0,40}"),
        timestamp in proptest::option::of(prop_oneof!["[-+ 0-9]{0,24}", any::<i64>().prop_map(|value| value.to_string())]),
        signature in proptest::option::of("(v1a?,[A-Za-z0-9+/=]{0,90} ?){0,4}"),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        now in any::<i64>(),
    ) {
        let result = verifier().verify(msg_id.as_deref(), timestamp.as_deref(), signature.as_deref(), &body, now);
        prop_assert!(result.is_err(), "an unsigned delivery verified");
    }
}

#[test]
fn verify_handles_extreme_clock_and_timestamp() {
    // With `now` at -1, `now - timestamp` is i64::MIN, which has no negation.
    let result = verifier().verify(
        Some("msg_1"),
        Some(&i64::MAX.to_string()),
        Some("v1,AAAA"),
        b"{}",
        -1,
    );
    assert!(
        matches!(result, Err(VerifyError::TimestampTooNew { .. })),
        "{result:?}"
    );
    let result = verifier().verify(
        Some("msg_1"),
        Some(&i64::MIN.to_string()),
        Some("v1,AAAA"),
        b"{}",
        i64::MAX,
    );
    assert!(
        matches!(result, Err(VerifyError::TimestampTooOld { .. })),
        "{result:?}"
    );
}
