//! Send limits of one endpoint for the NATS outbox: the token bucket, the
//! circuit breaker and the disabled state after `410 Gone`.
//!
//! One [`EndpointGate`] per endpoint is shared by the deliverers of every
//! partition that this bridge process owns, so the rate limit and the
//! breaker apply per process: two bridges together may send twice the
//! endpoint's `rate_limit_per_sec`.
//!
//! The disabled state is a key in the key-value bucket `floorwatch_endpoints`,
//! shared by every bridge and kept across restarts. A `410 Gone` creates the
//! key, and deleting the key enables the endpoint again. Each gate reads its
//! key once per [`POLL`].

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_nats::jetstream::{kv, Context};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{EndpointConfig, NatsSettings};
use crate::delivery::limits::{BreakerState, CircuitBreaker, Permit, TokenBucket};
use crate::delivery::redact;
use crate::stats::Stats;
use crate::BridgeError;

/// Key-value bucket with one key per endpoint disabled by `410 Gone`.
pub const ENDPOINTS_BUCKET: &str = "floorwatch_endpoints";

/// Time between two reads of the disabled key, and the longest wait for
/// the result of a probe sent by another deliverer.
pub const POLL: Duration = Duration::from_secs(1);

/// Opens the bucket of disabled endpoints, creating it when missing.
pub async fn bucket(js: &Context, settings: &NatsSettings) -> Result<kv::Store, BridgeError> {
    super::streams::key_value(js, ENDPOINTS_BUCKET, Duration::ZERO, settings).await
}

/// Returns the key of `url` in [`ENDPOINTS_BUCKET`]: `gone.` and the first
/// 16 bytes of the URL's SHA-256 in hex. A hash keeps a token in the URL's
/// query out of the bucket and fits the key alphabet of NATS.
pub fn disabled_key(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    let hex: String = digest[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("gone.{hex}")
}

/// Result of a deliverer's request to send one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send now; `probe` is true when this attempt is the breaker's probe.
    Send { probe: bool },
    /// Ask again after this wait, or sooner when the gate changes.
    Wait(Duration),
}

/// Result of an attempt, as the breaker and the disabled state use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    Failed,
    /// The receiver returned `410 Gone`.
    Gone,
}

/// The in-memory state of a gate, without I/O.
#[derive(Debug)]
struct Limits {
    bucket: Option<TokenBucket>,
    breaker: CircuitBreaker,
    disabled: bool,
    /// Whether the bucket contains the key of a disabled endpoint. It is
    /// false from a local `410 Gone` until the key is written.
    stored: bool,
}

impl Limits {
    fn new(config: &EndpointConfig, now: Instant) -> Self {
        Self {
            bucket: config
                .rate_limit_per_sec
                .map(|rate| TokenBucket::new(rate, now)),
            breaker: CircuitBreaker::new(
                config.breaker_failures,
                Duration::from_millis(config.breaker_cooldown_ms),
                Duration::from_millis(config.breaker_max_cooldown_ms),
            ),
            disabled: false,
            stored: false,
        }
    }

    /// Returns how long to wait before a message is worth pulling: while the
    /// endpoint is disabled, the breaker is open or another probe is in
    /// flight. Takes nothing, so the rate limit is left to [`Self::admit`].
    fn pull_wait(&self, now: Instant) -> Option<Duration> {
        if self.disabled {
            return Some(POLL);
        }
        match self.breaker.state() {
            BreakerState::Closed { .. } => None,
            BreakerState::Open { until, .. } if now < until => Some(until - now),
            BreakerState::Open { .. } => None,
            BreakerState::Probing { .. } => Some(POLL),
        }
    }

    /// Takes a rate limit token and a breaker permit for one attempt.
    fn admit(&mut self, now: Instant) -> Admission {
        if self.disabled {
            return Admission::Wait(POLL);
        }
        if let Some(bucket) = &mut self.bucket {
            if let Err(wait) = bucket.take(now) {
                return Admission::Wait(wait);
            }
        }
        match self.breaker.permit(now) {
            Permit::Send => Admission::Send { probe: false },
            Permit::Probe => Admission::Send { probe: true },
            Permit::Wait(until) => {
                if let Some(bucket) = &mut self.bucket {
                    bucket.refund();
                }
                let wait = until.map_or(POLL, |until| until.saturating_duration_since(now));
                Admission::Wait(wait)
            }
        }
    }

    /// Applies an attempt's result. Returns the breaker's new state when it
    /// changed, and whether this result disabled the endpoint.
    fn record(&mut self, attempt: Attempt, now: Instant) -> (Option<BreakerState>, bool) {
        // A 410 counts as a failure too, so that a probe that gets a 410
        // does not leave the breaker waiting for its result.
        let changed = self.breaker.record(attempt == Attempt::Delivered, now);
        let disabled = attempt == Attempt::Gone && !self.disabled;
        if disabled {
            self.disabled = true;
            self.stored = false;
        }
        (changed, disabled)
    }
}

/// Send limits and disabled state of one endpoint, shared by the
/// deliverers of this process.
pub struct EndpointGate {
    /// The endpoint's URL without credentials or query, for logs.
    name: String,
    key: String,
    instance: String,
    store: kv::Store,
    stats: Arc<Stats>,
    limits: Mutex<Limits>,
    /// Wakes deliverers after a state change.
    changed: Notify,
    /// Wakes [`EndpointGate::watch`] to store a new disabled state.
    disabled_locally: Notify,
}

/// Permission to send one attempt. Dropping it unsettled, as when a task
/// is aborted in the middle of a send, counts a failure, so that a lost
/// probe does not stop the endpoint for good.
pub struct Ticket<'a> {
    gate: &'a EndpointGate,
    settled: bool,
}

impl Ticket<'_> {
    /// Records the result of the attempt made with this ticket.
    pub fn settle(mut self, attempt: Attempt) {
        self.settled = true;
        self.gate.record(attempt);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.gate.record(Attempt::Failed);
        }
    }
}

impl EndpointGate {
    /// Creates an open gate for `config`, with its key in `store`.
    pub fn new(
        config: &EndpointConfig,
        instance: &str,
        store: kv::Store,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            name: redact(&config.url),
            key: disabled_key(&config.url),
            instance: instance.to_owned(),
            store,
            stats,
            limits: Mutex::new(Limits::new(config, Instant::now())),
            changed: Notify::new(),
            disabled_locally: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Limits> {
        self.limits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until a message is worth pulling. Returns false when `cancel`
    /// fired first.
    pub async fn wait_ready(&self, cancel: &CancellationToken) -> bool {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let Some(wait) = self.lock().pull_wait(Instant::now()) else {
                return true;
            };
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = changed => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Takes permission for one attempt, or returns how long to wait
    /// before asking again.
    pub fn admit(&self) -> Result<Ticket<'_>, Duration> {
        let admission = self.lock().admit(Instant::now());
        match admission {
            Admission::Send { probe } => {
                if probe {
                    tracing::info!(endpoint = %self.name, "circuit breaker cool-down over, sending a probe");
                }
                Ok(Ticket {
                    gate: self,
                    settled: false,
                })
            }
            Admission::Wait(wait) => Err(wait),
        }
    }

    /// Waits for a change of the gate, at most `wait`.
    pub async fn changed_or(&self, wait: Duration) {
        let _ = tokio::time::timeout(wait, self.changed.notified()).await;
    }

    fn record(&self, attempt: Attempt) {
        let (changed, disabled) = self.lock().record(attempt, Instant::now());
        if let Some(state) = changed {
            self.log_breaker(state);
        }
        if disabled {
            self.stats
                .endpoints_disabled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(
                endpoint = %self.name,
                bucket = ENDPOINTS_BUCKET,
                key = %self.key,
                "receiver returned 410 Gone; endpoint disabled for every bridge until the key is \
                 deleted, for example with `nats kv del {ENDPOINTS_BUCKET} {}`",
                self.key
            );
            self.disabled_locally.notify_one();
        }
        self.changed.notify_waiters();
    }

    fn log_breaker(&self, state: BreakerState) {
        let endpoint = &self.name;
        match state {
            BreakerState::Open { cooldown, .. } => tracing::warn!(
                %endpoint,
                cooldown_ms = cooldown.as_millis() as u64,
                "circuit breaker opened after consecutive failures; pausing the endpoint"
            ),
            BreakerState::Closed { .. } => {
                tracing::info!(%endpoint, "circuit breaker closed after a successful attempt")
            }
            BreakerState::Probing { .. } => {}
        }
    }

    /// Keeps the disabled state in step with the bucket until `cancel`
    /// fires: stores a local `410 Gone` and reads the key once per
    /// [`POLL`], so that a key created by another bridge disables this one
    /// and a deleted key enables it.
    pub async fn watch(self: Arc<Self>, cancel: CancellationToken) -> Result<(), BridgeError> {
        let mut failing = false;
        loop {
            let result = match self.store_pending() {
                true => self.store_disabled().await,
                false => self.read_disabled().await,
            };
            match result {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(endpoint = %self.name, "reading the disabled state works again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(
                        endpoint = %self.name, bucket = ENDPOINTS_BUCKET, key = %self.key, %error,
                        "cannot read or store the disabled state of the endpoint; keeping the last known state and retrying"
                    );
                }
                Err(error) => {
                    tracing::debug!(endpoint = %self.name, %error, "disabled state still unavailable")
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = self.disabled_locally.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Reads the disabled key once, so that a bridge starting while the
    /// endpoint is disabled sends nothing. A failed read is logged, and
    /// [`EndpointGate::watch`] reads again.
    pub async fn load(&self) {
        if let Err(error) = self.read_disabled().await {
            tracing::warn!(
                endpoint = %self.name, bucket = ENDPOINTS_BUCKET, key = %self.key, %error,
                "cannot read the disabled state of the endpoint at start; sending until a read succeeds"
            );
        }
    }

    fn store_pending(&self) -> bool {
        let limits = self.lock();
        limits.disabled && !limits.stored
    }

    async fn store_disabled(&self) -> Result<(), String> {
        let value = serde_json::json!({
            "endpoint": self.name,
            "reason": "receiver returned 410 Gone",
            "instance": self.instance,
            "disabled_at": chrono::Utc::now().to_rfc3339(),
        });
        self.store
            .put(&self.key, value.to_string().into())
            .await
            .map_err(|error| error.to_string())?;
        self.lock().stored = true;
        Ok(())
    }

    async fn read_disabled(&self) -> Result<(), String> {
        let value = self
            .store
            .get(self.key.clone())
            .await
            .map_err(|error| error.to_string())?;
        let mut limits = self.lock();
        // A 410 recorded while the read was in flight is stored first.
        if limits.disabled && !limits.stored {
            return Ok(());
        }
        match (limits.disabled, value) {
            (false, Some(value)) => {
                limits.disabled = true;
                limits.stored = true;
                drop(limits);
                self.stats
                    .endpoints_disabled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(
                    endpoint = %self.name,
                    reason = %String::from_utf8_lossy(&value),
                    "endpoint is disabled; not sending until the key is deleted, for example with \
                     `nats kv del {ENDPOINTS_BUCKET} {}`",
                    self.key
                );
            }
            (true, None) => {
                limits.disabled = false;
                limits.stored = false;
                drop(limits);
                self.stats.endpoint_enabled();
                tracing::info!(endpoint = %self.name, "endpoint enabled again; sending");
            }
            _ => return Ok(()),
        }
        self.changed.notify_waiters();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn config() -> EndpointConfig {
        let mut config = EndpointConfig::new("https://receiver.example/hook?token=x", "whsec_x");
        config.breaker_failures = 2;
        config.breaker_cooldown_ms = 10_000;
        config.breaker_max_cooldown_ms = 20_000;
        config
    }

    #[test]
    fn key_hides_url_and_fits_alphabet() {
        let key = disabled_key("https://receiver.example/hook?token=secret");
        assert!(key.starts_with("gone."), "{key}");
        assert_eq!(key.len(), "gone.".len() + 32);
        assert!(!key.contains("secret"), "{key}");
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-/_=.".contains(c);
        assert!(key.chars().all(allowed), "{key}");
        assert_eq!(
            key,
            disabled_key("https://receiver.example/hook?token=secret")
        );
        assert_ne!(key, disabled_key("https://receiver.example/hook"));
    }

    #[test]
    fn rate_limit_spaces_admissions() {
        let now = Instant::now();
        let mut config = config();
        config.rate_limit_per_sec = Some(2.0);
        let mut limits = Limits::new(&config, now);
        assert_eq!(limits.admit(now), Admission::Send { probe: false });
        assert_eq!(limits.admit(now), Admission::Send { probe: false });
        assert_eq!(limits.admit(now), Admission::Wait(SECOND / 2));
        assert_eq!(
            limits.pull_wait(now),
            None,
            "the rate limit never blocks a pull"
        );
    }

    #[test]
    fn open_breaker_blocks_pulls_until_probe() {
        let now = Instant::now();
        let mut limits = Limits::new(&config(), now);
        assert_eq!(limits.record(Attempt::Failed, now), (None, false));
        let (opened, _) = limits.record(Attempt::Failed, now);
        assert!(
            matches!(opened, Some(BreakerState::Open { .. })),
            "{opened:?}"
        );
        assert_eq!(limits.pull_wait(now), Some(10 * SECOND));
        assert_eq!(limits.admit(now), Admission::Wait(10 * SECOND));

        let later = now + 10 * SECOND;
        assert_eq!(limits.pull_wait(later), None);
        assert_eq!(limits.admit(later), Admission::Send { probe: true });
        assert_eq!(limits.pull_wait(later), Some(POLL), "a probe is in flight");
        assert_eq!(limits.admit(later), Admission::Wait(POLL));
        let (closed, _) = limits.record(Attempt::Delivered, later);
        assert_eq!(closed, Some(BreakerState::Closed { failures: 0 }));
        assert_eq!(limits.admit(later), Admission::Send { probe: false });
    }

    #[test]
    fn waiting_on_breaker_refunds_token() {
        let now = Instant::now();
        let mut config = config();
        config.rate_limit_per_sec = Some(1.0);
        config.breaker_failures = 1;
        let mut limits = Limits::new(&config, now);
        limits.record(Attempt::Failed, now);
        assert_eq!(limits.admit(now), Admission::Wait(10 * SECOND));
        assert_eq!(
            limits.admit(now + 10 * SECOND),
            Admission::Send { probe: true },
            "the bucket kept its token"
        );
    }

    #[test]
    fn gone_disables_once() {
        let now = Instant::now();
        let mut limits = Limits::new(&config(), now);
        assert_eq!(limits.record(Attempt::Gone, now), (None, true));
        assert!(!limits.stored, "the key is not written yet");
        assert!(!limits.record(Attempt::Gone, now).1, "disabled already");
        assert_eq!(limits.pull_wait(now), Some(POLL));
        assert_eq!(limits.admit(now), Admission::Wait(POLL));
    }

    #[test]
    fn gone_probe_does_not_stall_breaker() {
        let now = Instant::now();
        let mut config = config();
        config.breaker_failures = 1;
        let mut limits = Limits::new(&config, now);
        limits.record(Attempt::Failed, now);
        let probe_at = now + 10 * SECOND;
        assert_eq!(limits.admit(probe_at), Admission::Send { probe: true });
        limits.record(Attempt::Gone, probe_at);
        limits.disabled = false;
        let next_probe = probe_at + 20 * SECOND;
        assert_eq!(limits.pull_wait(next_probe), None);
        assert_eq!(limits.admit(next_probe), Admission::Send { probe: true });
    }
}
