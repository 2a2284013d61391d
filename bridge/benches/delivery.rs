//! Webhook delivery benchmarks against a recording receiver on loopback.
//!
//! Throughput (criterion): a bridge started on an outbox that already
//! contains `incident.opened` events, one per incident, sends them all. The
//! time covers bridge start-up, signing, HTTP and the durable commits of the
//! attempt records; ingest and rules are not part of it.
//!
//! ```sh
//! cargo bench -p floorwatch-bridge --bench delivery
//! ```
//!
//! Latency (`--latency`): readings go in through `BridgeHandle::ingest` at
//! a steady rate, each one opening or resolving an incident, and the
//! benchmark prints percentiles of the time from ingest to the receiver.
//!
//! ```sh
//! cargo bench -p floorwatch-bridge --bench delivery -- --latency [EVENTS_PER_SEC] [SECONDS]
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{config, Receiver};
use criterion::{criterion_group, Criterion, Throughput};
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
async fn deliver_all(events: u64, max_concurrency: usize) -> Duration {
    let receiver = Receiver::start(200).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut endpoint = receiver.endpoint();
    endpoint.max_concurrency = max_concurrency;
    let settings = config(&dir, vec![endpoint], &[10]);
    let batch = BatchWrite {
        sensors: Vec::new(),
        events: (0..events)
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
    while handle.stats().deliveries_succeeded < events {
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
    // 500 events keep the figures comparable with earlier runs; 5,000 make
    // bridge start-up a smaller share of the time.
    for (events, max_concurrency) in [(EVENTS, 1), (EVENTS, 4), (EVENTS, 16), (10 * EVENTS, 4)] {
        group.throughput(Throughput::Elements(events));
        let name = format!("{events}_events_concurrency_{max_concurrency}");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| runtime.block_on(deliver_all(events, max_concurrency)))
                    .sum()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, delivery);

/// Sensors the latency run spreads its readings over.
const LATENCY_SENSORS: u64 = 200;

/// Times of one reading: before `ingest` was called and after it returned,
/// which is after the outbox row was committed.
#[derive(Clone, Copy)]
struct Sent {
    called: Instant,
    returned: Instant,
}

/// Sends `rate` readings per second for `seconds` through the bridge, each
/// opening or resolving an incident, and prints latency percentiles.
fn run_latency(rate: u64, seconds: u64) {
    let runtime = tokio::runtime::Runtime::new().expect("Tokio runtime");
    runtime.block_on(async move {
        let receiver = Receiver::start(200).await;
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut settings = config(&dir, vec![receiver.endpoint()], &[10]);
        // One reading past the threshold opens an incident and one back
        // below resolves it, so every reading produces one event.
        let high = &mut settings.rules[0];
        (high.consecutive, high.clear_consecutive) = (1, 1);
        (high.for_secs, high.clear_for_secs) = (0, 0);
        let shutdown = CancellationToken::new();
        let handle = std::sync::Arc::new(
            floorwatch_bridge::start(settings, shutdown.clone())
                .await
                .expect("bridge starts"),
        );

        let total = rate * seconds;
        let sent = std::sync::Arc::new(std::sync::Mutex::new(HashMap::new()));
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let started = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..total {
            tokio::time::sleep_until(started + interval * index as u32).await;
            let (handle, sent) = (handle.clone(), sent.clone());
            tasks.spawn(async move {
                let sensor = format!("oven-{}", index % LATENCY_SENSORS);
                let seq = index / LATENCY_SENSORS;
                // A sensor's readings 0, 2, 4, ... open an incident and
                // 1, 3, 5, ... resolve it; the value identifies the reading.
                let base = if seq % 2 == 1 { 28.0 } else { 31.0 };
                let value = base + seq as f64 * 0.0001;
                let payload = format!(
                    r#"{{"v":1,"seq":{seq},"time":"{}","temperature_c":{value}}}"#,
                    Utc::now().to_rfc3339()
                );
                let called = Instant::now();
                handle
                    .ingest("plant-1", &sensor, payload.as_bytes())
                    .await
                    .expect("reading is ingested");
                let returned = Instant::now();
                sent.lock()
                    .unwrap()
                    .insert((sensor, seq), Sent { called, returned });
            });
        }
        while tasks.join_next().await.is_some() {}
        let publish_secs = started.elapsed().as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (receiver.deliveries().len() as u64) < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let sent = sent.lock().unwrap().clone();
        let mut from_call = Vec::new();
        let mut from_commit = Vec::new();
        for delivery in receiver.deliveries() {
            let event = delivery.event();
            let base = if event.data.value > 30.0 { 31.0 } else { 28.0 };
            let seq = ((event.data.value - base) / 0.0001).round() as u64;
            let Some(times) = sent.get(&(event.data.sensor.as_str().to_owned(), seq)) else {
                continue;
            };
            let millis =
                |later: Instant, earlier: Instant| match later.checked_duration_since(earlier) {
                    Some(elapsed) => elapsed.as_secs_f64() * 1000.0,
                    None => -(earlier.duration_since(later).as_secs_f64() * 1000.0),
                };
            from_call.push(millis(delivery.received_at, times.called));
            from_commit.push(millis(delivery.received_at, times.returned));
        }
        println!(
            "{total} readings in {publish_secs:.2} s ({:.0}/s), {} events received, {} matched",
            total as f64 / publish_secs,
            receiver.deliveries().len(),
            from_call.len()
        );
        print_percentiles("ingest called to received", &mut from_call);
        print_percentiles("outbox committed to received", &mut from_commit);
        shutdown.cancel();
        match std::sync::Arc::try_unwrap(handle) {
            Ok(handle) => handle.wait().await.expect("bridge stops"),
            Err(_) => unreachable!("every sending task has finished"),
        }
    });
}

fn print_percentiles(label: &str, values: &mut [f64]) {
    if values.is_empty() {
        println!("{label}: no samples");
        return;
    }
    values.sort_by(f64::total_cmp);
    let at = |quantile: f64| values[((values.len() - 1) as f64 * quantile).round() as usize];
    println!(
        "{label}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|arg| arg == "--latency") {
        let number = |offset: usize, default: u64| {
            args.get(position + offset)
                .and_then(|arg| arg.parse().ok())
                .unwrap_or(default)
        };
        run_latency(number(1, 1_000), number(2, 10));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
