//! Delays between reconnection attempts to the MQTT broker. rumqttc retries
//! as fast as its event loop is polled, so the publisher sleeps for these.

use std::time::Duration;

/// Delay after the first failure.
pub const INITIAL_DELAY: Duration = Duration::from_millis(100);

/// Largest delay before jitter is applied.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// Jitter as a fraction of the delay: each delay is scaled by a factor
/// between 0.8 and 1.2.
pub const JITTER: f64 = 0.2;

/// Returns the delay before the next attempt after `failures` consecutive
/// failures (1 for the first).
///
/// The delay doubles from [`INITIAL_DELAY`] up to [`MAX_DELAY`], then is
/// scaled by `1 + JITTER * jitter`. `jitter` is a random number in
/// `-1.0..=1.0`, and values outside that range are clamped.
pub fn reconnect_delay(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let capped = INITIAL_DELAY
        .checked_mul(1 << doublings)
        .map_or(MAX_DELAY, |delay| delay.min(MAX_DELAY));

    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(-1.0, 1.0)
    };
    capped.mul_f64(1.0 + JITTER * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_initial_delay() {
        let delays: Vec<_> = (1..=5).map(|n| reconnect_delay(n, 0.0)).collect();
        let millis: Vec<_> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [100, 200, 400, 800, 1600]);
    }

    #[test]
    fn caps_at_max_delay() {
        assert_eq!(reconnect_delay(8, 0.0), MAX_DELAY);
        assert_eq!(reconnect_delay(u32::MAX, 0.0), MAX_DELAY);
    }

    #[test]
    fn zero_failures_uses_initial_delay() {
        assert_eq!(reconnect_delay(0, 0.0), INITIAL_DELAY);
    }

    #[test]
    fn jitter_scales_within_twenty_percent() {
        assert_eq!(reconnect_delay(1, 1.0), Duration::from_millis(120));
        assert_eq!(reconnect_delay(1, -1.0), Duration::from_millis(80));
        assert_eq!(reconnect_delay(100, 1.0), Duration::from_secs(12));
        assert_eq!(reconnect_delay(1, 5.0), Duration::from_millis(120));
        assert_eq!(reconnect_delay(1, f64::NAN), INITIAL_DELAY);
    }
}
