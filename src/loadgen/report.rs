//! The result of a run: the JSON summary written to `--out` and the table
//! printed on stdout.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::incidents::IncidentReport;
use super::percentile::Distribution;
use super::procfs::ProcessUsage;

/// Definition of the two end-to-end latency figures, written in the summary.
pub const LATENCY_SOURCE: &str = "created: task.assigned_at (the scheduler's receive time of the \
    webhook that created the task) minus the publish time of the opening reading; observed: when \
    loadgen first saw the task through /events and /api/v1/tasks minus the same publish time";

/// The settings of a run, after validation.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub broker: String,
    pub api: String,
    pub site: String,
    pub sensors: u32,
    pub breaching_sensors: u32,
    pub clients: u32,
    /// Target readings per second, all sensors together.
    pub rate: f64,
    pub duration_secs: f64,
    pub grace_secs: f64,
    /// Consecutive readings the bridge's rule needs to open and to resolve.
    pub consecutive: u32,
    pub episode_secs: f64,
}

/// Reading counts of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Readings {
    /// Readings the schedule plans, without those that finish episodes.
    pub target: u64,
    /// Readings handed to a connection, including those that finish
    /// episodes after the schedule.
    pub published: u64,
    /// PubAcks received from the broker.
    pub acked: u64,
    /// Failed publishes and connection errors.
    pub errors: u64,
    /// Reports on the site's `rejected` topics (QoS 0, so a report may be
    /// lost under load).
    pub rejected: u64,
}

/// Achieved rates over the publishing time.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// From the first publish to the end of the last publisher, in seconds.
    pub publish_secs: f64,
    pub published_per_sec: f64,
    pub acked_per_sec: f64,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub started_at: DateTime<Utc>,
    pub settings: Settings,
    pub readings: Readings,
    pub throughput: Throughput,
    /// `None` when the scheduler API was not reachable.
    pub incidents: Option<IncidentReport>,
    pub latency_source: &'static str,
    /// True when tasks were followed through the scheduler's `/events`.
    pub scheduler_events: bool,
    /// Failed requests to the scheduler API.
    pub api_errors: u64,
    /// The processes given with `--pid`.
    pub processes: Vec<ProcessUsage>,
}

impl Summary {
    /// Renders the summary as a table for the terminal.
    pub fn table(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_table(&mut text);
        text
    }

    fn write_table(&self, out: &mut String) -> std::fmt::Result {
        let settings = &self.settings;
        let readings = &self.readings;
        writeln!(
            out,
            "loadgen: {} sensors ({} breaching) over {} connections, target {}/s for {} s",
            settings.sensors,
            settings.breaching_sensors,
            settings.clients,
            settings.rate,
            settings.duration_secs
        )?;

        writeln!(out, "  {:<22} {:>12}", "readings planned", readings.target)?;
        writeln!(out, "  {:<22} {:>12}", "published", readings.published)?;
        writeln!(out, "  {:<22} {:>12}", "acknowledged", readings.acked)?;
        writeln!(out, "  {:<22} {:>12}", "errors", readings.errors)?;
        writeln!(out, "  {:<22} {:>12}", "rejected", readings.rejected)?;

        let throughput = &self.throughput;
        writeln!(
            out,
            "  {:<22} {:>12.0}  ({:.0} acked/s over {:.1} s)",
            "published/s",
            throughput.published_per_sec,
            throughput.acked_per_sec,
            throughput.publish_secs
        )?;

        match &self.incidents {
            Some(incidents) => write_incidents(out, incidents)?,
            None => writeln!(
                out,
                "  incidents: not measured, the scheduler API was not reachable"
            )?,
        }
        for process in &self.processes {
            write_process(out, process)?;
        }
        Ok(())
    }
}

fn write_incidents(out: &mut String, incidents: &IncidentReport) -> std::fmt::Result {
    writeln!(
        out,
        "  {:<22} {:>12}",
        "incidents expected", incidents.expected
    )?;
    writeln!(out, "  {:<22} {:>12}", "tasks observed", incidents.observed)?;
    writeln!(out, "  {:<22} {:>12}", "lost", incidents.lost)?;
    writeln!(
        out,
        "  {:<22} {:>12}  (of {} whose resolving reading was sent)",
        "tasks resolved", incidents.resolved, incidents.resolve_expected
    )?;
    writeln!(
        out,
        "  {:<22} {:>12}",
        "unexpected tasks", incidents.unexpected
    )?;
    writeln!(
        out,
        "  {:<22} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "latency (ms)", "p50", "p90", "p99", "max", "count"
    )?;
    write_latency(out, "  created", incidents.latency_created_ms.as_ref())?;
    write_latency(out, "  observed", incidents.latency_observed_ms.as_ref())
}

fn write_latency(
    out: &mut String,
    label: &str,
    latency: Option<&Distribution>,
) -> std::fmt::Result {
    match latency {
        Some(d) => writeln!(
            out,
            "  {label:<22} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            d.p50, d.p90, d.p99, d.max, d.count
        ),
        None => writeln!(out, "  {label:<22} {:>9}", "none"),
    }
}

fn write_process(out: &mut String, process: &ProcessUsage) -> std::fmt::Result {
    writeln!(
        out,
        "  process {} ({}): RSS {} -> {} KiB (max {}), CPU {:.1} s, mean {:.0} % \
         (publishing {}), max {:.0} % of one core",
        process.pid,
        process.name,
        process.rss_kib_start,
        process.rss_kib_end,
        process.rss_kib_max,
        process.cpu_seconds,
        process.cpu_percent_mean,
        process
            .cpu_percent_publishing
            .map_or_else(|| "n/a".to_owned(), |percent| format!("{percent:.0} %")),
        process.cpu_percent_max
    )
}
