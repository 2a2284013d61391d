//! Partition ownership through leases in a key-value bucket whose entries
//! expire after `lease_ttl_secs` (the bucket's `max_age`).
//!
//! Every instance renews a `member.{instance}` key, and owns the
//! partitions whose `lease.{partition}` key it created and keeps renewing
//! with a write that names the last revision. Each instance aims at its
//! share, `ceil(partitions / members)`: it takes free partitions up to it
//! and releases one above it per round. A partition whose owner stops
//! renewing becomes free when its lease expires.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::jetstream::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::partition::{self, PartitionEnd, Shared};
use crate::config::NatsSettings;
use crate::ingest::Control;
use crate::BridgeError;

/// Bucket of the partition leases and instance heartbeats.
pub const LEASE_BUCKET: &str = "floorwatch_leases";

/// Time one request to the bucket may take, well below a lease's
/// lifetime, so that one slow response does not let the other leases
/// expire.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// Senders of reload requests to the running partitions.
pub type Registry = Arc<Mutex<HashMap<u32, mpsc::Sender<Control>>>>;

fn lease_key(index: u32) -> String {
    format!("lease.{index}")
}

fn member_key(instance: &str) -> String {
    format!("member.{instance}")
}

/// Opens the lease bucket, creating it when missing; its entries expire
/// `lease_ttl_secs` after their last write.
pub async fn bucket(js: &Context, settings: &NatsSettings) -> Result<kv::Store, BridgeError> {
    let ttl = Duration::from_secs(settings.lease_ttl_secs);
    super::streams::key_value(js, LEASE_BUCKET, ttl, settings).await
}

/// A partition this instance runs.
struct Owned {
    revision: u64,
    cancel: CancellationToken,
    task: JoinHandle<PartitionEnd>,
}

/// The lease loop of one instance.
pub struct Leases {
    pub bucket: kv::Store,
    pub shared: Shared,
    pub partitions: u32,
    pub ttl: Duration,
    pub registry: Registry,
}

impl Leases {
    /// Takes, renews and releases leases every third of the lease time
    /// until `cancel` fires, then stops every partition and deletes its
    /// leases so that other instances take over at once.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), BridgeError> {
        let mut owned: BTreeMap<u32, Owned> = BTreeMap::new();
        let interval = (self.ttl / 3).max(Duration::from_millis(500));
        let instance = self.shared.instance.clone();
        loop {
            let heartbeat = self.bucket.put(member_key(&instance), "".into());
            match tokio::time::timeout(REQUEST_TIMEOUT, heartbeat).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "could not renew the instance heartbeat"),
                Err(_) => tracing::warn!("renewing the instance heartbeat timed out"),
            }
            self.reap(&mut owned).await;
            self.renew(&mut owned).await;
            if let Some(members) = self.members().await {
                let target = self.partitions.div_ceil(members.max(1) as u32) as usize;
                if owned.len() < target {
                    self.acquire(&mut owned, target, &cancel).await;
                } else if owned.len() > target {
                    self.release_one(&mut owned).await;
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
        while let Some(index) = owned.keys().next_back().copied() {
            self.release(&mut owned, index).await;
        }
        let _ = self.bucket.delete(member_key(&instance)).await;
        tracing::info!("released every partition");
        Ok(())
    }

    /// Returns the number of instances whose heartbeat is in the bucket,
    /// or `None` when the bucket cannot be read.
    ///
    /// The subjects come from one stream info request: listing the keys
    /// through a consumer can wait forever when an entry expires between
    /// the consumer's creation and its delivery, which happens often in a
    /// bucket of short-lived entries.
    async fn members(&self) -> Option<usize> {
        let request = serde_json::json!({
            "subjects_filter": format!("$KV.{LEASE_BUCKET}.member.*"),
        });
        let response = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.shared.client.request(
                format!("$JS.API.STREAM.INFO.KV_{LEASE_BUCKET}"),
                request.to_string().into(),
            ),
        )
        .await;
        let payload = match response {
            Ok(Ok(message)) => message.payload,
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not count the instances");
                return None;
            }
            Err(_) => {
                tracing::warn!("counting the instances timed out");
                return None;
            }
        };
        let info: serde_json::Value = serde_json::from_slice(&payload).ok()?;
        if let Some(error) = info.get("error") {
            tracing::warn!(%error, "could not count the instances");
            return None;
        }
        Some(
            info["state"]["subjects"]
                .as_object()
                .map_or(0, serde_json::Map::len),
        )
    }

    /// Forgets partitions whose loop ended on its own and logs why.
    async fn reap(&self, owned: &mut BTreeMap<u32, Owned>) {
        let finished: Vec<u32> = owned
            .iter()
            .filter(|(_, partition)| partition.task.is_finished())
            .map(|(index, _)| *index)
            .collect();
        for index in finished {
            let Some(partition) = owned.remove(&index) else {
                continue;
            };
            self.unregister(index);
            match partition.task.await {
                Ok(PartitionEnd::Stopped) => {}
                Ok(PartitionEnd::Fenced) => tracing::warn!(
                    partition = index,
                    "another instance took the partition over"
                ),
                Ok(PartitionEnd::Failed(error)) => tracing::error!(
                    partition = index,
                    %error,
                    "partition stopped; its lease expires and it is taken over again"
                ),
                Err(error) => tracing::error!(partition = index, %error, "partition task failed"),
            }
        }
    }

    /// Renews each lease; a lease that cannot be renewed stops its
    /// partition, because another instance may take it once it expires.
    async fn renew(&self, owned: &mut BTreeMap<u32, Owned>) {
        let indexes: Vec<u32> = owned.keys().copied().collect();
        for index in indexes {
            let revision = owned[&index].revision;
            let renewed = self.bucket.update(
                lease_key(index),
                self.shared.instance.clone().into(),
                revision,
            );
            let renewed = tokio::time::timeout(REQUEST_TIMEOUT, renewed)
                .await
                .unwrap_or_else(|_| Err(kv::UpdateErrorKind::TimedOut.into()));
            match renewed {
                Ok(revision) => {
                    if let Some(partition) = owned.get_mut(&index) {
                        partition.revision = revision;
                    }
                }
                Err(error) => {
                    tracing::warn!(partition = index, %error, "could not renew the lease, stopping the partition");
                    self.stop(owned, index).await;
                }
            }
        }
    }

    /// Takes free partitions until this instance owns `target`, starting
    /// at an offset derived from the instance name so that instances
    /// starting together try different partitions first.
    async fn acquire(
        &self,
        owned: &mut BTreeMap<u32, Owned>,
        target: usize,
        cancel: &CancellationToken,
    ) {
        let offset = self.shared.instance.bytes().fold(0u32, |hash, byte| {
            hash.wrapping_mul(31).wrapping_add(byte.into())
        });
        for step in 0..self.partitions {
            if owned.len() >= target {
                break;
            }
            let index = (offset.wrapping_add(step)) % self.partitions;
            if owned.contains_key(&index) {
                continue;
            }
            // A create that finds the key reads it to tell a deleted lease
            // from a held one. On a freshly created bucket that read can
            // wait for the client's request timeout, so it is bounded here.
            let created = self
                .bucket
                .create(lease_key(index), self.shared.instance.clone().into());
            let Ok(Ok(revision)) = tokio::time::timeout(REQUEST_TIMEOUT, created).await else {
                continue;
            };
            let (control_tx, control_rx) = mpsc::channel(4);
            self.registry
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(index, control_tx);
            let partition_cancel = cancel.child_token();
            let task = tokio::spawn(partition::run(
                self.shared.clone(),
                index,
                control_rx,
                partition_cancel.clone(),
            ));
            tracing::info!(partition = index, "acquired the partition lease");
            owned.insert(
                index,
                Owned {
                    revision,
                    cancel: partition_cancel,
                    task,
                },
            );
        }
    }

    /// Releases the partition with the highest index.
    async fn release_one(&self, owned: &mut BTreeMap<u32, Owned>) {
        if let Some(index) = owned.keys().next_back().copied() {
            tracing::info!(
                partition = index,
                "releasing a partition to balance the instances"
            );
            self.release(owned, index).await;
        }
    }

    /// Stops partition `index` after its batch in progress, then deletes
    /// its lease.
    async fn release(&self, owned: &mut BTreeMap<u32, Owned>, index: u32) {
        let revision = owned.get(&index).map(|partition| partition.revision);
        self.stop(owned, index).await;
        if let Some(revision) = revision {
            if let Err(error) = self
                .bucket
                .delete_expect_revision(lease_key(index), Some(revision))
                .await
            {
                tracing::debug!(partition = index, %error, "could not delete the lease; it expires");
            }
        }
    }

    async fn stop(&self, owned: &mut BTreeMap<u32, Owned>, index: u32) {
        let Some(partition) = owned.remove(&index) else {
            return;
        };
        self.unregister(index);
        partition.cancel.cancel();
        let _ = partition.task.await;
    }

    fn unregister(&self, index: u32) {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&index);
    }
}
