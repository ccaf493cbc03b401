//! Events: Redis Sentinel's public vocabulary, with its exact channel names and payloads.
//!
//! Clients subscribe to these channels on the Sentinel port (`+switch-master` above all), and
//! operators' scripts and dashboards match on the text, so the names and payload layout here are
//! a compatibility contract, pinned by the tests at the bottom of this file. The "slave" wording is
//! Sentinel's and stays on the wire; internally the engine says replica.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::engine::addr::Addr;
use crate::engine::ids::NodeId;

/// How loud an event is. Warning-level events also run the master's notification script.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Published, not logged at the default level (`±role-change`).
    Verbose,
    /// Published and logged.
    Notice,
    /// Published, logged, and passed to the notification script.
    Warning,
}

macro_rules! event_kinds {
    ($($variant:ident => $channel:literal, $level:ident;)*) => {
        /// Every event Picket emits. The channel name is the event name.
        #[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd)]
        pub enum EventKind {
            $(
                #[doc = concat!("`", $channel, "`")]
                $variant,
            )*
        }

        impl EventKind {
            /// All kinds, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The pub/sub channel, which is also the event's name.
            #[must_use]
            pub const fn channel(self) -> &'static str {
                match self {
                    $(Self::$variant => $channel,)*
                }
            }

            /// How loud the event is.
            #[must_use]
            pub const fn level(self) -> Level {
                match self {
                    $(Self::$variant => Level::$level,)*
                }
            }
        }
    };
}

event_kinds! {
    Monitor => "+monitor", Warning;
    Unmonitor => "-monitor", Warning;
    Set => "+set", Warning;
    ResetMaster => "+reset-master", Warning;
    Replica => "+slave", Notice;
    Peer => "+sentinel", Notice;
    Reboot => "+reboot", Notice;
    RoleChangeExpected => "+role-change", Verbose;
    RoleChangeUnexpected => "-role-change", Verbose;
    Sdown => "+sdown", Warning;
    SdownCleared => "-sdown", Warning;
    Odown => "+odown", Warning;
    OdownCleared => "-odown", Warning;
    NewEpoch => "+new-epoch", Warning;
    TryFailover => "+try-failover", Warning;
    VoteForLeader => "+vote-for-leader", Warning;
    ElectedLeader => "+elected-leader", Warning;
    StateSelectReplica => "+failover-state-select-slave", Warning;
    SelectedReplica => "+selected-slave", Warning;
    StateSendPromotion => "+failover-state-send-slaveof-noone", Notice;
    StateWaitPromotion => "+failover-state-wait-promotion", Notice;
    PromotedReplica => "+promoted-slave", Warning;
    StateReconfReplicas => "+failover-state-reconf-slaves", Warning;
    ReplicaReconfSent => "+slave-reconf-sent", Notice;
    ReplicaReconfInProgress => "+slave-reconf-inprog", Notice;
    ReplicaReconfDone => "+slave-reconf-done", Notice;
    ReplicaReconfTimeout => "-slave-reconf-sent-timeout", Notice;
    ReplicaReconfBestEffort => "+slave-reconf-sent-be", Notice;
    FailoverEndForTimeout => "+failover-end-for-timeout", Warning;
    FailoverEnd => "+failover-end", Warning;
    SwitchMaster => "+switch-master", Warning;
    ConfigUpdateFrom => "+config-update-from", Warning;
    AbortNotElected => "-failover-abort-not-elected", Warning;
    AbortNoGoodReplica => "-failover-abort-no-good-slave", Warning;
    AbortReplicaTimeout => "-failover-abort-slave-timeout", Warning;
    ConvertToReplica => "+convert-to-slave", Notice;
    FixReplicaConfig => "+fix-slave-config", Notice;
    Tilt => "+tilt", Warning;
    TiltCleared => "-tilt", Warning;
    // Picket's own: fencing, planned switchovers, loss accounting, maintenance.
    FenceLease => "+fence-lease", Notice;
    FenceIsolated => "+fence-isolated", Warning;
    FenceIsolatedCleared => "-fence-isolated", Warning;
    FenceWindow => "+fence-window", Warning;
    StateWaitCatchUp => "+failover-state-wait-catch-up", Notice;
    StateWaitFence => "+failover-state-wait-fence", Notice;
    AbortSwitchoverTimeout => "-failover-abort-switchover-timeout", Warning;
    FailoverLoss => "+failover-loss", Warning;
    FailoverHeld => "+failover-held", Warning;
    Maintenance => "+maintenance", Warning;
    MaintenanceCleared => "-maintenance", Warning;
    Stall => "+stall", Warning;
    StallCleared => "-stall", Notice;
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.channel())
    }
}

/// The instance an event is about, with Sentinel's "instance details" rendering:
/// `<type> <name> <ip> <port>` for a master and
/// `<type> <name> <ip> <port> @ <master> <master-ip> <master-port>` for the others.
#[derive(Clone, Debug, Eq, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Subject {
    /// A monitored master.
    Master {
        /// Group name.
        name: String,
        /// Its address.
        addr: Addr,
    },
    /// A replica (named `ip:port`, as Sentinel names them).
    Replica {
        /// Its address.
        addr: Addr,
        /// The group it belongs to.
        master: String,
        /// The group's master address at the time of the event.
        master_addr: Addr,
    },
    /// Another Picket node (Sentinel's "sentinel"), named by its id, at its client address.
    Peer {
        /// Its node id.
        id: NodeId,
        /// Its Sentinel-port address.
        addr: Addr,
        /// The group the event concerns.
        master: String,
        /// The group's master address at the time of the event.
        master_addr: Addr,
    },
}

impl Subject {
    /// The master group the subject belongs to.
    #[must_use]
    pub fn master_name(&self) -> &str {
        match self {
            Self::Master { name, .. } => name,
            Self::Replica { master, .. } | Self::Peer { master, .. } => master,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Master { name, addr } => {
                write!(f, "master {name} {} {}", addr.host(), addr.port())
            }
            Self::Replica { addr, master, master_addr } => write!(
                f,
                "slave {addr} {} {} @ {master} {} {}",
                addr.host(),
                addr.port(),
                master_addr.host(),
                master_addr.port()
            ),
            Self::Peer { id, addr, master, master_addr } => write!(
                f,
                "sentinel {id} {} {} @ {master} {} {}",
                addr.host(),
                addr.port(),
                master_addr.host(),
                master_addr.port()
            ),
        }
    }
}

/// What an event says beyond its subject.
#[derive(Clone, Debug, Eq, PartialEq, Serialize)]
#[serde(tag = "detail", rename_all = "snake_case")]
pub enum Detail {
    /// Nothing more.
    None,
    /// `+odown`: how many voters see the master down, and the quorum.
    Quorum {
        /// Voters that see it down, this node included.
        votes: usize,
        /// The master's quorum.
        quorum: u32,
    },
    /// `+monitor`: the quorum.
    MonitorQuorum {
        /// The master's quorum.
        quorum: u32,
    },
    /// `+new-epoch`: the epoch.
    Epoch {
        /// The new current epoch.
        epoch: u64,
        /// The master whose failover or vote raised it, when one did. Not in the payload (the
        /// payload is the number alone, as Sentinel's), but it lets notification scripts and
        /// webhooks attribute the event, as Sentinel does.
        master: Option<String>,
    },
    /// `+vote-for-leader`: the node voted for and the epoch.
    Vote {
        /// The candidate this node voted for.
        leader: NodeId,
        /// The epoch of the vote.
        epoch: u64,
        /// The master the vote is about (not in the payload, as in Sentinel).
        master: String,
    },
    /// `+switch-master`: the group and its old and new master.
    Switch {
        /// Group name.
        name: String,
        /// Previous master.
        old: Addr,
        /// New master.
        new: Addr,
    },
    /// `±role-change`: the role the instance now reports (`master` or `slave`).
    Role {
        /// Redis's word for the role.
        role: &'static str,
    },
    /// `+set`: the option changed and its (possibly redacted) value.
    Option {
        /// Option name.
        name: String,
        /// New value as shown to subscribers.
        value: String,
    },
    /// `+fence-lease`: the lease set on a master.
    Lease {
        /// `min-replicas-to-write`.
        min_replicas: u32,
        /// The replicas that count for it.
        replicas: usize,
    },
    /// `+fence-window`: how long the old master may still accept writes after the promotion
    /// (`None`: not known, a replica that keeps its lease may still acknowledge it).
    Window {
        /// Milliseconds.
        ms: Option<u64>,
    },
    /// `+failover-loss`: the replication bytes the promoted replica lacked of the old master's
    /// last known offset (writes possibly lost).
    Loss {
        /// Bytes.
        bytes: u64,
    },
    /// `+try-failover`: the epoch of the attempt. Not in the payload (Sentinel's names the master
    /// only), but readers of the event stream (the failover history) need not infer it from the
    /// `+vote-for-leader` that follows.
    Attempt {
        /// The epoch this node is trying to win.
        epoch: u64,
    },
    /// `+failover-held`: why an automatic failover is not started.
    Held {
        /// `maintenance` or `min-interval`.
        reason: &'static str,
    },
    /// `+stall`: how long the process did not run (a gap between inputs shorter than TILT's).
    Stall {
        /// Milliseconds.
        ms: u64,
    },
    /// `-stall`: how long re-reading the world took after the stall.
    Reread {
        /// Milliseconds.
        ms: u64,
    },
    /// `±tilt`: Sentinel's fixed text.
    Tilt {
        /// Whether TILT was entered (else exited).
        entered: bool,
    },
}

/// One event: what happened, to whom, and the specifics.
#[derive(Clone, Debug, Eq, PartialEq, Serialize)]
pub struct Event {
    /// What happened.
    #[serde(serialize_with = "serialize_kind")]
    pub kind: EventKind,
    /// The instance concerned, if any (`+new-epoch`, `+switch-master` and `±tilt` have none).
    pub subject: Option<Subject>,
    /// Kind-specific details.
    pub detail: Detail,
}

fn serialize_kind<S: serde::Serializer>(kind: &EventKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.channel())
}

impl Event {
    /// An event about `subject` with no further detail.
    #[must_use]
    pub const fn about(kind: EventKind, subject: Subject) -> Self {
        Self { kind, subject: Some(subject), detail: Detail::None }
    }

    /// The channel it is published on.
    #[must_use]
    pub const fn channel(&self) -> &'static str {
        self.kind.channel()
    }

    /// How loud it is.
    #[must_use]
    pub const fn level(&self) -> Level {
        self.kind.level()
    }

    /// The master group the event concerns, if any.
    #[must_use]
    pub fn master_name(&self) -> Option<&str> {
        match (&self.subject, &self.detail) {
            (Some(subject), _) => Some(subject.master_name()),
            (None, Detail::Switch { name, .. } | Detail::Vote { master: name, .. }) => Some(name),
            (None, Detail::Epoch { master, .. }) => master.as_deref(),
            _ => None,
        }
    }

    /// The message published on the channel, byte for byte as Sentinel writes it.
    #[must_use]
    pub fn payload(&self) -> String {
        let mut out = String::new();
        if let Some(subject) = &self.subject {
            let _ = write!(out, "{subject}");
        }
        let _ = match &self.detail {
            Detail::None => Ok(()),
            Detail::Quorum { votes, quorum } => write!(out, " #quorum {votes}/{quorum}"),
            Detail::MonitorQuorum { quorum } => write!(out, " quorum {quorum}"),
            Detail::Epoch { epoch, .. } => write!(out, "{epoch}"),
            Detail::Vote { leader, epoch, .. } => write!(out, "{leader} {epoch}"),
            Detail::Switch { name, old, new } => {
                write!(out, "{name} {} {} {} {}", old.host(), old.port(), new.host(), new.port())
            }
            Detail::Role { role } => write!(out, " new reported role is {role}"),
            Detail::Option { name, value } => write!(out, " {name} {value}"),
            Detail::Lease { min_replicas, replicas } => {
                write!(out, " #min-replicas {min_replicas} of {replicas}")
            }
            Detail::Window { ms: Some(ms) } => write!(out, " #window-ms {ms}"),
            Detail::Window { ms: None } => write!(out, " #window-ms unknown"),
            Detail::Loss { bytes } => write!(out, " #bytes {bytes}"),
            Detail::Attempt { .. } => Ok(()),
            Detail::Held { reason } => write!(out, " #{reason}"),
            Detail::Stall { ms } => write!(out, "#stalled-ms {ms}"),
            Detail::Reread { ms } => write!(out, "#reread-ms {ms}"),
            Detail::Tilt { entered: true } => write!(out, "#tilt mode entered"),
            Detail::Tilt { entered: false } => write!(out, "#tilt mode exited"),
        };
        out
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.channel(), self.payload())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Addr {
        s.parse().unwrap()
    }

    fn master() -> Subject {
        Subject::Master { name: "mymaster".into(), addr: addr("127.0.0.1:16379") }
    }

    #[test]
    fn payloads_match_sentinel_byte_for_byte() {
        let replica = Subject::Replica {
            addr: addr("127.0.0.1:16381"),
            master: "mymaster".into(),
            master_addr: addr("127.0.0.1:16379"),
        };
        assert_eq!(
            Event::about(EventKind::SelectedReplica, replica).to_string(),
            "+selected-slave slave 127.0.0.1:16381 127.0.0.1 16381 @ mymaster 127.0.0.1 16379"
        );
        let odown = Event {
            kind: EventKind::Odown,
            subject: Some(master()),
            detail: Detail::Quorum { votes: 2, quorum: 2 },
        };
        assert_eq!(odown.to_string(), "+odown master mymaster 127.0.0.1 16379 #quorum 2/2");
        let epoch = Event {
            kind: EventKind::NewEpoch,
            subject: None,
            detail: Detail::Epoch { epoch: 1, master: Some("mymaster".into()) },
        };
        assert_eq!(epoch.payload(), "1");
        assert_eq!(epoch.master_name(), Some("mymaster"));
        let leader: NodeId = "2d01b31d6975b7d57b64ba8ffda73de5eaafa5f3".parse().unwrap();
        let vote = Event {
            kind: EventKind::VoteForLeader,
            subject: None,
            detail: Detail::Vote { leader, epoch: 1, master: "mymaster".into() },
        };
        assert_eq!(vote.payload(), "2d01b31d6975b7d57b64ba8ffda73de5eaafa5f3 1");
        assert_eq!(vote.master_name(), Some("mymaster"));
        let switch = Event {
            kind: EventKind::SwitchMaster,
            subject: None,
            detail: Detail::Switch {
                name: "mymaster".into(),
                old: addr("127.0.0.1:16379"),
                new: addr("127.0.0.1:16381"),
            },
        };
        assert_eq!(switch.payload(), "mymaster 127.0.0.1 16379 127.0.0.1 16381");
        assert_eq!(switch.master_name(), Some("mymaster"));
        let tilt =
            Event { kind: EventKind::Tilt, subject: None, detail: Detail::Tilt { entered: true } };
        assert_eq!(tilt.to_string(), "+tilt #tilt mode entered");
        let role = Event {
            kind: EventKind::RoleChangeUnexpected,
            subject: Some(master()),
            detail: Detail::Role { role: "slave" },
        };
        assert_eq!(
            role.to_string(),
            "-role-change master mymaster 127.0.0.1 16379 new reported role is slave"
        );
        let peer = Subject::Peer {
            id: leader,
            addr: addr("127.0.0.1:26379"),
            master: "mymaster".into(),
            master_addr: addr("127.0.0.1:16381"),
        };
        assert_eq!(
            Event::about(EventKind::ConfigUpdateFrom, peer).to_string(),
            "+config-update-from sentinel 2d01b31d6975b7d57b64ba8ffda73de5eaafa5f3 \
             127.0.0.1 26379 @ mymaster 127.0.0.1 16381"
        );
        let monitor = Event {
            kind: EventKind::Monitor,
            subject: Some(master()),
            detail: Detail::MonitorQuorum { quorum: 2 },
        };
        assert_eq!(monitor.payload(), "master mymaster 127.0.0.1 16379 quorum 2");
    }

    #[test]
    fn channel_names_are_sentinels() {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.channel()).collect();
        for expected in [
            "+sdown",
            "-sdown",
            "+odown",
            "-odown",
            "+switch-master",
            "+failover-state-send-slaveof-noone",
            "-failover-abort-no-good-slave",
            "+slave-reconf-sent-be",
            "+convert-to-slave",
            "+fix-slave-config",
        ] {
            assert!(names.contains(&expected), "{expected} missing");
        }
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "duplicate channel names");
        assert_eq!(EventKind::RoleChangeExpected.level(), Level::Verbose);
        assert_eq!(EventKind::Replica.level(), Level::Notice);
    }
}
