//! `picket ctl` against three real pickets supervising real `redis-server`s: `status`, `why`,
//! `history` and `events` compared with golden outputs (addresses, ids, lags and times masked),
//! `--json`, errors in words, a manual failover, and `status --watch` seen through tmux.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::process::{Command, Output};

use serde_json::Value;
use support::http::get;
use support::{CLUSTER_WAIT, Cluster, ClusterOptions, Group, missing, wait_for, wait_until};

const ADMIN: &str = "ctl-admin-token";

/// Runs `picket ctl --url URL ARGS` and returns (exit code, stdout, stderr).
fn ctl(url: &str, args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["ctl", "--url", url])
        .args(args)
        .env_remove("PICKET_TOKEN")
        .env("TZ", "UTC")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Like [`ctl`], asserting success and returning stdout.
fn ok(url: &str, args: &[&str]) -> String {
    let (code, stdout, stderr) = ctl(url, args);
    assert_eq!(code, 0, "picket ctl {args:?}: {stderr}");
    stdout
}

/// Replaces what changes from run to run: addresses by names, node ids by `<id>`, durations and
/// times by `<t>`, lag figures by `~`, and runs of spaces by one (widths follow the values).
struct Mask {
    names: BTreeMap<String, String>,
}

impl Mask {
    /// Names from node 1's view: `M` the master, `R1`.. its replicas in the view's order, `N`
    /// the node asked, `P1`.. its peers.
    fn from_view(http: &str, initial_master: &str) -> Self {
        let body = get(http, "/v1/masters").json();
        let m = &body["masters"][0];
        let mut names = BTreeMap::new();
        names.insert(initial_master.to_owned(), "M".to_owned());
        let mut n = 0;
        for r in m["replicas"].as_array().unwrap() {
            let addr = r["address"].as_str().unwrap();
            if addr != initial_master {
                n += 1;
                names.insert(addr.to_owned(), format!("R{n}"));
            }
        }
        names.insert(body["node"]["address"].as_str().unwrap().to_owned(), "N".to_owned());
        for (i, p) in m["peers"].as_array().unwrap().iter().enumerate() {
            names.insert(p["address"].as_str().unwrap().to_owned(), format!("P{}", i + 1));
        }
        Self { names }
    }

    fn name(&self, addr: &str) -> &str {
        &self.names[addr]
    }

    fn apply(&self, text: &str) -> String {
        let mut text = text.to_owned();
        // Longest first: 127.0.0.1:6380 must not be cut inside 127.0.0.1:63801.
        let mut names: Vec<_> = self.names.iter().collect();
        names.sort_by_key(|(addr, _)| std::cmp::Reverse(addr.len()));
        for (addr, name) in names {
            // Events' payloads write addresses as `ip port`, Sentinel's way.
            text = text.replace(addr.as_str(), name).replace(&addr.replacen(':', " ", 1), name);
        }
        text.lines().map(|line| mask_line(line) + "\n").collect()
    }
}

fn mask_line(line: &str) -> String {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let is_instance_row = tokens.first().is_some_and(|t| t.starts_with('R') || *t == "M")
        && tokens.get(1).is_some_and(|t| ["replica", "master"].contains(t));
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if is_instance_row && (i == 3 || i == 4) && *t != "-" {
                "~".to_owned()
            } else if is_duration(t) || is_clock(t) || is_date(t) {
                "<t>".to_owned()
            } else if let Some(id) = short_id(t) {
                t.replace(id, "<id>")
            } else {
                (*t).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A node id as ctl shortens it (8 hex digits), possibly in parentheses.
fn short_id(t: &str) -> Option<&str> {
    let id = t.trim_matches(['(', ')']);
    (id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// `850ms`, `12.3s`, `4m05s`, `+1.2s` (with trailing punctuation).
fn is_duration(t: &str) -> bool {
    let t = t.trim_start_matches('+').trim_end_matches([',', ')', ':']);
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    !digits.is_empty()
        && digits != t
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && ["ms", "s", "m", "h"].iter().any(|u| t[digits.len()..].starts_with(u))
        && t[digits.len()..].chars().all(|c| c.is_ascii_alphanumeric())
}

/// `01:02:03.456`.
fn is_clock(t: &str) -> bool {
    t.len() == 12 && t.as_bytes()[2] == b':' && t.as_bytes()[5] == b':' && t.as_bytes()[8] == b'.'
}

/// `2026-12-06`.
fn is_date(t: &str) -> bool {
    t.len() == 10 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-'
}

/// The history with its `replica_reconfigured` steps in name order: the replicas are repointed
/// in parallel, so the order they finish in varies.
fn reconfigurations_sorted(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let at: Vec<usize> =
        (0..lines.len()).filter(|&i| lines[i].contains("replica_reconfigured")).collect();
    let mut steps: Vec<&str> = at.iter().map(|&i| lines[i]).collect();
    steps.sort_unstable();
    for (&i, step) in at.iter().zip(steps) {
        lines[i] = step;
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn golden(actual: &str, expected: &str) {
    assert_eq!(actual, expected, "\n--- actual ---\n{actual}--- expected ---\n{expected}");
}

#[test]
fn status_why_history_and_events_against_a_three_node_cluster() {
    let options = ClusterOptions {
        node_extra: format!("\n[http]\nadmin_token = \"{ADMIN}\"\n"),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(3, vec![Group::start("cache", 2, None)], &options);
    cluster.wait_ready();
    let http = cluster.pickets[0].spec.http_addr();
    let url = format!("http://{http}");
    let master = cluster.group("cache").master.addr();
    wait_for("both replicas promotable and both peers fresh", CLUSTER_WAIT, || {
        let body = get(&http, "/v1/masters/cache").json();
        body["replicas"].as_array().is_some_and(|r| r.len() == 2)
            && body["replicas"].as_array().unwrap().iter().all(|r| r["ineligible"].is_null())
            && body["peers"].as_array().unwrap().iter().all(|p| p["agrees"] == true)
    });
    let mask = Mask::from_view(&http, &master);

    golden(
        &mask.apply(&ok(&url, &["status"])),
        "node N (<id>) epoch 0 voters 3, majority 2, fresh peers 2\n\
         \n\
         cache master M config epoch 0 ok quorum 2\n\
         ADDRESS ROLE LINK LAG LAG(S) PRIORITY PROMOTABLE\n\
         M master up - - - -\n\
         R1 replica up ~ ~ 100 yes\n\
         R2 replica up ~ ~ 100 yes\n\
         NODE KIND ID VIEW\n\
         (this node) picket answering\n\
         P1 picket <id> agrees\n\
         P2 picket <id> agrees\n",
    );
    golden(
        &mask.apply(&ok(&url, &["why", "cache"])),
        "cache: nothing blocks a failover\n\
         master M is ok\n\
         replicas:\n\
         - replica R1 could be promoted (priority 100)\n\
         - replica R2 could be promoted (priority 100)\n",
    );

    // --json: valid JSON, the API's documented shape.
    let status: Value = serde_json::from_str(&ok(&url, &["status", "--json"])).unwrap();
    assert_eq!(status["masters"][0]["name"], "cache");
    assert!(status["masters"][0]["authorisation"]["votes_needed"].is_u64(), "{status}");
    assert!(status["node"]["id"].is_string(), "{status}");
    let why: Value = serde_json::from_str(&ok(&url, &["why", "cache", "--json"])).unwrap();
    assert_eq!(why["blocked"], false, "{why}");
    assert_eq!(why["replicas"].as_array().map(Vec::len), Some(2), "{why}");

    // A replica with priority 0 is named, with the reason, by `why` and `status`.
    let r1 = mask.names.iter().find(|(_, n)| *n == "R1").map(|(a, _)| a.clone()).unwrap();
    cluster
        .group("cache")
        .at(&r1)
        .unwrap()
        .query(&["CONFIG", "SET", "replica-priority", "0"])
        .unwrap();
    let why = wait_until("why to name the priority-0 replica", CLUSTER_WAIT, || {
        let text = mask.apply(&ok(&url, &["why", "cache"]));
        text.contains("replica R1 cannot be promoted").then_some(text)
    });
    golden(
        &why,
        "cache: nothing blocks a failover\n\
         master M is ok\n\
         replicas:\n\
         - replica R1 cannot be promoted: its replica-priority is 0 (never promote)\n\
         - replica R2 could be promoted (priority 100)\n",
    );
    assert!(
        mask.apply(&ok(&url, &["status"])).contains("R1 replica up ~ ~ 0 no: priority zero\n"),
        "{}",
        ok(&url, &["status"])
    );

    // One peer stopped: `why` names it as a stale voter; two: no leader can be elected.
    let p2 = &cluster.pickets[2];
    p2.pause();
    let p2_name = mask.name(&p2.spec.listen_addr()).to_owned();
    let why = wait_until("why to name the stopped voter", CLUSTER_WAIT, || {
        let text = mask.apply(&ok(&url, &["why", "cache"]));
        text.contains(&format!("voter {p2_name}")).then_some(text)
    });
    golden(
        &why,
        &format!(
            "cache: nothing blocks a failover\n\
             master M is ok\n\
             stale voters:\n\
             - voter {p2_name} (node <id>) is stale: last heard <t> ago\n\
             replicas:\n\
             - replica R1 cannot be promoted: its replica-priority is 0 (never promote)\n\
             - replica R2 could be promoted (priority 100)\n"
        ),
    );
    let p1 = &cluster.pickets[1];
    p1.pause();
    let p1_name = mask.name(&p1.spec.listen_addr()).to_owned();
    let why = wait_until("why to say no leader can be elected", CLUSTER_WAIT, || {
        let text = mask.apply(&ok(&url, &["why", "cache"]));
        (text.contains("blocked by:") && text.contains(&format!("voter {p1_name}"))).then_some(text)
    });
    let mut stale = [p1_name, p2_name];
    stale.sort();
    golden(
        &why,
        &format!(
            "cache: a failover would not happen now\n\
             master M is ok\n\
             blocked by:\n\
             - only 1 of 3 voters are reachable, fewer than the quorum of 2: they cannot agree that the master is down\n\
             stale voters:\n\
             - voter {} (node <id>) is stale: last heard <t> ago\n\
             - voter {} (node <id>) is stale: last heard <t> ago\n\
             replicas:\n\
             - replica R1 cannot be promoted: its replica-priority is 0 (never promote)\n\
             - replica R2 could be promoted (priority 100)\n",
            stale[0], stale[1]
        ),
    );
    p1.resume();
    p2.resume();
    wait_for("both peers fresh again", CLUSTER_WAIT, || {
        ok(&url, &["why", "cache"]).starts_with("cache: nothing blocks")
            && !ok(&url, &["why", "cache"]).contains("stale voters")
    });

    // Errors in words, with a non-zero exit code.
    let (code, _, stderr) = ctl(&url, &["failover", "cache"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("needs a token: pass --token-file or set PICKET_TOKEN"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    fs::write(&wrong, "not-the-token\n").unwrap();
    let (code, _, stderr) =
        ctl(&url, &["--token-file", wrong.to_str().unwrap(), "failover", "cache"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("refused the token (wrong token)"), "{stderr}");
    let (code, _, stderr) = ctl(&url, &["why", "nope"]);
    assert_eq!(
        (code, stderr.trim()),
        (1, "picket: unknown master \"nope\": this node monitors cache")
    );
    let (code, _, stderr) = ctl(&url, &["history", "nope"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown master: no master named \"nope\""), "{stderr}");
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let (code, _, stderr) = ctl(&dead, &["status"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with(&format!("picket: cannot reach the node at {dead}")), "{stderr}");

    // A manual failover through ctl, then its history and events.
    let token = dir.path().join("token");
    fs::write(&token, format!("{ADMIN}\n")).unwrap();
    let started = ok(&url, &["--token-file", token.to_str().unwrap(), "failover", "cache"]);
    assert_eq!(started, "failover of cache started\n");
    let new_master = cluster.check_one_clean_failover("cache", &master);
    let new_name = mask.name(&new_master).to_owned();
    assert_eq!(new_name, "R2", "the priority-0 replica must not be promoted");
    let history = wait_until("the failover in the history", CLUSTER_WAIT, || {
        let text = mask.apply(&ok(&url, &["history", "cache"]));
        text.contains("succeeded").then_some(text)
    });
    golden(
        &reconfigurations_sorted(&history),
        "cache <t> <t> as leader epoch 1 succeeded took <t>\n\
         old master M -> promoted R2\n\
         bytes possibly lost: 0\n\
         AT +PHASE STEP EVENT INSTANCE\n\
         <t> <t> started +try-failover\n\
         <t> <t> elected +elected-leader\n\
         <t> <t> catch_up +failover-state-wait-catch-up R2\n\
         <t> <t> promoted +promoted-slave R2\n\
         <t> <t> replica_reconfigured +slave-reconf-done M\n\
         <t> <t> replica_reconfigured +slave-reconf-done R1\n\
         <t> <t> done +failover-end\n",
    );
    let history: Value = serde_json::from_str(&ok(&url, &["history", "--json"])).unwrap();
    assert_eq!(history["failovers"][0]["new_master"], new_master.as_str(), "{history}");

    let events = mask.apply(&ok(&url, &["events"]));
    let failover_lines: Vec<&str> = events
        .lines()
        .filter(|l| {
            ["+switch-master", "+failover-end ", "+promoted-slave"].iter().any(|e| l.contains(e))
        })
        .collect();
    golden(
        &(failover_lines.join("\n") + "\n"),
        "<t> warning +promoted-slave slave R2 R2 @ cache M\n\
         <t> warning +failover-end master cache M\n\
         <t> warning +switch-master cache M R2\n",
    );

    // `events -f` follows node 2 across its restart: the kept events, then a reconnection, the
    // gap (the restarted process numbers its events anew) and the new process's events.
    let url2 = format!("http://{}", cluster.pickets[1].spec.http_addr());
    let follower = Follower::start(&url2);
    wait_for("the followed stream to replay the failover", CLUSTER_WAIT, || {
        follower.stdout().contains("+switch-master")
    });
    cluster.pickets[1].restart();
    // Reconnected with Last-Event-ID: the new process numbers its events from 1, so the node
    // reports a gap, then sends what the new process published.
    let after_gap = |text: &str| {
        let gap = text.find("(some events were lost")?;
        text[gap..]
            .lines()
            .skip(1)
            .find(|l| l.contains(" notice ") || l.contains(" warning "))
            .map(str::to_owned)
    };
    let start = std::time::Instant::now();
    while after_gap(&follower.stdout()).is_none() {
        assert!(start.elapsed() < CLUSTER_WAIT, "no reconnection:\n{}", follower.stdout());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `picket ctl events -f` running in the background, its output collected.
struct Follower {
    child: std::process::Child,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Follower {
    fn start(url: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_picket"))
            .args(["ctl", "--url", url, "events", "-f"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (mut pipe, sink) = (child.stdout.take().unwrap(), std::sync::Arc::clone(&stdout));
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut pipe, &mut buf) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, stdout }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tmux server of its own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").args(["-L", &self.socket]).args(args).output().unwrap();
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pane as a person sees it (with `-e`, its colour codes too).
    fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "ctl"];
        if escapes {
            args.push("-e");
        }
        self.run(&args)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

/// A master with listed redis-sentinel voters (a rolling migration's `sentinel_peers`): its line
/// counts the voters of each kind and the votes a leader needs over all of them (the node's line
/// counts Pickets only), and the Sentinel has its row. The Sentinel listed does not run.
#[test]
fn status_counts_both_kinds_of_voters_of_a_mixed_master() {
    let sentinel = format!("127.0.0.1:{}", support::free_port());
    let options = ClusterOptions {
        master_extra: format!("fencing = \"off\"\nsentinel_peers = [\"{sentinel}\"]\n"),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(2, vec![Group::start("cache", 2, None)], &options);
    cluster.wait_ready();
    let http = cluster.pickets[0].spec.http_addr();
    let url = format!("http://{http}");
    let master = cluster.group("cache").master.addr();
    wait_for("both replicas promotable and the peer agreeing", CLUSTER_WAIT, || {
        let body = get(&http, "/v1/masters/cache").json();
        body["replicas"].as_array().is_some_and(|r| r.len() == 2)
            && body["replicas"].as_array().unwrap().iter().all(|r| r["ineligible"].is_null())
            && body["peers"].as_array().unwrap().iter().all(|p| p["agrees"] == true)
    });
    let mut mask = Mask::from_view(&http, &master);
    mask.names.insert(sentinel, "S1".to_owned());
    golden(
        &mask.apply(&ok(&url, &["status"])),
        "node N (<id>) epoch 0 voters 2, majority 2, fresh peers 1\n\
         \n\
         cache master M config epoch 0 ok quorum 2 voters 3 (2 pickets, 1 sentinel), votes \
         needed 2\n\
         ADDRESS ROLE LINK LAG LAG(S) PRIORITY PROMOTABLE\n\
         M master up - - - -\n\
         R1 replica up ~ ~ 100 yes\n\
         R2 replica up ~ ~ 100 yes\n\
         NODE KIND ID VIEW\n\
         (this node) picket answering\n\
         P1 picket <id> agrees\n\
         S1 sentinel stale (never heard)\n",
    );
}

#[test]
fn status_watch_redraws_in_place_and_shows_a_failover_in_a_terminal() {
    let tmux = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    if missing("tmux", tmux) {
        return;
    }
    let mut cluster =
        Cluster::start(3, vec![Group::start("watched", 1, None)], &ClusterOptions::default());
    cluster.wait_ready();
    let url = format!("http://{}", cluster.pickets[0].spec.http_addr());
    let master = cluster.group("watched").master.addr();
    let tmux = Tmux { socket: format!("picket-ctl-{}", std::process::id()) };
    let command =
        format!("'{}' ctl --url {url} status --watch --interval 0.2", env!("CARGO_BIN_EXE_picket"));
    tmux.run(&["new-session", "-d", "-s", "ctl", "-x", "160", "-y", "40", &command]);

    let line = format!("watched  master {master}  config epoch 0  ok");
    wait_for("the watch to show the master", CLUSTER_WAIT, || tmux.capture(false).contains(&line));
    // Colours on a terminal: `ok` in green.
    assert!(tmux.capture(true).contains("\x1b[32mok\x1b[39m"), "{:?}", tmux.capture(true));

    // With the other two nodes stopped, this node sees the master down but cannot fail over:
    // the frame must change to `sdown` and stay there.
    cluster.pickets[1].pause();
    cluster.pickets[2].pause();
    cluster.group_mut("watched").master.kill();
    let down = format!("watched  master {master}  config epoch 0  sdown");
    wait_for("the watch to show the master down", CLUSTER_WAIT, || {
        let pane = tmux.capture(false);
        // Redrawn in place: one frame on the screen, never frames scrolling by.
        assert!(pane.matches("  voters ").count() <= 1, "{pane}");
        pane.contains(&down)
    });
    cluster.pickets[1].resume();
    cluster.pickets[2].resume();
    let new_master = wait_until("the watch to show the new master", CLUSTER_WAIT, || {
        let pane = tmux.capture(false);
        assert!(pane.matches("  voters ").count() <= 1, "{pane}");
        let header = pane.lines().find(|l| l.starts_with("watched  master"))?;
        let new = header.split_whitespace().nth(2)?.to_owned();
        (new != master && header.contains("config epoch 1  ok")).then_some(new)
    });
    assert_eq!(cluster.group("watched").replicas[0].addr(), new_master);
}

#[test]
fn https_nodes_are_reached_with_the_ca_given_by_cacert() {
    use support::tls::{Pki, Validity};
    let pki = Pki::new("ctl");
    let node_tls = support::NodeTls {
        dir: pki.dir().to_owned(),
        ca_file: pki.ca_file.clone(),
        client_auth: "none",
        peers: false,
        listeners: true,
    };
    pki.issue_to(&node_tls.pair("127.0.0.1"), &["127.0.0.1"], Validity::Current);
    let options =
        ClusterOptions { quorum: 1, node_tls: Some(node_tls), ..ClusterOptions::default() };
    let cluster = Cluster::start(1, vec![Group::start("secure", 1, None)], &options);
    let url = format!("https://{}", cluster.pickets[0].spec.tls_http_addr());
    let ca = pki.ca_file.to_str().unwrap().to_owned();
    let status = wait_until("ctl status over HTTPS", CLUSTER_WAIT, || {
        let (code, stdout, _) = ctl(&url, &["--cacert", &ca, "status"]);
        (code == 0).then_some(stdout)
    });
    assert!(status.contains("secure  master "), "{status}");
    // The platform's roots do not know this CA: refused, in words.
    let (code, _, stderr) = ctl(&url, &["status"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with(&format!("picket: cannot reach the node at {url}")), "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}
