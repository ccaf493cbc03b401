//! `picket ctl`: the operator's commands, talking to any node's HTTP API.
//!
//! Every answer is rendered from what the node's API returns (the engine's view): `why` shows
//! the engine's own reasons and re-derives no rule, so it cannot disagree with what the node does.

mod client;
mod events;
mod history;
mod localtime;
mod status;
mod text;
mod why;

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use self::client::{Api, CtlError};
use self::localtime::Zone;
use self::text::{Style, items, s};

/// `picket ctl` arguments.
#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    /// The node's HTTP API (`http://host:port` or `https://host:port`).
    #[arg(long, env = "PICKET_URL", default_value = "http://127.0.0.1:26381", global = true)]
    url: String,
    /// A file holding the API token (`http.admin_token`, or `http.read_token` for reading).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// PEM file of the CA certificates to trust for an https URL (instead of the system's).
    #[arg(long, global = true)]
    cacert: Option<PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// One table per master: state, replicas (link, lag, priority, promotable) and each node's
    /// view.
    Status {
        /// Print the node's `GET /v1/masters` JSON instead.
        #[arg(long)]
        json: bool,
        /// Redraw every `--interval` seconds until interrupted.
        #[arg(long)]
        watch: bool,
        /// Seconds between redraws with `--watch`.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Why a failover of this master would not happen now, in words.
    Why {
        /// The master's name.
        name: String,
        /// Print the reasons as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recent failovers with their timelines.
    History {
        /// Only this master's failovers.
        name: Option<String>,
        /// Print the node's `GET /v1/history` JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// The node's events, one per line in local time.
    Events {
        /// Keep following the stream (reconnecting with Last-Event-ID) until interrupted.
        #[arg(long, short)]
        follow: bool,
    },
    /// Start a manual failover of this master (needs the admin token).
    Failover {
        /// The master's name.
        name: String,
    },
}

/// Runs one `picket ctl` command.
pub(crate) fn run(args: CtlArgs) -> ExitCode {
    // Read before the runtime's threads exist (and once: zone files do not change under us).
    let zone = Zone::local();
    let style =
        Style { colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&CtlError::new(format!("cannot start the async runtime: {e}"))),
    };
    match runtime.block_on(command(args, &zone, style)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &CtlError) -> ExitCode {
    eprintln!("picket: {e}");
    ExitCode::FAILURE
}

/// The token: `--token-file`, else `PICKET_TOKEN`.
fn token(args: &CtlArgs) -> Result<Option<String>, CtlError> {
    let token = match &args.token_file {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            CtlError::new(format!("cannot read the token file {}: {e}", path.display()))
        })?),
        None => std::env::var("PICKET_TOKEN").ok(),
    };
    let token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    if token.as_ref().is_some_and(|t| t.chars().any(|c| c.is_control() || !c.is_ascii())) {
        return Err(CtlError::new("the token holds characters a header cannot carry".to_owned()));
    }
    Ok(token)
}

async fn command(args: CtlArgs, zone: &Zone, style: Style) -> Result<(), CtlError> {
    let cacert =
        match &args.cacert {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                CtlError::new(format!("cannot read --cacert {}: {e}", path.display()))
            })?),
            None => None,
        };
    let api = Api::new(&args.url, token(&args)?, cacert.as_deref())?;
    let masters = || api.get(api.url(&["v1", "masters"], &[]));
    match args.command {
        CtlCommand::Status { json: true, .. } => print_json(&masters().await?),
        CtlCommand::Status { watch: true, interval, .. } => watch(&api, interval, style).await,
        CtlCommand::Status { .. } => {
            print!("{}", status::render(&masters().await?, style));
            Ok(())
        }
        CtlCommand::Why { name, json } => {
            let body = masters().await?;
            let master = find(&body, &name)?;
            if !why::supported(master) {
                return Err(CtlError::new(format!(
                    "the node at {} is too old to explain its decisions (no authorisation or \
                     eligibility in its view): upgrade it",
                    api.base()
                )));
            }
            let why = why::explain(&body["node"], master);
            if json {
                let value = serde_json::to_value(&why)
                    .map_err(|e| CtlError::new(format!("cannot encode the answer: {e}")))?;
                return print_json(&value);
            }
            print!("{}", why::render(&why, style));
            Ok(())
        }
        CtlCommand::History { name, json } => {
            let query: Vec<(&str, &str)> = name.iter().map(|n| ("master", n.as_str())).collect();
            let body = api.get(api.url(&["v1", "history"], &query)).await?;
            if json {
                return print_json(&body);
            }
            print!("{}", history::render(&body, zone, style));
            Ok(())
        }
        CtlCommand::Events { follow: false } => events::list(&api, zone, style).await,
        CtlCommand::Events { follow: true } => events::follow(&api, zone, style).await,
        CtlCommand::Failover { name } => {
            let body = api.post(api.url(&["v1", "masters", &name, "failover"], &[])).await?;
            println!("failover of {} {}", s(&body["master"]), s(&body["failover"]));
            Ok(())
        }
    }
}

/// The master named `name` in a `/v1/masters` answer.
fn find<'a>(body: &'a Value, name: &str) -> Result<&'a Value, CtlError> {
    let masters = items(&body["masters"]);
    masters.iter().find(|m| m["name"] == name).ok_or_else(|| {
        let known: Vec<&str> = masters.iter().map(|m| s(&m["name"])).collect();
        CtlError::new(format!("unknown master {name:?}: this node monitors {}", known.join(", ")))
    })
}

fn print_json(value: &Value) -> Result<(), CtlError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CtlError::new(format!("cannot encode the answer: {e}")))?;
    println!("{text}");
    Ok(())
}

/// `status --watch`: redraws until interrupted. On a terminal each frame overwrites the previous
/// one in place (cursor home, each line cleared to its end, the rest of the screen cleared after
/// it: no blank screen between frames), written with one call; elsewhere frames follow each
/// other. An unreachable node is shown in the frame, not fatal: it is what the operator watches
/// for.
async fn watch(api: &Api, interval: f64, style: Style) -> Result<(), CtlError> {
    let pause =
        Duration::try_from_secs_f64(interval).ok().filter(|d| !d.is_zero()).ok_or_else(|| {
            CtlError::new(format!("--interval {interval}: must be a positive number of seconds"))
        })?;
    let terminal = std::io::stdout().is_terminal();
    loop {
        let frame = match api.get(api.url(&["v1", "masters"], &[])).await {
            Ok(body) => status::render(&body, style),
            Err(e) => format!("picket: {e}\n"),
        };
        let screen = if terminal {
            let lines: String = frame.lines().map(|l| format!("{l}\x1b[K\n")).collect();
            format!("\x1b[H{lines}\x1b[J")
        } else {
            format!("{frame}\n")
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(screen.as_bytes());
        let _ = out.flush();
        drop(out);
        tokio::time::sleep(pause).await;
    }
}
