//! `INFO`, `ROLE` and `COMMAND`: what the server says about itself.
//!
//! `INFO` has the sections a Sentinel has (`server`, `clients`, `stats`, `cpu`, `sentinel`), in
//! that order, with the `masterN:` lines clients and exporters parse. `COMMAND` describes
//! Picket's command table in Redis 7's shapes, enough for clients that probe it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::engine::Instant;
use crate::engine::time::duration_millis;
use crate::wire::resp::ReplyWriter;

use super::command::{self, Args, Op, Spec};
use super::snapshot::Snapshot;
use super::{OUTPUT_HARD_LIMIT, Port, REDIS_VERSION, instance};
use crate::engine::glob;

/// The sections, in the order Sentinel writes them.
const SECTIONS: [&str; 5] = ["server", "clients", "stats", "cpu", "sentinel"];

/// `INFO [section ...]`: the named sections (`all`, `everything` and `default` mean every one;
/// unknown names are ignored, so `INFO replication` is an empty string, as on Sentinel).
pub(super) fn info(
    port: &Port,
    snap: &Snapshot,
    args: Args<'_>,
    now: Instant,
    w: &mut ReplyWriter<'_>,
) {
    let mut wanted = [args.len() < 2; SECTIONS.len()];
    for arg in args.from(1) {
        let arg = arg.to_ascii_lowercase();
        if matches!(arg.as_slice(), b"all" | b"everything" | b"default") {
            wanted = [true; SECTIONS.len()];
        } else if let Some(i) = SECTIONS.iter().position(|s| s.as_bytes() == arg.as_slice()) {
            wanted[i] = true;
        }
    }
    let mut text = String::new();
    for (i, section) in SECTIONS.iter().enumerate() {
        if !wanted[i] {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        match *section {
            "server" => server(port, snap, now, &mut text),
            "clients" => clients(port, &mut text),
            "stats" => stats(port, &mut text),
            "cpu" => cpu(&mut text),
            _ => sentinel(port, snap, now, &mut text),
        }
    }
    w.bulk_str(&text);
}

fn server(port: &Port, snap: &Snapshot, now: Instant, out: &mut String) {
    let uptime = now.saturating_since(port.started_at).as_secs();
    let executable = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
    let _ = write!(
        out,
        "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\n\
         redis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:sentinel\r\nos:{} {}\r\n\
         arch_bits:{}\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nprocess_supervised:no\r\n\
         run_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\n\
         uptime_in_days:{}\r\nhz:10\r\nconfigured_hz:10\r\nexecutable:{executable}\r\n\
         config_file:{}\r\npicket_version:{}\r\npicket_node_id:{}\r\n",
        std::env::consts::OS,
        std::env::consts::ARCH,
        usize::BITS,
        std::process::id(),
        port.run_id,
        port.local.port(),
        port.hub.clock.unix_ms().saturating_mul(1000),
        uptime / 86_400,
        port.options.config_file.display(),
        env!("CARGO_PKG_VERSION"),
        snap.view.node_id,
    );
}

fn clients(port: &Port, out: &mut String) {
    let _ = write!(
        out,
        "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\n\
         client_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\n\
         blocked_clients:0\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n",
        port.registry.len(),
        port.options.max_clients,
    );
}

fn stats(port: &Port, out: &mut String) {
    let stats = &port.hub.stats;
    let (channels, patterns) = port.directory.counts();
    let _ = write!(
        out,
        "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
         rejected_connections:{}\r\npubsub_channels:{channels}\r\npubsub_patterns:{patterns}\r\n\
         pubsubshard_channels:0\r\nclient_query_buffer_limit_disconnections:{}\r\n\
         client_output_buffer_limit_disconnections:{}\r\n",
        stats.resp_connections.load(Ordering::Relaxed),
        stats.resp_commands.load(Ordering::Relaxed),
        port.stats.rejected_connections.load(Ordering::Relaxed),
        stats.resp_protocol_errors.load(Ordering::Relaxed),
        stats.resp_slow_clients.load(Ordering::Relaxed),
    );
}

/// CPU time from `/proc/self/stat` (Linux; zeros elsewhere), in seconds.
fn cpu(out: &mut String) {
    let (user, system) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|text| {
            // The command name may hold spaces; the fields after it are plain numbers.
            let rest = text.get(text.rfind(')')? + 2..)?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            Some((ticks(11)?, ticks(12)?))
        })
        .unwrap_or((0, 0));
    // Linux reports in USER_HZ, which is 100 on every mainstream architecture.
    let seconds = |ticks: u64| ticks as f64 / 100.0;
    let _ = write!(
        out,
        "# CPU\r\nused_cpu_sys:{:.6}\r\nused_cpu_user:{:.6}\r\nused_cpu_sys_children:0.000000\r\n\
         used_cpu_user_children:0.000000\r\n",
        seconds(system),
        seconds(user),
    );
}

fn sentinel(port: &Port, snap: &Snapshot, now: Instant, out: &mut String) {
    let view = &snap.view;
    let tilt_since = view.tilt_since.map_or(-1, |at| {
        i64::try_from(duration_millis(now.saturating_since(at)) / 1000).unwrap_or(i64::MAX)
    });
    let failpoints = &port.hub.failpoints;
    let simulated = u8::from(failpoints.crash_after_election.load(Ordering::Relaxed))
        | u8::from(failpoints.crash_after_promotion.load(Ordering::Relaxed)) << 1;
    let _ = write!(
        out,
        "# Sentinel\r\nsentinel_masters:{}\r\nsentinel_tilt:{}\r\n\
         sentinel_tilt_since_seconds:{tilt_since}\r\nsentinel_running_scripts:0\r\n\
         sentinel_scripts_queue_length:0\r\nsentinel_simulate_failure_flags:{simulated}\r\n",
        view.masters.len(),
        u8::from(view.tilt_since.is_some()),
    );
    for (i, m) in view.masters.iter().enumerate() {
        instance::info_line(out, i, m);
    }
}

/// `ROLE`: `["sentinel", [master names]]`.
pub(super) fn role(snap: &Snapshot, w: &mut ReplyWriter<'_>) {
    w.array(2);
    w.bulk_str("sentinel");
    w.array(snap.view.masters.len());
    for m in &snap.view.masters {
        w.bulk_str(&m.name);
    }
}

/// `COMMAND` and its subcommands.
pub(super) fn command(op: Op, args: Args<'_>, w: &mut ReplyWriter<'_>) {
    match op {
        Op::Command => {
            w.array(command::COMMANDS.len());
            for spec in &command::COMMANDS {
                write_info(w, spec);
            }
        }
        Op::CommandCount => w.integer(i64::try_from(command::COMMANDS.len()).unwrap_or(0)),
        Op::CommandList => list(args, w),
        Op::CommandInfo => {
            if args.len() == 2 {
                w.array(command::COMMANDS.len());
                for spec in &command::COMMANDS {
                    write_info(w, spec);
                }
                return;
            }
            w.array(args.len() - 2);
            let mut cache = Rendered::new();
            for name in args.from(2) {
                if w.buffered() > OUTPUT_HARD_LIMIT {
                    // The client is disconnected for it: the rest would only cost memory.
                    return;
                }
                match lookup(name) {
                    Some(spec) => cache.write(w, spec, write_info),
                    None => w.null_array(),
                }
            }
        }
        Op::CommandDocs => {
            let specs: Vec<&Spec> = if args.len() == 2 {
                command::COMMANDS.iter().collect()
            } else {
                args.from(2).filter_map(lookup).collect()
            };
            w.map(specs.len());
            let mut cache = Rendered::new();
            for spec in specs {
                if w.buffered() > OUTPUT_HARD_LIMIT {
                    return;
                }
                cache.write(w, spec, |w, spec| {
                    w.bulk_str(spec.name);
                    write_docs(w, spec);
                });
            }
        }
        Op::CommandGetKeys => match lookup(args.get(2)) {
            Some(_) => w.error("ERR The command has no key arguments"),
            None => w.error("ERR Invalid command specified"),
        },
        _ => {
            let lines = [
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "    Return details about all commands.",
                "COUNT",
                "    Return the total number of commands in this server.",
                "LIST",
                "    Return a list of all commands in this server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple commands.",
                "GETKEYS <full-command>",
                "    Return the keys from a full command.",
                "HELP",
                "    Print this help.",
            ];
            w.array(lines.len());
            for line in lines {
                w.simple(line);
            }
        }
    }
}

/// A command by name: top-level (`sentinel`) or `container|sub` (`sentinel|masters`).
fn lookup(name: &[u8]) -> Option<&'static Spec> {
    match name.iter().position(|&b| b == b'|') {
        Some(bar) => command::find(
            command::find(&command::COMMANDS, name.get(..bar)?)?.subcommands,
            name.get(bar + 1..)?,
        ),
        None => command::find(&command::COMMANDS, name),
    }
}

/// `COMMAND LIST [FILTERBY MODULE m | ACLCAT c | PATTERN p]`.
fn list(args: Args<'_>, w: &mut ReplyWriter<'_>) {
    let filter: Box<dyn Fn(&Spec) -> bool> = match args.len() {
        2 => Box::new(|_| true),
        5 if args.is(2, "filterby") => {
            let value = args.get(4).to_ascii_lowercase();
            if args.is(3, "module") {
                Box::new(|_| false)
            } else if args.is(3, "aclcat") {
                Box::new(move |s: &Spec| {
                    s.acl.iter().any(|c| c.as_bytes().get(1..) == Some(value.as_slice()))
                })
            } else if args.is(3, "pattern") {
                Box::new(move |s: &Spec| glob::matches(&value, s.full_name.as_bytes()))
            } else {
                return w.error("ERR syntax error");
            }
        }
        _ => return w.error("ERR syntax error"),
    };
    let names: Vec<&str> = command::all().filter(|s| filter(s)).map(|s| s.full_name).collect();
    w.array(names.len());
    for name in names {
        w.bulk_str(name);
    }
}

/// Each command's reply rendered once per request: a request naming a command thousands of
/// times costs memory copies, not thousands of renderings (the port's one thread serves every
/// client).
struct Rendered(BTreeMap<&'static str, Vec<u8>>);

impl Rendered {
    const fn new() -> Self {
        Self(BTreeMap::new())
    }

    /// Writes `render(spec)`, rendered the first time only.
    fn write(
        &mut self,
        w: &mut ReplyWriter<'_>,
        spec: &'static Spec,
        render: fn(&mut ReplyWriter<'_>, &Spec),
    ) {
        let proto = w.protocol();
        let bytes = self.0.entry(spec.full_name).or_insert_with(|| {
            let mut out = Vec::new();
            render(&mut ReplyWriter::new(&mut out, proto), spec);
            out
        });
        w.raw(bytes);
    }
}

/// One command's `COMMAND INFO` entry: name, arity, flags, first key, last key, key step, ACL
/// categories, tips, key specs, subcommands.
fn write_info(w: &mut ReplyWriter<'_>, spec: &Spec) {
    w.array(10);
    w.bulk_str(spec.full_name);
    w.integer(i64::from(spec.arity));
    w.set(spec.flags.len());
    for flag in spec.flags {
        w.simple(flag);
    }
    w.integer(0);
    w.integer(0);
    w.integer(0);
    w.set(spec.acl.len());
    for category in spec.acl {
        w.simple(category);
    }
    w.array(0);
    w.array(0);
    w.array(spec.subcommands.len());
    for sub in spec.subcommands {
        write_info(w, sub);
    }
}

/// One command's `COMMAND DOCS` entry.
fn write_docs(w: &mut ReplyWriter<'_>, spec: &Spec) {
    w.map(3 + usize::from(!spec.subcommands.is_empty()));
    w.bulk_str("summary");
    w.bulk_str(spec.summary);
    w.bulk_str("since");
    w.bulk_str(spec.since);
    w.bulk_str("group");
    w.bulk_str(spec.group);
    if !spec.subcommands.is_empty() {
        w.bulk_str("subcommands");
        w.map(spec.subcommands.len());
        for sub in spec.subcommands {
            w.bulk_str(sub.full_name);
            write_docs(w, sub);
        }
    }
}
