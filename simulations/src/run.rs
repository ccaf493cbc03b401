//! One seeded run, start to verdict: build the cluster from the seed, inject faults for the
//! safety phase, heal everything, and require convergence within the liveness budget.
//!
//! A failing run is replayed from its seed with the trace on, to show the tail of what happened.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rand::RngExt;
use std::time::Duration;

use crate::cluster::{Failure, Simulation, Stats, duration_us};
use crate::options::Options;
use crate::trace::Trace;

/// How often convergence is checked in the liveness phase.
const CONVERGENCE_CHECK: Duration = Duration::from_millis(250);
/// Convergence must still hold this long after it was first seen.
const CONVERGENCE_HOLD: Duration = Duration::from_secs(3);
/// How often the cluster may converge and then change its mind again after the heal.
const MAX_DIVERGENCES: u32 = 2;
/// How long the drill's crashed leader stays down.
const DRILL_LEADER_DOWN: Duration = Duration::from_secs(2);
/// How often the drill checks whether every group has its new master.
const DRILL_CHECK: Duration = Duration::from_millis(10);
/// Trace lines shown for a failing seed.
pub const TRACE_TAIL: usize = 80;

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// `None` if it passed.
    pub failure: Option<Failure>,
    /// Simulation time at the end, µs.
    pub ended_at: u64,
    /// How long convergence took after the heal, µs (if it converged).
    pub converged_after: Option<u64>,
    /// How long the drill took from the kill until every group had a new master that every node
    /// names, µs (if it got that far).
    pub drill_failover: Option<u64>,
    /// Counters.
    pub stats: Stats,
    /// Promotions sent.
    pub promotions: usize,
    /// The highest current epoch any node reached.
    pub max_epoch: u64,
    /// The cluster's state at the end (failing runs only).
    pub state: String,
}

/// Runs seed `seed`, with its trace going to `trace`. Panics inside the engine or the simulator
/// become [`Failure::Panic`].
#[must_use]
pub fn run_seed(seed: u64, trace: Trace) -> (Outcome, Trace) {
    run_options(Options::from_seed(seed), trace)
}

/// Runs `options` (see [`run_seed`]).
#[must_use]
pub fn run_options(options: Options, trace: Trace) -> (Outcome, Trace) {
    let seed = options.seed;
    let mut slot: Option<Simulation> = None;
    let result = catch_unwind(AssertUnwindSafe(|| run_phases(options, trace, &mut slot)));
    match (result, slot) {
        (Ok(outcome), Some(mut sim)) => {
            let mut outcome = outcome;
            if outcome.failure.is_some() {
                outcome.state = sim.describe();
            }
            (outcome, std::mem::replace(&mut sim.trace, Trace::Off))
        }
        (Ok(outcome), None) => (outcome, Trace::Off),
        (Err(panic), slot) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "non-string panic".to_owned());
            let (ended_at, stats, trace) = slot.map_or_else(
                || (0, Stats::default(), Trace::Off),
                |mut s| (s.now, s.stats, std::mem::replace(&mut s.trace, Trace::Off)),
            );
            let outcome = Outcome {
                seed,
                failure: Some(Failure::Panic(message)),
                ended_at,
                converged_after: None,
                drill_failover: None,
                stats,
                promotions: 0,
                max_epoch: 0,
                state: String::new(),
            };
            (outcome, trace)
        }
    }
}

fn run_phases(options: Options, trace: Trace, slot: &mut Option<Simulation>) -> Outcome {
    let seed = options.seed;
    let safety = duration_us(options.safety_phase);
    let sim = slot.insert(Simulation::new(options, trace));
    let finish = |sim: &mut Simulation,
                  failure: Option<Failure>,
                  timings: (Option<u64>, Option<u64>)| Outcome {
        seed,
        failure,
        ended_at: sim.now,
        converged_after: timings.0,
        drill_failover: timings.1,
        stats: sim.stats,
        promotions: sim.checker.promotions_sent,
        max_epoch: sim.max_epoch(),
        state: String::new(),
    };
    sim.set_faults(true);
    if let Err(failure) = sim.run_until(safety) {
        return finish(sim, Some(failure), (None, None));
    }
    sim.heal();
    let converged_after = match converge(sim, "after healing") {
        Ok(after) => after,
        Err(failure) => return finish(sim, Some(failure), (None, None)),
    };
    match drill(sim) {
        Ok(drill_failover) => finish(sim, None, (Some(converged_after), Some(drill_failover))),
        Err(failure) => finish(sim, Some(failure), (Some(converged_after), None)),
    }
}

/// Runs until the cluster has converged and stays converged (see [`Simulation::converged`]),
/// within the liveness budget; returns how long that took.
fn converge(sim: &mut Simulation, since: &str) -> Result<u64, Failure> {
    let started = sim.now;
    let budget = duration_us(sim.options.liveness_budget());
    let deadline = started + budget;
    let mut divergences = 0;
    loop {
        sim.run_for(CONVERGENCE_CHECK)?;
        match sim.converged() {
            Ok(()) => {
                let converged_at = sim.now;
                sim.run_for(CONVERGENCE_HOLD)?;
                match sim.converged() {
                    Ok(()) => return Ok(converged_at - started),
                    // A failover an operator asked for before the heal may still complete (it
                    // waits out TILT, for instance): converge again, within the same budget.
                    Err(reason) if divergences < MAX_DIVERGENCES => {
                        divergences += 1;
                        let text = format!("converged, then diverged: {reason}");
                        sim.trace.line(sim.now, &"sim", || text);
                    }
                    Err(reason) => {
                        return Err(Failure::Liveness(format!(
                            "converged {since}, then diverged: {reason}"
                        )));
                    }
                }
            }
            Err(reason) if sim.now >= deadline => {
                return Err(Failure::Liveness(format!(
                    "not converged {:.1}s {since} (budget {:.1}s): {reason}",
                    (sim.now - started) as f64 / 1e6,
                    budget as f64 / 1e6
                )));
            }
            Err(_) => {}
        }
    }
}

/// The drill that proves failovers happen at all: once the healed cluster has converged and no
/// node is in TILT, every group's master dies in the same instant and stays dead. Within
/// [`Options::failover_bound`] every group must have a new master that runs, reports
/// `role:master`, and every node names with the same config epoch. Then the old masters come
/// back and must be demoted within the liveness budget. Returns the time from the kill until
/// the last group had its new master.
fn drill(sim: &mut Simulation) -> Result<u64, Failure> {
    // Calm first: no node in TILT, and no failover under way (an operator's failover asked for
    // in TILT may still be pending, and must not be what the drill measures).
    let calm_by =
        sim.now + duration_us(sim.options.tilt_period + sim.options.max_failover_timeout() * 3);
    while !sim.calm() {
        if sim.now >= calm_by {
            return Err(Failure::Liveness(
                "a node stayed in TILT or kept a failover going after the heal".to_owned(),
            ));
        }
        sim.run_for(CONVERGENCE_CHECK)?;
    }
    let old: Vec<usize> = (0..sim.groups.len()).filter_map(|g| sim.sole_master(g)).collect();
    sim.trace.line(sim.now, &"sim", || format!("--- drill: {} masters die at once ---", old.len()));
    let killed_at = sim.now;
    for &r in &old {
        sim.kill_redis(r);
    }
    // In half the runs, the first leader to promote a replica crashes right after sending the
    // promotion and comes back later: the others (or it, after its restart) must complete the
    // failover it abandoned. The bound then counts from its restart, when the faults stop.
    let mut bound = duration_us(sim.options.failover_bound());
    if sim.rng.random_bool(0.5) {
        let restart = DRILL_LEADER_DOWN;
        sim.crash_next_promoter(restart);
        bound += duration_us(restart);
    }
    let replaced = loop {
        sim.run_for(DRILL_CHECK)?;
        if (0..sim.groups.len()).all(|g| sim.new_master_agreed(g, &old).is_ok()) {
            break true;
        }
        if sim.now - killed_at >= bound {
            break false;
        }
    };
    if !replaced {
        let reason = (0..sim.groups.len())
            .find_map(|g| sim.new_master_agreed(g, &old).err())
            .unwrap_or_default();
        return Err(Failure::Liveness(format!(
            "drill: no new master {:.1}s after every master was killed (bound {:.1}s): {reason}",
            (sim.now - killed_at) as f64 / 1e6,
            bound as f64 / 1e6
        )));
    }
    sim.crash_next_promoter = None;
    let took = sim.now - killed_at;
    sim.trace.line(sim.now, &"sim", || {
        format!("--- drill: every group failed over in {:.3}s ---", took as f64 / 1e6)
    });
    for &r in &old {
        sim.restart_redis(r, true, true);
    }
    converge(sim, "after the drill's old masters returned")?;
    Ok(took)
}

/// The command that replays `seed`.
#[must_use]
pub fn reproduce_command(seed: u64) -> String {
    format!("cargo run -p simulations --release -- --seed {seed}")
}

/// A full report of a failing seed: the failure, the cluster's state, the trace tail (from a
/// replay with the trace on) and the command to reproduce it.
#[must_use]
pub fn failure_report(outcome: &Outcome) -> String {
    let Some(failure) = &outcome.failure else { return String::new() };
    let (replay, trace) = run_seed(outcome.seed, Trace::tail(TRACE_TAIL));
    let mut out = format!("seed {}: {failure}\n", outcome.seed);
    out.push_str("state at the end:\n");
    out.push_str(if replay.state.is_empty() { &outcome.state } else { &replay.state });
    out.push_str(&format!("last {} trace lines:\n", TRACE_TAIL));
    for line in trace.lines() {
        out.push_str("  ");
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!("reproduce with: {}\n", reproduce_command(outcome.seed)));
    out
}
