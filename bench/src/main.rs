//! `picket-bench`: Picket and redis-sentinel side by side, on identical topologies of real
//! `redis-server` processes, alternating between the two, with one table at the end.
//!
//! Run it through `scripts/bench`, which installs what is missing and builds both binaries in
//! release mode. Raw samples go to `<out>/<stamp>.json`, the table to `<out>/<stamp>.txt`. No
//! speed is asserted anywhere: this measures, it does not test (its unit tests check the
//! arithmetic and the table).

mod crash;
mod failover;
mod fencing;
mod http;
mod idle;
mod mass;
mod procs;
mod report;
mod resp;
mod scale;
mod stats;
mod throughput;
mod topology;
mod traffic;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use serde_json::json;

use crate::report::{Machine, Report, Section};

/// Side-by-side benchmarks of Picket and redis-sentinel (see scripts/bench).
#[derive(Debug, Parser)]
#[command(name = "picket-bench", version)]
struct Args {
    /// Run only this suite; repeatable. Default: all eight.
    #[arg(long, value_enum)]
    only: Vec<Suite>,
    /// Failover trials per fault (SIGKILL, SIGSTOP) and supervisor, mass trials per load and
    /// supervisor, and fencing runs per scenario and supervisor. Default 20 failover, 5 mass and
    /// 3 fencing trials, or 1 of each with --quick.
    #[arg(long)]
    trials: Option<usize>,
    /// A smoke run: one trial, short windows, 100 masters instead of 1,000.
    #[arg(long)]
    quick: bool,
    /// Where the JSON and text results go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// The picket binary. Default: the one next to this program (both are built into the same
    /// target directory).
    #[arg(long)]
    picket: Option<PathBuf>,
}

/// The suites, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Suite {
    /// Failover time after SIGKILL and SIGSTOP of the master.
    Failover,
    /// SIGKILL of the master until a client's SET succeeds, with down-after 1000 and 5000 ms.
    Crash,
    /// 50 masters SIGKILLed at once (quiet and with a CPU hog), and a failover with one of the
    /// three supervisors down.
    Mass,
    /// Queries per second on the Sentinel port (and Picket's HTTP API).
    Throughput,
    /// CPU and memory of one idle supervisor with 1, 100 and 1,000 masters.
    Idle,
    /// Peer traffic and failover time with 1,000 masters.
    Scale,
    /// CPU and memory of one supervisor watching 1,000 masters at down-after 1000 and 30000.
    Probe,
    /// Acknowledged writes lost, split-brain window, client gaps and failover time with real
    /// partitions (network namespaces: needs root), a switchover and a SIGKILL, redis-py clients
    /// writing on both sides; Picket with `fencing = "bounded"` and `"strict"`.
    Fencing,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Self::Failover => "failover",
            Self::Crash => "crash",
            Self::Mass => "mass",
            Self::Throughput => "throughput",
            Self::Idle => "idle",
            Self::Scale => "scale",
            Self::Probe => "probe",
            Self::Fencing => "fencing",
        }
    }
}

/// What every suite needs to know.
pub struct Plan {
    /// Failover trials per fault and kind.
    pub trials: usize,
    /// Mass suite trials per load and kind (each starts 100 Redis servers, so fewer by default).
    pub mass_trials: usize,
    /// Fencing suite runs per scenario and supervisor (each takes about half a minute).
    pub fencing_trials: usize,
    /// Smoke run: fewer rounds, shorter windows, smaller topologies.
    pub quick: bool,
    /// The picket binary.
    pub picket: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("picket-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen suites; `Ok(false)` if anything failed along the way (the results are still
/// written and printed).
fn run(args: &Args) -> Result<bool> {
    let _session = procs::Session::start()?;
    let mut suites = if args.only.is_empty() {
        vec![
            Suite::Failover,
            Suite::Crash,
            Suite::Mass,
            Suite::Throughput,
            Suite::Idle,
            Suite::Scale,
            Suite::Probe,
            Suite::Fencing,
        ]
    } else {
        args.only.clone()
    };
    suites.sort();
    suites.dedup();
    let picket = match &args.picket {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("picket"),
    };
    let plan = Plan {
        trials: args.trials.unwrap_or(if args.quick { 1 } else { 20 }),
        mass_trials: args.trials.unwrap_or(if args.quick { 1 } else { 5 }),
        fencing_trials: args.trials.unwrap_or(if args.quick { 1 } else { 3 }),
        quick: args.quick,
        picket,
    };
    preflight(&plan, &suites)?;

    let command = std::env::var("PICKET_BENCH_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
    let mut report = Report {
        command,
        started: report::utc_stamp(SystemTime::now()),
        finished: None,
        versions: versions(&plan),
        machine: Machine::probe(),
        rows: Vec::new(),
        suites: BTreeMap::new(),
        notes: Vec::new(),
        errors: Vec::new(),
    };
    report.suites.insert(
        "options",
        json!({"trials": plan.trials, "mass_trials": plan.mass_trials, "fencing_trials": plan.fencing_trials, "quick": plan.quick, "suites": suites.iter().map(|s| s.name()).collect::<Vec<_>>()}),
    );
    for suite in suites {
        eprintln!("==> {}", suite.name());
        let result = match suite {
            Suite::Failover => Ok(failover::run(&plan)),
            Suite::Crash => Ok(crash::run(&plan)),
            Suite::Mass => Ok(mass::run(&plan)),
            Suite::Throughput => throughput::run(&plan),
            Suite::Idle => idle::run(&plan),
            Suite::Scale => scale::run(&plan),
            Suite::Probe => idle::run_probe(&plan),
            Suite::Fencing => Ok(fencing::run(&plan)),
        };
        match result {
            Ok(Section { rows, raw, notes, errors }) => {
                report.rows.extend(rows);
                report.suites.insert(suite.name(), raw);
                report.notes.extend(notes);
                report.errors.extend(errors);
            }
            Err(e) => {
                eprintln!("{}: {e:#}", suite.name());
                report.errors.push(format!("{} suite: {e:#}", suite.name()));
            }
        }
        // After every suite, so an interrupted run keeps what it measured.
        report.save(&args.out)?;
    }
    report.machine.load_end = report::load_average();
    report.finished = Some(report::utc_stamp(SystemTime::now()));
    let written = report.save(&args.out)?;
    print!("{}", report.render());
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(report.errors.is_empty())
}

/// Fails early, with the fix, when a program a chosen suite needs is missing.
fn preflight(plan: &Plan, suites: &[Suite]) -> Result<()> {
    if !plan.picket.is_file() {
        bail!(
            "no picket binary at {} (cargo build --release -p picket, or pass --picket)",
            plan.picket.display()
        );
    }
    let mut needed = vec!["redis-server", "redis-sentinel"];
    if suites.contains(&Suite::Throughput) {
        needed.extend(["redis-benchmark", "wrk"]);
    }
    if suites.contains(&Suite::Scale) {
        needed.push("iptables");
    }
    if suites.contains(&Suite::Fencing) {
        // SAFETY: geteuid only reads this process's effective user id.
        if unsafe { libc::geteuid() } != 0 {
            bail!(
                "the fencing suite needs root: it makes network namespaces and partitions them \
                 with iptables (run scripts/bench as root, or leave fencing out of --only)"
            );
        }
        needed.extend(["ip", "iptables", "python3"]);
        let redis_py = Command::new("python3")
            .args(["-c", "import redis"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !redis_py {
            bail!("the fencing suite's clients need redis-py (scripts/setup installs it)");
        }
        if !std::path::Path::new(fencing::WRITER).is_file() {
            bail!("the fencing suite's client {} is missing", fencing::WRITER);
        }
    }
    for program in needed {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            bail!(
                "{program} is not installed (scripts/setup installs it; wrk: apt-get install wrk)"
            );
        }
    }
    Ok(())
}

/// Versions of both supervisors (and the commit measured, when run from a git checkout).
fn versions(plan: &Plan) -> BTreeMap<&'static str, String> {
    let output = |program: &str, args: &[&str]| -> Result<String> {
        let mut command = Command::new(program);
        command.args(args);
        let out = procs::run_tool("version", command, Duration::from_secs(30))?;
        Ok(out.trim().to_owned())
    };
    let mut versions = BTreeMap::new();
    let sentinel = output("redis-sentinel", &["--version"])
        .map(|v| v.split_whitespace().find_map(|w| w.strip_prefix("v=")).unwrap_or(&v).to_owned());
    versions.insert("redis-sentinel", sentinel.unwrap_or_else(|e| format!("unknown ({e:#})")));
    let picket_bin = plan.picket.display().to_string();
    let mut picket = output(&picket_bin, &["--version"])
        .map(|v| v.trim_start_matches("picket ").to_owned())
        .unwrap_or_else(|e| format!("unknown ({e:#})"));
    if let Ok(commit) = output("git", &["rev-parse", "--short", "HEAD"]).context("git") {
        picket = format!("{picket} (commit {commit})");
    }
    versions.insert("picket", picket);
    versions
}
