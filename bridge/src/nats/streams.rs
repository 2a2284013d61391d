//! The JetStream streams and consumers the bridge creates when they are
//! missing, with the settings every instance must agree on.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType, Stream};
use async_nats::jetstream::Context;

use super::subjects::Subjects;
use crate::config::NatsSettings;
use crate::BridgeError;

/// Stream of readings, captured from the MQTT listener's subjects.
pub const READINGS_STREAM: &str = "FLOORWATCH_READINGS";

/// Age after which the readings stream drops a reading, consumed or not.
const READINGS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Readings delivered to one consumer and not yet acknowledged. A batch of
/// the ingest loop is at most this long.
pub const MAX_ACK_PENDING: i64 = 2048;

/// Returns the durable consumer name of partition `index`.
pub fn consumer_name(index: u32) -> String {
    format!("floorwatch-p{index}")
}

fn nats_error(action: &'static str, error: impl std::fmt::Display) -> BridgeError {
    BridgeError::Nats {
        action,
        detail: error.to_string(),
    }
}

/// Opens the readings stream, creating it when missing, and checks that it
/// captures the subjects of `subjects`' partition count.
pub async fn readings(
    js: &Context,
    subjects: &Subjects,
    settings: &NatsSettings,
) -> Result<Stream, BridgeError> {
    let config = Config {
        name: READINGS_STREAM.to_owned(),
        subjects: subjects.stream_subjects(),
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        num_replicas: settings.replicas,
        max_age: READINGS_MAX_AGE,
        ..Config::default()
    };
    let mut stream = js
        .get_or_create_stream(config)
        .await
        .map_err(|error| nats_error("opening the readings stream", error))?;
    let info = stream
        .info()
        .await
        .map_err(|error| nats_error("reading the readings stream's settings", error))?;
    let expected = subjects.stream_subjects();
    if info.config.subjects != expected {
        return Err(BridgeError::Nats {
            action: "checking the readings stream",
            detail: format!(
                "stream {READINGS_STREAM} captures {:?} but bridge.nats.partitions = {} needs \
                 {expected:?}: give every bridge the same partition count, or change the \
                 stream's subjects (nats stream edit) after draining it",
                info.config.subjects,
                subjects.partitions()
            ),
        });
    }
    Ok(stream)
}

/// Returns the durable pull consumer of partition `index`, creating it when
/// missing. `start_after` recreates it to deliver from the stream sequence
/// after that one, so that readings come again in stream order after a
/// takeover.
pub async fn partition_consumer(
    stream: &Stream,
    subjects: &Subjects,
    settings: &NatsSettings,
    index: u32,
    start_after: Option<u64>,
) -> Result<PullConsumer, BridgeError> {
    let name = consumer_name(index);
    let mut config = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: subjects.partition_filter(index),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(settings.ack_wait_secs),
        max_ack_pending: MAX_ACK_PENDING,
        deliver_policy: DeliverPolicy::All,
        ..pull::Config::default()
    };
    let Some(sequence) = start_after else {
        return stream
            .get_or_create_consumer(&name, config)
            .await
            .map_err(|error| nats_error("creating a partition consumer", error));
    };
    config.deliver_policy = DeliverPolicy::ByStartSequence {
        start_sequence: sequence + 1,
    };
    // A missing consumer is fine; any other failure shows on creation.
    let _ = stream.delete_consumer(&name).await;
    stream
        .create_consumer(config)
        .await
        .map_err(|error| nats_error("recreating a partition consumer", error))
}

/// Opens key-value bucket `bucket`, creating its stream when missing with
/// the settings of the NATS key-value design: `KV_{bucket}` capturing
/// `$KV.{bucket}.>`, one message per key, rollups allowed, deletes denied,
/// and new writes rejected when full.
///
/// The stream is created directly because async-nats 0.52 reads the
/// account information before creating a bucket and cannot parse that of
/// nats-server 2.9. Direct gets are off, so every read goes to the stream
/// leader: with nats-server 2.9.10, direct gets on a replicated stream
/// created a moment before went unanswered until the client's timeout.
pub async fn key_value(
    js: &Context,
    bucket: &str,
    max_age: Duration,
    settings: &NatsSettings,
) -> Result<async_nats::jetstream::kv::Store, BridgeError> {
    let config = Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: StorageType::File,
        num_replicas: settings.replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: false,
        discard: async_nats::jetstream::stream::DiscardPolicy::New,
        ..Config::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|error| nats_error("opening a key-value bucket", error))?;
    js.get_key_value(bucket)
        .await
        .map_err(|error| nats_error("opening a key-value bucket", error))
}
