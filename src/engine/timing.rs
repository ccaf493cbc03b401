//! Every period and timeout the engine applies, with the reason for its value.
//!
//! Sentinel's periods are fixed (PING every second, INFO every ten). Picket derives the ones that
//! bound failover speed from each master's `down_after`, so a tight `down_after_ms = 1000`
//! gets detection within a few percent of the configured time, while a default
//! `down_after_ms = 30000` costs a third of Sentinel's PINGs.

use std::time::Duration;

use crate::engine::settings::MasterSettings;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// INFO period for healthy instances (Sentinel's `INFO-PERIOD`).
pub const INFO_PERIOD: Duration = ms(10_000);
/// INFO period for replicas whose own replication link is down (Sentinel's second). Replicas whose
/// master is down or failing over are polled every ping period instead, so that the replica chosen
/// for promotion is chosen on current offsets.
pub const FAST_INFO_PERIOD: Duration = ms(1000);
/// INFO period for the instances a failover is waiting on (the promoted replica and the replicas
/// being repointed). Sentinel waits for its next 1 s INFO; polling confirms a promotion within
/// milliseconds of `REPLICAOF NO ONE` returning.
pub const FAILOVER_POLL_PERIOD: Duration = ms(10);
/// Most requests that may await a reply on one link. PING and INFO are skipped beyond it (as
/// Sentinel does with 100), so a hung instance cannot grow an unbounded queue.
pub const MAX_PENDING_REQUESTS: usize = 100;
/// Prompt `PONG`s in a row (each within a fast ping period of its PING, on the current link,
/// since the instance last changed role or was seen restarting) after which an instance is pinged
/// at the calm period. One prompt reply after a late one may be a gap between two slow commands
/// or two stalls of a fork; five at the fast period span four tenths of `down_after`, so an
/// instance that recovers is watched closely for a while, at the cost of a few PINGs per doubt.
pub const SETTLING_PONGS: u8 = 5;
/// First reconnect delay after a link fails; it doubles up to the ping period.
pub const RECONNECT_MIN: Duration = ms(25);
/// Longest backoff between connection attempts while they are refused and the crash rule is on.
pub const REFUSED_RETRY_MAX: Duration = ms(50);
/// A replica repointed during a failover that shows no progress for this long is treated as
/// done (Sentinel's `SLAVE-RECONF-TIMEOUT`), bounded by the failover timeout.
pub const REPLICA_RECONF_TIMEOUT: Duration = ms(10_000);
/// Strict mode: how long one pause of the promoted replica's writes lasts; the leader renews it
/// at half that while the old master's fence is still open. If the leader dies, writes resume by
/// themselves within it.
pub const STRICT_PAUSE: Duration = ms(5000);
/// Strict mode's hold: how long one pause of the master's writes lasts while another instance
/// may still accept writes. Renewed at half that; once the doubt is gone, writes resume within it.
pub const HOLD_PAUSE: Duration = ms(2000);
/// Strict mode's hold: how long before another instance's acknowledged pause runs out the master
/// is paused, so that its pause is in place first.
pub const HOLD_MARGIN: Duration = ms(1000);
/// After a stall, the longest the node waits for fresh INFO from the instances it is connected
/// to before it acts again (one that does not answer is then judged by its silence).
pub const REREAD_LIMIT: Duration = ms(1000);
/// How long a lazily persisted change (a discovered replica) may wait before it is written.
pub const LAZY_PERSIST_DELAY: Duration = ms(1000);

/// The periods and timeouts that apply to one master group, derived from its settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasterTiming {
    /// The fast PING period: a tenth of `down_after`, between 10 ms and Sentinel's 1 s. It
    /// applies while anything about an instance is uncertain (see
    /// [`crate::engine::group::Group::ping_period`]), so a hang that begins then is detected
    /// within `down_after` plus at most this. It is also the threshold of a late reply.
    pub ping_period: Duration,
    /// The calm PING period, for an instance that has answered promptly and settled while its
    /// group is in no doubt: Sentinel's, `down_after` up to 1 s (at least 10 ms), or a tenth of
    /// `down_after` once that is longer (from 10 s on: 3 s at Sentinel's default of 30 s). A hang
    /// that begins then is detected within `down_after` plus at most this: Sentinel's bound,
    /// `down_after` + min(`down_after`, 1 s), up to 10 s, and within a tenth of `down_after`
    /// beyond. Silence counts from the first PING left unanswered, so a longer period never
    /// makes a block shorter than `down_after` look like a failure; it only delays seeing a
    /// hang. Why the tenth beyond 10 s: with 1,000 masters pinged once a second, the kernel's
    /// work for the round trips alone was a third of Sentinel's whole CPU, so 0.4x Sentinel's at
    /// `down_after = 30000` needs fewer PINGs (see the README's probe suite); and half of
    /// `down_after` was measured at 1.5x Sentinel's CPU with 1,000 masters at `down_after = 1000`
    /// (two PINGs a second per instance against Sentinel's one). Never below the fast period.
    pub calm_ping_period: Duration,
    /// No acceptable reply for this long makes an instance subjectively down.
    pub down_after: Duration,
    /// Refusals of every connection attempt for longer than this make an instance subjectively
    /// down (the crash rule); `None` = off.
    pub down_after_refused: Option<Duration>,
    /// A link whose oldest PING is unanswered for this long is closed and reopened, so a
    /// connection that silently died (a peer host rebooted behind a partition) cannot hide a
    /// recovered instance.
    pub link_watchdog: Duration,
    /// How long connecting and the handshake (AUTH, CLIENT SETNAME) may take.
    pub connect_timeout: Duration,
    /// Longest wait for a majority of votes before giving up an election.
    pub election_timeout: Duration,
    /// Candidates wait a seeded random delay below this before starting an election, so that
    /// nodes that saw ODOWN at the same instant rarely split the vote. A split costs about one
    /// more round trip (the smallest candidate retries at once, see `on_split_vote`), so the
    /// delay only needs to spread candidates by a few message flights; every millisecond of it
    /// is paid by every failover, a crash's included.
    pub election_jitter: Duration,
    /// An instance must report the wrong role or master for this long before it is corrected, so
    /// that a failover another node is running is never undone by a node that has not heard of it.
    pub enforce_grace: Duration,
    /// Bounds every failover phase and the wait between attempts.
    pub failover_timeout: Duration,
    /// A repointed replica with no progress for this long counts as done.
    pub replica_reconf_timeout: Duration,
    /// How long a planned switchover waits for the chosen replica to catch up.
    pub switchover_timeout: Duration,
}

impl MasterTiming {
    /// The timing of `master`.
    #[must_use]
    pub fn of(master: &MasterSettings) -> Self {
        let down_after = master.down_after.max(ms(1));
        let failover_timeout = master.failover_timeout.max(ms(1));
        let ping_period = (down_after / 10).clamp(ms(10), ms(1000));
        Self {
            ping_period,
            calm_ping_period: down_after.clamp(ms(10), ms(1000)).max(down_after / 10),
            down_after,
            down_after_refused: master.down_after_refused.filter(|d| !d.is_zero()),
            link_watchdog: down_after.max(ms(1000)),
            connect_timeout: down_after.clamp(ms(500), ms(5000)),
            election_timeout: down_after.clamp(ms(1000), ms(10_000)).min(failover_timeout),
            election_jitter: (down_after / 20).clamp(ms(10), ms(50)),
            enforce_grace: down_after.clamp(ms(500), ms(8000)),
            failover_timeout,
            replica_reconf_timeout: REPLICA_RECONF_TIMEOUT.min(failover_timeout),
            switchover_timeout: master.switchover_timeout.max(ms(1)),
        }
    }

    /// The longest a failover can run before its promotion is announced: its election, then at
    /// most one `failover_timeout` to send the promotion and one to see it take effect. Past
    /// this, a leader that has not announced a new configuration has given up or is stuck.
    #[must_use]
    pub fn promotion_deadline(&self) -> Duration {
        self.election_timeout + self.failover_timeout * 2
    }

    /// How long a leader waits for INFO replies to show what it expects before it acts on their
    /// absence: an elected leader with no eligible replica gives up
    /// (`-failover-abort-no-good-slave`), and a promotion that does not show is sent again. Long
    /// enough for a few replies to arrive over a slow link (the leader polls every 10 ms), and
    /// about as long as selection's own freshness limit (five ping periods).
    #[must_use]
    pub fn info_grace(&self) -> Duration {
        (self.ping_period * 5).max(ms(500)).min(self.failover_timeout)
    }

    /// The newest acceptable PING reply of a replica that may be promoted must be younger than
    /// this: a calm period (a settled replica may have been pinged that long ago when the doubt
    /// began) plus four fast ones (Sentinel's five ping periods, as it pings at one rate; 7 s
    /// at `down_after = 30000`, where the calm period is 3 s).
    #[must_use]
    pub fn max_reply_age(&self) -> Duration {
        self.calm_ping_period + self.ping_period * 4
    }

    /// Longest backoff between reconnect attempts: one ping period, so a restarted instance is
    /// seen again as soon as it would have been pinged.
    #[must_use]
    pub fn reconnect_max(&self) -> Duration {
        self.ping_period.max(RECONNECT_MIN)
    }

    /// Longest backoff while every attempt is refused, with the crash rule on: a quarter of
    /// `down_after_refused`, between 10 and 50 ms (and never above [`Self::reconnect_max`]).
    /// The rule fires at the first refusal past the threshold, and one attempt is made just
    /// past it whatever the backoff, so a crash is seen `down_after_refused` + 1 ms after the
    /// first refusal; a refused SYN costs the host one packet in return.
    #[must_use]
    pub fn refused_retry_max(&self) -> Duration {
        self.down_after_refused.map_or_else(
            || self.reconnect_max(),
            |limit| (limit / 4).clamp(ms(10), REFUSED_RETRY_MAX).min(self.reconnect_max()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::addr::Addr;

    fn timing(down_after_ms: u64, failover_timeout_ms: u64) -> MasterTiming {
        let mut m = MasterSettings::new("m", "127.0.0.1:6379".parse::<Addr>().unwrap(), 2);
        m.down_after = ms(down_after_ms);
        m.failover_timeout = ms(failover_timeout_ms);
        MasterTiming::of(&m)
    }

    #[test]
    fn tight_down_after_gives_fast_pings_and_elections() {
        let t = timing(1000, 10_000);
        assert_eq!(t.ping_period, ms(100));
        assert_eq!(t.calm_ping_period, ms(1000));
        assert_eq!(t.max_reply_age(), ms(1400));
        assert_eq!(t.election_timeout, ms(1000));
        assert_eq!(t.election_jitter, ms(50));
        assert_eq!(t.enforce_grace, ms(1000));
        assert_eq!(t.reconnect_max(), ms(100));
    }

    #[test]
    fn refused_attempts_are_a_quarter_of_the_crash_threshold_apart_at_most() {
        let mut m = MasterSettings::new("m", "127.0.0.1:6379".parse::<Addr>().unwrap(), 2);
        m.down_after = ms(5000);
        assert_eq!(MasterTiming::of(&m).refused_retry_max(), ms(50));
        m.down_after_refused = Some(ms(100));
        assert_eq!(MasterTiming::of(&m).refused_retry_max(), ms(25));
        m.down_after_refused = Some(ms(20));
        assert_eq!(MasterTiming::of(&m).refused_retry_max(), ms(10));
        // Off (0 or none): the ordinary backoff.
        m.down_after_refused = Some(ms(0));
        assert_eq!(MasterTiming::of(&m).down_after_refused, None);
        assert_eq!(MasterTiming::of(&m).refused_retry_max(), ms(500));
        m.down_after = ms(100);
        m.down_after_refused = Some(ms(300));
        assert_eq!(MasterTiming::of(&m).refused_retry_max(), ms(25), "the ping period bounds it");
    }

    #[test]
    fn sentinel_defaults_cost_a_third_of_sentinels_pings() {
        let t = timing(30_000, 180_000);
        assert_eq!(t.ping_period, ms(1000));
        assert_eq!(t.calm_ping_period, ms(3000));
        assert_eq!(t.max_reply_age(), ms(7000));
        assert_eq!(t.election_timeout, ms(10_000));
        assert_eq!(t.replica_reconf_timeout, REPLICA_RECONF_TIMEOUT);
    }

    #[test]
    fn failover_timeout_bounds_the_election_and_reconfiguration() {
        let t = timing(5000, 2000);
        assert_eq!(t.election_timeout, ms(2000));
        assert_eq!(t.replica_reconf_timeout, ms(2000));
        assert_eq!(timing(50, 1000).ping_period, ms(10));
        assert_eq!(timing(50, 1000).calm_ping_period, ms(50));
        assert_eq!(timing(5, 1000).calm_ping_period, ms(10));
        assert_eq!(timing(500, 1000).calm_ping_period, ms(500));
        assert_eq!(timing(2000, 1000).calm_ping_period, ms(1000));
    }

    /// Up to 10 s the calm period is Sentinel's (1 s, so detection within `down_after` + 1 s);
    /// beyond, a tenth of `down_after`, never shorter than the fast period.
    #[test]
    fn the_calm_period_is_sentinels_up_to_ten_seconds_and_a_tenth_beyond() {
        for (down_after, calm) in [(5000, 1000), (10_000, 1000), (12_000, 1200), (60_000, 6000)] {
            let t = timing(down_after, 180_000);
            assert_eq!(t.calm_ping_period, ms(calm), "down_after {down_after}");
            assert!(t.calm_ping_period >= t.ping_period);
        }
    }
}
