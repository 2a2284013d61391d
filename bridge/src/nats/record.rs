//! The state record of a partition, one key per partition in the state
//! bucket: the stream sequence of the last committed reading, the state of
//! every sensor of the partition (rule state machines with their open
//! incidents), and the webhook events of the last commit.
//!
//! Writing the record is the commit point of a batch. Each write names the
//! revision it replaces, so an instance that lost its lease cannot
//! overwrite the record of the instance that took the partition over.

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};

use crate::sensor::SensorState;
use crate::BridgeError;

/// Bucket of the partition state records.
pub const STATE_BUCKET: &str = "floorwatch_state";

/// State of every sensor of a partition: site, sensor, state.
pub type SensorStates = Vec<(String, String, SensorState)>;

/// A webhook event for one endpoint, waiting to be stored in the outbox
/// stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// `webhook-id`, the same on every attempt and every endpoint.
    pub event_id: String,
    /// Index of the endpoint in `bridge.endpoints`.
    pub endpoint: usize,
    pub event_type: String,
    /// The signed body, as stored by the pipeline.
    pub body: String,
}

/// The persisted state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Instance that wrote the record.
    pub owner: String,
    /// Stream sequence of the newest reading whose effect is in `sensors`.
    pub committed_seq: u64,
    /// State of every sensor seen in the partition: site, sensor, state.
    pub sensors: SensorStates,
    /// Events of the last commit, stored in the outbox stream right after
    /// the record. An instance taking over stores them again, and the
    /// stream's duplicate window drops the copies.
    pub pending: Vec<OutboxEntry>,
}

/// Returns the key of partition `index`.
pub fn key(index: u32) -> String {
    format!("p{index}")
}

/// A record and the revision it was read or written at; 0 when the key
/// has never been written.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub record: PartitionRecord,
    pub revision: u64,
}

/// Reads the record of partition `index`, or an empty one.
pub async fn load(bucket: &kv::Store, index: u32) -> Result<Versioned, BridgeError> {
    let entry = bucket
        .entry(key(index))
        .await
        .map_err(|error| BridgeError::Nats {
            action: "reading a partition record",
            detail: error.to_string(),
        })?;
    let Some(entry) = entry.filter(|entry| entry.operation == kv::Operation::Put) else {
        return Ok(Versioned {
            record: PartitionRecord::default(),
            revision: 0,
        });
    };
    let record = serde_json::from_slice(&entry.value).map_err(|error| BridgeError::Nats {
        action: "reading a partition record",
        detail: format!("the record of partition {index} is not valid JSON: {error}"),
    })?;
    Ok(Versioned {
        record,
        revision: entry.revision,
    })
}

/// Failure of a record write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Another instance wrote the record since `revision`: this instance no
    /// longer owns the partition.
    #[error("partition {index} was written by another instance")]
    Fenced { index: u32 },
    #[error("writing the record of partition {index} failed: {detail}")]
    Failed { index: u32, detail: String },
}

/// Writes `record` over `revision` and returns the new revision.
pub async fn write(
    bucket: &kv::Store,
    index: u32,
    record: &PartitionRecord,
    revision: u64,
) -> Result<u64, WriteError> {
    // Serializing plain data with string keys cannot fail.
    let value = serde_json::to_vec(record).expect("partition record serializes");
    let result = match revision {
        0 => bucket
            .create(key(index), value.into())
            .await
            .map_err(|error| {
                (
                    error.kind() == kv::CreateErrorKind::AlreadyExists,
                    error.to_string(),
                )
            }),
        _ => bucket
            .update(key(index), value.into(), revision)
            .await
            .map_err(|error| {
                (
                    error.kind() == kv::UpdateErrorKind::WrongLastRevision,
                    error.to_string(),
                )
            }),
    };
    match result {
        Ok(revision) => Ok(revision),
        Err((true, _)) => Err(WriteError::Fenced { index }),
        Err((false, detail)) => Err(WriteError::Failed { index, detail }),
    }
}

/// Opens the state bucket, creating it when missing. It keeps only the
/// newest revision of each record.
pub async fn bucket(
    js: &async_nats::jetstream::Context,
    settings: &crate::config::NatsSettings,
) -> Result<kv::Store, BridgeError> {
    super::streams::key_value(js, STATE_BUCKET, std::time::Duration::ZERO, settings).await
}
