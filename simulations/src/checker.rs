//! The safety invariants, checked against every output an engine performs, in order.
//!
//! One function per property; each names the rule it encodes (openraft's invariant catalogue).
//! The checker keeps history across events, so properties about the past ("never decreases",
//! "never voted for two candidates") can be checked.
//!
//! Identity: votes, candidacies and leaders are keyed by **voter slot** (the node's index in the
//! simulation), which survives every restart, including one that loses the disk and comes back
//! with a new node id: a slot must never vote twice in one epoch, whatever its id. One vote is
//! exempt: a candidate's vote for itself by an identity that lost its disk. No living node can
//! count it (only that candidate counted its own vote, and it is gone), so nobody can know of it
//! and it cannot elect anyone. Leaders are also compared by node id, so that two identities of
//! one slot elected in one epoch are caught. Durable epochs are keyed by node id, which a restart
//! with the disk kept preserves.
//!
//! The checker never looks inside an engine and never calls the engine's rules: it computes
//! majorities and quorums itself, from the run's options. It sees what a real deployment could
//! observe (messages sent and delivered, commands sent to Redis and replies delivered, events
//! published, state written to disk) plus the simulator's ground truth about the Redis instances.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use picket::engine::{
    Addr, Body, Detail, DurableState, Event, EventKind, InfoReport, LinkFailure, NodeId,
    PeerMessage, RedisCommand, Reply, ReportedRole, Subject,
};

use crate::options::{GroupOptions, Options};

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

/// Votes a leader needs, computed here rather than taken from the engine: a majority of all
/// voters, and the master's quorum when that is higher.
#[must_use]
pub const fn votes_needed(voters: usize, quorum: u32) -> usize {
    let majority = voters / 2 + 1;
    let quorum = quorum as usize;
    if quorum > majority { quorum } else { majority }
}

/// What the checker needs to know about one group's settings.
#[derive(Clone, Copy, Debug)]
struct GroupRules {
    quorum: u32,
    down_after_ms: u64,
    /// The crash rule's threshold, if on.
    down_after_refused_ms: Option<u64>,
    /// The engine's fast ping period, a tenth of `down_after` between 10 ms and 1 s, at which it
    /// pings every instance of a group whose master is in doubt; replica eligibility is measured
    /// in these periods (the engine's own limit is looser: a calm period plus four of these).
    ping_period_ms: u64,
}

impl GroupRules {
    fn of(group: &GroupOptions) -> Self {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let down_after_ms = millis(group.down_after).max(1);
        Self {
            quorum: group.quorum,
            down_after_ms,
            down_after_refused_ms: group.down_after_refused.map(millis).filter(|&ms| ms > 0),
            ping_period_ms: (down_after_ms / 10).clamp(10, 1000),
        }
    }
}

/// Epochs a node has made durable.
#[derive(Clone, Debug, Default)]
struct Epochs {
    current: u64,
    config: BTreeMap<String, u64>,
}

/// What one node's current process has been told, with its local time (ms) of arrival.
#[derive(Clone, Debug, Default)]
struct Told {
    /// Last acceptable PING reply (`PONG`, `-LOADING`, `-MASTERDOWN`) per instance.
    ok_reply_at: BTreeMap<Addr, u64>,
    /// Last INFO report per instance.
    info: BTreeMap<Addr, (u64, InfoReport)>,
    /// Instances with a connected link.
    links_up: BTreeSet<Addr>,
    /// Per instance, the first and last of the connection attempts refused (or reset) since a
    /// link to it was last up or timed out.
    refused: BTreeMap<Addr, (u64, u64)>,
    /// Last message of any kind from each peer (by node index).
    heard_at: BTreeMap<usize, u64>,
    /// `(peer, group, master address)` for which a report saying "subjectively down" arrived.
    said_down: BTreeSet<(usize, String, Addr)>,
    /// `(group, address)` this node announced `+sdown` for, without `-sdown` since.
    sdown: BTreeSet<(String, Addr)>,
}

/// A reconfiguration command (`Promote` or `ReplicaOf`) a node is about to send, with what the
/// simulator knows about its target.
#[derive(Clone, Debug)]
pub struct Reconfiguration<'a> {
    /// The sending node's index.
    pub node: usize,
    /// Its id.
    pub node_id: NodeId,
    /// What its disk holds right now.
    pub disk: Option<&'a DurableState>,
    /// The target's group name.
    pub group: &'a str,
    /// The target instance.
    pub target: &'a Addr,
    /// The target's `replica-priority`.
    pub target_priority: u32,
    /// The command.
    pub command: &'a RedisCommand,
}

/// Everything the invariants remember.
#[derive(Debug)]
pub struct Checker {
    voters: usize,
    peer_timeout_ms: u64,
    groups: BTreeMap<String, GroupRules>,
    /// The group of every instance, by address.
    instances: BTreeMap<Addr, String>,
    /// The leader (voter slot and node id) of each (master, epoch).
    leaders: BTreeMap<(String, u64), (usize, NodeId)>,
    /// The node id each slot runs now.
    ids: Vec<Option<NodeId>>,
    /// Each voter slot's vote per (master, epoch).
    votes: BTreeMap<(usize, String, u64), NodeId>,
    /// Granted votes each candidate was sent, per (master, epoch): the voters' slots.
    granted: BTreeMap<(NodeId, String, u64), BTreeSet<usize>>,
    /// The highest epoch in which each slot voted for another candidate, per master.
    voted_for_others: BTreeMap<(usize, String), u64>,
    /// The id and epoch of each slot's latest failover attempt per master.
    candidacy: BTreeMap<(usize, String), (NodeId, u64)>,
    /// A `+try-failover` seen, waiting for the self-vote that carries its epoch (per node).
    trying: BTreeMap<usize, String>,
    /// Failovers each slot tried.
    attempts: BTreeMap<usize, usize>,
    /// Durable epochs per node id.
    epochs: BTreeMap<NodeId, Epochs>,
    /// The master address of each (master, config epoch).
    configs: BTreeMap<(String, u64), Addr>,
    /// The replica promoted in each (master, epoch).
    promotions: BTreeMap<(String, u64), Addr>,
    /// Nodes in TILT, as their own events say.
    tilted: BTreeSet<usize>,
    /// What each node's current process was told.
    told: Vec<Told>,
    /// Promotions sent so far (for scenario assertions).
    pub promotions_sent: usize,
    /// The node that sent the latest promotion.
    pub last_promoter: Option<usize>,
    /// Promotions sent per group.
    pub promotions_by_group: BTreeMap<String, usize>,
    /// The outputs being checked answer an operator's command.
    pub(crate) operator_input: bool,
}

impl Checker {
    /// A checker for the deployment `options` describe.
    #[must_use]
    pub fn new(options: &Options) -> Self {
        Self {
            voters: options.nodes,
            peer_timeout_ms: u64::try_from(options.peer_timeout.as_millis()).unwrap_or(u64::MAX),
            groups: options.groups.iter().map(|g| (g.name.clone(), GroupRules::of(g))).collect(),
            instances: BTreeMap::new(),
            leaders: BTreeMap::new(),
            ids: vec![None; options.nodes],
            votes: BTreeMap::new(),
            granted: BTreeMap::new(),
            voted_for_others: BTreeMap::new(),
            candidacy: BTreeMap::new(),
            trying: BTreeMap::new(),
            attempts: BTreeMap::new(),
            epochs: BTreeMap::new(),
            configs: BTreeMap::new(),
            promotions: BTreeMap::new(),
            tilted: BTreeSet::new(),
            told: vec![Told::default(); options.nodes],
            promotions_sent: 0,
            last_promoter: None,
            promotions_by_group: BTreeMap::new(),
            operator_input: false,
        }
    }

    /// Records that the instance at `addr` belongs to group `group`.
    pub fn add_instance(&mut self, addr: Addr, group: &str) {
        self.instances.insert(addr, group.to_owned());
    }

    /// Whether node `i` is in TILT, as its own events last said.
    #[must_use]
    pub fn in_tilt(&self, node: usize) -> bool {
        self.tilted.contains(&node)
    }

    /// Whether node `i` announced `+sdown` for `addr` in group `group` and has not cleared it.
    #[must_use]
    pub fn sees_down(&self, node: usize, group: &str, addr: &Addr) -> bool {
        self.told[node].sdown.contains(&(group.to_owned(), addr.clone()))
    }

    /// A node (re)started: it is not in TILT, has no attempt in flight and has been told nothing.
    /// `started` is the engine's state right after it started: a node restored from its disk
    /// must not have gone back in time.
    pub fn on_start(&mut self, node: usize, started: &DurableState) -> Result<(), Violation> {
        self.tilted.remove(&node);
        self.trying.remove(&node);
        self.told[node] = Told::default();
        let previous = self.ids[node].replace(started.node_id);
        if let Some(lost) = previous.filter(|id| *id != started.node_id) {
            self.votes.retain(|(voter, _, _), candidate| *voter != node || *candidate != lost);
        }
        self.epochs_never_decrease(started)
    }

    /// Node `node` wrote `state` to its disk.
    pub fn on_persist(&mut self, node: usize, state: &DurableState) -> Result<(), Violation> {
        // What the state file's loader refuses, the engine must never write.
        if let Err(e) = state.check() {
            return violation("durable-state-consistent", format!("node {node}: {e}"));
        }
        self.epochs_never_decrease(state)?;
        for (name, master) in &state.masters {
            if let Some(candidate) = master.voted_for {
                self.one_vote_per_epoch(node, name, master.voted_epoch, candidate)?;
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

    /// A reply from the instance at `addr` reached node `node` at its local time `local_ms`.
    pub fn on_reply_delivered(&mut self, node: usize, addr: &Addr, local_ms: u64, reply: &Reply) {
        let told = &mut self.told[node];
        match reply {
            Reply::Pong => {
                told.ok_reply_at.insert(addr.clone(), local_ms);
            }
            Reply::Error(text) if text.starts_with("LOADING") || text.starts_with("MASTERDOWN") => {
                told.ok_reply_at.insert(addr.clone(), local_ms);
            }
            Reply::Info(report) => {
                told.info.insert(addr.clone(), (local_ms, (**report).clone()));
            }
            Reply::Error(_) | Reply::Done | Reply::Lease(_) => {}
        }
    }

    /// Node `node`'s link to `addr` came up (`true`) or went away (`false`).
    pub fn on_link(&mut self, node: usize, addr: &Addr, up: bool) {
        if up {
            self.told[node].links_up.insert(addr.clone());
            self.told[node].refused.remove(addr);
        } else {
            self.told[node].links_up.remove(addr);
        }
    }

    /// Node `node`'s link (or attempt) to `addr` failed at its local time `local_ms`.
    pub fn on_link_failed(
        &mut self,
        node: usize,
        addr: &Addr,
        local_ms: u64,
        failure: LinkFailure,
    ) {
        let told = &mut self.told[node];
        told.links_up.remove(addr);
        match failure {
            LinkFailure::Refused => {
                let first = told.refused.get(addr).map_or(local_ms, |&(first, _)| first);
                told.refused.insert(addr.clone(), (first, local_ms));
            }
            LinkFailure::Other => {
                told.refused.remove(addr);
            }
        }
    }

    /// A message from node `from` reached node `to` at `to`'s local time `local_ms`.
    pub fn on_peer_delivered(
        &mut self,
        to: usize,
        from: usize,
        local_ms: u64,
        message: &PeerMessage,
    ) {
        let told = &mut self.told[to];
        told.heard_at.insert(from, local_ms);
        if let Body::State { masters, .. } = &message.body {
            for report in masters.iter().filter(|r| r.sdown) {
                told.said_down.insert((from, report.name.clone(), report.addr.clone()));
            }
        }
    }

    /// The node published `event` at its local time `local_ms`.
    pub fn on_event(
        &mut self,
        node: usize,
        node_id: NodeId,
        local_ms: u64,
        event: &Event,
    ) -> Result<(), Violation> {
        match (&event.kind, &event.detail) {
            (EventKind::Tilt, _) => {
                self.tilted.insert(node);
            }
            (EventKind::TiltCleared, _) => {
                self.tilted.remove(&node);
            }
            (EventKind::Sdown, _) => {
                if let Some(subject) = &event.subject {
                    self.sdown_only_after_silence(node, local_ms, subject)?;
                    if let Some(addr) = instance_addr(subject) {
                        let key = (subject.master_name().to_owned(), addr.clone());
                        self.told[node].sdown.insert(key);
                    }
                }
            }
            (EventKind::SdownCleared, _) => {
                if let Some(subject) = &event.subject
                    && let Some(addr) = instance_addr(subject)
                {
                    let key = (subject.master_name().to_owned(), addr.clone());
                    self.told[node].sdown.remove(&key);
                }
            }
            (EventKind::Odown, _) => {
                if let Some(Subject::Master { name, addr }) = &event.subject {
                    self.odown_only_with_quorum(node, local_ms, name, addr)?;
                }
            }
            (EventKind::SelectedReplica, _) => {
                if let Some(Subject::Replica { addr, master, master_addr }) = &event.subject {
                    self.best_replica_selected(node, local_ms, master, master_addr, addr)?;
                }
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
                    self.one_vote_per_epoch(node, &name, *epoch, node_id)?;
                    self.candidacy.insert((node, name), (node_id, *epoch));
                    *self.attempts.entry(node).or_default() += 1;
                }
            }
            (EventKind::ElectedLeader, _) => {
                let Some(name) = event.master_name() else { return Ok(()) };
                let Some(&(_, epoch)) = self.candidacy.get(&(node, name.to_owned())) else {
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

    /// The node, whose disk holds `disk`, sends `message`.
    pub fn on_peer_send(
        &mut self,
        node: usize,
        disk: Option<&DurableState>,
        message: &PeerMessage,
    ) -> Result<(), Violation> {
        self.revealed_state_is_durable(node, disk, message)?;
        if let Body::VoteReply { master, epoch, voted_for: Some(candidate) } = &message.body {
            self.one_vote_per_epoch(node, master, *epoch, *candidate)?;
            if *candidate != message.from.node_id {
                let seen = self.voted_for_others.entry((node, master.clone())).or_default();
                *seen = (*seen).max(*epoch);
            }
            self.granted.entry((*candidate, master.clone(), *epoch)).or_default().insert(node);
        }
        Ok(())
    }

    /// The node sends a `Promote` or `ReplicaOf`.
    pub fn on_reconfiguration(&mut self, r: &Reconfiguration<'_>) -> Result<(), Violation> {
        self.no_reconfiguration_in_tilt(r)?;
        match r.command {
            RedisCommand::Promote { .. } => {
                self.promotions_sent += 1;
                self.last_promoter = Some(r.node);
                *self.promotions_by_group.entry(r.group.to_owned()).or_default() += 1;
                self.never_promote_priority_zero(r)?;
                let epoch = self.promotion_is_elected(r)?;
                self.superseded_leaders_do_not_promote(r, epoch)?;
                self.one_promotion_per_epoch(r, epoch)?;
            }
            RedisCommand::ReplicaOf { master } => self.repoint_to_durable_master(r, master)?,
            _ => {}
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

    /// **One vote per (master, epoch) per voter slot** (Sentinel 3.7, "first come first served";
    /// Raft's `voted_for`): a voter never grants two candidates a vote for the same master in
    /// the same epoch, including across restarts, even one that lost its disk and came back with
    /// a new id. Sources: vote replies sent, ballots persisted, and a candidate's vote for itself.
    fn one_vote_per_epoch(
        &mut self,
        voter: usize,
        master: &str,
        epoch: u64,
        candidate: NodeId,
    ) -> Result<(), Violation> {
        let key = (voter, master.to_owned(), epoch);
        match self.votes.get(&key) {
            Some(previous) if *previous != candidate => violation(
                "one-vote-per-epoch",
                format!(
                    "n{voter} voted for {} and {} in {master} epoch {epoch}",
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
    /// failover of a given master in a given epoch: one voter slot, and one identity of it.
    fn one_leader_per_epoch(
        &mut self,
        node: usize,
        node_id: NodeId,
        master: &str,
        epoch: u64,
    ) -> Result<(), Violation> {
        let key = (master.to_owned(), epoch);
        match self.leaders.get(&key) {
            Some(&(slot, id)) if slot != node || id != node_id => violation(
                "one-leader-per-epoch",
                format!(
                    "n{node} ({}) and n{slot} ({}) both elected for {master} in epoch {epoch}",
                    node_id.short(),
                    id.short()
                ),
            ),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(key, (node, node_id));
                Ok(())
            }
        }
    }

    /// **No promotion without a majority-backed election** (Sentinel 3.8, with Picket's rule that
    /// manual failovers need votes too): a node may send `REPLICAOF NO ONE` only for a failover it
    /// leads, whose epoch it won with granted votes, actually sent to it by distinct voter slots,
    /// which with its own reach both a majority of all voters and the master's quorum. Returns
    /// the failover's epoch.
    fn promotion_is_elected(&self, r: &Reconfiguration<'_>) -> Result<u64, Violation> {
        let Some(&(id, epoch)) = self.candidacy.get(&(r.node, r.group.to_owned())) else {
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
            .get(&(id, r.group.to_owned(), epoch))
            .map_or(0, |v| v.iter().filter(|n| **n != r.node).count());
        let quorum = self.groups.get(r.group).map_or(u32::MAX, |g| g.quorum);
        let needed = votes_needed(self.voters, quorum);
        if votes < needed || id != r.node_id {
            return Err(Violation {
                rule: "promotion-is-elected",
                detail: format!(
                    "n{} promoted {} in {} epoch {epoch} with {votes} of {needed} votes",
                    r.node, r.target, r.group
                ),
            });
        }
        if self.leaders.get(&(r.group.to_owned(), epoch)) != Some(&(r.node, r.node_id)) {
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
        let newer = self.voted_for_others.get(&(r.node, r.group.to_owned())).copied().unwrap_or(0);
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

    /// **Repoint only towards the durable configuration**: every `REPLICAOF <host> <port>` a
    /// node sends (a failover's reconfiguration, a correction, a best effort) names the master of
    /// the configuration on its own disk at that moment, the highest config epoch it holds. A
    /// node must never repoint an instance towards a master it has not made durable (it could
    /// forget it in a crash and repoint it back) or towards an older configuration.
    fn repoint_to_durable_master(
        &self,
        r: &Reconfiguration<'_>,
        master: &Addr,
    ) -> Result<(), Violation> {
        let durable = r.disk.and_then(|d| d.masters.get(r.group));
        match durable {
            Some(m) if m.addr == *master => Ok(()),
            Some(m) => violation(
                "repoint-to-durable-master",
                format!(
                    "n{} sent {} REPLICAOF {master}, but its disk names {} (config epoch {}) for {}",
                    r.node, r.target, m.addr, m.config_epoch, r.group
                ),
            ),
            None => violation(
                "repoint-to-durable-master",
                format!(
                    "n{} sent {} REPLICAOF {master} with nothing on its disk",
                    r.node, r.target
                ),
            ),
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
    /// promote or to repoint, and no lease or pause either. Tracked from the node's own
    /// `+tilt` / `-tilt` events, in output order.
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

    /// **SDOWN only after `down_after` of silence** (Sentinel 3.4): a node declares an instance
    /// subjectively down only if no acceptable PING reply (`PONG`, `-LOADING`, `-MASTERDOWN`)
    /// reached it for more than `down_after`. The one other cause Sentinel has, a master that
    /// reports being a replica for too long, is exempt when the last INFO the node got from it
    /// said `role:slave`. Picket's crash rule is the other exemption: every connection attempt
    /// the node made was refused for longer than `down_after_refused`, with no link up or
    /// timed-out attempt in between.
    fn sdown_only_after_silence(
        &self,
        node: usize,
        local_ms: u64,
        subject: &Subject,
    ) -> Result<(), Violation> {
        let Some(addr) = instance_addr(subject) else { return Ok(()) };
        let Some(rules) = self.groups.get(subject.master_name()) else { return Ok(()) };
        let told = &self.told[node];
        let Some(&last_ok) = told.ok_reply_at.get(addr) else { return Ok(()) };
        if local_ms > last_ok + rules.down_after_ms {
            return Ok(());
        }
        let refused_long = rules.down_after_refused_ms.zip(told.refused.get(addr)).is_some_and(
            |(limit, &(first, last))| last.saturating_sub(first) > limit && last <= local_ms,
        );
        if refused_long {
            return Ok(());
        }
        let claims_replica = matches!(subject, Subject::Master { .. })
            && told
                .info
                .get(addr)
                .is_some_and(|(_, info)| matches!(info.role, ReportedRole::Replica(_)));
        if claims_replica {
            return Ok(());
        }
        violation(
            "sdown-only-after-silence",
            format!(
                "n{node} declared {subject} down {} ms after an acceptable reply (down_after {} ms)",
                local_ms - last_ok,
                rules.down_after_ms
            ),
        )
    }

    /// **ODOWN only with quorum reports** (Sentinel 3.5): a node declares a master objectively
    /// down only while it sees it down itself and at least `quorum - 1` peers it has heard from
    /// within the report lifetime told it they see that same address down.
    fn odown_only_with_quorum(
        &self,
        node: usize,
        local_ms: u64,
        group: &str,
        addr: &Addr,
    ) -> Result<(), Violation> {
        let Some(rules) = self.groups.get(group) else { return Ok(()) };
        let told = &self.told[node];
        let own = told.sdown.contains(&(group.to_owned(), addr.clone()));
        let peers = told
            .heard_at
            .iter()
            .filter(|(_, at)| local_ms.saturating_sub(**at) <= self.peer_timeout_ms)
            .filter(|(peer, _)| told.said_down.contains(&(**peer, group.to_owned(), addr.clone())))
            .count();
        let votes = usize::from(own) + peers;
        if !own || votes < usize::try_from(rules.quorum).unwrap_or(usize::MAX) {
            return violation(
                "odown-only-with-quorum",
                format!(
                    "n{node} declared {group} {addr} objectively down with {votes} of {} (own view: {})",
                    rules.quorum,
                    if own { "down" } else { "not down" }
                ),
            );
        }
        Ok(())
    }

    /// **The best replica is chosen** (Sentinel 3.10): no replica that the selecting node had
    /// every reason to consider eligible (a connected link, an acceptable reply and an INFO
    /// within five ping periods, `role:slave` with its link up, a non-zero priority) ranks
    /// before the chosen one: a lower priority, or the same priority and a higher offset, by the
    /// INFO replies the node had at that moment.
    fn best_replica_selected(
        &self,
        node: usize,
        local_ms: u64,
        group: &str,
        master: &Addr,
        chosen: &Addr,
    ) -> Result<(), Violation> {
        let Some(rules) = self.groups.get(group) else { return Ok(()) };
        let told = &self.told[node];
        let Some((_, chosen_info)) = told.info.get(chosen) else { return Ok(()) };
        if matches!(chosen_info.role, ReportedRole::Master) {
            // A promoted replica of an abandoned failover: its INFO no longer shows its
            // priority, and taking it over is the rule (see the engine's failover docs).
            return Ok(());
        }
        let chosen_rank = rank(chosen_info);
        let window = rules.ping_period_ms * 5;
        let fresh = |at: u64| local_ms.saturating_sub(at) <= window;
        for (addr, (info_at, info)) in &told.info {
            let same_group = self.instances.get(addr).is_some_and(|g| g == group);
            if addr == chosen || addr == master || !same_group || !told.links_up.contains(addr) {
                continue;
            }
            let replying = told.ok_reply_at.get(addr).is_some_and(|at| fresh(*at));
            let linked = matches!(&info.role, ReportedRole::Replica(link) if link.link_up);
            if !(replying && fresh(*info_at) && linked && info.replica_priority > 0) {
                continue;
            }
            if rank(info) < chosen_rank {
                return violation(
                    "best-replica-selected",
                    format!(
                        "n{node} chose {chosen} (priority {}, offset {}) for {group}, but {addr} has priority {}, offset {}",
                        chosen_rank.0,
                        u64::MAX - chosen_rank.1,
                        info.replica_priority,
                        u64::MAX - rank(info).1
                    ),
                );
            }
        }
        Ok(())
    }

    /// How many failovers of master `group` sent a promotion (a promotion sent again within
    /// one failover counts once).
    #[must_use]
    pub fn failovers_promoted(&self, group: &str) -> usize {
        self.promotions.keys().filter(|(name, _)| name == group).count()
    }

    /// Every (master, epoch) any slot was elected to lead.
    #[must_use]
    pub fn elections_won(&self) -> usize {
        self.leaders.len()
    }

    /// How many failovers voter slot `node` tried, over all masters.
    #[must_use]
    pub fn attempts_by(&self, node: usize) -> usize {
        self.attempts.get(&node).copied().unwrap_or(0)
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

/// The instance an event subject names (a master or a replica; not a peer).
fn instance_addr(subject: &Subject) -> Option<&Addr> {
    match subject {
        Subject::Master { addr, .. } | Subject::Replica { addr, .. } => Some(addr),
        Subject::Peer { .. } => None,
    }
}

/// Sentinel's promotion order as a sortable key for a replica's INFO: lower priority first,
/// then higher offset.
fn rank(info: &InfoReport) -> (u32, u64) {
    let offset = match &info.role {
        ReportedRole::Replica(link) => link.repl_offset,
        ReportedRole::Master => info.master_repl_offset,
    };
    (info.replica_priority, u64::MAX - offset)
}
