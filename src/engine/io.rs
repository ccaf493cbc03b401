//! The engine's inputs (facts that happened) and outputs (things to do).
//!
//! Outputs must be performed **in order**. [`Output::Persist`] is a barrier: the state it carries
//! must be durable before any later output is performed, because later outputs (a vote reply, a
//! message carrying a new epoch, a promotion) reveal it. If persisting fails the process must stop
//! acting rather than risk, say, voting twice in one epoch.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::addr::Addr;
use crate::engine::admin::SetOption;
use crate::engine::durable::DurableState;
use crate::engine::election::Unauthorised;
use crate::engine::event::Event;
use crate::engine::fence::Lease;
use crate::engine::gossip::PeerMessage;
use crate::engine::ids::{LinkId, NodeId, PeerId, RequestId, Ticket};
use crate::engine::report::InfoReport;
use crate::engine::sentinels::{DownAnswer, Hello};
use crate::engine::settings::{Credentials, TlsProfile};

/// Something that happened, reported to [`crate::engine::Supervisor::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Nothing happened, but time passed: run whatever is due.
    Tick,
    /// A link asked for with [`Output::Connect`] is connected and its handshake is done.
    LinkUp {
        /// The link.
        link: LinkId,
        /// The IP the host name resolved to for this connection, for matching the addresses
        /// replicas report (which are IPs) against configured host names.
        resolved: Option<String>,
    },
    /// A link failed to connect, or broke. Requests in flight on it will not be answered.
    LinkDown {
        /// The link.
        link: LinkId,
        /// Why, for logs.
        reason: String,
        /// What kind of failure it was, for the crash rule.
        failure: LinkFailure,
    },
    /// A reply to a request sent with [`Output::Send`].
    Replied {
        /// The link it arrived on.
        link: LinkId,
        /// The request it answers.
        request: RequestId,
        /// The reply.
        reply: Reply,
    },
    /// An authenticated message from another node.
    Peer(PeerMessage),
    /// A listed Sentinel's answer to an [`Output::AskSentinel`].
    SentinelAnswered {
        /// Group name.
        master: String,
        /// The Sentinel's configured address.
        sentinel: Addr,
        /// The master address it was asked about.
        master_addr: Addr,
        /// Its answer.
        answer: DownAnswer,
    },
    /// An operator's command.
    Admin {
        /// Correlates the answer.
        ticket: Ticket,
        /// The command.
        command: AdminCommand,
    },
}

/// How a link failed, as far as the engine's rules tell failures apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkFailure {
    /// The instance's host answered that no process holds the port: the connection was refused
    /// (`ECONNREFUSED`) or reset (`ECONNRESET`). A slow, busy or stopped Redis keeps its port
    /// open, so a run of these means the process is gone (see
    /// [`crate::engine::MasterSettings::down_after_refused`]).
    Refused,
    /// Anything else: a timeout, a connection closed by the instance, a failed handshake, a name
    /// that does not resolve. Only silence tells these from a slow instance.
    Other,
}

/// A monitored instance's reply, decoded by the shell into what the engine needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+PONG`.
    Pong,
    /// An `INFO` reply, parsed.
    Info(Box<InfoReport>),
    /// A transaction (promotion or repointing) or an administrative command was executed.
    Done,
    /// The lease the instance runs under (`CONFIG GET min-replicas-*`).
    Lease(Lease),
    /// An error reply (`-LOADING ...`, `-NOAUTH ...`), or a reply of the wrong shape, as text.
    Error(String),
}

/// Commands the engine sends to monitored instances. The shell renders them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisCommand {
    /// `PING`.
    Ping,
    /// `INFO`.
    Info,
    /// Make the instance a master, as one transaction: `MULTI`, `REPLICAOF NO ONE`,
    /// `CONFIG REWRITE`, `CLIENT KILL TYPE normal`, `CLIENT KILL TYPE pubsub`, `EXEC`. Killing
    /// clients makes them reconnect and ask where the master is now. With fencing, the
    /// transaction also sets the lease the new master starts with (`CONFIG SET
    /// min-replicas-to-write` and `min-replicas-max-lag`) and decides its writes first: released
    /// (`CLIENT UNPAUSE`: an instance paused as an unexpected master becomes the master), or in
    /// strict mode paused (`CLIENT PAUSE ms WRITE`) so that it accepts no write until the old
    /// master surely refuses them.
    Promote {
        /// The lease the new master starts with, if fencing is on.
        lease: Option<Lease>,
        /// What the transaction does with its writes.
        writes: PromotedWrites,
    },
    /// Make the instance a replica of `master`, as the same kind of transaction with
    /// `REPLICAOF <host> <port>`.
    ReplicaOf {
        /// The master to follow.
        master: Addr,
    },
    /// Read the lease: `CONFIG GET min-replicas-to-write`, `CONFIG GET min-replicas-max-lag`.
    ReadLease,
    /// Set the lease, as one transaction: `CONFIG SET min-replicas-to-write K`,
    /// `CONFIG SET min-replicas-max-lag L`, `CONFIG REWRITE` (so a restarted master keeps it).
    SetLease(Lease),
    /// Stop a master's writes now: `CLIENT PAUSE ms WRITE`, then disconnect its clients
    /// (`CLIENT KILL TYPE normal`, `CLIENT KILL TYPE pubsub`) so that they ask where the master is.
    /// Reads go on; the pause ends by itself after `pause`.
    Fence {
        /// How long the pause lasts unless renewed or lifted.
        pause: Duration,
    },
    /// Pause a master's writes again (`CLIENT PAUSE ms WRITE`), without disconnecting anyone.
    PauseWrites {
        /// How long the pause lasts unless renewed or lifted.
        pause: Duration,
    },
    /// Lift a pause (`CLIENT UNPAUSE`).
    UnpauseWrites,
}

/// What a promotion does with the promoted instance's writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromotedWrites {
    /// Nothing (fencing off: Sentinel's transaction exactly).
    Untouched,
    /// Lifts any pause.
    Released,
    /// Pauses them for this long.
    Paused(Duration),
}

impl RedisCommand {
    /// Whether the command changes the instance (its role, its lease, its writes) rather than
    /// reading it: a node in TILT sends none.
    #[must_use]
    pub const fn changes_instance(&self) -> bool {
        !matches!(self, Self::Ping | Self::Info | Self::ReadLease)
    }
}

/// An operator's command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// Fail over `master` now (`SENTINEL FAILOVER`). Unlike Sentinel, the node still needs a
    /// majority of votes, so a manual failover can never create a second master behind a
    /// partition; voters grant it without seeing the master down.
    Failover {
        /// Group name.
        master: String,
    },
    /// Start supervising a master (`SENTINEL MONITOR`).
    Monitor {
        /// Group name.
        name: String,
        /// Its address.
        addr: Addr,
        /// Its quorum.
        quorum: u32,
    },
    /// Stop supervising a master (`SENTINEL REMOVE`).
    Remove {
        /// Group name.
        name: String,
    },
    /// Change one option of a master (`SENTINEL SET`, one pair).
    Set {
        /// Group name.
        master: String,
        /// The option and its value.
        option: SetOption,
    },
    /// Forget what was learned about the masters matching a glob pattern (`SENTINEL RESET`):
    /// replicas are rediscovered, a failover in progress is dropped.
    Reset {
        /// Glob pattern over master names.
        pattern: String,
    },
    /// Write the state file now (`SENTINEL FLUSHCONFIG`).
    FlushConfig,
    /// A Sentinel's vote request, `SENTINEL IS-MASTER-DOWN-BY-ADDR <ip> <port> <epoch> <runid>`
    /// with a run id, received on the Sentinel port: answered with
    /// [`AdminAnswer::Down`] after the vote, if granted, is durable. Only a master with listed
    /// Sentinels votes through it, and only for a listed Sentinel.
    SentinelVote {
        /// The master's address as asked (Sentinel looks masters up by address).
        master_addr: Addr,
        /// The candidate's failover epoch.
        epoch: u64,
        /// The candidate's run id.
        candidate: NodeId,
    },
    /// The last INFO text of each named master and of its replicas, with its age (`SENTINEL
    /// INFO-CACHE`); changes nothing. Answered from the engine's own reports rather than carried
    /// in the [`View`](crate::engine::View): a view published before a round of INFO replies
    /// would keep the whole previous round alive until the next one (heaptrack, 1,000 masters:
    /// two rounds, 9.9 MB, at the heap's peak).
    InfoCache {
        /// Group names as asked; unknown names and repeats are skipped, as Sentinel does.
        masters: Vec<String>,
    },
    /// A Sentinel hello received on the Sentinel port (`PUBLISH __sentinel__:hello ...`) or on a
    /// monitored instance's hello channel; answered [`AdminAnswer::Ok`] whatever it said.
    SentinelHello(Hello),
    /// Pause or resume automatic failovers (maintenance mode) of one master, or of every master
    /// with `None`. Replicated to every node and persisted; monitoring, events and operators'
    /// failovers go on.
    Maintenance {
        /// Group name, or every group.
        master: Option<String>,
        /// Pause (else resume).
        paused: bool,
    },
}

/// The answer to an [`AdminCommand`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminAnswer {
    /// Done (or started, for a failover).
    Ok,
    /// Done, affecting this many masters (`SENTINEL RESET`).
    Count(u64),
    /// Refused: why, typed (its `Display` is Redis's error text, code first).
    Refused(AdminRefusal),
    /// The answer to [`AdminCommand::SentinelVote`].
    Down(DownAnswer),
    /// The answer to [`AdminCommand::InfoCache`], one entry per master found.
    InfoCache(Vec<CachedInfo>),
}

/// One master's entry in [`AdminAnswer::InfoCache`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedInfo {
    /// The group's name.
    pub master: String,
    /// The master, then each replica: the age of its last INFO in milliseconds (0 before the
    /// first) and the text (`None` before the first).
    pub instances: Vec<(u64, Option<Arc<str>>)>,
}

/// Why the engine refused an [`AdminCommand`]. Readers (the Sentinel port, the HTTP API) map the
/// variant, never the text; `Display` gives Sentinel's error text, code first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminRefusal {
    /// No master of that name is supervised.
    NoSuchMaster,
    /// A failover of the master is already under way (`INPROG`).
    InProgress,
    /// No replica can be promoted (`NOGOODSLAVE`).
    NoGoodReplica,
    /// A failover cannot be authorised now (`NOQUORUM`), and why.
    NoQuorum(Unauthorised),
    /// `SENTINEL MONITOR` of a name already supervised.
    DuplicateName,
    /// A quorum of 0.
    QuorumZero,
    /// A quorum larger than the number of voters.
    QuorumAboveVoters {
        /// This node and its peers.
        voters: usize,
    },
    /// `SENTINEL MONITOR` of an address another master group already holds.
    AlreadyMonitored {
        /// The address.
        addr: Addr,
        /// The group holding it.
        by: String,
    },
    /// A glob pattern longer than the engine accepts (bounded work for any client).
    PatternTooLong(crate::engine::glob::PatternTooLong),
    /// A crash-rule threshold (`down-after-refused-milliseconds`) not below the master's
    /// `down_after` (the configuration file's rule for `down_after_refused_ms`).
    RefusedNotBelowDownAfter {
        /// The master's `down_after`.
        down_after: Duration,
    },
}

impl AdminRefusal {
    /// Sentinel's error code (the first word of the text).
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::InProgress => "INPROG",
            Self::NoGoodReplica => "NOGOODSLAVE",
            Self::NoQuorum(_) => "NOQUORUM",
            _ => "ERR",
        }
    }
}

impl std::fmt::Display for AdminRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self.code();
        match self {
            Self::NoSuchMaster => write!(f, "{code} No such master with that name"),
            Self::InProgress => write!(f, "{code} Failover already in progress"),
            Self::NoGoodReplica => write!(f, "{code} No suitable replica to promote"),
            Self::NoQuorum(Unauthorised::AwaitingVoteFloor) => write!(
                f,
                "{code} This node lost its state and has not yet learned which epochs it may vote in"
            ),
            Self::NoQuorum(_) => {
                write!(f, "{code} Not enough reachable voters to authorize a failover")
            }
            Self::DuplicateName => write!(f, "{code} Duplicate master name."),
            Self::QuorumZero => write!(f, "{code} Quorum must be 1 or greater."),
            Self::QuorumAboveVoters { voters } => write!(
                f,
                "{code} Quorum must be at most the number of voters ({voters}: this node and its peers)"
            ),
            Self::AlreadyMonitored { addr, by } => {
                write!(f, "{code} {addr} is already monitored as part of '{by}'")
            }
            // Its own text carries the code.
            Self::PatternTooLong(too_long) => write!(f, "{too_long}"),
            Self::RefusedNotBelowDownAfter { down_after } => write!(
                f,
                "{code} down-after-refused-milliseconds must be less than \
                 down-after-milliseconds ({}), or 0 to turn the crash rule off",
                down_after.as_millis()
            ),
        }
    }
}

/// Something for the shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Open a connection to `addr`: resolve the host now, connect, complete a TLS handshake if a
    /// profile is given, `AUTH` if credentials are given, `CLIENT SETNAME client_name`; report
    /// [`Input::LinkUp`] or [`Input::LinkDown`].
    Connect {
        /// The link being opened.
        link: LinkId,
        /// Where to.
        addr: Addr,
        /// Credentials for `AUTH`.
        auth: Option<Credentials>,
        /// The TLS profile to connect with; `None` for plain TCP.
        tls: Option<TlsProfile>,
        /// Connection name shown in `CLIENT LIST`.
        client_name: String,
        /// Give up connecting (and report `LinkDown`) after this long.
        timeout: Duration,
    },
    /// Close a connection; no further input will be reported for it.
    Disconnect {
        /// The link.
        link: LinkId,
    },
    /// Send a command on a connected link; report the reply as [`Input::Replied`].
    Send {
        /// The link.
        link: LinkId,
        /// Correlates the reply.
        request: RequestId,
        /// The command.
        command: RedisCommand,
    },
    /// Make this state durable before performing any later output.
    Persist(Box<DurableState>),
    /// Send a message to one peer. Delivery is best effort.
    SendPeer {
        /// The peer's slot.
        to: PeerId,
        /// The message.
        message: Arc<PeerMessage>,
    },
    /// Publish an event (pub/sub, event stream, logs, scripts, webhooks).
    Emit(Event),
    /// Ask a listed Sentinel `SENTINEL IS-MASTER-DOWN-BY-ADDR <master ip> <port> <epoch>
    /// <runid|*>` on its port; report the reply as [`Input::SentinelAnswered`]. Best effort.
    AskSentinel {
        /// Group name.
        master: String,
        /// The Sentinel's configured address.
        sentinel: Addr,
        /// The master's address, as Sentinel looks it up.
        master_addr: Addr,
        /// This node's current epoch, or its failover epoch when it asks for a vote.
        epoch: u64,
        /// This node's id when it asks for a vote; `None` (`*`) to ask only whether the
        /// Sentinel sees the master down.
        candidate: Option<NodeId>,
    },
    /// Answer an operator's command.
    Answer {
        /// The ticket of the command.
        ticket: Ticket,
        /// The answer.
        answer: AdminAnswer,
    },
}
