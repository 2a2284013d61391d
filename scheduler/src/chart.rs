//! Geometry of the readings chart on the task page. The template draws the
//! SVG from these numbers, so every label passes through tera's escaping.

use chrono::{DateTime, Utc};
use floorwatch_protocol::WindowPoint;
use serde::Serialize;

use crate::display::format_reading;

/// Width of the chart's view box.
const WIDTH: f64 = 640.0;
/// Height of the chart's view box.
const HEIGHT: f64 = 240.0;
/// Space for the value labels on the left.
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
/// Space for the time labels below.
const BOTTOM: f64 = 28.0;

/// A horizontal line across the plot with its label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Level {
    pub y: String,
    pub label: String,
}

/// Everything the template needs to draw the chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: String,
    pub bottom: String,
    /// `x,y` pairs of the readings polyline, oldest first.
    pub points: String,
    /// Circles at each reading: `(x, y)`.
    pub dots: Vec<(String, String)>,
    pub threshold: Level,
    pub clear_threshold: Option<Level>,
    /// Value labels at the top and bottom of the plot.
    pub top_label: Level,
    pub bottom_label: Level,
    pub first_time: String,
    pub last_time: String,
}

/// Lays out `window` with the threshold lines, or returns `None` for an
/// empty window. Values are in `unit`, which is only used in labels.
pub fn layout(
    window: &[WindowPoint],
    threshold: f64,
    clear_threshold: Option<f64>,
    unit: &str,
) -> Option<Chart> {
    let first = window.first()?;
    let last = window.last()?;
    let (low, high) = value_range(window, threshold, clear_threshold);
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let y_of = |value: f64| TOP + (high - value) / (high - low) * plot_height;
    let span_ms = (last.time - first.time).num_milliseconds();
    let x_of = |index: usize, time: DateTime<Utc>| {
        let fraction = if span_ms > 0 {
            (time - first.time).num_milliseconds() as f64 / span_ms as f64
        } else if window.len() > 1 {
            index as f64 / (window.len() - 1) as f64
        } else {
            0.5
        };
        LEFT + fraction * plot_width
    };

    let coordinates: Vec<(f64, f64)> = window
        .iter()
        .enumerate()
        .map(|(index, point)| (x_of(index, point.time), y_of(point.value)))
        .collect();
    let points = coordinates
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ");
    let level = |value: f64, name: &str| Level {
        y: format!("{:.1}", y_of(value)),
        label: format!("{name} {}", format_reading(value, unit)),
    };
    Some(Chart {
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        right: format!("{:.1}", WIDTH - RIGHT),
        bottom: format!("{:.1}", HEIGHT - BOTTOM),
        points,
        dots: coordinates
            .iter()
            .map(|(x, y)| (format!("{x:.1}"), format!("{y:.1}")))
            .collect(),
        threshold: level(threshold, "threshold"),
        clear_threshold: clear_threshold.map(|value| level(value, "clear")),
        top_label: level_label(y_of(high), high, unit),
        bottom_label: level_label(y_of(low), low, unit),
        first_time: first.time.format("%H:%M:%S").to_string(),
        last_time: last.time.format("%H:%M:%S UTC").to_string(),
    })
}

/// Returns the plotted value range: every reading and threshold, with a
/// margin of 8 % (at least 0.5) above and below.
fn value_range(window: &[WindowPoint], threshold: f64, clear_threshold: Option<f64>) -> (f64, f64) {
    let values = window
        .iter()
        .map(|point| point.value)
        .chain(std::iter::once(threshold))
        .chain(clear_threshold)
        .filter(|value| value.is_finite());
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(low, high), value| {
        (low.min(value), high.max(value))
    });
    let pad = ((high - low) * 0.08).max(0.5);
    (low - pad, high + pad)
}

fn level_label(y: f64, value: f64, unit: &str) -> Level {
    Level {
        y: format!("{y:.1}"),
        label: format_reading(value, unit),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn window(values: &[f64]) -> Vec<WindowPoint> {
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        values
            .iter()
            .enumerate()
            .map(|(index, value)| WindowPoint {
                time: start + Duration::seconds(index as i64 * 10),
                value: *value,
            })
            .collect()
    }

    #[test]
    fn empty_window_has_no_chart() {
        assert_eq!(layout(&[], 30.0, Some(29.0), "°C"), None);
    }

    #[test]
    fn points_span_the_plot_and_thresholds_sit_between() {
        let chart = layout(&window(&[28.0, 31.0, 32.0]), 30.0, Some(29.0), "°C").unwrap();
        let xs: Vec<f64> = chart.dots.iter().map(|(x, _)| x.parse().unwrap()).collect();
        assert_eq!(
            xs,
            [LEFT, LEFT + (WIDTH - LEFT - RIGHT) / 2.0, WIDTH - RIGHT]
        );
        let y = |text: &str| text.parse::<f64>().unwrap();
        // Higher values are drawn higher, so with smaller y.
        let dot_y: Vec<f64> = chart.dots.iter().map(|(_, y)| y.parse().unwrap()).collect();
        assert!(dot_y[2] < y(&chart.threshold.y));
        assert!(y(&chart.threshold.y) < y(&chart.clear_threshold.as_ref().unwrap().y));
        assert!(y(&chart.clear_threshold.unwrap().y) < dot_y[0]);
        assert_eq!(chart.threshold.label, "threshold 30 °C");
        assert_eq!(chart.points.split(' ').count(), 3);
    }

    #[test]
    fn flat_window_and_single_point_are_drawn() {
        let chart = layout(&window(&[30.0]), 30.0, None, "%").unwrap();
        assert_eq!(chart.dots.len(), 1);
        assert_eq!(
            chart.dots[0].0,
            format!("{:.1}", LEFT + (WIDTH - LEFT - RIGHT) / 2.0)
        );
        assert!(chart.clear_threshold.is_none());
        let top: f64 = chart.top_label.y.parse().unwrap();
        let bottom: f64 = chart.bottom_label.y.parse().unwrap();
        assert!(top < bottom);
    }
}
