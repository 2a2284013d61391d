//! The in-memory view of one endpoint's pending outbox rows, so that a
//! worker reads the outbox once per batch of new rows instead of once per
//! attempt.
//!
//! Rows are grouped into lanes by ordering key (the incident) and kept in
//! `id` order. Only the head of a lane may be attempted, and only while no
//! earlier attempt of that lane is in flight or waiting for its commit. Due
//! heads are handed out soonest due first, then by `id`.
//!
//! Every pending row of the endpoint with an `id` up to `cursor` is in the
//! queue, so a lane's head is the oldest pending row of its incident. Rows
//! after `cursor` are read later in `id` order, which keeps that true.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::store::{OutboxRow, PendingRow, RowUpdate};

/// A pending row held in memory. The body is dropped after a failed
/// attempt and read again before the next one, so rows waiting for a retry
/// cost little memory.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRow {
    pub id: i64,
    pub event_id: String,
    pub ordering_key: String,
    pub event_type: String,
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub body: Option<Vec<u8>>,
}

impl From<OutboxRow> for QueuedRow {
    fn from(row: OutboxRow) -> Self {
        Self {
            id: row.id,
            event_id: row.event_id,
            ordering_key: row.ordering_key,
            event_type: row.event_type,
            attempts: row.attempts,
            next_attempt_at_ms: row.next_attempt_at_ms,
            body: Some(row.body),
        }
    }
}

impl From<PendingRow> for QueuedRow {
    fn from(row: PendingRow) -> Self {
        Self {
            id: row.id,
            event_id: row.event_id,
            ordering_key: row.ordering_key,
            event_type: row.event_type,
            attempts: row.attempts,
            next_attempt_at_ms: row.next_attempt_at_ms,
            body: None,
        }
    }
}

/// Pending rows of one endpoint, by incident.
#[derive(Debug, Default)]
pub struct Queue {
    lanes: HashMap<String, VecDeque<QueuedRow>>,
    /// Heads of lanes that are not busy, by (next attempt time, id).
    due: BTreeMap<(i64, i64), String>,
    /// Ordering keys with an attempt in flight or waiting for its commit.
    busy: HashSet<String>,
    /// Ids of every row held.
    held: HashSet<i64>,
    /// Rows that hold their body.
    bodies: usize,
    /// Highest outbox id read so far.
    cursor: i64,
}

impl Queue {
    /// Returns the highest outbox id read so far.
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Returns the number of rows held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Returns the number of held rows whose body is in memory.
    pub fn bodies(&self) -> usize {
        self.bodies
    }

    /// Returns whether the row with `id` is held.
    pub fn holds(&self, id: i64) -> bool {
        self.held.contains(&id)
    }

    /// Adds a row read after the cursor. Rows must arrive in `id` order.
    pub fn push_new(&mut self, row: QueuedRow) {
        debug_assert!(
            row.id > self.cursor,
            "rows after the cursor arrive in order"
        );
        self.cursor = self.cursor.max(row.id);
        self.insert(row);
    }

    /// Adds a row at or before the cursor that became pending again, such
    /// as a replayed dead letter. Does nothing when the row is held.
    pub fn insert(&mut self, row: QueuedRow) {
        if !self.held.insert(row.id) {
            return;
        }
        self.bodies += usize::from(row.body.is_some());
        let key = row.ordering_key.clone();
        let lane = self.lanes.entry(key.clone()).or_default();
        let position = lane.partition_point(|queued| queued.id < row.id);
        let old_head = (position == 0)
            .then(|| lane.front().map(|head| (head.next_attempt_at_ms, head.id)))
            .flatten();
        lane.insert(position, row);
        if position == 0 && !self.busy.contains(&key) {
            if let Some(old_head) = old_head {
                self.due.remove(&old_head);
            }
            self.schedule_head(&key);
        }
    }

    /// Returns the time of the soonest due head, in Unix milliseconds.
    pub fn next_due_at(&self) -> Option<i64> {
        self.due.keys().next().map(|(at, _)| *at)
    }

    /// Takes the soonest head due at `now_ms` and marks its incident busy.
    /// The row stays queued until [`Queue::complete`] or
    /// [`Queue::release`]; its body moves to the caller.
    pub fn pop_due(&mut self, now_ms: i64) -> Option<QueuedRow> {
        let (&(at, id), _) = self.due.first_key_value()?;
        if at > now_ms {
            return None;
        }
        let key = self.due.remove(&(at, id)).expect("first key exists");
        let lane = self.lanes.get_mut(&key).expect("a due key has a lane");
        let head = lane.front_mut().expect("a due lane has a head");
        debug_assert_eq!(head.id, id);
        let body = head.body.take();
        self.bodies -= usize::from(body.is_some());
        let mut row = head.clone();
        row.body = body;
        self.busy.insert(key);
        Some(row)
    }

    /// Applies the committed result of an attempt at row `id` and frees its
    /// incident.
    pub fn complete(&mut self, key: &str, id: i64, update: RowUpdate) {
        match update {
            RowUpdate::Delivered | RowUpdate::Dead => self.remove(key, id),
            RowUpdate::Retry { next_attempt_at_ms } => {
                if let Some(row) = self.row_mut(key, id) {
                    row.attempts += 1;
                    row.next_attempt_at_ms = next_attempt_at_ms;
                }
            }
        }
        self.release(key);
    }

    /// Frees an incident without changing its row, as after an attempt cut
    /// short at shutdown.
    pub fn release(&mut self, key: &str) {
        if self.busy.remove(key) {
            self.schedule_head(key);
        }
    }

    /// Drops row `id`, for a row that is no longer pending in the outbox.
    pub fn remove(&mut self, key: &str, id: i64) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        let Some(position) = lane.iter().position(|row| row.id == id) else {
            return;
        };
        if position == 0 && !self.busy.contains(key) {
            let head = &lane[0];
            self.due.remove(&(head.next_attempt_at_ms, head.id));
        }
        let row = lane.remove(position).expect("position is in the lane");
        self.held.remove(&row.id);
        self.bodies -= usize::from(row.body.is_some());
        if lane.is_empty() {
            self.lanes.remove(key);
        } else if position == 0 && !self.busy.contains(key) {
            self.schedule_head(key);
        }
    }

    /// Drops the bodies of rows that wait behind another row of their
    /// incident, so that memory goes to rows that can be sent now.
    pub fn drop_waiting_bodies(&mut self) {
        for lane in self.lanes.values_mut() {
            for row in lane.iter_mut().skip(1) {
                if row.body.take().is_some() {
                    self.bodies -= 1;
                }
            }
        }
    }

    fn row_mut(&mut self, key: &str, id: i64) -> Option<&mut QueuedRow> {
        self.lanes.get_mut(key)?.iter_mut().find(|row| row.id == id)
    }

    fn schedule_head(&mut self, key: &str) {
        if let Some(head) = self.lanes.get(key).and_then(VecDeque::front) {
            self.due
                .insert((head.next_attempt_at_ms, head.id), key.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, key: &str, at: i64) -> QueuedRow {
        QueuedRow {
            id,
            event_id: format!("msg_{id}"),
            ordering_key: key.to_owned(),
            event_type: "incident.opened".to_owned(),
            attempts: 0,
            next_attempt_at_ms: at,
            body: Some(b"{}".to_vec()),
        }
    }

    fn ids(rows: &[QueuedRow]) -> Vec<i64> {
        rows.iter().map(|row| row.id).collect()
    }

    fn drain(queue: &mut Queue, now_ms: i64) -> Vec<QueuedRow> {
        std::iter::from_fn(|| queue.pop_due(now_ms)).collect()
    }

    #[test]
    fn one_head_per_incident() {
        let mut queue = Queue::default();
        queue.push_new(row(1, "a", 0));
        queue.push_new(row(2, "a", 0));
        queue.push_new(row(3, "b", 0));
        let first = drain(&mut queue, 0);
        assert_eq!(ids(&first), [1, 3]);
        assert_eq!(queue.cursor(), 3);

        queue.complete("a", 1, RowUpdate::Delivered);
        let second = drain(&mut queue, 0);
        assert_eq!(ids(&second), [2]);
        assert_eq!(second[0].body.as_deref(), Some(&b"{}"[..]));
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn retry_waits_and_drops_body() {
        let mut queue = Queue::default();
        queue.push_new(row(1, "a", 0));
        queue.push_new(row(2, "a", 0));
        queue.push_new(row(3, "b", 5));
        let head = queue.pop_due(0).unwrap();
        assert_eq!(head.id, 1);
        queue.complete(
            "a",
            1,
            RowUpdate::Retry {
                next_attempt_at_ms: 10,
            },
        );
        assert_eq!(queue.next_due_at(), Some(5));
        assert_eq!(ids(&drain(&mut queue, 9)), [3]);
        let retried = queue.pop_due(10).unwrap();
        assert_eq!(retried.id, 1);
        assert_eq!(retried.attempts, 1);
        assert_eq!(retried.body, None, "the body is read again for a retry");
        assert_eq!(queue.pop_due(10), None, "row 2 waits behind row 1");
    }

    #[test]
    fn replayed_row_goes_before_its_incident() {
        let mut queue = Queue::default();
        queue.push_new(row(5, "a", 0));
        queue.push_new(row(6, "b", 0));
        queue.insert(row(2, "a", 3));
        queue.insert(row(5, "a", 0));
        assert_eq!(queue.len(), 3, "a held row is not added twice");
        assert_eq!(ids(&drain(&mut queue, 3)), [6, 2]);
    }

    #[test]
    fn replayed_row_waits_for_busy_incident() {
        let mut queue = Queue::default();
        queue.push_new(row(5, "a", 0));
        let in_flight = queue.pop_due(0).unwrap();
        queue.insert(row(2, "a", 0));
        assert_eq!(queue.pop_due(0), None);
        queue.complete("a", in_flight.id, RowUpdate::Delivered);
        assert_eq!(ids(&drain(&mut queue, 0)), [2]);
    }

    #[test]
    fn release_and_remove_free_the_incident() {
        let mut queue = Queue::default();
        queue.push_new(row(1, "a", 0));
        queue.push_new(row(2, "a", 0));
        let head = queue.pop_due(0).unwrap();
        queue.release("a");
        assert_eq!(queue.pop_due(0).map(|row| row.id), Some(head.id));
        queue.remove("a", 1);
        queue.release("a");
        assert_eq!(ids(&drain(&mut queue, 0)), [2]);
        queue.complete("a", 2, RowUpdate::Dead);
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.next_due_at(), None);
    }

    #[test]
    fn bodies_are_counted() {
        let mut queue = Queue::default();
        queue.push_new(row(1, "a", 0));
        queue.push_new(row(2, "a", 0));
        queue.push_new(row(3, "b", 0));
        assert_eq!(queue.bodies(), 3);
        queue.drop_waiting_bodies();
        assert_eq!(queue.bodies(), 2);
        let head = queue.pop_due(0).unwrap();
        assert!(head.body.is_some());
        assert_eq!(queue.bodies(), 1);
        queue.complete("a", head.id, RowUpdate::Delivered);
        assert_eq!(queue.bodies(), 1);
        assert!(queue.holds(2));
        assert!(!queue.holds(1));
    }
}
