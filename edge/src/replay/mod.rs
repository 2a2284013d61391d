//! Replay of recorded readings from a CSV file through the publisher, paced
//! by the gaps between the recorded timestamps.

mod parse;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Id, Reading};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::publisher::{PublishError, Publisher};

pub use parse::{parse_time, read_replay_file, SkipReason, SkippedLine, Unit, UnitError};

/// How long a replay waits at the end for the broker to acknowledge the
/// last readings.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(30);

/// Skipped lines logged one by one. Later ones are only counted.
const MAX_LOGGED_SKIPS: usize = 20;

/// Options of a replay: the file, the ids to publish under, the unit and
/// the speed.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// CSV file with a header row.
    pub path: PathBuf,
    /// Site the readings are published for.
    pub site: Id,
    /// Sensor the readings are published for.
    pub sensor: Id,
    /// Unit of the values in the file.
    pub unit: Unit,
    /// Header of the timestamp column, `timestamp` by default.
    pub time_column: String,
    /// Header of the temperature column, `value` by default.
    pub value_column: String,
    /// Replay speed as a multiple of real time: 1.0 keeps the recorded gaps,
    /// 20000 divides them by 20000, and 0 publishes as fast as the broker
    /// acknowledges.
    pub speed: f64,
    /// Shows a progress bar on stderr.
    pub progress: bool,
}

impl ReplayOptions {
    /// Creates options for a file of °C values with columns `timestamp` and
    /// `value`, replayed in real time without a progress bar.
    pub fn new(path: impl Into<PathBuf>, site: Id, sensor: Id) -> Self {
        Self {
            path: path.into(),
            site,
            sensor,
            unit: Unit::Celsius,
            time_column: "timestamp".to_owned(),
            value_column: "value".to_owned(),
            speed: 1.0,
            progress: false,
        }
    }
}

/// Counts of a finished or cancelled replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Data rows in the file, skipped ones included.
    pub rows: u64,
    /// Readings handed to the publisher.
    pub published: u64,
    /// Readings acknowledged by the broker while the replay ran.
    pub acked: u64,
    /// Rows skipped because their time or value was invalid.
    pub skipped: u64,
    /// Time of the first valid row.
    pub first_time: Option<DateTime<Utc>>,
    /// Time of the last valid row.
    pub last_time: Option<DateTime<Utc>>,
}

/// Error that ended a replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "replay speed {speed} is invalid: use 0 (as fast as acknowledged) or a positive factor"
    )]
    InvalidSpeed { speed: f64 },
    #[error("failed to open replay file {}", .path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "failed to read replay file {} at line {}",
        .path.display(),
        .line.map_or("?".to_owned(), |line| line.to_string())
    )]
    Read {
        path: PathBuf,
        line: Option<u64>,
        source: csv::Error,
    },
    #[error(
        "replay file {} has no column {column:?} (columns found: {}): name one of them \
         as the time or value column",
        .path.display(), column_list(.found)
    )]
    MissingColumn {
        path: PathBuf,
        column: String,
        found: Vec<String>,
    },
    #[error("reading replay file {} failed", .path.display())]
    ReadTask {
        path: PathBuf,
        source: tokio::task::JoinError,
    },
    #[error("failed to publish row {seq} of {}", .path.display())]
    Publish {
        path: PathBuf,
        seq: u64,
        source: PublishError,
    },
    #[error("replay of {} ended with unconfirmed readings", .path.display())]
    Unconfirmed { path: PathBuf, source: PublishError },
}

/// Lists column names for an error message: quoted, so a name holding a
/// comma reads as one, and cut short, so a binary file does not fill the
/// terminal.
fn column_list(names: &[String]) -> String {
    const MAX_NAMES: usize = 20;
    const MAX_CHARS: usize = 40;
    let mut listed: Vec<String> = names
        .iter()
        .take(MAX_NAMES)
        .map(|name| match name.char_indices().nth(MAX_CHARS) {
            Some((cut, _)) => format!("{:?}...", &name[..cut]),
            None => format!("{name:?}"),
        })
        .collect();
    if names.len() > MAX_NAMES {
        listed.push(format!("and {} more", names.len() - MAX_NAMES));
    }
    listed.join(", ")
}

/// Returns how long to wait between a reading at `previous` and the next at
/// `current` when replaying at `speed`: the gap divided by `speed`. A
/// negative gap (a repeated hour when clocks go back, or unsorted rows) and
/// a `speed` of 0 or less give no wait.
pub fn pacing_delay(previous: DateTime<Utc>, current: DateTime<Utc>, speed: f64) -> Duration {
    if speed.is_nan() || speed <= 0.0 {
        return Duration::ZERO;
    }
    let Ok(gap) = (current - previous).to_std() else {
        return Duration::ZERO;
    };
    Duration::try_from_secs_f64(gap.as_secs_f64() / speed).unwrap_or(Duration::MAX)
}

/// Replays the file in `opts` through `publisher`.
///
/// Readings are paced on a schedule that starts with the first row, so a
/// stall (the broker slow to acknowledge) is caught up afterwards rather
/// than delaying every later row. On success the replay waits up to
/// [`FLUSH_DEADLINE`] until every published reading is acknowledged. When
/// `shutdown` is cancelled it stops publishing and returns the counts so far
/// without waiting for acknowledgements.
///
/// NOTE: `acked` counts every acknowledgement the publisher received while
/// the replay ran, so it includes other readings sent through the same
/// publisher at the same time.
pub async fn replay(
    opts: ReplayOptions,
    publisher: &Publisher,
    shutdown: CancellationToken,
) -> Result<ReplaySummary, ReplayError> {
    if opts.speed.is_nan() || opts.speed < 0.0 || opts.speed.is_infinite() {
        return Err(ReplayError::InvalidSpeed { speed: opts.speed });
    }
    let options = opts.clone();
    let (readings, skipped) = tokio::task::spawn_blocking(move || read_replay_file(&options))
        .await
        .map_err(|source| ReplayError::ReadTask {
            path: opts.path.clone(),
            source,
        })??;
    log_skipped(&opts, &skipped);

    let mut summary = ReplaySummary {
        rows: (readings.len() + skipped.len()) as u64,
        skipped: skipped.len() as u64,
        first_time: readings.first().map(|reading| reading.time),
        last_time: readings.last().map(|reading| reading.time),
        ..ReplaySummary::default()
    };
    tracing::info!(
        path = %opts.path.display(),
        rows = summary.rows,
        skipped = summary.skipped,
        speed = opts.speed,
        "replay started"
    );

    let acked_before = publisher.acked();
    let progress = progress_bar(opts.progress, readings.len() as u64);
    let finished = tokio::select! {
        biased;
        () = shutdown.cancelled() => false,
        result = publish_all(&opts, &readings, publisher, &progress, &mut summary) => {
            result?;
            true
        }
    };
    if finished {
        progress.finish();
        flush(&opts, publisher, &shutdown).await?;
    } else {
        progress.abandon();
        tracing::info!(path = %opts.path.display(), published = summary.published, "replay cancelled");
    }

    summary.acked = publisher.acked().saturating_sub(acked_before);
    tracing::info!(
        path = %opts.path.display(),
        published = summary.published,
        acked = summary.acked,
        skipped = summary.skipped,
        "replay finished"
    );
    Ok(summary)
}

/// Publishes `readings` in order, each at its place in the paced schedule.
async fn publish_all(
    opts: &ReplayOptions,
    readings: &[Reading],
    publisher: &Publisher,
    progress: &ProgressBar,
    summary: &mut ReplaySummary,
) -> Result<(), ReplayError> {
    let start = Instant::now();
    let mut offset = Duration::ZERO;
    let mut previous = None;
    for reading in readings {
        if let Some(previous) = previous {
            offset = offset.saturating_add(pacing_delay(previous, reading.time, opts.speed));
        }
        previous = Some(reading.time);
        if !offset.is_zero() {
            tokio::time::sleep_until(start + offset).await;
        }

        publisher
            .publish(reading)
            .await
            .map_err(|source| ReplayError::Publish {
                path: opts.path.clone(),
                seq: reading.seq.unwrap_or_default(),
                source,
            })?;
        summary.published += 1;
        progress.inc(1);
    }
    Ok(())
}

/// Waits until the broker has acknowledged every reading, unless cancelled.
async fn flush(
    opts: &ReplayOptions,
    publisher: &Publisher,
    shutdown: &CancellationToken,
) -> Result<(), ReplayError> {
    let flushed = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        flushed = publisher.flush(FLUSH_DEADLINE) => flushed,
    };
    flushed.map_err(|source| ReplayError::Unconfirmed {
        path: opts.path.clone(),
        source,
    })
}

fn log_skipped(opts: &ReplayOptions, skipped: &[SkippedLine]) {
    for line in skipped.iter().take(MAX_LOGGED_SKIPS) {
        tracing::warn!(
            path = %opts.path.display(),
            line = line.line,
            reason = %line.reason,
            "skipped invalid replay line"
        );
    }
    if skipped.len() > MAX_LOGGED_SKIPS {
        tracing::warn!(
            path = %opts.path.display(),
            not_logged = skipped.len() - MAX_LOGGED_SKIPS,
            "more invalid replay lines skipped"
        );
    }
}

fn progress_bar(visible: bool, rows: u64) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let template =
        "[{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows {per_sec} ETA {eta}";
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(rows).with_style(style)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn pacing_divides_gap_by_speed() {
        let (a, b) = (at("2013-12-02T21:15:00Z"), at("2013-12-02T21:20:00Z"));
        assert_eq!(pacing_delay(a, b, 1.0), Duration::from_secs(300));
        assert_eq!(pacing_delay(a, b, 20_000.0), Duration::from_millis(15));
        assert_eq!(pacing_delay(a, b, 0.5), Duration::from_secs(600));
    }

    #[test]
    fn pacing_clamps_negative_gap_to_zero() {
        let (a, b) = (at("2013-12-02T21:15:00Z"), at("2013-12-02T20:15:00Z"));
        assert_eq!(pacing_delay(a, b, 1.0), Duration::ZERO);
        assert_eq!(pacing_delay(a, a, 1.0), Duration::ZERO);
    }

    #[test]
    fn pacing_at_speed_zero_never_waits() {
        let (a, b) = (at("2013-12-02T21:15:00Z"), at("2014-12-02T21:15:00Z"));
        assert_eq!(pacing_delay(a, b, 0.0), Duration::ZERO);
        assert_eq!(pacing_delay(a, b, -1.0), Duration::ZERO);
        assert_eq!(pacing_delay(a, b, f64::NAN), Duration::ZERO);
    }

    #[test]
    fn pacing_saturates_on_tiny_speed() {
        let (a, b) = (at("2013-12-02T21:15:00Z"), at("2014-12-02T21:15:00Z"));
        assert_eq!(pacing_delay(a, b, f64::MIN_POSITIVE), Duration::MAX);
    }
}
