//! `floorwatch loadgen`: publishes synthetic readings to an MQTT broker at
//! a fixed rate and measures the pipeline behind it. A share of the
//! sensors repeats episodes that open and resolve incidents. loadgen
//! records the publish time of each reading that should open one and
//! watches the scheduler for the task. It reports end-to-end latency, lost
//! incidents, throughput, and the memory and CPU of the processes given
//! with `--pid`.

mod episodes;
mod incidents;
mod pacing;
mod percentile;
mod procfs;
mod progress;
mod publish;
mod report;
mod run;
mod watch;

use std::path::{Path, PathBuf};

use anyhow::Context;
use floorwatch_protocol::{BrokerUrl, Id};
use reqwest::Url;
use tokio_util::sync::CancellationToken;

pub use incidents::IncidentReport;
pub use percentile::Distribution;
pub use procfs::ProcessUsage;
pub use report::{Readings, Settings, Summary, Throughput};
pub use run::run;

/// Maximum grace period after publishing, in seconds.
pub const MAX_GRACE_SECS: f64 = 30.0;
/// Maximum publishing time, in seconds.
const MAX_DURATION_SECS: f64 = 24.0 * 3600.0;

/// Arguments of `floorwatch loadgen`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "loadgen")]
pub struct LoadgenArgs {
    /// MQTT broker to publish to.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: BrokerUrl,
    /// Number of synthetic sensors.
    #[arg(long, default_value_t = 100)]
    pub sensors: u32,
    /// Readings per second, all sensors together.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Share of sensors (0 to 1) whose readings open and resolve incidents.
    #[arg(long, default_value_t = 0.05)]
    pub breach_share: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Site id of the synthetic sensors.
    #[arg(long, default_value = "loadgen")]
    pub site: Id,
    /// Base URL of the scheduler, whose tasks give the end-to-end latency.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: Url,
    /// Process whose RSS and CPU time are sampled once a second; repeatable.
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// File the JSON summary is written to.
    #[arg(long, default_value = "loadgen-summary.json")]
    pub out: PathBuf,
    /// MQTT connections the sensors are spread over.
    #[arg(long, default_value_t = 4)]
    pub clients: u32,
    /// Seconds to wait after publishing for PubAcks and tasks, at most 30.
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
    /// Consecutive readings the bridge's rule needs to open an incident and
    /// to resolve it (the default rules need 3).
    #[arg(long, default_value_t = 3)]
    pub consecutive: u32,
    /// Seconds between the starts of two episodes of a breaching sensor
    /// (longer when the sensor's readings are too few for an episode).
    #[arg(long, default_value_t = 1.0)]
    pub episode_secs: f64,
}

impl LoadgenArgs {
    /// Checks the values and returns the settings of the run.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let positive = |name: &str, value: f64, max: f64| {
            if value.is_finite() && value > 0.0 && value <= max {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "--{name} {value} is invalid: use a number above 0 and at most {max}"
                ))
            }
        };
        positive("rate", self.rate, f64::MAX)?;
        positive("duration", self.duration, MAX_DURATION_SECS)?;
        positive("episode-secs", self.episode_secs, MAX_DURATION_SECS)?;
        if !(0.0..=1.0).contains(&self.breach_share) {
            anyhow::bail!(
                "--breach-share {} is invalid: use a share from 0 to 1, such as 0.05",
                self.breach_share
            );
        }
        if !(self.grace.is_finite() && (0.0..=MAX_GRACE_SECS).contains(&self.grace)) {
            anyhow::bail!(
                "--grace {} is invalid: use 0 to {MAX_GRACE_SECS} seconds",
                self.grace
            );
        }
        if self.sensors == 0 || self.clients == 0 || self.consecutive == 0 {
            anyhow::bail!("--sensors, --clients and --consecutive must be at least 1");
        }
        Ok(Settings {
            broker: self.broker.to_string(),
            api: self.api.to_string(),
            site: self.site.to_string(),
            sensors: self.sensors,
            breaching_sensors: episodes::breaching_count(self.sensors, self.breach_share),
            clients: self.clients.min(self.sensors),
            rate: self.rate,
            duration_secs: self.duration,
            grace_secs: self.grace,
            consecutive: self.consecutive,
            episode_secs: self.episode_secs,
        })
    }
}

/// Runs `floorwatch loadgen`: stops early on Ctrl-C, prints the summary
/// table and writes the JSON summary to `--out`.
pub async fn command(args: LoadgenArgs) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    crate::commands::cancel_on_signal(&stop);
    let summary = run(&args, stop).await?;
    print!("{}", summary.table());
    write_summary(&summary, &args.out)?;
    println!("  summary written to {}", args.out.display());
    Ok(())
}

/// Writes `summary` as pretty-printed JSON to `path`.
pub fn write_summary(summary: &Summary, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(summary)?;
    std::fs::write(path, json + "\n")
        .with_context(|| format!("cannot write {}: pass --out FILE", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(extra: &[&str]) -> anyhow::Result<LoadgenArgs> {
        let args = ["loadgen"].iter().chain(extra).copied();
        Ok(LoadgenArgs::try_parse_from(args)?)
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let args = parse(&[]).unwrap();
        let settings = args.settings().unwrap();
        assert_eq!(settings.broker, "mqtt://127.0.0.1:1883");
        assert_eq!(settings.api, "http://127.0.0.1:8080/");
        assert_eq!(settings.sensors, 100);
        assert_eq!(settings.breaching_sensors, 5);
        assert_eq!(settings.rate, 1000.0);
        assert_eq!(settings.duration_secs, 30.0);
        assert_eq!(settings.clients, 4);
        assert_eq!(args.out, PathBuf::from("loadgen-summary.json"));
        assert!(args.pids.is_empty());
    }

    #[test]
    fn pid_is_repeatable() {
        let args = parse(&["--pid", "10", "--pid", "20"]).unwrap();
        assert_eq!(args.pids, [10, 20]);
    }

    #[test]
    fn clients_are_capped_by_sensors() {
        let args = parse(&["--sensors", "2", "--clients", "8"]).unwrap();
        assert_eq!(args.settings().unwrap().clients, 2);
    }

    #[test]
    fn invalid_values_are_rejected() {
        for extra in [
            &["--rate", "0"][..],
            &["--rate", "NaN"],
            &["--duration=-1"],
            &["--duration", "inf"],
            &["--breach-share", "1.5"],
            &["--grace", "31"],
            &["--sensors", "0"],
            &["--clients", "0"],
        ] {
            let args = parse(extra).unwrap();
            assert!(args.settings().is_err(), "{extra:?} was accepted");
        }
    }

    #[test]
    fn invalid_site_is_a_parse_error() {
        assert!(parse(&["--site", "plant 1"]).is_err());
    }
}
