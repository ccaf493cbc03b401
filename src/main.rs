//! The `picket` command: parse arguments, load the configuration, set up logging, run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod ctl;
mod import_sentinel;

use clap::{Parser, Subcommand, ValueEnum};
use picket::config::{self, Config, Overrides};
use picket::engine::Addr;
use tracing_subscriber::EnvFilter;

/// A high-availability supervisor for Redis that speaks the Sentinel protocol.
#[derive(Debug, Parser)]
#[command(name = "picket", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground until SIGTERM or SIGINT.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate the configuration (reading its secret, certificate and key files) and print it
    /// with every default filled in.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Start three Redis groups and three Picket nodes on loopback, kill a master, and show the
    /// failover as a timeline (needs redis-server; cleans up after itself).
    Demo,
    /// Turn a redis-sentinel's sentinel.conf into a picket.toml and an initial state, so that
    /// the node continues from the Sentinel's id, epochs and current masters. Every line that
    /// cannot be carried over is listed with the reason.
    ImportSentinel(import_sentinel::ImportArgs),
    /// Operate a running cluster through any node's HTTP API: status, why a failover would not
    /// happen, failover history, events, manual failover.
    Ctl(ctl::CtlArgs),
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// The TOML configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Replaces `node.announce` (e.g. `$(POD_NAME).picket:26380` in a StatefulSet).
    #[arg(long)]
    announce: Option<Addr>,
    /// Replaces `node.client_announce`.
    #[arg(long)]
    client_announce: Option<Addr>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match load(&config).and_then(|config| {
            // The certificates and keys are checked as the daemon will load them.
            let stats = std::sync::Arc::new(picket::hub::TlsStats::default());
            picket::tls::load(&config, &stats).map_err(|e| format!("TLS: {e}"))?;
            Ok(config)
        }) {
            Ok(config) => {
                print!("{}", config.render_effective());
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        },
        Command::ImportSentinel(args) => match import_sentinel::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => fail(&message),
        },
        Command::Ctl(args) => ctl::run(args),
        Command::Demo => {
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
            };
            match runtime.block_on(picket::demo::run()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Run { config, log_format } => {
            init_logging(log_format);
            let config = match load(&config) {
                Ok(config) => config,
                Err(message) => return fail(&message),
            };
            run(config)
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("picket: {message}");
    ExitCode::FAILURE
}

/// Reads, parses and checks the configuration, then reads the secrets it points to.
fn load(args: &ConfigArgs) -> Result<Config, String> {
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("cannot read {}: {e}", args.config.display()))?;
    let overrides = Overrides {
        announce: args.announce.clone(),
        client_announce: args.client_announce.clone(),
    };
    let mut config =
        config::parse_with(&text, &args.config, &overrides).map_err(|e| e.to_string())?;
    config
        .resolve_secrets(|path: &Path| std::fs::read_to_string(path))
        .map_err(|e| e.to_string())?;
    Ok(config)
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(picket::runtime::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "picket stopped with an error");
            fail(&e.to_string())
        }
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
}
