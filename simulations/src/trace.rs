//! The run's trace: one line per state change, in simulation order.
//!
//! ```text
//! t=41.300 n2 +odown master session 10.0.1.1 6379 #quorum 2/2
//! ```
//!
//! `t` is simulation time in seconds; the second column says who: `nK` is Picket node K (events
//! it published, messages and commands it sent), `rK.J` is Redis instance J of group K (J = 0 is
//! the configured master), `fault` and `sim` are the simulator. The format is documented in
//! `simulations/README.md`.
//!
//! Formatting costs more than simulating, so a trace that is off formats nothing: lines are
//! passed as closures. A failing seed is replayed with the trace on to show its tail.

use std::collections::VecDeque;

/// Where trace lines go.
#[derive(Debug)]
pub enum Trace {
    /// Nowhere.
    Off,
    /// To standard output, as they happen.
    Print,
    /// Into a ring of the last `n` lines.
    Tail(VecDeque<String>, usize),
}

impl Trace {
    /// A trace that keeps the last `n` lines.
    #[must_use]
    pub fn tail(n: usize) -> Self {
        Self::Tail(VecDeque::with_capacity(n), n)
    }

    /// Whether lines are recorded at all.
    #[must_use]
    pub const fn enabled(&self) -> bool {
        !matches!(self, Self::Off)
    }

    /// Records a line at `now_us`, from `who`.
    pub fn line(
        &mut self,
        now_us: u64,
        who: &dyn std::fmt::Display,
        what: impl FnOnce() -> String,
    ) {
        if !self.enabled() {
            return;
        }
        let line =
            format!("t={}.{:03} {who} {}", now_us / 1_000_000, (now_us / 1000) % 1000, what());
        match self {
            Self::Off => {}
            Self::Print => println!("{line}"),
            Self::Tail(lines, n) => {
                if lines.len() == *n {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        }
    }

    /// The recorded lines (empty unless this is a tail).
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Tail(lines, _) => lines.iter().cloned().collect(),
            _ => Vec::new(),
        }
    }
}
