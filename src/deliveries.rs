//! `floorwatch deliveries`: inspect the bridge's outbox and delivery log,
//! replay dead letters and enable endpoints disabled by `410 Gone`.
//!
//! Works on the database file, which SQLite's WAL mode lets it share with a
//! running bridge. The bridge picks up replayed rows and enabled endpoints
//! within about a second.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use floorwatch_bridge::{DeliveryFilter, DeliveryStatus, Store};

/// Arguments of `floorwatch deliveries`.
#[derive(clap::Args)]
pub struct DeliveriesArgs {
    /// Bridge database file.
    #[arg(long, global = true, default_value = "floorwatch-data/bridge.db")]
    database: PathBuf,

    #[command(subcommand)]
    command: DeliveriesCommand,
}

#[derive(clap::Subcommand)]
enum DeliveriesCommand {
    /// List outbox rows, newest first.
    List {
        /// Only rows of this endpoint URL.
        #[arg(long)]
        endpoint: Option<String>,
        /// Only rows of this incident id.
        #[arg(long)]
        incident: Option<String>,
        /// Only rows with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Maximum rows shown.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// List every attempt at one event.
    Attempts { event_id: String },
    /// Queue dead letters, or delivered events, again with their attempts
    /// reset and the same `webhook-id`.
    Replay {
        /// Event id (`webhook-id`) whose dead letters to replay.
        #[arg(
            required_unless_present_any = ["dead", "status"],
            conflicts_with_all = ["dead", "status", "incident"]
        )]
        event_id: Option<String>,
        /// Replay every dead letter that matches `--endpoint` and
        /// `--incident`.
        #[arg(long, conflicts_with = "status")]
        dead: bool,
        /// Replay every row with this status that matches `--endpoint` and
        /// `--incident`; `delivered` needs one of them.
        #[arg(long, value_enum)]
        status: Option<ReplayStatusArg>,
        /// Only rows of this endpoint URL.
        #[arg(long)]
        endpoint: Option<String>,
        /// Only rows of this incident id.
        #[arg(long)]
        incident: Option<String>,
    },
    /// Enable an endpoint that a `410 Gone` disabled.
    Enable { endpoint_url: String },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StatusArg {
    Pending,
    Delivered,
    Dead,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReplayStatusArg {
    Dead,
    Delivered,
}

impl From<StatusArg> for DeliveryStatus {
    fn from(status: StatusArg) -> Self {
        match status {
            StatusArg::Pending => Self::Pending,
            StatusArg::Delivered => Self::Delivered,
            StatusArg::Dead => Self::Dead,
        }
    }
}

/// Runs `floorwatch deliveries`.
pub fn run(args: DeliveriesArgs) -> anyhow::Result<()> {
    if !args.database.exists() {
        anyhow::bail!(
            "database {} not found: pass the bridge's database with --database PATH",
            args.database.display()
        );
    }
    let mut store = Store::open(&args.database)
        .with_context(|| format!("opening {}", args.database.display()))?;
    match args.command {
        DeliveriesCommand::List {
            endpoint,
            incident,
            status,
            limit,
        } => {
            let filter = DeliveryFilter {
                endpoint,
                incident,
                status: status.map(Into::into),
                limit,
            };
            list(&store, &filter)
        }
        DeliveriesCommand::Attempts { event_id } => attempts(&store, &event_id),
        DeliveriesCommand::Replay {
            event_id,
            status,
            endpoint,
            incident,
            ..
        } => {
            let status = match status {
                Some(ReplayStatusArg::Delivered) => DeliveryStatus::Delivered,
                Some(ReplayStatusArg::Dead) | None => DeliveryStatus::Dead,
            };
            let (endpoint, incident) = (endpoint.as_deref(), incident.as_deref());
            let queued = match &event_id {
                Some(event_id) => store.replay_event(event_id, endpoint)?,
                None if status == DeliveryStatus::Delivered
                    && endpoint.is_none()
                    && incident.is_none() =>
                {
                    anyhow::bail!(
                        "replaying delivered events needs --endpoint or --incident, \
                         so that one command cannot resend the whole history"
                    )
                }
                None => store.replay_matching(status, endpoint, incident)?,
            };
            let noun = match status {
                DeliveryStatus::Delivered => "delivered event",
                _ => "dead letter",
            };
            if queued == 0 {
                anyhow::bail!(
                    "no {noun} matched: list them with `deliveries list --status {}`",
                    status.as_str()
                );
            }
            println!("queued {queued} {noun}(s) again");
            Ok(())
        }
        DeliveriesCommand::Enable { endpoint_url } => {
            if !store.enable_endpoint(&endpoint_url)? {
                anyhow::bail!("endpoint {endpoint_url} is not disabled: nothing to enable");
            }
            println!("enabled {endpoint_url}");
            Ok(())
        }
    }
}

fn list(store: &Store, filter: &DeliveryFilter) -> anyhow::Result<()> {
    let rows = store.list_deliveries(filter)?;
    println!(
        "{:<36} {:<18} {:<40} {:<9} {:>8} {:>6} {:<24} {:<30} ENDPOINT",
        "EVENT ID", "TYPE", "INCIDENT", "STATUS", "ATTEMPTS", "LAST", "NEXT ATTEMPT", "LAST ERROR"
    );
    for row in rows {
        let next = match row.status.as_str() {
            "pending" => time_text(row.next_attempt_at_ms),
            _ => "-".to_owned(),
        };
        let last = row
            .last_status_code
            .map_or("-".to_owned(), |code| code.to_string());
        let error: String = row
            .last_error
            .as_deref()
            .unwrap_or("-")
            .chars()
            .take(30)
            .collect();
        println!(
            "{:<36} {:<18} {:<40} {:<9} {:>8} {:>6} {:<24} {:<30} {}",
            row.event_id,
            row.event_type,
            row.incident_id,
            row.status,
            row.attempts,
            last,
            next,
            error,
            row.endpoint
        );
    }
    Ok(())
}

fn attempts(store: &Store, event_id: &str) -> anyhow::Result<()> {
    let attempts = store.attempts_of(event_id)?;
    if attempts.is_empty() {
        anyhow::bail!(
            "no attempts logged for event {event_id}: check the id with `deliveries list`"
        );
    }
    for (endpoint, number, record) in attempts {
        let status = record
            .status_code
            .map_or("-".to_owned(), |code| code.to_string());
        println!(
            "attempt {number} at {} to {endpoint}: status {status}, {} ms",
            record.attempted_at.to_rfc3339(),
            record.latency_ms
        );
        if let Some(error) = record.error {
            println!("  error: {error}");
        }
        if let Some(snippet) = record.response_snippet {
            println!("  response: {}", snippet.replace('\n', " "));
        }
    }
    Ok(())
}

fn time_text(unix_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .map_or_else(|| unix_ms.to_string(), |time| time.to_rfc3339())
}
