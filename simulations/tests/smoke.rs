//! The smoke campaign: a fixed range of seeds, each run start to verdict (safety phase, heal,
//! liveness), spread over two threads (each run stays single-threaded and deterministic).
//!
//! Run it with `cargo test -p simulations --release`: a debug build is about ten times slower.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use simulations::Trace;
use simulations::run::{Outcome, failure_report, run_seed};

/// Seeds `0..SEEDS` run on every test run.
const SEEDS: u64 = 1000;
/// Threads to spread them over (the CI machine has two cores).
const THREADS: usize = 2;

#[test]
fn a_thousand_seeds_pass() {
    let next = AtomicU64::new(0);
    let failed: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= SEEDS {
                        break;
                    }
                    let (outcome, _) = run_seed(seed, Trace::Off);
                    if outcome.failure.is_some() {
                        failed.lock().unwrap().push(outcome);
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner().unwrap();
    failed.sort_by_key(|o| o.seed);
    let reports: Vec<String> = failed.iter().take(3).map(failure_report).collect();
    let seeds: Vec<u64> = failed.iter().map(|o| o.seed).collect();
    assert!(
        failed.is_empty(),
        "{} of {SEEDS} seeds failed: {seeds:?}\n\n{}",
        failed.len(),
        reports.join("\n")
    );
}
