//! `/metrics`: the bridge's counters in the Prometheus text exposition
//! format (version 0.0.4).

use std::fmt::Write;

use crate::stats::{StatsSnapshot, LATENCY_BUCKETS_MS};

/// Outbox figures read from the database at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxGauge {
    /// Rows waiting for delivery, over all endpoints.
    pub pending: u64,
    /// Age in seconds of the oldest pending row; 0 when none is pending.
    pub oldest_pending_age_secs: f64,
}

/// Renders the metrics page.
pub fn render(stats: &StatsSnapshot, latency: &(Vec<u64>, u64), outbox: OutboxGauge) -> String {
    let mut page = String::new();
    render_ingest(&mut page, stats);
    render_delivery(&mut page, stats);
    render_latency(&mut page, latency);
    render_gauges(&mut page, stats, outbox);
    page
}

fn header(page: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Writes one metric with one sample per `(label value, sample)`.
fn labelled(page: &mut String, name: &str, help: &str, label: &str, samples: &[(&str, u64)]) {
    header(page, name, "counter", help);
    for (value, sample) in samples {
        let _ = writeln!(page, "{name}{{{label}=\"{value}\"}} {sample}");
    }
}

fn render_ingest(page: &mut String, stats: &StatsSnapshot) {
    let name = "floorwatch_readings_accepted_total";
    header(page, name, "counter", "Payloads parsed into readings.");
    let _ = writeln!(page, "{name} {}", stats.readings_accepted);

    let rejected: Vec<(&str, u64)> = stats
        .rejected_by_reason
        .iter()
        .map(|(code, count)| (code.as_str(), *count))
        .collect();
    let help = "Payloads rejected, by code.";
    labelled(
        page,
        "floorwatch_readings_rejected_total",
        help,
        "code",
        &rejected,
    );

    let incidents = [
        ("incident.opened", stats.incidents_opened),
        ("incident.updated", stats.incidents_updated),
        ("incident.resolved", stats.incidents_resolved),
    ];
    let help = "Incident events, by type.";
    labelled(
        page,
        "floorwatch_incident_events_total",
        help,
        "type",
        &incidents,
    );

    let ignored = [
        ("duplicate", stats.duplicates),
        ("out_of_order", stats.out_of_order),
    ];
    let help =
        "Valid readings not evaluated: a seen or late seq, or older than the sensor's newest.";
    labelled(
        page,
        "floorwatch_readings_ignored_total",
        help,
        "reason",
        &ignored,
    );
    let counters = [
        (
            "floorwatch_readings_missing_total",
            "Readings never received, judged by gaps in each sensor's seq.",
            stats.readings_missing,
        ),
        (
            "floorwatch_events_held_total",
            "Incident events held by a silence or maintenance window.",
            stats.events_held,
        ),
        (
            "floorwatch_events_released_total",
            "Held incident events sent when their mute ended.",
            stats.events_released,
        ),
        (
            "floorwatch_events_written_total",
            "Events committed to the outbox, once per event.",
            stats.events_written,
        ),
    ];
    for (name, help, value) in counters {
        header(page, name, "counter", help);
        let _ = writeln!(page, "{name} {value}");
    }

    let sensor_events = [
        ("silent", stats.sensors_silent),
        ("fault", stats.sensor_faults),
        ("cleared", stats.sensor_events_cleared),
    ];
    let help = "Sensor health events: sensor.silent, sensor.fault, and either one cleared.";
    labelled(
        page,
        "floorwatch_sensor_events_total",
        help,
        "kind",
        &sensor_events,
    );

    let reloads = [
        ("applied", stats.config_reloads),
        ("rejected", stats.config_reloads_rejected),
    ];
    let help = "Configuration reloads, by result.";
    labelled(
        page,
        "floorwatch_config_reloads_total",
        help,
        "result",
        &reloads,
    );
}

fn render_delivery(page: &mut String, stats: &StatsSnapshot) {
    let outcomes = [
        ("delivered", stats.deliveries_succeeded),
        ("failed", stats.delivery_attempts_failed),
    ];
    let help = "Delivery attempts, by outcome.";
    labelled(
        page,
        "floorwatch_delivery_attempts_total",
        help,
        "outcome",
        &outcomes,
    );

    let name = "floorwatch_dead_letters_total";
    header(
        page,
        name,
        "counter",
        "Outbox rows that exhausted their retries.",
    );
    let _ = writeln!(page, "{name} {}", stats.dead_letters);
}

fn render_gauges(page: &mut String, stats: &StatsSnapshot, outbox: OutboxGauge) {
    let gauges = [
        (
            "floorwatch_outbox_pending",
            "Outbox rows waiting for delivery.",
            outbox.pending.to_string(),
        ),
        (
            "floorwatch_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox row.",
            format!("{:.3}", outbox.oldest_pending_age_secs),
        ),
        (
            "floorwatch_endpoints_disabled",
            "Endpoints disabled by 410 Gone and not enabled again.",
            stats.endpoints_disabled.to_string(),
        ),
        (
            "floorwatch_mqtt_subscribed",
            "1 once the broker acknowledged the reading subscription.",
            u8::from(stats.mqtt_subscribed).to_string(),
        ),
    ];
    for (name, help, value) in gauges {
        header(page, name, "gauge", help);
        let _ = writeln!(page, "{name} {value}");
    }
}

fn render_latency(page: &mut String, (counts, sum_ms): &(Vec<u64>, u64)) {
    let name = "floorwatch_delivery_latency_seconds";
    header(page, name, "histogram", "Latency of delivery attempts.");
    let mut cumulative = 0;
    for (index, count) in counts.iter().enumerate() {
        cumulative += count;
        let bound = match LATENCY_BUCKETS_MS.get(index) {
            Some(ms) => format!("{}", *ms as f64 / 1000.0),
            None => "+Inf".to_owned(),
        };
        let _ = writeln!(page, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(page, "{name}_sum {}", *sum_ms as f64 / 1000.0);
    let _ = writeln!(page, "{name}_count {cumulative}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let stats = Stats::default();
        stats.reject("invalid_json");
        stats.delivery_latency.observe(3);
        stats.delivery_latency.observe(700);
        stats.delivery_latency.observe(60_000);
        let page = render(
            &stats.snapshot(),
            &stats.delivery_latency.snapshot(),
            OutboxGauge {
                pending: 2,
                oldest_pending_age_secs: 1.5,
            },
        );

        assert!(page.contains("floorwatch_readings_rejected_total{code=\"invalid_json\"} 1\n"));
        assert!(page.contains("floorwatch_delivery_latency_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(page.contains("floorwatch_delivery_latency_seconds_bucket{le=\"1\"} 2\n"));
        assert!(page.contains("floorwatch_delivery_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(page.contains("floorwatch_delivery_latency_seconds_sum 60.703\n"));
        assert!(page.contains("floorwatch_delivery_latency_seconds_count 3\n"));
        assert!(page.contains("floorwatch_outbox_pending 2\n"));
        assert!(page.contains("floorwatch_outbox_oldest_pending_age_seconds 1.500\n"));
        assert!(page.contains("# TYPE floorwatch_endpoints_disabled gauge\n"));
        for sample in [
            "floorwatch_readings_ignored_total{reason=\"out_of_order\"} 0\n",
            "floorwatch_readings_missing_total 0\n",
            "floorwatch_sensor_events_total{kind=\"silent\"} 0\n",
            "floorwatch_config_reloads_total{result=\"rejected\"} 0\n",
            "floorwatch_events_written_total 0\n",
        ] {
            assert!(page.contains(sample), "{sample} missing from:\n{page}");
        }
    }
}
