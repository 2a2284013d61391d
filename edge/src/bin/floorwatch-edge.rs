//! `floorwatch-edge`: the edge agent alone, for a Raspberry Pi.
//!
//! It reads the same `edge.toml` and runs the same code as `floorwatch
//! edge`, without the broker, bridge and scheduler that the full
//! `floorwatch` binary links in, so it loads far fewer pages.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use floorwatch_edge::{run_agent, EdgeConfig};
use tokio_util::sync::CancellationToken;

/// floorwatch edge agent: sensors, on-disk outbox, MQTT publishing.
#[derive(Parser)]
#[command(name = "floorwatch-edge", version, about)]
struct Cli {
    /// Configuration file (edge.toml); built-in defaults when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "FLOORWATCH_LOG_JSON")]
    log_json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let env = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    let config = EdgeConfig::load(cli.config.as_deref(), env)?;
    if cli.check {
        println!("configuration valid");
        return Ok(());
    }

    // One thread is plenty for a few sensors; sensor reads run on the
    // blocking pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal_token = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            signal_token.cancel();
        });
        run_agent(config, shutdown).await
    })?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};

    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_logging(json: bool) {
    use std::io::IsTerminal;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttc=warn"));
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
