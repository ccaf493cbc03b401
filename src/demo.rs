//! `picket demo`: a failover, start to finish, on this machine.
//!
//! Starts three Redis groups (session, cache and realtime: a master and a replica each) and three
//! Picket nodes on free loopback ports, then watches every node's events over the Sentinel
//! protocol, as a client library would. It kills the session master, prints the failover as a
//! timeline (with the moment a client's `SET` succeeds on the new master), restarts the old master
//! to show it demoted, and removes everything it created. It drives real processes only: the
//! demo is the product, not a simulation of it.

use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::clock::Clock;

/// Longest wait for any step of the demo.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// The groups the demo starts, as in the README's examples.
const GROUPS: [&str; 3] = ["session", "cache", "realtime"];
/// The events the timeline shows (warning-level failover milestones, and the replica's reconf).
const SHOWN: [&str; 15] = [
    "+sdown",
    "+odown",
    "+new-epoch",
    "+try-failover",
    "+vote-for-leader",
    "+elected-leader",
    "+selected-slave",
    "+promoted-slave",
    "+slave-reconf-done",
    "+failover-end",
    "+config-update-from",
    "+switch-master",
    "-failover-abort-not-elected",
    "-failover-abort-no-good-slave",
    "+convert-to-slave",
];

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// `redis-server` is not installed.
    #[error("redis-server is not installed: run scripts/setup (or apt-get install redis-server)")]
    NoRedis,
    /// Something the demo started did not come up or answer in time.
    #[error("{0}")]
    Step(String),
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One Redis group of the demo.
struct Group {
    name: &'static str,
    master_port: u16,
    replica_port: u16,
}

/// Everything the demo started; killed when dropped.
struct Processes {
    redis: Vec<(u16, Child)>,
    pickets: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.pickets.iter_mut().chain(self.redis.iter_mut().map(|(_, c)| c)) {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A timestamped line of the timeline.
struct Line {
    at_ms: u64,
    who: String,
    text: String,
}

/// Runs the demo, printing as it goes.
///
/// # Errors
/// [`DemoError`] if a process cannot be started or a step does not complete in time.
pub async fn run() -> Result<(), DemoError> {
    if std::process::Command::new("redis-server").arg("--version").output().is_err() {
        return Err(DemoError::NoRedis);
    }
    let clock = Clock::start();
    let dir = std::env::temp_dir().join(format!("picket-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut procs = Processes { redis: Vec::new(), pickets: Vec::new(), dir: dir.clone() };
    let groups: Vec<Group> = GROUPS
        .iter()
        .map(|name| Ok(Group { name, master_port: free_port()?, replica_port: free_port()? }))
        .collect::<Result<_, DemoError>>()?;
    let (listen, gossip, http) = (free_port()?, free_port()?, free_port()?);

    println!("Picket demo: three Redis groups and three Picket nodes on loopback.\n");
    for group in &groups {
        procs.redis.push((group.master_port, start_redis(&dir, group.master_port, None).await?));
    }
    for group in &groups {
        let replica = start_redis(&dir, group.replica_port, Some(group.master_port)).await?;
        procs.redis.push((group.replica_port, replica));
    }
    for group in &groups {
        wait_for(&format!("{} replica in sync", group.name), || async {
            info_has(group.replica_port, "master_link_status:up").await
        })
        .await?;
    }
    let exe = std::env::current_exe()?;
    for node in 1..=3 {
        let config = node_config(&dir, node, (listen, gossip, http), &groups);
        let path = dir.join(format!("picket-{node}.toml"));
        std::fs::write(&path, config)?;
        let log = std::fs::File::create(dir.join(format!("picket-{node}.log")))?;
        let child = Command::new(&exe)
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        procs.pickets.push(child);
    }
    let ports: Vec<String> = (1..=3).map(|n| format!("127.0.0.{n}:{listen}")).collect();
    for port in &ports {
        wait_for(&format!("picket at {port} to see its peers and replicas"), || async {
            ready(port).await
        })
        .await?;
    }
    for group in &groups {
        println!(
            "  {:<9} master 127.0.0.1:{}  replica 127.0.0.1:{}",
            group.name, group.master_port, group.replica_port
        );
    }
    println!("  pickets   {}   (Sentinel port: any Sentinel client works)", ports.join("  "));
    println!("\n  try: redis-cli -p {listen} SENTINEL get-master-addr-by-name session\n");

    let timeline = Arc::new(Mutex::new(Vec::new()));
    let killed_at = Arc::new(Mutex::new(None));
    for (n, port) in ports.iter().enumerate() {
        subscribe(
            port,
            format!("node {}", n + 1),
            Arc::clone(&timeline),
            Arc::clone(&killed_at),
            clock,
        )
        .await?;
    }
    let session = &groups[0];
    println!("Killing the session master (SIGKILL 127.0.0.1:{})...\n", session.master_port);
    let old = procs.redis.iter().position(|(p, _)| *p == session.master_port).unwrap_or(0);
    *killed_at.lock().await = Some(clock.now());
    procs.redis[old].1.start_kill()?;
    let kill_time = clock.now();
    let new_master = format!("127.0.0.1:{}", session.replica_port);
    let writable = wait_for("a write to succeed on the new master", || async {
        writes_through_sentinel(&ports[0], "session").await.then_some(())
    })
    .await;
    let writable_ms = clock.now().saturating_since(kill_time).as_millis();
    writable?;
    wait_for("every node to announce the new master", || async {
        let lines = timeline.lock().await;
        let switched =
            lines.iter().filter(|l: &&Line| l.text.starts_with("+switch-master session")).count();
        let ended = lines.iter().any(|l| l.text.starts_with("+failover-end"));
        (switched >= 3 && ended).then_some(())
    })
    .await?;
    let mut lines = std::mem::take(&mut *timeline.lock().await);
    lines.push(Line {
        at_ms: u64::try_from(writable_ms).unwrap_or(u64::MAX),
        who: "client".to_owned(),
        text: format!(
            "SET succeeded on {new_master} (found through SENTINEL get-master-addr-by-name)"
        ),
    });
    lines.sort_by_key(|l| l.at_ms);
    println!("{:>7}  {:<7} kill -9 session master 127.0.0.1:{}", "0 ms", "", session.master_port);
    for line in &lines {
        println!("{:>7}  {:<7} {}", format!("{} ms", line.at_ms), line.who, line.text);
    }
    print_phases(&lines, writable_ms);

    println!(
        "\nRestarting the old master: it comes back as a master and is demoted to a replica..."
    );
    procs.redis[old].1 = start_redis(&dir, session.master_port, None).await?;
    wait_for("the old master to be demoted", || async {
        let lines = timeline.lock().await;
        lines.iter().find(|l| l.text.starts_with("+convert-to-slave")).map(|l| l.text.clone())
    })
    .await
    .map(|text| println!("  {text}"))?;
    wait_for("the old master to follow the new one", || async {
        info_has(session.master_port, &format!("master_port:{}", session.replica_port)).await
    })
    .await?;
    println!("  127.0.0.1:{} now replicates from {new_master}.", session.master_port);
    println!("\nDone; stopping everything the demo started.");
    drop(procs);
    Ok(())
}

fn print_phases(lines: &[Line], writable_ms: u128) {
    let first = |prefix: &str| lines.iter().find(|l| l.text.starts_with(prefix)).map(|l| l.at_ms);
    let last_switch =
        lines.iter().filter(|l| l.text.starts_with("+switch-master")).map(|l| l.at_ms).max();
    let mut out = String::from("\nPhases: ");
    let steps = [
        ("detected (+sdown)", first("+sdown master session")),
        ("agreed (+odown)", first("+odown")),
        ("leader elected", first("+elected-leader")),
        ("replica promoted", first("+promoted-slave")),
        ("every node switched", last_switch),
    ];
    for (name, at) in steps {
        if let Some(at) = at {
            let _ = write!(out, "{name} {at} ms, ");
        }
    }
    let _ = write!(out, "writable again {writable_ms} ms after the kill.");
    println!("{out}");
}

/// A free TCP port on 127.0.0.1, .2 and .3 alike.
fn free_port() -> Result<u16, DemoError> {
    for _ in 0..100 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let free = ["127.0.0.2", "127.0.0.3"]
            .iter()
            .all(|ip| std::net::TcpListener::bind((*ip, port)).is_ok());
        if free {
            return Ok(port);
        }
    }
    Err(DemoError::Step("no free port found".to_owned()))
}

async fn start_redis(dir: &Path, port: u16, master: Option<u16>) -> Result<Child, DemoError> {
    let data = dir.join(format!("redis-{port}"));
    std::fs::create_dir_all(&data)?;
    let mut conf = format!(
        "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\nlogfile {}/redis.log\n",
        data.display(),
        data.display()
    );
    if let Some(master) = master {
        let _ = writeln!(conf, "replicaof 127.0.0.1 {master}");
    }
    let path = data.join("redis.conf");
    std::fs::write(&path, conf)?;
    let child = Command::new("redis-server")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    wait_for(&format!("redis-server on port {port}"), || async {
        query(&format!("127.0.0.1:{port}"), &["PING"]).await.map(|_| ())
    })
    .await?;
    Ok(child)
}

fn node_config(
    dir: &Path,
    node: u8,
    (listen, gossip, http): (u16, u16, u16),
    groups: &[Group],
) -> String {
    let peers: Vec<String> = (1..=3).map(|n| format!("\"127.0.0.{n}:{gossip}\"")).collect();
    let mut text = format!(
        "[node]\nlisten = \"127.0.0.{node}:{listen}\"\ngossip = \"127.0.0.{node}:{gossip}\"\n\
         http = \"127.0.0.{node}:{http}\"\nstate_dir = \"{}\"\npeers = [{}]\n\
         peer_secret = \"picket-demo\"\n",
        dir.join(format!("state-{node}")).display(),
        peers.join(", ")
    );
    for group in groups {
        let _ = write!(
            text,
            "\n[[master]]\nname = \"{}\"\naddress = \"127.0.0.1:{}\"\nquorum = 2\n\
             down_after_ms = 1000\nfailover_timeout_ms = 10000\n",
            group.name, group.master_port
        );
    }
    text
}

/// Polls `probe` every 20 ms until it returns `Some`, for at most [`STEP_TIMEOUT`].
async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> Result<T, DemoError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::sleep(STEP_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        tokio::select! {
            () = &mut deadline => return Err(DemoError::Step(format!("timed out waiting for {what}"))),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

async fn connection(addr: &str) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}")).ok()?;
    let connect = client.get_multiplexed_async_connection();
    tokio::time::timeout(Duration::from_secs(1), connect).await.ok()?.ok()
}

async fn query(addr: &str, args: &[&str]) -> Option<redis::Value> {
    let mut conn = connection(addr).await?;
    let mut cmd = redis::cmd(args.first()?);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    tokio::time::timeout(Duration::from_secs(1), cmd.query_async(&mut conn)).await.ok()?.ok()
}

async fn info_has(port: u16, needle: &str) -> Option<()> {
    let value = query(&format!("127.0.0.1:{port}"), &["INFO", "replication"]).await?;
    let text: String = redis::FromRedisValue::from_redis_value(value).ok()?;
    text.contains(needle).then_some(())
}

/// Whether a node on `port` sees both peers and every replica.
async fn ready(port: &str) -> Option<()> {
    let sentinels = query(port, &["SENTINEL", "SENTINELS", "session"]).await?;
    let redis::Value::Array(peers) = sentinels else { return None };
    for name in GROUPS {
        let replicas = query(port, &["SENTINEL", "REPLICAS", name]).await?;
        let redis::Value::Array(replicas) = replicas else { return None };
        if replicas.is_empty() {
            return None;
        }
    }
    (peers.len() == 2).then_some(())
}

/// Asks a node where `master` is, and writes there; true once a write succeeds on a master.
async fn writes_through_sentinel(port: &str, master: &str) -> bool {
    let Some(redis::Value::Array(addr)) =
        query(port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", master]).await
    else {
        return false;
    };
    let strings: Vec<String> =
        addr.into_iter().filter_map(|v| redis::FromRedisValue::from_redis_value(v).ok()).collect();
    let [host, port] = strings.as_slice() else { return false };
    let target = format!("{host}:{port}");
    query(&target, &["SET", "picket-demo", "written-after-failover"])
        .await
        .is_some_and(|v| matches!(v, redis::Value::Okay | redis::Value::SimpleString(_)))
}

/// Subscribes to every channel of the node at `port` and records the shown events.
async fn subscribe(
    port: &str,
    who: String,
    timeline: Arc<Mutex<Vec<Line>>>,
    since: Arc<Mutex<Option<crate::engine::Instant>>>,
    clock: Clock,
) -> Result<(), DemoError> {
    let client = redis::Client::open(format!("redis://{port}"))
        .map_err(|e| DemoError::Step(format!("{port}: {e}")))?;
    let mut pubsub =
        client.get_async_pubsub().await.map_err(|e| DemoError::Step(format!("{port}: {e}")))?;
    pubsub.psubscribe("*").await.map_err(|e| DemoError::Step(format!("{port}: {e}")))?;
    tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let channel = message.get_channel_name().to_owned();
            let Ok(payload) = message.get_payload::<String>() else { continue };
            let Some(start) = *since.lock().await else { continue };
            let about_session = payload.contains(" session ") || payload.starts_with("session ");
            // Epoch and vote payloads do not name the master; the demo only fails over session.
            let unnamed = channel == "+new-epoch" || channel == "+vote-for-leader";
            if !SHOWN.contains(&channel.as_str()) || !(about_session || unnamed) {
                continue;
            }
            let at_ms = u64::try_from(clock.now().saturating_since(start).as_millis()).unwrap_or(0);
            timeline.lock().await.push(Line {
                at_ms,
                who: who.clone(),
                text: format!("{channel} {payload}"),
            });
        }
    });
    Ok(())
}
