//! The escalation tick: open tasks not acknowledged in time go to the next
//! candidate of the roster.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::MissedTickBehavior;

use crate::server::AppState;

/// Returns how often to look for overdue tasks: a quarter of the limit,
/// between 1 and 60 seconds, so a task waits at most 25 % longer than
/// configured.
pub fn tick_period(after: Duration) -> Duration {
    (after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Escalates overdue tasks every [`tick_period`] until shutdown.
pub async fn escalation_loop(state: Arc<AppState>, after: Duration) {
    let Ok(after_chrono) = chrono::Duration::from_std(after) else {
        tracing::error!(
            after_secs = after.as_secs(),
            "escalation limit too large; escalation off"
        );
        return;
    };
    let mut interval = tokio::time::interval(tick_period(after));
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        let roster = state.roster.clone();
        let result = state
            .run_store(move |store| store.escalate(&roster, after_chrono, Utc::now()))
            .await;
        // `run_store` has logged a failure; the next tick retries.
        let Ok(escalations) = result else { continue };
        state.metrics.count_escalations(escalations.len());
        for escalation in escalations {
            tracing::info!(
                task_id = escalation.task_id,
                from = escalation.from,
                to = escalation.to,
                "task escalated"
            );
            state.live.announce(escalation.task_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_a_quarter_within_bounds() {
        assert_eq!(
            tick_period(Duration::from_secs(600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            tick_period(Duration::from_secs(120)),
            Duration::from_secs(30)
        );
        assert_eq!(tick_period(Duration::from_secs(2)), Duration::from_secs(1));
    }
}
