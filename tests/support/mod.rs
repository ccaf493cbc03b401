//! Real processes for integration tests: `redis-server` and `picket` on loopback addresses.
//!
//! Every process is owned by a guard that kills it (SIGKILL, after SIGCONT) when dropped, so a
//! failing test leaves nothing behind. Waits are conditions polled under generous bounds, never
//! fixed sleeps asserted as speeds: the suite must not flake on two busy cores.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different part of this module
#![allow(clippy::disallowed_methods)] // tests wait on real processes, in real time

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod http;
pub mod sentinel;
pub mod tls;

/// Polls `condition` every 20 ms until it holds or `timeout` passes; panics with `what` then.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if condition() {
            return;
        }
        sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Like [`wait_for`], returning the first `Some` value.
pub fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(value) = probe() {
            return value;
        }
        sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Whether a test must stop because `what` (which `scripts/setup` installs) is missing: under
/// `CI=true` that is a failure, never a skip; elsewhere the test says it was skipped.
pub fn missing(what: &str, available: bool) -> bool {
    if available {
        return false;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} is missing (scripts/setup installs it)"
    );
    eprintln!("SKIPPED: {what} is missing (scripts/setup installs it)");
    true
}

/// Whether Python's redis-py can be imported.
pub fn redis_py_installed() -> bool {
    Command::new("python3").args(["-c", "import redis"]).status().is_ok_and(|s| s.success())
}

/// A port free on every loopback address the tests use, never handed out twice in one process
/// (a port given to a process that has not started yet still binds). Each process starts in its
/// own block of the range, so parallel test binaries rarely meet, and binding checks the rest.
///
/// The range ends below the kernel's ephemeral ports (`ip_local_port_range`): a port in that
/// range that is free when checked can become the local end of any outgoing connection before
/// the process it was given to binds it (a picket once failed to start on "address already in
/// use" that way).
pub fn free_port() -> u16 {
    const FIRST: u32 = 10_000;
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_low.clamp(FIRST + 1_000, 60_000) - FIRST;
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = (std::process::id() % 200) * 100;
    (0..span)
        .map(|i| u16::try_from(FIRST + (start + i) % span).unwrap())
        .find(|port| {
            !given.contains(port)
                && ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
                    .iter()
                    .all(|ip| TcpListener::bind((*ip, *port)).is_ok())
        })
        .inspect(|port| {
            given.insert(*port);
        })
        .expect("no free port left below the ephemeral range")
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

/// How a TLS-only `redis-server` is set up: `port 0`, `tls-port`, `tls-replication yes`.
#[derive(Clone, Debug)]
pub struct RedisTls {
    /// `tls-ca-cert-file`: the CA clients' and replicas' certificates must chain to.
    pub ca_file: PathBuf,
    /// `tls-cert-file` / `tls-key-file`: the server's (and, replicating, client's) certificate.
    pub server: tls::Pair,
    /// `tls-auth-clients yes`.
    pub auth_clients: bool,
}

/// A `redis-server` process.
pub struct Redis {
    /// The address others reach it at (127.0.0.1, or a test network's bridge address).
    pub host: String,
    /// The network namespace it runs in, if not the root one.
    netns: Option<String>,
    pub port: u16,
    pub password: Option<String>,
    dir: TempDir,
    child: Option<Child>,
    args: Vec<String>,
    /// Set for a TLS-only server.
    pub tls: Option<RedisTls>,
}

impl Redis {
    /// Starts a master on 127.0.0.1:`port`.
    pub fn master(port: u16, password: Option<&str>) -> Self {
        Self::start("127.0.0.1", port, password, None)
    }

    /// Starts a replica of `master` on 127.0.0.1:`port`.
    pub fn replica(port: u16, master: &Self) -> Self {
        Self::start("127.0.0.1", port, master.password.as_deref(), Some(master))
    }

    /// Starts an instance on `host` (and 127.0.0.1), replicating `master` if given.
    pub fn start(host: &str, port: u16, password: Option<&str>, master: Option<&Self>) -> Self {
        Self::start_in(None, host, port, password, master)
    }

    /// Like [`Self::start`], inside network namespace `netns` (whose address is `host`).
    pub fn start_in(
        netns: Option<&str>,
        host: &str,
        port: u16,
        password: Option<&str>,
        master: Option<&Self>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // A config file, so that CONFIG REWRITE (part of every reconfiguration) succeeds.
        let bind = if host == "127.0.0.1" { host.to_owned() } else { format!("127.0.0.1 {host}") };
        let mut conf = format!(
            "port {port}\nbind {bind}\nprotected-mode no\nsave \"\"\nappendonly no\ndir {}\nlogfile {}/redis.log\nenable-debug-command local\n",
            dir.path().display(),
            dir.path().display()
        );
        if let Some(password) = password {
            let _ = writeln!(conf, "requirepass {password}\nmasterauth {password}");
        }
        if let Some(master) = master {
            let _ = writeln!(conf, "replicaof {} {}", master.host, master.port);
        }
        let path = dir.path().join("redis.conf");
        fs::write(&path, conf).unwrap();
        let mut redis = Self {
            host: host.to_owned(),
            netns: netns.map(str::to_owned),
            port,
            password: password.map(str::to_owned),
            dir,
            child: None,
            args: vec![path.display().to_string()],
            tls: None,
        };
        redis.spawn();
        redis
    }

    /// Starts a TLS-only instance on 127.0.0.1:`port` (no plain port at all), replicating
    /// `master` over TLS if given.
    pub fn start_tls(port: u16, tls: &RedisTls, master: Option<&Self>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = format!(
            "port 0\ntls-port {port}\nbind 127.0.0.1\nprotected-mode no\nsave \"\"\n\
             appendonly no\ndir {dir}\nlogfile {dir}/redis.log\ntls-cert-file {}\n\
             tls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients {}\ntls-replication yes\n",
            tls.server.cert.display(),
            tls.server.key.display(),
            tls.ca_file.display(),
            if tls.auth_clients { "yes" } else { "no" },
            dir = dir.path().display(),
        );
        if let Some(master) = master {
            let _ = writeln!(conf, "replicaof {} {}", master.host, master.port);
        }
        let path = dir.path().join("redis.conf");
        fs::write(&path, conf).unwrap();
        let mut redis = Self {
            host: "127.0.0.1".to_owned(),
            netns: None,
            port,
            password: None,
            dir,
            child: None,
            args: vec![path.display().to_string()],
            tls: Some(tls.clone()),
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "redis-server"]);
                c
            }
            None => Command::new("redis-server"),
        };
        let child = command
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt install redis-server)");
        self.child = Some(child);
        wait_for(&format!("redis on {}", self.port), Duration::from_secs(20), || {
            self.query(&["PING"]).is_ok()
        });
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a command on a fresh connection, with a short timeout.
    pub fn query(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let mut info = redis::RedisConnectionInfo::default();
        if let Some(p) = &self.password {
            info = info.set_password(p);
        }
        // Instances in a namespace are reached through the test network.
        let ip = if self.netns.is_some() { self.host.clone() } else { "127.0.0.1".to_owned() };
        let client = match &self.tls {
            None => {
                let addr = redis::ConnectionAddr::Tcp(ip, self.port);
                let info =
                    redis::IntoConnectionInfo::into_connection_info(addr)?.set_redis_settings(info);
                redis::Client::open(info)?
            }
            // The test talks to a TLS-only server with a client certificate (the server's own
            // will do) in case it requires one. It does not verify the server: some tests give
            // servers certificates Picket must refuse (expired, another CA, another name).
            Some(tls) => {
                let addr = redis::ConnectionAddr::TcpTls {
                    host: ip,
                    port: self.port,
                    insecure: true,
                    tls_params: None,
                };
                let info =
                    redis::IntoConnectionInfo::into_connection_info(addr)?.set_redis_settings(info);
                let certificates = redis::TlsCertificates {
                    client_tls: Some(redis::ClientTlsConfig {
                        client_cert: fs::read(&tls.server.cert).unwrap(),
                        client_key: fs::read(&tls.server.key).unwrap(),
                    }),
                    root_cert: Some(fs::read(&tls.ca_file).unwrap()),
                };
                redis::Client::build_with_tls(info, certificates)?
            }
        };
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut conn)
    }

    /// `ROLE`'s first element: `master` or `slave`, if the server answers.
    pub fn role(&self) -> Option<String> {
        match self.query(&["ROLE"]).ok()? {
            redis::Value::Array(items) => match items.first()? {
                redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                redis::Value::SimpleString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The master a replica follows (`host:port`), from `ROLE`.
    pub fn master_of(&self) -> Option<String> {
        match self.query(&["ROLE"]).ok()? {
            redis::Value::Array(items) if items.len() >= 3 => {
                let host: String = redis::from_redis_value(items[1].clone()).ok()?;
                let port: i64 = redis::from_redis_value(items[2].clone()).ok()?;
                Some(format!("{host}:{port}"))
            }
            _ => None,
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// Starts the process again with its configuration file (as it was last rewritten).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One master group of a test topology.
pub struct Group {
    pub name: String,
    pub master: Redis,
    pub replicas: Vec<Redis>,
}

impl Group {
    /// A master and `replicas` replicas on fresh ports, all replicas synced.
    pub fn start(name: &str, replicas: usize, password: Option<&str>) -> Self {
        Self::start_on("127.0.0.1", name, replicas, password)
    }

    /// A TLS-only master and `replicas` TLS-only replicas (replicating over TLS).
    pub fn start_tls(name: &str, replicas: usize, tls: &RedisTls) -> Self {
        let master = Redis::start_tls(free_port(), tls, None);
        let replicas: Vec<Redis> =
            (0..replicas).map(|_| Redis::start_tls(free_port(), tls, Some(&master))).collect();
        Self::from_parts(name, master, replicas)
    }

    /// The same, reachable at `host` (a test network's bridge address).
    pub fn start_on(host: &str, name: &str, replicas: usize, password: Option<&str>) -> Self {
        let master = Redis::start(host, free_port(), password, None);
        let replicas: Vec<Redis> = (0..replicas)
            .map(|_| Redis::start(host, free_port(), password, Some(&master)))
            .collect();
        Self::from_parts(name, master, replicas)
    }

    /// A group of instances started by the caller; waits until every replica is in sync.
    pub fn from_parts(name: &str, master: Redis, replicas: Vec<Redis>) -> Self {
        let group = Self { name: name.to_owned(), master, replicas };
        group.wait_in_sync();
        group
    }

    fn wait_in_sync(&self) {
        wait_for("replicas in sync", Duration::from_secs(20), || {
            self.replicas.iter().all(|r| {
                matches!(r.query(&["INFO", "replication"]), Ok(redis::Value::BulkString(ref b))
                    if String::from_utf8_lossy(b).contains("master_link_status:up"))
            })
        });
    }

    /// Every instance, master first.
    pub fn all(&self) -> impl Iterator<Item = &Redis> {
        std::iter::once(&self.master).chain(&self.replicas)
    }

    /// Every instance, mutably.
    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut Redis> {
        std::iter::once(&mut self.master).chain(&mut self.replicas)
    }

    /// The instance at `addr`.
    pub fn at(&self, addr: &str) -> Option<&Redis> {
        self.all().find(|r| r.addr() == addr)
    }
}

/// Settings of one picket node in a test cluster.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Its loopback address (127.0.0.N).
    pub ip: String,
    pub listen: u16,
    pub gossip: u16,
    pub http: u16,
    /// `tls_listen` and `tls_http`, when the cluster's options ask for TLS listeners.
    pub tls_listen: u16,
    pub tls_http: u16,
}

impl NodeSpec {
    pub fn gossip_addr(&self) -> String {
        format!("{}:{}", self.ip, self.gossip)
    }

    pub fn listen_addr(&self) -> String {
        format!("{}:{}", self.ip, self.listen)
    }

    pub fn http_addr(&self) -> String {
        format!("{}:{}", self.ip, self.http)
    }

    pub fn tls_listen_addr(&self) -> String {
        format!("{}:{}", self.ip, self.tls_listen)
    }

    pub fn tls_http_addr(&self) -> String {
        format!("{}:{}", self.ip, self.tls_http)
    }
}

/// Node specs for `n` pickets on 127.0.0.1..=n, sharing port numbers.
pub fn node_specs(n: usize) -> Vec<NodeSpec> {
    let (listen, gossip, http) = (free_port(), free_port(), free_port());
    let (tls_listen, tls_http) = (free_port(), free_port());
    (1..=n)
        .map(|i| NodeSpec {
            ip: format!("127.0.0.{i}"),
            listen,
            gossip,
            http,
            tls_listen,
            tls_http,
        })
        .collect()
}

/// Options for a test cluster's pickets.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub quorum: u32,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    /// Extra lines appended to every `[[master]]` section.
    pub master_extra: String,
    /// Extra lines appended to `[node]`.
    pub node_extra: String,
    /// TLS for the pickets themselves: `[tls]` and the TLS listeners.
    pub node_tls: Option<NodeTls>,
    /// Sections appended after the masters (`[[user]]`, ...).
    pub sections: String,
}

/// Each picket's `[tls]`: its certificate is `<dir>/picket-<ip>.pem` (and `.key`).
#[derive(Clone, Debug)]
pub struct NodeTls {
    pub dir: PathBuf,
    pub ca_file: PathBuf,
    /// `client_auth`.
    pub client_auth: &'static str,
    /// Gossip over TLS.
    pub peers: bool,
    /// `tls_listen` and `tls_http` besides `listen` and `http`.
    pub listeners: bool,
}

impl NodeTls {
    /// The certificate files of the picket at `ip`.
    pub fn pair(&self, ip: &str) -> tls::Pair {
        tls::Pair {
            cert: self.dir.join(format!("picket-{ip}.pem")),
            key: self.dir.join(format!("picket-{ip}.key")),
        }
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            quorum: 2,
            down_after_ms: 1000,
            failover_timeout_ms: 10_000,
            master_extra: String::new(),
            node_extra: String::new(),
            node_tls: None,
            sections: String::new(),
        }
    }
}

/// The TOML configuration of node `me` among `nodes`, supervising `groups`.
pub fn config_text(
    me: &NodeSpec,
    nodes: &[NodeSpec],
    groups: &[&Group],
    state_dir: &Path,
    options: &ClusterOptions,
) -> String {
    let peers: Vec<String> = nodes
        .iter()
        .filter(|n| n.ip != me.ip)
        .map(|n| format!("\"{}\"", n.gossip_addr()))
        .collect();
    let mut text = format!(
        "[node]\nlisten = \"{}\"\ngossip = \"{}\"\nhttp = \"{}\"\nstate_dir = \"{}\"\npeers = [{}]\n",
        me.listen_addr(),
        me.gossip_addr(),
        me.http_addr(),
        state_dir.display(),
        peers.join(", ")
    );
    if !peers.is_empty() {
        text.push_str("peer_secret = \"integration-test-secret\"\n");
    }
    if options.node_tls.as_ref().is_some_and(|t| t.listeners) {
        let _ = writeln!(
            text,
            "tls_listen = \"{}\"\ntls_http = \"{}\"",
            me.tls_listen_addr(),
            me.tls_http_addr()
        );
    }
    text.push_str(&options.node_extra);
    if let Some(tls) = &options.node_tls {
        let pair = tls.pair(&me.ip);
        let _ = write!(
            text,
            "\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\n\
             client_auth = \"{}\"\npeers = {}\n",
            pair.cert.display(),
            pair.key.display(),
            tls.ca_file.display(),
            tls.client_auth,
            tls.peers
        );
    }
    for group in groups {
        let _ = write!(
            text,
            "\n[[master]]\nname = \"{}\"\naddress = \"{}\"\nquorum = {}\ndown_after_ms = {}\nfailover_timeout_ms = {}\n",
            group.name,
            group.master.addr(),
            options.quorum,
            options.down_after_ms,
            options.failover_timeout_ms
        );
        if let Some(password) = &group.master.password {
            let _ = writeln!(text, "auth_pass = \"{password}\"");
        }
        text.push_str(&options.master_extra);
    }
    text.push_str(&options.sections);
    text
}

/// What a picket's state file says about `master`: its address and config epoch.
pub fn durable_master(picket: &Picket, master: &str) -> Option<(String, u64)> {
    let text = fs::read_to_string(picket.dir().join("state/state.toml")).ok()?;
    let state: toml::Value = toml::from_str(&text).ok()?;
    let m = state.get("masters")?.get(master)?;
    let epoch = u64::try_from(m.get("config_epoch")?.as_integer()?).ok()?;
    Some((m.get("addr")?.as_str()?.to_owned(), epoch))
}

/// A `picket` process. Its state directory outlives restarts of the process.
pub struct Picket {
    pub spec: NodeSpec,
    /// The network namespace it runs in, if any.
    pub netns: Option<String>,
    dir: TempDir,
    child: Option<Child>,
    /// How many times it was started (each start appends to the same log).
    starts: u32,
    /// `RUST_LOG` for the process.
    log_filter: &'static str,
    /// A lowered `RLIMIT_NOFILE` (soft and hard) to run under, through `prlimit`.
    open_files: Option<u64>,
}

/// The log filter pickets run with unless a test asks for more.
const LOG_FILTER: &str = "info,picket::event=debug";

impl Picket {
    /// Writes the configuration `config` builds (given the state directory to use, inside this
    /// picket's own temporary directory) and starts `picket run` with JSON logs.
    pub fn start(spec: NodeSpec, config: impl FnOnce(&Path) -> String) -> Self {
        Self::start_logging(spec, LOG_FILTER, config)
    }

    /// Like [`Self::start`], logging with `RUST_LOG=filter`.
    pub fn start_logging(
        spec: NodeSpec,
        filter: &'static str,
        config: impl FnOnce(&Path) -> String,
    ) -> Self {
        Self::launch(spec, None, filter, None, config)
    }

    /// Like [`Self::start`], with at most `limit` open files (soft and hard `RLIMIT_NOFILE`,
    /// set by `prlimit`, which execs picket: the child's pid is picket's own).
    pub fn start_with_open_files(
        spec: NodeSpec,
        limit: u64,
        config: impl FnOnce(&Path) -> String,
    ) -> Self {
        Self::launch(spec, None, LOG_FILTER, Some(limit), config)
    }

    /// Like [`Self::start`], inside network namespace `netns`.
    pub fn start_in(netns: &str, spec: NodeSpec, config: impl FnOnce(&Path) -> String) -> Self {
        Self::launch(spec, Some(netns.to_owned()), LOG_FILTER, None, config)
    }

    /// Writes the configuration into a new temporary directory and starts the process.
    fn launch(
        spec: NodeSpec,
        netns: Option<String>,
        log_filter: &'static str,
        open_files: Option<u64>,
        config: impl FnOnce(&Path) -> String,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = config(&dir.path().join("state"));
        fs::write(dir.path().join("picket.toml"), text).unwrap();
        let mut picket = Self { spec, netns, dir, child: None, starts: 0, log_filter, open_files };
        picket.spawn();
        picket
    }

    /// Replaces the configuration file (takes effect at the next restart).
    pub fn rewrite_config(&self, config: impl FnOnce(&Path) -> String) {
        let text = config(&self.dir.path().join("state"));
        fs::write(self.config_path(), text).unwrap();
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let mut command = match (&self.netns, self.open_files) {
            // `ip netns exec` execs the program, so the child's pid is picket's own.
            (Some(ns), _) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_picket")]);
                c
            }
            // So does `prlimit`.
            (None, Some(limit)) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={limit}:{limit}")).arg(env!("CARGO_BIN_EXE_picket"));
                c
            }
            (None, None) => Command::new(env!("CARGO_BIN_EXE_picket")),
        };
        let child = command
            .arg("run")
            .arg("--config")
            .arg(self.dir.path().join("picket.toml"))
            .arg("--log-format")
            .arg("json")
            .env("RUST_LOG", self.log_filter)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.starts += 1;
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("picket.log")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("picket.toml")
    }

    /// Every event this node published so far (all its runs), in order, as `channel payload`.
    pub fn events(&self) -> Vec<String> {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v["target"] == "picket::event")
            .filter_map(|v| v["fields"]["message"].as_str().map(str::to_owned))
            .collect()
    }

    /// Whether it published an event starting with `prefix`.
    pub fn saw(&self, prefix: &str) -> bool {
        self.events().iter().any(|e| e.starts_with(prefix))
    }

    /// How many published events start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.events().iter().filter(|e| e.starts_with(prefix)).count()
    }

    /// The log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        signal(child.id(), "TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// SIGSTOP / SIGCONT.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// Starts the process again with the same configuration and state directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Exit status if it has exited.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()).and_then(|s| s.code())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Picket {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- log of picket {} ----\n{}", self.spec.ip, self.log());
        }
    }
}

/// A cluster of pickets supervising groups of real Redis servers.
pub struct Cluster {
    pub groups: Vec<Group>,
    pub pickets: Vec<Picket>,
}

impl Cluster {
    /// `nodes` pickets supervising `groups`.
    pub fn start(nodes: usize, groups: Vec<Group>, options: &ClusterOptions) -> Self {
        let specs = node_specs(nodes);
        let refs: Vec<&Group> = groups.iter().collect();
        let pickets = specs
            .iter()
            .map(|spec| {
                Picket::start(spec.clone(), |state| {
                    config_text(spec, &specs, &refs, state, options)
                })
            })
            .collect();
        Self { groups, pickets }
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> &Group {
        self.groups.iter().find(|g| g.name == name).expect("group")
    }

    pub fn group_mut(&mut self, name: &str) -> &mut Group {
        self.groups.iter_mut().find(|g| g.name == name).expect("group")
    }

    /// Waits until every picket has discovered every replica and heard both peers.
    pub fn wait_ready(&self) {
        wait_for("pickets ready", CLUSTER_WAIT, || {
            self.pickets.iter().all(|p| {
                let events = p.events();
                let replicas: usize = self.groups.iter().map(|g| g.replicas.len()).sum();
                events.iter().filter(|e| e.starts_with("+slave ")).count() >= replicas
                    && events.iter().filter(|e| e.starts_with("+sentinel ")).count()
                        >= (self.pickets.len() - 1) * self.groups.len()
            })
        });
    }

    /// Waits until every picket's state names the same master for `group` with a config epoch
    /// above zero, and returns it.
    pub fn agreed_master(&self, group: &str) -> (String, u64) {
        wait_until(&format!("all pickets to agree on {group}'s new master"), CLUSTER_WAIT, || {
            let views: Vec<_> = self.pickets.iter().map(|p| durable_master(p, group)).collect();
            let first = views.first()?.clone()?;
            (first.1 > 0 && views.iter().all(|v| v.as_ref() == Some(&first))).then_some(first)
        })
    }

    /// Checks the outcome of a failover of `group`: exactly one replica promoted, the others
    /// following it, and one `+switch-master` per picket. Returns the new master.
    pub fn check_one_clean_failover(&self, group: &str, old: &str) -> String {
        let (new, epoch) = self.agreed_master(group);
        assert_ne!(new, old, "the master must have changed");
        assert!(epoch >= 1);
        let g = self.group(group);
        let promoted = g.at(&new).expect("the new master is one of the group's instances");
        wait_for("new master writable", CLUSTER_WAIT, || {
            promoted.query(&["SET", "k", "v"]).is_ok()
        });
        assert_eq!(promoted.role().as_deref(), Some("master"));
        for replica in g.replicas.iter().filter(|r| r.addr() != new) {
            wait_for(&format!("{} to follow {new}", replica.addr()), CLUSTER_WAIT, || {
                replica.role().as_deref() == Some("slave")
                    && replica.master_of().as_deref() == Some(new.as_str())
            });
        }
        let switch =
            format!("+switch-master {group} {} {}", old.replace(':', " "), new.replace(':', " "));
        for picket in &self.pickets {
            wait_for("+switch-master on every picket", CLUSTER_WAIT, || picket.count(&switch) == 1);
        }
        let leaders: usize =
            self.pickets.iter().map(|p| p.count(&format!("+elected-leader master {group}"))).sum();
        assert_eq!(leaders, 1, "exactly one leader");
        new
    }
}

/// How long cluster-wide conditions may take on two busy cores.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(60);

pub mod netns;
