//! The `floorwatch` command as a library: the embedded broker, the
//! combined configuration and the commands that compose the component
//! crates. `src/main.rs` only parses arguments and calls into it.

pub mod broker;
pub mod commands;
pub mod config;
pub mod loadgen;
pub mod logging;
pub mod secret;
pub mod up;

/// Builds a single-threaded Tokio runtime, for the edge agent.
pub fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Builds the multi-threaded Tokio runtime the commands run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
