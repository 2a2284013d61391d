//! Brake on password guessing at the sign-in form: failed sign-ins are
//! counted per user name and per client address, and past a few of them
//! each key must wait before its next try, twice as long after every
//! further failure. A waiting key is refused before argon2 runs, so a
//! flood of guesses costs the scheduler little CPU.
//!
//! NOTE: the counts live in memory, so a restart clears them. Behind a
//! reverse proxy every client has the proxy's address, and the address
//! key then throttles all of them together.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures a key may have before it must wait.
const FREE_FAILURES: u32 = 5;
/// Wait after the first failure past the free ones, doubled after each
/// further failure.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// Longest wait.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// A key is forgotten this long after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Keys kept at most; past it, the oldest failures are forgotten first.
const MAX_KEYS: usize = 10_000;

/// What a key has done lately.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last_at: Instant,
    /// No attempt before this instant.
    wait_until: Instant,
}

/// Failed sign-ins by key (`name:…` or `addr:…`).
#[derive(Debug, Default)]
pub struct SignInThrottle {
    keys: Mutex<HashMap<String, Failures>>,
}

impl SignInThrottle {
    /// Returns how long the longest-waiting of `keys` must still wait at
    /// `now`, or `None` when all may try.
    pub fn wait(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let table = self.lock();
        keys.iter()
            .filter_map(|key| table.get(key))
            .map(|failures| failures.wait_until.saturating_duration_since(now))
            .filter(|wait| !wait.is_zero())
            .max()
    }

    /// Records a failed sign-in for each of `keys` at `now`.
    pub fn failed(&self, keys: &[String], now: Instant) {
        let mut table = self.lock();
        if table.len() + keys.len() > MAX_KEYS {
            forget_old(&mut table, now, keys.len());
        }
        for key in keys {
            let failures = table.entry(key.clone()).or_insert(Failures {
                count: 0,
                last_at: now,
                wait_until: now,
            });
            if now.saturating_duration_since(failures.last_at) >= FORGET_AFTER {
                failures.count = 0;
            }
            failures.count += 1;
            failures.last_at = now;
            failures.wait_until = now + wait_after(failures.count);
        }
    }

    /// Forgets the failures of `keys` after a successful sign-in.
    pub fn succeeded(&self, keys: &[String]) {
        let mut table = self.lock();
        for key in keys {
            table.remove(key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Returns the keys of a sign-in by `name` from `address`.
pub fn throttle_keys(name: &str, address: Option<&str>) -> Vec<String> {
    // Bounded so that a long name cannot grow the table by much.
    let name: String = name.chars().take(128).collect();
    let mut keys = vec![format!("name:{name}")];
    if let Some(address) = address {
        keys.push(format!("addr:{address}"));
    }
    keys
}

/// Wait imposed after the `count`-th failure in a row.
fn wait_after(count: u32) -> Duration {
    let Some(past_free) = count.checked_sub(FREE_FAILURES).filter(|past| *past > 0) else {
        return Duration::ZERO;
    };
    let doublings = (past_free - 1).min(16);
    FIRST_WAIT.saturating_mul(1 << doublings).min(MAX_WAIT)
}

/// Drops stale keys, then the oldest ones, until `room` more fit.
fn forget_old(table: &mut HashMap<String, Failures>, now: Instant, room: usize) {
    table.retain(|_, failures| now.saturating_duration_since(failures.last_at) < FORGET_AFTER);
    let excess = (table.len() + room).saturating_sub(MAX_KEYS);
    if excess == 0 {
        return;
    }
    let mut by_age: Vec<(Instant, String)> = table
        .iter()
        .map(|(key, failures)| (failures.last_at, key.clone()))
        .collect();
    by_age.sort_unstable();
    for (_, key) in by_age.into_iter().take(excess) {
        table.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        throttle_keys("ada", Some("192.0.2.7"))
    }

    #[test]
    fn free_failures_then_doubling_waits() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        for _ in 0..FREE_FAILURES {
            throttle.failed(&keys(), start);
            assert_eq!(throttle.wait(&keys(), start), None);
        }
        throttle.failed(&keys(), start);
        assert_eq!(throttle.wait(&keys(), start), Some(Duration::from_secs(1)));
        throttle.failed(&keys(), start);
        assert_eq!(throttle.wait(&keys(), start), Some(Duration::from_secs(2)));
        let later = start + Duration::from_secs(2);
        assert_eq!(throttle.wait(&keys(), later), None);
        for _ in 0..20 {
            throttle.failed(&keys(), later);
        }
        assert_eq!(throttle.wait(&keys(), later), Some(MAX_WAIT));
    }

    #[test]
    fn either_key_waits_for_both() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        let other_address = throttle_keys("ada", Some("198.51.100.1"));
        for _ in 0..=FREE_FAILURES {
            throttle.failed(&keys(), now);
        }
        // The name is throttled from any address, and the address for any
        // name.
        assert!(throttle.wait(&other_address, now).is_some());
        assert!(throttle
            .wait(&throttle_keys("grace", Some("192.0.2.7")), now)
            .is_some());
        assert_eq!(
            throttle.wait(&throttle_keys("grace", Some("198.51.100.1")), now),
            None
        );
    }

    #[test]
    fn success_and_time_forget_failures() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        for _ in 0..=FREE_FAILURES {
            throttle.failed(&keys(), now);
        }
        throttle.succeeded(&keys());
        assert_eq!(throttle.wait(&keys(), now), None);

        for _ in 0..=FREE_FAILURES {
            throttle.failed(&keys(), now);
        }
        // A failure long after the last one starts the count again.
        let much_later = now + FORGET_AFTER;
        throttle.failed(&keys(), much_later);
        assert_eq!(throttle.wait(&keys(), much_later), None);
    }

    #[test]
    fn table_stays_bounded() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        for index in 0..MAX_KEYS + 50 {
            let at = now + Duration::from_millis(index as u64);
            throttle.failed(&[format!("addr:{index}")], at);
        }
        assert_eq!(throttle.lock().len(), MAX_KEYS);
        assert!(!throttle.lock().contains_key("addr:0"));
        assert!(throttle
            .lock()
            .contains_key(&format!("addr:{}", MAX_KEYS + 49)));
    }

    #[test]
    fn long_names_are_cut() {
        let keys = throttle_keys(&"x".repeat(10_000), None);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].len(), "name:".len() + 128);
    }
}
