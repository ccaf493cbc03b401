//! Everything a run is made of, drawn from its seed: the cluster's shape, the engines' settings,
//! the network's character and which faults are enabled at which rates (swarm testing, after
//! TigerBeetle's `options_swarm`: each run switches a random subset of faults on, so that rare
//! combinations are not drowned out by the common ones).
//!
//! This module owns the *choices*; it builds nothing. Scenario tests start from
//! [`Options::quiet`] and set fields by hand.

use std::time::Duration;

use picket::engine::Fencing;
use picket::engine::settings::DEFAULT_DOWN_AFTER_REFUSED;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Names of the first master groups, in order (`session` is always there); further groups of a
/// many-master deployment are `m0003`, `m0004`, ...
pub const GROUP_NAMES: [&str; 3] = ["session", "cache", "realtime"];

/// Most groups a run draws: a host that carried fifty masters dying at once is the case to cover.
pub const MAX_GROUPS: usize = 60;

/// The name of group `index`.
#[must_use]
pub fn group_name(index: usize) -> String {
    GROUP_NAMES.get(index).map_or_else(|| format!("m{index:04}"), |name| (*name).to_owned())
}

/// The shape of one master group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOptions {
    /// Group name.
    pub name: String,
    /// Replicas behind the master (1–3).
    pub replicas: usize,
    /// `replica-priority` of each replica, in order (0 = never promote).
    pub priorities: Vec<u32>,
    /// Quorum (1..=nodes).
    pub quorum: u32,
    /// `down_after`.
    pub down_after: Duration,
    /// `down_after_refused` (the crash rule); `None` = off.
    pub down_after_refused: Option<Duration>,
    /// `failover_timeout`.
    pub failover_timeout: Duration,
    /// `parallel_syncs`.
    pub parallel_syncs: u32,
    /// Bytes the master's write load adds to its replication offset per millisecond.
    pub write_rate: u64,
    /// How its masters are fenced.
    pub fencing: Fencing,
}

/// How the simulated network behaves while faults are on.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkOptions {
    /// Smallest one-way delay, in microseconds.
    pub delay_min_us: u64,
    /// Mean of the exponential part of the delay, in microseconds.
    pub delay_mean_us: u64,
    /// Probability that a peer message is lost.
    pub peer_loss: f64,
    /// Probability that a peer message is delivered twice.
    pub peer_duplication: f64,
    /// Whether peer messages on one path may overtake each other (else FIFO per path).
    pub peer_reordering: bool,
}

/// Which faults a run injects, as mean intervals between injections (`None` = never).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultOptions {
    /// A node crashes and later restarts.
    pub node_crash: Option<Duration>,
    /// Probability that a crashed node's disk is lost.
    pub disk_loss: f64,
    /// Probability that a crash interrupts the node halfway through performing a batch.
    pub crash_mid_batch: f64,
    /// A node's process stalls for 2–5 s.
    pub node_stall: Option<Duration>,
    /// A node's clock jumps.
    pub clock_jump: Option<Duration>,
    /// A Redis instance (usually the master) is killed and later restarted.
    pub redis_kill: Option<Duration>,
    /// A Redis instance (usually the master) hangs (SIGSTOP) and later resumes.
    pub redis_pause: Option<Duration>,
    /// A Redis instance flaps: repeated short pauses or kills.
    pub redis_flap: Option<Duration>,
    /// The master is cut off from everything.
    pub partition_master: Option<Duration>,
    /// One node is cut off (both ways, one way, or from its peers only).
    pub partition_node: Option<Duration>,
    /// A minority of nodes is cut off from the rest.
    pub partition_minority: Option<Duration>,
    /// A node is cut off from one Redis instance (its link stalls or is reset).
    pub partition_link: Option<Duration>,
    /// An operator asks a node for a manual failover.
    pub manual_failover: Option<Duration>,
    /// Probability that a `REPLICAOF` is delayed.
    pub reconf_delay: f64,
    /// Probability that a `REPLICAOF` is refused with an error.
    pub reconf_refuse: f64,
    /// Probability that a `REPLICAOF` is acknowledged but silently ignored.
    pub reconf_ignore: f64,
    /// Probability that a restarted Redis lost its data (offset 0, new history).
    pub restart_empty: f64,
    /// Probability that a restarted Redis lost its `replicaof` configuration (comes back master).
    pub restart_as_master: f64,
    /// Every instance reporting `role:master` dies in the same instant (the host that carried
    /// them died), and they restart later.
    pub mass_kill: Option<Duration>,
    /// A node's process stalls for 10-500 ms, as on a loaded CPU: too short for TILT, long
    /// enough for messages and replies to pile up and cross.
    pub short_stall: Option<Duration>,
    /// Probability that a `REPLICAOF` takes effect but its reply is lost (the connection resets
    /// right after it ran).
    pub reconf_reply_lost: f64,
}

/// Everything about one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The seed everything was drawn from (also seeds the run's own RNG).
    pub seed: u64,
    /// Picket nodes (1, 2, 3 or 5).
    pub nodes: usize,
    /// The master groups.
    pub groups: Vec<GroupOptions>,
    /// Node heartbeat.
    pub heartbeat: Duration,
    /// How long peers' reports stay fresh.
    pub peer_timeout: Duration,
    /// The gap that triggers TILT.
    pub tilt_trigger: Duration,
    /// How long TILT lasts.
    pub tilt_period: Duration,
    /// Each node's clock offset from the simulation's clock, in milliseconds.
    pub clock_offsets_ms: Vec<u64>,
    /// Each node's clock drift, in parts per million.
    pub clock_drift_ppm: Vec<i64>,
    /// The network while faults are on.
    pub network: NetworkOptions,
    /// The faults.
    pub faults: FaultOptions,
    /// Length of the safety phase (faults on).
    pub safety_phase: Duration,
}

impl Options {
    /// A fault-free cluster of `nodes` nodes and one `session` group with two replicas, quorum
    /// 2, `down_after` 1 s and `failover_timeout` 5 s: the base for scenario tests.
    #[must_use]
    pub fn quiet(seed: u64, nodes: usize) -> Self {
        let group = GroupOptions {
            name: GROUP_NAMES[0].to_owned(),
            replicas: 2,
            priorities: vec![100, 100],
            quorum: 2,
            down_after: Duration::from_millis(1000),
            down_after_refused: Some(DEFAULT_DOWN_AFTER_REFUSED),
            failover_timeout: Duration::from_millis(5000),
            parallel_syncs: 1,
            write_rate: 10,
            fencing: Fencing::default(),
        };
        Self {
            seed,
            nodes,
            groups: vec![group],
            heartbeat: Duration::from_millis(100),
            peer_timeout: Duration::from_millis(1500),
            tilt_trigger: Duration::from_millis(2000),
            tilt_period: Duration::from_millis(30_000),
            clock_offsets_ms: vec![0; nodes],
            clock_drift_ppm: vec![0; nodes],
            network: NetworkOptions {
                delay_min_us: 200,
                delay_mean_us: 500,
                peer_loss: 0.0,
                peer_duplication: 0.0,
                peer_reordering: false,
            },
            faults: FaultOptions::default(),
            safety_phase: Duration::from_secs(60),
        }
    }

    /// Draws a whole run from `seed`.
    #[must_use]
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0005_eed0_f0b7_1045);
        let nodes = match rng.random_range(0..20) {
            0 => 1,
            1 | 2 => 2,
            3..=7 => 5,
            _ => 3,
        };
        // Mostly a team's few masters; sometimes a host carrying many of them.
        let group_count = if rng.random_bool(0.05) {
            rng.random_range(4..=MAX_GROUPS)
        } else {
            rng.random_range(1..=3)
        };
        let mut groups: Vec<GroupOptions> =
            (0..group_count).map(|i| sample_group(&mut rng, i, nodes)).collect();
        sample_crash_rules(seed, &mut groups);
        sample_long_down_afters(seed, &mut groups);
        let tilt_period = match rng.random_range(0..4) {
            0 => Duration::from_millis(5000),
            1 => Duration::from_millis(10_000),
            _ => Duration::from_millis(30_000),
        };
        let clock_offsets_ms = (0..nodes)
            .map(|_| if rng.random_bool(0.5) { rng.random_range(0..1_000_000) } else { 0 })
            .collect();
        let clock_drift_ppm = (0..nodes)
            .map(|_| if rng.random_bool(0.3) { rng.random_range(-500..=500) } else { 0 })
            .collect();
        let slow = rng.random_bool(0.2);
        let network = NetworkOptions {
            delay_min_us: rng.random_range(50..2000),
            delay_mean_us: if slow {
                rng.random_range(5000..60_000)
            } else {
                rng.random_range(100..3000)
            },
            peer_loss: if rng.random_bool(0.4) { rng.random_range(0.0..0.2) } else { 0.0 },
            peer_duplication: if rng.random_bool(0.3) { rng.random_range(0.0..0.1) } else { 0.0 },
            peer_reordering: rng.random_bool(0.5),
        };
        let faults = sample_faults(&mut rng);
        let heartbeat = Duration::from_millis(if rng.random_bool(0.2) { 250 } else { 100 });
        Self {
            seed,
            nodes,
            groups,
            heartbeat,
            peer_timeout: heartbeat * 15,
            tilt_trigger: Duration::from_millis(2000),
            tilt_period,
            clock_offsets_ms,
            clock_drift_ppm,
            network,
            faults,
            safety_phase: Duration::from_millis(rng.random_range(60_000..=120_000)),
        }
    }

    /// The longest `failover_timeout` of any group.
    #[must_use]
    pub fn max_failover_timeout(&self) -> Duration {
        self.groups.iter().map(|g| g.failover_timeout).max().unwrap_or_default()
    }

    /// The longest `down_after` of any group.
    #[must_use]
    pub fn max_down_after(&self) -> Duration {
        self.groups.iter().map(|g| g.down_after).max().unwrap_or_default()
    }

    /// How long the cluster may take to converge once everything is healed. Derived from the
    /// engine's timers, worst case first:
    ///
    /// * a node that stalled until the heal is in TILT for `tilt_period` and neither acts nor
    ///   votes meanwhile (two such nodes of three block every election);
    /// * a node that voted just before the heal starts no attempt of its own, and corrects no
    ///   instance, for one `failover_timeout`; an aborted attempt backs off for at most one more;
    /// * a failover then needs `down_after` to see the master down, an election (at most
    ///   `min(10 s, failover_timeout)`), and at most one `failover_timeout` to repoint replicas;
    /// * a returning instance with the wrong role is corrected after a grace of at most 8 s;
    ///
    /// so `tilt_period + 3 × failover_timeout + 10 × down_after + 10 s` leaves a margin.
    #[must_use]
    pub fn liveness_budget(&self) -> Duration {
        self.tilt_period
            + self.max_failover_timeout() * 3
            + self.max_down_after() * 10
            + Duration::from_secs(10)
    }

    /// The liveness guarantee the README states, for this run's settings: once faults stop, a
    /// group whose master is down and that has a replica every node reaches (or a replica an
    /// aborted attempt promoted) has a master that every node names within
    ///
    /// `down_after + calm_ping_period + failover_timeout + 2 × election_timeout + info_grace + 1 s`
    ///
    /// where `ping_period` is `down_after / 10` clamped to 10 ms-1 s, `calm_ping_period`
    /// `down_after` clamped to 10 ms-1 s or `down_after / 10` if longer, `election_timeout` is `down_after` clamped to 1-10 s (at most
    /// `failover_timeout`) and `info_grace` is five ping periods, at least 500 ms (see the
    /// engine's `timing`). Detection takes at most `down_after` plus the calm period (silence
    /// counts from the first PING left unanswered, and a settled instance is pinged at the calm
    /// period). A node that voted for a leader, or whose own attempt failed,
    /// leaves the next attempt to others for at most one `failover_timeout`. One election may
    /// fail (split, or refused by voters still backing an earlier leader that just gave up) and be
    /// retried after at most `2 × election_timeout`; a split is retried at once by the smallest
    /// candidate id. An elected leader may wait `info_grace` for fresh INFO before it selects.
    /// The promotion, confirmed by INFO every 10 ms, and its announcement take milliseconds; the
    /// second is margin for the network.
    #[must_use]
    pub fn failover_bound(&self) -> Duration {
        self.groups
            .iter()
            .map(|g| {
                let election = g.down_after.clamp(Duration::from_secs(1), Duration::from_secs(10));
                let ping =
                    (g.down_after / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
                let calm = g
                    .down_after
                    .clamp(Duration::from_millis(10), Duration::from_secs(1))
                    .max(g.down_after / 10);
                let info_grace = (ping * 5).max(Duration::from_millis(500)).min(g.failover_timeout);
                g.down_after
                    + calm
                    + g.failover_timeout
                    + election.min(g.failover_timeout) * 2
                    + info_grace
                    + Duration::from_secs(1)
            })
            .max()
            .unwrap_or_default()
    }
}

/// Draws each group's crash rule from a generator of its own, so that every other choice a seed
/// made before the rule existed stays as it was: mostly the default, sometimes off, sometimes a
/// threshold from 20 ms (below one reconnect period) to 2 s (above some `down_after`).
fn sample_crash_rules(seed: u64, groups: &mut [GroupOptions]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0c4a_54ed_0000_0017);
    for group in groups {
        group.down_after_refused = match rng.random_range(0..10) {
            0 | 1 => None,
            2 | 3 => Some(Duration::from_millis(rng.random_range(20..=2000))),
            _ => Some(DEFAULT_DOWN_AFTER_REFUSED),
        };
    }
}

/// Gives a few groups a `down_after` beyond 10 s, where the engine's calm PING period is a
/// tenth of it rather than Sentinel's 1 s, from a generator of its own (as the crash rules).
/// 12 s keeps such seeds short: the liveness budget grows with ten times the longest
/// `down_after`.
fn sample_long_down_afters(seed: u64, groups: &mut [GroupOptions]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x10c4_1a7e_0000_0012);
    for group in groups {
        if rng.random_range(0..25) == 0 {
            group.down_after = Duration::from_millis(12_000);
        }
    }
}

fn sample_group(rng: &mut ChaCha8Rng, index: usize, nodes: usize) -> GroupOptions {
    let replicas = rng.random_range(1..=3);
    let name = group_name(index);
    let mut priorities: Vec<u32> = (0..replicas)
        .map(
            |_| if rng.random_bool(0.3) { [10, 50, 100, 150][rng.random_range(0..4)] } else { 100 },
        )
        .collect();
    // Sometimes one replica must never be promoted; keep at least one that may be.
    if replicas > 1 && rng.random_bool(0.3) {
        let k = rng.random_range(0..replicas);
        priorities[k] = 0;
    }
    let majority = nodes / 2 + 1;
    let quorum = match rng.random_range(0..10) {
        0 => 1,
        1 => u32::try_from(nodes).unwrap_or(3),
        2 => u32::try_from(rng.random_range(1..=nodes)).unwrap_or(2),
        _ => u32::try_from(majority).unwrap_or(2),
    };
    let down_after = Duration::from_millis(match rng.random_range(0..10) {
        0 => 500,
        1 => 2000,
        2 => 3000,
        _ => 1000,
    });
    GroupOptions {
        name,
        replicas,
        priorities,
        quorum,
        down_after,
        down_after_refused: Some(DEFAULT_DOWN_AFTER_REFUSED),
        failover_timeout: Duration::from_millis(rng.random_range(2000..=15_000)),
        parallel_syncs: rng.random_range(1..=2),
        write_rate: rng.random_range(1..100),
        fencing: match rng.random_range(0..4) {
            0 => Fencing::Off,
            1 => Fencing::Strict,
            _ => Fencing::Bounded,
        },
    }
}

/// A mean interval between injections, or `None` for a disabled fault (half of them are).
fn maybe_rate(rng: &mut ChaCha8Rng, min_s: u64, max_s: u64) -> Option<Duration> {
    rng.random_bool(0.5)
        .then(|| Duration::from_millis(rng.random_range(min_s * 1000..=max_s * 1000)))
}

fn sample_faults(rng: &mut ChaCha8Rng) -> FaultOptions {
    let maybe_p = |rng: &mut ChaCha8Rng, max: f64| {
        if rng.random_bool(0.4) { rng.random_range(0.0..max) } else { 0.0 }
    };
    FaultOptions {
        node_crash: maybe_rate(rng, 10, 60),
        disk_loss: maybe_p(rng, 0.5),
        crash_mid_batch: maybe_p(rng, 0.5),
        node_stall: maybe_rate(rng, 15, 90),
        clock_jump: maybe_rate(rng, 20, 90),
        redis_kill: maybe_rate(rng, 5, 40),
        redis_pause: maybe_rate(rng, 5, 40),
        redis_flap: maybe_rate(rng, 20, 90),
        partition_master: maybe_rate(rng, 10, 60),
        partition_node: maybe_rate(rng, 10, 60),
        partition_minority: maybe_rate(rng, 15, 90),
        partition_link: maybe_rate(rng, 10, 60),
        manual_failover: maybe_rate(rng, 10, 60),
        reconf_delay: maybe_p(rng, 0.5),
        reconf_refuse: maybe_p(rng, 0.3),
        reconf_ignore: maybe_p(rng, 0.2),
        restart_empty: maybe_p(rng, 0.5),
        restart_as_master: maybe_p(rng, 0.5),
        mass_kill: maybe_rate(rng, 20, 90),
        short_stall: maybe_rate(rng, 1, 15),
        reconf_reply_lost: maybe_p(rng, 0.3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_options() {
        assert_eq!(Options::from_seed(7), Options::from_seed(7));
        assert_ne!(Options::from_seed(7), Options::from_seed(8));
    }

    #[test]
    fn quorums_are_valid_and_a_replica_may_always_be_promoted() {
        for seed in 0..500 {
            let o = Options::from_seed(seed);
            for g in &o.groups {
                assert!(g.quorum >= 1 && g.quorum as usize <= o.nodes, "{g:?}");
                assert!(g.priorities.iter().any(|p| *p > 0), "{g:?}");
            }
        }
    }
}
