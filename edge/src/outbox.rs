//! The edge agent's outbox: a SQLite file that keeps every reading from the
//! moment it is sampled until the broker's PubAck for it arrives.
//!
//! The database runs in WAL mode with `synchronous=FULL`. With `NORMAL`, WAL
//! commits survive a crash of the process but the last ones can be lost on a
//! power cut, and a power cut is one of the failures the outbox exists for.
//! `FULL` costs one fsync per reading, which a Raspberry Pi's SD card
//! sustains at sensor rates (a few readings a second).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use floorwatch_protocol::{Reading, Topics};
use rusqlite::{params, Connection, OptionalExtension};

/// Limits of the outbox. Past either one, the oldest readings are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxBounds {
    /// Largest number of readings kept, at least 1.
    pub max_rows: u64,
    /// Oldest reading kept, by the time it was stored.
    pub max_age: Duration,
}

/// A stored reading waiting for its PubAck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Row id; rows are sent in increasing id order.
    pub id: i64,
    /// Topic the reading is published on.
    pub topic: String,
    /// Canonical JSON of the reading.
    pub payload: Vec<u8>,
}

/// Result of [`Outbox::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// Row id of the new reading.
    pub id: i64,
    /// Sequence number given to the reading.
    pub seq: u64,
    /// Older readings dropped to stay within the bounds.
    pub dropped: u64,
}

/// Error of the outbox database, naming the file, the operation and the
/// SQLite error. The agent logs it with `Display` only, so the message
/// includes the SQLite error and `source()` returns `None`.
#[derive(Debug, thiserror::Error)]
#[error("outbox {path}: failed to {operation}: {error}")]
pub struct OutboxError {
    path: PathBuf,
    operation: &'static str,
    error: rusqlite::Error,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_ms);
    CREATE TABLE IF NOT EXISTS sensor_seq (
        site TEXT NOT NULL,
        sensor TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        PRIMARY KEY (site, sensor)
    );
    CREATE TABLE IF NOT EXISTS counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
";

/// The durable queue of readings between sampling and the broker.
///
/// The outbox also numbers the readings: each sensor's sequence numbers
/// continue across restarts, so a subscriber can tell a gap from a restart.
pub struct Outbox {
    conn: Connection,
    path: PathBuf,
    bounds: OutboxBounds,
    depth: u64,
    dropped: u64,
}

impl Outbox {
    /// Opens or creates the outbox at `path`, creating missing parent
    /// directories.
    pub fn open(path: &Path, bounds: OutboxBounds) -> Result<Self, OutboxError> {
        let fail = |operation| failure(path, operation);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // A failure here shows up as the open error below.
            let _ = std::fs::create_dir_all(parent);
        }
        let conn = Connection::open(path).map_err(fail("open the database"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(fail("set synchronous=FULL"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(fail("set the busy timeout"))?;
        // The outbox is read in order from one end, so SQLite's default 2 MB
        // page cache buys nothing on a Pi; 256 KiB keeps the agent small.
        conn.pragma_update(None, "cache_size", -256)
            .map_err(fail("set the page cache size"))?;
        conn.execute_batch(SCHEMA)
            .map_err(fail("create the tables"))?;

        let depth: i64 = conn
            .query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))
            .map_err(fail("count readings"))?;
        let dropped: Option<i64> = conn
            .query_row(
                "SELECT value FROM counters WHERE name = 'dropped'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(fail("read the drop counter"))?;
        Ok(Self {
            conn,
            path: path.to_owned(),
            bounds,
            depth: u64::try_from(depth).unwrap_or(0),
            dropped: dropped.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
        })
    }

    /// Stores `reading` with the next sequence number of its sensor, which
    /// is also written into `reading.seq`, then drops the oldest readings
    /// past the bounds. Everything happens in one committed transaction.
    pub fn push(
        &mut self,
        topics: &Topics,
        reading: &mut Reading,
        now: DateTime<Utc>,
    ) -> Result<Pushed, OutboxError> {
        let path = &self.path;
        let fail = |operation| failure(path, operation);
        let tx = self
            .conn
            .transaction()
            .map_err(fail("begin a transaction"))?;
        let seq: i64 = tx
            .query_row(
                "INSERT INTO sensor_seq (site, sensor, last_seq) VALUES (?1, ?2, 1)
                 ON CONFLICT (site, sensor) DO UPDATE SET last_seq = last_seq + 1
                 RETURNING last_seq",
                params![reading.site.as_str(), reading.sensor.as_str()],
                |row| row.get(0),
            )
            .map_err(fail("number the reading"))?;
        reading.seq = u64::try_from(seq).ok();

        let topic = topics.reading(&reading.site, &reading.sensor);
        tx.execute(
            "INSERT INTO outbox (topic, payload, created_ms) VALUES (?1, ?2, ?3)",
            params![topic, reading.to_json(), now.timestamp_millis()],
        )
        .map_err(fail("store the reading"))?;
        let id = tx.last_insert_rowid();

        let dropped = enforce_bounds(&tx, self.bounds, self.depth + 1, now)
            .map_err(fail("drop readings past the bounds"))?;
        tx.commit().map_err(fail("commit the reading"))?;

        self.depth = self.depth + 1 - dropped;
        self.dropped += dropped;
        Ok(Pushed {
            id,
            seq: u64::try_from(seq).unwrap_or(0),
            dropped,
        })
    }

    /// Returns up to `limit` readings with an id above `after`, oldest first.
    pub fn next_batch(&self, after: i64, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let fail = |source| failure(&self.path, "read readings to send")(source);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, topic, payload FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(fail)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(params![after, limit], |row| {
                Ok(OutboxEntry {
                    id: row.get(0)?,
                    topic: row.get(1)?,
                    payload: row.get(2)?,
                })
            })
            .map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)
    }

    /// Deletes acknowledged readings. Ids that are already gone (dropped by
    /// the bounds) are skipped.
    pub fn delete(&mut self, ids: &[i64]) -> Result<(), OutboxError> {
        let fail = |source| failure(&self.path, "delete acknowledged readings")(source);
        let tx = self.conn.transaction().map_err(fail)?;
        let mut deleted = 0;
        {
            let mut statement = tx
                .prepare_cached("DELETE FROM outbox WHERE id = ?1")
                .map_err(fail)?;
            for id in ids {
                deleted += statement.execute([id]).map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)?;
        self.depth = self.depth.saturating_sub(deleted as u64);
        Ok(())
    }

    /// Returns the last sequence number given to a sensor's reading, 0 when
    /// it has none.
    pub fn last_seq(&self, site: &str, sensor: &str) -> Result<u64, OutboxError> {
        let last: Option<i64> = self
            .conn
            .query_row(
                "SELECT last_seq FROM sensor_seq WHERE site = ?1 AND sensor = ?2",
                params![site, sensor],
                |row| row.get(0),
            )
            .optional()
            .map_err(failure(&self.path, "read the last sequence number"))?;
        Ok(last.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    /// Returns the number of stored readings.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// Returns the number of readings dropped by the bounds over the life of
    /// the file.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Returns the path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Returns a mapper from a SQLite error to an [`OutboxError`].
fn failure(path: &Path, operation: &'static str) -> impl FnOnce(rusqlite::Error) -> OutboxError {
    let path = path.to_owned();
    move |error| OutboxError {
        path,
        operation,
        error,
    }
}

/// Deletes readings older than `max_age`, then the oldest past `max_rows`,
/// and returns how many were deleted. `depth` is the count before.
fn enforce_bounds(
    tx: &rusqlite::Transaction<'_>,
    bounds: OutboxBounds,
    depth: u64,
    now: DateTime<Utc>,
) -> rusqlite::Result<u64> {
    let max_age_ms = i64::try_from(bounds.max_age.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now.timestamp_millis().saturating_sub(max_age_ms);
    let aged = tx.execute("DELETE FROM outbox WHERE created_ms < ?1", [cutoff])? as u64;

    let remaining = depth.saturating_sub(aged);
    let excess = remaining.saturating_sub(bounds.max_rows.max(1));
    let mut trimmed = 0;
    if excess > 0 {
        let excess = i64::try_from(excess).unwrap_or(i64::MAX);
        trimmed = tx.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?1)",
            [excess],
        )? as u64;
    }

    let dropped = aged + trimmed;
    if dropped > 0 {
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('dropped', ?1)
             ON CONFLICT (name) DO UPDATE SET value = value + ?1",
            [i64::try_from(dropped).unwrap_or(i64::MAX)],
        )?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use floorwatch_protocol::Id;

    const BOUNDS: OutboxBounds = OutboxBounds {
        max_rows: 1000,
        max_age: Duration::from_secs(3600),
    };

    fn reading(sensor: &str) -> Reading {
        Reading::temperature(
            Id::parse("plant-1").unwrap(),
            Id::parse(sensor).unwrap(),
            Utc::now(),
            21.5,
        )
    }

    fn push(outbox: &mut Outbox, sensor: &str, now: DateTime<Utc>) -> Pushed {
        outbox
            .push(&Topics::new("floorwatch"), &mut reading(sensor), now)
            .unwrap()
    }

    #[test]
    fn readings_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/outbox.db");
        let now = Utc::now();
        {
            let mut outbox = Outbox::open(&path, BOUNDS).unwrap();
            for _ in 0..3 {
                push(&mut outbox, "oven-1", now);
            }
        }
        let outbox = Outbox::open(&path, BOUNDS).unwrap();
        assert_eq!(outbox.depth(), 3);
        let batch = outbox.next_batch(0, 10).unwrap();
        let seqs: Vec<_> = batch
            .iter()
            .map(|entry| {
                serde_json::from_slice::<Reading>(&entry.payload)
                    .unwrap()
                    .seq
            })
            .collect();
        assert_eq!(seqs, [Some(1), Some(2), Some(3)]);
        assert_eq!(batch[0].topic, "floorwatch/plant-1/oven-1/reading");
        assert_eq!(outbox.next_batch(batch[1].id, 10).unwrap().len(), 1);
    }

    #[test]
    fn sequence_continues_per_sensor_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let now = Utc::now();
        let mut outbox = Outbox::open(&path, BOUNDS).unwrap();
        assert_eq!(push(&mut outbox, "a", now).seq, 1);
        assert_eq!(push(&mut outbox, "b", now).seq, 1);
        assert_eq!(push(&mut outbox, "a", now).seq, 2);
        drop(outbox);
        let mut outbox = Outbox::open(&path, BOUNDS).unwrap();
        assert_eq!(outbox.last_seq("plant-1", "a").unwrap(), 2);
        assert_eq!(outbox.last_seq("plant-1", "zzz").unwrap(), 0);
        assert_eq!(push(&mut outbox, "a", now).seq, 3);
    }

    #[test]
    fn delete_removes_acknowledged_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(&dir.path().join("o.db"), BOUNDS).unwrap();
        let now = Utc::now();
        let ids: Vec<_> = (0..4).map(|_| push(&mut outbox, "a", now).id).collect();
        outbox.delete(&[ids[0], ids[2], 9999]).unwrap();
        assert_eq!(outbox.depth(), 2);
        let left: Vec<_> = outbox
            .next_batch(0, 10)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(left, [ids[1], ids[3]]);
    }

    #[test]
    fn row_bound_drops_oldest_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let bounds = OutboxBounds {
            max_rows: 3,
            ..BOUNDS
        };
        let mut outbox = Outbox::open(&path, bounds).unwrap();
        let now = Utc::now();
        let dropped: Vec<_> = (0..5)
            .map(|_| push(&mut outbox, "a", now).dropped)
            .collect();
        assert_eq!(dropped, [0, 0, 0, 1, 1]);
        assert_eq!(outbox.depth(), 3);
        assert_eq!(outbox.dropped(), 2);
        let kept: Vec<_> = outbox
            .next_batch(0, 10)
            .unwrap()
            .iter()
            .map(|entry| {
                serde_json::from_slice::<Reading>(&entry.payload)
                    .unwrap()
                    .seq
            })
            .collect();
        assert_eq!(kept, [Some(3), Some(4), Some(5)]);
        drop(outbox);
        assert_eq!(Outbox::open(&path, bounds).unwrap().dropped(), 2);
    }

    #[test]
    fn age_bound_drops_old_readings() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = OutboxBounds {
            max_rows: 100,
            max_age: Duration::from_secs(60),
        };
        let mut outbox = Outbox::open(&dir.path().join("o.db"), bounds).unwrap();
        let start = Utc::now();
        push(&mut outbox, "a", start);
        push(&mut outbox, "a", start + chrono::Duration::seconds(30));
        let later = push(&mut outbox, "a", start + chrono::Duration::seconds(61));
        assert_eq!(later.dropped, 1);
        assert_eq!(outbox.depth(), 2);
        assert_eq!(outbox.dropped(), 1);
    }
}
