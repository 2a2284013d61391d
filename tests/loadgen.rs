//! `floorwatch loadgen` against the whole pipeline started in-process: a
//! short run at a low rate loses no reading and no incident, and measures
//! end-to-end latency.

mod common;

use std::time::Duration;

use clap::Parser;
use common::Pipeline;
use floorwatch::config::UpConfig;
use floorwatch::loadgen::{self, LoadgenArgs};
use tokio_util::sync::CancellationToken;

/// Upper bound of the whole run: 3 s of publishing plus a 10 s grace period.
const RUN_LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn short_run_loses_nothing() {
    let data_dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(UpConfig::default(), data_dir.path()).await;
    let out = data_dir.path().join("summary.json");
    let pid = std::process::id().to_string();
    let broker = pipeline.broker.to_string();
    let api = format!("http://{}", pipeline.http);
    let args = LoadgenArgs::try_parse_from([
        "loadgen",
        "--broker",
        &broker,
        "--api",
        &api,
        "--sensors",
        "20",
        "--rate",
        "200",
        "--breach-share",
        "0.2",
        "--duration",
        "3",
        "--clients",
        "2",
        "--grace",
        "10",
        "--pid",
        &pid,
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();

    let run = loadgen::run(&args, CancellationToken::new());
    let summary = tokio::time::timeout(RUN_LIMIT, run)
        .await
        .expect("loadgen finished within its bound")
        .expect("loadgen run");

    let readings = &summary.readings;
    assert_eq!(readings.target, 600);
    assert!(readings.published >= readings.target, "{readings:?}");
    assert_eq!(readings.published, readings.acked);
    assert_eq!(readings.errors, 0);
    assert_eq!(readings.rejected, 0);

    let incidents = summary.incidents.as_ref().expect("incident figures");
    // 4 breaching sensors at 10 readings/s, one 12-reading cycle each
    // 1.2 s, over 30 readings plus the finishing ones: 3 incidents each.
    assert_eq!(incidents.expected, 12);
    assert_eq!(incidents.lost, 0);
    assert_eq!(incidents.observed, incidents.expected);
    assert_eq!(incidents.unexpected, 0);
    assert_eq!(incidents.resolved, incidents.resolve_expected);
    let created = incidents.latency_created_ms.as_ref().expect("latency");
    assert_eq!(created.count, incidents.expected);
    assert!(created.p50 >= 0.0, "{created:?}");
    let observed = incidents.latency_observed_ms.as_ref().expect("latency");
    assert!(observed.p50 >= created.p50, "{observed:?} vs {created:?}");
    assert!(summary.scheduler_events);

    pipeline.wait_until_idle(readings.published).await;
    let stats = pipeline.bridge.stats();
    assert_eq!(stats.readings_accepted, readings.published);
    assert_eq!(stats.incidents_opened as usize, incidents.expected);

    let process = &summary.processes[0];
    assert!(process.samples >= 2, "{process:?}");
    assert!(process.rss_kib_max > 0);

    loadgen::write_summary(&summary, &args.out).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(json["readings"]["acked"], readings.acked);
    assert_eq!(json["incidents"]["lost"], 0);
    pipeline.stop().await;
}
