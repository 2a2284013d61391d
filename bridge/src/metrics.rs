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
    }
}
