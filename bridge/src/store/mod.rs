//! The bridge's SQLite database: sensor and rule state, incidents, the
//! webhook outbox and the delivery log.
//!
//! Every method blocks; async callers run them on a blocking thread.

mod deliveries;
mod outbox;
mod schema;

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use floorwatch_protocol::{Event, EventType, Id, IncidentData};
use rusqlite::{params, Connection, OptionalExtension};

pub use deliveries::{DeliveryFilter, DeliveryStatus, DeliverySummary};
pub use outbox::{AttemptRecord, FinishedAttempt, OutboxRow, PendingRow, RowUpdate};

use crate::sensor::SensorState;

/// A failed database operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory of database {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source} (check the path and its permissions)")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than the {supported} this \
         bridge knows: run a newer floorwatch or point bridge.database elsewhere"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database operation failed while {action}: {source}")]
    Sqlite {
        action: &'static str,
        source: rusqlite::Error,
    },
    #[error("stored state of sensor {site}/{sensor} is not valid JSON: {source}")]
    CorruptState {
        site: String,
        sensor: String,
        source: serde_json::Error,
    },
}

/// Adds the action being performed to a SQLite error.
trait Context<T> {
    fn context(self, action: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn context(self, action: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { action, source })
    }
}

/// One event to commit, with the endpoints subscribed to its type.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `webhook-id` of the event, shared by every endpoint.
    pub event_id: String,
    pub event: Event<IncidentData>,
    /// Serialized event, stored and later sent byte for byte.
    pub body: Vec<u8>,
    pub endpoints: Vec<String>,
}

/// Everything one batch of readings changed, committed in one transaction.
#[derive(Debug, Default)]
pub struct BatchWrite {
    /// Sensors whose state changed, with the new state.
    pub sensors: Vec<(Id, Id, SensorState)>,
    pub events: Vec<NewEvent>,
}

/// A connection to the bridge database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens or creates the database at `path` and migrates its schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.to_owned(),
                source,
            })?;
        }
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open_error)?;
        // WAL lets delivery workers read while ingest writes. synchronous =
        // FULL because a commit is acknowledged upstream (MQTT PubAck) right
        // after it returns; NORMAL could lose it on power loss in WAL mode.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 10000;",
        )
        .map_err(open_error)?;
        conn.busy_handler(Some(wait_while_busy))
            .map_err(open_error)?;
        let mut store = Self { conn };
        store.migrate(path)?;
        Ok(store)
    }

    fn migrate(&mut self, path: &Path) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .context("reading the schema version")?;
        let supported = schema::MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::TooNew {
                path: path.to_owned(),
                found: version,
                supported,
            });
        }
        for (index, migration) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().context("starting a migration")?;
            tx.execute_batch(migration)
                .context("migrating the schema")?;
            tx.pragma_update(None, "user_version", index as i64 + 1)
                .context("recording the schema version")?;
            tx.commit().context("committing a migration")?;
        }
        Ok(())
    }

    /// Loads the state of every sensor seen before.
    pub fn load_sensor_states(&self) -> Result<Vec<(String, String, SensorState)>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT site, sensor, state FROM sensor_state")
            .context("loading sensor state")?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .context("loading sensor state")?;
        let mut states = Vec::new();
        for row in rows {
            let (site, sensor, json) = row.context("loading sensor state")?;
            let state = serde_json::from_str(&json).map_err(|source| StoreError::CorruptState {
                site: site.clone(),
                sensor: sensor.clone(),
                source,
            })?;
            states.push((site, sensor, state));
        }
        Ok(states)
    }

    /// Commits a batch: sensor states, incident changes and outbox rows
    /// together, so an incident never changes without its events.
    pub fn write_batch(
        &mut self,
        batch: &BatchWrite,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now_text = rfc3339(now);
        let tx = self.conn.transaction().context("starting a batch")?;
        if !batch.sensors.is_empty() {
            let mut save = tx
                .prepare_cached(
                    "INSERT INTO sensor_state (site, sensor, state, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (site, sensor) DO UPDATE SET state = ?3, updated_at = ?4",
                )
                .context("saving sensor state")?;
            let mut json = Vec::with_capacity(4096);
            for (site, sensor, state) in &batch.sensors {
                json.clear();
                // Serializing plain data with string keys cannot fail.
                serde_json::to_writer(&mut json, state).expect("sensor state serializes");
                // serde_json writes UTF-8 only.
                let text = std::str::from_utf8(&json).expect("JSON is UTF-8");
                save.execute(params![site.as_str(), sensor.as_str(), text, now_text])
                    .context("saving sensor state")?;
            }
        }
        for new_event in &batch.events {
            // Silence and fault episodes live in the sensor state only.
            if new_event.event.event_type.matches("incident.*") {
                write_incident(&tx, &new_event.event)?;
            }
            for endpoint in &new_event.endpoints {
                tx.execute(
                    "INSERT INTO outbox (event_id, endpoint, ordering_key, event_type, body,
                                         created_at, next_attempt_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        new_event.event_id,
                        endpoint,
                        new_event.event.data.incident_id,
                        new_event.event.event_type.as_str(),
                        new_event.body,
                        now_text,
                        now.timestamp_millis(),
                    ],
                )
                .context("adding an event to the outbox")?;
            }
        }
        tx.commit().context("committing a batch")
    }

    /// Returns the stored data of an incident and whether it is open.
    pub fn incident(&self, incident_id: &str) -> Result<Option<(IncidentData, bool)>, StoreError> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT data, status FROM incidents WHERE incident_id = ?1",
                [incident_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .context("reading an incident")?;
        Ok(row.and_then(|(json, status)| {
            let data = serde_json::from_str(&json).ok()?;
            Some((data, status == "open"))
        }))
    }

    /// Returns the data of every open incident.
    pub fn open_incidents(&self) -> Result<Vec<IncidentData>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT data FROM incidents WHERE status = 'open' ORDER BY opened_at")
            .context("listing open incidents")?;
        let rows = statement
            .query_map([], |row| row.get::<_, String>(0))
            .context("listing open incidents")?;
        let mut incidents = Vec::new();
        for json in rows {
            let json = json.context("listing open incidents")?;
            if let Ok(data) = serde_json::from_str(&json) {
                incidents.push(data);
            }
        }
        Ok(incidents)
    }
}

fn write_incident(
    tx: &rusqlite::Transaction<'_>,
    event: &Event<IncidentData>,
) -> Result<(), StoreError> {
    let data = &event.data;
    // Serializing plain data with string keys cannot fail.
    let json = serde_json::to_string(data).expect("incident data serializes");
    let status = match event.event_type {
        EventType::IncidentResolved => "resolved",
        _ => "open",
    };
    tx.execute(
        "INSERT INTO incidents (incident_id, site, sensor, metric, rule, severity, status,
                                first_breach_at, opened_at, resolved_at, last_event_seq, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (incident_id) DO UPDATE SET
             severity = ?6, status = ?7, resolved_at = ?10, last_event_seq = ?11, data = ?12",
        params![
            data.incident_id,
            data.site.as_str(),
            data.sensor.as_str(),
            data.metric.as_str(),
            data.rule.as_str(),
            data.severity.as_str(),
            status,
            rfc3339(data.first_breach_at),
            rfc3339(data.opened_at),
            data.resolved_at.map(rfc3339),
            data.seq as i64,
            json,
        ],
    )
    .context("saving an incident")?;
    Ok(())
}

/// Waits up to about 10 s for another connection's write lock, checking
/// every millisecond. SQLite's own `busy_timeout` sleeps up to 100 ms
/// between checks, which shows as latency when the ingest and delivery
/// connections commit at the same time.
fn wait_while_busy(attempts: i32) -> bool {
    if attempts >= 10_000 {
        return false;
    }
    std::thread::sleep(std::time::Duration::from_millis(1));
    true
}

/// Formats a time the way the database stores it.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
