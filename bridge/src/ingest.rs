//! The ingest task: collects queued payloads into batches, runs each batch
//! through the pipeline on a blocking thread, then acknowledges the MQTT
//! messages, publishes rejection reports and incident state, and wakes the
//! delivery workers. The same task runs the timer tick every second and
//! applies config reloads, so the processor has a single owner.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::BridgeConfig;
use crate::pipeline::{BatchResult, Inbound, Processor, Publication};
use crate::BridgeError;

/// Largest number of payloads committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// Wait before a batch whose commit failed is processed again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Time between two timer ticks (silence and reminders).
const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// A payload queued for ingest, with what to do once it is committed.
#[derive(Debug)]
pub struct Queued {
    pub inbound: Inbound,
    /// The MQTT message to acknowledge after the commit.
    pub ack: Option<rumqttc::Publish>,
    /// Signalled after the commit, for callers that wait.
    pub done: Option<oneshot::Sender<()>>,
}

/// Acknowledgement and waiter of a [`Queued`] payload, kept after the
/// payload went to the pipeline.
struct AfterCommit {
    ack: Option<rumqttc::Publish>,
    done: Option<oneshot::Sender<()>>,
}

/// A request to the ingest task other than a payload.
#[derive(Debug)]
pub enum Control {
    /// Apply the rule settings of a validated config.
    Reload {
        config: Box<BridgeConfig>,
        done: oneshot::Sender<Result<(), BridgeError>>,
    },
}

/// Everything the ingest task owns.
pub struct Ingest {
    pub queue_rx: mpsc::Receiver<Queued>,
    pub control_rx: mpsc::Receiver<Control>,
    pub processor: Processor,
    pub client: AsyncClient,
    pub wakers: Vec<Arc<Notify>>,
}

/// Runs batches, timer ticks and reloads until `cancel` fires or every
/// sender is dropped. The batch in progress when `cancel` fires is finished
/// and committed.
pub async fn run(ingest: Ingest, cancel: CancellationToken) -> Result<(), BridgeError> {
    let Ingest {
        mut queue_rx,
        mut control_rx,
        mut processor,
        client,
        wakers,
    } = ingest;
    let mut ticker = tokio::time::interval(TICK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(control) = control_rx.recv() => {
                let Control::Reload { config, done } = control;
                let (returned, result) =
                    blocking(processor, move |p| p.reload(&config, Utc::now())).await?;
                processor = returned;
                let result = result.map_err(BridgeError::from);
                if let Ok(batch) = &result {
                    finish(&client, &wakers, batch.clone());
                }
                let _ = done.send(result.map(drop));
                continue;
            }
            _ = ticker.tick() => {
                let (returned, result) = blocking(processor, |p| p.tick(Utc::now())).await?;
                processor = returned;
                match result {
                    Ok(result) => finish(&client, &wakers, result),
                    // A failed tick changed nothing in memory, and the next
                    // tick a second later finds the same work due.
                    Err(error) => tracing::error!(
                        %error,
                        "committing the timer tick failed, so silence and reminder checks wait for the next tick"
                    ),
                }
                continue;
            }
            queued = queue_rx.recv() => match queued {
                Some(queued) => queued,
                None => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue_rx.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }

        let (inbound, after): (Vec<Inbound>, Vec<AfterCommit>) = batch
            .into_iter()
            .map(|queued| {
                let after = AfterCommit {
                    ack: queued.ack,
                    done: queued.done,
                };
                (queued.inbound, after)
            })
            .unzip();
        let (returned, result) = commit_batch(processor, inbound, &cancel).await?;
        processor = returned;
        finish(&client, &wakers, result);
        acknowledge(&client, after).await;
    }
    tracing::info!("ingest stopped");
    Ok(())
}

/// Processes `inbound` and commits it, trying again every
/// [`RETRY_DELAY`] while the commit fails (a full disk, for one), so the
/// bridge resumes by itself once the cause is gone. Nothing of a failed
/// attempt is committed or acknowledged. Returns the error when `cancel`
/// fires between attempts.
async fn commit_batch(
    mut processor: Processor,
    inbound: Vec<Inbound>,
    cancel: &CancellationToken,
) -> Result<(Processor, BatchResult), BridgeError> {
    let inbound = Arc::new(inbound);
    let mut failures: u32 = 0;
    loop {
        let batch = Arc::clone(&inbound);
        let (returned, result) = blocking(processor, move |p| p.process(&batch)).await?;
        processor = returned;
        let error = match result {
            Ok(result) => {
                if failures > 0 {
                    tracing::info!(failures, "committed the batch after failed attempts");
                }
                return Ok((processor, result));
            }
            Err(error) => error,
        };
        failures += 1;
        tracing::error!(
            %error,
            readings = inbound.len(),
            attempt = failures,
            retry_in_ms = RETRY_DELAY.as_millis() as u64,
            "committing a batch failed, so its readings stay unacknowledged and the batch is tried again"
        );
        tokio::select! {
            () = cancel.cancelled() => return Err(error.into()),
            () = tokio::time::sleep(RETRY_DELAY) => {}
        }
    }
}

/// Runs `work` on a blocking thread and hands the processor back.
async fn blocking<T: Send + 'static>(
    mut processor: Processor,
    work: impl FnOnce(&mut Processor) -> T + Send + 'static,
) -> Result<(Processor, T), BridgeError> {
    tokio::task::spawn_blocking(move || {
        let result = work(&mut processor);
        (processor, result)
    })
    .await
    .map_err(|error| BridgeError::Task(format!("ingest batch: {error}")))
}

/// Publishes what a committed batch produced and wakes the delivery workers.
fn finish(client: &AsyncClient, wakers: &[Arc<Notify>], result: BatchResult) {
    for publication in result.publications {
        publish(client, publication);
    }
    if result.outbox_rows > 0 {
        wakers.iter().for_each(|waker| waker.notify_one());
    }
}

/// Acknowledges the MQTT messages of a committed batch and signals waiting
/// callers.
async fn acknowledge(client: &AsyncClient, batch: Vec<AfterCommit>) {
    for queued in batch {
        if let Some(message) = &queued.ack {
            // An ack that cannot be queued leaves the message with the
            // broker, which delivers it again after a reconnect; the
            // sequence check drops the repeat.
            if let Err(error) = client.ack(message).await {
                tracing::warn!(%error, "could not queue an MQTT acknowledgement");
            }
        }
        if let Some(done) = queued.done {
            let _ = done.send(());
        }
    }
}

/// Queues an MQTT publication without waiting; a full request queue (the
/// broker is unreachable) drops it with a debug log.
fn publish(client: &AsyncClient, publication: Publication) {
    let qos = if publication.retain {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    };
    let topic = publication.topic;
    if let Err(error) = client.try_publish(&topic, qos, publication.retain, publication.payload) {
        tracing::debug!(%topic, %error, "could not queue an MQTT publication");
    }
}
