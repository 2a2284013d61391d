//! The clock that silence and reminders are judged on.
//!
//! Live, readings carry about the time they arrive, and the clock is the
//! wall clock (or the newest reading time, when a sensor's clock runs
//! ahead). In a replay of old data, readings arrive far from their own
//! time, and the clock is the newest reading time advanced by the wall time
//! elapsed since that reading arrived, so a replay at full speed is not
//! judged silent against today's date.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::sensor::SensorState;

/// Largest difference between a reading's time and its arrival for the
/// bridge to count as live.
pub const LIVE_SKEW: TimeDelta = TimeDelta::minutes(10);

/// The newest reading time and when it arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReadingClock {
    newest: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl ReadingClock {
    /// Starts from the newest reading time stored in `sensors`, taken as
    /// arriving at `wall_now`.
    pub fn starting_from(
        sensors: &HashMap<(String, String), SensorState>,
        wall_now: DateTime<Utc>,
    ) -> Self {
        let newest = sensors.values().filter_map(|state| state.last_time).max();
        Self {
            newest: newest.map(|time| (time, wall_now)),
        }
    }

    /// Records a reading with sensor time `time` that arrived at `arrived`.
    pub fn observe(&mut self, time: DateTime<Utc>, arrived: DateTime<Utc>) {
        if self.newest.is_none_or(|(newest, _)| time > newest) {
            self.newest = Some((time, arrived));
        }
    }

    /// Returns the clock at wall time `wall_now`, or `None` before any
    /// reading was seen.
    pub fn now(&self, wall_now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (newest, arrived) = self.newest?;
        if (arrived - newest).abs() <= LIVE_SKEW {
            return Some(wall_now.max(newest));
        }
        Some(newest + (wall_now - arrived).max(TimeDelta::zero()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn clock_follows_wall_or_readings() {
        // (reading time, arrival, wall now, expected clock)
        let cases = [
            // Live: the wall clock.
            (
                "2026-12-04T12:00:00Z",
                "2026-12-04T12:00:01Z",
                "2026-12-04T12:05:00Z",
                "2026-12-04T12:05:00Z",
            ),
            // Live with a sensor clock 30 s ahead: the reading time.
            (
                "2026-12-04T12:00:30Z",
                "2026-12-04T12:00:00Z",
                "2026-12-04T12:00:10Z",
                "2026-12-04T12:00:30Z",
            ),
            // Replay of 2013 data: the reading time plus elapsed wall time.
            (
                "2013-12-10T08:00:00Z",
                "2026-12-04T12:00:00Z",
                "2026-12-04T12:00:02Z",
                "2013-12-10T08:00:02Z",
            ),
        ];
        for (time, arrived, wall, expected) in cases {
            let mut clock = ReadingClock::default();
            assert_eq!(clock.now(at(wall)), None);
            clock.observe(at(time), at(arrived));
            assert_eq!(clock.now(at(wall)), Some(at(expected)), "{time} {arrived}");
        }
    }

    #[test]
    fn older_reading_does_not_move_clock() {
        let mut clock = ReadingClock::default();
        clock.observe(at("2013-12-10T08:00:00Z"), at("2026-12-04T12:00:00Z"));
        clock.observe(at("2013-12-10T07:00:00Z"), at("2026-12-04T12:00:01Z"));
        assert_eq!(
            clock.now(at("2026-12-04T12:00:01Z")),
            Some(at("2013-12-10T08:00:01Z"))
        );
    }
}
