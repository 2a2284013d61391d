//! The `floorwatch` command: runs the whole pipeline in one process (`up`)
//! or any one component, and provides the small tools around them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use floorwatch::{commands, config, logging, up};

mod allocator;
mod deliveries;

/// Sensor-to-maintenance pipeline: MQTT readings, rules and incidents,
/// signed webhooks, maintenance tasks.
#[derive(Parser)]
#[command(name = "floorwatch", version, about)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "FLOORWATCH_LOG_JSON")]
    log_json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run broker, bridge, scheduler and simulated sensors in one process.
    Up(up::UpArgs),
    /// Run the embedded MQTT broker alone.
    Broker(commands::ConfigArg),
    /// Run the edge agent: sensors, on-disk outbox, MQTT publishing.
    Edge(commands::ConfigArg),
    /// Run the bridge: rules, incidents and webhook delivery.
    Bridge(commands::ConfigArg),
    /// Run the scheduler: webhook receiver, tasks and operator page.
    Scheduler(commands::ConfigArg),
    /// Replay a CSV file of readings to an MQTT broker as one sensor.
    Replay(commands::ReplayArgs),
    /// Publish synthetic readings at a fixed rate and measure the pipeline.
    Loadgen(floorwatch::loadgen::LoadgenArgs),
    /// Validate or print configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect webhook deliveries, replay dead letters, enable endpoints.
    Deliveries(deliveries::DeliveriesArgs),
    /// Manage webhook signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and name the field and the fix on error.
    Check {
        file: PathBuf,
        /// Component the configuration file is for.
        #[arg(long, value_enum, default_value = "up")]
        kind: config::ConfigKind,
    },
    /// Print the default configuration of `up` as TOML.
    Default,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new random `whsec_` webhook secret, or with `--v1a` an
    /// ed25519 key pair.
    Generate {
        /// Print a `whsk_` signing key for the sender and its `whpk_` public
        /// key for the receivers' `public_keys`, one labelled line each.
        #[arg(long)]
        v1a: bool,
    },
}

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    logging::init(cli.log_json);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Config(ConfigCommand::Check { file, kind }) => {
            config::check(&file, kind)?;
            println!("{}: valid", file.display());
            Ok(())
        }
        Command::Config(ConfigCommand::Default) => commands::print_default_config(),
        Command::Keys(KeysCommand::Generate { v1a: false }) => {
            println!("{}", floorwatch_protocol::Secret::generate().expose());
            Ok(())
        }
        Command::Keys(KeysCommand::Generate { v1a: true }) => {
            let signing_key = floorwatch_protocol::SigningKey::generate();
            println!("signing key: {}", signing_key.expose());
            println!("public key: {}", signing_key.public_key());
            Ok(())
        }
        Command::Broker(args) => commands::broker(args),
        // One thread is plenty for a few sensors and keeps the agent small
        // on a Pi; sensor reads run on the blocking pool.
        Command::Edge(args) => floorwatch::current_thread_runtime()?.block_on(commands::edge(args)),
        Command::Deliveries(args) => deliveries::run(args),
        command => floorwatch::runtime()?.block_on(run_async(command)),
    }
}

async fn run_async(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up(args) => up::run(args).await,
        Command::Bridge(args) => commands::bridge(args).await,
        Command::Scheduler(args) => commands::scheduler(args).await,
        Command::Replay(args) => commands::replay(args).await,
        Command::Loadgen(args) => floorwatch::loadgen::command(args).await,
        Command::Broker(_)
        | Command::Edge(_)
        | Command::Config(_)
        | Command::Keys(_)
        | Command::Deliveries(_) => {
            unreachable!("handled without a runtime")
        }
    }
}
