//! Operator queries on the outbox: listing deliveries, replaying dead
//! letters, and the disabled state of endpoints.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{rfc3339, Context, Store, StoreError};

/// Delivery status of an outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryStatus {
    /// Parses a value of `outbox.status`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }

    /// Returns the value stored in `outbox.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

/// Filter of [`Store::list_deliveries`]; a `None` field matches every row.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint: Option<String>,
    pub incident: Option<String>,
    pub status: Option<DeliveryStatus>,
    /// Maximum rows, newest first.
    pub limit: usize,
}

/// One outbox row as an operator sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliverySummary {
    pub event_id: String,
    pub event_type: String,
    pub incident_id: String,
    pub endpoint: String,
    pub status: String,
    pub attempts: u32,
    /// HTTP status of the latest attempt, when a response arrived.
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// Unix time in milliseconds of the next attempt of a pending row.
    pub next_attempt_at_ms: i64,
}

impl Store {
    /// Lists outbox rows matching `filter`, newest first.
    pub fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliverySummary>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT o.event_id, o.event_type, o.ordering_key, o.endpoint, o.status,
                        o.attempts, o.last_error, o.next_attempt_at,
                        (SELECT a.status_code FROM delivery_attempts a
                         WHERE a.outbox_id = o.id ORDER BY a.id DESC LIMIT 1)
                 FROM outbox o
                 WHERE (?1 IS NULL OR o.endpoint = ?1)
                   AND (?2 IS NULL OR o.ordering_key = ?2)
                   AND (?3 IS NULL OR o.status = ?3)
                 ORDER BY o.id DESC
                 LIMIT ?4",
            )
            .context("listing deliveries")?;
        let status = filter.status.map(DeliveryStatus::as_str);
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(
                params![filter.endpoint, filter.incident, status, limit],
                |row| {
                    Ok(DeliverySummary {
                        event_id: row.get(0)?,
                        event_type: row.get(1)?,
                        incident_id: row.get(2)?,
                        endpoint: row.get(3)?,
                        status: row.get(4)?,
                        attempts: row.get(5)?,
                        last_error: row.get(6)?,
                        next_attempt_at_ms: row.get(7)?,
                        last_status_code: row.get(8)?,
                    })
                },
            )
            .context("listing deliveries")?;
        rows.collect::<Result<_, _>>().context("listing deliveries")
    }

    /// Queues the dead letters of `event_id` again (every endpoint, or only
    /// `endpoint`) with their attempts reset and the same `webhook-id`.
    /// Returns the number of rows queued.
    pub fn replay_event(
        &mut self,
        event_id: &str,
        endpoint: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?3
                 WHERE event_id = ?1 AND status = 'dead' AND (?2 IS NULL OR endpoint = ?2)",
                params![event_id, endpoint, Utc::now().timestamp_millis()],
            )
            .context("replaying a dead letter")
    }

    /// Queues every dead letter again, or those of `endpoint`. Returns the
    /// number of rows queued.
    pub fn replay_dead(&mut self, endpoint: Option<&str>) -> Result<usize, StoreError> {
        self.replay_matching(DeliveryStatus::Dead, endpoint, None)
    }

    /// Queues again every row with `status` (dead letters or delivered
    /// events) of `endpoint` and `incident`, where given, with attempts
    /// reset and the same `webhook-id`. Returns the number of rows queued;
    /// `status` pending matches nothing, because those rows are queued.
    pub fn replay_matching(
        &mut self,
        status: DeliveryStatus,
        endpoint: Option<&str>,
        incident: Option<&str>,
    ) -> Result<usize, StoreError> {
        if status == DeliveryStatus::Pending {
            return Ok(0);
        }
        self.conn
            .execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?4
                 WHERE status = ?1 AND (?2 IS NULL OR endpoint = ?2)
                   AND (?3 IS NULL OR ordering_key = ?3)",
                params![
                    status.as_str(),
                    endpoint,
                    incident,
                    Utc::now().timestamp_millis()
                ],
            )
            .context("replaying deliveries")
    }

    /// Returns the number of pending outbox rows and the creation time of
    /// the oldest one.
    pub fn outbox_depth(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        let (count, oldest): (i64, Option<String>) = self
            .conn
            .query_row(
                "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .context("measuring the outbox")?;
        let oldest = oldest.and_then(|text| text.parse().ok());
        Ok((count.max(0) as u64, oldest))
    }

    /// Marks `endpoint` disabled with `reason`, keeping an earlier reason.
    pub fn disable_endpoint(&mut self, endpoint: &str, reason: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO endpoint_state (endpoint, disabled_at, disabled_reason)
                 VALUES (?1, ?2, ?3) ON CONFLICT (endpoint) DO NOTHING",
                params![endpoint, rfc3339(Utc::now()), reason],
            )
            .context("disabling an endpoint")?;
        Ok(())
    }

    /// Enables `endpoint` again; returns false when it was not disabled.
    pub fn enable_endpoint(&mut self, endpoint: &str) -> Result<bool, StoreError> {
        let removed = self
            .conn
            .execute("DELETE FROM endpoint_state WHERE endpoint = ?1", [endpoint])
            .context("enabling an endpoint")?;
        Ok(removed > 0)
    }

    /// Returns the reason `endpoint` is disabled, or `None` when it is not.
    pub fn endpoint_disabled(&self, endpoint: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT disabled_reason FROM endpoint_state WHERE endpoint = ?1",
                [endpoint],
                |row| row.get(0),
            )
            .optional()
            .context("reading the state of an endpoint")
    }
}
