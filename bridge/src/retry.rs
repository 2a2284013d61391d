//! Retry delays of webhook deliveries: the configured schedule with jitter,
//! and `Retry-After` from the receiver within a cap.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::DeliverySettings;

/// Maximum delay a receiver's `Retry-After` can impose.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// Returns the delay before the next attempt after `failed_attempts`
/// attempts (from 1) have failed, or `None` when the schedule is exhausted
/// and the event becomes a dead letter.
///
/// `unit_random` is a uniform sample from `[0, 1)`, so a test can pass a
/// fixed value. A `retry_after` from the receiver replaces a shorter
/// scheduled delay, capped at [`RETRY_AFTER_CAP`].
pub fn next_delay(
    settings: &DeliverySettings,
    failed_attempts: u32,
    retry_after: Option<Duration>,
    unit_random: f64,
) -> Option<Duration> {
    let index = usize::try_from(failed_attempts).ok()?.checked_sub(1)?;
    let scheduled_ms = *settings.retry_schedule_ms.get(index)?;
    let spread = settings.jitter * (2.0 * unit_random - 1.0);
    let jittered_ms = (scheduled_ms as f64 * (1.0 + spread)).max(0.0).round();
    let scheduled = Duration::from_millis(jittered_ms as u64);
    let requested = retry_after.map_or(Duration::ZERO, |after| after.min(RETRY_AFTER_CAP));
    Some(scheduled.max(requested))
}

/// Parses a `Retry-After` header: delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let delay = date.with_timezone(&Utc) - now;
    Some(delay.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(schedule: &[u64], jitter: f64) -> DeliverySettings {
        DeliverySettings {
            retry_schedule_ms: schedule.to_vec(),
            jitter,
        }
    }

    #[test]
    fn follows_schedule_then_gives_up() {
        let settings = settings(&[5_000, 300_000], 0.0);
        assert_eq!(
            next_delay(&settings, 1, None, 0.7),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            next_delay(&settings, 2, None, 0.7),
            Some(Duration::from_secs(300))
        );
        assert_eq!(next_delay(&settings, 3, None, 0.7), None);
        assert_eq!(next_delay(&settings, 0, None, 0.7), None);
    }

    #[test]
    fn jitter_stays_within_fraction() {
        let settings = settings(&[10_000], 0.1);
        assert_eq!(
            next_delay(&settings, 1, None, 0.0),
            Some(Duration::from_millis(9_000))
        );
        assert_eq!(
            next_delay(&settings, 1, None, 0.5),
            Some(Duration::from_millis(10_000))
        );
        let high = next_delay(&settings, 1, None, 0.999_999).unwrap();
        assert!(high <= Duration::from_millis(11_000), "{high:?}");
        assert!(high > Duration::from_millis(10_990), "{high:?}");
    }

    #[test]
    fn retry_after_extends_but_is_capped() {
        let settings = settings(&[5_000], 0.0);
        assert_eq!(
            next_delay(&settings, 1, Some(Duration::from_secs(60)), 0.5),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            next_delay(&settings, 1, Some(Duration::from_secs(1)), 0.5),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            next_delay(&settings, 1, Some(Duration::from_secs(86_400)), 0.5),
            Some(RETRY_AFTER_CAP)
        );
    }

    #[test]
    fn parses_retry_after_forms() {
        let now: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Fri, 04 Dec 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Fri, 04 Dec 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
