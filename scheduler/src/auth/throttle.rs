//! Brake on password guessing at the sign-in form: sign-ins are counted
//! per user name and per client address, and past a few failures each key
//! must wait before its next try, twice as long after every further
//! failure. An attempt counts as a failure from the moment it is admitted
//! until a success clears it, so parallel requests cannot all pass before
//! the first one fails. A waiting key is refused before argon2 runs, so a
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

/// Recent failed sign-ins of one key.
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
    /// Admits a sign-in attempt by `keys` at `now` and counts it as a
    /// failure of each key, or returns how long the longest-waiting key
    /// must still wait. A successful attempt then calls
    /// [`SignInThrottle::succeeded`].
    pub fn admit(&self, keys: &[String], now: Instant) -> Result<(), Duration> {
        let mut table = self.lock();
        let wait = keys
            .iter()
            .filter_map(|key| table.get(key))
            .map(|failures| failures.wait_until.saturating_duration_since(now))
            .max()
            .filter(|wait| !wait.is_zero());
        if let Some(wait) = wait {
            return Err(wait);
        }
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
        Ok(())
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
        // Five free failures, and a sixth attempt that makes the keys wait.
        for _ in 0..=FREE_FAILURES {
            assert_eq!(throttle.admit(&keys(), start), Ok(()));
        }
        assert_eq!(throttle.admit(&keys(), start), Err(Duration::from_secs(1)));

        let later = start + Duration::from_secs(1);
        assert_eq!(throttle.admit(&keys(), later), Ok(()));
        assert_eq!(throttle.admit(&keys(), later), Err(Duration::from_secs(2)));

        let mut now = later;
        for _ in 0..20 {
            now += MAX_WAIT;
            assert_eq!(throttle.admit(&keys(), now), Ok(()));
        }
        assert_eq!(throttle.admit(&keys(), now), Err(MAX_WAIT));
    }

    #[test]
    fn parallel_attempts_are_counted_on_admission() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        // Thirty attempts at once, none finished: only the free ones and
        // the one that starts the wait are admitted.
        let admitted = (0..30)
            .filter(|_| throttle.admit(&keys(), now).is_ok())
            .count();
        assert_eq!(admitted, FREE_FAILURES as usize + 1);
    }

    #[test]
    fn either_key_waits_for_both() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        for _ in 0..=FREE_FAILURES {
            throttle.admit(&keys(), now).unwrap();
        }
        // The name is throttled from any address, and the address for any
        // name.
        let other_address = throttle_keys("ada", Some("198.51.100.1"));
        assert!(throttle.admit(&other_address, now).is_err());
        let other_name = throttle_keys("grace", Some("192.0.2.7"));
        assert!(throttle.admit(&other_name, now).is_err());
        let neither = throttle_keys("grace", Some("198.51.100.1"));
        assert_eq!(throttle.admit(&neither, now), Ok(()));
    }

    #[test]
    fn success_and_time_forget_failures() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        for _ in 0..=FREE_FAILURES {
            throttle.admit(&keys(), now).unwrap();
        }
        throttle.succeeded(&keys());
        assert_eq!(throttle.admit(&keys(), now), Ok(()));

        for _ in 0..FREE_FAILURES {
            throttle.admit(&keys(), now).unwrap();
        }
        // An attempt long after the last one starts the count again.
        let much_later = now + FORGET_AFTER;
        assert_eq!(throttle.admit(&keys(), much_later), Ok(()));
        assert_eq!(throttle.admit(&keys(), much_later), Ok(()));
    }

    #[test]
    fn table_stays_bounded() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        for index in 0..MAX_KEYS + 50 {
            let at = now + Duration::from_millis(index as u64);
            throttle.admit(&[format!("addr:{index}")], at).unwrap();
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
