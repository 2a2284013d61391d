//! The reading format and the lenient payload parser the bridge runs on
//! every message received on a reading topic.
//!
//! The canonical form (version 1) is a JSON object:
//!
//! ```json
//! {"v":1,"site":"plant-1","sensor":"oven-1","seq":42,
//!  "time":"2026-12-04T15:54:31.123Z","temperature_c":31.5,
//!  "humidity_pct":40.2,"quality":"ok"}
//! ```
//!
//! Two other shapes are accepted and mapped onto it: a bare number
//! (`31.5`, read as °C) and the Node-RED tutorial's
//! `{"Temperature": 31.5, "name": "oven-1"}`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::Id;

/// Largest payload the parser looks at; larger ones are rejected unread.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// Current version of the canonical reading format.
pub const READING_VERSION: u32 = 1;

/// How far a reading's time may be ahead of the receiver's clock. A reading
/// from further in the future would make every later reading of its sensor
/// look out of order, so it is rejected instead.
pub const MAX_FUTURE_SKEW_SECS: i64 = 5 * 60;

/// Lowest temperature a reading may carry: absolute zero.
pub const MIN_TEMPERATURE_C: f64 = -273.15;
/// Highest temperature a reading may carry. No plant sensor reports more, so
/// a larger value is a unit or encoding error.
pub const MAX_TEMPERATURE_C: f64 = 10_000.0;

/// Quality of a reading: valid, or the reason the sensor produced no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// The value was read and passed the sensor's own checks.
    #[default]
    Ok,
    /// The sensor's frame failed its checksum.
    Checksum,
    /// The sensor did not respond in time.
    Timeout,
    /// The value is outside the sensor's physical range.
    OutOfRange,
}

impl Quality {
    /// Returns true for [`Quality::Ok`].
    pub fn is_ok(self) -> bool {
        self == Quality::Ok
    }
}

/// One reading of one sensor, in the canonical form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Format version, currently 1.
    #[serde(rename = "v", default = "default_version")]
    pub version: u32,
    pub site: Id,
    pub sensor: Id,
    /// Sequence number assigned by the edge agent; absent for bare numbers
    /// and tutorial payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Sensor time in UTC.
    pub time: DateTime<Utc>,
    /// Temperature in degrees Celsius.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
    /// Relative humidity in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub humidity_pct: Option<f64>,
    #[serde(default)]
    pub quality: Quality,
}

fn default_version() -> u32 {
    READING_VERSION
}

impl Reading {
    /// Creates a reading of a temperature with quality `ok`.
    pub fn temperature(site: Id, sensor: Id, time: DateTime<Utc>, celsius: f64) -> Self {
        Self {
            version: READING_VERSION,
            site,
            sensor,
            seq: None,
            time,
            temperature_c: Some(celsius),
            humidity_pct: None,
            quality: Quality::Ok,
        }
    }

    /// Serializes the reading to its canonical JSON form.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).expect("reading serializes")
    }
}

/// Reason a payload was not accepted as a reading. The `Display` text is the
/// reason published on the `rejected` topic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("topic level {level:?} is not a valid {kind} id: {source}")]
    InvalidTopicId {
        kind: &'static str,
        level: String,
        source: crate::id::IdError,
    },
    #[error("payload is {size} bytes: readings are limited to {MAX_PAYLOAD_BYTES} bytes")]
    TooLarge { size: usize },
    #[error("payload is empty: send a number, or a JSON object with \"temperature_c\"")]
    Empty,
    #[error("payload is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
    #[error(
        "payload is not a number or a JSON reading: {detail} (send e.g. 31.5 or \
         {{\"temperature_c\": 31.5}})"
    )]
    InvalidJson { detail: String },
    #[error("reading has no measurement: include \"temperature_c\" or \"humidity_pct\"")]
    NoMeasurement,
    #[error("{field} is {value}: measurements must be finite numbers")]
    NotFinite { field: &'static str, value: String },
    #[error("{field} is {payload:?} in the payload but {topic:?} in the topic: make them match")]
    Mismatch {
        field: &'static str,
        payload: String,
        topic: String,
    },
    #[error("reading format version {version} is not supported: this bridge reads version {READING_VERSION}")]
    UnsupportedVersion { version: u32 },
    #[error(
        "time is {ahead_secs} s ahead of the receiver's clock (limit {MAX_FUTURE_SKEW_SECS} s): \
         set the sensor's clock (NTP) or omit \"time\""
    )]
    FutureTime { ahead_secs: i64 },
    #[error("{field} is {value}: physically impossible, the accepted range is {min} to {max}")]
    Impossible {
        field: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
}

impl Rejection {
    /// Returns a short stable code for statistics and the `rejected` topic.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::InvalidTopicId { .. } => "invalid_topic_id",
            Rejection::TooLarge { .. } => "too_large",
            Rejection::Empty => "empty",
            Rejection::NotUtf8 { .. } => "not_utf8",
            Rejection::InvalidJson { .. } => "invalid_json",
            Rejection::NoMeasurement => "no_measurement",
            Rejection::NotFinite { .. } => "not_finite",
            Rejection::Mismatch { .. } => "mismatch",
            Rejection::UnsupportedVersion { .. } => "unsupported_version",
            Rejection::FutureTime { .. } => "future_time",
            Rejection::Impossible { .. } => "impossible_value",
        }
    }
}

/// The canonical object with every field optional, so that one pass
/// recognises both the canonical and the tutorial shape.
#[derive(Deserialize)]
struct LooseReading {
    v: Option<u32>,
    site: Option<String>,
    sensor: Option<String>,
    seq: Option<u64>,
    time: Option<DateTime<Utc>>,
    temperature_c: Option<f64>,
    humidity_pct: Option<f64>,
    quality: Option<Quality>,
    #[serde(rename = "Temperature")]
    tutorial_temperature: Option<f64>,
    #[serde(rename = "name")]
    tutorial_name: Option<String>,
}

/// Parses a payload received on the reading topic of `site`/`sensor`.
///
/// `received_at` is used as the sensor time when the payload carries
/// none. Site and sensor in the payload, when present, must match the topic.
pub fn parse_payload(
    site: &str,
    sensor: &str,
    payload: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Reading, Rejection> {
    let site = Id::parse(site).map_err(|source| Rejection::InvalidTopicId {
        kind: "site",
        level: site.to_owned(),
        source,
    })?;
    let sensor = Id::parse(sensor).map_err(|source| Rejection::InvalidTopicId {
        kind: "sensor",
        level: sensor.to_owned(),
        source,
    })?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Rejection::TooLarge {
            size: payload.len(),
        });
    }
    let text = std::str::from_utf8(payload).map_err(|e| Rejection::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(Rejection::Empty);
    }

    if let Ok(celsius) = text.parse::<f64>() {
        check_finite("value", celsius)?;
        check_range("value", celsius, MIN_TEMPERATURE_C, MAX_TEMPERATURE_C)?;
        return Ok(Reading::temperature(site, sensor, received_at, celsius));
    }

    let loose: LooseReading = serde_json::from_str(text).map_err(|e| Rejection::InvalidJson {
        detail: e.to_string(),
    })?;
    from_loose(site, sensor, loose, received_at)
}

fn from_loose(
    site: Id,
    sensor: Id,
    loose: LooseReading,
    received_at: DateTime<Utc>,
) -> Result<Reading, Rejection> {
    if let Some(version) = loose.v {
        if version != READING_VERSION {
            return Err(Rejection::UnsupportedVersion { version });
        }
    }
    check_match("site", loose.site.as_deref(), &site)?;
    check_match("sensor", loose.sensor.as_deref(), &sensor)?;
    check_match("name", loose.tutorial_name.as_deref(), &sensor)?;

    let temperature_c = loose.temperature_c.or(loose.tutorial_temperature);
    let quality = loose.quality.unwrap_or_default();
    if let Some(value) = temperature_c {
        check_finite("temperature_c", value)?;
        check_range("temperature_c", value, MIN_TEMPERATURE_C, MAX_TEMPERATURE_C)?;
    }
    if let Some(value) = loose.humidity_pct {
        check_finite("humidity_pct", value)?;
        check_range("humidity_pct", value, 0.0, 100.0)?;
    }
    let time = loose.time.unwrap_or(received_at);
    let ahead_secs = (time - received_at).num_seconds();
    if ahead_secs > MAX_FUTURE_SKEW_SECS {
        return Err(Rejection::FutureTime { ahead_secs });
    }
    if temperature_c.is_none() && loose.humidity_pct.is_none() && quality.is_ok() {
        return Err(Rejection::NoMeasurement);
    }

    Ok(Reading {
        version: READING_VERSION,
        site,
        sensor,
        seq: loose.seq,
        time,
        temperature_c,
        humidity_pct: loose.humidity_pct,
        quality,
    })
}

fn check_match(field: &'static str, payload: Option<&str>, topic: &Id) -> Result<(), Rejection> {
    match payload {
        Some(value) if value != topic.as_str() => Err(Rejection::Mismatch {
            field,
            payload: value.chars().take(80).collect(),
            topic: topic.to_string(),
        }),
        _ => Ok(()),
    }
}

fn check_range(field: &'static str, value: f64, min: f64, max: f64) -> Result<(), Rejection> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Rejection::Impossible {
            field,
            value,
            min,
            max,
        })
    }
}

fn check_finite(field: &'static str, value: f64) -> Result<(), Rejection> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Rejection::NotFinite {
            field,
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-04T12:00:00Z".parse().unwrap()
    }

    fn parse(payload: &str) -> Result<Reading, Rejection> {
        parse_payload("plant-1", "oven-1", payload.as_bytes(), now())
    }

    #[test]
    fn canonical_round_trips() {
        let mut reading = Reading::temperature(
            Id::parse("plant-1").unwrap(),
            Id::parse("oven-1").unwrap(),
            "2026-12-04T11:59:58.250Z".parse().unwrap(),
            31.5,
        );
        reading.seq = Some(7);
        reading.humidity_pct = Some(40.0);
        let json = String::from_utf8(reading.to_json()).unwrap();
        assert_eq!(parse(&json), Ok(reading));
    }

    #[test]
    fn bare_number_is_celsius_at_receive_time() {
        let reading = parse(" 31.5\n").unwrap();
        assert_eq!(reading.temperature_c, Some(31.5));
        assert_eq!(reading.time, now());
        assert_eq!(reading.seq, None);
        assert_eq!(reading.sensor.as_str(), "oven-1");
    }

    #[test]
    fn tutorial_shape_maps_to_canonical() {
        let reading = parse(r#"{"Temperature": 18.25, "name": "oven-1"}"#).unwrap();
        assert_eq!(reading.temperature_c, Some(18.25));
        assert_eq!(reading.quality, Quality::Ok);
    }

    #[test]
    fn tutorial_name_must_match_topic() {
        assert!(matches!(
            parse(r#"{"Temperature": 18.25, "name": "oven-2"}"#),
            Err(Rejection::Mismatch { field: "name", .. })
        ));
    }

    #[test]
    fn rejects_malformed_payloads() {
        assert_eq!(parse(""), Err(Rejection::Empty));
        assert!(matches!(parse("hot"), Err(Rejection::InvalidJson { .. })));
        assert!(matches!(
            parse("{\"temperature_c\": \"31\"}"),
            Err(Rejection::InvalidJson { .. })
        ));
        assert_eq!(parse("{}"), Err(Rejection::NoMeasurement));
        assert!(matches!(parse("NaN"), Err(Rejection::NotFinite { .. })));
        assert!(matches!(parse("inf"), Err(Rejection::NotFinite { .. })));
        assert!(matches!(parse("1e999"), Err(Rejection::NotFinite { .. })));
        assert!(matches!(parse("[1,2]"), Err(Rejection::InvalidJson { .. })));
        assert_eq!(
            parse(r#"{"v": 2, "temperature_c": 1}"#),
            Err(Rejection::UnsupportedVersion { version: 2 })
        );
        assert!(matches!(
            parse(r#"{"site": "plant-2", "temperature_c": 1}"#),
            Err(Rejection::Mismatch { field: "site", .. })
        ));
    }

    #[test]
    fn rejects_impossible_values() {
        for payload in [
            "-500",
            "1.7976931348623157e308",
            r#"{"temperature_c": -274}"#,
        ] {
            assert!(
                matches!(parse(payload), Err(Rejection::Impossible { .. })),
                "{payload} was accepted"
            );
        }
        assert!(matches!(
            parse(r#"{"humidity_pct": 101}"#),
            Err(Rejection::Impossible {
                field: "humidity_pct",
                ..
            })
        ));
        assert_eq!(parse("-273.15").unwrap().temperature_c, Some(-273.15));
    }

    #[test]
    fn rejects_time_far_ahead_of_receiver() {
        let ahead = r#"{"temperature_c": 25, "time": "2026-12-04T12:06:00Z"}"#;
        assert_eq!(parse(ahead), Err(Rejection::FutureTime { ahead_secs: 360 }));
        assert_eq!(parse(ahead).unwrap_err().code(), "future_time");
        let within = r#"{"temperature_c": 25, "time": "2026-12-04T12:04:00Z"}"#;
        assert!(parse(within).is_ok());
        let past = r#"{"temperature_c": 25, "time": "2013-12-02T21:15:00Z"}"#;
        assert!(parse(past).is_ok());
    }

    #[test]
    fn rejects_invalid_utf8_and_oversized() {
        assert_eq!(
            parse_payload("s", "t", b"3\xff1", now()),
            Err(Rejection::NotUtf8 { offset: 1 })
        );
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert!(matches!(
            parse_payload("s", "t", &big, now()),
            Err(Rejection::TooLarge { .. })
        ));
    }

    #[test]
    fn rejects_invalid_topic_levels() {
        assert!(matches!(
            parse_payload("plant 1", "t", b"1", now()),
            Err(Rejection::InvalidTopicId { kind: "site", .. })
        ));
    }

    #[test]
    fn deeply_nested_json_is_rejected_not_overflowed() {
        let nested = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
        assert!(parse_payload("s", "t", nested.as_bytes(), now()).is_err());
    }

    #[test]
    fn faulty_quality_needs_no_value() {
        let reading = parse(r#"{"quality": "checksum"}"#).unwrap();
        assert_eq!(reading.quality, Quality::Checksum);
        assert_eq!(reading.temperature_c, None);
    }
}
