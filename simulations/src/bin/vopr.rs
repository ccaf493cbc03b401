//! `vopr`: runs the simulator over many seeds, or replays one with its trace.
//!
//! ```text
//! cargo run -p simulations --release -- --seeds 10000        # seeds 0..10000
//! cargo run -p simulations --release -- --seeds 100000 --random
//! cargo run -p simulations --release -- --seed 1234          # replay one seed, with its trace
//! ```
//!
//! Seeds run in parallel (`--jobs`), each on one thread from start to end: a run itself never
//! uses threads, so a seed replays identically whatever the parallelism.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use clap::Parser;
use simulations::run::{Outcome, failure_report, reproduce_command, run_seed};
use simulations::{Options, Trace};

/// Picket's deterministic simulator.
#[derive(Parser, Debug)]
#[command(name = "vopr", about = "Picket's deterministic simulator (VOPR-style)")]
struct Cli {
    /// Replay one seed, printing its trace.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many seeds.
    #[arg(long)]
    seeds: Option<u64>,
    /// First seed of the range (default 0).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Start the range at a random seed instead (printed, so the run can be repeated).
    #[arg(long)]
    random: bool,
    /// Threads to spread seeds over (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Full reports for at most this many failing seeds (the rest are listed).
    #[arg(long, default_value_t = 3)]
    reports: usize,
    /// With --seed: print only the verdict, not the trace.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(seed) = cli.seed {
        return replay(seed, cli.quiet);
    }
    let count = cli.seeds.unwrap_or(100);
    let start = if cli.random { random_start() } else { cli.start };
    let jobs = cli
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    campaign(start, count, jobs, cli.reports)
}

fn replay(seed: u64, quiet: bool) -> ExitCode {
    let options = Options::from_seed(seed);
    println!("seed {seed}: {options:#?}");
    let trace = if quiet { Trace::Off } else { Trace::Print };
    let (outcome, _) = run_seed(seed, trace);
    match &outcome.failure {
        None => {
            println!(
                "seed {seed}: passed ({:.1}s simulated, converged {:.1}s after healing, drill failover {:.3}s, {} promotions, {} faults)",
                outcome.ended_at as f64 / 1e6,
                outcome.converged_after.unwrap_or(0) as f64 / 1e6,
                outcome.drill_failover.unwrap_or(0) as f64 / 1e6,
                outcome.promotions,
                outcome.stats.faults
            );
            ExitCode::SUCCESS
        }
        Some(failure) => {
            println!("seed {seed}: FAILED: {failure}");
            println!("state at the end:\n{}", outcome.state);
            println!("reproduce with: {}", reproduce_command(seed));
            ExitCode::FAILURE
        }
    }
}

fn campaign(start: u64, count: u64, jobs: usize, reports: usize) -> ExitCode {
    println!("running seeds {start}..{} on {jobs} threads", start + count);
    let clock = wall_clock();
    let next = AtomicU64::new(start);
    let end = start + count;
    let (tx, rx) = mpsc::channel::<Outcome>();
    let mut failed: Vec<Outcome> = Vec::new();
    let (mut done, mut simulated, mut promotions) = (0u64, 0u64, 0usize);
    let mut max_epoch = (0u64, start);
    let mut drills: Vec<(u64, u64)> = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let (outcome, _) = run_seed(seed, Trace::Off);
                    if tx.send(outcome).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let quiet_panics = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for outcome in rx {
            done += 1;
            simulated += outcome.ended_at;
            promotions += outcome.promotions;
            if outcome.max_epoch > max_epoch.0 {
                max_epoch = (outcome.max_epoch, outcome.seed);
            }
            if let Some(took) = outcome.drill_failover {
                drills.push((took, outcome.seed));
            }
            if let Some(failure) = &outcome.failure {
                println!("seed {}: FAILED: {failure}", outcome.seed);
                failed.push(outcome);
            }
            if done % 1000 == 0 {
                println!("{done}/{count} seeds, {} failed, {:.0}s", failed.len(), elapsed(&clock));
            }
        }
        std::panic::set_hook(quiet_panics);
    });
    let secs = elapsed(&clock).max(1e-9);
    println!("highest epoch reached: {} (seed {})", max_epoch.0, max_epoch.1);
    drills.sort_unstable();
    if let Some(&(slowest, seed)) = drills.last() {
        let at = |q: f64| drills[((drills.len() - 1) as f64 * q) as usize].0 as f64 / 1e6;
        println!(
            "drill (every master killed at once): every group failed over in median {:.2}s, p99 {:.2}s, max {:.2}s (seed {seed})",
            at(0.5),
            at(0.99),
            slowest as f64 / 1e6
        );
    }
    println!(
        "{done} seeds in {secs:.1}s ({:.0} seeds/minute), {:.0} simulated hours, {promotions} promotions, {} failed",
        done as f64 * 60.0 / secs,
        simulated as f64 / 3.6e9,
        failed.len()
    );
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    failed.sort_by_key(|o| o.seed);
    for outcome in failed.iter().take(reports) {
        println!("\n{}", failure_report(outcome));
    }
    println!("failing seeds:");
    for outcome in &failed {
        println!(
            "  {}   # {}",
            reproduce_command(outcome.seed),
            outcome.failure.as_ref().map(ToString::to_string).unwrap_or_default()
        );
    }
    ExitCode::FAILURE
}

/// The wall clock, for the summary's seeds per minute only: it never reaches a run.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> std::time::Instant {
    std::time::Instant::now()
}

fn elapsed(start: &std::time::Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// A random first seed for `--random` (printed with the range, so a campaign can be repeated).
#[allow(clippy::disallowed_methods)]
fn random_start() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    u64::try_from(nanos % u128::from(u64::MAX / 2)).unwrap_or(0)
}
