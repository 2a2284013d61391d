//! One run of loadgen: connect, publish on the schedule, wait for the
//! PubAcks and the tasks within the grace period, and summarise.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use floorwatch_protocol::{Id, Topics};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::episodes::{Cycle, Signal};
use super::incidents::{all_arrived, match_tasks, ExpectedIncident, IncidentReport};
use super::pacing::Pacer;
use super::procfs::{self, ProcessUsage};
use super::progress::Progress;
use super::publish::{Connection, Counters, Publisher, SensorSource};
use super::report::{Readings, Settings, Summary, Throughput, LATENCY_SOURCE};
use super::watch::Watcher;
use super::LoadgenArgs;

/// Interval of the checks whether every PubAck and task has arrived.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Time given to each connection to send its Disconnect.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Publishes for `--duration`, waits at most `--grace` for PubAcks and
/// tasks, and returns what was measured. `stop` ends publishing and
/// waiting early. Fails when a `--pid` cannot be sampled or the broker
/// cannot be reached; an unreachable scheduler API only leaves the
/// incident figures out.
pub async fn run(args: &LoadgenArgs, stop: CancellationToken) -> anyhow::Result<Summary> {
    let settings = args.settings()?;
    let processes = procfs::open(&args.pids)?;
    let origin = Instant::now();
    let started_at = Utc::now().trunc_subsecs(6);
    // Ends the sampler, the watcher and the connections at the end.
    let background = stop.child_token();
    let sampler = tokio::spawn(procfs::sample(processes, origin, background.clone()));
    let watcher = start_watcher(args, started_at, &background).await;

    let counters = Arc::new(Counters::default());
    let connections = match connect(args, &settings, &counters, &background).await {
        Ok(connections) => connections,
        Err(error) => {
            background.cancel();
            return Err(error);
        }
    };
    let expected = Arc::new(Mutex::new(Vec::new()));
    let publishers = plan(args, &settings, &connections, &counters, &expected)?;
    let target = publishers.iter().map(|p| p.pacer.total()).sum();
    let phase = publish_all(publishers, &settings, &counters, &stop).await?;

    let expected = lock(&expected).clone();
    let incidents = match &watcher {
        Some(watcher) => Some(wait_for_tasks(watcher, &expected, phase.deadline, &stop).await),
        None => None,
    };
    background.cancel();
    for connection in connections {
        connection.close(CLOSE_TIMEOUT).await;
    }
    let ticks_per_sec = procfs::ticks_per_sec();
    let publishing = (
        (phase.start - origin).as_secs_f64(),
        (phase.end - origin).as_secs_f64(),
    );
    let processes = sampler
        .await?
        .iter()
        .filter_map(|series| ProcessUsage::of(series, ticks_per_sec, publishing))
        .collect();

    let readings = readings(target, &counters);
    Ok(Summary {
        started_at,
        settings,
        throughput: throughput(&readings, (phase.end - phase.start).as_secs_f64()),
        readings,
        incidents,
        latency_source: LATENCY_SOURCE,
        scheduler_events: watcher.as_ref().is_some_and(|w| w.events_used()),
        api_errors: watcher.as_ref().map_or(0, |w| w.errors()),
        processes,
    })
}

/// Times of the publishing phase.
struct Phase {
    start: Instant,
    /// When the last publisher finished.
    end: Instant,
    /// End of the grace period: every wait stops here.
    deadline: Instant,
}

/// Runs the publishers with a progress bar, then waits for their PubAcks.
async fn publish_all(
    publishers: Vec<Publisher>,
    settings: &Settings,
    counters: &Arc<Counters>,
    stop: &CancellationToken,
) -> anyhow::Result<Phase> {
    let target = publishers.iter().map(|p| p.pacer.total()).sum();
    let progress = Progress::start(target, Arc::clone(counters));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(settings.duration_secs + settings.grace_secs);
    let handles: Vec<_> = publishers
        .into_iter()
        .map(|publisher| tokio::spawn(publisher.run(start, deadline, stop.clone())))
        .collect();
    for handle in handles {
        handle.await?;
    }
    let end = Instant::now();
    wait_for_acks(counters, deadline, stop).await;
    progress.finish().await;
    Ok(Phase {
        start,
        end,
        deadline,
    })
}

fn readings(target: u64, counters: &Counters) -> Readings {
    Readings {
        target,
        published: Counters::get(&counters.published),
        acked: Counters::get(&counters.acked),
        errors: Counters::get(&counters.errors),
        rejected: Counters::get(&counters.rejected),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn throughput(readings: &Readings, publish_secs: f64) -> Throughput {
    let per_sec = |count: u64| {
        if publish_secs > 0.0 {
            count as f64 / publish_secs
        } else {
            0.0
        }
    };
    Throughput {
        publish_secs,
        published_per_sec: per_sec(readings.published),
        acked_per_sec: per_sec(readings.acked),
    }
}

/// Starts watching the scheduler's tasks, or returns `None` with a warning
/// when a request to its API fails.
async fn start_watcher(
    args: &LoadgenArgs,
    since: DateTime<Utc>,
    background: &CancellationToken,
) -> Option<Arc<Watcher>> {
    match Watcher::connect(&args.api, args.site.as_str(), since).await {
        Ok(watcher) => {
            let watcher = Arc::new(watcher);
            tokio::spawn(Arc::clone(&watcher).run(background.clone()));
            Some(watcher)
        }
        Err(error) => {
            tracing::warn!(
                error = %format!("{error:#}"),
                "end-to-end latency is not measured"
            );
            None
        }
    }
}

/// Opens `--clients` connections; the first also counts rejections.
async fn connect(
    args: &LoadgenArgs,
    settings: &Settings,
    counters: &Arc<Counters>,
    background: &CancellationToken,
) -> anyhow::Result<Vec<Connection>> {
    let run_id: u32 = rand::random();
    let rejected_filter = format!("{}/{}/+/rejected", Topics::default().prefix(), args.site);
    let mut connections = Vec::new();
    for index in 0..settings.clients {
        let client_id = format!("floorwatch-loadgen-{run_id:08x}-{index}");
        let filter = (index == 0).then(|| rejected_filter.clone());
        let connection = Connection::open(
            &args.broker,
            &client_id,
            Arc::clone(counters),
            filter,
            background.clone(),
        )
        .await?;
        connections.push(connection);
    }
    Ok(connections)
}

/// Spreads the sensors over the connections, the breaching ones first, and
/// gives each publisher its share of the rate.
fn plan(
    args: &LoadgenArgs,
    settings: &Settings,
    connections: &[Connection],
    counters: &Arc<Counters>,
    expected: &Arc<Mutex<Vec<ExpectedIncident>>>,
) -> anyhow::Result<Vec<Publisher>> {
    let per_sensor_rate = settings.rate / f64::from(settings.sensors);
    let cycle = Cycle::new(settings.consecutive, per_sensor_rate, settings.episode_secs);
    let width = settings.sensors.to_string().len().max(4);
    let mut groups: Vec<Vec<SensorSource>> = connections.iter().map(|_| Vec::new()).collect();
    for index in 0..settings.sensors {
        let id = Id::parse(&format!("lg-{index:0width$}"))?;
        let breaching = index < settings.breaching_sensors;
        let signal = Signal::new(breaching.then_some(cycle), u64::from(index));
        let group = index as usize % groups.len();
        groups[group].push(SensorSource::new(&args.site, id, signal));
    }
    let duration = Duration::from_secs_f64(settings.duration_secs);
    let publishers = groups
        .into_iter()
        .zip(connections)
        .map(|(sensors, connection)| Publisher {
            client: connection.client.clone(),
            site: args.site.clone(),
            pacer: Pacer::new(per_sensor_rate * sensors.len() as f64, duration),
            sensors,
            counters: Arc::clone(counters),
            expected: Arc::clone(expected),
        })
        .collect();
    Ok(publishers)
}

/// Waits until every published reading is acknowledged, `deadline`
/// passes, or `stop` is cancelled.
async fn wait_for_acks(counters: &Counters, deadline: Instant, stop: &CancellationToken) {
    while Counters::get(&counters.acked) < Counters::get(&counters.published)
        && Instant::now() < deadline
        && !stop.is_cancelled()
    {
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
}

/// Waits until every expected incident has a task (resolved when its
/// resolving reading was sent), `deadline` passes, or `stop` is cancelled,
/// then lists the tasks once more and matches them.
async fn wait_for_tasks(
    watcher: &Watcher,
    expected: &[ExpectedIncident],
    deadline: Instant,
    stop: &CancellationToken,
) -> IncidentReport {
    while !all_arrived(expected, &watcher.tasks())
        && Instant::now() < deadline
        && !stop.is_cancelled()
    {
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
    watcher.refresh().await;
    let tasks: Vec<_> = watcher.tasks().into_values().collect();
    match_tasks(expected, &tasks)
}
