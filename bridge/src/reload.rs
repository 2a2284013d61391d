//! Config reload: [`Reloader::reload`] validates a new config and swaps its
//! rule settings into the running pipeline atomically, and
//! [`watch_config_file`] reloads on SIGHUP and when the file changes.
//!
//! Reloaded are `rules`, `health`, `overrides`, `reminders`, `silences` and
//! `maintenance`. The MQTT connection, the database, the endpoints, the
//! retry schedule, the HTTP listener and `max_sensors` need a restart. A reload that
//! changes them logs a warning and keeps the running values.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::BridgeConfig;
use crate::ingest::Control;
use crate::stats::{bump, Stats};
use crate::BridgeError;

/// Time between two checks of the config file's modification time.
pub const FILE_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A cloneable handle that reloads the running bridge's config.
#[derive(Debug, Clone)]
pub struct Reloader {
    pub(crate) control_tx: mpsc::Sender<Control>,
    pub(crate) current: Arc<Mutex<BridgeConfig>>,
    pub(crate) stats: Arc<Stats>,
}

impl Reloader {
    /// Validates `config` and applies its rule settings once the batch in
    /// progress is committed. An invalid config returns
    /// [`BridgeError::Config`] naming the field and the fix, and the running
    /// config stays in effect.
    pub async fn reload(&self, mut config: BridgeConfig) -> Result<(), BridgeError> {
        config.validate()?;
        let current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        keep_fixed_sections(&current, &mut config);

        let (done_tx, done_rx) = oneshot::channel();
        let control = Control::Reload {
            config: Box::new(config.clone()),
            done: done_tx,
        };
        self.control_tx
            .send(control)
            .await
            .map_err(|_| BridgeError::Stopped)?;
        done_rx.await.map_err(|_| BridgeError::Stopped)??;

        let rules = config.rules.len();
        let overrides = config.overrides.len();
        *self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
        bump(&self.stats.config_reloads);
        tracing::info!(rules, overrides, "configuration reloaded");
        Ok(())
    }
}

/// Copies the sections that need a restart from `current` into `next`,
/// warning about each one that differs.
fn keep_fixed_sections(current: &BridgeConfig, next: &mut BridgeConfig) {
    let differs = |a: &dyn erased::Json, b: &dyn erased::Json| a.json() != b.json();
    let sections: [(&str, bool); 6] = [
        ("mqtt", differs(&current.mqtt, &next.mqtt)),
        ("database", current.database != next.database),
        ("endpoints", differs(&current.endpoints, &next.endpoints)),
        ("delivery", differs(&current.delivery, &next.delivery)),
        ("http", differs(&current.http, &next.http)),
        ("max_sensors", current.max_sensors != next.max_sensors),
    ];
    for (section, changed) in sections {
        if changed {
            tracing::warn!(
                section = %format!("bridge.{section}"),
                "a reload cannot change this section: restart the bridge to apply it"
            );
        }
    }
    next.mqtt = current.mqtt.clone();
    next.database = current.database.clone();
    next.endpoints = current.endpoints.clone();
    next.delivery = current.delivery.clone();
    next.http = current.http.clone();
    next.max_sensors = current.max_sensors;
}

mod erased {
    /// Serializes any config section for comparison.
    pub trait Json {
        fn json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or_default()
        }
    }
}

/// Returns a task that reloads the config from `path` on SIGHUP and
/// whenever the file's modification time changes (checked every 2 s), until
/// `shutdown` fires. `load` reads and parses the file; a file that does not
/// load or validate is logged with the error and the running config is
/// kept. The modification time at the call is the baseline, and the SIGHUP
/// handler is installed at the call, so call it inside a Tokio runtime.
pub fn watch_config_file<F>(
    path: PathBuf,
    load: F,
    reloader: Reloader,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send
where
    F: Fn(&Path) -> Result<BridgeConfig, String> + Send + 'static,
{
    let mut hangup = hangup_signal();
    let mut seen = modified(&path);
    async move {
        let mut poll = tokio::time::interval(FILE_POLL_INTERVAL);
        loop {
            let reason = tokio::select! {
                () = shutdown.cancelled() => return,
                Some(()) = hangup.recv() => "SIGHUP",
                _ = poll.tick() => {
                    if modified(&path) == seen {
                        continue;
                    }
                    "file changed"
                }
            };
            tracing::info!(path = %path.display(), reason, "reloading the configuration");
            // A SIGHUP after an edit must not reload again on the next poll.
            seen = modified(&path);
            let result = match load(&path) {
                Ok(config) => reloader
                    .reload(config)
                    .await
                    .map_err(|error| error.to_string()),
                Err(error) => Err(error),
            };
            if let Err(error) = result {
                bump(&reloader.stats.config_reloads_rejected);
                tracing::error!(
                    path = %path.display(),
                    %error,
                    "configuration not reloaded; the running configuration stays in effect"
                );
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// Returns a channel that receives one message per SIGHUP; on other
/// platforms, or when the handler cannot be installed, it never does.
fn hangup_signal() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        if tx.send(()).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload on file change only")
            }
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}
