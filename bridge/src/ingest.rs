//! The ingest task: collects queued payloads into batches, runs each batch
//! through the pipeline on a blocking thread, then acknowledges the MQTT
//! messages, publishes rejection reports and incident state, and wakes the
//! delivery workers.

use std::sync::Arc;

use rumqttc::{AsyncClient, QoS};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::pipeline::{Inbound, Processor, Publication};
use crate::BridgeError;

/// Largest number of payloads committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// A payload queued for ingest, with what to do once it is committed.
#[derive(Debug)]
pub struct Queued {
    pub inbound: Inbound,
    /// The MQTT message to acknowledge after the commit.
    pub ack: Option<rumqttc::Publish>,
    /// Signalled after the commit, for callers that wait.
    pub done: Option<oneshot::Sender<()>>,
}

/// Runs batches until `cancel` fires or every sender is dropped. The batch
/// in progress when `cancel` fires is finished and committed.
pub async fn run(
    mut queue_rx: mpsc::Receiver<Queued>,
    mut processor: Processor,
    client: AsyncClient,
    wakers: Vec<Arc<Notify>>,
    cancel: CancellationToken,
) -> Result<(), BridgeError> {
    loop {
        let first = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
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

        let inbound: Vec<Inbound> = batch.iter().map(|queued| queued.inbound.clone()).collect();
        let (returned, result) = tokio::task::spawn_blocking(move || {
            let result = processor.process(&inbound);
            (processor, result)
        })
        .await
        .map_err(|error| BridgeError::Task(format!("ingest batch: {error}")))?;
        processor = returned;
        let result = result?;

        for publication in result.publications {
            publish(&client, publication);
        }
        if result.outbox_rows > 0 {
            wakers.iter().for_each(|waker| waker.notify_one());
        }
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
    tracing::info!("ingest stopped");
    Ok(())
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
