//! Choosing the replica to promote.
//!
//! Mirrors Sentinel's rules (sentinel-protocol.md 3.10): a candidate must be reachable, recently
//! heard from, not marked never-promote, and not disconnected from its master for much longer
//! than the master has been down. Among candidates the lowest priority wins, then the highest
//! replication offset (least data lost), then the smallest run id. Unlike Sentinel the order never
//! depends on map iteration: a replica with no known run id sorts last, and the address breaks
//! any remaining tie.

use std::cmp::Ordering;
use std::time::Duration;

use crate::engine::addr::Addr;
use crate::engine::time::Instant;

/// What selection needs to know about one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Its address.
    pub addr: &'a Addr,
    /// Subjectively down.
    pub sdown: bool,
    /// Its link is connected.
    pub link_up: bool,
    /// Last acceptable PING reply.
    pub last_ok_reply_at: Instant,
    /// Last INFO reply, if any.
    pub info_at: Option<Instant>,
    /// Effective priority (override or INFO); 0 = never promote.
    pub priority: u32,
    /// Replication offset from INFO.
    pub repl_offset: u64,
    /// Run id from INFO.
    pub run_id: Option<&'a str>,
    /// How long its replication link has been down, from INFO.
    pub link_down_for: Option<Duration>,
}

/// The limits a candidate must be within, derived from the master's timing and state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Now.
    pub now: Instant,
    /// The newest acceptable PING reply must be younger than this.
    pub max_reply_age: Duration,
    /// The newest INFO must be younger than this.
    pub max_info_age: Duration,
    /// The replication link must not have been down longer than this.
    pub max_link_down: Duration,
    /// The offset must be at least this (the master's last known offset less the master's
    /// `max_lag_on_failover_bytes`), if a limit is set.
    pub min_offset: Option<u64>,
}

impl Limits {
    /// Sentinel's limits: a PING reply within `max_reply_age` (Sentinel's 5 ping periods, see
    /// [`crate::engine::timing::MasterTiming::max_reply_age`]); INFO within 5 ping periods when
    /// the master is down (so the offset is current) else 3 INFO periods; the replica's link
    /// down no longer than the master has been down plus 10 × `down_after`.
    #[must_use]
    pub fn new(
        now: Instant,
        max_reply_age: Duration,
        ping_period: Duration,
        info_period: Duration,
        down_after: Duration,
        master_down_for: Option<Duration>,
    ) -> Self {
        let max_info_age =
            if master_down_for.is_some() { ping_period * 5 } else { info_period * 3 };
        Self {
            now,
            max_reply_age,
            max_info_age: max_info_age.max(ping_period * 5),
            max_link_down: master_down_for.unwrap_or_default() + down_after * 10,
            min_offset: None,
        }
    }
}

/// Why an instance cannot be promoted now: the first of [`eligibility`]'s rules it fails, or
/// why it is not a candidate at all. The one rule behind the failover's choice, `/is-replica`,
/// the metrics and `why`.
#[derive(Clone, Copy, Debug, Eq, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ineligible {
    /// It is the current master.
    CurrentMaster,
    /// No INFO from it yet, or it reports `role:master` without holding the master's data.
    NotAReplica,
    /// Subjectively down.
    Sdown,
    /// This node's link to it is not connected.
    LinkDown,
    /// `replica-priority 0`: never promote.
    PriorityZero,
    /// No acceptable PING reply recently enough.
    NoRecentReply,
    /// No INFO recently enough.
    StaleInfo,
    /// Its replication link has been down too long: its data is too old.
    ReplicationLinkDown,
    /// Further behind the master than `max_lag_on_failover_bytes`.
    TooFarBehind,
}

impl Ineligible {
    /// The reason's name, as the HTTP API and metrics show it (`priority_zero`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CurrentMaster => "current_master",
            Self::NotAReplica => "not_a_replica",
            Self::Sdown => "sdown",
            Self::LinkDown => "link_down",
            Self::PriorityZero => "priority_zero",
            Self::NoRecentReply => "no_recent_reply",
            Self::StaleInfo => "stale_info",
            Self::ReplicationLinkDown => "replication_link_down",
            Self::TooFarBehind => "too_far_behind",
        }
    }
}

/// Whether `c` may be promoted at all: `Ok`, or the first rule it fails.
///
/// # Errors
/// The [`Ineligible`] reason.
pub fn eligibility(c: &Candidate<'_>, limits: &Limits) -> Result<(), Ineligible> {
    let age = |at: Instant| limits.now.saturating_since(at);
    if c.sdown {
        Err(Ineligible::Sdown)
    } else if !c.link_up {
        Err(Ineligible::LinkDown)
    } else if c.priority == 0 {
        Err(Ineligible::PriorityZero)
    } else if age(c.last_ok_reply_at) > limits.max_reply_age {
        Err(Ineligible::NoRecentReply)
    } else if c.info_at.is_none_or(|at| age(at) > limits.max_info_age) {
        Err(Ineligible::StaleInfo)
    } else if c.link_down_for.is_some_and(|d| d > limits.max_link_down) {
        Err(Ineligible::ReplicationLinkDown)
    } else if limits.min_offset.is_some_and(|min| c.repl_offset < min) {
        Err(Ineligible::TooFarBehind)
    } else {
        Ok(())
    }
}

/// Whether `c` may be promoted at all (see [`eligibility`]).
#[must_use]
pub fn is_eligible(c: &Candidate<'_>, limits: &Limits) -> bool {
    eligibility(c, limits).is_ok()
}

/// The promotion order: better candidates sort first.
#[must_use]
pub fn compare(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    a.priority
        .cmp(&b.priority)
        .then(b.repl_offset.cmp(&a.repl_offset))
        .then_with(|| match (a.run_id, b.run_id) {
            (Some(x), Some(y)) => x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.addr.cmp(b.addr))
}

/// The best eligible candidate, if any.
#[must_use]
pub fn select<'a>(candidates: &[Candidate<'a>], limits: &Limits) -> Option<&'a Addr> {
    candidates
        .iter()
        .filter(|c| is_eligible(c, limits))
        .min_by(|a, b| compare(a, b))
        .map(|c| c.addr)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn addr(port: u16) -> Addr {
        Addr::new("127.0.0.1", port).unwrap()
    }

    fn limits() -> Limits {
        let ms = Duration::from_millis;
        Limits::new(
            Instant::from_millis(10_000),
            ms(500),
            ms(100),
            ms(10_000),
            ms(1000),
            Some(ms(1000)),
        )
    }

    fn healthy(addr: &Addr) -> Candidate<'_> {
        Candidate {
            addr,
            sdown: false,
            link_up: true,
            last_ok_reply_at: Instant::from_millis(9_950),
            info_at: Some(Instant::from_millis(9_900)),
            priority: 100,
            repl_offset: 1000,
            run_id: Some("bbbb"),
            link_down_for: Some(Duration::from_secs(1)),
        }
    }

    #[test]
    fn order_is_priority_then_offset_then_run_id() {
        let (a, b, c, d) = (addr(1), addr(2), addr(3), addr(4));
        let mut low_priority = healthy(&a);
        low_priority.priority = 50;
        low_priority.repl_offset = 10;
        let mut high_offset = healthy(&b);
        high_offset.repl_offset = 5000;
        let mut small_run_id = healthy(&c);
        small_run_id.run_id = Some("AAAA");
        let plain = healthy(&d);
        let all = [plain.clone(), small_run_id.clone(), high_offset.clone(), low_priority];
        assert_eq!(select(&all, &limits()), Some(&a));
        assert_eq!(select(&all[..3], &limits()), Some(&b));
        assert_eq!(select(&[plain, small_run_id], &limits()), Some(&c));
    }

    #[test]
    fn excludes_down_disconnected_stale_and_priority_zero() {
        let a = addr(1);
        let l = limits();
        let ok = healthy(&a);
        assert!(is_eligible(&ok, &l));
        for (bad, why) in [
            (Candidate { sdown: true, ..ok.clone() }, Ineligible::Sdown),
            (Candidate { link_up: false, ..ok.clone() }, Ineligible::LinkDown),
            (Candidate { priority: 0, ..ok.clone() }, Ineligible::PriorityZero),
            (
                Candidate { last_ok_reply_at: Instant::from_millis(9_000), ..ok.clone() },
                Ineligible::NoRecentReply,
            ),
            (Candidate { info_at: None, ..ok.clone() }, Ineligible::StaleInfo),
            (
                Candidate { info_at: Some(Instant::from_millis(9_000)), ..ok.clone() },
                Ineligible::StaleInfo,
            ),
            (
                Candidate { link_down_for: Some(Duration::from_secs(12)), ..ok.clone() },
                Ineligible::ReplicationLinkDown,
            ),
            (Candidate { repl_offset: 10, ..ok.clone() }, Ineligible::TooFarBehind),
        ] {
            let l = Limits { min_offset: Some(500), ..l };
            assert_eq!(eligibility(&bad, &l), Err(why), "{bad:?}");
            assert_eq!(select(&[bad], &l), None);
        }
        // The first rule that fails is the reason given.
        let both = Candidate { sdown: true, priority: 0, ..ok };
        assert_eq!(eligibility(&both, &l), Err(Ineligible::Sdown));
    }

    #[test]
    fn unknown_run_id_sorts_last() {
        let (a, b) = (addr(1), addr(2));
        let known = healthy(&a);
        let unknown = Candidate { run_id: None, ..healthy(&b) };
        assert_eq!(select(&[unknown, known], &limits()), Some(&a));
    }

    proptest! {
        #[test]
        fn selection_is_the_minimum_and_ignores_input_order(
            specs in prop::collection::vec(
                (0u32..3, 0u64..4, prop::option::of(0u8..3), any::<bool>(), any::<bool>()),
                1..8,
            ),
            rotate in 0usize..8,
        ) {
            let addrs: Vec<Addr> = (0..specs.len()).map(|i| addr(u16::try_from(i).unwrap() + 1)).collect();
            let run_ids = ["a", "b", "c"];
            let candidates: Vec<Candidate<'_>> = specs
                .iter()
                .zip(&addrs)
                .map(|(&(priority, offset, run, sdown, link_up), addr)| Candidate {
                    priority,
                    repl_offset: offset,
                    run_id: run.map(|r| run_ids[usize::from(r)]),
                    sdown,
                    link_up,
                    ..healthy(addr)
                })
                .collect();
            let chosen = select(&candidates, &limits());
            let mut rotated = candidates.clone();
            rotated.rotate_left(rotate % candidates.len());
            prop_assert_eq!(chosen, select(&rotated, &limits()));
            match chosen {
                None => prop_assert!(candidates.iter().all(|c| !is_eligible(c, &limits()))),
                Some(best) => {
                    let best = candidates.iter().find(|c| c.addr == best).unwrap();
                    prop_assert!(is_eligible(best, &limits()));
                    for c in candidates.iter().filter(|c| is_eligible(c, &limits())) {
                        prop_assert_ne!(compare(c, best), Ordering::Less);
                    }
                }
            }
        }
    }
}
