//! One seeded run, start to verdict: build the cluster from the seed, inject faults for the
//! safety phase, heal everything, and require convergence within the liveness budget.
//!
//! A failing run is replayed from its seed with the trace on, to show the tail of what happened.

use std::panic::{AssertUnwindSafe, catch_unwind};
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
    let budget = duration_us(options.liveness_budget());
    let sim = slot.insert(Simulation::new(options, trace));
    let finish = |sim: &mut Simulation, failure: Option<Failure>, converged_after| Outcome {
        seed,
        failure,
        ended_at: sim.now,
        converged_after,
        stats: sim.stats,
        promotions: sim.checker.promotions_sent,
        max_epoch: sim.max_epoch(),
        state: String::new(),
    };
    sim.set_faults(true);
    if let Err(failure) = sim.run_until(safety) {
        return finish(sim, Some(failure), None);
    }
    sim.heal();
    let healed_at = sim.now;
    let deadline = healed_at + budget;
    let mut divergences = 0;
    loop {
        if let Err(failure) = sim.run_for(CONVERGENCE_CHECK) {
            return finish(sim, Some(failure), None);
        }
        match sim.converged() {
            Ok(()) => {
                let converged_at = sim.now;
                if let Err(failure) = sim.run_for(CONVERGENCE_HOLD) {
                    return finish(sim, Some(failure), None);
                }
                match sim.converged() {
                    Ok(()) => return finish(sim, None, Some(converged_at - healed_at)),
                    // A failover an operator asked for before the heal may still complete (it
                    // waits out TILT, for instance): converge again, within the same budget.
                    Err(reason) if divergences < MAX_DIVERGENCES => {
                        divergences += 1;
                        let text = format!("converged, then diverged: {reason}");
                        sim.trace.line(sim.now, &"sim", || text);
                    }
                    Err(reason) => {
                        let failure =
                            Failure::Liveness(format!("converged, then diverged: {reason}"));
                        return finish(sim, Some(failure), None);
                    }
                }
            }
            Err(reason) if sim.now >= deadline => {
                let failure = Failure::Liveness(format!(
                    "not converged {:.1}s after healing (budget {:.1}s): {reason}",
                    (sim.now - healed_at) as f64 / 1e6,
                    budget as f64 / 1e6
                ));
                return finish(sim, Some(failure), None);
            }
            Err(_) => {}
        }
    }
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
