//! The two tasks between the outbox and the publisher: one sends stored
//! readings in row order while the broker is connected, the other deletes
//! the rows whose PubAck arrived.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::{with_outbox, AgentError, AgentStats, SharedOutbox};
use crate::publisher::PublisherHandle;

/// Rows read from the outbox at a time.
const BATCH: usize = 64;

/// Acknowledged rows deleted in one transaction at most.
const DELETE_BATCH: usize = 512;

/// Sends every stored reading once, oldest first, and waits on `wake` for
/// new ones. Readings are handed to the publisher only while the broker is
/// connected, so an outage leaves them in the outbox, where the bounds
/// apply. After `draining` is cancelled it returns once nothing is left.
///
/// NOTE: readings handed over just before a connection drops (at most
/// `max_inflight`) stay in the publisher's memory and are sent after the
/// reconnect even if the bounds drop their rows meanwhile.
pub(super) async fn send_stored(
    outbox: SharedOutbox,
    publisher: PublisherHandle,
    wake: Arc<Notify>,
    draining: CancellationToken,
) -> Result<(), AgentError> {
    let mut cursor = 0;
    loop {
        tokio::select! {
            () = publisher.wait_connected() => {}
            () = draining.cancelled() => return Ok(()),
        }
        let batch = with_outbox(&outbox, move |outbox| outbox.next_batch(cursor, BATCH)).await??;
        if batch.is_empty() {
            if draining.is_cancelled() {
                return Ok(());
            }
            tokio::select! {
                () = wake.notified() => {}
                () = draining.cancelled() => {}
            }
            continue;
        }
        for entry in &batch {
            publisher.publish_entry(entry).await?;
            cursor = entry.id;
        }
    }
}

/// Deletes the outbox rows reported on `acked_rx` until the publisher is
/// gone. A failed delete is logged: the rows are sent again after the next
/// start, so a subscriber may see them twice.
pub(super) async fn delete_acked(
    outbox: SharedOutbox,
    mut acked_rx: mpsc::UnboundedReceiver<i64>,
    stats: Arc<AgentStats>,
) {
    while let Some(first) = acked_rx.recv().await {
        let mut ids = vec![first];
        while ids.len() < DELETE_BATCH {
            match acked_rx.try_recv() {
                Ok(id) => ids.push(id),
                Err(_) => break,
            }
        }
        let count = ids.len() as u64;
        let task_stats = Arc::clone(&stats);
        let deleted = with_outbox(&outbox, move |outbox| {
            let deleted = outbox.delete(&ids);
            task_stats.record_outbox(outbox);
            deleted
        })
        .await;
        match deleted {
            Ok(Ok(())) => {
                stats.acked.fetch_add(count, Ordering::Relaxed);
            }
            Ok(Err(error)) => {
                tracing::error!(%error, count, "failed to delete acknowledged readings")
            }
            Err(error) => tracing::error!(%error, count, "failed to delete acknowledged readings"),
        }
    }
}
