//! The command table, and the checks Redis applies before running any command.
//!
//! The order of checks is Redis's `processCommand`: unknown command or subcommand, then arity,
//! then authentication, then the RESP2 subscribed-mode restriction. So an unauthenticated
//! client that misspells a command learns that it is unknown, exactly as on Sentinel.

use std::fmt;
use std::ops::Range;

use crate::engine::AdminCommand;
use crate::wire::resp::ReplyWriter;

/// A request's arguments: ranges into the connection's input buffer, so that nothing is copied
/// or allocated to look at them.
#[derive(Clone, Copy)]
pub(super) struct Args<'a> {
    buf: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    /// Arguments `ranges` of `buf`.
    pub(super) const fn new(buf: &'a [u8], ranges: &'a [Range<usize>]) -> Self {
        Self { buf, ranges }
    }

    /// How many arguments, the command name included.
    pub(super) const fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Argument `i`, or empty if there is none.
    pub(super) fn get(&self, i: usize) -> &'a [u8] {
        self.ranges.get(i).and_then(|r| self.buf.get(r.clone())).unwrap_or_default()
    }

    /// Argument `i` as text (lossy: names and values are ASCII in practice).
    pub(super) fn text(&self, i: usize) -> String {
        String::from_utf8_lossy(self.get(i)).into_owned()
    }

    /// Whether argument `i` is `word`, ignoring ASCII case.
    pub(super) fn is(&self, i: usize, word: &str) -> bool {
        self.get(i).eq_ignore_ascii_case(word.as_bytes())
    }

    /// Arguments from `start` on.
    pub(super) fn from(&self, start: usize) -> impl Iterator<Item = &'a [u8]> + '_ {
        (start..self.len()).map(|i| self.get(i))
    }
}

/// Shows an argument in an error message as Redis does: at most `max` bytes, lossy UTF-8 (CR
/// and LF become spaces when the error line is written).
pub(super) struct Shown<'a>(pub(super) &'a [u8], pub(super) usize);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.get(..self.1).unwrap_or(self.0);
        f.write_str(&String::from_utf8_lossy(bytes))
    }
}

/// What a command does, once resolved.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum Op {
    Auth,
    ClientGetName,
    ClientHelp,
    ClientId,
    ClientInfo,
    ClientKill,
    ClientList,
    ClientSetInfo,
    ClientSetName,
    Command,
    CommandCount,
    CommandDocs,
    CommandGetKeys,
    CommandHelp,
    CommandInfo,
    CommandList,
    /// A container command given without a subcommand: never run (arity says so first).
    Container,
    Echo,
    Hello,
    Info,
    Ping,
    PSubscribe,
    Publish,
    PUnsubscribe,
    Quit,
    Role,
    SentinelCkQuorum,
    SentinelConfig,
    SentinelDebug,
    SentinelFailover,
    SentinelFlushConfig,
    SentinelGetMasterAddr,
    SentinelHelp,
    SentinelInfoCache,
    SentinelIsMasterDown,
    SentinelMaster,
    SentinelMasters,
    SentinelMonitor,
    SentinelMyId,
    SentinelPause,
    SentinelPendingScripts,
    SentinelRemove,
    SentinelReplicas,
    SentinelReset,
    SentinelResume,
    SentinelSentinels,
    SentinelSet,
    SentinelSimulateFailure,
    Shutdown,
    Subscribe,
    Unsubscribe,
}

/// One command or subcommand, as `COMMAND INFO` and `COMMAND DOCS` describe it.
#[derive(Debug)]
pub(super) struct Spec {
    /// Lower-case name (`masters` for `sentinel|masters`).
    pub(super) name: &'static str,
    /// Name in errors and `CLIENT LIST` (`sentinel|masters`).
    pub(super) full_name: &'static str,
    /// Redis arity: `n` exactly, or at least `-n` arguments when negative (the name counts).
    pub(super) arity: i32,
    /// `COMMAND INFO` flags.
    pub(super) flags: &'static [&'static str],
    /// ACL categories.
    pub(super) acl: &'static [&'static str],
    /// `COMMAND DOCS` summary.
    pub(super) summary: &'static str,
    /// The Redis version that introduced it.
    pub(super) since: &'static str,
    /// `COMMAND DOCS` group.
    pub(super) group: &'static str,
    /// What it does.
    pub(super) op: Op,
    /// Subcommands of a container command.
    pub(super) subcommands: &'static [Self],
}

impl Spec {
    /// Whether `argc` arguments fit the arity.
    pub(super) const fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = self.arity as i64;
        if arity >= 0 { argc == arity } else { argc >= -arity }
    }
}

const ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];
const ADMIN_ACL: &[&str] = &["@admin", "@slow", "@dangerous"];
const CONN: &[&str] = &["noscript", "loading", "stale", "fast"];
const CONN_ACL: &[&str] = &["@fast", "@connection"];
const PUBSUB: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const PUBSUB_ACL: &[&str] = &["@pubsub", "@slow"];

macro_rules! spec {
    ($name:literal, $full:expr, $arity:expr, $flags:expr, $acl:expr, $op:ident,
     $group:literal, $since:literal, $summary:literal) => {
        spec!($name, $full, $arity, $flags, $acl, $op, $group, $since, $summary, &[])
    };
    ($name:literal, $full:expr, $arity:expr, $flags:expr, $acl:expr, $op:ident,
     $group:literal, $since:literal, $summary:literal, $subs:expr) => {
        Spec {
            name: $name,
            full_name: $full,
            arity: $arity,
            flags: $flags,
            acl: $acl,
            summary: $summary,
            since: $since,
            group: $group,
            op: Op::$op,
            subcommands: $subs,
        }
    };
}

macro_rules! sentinel {
    ($name:literal, $arity:expr, $op:ident, $summary:literal) => {
        spec!(
            $name,
            concat!("sentinel|", $name),
            $arity,
            ADMIN,
            ADMIN_ACL,
            $op,
            "sentinel",
            "2.8.4",
            $summary
        )
    };
}

/// `SENTINEL` subcommands, the hot one first (lookup is a short scan in this order). The
/// Valkey 8 aliases (`primary` for `master`) answer exactly as the originals.
pub(super) static SENTINEL_SUBCOMMANDS: [Spec; 27] = [
    sentinel!(
        "get-master-addr-by-name",
        3,
        SentinelGetMasterAddr,
        "Returns the port and address of a master instance."
    ),
    sentinel!("masters", 2, SentinelMasters, "Returns a list of monitored masters."),
    sentinel!("master", 3, SentinelMaster, "Returns the state of a master instance."),
    sentinel!("replicas", 3, SentinelReplicas, "Returns a list of the monitored replicas."),
    sentinel!("slaves", 3, SentinelReplicas, "Returns a list of the monitored replicas."),
    sentinel!("sentinels", 3, SentinelSentinels, "Returns a list of Sentinel instances."),
    sentinel!("ckquorum", 3, SentinelCkQuorum, "Checks for a Sentinel quorum."),
    sentinel!("config", -4, SentinelConfig, "Gets or sets the global Sentinel configuration."),
    sentinel!(
        "debug",
        -2,
        SentinelDebug,
        "Lists or updates the current configurable parameters of Sentinel."
    ),
    sentinel!(
        "failover",
        -3,
        SentinelFailover,
        "Forces a Sentinel failover (a zero-loss switchover when the master is reachable)."
    ),
    sentinel!("flushconfig", 2, SentinelFlushConfig, "Writes the state to disk."),
    sentinel!(
        "info-cache",
        -3,
        SentinelInfoCache,
        "Returns the cached INFO replies from the deployment's instances."
    ),
    sentinel!(
        "is-master-down-by-addr",
        6,
        SentinelIsMasterDown,
        "Determines whether a master instance is down."
    ),
    sentinel!("monitor", 6, SentinelMonitor, "Starts monitoring."),
    sentinel!("myid", 2, SentinelMyId, "Returns the Sentinel instance ID."),
    sentinel!(
        "pending-scripts",
        2,
        SentinelPendingScripts,
        "Returns information about pending scripts for Sentinel."
    ),
    sentinel!("remove", 3, SentinelRemove, "Stops monitoring."),
    sentinel!("reset", 3, SentinelReset, "Resets Sentinel masters by name matching a pattern."),
    sentinel!("set", -5, SentinelSet, "Changes the configuration of a monitored master."),
    sentinel!("simulate-failure", -3, SentinelSimulateFailure, "Simulates failover scenarios."),
    sentinel!("help", 2, SentinelHelp, "Returns helpful text about the different subcommands."),
    sentinel!(
        "picket-pause",
        3,
        SentinelPause,
        "Pauses automatic failovers of a master, or of every master with * (Picket)."
    ),
    sentinel!(
        "picket-resume",
        3,
        SentinelResume,
        "Resumes automatic failovers of a master, or of every master with * (Picket)."
    ),
    sentinel!(
        "get-primary-addr-by-name",
        3,
        SentinelGetMasterAddr,
        "Returns the port and address of a primary instance (Valkey alias)."
    ),
    sentinel!(
        "primaries",
        2,
        SentinelMasters,
        "Returns a list of monitored primaries (Valkey alias)."
    ),
    sentinel!(
        "primary",
        3,
        SentinelMaster,
        "Returns the state of a primary instance (Valkey alias)."
    ),
    sentinel!(
        "is-primary-down-by-addr",
        6,
        SentinelIsMasterDown,
        "Determines whether a primary instance is down (Valkey alias)."
    ),
];

macro_rules! client {
    ($name:literal, $arity:expr, $op:ident, $since:literal, $summary:literal) => {
        spec!(
            $name,
            concat!("client|", $name),
            $arity,
            CONN,
            CONN_ACL,
            $op,
            "connection",
            $since,
            $summary
        )
    };
}

/// `CLIENT` subcommands.
pub(super) static CLIENT_SUBCOMMANDS: [Spec; 8] = [
    client!("setname", 3, ClientSetName, "2.6.9", "Sets the connection name."),
    client!(
        "setinfo",
        4,
        ClientSetInfo,
        "7.2.0",
        "Sets information specific to the client or connection."
    ),
    client!("getname", 2, ClientGetName, "2.6.9", "Returns the name of the connection."),
    client!("id", 2, ClientId, "5.0.0", "Returns the unique client ID of the connection."),
    client!("info", 2, ClientInfo, "6.2.0", "Returns information about the connection."),
    client!("list", -2, ClientList, "2.4.0", "Lists open connections."),
    client!("kill", -3, ClientKill, "2.4.0", "Terminates open connections."),
    client!(
        "help",
        2,
        ClientHelp,
        "5.0.0",
        "Returns helpful text about the different subcommands."
    ),
];

macro_rules! command_sub {
    ($name:literal, $arity:expr, $op:ident, $summary:literal) => {
        spec!(
            $name,
            concat!("command|", $name),
            $arity,
            &["loading", "stale"],
            &["@slow", "@connection"],
            $op,
            "server",
            "7.0.0",
            $summary
        )
    };
}

/// `COMMAND` subcommands.
pub(super) static COMMAND_SUBCOMMANDS: [Spec; 6] = [
    command_sub!("count", 2, CommandCount, "Returns a count of commands."),
    command_sub!(
        "docs",
        -2,
        CommandDocs,
        "Returns documentary information about one, multiple or all commands."
    ),
    command_sub!(
        "getkeys",
        -3,
        CommandGetKeys,
        "Extracts the key names from an arbitrary command."
    ),
    command_sub!("help", 2, CommandHelp, "Returns helpful text about the different subcommands."),
    command_sub!(
        "info",
        -2,
        CommandInfo,
        "Returns information about one, multiple or all commands."
    ),
    command_sub!("list", -2, CommandList, "Returns a list of command names."),
];

/// Every top-level command, `SENTINEL` first. `ECHO` and `QUIT` are not in Sentinel 7's table
/// (it answers them "unknown command"); Picket answers them, since clients use them as
/// liveness checks and to say goodbye.
pub(super) static COMMANDS: [Spec; 16] = [
    spec!(
        "sentinel",
        "sentinel",
        -2,
        ADMIN,
        ADMIN_ACL,
        Container,
        "sentinel",
        "2.8.4",
        "A container for Redis Sentinel commands.",
        &SENTINEL_SUBCOMMANDS
    ),
    spec!(
        "ping",
        "ping",
        -1,
        CONN,
        CONN_ACL,
        Ping,
        "connection",
        "1.0.0",
        "Returns the server's liveliness response."
    ),
    spec!(
        "auth",
        "auth",
        -2,
        &["noscript", "loading", "stale", "fast", "no_auth"],
        CONN_ACL,
        Auth,
        "connection",
        "1.0.0",
        "Authenticates the connection."
    ),
    spec!(
        "hello",
        "hello",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth"],
        CONN_ACL,
        Hello,
        "connection",
        "6.0.0",
        "Handshakes with the Redis server."
    ),
    spec!(
        "client",
        "client",
        -2,
        &["sentinel"],
        &["@slow"],
        Container,
        "connection",
        "2.4.0",
        "A container for client connection commands.",
        &CLIENT_SUBCOMMANDS
    ),
    spec!(
        "info",
        "info",
        -1,
        &["loading", "stale", "sentinel"],
        &["@slow", "@dangerous"],
        Info,
        "server",
        "1.0.0",
        "Returns information and statistics about the server."
    ),
    spec!(
        "role",
        "role",
        1,
        &["noscript", "loading", "stale", "fast", "sentinel"],
        &["@admin", "@fast", "@dangerous"],
        Role,
        "server",
        "2.8.12",
        "Returns the replication role."
    ),
    spec!(
        "subscribe",
        "subscribe",
        -2,
        PUBSUB,
        PUBSUB_ACL,
        Subscribe,
        "pubsub",
        "2.0.0",
        "Listens for messages published to channels."
    ),
    spec!(
        "psubscribe",
        "psubscribe",
        -2,
        PUBSUB,
        PUBSUB_ACL,
        PSubscribe,
        "pubsub",
        "2.0.0",
        "Listens for messages published to channels that match one or more patterns."
    ),
    spec!(
        "unsubscribe",
        "unsubscribe",
        -1,
        PUBSUB,
        PUBSUB_ACL,
        Unsubscribe,
        "pubsub",
        "2.0.0",
        "Stops listening to messages posted to channels."
    ),
    spec!(
        "punsubscribe",
        "punsubscribe",
        -1,
        PUBSUB,
        PUBSUB_ACL,
        PUnsubscribe,
        "pubsub",
        "2.0.0",
        "Stops listening to messages published to channels that match one or more patterns."
    ),
    spec!(
        "publish",
        "publish",
        3,
        &["pubsub", "loading", "stale", "fast"],
        &["@pubsub", "@fast"],
        Publish,
        "pubsub",
        "2.0.0",
        "Accepts Sentinel hello messages (Sentinel's own PUBLISH)."
    ),
    spec!(
        "command",
        "command",
        -1,
        &["loading", "stale", "sentinel"],
        &["@slow", "@connection"],
        Command,
        "server",
        "2.8.13",
        "Returns detailed information about all commands.",
        &COMMAND_SUBCOMMANDS
    ),
    spec!(
        "shutdown",
        "shutdown",
        -1,
        &["admin", "noscript", "loading", "stale", "no_multi", "sentinel"],
        &["@admin", "@slow", "@dangerous"],
        Shutdown,
        "server",
        "1.0.0",
        "Stops the daemon (only for an authenticated admin, on a port with passwords)."
    ),
    spec!(
        "echo",
        "echo",
        2,
        CONN,
        CONN_ACL,
        Echo,
        "connection",
        "1.0.0",
        "Returns the given string."
    ),
    spec!(
        "quit",
        "quit",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth"],
        CONN_ACL,
        Quit,
        "connection",
        "1.0.0",
        "Closes the connection."
    ),
];

/// Finds `name` among `specs`, ignoring ASCII case.
pub(super) fn find<'s>(specs: &'s [Spec], name: &[u8]) -> Option<&'s Spec> {
    specs
        .iter()
        .find(|s| s.name.len() == name.len() && s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Every command and subcommand, in table order (`COMMAND LIST`).
pub(super) fn all() -> impl Iterator<Item = &'static Spec> {
    COMMANDS.iter().flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
}

/// A request resolved to a command, or the error Redis gives before running anything.
pub(super) enum Resolved {
    /// Run it.
    Run(&'static Spec),
    /// Reply with this error and go on with the next request.
    Reject,
}

/// Looks the request up and checks its arity, writing the error if it fails.
pub(super) fn resolve(args: Args<'_>, w: &mut ReplyWriter<'_>) -> Resolved {
    let name = args.get(0);
    let Some(top) = find(&COMMANDS, name) else {
        unknown_command(args, w);
        return Resolved::Reject;
    };
    let spec = if top.subcommands.is_empty() || args.len() < 2 {
        top
    } else {
        match find(top.subcommands, args.get(1)) {
            Some(sub) => sub,
            None => {
                w.error_fmt(format_args!(
                    "ERR unknown subcommand '{}'. Try {} HELP.",
                    Shown(args.get(1), 128),
                    top.name.to_ascii_uppercase()
                ));
                return Resolved::Reject;
            }
        }
    };
    if !spec.arity_ok(args.len()) {
        wrong_arity(spec, w);
        return Resolved::Reject;
    }
    Resolved::Run(spec)
}

/// `-ERR wrong number of arguments for '<cmd>' command`.
pub(super) fn wrong_arity(spec: &Spec, w: &mut ReplyWriter<'_>) {
    w.error_fmt(format_args!("ERR wrong number of arguments for '{}' command", spec.full_name));
}

/// Redis's unknown-command error: the name, then the first arguments quoted, each followed by a
/// space, until 128 bytes of them have been shown.
fn unknown_command(args: Args<'_>, w: &mut ReplyWriter<'_>) {
    struct Beginning<'a>(Args<'a>);
    impl fmt::Display for Beginning<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let mut shown = 0;
            for arg in self.0.from(1) {
                if shown >= 128 {
                    break;
                }
                let take = arg.len().min(128 - shown);
                write!(f, "'{}' ", Shown(arg, take))?;
                shown += take + 3;
            }
            Ok(())
        }
    }
    w.error_fmt(format_args!(
        "ERR unknown command '{}', with args beginning with: {}",
        Shown(args.get(0), 128),
        Beginning(args)
    ));
}

/// Whether running `op` with `args` takes the `admin` role: anything that changes the node or
/// what it supervises, stops it, or disconnects other clients. A `read` user keeps everything a
/// Sentinel client library needs: discovery, `SUBSCRIBE`, `INFO`, `ROLE`, `PING`, `CLIENT`
/// (but `KILL`), `COMMAND`, `SENTINEL CONFIG GET`, `SENTINEL DEBUG` without arguments.
pub(super) fn needs_admin(op: Op, args: Args<'_>) -> bool {
    match op {
        Op::SentinelFailover
        | Op::SentinelFlushConfig
        | Op::SentinelMonitor
        | Op::SentinelPause
        | Op::SentinelRemove
        | Op::SentinelReset
        | Op::SentinelResume
        | Op::SentinelSet
        | Op::SentinelSimulateFailure
        | Op::ClientKill
        | Op::Shutdown
        // Hellos from other Sentinels carry configuration (see `sentinel_peers`).
        | Op::Publish => true,
        // With a run id it is a vote request, which may cast this node's vote.
        Op::SentinelIsMasterDown => !args.is(5, "*"),
        Op::SentinelConfig => !args.is(2, "get"),
        Op::SentinelDebug => args.len() > 2,
        _ => false,
    }
}

/// What the connection must do after a command.
pub(super) enum Step {
    /// Go on with the next request.
    Next,
    /// Write what is pending, then close (`QUIT`, `CLIENT KILL` of itself).
    Close,
    /// Ask the engine, then reply (the next requests wait, so replies stay in order).
    Admin(AdminPlan),
}

/// Admin commands to send one after another, and how to reply.
#[derive(Debug)]
pub(super) struct AdminPlan {
    /// Sent in order; the first refusal is the reply and the rest are not sent.
    pub(super) commands: Vec<AdminCommand>,
    /// The reply once all were accepted: an error found after the accepted ones (a bad
    /// `SENTINEL SET` pair after good ones, which Sentinel leaves applied), or `None` for the
    /// command's success reply (`+OK`, or the count for `RESET`).
    pub(super) then_error: Option<String>,
    /// A host name that must resolve before anything is sent (`SENTINEL MONITOR`'s, as
    /// Sentinel resolves it), else the reply is [`INVALID_HOST`].
    pub(super) resolve: Option<String>,
    /// The success reply is this integer rather than `+OK` (`PUBLISH`'s `:1`).
    pub(super) ok_integer: Option<i64>,
}

/// Sentinel's reply to a `SENTINEL MONITOR` address it cannot parse or resolve.
pub(super) const INVALID_HOST: &str = "ERR Invalid IP address or hostname specified";

impl AdminPlan {
    /// One command.
    pub(super) fn one(command: AdminCommand) -> Self {
        Self { commands: vec![command], then_error: None, resolve: None, ok_integer: None }
    }
}
