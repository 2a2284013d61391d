//! Per-endpoint send limits as plain state machines: a token bucket for the
//! request rate and a circuit breaker for consecutive failures.

use std::time::{Duration, Instant};

/// A token bucket holding at most one second's worth of requests, and at
/// least one.
#[derive(Debug)]
pub struct TokenBucket {
    per_sec: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// Creates a full bucket for `per_sec` requests per second.
    pub fn new(per_sec: f64, now: Instant) -> Self {
        let capacity = per_sec.max(1.0);
        Self {
            per_sec,
            capacity,
            tokens: capacity,
            refilled_at: now,
        }
    }

    /// Takes one token, or returns how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_sec).min(self.capacity);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        Err(Duration::from_secs_f64(missing / self.per_sec))
    }

    /// Returns a token taken for a request that was not sent after all.
    pub fn refund(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.capacity);
    }
}

/// Permission from the circuit breaker for the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Closed: send as much as the other limits allow.
    Send,
    /// The cool-down is over: send exactly one probe and wait for it.
    Probe,
    /// Open, or a probe is in flight: send nothing until then (`None`:
    /// until the probe's result arrives).
    Wait(Option<Instant>),
}

/// State of an endpoint's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        cooldown: Duration,
    },
    /// One probe is in flight; `cooldown` is the pause that led to it.
    Probing {
        cooldown: Duration,
    },
}

/// Opens after `threshold` consecutive failures, pauses for a cool-down
/// that doubles after each failed probe up to `max_cooldown`, and closes
/// again when a probe succeeds.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    max_cooldown: Duration,
    state: BreakerState,
}

impl CircuitBreaker {
    /// Creates a closed breaker.
    pub fn new(threshold: u32, cooldown: Duration, max_cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            max_cooldown,
            state: BreakerState::Closed { failures: 0 },
        }
    }

    /// Returns the current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Returns what may be sent at `now`; a `Probe` moves the breaker to
    /// `Probing`, so the caller must send it.
    pub fn permit(&mut self, now: Instant) -> Permit {
        match self.state {
            BreakerState::Closed { .. } => Permit::Send,
            BreakerState::Open { until, .. } if now < until => Permit::Wait(Some(until)),
            BreakerState::Open { cooldown, .. } => {
                self.state = BreakerState::Probing { cooldown };
                Permit::Probe
            }
            BreakerState::Probing { .. } => Permit::Wait(None),
        }
    }

    /// Records the result of an attempt and returns the new state when it
    /// changed between closed, open and probing.
    pub fn record(&mut self, success: bool, now: Instant) -> Option<BreakerState> {
        let next = match (self.state, success) {
            (BreakerState::Closed { .. }, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false) if failures + 1 >= self.threshold => {
                BreakerState::Open {
                    until: now + self.cooldown,
                    cooldown: self.cooldown,
                }
            }
            (BreakerState::Closed { failures }, false) => BreakerState::Closed {
                failures: failures + 1,
            },
            (BreakerState::Probing { .. }, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Probing { cooldown }, false) => {
                let cooldown = (cooldown * 2).min(self.max_cooldown);
                BreakerState::Open {
                    until: now + cooldown,
                    cooldown,
                }
            }
            // Attempts started before the breaker opened change nothing.
            (state @ BreakerState::Open { .. }, _) => state,
        };
        let changed = std::mem::discriminant(&next) != std::mem::discriminant(&self.state);
        self.state = next;
        changed.then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn bucket_allows_burst_then_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2.0, start);
        assert_eq!(bucket.take(start), Ok(()));
        assert_eq!(bucket.take(start), Ok(()));
        let wait = bucket.take(start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(bucket.take(start + Duration::from_millis(500)), Ok(()));
    }

    #[test]
    fn bucket_below_one_per_second() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(0.5, start);
        assert_eq!(bucket.take(start), Ok(()));
        assert_eq!(bucket.take(start), Err(2 * SECOND));
        assert_eq!(bucket.take(start + 2 * SECOND), Ok(()));
    }

    #[test]
    fn breaker_opens_after_threshold() {
        let now = Instant::now();
        let mut breaker = CircuitBreaker::new(3, SECOND, 4 * SECOND);
        assert_eq!(breaker.record(false, now), None);
        assert_eq!(breaker.record(true, now), None);
        assert_eq!(breaker.record(false, now), None);
        assert_eq!(breaker.record(false, now), None);
        assert_eq!(breaker.permit(now), Permit::Send);
        let opened = breaker.record(false, now);
        assert!(
            matches!(opened, Some(BreakerState::Open { .. })),
            "{opened:?}"
        );
        assert_eq!(breaker.permit(now), Permit::Wait(Some(now + SECOND)));
    }

    #[test]
    fn breaker_probe_backs_off_and_closes() {
        let now = Instant::now();
        let mut breaker = CircuitBreaker::new(1, SECOND, 3 * SECOND);
        breaker.record(false, now);
        assert_eq!(breaker.permit(now + SECOND), Permit::Probe);
        assert_eq!(breaker.permit(now + SECOND), Permit::Wait(None));

        let later = now + SECOND;
        breaker.record(false, later);
        assert_eq!(
            breaker.permit(later),
            Permit::Wait(Some(later + 2 * SECOND))
        );
        let probe_at = later + 2 * SECOND;
        assert_eq!(breaker.permit(probe_at), Permit::Probe);
        breaker.record(false, probe_at);
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                until: probe_at + 3 * SECOND,
                cooldown: 3 * SECOND
            },
            "the cool-down is capped"
        );

        let last_probe = probe_at + 3 * SECOND;
        assert_eq!(breaker.permit(last_probe), Permit::Probe);
        let closed = breaker.record(true, last_probe);
        assert_eq!(closed, Some(BreakerState::Closed { failures: 0 }));
        assert_eq!(breaker.permit(last_probe), Permit::Send);
    }
}
