//! A failover watched through the HTTP API: three pickets (quorum 2) supervise a master and two
//! replicas; the master is SIGKILLed. Checked: role checks before and after, the event stream
//! (the whole sequence, and a resume after a reconnect without a gap), the long poll, the
//! failover history, signed webhooks (retried after a 500), the scripts' arguments, and metrics.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use support::http::{Received, SseStream, WebhookReceiver, check_metrics, get};
use support::{Cluster, ClusterOptions, Group, wait_for, wait_until};

const LONG: Duration = Duration::from_secs(90);
const HOOK_SECRET: &str = "webhook-secret-for-tests";

/// A script that appends its arguments, each in brackets, as one line of `log`.
fn recording_script(dir: &Path, name: &str, log: &Path) -> String {
    let path = dir.join(name);
    let text = format!(
        "#!/bin/sh\nline=''\nfor arg in \"$@\"; do line=\"$line[$arg]\"; done\n\
         echo \"$line\" >> '{}'\n",
        log.display()
    );
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn role(http: &str, role: &str, addr: &str) -> u16 {
    get(http, &format!("/v1/masters/session/{role}?addr={addr}")).status
}

#[test]
fn a_failover_seen_through_http_webhooks_scripts_and_metrics() {
    let scripts = tempfile::tempdir().unwrap();
    let notify_log = scripts.path().join("notify.log");
    let reconfig_log = scripts.path().join("reconfig.log");
    let notify = recording_script(scripts.path(), "notify.sh", &notify_log);
    let reconfig = recording_script(scripts.path(), "reconfig.sh", &reconfig_log);
    // The first delivery is refused with a 500, so it must be retried.
    let receiver = WebhookReceiver::start(vec![500]);
    let options = ClusterOptions {
        node_extra: format!(
            "\n[[webhook]]\nurl = \"http://{}/hooks/picket\"\nsecret = \"{HOOK_SECRET}\"\n\
             max_retries = 5\ntimeout_ms = 2000\n",
            receiver.addr
        ),
        master_extra: format!(
            "notification_script = \"{notify}\"\nclient_reconfig_script = \"{reconfig}\"\n"
        ),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(3, vec![Group::start("session", 2, None)], &options);
    let https: Vec<String> = cluster.pickets.iter().map(|p| p.spec.http_addr()).collect();
    let old = cluster.group("session").master.addr();
    let replicas: Vec<String> =
        cluster.group("session").replicas.iter().map(|r| r.addr()).collect();

    // Before: every node is ready and agrees on the roles.
    for http in &https {
        wait_for("readyz", LONG, || {
            support::http::request(http, "GET", "/readyz", &[], b"").is_ok_and(|r| r.status == 200)
        });
        assert_eq!(role(http, "is-master", &old), 200);
        for replica in &replicas {
            assert_eq!(role(http, "is-master", replica), 503);
            wait_for("healthy replicas", LONG, || role(http, "is-replica", replica) == 200);
        }
    }

    // Watch: an event stream on node 0, a long poll on node 1.
    let mut stream = SseStream::open(&https[0], "/v1/events", None).expect("event stream");
    let after = get(&https[1], "/v1/events?after=0").json()["last_id"].as_u64().expect("last_id");
    let poll = {
        let http = https[1].clone();
        std::thread::spawn(move || get(&http, &format!("/v1/events?after={after}&wait=60s")))
    };
    std::thread::sleep(Duration::from_millis(300));

    cluster.group_mut("session").master.kill();

    // The stream delivers the master's +sdown; then the client goes away.
    let sdown = format!("master session {}", old.replace(':', " "));
    let mut seen = Vec::new();
    loop {
        let event = stream.next().expect("the stream stays open");
        let data = event.json();
        assert_eq!(data["event"], event.event.as_str());
        assert_eq!(event.id, data["id"].as_u64());
        let done = event.event == "+sdown" && data["payload"] == sdown.as_str();
        seen.push(event);
        if done {
            break;
        }
    }
    drop(stream);
    let polled = poll.join().expect("long poll").json();
    let events = polled["events"].as_array().expect("events");
    assert!(
        !events.is_empty() && events.iter().all(|e| e["id"].as_u64() > Some(after)),
        "{polled}"
    );

    // After: every node names one of the replicas as the master.
    let new = wait_until("a new master on node 0", LONG, || {
        let body = get(&https[0], "/v1/masters/session").json();
        let addr = body["address"].as_str().unwrap_or_default().to_owned();
        (addr != old).then_some(addr)
    });
    assert!(replicas.contains(&new), "{new} is not one of {replicas:?}");
    for http in &https {
        wait_for("the new master everywhere", LONG, || role(http, "is-master", &new) == 200);
        assert_eq!(role(http, "is-master", &old), 503);
    }
    let other = replicas.iter().find(|r| **r != new).expect("a second replica");
    wait_for("the other replica follows the new master", LONG, || {
        https.iter().all(|http| role(http, "is-replica", other) == 200)
    });

    // Reconnecting with Last-Event-ID resumes exactly where the stream stopped.
    let last = seen.last().and_then(|e| e.id).expect("an id");
    let mut stream = SseStream::open(&https[0], "/v1/events", Some(last)).expect("event stream");
    loop {
        let event = stream.next().expect("the resumed stream");
        let switched = event.event == "+switch-master";
        seen.push(event);
        if switched {
            break;
        }
    }
    let ids: Vec<u64> = seen.iter().filter_map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "a gap or a repeat in {ids:?}");
    assert!(seen.iter().all(|e| e.event != "gap"));

    // The leader's feed has the whole sequence, in order; its history has the timeline.
    let leader = wait_until("the leader's history", LONG, || {
        https.iter().find(|http| {
            let body = get(http, "/v1/history?master=session").json();
            body["failovers"][0]["role"] == "leader"
                && body["failovers"][0]["outcome"] == "succeeded"
        })
    });
    let feed = get(leader, "/v1/events?after=0").json();
    let names: Vec<&str> = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    let mut position = 0;
    for step in [
        "+sdown",
        "+odown",
        "+try-failover",
        "+elected-leader",
        "+selected-slave",
        "+promoted-slave",
        "+failover-end",
        "+switch-master",
    ] {
        let found = names[position..].iter().position(|n| *n == step);
        position += found.unwrap_or_else(|| panic!("{step} missing or out of order in {names:?}"));
    }
    let history = get(leader, "/v1/history?master=session").json();
    let record = &history["failovers"][0];
    assert_eq!(record["old_master"], old.as_str());
    assert_eq!(record["new_master"], new.as_str());
    let steps: Vec<&str> = record["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(steps.first(), Some(&"detected"), "{steps:?}");
    for step in ["odown", "started", "elected", "promoted", "replica_reconfigured", "done"] {
        assert!(steps.contains(&step), "{step} missing from {steps:?}");
    }
    assert!(record["duration_ms"].is_u64());
    for http in https.iter().filter(|h| *h != leader) {
        let body = get(http, "/v1/history?master=session").json();
        assert_eq!(body["failovers"][0]["role"], "observer", "{body}");
        assert_eq!(body["failovers"][0]["new_master"], new.as_str());
    }

    // Webhooks: signed, correct, only the selected events, and the refused one retried.
    let switch_payload = format!("session {} {}", old.replace(':', " "), new.replace(':', " "));
    let received = wait_until("+switch-master from every node", LONG, || {
        let received = receiver.received();
        let from: BTreeSet<String> = received
            .iter()
            .map(Received::json)
            .filter(|b| b["event"] == "+switch-master")
            .filter_map(|b| b["node_id"].as_str().map(str::to_owned))
            .collect();
        (from.len() == 3).then_some(received)
    });
    for hook in &received {
        let body = hook.json();
        let event = hook.header("x-picket-event").expect("event header");
        assert_eq!(body["event"], event);
        assert!(
            ["+switch-master", "+odown", "+tilt"].contains(&event)
                || event.starts_with("-failover-abort-"),
            "{event} was not selected"
        );
        assert_eq!(hook.header("content-type"), Some("application/json"));
        let timestamp = hook.header("x-picket-timestamp").expect("timestamp");
        let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(&hook.body);
        let expected = format!("sha256={}", hex(&mac.finalize().into_bytes()));
        assert_eq!(hook.header("x-picket-signature"), Some(expected.as_str()));
        assert_eq!(body["node_id"].as_str().map(str::len), Some(40));
        assert_eq!(body["master"], "session");
        if event == "+switch-master" {
            assert_eq!(body["payload"], switch_payload.as_str());
            assert_eq!(
                (body["old"].as_str(), body["new"].as_str()),
                (Some(old.as_str()), Some(new.as_str()))
            );
        }
    }
    let refused = received.first().expect("a first delivery");
    assert_eq!(refused.status, 500);
    let delivery = refused.header("x-picket-delivery").expect("delivery id");
    let retried = received
        .iter()
        .skip(1)
        .any(|r| r.header("x-picket-delivery") == Some(delivery) && r.status == 200);
    assert!(retried, "delivery {delivery} was not retried after its 500");

    // Scripts: Sentinel's arguments, each a separate argv entry (no shell).
    let (old_ip, old_port) = old.split_once(':').expect("host:port");
    let (new_ip, new_port) = new.split_once(':').expect("host:port");
    let reconf = |role: &str| {
        format!("[session][{role}][start][{old_ip}][{old_port}][{new_ip}][{new_port}]")
    };
    wait_for("the client-reconfig script on every node", LONG, || lines(&reconfig_log).len() >= 3);
    let mut got = lines(&reconfig_log);
    got.sort();
    assert_eq!(got, vec![reconf("leader"), reconf("observer"), reconf("observer")]);
    let switch_line = format!("[+switch-master][{switch_payload}]");
    wait_for("the notification script for +switch-master on every node", LONG, || {
        lines(&notify_log).iter().filter(|l| **l == switch_line).count() == 3
    });
    let notified = lines(&notify_log);
    assert!(notified.contains(&format!("[+sdown][{sdown}]")), "{notified:?}");
    assert!(
        notified.iter().all(|l| !l.starts_with("[+slave]")),
        "notice-level events run no script"
    );

    // Metrics on every node; the leader's include its failover's duration. The config epoch is
    // the winning election's, usually 1, more after a split vote.
    let epoch = get(leader, "/v1/masters/session").json()["config_epoch"].as_u64().expect("epoch");
    assert!(epoch >= 1);
    for http in &https {
        let text = get(http, "/metrics").text();
        for expected in [
            "picket_master_switches_total{master=\"session\"} 1".to_owned(),
            format!("picket_master_info{{master=\"session\",address=\"{new}\"}} 1"),
            format!("picket_master_config_epoch{{master=\"session\"}} {epoch}"),
            "picket_master_peers_agreeing{master=\"session\"} 2".to_owned(),
        ] {
            wait_for(&expected, LONG, || get(http, "/metrics").text().contains(&expected));
        }
        if http == leader {
            assert!(text.contains("picket_failover_duration_seconds_count{master=\"session\"} 1"));
        }
        check_metrics(&text);
    }
    let value: Value = get(leader, "/v1/masters/session").json();
    assert_eq!(value["peers_agreeing"], 2);
}
