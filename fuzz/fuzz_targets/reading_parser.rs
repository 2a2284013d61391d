//! Feeds arbitrary bytes to the reading payload parser as if they arrived
//! on `floorwatch/plant-1/oven-1/reading`. An accepted reading must carry
//! finite, physically possible values, and a rejection must carry a known
//! code.

#![no_main]

use chrono::{DateTime, TimeDelta};
use floorwatch_protocol::parse_payload;
use floorwatch_protocol::reading::{MAX_FUTURE_SKEW_SECS, MAX_TEMPERATURE_C, MIN_TEMPERATURE_C};
use libfuzzer_sys::fuzz_target;

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

fuzz_target!(|payload: &[u8]| {
    // 2026-12-04T12:00:00Z, a fixed receive time so that runs repeat.
    let received_at = DateTime::from_timestamp(1_796_385_600, 0).unwrap();
    match parse_payload("plant-1", "oven-1", payload, received_at) {
        Ok(reading) => {
            assert_eq!(reading.site.as_str(), "plant-1");
            assert_eq!(reading.sensor.as_str(), "oven-1");
            if let Some(celsius) = reading.temperature_c {
                assert!(
                    (MIN_TEMPERATURE_C..=MAX_TEMPERATURE_C).contains(&celsius),
                    "accepted temperature {celsius}"
                );
            }
            if let Some(humidity) = reading.humidity_pct {
                assert!(
                    (0.0..=100.0).contains(&humidity),
                    "accepted humidity {humidity}"
                );
            }
            let ahead = reading.time - received_at;
            assert!(ahead <= TimeDelta::seconds(MAX_FUTURE_SKEW_SECS + 1));
            // The canonical form of an accepted reading parses again.
            let json = reading.to_json();
            assert_eq!(
                parse_payload("plant-1", "oven-1", &json, received_at)
                    .map(|again| again.temperature_c.is_some()),
                Ok(reading.temperature_c.is_some())
            );
        }
        Err(rejection) => {
            assert!(
                REJECTION_CODES.contains(&rejection.code()),
                "unknown code {}",
                rejection.code()
            );
            assert!(!rejection.to_string().is_empty());
        }
    }
});
