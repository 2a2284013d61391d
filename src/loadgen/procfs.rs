//! Resident memory and CPU time of processes, read once a second from
//! Linux's `/proc/PID/status` (`VmRSS`) and `/proc/PID/stat` (`utime` and
//! `stime`).

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Interval between two samples of a process.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Clock ticks per second of `utime` and `stime` when `getconf` cannot tell:
/// Linux reports them in `USER_HZ`, which is 100 on x86, x86_64, arm and
/// arm64.
const DEFAULT_TICKS_PER_SEC: u64 = 100;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// Seconds since sampling started.
    pub at_secs: f64,
    /// Resident set size in KiB.
    pub rss_kib: u64,
    /// User plus system CPU time in clock ticks.
    pub cpu_ticks: u64,
}

/// Every sample of one process.
#[derive(Debug, Clone)]
pub struct ProcessSeries {
    pub pid: u32,
    /// Command name from `/proc/PID/status`.
    pub name: String,
    pub samples: Vec<ProcSample>,
}

/// Returns the `VmRSS` of a `/proc/PID/status` text, in KiB.
pub fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let value = fields.next()?.parse().ok()?;
    (fields.next() == Some("kB")).then_some(value)
}

/// Returns the `Name` of a `/proc/PID/status` text.
pub fn parse_name(status: &str) -> Option<&str> {
    let line = status.lines().find(|line| line.starts_with("Name:"))?;
    Some(line["Name:".len()..].trim())
}

/// Returns `utime + stime` of a `/proc/PID/stat` line, in clock ticks.
///
/// The command name in the second field may contain spaces and
/// parentheses, so the fields are counted from the last `)`. The state is
/// the first field after it, `utime` the twelfth and `stime` the
/// thirteenth (fields 14 and 15 in proc(5)).
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Reads the counters of process `pid`.
fn read_sample(pid: u32, at_secs: f64) -> anyhow::Result<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    Ok(ProcSample {
        at_secs,
        rss_kib: parse_rss_kib(&status).context("no VmRSS line in /proc/PID/status")?,
        cpu_ticks: parse_cpu_ticks(&stat).context("cannot parse /proc/PID/stat")?,
    })
}

/// Checks that every process in `pids` can be sampled and returns an empty
/// series for each, named after its command.
pub fn open(pids: &[u32]) -> anyhow::Result<Vec<ProcessSeries>> {
    pids.iter()
        .map(|&pid| {
            let status =
                std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| {
                    format!("cannot read /proc/{pid}/status: pass --pid of a running process")
                })?;
            read_sample(pid, 0.0).with_context(|| format!("cannot sample process {pid}"))?;
            Ok(ProcessSeries {
                pid,
                name: parse_name(&status).unwrap_or("?").to_owned(),
                samples: Vec::new(),
            })
        })
        .collect()
}

/// Samples every process of `series` now and then once a second until
/// `stop` is cancelled, then once more, timing samples from `origin`. A
/// process that has exited keeps the samples taken before.
pub async fn sample(
    mut series: Vec<ProcessSeries>,
    origin: Instant,
    stop: CancellationToken,
) -> Vec<ProcessSeries> {
    let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let stopped = tokio::select! {
            _ = interval.tick() => false,
            _ = stop.cancelled() => true,
        };
        let at_secs = origin.elapsed().as_secs_f64();
        for process in &mut series {
            if let Ok(sample) = read_sample(process.pid, at_secs) {
                process.samples.push(sample);
            }
        }
        if stopped {
            return series;
        }
    }
}

/// Returns the clock ticks per second of `/proc/PID/stat` times, from
/// `getconf CLK_TCK`, or 100 when that fails.
pub fn ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(DEFAULT_TICKS_PER_SEC)
}

/// Memory and CPU use of one process over the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessUsage {
    pub pid: u32,
    pub name: String,
    pub samples: usize,
    pub rss_kib_start: u64,
    pub rss_kib_end: u64,
    pub rss_kib_max: u64,
    /// CPU time used between the first and the last sample, in seconds.
    pub cpu_seconds: f64,
    /// CPU time per wall time between the first and the last sample; 100 is
    /// one core busy all the time.
    pub cpu_percent_mean: f64,
    /// CPU time per wall time between the first and the last sample taken
    /// while readings were published; `None` with fewer than two.
    pub cpu_percent_publishing: Option<f64>,
    /// Highest CPU use over one sampling interval, in percent of one core.
    pub cpu_percent_max: f64,
    /// Each sample: seconds since start, RSS in KiB and the CPU percent of
    /// the interval before it (0 for the first).
    pub series: Vec<(f64, u64, f64)>,
}

impl ProcessUsage {
    /// Summarises `series`; `None` when it has no sample. `publishing` is
    /// the publishing phase, in seconds on the clock of the samples.
    pub fn of(series: &ProcessSeries, ticks_per_sec: u64, publishing: (f64, f64)) -> Option<Self> {
        let first = series.samples.first()?;
        let last = series.samples.last()?;
        let cpu_seconds = |from: &ProcSample, to: &ProcSample| {
            to.cpu_ticks.saturating_sub(from.cpu_ticks) as f64 / ticks_per_sec as f64
        };
        let percent = |from: &ProcSample, to: &ProcSample| {
            let wall = to.at_secs - from.at_secs;
            if wall > 0.0 {
                100.0 * cpu_seconds(from, to) / wall
            } else {
                0.0
            }
        };
        let mut points = vec![(first.at_secs, first.rss_kib, 0.0)];
        for pair in series.samples.windows(2) {
            points.push((
                pair[1].at_secs,
                pair[1].rss_kib,
                percent(&pair[0], &pair[1]),
            ));
        }
        let (from, to) = publishing;
        let in_phase: Vec<&ProcSample> = series
            .samples
            .iter()
            .filter(|sample| sample.at_secs >= from && sample.at_secs <= to)
            .collect();
        let cpu_percent_publishing = match in_phase.as_slice() {
            [first, .., last] => Some(percent(first, last)),
            _ => None,
        };
        Some(Self {
            pid: series.pid,
            name: series.name.clone(),
            samples: series.samples.len(),
            rss_kib_start: first.rss_kib,
            rss_kib_end: last.rss_kib,
            rss_kib_max: series.samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
            cpu_seconds: cpu_seconds(first, last),
            cpu_percent_mean: percent(first, last),
            cpu_percent_publishing,
            cpu_percent_max: points.iter().map(|point| point.2).fold(0.0, f64::max),
            series: points,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/PID/status` of a floorwatch process, shortened.
    const STATUS: &str = "Name:\tfloorwatch\nUmask:\t0022\nState:\tS (sleeping)\n\
        Tgid:\t4242\nPid:\t4242\nVmPeak:\t  912344 kB\nVmSize:\t  847120 kB\n\
        VmHWM:\t   41236 kB\nVmRSS:\t   38912 kB\nRssAnon:\t   20480 kB\nThreads:\t9\n";

    /// `/proc/PID/stat` of a process whose name contains `) (`, with
    /// utime 1234 and stime 56.
    const STAT: &str = "4242 (floor) (watch) S 4100 4242 4100 34816 4242 4194560 9112 0 0 0 \
        1234 56 0 0 20 0 9 0 372388 867450880 9728 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 \
        0 17 1 0 0 0 0 0\n";

    #[test]
    fn rss_is_read_from_status() {
        assert_eq!(parse_rss_kib(STATUS), Some(38912));
        assert_eq!(parse_name(STATUS), Some("floorwatch"));
    }

    #[test]
    fn status_without_rss_gives_none() {
        // Kernel threads have no VmRSS line.
        assert_eq!(
            parse_rss_kib("Name:\tkthreadd\nState:\tS (sleeping)\n"),
            None
        );
        assert_eq!(parse_rss_kib("VmRSS:\t 12 MB\n"), None);
    }

    #[test]
    fn cpu_ticks_count_from_the_last_parenthesis() {
        assert_eq!(parse_cpu_ticks(STAT), Some(1290));
    }

    #[test]
    fn truncated_stat_gives_none() {
        assert_eq!(parse_cpu_ticks("4242 (floorwatch) S 1 2 3"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis here"), None);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let series = open(&[std::process::id()]).unwrap();
        assert_eq!(series.len(), 1);
        let sample = read_sample(std::process::id(), 0.0).unwrap();
        assert!(sample.rss_kib > 0);
    }

    #[test]
    fn missing_process_is_an_error() {
        let error = open(&[u32::MAX]).unwrap_err();
        assert!(format!("{error:#}").contains("--pid"), "{error:#}");
    }

    #[test]
    fn usage_sums_cpu_over_wall_time() {
        let sample = |at_secs, rss_kib, cpu_ticks| ProcSample {
            at_secs,
            rss_kib,
            cpu_ticks,
        };
        let series = ProcessSeries {
            pid: 7,
            name: "floorwatch".into(),
            samples: vec![
                sample(0.0, 30_000, 1000),
                sample(1.0, 40_000, 1050),
                sample(2.0, 35_000, 1200),
            ],
        };
        let usage = ProcessUsage::of(&series, 100, (0.5, 2.0)).unwrap();
        assert_eq!(usage.rss_kib_start, 30_000);
        assert_eq!(usage.rss_kib_end, 35_000);
        assert_eq!(usage.rss_kib_max, 40_000);
        assert_eq!(usage.cpu_seconds, 2.0);
        assert_eq!(usage.cpu_percent_mean, 100.0);
        assert_eq!(usage.cpu_percent_max, 150.0);
        assert_eq!(usage.cpu_percent_publishing, Some(150.0));
        assert_eq!(usage.series[1], (1.0, 40_000, 50.0));
    }

    #[test]
    fn usage_of_no_samples_is_none() {
        let series = ProcessSeries {
            pid: 7,
            name: "floorwatch".into(),
            samples: Vec::new(),
        };
        assert_eq!(ProcessUsage::of(&series, 100, (0.0, 1.0)), None);
    }
}
