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
    /// Queue dead letters again with their attempts reset and the same
    /// `webhook-id`.
    Replay {
        /// Event id (`webhook-id`) to replay.
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        event_id: Option<String>,
        /// Replay every dead letter.
        #[arg(long)]
        dead: bool,
        /// Only dead letters of this endpoint URL.
        #[arg(long)]
        endpoint: Option<String>,
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
            event_id, endpoint, ..
        } => {
            let queued = match &event_id {
                Some(event_id) => store.replay_event(event_id, endpoint.as_deref())?,
                None => store.replay_dead(endpoint.as_deref())?,
            };
            if queued == 0 {
                anyhow::bail!(
                    "no dead letter matched: list them with `deliveries list --status dead`"
                );
            }
            println!("queued {queued} dead letter(s) again");
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
