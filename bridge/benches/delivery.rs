//! Webhook delivery throughput: a bridge started on an outbox that already
//! contains 500 `incident.opened` events, one per incident, sends them to a
//! recording receiver on loopback. The time covers signing, HTTP and the
//! SQLite commit of each attempt; ingest and rules are not part of it.
//!
//! Run with `cargo bench -p floorwatch-bridge --bench delivery`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::{config, Receiver};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use floorwatch_bridge::store::{BatchWrite, NewEvent};
use floorwatch_bridge::Store;
use floorwatch_protocol::{Event, IncidentData};
use tokio_util::sync::CancellationToken;

const EVENTS: u64 = 500;

fn opened_event(index: u64, endpoint: &str) -> NewEvent {
    let event: Event<IncidentData> = serde_json::from_value(serde_json::json!({
        "type": "incident.opened",
        "timestamp": "2026-12-04T12:00:30Z",
        "data": {
            "incident_id": format!("inc_bench_{index}"), "seq": 1, "site": "plant-1",
            "sensor": format!("oven-{index}"), "metric": "temperature",
            "rule": "temperature-high", "condition": "above", "threshold": 30.0,
            "clear_threshold": 29.0, "value": 31.5, "unit": "°C", "severity": "warning",
            "first_breach_at": "2026-12-04T12:00:10Z", "opened_at": "2026-12-04T12:00:30Z",
            "reason": "benchmark", "window": []
        }
    }))
    .expect("valid event");
    let body = serde_json::to_vec(&event).expect("event serializes");
    NewEvent {
        event_id: format!("msg_bench_{index}"),
        event,
        body,
        endpoints: vec![endpoint.to_owned()],
    }
}

/// Fills a new outbox, starts a bridge on it and returns the time until
/// every event is delivered.
async fn deliver_all(max_concurrency: usize) -> Duration {
    let receiver = Receiver::start(200).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut endpoint = receiver.endpoint();
    endpoint.max_concurrency = max_concurrency;
    let settings = config(&dir, vec![endpoint], &[10]);
    let batch = BatchWrite {
        sensors: Vec::new(),
        events: (0..EVENTS)
            .map(|index| opened_event(index, &receiver.url))
            .collect(),
    };
    Store::open(&settings.database)
        .expect("database opens")
        .write_batch(&batch, Utc::now())
        .expect("outbox is filled");

    let started = Instant::now();
    let shutdown = CancellationToken::new();
    let handle = floorwatch_bridge::start(settings, shutdown.clone())
        .await
        .expect("bridge starts");
    while handle.stats().deliveries_succeeded < EVENTS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    handle.wait().await.expect("bridge stops");
    elapsed
}

fn delivery(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("Tokio runtime");
    let mut group = c.benchmark_group("delivery");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));
    for max_concurrency in [1, 4, 16] {
        let name = format!("{EVENTS}_events_concurrency_{max_concurrency}");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| runtime.block_on(deliver_all(max_concurrency)))
                    .sum()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, delivery);
criterion_main!(benches);
