//! Real `redis-sentinel` processes (Sentinel 7.0, which `scripts/setup` installs), for the tests
//! that run Picket beside or in place of them.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{signal, wait_until};

/// Whether a test must stop because `redis-sentinel` is missing (see [`super::missing`]).
pub fn missing() -> bool {
    let found = Command::new("redis-sentinel").arg("--version").output().is_ok();
    super::missing("redis-sentinel", found)
}

/// `sentinel monitor` of `master` (`host:port`) as `name`, with the master's timings: the lines
/// a test's `sentinel.conf` starts from.
pub fn monitor(
    name: &str,
    master: &str,
    quorum: u32,
    down_after_ms: u64,
    timeout_ms: u64,
) -> String {
    let (host, port) = master.split_once(':').expect("host:port");
    format!(
        "sentinel monitor {name} {host} {port} {quorum}\n\
         sentinel down-after-milliseconds {name} {down_after_ms}\n\
         sentinel failover-timeout {name} {timeout_ms}\n"
    )
}

/// A `redis-sentinel` process with its own directory (configuration file and log); killed (after
/// SIGCONT) when dropped, its log printed if the test is failing.
pub struct Sentinel {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Sentinel {
    /// Starts one on 127.0.0.1:`port` with `lines` (`sentinel monitor ...`, `requirepass`, ...)
    /// after its port, address, directory and log file, and waits until it accepts connections.
    pub fn start(port: u16, lines: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = format!(
            "port {port}\nbind 127.0.0.1\ndir \"{dir}\"\nlogfile \"{dir}/sentinel.log\"\n{lines}",
            dir = dir.path().display()
        );
        fs::write(dir.path().join("sentinel.conf"), conf).unwrap();
        let child = Command::new("redis-sentinel")
            .arg(dir.path().join("sentinel.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-sentinel is installed (apt install redis-sentinel)");
        let sentinel = Self { port, dir, child: Some(child) };
        wait_until("redis-sentinel up", Duration::from_secs(60), || {
            std::net::TcpStream::connect(sentinel.addr()).ok()
        });
        sentinel
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its `sentinel.conf` (which Sentinel rewrites with its state).
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("sentinel.conf")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }

    /// How many log lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// SIGKILL; the directory (its file and log) stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP.
    pub fn pause(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "STOP");
        }
    }

    /// SIGCONT.
    pub fn resume(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "CONT");
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- log of sentinel {} ----\n{}", self.addr(), self.log());
        }
    }
}
