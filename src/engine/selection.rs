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
    /// Sentinel's limits: a PING reply within 5 ping periods; INFO within 5 ping periods when
    /// the master is down (so the offset is current) else 3 INFO periods; the replica's link
    /// down no longer than the master has been down plus 10 × `down_after`.
    #[must_use]
    pub fn new(
        now: Instant,
        ping_period: Duration,
        info_period: Duration,
        down_after: Duration,
        master_down_for: Option<Duration>,
    ) -> Self {
        let max_info_age =
            if master_down_for.is_some() { ping_period * 5 } else { info_period * 3 };
        Self {
            now,
            max_reply_age: ping_period * 5,
            max_info_age: max_info_age.max(ping_period * 5),
            max_link_down: master_down_for.unwrap_or_default() + down_after * 10,
            min_offset: None,
        }
    }
}

/// Whether `c` may be promoted at all.
#[must_use]
pub fn is_eligible(c: &Candidate<'_>, limits: &Limits) -> bool {
    !c.sdown
        && c.link_up
        && c.priority != 0
        && limits.now.saturating_since(c.last_ok_reply_at) <= limits.max_reply_age
        && c.info_at.is_some_and(|at| limits.now.saturating_since(at) <= limits.max_info_age)
        && c.link_down_for.is_none_or(|d| d <= limits.max_link_down)
        && limits.min_offset.is_none_or(|min| c.repl_offset >= min)
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
        Limits::new(Instant::from_millis(10_000), ms(100), ms(10_000), ms(1000), Some(ms(1000)))
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
        for bad in [
            Candidate { sdown: true, ..ok.clone() },
            Candidate { link_up: false, ..ok.clone() },
            Candidate { priority: 0, ..ok.clone() },
            Candidate { last_ok_reply_at: Instant::from_millis(9_000), ..ok.clone() },
            Candidate { info_at: None, ..ok.clone() },
            Candidate { info_at: Some(Instant::from_millis(9_000)), ..ok.clone() },
            Candidate { link_down_for: Some(Duration::from_secs(12)), ..ok.clone() },
        ] {
            assert!(!is_eligible(&bad, &l), "{bad:?}");
            assert_eq!(select(&[bad], &l), None);
        }
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
