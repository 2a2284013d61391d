//! The loop of one delivery worker: sends due rows of the in-memory queue,
//! up to `max_concurrency` at once and one per incident, within the rate
//! limit and the circuit breaker, and stops while the endpoint is disabled.
//!
//! Finished attempts are recorded by group commit: while one transaction
//! commits, the attempts that finish meanwhile wait and then share the next
//! one. An incident's next row is sent only after the previous attempt's
//! record is committed, so a restart never finds a later event delivered
//! before an earlier one was recorded. A commit that fails, on a full disk
//! for example, is tried again a second later. Its rows stay in flight
//! meanwhile, so this process does not send them twice.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::limits::{BreakerState, CircuitBreaker, Permit, TokenBucket};
use super::queue::{Queue, QueuedRow};
use super::{redact, with_store, Finished, Outcome, Worker, MAX_BODIES_HELD, ROWS_PER_QUERY};
use crate::stats::bump;
use crate::store::{RowUpdate, Store, StoreError};
use crate::BridgeError;

/// Maximum wait between two reads of the outbox, so rows replayed by
/// another process and an endpoint enabled from the CLI are seen within
/// about this long.
const POLL: Duration = Duration::from_secs(1);

/// Attempts that one transaction records at most.
const MAX_COMMIT: usize = 1024;

/// Wait before a failed commit of attempt records is tried again.
const COMMIT_RETRY: Duration = Duration::from_secs(1);

type Commit = JoinHandle<(Vec<Finished>, Result<(), StoreError>)>;

struct Dispatcher {
    worker: Arc<Worker>,
    /// Connection for reads, separate from the one that commits.
    reader: Arc<Mutex<Store>>,
    endpoint: String,
    max_concurrency: usize,
    breaker: CircuitBreaker,
    bucket: Option<TokenBucket>,
    queue: Queue,
    /// Attempts in flight.
    tasks: JoinSet<Result<Finished, BridgeError>>,
    /// Finished attempts waiting for the next commit.
    unrecorded: Vec<Finished>,
    /// The commit running now, if any.
    commit: Option<Commit>,
    /// Set after a commit failed: when its records may be committed again.
    commit_retry_at: Option<Instant>,
    /// Commits failed in a row.
    commit_failures: u32,
    /// Whether the last read of new rows stopped at its limit.
    more_rows: bool,
    last_poll: Instant,
    disabled: bool,
}

/// Cause of a wake-up of the loop.
enum Wakeup {
    Cancelled,
    Attempt(Result<Result<Finished, BridgeError>, JoinError>),
    Committed(Result<(Vec<Finished>, Result<(), StoreError>), JoinError>),
    Notified,
    Timer,
}

impl Worker {
    /// Delivers until `cancel` fires; attempts in flight then get up to
    /// five seconds to finish, and every finished attempt is recorded.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), BridgeError> {
        let reader = with_store(&self.store, |store| store.open_another()).await??;
        let mut dispatcher = Dispatcher::new(self, reader);
        tracing::info!(endpoint = %dispatcher.endpoint, "delivery worker started");
        dispatcher.refresh_disabled().await?;
        dispatcher.read_new_rows().await?;
        let result = dispatcher.run(&cancel).await;
        let drained = dispatcher.drain().await;
        tracing::info!(endpoint = %dispatcher.endpoint, "delivery worker stopped");
        result.and(drained)
    }
}

impl Dispatcher {
    fn new(worker: Worker, reader: Store) -> Self {
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
            queue: Queue::default(),
            tasks: JoinSet::new(),
            unrecorded: Vec::new(),
            commit: None,
            commit_retry_at: None,
            commit_failures: 0,
            more_rows: false,
            last_poll: now,
            disabled: false,
            reader: Arc::new(Mutex::new(reader)),
            worker: Arc::new(worker),
        }
    }

    async fn run(&mut self, cancel: &CancellationToken) -> Result<(), BridgeError> {
        loop {
            let wait = match self.disabled {
                true => POLL,
                false => self.dispatch(cancel),
            };
            let mut wait = wait.min(POLL.saturating_sub(self.last_poll.elapsed()));
            if let Some(retry_at) = self.commit_retry_at {
                wait = wait.min(retry_at.saturating_duration_since(Instant::now()));
            }
            let wake = Arc::clone(&self.worker.wake);
            let wakeup = tokio::select! {
                () = cancel.cancelled() => Wakeup::Cancelled,
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    Wakeup::Attempt(joined)
                }
                joined = join_commit(&mut self.commit), if self.commit.is_some() => {
                    Wakeup::Committed(joined)
                }
                () = wake.notified() => Wakeup::Notified,
                () = tokio::time::sleep(wait) => Wakeup::Timer,
            };
            match wakeup {
                Wakeup::Cancelled => return Ok(()),
                Wakeup::Attempt(joined) => self.finish(joined).await?,
                Wakeup::Committed(joined) => {
                    self.commit = None;
                    self.committed(joined)?;
                    if self.more_rows {
                        self.read_new_rows().await?;
                    }
                }
                Wakeup::Notified => self.read_new_rows().await?,
                Wakeup::Timer => {}
            }
            if self.last_poll.elapsed() >= POLL {
                self.poll().await?;
            }
            self.start_commit();
        }
    }

    /// Waits for the attempts in flight and records every finished one.
    async fn drain(&mut self) -> Result<(), BridgeError> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(error) = self.finish(joined).await {
                first_error.get_or_insert(error);
            }
        }
        let mut retried = false;
        loop {
            if let Some(commit) = self.commit.take() {
                if let Err(error) = self.committed(commit.await) {
                    first_error.get_or_insert(error);
                }
            }
            if self.unrecorded.is_empty() {
                break;
            }
            if self.commit_retry_at.is_some() {
                if retried {
                    // The rows of these attempts stay pending in the
                    // outbox and are sent again after a restart.
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        attempts = self.unrecorded.len(),
                        "stopping with delivery attempts not recorded; their rows are sent again after a restart"
                    );
                    break;
                }
                // One more try without waiting, in case the cause is gone.
                retried = true;
                self.commit_retry_at = None;
            }
            self.start_commit();
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Starts attempts at due rows while the limits allow, and returns how
    /// long to wait before looking again.
    fn dispatch(&mut self, cancel: &CancellationToken) -> Duration {
        let now_ms = Utc::now().timestamp_millis();
        while self.tasks.len() < self.max_concurrency {
            let Some(next_at) = self.queue.next_due_at() else {
                return POLL;
            };
            if next_at > now_ms {
                return Duration::from_millis((next_at - now_ms) as u64);
            }
            if let Some(wait) = self.admit() {
                return wait;
            }
            let row = self.queue.pop_due(now_ms).expect("a row is due");
            self.spawn(row, cancel);
        }
        // A finished attempt wakes the loop.
        POLL
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

    fn spawn(&mut self, row: QueuedRow, cancel: &CancellationToken) {
        let worker = Arc::clone(&self.worker);
        let reader = Arc::clone(&self.reader);
        let cancel = cancel.clone();
        self.tasks
            .spawn(async move { worker.attempt(&reader, row, &cancel).await });
    }

    /// Applies the result of a finished attempt to the breaker and the
    /// disabled state, and queues its record for the next commit.
    async fn finish(
        &mut self,
        joined: Result<Result<Finished, BridgeError>, JoinError>,
    ) -> Result<(), BridgeError> {
        let finished =
            joined.map_err(|error| BridgeError::Task(format!("delivery attempt: {error}")))??;
        let success = match finished.outcome {
            Outcome::Delivered => Some(true),
            Outcome::Failed | Outcome::Gone => Some(false),
            Outcome::Abandoned => None,
            Outcome::Vanished => {
                tracing::warn!(
                    endpoint = %self.endpoint,
                    incident = %finished.ordering_key,
                    "an outbox row stopped being pending before its attempt; skipping it"
                );
                None
            }
        };
        // A 410 counts as a failure too. When the probe got the 410, the
        // breaker would otherwise wait for the probe's result forever and
        // send nothing once the endpoint is enabled again.
        if let Some(success) = success {
            if let Some(state) = self.breaker.record(success, Instant::now()) {
                self.log_breaker(state);
            }
        }
        if finished.outcome == Outcome::Gone {
            self.disable().await?;
        }
        self.unrecorded.push(finished);
        Ok(())
    }

    /// Starts committing the finished attempts unless a commit is running.
    fn start_commit(&mut self) {
        if self.commit.is_some() || self.unrecorded.is_empty() {
            return;
        }
        if let Some(retry_at) = self.commit_retry_at {
            if Instant::now() < retry_at {
                return;
            }
            self.commit_retry_at = None;
        }
        let count = self.unrecorded.len().min(MAX_COMMIT);
        let batch: Vec<Finished> = self.unrecorded.drain(..count).collect();
        let store = Arc::clone(&self.worker.store);
        let endpoint = self.worker.endpoint.key.clone();
        self.commit = Some(tokio::task::spawn_blocking(move || {
            let records: Vec<_> = batch
                .iter()
                .filter_map(|finished| finished.record.clone())
                .collect();
            let mut store = store
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let result = match records.is_empty() {
                true => Ok(()),
                false => store.record_attempts(&endpoint, &records),
            };
            (batch, result)
        }));
    }

    /// Applies a finished commit to the queue and the statistics.
    fn committed(
        &mut self,
        joined: Result<(Vec<Finished>, Result<(), StoreError>), JoinError>,
    ) -> Result<(), BridgeError> {
        let (batch, result) =
            joined.map_err(|error| BridgeError::Task(format!("recording attempts: {error}")))?;
        if let Err(error) = result {
            self.commit_failures += 1;
            tracing::error!(
                endpoint = %self.endpoint,
                %error,
                attempts = batch.len(),
                failures = self.commit_failures,
                retry_in_ms = COMMIT_RETRY.as_millis() as u64,
                "recording delivery attempts failed, so their rows stay in flight and the records are tried again"
            );
            self.unrecorded.splice(0..0, batch);
            self.commit_retry_at = Some(Instant::now() + COMMIT_RETRY);
            return Ok(());
        }
        if self.commit_failures > 0 {
            tracing::info!(
                endpoint = %self.endpoint,
                failures = self.commit_failures,
                "recording delivery attempts works again"
            );
            self.commit_failures = 0;
        }
        let stats = &self.worker.stats;
        for finished in batch {
            let key = &finished.ordering_key;
            let Some(record) = finished.record else {
                if finished.outcome == Outcome::Vanished {
                    self.queue.remove(key, finished.outbox_id);
                }
                self.queue.release(key);
                continue;
            };
            self.queue.complete(key, record.outbox_id, record.update);
            match record.update {
                RowUpdate::Delivered => {
                    bump(&stats.deliveries_succeeded);
                    stats.outbox_done(1);
                }
                RowUpdate::Retry { .. } => bump(&stats.delivery_attempts_failed),
                RowUpdate::Dead => {
                    bump(&stats.delivery_attempts_failed);
                    bump(&stats.dead_letters);
                    stats.outbox_done(1);
                }
            }
        }
        Ok(())
    }

    /// Reads pending rows added after the queue's cursor, while the queue
    /// keeps fewer bodies than its limit.
    async fn read_new_rows(&mut self) -> Result<(), BridgeError> {
        if self.queue.bodies() >= MAX_BODIES_HELD {
            // Rows behind another row of their incident cannot be sent
            // yet; their bodies are read again when they can.
            self.queue.drop_waiting_bodies();
        }
        let room = MAX_BODIES_HELD.saturating_sub(self.queue.bodies());
        if room == 0 {
            self.more_rows = true;
            return Ok(());
        }
        let limit = room.min(ROWS_PER_QUERY);
        let key = self.worker.endpoint.key.clone();
        let cursor = self.queue.cursor();
        let rows = with_store(&self.reader, move |store| {
            store.pending_after(&key, cursor, limit)
        })
        .await??;
        self.more_rows = rows.len() == limit;
        for row in rows {
            self.queue.push_new(row.into());
        }
        Ok(())
    }

    /// Runs the checks made once per `POLL`: the disabled state, rows that
    /// a replay made pending again, and new rows no wake-up announced.
    async fn poll(&mut self) -> Result<(), BridgeError> {
        self.last_poll = Instant::now();
        self.refresh_disabled().await?;
        let key = self.worker.endpoint.key.clone();
        let cursor = self.queue.cursor();
        let rows = with_store(&self.reader, move |store| {
            store.unattempted_up_to(&key, cursor)
        })
        .await??;
        for row in rows {
            if !self.queue.holds(row.id) {
                self.queue.insert(row.into());
            }
        }
        self.read_new_rows().await
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
        with_store(&self.reader, move |store| {
            store.disable_endpoint(&key, "receiver returned 410 Gone")
        })
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
        let reason = with_store(&self.reader, move |store| store.endpoint_disabled(&key)).await??;
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

/// Waits for the running commit; never completes when there is none.
async fn join_commit(
    commit: &mut Option<Commit>,
) -> Result<(Vec<Finished>, Result<(), StoreError>), JoinError> {
    match commit {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}
