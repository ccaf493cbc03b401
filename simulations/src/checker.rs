//! The safety invariants, checked against every output an engine performs, in order.
//!
//! One function per property; each names the rule it encodes (openraft's invariant catalogue).
//! The checker keeps history across events, so properties about the past ("never decreases",
//! "never voted for two candidates") can be checked; it is keyed by node id, which survives a
//! restart with the disk kept and changes when the disk is lost (a new incarnation).
//!
//! The checker never looks inside an engine: it sees what a real deployment could observe
//! (messages sent, commands sent to Redis, events published, state written to disk) plus the
//! simulator's ground truth about the Redis instances.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use picket::engine::Detail;
use picket::engine::election::votes_needed;
use picket::engine::{
    Addr, Body, DurableState, Event, EventKind, NodeId, PeerMessage, RedisCommand,
};

/// A violated invariant.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Violation {
    /// The rule's name.
    pub rule: &'static str,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

fn violation(rule: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { rule, detail })
}

/// Epochs a node has made durable.
#[derive(Clone, Debug, Default)]
struct Epochs {
    current: u64,
    config: BTreeMap<String, u64>,
}

/// A reconfiguration command (`Promote` or `ReplicaOf`) a node is about to send, with what the
/// simulator knows about its target.
#[derive(Clone, Debug)]
pub struct Reconfiguration<'a> {
    /// The sending node's index.
    pub node: usize,
    /// Its id.
    pub node_id: NodeId,
    /// The target's group name.
    pub group: &'a str,
    /// The group's quorum.
    pub quorum: u32,
    /// Voters in the cluster.
    pub voters: usize,
    /// The target instance.
    pub target: &'a Addr,
    /// The target's `replica-priority`.
    pub target_priority: u32,
    /// The command.
    pub command: &'a RedisCommand,
}

/// Everything the invariants remember.
#[derive(Debug, Default)]
pub struct Checker {
    /// The leader of each (master, epoch).
    leaders: BTreeMap<(String, u64), NodeId>,
    /// Each voter's vote per (master, epoch).
    votes: BTreeMap<(NodeId, String, u64), NodeId>,
    /// Granted votes each candidate was sent, per (master, epoch): the voters' node indices.
    granted: BTreeMap<(NodeId, String, u64), BTreeSet<usize>>,
    /// The highest epoch in which each node voted for another candidate, per master.
    voted_for_others: BTreeMap<(NodeId, String), u64>,
    /// The epoch of each node's latest failover attempt per master.
    candidacy: BTreeMap<(NodeId, String), u64>,
    /// A `+try-failover` seen, waiting for the self-vote that carries its epoch (per node).
    trying: BTreeMap<usize, String>,
    /// Durable epochs per node id.
    epochs: BTreeMap<NodeId, Epochs>,
    /// The master address of each (master, config epoch).
    configs: BTreeMap<(String, u64), Addr>,
    /// The replica promoted in each (master, epoch).
    promotions: BTreeMap<(String, u64), Addr>,
    /// Nodes in TILT, as their own events say.
    tilted: BTreeSet<usize>,
    /// Promotions sent so far (for scenario assertions).
    pub promotions_sent: usize,
    /// The node that sent the latest promotion.
    pub last_promoter: Option<usize>,
    /// The outputs being checked answer an operator's command.
    pub(crate) operator_input: bool,
}

impl Checker {
    /// A node (re)started: it is not in TILT and has no attempt in flight.
    /// `started` is the engine's state right after it started: a node restored from its disk
    /// must not have gone back in time.
    pub fn on_start(&mut self, node: usize, started: &DurableState) -> Result<(), Violation> {
        self.tilted.remove(&node);
        self.trying.remove(&node);
        self.epochs_never_decrease(started)
    }

    /// The node wrote `state` to its disk.
    pub fn on_persist(&mut self, state: &DurableState) -> Result<(), Violation> {
        self.epochs_never_decrease(state)?;
        for (name, master) in &state.masters {
            if let Some(candidate) = master.voted_for {
                self.one_vote_per_epoch(state.node_id, name, master.voted_epoch, candidate)?;
            }
            self.one_address_per_config_epoch(
                state.node_id,
                name,
                master.config_epoch,
                &master.addr,
            )?;
        }
        Ok(())
    }

    /// The node published `event`.
    pub fn on_event(
        &mut self,
        node: usize,
        node_id: NodeId,
        event: &Event,
    ) -> Result<(), Violation> {
        match (&event.kind, &event.detail) {
            (EventKind::Tilt, _) => {
                self.tilted.insert(node);
            }
            (EventKind::TiltCleared, _) => {
                self.tilted.remove(&node);
            }
            (EventKind::TryFailover, _) => {
                if let Some(name) = event.master_name() {
                    if !self.operator_input {
                        self.no_automatic_failover_in_tilt(node, name)?;
                    }
                    self.trying.insert(node, name.to_owned());
                }
            }
            (EventKind::VoteForLeader, Detail::Vote { leader, epoch, .. })
                if *leader == node_id =>
            {
                if let Some(name) = self.trying.remove(&node) {
                    self.one_vote_per_epoch(node_id, &name, *epoch, node_id)?;
                    self.candidacy.insert((node_id, name), *epoch);
                }
            }
            (EventKind::ElectedLeader, _) => {
                let Some(name) = event.master_name() else { return Ok(()) };
                let Some(&epoch) = self.candidacy.get(&(node_id, name.to_owned())) else {
                    return violation(
                        "leader-was-a-candidate",
                        format!("n{node} elected for {name} without trying"),
                    );
                };
                self.one_leader_per_epoch(node, node_id, name, epoch)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The node, whose disk holds `disk`, sends `message` to node `to`.
    pub fn on_peer_send(
        &mut self,
        node: usize,
        disk: Option<&DurableState>,
        message: &PeerMessage,
    ) -> Result<(), Violation> {
        self.revealed_state_is_durable(node, disk, message)?;
        if let Body::VoteReply { master, epoch, voted_for: Some(candidate) } = &message.body {
            self.one_vote_per_epoch(message.from.node_id, master, *epoch, *candidate)?;
            if *candidate != message.from.node_id {
                let seen = self
                    .voted_for_others
                    .entry((message.from.node_id, master.clone()))
                    .or_default();
                *seen = (*seen).max(*epoch);
            }
            self.granted.entry((*candidate, master.clone(), *epoch)).or_default().insert(node);
        }
        Ok(())
    }

    /// The node sends a `Promote` or `ReplicaOf`.
    pub fn on_reconfiguration(&mut self, r: &Reconfiguration<'_>) -> Result<(), Violation> {
        self.no_reconfiguration_in_tilt(r)?;
        if let RedisCommand::Promote = r.command {
            self.promotions_sent += 1;
            self.last_promoter = Some(r.node);
            self.never_promote_priority_zero(r)?;
            let epoch = self.promotion_is_elected(r)?;
            self.superseded_leaders_do_not_promote(r, epoch)?;
            self.one_promotion_per_epoch(r, epoch)?;
        }
        Ok(())
    }

    /// **Epochs are monotonic** (Sentinel 3.7: the current epoch only grows; a config epoch is
    /// replaced only by a higher one). Checked on every state a node makes durable, across
    /// restarts that keep the disk: a node must never come back with, or write, older epochs.
    fn epochs_never_decrease(&mut self, state: &DurableState) -> Result<(), Violation> {
        let seen = self.epochs.entry(state.node_id).or_default();
        if state.current_epoch < seen.current {
            return violation(
                "epochs-never-decrease",
                format!(
                    "node {} current epoch {} after {}",
                    state.node_id.short(),
                    state.current_epoch,
                    seen.current
                ),
            );
        }
        seen.current = state.current_epoch;
        for (name, master) in &state.masters {
            let before = seen.config.entry(name.clone()).or_default();
            if master.config_epoch < *before {
                return violation(
                    "epochs-never-decrease",
                    format!(
                        "node {} {name} config epoch {} after {}",
                        state.node_id.short(),
                        master.config_epoch,
                        before
                    ),
                );
            }
            *before = master.config_epoch;
        }
        Ok(())
    }

    /// **One vote per (master, epoch)** (Sentinel 3.7, "first come first served"; Raft's
    /// `voted_for`): a voter never grants two candidates a vote for the same master in the same
    /// epoch, including across restarts with its disk kept. Sources: vote replies sent, ballots
    /// persisted, and a candidate's vote for itself.
    fn one_vote_per_epoch(
        &mut self,
        voter: NodeId,
        master: &str,
        epoch: u64,
        candidate: NodeId,
    ) -> Result<(), Violation> {
        let key = (voter, master.to_owned(), epoch);
        match self.votes.get(&key) {
            Some(previous) if *previous != candidate => violation(
                "one-vote-per-epoch",
                format!(
                    "node {} voted for {} and {} in {master} epoch {epoch}",
                    voter.short(),
                    previous.short(),
                    candidate.short()
                ),
            ),
            Some(_) => Ok(()),
            None => {
                self.votes.insert(key, candidate);
                Ok(())
            }
        }
    }

    /// **Election safety** (Sentinel 3.8; Raft §5.2): at most one node is elected leader of a
    /// failover of a given master in a given epoch.
    fn one_leader_per_epoch(
        &mut self,
        node: usize,
        node_id: NodeId,
        master: &str,
        epoch: u64,
    ) -> Result<(), Violation> {
        let key = (master.to_owned(), epoch);
        match self.leaders.get(&key) {
            Some(leader) if *leader != node_id => violation(
                "one-leader-per-epoch",
                format!(
                    "n{node} ({}) and {} both elected for {master} in epoch {epoch}",
                    node_id.short(),
                    leader.short()
                ),
            ),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(key, node_id);
                Ok(())
            }
        }
    }

    /// **No promotion without a majority-backed election** (Sentinel 3.8, with Picket's rule that
    /// manual failovers need votes too): a node may send `REPLICAOF NO ONE` only for a failover it
    /// leads, whose epoch it won with granted votes, actually sent to it by distinct nodes, which
    /// with its own reach both a majority of all voters and the master's quorum. Returns the
    /// failover's epoch.
    fn promotion_is_elected(&self, r: &Reconfiguration<'_>) -> Result<u64, Violation> {
        let Some(&epoch) = self.candidacy.get(&(r.node_id, r.group.to_owned())) else {
            return Err(Violation {
                rule: "promotion-is-elected",
                detail: format!(
                    "n{} promoted {} in {} without ever trying a failover",
                    r.node, r.target, r.group
                ),
            });
        };
        let votes = 1 + self
            .granted
            .get(&(r.node_id, r.group.to_owned(), epoch))
            .map_or(0, |v| v.iter().filter(|n| **n != r.node).count());
        let needed = votes_needed(r.voters, r.quorum);
        if votes < needed {
            return Err(Violation {
                rule: "promotion-is-elected",
                detail: format!(
                    "n{} promoted {} in {} epoch {epoch} with {votes} of {needed} votes",
                    r.node, r.target, r.group
                ),
            });
        }
        if self.leaders.get(&(r.group.to_owned(), epoch)) != Some(&r.node_id) {
            return Err(Violation {
                rule: "promotion-is-elected",
                detail: format!(
                    "n{} promoted {} in {} epoch {epoch} without being elected",
                    r.node, r.target, r.group
                ),
            });
        }
        Ok(epoch)
    }

    /// **A superseded leader does not promote** (Raft §5.1: a leader that sees a higher term
    /// steps down): a node that voted for another candidate in a newer epoch no longer promotes
    /// a replica for its own older failover of that master. Otherwise two leaders of consecutive
    /// epochs can promote two replicas and repoint each other's.
    fn superseded_leaders_do_not_promote(
        &self,
        r: &Reconfiguration<'_>,
        epoch: u64,
    ) -> Result<(), Violation> {
        let newer =
            self.voted_for_others.get(&(r.node_id, r.group.to_owned())).copied().unwrap_or(0);
        if newer > epoch {
            return violation(
                "superseded-leaders-do-not-promote",
                format!(
                    "n{} promoted {} for {} epoch {epoch} after voting for another candidate in epoch {newer}",
                    r.node, r.target, r.group
                ),
            );
        }
        Ok(())
    }

    /// **One promotion per epoch** (a failover promotes one replica): no two different replicas
    /// are promoted for the same master in the same epoch.
    fn one_promotion_per_epoch(
        &mut self,
        r: &Reconfiguration<'_>,
        epoch: u64,
    ) -> Result<(), Violation> {
        let key = (r.group.to_owned(), epoch);
        match self.promotions.get(&key) {
            Some(previous) if previous != r.target => violation(
                "one-promotion-per-epoch",
                format!("{} and {} both promoted in {} epoch {epoch}", previous, r.target, r.group),
            ),
            Some(_) => Ok(()),
            None => {
                self.promotions.insert(key, r.target.clone());
                Ok(())
            }
        }
    }

    /// **A config epoch names one address** (Sentinel 3.7: the config epoch versions the
    /// master's address): every node that holds a given config epoch for a master holds the same
    /// master address with it.
    fn one_address_per_config_epoch(
        &mut self,
        node_id: NodeId,
        master: &str,
        epoch: u64,
        addr: &Addr,
    ) -> Result<(), Violation> {
        let key = (master.to_owned(), epoch);
        match self.configs.get(&key) {
            Some(known) if known != addr => violation(
                "one-address-per-config-epoch",
                format!(
                    "node {} holds {master} config epoch {epoch} at {addr}, another at {known}",
                    node_id.short()
                ),
            ),
            Some(_) => Ok(()),
            None => {
                self.configs.insert(key, addr.clone());
                Ok(())
            }
        }
    }

    /// **Priority 0 means never promote** (Sentinel 3.10, `replica-priority 0`).
    fn never_promote_priority_zero(&self, r: &Reconfiguration<'_>) -> Result<(), Violation> {
        if r.target_priority == 0 {
            return violation(
                "never-promote-priority-zero",
                format!("n{} promoted {} (priority 0)", r.node, r.target),
            );
        }
        Ok(())
    }

    /// **TILT acts on nothing** (Sentinel 3.13): a node in TILT sends no `REPLICAOF`, whether to
    /// promote or to repoint. Tracked from the node's own `+tilt` / `-tilt` events, in output
    /// order.
    fn no_reconfiguration_in_tilt(&self, r: &Reconfiguration<'_>) -> Result<(), Violation> {
        if self.tilted.contains(&r.node) {
            return violation(
                "no-reconfiguration-in-tilt",
                format!("n{} sent {:?} to {} in TILT", r.node, r.command, r.target),
            );
        }
        Ok(())
    }

    /// **TILT starts no failover on its own** (Sentinel 3.13: no failover state machine in TILT;
    /// the design note's invariant 7). An operator's `SENTINEL FAILOVER` is accepted in TILT, as
    /// Sentinel accepts it; it still needs its votes, and advances only once TILT is over.
    fn no_automatic_failover_in_tilt(&self, node: usize, master: &str) -> Result<(), Violation> {
        if self.tilted.contains(&node) {
            return violation(
                "no-failover-started-in-tilt",
                format!("n{node} tried a failover of {master} in TILT"),
            );
        }
        Ok(())
    }

    /// The number of distinct (master, epoch) failovers any node was elected to lead.
    #[must_use]
    pub fn elections_won(&self) -> usize {
        self.leaders.len()
    }

    /// The epochs of the failovers `node_id` tried, per master.
    #[must_use]
    pub fn attempts_by(&self, node_id: NodeId) -> usize {
        self.votes
            .iter()
            .filter(|((voter, _, _), candidate)| *voter == node_id && **candidate == node_id)
            .count()
    }

    /// **Persist before revealing** (the engine's `Persist` barrier; Sentinel flushes its config
    /// inside `sentinelVoteLeader` for the same reason): an epoch, vote or configuration a node
    /// tells a peer must already be on its disk, or a crash could make it forget what it said.
    fn revealed_state_is_durable(
        &self,
        node: usize,
        disk: Option<&DurableState>,
        message: &PeerMessage,
    ) -> Result<(), Violation> {
        let Some(disk) = disk else {
            return violation(
                "revealed-state-is-durable",
                format!("n{node} sent a message before persisting anything"),
            );
        };
        if message.from.current_epoch > disk.current_epoch {
            return violation(
                "revealed-state-is-durable",
                format!(
                    "n{node} announced epoch {} with {} on disk",
                    message.from.current_epoch, disk.current_epoch
                ),
            );
        }
        let master = |name: &str| disk.masters.get(name);
        match &message.body {
            Body::VoteReply { master: name, epoch, voted_for: Some(candidate) } => {
                let ok = master(name).is_some_and(|m| {
                    m.voted_epoch > *epoch
                        || (m.voted_epoch == *epoch && m.voted_for == Some(*candidate))
                });
                if !ok {
                    return violation(
                        "revealed-state-is-durable",
                        format!("n{node} sent a vote for {name} epoch {epoch} not on disk"),
                    );
                }
            }
            Body::VoteRequest { master: name, epoch, .. }
                if master(name).is_none_or(|m| m.voted_epoch < *epoch) =>
            {
                return violation(
                    "revealed-state-is-durable",
                    format!(
                        "n{node} asked votes for {name} epoch {epoch} before persisting its own"
                    ),
                );
            }
            Body::State { masters, .. } => {
                for report in masters {
                    let ok = master(&report.name).is_some_and(|m| {
                        m.config_epoch >= report.config_epoch && m.voted_epoch >= report.voted_epoch
                    });
                    if !ok {
                        return violation(
                            "revealed-state-is-durable",
                            format!(
                                "n{node} reported {} config epoch {} / vote {} not on disk",
                                report.name, report.config_epoch, report.voted_epoch
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
