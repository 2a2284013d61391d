//! The send schedule of one publisher: a fixed rate turned into the number
//! of readings due at each moment, and the tick interval at which the
//! publisher wakes up to send them.

use std::time::Duration;

/// Shortest tick: above this rate a tick sends several readings at once
/// instead of waking the publisher more often.
const MIN_TICK: Duration = Duration::from_millis(1);
/// Maximum tick, so that a slow publisher still notices the end of the run.
const MAX_TICK: Duration = Duration::from_millis(20);

/// An open-loop schedule of `rate` readings per second for `duration`.
///
/// The schedule does not depend on how fast readings are acknowledged. A
/// publisher that falls behind sends the missed readings at its next tick.
/// Readings still missing at the end of the run are never sent, so the
/// achieved rate shows what the broker absorbed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    rate: f64,
    duration: Duration,
}

impl Pacer {
    /// Creates a schedule of `rate` readings per second (finite, above 0)
    /// lasting `duration`.
    pub fn new(rate: f64, duration: Duration) -> Self {
        Self { rate, duration }
    }

    /// Returns the number of readings the whole run sends.
    pub fn total(&self) -> u64 {
        self.due_by(self.duration)
    }

    /// Returns how many readings should have been sent `elapsed` after the
    /// start, counting the one sent at the start itself.
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let elapsed = elapsed.min(self.duration);
        if self.rate <= 0.0 {
            return 0;
        }
        let due = (self.rate * elapsed.as_secs_f64()).floor() as u64;
        // The run sends readings at 0, 1/rate, 2/rate, ... strictly before
        // its end, so a run of exactly k intervals sends k readings.
        if elapsed < self.duration {
            due + 1
        } else {
            let exact = self.rate * self.duration.as_secs_f64();
            if exact.fract() == 0.0 {
                due
            } else {
                due + 1
            }
        }
    }

    /// Returns the interval between two wake-ups: one reading's interval,
    /// kept between 1 ms and 20 ms.
    pub fn tick(&self) -> Duration {
        if self.rate <= 0.0 {
            return MAX_TICK;
        }
        Duration::from_secs_f64(1.0 / self.rate).clamp(MIN_TICK, MAX_TICK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(value: f64) -> Duration {
        Duration::from_secs_f64(value)
    }

    #[test]
    fn first_reading_is_due_at_start() {
        let pacer = Pacer::new(10.0, secs(1.0));
        assert_eq!(pacer.due_by(Duration::ZERO), 1);
    }

    #[test]
    fn due_count_follows_the_rate() {
        let pacer = Pacer::new(10.0, secs(10.0));
        assert_eq!(pacer.due_by(secs(0.05)), 1);
        assert_eq!(pacer.due_by(secs(0.1)), 2);
        assert_eq!(pacer.due_by(secs(0.99)), 10);
        assert_eq!(pacer.due_by(secs(5.0)), 51);
    }

    #[test]
    fn total_is_rate_times_duration() {
        assert_eq!(Pacer::new(200.0, secs(3.0)).total(), 600);
        assert_eq!(Pacer::new(1000.0, secs(60.0)).total(), 60_000);
        // 2.5 readings in one second: at 0, 0.4 and 0.8 s.
        assert_eq!(Pacer::new(2.5, secs(1.0)).total(), 3);
    }

    #[test]
    fn due_count_stops_at_the_end() {
        let pacer = Pacer::new(100.0, secs(2.0));
        assert_eq!(pacer.due_by(secs(2.0)), 200);
        assert_eq!(pacer.due_by(secs(30.0)), 200);
    }

    #[test]
    fn due_count_never_decreases() {
        let pacer = Pacer::new(333.3, secs(3.0));
        let mut previous = 0;
        for millis in 0..3500 {
            let due = pacer.due_by(Duration::from_millis(millis));
            assert!(due >= previous, "due_by({millis} ms) = {due} < {previous}");
            previous = due;
        }
        assert_eq!(previous, pacer.total());
    }

    #[test]
    fn tick_is_one_interval_within_bounds() {
        let duration = secs(1.0);
        assert_eq!(Pacer::new(250.0, duration).tick(), Duration::from_millis(4));
        assert_eq!(Pacer::new(50_000.0, duration).tick(), MIN_TICK);
        assert_eq!(Pacer::new(5.0, duration).tick(), MAX_TICK);
    }

    #[test]
    fn zero_rate_sends_nothing() {
        let pacer = Pacer::new(0.0, secs(5.0));
        assert_eq!(pacer.total(), 0);
        assert_eq!(pacer.due_by(secs(1.0)), 0);
    }
}
