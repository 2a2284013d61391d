//! Log output through `tracing`: text for people, JSON for collectors.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Default filter: `info`, with the MQTT crates quieter. rumqttd 0.20 logs
/// every ordinary client disconnect at ERROR level, so its output is off by
/// default; `RUST_LOG=info,rumqttd=warn` shows it.
const DEFAULT_FILTER: &str = "info,rumqttd=off,rumqttc=warn";

/// Installs the global subscriber. `RUST_LOG` overrides the default filter.
pub fn init(json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
