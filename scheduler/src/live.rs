//! Live updates: a broadcast of changed task ids, sent to browsers as
//! server-sent events on `GET /events`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use poem::handler;
use poem::web::sse::{Event, SSE};
use poem::web::Data;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::server::AppState;

/// Name of the server-sent event emitted when a task is created or changed.
pub const TASK_EVENT: &str = "task";

/// Number of announcements a slow subscriber may fall behind before it
/// skips to the newest. Skipping loses nothing, because the page reloads its
/// whole table on any event.
const CHANNEL_CAPACITY: usize = 64;

/// Interval of SSE comments that keep idle connections open through proxies.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Sender side of the task change broadcast.
#[derive(Debug, Clone)]
pub struct Live {
    changes_tx: broadcast::Sender<i64>,
}

impl Default for Live {
    fn default() -> Self {
        let (changes_tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self { changes_tx }
    }
}

impl Live {
    /// Announces that task `task_id` was created or changed. Without
    /// subscribers the announcement is dropped.
    pub fn announce(&self, task_id: i64) {
        // `send` fails only when there are no subscribers, which is fine.
        let _ = self.changes_tx.send(task_id);
    }

    /// Subscribes to announcements made from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<i64> {
        self.changes_tx.subscribe()
    }
}

/// Streams task changes as server-sent events (`GET /events`). The stream
/// ends when the scheduler shuts down, so open pages do not delay it.
#[handler]
pub async fn task_events(Data(state): Data<&Arc<AppState>>) -> SSE {
    let changes_rx = state.live.subscribe();
    let shutdown = state.shutdown.clone();
    let events = stream::unfold((changes_rx, shutdown), |(mut changes_rx, shutdown)| async {
        let task_id = next_change(&mut changes_rx, &shutdown).await?;
        let event = Event::message(task_id.to_string()).event_type(TASK_EVENT);
        Some((event, (changes_rx, shutdown)))
    });
    SSE::new(events).keep_alive(KEEP_ALIVE)
}

/// Waits for the next changed task id. After falling behind it returns 0,
/// which stands for "something changed". Returns `None` on shutdown.
async fn next_change(
    changes_rx: &mut broadcast::Receiver<i64>,
    shutdown: &CancellationToken,
) -> Option<i64> {
    tokio::select! {
        _ = shutdown.cancelled() => None,
        received = changes_rx.recv() => match received {
            Ok(task_id) => Some(task_id),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(0),
            Err(broadcast::error::RecvError::Closed) => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn announcements_reach_subscribers() {
        let live = Live::default();
        let shutdown = CancellationToken::new();
        let mut changes_rx = live.subscribe();
        live.announce(7);
        assert_eq!(next_change(&mut changes_rx, &shutdown).await, Some(7));
    }

    #[tokio::test]
    async fn lagging_subscriber_gets_a_generic_change() {
        let live = Live::default();
        let shutdown = CancellationToken::new();
        let mut changes_rx = live.subscribe();
        for task_id in 0..(CHANNEL_CAPACITY as i64 + 5) {
            live.announce(task_id);
        }
        assert_eq!(next_change(&mut changes_rx, &shutdown).await, Some(0));
    }

    #[tokio::test]
    async fn shutdown_ends_the_stream() {
        let live = Live::default();
        let shutdown = CancellationToken::new();
        let mut changes_rx = live.subscribe();
        shutdown.cancel();
        assert_eq!(next_change(&mut changes_rx, &shutdown).await, None);
    }
}
