//! Two bridge processes share four partitions of a three-node NATS
//! cluster. One is killed with SIGKILL while readings flow, and the other
//! takes its partitions over: every incident is delivered, the scheduler
//! keeps exactly one task per incident, and the events of each incident
//! arrive in order.

mod common;

use std::time::Duration;

use common::nats::{
    assert_incidents_in_order, bridge_config, lease_owners, reading, BridgeProcess, NatsCluster,
    Recorder, TestScheduler,
};
use common::{init_logging, wait_for};
use floorwatch_edge::{Publisher, PublisherConfig};

/// Temperatures of one episode: three breaching readings open an incident
/// and three clearing readings resolve it.
const EPISODE: [f64; 10] = [25.0, 31.0, 32.5, 33.0, 34.0, 33.5, 28.0, 27.5, 27.0, 26.0];

const SENSORS: usize = 8;

/// Publishes readings `from..to` of every sensor, two episodes per sensor,
/// interleaved across sensors as a plant would send them.
async fn publish_range(publisher: &Publisher, from: usize, to: usize) {
    for index in from..to {
        for sensor in 0..SENSORS {
            let celsius = EPISODE[index % EPISODE.len()];
            let reading = reading(
                "plant-1",
                &format!("oven-{sensor}"),
                index as u64 + 1,
                index as u32,
                celsius,
            );
            publisher.publish(&reading).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_bridge_loses_no_incident() {
    init_logging();
    let cluster = NatsCluster::start(3, 4);
    cluster.wait_jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let scheduler = TestScheduler::start(dir.path()).await;
    let recorder = Recorder::start().await;

    let mut bridges = Vec::new();
    for instance in ["bridge-a", "bridge-b"] {
        let mut config = bridge_config(
            &cluster,
            instance,
            dir.path(),
            &scheduler.webhook_url(),
            &scheduler.secret,
        );
        let mut endpoint =
            floorwatch_bridge::EndpointConfig::new(&recorder.url(), &recorder.secret.expose());
        endpoint.allow_private = true;
        config.endpoints.push(endpoint);
        // A POST in flight when bridge-a dies is sent again after the
        // endpoint's timeout and a few seconds.
        for endpoint in &mut config.endpoints {
            endpoint.timeout_secs = 2;
        }
        config.nats.lease_ttl_secs = 3;
        config.nats.ack_wait_secs = 5;
        bridges.push(BridgeProcess::spawn(&config, dir.path()));
        // The first bridge creates the streams and takes every partition
        // before the second joins, as in a rolling start.
        if instance == "bridge-a" {
            wait_for("bridge-a to own every partition", || async {
                let owners = lease_owners(&cluster).await;
                (owners.len() == 4).then_some(())
            })
            .await;
        }
    }
    let balanced = tokio::time::timeout(common::WAIT_LIMIT, async {
        loop {
            let owners = lease_owners(&cluster).await;
            let count = |name: &str| owners.values().filter(|owner| *owner == name).count();
            if count("bridge-a") == 2 && count("bridge-b") == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        balanced.is_ok(),
        "the bridges did not share the partitions; logs:\n{}\n{}",
        bridges[0].log(),
        bridges[1].log()
    );

    let publisher = Publisher::connect(PublisherConfig::new(cluster.mqtt_url(0), "edge-1"))
        .expect("edge publisher");
    let total = 2 * EPISODE.len();
    // The first episode of every sensor, then part of the second.
    publish_range(&publisher, 0, EPISODE.len() + 4).await;
    publisher
        .flush(Duration::from_secs(30))
        .await
        .expect("readings acknowledged");
    wait_for("the first incident of every sensor", || async {
        let tasks = scheduler.tasks().await;
        (tasks.len() >= SENSORS).then_some(())
    })
    .await;

    // Kill bridge-a while the rest of the second episode is published.
    let rest = publish_range(&publisher, EPISODE.len() + 4, total);
    let (_, ()) = tokio::join!(rest, async {
        bridges[0].kill();
    });
    publisher
        .flush(Duration::from_secs(30))
        .await
        .expect("readings acknowledged");

    wait_for("bridge-b to own every partition", || async {
        let owners = lease_owners(&cluster).await;
        (owners.len() == 4 && owners.values().all(|owner| owner == "bridge-b")).then_some(())
    })
    .await;
    wait_for(
        "bridge-b to take a partition with readings over from bridge-a",
        || async {
            let log = bridges[1].log();
            let taken_over = log.lines().any(|line| {
                line.contains("took partition over")
                    && line.contains("previous_owner=bridge-a")
                    && !line.contains("committed_seq=0 ")
            });
            taken_over.then_some(())
        },
    )
    .await;
    let expected_events = 2 * 2 * SENSORS;
    let events = wait_for("every event at the recorder", || async {
        let events = recorder.distinct_events();
        (events.len() >= expected_events).then_some(events)
    })
    .await;
    let incidents = assert_incidents_in_order(&events);
    assert_eq!(
        incidents.len(),
        2 * SENSORS,
        "two incidents per sensor; bridge-b log:\n{}",
        bridges[1].log()
    );
    assert_eq!(events.len(), expected_events, "opened and resolved of each");

    let tasks = scheduler.wait_for_tasks(2 * SENSORS).await;
    assert_eq!(
        tasks.len(),
        2 * SENSORS,
        "one task per incident: {tasks:#?}"
    );
    let mut task_incidents: Vec<String> = tasks
        .iter()
        .map(|task| task["incident_id"].as_str().unwrap().to_owned())
        .collect();
    task_incidents.sort();
    assert_eq!(task_incidents, incidents, "tasks and delivered incidents");
    for sensor in 0..SENSORS {
        let name = format!("oven-{sensor}");
        let count = tasks.iter().filter(|task| task["sensor"] == name).count();
        assert_eq!(count, 2, "tasks of {name}");
    }

    publisher.close(Duration::from_secs(5)).await;
    scheduler.shutdown.cancel();
    scheduler.handle.wait().await.unwrap();
}
