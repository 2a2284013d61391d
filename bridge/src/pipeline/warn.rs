//! Ingest warnings kept to a readable rate, gaps in sensor sequence
//! numbers, and the limit on tracked sensors.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use floorwatch_protocol::{Id, Reading, Rejection};
use serde_json::json;

use super::{Inbound, Processor, Publication};

/// Minimum time between two warnings of one kind about one sensor.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Minimum time between two warnings about invalid topic levels, over all
/// topics, since each distinct level would otherwise get its own.
const TOPIC_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Maximum sensors tracked by a limiter before it drops stale entries,
/// which bounds memory when topics carry arbitrary names.
const WARN_LIMITER_CAPACITY: usize = 10_000;

/// Stable rejection code of a reading from a sensor past `max_sensors`.
pub const TOO_MANY_SENSORS: &str = "too_many_sensors";

/// Per-sensor limiter: one warning per sensor per [`WARN_INTERVAL`].
#[derive(Debug, Default)]
struct PerSensor {
    warned_at: HashMap<(String, String), Instant>,
}

impl PerSensor {
    fn should_warn(&mut self, site: &str, sensor: &str) -> bool {
        let now = Instant::now();
        let key = (site.to_owned(), sensor.to_owned());
        if self
            .warned_at
            .get(&key)
            .is_some_and(|last| now.duration_since(*last) < WARN_INTERVAL)
        {
            return false;
        }
        if self.warned_at.len() >= WARN_LIMITER_CAPACITY {
            self.warned_at
                .retain(|_, last| now.duration_since(*last) < WARN_INTERVAL);
        }
        self.warned_at.insert(key, now);
        true
    }
}

/// The warning limiters of the ingest side.
#[derive(Debug, Default)]
pub struct Warnings {
    rejected: PerSensor,
    gaps: PerSensor,
    topic_warned_at: Option<Instant>,
    /// Invalid-topic warnings held since the last one logged.
    topic_suppressed: u64,
}

impl Warnings {
    /// Decides whether an invalid-topic warning is logged at `now`, and
    /// returns the number held since the last one when it is.
    fn topic_warning(&mut self, now: Instant) -> Option<u64> {
        if self
            .topic_warned_at
            .is_some_and(|last| now.duration_since(last) < TOPIC_WARN_INTERVAL)
        {
            self.topic_suppressed += 1;
            return None;
        }
        self.topic_warned_at = Some(now);
        Some(std::mem::take(&mut self.topic_suppressed))
    }

    /// Logs a rejected payload, within the limits.
    pub fn rejected(&mut self, inbound: &Inbound, code: &str, rejection: &Rejection) {
        if matches!(rejection, Rejection::InvalidTopicId { .. }) {
            let Some(suppressed) = self.topic_warning(Instant::now()) else {
                return;
            };
            tracing::warn!(
                site = %inbound.site.escape_debug(),
                sensor = %inbound.sensor.escape_debug(),
                reason = code,
                error = %rejection,
                suppressed,
                "rejected a payload on an invalid topic (`suppressed` counts those not logged \
                 since the last warning; at most one such warning per 10 s)"
            );
            return;
        }
        if self.rejected.should_warn(&inbound.site, &inbound.sensor) {
            tracing::warn!(
                site = %inbound.site.escape_debug(),
                sensor = %inbound.sensor.escape_debug(),
                reason = code,
                error = %rejection,
                "rejected a reading payload (further warnings for this sensor are held for 60 s)"
            );
        }
    }
}

impl Processor {
    /// Counts readings missing between `previous_seq` and the reading's own
    /// `seq`, as when a broker drops messages for a slow subscriber.
    pub(super) fn count_gap(&mut self, reading: &Reading, previous_seq: Option<u64>) {
        let (Some(seq), Some(previous)) = (reading.seq, previous_seq) else {
            return;
        };
        let missing = seq.saturating_sub(previous).saturating_sub(1);
        if missing == 0 {
            return;
        }
        self.tally.missing += missing;
        let (site, sensor) = (reading.site.as_str(), reading.sensor.as_str());
        if self.warnings.gaps.should_warn(site, sensor) {
            tracing::warn!(
                site,
                sensor,
                previous_seq = previous,
                seq,
                missing,
                "readings missing: the sequence number jumped (a broker may be dropping \
                 messages; further warnings for this sensor are held for 60 s)"
            );
        }
    }

    /// Rejects a reading of a new sensor once `max_sensors` are tracked.
    pub(super) fn reject_sensor_limit(&mut self, inbound: &Inbound) -> Option<Publication> {
        self.tally.rejected.push(TOO_MANY_SENSORS);
        let reason = format!(
            "the bridge already tracks bridge.max_sensors = {} sensors",
            self.max_sensors
        );
        if self
            .warnings
            .rejected
            .should_warn(&inbound.site, &inbound.sensor)
        {
            tracing::warn!(
                site = %inbound.site.escape_debug(),
                sensor = %inbound.sensor.escape_debug(),
                reason = TOO_MANY_SENSORS,
                max_sensors = self.max_sensors,
                "rejected a reading of a new sensor: raise bridge.max_sensors if the plant \
                 has this many sensors"
            );
        }
        let site = Id::parse(&inbound.site).ok()?;
        let sensor = Id::parse(&inbound.sensor).ok()?;
        let report = json!({
            "reason": reason,
            "code": TOO_MANY_SENSORS,
            "received_at": inbound.received_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        Some(Publication {
            topic: self.topics.rejected(&site, &sensor),
            payload: report.to_string().into_bytes(),
            retain: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_warnings_limited_globally() {
        let mut warnings = Warnings::default();
        let start = Instant::now();
        assert_eq!(warnings.topic_warning(start), Some(0));
        for offset_ms in [1, 500, 9_999] {
            let now = start + Duration::from_millis(offset_ms);
            assert_eq!(warnings.topic_warning(now), None);
        }
        let later = start + TOPIC_WARN_INTERVAL;
        assert_eq!(
            warnings.topic_warning(later),
            Some(3),
            "held warnings are counted"
        );
        assert_eq!(warnings.topic_warning(later), None);
    }
}
