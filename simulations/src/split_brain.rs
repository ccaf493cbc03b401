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
//! reconfigured since, is not counted: no fence holds it until a node sees it and pauses it. In
//! `bounded` mode neither is a master running without a lease: a quorum of nodes relaxed it
//! because its replicas were down (or it was promoted with none), the trade the README states
//! (such a master stays writable; the failover says `+fence-window ... unknown`). `strict`
//! mode makes no such exception.

use std::time::Duration;

use picket::engine::{Detail, Event, EventKind, Fencing, Lease, Subject};

use crate::checker::Violation;
use crate::cluster::{Failure, Simulation, duration_us};

/// Slack for the `REPLICAOF`s that detach the old master's replicas to arrive and run.
const DETACH_SLACK: Duration = Duration::from_secs(2);

impl Simulation {
    /// Records what a `+fence-window` from node `i` promises: the old master it names accepts
    /// no write once the window, counted from that node's promotion, has passed (and the slack
    /// for detaching its replicas). A promotion of that instance ends the promise: it is the
    /// master a failover chose.
    pub(crate) fn note_fence_window(&mut self, i: usize, event: &Event) {
        if let (EventKind::PromotedReplica, Some(Subject::Replica { addr, master, .. })) =
            (&event.kind, &event.subject)
        {
            self.promoted_at.insert((i, master.clone()), self.now);
            if let Some(r) = self.redis_at(addr) {
                self.redis[r].promised_fenced_by = None;
            }
            return;
        }
        let (EventKind::FenceWindow, Detail::Window { ms: Some(ms) }) =
            (&event.kind, &event.detail)
        else {
            return;
        };
        let Some(Subject::Master { name, addr }) = &event.subject else { return };
        let Some(r) = self.redis_at(addr) else { return };
        let promoted = self.promoted_at.get(&(i, name.clone())).copied().unwrap_or(self.now);
        let by = promoted + duration_us(Duration::from_millis(*ms) + DETACH_SLACK);
        let promised = self.redis[r].promised_fenced_by.get_or_insert(by);
        *promised = (*promised).min(by);
    }

    /// Checks group `g` at the current instant.
    pub(crate) fn check_split_brain(&mut self, g: usize) {
        let now = self.now;
        // Whatever the other exemptions below, an old master a failover said would be fenced by
        // now must not accept writes beside another master.
        let all: Vec<usize> = self.groups[g]
            .members
            .iter()
            .copied()
            .filter(|&r| self.redis[r].writable(now))
            .collect();
        // Except one that came back from a restart without its lease (its configuration lost):
        // nothing fences it until a node sees it, as below.
        let broken = all.iter().find(|&&r| {
            self.redis[r].promised_fenced_by.is_some_and(|by| now > by)
                && !self.redis[r].came_back_unfenced
        });
        if let Some(&r) = broken.filter(|_| all.len() >= 2) {
            let label = self.redis_label(r);
            let lease = self.redis[r].lease.min_replicas;
            let acks: Vec<String> = self.redis[r]
                .acks
                .iter()
                .map(|(&a, &at)| {
                    format!("{} {:.3}s ago", self.redis_label(a), (now - at) as f64 / 1e6)
                })
                .collect();
            self.fail(Failure::Safety(Violation {
                rule: "fence-window-kept",
                detail: format!(
                    "group {}: {label} still accepts writes beside another master past the \
                     window +fence-window stated (min-replicas-to-write {lease}, acknowledged \
                     by {acks:?})",
                    self.groups[g].name
                ),
            }));
            return;
        }
        let bounded = self.options.groups[g].fencing == Fencing::Bounded;
        let writable: Vec<usize> = self.groups[g]
            .members
            .iter()
            .copied()
            .filter(|&r| self.redis[r].writable(now) && !self.redis[r].came_back_unfenced)
            .filter(|&r| !(bounded && self.redis[r].lease.min_replicas == 0))
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
