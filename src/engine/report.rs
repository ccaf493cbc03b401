//! What a monitored instance told us about itself, in typed form.
//!
//! `wire::info` parses the text of an `INFO` reply into an [`InfoReport`]; the simulator builds
//! reports directly. The engine reads only these fields, so they are the contract between the two.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::engine::addr::Addr;

/// The fields of an `INFO` reply the engine acts on, plus the raw text for `SENTINEL INFO-CACHE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InfoReport {
    /// `run_id`: changes when the process restarts.
    pub run_id: Option<String>,
    /// `role` and, for a replica, its replication link.
    pub role: ReportedRole,
    /// `slave_priority` / `replica_priority` (100 when absent; 0 = never promote).
    pub replica_priority: u32,
    /// `replica_announced` (true when absent).
    pub replica_announced: bool,
    /// `master_repl_offset`: the instance's own replication offset.
    pub master_repl_offset: u64,
    /// `master_replid`: the replication history the instance's data belongs to (a master's own,
    /// which its replicas share).
    pub replid: Option<String>,
    /// `master_replid2`: the history a promoted replica continued from (`None` when Redis prints
    /// zeros). A replica promoted by a failover that was then abandoned still carries its old
    /// master's history here, which is how the next leader recognises it (see
    /// [`crate::engine::failover`]).
    pub replid2: Option<String>,
    /// `min_slaves_good_slaves`: the replicas that currently satisfy the master's lease (printed
    /// only while a lease is set).
    pub good_replicas: Option<u32>,
    /// `slaveN:` lines of a master: the replicas connected to it.
    pub replicas: Vec<ListedReplica>,
    /// `loading:1`: the dataset is being loaded.
    pub loading: bool,
    /// The whole reply, kept for `SENTINEL INFO-CACHE`.
    #[serde(skip)]
    pub raw: Arc<str>,
}

impl InfoReport {
    /// A report of a master with no replicas and nothing else set: the base for tests.
    #[must_use]
    pub fn master(run_id: &str) -> Self {
        Self {
            run_id: Some(run_id.to_owned()),
            role: ReportedRole::Master,
            replica_priority: 100,
            replica_announced: true,
            master_repl_offset: 0,
            replid: None,
            replid2: None,
            good_replicas: None,
            replicas: Vec::new(),
            loading: false,
            raw: Arc::from(""),
        }
    }

    /// A report of a replica of `master` whose link is up, with offset `offset`.
    #[must_use]
    pub fn replica(run_id: &str, master: Addr, offset: u64) -> Self {
        Self {
            role: ReportedRole::Replica(ReplicaLink {
                master: Some(master),
                link_up: true,
                link_down_for: None,
                repl_offset: offset,
            }),
            master_repl_offset: offset,
            ..Self::master(run_id)
        }
    }
}

impl InfoReport {
    /// Whether the instance's data belongs to replication history `history`: it is that history,
    /// or it continued from it when it was promoted.
    #[must_use]
    pub fn carries_history(&self, history: &str) -> bool {
        self.replid.as_deref() == Some(history) || self.replid2.as_deref() == Some(history)
    }
}

/// The role an instance reports, with a replica's view of its replication link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ReportedRole {
    /// `role:master`.
    Master,
    /// `role:slave`.
    Replica(ReplicaLink),
}

impl ReportedRole {
    /// The word Redis uses: `master` or `slave`.
    #[must_use]
    pub const fn as_redis_str(&self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Replica(_) => "slave",
        }
    }
}

/// A replica's replication link as it reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplicaLink {
    /// `master_host` and `master_port`; `None` if absent or unparsable.
    pub master: Option<Addr>,
    /// `master_link_status:up`.
    pub link_up: bool,
    /// `master_link_down_since_seconds`, when present.
    pub link_down_for: Option<Duration>,
    /// `slave_repl_offset`.
    pub repl_offset: u64,
}

/// One `slaveN:ip=...,port=...,state=...,offset=...,lag=...` line of a master's INFO.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListedReplica {
    /// `ip` and `port` (the replica's announced address).
    pub addr: Addr,
    /// `state` (`online`, `wait_bgsave`, `send_bulk`, ...).
    pub state: String,
    /// `offset`, 0 when absent.
    pub offset: u64,
    /// `lag` in seconds, when present.
    pub lag: Option<u64>,
}
