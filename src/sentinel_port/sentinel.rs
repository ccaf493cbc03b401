//! `SENTINEL` subcommands.
//!
//! Queries are answered from the snapshot of the engine's view. Changes (`FAILOVER`, `MONITOR`,
//! `REMOVE`, `SET`, `RESET`, `FLUSHCONFIG`) are checked here with Sentinel's error texts, then
//! handed to the engine as [`AdminCommand`]s; the engine's refusals are already in Sentinel's
//! words and are replied as they are.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use crate::engine::admin::SET_OPTIONS;
use crate::engine::election::Authorisation;
use crate::engine::time::duration_millis;
use crate::engine::timing::{INFO_PERIOD, REPLICA_RECONF_TIMEOUT};
use std::sync::Arc;

use crate::engine::view::MasterView;
use crate::engine::{Addr, AdminCommand, CachedInfo, DownAnswer, Instant, NodeId, SetOption};
use crate::wire::resp::ReplyWriter;

use super::command::{AdminPlan, Args, INVALID_HOST, Op, Shown, Step};
use super::instance::{self, announced};
use super::snapshot::Snapshot;
use super::{Port, PortOptions};
use crate::engine::glob;

const NO_SUCH_MASTER: &str = "ERR No such master with that name";
const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

fn integer(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Runs `SENTINEL <op>`.
pub(super) fn run(
    port: &Port,
    snap: &Snapshot,
    op: Op,
    args: Args<'_>,
    now: Instant,
    w: &mut ReplyWriter<'_>,
) -> Step {
    let view = &snap.view;
    let options = &port.options;
    match op {
        Op::SentinelGetMasterAddr => match snap.addr_reply(args.get(2)) {
            Some(reply) => w.raw(reply),
            None => w.null_array(),
        },
        Op::SentinelMasters => {
            w.array(view.masters.len());
            for m in &view.masters {
                instance::write_master(w, m, now);
            }
        }
        Op::SentinelMaster => match snap.master(args.get(2)) {
            Some(m) => instance::write_master(w, m, now),
            None => w.error(NO_SUCH_MASTER),
        },
        Op::SentinelReplicas => match snap.master(args.get(2)) {
            Some(m) => {
                // Replicas that asked not to be announced (`replica-announced no`) are hidden.
                let shown = || m.replicas.iter().filter(|r| r.replica_announced);
                w.array(shown().count());
                for r in shown() {
                    instance::write_replica(w, m, r, now);
                }
            }
            None => w.error(NO_SUCH_MASTER),
        },
        Op::SentinelSentinels => match snap.master(args.get(2)) {
            Some(m) => {
                w.array(instance::other_voters(m));
                for p in announced(m) {
                    instance::write_sentinel(w, m, p, options.peer_timeout, now);
                }
                for s in instance::listed_sentinels(m) {
                    instance::write_listed_sentinel(w, m, s, now);
                }
            }
            None => w.error(NO_SUCH_MASTER),
        },
        Op::SentinelCkQuorum => match snap.master(args.get(2)) {
            Some(m) => ckquorum(w, &view.authorisation(m)),
            None => w.error(NO_SUCH_MASTER),
        },
        Op::SentinelMyId => w.bulk_display(&view.node_id),
        Op::SentinelIsMasterDown => return is_master_down(snap, args, w),
        Op::SentinelInfoCache => return Step::Admin(AdminPlan::one(info_cache(args))),
        Op::SentinelPendingScripts => w.array(0),
        Op::SentinelConfig => config(snap, args, w),
        Op::SentinelDebug => debug(options, args, w),
        Op::SentinelSimulateFailure => simulate_failure(port, args, w),
        Op::SentinelHelp => help(w),
        Op::SentinelFailover => match failover(snap, args) {
            Ok(command) => return Step::Admin(AdminPlan::one(command)),
            Err(e) => w.error(e),
        },
        Op::SentinelPause | Op::SentinelResume => {
            let master = match args.get(2) {
                b"*" => None,
                name => match snap.master(name) {
                    Some(m) => Some(m.name.clone()),
                    None => {
                        w.error(NO_SUCH_MASTER);
                        return Step::Next;
                    }
                },
            };
            let paused = op == Op::SentinelPause;
            return Step::Admin(AdminPlan::one(AdminCommand::Maintenance { master, paused }));
        }
        Op::SentinelReset => {
            return Step::Admin(AdminPlan::one(AdminCommand::Reset { pattern: args.text(2) }));
        }
        Op::SentinelFlushConfig => return Step::Admin(AdminPlan::one(AdminCommand::FlushConfig)),
        Op::SentinelRemove => match snap.master(args.get(2)) {
            Some(m) => {
                return Step::Admin(AdminPlan::one(AdminCommand::Remove { name: m.name.clone() }));
            }
            None => w.error(NO_SUCH_MASTER),
        },
        Op::SentinelMonitor => match monitor(args) {
            Ok(command) => {
                // An IP literal is checked; a name is resolved first, as Sentinel does.
                let resolve = match &command {
                    AdminCommand::Monitor { addr, .. }
                        if addr.host().parse::<IpAddr>().is_err() =>
                    {
                        Some(addr.host().to_owned())
                    }
                    _ => None,
                };
                return Step::Admin(AdminPlan { resolve, ..AdminPlan::one(command) });
            }
            Err(e) => w.error(&e),
        },
        Op::SentinelSet => match set(snap, args) {
            Ok(plan) => return Step::Admin(plan),
            Err(e) => w.error(&e),
        },
        _ => w.error("ERR unknown subcommand"),
    }
    Step::Next
}

/// `SENTINEL CKQUORUM`: the engine's [`crate::engine::election::Authorisation`] of a failover,
/// the rule `SENTINEL FAILOVER` applies, in Sentinel's texts.
fn ckquorum(w: &mut ReplyWriter<'_>, authorisation: &Authorisation) {
    let text = authorisation.to_string();
    if authorisation.granted() { w.simple(&text) } else { w.error(&text) }
}

/// `SENTINEL FAILOVER <name> [COORDINATED]`. The engine makes a failover of a reachable master
/// a zero-loss switchover when the master is fenced; `COORDINATED` (Valkey 9's spelling) asks for
/// exactly that, so it is refused where the switchover cannot happen rather than silently
/// becoming a failover that may lose writes.
fn failover(snap: &Snapshot, args: Args<'_>) -> Result<AdminCommand, &'static str> {
    let m = snap.master(args.get(2)).ok_or(NO_SUCH_MASTER)?;
    match args.len() {
        3 => {}
        4 if args.is(3, "coordinated") => {
            if m.switchover_refusal().is_some() {
                return Err("ERR COORDINATED failover needs a reachable master with fencing on: \
                            use FAILOVER without it");
            }
        }
        _ => return Err("ERR syntax error"),
    }
    Ok(AdminCommand::Failover { master: m.name.clone() })
}

/// `SENTINEL IS-MASTER-DOWN-BY-ADDR ip port epoch runid`. With a run id, for a master with
/// listed Sentinels (Sentinel-compatible peering), it is a Sentinel's vote request: the engine
/// decides it and the reply, `[down, leader, leader-epoch]`, leaves once the vote is durable.
/// Otherwise Picket's nodes vote over their own gossip, and the reply is `[down, "*", 0]`:
/// whether this node sees the master at `ip:port` subjectively down (never in TILT, as
/// Sentinel).
fn is_master_down(snap: &Snapshot, args: Args<'_>, w: &mut ReplyWriter<'_>) -> Step {
    let (Some(port), Some(epoch)) = (integer(args.get(3)), integer(args.get(4))) else {
        w.error(NOT_AN_INTEGER);
        return Step::Next;
    };
    let view = &snap.view;
    let host = args.get(2);
    let asked = |m: &&Arc<MasterView>| {
        m.addr.host().as_bytes().eq_ignore_ascii_case(host) && i64::from(m.addr.port()) == port
    };
    let master = view.masters.iter().find(asked);
    let vote = master.filter(|m| !m.sentinels.is_empty()).and_then(|m| {
        let candidate: NodeId = args.text(5).to_ascii_lowercase().parse().ok()?;
        let epoch = u64::try_from(epoch).ok()?;
        Some(AdminCommand::SentinelVote { master_addr: m.addr.clone(), epoch, candidate })
    });
    if let Some(command) = vote {
        return Step::Admin(AdminPlan::one(command));
    }
    let down = view.tilt_since.is_none() && master.is_some_and(|m| m.master.sdown_since.is_some());
    write_down_answer(w, &DownAnswer { master_down: down, leader: None, leader_epoch: 0 });
    Step::Next
}

/// `[down, leader|*, leader-epoch]`, Sentinel's `IS-MASTER-DOWN-BY-ADDR` reply.
pub(super) fn write_down_answer(w: &mut ReplyWriter<'_>, answer: &DownAnswer) {
    w.array(3);
    w.integer(i64::from(answer.master_down));
    match answer.leader {
        Some(leader) => w.bulk_display(&leader),
        None => w.bulk_str("*"),
    }
    w.integer(i64::try_from(answer.leader_epoch).unwrap_or(i64::MAX));
}

/// `SENTINEL INFO-CACHE name...`: asked of the engine, which keeps the texts (see
/// [`AdminCommand::InfoCache`]).
fn info_cache(args: Args<'_>) -> AdminCommand {
    let masters = args.from(2).map(|name| String::from_utf8_lossy(name).into_owned()).collect();
    AdminCommand::InfoCache { masters }
}

/// The engine's answer to `SENTINEL INFO-CACHE`: for each master found, its name and
/// `[age-ms, INFO text]` for the master then each replica.
pub(super) fn write_info_cache(w: &mut ReplyWriter<'_>, entries: &[CachedInfo]) {
    w.array(entries.len() * 2);
    for entry in entries {
        w.bulk_str(&entry.master);
        w.array(entry.instances.len());
        for (age_ms, text) in &entry.instances {
            w.array(2);
            w.integer(i64::try_from(*age_ms).unwrap_or(i64::MAX));
            match text {
                Some(text) => w.bulk_str(text),
                None => w.null_bulk(),
            }
        }
    }
}

/// `SENTINEL MONITOR name ip port quorum`, checked in Sentinel's order with its texts.
fn monitor(args: Args<'_>) -> Result<AdminCommand, String> {
    let quorum = integer(args.get(5)).ok_or("ERR Invalid quorum")?;
    let port = integer(args.get(4)).ok_or("ERR Invalid port")?;
    if quorum <= 0 {
        return Err("ERR Quorum must be 1 or greater.".to_owned());
    }
    let host = std::str::from_utf8(args.get(3)).unwrap_or_default();
    if Addr::new(host, 1).is_err() || !plausible_host(host) {
        return Err(INVALID_HOST.to_owned());
    }
    let addr = u16::try_from(port)
        .ok()
        .and_then(|p| Addr::new(host, p).ok())
        .ok_or("ERR Invalid port number.")?;
    let name = std::str::from_utf8(args.get(2)).unwrap_or_default();
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        // Names travel in space-separated event payloads; the configuration file has the same
        // rule.
        return Err("ERR Invalid master name: it must not be empty or contain spaces".to_owned());
    }
    let quorum = u32::try_from(quorum).map_err(|_| "ERR Invalid quorum".to_owned())?;
    Ok(AdminCommand::Monitor { name: name.to_owned(), addr, quorum })
}

/// Whether `host` is an IP literal or could be a host name (RFC 1123 labels, the last one not
/// all digits): `999.1.1.1` is neither, and Sentinel refuses it because it does not resolve.
fn plausible_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    host.split('.').all(label_ok)
        && host.rsplit('.').next().is_some_and(|top| !top.bytes().all(|b| b.is_ascii_digit()))
}

/// `SENTINEL SET name option value [option value ...]`: every pair parsed first; the valid pairs
/// before the first bad one are applied, one admin command each, and the error is the reply, as
/// Sentinel leaves earlier pairs applied.
fn set(snap: &Snapshot, args: Args<'_>) -> Result<AdminPlan, String> {
    let master = snap.master(args.get(2)).ok_or(NO_SUCH_MASTER)?;
    let mut commands = Vec::new();
    let mut then_error = None;
    let mut i = 3;
    while i < args.len() {
        let name = args.text(i);
        let has_value = i + 1 < args.len();
        let lower = name.to_ascii_lowercase();
        let error = if !has_value {
            Some(format!("ERR Unknown option or number of arguments for SENTINEL SET '{name}'"))
        } else if lower == "notification-script" || lower == "client-reconfig-script" {
            Some(
                "ERR Reconfiguration of scripts path is denied for security reasons. Check the \
                 deny-scripts-reconfig configuration directive in your config file."
                    .to_owned(),
            )
        } else if lower == "rename-command" {
            Some(
                "ERR rename-command is not supported: Picket sends commands to Redis under \
                 their own names"
                    .to_owned(),
            )
        } else {
            match SetOption::parse(&name, &args.text(i + 1)) {
                Some(Ok(option)) => {
                    commands.push(AdminCommand::Set { master: master.name.clone(), option });
                    None
                }
                Some(Err(e)) => Some(e),
                None => Some(format!(
                    "ERR Unknown option or number of arguments for SENTINEL SET '{name}'"
                )),
            }
        };
        if let Some(e) = error {
            then_error = Some(e);
            break;
        }
        i += 2;
    }
    debug_assert!(SET_OPTIONS.iter().all(|o| SetOption::parse(o, "1").is_some()));
    Ok(AdminPlan { commands, then_error, resolve: None, ok_integer: None })
}

/// `SENTINEL CONFIG GET pattern...` / `SET param value...`.
///
/// The globals are derived from the configuration: host names are always resolved and
/// reported as configured, the announced address is `node.client_announce`, and peers
/// authenticate with `node.peer_secret`, which is never shown. Picket never rewrites its
/// configuration file, so `SET` is refused with the key to change instead.
fn config(snap: &Snapshot, args: Args<'_>, w: &mut ReplyWriter<'_>) {
    let announce = &snap.view.client_addr;
    let port = announce.port().to_string();
    let globals: [(&str, &str); 7] = [
        ("resolve-hostnames", "yes"),
        ("announce-hostnames", "yes"),
        ("announce-ip", announce.host()),
        ("announce-port", &port),
        ("sentinel-user", ""),
        ("sentinel-pass", ""),
        ("loglevel", "notice"),
    ];
    if args.is(2, "get") {
        let matching: Vec<(&str, &str)> = globals
            .iter()
            .copied()
            .filter(|(key, _)| {
                args.from(3).any(|p| glob::matches(&p.to_ascii_lowercase(), key.as_bytes()))
            })
            .collect();
        w.map(matching.len());
        for (key, value) in matching {
            w.bulk_str(key);
            w.bulk_str(value);
        }
        return;
    }
    if !args.is(2, "set") {
        return w
            .error("ERR Only SENTINEL CONFIG GET <option> / SET <option> <value> are supported.");
    }
    let param = args.text(3).to_ascii_lowercase();
    let hint = match param.as_str() {
        "announce-ip" | "announce-port" => "set node.client_announce",
        "resolve-hostnames" | "announce-hostnames" => {
            "host names are always resolved and announced as configured"
        }
        "sentinel-user" | "sentinel-pass" => "peers authenticate with node.peer_secret",
        "loglevel" => "set the RUST_LOG environment variable",
        _ => {
            return w.error_fmt(format_args!(
                "ERR Invalid argument '{}' to SENTINEL CONFIG SET",
                Shown(args.get(3), 128)
            ));
        }
    };
    w.error_fmt(format_args!(
        "ERR Picket's settings live in its configuration file, which it never rewrites: {hint} \
         in the file and restart (SENTINEL CONFIG SET {param} is not supported)"
    ));
}

/// `SENTINEL DEBUG`: Sentinel's timer names with Picket's values. Several of Sentinel's fixed
/// periods are per master in Picket (derived from `down_after_ms`), so those show the value for
/// Sentinel's default `down-after-milliseconds` of 30 s. They cannot be set at runtime.
fn debug(options: &PortOptions, args: Args<'_>, w: &mut ReplyWriter<'_>) {
    if args.len() > 2 {
        return w.error(
            "ERR Picket's timings are derived from each master's down_after_ms and \
             failover_timeout_ms and from the [node] settings of its configuration file; they \
             cannot be changed at runtime",
        );
    }
    let ms = duration_millis;
    let timers: [(&str, u64); 13] = [
        ("INFO-PERIOD", ms(INFO_PERIOD)),
        ("PING-PERIOD", 1000),
        ("ASK-PERIOD", ms(options.heartbeat)),
        ("PUBLISH-PERIOD", ms(options.heartbeat)),
        ("DEFAULT-DOWN-AFTER", 30_000),
        ("DEFAULT-FAILOVER-TIMEOUT", 180_000),
        ("TILT-TRIGGER", ms(options.tilt_trigger)),
        ("TILT-PERIOD", ms(options.tilt_period)),
        ("SLAVE-RECONF-TIMEOUT", ms(REPLICA_RECONF_TIMEOUT)),
        ("MIN-LINK-RECONNECT-PERIOD", 1000),
        ("ELECTION-TIMEOUT", 10_000),
        ("SCRIPT-MAX-RUNTIME", 60_000),
        ("SCRIPT-RETRY-DELAY", 30_000),
    ];
    w.map(timers.len());
    for (name, value) in timers {
        w.bulk_str(name);
        w.bulk_u64(value);
    }
}

/// `SENTINEL SIMULATE-FAILURE (CRASH-AFTER-ELECTION|CRASH-AFTER-PROMOTION|HELP)...`: replaces the
/// armed crash points, as Sentinel does.
fn simulate_failure(port: &Port, args: Args<'_>, w: &mut ReplyWriter<'_>) {
    let (mut election, mut promotion) = (false, false);
    for (i, _) in args.from(2).enumerate() {
        let i = i + 2;
        if args.is(i, "crash-after-election") {
            election = true;
        } else if args.is(i, "crash-after-promotion") {
            promotion = true;
        } else if args.is(i, "help") {
            w.array(2);
            w.bulk_str("crash-after-election");
            w.bulk_str("crash-after-promotion");
            return;
        } else {
            return w.error("ERR Unknown failure simulation specified");
        }
    }
    let failpoints = &port.hub.failpoints;
    failpoints.crash_after_election.store(election, Ordering::SeqCst);
    failpoints.crash_after_promotion.store(promotion, Ordering::SeqCst);
    if election {
        tracing::warn!("failure simulation: this node will crash after being elected leader");
    }
    if promotion {
        tracing::warn!("failure simulation: this node will crash after promoting a replica");
    }
    w.simple("OK");
}

/// `SENTINEL HELP`: status lines, as Redis's help replies.
fn help(w: &mut ReplyWriter<'_>) {
    let lines = [
        "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CKQUORUM <master-name>",
        "    Check if the current Sentinel configuration is able to reach the quorum needed",
        "    to failover a master and the majority needed to authorize the failover.",
        "CONFIG GET <param> [<param> ...]",
        "    Show the global Sentinel configuration (set it in the configuration file).",
        "DEBUG",
        "    Show the timers Sentinel clients know, with Picket's values.",
        "GET-MASTER-ADDR-BY-NAME <master-name>",
        "    Return the ip and port number of the master with that name.",
        "FAILOVER <master-name> [COORDINATED]",
        "    Manually failover a master node without asking for agreement from other",
        "    Sentinels (Picket still needs a majority of voters to elect itself). A reachable",
        "    master is switched over without losing writes; COORDINATED insists on that.",
        "FLUSHCONFIG",
        "    Write the state file now.",
        "INFO-CACHE <master-name> [<master-name> ...]",
        "    Return last INFO output from masters and replicas.",
        "IS-MASTER-DOWN-BY-ADDR <ip> <port> <current-epoch> <runid>",
        "    Check if the master specified by ip:port is down from current Sentinel's point",
        "    of view (Picket never votes through this command).",
        "MASTER <master-name>",
        "    Show the state and info of the specified master.",
        "MASTERS",
        "    Show a list of monitored masters and their state.",
        "MONITOR <name> <ip> <port> <quorum>",
        "    Start monitoring a new master with the specified name, ip, port and quorum.",
        "MYID",
        "    Return the ID of the Sentinel instance.",
        "PENDING-SCRIPTS",
        "    Get pending scripts information.",
        "PICKET-PAUSE <master-name>|*",
        "    Pause automatic failovers of a master (or of all): maintenance mode, on every node.",
        "PICKET-RESUME <master-name>|*",
        "    Resume automatic failovers of a master (or of all).",
        "REMOVE <master-name>",
        "    Remove master from Sentinel's monitor list.",
        "REPLICAS <master-name>",
        "    Show a list of replicas for this master and their state.",
        "RESET <pattern>",
        "    Reset masters for specific master name matching this pattern.",
        "SENTINELS <master-name>",
        "    Show a list of Sentinel instances for this master and their state.",
        "SET <master-name> <option> <value> [<option> <value> ...]",
        "    Set configuration parameters for certain masters.",
        "SIMULATE-FAILURE [CRASH-AFTER-ELECTION] [CRASH-AFTER-PROMOTION] [HELP]",
        "    Simulate a Sentinel crash.",
        "HELP",
        "    Print this help.",
    ];
    w.array(lines.len());
    for line in lines {
        w.simple(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::resp::{Frame, Limits, Protocol};

    fn reply(write: impl FnOnce(&mut ReplyWriter<'_>)) -> Frame {
        let mut out = Vec::new();
        write(&mut ReplyWriter::new(&mut out, Protocol::Resp2));
        Frame::parse(&out, &Limits::DEFAULT).unwrap().unwrap().0
    }

    #[test]
    fn ckquorum_texts_are_sentinels() {
        assert_eq!(
            reply(|w| ckquorum(w, &Authorisation::new(3, 2, 2, false))),
            Frame::Simple(
                "OK 3 usable Sentinels. Quorum and failover authorization can be reached".into()
            )
        );
        assert_eq!(
            reply(|w| ckquorum(w, &Authorisation::new(3, 2, 0, false))),
            Frame::Error(
                "NOQUORUM 1 usable Sentinels. Not enough available Sentinels to reach the \
                 specified quorum for this master. Not enough available Sentinels to reach the \
                 majority and authorize a failover"
                    .into()
            )
        );
        assert_eq!(
            reply(|w| ckquorum(w, &Authorisation::new(5, 2, 1, false))),
            Frame::Error(
                "NOQUORUM 2 usable Sentinels. Not enough available Sentinels to reach the \
                 majority and authorize a failover"
                    .into()
            )
        );
        // The engine's own refusal, which Sentinel does not have: no vote floor yet.
        assert_eq!(
            reply(|w| ckquorum(w, &Authorisation::new(3, 2, 2, true))),
            Frame::Error(
                "NOQUORUM 3 usable Sentinels. This node lost its state and has not yet learned \
                 which epochs it may vote in"
                    .into()
            )
        );
    }
}
