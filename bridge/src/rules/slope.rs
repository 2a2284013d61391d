//! The least-squares slope of recent readings, for rate-of-change rules.

use chrono::{DateTime, TimeDelta, Utc};
use floorwatch_protocol::WindowPoint;

/// A slope and the number of readings it was fitted to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slope {
    /// Change per minute, in the metric's unit.
    pub per_minute: f64,
    pub samples: usize,
}

/// Fits a line through the points of `window` no older than `span` before
/// `now` (inclusive) and returns its slope per minute, or `None` with fewer
/// than two points or when every point has the same time.
pub fn least_squares_slope(
    window: &[WindowPoint],
    now: DateTime<Utc>,
    span: TimeDelta,
) -> Option<Slope> {
    let start = now - span;
    let points = window.iter().filter(|point| point.time >= start);
    let mut count = 0usize;
    let (mut sum_x, mut sum_y) = (0.0, 0.0);
    for point in points.clone() {
        count += 1;
        sum_x += minutes_between(start, point.time);
        sum_y += point.value;
    }
    if count < 2 {
        return None;
    }
    let (mean_x, mean_y) = (sum_x / count as f64, sum_y / count as f64);
    let (mut covariance, mut variance) = (0.0, 0.0);
    for point in points {
        let dx = minutes_between(start, point.time) - mean_x;
        covariance += dx * (point.value - mean_y);
        variance += dx * dx;
    }
    if variance == 0.0 {
        return None;
    }
    Some(Slope {
        per_minute: covariance / variance,
        samples: count,
    })
}

fn minutes_between(start: DateTime<Utc>, time: DateTime<Utc>) -> f64 {
    (time - start).num_milliseconds() as f64 / 60_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(values: &[(i64, f64)]) -> Vec<WindowPoint> {
        let start: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
        values
            .iter()
            .map(|&(second, value)| WindowPoint {
                time: start + TimeDelta::seconds(second),
                value,
            })
            .collect()
    }

    #[test]
    fn slope_of_straight_line_is_exact() {
        let points = window(&[(0, 20.0), (30, 21.0), (60, 22.0), (90, 23.0)]);
        let now = points[3].time;
        let slope = least_squares_slope(&points, now, TimeDelta::minutes(5)).unwrap();
        assert!((slope.per_minute - 2.0).abs() < 1e-9, "{slope:?}");
        assert_eq!(slope.samples, 4);
    }

    #[test]
    fn slope_ignores_points_outside_span() {
        let points = window(&[(0, 100.0), (600, 20.0), (660, 19.0), (720, 18.0)]);
        let now = points[3].time;
        let slope = least_squares_slope(&points, now, TimeDelta::minutes(2)).unwrap();
        assert!((slope.per_minute + 1.0).abs() < 1e-9, "{slope:?}");
        assert_eq!(slope.samples, 3);
    }

    #[test]
    fn slope_needs_two_distinct_times() {
        let one = window(&[(0, 20.0)]);
        assert_eq!(
            least_squares_slope(&one, one[0].time, TimeDelta::minutes(5)),
            None
        );
        let same_time = window(&[(0, 20.0), (0, 25.0)]);
        let now = same_time[0].time;
        assert_eq!(
            least_squares_slope(&same_time, now, TimeDelta::minutes(5)),
            None
        );
    }
}
