//! `picket import-sentinel`: a running redis-sentinel's `sentinel.conf` turned into a
//! `picket.toml` and an initial state, so that the Picket taking the Sentinel's place continues
//! from its epochs and its current masters instead of from zero.
//!
//! Pure, like the rest of the configuration: [`import`] takes the file's text and the
//! operator's choices and returns the TOML text, the [`DurableState`] (which the shell writes
//! with the same code the daemon uses, `persist::store`), the secrets to write to files of their
//! own, and the report: every line either carried over or listed with the reason it could not
//! be. The generated TOML is parsed back before it is returned, so what the shell writes always
//! passes `picket check`.
//!
//! What becomes of the Sentinel's state:
//! - `sentinel myid` is the node id (clients and the other Sentinels know this node by it);
//! - `current-epoch` is the current epoch, and also the vote floor: the node will not vote in
//!   an epoch the Sentinel may already have voted in;
//! - per master, `config-epoch` and the `monitor` address (which Sentinel rewrites after every
//!   failover) are the current configuration, `leader-epoch` the epoch of the latest vote, and
//!   `known-replica` lines the replicas to monitor at once;
//! - `known-sentinel` lines name the other voters: their gossip addresses are derived from them
//!   (same host, their Sentinel port plus the offset this node uses) unless given, and they are
//!   listed with their ids in the file's comments. Each peer at such an address starts known by
//!   the Sentinel's id and address (the state's `known_peers`), so that `SENTINEL SENTINELS`
//!   lists the other voters straight after the switch, as the Sentinel did, before they
//!   connect (client libraries such as Redisson refuse to start on an empty list).

pub mod sentinel_conf;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, parse};
use crate::engine::durable::KnownPeer;
use crate::engine::{Addr, AddrError, DurableMaster, DurableState, NodeId};

pub use self::sentinel_conf::{
    ConfMaster, ConfTls, ConfUser, DEFAULT_PORT, KnownSentinel, SentinelConf, Unmapped,
    known_sentinels, read,
};

/// What the operator decides that `sentinel.conf` cannot say.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The `sentinel.conf` read, named in the output's comments.
    pub source: PathBuf,
    /// Where `picket.toml` will be (named in errors).
    pub config_path: PathBuf,
    /// `node.state_dir`.
    pub state_dir: PathBuf,
    /// Where the secrets (passwords) are written, one file each.
    pub secrets_dir: PathBuf,
    /// `node.peer_secret_file`: the secret every node of the cluster shares.
    pub peer_secret_file: PathBuf,
    /// The peers' gossip addresses; empty to derive them from the known Sentinels (unless
    /// `sentinel_peers` is set: then empty is none).
    pub peers: Vec<Addr>,
    /// A rolling migration: the Sentinels still running beside this node, written as every
    /// master's `sentinel_peers` (with `fencing = "off"`); empty for native mode.
    pub sentinel_peers: Vec<Addr>,
    /// `node.announce`, when the Sentinel binds every address.
    pub announce: Option<Addr>,
    /// The gossip port (default: the Sentinel port + 1).
    pub gossip_port: Option<u16>,
    /// The HTTP port (default: the Sentinel port + 2).
    pub http_port: Option<u16>,
    /// The node id when `sentinel.conf` has no `sentinel myid` (a Sentinel that never started).
    pub new_node_id: NodeId,
}

/// The result of an import.
#[derive(Clone, Debug)]
pub struct Imported {
    /// `picket.toml`.
    pub toml: String,
    /// The initial state, for `state_dir`.
    pub state: DurableState,
    /// Files to write with mode 0600: (path, content).
    pub secret_files: Vec<(PathBuf, String)>,
    /// What was read (the report: [`SentinelConf::unmapped`] and [`SentinelConf::notes`]).
    pub conf: SentinelConf,
    /// The peers' gossip addresses, and whether they were derived from the known Sentinels.
    pub peers: Vec<Addr>,
    /// Whether [`Imported::peers`] were derived rather than given.
    pub peers_derived: bool,
}

/// Why nothing could be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// No usable `sentinel monitor` line.
    #[error("no master: sentinel.conf has no usable `sentinel monitor` line")]
    NoMaster,
    /// `port 0` and no `tls-port`.
    #[error("sentinel.conf listens on no port (port 0 and no tls-port)")]
    NoPort,
    /// A derived port is past 65535.
    #[error("the {0} port would be past 65535: choose it with --{0}-port")]
    PortOverflow(&'static str),
    /// The Sentinel binds every address and nothing says which one peers reach it by.
    #[error(
        "sentinel.conf binds every address and has no `sentinel announce-ip`: pass --announce \
         host:port (the gossip address the other nodes reach this one by)"
    )]
    NeedAnnounce,
    /// An address could not be built.
    #[error("{0}")]
    Address(#[from] AddrError),
    /// `tls-port` or `tls-replication` without `tls-cert-file` and `tls-key-file`.
    #[error(
        "TLS is configured (tls-port or tls-replication) but tls-cert-file or tls-key-file is missing"
    )]
    TlsWithoutCertificate,
    /// The generated file does not pass the configuration's checks.
    #[error("the generated configuration is not valid: {0}")]
    Invalid(#[from] ConfigError),
}

/// Imports `text`, a `sentinel.conf`.
///
/// # Errors
/// See [`ImportError`]: the result would not be a usable configuration.
pub fn import(text: &str, options: &ImportOptions) -> Result<Imported, ImportError> {
    let conf = read(text);
    if conf.masters.is_empty() {
        return Err(ImportError::NoMaster);
    }
    let mut secrets = Secrets::new(&options.secrets_dir);
    let node = node_section(&conf, options, &mut secrets)?;
    let mut toml = header(&conf, options);
    toml.push_str(&node.text);
    toml.push_str(&tls_section(&conf)?);
    for user in &conf.users {
        let file = secrets.add(&format!("user-{}.password", user.name), &user.password);
        let role = if user.admin { "admin" } else { "read" };
        let _ = write!(
            toml,
            "\n# sentinel.conf line {}\n[[user]]\nname = {}\npassword_file = {}\nrole = {}\n",
            user.line,
            quote(&user.name),
            quote_path(&file),
            quote(role)
        );
    }
    for master in &conf.masters {
        toml.push_str(&master_section(master, &conf.tls, &mut secrets));
        toml.push_str(&rolling(&options.sentinel_peers));
    }
    // What `picket check` would say: the file must parse as written.
    parse(&toml, &options.config_path)?;
    let state = initial_state(&conf, options.new_node_id, &node.peers, node.gossip_step);
    Ok(Imported {
        toml,
        state,
        secret_files: secrets.files,
        peers: node.peers,
        peers_derived: node.peers_derived,
        conf,
    })
}

/// The state the node starts from: the Sentinel's identity, epochs and current masters, and the
/// known Sentinels as the peers last heard at `peers` (the configured gossip addresses) where
/// one is a known Sentinel's host on its port plus `gossip_step`.
fn initial_state(
    conf: &SentinelConf,
    new_node_id: NodeId,
    peers: &[Addr],
    gossip_step: u16,
) -> DurableState {
    let masters = conf
        .masters
        .iter()
        .map(|m| {
            let saved = DurableMaster {
                configured_addr: m.addr.clone(),
                addr: m.addr.clone(),
                config_epoch: m.config_epoch,
                voted_epoch: m.leader_epoch,
                // Sentinel does not persist whom it voted for; the vote floor covers it.
                voted_for: None,
                replicas: m.known_replicas.clone(),
                // Learned from the instances' INFO once the node runs.
                history: None,
                priorities: BTreeMap::new(),
                maintenance: crate::engine::gossip::Maintenance::default(),
                monitored_quorum: None,
                settings: BTreeMap::new(),
            };
            (m.name.clone(), saved)
        })
        .collect();
    let current_epoch = conf
        .masters
        .iter()
        .map(|m| m.config_epoch.max(m.leader_epoch))
        .fold(conf.current_epoch, u64::max);
    DurableState {
        node_id: conf.myid.unwrap_or(new_node_id),
        current_epoch,
        // The Sentinel may have voted in any epoch up to its current one.
        vote_floor: current_epoch,
        awaiting_vote_floor: false,
        masters,
        removed: BTreeMap::new(),
        known_peers: known_peers(conf, peers, gossip_step),
    }
}

/// The known Sentinels by the gossip address each is a peer at: its host, its Sentinel port
/// plus `gossip_step`, kept only where that is one of `peers` (a peer given with `--peer` at
/// another address is not known until it connects).
fn known_peers(conf: &SentinelConf, peers: &[Addr], gossip_step: u16) -> BTreeMap<Addr, KnownPeer> {
    known_sentinels(conf)
        .into_iter()
        .filter_map(|(node_id, client_addr)| {
            let gossip = gossip_addr(&client_addr, gossip_step).ok()?;
            peers.contains(&gossip).then_some((gossip, KnownPeer { node_id, client_addr }))
        })
        .collect()
}

/// A known Sentinel's gossip address: its host, its Sentinel port plus `step`.
fn gossip_addr(sentinel: &Addr, step: u16) -> Result<Addr, AddrError> {
    Addr::new(sentinel.host(), sentinel.port().wrapping_add(step))
}

/// Secrets to write, one file each.
struct Secrets {
    dir: PathBuf,
    files: Vec<(PathBuf, String)>,
}

impl Secrets {
    fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned(), files: Vec::new() }
    }

    /// Adds a secret under a file name made safe from `name`; returns its path.
    fn add(&mut self, name: &str, value: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
            .collect();
        let mut path = self.dir.join(&safe);
        let mut n = 1;
        while self.files.iter().any(|(p, _)| *p == path) {
            n += 1;
            path = self.dir.join(format!("{safe}.{n}"));
        }
        self.files.push((path.clone(), format!("{value}\n")));
        path
    }
}

/// `[node]`, and the peers chosen.
struct NodeSection {
    text: String,
    peers: Vec<Addr>,
    peers_derived: bool,
    /// This node's gossip port minus its Sentinel port: a known Sentinel's gossip port is its
    /// Sentinel port plus this.
    gossip_step: u16,
}

fn node_section(
    conf: &SentinelConf,
    options: &ImportOptions,
    secrets: &mut Secrets,
) -> Result<NodeSection, ImportError> {
    let host = conf.bind.clone().unwrap_or_else(|| "0.0.0.0".to_owned());
    let plain = conf.port.unwrap_or(DEFAULT_PORT);
    let base = match (plain, conf.tls.port) {
        (0, None) => return Err(ImportError::NoPort),
        (0, Some(tls)) => tls,
        (plain, _) => plain,
    };
    let offset = |what: &'static str, choice: Option<u16>, by: u16| {
        choice.or_else(|| base.checked_add(by)).ok_or(ImportError::PortOverflow(what))
    };
    let gossip_port = offset("gossip", options.gossip_port, 1)?;
    let http_port = offset("http", options.http_port, 2)?;
    let wildcard = host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
    let announce = match (&options.announce, &conf.announce_ip) {
        (Some(addr), _) => Some(addr.clone()),
        (None, Some(ip)) if wildcard => Some(Addr::new(ip, gossip_port)?),
        (None, None) if wildcard => return Err(ImportError::NeedAnnounce),
        (None, _) => None,
    };
    let mut text = String::from("\n[node]\n");
    if plain != 0 {
        let _ = writeln!(text, "listen = {}", quote(&Addr::new(&host, plain)?.to_string()));
    }
    if let Some(tls) = conf.tls.port {
        let _ = writeln!(text, "tls_listen = {}", quote(&Addr::new(&host, tls)?.to_string()));
    }
    let _ = writeln!(text, "gossip = {}", quote(&Addr::new(&host, gossip_port)?.to_string()));
    let _ = writeln!(text, "http = {}", quote(&Addr::new(&host, http_port)?.to_string()));
    let _ = writeln!(text, "state_dir = {}", quote_path(&options.state_dir));
    if let Some(announce) = &announce {
        let _ = writeln!(text, "announce = {}", quote(&announce.to_string()));
    }
    if let Some(ip) = &conf.announce_ip {
        let port = conf.announce_port.unwrap_or(base);
        let _ = writeln!(text, "client_announce = {}", quote(&Addr::new(ip, port)?.to_string()));
    }
    // In a rolling migration the other voters are the Sentinels left, not Pickets on their hosts.
    let peers_derived = options.peers.is_empty() && options.sentinel_peers.is_empty();
    let gossip_step = gossip_port.wrapping_sub(base);
    let peers: Vec<Addr> = if peers_derived {
        // The other Sentinels become the other voters, reached on their gossip port: their
        // Sentinel port plus the offset this node uses.
        known_sentinels(conf)
            .values()
            .map(|s| gossip_addr(s, gossip_step))
            .collect::<Result<_, _>>()?
    } else {
        options.peers.clone()
    };
    let listed: Vec<String> = peers.iter().map(|p| quote(&p.to_string())).collect();
    if peers_derived && !peers.is_empty() {
        text.push_str(
            "# The other nodes: the known Sentinels' hosts, each on its Sentinel port plus the \
             offset\n# of this node's gossip port. Check them (import-sentinel --peer sets them).\n",
        );
    }
    let _ = writeln!(text, "peers = [{}]", listed.join(", "));
    // A node of a rolling migration gains peers as the migration goes on.
    if !peers.is_empty() || !options.sentinel_peers.is_empty() {
        let _ = writeln!(text, "peer_secret_file = {}", quote_path(&options.peer_secret_file));
    }
    let requirepass =
        conf.requirepass.as_ref().map(|password| secrets.add("requirepass", password));
    if let Some(file) = &requirepass {
        let _ = writeln!(text, "requirepass_file = {}", quote_path(file));
    }
    // What the Sentinel gave the other Sentinels, this node gives the Sentinels of
    // `sentinel_peers`: its `sentinel-pass` (and `sentinel-user`), or else its `requirepass`.
    if let Some(password) = &conf.sentinel_pass {
        if let Some(user) = &conf.sentinel_user {
            let _ = writeln!(text, "sentinel_user = {}", quote(user));
        }
        let file = secrets.add("sentinel-pass", password);
        let _ = writeln!(text, "sentinel_pass_file = {}", quote_path(&file));
    } else if let Some(file) = requirepass.filter(|_| !options.sentinel_peers.is_empty()) {
        text.push_str(
            "# No sentinel-pass: the Sentinels authenticate to each other with their requirepass.\n",
        );
        let _ = writeln!(text, "sentinel_pass_file = {}", quote_path(&file));
    }
    Ok(NodeSection { text, peers, peers_derived, gossip_step })
}

/// `[tls]`: the Sentinel's certificate, for its TLS port and, with `tls-replication`, its
/// links to the other nodes.
fn tls_section(conf: &SentinelConf) -> Result<String, ImportError> {
    let tls = &conf.tls;
    if tls.port.is_none() && !tls.replication {
        return Ok(String::new());
    }
    let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) else {
        return Err(ImportError::TlsWithoutCertificate);
    };
    let mut text =
        format!("\n[tls]\ncert_file = {}\nkey_file = {}\n", quote_path(cert), quote_path(key));
    if let Some(ca) = &tls.ca_file {
        let _ = writeln!(text, "ca_file = {}", quote_path(ca));
    }
    if tls.port.is_some() {
        // Redis's default for tls-auth-clients is yes.
        let auth = match tls.auth_clients.as_deref() {
            Some("no") => "none",
            Some("optional") => "optional",
            _ => "required",
        };
        let _ = writeln!(text, "client_auth = {}", quote(auth));
    }
    if tls.replication {
        text.push_str(
            "# tls-replication yes: the Sentinel's links to other Sentinels used TLS; so does \
             gossip.\n# Each node's certificate must name the address the others list for it.\n\
             peers = true\n",
        );
    }
    Ok(text)
}

fn master_section(master: &ConfMaster, tls: &ConfTls, secrets: &mut Secrets) -> String {
    let mut text = format!("\n# sentinel.conf line {}", master.line);
    if master.config_epoch > 0 {
        let _ = write!(text, "; current master since config epoch {}", master.config_epoch);
    }
    text.push('\n');
    for sentinel in &master.known_sentinels {
        let _ = writeln!(text, "# known Sentinel: {} id {}", sentinel.addr, sentinel.id);
    }
    let _ = write!(
        text,
        "[[master]]\nname = {}\naddress = {}\nquorum = {}\n",
        quote(&master.name),
        quote(&master.addr.to_string()),
        master.quorum
    );
    let numbers = [
        ("down_after_ms", master.down_after_ms),
        ("failover_timeout_ms", master.failover_timeout_ms),
        ("parallel_syncs", master.parallel_syncs.map(u64::from)),
        ("reboot_down_after_ms", master.reboot_down_after_ms),
    ];
    for (key, value) in numbers {
        if let Some(value) = value {
            let _ = writeln!(text, "{key} = {value}");
        }
    }
    if let Some(user) = &master.auth_user {
        let _ = writeln!(text, "auth_user = {}", quote(user));
    }
    if let Some(password) = &master.auth_pass {
        let file = secrets.add(&format!("master-{}.auth-pass", master.name), password);
        let _ = writeln!(text, "auth_pass_file = {}", quote_path(&file));
    }
    for (key, script) in [
        ("notification_script", &master.notification_script),
        ("client_reconfig_script", &master.client_reconfig_script),
    ] {
        if let Some(script) = script {
            let _ = writeln!(text, "{key} = {}", quote(script));
        }
    }
    if tls.replication {
        text.push_str("tls = true\n");
        if let Some(ca) = &tls.ca_file {
            let _ = writeln!(text, "tls_ca_file = {}", quote_path(ca));
        }
        // Sentinel presents tls-client-cert-file, else tls-cert-file, to Redis.
        let client = tls
            .client_cert_file
            .as_ref()
            .zip(tls.client_key_file.as_ref())
            .or_else(|| tls.cert_file.as_ref().zip(tls.key_file.as_ref()));
        if let Some((cert, key)) = client {
            let _ = writeln!(
                text,
                "tls_cert_file = {}\ntls_key_file = {}",
                quote_path(cert),
                quote_path(key)
            );
        }
    }
    text
}

/// A master's keys for a rolling migration (`--sentinel-peer`): the Sentinels still running
/// are its voters beside this node, and its fencing is Sentinel's until they are gone.
fn rolling(sentinel_peers: &[Addr]) -> String {
    if sentinel_peers.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = sentinel_peers.iter().map(|a| quote(&a.to_string())).collect();
    format!(
        "# Rolling migration: the Sentinels still running (remove once they are gone), and\n\
         # Sentinel's fencing meanwhile (they know nothing of leases).\n\
         sentinel_peers = [{}]\nfencing = \"off\"\n",
        listed.join(", ")
    )
}

/// The file's first lines: where it comes from, and every line that was not carried over.
fn header(conf: &SentinelConf, options: &ImportOptions) -> String {
    let mut text = format!(
        "# Imported from {} by `picket import-sentinel`.\n\
         # Check it with `picket check --config <this file>`; the initial state is in\n\
         # state_dir/state.toml (node id, epochs, current masters, known replicas).\n",
        options.source.display().to_string().escape_debug()
    );
    if !conf.unmapped.is_empty() {
        text.push_str("#\n# Not imported:\n");
        for line in &conf.unmapped {
            let _ = writeln!(
                text,
                "#   line {}: {}: {}",
                line.line,
                line.text.escape_debug(),
                line.reason
            );
        }
    }
    text
}

/// `value` as a TOML string.
fn quote(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

#[cfg(test)]
mod tests;
