//! Sentinel's instance maps (`SENTINEL MASTER`, `MASTERS`, `REPLICAS`, `SENTINELS`).
//!
//! Field names, their order, which fields are optional, and the flag words and their order are
//! Sentinel's, because clients parse them: redis-py and redis-rs pick the master from
//! `SENTINEL MASTERS` by `flags`, ioredis and go-redis filter replicas and sentinels by flags.
//! Every value is a bulk string, numbers included; times are "milliseconds ago", computed from
//! the view's instants and the current engine time.

use std::fmt;

use crate::engine::Instant;
use crate::engine::sentinels::ANSWER_VALIDITY;
use crate::engine::time::duration_millis;
use crate::engine::view::{InstanceView, MasterStatus, MasterView, PeerReportView, SentinelView};
use crate::wire::resp::ReplyWriter;

/// Sentinel's flags, in the order it prints them.
const FLAG_NAMES: [&str; 15] = [
    "s_down",
    "o_down",
    "master",
    "slave",
    "sentinel",
    "disconnected",
    "master_down",
    "failover_in_progress",
    "promoted",
    "reconf_sent",
    "reconf_inprog",
    "reconf_done",
    "force_failover",
    "script_kill_sent",
    "master_reboot",
];

/// A set of [`FLAG_NAMES`], shown comma-separated in Sentinel's order.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub(super) struct Flags(u16);

impl Flags {
    /// Adds `name` (one of [`FLAG_NAMES`]) when `on`.
    #[must_use]
    fn with(self, name: &str, on: bool) -> Self {
        match FLAG_NAMES.iter().position(|f| *f == name) {
            Some(bit) if on => Self(self.0 | 1 << bit),
            _ => self,
        }
    }

    /// Whether `name` is set.
    #[cfg(test)]
    pub(super) fn has(self, name: &str) -> bool {
        FLAG_NAMES.iter().position(|f| *f == name).is_some_and(|bit| self.0 & (1 << bit) != 0)
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, name) in FLAG_NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Milliseconds from `at` to `now` (0 if `at` is later).
pub(super) fn ago(now: Instant, at: Instant) -> u64 {
    duration_millis(now.saturating_since(at))
}

fn field(w: &mut ReplyWriter<'_>, key: &str, value: &str) {
    w.bulk_str(key);
    w.bulk_str(value);
}

fn number(w: &mut ReplyWriter<'_>, key: &str, value: u64) {
    w.bulk_str(key);
    w.bulk_u64(value);
}

/// The peers that announced themselves (an id and a Sentinel-port address): the "other
/// sentinels" of Sentinel's replies.
pub(super) fn announced(master: &MasterView) -> impl Iterator<Item = &PeerReportView> {
    master.peers.iter().filter(|p| p.node_id.is_some() && p.client_addr.is_some())
}

/// The listed Sentinels (Sentinel-compatible peering) that announced their run id.
pub(super) fn listed_sentinels(master: &MasterView) -> impl Iterator<Item = &SentinelView> {
    master.sentinels.iter().filter(|s| s.run_id.is_some())
}

/// The other voters `SENTINEL SENTINELS` lists: announced peers and listed Sentinels.
pub(super) fn other_voters(master: &MasterView) -> usize {
    announced(master).count() + listed_sentinels(master).count()
}

/// The flags of a master entry.
pub(super) fn master_flags(m: &MasterView) -> Flags {
    let i = &m.master;
    Flags::default()
        .with("s_down", i.sdown_since.is_some())
        .with("o_down", m.status == MasterStatus::Odown)
        .with("master", true)
        .with("disconnected", !i.link_up)
        .with("failover_in_progress", m.failover.is_some())
        .with("force_failover", m.failover.as_ref().is_some_and(|f| f.manual))
        .with("master_reboot", i.rebooted)
}

/// The flags of a replica entry.
pub(super) fn replica_flags(r: &InstanceView) -> Flags {
    Flags::default()
        .with("s_down", r.sdown_since.is_some())
        .with("slave", true)
        .with("disconnected", !r.link_up)
        .with("promoted", r.promoted)
        .with("reconf_sent", r.reconf == Some("reconf_sent"))
        .with("reconf_inprog", r.reconf == Some("reconf_inprog"))
        .with("reconf_done", r.reconf == Some("reconf_done"))
}

/// Whether a peer's reports are fresh: the view says so and it was heard from within
/// `peer_timeout` of `now` (the view may be a little old).
pub(super) fn peer_fresh(
    p: &PeerReportView,
    now: Instant,
    peer_timeout: std::time::Duration,
) -> bool {
    p.fresh && p.last_heard_at.is_some_and(|at| now.saturating_since(at) < peer_timeout)
}

/// The flags of a sentinel entry: stale reports make it `s_down,disconnected`; it is
/// `master_down` when its latest report sees the master subjectively down.
pub(super) fn sentinel_flags(p: &PeerReportView, fresh: bool) -> Flags {
    Flags::default()
        .with("s_down", !fresh)
        .with("sentinel", true)
        .with("disconnected", !fresh)
        .with("master_down", p.report.as_ref().is_some_and(|r| r.sdown))
}

/// The part every kind shares, up to `last-ping-reply`.
fn common(
    w: &mut ReplyWriter<'_>,
    name: &dyn fmt::Display,
    i: &InstanceView,
    run_id: &str,
    flags: Flags,
) {
    w.bulk_str("name");
    w.bulk_display(name);
    field(w, "ip", i.addr.host());
    number(w, "port", u64::from(i.addr.port()));
    field(w, "runid", run_id);
    w.bulk_str("flags");
    w.bulk_display(&flags);
    number(w, "link-pending-commands", u64::try_from(i.pending_requests).unwrap_or(u64::MAX));
    number(w, "link-refcount", 1);
}

fn pings(w: &mut ReplyWriter<'_>, i: &InstanceView, now: Instant) {
    number(w, "last-ping-sent", i.ping_in_flight_since.map_or(0, |at| ago(now, at)));
    number(w, "last-ok-ping-reply", ago(now, i.last_ok_reply_at));
    number(w, "last-ping-reply", ago(now, i.last_reply_at.unwrap_or(i.last_ok_reply_at)));
}

fn role(w: &mut ReplyWriter<'_>, i: &InstanceView, default_role: &str, now: Instant) {
    number(w, "info-refresh", i.info_at.map_or(0, |at| ago(now, at)));
    field(w, "role-reported", i.role.unwrap_or(default_role));
    number(w, "role-reported-time", i.role_reported_at.map_or(0, |at| ago(now, at)));
}

/// One master's map: Sentinel's 20 fields, plus `failover-state`, `s-down-time`, `o-down-time`
/// and the script paths when they apply, then Picket's crash-rule threshold
/// (`down-after-refused-milliseconds`, 0 = off) last, where Sentinel's own fields keep their order.
pub(super) fn write_master(w: &mut ReplyWriter<'_>, m: &MasterView, now: Instant) {
    let i = &m.master;
    let failover_state = m.failover.as_ref().map(|f| f.state);
    let odown_since = m.odown_since.filter(|_| m.status == MasterStatus::Odown);
    let optional = [
        failover_state.is_some(),
        i.sdown_since.is_some(),
        odown_since.is_some(),
        m.notification_script.is_some(),
        m.client_reconfig_script.is_some(),
    ];
    w.map(21 + optional.iter().filter(|o| **o).count());
    common(w, &m.name, i, i.run_id.as_deref().unwrap_or(""), master_flags(m));
    if let Some(state) = failover_state {
        field(w, "failover-state", state);
    }
    pings(w, i, now);
    if let Some(at) = i.sdown_since {
        number(w, "s-down-time", ago(now, at));
    }
    if let Some(at) = odown_since {
        number(w, "o-down-time", ago(now, at));
    }
    number(w, "down-after-milliseconds", duration_millis(m.down_after));
    role(w, i, "master", now);
    number(w, "config-epoch", m.config_epoch);
    number(w, "num-slaves", u64::try_from(m.replicas.len()).unwrap_or(u64::MAX));
    number(w, "num-other-sentinels", u64::try_from(other_voters(m)).unwrap_or(u64::MAX));
    number(w, "quorum", u64::from(m.quorum));
    number(w, "failover-timeout", duration_millis(m.failover_timeout));
    number(w, "parallel-syncs", u64::from(m.parallel_syncs));
    if let Some(path) = &m.notification_script {
        field(w, "notification-script", path);
    }
    if let Some(path) = &m.client_reconfig_script {
        field(w, "client-reconfig-script", path);
    }
    number(w, "down-after-refused-milliseconds", m.down_after_refused.map_or(0, duration_millis));
}

/// One replica's map: 21 fields, plus `s-down-time` when it is down.
pub(super) fn write_replica(
    w: &mut ReplyWriter<'_>,
    m: &MasterView,
    r: &InstanceView,
    now: Instant,
) {
    w.map(21 + usize::from(r.sdown_since.is_some()));
    common(w, &r.addr, r, r.run_id.as_deref().unwrap_or(""), replica_flags(r));
    pings(w, r, now);
    if let Some(at) = r.sdown_since {
        number(w, "s-down-time", ago(now, at));
    }
    number(w, "down-after-milliseconds", duration_millis(m.down_after));
    role(w, r, "slave", now);
    let link = r.replica_link.as_ref();
    number(
        w,
        "master-link-down-time",
        link.and_then(|l| l.link_down_for).map_or(0, duration_millis),
    );
    field(w, "master-link-status", if link.is_some_and(|l| l.link_up) { "ok" } else { "err" });
    let master = link.and_then(|l| l.master.as_ref());
    field(w, "master-host", master.map_or("?", |a| a.host()));
    number(w, "master-port", master.map_or(0, |a| u64::from(a.port())));
    number(w, "slave-priority", u64::from(r.priority));
    number(w, "slave-repl-offset", r.repl_offset);
    number(w, "replica-announced", u64::from(r.replica_announced));
}

/// One peer's map (Sentinel's "sentinel" entries): 14 fields, plus `s-down-time` when its
/// reports are stale. Its address is its Sentinel-port address, the one clients can use, never
/// its gossip port. Picket nodes do not ping each other; their heartbeats stand for PING replies
/// and hello messages. `voted-leader` is the peer itself while it leads a failover, else `?`;
/// `voted-leader-epoch` is the epoch of its latest vote for this master.
pub(super) fn write_sentinel(
    w: &mut ReplyWriter<'_>,
    m: &MasterView,
    p: &PeerReportView,
    peer_timeout: std::time::Duration,
    now: Instant,
) {
    let (Some(id), Some(addr)) = (p.node_id, p.client_addr.as_ref()) else {
        // Only announced peers are listed; keep the stream framed regardless.
        w.map(0);
        return;
    };
    let fresh = peer_fresh(p, now, peer_timeout);
    let heard = p.last_heard_at.map_or(0, |at| ago(now, at));
    w.map(14 + usize::from(!fresh));
    w.bulk_str("name");
    w.bulk_display(&id);
    field(w, "ip", addr.host());
    number(w, "port", u64::from(addr.port()));
    w.bulk_str("runid");
    w.bulk_display(&id);
    w.bulk_str("flags");
    w.bulk_display(&sentinel_flags(p, fresh));
    number(w, "link-pending-commands", 0);
    number(w, "link-refcount", 1);
    number(w, "last-ping-sent", 0);
    number(w, "last-ok-ping-reply", heard);
    number(w, "last-ping-reply", heard);
    if !fresh {
        number(w, "s-down-time", heard.saturating_sub(duration_millis(peer_timeout)));
    }
    number(w, "down-after-milliseconds", duration_millis(m.down_after));
    number(w, "last-hello-message", heard);
    let report = p.report.as_ref();
    let leading = report.and_then(|r| r.failover);
    w.bulk_str("voted-leader");
    match leading {
        Some(_) => w.bulk_display(&id),
        None => w.bulk_str("?"),
    }
    let epoch = leading.map_or_else(|| report.map_or(0, |r| r.voted_epoch), |f| f.epoch);
    number(w, "voted-leader-epoch", epoch);
}

/// A listed redis-sentinel in `SENTINEL SENTINELS`, with the fields Sentinel gives its peers:
/// `s_down,disconnected` once it has not been heard for an answer's validity, `master_down`
/// while its latest answer says so, and its last known vote.
pub(super) fn write_listed_sentinel(
    w: &mut ReplyWriter<'_>,
    m: &MasterView,
    s: &SentinelView,
    now: Instant,
) {
    let Some(id) = s.run_id else {
        w.map(0);
        return;
    };
    let heard = s.last_heard_at.map_or(0, |at| ago(now, at));
    w.map(14 + usize::from(!s.fresh));
    w.bulk_str("name");
    w.bulk_display(&id);
    field(w, "ip", s.addr.host());
    number(w, "port", u64::from(s.addr.port()));
    w.bulk_str("runid");
    w.bulk_display(&id);
    let flags = Flags::default()
        .with("s_down", !s.fresh)
        .with("sentinel", true)
        .with("disconnected", !s.fresh)
        .with("master_down", s.master_down);
    w.bulk_str("flags");
    w.bulk_display(&flags);
    number(w, "link-pending-commands", 0);
    number(w, "link-refcount", 1);
    number(w, "last-ping-sent", 0);
    number(w, "last-ok-ping-reply", heard);
    number(w, "last-ping-reply", heard);
    if !s.fresh {
        number(w, "s-down-time", heard.saturating_sub(duration_millis(ANSWER_VALIDITY)));
    }
    number(w, "down-after-milliseconds", duration_millis(m.down_after));
    number(w, "last-hello-message", heard);
    w.bulk_str("voted-leader");
    match s.voted_for {
        Some(leader) => w.bulk_display(&leader),
        None => w.bulk_str("?"),
    }
    number(w, "voted-leader-epoch", s.voted_epoch);
}

/// `master0:name=...,status=...,address=...,slaves=...,sentinels=...` for `INFO sentinel`.
pub(super) fn info_line(out: &mut String, index: usize, m: &MasterView) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "master{index}:name={},status={},address={},slaves={},sentinels={}\r\n",
        m.name,
        m.status.as_str(),
        m.addr,
        m.replicas.len(),
        other_voters(m) + 1
    );
}
