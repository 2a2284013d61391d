//! Log output through `tracing`: text for people, JSON for collectors.

use tracing_subscriber::EnvFilter;

/// Default filter: floorwatch at `info`, the chatty broker internals at `warn`.
const DEFAULT_FILTER: &str = "info,rumqttd=warn,rumqttc=warn";

/// Installs the global subscriber. `RUST_LOG` overrides the default filter.
pub fn init(json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
