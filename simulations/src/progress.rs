//! The progress invariant: a failover that is due happens.
//!
//! Safety alone is met by a supervisor that never fails over. This module checks the other side
//! while faults strike: a master that enough nodes see down, with a replica that could replace it,
//! gets a promotion within a budget. It is evaluated from the outside, like the safety checker:
//! what nodes announced (`+sdown`, `±tilt`), what they hold on disk, and the simulator's ground
//! truth about processes, the network and the instances. It never calls the engine's rules.
//!
//! A failover of group `g` is **due** when, at once:
//!
//! * a set of running nodes, enough to elect a leader (a majority of all voters and the quorum),
//!   are not stalled, not in TILT, not waiting to learn a vote floor, all name the same master
//!   `M`, all announced `+sdown` for it, and can all reach each other both ways;
//! * some instance `R` of `g` other than `M` could replace it: it runs, has a non-zero priority,
//!   every one of those nodes knows it and reaches it both ways, and it is either a replica whose
//!   replication link has not been down for longer than ten `down_after` (Sentinel's limit), or a
//!   master that a promotion of an aborted attempt left behind (its previous history is `M`'s).
//!
//! If that holds without a break for [`Options::progress_budget`] and no node sent a promotion
//! for `g` in that time, the run fails with `progress`.

use std::collections::BTreeMap;

use picket::engine::{Addr, DurableState};

use crate::checker::{Violation, votes_needed};
use crate::cluster::{Failure, Simulation, duration_us};
use crate::network::Endpoint;
use crate::options::Options;
use crate::redis::{Process, ReplLink, Role};

/// Since when a failover of a group has been due, and how many promotions the group had then.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Due {
    /// Simulation time (µs) it became due.
    pub since: u64,
    /// Promotions sent for the group by then.
    pub promotions: usize,
}

impl Options {
    /// How long a due failover may wait for its promotion while faults strike. Each node that
    /// voted waits one `failover_timeout` before trying itself, a leader may spend one on each
    /// phase before it gives up, and an abort backs off at most one more; detection and the
    /// election come on top.
    #[must_use]
    pub fn progress_budget(&self) -> std::time::Duration {
        self.max_failover_timeout() * 4
            + self.max_down_after() * 2
            + std::time::Duration::from_secs(10)
    }
}

impl Simulation {
    /// Checks every group's progress at the current instant (called every fault tick).
    pub(crate) fn check_progress(&mut self) {
        let budget = duration_us(self.options.progress_budget());
        let states: Vec<Option<DurableState>> = self
            .nodes
            .iter()
            .map(|n| n.engine.as_ref().map(picket::engine::Supervisor::durable))
            .collect();
        for g in 0..self.groups.len() {
            let name = self.groups[g].name.clone();
            let promotions = self.checker.promotions_by_group.get(&name).copied().unwrap_or(0);
            if !self.failover_due(g, &states) {
                self.due.remove(&name);
                continue;
            }
            let due = *self.due.entry(name.clone()).or_insert(Due { since: self.now, promotions });
            if promotions > due.promotions {
                self.due.insert(name, Due { since: self.now, promotions });
            } else if self.now - due.since > budget {
                let waited = (self.now - due.since) as f64 / 1e6;
                self.fail(Failure::Safety(Violation {
                    rule: "progress",
                    detail: format!(
                        "a failover of {name} has been due for {waited:.1}s with no promotion"
                    ),
                }));
                return;
            }
        }
    }

    /// Whether a failover of group `g` is due now (see the module docs), given what every
    /// running node holds.
    fn failover_due(&self, g: usize, states: &[Option<DurableState>]) -> bool {
        let name = &self.groups[g].name;
        let needed = votes_needed(self.nodes.len(), self.groups[g].quorum);
        let mut by_master: BTreeMap<&Addr, Vec<usize>> = BTreeMap::new();
        for (i, state) in states.iter().enumerate() {
            let Some(state) = state else { continue };
            if self.nodes[i].stalled_until.is_some()
                || self.checker.in_tilt(i)
                || state.awaiting_vote_floor
            {
                continue;
            }
            let Some(master) = state.masters.get(name) else { continue };
            if self.checker.sees_down(i, name, &master.addr) {
                by_master.entry(&master.addr).or_default().push(i);
            }
        }
        by_master.iter().any(|(master, nodes)| {
            nodes.len() >= needed
                && self.connected(nodes)
                && self.groups[g]
                    .members
                    .iter()
                    .any(|&r| self.could_replace(r, master, nodes, states))
        })
    }

    /// Whether every pair of `nodes` reaches each other both ways.
    fn connected(&self, nodes: &[usize]) -> bool {
        nodes.iter().all(|&a| {
            nodes.iter().all(|&b| {
                a == b || self.network.blocked(Endpoint::Node(a), Endpoint::Node(b)).is_none()
            })
        })
    }

    /// Whether instance `r` could replace `master` for `nodes` (see the module docs).
    fn could_replace(
        &self,
        r: usize,
        master: &Addr,
        nodes: &[usize],
        states: &[Option<DurableState>],
    ) -> bool {
        let redis = &self.redis[r];
        if redis.addr == *master || redis.process != Process::Running || redis.priority == 0 {
            return false;
        }
        let group = &self.options.groups[redis.group];
        let fit = match (&redis.role, redis.link) {
            (Role::Replica(_), ReplLink::Down { since: Some(since) }) => {
                self.now.saturating_sub(since) <= duration_us(group.down_after * 10)
            }
            (Role::Replica(_), _) => true,
            (Role::Master, _) => self
                .redis_at(master)
                .is_some_and(|m| redis.replid2 != 0 && redis.replid2 == self.redis[m].replid),
        };
        fit && nodes.iter().all(|&i| {
            let (node, instance) = (Endpoint::Node(i), Endpoint::Redis(r));
            let knows = states[i]
                .as_ref()
                .and_then(|s| s.masters.get(&group.name))
                .is_some_and(|m| m.replicas.contains(&redis.addr));
            knows
                && self.network.blocked(node, instance).is_none()
                && self.network.blocked(instance, node).is_none()
        })
    }
}
