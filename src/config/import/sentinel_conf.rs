//! A `sentinel.conf` as redis-sentinel writes it, read into [`SentinelConf`]: every line is
//! either understood (a setting, or state Sentinel rewrote into the file) or listed in
//! [`SentinelConf::unmapped`] with the reason Picket cannot carry it over.
//!
//! Lines are split as Redis splits them (`sdssplitargs`: double quotes with `\n`, `\xHH`, ...
//! escapes, single quotes with `\'`), directives are case-insensitive, and the order of lines
//! does not matter: like Sentinel, the masters (`sentinel monitor`) are read first and every
//! other per-master line refers to one of them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::engine::{Addr, NodeId};

/// Sentinel's default port.
pub const DEFAULT_PORT: u16 = 26379;

/// What Picket takes from a `sentinel.conf`.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct SentinelConf {
    /// `port` (`None`: Sentinel's default, 26379; `Some(0)`: no plain port).
    pub port: Option<u16>,
    /// `bind`: the first address (Sentinel binds every address without it).
    pub bind: Option<String>,
    /// `tls-*`.
    pub tls: ConfTls,
    /// `sentinel announce-ip`.
    pub announce_ip: Option<String>,
    /// `sentinel announce-port`.
    pub announce_port: Option<u16>,
    /// `requirepass` (a secret).
    pub requirepass: Option<String>,
    /// `sentinel sentinel-user`: the ACL user this Sentinel authenticates as to the others.
    pub sentinel_user: Option<String>,
    /// `sentinel sentinel-pass` (a secret): the password it gives the others.
    pub sentinel_pass: Option<String>,
    /// `user` lines Picket can carry over.
    pub users: Vec<ConfUser>,
    /// `sentinel myid`.
    pub myid: Option<NodeId>,
    /// `sentinel current-epoch`.
    pub current_epoch: u64,
    /// `sentinel monitor` and what belongs to each master, in file order.
    pub masters: Vec<ConfMaster>,
    /// Lines not carried over, with the reason.
    pub unmapped: Vec<Unmapped>,
    /// Lines carried over with a remark worth reading (a value changed on the way).
    pub notes: Vec<Unmapped>,
}

/// The `tls-*` directives Picket maps.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct ConfTls {
    /// `tls-port`.
    pub port: Option<u16>,
    /// `tls-cert-file`.
    pub cert_file: Option<PathBuf>,
    /// `tls-key-file`.
    pub key_file: Option<PathBuf>,
    /// `tls-client-cert-file` (else Sentinel presents `tls-cert-file` as a client).
    pub client_cert_file: Option<PathBuf>,
    /// `tls-client-key-file`.
    pub client_key_file: Option<PathBuf>,
    /// `tls-ca-cert-file`.
    pub ca_file: Option<PathBuf>,
    /// `tls-auth-clients`: `yes` (Redis's default), `no` or `optional`.
    pub auth_clients: Option<String>,
    /// `tls-replication yes`: Sentinel's own links (to Redis and to Sentinels) use TLS.
    pub replication: bool,
}

/// A `user` line Picket can carry over as a `[[user]]`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ConfUser {
    /// The user name.
    pub name: String,
    /// Its first `>password` (a secret).
    pub password: String,
    /// Whether its rules allow any command that changes the node.
    pub admin: bool,
    /// The line it was on.
    pub line: usize,
}

/// One `sentinel monitor` and the lines about the same master.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ConfMaster {
    /// The master's name.
    pub name: String,
    /// Its current address (Sentinel rewrites the `monitor` line after a failover).
    pub addr: Addr,
    /// `quorum`.
    pub quorum: u32,
    /// `down-after-milliseconds`.
    pub down_after_ms: Option<u64>,
    /// `failover-timeout`.
    pub failover_timeout_ms: Option<u64>,
    /// `parallel-syncs`.
    pub parallel_syncs: Option<u32>,
    /// `auth-pass` (a secret).
    pub auth_pass: Option<String>,
    /// `auth-user`.
    pub auth_user: Option<String>,
    /// `notification-script`.
    pub notification_script: Option<String>,
    /// `client-reconfig-script`.
    pub client_reconfig_script: Option<String>,
    /// `master-reboot-down-after-period` (0 = off).
    pub reboot_down_after_ms: Option<u64>,
    /// `config-epoch`: the epoch of the failover that set `addr`.
    pub config_epoch: u64,
    /// `leader-epoch`: the latest epoch in which this Sentinel voted for this master.
    pub leader_epoch: u64,
    /// `known-replica` (or the older `known-slave`).
    pub known_replicas: Vec<Addr>,
    /// `known-sentinel`: the other Sentinels of this master, with their ids.
    pub known_sentinels: Vec<KnownSentinel>,
    /// The `monitor` line.
    pub line: usize,
}

/// Another Sentinel, as `sentinel known-sentinel` records it.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct KnownSentinel {
    /// Its address (the Sentinel port, announced).
    pub addr: Addr,
    /// Its `myid`.
    pub id: NodeId,
}

/// A line and what happened to it.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Unmapped {
    /// 1-based.
    pub line: usize,
    /// The directive and its arguments, secrets replaced by `<redacted>`.
    pub text: String,
    /// Why it is not carried over (or, for a note, what became of it).
    pub reason: String,
}

/// One line, split.
struct Line {
    number: usize,
    args: Vec<String>,
}

impl Line {
    /// Argument `i`, lower case (directive names).
    fn word(&self, i: usize) -> String {
        self.args.get(i).map(|a| a.to_ascii_lowercase()).unwrap_or_default()
    }

    /// The line as shown in the report, with the arguments from `secret_from` on redacted.
    fn shown(&self, secret_from: Option<usize>) -> String {
        self.shown_with(|i, _| secret_from.is_some_and(|s| i >= s))
    }

    /// The line as shown in the report, with the arguments `secret` says redacted.
    fn shown_with(&self, secret: impl Fn(usize, &str) -> bool) -> String {
        self.args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if secret(i, a) {
                    "<redacted>".to_owned()
                } else if a.is_empty() || a.contains(char::is_whitespace) {
                    format!("{a:?}")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Reads `text`, a `sentinel.conf`.
#[must_use]
pub fn read(text: &str) -> SentinelConf {
    let mut conf = SentinelConf::default();
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match split_args(trimmed) {
            Ok(args) if !args.is_empty() => lines.push(Line { number: i + 1, args }),
            Ok(_) => {}
            Err(e) => conf.unmapped.push(Unmapped {
                line: i + 1,
                text: String::new(),
                reason: format!("cannot be read: {e}"),
            }),
        }
    }
    // Masters first, as Sentinel reads them: other lines refer to them by name.
    for line in &lines {
        if line.word(0) == "sentinel" && line.word(1) == "monitor" {
            monitor(&mut conf, line);
        }
    }
    // Then the credentials Sentinels give each other: the user they authenticate as may be
    // defined below with its password hashed, which `sentinel-pass` can then stand for.
    let is_monitor = |l: &Line| l.word(0) == "sentinel" && l.word(1) == "monitor";
    let is_peer_auth = |l: &Line| {
        l.word(0) == "sentinel" && ["sentinel-user", "sentinel-pass"].contains(&l.word(1).as_str())
    };
    for line in lines.iter().filter(|l| is_peer_auth(l)) {
        directive(&mut conf, line);
    }
    for line in lines.iter().filter(|l| !is_monitor(l) && !is_peer_auth(l)) {
        directive(&mut conf, line);
    }
    // Sentinel sends no user name without a password of its own to send with it.
    if conf.sentinel_pass.is_none() && conf.sentinel_user.take().is_some() {
        let user_lines =
            lines.iter().filter(|l| l.word(0) == "sentinel" && l.word(1) == "sentinel-user");
        for line in user_lines {
            conf.skip(
                line,
                "sentinel-user without sentinel-pass: set both to authenticate as a user",
            );
        }
    }
    conf.unmapped.sort_by_key(|u| u.line);
    conf.notes.sort_by_key(|u| u.line);
    conf
}

impl SentinelConf {
    fn skip(&mut self, line: &Line, reason: impl Into<String>) {
        self.unmapped.push(Unmapped {
            line: line.number,
            text: line.shown(None),
            reason: reason.into(),
        });
    }

    fn skip_secret(&mut self, line: &Line, secret_from: usize, reason: impl Into<String>) {
        let text = line.shown(Some(secret_from));
        self.unmapped.push(Unmapped { line: line.number, text, reason: reason.into() });
    }

    fn note(&mut self, line: &Line, note: impl Into<String>) {
        let text = line.shown(None);
        self.notes.push(Unmapped { line: line.number, text, reason: note.into() });
    }

    fn master(&mut self, name: &str) -> Option<&mut ConfMaster> {
        self.masters.iter_mut().find(|m| m.name == name)
    }
}

/// `sentinel monitor <name> <host> <port> <quorum>`.
fn monitor(conf: &mut SentinelConf, line: &Line) {
    let [_, _, name, host, port, quorum] = line.args.as_slice() else {
        return conf.skip(line, "expected sentinel monitor <name> <host> <port> <quorum>");
    };
    let addr = port
        .parse::<u16>()
        .map_err(|e| e.to_string())
        .and_then(|port| Addr::new(host, port).map_err(|e| e.to_string()));
    let (addr, quorum) = match (addr, quorum.parse::<u32>()) {
        (Ok(addr), Ok(quorum)) if quorum > 0 => (addr, quorum),
        (Err(e), _) => return conf.skip(line, format!("cannot be read: {e}")),
        _ => return conf.skip(line, "cannot be read: the quorum must be a positive number"),
    };
    if conf.master(name).is_some() {
        return conf.skip(line, format!("master {name:?} is already monitored above"));
    }
    conf.masters.push(ConfMaster {
        name: name.clone(),
        addr,
        quorum,
        down_after_ms: None,
        failover_timeout_ms: None,
        parallel_syncs: None,
        auth_pass: None,
        auth_user: None,
        notification_script: None,
        client_reconfig_script: None,
        reboot_down_after_ms: None,
        config_epoch: 0,
        leader_epoch: 0,
        known_replicas: Vec::new(),
        known_sentinels: Vec::new(),
        line: line.number,
    });
}

/// Reasons for server directives that have no counterpart in Picket.
fn server_directive_reason(name: &str) -> &'static str {
    match name {
        "dir" => "Picket keeps its state in node.state_dir (import-sentinel --state-dir)",
        "logfile" | "syslog-enabled" | "syslog-ident" | "syslog-facility" => {
            "Picket logs to stderr, for the service manager to collect (--log-format json)"
        }
        "loglevel" => "Picket's log level is set with RUST_LOG",
        "pidfile" | "daemonize" | "supervised" => {
            "Picket runs in the foreground under a service manager and writes no pid file"
        }
        "protected-mode" => {
            "Picket has no protected mode: the bind addresses and requirepass or [[user]] \
             decide who may connect"
        }
        "include" => "included files are not followed: import the included file's lines too",
        "rename-command" => "Picket's own commands cannot be renamed",
        "aclfile" => "Picket's users are [[user]] entries: copy them from the ACL file",
        _ => "a Redis server setting with no counterpart in Picket",
    }
}

fn directive(conf: &mut SentinelConf, line: &Line) {
    let name = line.word(0);
    match name.as_str() {
        "sentinel" => sentinel_directive(conf, line),
        "port" => match line.args.get(1).and_then(|p| p.parse::<u16>().ok()) {
            Some(port) if line.args.len() == 2 => conf.port = Some(port),
            _ => conf.skip(line, "expected port <number>"),
        },
        "bind" => {
            // Redis 7 marks optional addresses with a leading '-'.
            let addrs: Vec<&str> =
                line.args[1..].iter().map(|a| a.trim_start_matches('-')).collect();
            match addrs.as_slice() {
                [] => conf.skip(line, "expected bind <address>..."),
                [first, rest @ ..] => {
                    conf.bind = Some((*first).to_owned());
                    if !rest.is_empty() {
                        conf.note(line, format!("Picket listens on {first} only"));
                    }
                }
            }
        }
        "requirepass" => match line.args.as_slice() {
            [_, password] if !password.is_empty() => conf.requirepass = Some(password.clone()),
            // An empty requirepass is no password.
            [_, _] => {}
            _ => conf.skip_secret(line, 1, "expected requirepass <password>"),
        },
        "user" => user(conf, line),
        _ if name.starts_with("tls-") => tls_directive(conf, line, &name),
        _ => conf.skip(line, server_directive_reason(&name)),
    }
}

fn tls_directive(conf: &mut SentinelConf, line: &Line, name: &str) {
    let Some(value) = line.args.get(1).filter(|_| line.args.len() == 2).cloned() else {
        return conf.skip(line, format!("expected {name} <value>"));
    };
    let tls = &mut conf.tls;
    match name {
        "tls-port" => match value.parse::<u16>() {
            Ok(0) => {}
            Ok(port) => tls.port = Some(port),
            Err(_) => conf.skip(line, "expected tls-port <number>"),
        },
        "tls-cert-file" => tls.cert_file = Some(value.into()),
        "tls-key-file" => tls.key_file = Some(value.into()),
        "tls-client-cert-file" => tls.client_cert_file = Some(value.into()),
        "tls-client-key-file" => tls.client_key_file = Some(value.into()),
        "tls-ca-cert-file" => tls.ca_file = Some(value.into()),
        "tls-auth-clients" => match value.to_ascii_lowercase().as_str() {
            "yes" | "no" | "optional" => tls.auth_clients = Some(value.to_ascii_lowercase()),
            _ => conf.skip(line, "expected yes, no or optional"),
        },
        "tls-replication" => tls.replication = value.eq_ignore_ascii_case("yes"),
        "tls-ca-cert-dir" => conf.skip(
            line,
            "Picket reads CA certificates from one PEM file: concatenate the directory's \
             certificates into the file given as tls-ca-cert-file",
        ),
        "tls-protocols" | "tls-ciphers" | "tls-ciphersuites" | "tls-prefer-server-ciphers" => {
            conf.skip(
                line,
                "rustls's defaults apply: TLS 1.2 and 1.3 with modern cipher suites only",
            );
        }
        "tls-dh-params-file" => {
            conf.skip(line, "rustls uses ECDHE key exchange only: no DH parameters");
        }
        "tls-key-file-pass" | "tls-client-key-file-pass" => conf.skip_secret(
            line,
            1,
            "encrypted private keys are not supported: give Picket the key decrypted, in a \
             file readable only by it",
        ),
        "tls-session-caching" | "tls-session-cache-size" | "tls-session-cache-timeout" => {
            conf.skip(line, "rustls manages its session cache itself");
        }
        "tls-cluster" => conf.skip(line, "Redis Cluster's bus: not used by Sentinel"),
        _ => conf.skip(line, "a TLS setting Picket does not know"),
    }
}

fn sentinel_directive(conf: &mut SentinelConf, line: &Line) {
    let sub = line.word(1);
    let args = &line.args;
    // Per-master lines: `sentinel <directive> <master> ...`.
    let per_master = [
        "down-after-milliseconds",
        "failover-timeout",
        "parallel-syncs",
        "auth-pass",
        "auth-user",
        "notification-script",
        "client-reconfig-script",
        "master-reboot-down-after-period",
        "primary-reboot-down-after-period",
        "config-epoch",
        "leader-epoch",
        "known-replica",
        "known-slave",
        "known-sentinel",
        "rename-command",
    ];
    if per_master.contains(&sub.as_str()) {
        return master_directive(conf, line, &sub);
    }
    let value = args.get(2).filter(|_| args.len() == 3).cloned();
    match (sub.as_str(), value) {
        ("myid", Some(id)) => match id.parse::<NodeId>() {
            Ok(id) => conf.myid = Some(id),
            Err(e) => conf.skip(line, format!("cannot be read: {e}")),
        },
        ("current-epoch", Some(epoch)) => match epoch.parse() {
            Ok(epoch) => conf.current_epoch = epoch,
            Err(_) => conf.skip(line, "expected a number"),
        },
        ("announce-ip", Some(ip)) => conf.announce_ip = Some(ip).filter(|ip| !ip.is_empty()),
        ("announce-port", Some(port)) => match port.parse::<u16>() {
            Ok(0) => {}
            Ok(port) => conf.announce_port = Some(port),
            Err(_) => conf.skip(line, "expected a port number"),
        },
        ("resolve-hostnames" | "announce-hostnames", Some(_)) => conf.note(
            line,
            "nothing to set: Picket always resolves host names when it connects and reports \
             addresses as configured",
        ),
        ("deny-scripts-reconfig", Some(value)) if value.eq_ignore_ascii_case("yes") => {
            conf.note(line, "nothing to set: Picket always refuses SENTINEL SET of scripts");
        }
        ("deny-scripts-reconfig", Some(_)) => conf
            .skip(line, "Picket never lets SENTINEL SET change scripts: set them in picket.toml"),
        // Picket nodes authenticate each other with node.peer_secret; these are for the
        // Sentinels of a rolling migration (`sentinel_peers`).
        ("sentinel-user", Some(user)) => conf.sentinel_user = Some(user).filter(|u| !u.is_empty()),
        ("sentinel-pass", Some(password)) => {
            conf.sentinel_pass = Some(password).filter(|p| !p.is_empty());
        }
        ("sentinel-pass", None) => {
            conf.skip_secret(line, 2, "expected sentinel sentinel-pass <password>")
        }
        ("simulate-failure", _) => conf.skip(line, "a test switch, not a setting"),
        _ => conf.skip(line, "a Sentinel directive Picket does not know"),
    }
}

fn master_directive(conf: &mut SentinelConf, line: &Line, sub: &str) {
    let args = &line.args;
    let Some(name) = args.get(2).cloned() else {
        return conf.skip(line, "expected a master name");
    };
    let secret_from = (sub == "auth-pass").then_some(3);
    if conf.master(&name).is_none() {
        let reason = format!("no `sentinel monitor` line for master {name:?}");
        return match secret_from {
            Some(from) => conf.skip_secret(line, from, reason),
            None => conf.skip(line, reason),
        };
    }
    let rest: Vec<String> = args[3..].to_vec();
    let number = |value: &str| value.parse::<u64>().map_err(|_| "expected a number".to_owned());
    let outcome: Result<(), String> = (|| {
        let master = conf.master(&name).expect("checked above");
        match (sub, rest.as_slice()) {
            ("down-after-milliseconds", [ms]) => master.down_after_ms = Some(number(ms)?),
            ("failover-timeout", [ms]) => master.failover_timeout_ms = Some(number(ms)?),
            ("parallel-syncs", [n]) => {
                master.parallel_syncs =
                    Some(n.parse().map_err(|_| "expected a number".to_owned())?);
            }
            ("auth-pass", [password]) => {
                master.auth_pass = Some(password.clone()).filter(|p| !p.is_empty());
            }
            ("auth-user", [user]) => {
                master.auth_user = Some(user.clone()).filter(|u| !u.is_empty())
            }
            ("notification-script", [path]) => master.notification_script = Some(path.clone()),
            ("client-reconfig-script", [path]) => {
                master.client_reconfig_script = Some(path.clone());
            }
            ("master-reboot-down-after-period" | "primary-reboot-down-after-period", [ms]) => {
                master.reboot_down_after_ms = Some(number(ms)?);
            }
            ("config-epoch", [epoch]) => master.config_epoch = number(epoch)?,
            ("leader-epoch", [epoch]) => master.leader_epoch = number(epoch)?,
            ("known-replica" | "known-slave", [host, port]) => {
                let port = port.parse::<u16>().map_err(|_| "expected a port".to_owned())?;
                let addr = Addr::new(host, port).map_err(|e| e.to_string())?;
                if addr != master.addr && !master.known_replicas.contains(&addr) {
                    master.known_replicas.push(addr);
                }
            }
            ("known-sentinel", [host, port, id]) => {
                let port = port.parse::<u16>().map_err(|_| "expected a port".to_owned())?;
                let addr = Addr::new(host, port).map_err(|e| e.to_string())?;
                let id = id.parse::<NodeId>().map_err(|e| e.to_string())?;
                master.known_sentinels.retain(|s| s.id != id);
                master.known_sentinels.push(KnownSentinel { addr, id });
            }
            ("known-sentinel", [_, _]) => {
                return Err("a Sentinel without its id (Sentinel ignores these too)".to_owned());
            }
            ("rename-command", [_, _]) => {
                return Err("Picket sends commands to Redis under their own names: undo the \
                            renaming on the Redis servers (or give Picket's user the renamed \
                            commands' permissions there)"
                    .to_owned());
            }
            _ => return Err(format!("unexpected arguments for sentinel {sub}")),
        }
        Ok(())
    })();
    if let Err(reason) = outcome {
        match secret_from {
            Some(from) => conf.skip_secret(line, from, reason),
            None => conf.skip(line, reason),
        }
    }
}

/// The commands that take Picket's `admin` role, with their ACL categories in Sentinel.
const ADMIN_COMMANDS: [(&str, &[&str]); 10] = [
    ("sentinel|failover", &["admin", "slow", "dangerous"]),
    ("sentinel|reset", &["admin", "slow", "dangerous"]),
    ("sentinel|set", &["admin", "slow", "dangerous"]),
    ("sentinel|monitor", &["admin", "slow", "dangerous"]),
    ("sentinel|remove", &["admin", "slow", "dangerous"]),
    ("sentinel|flushconfig", &["admin", "slow", "dangerous"]),
    ("sentinel|simulate-failure", &["admin", "slow", "dangerous"]),
    ("sentinel|config", &["admin", "slow", "dangerous"]),
    ("shutdown", &["admin", "slow", "dangerous"]),
    ("client|kill", &["admin", "slow", "dangerous", "connection"]),
];

/// Whether ACL `rules`, applied in order, allow `command` (in `categories`).
fn allows(rules: &[String], command: &str, categories: &[&str]) -> bool {
    let parent = command.split('|').next().unwrap_or(command);
    let mut allowed = false;
    for rule in rules {
        let rule = rule.to_ascii_lowercase();
        match rule.as_str() {
            "allcommands" => allowed = true,
            "nocommands" | "reset" => allowed = false,
            _ => {
                let (sign, what) = match rule.split_at_checked(1) {
                    Some(("+", what)) => (true, what),
                    Some(("-", what)) => (false, what),
                    _ => continue,
                };
                let hits = match what.strip_prefix('@') {
                    Some(category) => category == "all" || categories.contains(&category),
                    None => what == command || what == parent,
                };
                if hits {
                    allowed = sign;
                }
            }
        }
    }
    allowed
}

/// `user <name> <rules>...`.
fn user(conf: &mut SentinelConf, line: &Line) {
    let Some(name) = line.args.get(1).cloned() else {
        return conf.skip(line, "expected user <name> <rules>...");
    };
    let rules = &line.args[2..];
    let enabled = rules.iter().rev().find_map(|r| match r.to_ascii_lowercase().as_str() {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    });
    let password = rules.iter().find_map(|r| r.strip_prefix('>')).map(str::to_owned);
    let hashed = rules.iter().any(|r| r.starts_with('#'));
    let nopass = rules.iter().any(|r| r.eq_ignore_ascii_case("nopass"));
    // The report never shows passwords or their hashes (`>`, `<`, `#`, `!` rules).
    let shown = line.shown_with(|i, a| i >= 2 && a.starts_with(['>', '<', '#', '!']));
    let entry = |reason: &str| Unmapped {
        line: line.number,
        text: shown.clone(),
        reason: reason.to_owned(),
    };
    let unmapped = |conf: &mut SentinelConf, reason: &str| conf.unmapped.push(entry(reason));
    if name == "default" {
        return match (enabled, nopass, &conf.requirepass) {
            (Some(true), true, None) => conf.notes.push(entry(
                "the default user without a password: Picket's default without requirepass",
            )),
            (Some(true), _, Some(_)) => {
                conf.notes.push(entry("the default user's password, as requirepass gives it"));
            }
            _ => unmapped(
                conf,
                "the default user is Picket's requirepass: set requirepass (disabling it needs \
                 [[user]] entries and no requirepass)",
            ),
        };
    }
    if enabled != Some(true) {
        return unmapped(conf, "disabled users are not imported");
    }
    let peer_password = peer_password(conf, &name, rules);
    let from_peer_pass = password.is_none() && peer_password.is_some();
    let Some(password) = password.or(peer_password) else {
        let reason = if hashed {
            "hashed passwords (#...) cannot be imported: Picket needs the password itself; add \
             a [[user]] with its password_file"
        } else {
            "users without a password are not supported"
        };
        return unmapped(conf, reason);
    };
    let admin =
        ADMIN_COMMANDS.iter().any(|(command, categories)| allows(rules, command, categories));
    let role = if admin { "admin" } else { "read" };
    let source = if from_peer_pass {
        ", its password the sentinel-pass, whose hash it has (the other Sentinels log in as it)"
    } else {
        ""
    };
    conf.notes.push(entry(&format!("[[user]] {name:?} with role {role}{source}")));
    conf.users.push(ConfUser { name, password, admin, line: line.number });
}

/// The `sentinel-pass`, if user `name` is the `sentinel-user` and one of its `rules` is the
/// password's SHA-256 (`#<hex>`, as `CONFIG REWRITE` writes every password): the password the
/// other Sentinels authenticate as `name` with.
fn peer_password(conf: &SentinelConf, name: &str, rules: &[String]) -> Option<String> {
    let password =
        conf.sentinel_pass.as_ref().filter(|_| conf.sentinel_user.as_deref() == Some(name))?;
    let digest: String =
        Sha256::digest(password.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let hashed = |r: &String| r.strip_prefix('#').is_some_and(|h| h.eq_ignore_ascii_case(&digest));
    rules.iter().any(hashed).then(|| password.clone())
}

/// Splits a line as Redis's `sdssplitargs` does.
fn split_args(line: &str) -> Result<Vec<String>, &'static str> {
    let mut args = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { return Ok(args) };
        let mut arg = String::new();
        match first {
            '"' => {
                chars.next();
                loop {
                    match chars.next().ok_or("unbalanced quotes")? {
                        '"' => break,
                        '\\' => {
                            let escaped = chars.next().ok_or("unbalanced quotes")?;
                            arg.push(match escaped {
                                'n' => '\n',
                                'r' => '\r',
                                't' => '\t',
                                'b' => '\u{8}',
                                'a' => '\u{7}',
                                'x' => {
                                    let hex: String = chars.by_ref().take(2).collect();
                                    let byte = u8::from_str_radix(&hex, 16)
                                        .map_err(|_| "bad \\x escape")?;
                                    char::from(byte)
                                }
                                other => other,
                            });
                        }
                        c => arg.push(c),
                    }
                }
            }
            '\'' => {
                chars.next();
                loop {
                    match chars.next().ok_or("unbalanced quotes")? {
                        '\'' => break,
                        '\\' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            arg.push('\'');
                        }
                        c => arg.push(c),
                    }
                }
            }
            _ => {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    arg.push(c);
                }
                args.push(arg);
                continue;
            }
        }
        // A closing quote must end the argument.
        if chars.peek().is_some_and(|c| !c.is_whitespace()) {
            return Err("a closing quote must be followed by a space");
        }
        args.push(arg);
    }
}

/// Sentinel ids of the Sentinels every master knows, by id (the latest address wins).
#[must_use]
pub fn known_sentinels(conf: &SentinelConf) -> BTreeMap<NodeId, Addr> {
    conf.masters.iter().flat_map(|m| &m.known_sentinels).map(|s| (s.id, s.addr.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_as_redis_splits_them() {
        assert_eq!(split_args("a  b\t c").unwrap(), ["a", "b", "c"]);
        assert_eq!(split_args(r#"dir "/tmp/x y" 'it\'s'"#).unwrap(), ["dir", "/tmp/x y", "it's"]);
        assert_eq!(split_args(r#"a "\x41\n""#).unwrap(), ["a", "A\n"]);
        assert_eq!(split_args(r#"a """#).unwrap(), ["a", ""]);
        assert!(split_args(r#"a "open"#).is_err());
        assert!(split_args(r#"a "x"y"#).is_err());
    }

    #[test]
    fn acl_rules_decide_the_role() {
        let rules = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let admin = |s: &str| {
            ADMIN_COMMANDS
                .iter()
                .any(|(command, categories)| allows(&rules(s), command, categories))
        };
        assert!(admin("on >x ~* &* +@all"));
        assert!(admin("on >x allcommands"));
        assert!(admin("on >x -@all +sentinel|failover"));
        assert!(admin("on >x -@all +@admin"));
        assert!(!admin("on >x -@all +sentinel|get-master-addr-by-name +sentinel|sentinels +ping"));
        assert!(!admin("on >x +@all -@admin"));
        assert!(!admin("on >x +@all nocommands"));
    }
}
