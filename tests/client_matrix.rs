//! The client-compatibility matrix: every Sentinel client these machines can install, unmodified
//! and with its library defaults, against three pickets supervising real `redis-server` groups,
//! through the same scenarios:
//!
//! 1. resolve the master through the three pickets and write (the write is then read on the
//!    master itself), and read from a replica where the client can (the key read is written on
//!    the replica alone, so a read served by the master cannot pass);
//! 2. SIGKILL the master and keep writing with the same client object until a write is
//!    acknowledged; that write must be on the master the pickets agreed on. The time from the
//!    kill to the acknowledgement is printed, never asserted;
//! 3. restart the old master and keep writing until the pickets have made it a replica: every
//!    acknowledged write must be on the real (new) master, none lost on the old one;
//! 4. `requirepass` on the Redis instances (scenarios 1 and 2 again), then also on the pickets'
//!    Sentinel port (scenario 1 again);
//! 5. a fresh client started while the first picket it lists hangs (SIGSTOP), then while it is
//!    dead (SIGKILL).
//!
//! Clients in other languages are small scripts under `tests/clients/`, run as real processes
//! and driven over stdin/stdout (`set`, `get`, `replica_get`, one JSON reply each); the Rust
//! clients run in threads behind the same protocol. What a client cannot do is declared in
//! [`CLIENTS`] with the reason found in its source, and shown as such, never as a pass. Each
//! group of instances belongs to one client, so the clients share two clusters (one plain, one
//! with passwords) and every failover is a client's own. The test prints the matrix the README
//! shows; it fails if any supported scenario fails, after printing it.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Cluster, ClusterOptions, Group, Redis, wait_for};

/// How long a client may take to answer one command (its own retries included).
const REPLY_WAIT: Duration = Duration::from_secs(60);
/// How long a client may keep failing before a scenario counts as failed.
const SCENARIO_WAIT: Duration = Duration::from_secs(60);
const REDIS_PASSWORD: &str = "matrix-redis-secret";
const SENTINEL_PASSWORD: &str = "matrix-sentinel-secret";

/// Whether a client can do something at all: `Err` holds the reason found in its source.
type Support = Result<(), &'static str>;

/// How a client is run.
#[derive(Clone, Copy, Debug)]
enum Launch {
    /// `tests/clients/python.py <variant>`.
    Python(&'static str),
    Ruby,
    Php,
    Go,
    RedisSync,
    RedisAsync,
    Fred,
}

/// One client of the matrix.
struct Client {
    /// Its name in the matrix; also the name of the master group it gets.
    name: &'static str,
    launch: Launch,
    replica_reads: Support,
    sentinel_auth: Support,
    /// Whether it gets past a first sentinel that accepts connections and never answers.
    hung_first_node: Support,
    /// How it follows a failover, when the library does not do all of it.
    note: &'static str,
}

const CLIENTS: &[Client] = &[
    Client {
        name: "redis-py-resp2",
        launch: Launch::Python("redis-py-resp2"),
        replica_reads: Ok(()),
        sentinel_auth: Ok(()),
        hung_first_node: Ok(()),
        note: "",
    },
    Client {
        name: "redis-py-resp3",
        launch: Launch::Python("redis-py-resp3"),
        replica_reads: Ok(()),
        sentinel_auth: Ok(()),
        hung_first_node: Ok(()),
        note: "RESP3 to the instances and to the Sentinel port",
    },
    Client {
        name: "redis-py-asyncio",
        launch: Launch::Python("redis-py-asyncio"),
        replica_reads: Ok(()),
        sentinel_auth: Ok(()),
        hung_first_node: Ok(()),
        note: "",
    },
    Client {
        name: "valkey-py",
        launch: Launch::Python("valkey-py"),
        replica_reads: Ok(()),
        sentinel_auth: Ok(()),
        hung_first_node: Ok(()),
        note: "",
    },
    Client {
        name: "coredis",
        launch: Launch::Python("coredis"),
        replica_reads: Ok(()),
        sentinel_auth: Ok(()),
        hung_first_node: Ok(()),
        note: "",
    },
    Client {
        name: "redis-rb",
        launch: Launch::Ruby,
        replica_reads: Ok(()),
        sentinel_auth: Ok(()),
        hung_first_node: Ok(()),
        note: "",
    },
    Client {
        name: "phpredis",
        launch: Launch::Php,
        replica_reads: Ok(()),
        sentinel_auth: Err(
            "phpredis 5.3's RedisSentinel constructor takes host, port, timeout, persistent, \
             retry_interval and read_timeout: no password (it came in phpredis 6.0)",
        ),
        hung_first_node: Ok(()),
        note: "no Sentinel-aware connection: RedisSentinel only queries, so the script \
               re-resolves through it after an error, as phpredis leaves to applications",
    },
    Client {
        name: "go-redis-v5",
        launch: Launch::Go,
        replica_reads: Err(
            "v5's FailoverOptions has a master name and sentinel addresses only: no replica \
             client (NewFailoverClient always resolves the master)",
        ),
        sentinel_auth: Err(
            "v5's sentinel.go dials sentinels with an Options of address, timeouts and pool \
             sizes only: FailoverOptions.Password is the master's",
        ),
        hung_first_node: Ok(()),
        note: "",
    },
    Client {
        name: "redis-rs-sync",
        launch: Launch::RedisSync,
        replica_reads: Ok(()),
        sentinel_auth: Ok(()),
        hung_first_node: Err(
            "the blocking SentinelClient talks to sentinels with no read timeout: reconnect in \
             sentinel.rs opens them with Client::get_connection and queries ROLE, and the \
             builder's TcpSettings offer only nodelay, keepalive and TCP_USER_TIMEOUT, which a \
             stopped peer's kernel satisfies (seen here: no reply in 60 s)",
        ),
        note: "SentinelClient hands out connections: the driver keeps one and asks the same \
               SentinelClient for another after an error",
    },
    Client {
        name: "redis-rs-async",
        launch: Launch::RedisAsync,
        replica_reads: Ok(()),
        sentinel_auth: Ok(()),
        hung_first_node: Ok(()),
        note: "as redis-rs-sync, with get_async_connection",
    },
    Client {
        name: "fred",
        launch: Launch::Fred,
        replica_reads: Err(
            "fred 10.1's Replicas interface is for clusters: route_replica (router/utils.rs) \
             finds the primary through the cluster hash-slot cache, which a Sentinel client \
             has none of, so every replica command fails with \"Failed to find cluster hash \
             slot owner.\" (seen here with the replicas feature on)",
        ),
        sentinel_auth: Ok(()),
        hung_first_node: Err(
            "fred 10.1 moves to the next sentinel only when connecting or AUTH fails \
             (connect_to_sentinel in router/sentinel.rs); a first sentinel that accepts the \
             connection and never answers times out GET-MASTER-ADDR-BY-NAME and fails the \
             whole connection (seen here: init() returned \"Request timed out.\")",
        ),
        note: "feature sentinel-auth; one client object, reconnecting forever",
    },
];

/// Where one client connects: the sentinels in order, the master's name, the passwords.
#[derive(Clone, Debug)]
struct Target {
    sentinels: Vec<String>,
    master: String,
    sentinel_password: String,
    password: String,
}

impl Target {
    fn new(cluster: &Cluster, master: &str, sentinel_password: &str, password: &str) -> Self {
        Self {
            sentinels: cluster.pickets.iter().map(|p| p.spec.listen_addr()).collect(),
            master: master.to_owned(),
            sentinel_password: sentinel_password.to_owned(),
            password: password.to_owned(),
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            self.sentinels.join(","),
            self.master.clone(),
            self.sentinel_password.clone(),
            self.password.clone(),
        ]
    }
}

/// A running client: commands in, one JSON reply per command out.
struct Driver {
    commands: Option<Sender<String>>,
    replies: Receiver<Value>,
    child: Option<Child>,
}

impl Driver {
    /// Starts `client` against `target` and waits for its first line, which names its version.
    fn start(client: &Client, target: &Target) -> Result<(Self, String), String> {
        let (commands, command_rx) = mpsc::channel::<String>();
        let (reply_tx, replies) = mpsc::channel::<Value>();
        let child = match client.launch {
            Launch::RedisSync => {
                let target = target.clone();
                thread::spawn(move || rust_clients::redis_sync(&target, &command_rx, &reply_tx));
                None
            }
            Launch::RedisAsync => {
                let target = target.clone();
                thread::spawn(move || rust_clients::redis_async(&target, &command_rx, &reply_tx));
                None
            }
            Launch::Fred => {
                let target = target.clone();
                thread::spawn(move || rust_clients::fred(&target, &command_rx, &reply_tx));
                None
            }
            _ => Some(spawn_script(client.launch, target, command_rx, reply_tx)),
        };
        let mut driver = Self { commands: Some(commands), replies, child };
        let first = driver.receive();
        match first["version"].as_str() {
            Some(version) => Ok((driver, version.to_owned())),
            None => Err(format!("{} did not start: {first}", client.name)),
        }
    }

    /// Sends one command and waits for its reply (an `error` reply if none comes).
    fn call(&mut self, command: &str) -> Value {
        if self.commands.as_ref().is_none_or(|c| c.send(command.to_owned()).is_err()) {
            return json!({"error": "the client has exited"});
        }
        self.receive()
    }

    fn receive(&mut self) -> Value {
        match self.replies.recv_timeout(REPLY_WAIT) {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout) => {
                json!({"error": format!("no reply in {REPLY_WAIT:?}")})
            }
            Err(RecvTimeoutError::Disconnected) => json!({"error": "the client has exited"}),
        }
    }

    /// `set key value`: whether the client says the write was acknowledged, or its error.
    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let reply = self.call(&format!("set {key} {value}"));
        if reply["ok"] == true { Ok(()) } else { Err(reply.to_string()) }
    }

    /// `get key` or `replica_get key`: the value read, or the client's error.
    fn get(&mut self, command: &str, key: &str) -> Result<Option<String>, String> {
        let reply = self.call(&format!("{command} {key}"));
        match &reply["value"] {
            Value::String(s) => Ok(Some(s.clone())),
            Value::Null if reply.get("value").is_some() => Ok(None),
            _ => Err(reply.to_string()),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // End of input ends every client; a script that does not go is killed.
        self.commands = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Starts a script client, with threads feeding its stdin and reading its stdout.
fn spawn_script(
    launch: Launch,
    target: &Target,
    commands: Receiver<String>,
    replies: Sender<Value>,
) -> Child {
    let dir = clients_dir();
    let mut command = match launch {
        Launch::Python(variant) => {
            let mut c = Command::new("python3");
            c.arg(dir.join("python.py")).arg(variant);
            c
        }
        Launch::Ruby => {
            let mut c = Command::new("ruby");
            c.arg(dir.join("ruby.rb"));
            c
        }
        Launch::Php => {
            let mut c = Command::new("php");
            c.arg(dir.join("php.php"));
            c
        }
        Launch::Go => Command::new(go_client().as_ref().expect("go-redis v5 client built")),
        Launch::RedisSync | Launch::RedisAsync | Launch::Fred => unreachable!("in-process"),
    };
    let mut child = command
        .args(target.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the client's interpreter runs");
    let mut stdin = child.stdin.take().unwrap();
    thread::spawn(move || {
        for line in commands {
            if writeln!(stdin, "{line}").and_then(|()| stdin.flush()).is_err() {
                break;
            }
        }
    });
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let reply = serde_json::from_str(&line)
                .unwrap_or_else(|_| json!({"error": format!("not JSON: {line}")}));
            if replies.send(reply).is_err() {
                break;
            }
        }
    });
    child
}

/// The version of an installed Debian package.
fn debian_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query").args(["-W", "-f", "${Version}", package]).output().ok()?;
    (out.status.success() && !out.stdout.is_empty())
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The go-redis v5 client, built once in GOPATH mode against Debian's source tree (offline:
/// Debian ships the library as source under /usr/share/gocode, not as a module).
fn go_client() -> &'static Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let version = debian_version("golang-gopkg-redis.v5-dev")
            .ok_or("golang-gopkg-redis.v5-dev is not installed")?;
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("client-matrix-go");
        let binary = out_dir.join("client");
        let output = Command::new("go")
            .args(["build", "-o"])
            .arg(&binary)
            .arg("-ldflags")
            .arg(format!("-X main.version={version}"))
            .arg(clients_dir().join("go.go"))
            .env("GOPATH", "/usr/share/gocode")
            .env("GO111MODULE", "off")
            .env("GOCACHE", out_dir.join("cache"))
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .output()
            .map_err(|e| format!("go: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(binary)
    })
}

/// Whether `program args` runs and exits 0.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the client's library is installed (`scripts/setup` installs them all).
fn installed(client: &Client) -> bool {
    match client.launch {
        Launch::Python(variant) => {
            let module = match variant {
                "valkey-py" => "valkey",
                "coredis" => "coredis",
                _ => "redis",
            };
            runs("python3", &["-c", &format!("import {module}")])
        }
        Launch::Ruby => runs("ruby", &["-e", "require 'redis'"]),
        Launch::Php => runs("php", &["-r", "exit(class_exists('RedisSentinel') ? 0 : 1);"]),
        Launch::Go => go_client().as_ref().map_err(|e| eprintln!("go-redis v5: {e}")).is_ok(),
        Launch::RedisSync | Launch::RedisAsync | Launch::Fred => true,
    }
}

/// The clients to run: all of them under `CI=true` (a missing one fails the test), the
/// installed ones elsewhere.
fn clients() -> Vec<&'static Client> {
    CLIENTS
        .iter()
        .filter(|c| !support::missing(&format!("the {} client", c.name), installed(c)))
        .collect()
}

/// The outcome of one scenario for one client.
#[derive(Clone, Debug)]
enum Outcome {
    Pass(String),
    Unsupported(&'static str),
    Fail(String),
}

impl Outcome {
    fn of(result: Result<String, String>) -> Self {
        result.map_or_else(Self::Fail, Self::Pass)
    }

    fn cell(&self) -> String {
        match self {
            Self::Pass(detail) if detail.is_empty() => "pass".to_owned(),
            Self::Pass(detail) => format!("pass ({detail})"),
            Self::Unsupported(_) => "not supported by the client".to_owned(),
            Self::Fail(_) => "FAIL".to_owned(),
        }
    }
}

const SCENARIOS: [&str; 8] = [
    "resolve + write",
    "replica read",
    "kill -9 master → first write",
    "old master back",
    "requirepass on Redis, kill -9 → first write",
    "password on Picket",
    "first node hung",
    "first node dead",
];

/// Outcomes by client and scenario, and each client's version.
#[derive(Default)]
struct Matrix {
    outcomes: Mutex<BTreeMap<(&'static str, &'static str), Outcome>>,
    versions: Mutex<BTreeMap<&'static str, String>>,
}

impl Matrix {
    fn record(&self, client: &Client, scenario: &'static str, outcome: Outcome) {
        assert!(SCENARIOS.contains(&scenario), "{scenario}");
        self.outcomes.lock().unwrap().insert((client.name, scenario), outcome);
    }

    /// The matrix as a Markdown table, then every failure and every unsupported scenario's
    /// reason in words.
    fn render(&self, clients: &[&Client]) -> String {
        let outcomes = self.outcomes.lock().unwrap();
        let versions = self.versions.lock().unwrap();
        let mut text = format!("| client | version | {} |\n|---|---|", SCENARIOS.join(" | "));
        text.push_str(&"---|".repeat(SCENARIOS.len()));
        text.push('\n');
        for client in clients {
            let version = versions.get(client.name).map_or("?", String::as_str);
            let _ = write!(text, "| {} | {version} |", client.name);
            for scenario in SCENARIOS {
                let cell = outcomes
                    .get(&(client.name, scenario))
                    .map_or_else(|| "not run".into(), Outcome::cell);
                let _ = write!(text, " {cell} |");
            }
            text.push('\n');
        }
        for client in clients.iter().filter(|c| !c.note.is_empty()) {
            let _ = writeln!(text, "note: {}: {}", client.name, client.note);
        }
        for ((client, scenario), outcome) in outcomes.iter() {
            match outcome {
                Outcome::Fail(why) => {
                    let _ = writeln!(text, "FAILED {client} / {scenario}: {why}");
                }
                Outcome::Unsupported(why) => {
                    let _ = writeln!(text, "not supported: {client} / {scenario}: {why}");
                }
                Outcome::Pass(_) => {}
            }
        }
        text
    }

    fn failures(&self) -> usize {
        self.outcomes.lock().unwrap().values().filter(|o| matches!(o, Outcome::Fail(_))).count()
    }
}

/// Three pickets supervising one group (a master and a replica) per client, once every picket
/// knows its peers and lists every replica as a healthy `slave` (a replica just discovered is
/// listed `disconnected` until the picket has reached it, and clients skip it).
fn cluster(clients: &[&Client], password: Option<&str>, options: &ClusterOptions) -> Cluster {
    let groups = clients.iter().map(|c| Group::start(c.name, 1, password)).collect();
    let cluster = Cluster::start(3, groups, options);
    cluster.wait_ready();
    for picket in &cluster.pickets {
        wait_for_healthy_replicas(&cluster, &format!("redis://{}/", picket.spec.listen_addr()));
    }
    cluster
}

/// Waits until the picket at `url` lists every group's replica with the flags `slave` alone.
fn wait_for_healthy_replicas(cluster: &Cluster, url: &str) {
    wait_for("every replica listed as a healthy slave", SCENARIO_WAIT, || {
        cluster.groups.iter().all(|g| {
            let replicas = sentinel_query(url, &["REPLICAS", &g.name]);
            matches!(replicas, Ok(redis::Value::Array(ref r))
                if r.len() == 1 && flags(&r[0]).as_deref() == Some("slave"))
        })
    });
}

/// `GET key` on the instance itself.
fn stored(redis: &Redis, key: &str) -> Option<String> {
    match redis.query(&["GET", key]) {
        Ok(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    }
}

/// The master and the replica of `group` before any failover.
fn first_roles(group: &Group) -> (&Redis, &Redis) {
    (&group.master, &group.replicas[0])
}

/// The master and the replica of `group` after a failover: the master the pickets agreed on,
/// and the other instance once it replicates from it.
fn roles_after_failover<'a>(cluster: &'a Cluster, name: &str) -> (&'a Redis, &'a Redis) {
    let (new, _) = cluster.agreed_master(name);
    let group = cluster.group(name);
    let master = group.at(&new).expect("the new master is one of the group's");
    let replica = group.all().find(|r| r.addr() != new).expect("the other instance");
    wait_for(&format!("{} to follow {new}", replica.addr()), SCENARIO_WAIT, || {
        replica.role().as_deref() == Some("slave")
            && replica.master_of().as_deref() == Some(new.as_str())
    });
    (master, replica)
}

/// Writes `key` on the replica alone (briefly writable), so that only a read served by a
/// replica can return it. An old master that came back may still be under Picket's fencing
/// pause (`CLIENT PAUSE ... WRITE`), which holds the write until it ends: it is tried again.
fn plant_on_replica(replica: &Redis, key: &str) {
    replica.query(&["CONFIG", "SET", "replica-read-only", "no"]).unwrap();
    wait_for("the key written on the replica", SCENARIO_WAIT, || {
        replica.query(&["SET", key, "from-the-replica"]).is_ok()
    });
    replica.query(&["CONFIG", "SET", "replica-read-only", "yes"]).unwrap();
}

/// `set key value`, again while the master refuses it with `-NOREPLICAS`: with the default
/// `fencing = "bounded"` Picket gives every master a lease (`min-replicas-to-write` 1,
/// `min-replicas-max-lag` 1 here), which a replica slowed down by a loaded machine can briefly
/// miss. That refusal is the server's, the same for every client; any other error fails at once.
fn set_through_the_lease(driver: &mut Driver, key: &str, value: &str) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match driver.set(key, value) {
            Err(e) if e.contains("NOREPLICAS") && start.elapsed() < SCENARIO_WAIT => {
                thread::sleep(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

/// Scenario 1 (and 4, with passwords): a write through the client lands on the master, the
/// client reads it back, and a replica read returns the key only the replica has.
fn resolve_and_write(
    driver: &mut Driver,
    client: &Client,
    (master, replica): (&Redis, &Redis),
    tag: &str,
) -> (Result<String, String>, Option<Result<String, String>>) {
    let key = format!("{}:{tag}", client.name);
    let write = set_through_the_lease(driver, &key, tag).and_then(|()| {
        match stored(master, &key) {
            Some(v) if v == tag => {}
            other => return Err(format!("acknowledged, but the master holds {other:?}")),
        }
        match driver.get("get", &key)? {
            Some(v) if v == tag => Ok(String::new()),
            other => Err(format!("read back {other:?}")),
        }
    });
    let read = client.replica_reads.is_ok().then(|| {
        let marker = format!("{key}:replica-only");
        plant_on_replica(replica, &marker);
        match driver.get("replica_get", &marker)? {
            Some(v) if v == "from-the-replica" => Ok(String::new()),
            other => Err(format!("read {other:?}: not served by the replica")),
        }
    });
    (write, read)
}

/// Writes `key` through the client until one is acknowledged or [`SCENARIO_WAIT`] passes;
/// returns the time taken and how many writes failed before.
fn write_until_acknowledged(driver: &mut Driver, key: &str) -> Result<(Duration, usize), String> {
    let start = Instant::now();
    let mut failures = 0;
    loop {
        match driver.set(key, "after") {
            Ok(()) => return Ok((start.elapsed(), failures)),
            Err(e) if start.elapsed() > SCENARIO_WAIT => {
                return Err(format!("no write acknowledged in {SCENARIO_WAIT:?}; last: {e}"));
            }
            Err(_) => failures += 1,
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Scenario 2: SIGKILL the client's master; the first acknowledged write must be on the master
/// the pickets agree on.
fn kill_master(cluster: &mut Cluster, client: &Client, driver: &mut Driver, when: &str) -> Outcome {
    let old = cluster.group(client.name).master.addr();
    let key = format!("{}:after-kill", client.name);
    cluster.group_mut(client.name).master.kill();
    let written = write_until_acknowledged(driver, &key);
    Outcome::of(written.and_then(|(took, failures)| {
        let (new, _) = cluster.agreed_master(client.name);
        if new == old {
            return Err("the pickets still name the killed master".into());
        }
        let promoted = cluster.group(client.name).at(&new).expect("a former replica");
        match stored(promoted, &key) {
            Some(v) if v == "after" => {
                eprintln!(
                    "{}{when}: first acknowledged write {} ms after the kill ({failures} failed \
                     before)",
                    client.name,
                    took.as_millis()
                );
                Ok(format!("{} ms", took.as_millis()))
            }
            other => Err(format!("acknowledged, but the new master {new} holds {other:?}")),
        }
    }))
}

/// Scenario 3: with the old master restarted, the client writes until the pickets have turned
/// it into a replica of the new master, and once more after; every acknowledged write must be
/// on the new master.
fn old_master_back(cluster: &Cluster, client: &Client, driver: &mut Driver) -> Outcome {
    let group = cluster.group(client.name);
    let (new, _) = cluster.agreed_master(client.name);
    let promoted = group.at(&new).expect("the new master");
    let old = &group.master;
    let start = Instant::now();
    let mut acknowledged = Vec::new();
    let mut demoted = false;
    for n in 0.. {
        let key = format!("{}:old-back:{n}", client.name);
        if driver.set(&key, "v").is_ok() {
            acknowledged.push(key);
        }
        if demoted {
            break;
        }
        demoted = old.role().as_deref() == Some("slave")
            && old.master_of().as_deref() == Some(new.as_str());
        if start.elapsed() > SCENARIO_WAIT {
            return Outcome::Fail(format!("the old master {} did not follow {new}", old.addr()));
        }
        thread::sleep(Duration::from_millis(50));
    }
    let lost: Vec<&String> =
        acknowledged.iter().filter(|k| stored(promoted, k).as_deref() != Some("v")).collect();
    if acknowledged.is_empty() {
        Outcome::Fail("no write acknowledged".into())
    } else if lost.is_empty() {
        Outcome::Pass(format!("{} writes", acknowledged.len()))
    } else {
        Outcome::Fail(format!(
            "{} of {} acknowledged writes are not on the new master {new}, the first: {:?}",
            lost.len(),
            acknowledged.len(),
            &lost[..lost.len().min(3)]
        ))
    }
}

/// Runs `f` for every client at once, one thread each.
fn each<'a, T: Send>(
    clients: &[&'a Client],
    f: impl Fn(&'a Client) -> T + Sync,
) -> Vec<(&'a Client, T)> {
    thread::scope(|s| {
        let handles: Vec<_> = clients.iter().map(|&c| (c, s.spawn(|| f(c)))).collect();
        handles.into_iter().map(|(c, h)| (c, h.join().expect("client thread"))).collect()
    })
}

/// Scenarios 1, 2, 3 and 5 on one cluster without passwords.
fn plain_family(clients: &[&'static Client], matrix: &Matrix) {
    let mut cluster = cluster(clients, None, &ClusterOptions::default());
    let started = each(clients, |client| {
        let target = Target::new(&cluster, client.name, "", "");
        let (mut driver, version) = match Driver::start(client, &target) {
            Ok(started) => started,
            Err(e) => {
                matrix.record(client, SCENARIOS[0], Outcome::Fail(e));
                return None;
            }
        };
        matrix.versions.lock().unwrap().insert(client.name, version);
        let (write, read) = resolve_and_write(
            &mut driver,
            client,
            first_roles(cluster.group(client.name)),
            "plain",
        );
        matrix.record(client, SCENARIOS[0], Outcome::of(write));
        let read = match (read, client.replica_reads) {
            (Some(result), _) => Outcome::of(result),
            (None, Err(why)) => Outcome::Unsupported(why),
            (None, Ok(())) => unreachable!(),
        };
        matrix.record(client, SCENARIOS[1], read);
        Some(driver)
    });
    let mut running: Vec<(&Client, Driver)> =
        started.into_iter().filter_map(|(c, d)| d.map(|d| (c, d))).collect();

    // One failover at a time, so that each client's time is its own failover's.
    for (client, driver) in &mut running {
        let outcome = kill_master(&mut cluster, client, driver, "");
        matrix.record(client, SCENARIOS[2], outcome);
    }

    for (client, _) in &running {
        cluster.group_mut(client.name).master.restart();
    }
    thread::scope(|s| {
        let cluster = &cluster;
        for (client, driver) in &mut running {
            s.spawn(move || {
                matrix.record(client, SCENARIOS[3], old_master_back(cluster, client, driver));
            });
        }
    });
    drop(running);

    // The first picket every client lists hangs (SIGSTOP: it accepts connections and never
    // answers), then is dead (SIGKILL: connections refused), while fresh clients start.
    cluster.pickets[0].pause();
    each(clients, |client| {
        let outcome = match client.hung_first_node {
            Ok(()) => Outcome::of(fresh_client_writes(&cluster, client, "first-hung")),
            Err(why) => Outcome::Unsupported(why),
        };
        matrix.record(client, SCENARIOS[6], outcome);
    });
    cluster.pickets[0].kill();
    each(clients, |client| {
        let outcome = Outcome::of(fresh_client_writes(&cluster, client, "first-dead"));
        matrix.record(client, SCENARIOS[7], outcome);
    });
}

/// A new client (all pickets listed, the first one unwell) writes once; the write must be on
/// the master the pickets agree on.
fn fresh_client_writes(cluster: &Cluster, client: &Client, tag: &str) -> Result<String, String> {
    let target = Target::new(cluster, client.name, "", "");
    let (mut driver, _) = Driver::start(client, &target)?;
    let key = format!("{}:{tag}", client.name);
    set_through_the_lease(&mut driver, &key, "v")?;
    let (master, _) = cluster.agreed_master(client.name);
    match stored(cluster.group(client.name).at(&master).unwrap(), &key) {
        Some(v) if v == "v" => Ok(String::new()),
        other => Err(format!("acknowledged, but the master {master} holds {other:?}")),
    }
}

/// Scenario 4 on a cluster whose instances have `requirepass`: resolve, write, read a replica
/// and follow a failover with the Sentinel port open, then resolve, write and read a replica
/// with the pickets restarted with a `requirepass` of their own.
fn password_family(clients: &[&'static Client], matrix: &Matrix) {
    let options = ClusterOptions::default();
    let mut cluster = cluster(clients, Some(REDIS_PASSWORD), &options);
    let started = each(clients, |client| {
        let target = Target::new(&cluster, client.name, "", REDIS_PASSWORD);
        Driver::start(client, &target).and_then(|(mut driver, _)| {
            let (write, read) = resolve_and_write(
                &mut driver,
                client,
                first_roles(cluster.group(client.name)),
                "redis-auth",
            );
            write?;
            read.unwrap_or(Ok(String::new()))?;
            Ok(driver)
        })
    });
    // Then a failover, the client authenticating to the new master by itself.
    for (client, driver) in started {
        let outcome = match driver {
            Ok(mut driver) => kill_master(&mut cluster, client, &mut driver, " (requirepass)"),
            Err(e) => Outcome::Fail(e),
        };
        matrix.record(client, SCENARIOS[4], outcome);
    }
    // The old masters come back, and are replicas again before the clients next read.
    for group in &mut cluster.groups {
        group.master.restart();
    }

    let locked = ClusterOptions {
        node_extra: format!("requirepass = \"{SENTINEL_PASSWORD}\"\n"),
        ..options
    };
    let specs: Vec<_> = cluster.pickets.iter().map(|p| p.spec.clone()).collect();
    let groups: Vec<&Group> = cluster.groups.iter().collect();
    for picket in &cluster.pickets {
        picket.rewrite_config(|state| {
            support::config_text(&picket.spec, &specs, &groups, state, &locked)
        });
    }
    for picket in &mut cluster.pickets {
        picket.restart();
    }
    // The port is locked: a client without the password is refused; with it, every restarted
    // picket knows every replica again before the clients ask.
    for picket in &cluster.pickets {
        let addr = picket.spec.listen_addr();
        wait_for("the sentinel port asks for the password", SCENARIO_WAIT, || {
            sentinel_query(&format!("redis://{addr}/"), &["MASTERS"])
                .is_err_and(|e| e.code() == Some("NOAUTH"))
        });
        wait_for_healthy_replicas(&cluster, &format!("redis://:{SENTINEL_PASSWORD}@{addr}/"));
    }
    each(clients, |client| {
        if let Err(why) = client.sentinel_auth {
            matrix.record(client, SCENARIOS[5], Outcome::Unsupported(why));
            return;
        }
        let target = Target::new(&cluster, client.name, SENTINEL_PASSWORD, REDIS_PASSWORD);
        let outcome = Driver::start(client, &target).and_then(|(mut driver, _)| {
            let (write, read) = resolve_and_write(
                &mut driver,
                client,
                roles_after_failover(&cluster, client.name),
                "both-auth",
            );
            write?;
            read.unwrap_or(Ok(String::new()))
        });
        matrix.record(client, SCENARIOS[5], Outcome::of(outcome));
    });
}

/// `SENTINEL args...` on a fresh connection to `url`.
fn sentinel_query(url: &str, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    redis::cmd("SENTINEL").arg(args).query(&mut conn)
}

/// The `flags` field of one entry of `SENTINEL REPLICAS` (a flat array of names and values).
fn flags(entry: &redis::Value) -> Option<String> {
    let redis::Value::Array(fields) = entry else { return None };
    let at = fields
        .iter()
        .position(|f| redis::from_redis_value::<String>(f.clone()).is_ok_and(|n| n == "flags"))?;
    redis::from_redis_value(fields.get(at + 1)?.clone()).ok()
}

#[test]
fn every_installed_sentinel_client_through_the_same_scenarios() {
    let clients = clients();
    let matrix = Matrix::default();
    plain_family(&clients, &matrix);
    password_family(&clients, &matrix);
    // Shown with --nocapture, and with the failure otherwise.
    eprintln!("{}", matrix.render(&clients));
    let failures = matrix.failures();
    assert_eq!(failures, 0, "{failures} scenario(s) failed that their client supports (above)");
}

/// The Rust clients, each in a thread serving the scripts' protocol.
mod rust_clients {
    use std::sync::mpsc::{Receiver, Sender};
    use std::time::Duration;

    use fred::prelude::{
        Builder, ClientLike, Config, KeysInterface, ReconnectPolicy, Server, ServerConfig,
    };
    use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
    use redis::{Commands, ConnectionAddr, RedisResult};
    use serde_json::{Value, json};

    use super::Target;

    /// The version of a crate in Cargo.lock.
    fn locked_version(name: &str) -> String {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
            .expect("Cargo.lock");
        let entry = format!("name = \"{name}\"\nversion = \"");
        let at = lock.find(&entry).expect("the crate is locked") + entry.len();
        lock[at..].split('"').next().unwrap().to_owned()
    }

    fn addrs(target: &Target) -> Vec<ConnectionAddr> {
        target
            .sentinels
            .iter()
            .map(|s| {
                let (host, port) = s.rsplit_once(':').unwrap();
                ConnectionAddr::Tcp(host.to_owned(), port.parse().unwrap())
            })
            .collect()
    }

    fn sentinel_client(
        target: &Target,
        server_type: SentinelServerType,
    ) -> RedisResult<SentinelClient> {
        let mut builder = SentinelClientBuilder::new(addrs(target), &target.master, server_type)?;
        if !target.password.is_empty() {
            builder = builder.set_client_to_redis_password(&target.password);
        }
        if !target.sentinel_password.is_empty() {
            builder = builder.set_client_to_sentinel_password(&target.sentinel_password);
        }
        builder.build()
    }

    fn answer<T: Into<Value>>(replies: &Sender<Value>, result: RedisResult<T>) {
        let reply = match result {
            Ok(value) => value.into(),
            Err(e) => json!({"error": e.to_string()}),
        };
        let _ = replies.send(reply);
    }

    /// The `redis` crate's blocking `SentinelClient`: one connection kept per role, replaced
    /// through the same `SentinelClient` after an error.
    pub(super) fn redis_sync(
        target: &Target,
        commands: &Receiver<String>,
        replies: &Sender<Value>,
    ) {
        let clients = sentinel_client(target, SentinelServerType::Master)
            .and_then(|m| Ok((m, sentinel_client(target, SentinelServerType::Replica)?)));
        let (mut master, mut replica) = match clients {
            Ok(c) => c,
            Err(e) => return answer::<Value>(replies, Err(e)),
        };
        let _ = replies.send(json!({"version": locked_version("redis")}));
        let (mut to_master, mut to_replica) = (None, None);
        for line in commands {
            let words: Vec<&str> = line.split_whitespace().collect();
            let (client, conn) = if words[0] == "replica_get" {
                (&mut replica, &mut to_replica)
            } else {
                (&mut master, &mut to_master)
            };
            let result = (|| -> RedisResult<Value> {
                if conn.is_none() {
                    *conn = Some(client.get_connection()?);
                }
                let c = conn.as_mut().unwrap();
                match words[0] {
                    "set" => c.set::<_, _, ()>(words[1], words[2]).map(|()| json!({"ok": true})),
                    _ => c.get::<_, Option<String>>(words[1]).map(|v| json!({"value": v})),
                }
            })();
            if result.is_err() {
                *conn = None;
            }
            answer(replies, result);
        }
    }

    /// The `redis` crate's `SentinelClient` with `get_async_connection`, the same way.
    pub(super) fn redis_async(
        target: &Target,
        commands: &Receiver<String>,
        replies: &Sender<Value>,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            use redis::AsyncCommands;
            let clients = sentinel_client(target, SentinelServerType::Master)
                .and_then(|m| Ok((m, sentinel_client(target, SentinelServerType::Replica)?)));
            let (mut master, mut replica) = match clients {
                Ok(c) => c,
                Err(e) => return answer::<Value>(replies, Err(e)),
            };
            let _ = replies.send(json!({"version": locked_version("redis")}));
            let (mut to_master, mut to_replica) = (None, None);
            for line in commands {
                let words: Vec<&str> = line.split_whitespace().collect();
                let (client, conn) = if words[0] == "replica_get" {
                    (&mut replica, &mut to_replica)
                } else {
                    (&mut master, &mut to_master)
                };
                let result: RedisResult<Value> = async {
                    if conn.is_none() {
                        *conn = Some(client.get_async_connection().await?);
                    }
                    let c = conn.as_mut().unwrap();
                    match words[0] {
                        "set" => c
                            .set::<_, _, ()>(words[1], words[2])
                            .await
                            .map(|()| json!({"ok": true})),
                        _ => {
                            c.get::<_, Option<String>>(words[1]).await.map(|v| json!({"value": v}))
                        }
                    }
                }
                .await;
                if result.is_err() {
                    *conn = None;
                }
                answer(replies, result);
            }
        });
    }

    /// fred in Sentinel mode: one client object for everything, reconnecting forever (no
    /// replica reads: see [`super::CLIENTS`]).
    pub(super) fn fred(target: &Target, commands: &Receiver<String>, replies: &Sender<Value>) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let hosts = target
                .sentinels
                .iter()
                .map(|s| {
                    let (host, port) = s.rsplit_once(':').unwrap();
                    Server::new(host, port.parse().unwrap())
                })
                .collect();
            let password = |p: &str| (!p.is_empty()).then(|| p.to_owned());
            let config = Config {
                server: ServerConfig::Sentinel {
                    hosts,
                    service_name: target.master.clone(),
                    username: None,
                    password: password(&target.sentinel_password),
                },
                password: password(&target.password),
                ..Config::default()
            };
            let client = Builder::from_config(config)
                .with_connection_config(|c| c.connection_timeout = Duration::from_secs(1))
                .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(5))
                .set_policy(ReconnectPolicy::new_constant(0, 100))
                .build();
            let client = match client {
                Ok(client) => client,
                Err(e) => return drop(replies.send(json!({"error": e.to_string()}))),
            };
            if let Err(e) = client.init().await {
                return drop(replies.send(json!({"error": e.to_string()})));
            }
            let _ = replies.send(json!({"version": locked_version("fred")}));
            for line in commands {
                let words: Vec<&str> = line.split_whitespace().collect();
                let result = match words[0] {
                    "set" => client
                        .set::<(), _, _>(words[1], words[2], None, None, false)
                        .await
                        .map(|()| json!({"ok": true})),
                    "get" => {
                        client.get::<Option<String>, _>(words[1]).await.map(|v| json!({"value": v}))
                    }
                    other => Ok(json!({"error": format!("unsupported command {other}")})),
                };
                let reply = result.unwrap_or_else(|e| json!({"error": e.to_string()}));
                let _ = replies.send(reply);
            }
            let _ = client.quit().await;
        });
    }
}
