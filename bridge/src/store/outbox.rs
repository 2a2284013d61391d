//! Outbox queries of the delivery workers and the delivery log.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

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

impl OutboxRow {
    /// Reads a row selected as `id, event_id, ordering_key, event_type,
    /// body, attempts, next_attempt_at`.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            event_id: row.get(1)?,
            ordering_key: row.get(2)?,
            event_type: row.get(3)?,
            body: row.get(4)?,
            attempts: row.get(5)?,
            next_attempt_at_ms: row.get(6)?,
        })
    }
}

/// A pending outbox row without its body.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRow {
    pub id: i64,
    pub event_id: String,
    pub ordering_key: String,
    pub event_type: String,
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
}

/// One finished attempt to record with [`Store::record_attempts`].
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedAttempt {
    pub outbox_id: i64,
    pub event_id: String,
    /// Number of this attempt, from 1.
    pub attempt: u32,
    pub record: AttemptRecord,
    pub update: RowUpdate,
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
            .query_map(params![endpoint, limit as i64], OutboxRow::from_row)
            .context("reading the outbox")?;
        rows.collect::<Result<_, _>>().context("reading the outbox")
    }

    /// Returns up to `limit` pending rows of `endpoint` with an id above
    /// `after_id`, in id order, with their bodies.
    pub fn pending_after(
        &self,
        endpoint: &str,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        // The unary `+` keeps SQLite from using the `outbox_pending` index,
        // so it scans the primary key from `after_id` instead of every
        // pending row of the endpoint.
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, event_id, ordering_key, event_type, body, attempts, next_attempt_at
                 FROM outbox
                 WHERE id > ?2 AND +endpoint = ?1 AND +status = 'pending'
                 ORDER BY id
                 LIMIT ?3",
            )
            .context("reading new outbox rows")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(params![endpoint, after_id, limit], OutboxRow::from_row)
            .context("reading new outbox rows")?;
        rows.collect::<Result<_, _>>()
            .context("reading new outbox rows")
    }

    /// Returns the pending rows of `endpoint` with no attempt yet and an id
    /// up to `up_to_id`, without bodies. A delivery worker uses it to find
    /// rows that a replay made pending again.
    pub fn unattempted_up_to(
        &self,
        endpoint: &str,
        up_to_id: i64,
    ) -> Result<Vec<PendingRow>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, event_id, ordering_key, event_type, attempts, next_attempt_at
                 FROM outbox
                 WHERE endpoint = ?1 AND status = 'pending' AND attempts = 0 AND id <= ?2
                 ORDER BY id",
            )
            .context("reading replayed outbox rows")?;
        let rows = statement
            .query_map(params![endpoint, up_to_id], |row| {
                Ok(PendingRow {
                    id: row.get(0)?,
                    event_id: row.get(1)?,
                    ordering_key: row.get(2)?,
                    event_type: row.get(3)?,
                    attempts: row.get(4)?,
                    next_attempt_at_ms: row.get(5)?,
                })
            })
            .context("reading replayed outbox rows")?;
        rows.collect::<Result<_, _>>()
            .context("reading replayed outbox rows")
    }

    /// Returns the body of outbox row `id` while it is pending.
    pub fn pending_body(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .prepare_cached("SELECT body FROM outbox WHERE id = ?1 AND status = 'pending'")
            .context("reading an outbox body")?
            .query_row([id], |row| row.get(0))
            .optional()
            .context("reading an outbox body")
    }

    /// Logs an attempt and updates its outbox row in one transaction.
    pub fn record_attempt(
        &mut self,
        row: &OutboxRow,
        endpoint: &str,
        record: &AttemptRecord,
        update: RowUpdate,
    ) -> Result<(), StoreError> {
        let finished = FinishedAttempt {
            outbox_id: row.id,
            event_id: row.event_id.clone(),
            attempt: row.attempts + 1,
            record: record.clone(),
            update,
        };
        self.record_attempts(endpoint, std::slice::from_ref(&finished))
    }

    /// Logs attempts at rows of `endpoint` and updates those rows, all in
    /// one transaction, so that many attempts share one commit.
    pub fn record_attempts(
        &mut self,
        endpoint: &str,
        attempts: &[FinishedAttempt],
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .context("starting an attempt record")?;
        {
            let mut log = tx
                .prepare_cached(
                    "INSERT INTO delivery_attempts (outbox_id, event_id, endpoint, attempt,
                                                    attempted_at, status_code, latency_ms, error,
                                                    response_snippet)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .context("logging a delivery attempt")?;
            // A NULL next attempt time keeps the stored one.
            let mut update = tx
                .prepare_cached(
                    "UPDATE outbox SET attempts = ?2, status = ?3,
                                       next_attempt_at = COALESCE(?4, next_attempt_at),
                                       last_error = ?5
                     WHERE id = ?1",
                )
                .context("updating an outbox row")?;
            for finished in attempts {
                let record = &finished.record;
                log.execute(params![
                    finished.outbox_id,
                    finished.event_id,
                    endpoint,
                    finished.attempt,
                    rfc3339(record.attempted_at),
                    record.status_code,
                    record.latency_ms as i64,
                    record.error,
                    record.response_snippet,
                ])
                .context("logging a delivery attempt")?;
                let (status, next_attempt_at_ms) = match finished.update {
                    RowUpdate::Delivered => ("delivered", None),
                    RowUpdate::Retry { next_attempt_at_ms } => {
                        ("pending", Some(next_attempt_at_ms))
                    }
                    RowUpdate::Dead => ("dead", None),
                };
                update
                    .execute(params![
                        finished.outbox_id,
                        finished.attempt,
                        status,
                        next_attempt_at_ms,
                        record.error,
                    ])
                    .context("updating an outbox row")?;
            }
        }
        tx.commit().context("committing attempt records")
    }

    /// Opens a second connection to the same database, so that reads do not
    /// wait behind a commit on this one.
    pub fn open_another(&self) -> Result<Store, StoreError> {
        let path = self.conn.path().unwrap_or_default();
        Store::open(std::path::Path::new(path))
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
