//! The fencing invariant: no two masters of a group accept writes at once for longer than the
//! group's fencing mode allows.
//!
//! Ground truth, from the simulated servers: an instance accepts writes while it runs as a
//! master, is not paused, and keeps its lease (see [`crate::redis::Redis::writable`], which
//! credits a lease for as long as Redis may take to notice it lapsed). Checked whenever a
//! group's replication is brought up to date (every INFO, role change, restart and partition):
//!
//! * `strict`: never two at once;
//! * `bounded`: two at once for at most the lease's expiry (three seconds) plus two seconds for
//!   the messages that detach the old master's replicas;
//! * `off`: not checked (Sentinel's behaviour: the isolated master accepts writes until it is
//!   demoted).
//!
//! An instance that came back from a restart as a master without a lease (its configuration was
//! lost, or its lease had been relaxed to nothing because its replicas were gone), and was not
//! reconfigured since, is not counted: no fence holds it until a node sees it and pauses it.

use std::time::Duration;

use picket::engine::{Fencing, Lease};

use crate::checker::Violation;
use crate::cluster::{Failure, Simulation, duration_us};

/// Slack for the `REPLICAOF`s that detach the old master's replicas to arrive and run.
const DETACH_SLACK: Duration = Duration::from_secs(2);

impl Simulation {
    /// Checks group `g` at the current instant.
    pub(crate) fn check_split_brain(&mut self, g: usize) {
        let now = self.now;
        let writable: Vec<usize> = self.groups[g]
            .members
            .iter()
            .copied()
            .filter(|&r| self.redis[r].writable(now) && !self.redis[r].came_back_unfenced)
            .collect();
        if writable.len() < 2 {
            self.split_since[g] = None;
            return;
        }
        let since = *self.split_since[g].get_or_insert(now);
        let allowed = match self.options.groups[g].fencing {
            Fencing::Off => return,
            Fencing::Strict => Duration::ZERO,
            Fencing::Bounded => Lease::majority_of(1).expiry() + DETACH_SLACK,
        };
        if now - since > duration_us(allowed) {
            let labels: Vec<String> = writable.iter().map(|&r| self.redis_label(r)).collect();
            let mode = self.options.groups[g].fencing.as_str();
            self.fail(Failure::Safety(Violation {
                rule: "no-two-writable-masters",
                detail: format!(
                    "group {} ({mode} fencing): {labels:?} all accept writes for {:.3}s",
                    self.groups[g].name,
                    (now - since) as f64 / 1e6
                ),
            }));
        }
    }
}
