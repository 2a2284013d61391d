//! The progress bar of a run: elapsed time, readings published of those
//! planned, the publish rate, PubAcks and errors. indicatif draws nothing
//! when stderr is not a terminal.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::publish::Counters;

/// Interval between two redraws.
const REFRESH: Duration = Duration::from_millis(200);

/// A progress bar updated from the run's counters on its own task.
pub struct Progress {
    bar: ProgressBar,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Shows a bar of `planned` readings, updated until [`Progress::finish`].
    pub fn start(planned: u64, counters: Arc<Counters>) -> Self {
        let bar = ProgressBar::new(planned);
        // The template is a constant, so it parses; the default style stays
        // if it ever did not.
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} sent, {per_sec}, {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(update(bar.clone(), counters, stop.clone()));
        Self { bar, stop, task }
    }

    /// Stops updating and leaves the final state on screen.
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
        self.bar.finish();
    }
}

async fn update(bar: ProgressBar, counters: Arc<Counters>, stop: CancellationToken) {
    let mut interval = tokio::time::interval(REFRESH);
    loop {
        let stopped = tokio::select! {
            _ = stop.cancelled() => true,
            _ = interval.tick() => false,
        };
        bar.set_position(Counters::get(&counters.published));
        bar.set_message(format!(
            "{} acked, {} errors",
            Counters::get(&counters.acked),
            Counters::get(&counters.errors)
        ));
        if stopped {
            return;
        }
    }
}
