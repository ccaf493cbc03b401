//! Sentinel-compatible peering: the redis-sentinel processes listed for a master, as voters.
//!
//! A team replacing a live Sentinel quorum one node at a time runs Sentinels and Pickets side by
//! side for a master (3 Sentinels, then 2 + 1, 1 + 2, 3 Pickets). For that window a master may
//! list Sentinels in `sentinel_peers`; Picket then takes part in Sentinel's own protocol for it:
//!
//! * **Membership is the list.** Only the listed addresses are voters, named by the run id their
//!   hellos announce. Hellos from anyone else are counted and ignored: Sentinel's hello is
//!   unauthenticated, and Picket must not inherit "whoever can `PUBLISH` on the master may
//!   re-point it" (sentinel-protocol.md 4.4).
//! * **One vote per epoch, shared.** A listed Sentinel's vote request (`SENTINEL
//!   IS-MASTER-DOWN-BY-ADDR` with its run id) is decided by [`crate::engine::election::decide`]
//!   against the same ballot Picket peers' requests use, and the ballot is durable before the
//!   reply leaves, as for peers.
//! * **Quorum and majority over everyone.** The group's voters are this node, its Picket peers
//!   and its listed Sentinels; a Sentinel's `master_down` answer counts towards ODOWN and its vote
//!   towards an election like a peer's report and vote.
//! * **Configurations move both ways.** A listed Sentinel's hello with a higher config epoch is
//!   adopted, but only once the address it names reports `role:master` (a Sentinel relays what
//!   it adopted, forged or not; a real promotion shows in the instance's INFO). This node's hellos
//!   carry its current master and config epoch, so Sentinels adopt a failover Picket led.
//!
//! Replies from Sentinels expire after [`ANSWER_VALIDITY`], Sentinel's own rule for
//! `is-master-down-by-addr` replies.

use std::time::Duration;

use crate::engine::addr::Addr;
use crate::engine::event::{EventKind, Subject};
use crate::engine::failover::Phase;
use crate::engine::group::{Group, PendingConfig};
use crate::engine::ids::NodeId;
use crate::engine::io::{Output, RedisCommand};
use crate::engine::node::Node;
use crate::engine::report::ReportedRole;
use crate::engine::time::Instant;

/// How often Sentinel publishes its hello (its `PUBLISH-PERIOD`); this node publishes at the same
/// period so that Sentinels see it as alive as often as they see each other.
pub const HELLO_PERIOD: Duration = Duration::from_millis(2000);
/// How long an `is-master-down-by-addr` answer, or a hello, counts (Sentinel forgets replies
/// older than five ask periods, 5 s).
pub const ANSWER_VALIDITY: Duration = Duration::from_millis(5000);

/// A hello read on `__sentinel__:hello` (or received by `PUBLISH` on the Sentinel port):
/// `ip,port,runid,current_epoch,master,master_ip,master_port,config_epoch`, parsed by the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The sender's announced Sentinel-port address.
    pub addr: Addr,
    /// The sender's run id (Sentinel's `myid`).
    pub run_id: NodeId,
    /// The sender's current epoch.
    pub current_epoch: u64,
    /// The master's name.
    pub master: String,
    /// The address the sender believes is the master.
    pub master_addr: Addr,
    /// That configuration's epoch.
    pub config_epoch: u64,
}

/// An answer to `SENTINEL IS-MASTER-DOWN-BY-ADDR`, either way: `[down, leader|*, leader-epoch]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownAnswer {
    /// The answerer sees the master subjectively down (and is not in TILT).
    pub master_down: bool,
    /// Whom it voted for (`*` = `None`: no vote asked, or none cast).
    pub leader: Option<NodeId>,
    /// The epoch of that vote (0 when none).
    pub leader_epoch: u64,
}

/// One listed Sentinel, as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentinelPeer {
    /// Its configured address (as it announces itself in its hellos).
    pub addr: Addr,
    /// The run id its hellos announce.
    pub run_id: Option<NodeId>,
    /// The current epoch it last announced.
    pub current_epoch: u64,
    /// When a hello or an answer last came from it.
    pub last_heard_at: Option<Instant>,
    /// Its latest answer, and when it arrived.
    pub answer: Option<(Instant, DownAnswer)>,
    /// When it was last asked.
    pub asked_at: Option<Instant>,
}

impl SentinelPeer {
    fn new(addr: Addr) -> Self {
        Self {
            addr,
            run_id: None,
            current_epoch: 0,
            last_heard_at: None,
            answer: None,
            asked_at: None,
        }
    }

    /// Whether it was heard within [`ANSWER_VALIDITY`].
    #[must_use]
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.last_heard_at.is_some_and(|at| now.saturating_since(at) < ANSWER_VALIDITY)
    }

    /// Its answer, if still valid at `now`.
    #[must_use]
    pub fn valid_answer(&self, now: Instant) -> Option<DownAnswer> {
        self.answer.filter(|(at, _)| now.saturating_since(*at) < ANSWER_VALIDITY).map(|(_, a)| a)
    }

    /// Whether its valid answer says the master is down.
    #[must_use]
    pub fn sees_master_down(&self, now: Instant) -> bool {
        self.valid_answer(now).is_some_and(|a| a.master_down)
    }

    /// Whom it voted for in `epoch`, per its valid answer.
    #[must_use]
    pub fn vote_in(&self, epoch: u64, now: Instant) -> Option<NodeId> {
        self.valid_answer(now).filter(|a| a.leader_epoch == epoch).and_then(|a| a.leader)
    }
}

/// The listed Sentinels of one master, in configuration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sentinels {
    list: Vec<SentinelPeer>,
}

impl Sentinels {
    /// The Sentinels at the configured addresses.
    #[must_use]
    pub fn new(addrs: &[Addr]) -> Self {
        Self { list: addrs.iter().cloned().map(SentinelPeer::new).collect() }
    }

    /// How many are listed (voters besides this node and its peers).
    #[must_use]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the mode is off for this master (none listed).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every listed Sentinel.
    pub fn iter(&self) -> impl Iterator<Item = &SentinelPeer> {
        self.list.iter()
    }

    /// Every listed Sentinel, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut SentinelPeer> {
        self.list.iter_mut()
    }

    /// The one listed at `addr`.
    pub fn at_mut(&mut self, addr: &Addr) -> Option<&mut SentinelPeer> {
        self.list.iter_mut().find(|s| s.addr == *addr)
    }

    /// The one whose hellos announce `run_id`.
    #[must_use]
    pub fn by_run_id(&self, run_id: NodeId) -> Option<&SentinelPeer> {
        self.list.iter().find(|s| s.run_id == Some(run_id))
    }

    /// How many were heard within [`ANSWER_VALIDITY`].
    #[must_use]
    pub fn fresh_count(&self, now: Instant) -> usize {
        self.list.iter().filter(|s| s.is_fresh(now)).count()
    }

    /// How many validly answered that the master is down.
    #[must_use]
    pub fn down_count(&self, now: Instant) -> usize {
        self.list.iter().filter(|s| s.sees_master_down(now)).count()
    }

    /// How many validly answered a vote for `candidate` in `epoch`.
    #[must_use]
    pub fn votes_for(&self, candidate: NodeId, epoch: u64, now: Instant) -> usize {
        self.list.iter().filter(|s| s.vote_in(epoch, now) == Some(candidate)).count()
    }

    /// Whom those that voted for someone else in `epoch` voted for.
    #[must_use]
    pub fn rivals(&self, me: NodeId, epoch: u64, now: Instant) -> Vec<NodeId> {
        self.list.iter().filter_map(|s| s.vote_in(epoch, now)).filter(|c| *c != me).collect()
    }

    /// How many can still be heard and have not voted in `epoch` yet.
    #[must_use]
    pub fn undecided(&self, epoch: u64, now: Instant) -> usize {
        self.list.iter().filter(|s| s.is_fresh(now) && s.vote_in(epoch, now).is_none()).count()
    }
}

/// The shortest period between two `is-master-down-by-addr` questions to one Sentinel (Sentinel
/// asks every second; this node asks every ping period, but not faster than this).
const ASK_PERIOD_MIN: Duration = Duration::from_millis(100);

/// What became of a hello.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum HelloOutcome {
    /// From a Sentinel listed for that master: taken into account.
    Listed,
    /// From an address not listed for that master: ignored (and counted).
    Unlisted,
}

impl Group {
    /// How often listed Sentinels are asked whether they see the master down.
    #[must_use]
    pub fn ask_period(&self) -> Duration {
        self.timing.ping_period.max(ASK_PERIOD_MIN)
    }

    /// While this node sees the master down and is not collecting votes (vote requests ask the
    /// same question), asks every listed Sentinel whether it sees it down too, every
    /// [`Self::ask_period`], as Sentinel asks its peers.
    pub(crate) fn ask_sentinels(&mut self, node: &mut Node, now: Instant) {
        let collecting =
            self.failover.as_ref().is_some_and(|f| matches!(f.phase, Phase::Election { .. }));
        if self.sentinels.is_empty() || !self.master_sdown() || collecting {
            return;
        }
        let period = self.ask_period();
        for sentinel in self.sentinels.iter_mut() {
            if sentinel.asked_at.is_some_and(|at| now.saturating_since(at) < period) {
                continue;
            }
            sentinel.asked_at = Some(now);
            node.out.push(Output::AskSentinel {
                master: self.settings.name.clone(),
                sentinel: sentinel.addr.clone(),
                master_addr: self.master.clone(),
                epoch: node.current_epoch,
                candidate: None,
            });
        }
    }

    /// Asks every listed Sentinel that has not granted it yet for its vote in `epoch`.
    pub(crate) fn ask_sentinel_votes(&self, node: &mut Node, epoch: u64, now: Instant) {
        for sentinel in self.sentinels.iter() {
            if sentinel.vote_in(epoch, now) == Some(node.id) {
                continue;
            }
            node.out.push(Output::AskSentinel {
                master: self.settings.name.clone(),
                sentinel: sentinel.addr.clone(),
                master_addr: self.master.clone(),
                epoch,
                candidate: Some(node.id),
            });
        }
    }

    /// When something about the listed Sentinels is next due: a question, or an answer or a
    /// voter's freshness running out (which changes ODOWN, the votes and the authorisation).
    #[must_use]
    pub fn sentinels_deadline(&self, now: Instant) -> Option<Instant> {
        let period = self.ask_period();
        let asking = self.master_sdown();
        self.sentinels
            .iter()
            .flat_map(|s| {
                [
                    s.asked_at.filter(|_| asking).map(|at| at + period),
                    s.answer.map(|(at, _)| at + ANSWER_VALIDITY),
                    s.last_heard_at.map(|at| at + ANSWER_VALIDITY),
                ]
            })
            .flatten()
            .filter(|at| *at > now)
            .min()
    }

    /// Records a listed Sentinel's answer about `master_addr`; one about a master this group no
    /// longer has (asked before a switch) is dropped, or it would count towards the new
    /// master's ODOWN. A vote in an epoch above the current configuration means a failover may
    /// be under way: corrections wait, as for a peer's vote.
    pub fn on_sentinel_answer(
        &mut self,
        node: &mut Node,
        from: &Addr,
        master_addr: &Addr,
        answer: DownAnswer,
        now: Instant,
    ) {
        if self.find(master_addr) != Some(&self.master) {
            return;
        }
        let Some(sentinel) = self.sentinels.at_mut(from) else { return };
        sentinel.answer = Some((now, answer));
        sentinel.last_heard_at = Some(now);
        if answer.leader.is_some() {
            node.observe_epoch(answer.leader_epoch, Some(&self.settings.name));
            if answer.leader_epoch > self.config_epoch {
                self.unsettled_until = self.unsettled_until.max(now + self.timing.failover_timeout);
            }
        }
    }

    /// Takes a hello about this master into account if a listed Sentinel sent it: its run id
    /// and liveness, its current epoch, and its configuration if newer (an address other than
    /// the master's waits in [`Group::pending_config`] until that instance reports
    /// `role:master`; this node asks it for INFO at once).
    pub fn on_sentinel_hello(
        &mut self,
        node: &mut Node,
        hello: &Hello,
        now: Instant,
    ) -> HelloOutcome {
        let name = self.settings.name.clone();
        let master = self.master.clone();
        let Some(sentinel) = self.sentinels.at_mut(&hello.addr) else {
            return HelloOutcome::Unlisted;
        };
        let first = sentinel.run_id != Some(hello.run_id);
        sentinel.run_id = Some(hello.run_id);
        sentinel.current_epoch = hello.current_epoch;
        sentinel.last_heard_at = Some(now);
        if first {
            node.emit_about(
                EventKind::Peer,
                Subject::Peer {
                    id: hello.run_id,
                    addr: hello.addr.clone(),
                    master: name,
                    master_addr: master,
                },
            );
        }
        node.observe_epoch(hello.current_epoch, None);
        // A configuration is never newer than the epochs its sender has seen: a hello that says
        // otherwise is malformed, and adopting it would let config epochs outrun failover epochs.
        if hello.config_epoch <= self.config_epoch || hello.config_epoch > hello.current_epoch {
            return HelloOutcome::Listed;
        }
        if self.find(&hello.master_addr) == Some(&self.master) {
            self.config_epoch = hello.config_epoch;
            node.out.mark_urgent();
            return HelloOutcome::Listed;
        }
        if self.pending_config.as_ref().is_some_and(|p| p.config_epoch >= hello.config_epoch) {
            return HelloOutcome::Listed;
        }
        let addr = self.ensure_instance(node, &hello.master_addr, now);
        tracing::info!(master = %self.settings.name, addr = %addr, epoch = hello.config_epoch, from = %hello.addr, "a listed Sentinel announces a newer configuration; adopting it once that instance reports role:master");
        if let Some(instance) = self.instances.get_mut(&addr)
            && instance.up_link().is_some()
        {
            instance.send(node, now, RedisCommand::Info);
        }
        self.pending_config = Some(PendingConfig {
            from: hello.addr.clone(),
            run_id: hello.run_id,
            addr,
            config_epoch: hello.config_epoch,
            heard_at: now,
        });
        HelloOutcome::Listed
    }

    /// Adopts the pending configuration once its master reports `role:master` in an INFO newer
    /// than the hello (Sentinel's `+config-update-from`); drops it once a configuration at least
    /// as new is in place.
    pub(crate) fn adopt_pending_config(&mut self, node: &mut Node, now: Instant) {
        let Some(pending) = &self.pending_config else { return };
        if pending.config_epoch <= self.config_epoch {
            self.pending_config = None;
            return;
        }
        let shows = self.instances.get(&pending.addr).is_some_and(|i| {
            matches!(i.reported_role(), Some(ReportedRole::Master))
                && i.info_at.is_some_and(|at| at >= pending.heard_at)
        });
        if !shows {
            return;
        }
        let Some(pending) = self.pending_config.take() else { return };
        let from = self.peer_subject(pending.run_id, &pending.from);
        self.adopt(node, from, &pending.addr, pending.config_epoch, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Addr {
        Addr::new("127.0.0.1", port).unwrap()
    }

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 20])
    }

    #[test]
    fn answers_expire_and_count_by_epoch() {
        let t0 = Instant::from_millis(1_000);
        let mut sentinels = Sentinels::new(&[addr(1), addr(2)]);
        let answer = DownAnswer { master_down: true, leader: Some(id(9)), leader_epoch: 4 };
        if let Some(s) = sentinels.at_mut(&addr(1)) {
            s.answer = Some((t0, answer));
            s.last_heard_at = Some(t0);
        }
        let soon = t0 + Duration::from_millis(100);
        assert_eq!(sentinels.down_count(soon), 1);
        assert_eq!(sentinels.votes_for(id(9), 4, soon), 1);
        assert_eq!(sentinels.votes_for(id(9), 5, soon), 0);
        assert_eq!(sentinels.rivals(id(1), 4, soon), vec![id(9)]);
        assert_eq!(sentinels.undecided(5, soon), 1, "only the one heard from counts");
        let late = t0 + ANSWER_VALIDITY;
        assert_eq!(sentinels.down_count(late), 0);
        assert_eq!(sentinels.votes_for(id(9), 4, late), 0);
        assert_eq!(sentinels.fresh_count(late), 0);
    }
}
