//! Prometheus metrics (`GET /metrics`) in the text exposition format 0.0.4:
//! webhook deliveries by outcome, escalations, and tasks by status.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use poem::web::Data;
use poem::{handler, IntoResponse, Response};

use crate::server::AppState;
use crate::store::TaskCounts;
use crate::task::TaskStatus;

/// Outcome labels of `floorwatch_scheduler_webhooks_received_total`.
pub const WEBHOOK_OUTCOMES: [&str; 8] = [
    "created",
    "updated",
    "stale",
    "duplicate",
    "ignored",
    "unauthorized",
    "invalid",
    "storage_error",
];

/// Counters updated by the request handlers.
#[derive(Debug, Default)]
pub struct Metrics {
    webhooks: [AtomicU64; WEBHOOK_OUTCOMES.len()],
    escalations: AtomicU64,
}

impl Metrics {
    /// Counts one webhook delivery with `outcome`, one of
    /// [`WEBHOOK_OUTCOMES`]; other names are not counted.
    pub fn count_webhook(&self, outcome: &str) {
        if let Some(index) = WEBHOOK_OUTCOMES.iter().position(|name| *name == outcome) {
            self.webhooks[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts `count` escalated tasks.
    pub fn count_escalations(&self, count: usize) {
        self.escalations.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Renders every metric; `counts` gives the task gauges.
    pub fn render(&self, counts: &TaskCounts) -> String {
        let mut text = String::new();
        // `fmt::Write` for `String` never returns an error.
        let _ = self.write(&mut text, counts);
        text
    }

    fn write(&self, text: &mut String, counts: &TaskCounts) -> std::fmt::Result {
        writeln!(
            text,
            "# HELP floorwatch_scheduler_webhooks_received_total Webhook deliveries by outcome."
        )?;
        writeln!(
            text,
            "# TYPE floorwatch_scheduler_webhooks_received_total counter"
        )?;
        for (name, counter) in WEBHOOK_OUTCOMES.iter().zip(&self.webhooks) {
            let value = counter.load(Ordering::Relaxed);
            writeln!(
                text,
                "floorwatch_scheduler_webhooks_received_total{{outcome=\"{name}\"}} {value}"
            )?;
        }
        writeln!(
            text,
            "# HELP floorwatch_scheduler_escalations_total Tasks given to another technician because nobody acknowledged them."
        )?;
        writeln!(
            text,
            "# TYPE floorwatch_scheduler_escalations_total counter"
        )?;
        let escalations = self.escalations.load(Ordering::Relaxed);
        writeln!(text, "floorwatch_scheduler_escalations_total {escalations}")?;
        writeln!(
            text,
            "# HELP floorwatch_scheduler_tasks Tasks in the store by status."
        )?;
        writeln!(text, "# TYPE floorwatch_scheduler_tasks gauge")?;
        for status in TaskStatus::ALL {
            let value = counts.by_status(status);
            writeln!(
                text,
                "floorwatch_scheduler_tasks{{status=\"{}\"}} {value}",
                status.as_str()
            )?;
        }
        Ok(())
    }
}

/// Serves the metrics (`GET /metrics`).
#[handler]
pub async fn serve_metrics(Data(state): Data<&Arc<AppState>>) -> poem::Result<Response> {
    let counts = state.run_store(|store| store.count_tasks()).await?;
    Ok(state
        .metrics
        .render(&counts)
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_lists_counters_and_gauges() {
        let metrics = Metrics::default();
        metrics.count_webhook("created");
        metrics.count_webhook("created");
        metrics.count_webhook("unauthorized");
        metrics.count_webhook("no-such-outcome");
        metrics.count_escalations(3);
        let counts = TaskCounts {
            open: 4,
            completed: 1,
            ..TaskCounts::default()
        };
        let text = metrics.render(&counts);
        assert!(
            text.contains("floorwatch_scheduler_webhooks_received_total{outcome=\"created\"} 2\n")
        );
        assert!(text.contains("{outcome=\"unauthorized\"} 1\n"));
        assert!(text.contains("{outcome=\"duplicate\"} 0\n"));
        assert!(text.contains("floorwatch_scheduler_escalations_total 3\n"));
        assert!(text.contains("floorwatch_scheduler_tasks{status=\"open\"} 4\n"));
        assert!(text.contains("floorwatch_scheduler_tasks{status=\"in_progress\"} 0\n"));
        assert!(!text.contains("no-such-outcome"));
    }
}
