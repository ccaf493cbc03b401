//! Voting rules: who may lead a failover, and how many votes that takes.
//!
//! Sentinel's rules (sentinel-protocol.md 3.7-3.8) with three changes that close known holes:
//!
//! * **Votes are per master and per epoch.** A voter grants at most one vote per (master,
//!   epoch), first come first served, and never in an epoch at or below one it already voted in
//!   for that master. Sentinel additionally compares with the *global* current epoch, so
//!   concurrent failovers of different masters refuse each other's votes (redis/redis#12865).
//! * **Voters must agree the master is down.** A voter grants an automatic failover only if it
//!   sees the master subjectively down itself, is not in TILT, and the candidate knows the latest
//!   configuration. A node on the wrong side of a partition cannot recruit voters that still
//!   reach the master. A manual failover skips the "down" check, but still needs the votes.
//! * **A node that lost its state abstains** until it has learned a safe vote floor (see
//!   [`crate::engine::DurableState::vote_floor`]).
//! * **A leader that may be acting is not replaced.** A voter refuses a newer epoch while a
//!   failover of that master in an older epoch may be under way: one it leads past its election,
//!   or one led by a node it voted for that is still collecting votes or still reports it. Raft
//!   can let a newer term supersede a leader because the old leader's entries need a majority to
//!   take effect; a promotion takes effect on its own, so two leaders of consecutive epochs
//!   would promote two replicas and repoint each other's. A stuck or silent leader is replaced
//!   once it gives up (every failover phase is bounded by `failover_timeout`) or goes stale.

use crate::engine::ids::NodeId;

/// Votes a leader needs: a majority of all voters, and at least the master's quorum when the
/// operator set it higher than a majority.
#[must_use]
pub fn votes_needed(voters: usize, quorum: u32) -> usize {
    let majority = voters / 2 + 1;
    majority.max(usize::try_from(quorum).unwrap_or(usize::MAX))
}

/// Whether a failover of one master can be authorised now, and if not why: the one rule behind
/// `SENTINEL FAILOVER`'s `NOQUORUM`, `SENTINEL CKQUORUM`, the HTTP API and the metrics, so that
/// no reader can say "OK" while the engine would refuse.
#[derive(Clone, Copy, Debug, Eq, PartialEq, serde::Serialize)]
pub struct Authorisation {
    /// Voters this node can count on now: itself and the peers heard within the contact window.
    pub usable_voters: usize,
    /// The master's quorum (voters that must agree it is down).
    pub quorum: usize,
    /// Votes a leader needs ([`votes_needed`]).
    pub votes_needed: usize,
    /// Why it cannot be authorised now; `None` if it can.
    pub blocked: Option<Unauthorised>,
}

/// Why a failover cannot be authorised now, the first reason that applies.
#[derive(Clone, Copy, Debug, Eq, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unauthorised {
    /// This node lost its state and has not learned its vote floor: it could not vote for itself.
    AwaitingVoteFloor,
    /// Fewer usable voters than the master's quorum: they cannot agree it is down.
    NoQuorum,
    /// Fewer usable voters than the votes a leader needs (a majority, or the quorum if higher).
    NoMajority,
}

impl Authorisation {
    /// Computes the authorisation from the voters (this node and its peers), the master's
    /// quorum, the peers heard within the contact window and whether the vote floor is known.
    #[must_use]
    pub fn new(voters: usize, quorum: u32, peers_heard: usize, awaiting_vote_floor: bool) -> Self {
        let usable_voters = peers_heard + 1;
        let needed = votes_needed(voters, quorum);
        let quorum = usize::try_from(quorum).unwrap_or(usize::MAX);
        let blocked = if awaiting_vote_floor {
            Some(Unauthorised::AwaitingVoteFloor)
        } else if usable_voters < quorum {
            Some(Unauthorised::NoQuorum)
        } else if usable_voters < needed {
            Some(Unauthorised::NoMajority)
        } else {
            None
        };
        Self { usable_voters, quorum, votes_needed: needed, blocked }
    }

    /// Whether a failover can be authorised now.
    #[must_use]
    pub const fn granted(&self) -> bool {
        self.blocked.is_none()
    }
}

/// `SENTINEL CKQUORUM`'s answer, Sentinel's texts: `OK 3 usable Sentinels. ...` or
/// `NOQUORUM 1 usable Sentinels. ...`.
impl std::fmt::Display for Authorisation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const QUORUM: &str =
            "Not enough available Sentinels to reach the specified quorum for this master";
        const MAJORITY: &str =
            "Not enough available Sentinels to reach the majority and authorize a failover";
        let usable = self.usable_voters;
        match self.blocked {
            None => write!(
                f,
                "OK {usable} usable Sentinels. Quorum and failover authorization can be reached"
            ),
            Some(Unauthorised::NoQuorum) => {
                write!(f, "NOQUORUM {usable} usable Sentinels. {QUORUM}. {MAJORITY}")
            }
            Some(Unauthorised::NoMajority) => {
                write!(f, "NOQUORUM {usable} usable Sentinels. {MAJORITY}")
            }
            Some(Unauthorised::AwaitingVoteFloor) => write!(
                f,
                "NOQUORUM {usable} usable Sentinels. This node lost its state and has not yet \
                 learned which epochs it may vote in"
            ),
        }
    }
}

/// A voter's last vote for one master.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct Ballot {
    /// The latest epoch in which it voted (0 = never).
    pub epoch: u64,
    /// Whom it voted for in that epoch.
    pub candidate: Option<NodeId>,
}

/// A vote request, as the voter sees it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Request {
    /// The candidate.
    pub candidate: NodeId,
    /// The failover epoch it asks a vote for.
    pub epoch: u64,
    /// The candidate's config epoch for the master.
    pub config_epoch: u64,
    /// Operator-requested failover.
    pub manual: bool,
}

/// What the voter knows that bears on the request.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct VoterFacts {
    /// The voter's config epoch for the master.
    pub config_epoch: u64,
    /// The voter sees the master subjectively down.
    pub sees_master_down: bool,
    /// The voter is in TILT: its observations are not to be trusted.
    pub tilt: bool,
    /// The voter still has to learn its vote floor.
    pub awaiting_vote_floor: bool,
    /// A failover of the master in an older epoch may be under way (see the module docs).
    pub leader_active: bool,
    /// Automatic failovers of the master are paused (maintenance mode).
    pub paused: bool,
    /// Votes are only granted above this epoch.
    pub vote_floor: u64,
}

/// The voter's decision.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Decision {
    /// Vote for the candidate (record the ballot, persist it, then answer).
    Grant,
    /// The voter already voted for this candidate in this epoch: answer the same again.
    Repeat,
    /// Do not vote; answer with whatever the ballot already says.
    Refuse(Refusal),
}

/// Why a vote was refused (for logs and tests).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Refusal {
    /// The voter already voted in this epoch or a later one.
    AlreadyVoted,
    /// The candidate has an older configuration of the master than the voter.
    StaleConfig,
    /// The voter does not see the master down (automatic failovers only).
    MasterNotDown,
    /// The voter is in TILT.
    Tilt,
    /// The voter has not learned its vote floor, or the epoch is not above it.
    BelowVoteFloor,
    /// A failover in an older epoch may still be under way.
    LeaderActive,
    /// Automatic failovers of the master are paused (maintenance mode).
    Paused,
}

/// Decides a vote request.
#[must_use]
pub fn decide(ballot: &Ballot, request: &Request, facts: &VoterFacts) -> Decision {
    if ballot.epoch == request.epoch && ballot.candidate == Some(request.candidate) {
        return Decision::Repeat;
    }
    let refusal = if request.epoch <= ballot.epoch {
        Refusal::AlreadyVoted
    } else if facts.awaiting_vote_floor || request.epoch <= facts.vote_floor {
        Refusal::BelowVoteFloor
    } else if facts.tilt {
        Refusal::Tilt
    } else if facts.leader_active {
        Refusal::LeaderActive
    } else if request.config_epoch < facts.config_epoch {
        Refusal::StaleConfig
    } else if !request.manual && !facts.sees_master_down {
        Refusal::MasterNotDown
    } else if !request.manual && facts.paused {
        Refusal::Paused
    } else {
        return Decision::Grant;
    };
    Decision::Refuse(refusal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 20])
    }

    fn facts() -> VoterFacts {
        VoterFacts {
            config_epoch: 3,
            sees_master_down: true,
            tilt: false,
            awaiting_vote_floor: false,
            leader_active: false,
            paused: false,
            vote_floor: 0,
        }
    }

    fn request(candidate: u8, epoch: u64) -> Request {
        Request { candidate: id(candidate), epoch, config_epoch: 3, manual: false }
    }

    #[test]
    fn leader_needs_majority_and_quorum() {
        assert_eq!(votes_needed(1, 1), 1);
        assert_eq!(votes_needed(3, 1), 2);
        assert_eq!(votes_needed(3, 2), 2);
        assert_eq!(votes_needed(3, 3), 3);
        assert_eq!(votes_needed(4, 2), 3);
        assert_eq!(votes_needed(5, 2), 3);
        assert_eq!(votes_needed(5, 4), 4);
    }

    #[test]
    fn one_vote_per_epoch_first_come_first_served() {
        let none = Ballot::default();
        assert_eq!(decide(&none, &request(1, 5), &facts()), Decision::Grant);
        let voted = Ballot { epoch: 5, candidate: Some(id(1)) };
        assert_eq!(decide(&voted, &request(1, 5), &facts()), Decision::Repeat);
        assert_eq!(
            decide(&voted, &request(2, 5), &facts()),
            Decision::Refuse(Refusal::AlreadyVoted)
        );
        assert_eq!(
            decide(&voted, &request(2, 4), &facts()),
            Decision::Refuse(Refusal::AlreadyVoted)
        );
        assert_eq!(decide(&voted, &request(2, 6), &facts()), Decision::Grant);
    }

    #[test]
    fn voters_must_see_the_master_down_unless_manual() {
        let up = VoterFacts { sees_master_down: false, ..facts() };
        let none = Ballot::default();
        assert_eq!(decide(&none, &request(1, 1), &up), Decision::Refuse(Refusal::MasterNotDown));
        let manual = Request { manual: true, ..request(1, 1) };
        assert_eq!(decide(&none, &manual, &up), Decision::Grant);
    }

    #[test]
    fn maintenance_refuses_automatic_failovers_only() {
        let paused = VoterFacts { paused: true, ..facts() };
        let none = Ballot::default();
        assert_eq!(decide(&none, &request(1, 4), &paused), Decision::Refuse(Refusal::Paused));
        let manual = Request { manual: true, ..request(1, 4) };
        assert_eq!(decide(&none, &manual, &paused), Decision::Grant);
    }

    #[test]
    fn an_acting_leader_is_not_replaced_by_a_newer_epoch() {
        let voted = Ballot { epoch: 5, candidate: Some(id(1)) };
        let acting = VoterFacts { leader_active: true, ..facts() };
        assert_eq!(
            decide(&voted, &request(2, 9), &acting),
            Decision::Refuse(Refusal::LeaderActive)
        );
        // Its own candidate still hears the same answer again.
        assert_eq!(decide(&voted, &request(1, 5), &acting), Decision::Repeat);
        // Manual failovers wait too: the failover under way will finish or give up.
        let manual = Request { manual: true, ..request(2, 9) };
        assert_eq!(decide(&voted, &manual, &acting), Decision::Refuse(Refusal::LeaderActive));
        assert_eq!(decide(&voted, &request(2, 9), &facts()), Decision::Grant);
    }

    #[test]
    fn stale_candidates_tilted_voters_and_fresh_voters_refuse() {
        let none = Ballot::default();
        let stale = Request { config_epoch: 2, ..request(1, 4) };
        assert_eq!(decide(&none, &stale, &facts()), Decision::Refuse(Refusal::StaleConfig));
        let tilted = VoterFacts { tilt: true, ..facts() };
        assert_eq!(decide(&none, &request(1, 4), &tilted), Decision::Refuse(Refusal::Tilt));
        let fresh = VoterFacts { awaiting_vote_floor: true, ..facts() };
        assert_eq!(
            decide(&none, &request(1, 4), &fresh),
            Decision::Refuse(Refusal::BelowVoteFloor)
        );
        let floored = VoterFacts { vote_floor: 4, ..facts() };
        assert_eq!(
            decide(&none, &request(1, 4), &floored),
            Decision::Refuse(Refusal::BelowVoteFloor)
        );
        assert_eq!(decide(&none, &request(1, 5), &floored), Decision::Grant);
    }
}
