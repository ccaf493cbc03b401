//! The deployment, end to end, as users run it: `docker/build-images`, then
//! `docker compose -f docker/compose.yaml up` (three Redis groups, three Picket nodes, every
//! address a service name), a client in Sentinel mode, the session master's container stopped,
//! the failover seen through the Sentinel port, the HTTP API and the event stream, the old master
//! brought back, one Picket cut off the network (it must not cause a failover), brought back, and
//! every node converged. The stack's Prometheus (docker/prometheus/) loads config/alerts.yml and
//! scrapes the three nodes: its HTTP API must show the failover alert firing for the session
//! group after the failover, and the quorum-lost alert firing for the last node once two nodes
//! are stopped. Everything the test creates is removed at the end, also on failure.
//!
//! Ignored by plain `cargo test` (it builds images and runs containers for a few minutes):
//! `scripts/test` runs it in its own step, `cargo test --test docker_e2e -- --ignored`. Skipped,
//! with a message, where no Docker engine or Compose is reachable; under `CI=true` that fails.
//!
//! Settings (environment):
//! - `PICKET_BINARY`: the executable to put in the image (scripts/test passes the release build);
//!   default: this test build's `picket` (the debug build cargo just made).
//! - `PICKET_E2E_REQUIRE_API=1`: fail, rather than report "not run", when a node does not serve
//!   its Sentinel port or HTTP API.
//! - `PICKET_E2E_KEEP=1`: leave the stack running after the test, for a look (print how to
//!   remove it).

#![allow(clippy::disallowed_methods)] // real containers, real time

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, sleep};
use std::time::{Duration, Instant};

const PICKETS: [&str; 3] = ["picket-1", "picket-2", "picket-3"];
/// config/alerts.yml's alert for a master that changed (a failover, led or observed).
const FAILOVER_ALERT: &str = "PicketFailoverHappened";
/// config/alerts.yml's alert for a node that cannot reach a majority of the voters.
const QUORUM_LOST_ALERT: &str = "PicketQuorumLost";
const GROUPS: [&str; 3] = ["session", "cache", "realtime"];
/// Bounds on waits, generous for two busy cores: nothing here is a speed assertion.
const START: Duration = Duration::from_secs(180);
const LONG: Duration = Duration::from_secs(120);

/// Runs a command; its stdout on success, or a message with its stderr.
fn run(command: &mut Command) -> Result<String, String> {
    let out = command.stdin(Stdio::null()).output().map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{command:?} exited with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

fn docker(args: &[&str]) -> Result<String, String> {
    run(Command::new("docker").args(args))
}

/// Polls `probe` every half second until it gives a value or `timeout` passes.
fn poll<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            println!("  ok after {:.1}s: {what}", start.elapsed().as_secs_f64());
            return value;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        sleep(Duration::from_millis(500));
    }
}

fn step(text: &str) {
    println!("\n--> {text}");
}

/// An assertion that needs the Sentinel port or the HTTP API, which may not be built yet.
fn not_run(what: &str) {
    assert!(
        std::env::var_os("PICKET_E2E_REQUIRE_API").is_none(),
        "PICKET_E2E_REQUIRE_API is set and this was not possible: {what}"
    );
    println!("  NOT RUN (not served by this build yet): {what}");
}

/// The compose project of this test, removed with everything in it when dropped.
struct Stack {
    compose: Vec<String>,
    project: String,
    file: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Stack {
    fn compose_cmd(&self) -> Command {
        let mut command = Command::new(&self.compose[0]);
        command.args(&self.compose[1..]).arg("-p").arg(&self.project).arg("-f").arg(&self.file);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    fn compose(&self, args: &[&str]) -> Result<String, String> {
        run(self.compose_cmd().args(args))
    }

    /// The container of `service` (the same across stops and starts).
    fn container(&self, service: &str) -> String {
        let id = self.compose(&["ps", "-q", service]).unwrap();
        let id = id.trim();
        assert!(!id.is_empty(), "no container for {service}");
        id.to_owned()
    }

    /// The compose network.
    fn network(&self) -> String {
        let nets = docker(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            &self.container("picket-1"),
        ])
        .unwrap();
        let nets: Vec<&str> = nets.split_whitespace().collect();
        assert_eq!(nets.len(), 1, "one network: {nets:?}");
        nets[0].to_owned()
    }

    /// The host port `service`'s container port is published on.
    fn host_port(&self, service: &str, port: u16) -> u16 {
        let out = self.compose(&["port", service, &port.to_string()]).unwrap();
        out.trim().rsplit(':').next().unwrap().parse().unwrap()
    }

    fn exec(&self, service: &str, args: &[&str]) -> Result<String, String> {
        let mut command = Command::new("docker");
        command.arg("exec").arg(self.container(service)).args(args);
        run(&mut command)
    }

    /// Picket's events (`channel payload`), in order, from its JSON log.
    fn events(&self, service: &str) -> Vec<String> {
        let out = Command::new("docker")
            .args(["logs", &self.container(service)])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v["target"] == "picket::event")
            .filter_map(|v| v["fields"]["message"].as_str().map(str::to_owned))
            .collect()
    }

    fn count(&self, service: &str, prefix: &str) -> usize {
        self.events(service).iter().filter(|e| e.starts_with(prefix)).count()
    }

    /// The durable view of `master` in a node's state file: (address, config epoch).
    fn durable(&self, service: &str, master: &str) -> Option<(String, u64)> {
        let text = self.exec(service, &["cat", "/var/lib/picket/state.toml"]).ok()?;
        let state: toml::Value = toml::from_str(&text).ok()?;
        let m = state.get("masters")?.get(master)?;
        Some((
            m.get("addr")?.as_str()?.to_owned(),
            u64::try_from(m.get("config_epoch")?.as_integer()?).ok()?,
        ))
    }

    /// `ROLE` of a Redis instance: ("master", None) or ("slave", Some("host:port")).
    fn role(&self, service: &str) -> Option<(String, Option<String>)> {
        let out = self.exec(service, &["redis-cli", "ROLE"]).ok()?;
        let lines: Vec<&str> = out.lines().collect();
        match *lines.first()? {
            "master" => Some(("master".to_owned(), None)),
            "slave" => Some(("slave".to_owned(), Some(format!("{}:{}", lines[1], lines[2])))),
            other => Some((other.to_owned(), None)),
        }
    }

    fn replica_in_sync(&self, service: &str) -> bool {
        self.exec(service, &["redis-cli", "INFO", "replication"])
            .is_ok_and(|info| info.contains("master_link_status:up"))
    }

    /// Whether something listens on `port` inside a Picket container (bash's /dev/tcp).
    fn listening(&self, service: &str, port: u16) -> bool {
        self.exec(service, &["bash", "-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")]).is_ok()
    }

    /// GET `path` from a Picket's HTTP API inside its own container (bash's /dev/tcp to
    /// 127.0.0.1:26381): (status, body). Used after `docker network disconnect`/`connect`, which
    /// loses the container's published ports.
    fn http_inside(&self, service: &str, path: &str) -> Option<(u16, String)> {
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/26381 && \
             printf 'GET {path} HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && \
             timeout 5 cat <&3"
        );
        let text = self.exec(service, &["bash", "-c", &script]).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    }

    /// redis-py in Sentinel mode, in a container on the stack's network: for each group, the
    /// master found, the replicas found, and whether a write and read through it worked.
    fn sentinel_client(&self, groups: &[&str]) -> BTreeMap<String, serde_json::Value> {
        let network = self.network();
        let image = image("PICKET_TOOLS_IMAGE", "picket-tools:local");
        let label = format!("com.docker.compose.project={}", self.project);
        let mut args = vec!["run", "--rm", "--network", &network, "--label", &label, &image];
        args.push("sentinel-client");
        args.extend_from_slice(groups);
        let out = Command::new("docker").args(&args).stdin(Stdio::null()).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v)))
            .collect()
    }

    fn dump_logs(&self) {
        for service in PICKETS.into_iter().chain(["prometheus"]) {
            if let Ok(logs) = self.compose(&["logs", "--no-color", "--tail", "150", service]) {
                eprintln!("---- last logs of {service} ----\n{logs}");
            }
        }
    }

    /// Removes the containers (the test's one-off clients too), networks and volumes.
    fn remove(&self) {
        let label = format!("label=com.docker.compose.project={}", self.project);
        if let Ok(ids) = docker(&["ps", "-aq", "--filter", &label]) {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids);
                let _ = docker(&args);
            }
        }
        if let Err(e) = self.compose(&["down", "-v", "--remove-orphans", "--timeout", "5"]) {
            eprintln!("compose down: {e}");
        }
        for kind in ["network", "volume"] {
            if let Ok(names) = docker(&[kind, "ls", "-q", "--filter", &label]) {
                for name in names.split_whitespace() {
                    let _ = docker(&[kind, "rm", name]);
                }
            }
        }
    }

    /// What is left of the project: containers, networks, volumes.
    fn leftovers(&self) -> Vec<String> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let mut left = Vec::new();
        for kind in [&["ps", "-aq"][..], &["network", "ls", "-q"], &["volume", "ls", "-q"]] {
            let mut args = kind.to_vec();
            args.extend(["--filter", &label]);
            left.extend(docker(&args).unwrap_or_default().split_whitespace().map(str::to_owned));
        }
        left
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if thread::panicking() {
            self.dump_logs();
        }
        if std::env::var_os("PICKET_E2E_KEEP").is_some() {
            eprintln!(
                "PICKET_E2E_KEEP: left running; remove with: {} -p {} -f {} down -v",
                self.compose.join(" "),
                self.project,
                self.file.display()
            );
            return;
        }
        self.remove();
    }
}

fn image(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// `docker compose` (v2) or `docker-compose` (v1.29), whichever answers.
fn compose_command() -> Option<Vec<String>> {
    [vec!["docker", "compose"], vec!["docker-compose"]]
        .into_iter()
        .find(|c| {
            Command::new(c[0])
                .args(&c[1..])
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|c| c.into_iter().map(str::to_owned).collect())
}

/// A minimal HTTP/1.1 GET: (status, body), or None if nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Some((status, if chunked { dechunk(body) } else { body.to_owned() }))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A client of the server-sent event stream, reading in the background until stopped.
struct EventStream {
    text: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl EventStream {
    fn open(port: u16) -> Option<Self> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(
            stream,
            "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        .ok()?;
        stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
        let text = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (Arc::clone(&text), Arc::clone(&stop));
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while !s.load(Ordering::SeqCst) {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => t.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n])),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
        });
        Some(Self { text, stop, reader: Some(reader) })
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The `data` of a Prometheus HTTP API answer (`GET /api/v1/...` on the published `port`), once
/// it answers 200 with `"status": "success"`.
fn prometheus_api(port: u16, path: &str) -> Option<serde_json::Value> {
    let (status, body) = http_get(port, path)?;
    let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
    (status == 200 && answer["status"] == "success").then(|| answer["data"].clone())
}

/// The alerts named `name` that Prometheus has active (pending or firing): their state and
/// labels, from `GET /api/v1/alerts`.
fn active_alerts(port: u16, name: &str) -> Option<Vec<(String, BTreeMap<String, String>)>> {
    let data = prometheus_api(port, "/api/v1/alerts")?;
    let alerts = data["alerts"].as_array()?;
    Some(
        alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .map(|a| {
                let labels = a["labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                (a["state"].as_str().unwrap_or_default().to_owned(), labels)
            })
            .collect(),
    )
}

/// Waits until the alert `name` fires with `label` = `value`; returns every active alert of
/// that name then.
fn wait_firing(
    port: u16,
    name: &str,
    label: &str,
    value: &str,
    timeout: Duration,
) -> Vec<(String, BTreeMap<String, String>)> {
    poll(&format!("Prometheus fires {name} for {label}={value}"), timeout, || {
        let alerts = active_alerts(port, name)?;
        alerts
            .iter()
            .any(|(state, labels)| {
                state == "firing" && labels.get(label).map(String::as_str) == Some(value)
            })
            .then_some(alerts)
    })
}

/// A missing capability: fails under `CI=true` (a skipped test has not passed), else says why
/// the test did not run.
fn skipped(why: &str) {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and {why}");
    println!("SKIPPED docker_e2e: {why}");
}

/// Checks that hold in every phase: the current master of `group` is `master` on every node
/// (durable state) and in Redis.
fn assert_agreed(stack: &Stack, group: &str, master: &str, what: &str) -> u64 {
    poll(&format!("{what}: every node has {group} at {master}"), LONG, || {
        let views: Vec<_> = PICKETS.iter().map(|p| stack.durable(p, group)).collect();
        let first = views[0].clone()?;
        (first.0 == master && views.iter().all(|v| v.as_ref() == Some(&first))).then_some(first.1)
    })
}

#[test]
#[ignore = "builds images and runs the compose stack for minutes: scripts/test runs it"]
fn the_compose_stack_fails_over_and_a_partitioned_node_changes_nothing() {
    if docker(&["info"]).is_err() {
        skipped("no Docker engine is reachable (`docker info` failed)");
        return;
    }
    let Some(compose) = compose_command() else {
        skipped("neither `docker compose` nor `docker-compose` is installed");
        return;
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();

    step("building the images (docker/build-images)");
    let binary =
        std::env::var("PICKET_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_picket").to_owned());
    println!("  picket binary: {binary}");
    let build = Command::new(repo.join("docker/build-images"))
        .env("PICKET_BINARY", &binary)
        .status()
        .expect("docker/build-images runs");
    assert!(build.success(), "docker/build-images failed");
    println!("  images ready after {:.0}s", started.elapsed().as_secs_f64());

    let stack = Stack {
        compose,
        project: format!("picket-e2e-{}", std::process::id()),
        file: repo.join("docker/compose.yaml"),
        env: vec![
            ("PICKET_LOG", "info,picket::event=debug".to_owned()),
            ("PICKET_LOG_FORMAT", "json".to_owned()),
            // Random free host ports: nothing else on the machine is disturbed.
            ("PICKET_1_RESP_PORT", String::new()),
            ("PICKET_2_RESP_PORT", String::new()),
            ("PICKET_3_RESP_PORT", String::new()),
            ("PICKET_1_HTTP_PORT", String::new()),
            ("PICKET_2_HTTP_PORT", String::new()),
            ("PICKET_3_HTTP_PORT", String::new()),
            ("PICKET_PROMETHEUS_PORT", String::new()),
        ],
    };

    step(&format!("docker compose up (project {})", stack.project));
    stack.compose(&["up", "-d"]).unwrap();
    for group in GROUPS {
        poll(&format!("{group}: replica in sync"), START, || {
            stack.replica_in_sync(&format!("redis-{group}-1")).then_some(())
        });
    }
    // Every node knows every replica, by its service name, and both other nodes.
    poll("each node sees the three replicas (by name) and its two peers", START, || {
        PICKETS
            .iter()
            .all(|p| {
                let events = stack.events(p);
                let sees = |prefix: &str, name: &str| {
                    events.iter().any(|e| e.starts_with(prefix) && e.contains(name))
                };
                GROUPS.iter().all(|g| sees("+slave ", &format!("redis-{g}-1")))
                    && PICKETS.iter().filter(|q| *q != p).all(|q| sees("+sentinel ", q))
            })
            .then_some(())
    });
    for p in PICKETS {
        let events = stack.events(p);
        for e in events.iter().filter(|e| e.starts_with("+slave ") || e.starts_with("+sentinel ")) {
            assert!(
                !e.split_whitespace().any(|w| w.parse::<std::net::IpAddr>().is_ok()),
                "{p}: addresses are service names, not IPs: {e}"
            );
        }
    }
    for group in GROUPS {
        assert_agreed(&stack, group, &format!("redis-{group}-0:6379"), "at start");
    }

    let resp_served = PICKETS.iter().all(|p| stack.listening(p, 26379));
    let http_served = PICKETS.iter().all(|p| stack.listening(p, 26381));
    println!("  Sentinel port served: {resp_served}; HTTP API served: {http_served}");
    let http_ports: Vec<u16> = PICKETS.iter().map(|p| stack.host_port(p, 26381)).collect();

    step("redis-py in Sentinel mode finds each master and writes through it");
    if resp_served {
        let found = stack.sentinel_client(&GROUPS);
        for group in GROUPS {
            let answer = &found[group];
            assert_eq!(answer["master"], format!("redis-{group}-0:6379"), "{answer}");
            assert_eq!(answer["write"], true, "{answer}");
            let replica = format!("redis-{group}-1:6379");
            assert!(
                answer["replicas"].as_array().unwrap().iter().any(|r| r == &replica[..]),
                "{answer}"
            );
        }
    } else {
        not_run("redis-py Sentinel(...).discover_master / master_for on each group");
    }

    step("HTTP API: health, readiness, masters, metrics (published ports)");
    if http_served {
        for &port in &http_ports {
            poll("GET /healthz = 200", LONG, || {
                (http_get(port, "/healthz")?.0 == 200).then_some(())
            });
            poll("GET /readyz = 200", LONG, || (http_get(port, "/readyz")?.0 == 200).then_some(()));
            let (status, body) = http_get(port, "/v1/masters").unwrap();
            assert_eq!(status, 200, "{body}");
            for group in GROUPS {
                assert!(body.contains(&format!("redis-{group}-0")), "{body}");
            }
            let (status, metrics) = http_get(port, "/metrics").unwrap();
            assert!(status == 200 && metrics.contains("# TYPE"), "{metrics}");
        }
        // The image's HEALTHCHECK uses /healthz.
        for p in PICKETS {
            poll(&format!("{p}: container healthy"), LONG, || {
                let health =
                    docker(&["inspect", "-f", "{{.State.Health.Status}}", &stack.container(p)])
                        .ok()?;
                (health.trim() == "healthy").then_some(())
            });
        }
    } else {
        not_run("GET /healthz, /readyz, /v1/masters, /metrics; container HEALTHCHECK healthy");
    }

    step("Prometheus: config/alerts.yml loaded, the three nodes scraped, no alert of ours active");
    let prometheus = stack.host_port("prometheus", 9090);
    if http_served {
        poll(
            "Prometheus has evaluated every rule of config/alerts.yml without error",
            LONG,
            || {
                let data = prometheus_api(prometheus, "/api/v1/rules")?;
                let rules: Vec<&serde_json::Value> = data["groups"]
                    .as_array()?
                    .iter()
                    .filter_map(|g| g["rules"].as_array())
                    .flatten()
                    .collect();
                let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
                let evaluated = !rules.is_empty() && rules.iter().all(|r| r["health"] == "ok");
                (evaluated && names.contains(&FAILOVER_ALERT) && names.contains(&QUORUM_LOST_ALERT))
                    .then_some(())
            },
        );
        // At least one scrape of each node before the failover: the alert sees the epoch change.
        poll("Prometheus scrapes picket-1, picket-2 and picket-3", LONG, || {
            let data = prometheus_api(prometheus, "/api/v1/targets")?;
            let up: Vec<&str> = data["activeTargets"]
                .as_array()?
                .iter()
                .filter(|t| t["health"] == "up")
                .filter_map(|t| t["labels"]["instance"].as_str())
                .collect();
            PICKETS.iter().all(|p| up.contains(p)).then_some(())
        });
        // A node that had not yet heard its peers at its first scrape may have had the
        // quorum-lost alert pending for a moment; it must clear.
        poll("neither alert is active while every node and master is up", LONG, || {
            let failover = active_alerts(prometheus, FAILOVER_ALERT)?;
            let quorum = active_alerts(prometheus, QUORUM_LOST_ALERT)?;
            (failover.is_empty() && quorum.is_empty()).then_some(())
        });
    } else {
        not_run("Prometheus scraping /metrics and evaluating config/alerts.yml");
    }
    let events = if http_served { EventStream::open(http_ports[1]) } else { None };

    step("stopping the session master's container (docker stop redis-session-0)");
    let before: BTreeMap<&str, usize> =
        PICKETS.iter().map(|p| (*p, stack.count(p, "+elected-leader"))).collect();
    let stopped = Instant::now();
    docker(&["stop", "-t", "10", &stack.container("redis-session-0")]).unwrap();
    let epoch = poll("every node records redis-session-1 as the session master", LONG, || {
        let views: Vec<_> = PICKETS.iter().map(|p| stack.durable(p, "session")).collect();
        let first = views[0].clone()?;
        (first.0 == "redis-session-1:6379" && first.1 > 0 && views.iter().all(|v| v == &views[0]))
            .then_some(first.1)
    });
    println!(
        "  failover done {:.1}s after docker stop (down_after_ms is 5000), config epoch {epoch}",
        stopped.elapsed().as_secs_f64()
    );
    poll("redis-session-1 is a master", LONG, || {
        (stack.role("redis-session-1")?.0 == "master").then_some(())
    });
    // Nobody turns on the new master: a node that adopts the new configuration before its own
    // INFO shows the promoted replica as a master must not count it down for "claiming to be a
    // replica" (Sentinel resets the instance when it switches masters).
    sleep(Duration::from_secs(2));
    for p in PICKETS {
        let events = stack.events(p);
        let against_new: Vec<&String> = events
            .iter()
            .filter(|e| {
                (e.starts_with("+sdown master session") || e.starts_with("+try-failover"))
                    && e.contains("redis-session-1")
            })
            .collect();
        assert!(against_new.is_empty(), "{p} turned on the healthy new master: {against_new:?}");
    }
    let leaders: usize =
        PICKETS.iter().map(|p| stack.count(p, "+elected-leader") - before[p]).sum();
    assert_eq!(leaders, 1, "exactly one leader ran the failover");
    for p in PICKETS {
        poll(&format!("{p}: +switch-master event"), LONG, || {
            stack
                .events(p)
                .iter()
                .any(|e| e == "+switch-master session redis-session-0 6379 redis-session-1 6379")
                .then_some(())
        });
    }
    for group in ["cache", "realtime"] {
        assert_agreed(&stack, group, &format!("redis-{group}-0:6379"), "other groups untouched");
    }

    step(&format!("Prometheus fires {FAILOVER_ALERT} for session, and only for session"));
    if http_served {
        let alerts = wait_firing(prometheus, FAILOVER_ALERT, "master", "session", LONG);
        println!("  {alerts:?}");
        for (_, labels) in &alerts {
            assert_eq!(labels["master"], "session", "only session failed over: {alerts:?}");
        }
    } else {
        not_run("Prometheus's failover alert");
    }

    step("the new master through the Sentinel port, the HTTP API and the event stream");
    if resp_served {
        let found = poll("redis-py finds and writes to the new session master", LONG, || {
            let found = stack.sentinel_client(&["session"]);
            let answer = found.get("session")?.clone();
            (answer["master"] == "redis-session-1:6379" && answer["write"] == true)
                .then_some(answer)
        });
        println!("  {found}");
        for p in PICKETS {
            let out = stack
                .exec(p, &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/26379; printf '*3\\r\\n$8\\r\\nSENTINEL\\r\\n$23\\r\\nget-master-addr-by-name\\r\\n$7\\r\\nsession\\r\\n' >&3; timeout 1 cat <&3 || true"])
                .unwrap();
            assert!(out.contains("redis-session-1") && out.contains("6379"), "{p}: {out}");
        }
    } else {
        not_run("redis-py and SENTINEL get-master-addr-by-name on each node give redis-session-1");
    }
    if http_served {
        for &port in &http_ports {
            let body = poll("GET /v1/masters/session names redis-session-1", LONG, || {
                let (status, body) = http_get(port, "/v1/masters/session")?;
                (status == 200 && body.contains("redis-session-1")).then_some(body)
            });
            assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok(), "JSON: {body}");
        }
        let stream = events.as_ref().expect("the event stream was opened");
        poll("the event stream shows +switch-master for session", LONG, || {
            let text = stream.text();
            let at = text.find("event: +switch-master")?;
            text[at..].lines().take(4).any(|l| l.contains("redis-session-1")).then_some(())
        });
    } else {
        not_run("GET /v1/masters/session and the /v1/events stream show the new master");
    }
    drop(events);

    step("bringing the old master back: it becomes a replica of the new one");
    docker(&["start", &stack.container("redis-session-0")]).unwrap();
    poll("redis-session-0 replicates redis-session-1", LONG, || {
        let (role, master) = stack.role("redis-session-0")?;
        (role == "slave"
            && master.as_deref() == Some("redis-session-1:6379")
            && stack.replica_in_sync("redis-session-0"))
        .then_some(())
    });
    assert!(
        PICKETS.iter().any(|p| stack.count(p, "+convert-to-slave") > 0),
        "a node demoted the returning master"
    );

    step("cutting picket-3 off the network (docker network disconnect)");
    let network = stack.network();
    let lone = stack.container("picket-3");
    let failover_events = ["+try-failover", "+new-epoch", "+elected-leader", "+switch-master"];
    let counts = |p: &str| -> Vec<usize> {
        let events = stack.events(p);
        failover_events.iter().map(|f| events.iter().filter(|e| e.starts_with(f)).count()).collect()
    };
    let before: BTreeMap<&str, Vec<usize>> = PICKETS.iter().map(|p| (*p, counts(p))).collect();
    let views: BTreeMap<&str, (String, u64)> =
        GROUPS.iter().map(|g| (*g, stack.durable("picket-1", g).unwrap())).collect();
    let sdowns = stack.count("picket-3", "+sdown master");
    docker(&["network", "disconnect", &network, &lone]).unwrap();
    poll("picket-3 sees every master down", LONG, || {
        (stack.count("picket-3", "+sdown master") >= sdowns + 3).then_some(())
    });
    poll("the others see picket-3 down", LONG, || {
        ["picket-1", "picket-2"]
            .iter()
            .all(|p| stack.events(p).iter().any(|e| e.starts_with("+sdown sentinel")))
            .then_some(())
    });
    // Longer than any down_after_ms plus an election's worth of time.
    sleep(Duration::from_secs(15));
    for p in PICKETS {
        assert_eq!(counts(p), before[p], "{p}: no failover activity while picket-3 is cut off");
    }
    for group in GROUPS {
        for p in PICKETS {
            assert_eq!(stack.durable(p, group).as_ref(), Some(&views[group]), "{p} {group}");
        }
    }
    assert_eq!(stack.role("redis-session-1").map(|r| r.0).as_deref(), Some("master"));
    assert_eq!(stack.role("redis-cache-0").map(|r| r.0).as_deref(), Some("master"));
    assert_eq!(stack.role("redis-realtime-0").map(|r| r.0).as_deref(), Some("master"));

    step("reconnecting picket-3 (with its service name) and checking convergence");
    docker(&["network", "connect", "--alias", "picket-3", &network, &lone]).unwrap();
    poll("picket-3 sees the masters and its peers again", LONG, || {
        let events = stack.events("picket-3");
        let last = |what: &str, undo: &str, name: &str| {
            events
                .iter()
                .rev()
                .find(|e| (e.starts_with(what) || e.starts_with(undo)) && e.contains(name))
                .is_some_and(|e| e.starts_with(undo))
        };
        (GROUPS.iter().all(|g| last("+sdown master", "-sdown master", g))
            && ["picket-1", "picket-2"]
                .iter()
                .all(|n| last("+sdown sentinel", "-sdown sentinel", n)))
        .then_some(())
    });
    poll("picket-1 and picket-2 see picket-3 again", LONG, || {
        ["picket-1", "picket-2"]
            .iter()
            .all(|p| {
                let events = stack.events(p);
                events
                    .iter()
                    .rev()
                    .find(|e| e.contains("sdown sentinel") && e.contains("picket-3"))
                    .is_some_and(|e| e.starts_with("-sdown"))
            })
            .then_some(())
    });
    for group in GROUPS {
        let (master, epoch) = &views[group];
        assert_eq!(assert_agreed(&stack, group, master, "after the partition"), *epoch);
    }
    for p in PICKETS {
        assert_eq!(counts(p), before[p], "{p}: reconnecting started no failover");
    }
    if resp_served {
        let found = stack.sentinel_client(&GROUPS);
        for group in GROUPS {
            let expected = views[group].0.clone();
            assert_eq!(found[group]["master"], expected, "{}", found[group]);
            assert_eq!(found[group]["write"], true, "{}", found[group]);
        }
    } else {
        not_run("redis-py finds every master after the partition heals");
    }
    if http_served {
        // Inside the containers: reconnecting picket-3 lost its published ports (Docker drops
        // them with the network endpoint).
        for p in PICKETS {
            let (status, body) = stack.http_inside(p, "/v1/masters/session").unwrap();
            assert!(status == 200 && body.contains("redis-session-1"), "{p}: {status} {body}");
            poll(&format!("{p} ready"), LONG, || {
                (stack.http_inside(p, "/readyz")?.0 == 200).then_some(())
            });
        }
    } else {
        not_run("GET /v1/masters/session and /readyz on every node after the partition heals");
    }

    step("docker stop picket-2: SIGTERM, clean exit");
    let node = stack.container("picket-2");
    docker(&["stop", "-t", "15", &node]).unwrap();
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", &node]).unwrap();
    assert_eq!(code.trim(), "0", "picket exits 0 on SIGTERM (137 would mean it was killed)");

    step(&format!(
        "docker stop picket-3 as well: Prometheus fires {QUORUM_LOST_ALERT} for picket-1"
    ));
    if http_served {
        let before = active_alerts(prometheus, QUORUM_LOST_ALERT).unwrap_or_default();
        assert!(
            before.iter().all(|(state, _)| state != "firing"),
            "no quorum-lost alert fires while two of three nodes run: {before:?}"
        );
        let stopped = Instant::now();
        docker(&["stop", "-t", "15", &stack.container("picket-3")]).unwrap();
        // The node's peer timeout, then the rule's `for: 1m`, then an evaluation.
        let alerts = wait_firing(prometheus, QUORUM_LOST_ALERT, "instance", "picket-1", START);
        println!("  {:.0}s after docker stop: {alerts:?}", stopped.elapsed().as_secs_f64());
    } else {
        not_run("Prometheus's quorum-lost alert");
    }

    step("docker compose down -v");
    let project = stack.project.clone();
    let keep = std::env::var_os("PICKET_E2E_KEEP").is_some();
    let leftovers = if keep {
        Vec::new()
    } else {
        stack.remove();
        stack.leftovers()
    };
    drop(stack);
    assert!(leftovers.is_empty(), "project {project} left behind: {leftovers:?}");
    println!("\ndocker_e2e passed in {:.0}s", started.elapsed().as_secs_f64());
}
