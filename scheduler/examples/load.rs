//! Load tool for the scheduler's benchmark figures. It starts a scheduler
//! in this process on 127.0.0.1 with a database in a temporary directory,
//! sends a bounded number of requests, and prints the measurements.
//!
//! ```sh
//! cargo run --release -p floorwatch-scheduler --example load -- webhooks 20000 32
//! cargo run --release -p floorwatch-scheduler --example load -- page 100000 2000
//! ```
//!
//! `webhooks COUNT CONCURRENCY` posts COUNT signed `incident.opened` events,
//! each a new incident, from CONCURRENCY connections, and reports stored
//! webhooks per second. Bodies are signed before the clock starts.
//!
//! `page TASKS REQUESTS` fills the store with TASKS tasks, then requests
//! the first page of the operator page REQUESTS times, one at a time, and
//! reports latency percentiles.

use std::time::{Duration, Instant};

use chrono::Utc;
use floorwatch_protocol::webhook::{
    signature_header, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use floorwatch_protocol::Secret;
use floorwatch_scheduler::{SchedulerConfig, SchedulerHandle, SqliteStore};
use tokio_util::sync::CancellationToken;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |index: usize, default: usize| -> Result<usize, Error> {
        match args.get(index) {
            Some(text) => Ok(text.parse()?),
            None => Ok(default),
        }
    };
    match args.first().map(String::as_str) {
        Some("webhooks") => webhooks(number(1, 20_000)?, number(2, 32)?).await,
        Some("page") => page(number(1, 100_000)?, number(2, 2_000)?).await,
        _ => {
            Err("usage: load webhooks [COUNT] [CONCURRENCY] | load page [TASKS] [REQUESTS]".into())
        }
    }
}

/// Starts a scheduler on 127.0.0.1:0 with `database`.
async fn start(
    database: &std::path::Path,
    secret: &Secret,
) -> Result<(SchedulerHandle, CancellationToken), Error> {
    let config = SchedulerConfig {
        database: database.to_path_buf(),
        secrets: vec![secret.expose()],
        ..SchedulerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let shutdown = CancellationToken::new();
    let handle = floorwatch_scheduler::start(config, listener, shutdown.clone()).await?;
    Ok((handle, shutdown))
}

/// One pre-signed delivery.
struct Signed {
    webhook_id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

fn event_body(index: usize) -> Vec<u8> {
    let now = Utc::now();
    let event = serde_json::json!({
        "type": "incident.opened",
        "timestamp": now,
        "data": {
            "incident_id": format!("load-{index}"), "seq": 1, "site": "plant-1",
            "sensor": format!("oven-{}", index % 50), "metric": "temperature",
            "rule": "temperature-high", "condition": "above", "threshold": 30.0,
            "clear_threshold": 29.0, "value": 31.5, "unit": "°C", "severity": "warning",
            "first_breach_at": now, "opened_at": now, "reason": "load test",
            "window": [{"time": now, "value": 31.5}],
        }
    });
    serde_json::to_vec(&event).unwrap_or_default()
}

/// Signs `count` events, each a new incident, with the current time.
fn sign_all(secret: &Secret, count: usize) -> Vec<Signed> {
    let timestamp = Utc::now().timestamp();
    (0..count)
        .map(|index| {
            let webhook_id = format!("msg_load_{index}");
            let body = event_body(index);
            let signature =
                signature_header(std::slice::from_ref(secret), &webhook_id, timestamp, &body);
            Signed {
                webhook_id,
                timestamp: timestamp.to_string(),
                signature,
                body,
            }
        })
        .collect()
}

async fn webhooks(count: usize, concurrency: usize) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let secret = Secret::generate();
    let (handle, shutdown) = start(&dir.path().join("scheduler.db"), &secret).await?;
    let url = format!("http://{}/webhooks", handle.local_addr());

    let signed = sign_all(&secret, count);
    let chunks: Vec<Vec<Signed>> = split(signed, concurrency.max(1));

    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut workers = Vec::new();
    for chunk in chunks {
        let (client, url) = (client.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = 0usize;
            for delivery in chunk {
                let response = client
                    .post(&url)
                    .header(HEADER_ID, delivery.webhook_id)
                    .header(HEADER_TIMESTAMP, delivery.timestamp)
                    .header(HEADER_SIGNATURE, delivery.signature)
                    .header("content-type", "application/json")
                    .body(delivery.body)
                    .send()
                    .await;
                if !matches!(response, Ok(ref r) if r.status() == 200) {
                    failures += 1;
                }
            }
            failures
        }));
    }
    let mut failures = 0;
    for worker in workers {
        failures += worker.await?;
    }
    let elapsed = started.elapsed();

    let listing: serde_json::Value = client
        .get(format!(
            "http://{}/api/v1/tasks?limit=1",
            handle.local_addr()
        ))
        .send()
        .await?
        .json()
        .await?;
    println!(
        "webhooks: {count} sent over {concurrency} connections in {:.2} s: {:.0} stored/s, \
         {failures} failed, {} tasks in the store",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        listing["total"]
    );
    shutdown.cancel();
    handle.wait().await?;
    Ok(())
}

fn split<T>(items: Vec<T>, parts: usize) -> Vec<Vec<T>> {
    let mut chunks: Vec<Vec<T>> = (0..parts).map(|_| Vec::new()).collect();
    for (index, item) in items.into_iter().enumerate() {
        chunks[index % parts].push(item);
    }
    chunks
}

/// Inserts `count` tasks in one transaction, bypassing the webhook path,
/// which would take one disk flush per task.
fn fill(path: &std::path::Path, count: usize) -> Result<(), Error> {
    drop(SqliteStore::open(path)?);
    let mut connection = rusqlite::Connection::open(path)?;
    let tx = connection.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO tasks (incident_id, site, sensor, metric, rule, value, threshold, unit,
                 severity, status, condition_cleared, assignee, opened_at, created_at,
                 updated_at, last_event_seq, rule_condition, clear_threshold, readings,
                 assigned_at)
             VALUES (?1, ?2, ?3, 'temperature', 'temperature-high', 31.5, 30.0, '°C', ?4, ?5,
                 0, ?6, ?7, ?7, ?7, 1, 'above', 29.0, '[]', ?7)",
        )?;
        let start = Utc::now() - chrono::Duration::seconds(count as i64);
        for index in 0..count {
            let time = (start + chrono::Duration::seconds(index as i64))
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let severity = if index % 10 == 0 {
                "critical"
            } else {
                "warning"
            };
            let status = ["open", "acknowledged", "in_progress", "completed"][index % 4];
            let assignee = if index % 2 == 0 { "alex" } else { "sam" };
            insert.execute(rusqlite::params![
                format!("fill-{index}"),
                format!("plant-{}", index % 5),
                format!("oven-{}", index % 50),
                severity,
                status,
                assignee,
                time,
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

async fn page(tasks: usize, requests: usize) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("scheduler.db");
    let filling = Instant::now();
    fill(&path, tasks)?;
    println!(
        "filled {tasks} tasks in {:.1} s",
        filling.elapsed().as_secs_f64()
    );

    let (handle, shutdown) = start(&path, &Secret::generate()).await?;
    let client = reqwest::Client::new();
    for (label, path) in [
        ("operator page /", "/"),
        ("API /api/v1/tasks?limit=50", "/api/v1/tasks?limit=50"),
    ] {
        let url = format!("http://{}{path}", handle.local_addr());
        // Warm the connection, the statement cache and the page cache.
        for _ in 0..20 {
            client.get(&url).send().await?.bytes().await?;
        }
        let mut latencies: Vec<Duration> = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            let response = client.get(&url).send().await?;
            let status = response.status();
            response.bytes().await?;
            latencies.push(started.elapsed());
            if status != 200 {
                return Err(format!("{path} answered {status}").into());
            }
        }
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "{label} over {tasks} tasks, {requests} requests: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            latencies[latencies.len() - 1].as_secs_f64() * 1e3
        );
    }
    shutdown.cancel();
    handle.wait().await?;
    Ok(())
}
