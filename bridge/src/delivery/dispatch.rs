//! The loop of one delivery worker: picks due outbox rows and sends up to
//! `max_concurrency` of them at once, one per incident, within the rate
//! limit and the circuit breaker, and stops while the endpoint is disabled.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::limits::{BreakerState, CircuitBreaker, Permit, TokenBucket};
use super::{redact, Outcome, Worker, HEADS_PER_QUERY};
use crate::store::OutboxRow;
use crate::BridgeError;

/// Maximum wait between two reads of the outbox, so rows replayed by
/// another process and an endpoint enabled from the CLI are seen within
/// about this long.
const POLL: Duration = Duration::from_secs(1);

type Attempt = (String, Result<Outcome, BridgeError>);

struct Dispatcher {
    worker: Arc<Worker>,
    endpoint: String,
    max_concurrency: usize,
    breaker: CircuitBreaker,
    bucket: Option<TokenBucket>,
    /// Ordering keys (incidents) with an attempt in flight.
    in_flight: HashSet<String>,
    tasks: JoinSet<Attempt>,
    disabled: bool,
}

impl Worker {
    /// Delivers until `cancel` fires; attempts in flight then get up to
    /// five seconds to finish.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), BridgeError> {
        let mut dispatcher = Dispatcher::new(self);
        tracing::info!(endpoint = %dispatcher.endpoint, "delivery worker started");
        dispatcher.refresh_disabled().await?;
        while !cancel.is_cancelled() {
            let wait = match dispatcher.disabled {
                true => POLL,
                false => dispatcher.dispatch(&cancel).await?.min(POLL),
            };
            let wake = Arc::clone(&dispatcher.worker.wake);
            tokio::select! {
                () = cancel.cancelled() => break,
                Some(joined) = dispatcher.tasks.join_next(), if !dispatcher.tasks.is_empty() => {
                    dispatcher.finish(joined).await?;
                }
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {
                    if dispatcher.disabled {
                        dispatcher.refresh_disabled().await?;
                    }
                }
            }
        }
        while let Some(joined) = dispatcher.tasks.join_next().await {
            dispatcher.finish(joined).await?;
        }
        tracing::info!(endpoint = %dispatcher.endpoint, "delivery worker stopped");
        Ok(())
    }
}

impl Dispatcher {
    fn new(worker: Worker) -> Self {
        let limits = &worker.endpoint.limits;
        let now = Instant::now();
        Self {
            endpoint: redact(&worker.endpoint.key),
            max_concurrency: limits.max_concurrency.max(1),
            breaker: CircuitBreaker::new(
                limits.breaker_failures,
                Duration::from_millis(limits.breaker_cooldown_ms),
                Duration::from_millis(limits.breaker_max_cooldown_ms),
            ),
            bucket: limits
                .rate_limit_per_sec
                .map(|rate| TokenBucket::new(rate, now)),
            in_flight: HashSet::new(),
            tasks: JoinSet::new(),
            disabled: false,
            worker: Arc::new(worker),
        }
    }

    /// Starts attempts at due rows while the limits allow, and returns how
    /// long to wait before looking again.
    async fn dispatch(&mut self, cancel: &CancellationToken) -> Result<Duration, BridgeError> {
        let key = self.worker.endpoint.key.clone();
        let heads = self
            .worker
            .with_store(move |store| store.pending_heads(&key, HEADS_PER_QUERY))
            .await??;
        let now_ms = Utc::now().timestamp_millis();
        let (due, waiting): (Vec<_>, Vec<_>) = heads
            .into_iter()
            .filter(|row| !self.in_flight.contains(&row.ordering_key))
            .partition(|row| row.next_attempt_at_ms <= now_ms);
        for row in due {
            if self.in_flight.len() >= self.max_concurrency {
                // A finished attempt wakes the loop.
                return Ok(POLL);
            }
            if let Some(wait) = self.admit() {
                return Ok(wait);
            }
            self.spawn(row, cancel);
        }
        let next_ms = waiting.iter().map(|row| row.next_attempt_at_ms).min();
        Ok(next_ms.map_or(
            POLL,
            |at| Duration::from_millis((at - now_ms).max(1) as u64),
        ))
    }

    /// Takes a rate limit token and a breaker permit for one attempt, or
    /// returns how long to wait for them.
    fn admit(&mut self) -> Option<Duration> {
        let now = Instant::now();
        if let Some(bucket) = &mut self.bucket {
            if let Err(wait) = bucket.take(now) {
                return Some(wait);
            }
        }
        match self.breaker.permit(now) {
            Permit::Send => None,
            Permit::Probe => {
                tracing::info!(endpoint = %self.endpoint, "circuit breaker cool-down over, sending a probe");
                None
            }
            Permit::Wait(until) => {
                if let Some(bucket) = &mut self.bucket {
                    bucket.refund();
                }
                Some(until.map_or(POLL, |until| until.saturating_duration_since(now)))
            }
        }
    }

    fn spawn(&mut self, row: OutboxRow, cancel: &CancellationToken) {
        let worker = Arc::clone(&self.worker);
        let cancel = cancel.clone();
        let key = row.ordering_key.clone();
        self.in_flight.insert(key.clone());
        self.tasks.spawn(async move {
            let outcome = worker.attempt(row, &cancel).await;
            (key, outcome)
        });
    }

    /// Applies the result of a finished attempt to the breaker and the
    /// disabled state.
    async fn finish(
        &mut self,
        joined: Result<Attempt, tokio::task::JoinError>,
    ) -> Result<(), BridgeError> {
        let (key, outcome) =
            joined.map_err(|error| BridgeError::Task(format!("delivery attempt: {error}")))?;
        self.in_flight.remove(&key);
        let success = match outcome? {
            Outcome::Delivered => true,
            Outcome::Failed => false,
            Outcome::Gone => return self.disable().await,
            Outcome::Abandoned => return Ok(()),
        };
        if let Some(state) = self.breaker.record(success, Instant::now()) {
            self.log_breaker(state);
        }
        Ok(())
    }

    fn log_breaker(&self, state: BreakerState) {
        let endpoint = &self.endpoint;
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

    /// Persists that the endpoint returned `410 Gone` and stops sending.
    async fn disable(&mut self) -> Result<(), BridgeError> {
        if self.disabled {
            return Ok(());
        }
        let key = self.worker.endpoint.key.clone();
        self.worker
            .with_store(move |store| store.disable_endpoint(&key, "receiver returned 410 Gone"))
            .await??;
        self.disabled = true;
        self.worker
            .stats
            .endpoints_disabled
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            endpoint = %self.endpoint,
            "receiver returned 410 Gone; endpoint disabled until \
             `floorwatch deliveries enable URL` is run"
        );
        Ok(())
    }

    /// Reads the disabled state from the database, where the CLI or the
    /// HTTP API may have cleared it.
    async fn refresh_disabled(&mut self) -> Result<(), BridgeError> {
        let key = self.worker.endpoint.key.clone();
        let reason = self
            .worker
            .with_store(move |store| store.endpoint_disabled(&key))
            .await??;
        match (self.disabled, reason) {
            (false, Some(reason)) => {
                self.disabled = true;
                self.worker
                    .stats
                    .endpoints_disabled
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(endpoint = %self.endpoint, %reason, "endpoint is disabled; not sending");
            }
            (true, None) => {
                self.disabled = false;
                self.worker.stats.endpoint_enabled();
                tracing::info!(endpoint = %self.endpoint, "endpoint enabled again; sending");
            }
            _ => {}
        }
        Ok(())
    }
}
