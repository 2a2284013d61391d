//! Outbox queries of the delivery workers and the delivery log.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{rfc3339, Context, Store, StoreError};

/// A pending outbox row of one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    /// `webhook-id`, the same on every attempt.
    pub event_id: String,
    /// Incident id; rows with the same key are delivered in `id` order.
    pub ordering_key: String,
    pub event_type: String,
    pub body: Vec<u8>,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix time in milliseconds before which the row waits.
    pub next_attempt_at_ms: i64,
}

/// One delivery attempt, as logged in `delivery_attempts`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub attempted_at: DateTime<Utc>,
    /// HTTP status, when a response arrived.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// Start of the response body, for diagnosis.
    pub response_snippet: Option<String>,
}

/// Change an attempt makes to its outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowUpdate {
    Delivered,
    /// Failed; try again at this Unix time in milliseconds.
    Retry {
        next_attempt_at_ms: i64,
    },
    /// Failed for the last time: the row is a dead letter.
    Dead,
}

impl Store {
    /// Returns up to `limit` rows of `endpoint` that may be attempted next:
    /// the oldest pending row of each ordering key, soonest due first.
    ///
    /// Taking only the head of each key keeps the events of one incident in
    /// order while other incidents' rows go ahead of a failing one.
    pub fn pending_heads(
        &self,
        endpoint: &str,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT o.id, o.event_id, o.ordering_key, o.event_type, o.body, o.attempts,
                        o.next_attempt_at
                 FROM outbox o
                 WHERE o.endpoint = ?1 AND o.status = 'pending'
                   AND o.id = (SELECT MIN(p.id) FROM outbox p
                               WHERE p.endpoint = ?1 AND p.status = 'pending'
                                 AND p.ordering_key = o.ordering_key)
                 ORDER BY o.next_attempt_at, o.id
                 LIMIT ?2",
            )
            .context("reading the outbox")?;
        let rows = statement
            .query_map(params![endpoint, limit as i64], |row| {
                Ok(OutboxRow {
                    id: row.get(0)?,
                    event_id: row.get(1)?,
                    ordering_key: row.get(2)?,
                    event_type: row.get(3)?,
                    body: row.get(4)?,
                    attempts: row.get(5)?,
                    next_attempt_at_ms: row.get(6)?,
                })
            })
            .context("reading the outbox")?;
        rows.collect::<Result<_, _>>().context("reading the outbox")
    }

    /// Logs an attempt and updates its outbox row in one transaction.
    pub fn record_attempt(
        &mut self,
        row: &OutboxRow,
        endpoint: &str,
        record: &AttemptRecord,
        update: RowUpdate,
    ) -> Result<(), StoreError> {
        let attempt = row.attempts + 1;
        let tx = self
            .conn
            .transaction()
            .context("starting an attempt record")?;
        tx.execute(
            "INSERT INTO delivery_attempts (outbox_id, event_id, endpoint, attempt, attempted_at,
                                            status_code, latency_ms, error, response_snippet)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                row.id,
                row.event_id,
                endpoint,
                attempt,
                rfc3339(record.attempted_at),
                record.status_code,
                record.latency_ms as i64,
                record.error,
                record.response_snippet,
            ],
        )
        .context("logging a delivery attempt")?;
        let (status, next_attempt_at_ms) = match update {
            RowUpdate::Delivered => ("delivered", row.next_attempt_at_ms),
            RowUpdate::Retry { next_attempt_at_ms } => ("pending", next_attempt_at_ms),
            RowUpdate::Dead => ("dead", row.next_attempt_at_ms),
        };
        tx.execute(
            "UPDATE outbox SET attempts = ?2, status = ?3, next_attempt_at = ?4, last_error = ?5
             WHERE id = ?1",
            params![row.id, attempt, status, next_attempt_at_ms, record.error],
        )
        .context("updating an outbox row")?;
        tx.commit().context("committing an attempt record")
    }

    /// Counts outbox rows still waiting for delivery.
    pub fn count_pending(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE status = 'pending'",
                [],
                |row| row.get(0),
            )
            .context("counting pending outbox rows")?;
        Ok(count.max(0) as u64)
    }

    /// Returns the logged attempts of one event, oldest first, as
    /// (endpoint, attempt number, record).
    pub fn attempts_of(
        &self,
        event_id: &str,
    ) -> Result<Vec<(String, u32, AttemptRecord)>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT endpoint, attempt, attempted_at, status_code, latency_ms, error,
                        response_snippet
                 FROM delivery_attempts WHERE event_id = ?1 ORDER BY id",
            )
            .context("reading delivery attempts")?;
        let rows = statement
            .query_map([event_id], |row| {
                let attempted_at: String = row.get(2)?;
                let record = AttemptRecord {
                    attempted_at: attempted_at.parse().unwrap_or_default(),
                    status_code: row.get(3)?,
                    latency_ms: row.get::<_, i64>(4)?.max(0) as u64,
                    error: row.get(5)?,
                    response_snippet: row.get(6)?,
                };
                Ok((row.get(0)?, row.get(1)?, record))
            })
            .context("reading delivery attempts")?;
        rows.collect::<Result<_, _>>()
            .context("reading delivery attempts")
    }

    /// Returns the event ids of dead letters, oldest first, as
    /// (endpoint, event id, last error).
    pub fn dead_letters(&self) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT endpoint, event_id, last_error FROM outbox WHERE status = 'dead' ORDER BY id")
            .context("listing dead letters")?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .context("listing dead letters")?;
        rows.collect::<Result<_, _>>()
            .context("listing dead letters")
    }
}
