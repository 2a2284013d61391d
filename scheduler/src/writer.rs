//! Group commit of webhook deliveries: one writer task takes every delivery
//! waiting in its queue and stores them in one transaction, so that they
//! share one disk flush. Each sender gets its own outcome only after the
//! commit, so a 2xx still means the delivery is on disk.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::assign::Roster;
use crate::error::ApiError;
use crate::store::{Delivery, Outcome, TaskStore};

/// Maximum number of deliveries stored in one transaction.
pub const MAX_BATCH: usize = 256;

/// Number of deliveries that may wait for the writer before senders wait
/// for room in the queue.
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

/// One queued delivery and where its outcome goes.
struct Job {
    delivery: Delivery,
    reply_tx: oneshot::Sender<Result<Outcome, ApiError>>,
}

/// Sender side of the delivery queue. The writer task ends when every
/// sender is dropped, after storing what was queued.
#[derive(Clone)]
pub struct DeliveryWriter {
    jobs_tx: mpsc::Sender<Job>,
}

impl DeliveryWriter {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Arc<dyn TaskStore>, roster: Roster, keep_open_on_resolve: bool) -> Self {
        let (jobs_tx, jobs_rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(store, roster, keep_open_on_resolve, jobs_rx));
        Self { jobs_tx }
    }

    /// Queues `delivery` and waits until it is committed. A storage failure
    /// is logged by the writer and returned as 500 `storage_error`.
    pub async fn record(&self, delivery: Delivery) -> Result<Outcome, ApiError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job = Job { delivery, reply_tx };
        self.jobs_tx
            .send(job)
            .await
            .map_err(|_| ApiError::storage())?;
        reply_rx.await.unwrap_or_else(|_| Err(ApiError::storage()))
    }
}

async fn run(
    store: Arc<dyn TaskStore>,
    roster: Roster,
    keep_open_on_resolve: bool,
    mut jobs_rx: mpsc::Receiver<Job>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while jobs_rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (deliveries, replies): (Vec<Delivery>, Vec<_>) = jobs
            .drain(..)
            .map(|job| (job.delivery, job.reply_tx))
            .unzip();
        let store = Arc::clone(&store);
        let roster = roster.clone();
        let stored = tokio::task::spawn_blocking(move || {
            store.record_deliveries(&deliveries, &roster, keep_open_on_resolve)
        })
        .await;
        let outcomes: Vec<Result<Outcome, ApiError>> = match stored {
            Ok(Ok(outcomes)) => outcomes
                .into_iter()
                .map(|outcome| {
                    outcome.map_err(|error| {
                        tracing::error!(%error, "delivery not stored");
                        ApiError::storage()
                    })
                })
                .collect(),
            Ok(Err(error)) => {
                tracing::error!(%error, batch = replies.len(), "delivery batch not committed");
                replies.iter().map(|_| Err(ApiError::storage())).collect()
            }
            Err(error) => {
                tracing::error!(%error, batch = replies.len(), "delivery batch panicked");
                replies.iter().map(|_| Err(ApiError::storage())).collect()
            }
        };
        for (reply_tx, reply) in replies.into_iter().zip(outcomes) {
            // The request may have been cancelled; its delivery is stored
            // anyway and a retry will be a duplicate.
            let _ = reply_tx.send(reply);
        }
    }
}
