//! Child processes that cannot outlive the benchmark, and the launchers of the three programs it
//! runs (`redis-server`, `redis-sentinel` and `picket`) and of the CPU hog some trials run beside
//! them.
//!
//! A benchmark that leaves 1,000 Redis servers or a stopped master behind ruins the next run and
//! whatever else shares the machine, so every child is covered three times over:
//!
//! - it runs in a process group of its own, and its guard ([`Proc`]) SIGCONTs and SIGKILLs that
//!   whole group when dropped (normal end, error and panic alike), which also takes forked helpers
//!   such as a replication child with it;
//! - every live group is in a registry that the SIGINT/SIGTERM handler ([`Session`]) empties
//!   before the process exits (a group of its own also means a terminal's Ctrl-C does not reach
//!   the children directly, so the handler is what stops them);
//! - each child asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`), which
//!   covers a benchmark killed with SIGKILL. The kernel sends it when the *thread* that forked the
//!   child exits, so children are only ever spawned from the main thread.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::topology::MasterSpec;

/// What must be undone however the run ends.
struct Registry {
    /// Process groups still alive (each child leads its own).
    groups: BTreeSet<i32>,
    /// iptables chains installed by [`crate::traffic`].
    chains: BTreeSet<String>,
    /// Set by the signal handler: nothing new may start.
    stopping: bool,
}

static REGISTRY: Mutex<Registry> =
    Mutex::new(Registry { groups: BTreeSet::new(), chains: BTreeSet::new(), stopping: false });

/// The registry; a panic elsewhere while it was held must not stop the cleanup.
fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records an installed iptables chain, so the signal handler removes it too.
pub fn register_chain(name: &str) -> Result<()> {
    let mut reg = registry();
    if reg.stopping {
        bail!("stopping");
    }
    reg.chains.insert(name.to_owned());
    Ok(())
}

/// Forgets a chain that was removed.
pub fn unregister_chain(name: &str) {
    registry().chains.remove(name);
}

/// SIGCONT (a stopped process cannot act on anything but SIGKILL, and we want it gone cleanly
/// from the scheduler's view too) then SIGKILL to every process of group `pgid`.
fn kill_group(pgid: i32) {
    // SAFETY: killpg only sends signals; `pgid` is the group of a child we have not reaped, so it
    // cannot name anybody else's group.
    unsafe {
        libc::killpg(pgid, libc::SIGCONT);
        libc::killpg(pgid, libc::SIGKILL);
    }
}

/// The directory every temporary file of this run lives in.
fn scratch_root() -> PathBuf {
    std::env::temp_dir().join(format!("picket-bench-{}", std::process::id()))
}

/// A fresh, empty directory under this run's scratch root.
pub fn scratch(label: &str) -> Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = scratch_root().join(format!("{label}-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The run itself: installs the signal handler, clears what a previous run killed with SIGKILL
/// left behind, and on drop kills any child still registered, removes iptables chains and the
/// scratch directory.
pub struct Session;

impl Session {
    /// Starts the session; call once, first thing.
    pub fn start() -> Result<Self> {
        raise_fd_limit();
        sweep_stale_dirs();
        crate::traffic::sweep_stale_chains();
        fs::create_dir_all(scratch_root())?;
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])
        .context("installing the SIGINT/SIGTERM handler")?;
        thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                eprintln!("\npicket-bench: signal {signal}: killing every child and exiting");
                // The lock stays held until exit, so the main thread cannot start anything new.
                let mut reg = registry();
                reg.stopping = true;
                cleanup(&mut reg);
                std::process::exit(128 + signal);
            }
        });
        Ok(Self)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        cleanup(&mut registry());
    }
}

/// Kills every registered group, removes every registered chain and the scratch directory.
fn cleanup(reg: &mut Registry) {
    let groups = std::mem::take(&mut reg.groups);
    for &pgid in &groups {
        kill_group(pgid);
    }
    // Reap them (each group's leader is our child), so none lingers as a zombie after we exit.
    for &pid in &groups {
        // SAFETY: waitpid on our own child; a null status pointer is allowed.
        unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    for chain in std::mem::take(&mut reg.chains) {
        crate::traffic::remove_chain(&chain);
    }
    let _ = fs::remove_dir_all(scratch_root());
}

/// Raises the soft open-file limit to the hard one, for this process and the children that
/// inherit it: three supervisors on 1,000 masters hold thousands of connections, and a soft limit
/// of 1024 (a common default) would fail them for a reason that has nothing to do with either.
fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct we pass, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) == 0
            && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit);
        }
    }
}

/// Removes the scratch directories of runs whose process is gone.
fn sweep_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("picket-bench-").and_then(|p| p.parse::<u32>().ok())
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A child process, killed with its whole process group when dropped.
pub struct Proc {
    /// What it is, for messages ("sentinel 2", "redis-server 10003").
    name: String,
    child: Child,
    /// Where its stdout and stderr go.
    log: PathBuf,
    /// Set once the child was reaped: its pid may then belong to someone else.
    reaped: bool,
}

impl Proc {
    /// Spawns `command` in a process group of its own, output to `log`.
    pub fn spawn(name: impl Into<String>, mut command: Command, log: &Path) -> Result<Self> {
        let name = name.into();
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).process_group(0);
        let parent = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        // SAFETY: the closure runs between fork and exec and only makes two system calls, which
        // is async-signal-safe; it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The parent may have died before prctl: then nobody would kill this child.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        // Spawn and register under the lock, so the signal handler sees every child.
        let mut reg = registry();
        if reg.stopping {
            bail!("stopping");
        }
        let child = command.spawn().with_context(|| format!("starting {name}: {command:?}"))?;
        reg.groups.insert(pid_i32(&child));
        drop(reg);
        Ok(Self { name, child, log: log.to_owned(), reaped: false })
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> i32 {
        pid_i32(&self.child)
    }

    /// What it is.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `signal` to its process group.
    pub fn signal(&self, signal: i32) -> Result<()> {
        // SAFETY: killpg only sends a signal, to the group of a child not yet reaped.
        let rc = unsafe { libc::killpg(self.pid(), signal) };
        if rc != 0 {
            bail!("signal {signal} to {}: {}", self.name, std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether the process has exited, without reaping it (a zombie counts as exited), so that
    /// its pid stays ours until the guard kills the group.
    pub fn has_exited(&self) -> bool {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // The state follows the command name, which is in parentheses and may contain spaces.
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
        matches!(state, None | Some('Z' | 'X'))
    }

    /// Waits up to `timeout` for the process to exit by itself and returns its output; an error
    /// (with the output) if it fails or takes too long.
    pub fn finish(mut self, timeout: Duration) -> Result<String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Reaped: the group must not be signalled any more.
                self.reaped = true;
                registry().groups.remove(&self.pid());
                let output = fs::read_to_string(&self.log).unwrap_or_default();
                if !status.success() {
                    bail!("{} failed ({status}): {}", self.name, output.trim());
                }
                return Ok(output);
            }
            if start.elapsed() > timeout {
                bail!("{} did not finish within {timeout:?}: {}", self.name, self.log_tail(10));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `lines` lines of its output, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let mut out = format!("last lines of {} ({}):", self.name, self.log.display());
        for line in &all[all.len().saturating_sub(lines)..] {
            let _ = write!(out, "\n    {line}");
        }
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.reaped {
            kill_group(self.pid());
            let _ = self.child.wait();
            registry().groups.remove(&self.pid());
        }
    }
}

fn pid_i32(child: &Child) -> i32 {
    i32::try_from(child.id()).expect("pids fit an i32")
}

/// Ports for Redis servers: below Linux's ephemeral range (32768 and up, where an outgoing
/// connection could take a port between our check and the server's bind) and below the
/// 20000-59999 range Picket's own integration tests draw from, so a test run on the same machine
/// does not collide with a benchmark.
const REDIS_PORTS: (u16, u16) = (10_000, 18_000);
/// Ports for supervisors (RESP, gossip, HTTP): a separate range, so no supervisor port is ever a
/// Redis port and the iptables rules on supervisor ports never count Redis traffic.
const SUPERVISOR_PORTS: (u16, u16) = (18_000, 20_000);

/// A free port for a Redis server.
pub fn redis_port() -> Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    free_port(REDIS_PORTS, &NEXT)
}

/// A free port for a supervisor.
pub fn supervisor_port() -> Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    free_port(SUPERVISOR_PORTS, &NEXT)
}

/// The next port of `range` (cycling, from an offset drawn from the pid so that two runs at once
/// start apart) that nothing listens on or is bound to.
fn free_port((low, high): (u16, u16), next: &AtomicU32) -> Result<u16> {
    let len = u32::from(high - low);
    let offset = std::process::id() * 97;
    for _ in 0..len {
        let n = (offset + next.fetch_add(1, Ordering::Relaxed)) % len;
        let port = low + u16::try_from(n).expect("below the range length");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in {low}..{high}")
}

/// Where a server runs: a network namespace (`None`: this one) and the address it binds.
#[derive(Clone, Copy, Debug)]
pub struct Place<'a> {
    /// The namespace, entered with `ip netns exec` (which execs the program, so the child's pid
    /// is the server's own and its process group is still killed as one).
    pub netns: Option<&'a str>,
    /// The address it binds and is reached at.
    pub ip: &'a str,
}

/// Loopback in this namespace: where every suite but the fencing suite runs.
pub const LOCAL: Place<'static> = Place { netns: None, ip: "127.0.0.1" };

impl Place<'_> {
    /// `program` run in this place's namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match self.netns {
            None => Command::new(program),
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(program);
                command
            }
        }
    }
}

/// Starts `redis-server` at `place` on `port`, replicating `replica_of` (`ip:port`) if given.
/// `lean` is for the hundreds of idle masters of the idle and scale suites (`hz 1`: no need for
/// ten background ticks a second when nothing happens). It does not wait for the server.
pub fn redis_server(
    place: Place<'_>,
    port: u16,
    replica_of: Option<&str>,
    lean: bool,
) -> Result<Proc> {
    let dir = scratch(&format!("redis-{port}"))?;
    // A configuration file rather than arguments: promotions run CONFIG REWRITE, which fails for
    // a server started without one.
    let mut conf = format!(
        "port {port}\nbind {}\nprotected-mode no\nsave \"\"\nappendonly no\ndir {}\n\
         daemonize no\n# Replicas sync at once instead of after the default 5 s batching delay.\n\
         repl-diskless-sync-delay 0\n",
        place.ip,
        dir.display()
    );
    if lean {
        conf.push_str("hz 1\nio-threads 1\n");
    }
    if let Some(master) = replica_of {
        let (ip, port) = master.rsplit_once(':').context("replica_of is ip:port")?;
        let _ = writeln!(conf, "replicaof {ip} {port}");
    }
    let path = dir.join("redis.conf");
    fs::write(&path, conf)?;
    let mut command = place.command("redis-server");
    command.arg(&path);
    Proc::spawn(format!("redis-server {}:{port}", place.ip), command, &dir.join("redis.log"))
}

/// Starts `redis-sentinel` at `place` on `port`, monitoring `masters` (at `master_ip`).
pub fn sentinel(
    place: Place<'_>,
    index: usize,
    port: u16,
    master_ip: &str,
    masters: &[MasterSpec],
) -> Result<Proc> {
    let dir = scratch(&format!("sentinel-{port}"))?;
    // Sentinel rewrites this file (discovered replicas and sentinels, epochs): it must be
    // writable and its own.
    let mut conf = format!("port {port}\nbind {}\ndaemonize no\ndir {}\n", place.ip, dir.display());
    for m in masters {
        let _ = write!(
            conf,
            "sentinel monitor {name} {master_ip} {port} {quorum}\n\
             sentinel down-after-milliseconds {name} {down}\n\
             sentinel failover-timeout {name} {timeout}\n\
             sentinel parallel-syncs {name} 1\n",
            name = m.name,
            port = m.port,
            quorum = m.quorum,
            down = m.down_after_ms,
            timeout = m.failover_timeout_ms,
        );
    }
    let path = dir.join("sentinel.conf");
    fs::write(&path, conf)?;
    let mut command = place.command("redis-sentinel");
    command.arg(&path);
    Proc::spawn(format!("sentinel {index} (port {port})"), command, &dir.join("sentinel.log"))
}

/// The three ports of a Picket node.
#[derive(Clone, Copy, Debug)]
pub struct PicketPorts {
    /// Sentinel-compatible RESP port.
    pub listen: u16,
    /// Gossip port.
    pub gossip: u16,
    /// HTTP API and /metrics.
    pub http: u16,
}

/// How a Picket node is laid out: where it runs, who its peers are, where its masters are.
pub struct PicketNode<'a> {
    /// Where it runs.
    pub place: Place<'a>,
    /// Its ports.
    pub ports: PicketPorts,
    /// The other nodes' gossip addresses (`ip:port`).
    pub peers: &'a [String],
    /// The masters' address.
    pub master_ip: &'a str,
    /// Lines added to every `[[master]]` section (e.g. `fencing = "strict"`).
    pub master_extra: &'a str,
}

/// Starts `picket run` as node `index`, laid out by `node`, monitoring `masters`.
pub fn picket(
    binary: &Path,
    index: usize,
    node: &PicketNode<'_>,
    masters: &[MasterSpec],
) -> Result<Proc> {
    let (ip, ports) = (node.place.ip, node.ports);
    let dir = scratch(&format!("picket-{}", ports.listen))?;
    let mut conf = format!(
        "[node]\nlisten = \"{ip}:{}\"\ngossip = \"{ip}:{}\"\nhttp = \"{ip}:{}\"\n\
         state_dir = \"{}\"\n",
        ports.listen,
        ports.gossip,
        ports.http,
        dir.join("state").display()
    );
    if !node.peers.is_empty() {
        let list: Vec<String> = node.peers.iter().map(|p| format!("\"{p}\"")).collect();
        let _ = writeln!(
            conf,
            "peers = [{}]\npeer_secret = \"picket-bench-not-a-secret\"",
            list.join(", ")
        );
    }
    for m in masters {
        let _ = write!(
            conf,
            "\n[[master]]\nname = \"{}\"\naddress = \"{}:{}\"\nquorum = {}\n\
             down_after_ms = {}\nfailover_timeout_ms = {}\nparallel_syncs = 1\n{}",
            m.name,
            node.master_ip,
            m.port,
            m.quorum,
            m.down_after_ms,
            m.failover_timeout_ms,
            node.master_extra
        );
    }
    let path = dir.join("picket.toml");
    fs::write(&path, conf)?;
    let mut command = node.place.command(binary);
    // Picket's default log level, stated so an inherited RUST_LOG cannot change the cost.
    command.arg("run").arg("--config").arg(&path).env("RUST_LOG", "info");
    Proc::spawn(format!("picket {index} (port {})", ports.listen), command, &dir.join("picket.log"))
}

/// Starts a CPU hog: one busy loop per core this process may use, each a `sh` process of its
/// own (in its own process group, like every child), so the supervisors compete for the cores
/// as on a loaded machine. Dropping the returned guards stops it.
pub fn cpu_hog() -> Result<Vec<Proc>> {
    let cores = thread::available_parallelism().map_or(1, usize::from);
    (0..cores)
        .map(|i| {
            let dir = scratch(&format!("hog-{i}"))?;
            let mut command = Command::new("sh");
            command.args(["-c", "while :; do :; done"]);
            Proc::spawn(format!("busy loop {}", i + 1), command, &dir.join("output"))
        })
        .collect()
}

/// Runs a short-lived tool (redis-benchmark, wrk, a version query) under a guard and returns its
/// output.
pub fn run_tool(label: &str, command: Command, timeout: Duration) -> Result<String> {
    let dir = scratch(label)?;
    Proc::spawn(label, command, &dir.join("output"))?.finish(timeout)
}
