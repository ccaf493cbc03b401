//! What the engine is told to do: the node's membership and the masters it supervises.
//!
//! These are plain values. `config` builds them from the operator's TOML file; tests and the
//! simulator build them directly. Every timing rule the engine applies is derived from them in
//! [`crate::engine::timing`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::addr::Addr;
use crate::engine::fence::Fencing;

/// The crash rule's default threshold: a few reconnect attempts' worth of refusals, far below
/// any `down_after` in use, and still long enough to ride out a connection refused once.
pub const DEFAULT_DOWN_AFTER_REFUSED: Duration = Duration::from_millis(300);

/// Everything the engine needs to know about its deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// This node and its peers.
    pub node: NodeSettings,
    /// The masters to supervise, in configuration order.
    pub masters: Vec<MasterSettings>,
}

/// This node's place among the voters, and its node-wide timings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    /// The gossip address peers have in their `peers` list for this node. Peers recognise this
    /// node's messages by it, so it must be written exactly as they configured it.
    pub announce: Addr,
    /// The address clients use to reach this node's Sentinel port, shared with peers so that
    /// `SENTINEL SENTINELS` can list every node by the port clients connect to.
    pub client_addr: Addr,
    /// The other voters' gossip addresses, in configuration order; index = [`crate::engine::PeerId`].
    pub peers: Vec<Addr>,
    /// How often this node tells each peer it is alive and in sync.
    pub heartbeat: Duration,
    /// How long a peer's reports stay valid without news from it.
    pub peer_timeout: Duration,
    /// A gap between two inputs longer than this means the process stalled: enter TILT.
    pub tilt_trigger: Duration,
    /// How long TILT lasts once entered.
    pub tilt_period: Duration,
}

impl NodeSettings {
    /// Settings for a node with the given addresses and defaults for every timing.
    #[must_use]
    pub fn new(announce: Addr, client_addr: Addr, peers: Vec<Addr>) -> Self {
        Self {
            announce,
            client_addr,
            peers,
            heartbeat: Duration::from_millis(100),
            peer_timeout: Duration::from_millis(1500),
            tilt_trigger: Duration::from_millis(2000),
            tilt_period: Duration::from_millis(30_000),
        }
    }

    /// Number of voters: this node plus its configured peers.
    #[must_use]
    pub fn voters(&self) -> usize {
        self.peers.len() + 1
    }

    /// Votes needed for a majority of all voters.
    #[must_use]
    pub fn majority(&self) -> usize {
        self.voters() / 2 + 1
    }

    /// A gap between two inputs longer than this (but shorter than the TILT trigger) means the
    /// process stalled briefly: two heartbeats went unsent. What the node knew before is stale
    /// (INFO, peer reports) and the silence it did not listen to proves nothing, so it re-reads
    /// the world before it acts again. The contact window: it is also how long peers get to be
    /// heard once the node listens again.
    #[must_use]
    pub fn stall_gap(&self) -> Duration {
        self.contact_window()
    }

    /// A peer counts as reachable for starting an election only if heard within this window:
    /// three heartbeats. A node cut off from its peers at the moment the master goes down sees
    /// SDOWN after `down_after`, while its peers' reports stay valid for `peer_timeout`; without
    /// this tighter window it would start an election it cannot win.
    #[must_use]
    pub fn contact_window(&self) -> Duration {
        (self.heartbeat * 3).min(self.peer_timeout)
    }
}

/// Credentials for `AUTH` on a monitored instance. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// ACL user name; `None` authenticates as the default user.
    pub user: Option<String>,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Which of the shell's TLS client profiles the links of a master group use (`[[master]]`
/// `tls = true`; replicas inherit their master's). A name only: certificates, keys and trust
/// roots stay in the shell, which owns the files and reloads them when they change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TlsProfile(pub String);

/// One supervised master group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterSettings {
    /// The group's name, as clients ask for it (`session`, `cache`, ...).
    pub name: String,
    /// The master's address as configured by the operator.
    pub addr: Addr,
    /// How many voters must see the master subjectively down for it to be objectively down; it
    /// also raises the number of votes a leader needs when it exceeds a majority.
    pub quorum: u32,
    /// No acceptable reply for this long makes an instance subjectively down.
    pub down_after: Duration,
    /// The crash rule: an instance whose host has refused (or reset) every connection attempt
    /// for longer than this is subjectively down without waiting out `down_after`. A killed
    /// Redis leaves nothing listening on its port, while a slow, busy or stopped one keeps it
    /// open; timeouts and silence keep the `down_after` rule. `None` = off (Sentinel's rule
    /// only). ODOWN still needs the quorum's reports, and the failover its votes.
    pub down_after_refused: Option<Duration>,
    /// Bounds every phase of a failover and the wait between attempts.
    pub failover_timeout: Duration,
    /// How many replicas are repointed at the new master at the same time.
    pub parallel_syncs: u32,
    /// Credentials for the master and its replicas.
    pub auth: Option<Credentials>,
    /// The TLS profile for the master's and its replicas' links; `None` for plain TCP.
    pub tls: Option<TlsProfile>,
    /// With `Some(p)`, a master that restarted (new run id) is subjectively down once `p` has
    /// passed without a `PONG`, even if it answered `LOADING` (Sentinel's
    /// `master-reboot-down-after-period`).
    pub reboot_down_after: Option<Duration>,
    /// Replica priorities that override what the replicas report in INFO (`0` = never promote).
    pub priority_overrides: BTreeMap<Addr, u32>,
    /// Script run on warning-level events (path), shown by `SENTINEL MASTER`.
    pub notification_script: Option<String>,
    /// Script run when the master changes (path), shown by `SENTINEL MASTER`.
    pub client_reconfig_script: Option<String>,
    /// How an old master is kept from accepting writes (see [`crate::engine::fence`]).
    pub fencing: Fencing,
    /// A replica further behind the master's last known offset than this many bytes is not
    /// promoted (Patroni's `maximum_lag_on_failover`); `None` = no limit.
    pub max_lag_on_failover_bytes: Option<u64>,
    /// Automatic failovers of this master are held back until this long after the previous one
    /// ended (anti-flapping); `None` = no minimum.
    pub min_failover_interval: Option<Duration>,
    /// A planned switchover gives up (and leaves the old master serving) if the chosen replica
    /// has not caught up with the paused master within this long: writes wait at most that.
    pub switchover_timeout: Duration,
    /// The redis-sentinel processes accepted as voters for this master, at the addresses their
    /// hellos announce (Sentinel-compatible peering, see [`crate::engine::sentinels`]); empty =
    /// off.
    pub sentinel_peers: Vec<Addr>,
}

impl MasterSettings {
    /// A master with Sentinel's defaults for everything but its name, address and quorum, and
    /// Picket's for what Sentinel does not have (the crash rule after 300 ms of refusals).
    #[must_use]
    pub fn new(name: &str, addr: Addr, quorum: u32) -> Self {
        Self {
            name: name.to_owned(),
            addr,
            quorum,
            down_after: Duration::from_millis(30_000),
            down_after_refused: Some(DEFAULT_DOWN_AFTER_REFUSED),
            failover_timeout: Duration::from_millis(180_000),
            parallel_syncs: 1,
            auth: None,
            tls: None,
            reboot_down_after: None,
            priority_overrides: BTreeMap::new(),
            notification_script: None,
            client_reconfig_script: None,
            fencing: Fencing::default(),
            max_lag_on_failover_bytes: None,
            min_failover_interval: None,
            switchover_timeout: Duration::from_millis(5000),
            sentinel_peers: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_password() {
        let c = Credentials { user: Some("app".into()), password: "hunter2".into() };
        let text = format!("{c:?}");
        assert!(text.contains("app") && !text.contains("hunter2"), "{text}");
    }
}
