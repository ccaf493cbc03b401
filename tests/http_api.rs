//! The HTTP API of one picket supervising real `redis-server` processes: discovery JSON, role
//! checks, the long poll, `/metrics` (checked by promtool), tokens, bad input, and a manual
//! failover requested over HTTP.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

mod support;

use std::time::Duration;

use serde_json::Value;
use support::http::{check_metrics, get, get_with, post, promtool, request};
use support::{ClusterOptions, Group, Picket, config_text, node_specs, wait_for, wait_until};

const LONG: Duration = Duration::from_secs(60);
const ADMIN: &str = "admin-token-for-tests";
const READ: &str = "read-token-for-tests";

/// One picket (a single voter, quorum 1) with `http_section` as its `[http]` table.
fn lone_picket(group: &Group, http_section: &str) -> Picket {
    let specs = node_specs(1);
    let options = ClusterOptions {
        quorum: 1,
        node_extra: format!("\n[http]\n{http_section}\n"),
        ..ClusterOptions::default()
    };
    let picket = Picket::start(specs[0].clone(), |state| {
        config_text(&specs[0], &specs, &[group], state, &options)
    });
    let addr = picket.spec.http_addr();
    wait_for("the HTTP port", LONG, || request(&addr, "GET", "/healthz", &[], b"").is_ok());
    picket
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn discovery_role_checks_long_poll_and_metrics() {
    let mut group = Group::start("session", 1, None);
    let picket = lone_picket(&group, "");
    let http = picket.spec.http_addr();
    let (master, replica) = (group.master.addr(), group.replicas[0].addr());

    wait_for("readyz", LONG, || get(&http, "/readyz").status == 200);
    assert_eq!(get(&http, "/healthz").json()["status"], "ok");
    let session = wait_until("the replica, healthy", LONG, || {
        let body = get(&http, "/v1/masters/session").json();
        (body["replicas"][0]["healthy"] == true).then_some(body)
    });
    assert_eq!(session["name"], "session");
    assert_eq!(session["address"], master.as_str());
    assert_eq!(session["status"], "ok");
    assert_eq!(session["config_epoch"], 0);
    assert_eq!(session["settings"]["down_after_refused_ms"], 300, "the crash rule's default");
    assert_eq!(session["master"]["role"], "master");
    assert_eq!(session["master"]["link"], "up");
    let r = &session["replicas"][0];
    assert_eq!(r["address"], replica.as_str());
    assert_eq!(r["role"], "slave");
    assert_eq!(r["link"], "up");
    assert_eq!(r["replication"]["master"], master.as_str());
    assert_eq!(r["replication"]["link"], "up");
    assert!(r["offset"].is_u64() && r["lag_bytes"].is_u64(), "{r}");
    assert_eq!(session["replicas_healthy"], 1);
    assert_eq!(r["ineligible"], Value::Null, "{r}");
    assert_eq!(session["master"]["ineligible"], "current_master");
    // A lone node with quorum 1: the engine authorises a failover (CKQUORUM's OK).
    let authorisation = &session["authorisation"];
    assert_eq!(authorisation["usable_voters"], 1, "{authorisation}");
    assert_eq!(authorisation["votes_needed"], 1, "{authorisation}");
    assert_eq!(authorisation["blocked"], Value::Null, "{authorisation}");

    let all = get(&http, "/v1/masters").json();
    assert_eq!(all["masters"].as_array().map(Vec::len), Some(1));
    assert_eq!(all["node"]["voters"], 1);
    assert_eq!(all["node"]["id"].as_str().map(str::len), Some(40));

    let unknown = get(&http, "/v1/masters/nope");
    assert_eq!((unknown.status, unknown.error_code().as_str()), (404, "no_such_master"));

    // Role checks, as a load balancer or a probe would use them.
    let check =
        |role: &str, addr: &str| get(&http, &format!("/v1/masters/session/{role}?addr={addr}"));
    assert_eq!(check("is-master", &master).status, 200);
    assert_eq!(check("is-master", &replica).status, 503);
    assert_eq!(check("is-replica", &replica).status, 200);
    let not_replica = check("is-replica", &master);
    assert_eq!(not_replica.status, 503);
    assert_eq!(not_replica.json()["reason"], "not_a_known_replica");
    assert_eq!(check("is-master", "no-port").error_code(), "bad_address");
    assert_eq!(get(&http, "/v1/masters/session/is-master").status, 400);
    assert_eq!(get(&http, &format!("/v1/masters/nope/is-master?addr={master}")).status, 404);

    // The long poll: everything so far, then a wait that the next event ends.
    let first = get(&http, "/v1/events?after=0").json();
    assert_eq!(first["events"][0]["event"], "+monitor");
    assert_eq!(first["events"][0]["id"], 1);
    assert_eq!(first["gap"], false);
    let last = first["last_id"].as_u64().expect("last_id");
    let poll = {
        let http = http.clone();
        std::thread::spawn(move || get(&http, &format!("/v1/events?after={last}&wait=60s")))
    };
    // Let the poll start waiting (were it late, the event would be in its backlog anyway).
    std::thread::sleep(Duration::from_millis(300));
    group.replicas[0].kill();
    let polled = poll.join().expect("poll thread").json();
    let events = polled["events"].as_array().expect("events");
    assert!(!events.is_empty(), "{polled}");
    assert!(events.iter().all(|e| e["id"].as_u64() > Some(last)), "{polled}");
    wait_for("+sdown of the replica in the feed", LONG, || {
        let body = get(&http, &format!("/v1/events?after={last}")).json();
        body["events"].as_array().is_some_and(|es| {
            es.iter().any(|e| e["event"] == "+sdown" && e["subject"]["addr"] == replica.as_str())
        })
    });
    wait_for("the replica no longer healthy", LONG, || check("is-replica", &replica).status == 503);
    // The reason is the engine's own rule, typed: the replica is subjectively down.
    wait_for("is-replica gives the engine's reason", LONG, || {
        check("is-replica", &replica).json()["reason"] == "sdown"
    });

    // Metrics: redis_exporter's names for existing dashboards, Picket's own, and valid text.
    // The view behind /metrics is published after the event that the feed already showed.
    let ok_slaves = format!(
        "redis_sentinel_master_ok_slaves{{master_name=\"session\",master_address=\"{master}\"}} 0"
    );
    wait_for("metrics count the replica as down", LONG, || {
        get(&http, "/metrics").text().contains(&ok_slaves)
    });
    let text = get(&http, "/metrics").text();
    for expected in [
        format!(
            "redis_sentinel_master_status{{master_name=\"session\",\
             master_address=\"{master}\",master_status=\"ok\"}} 1"
        ),
        "redis_sentinel_masters 1".to_owned(),
        format!(
            "redis_sentinel_master_slaves{{master_name=\"session\",master_address=\"{master}\"}} 1"
        ),
        ok_slaves.clone(),
        format!("picket_master_info{{master=\"session\",address=\"{master}\"}} 1"),
        "picket_master_status{master=\"session\",status=\"ok\"} 1".to_owned(),
        "picket_master_replicas_healthy{master=\"session\"} 0".to_owned(),
        "picket_events_total{event=\"+monitor\"} 1".to_owned(),
        "# TYPE picket_http_requests_total counter".to_owned(),
        "picket_instance_ping_rtt_seconds{master=\"session\"".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing {expected}:\n{text}");
    }
    check_metrics(&text);
    let openmetrics = get_with(&http, "/metrics", &[("Accept", "application/openmetrics-text")]);
    assert!(
        openmetrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text"))
    );
    assert!(openmetrics.text().ends_with("# EOF\n"));

    // Without an admin token, the admin routes are off.
    let refused = post(&http, "/v1/masters/session/failover", &[], b"");
    assert_eq!((refused.status, refused.error_code().as_str()), (403, "admin_disabled"));

    // Unknown routes and methods get JSON errors.
    let missing = get(&http, "/v2/nothing");
    assert_eq!((missing.status, missing.error_code().as_str()), (404, "not_found"));
    let wrong_method = request(&http, "DELETE", "/v1/masters", &[], b"").unwrap();
    assert_eq!(
        (wrong_method.status, wrong_method.error_code().as_str()),
        (405, "method_not_allowed")
    );
}

#[test]
fn tokens_bad_input_and_a_manual_failover() {
    let group = Group::start("cache", 1, None);
    let picket =
        lone_picket(&group, &format!("admin_token = \"{ADMIN}\"\nread_token = \"{READ}\""));
    let http = picket.spec.http_addr();
    let (admin, read) = (bearer(ADMIN), bearer(READ));
    let with = |token: &str| vec![("Authorization", token.to_owned())];
    let get_as = |path: &str, token: &str| {
        let headers = with(token);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        get_with(&http, path, &headers)
    };

    // Reads need the read token (or the admin token); probes and metrics stay open.
    let anonymous = get(&http, "/v1/masters");
    assert_eq!((anonymous.status, anonymous.error_code().as_str()), (401, "unauthorized"));
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    assert_eq!(get_as("/v1/masters", "Bearer wrong").status, 401);
    assert_eq!(get_as("/v1/masters", "Basic Zm9vOmJhcg==").status, 401);
    assert_eq!(get_as("/v1/masters", &read).status, 200);
    assert_eq!(get_as("/v1/masters", &admin).status, 200);
    assert_eq!(get_as("/v1/masters", &format!("bearer {READ}")).status, 200);
    assert_eq!(get(&http, "/v1/events?after=0").status, 401);
    assert_eq!(get(&http, "/v1/history").status, 401);
    assert_eq!(get(&http, "/healthz").status, 200);
    assert_eq!(get(&http, "/metrics").status, 200);

    // Bad input: clean JSON 4xx answers.
    assert_eq!(get_as("/v1/events?after=abc", &read).error_code(), "bad_query");
    let bad_id = get_with(
        &http,
        "/v1/events",
        &[("Authorization", read.as_str()), ("Last-Event-ID", "not-a-number")],
    );
    assert_eq!((bad_id.status, bad_id.error_code().as_str()), (400, "bad_last_event_id"));
    assert_eq!(get_as("/v1/events?after=0&wait=forever", &read).error_code(), "bad_wait");
    assert_eq!(get_as("/v1/history?master=nope", &read).status, 404);

    let failover = "/v1/masters/cache/failover";
    let post_as = |path: &str, token: &str, body: &[u8]| {
        let headers = [("Authorization", token), ("Content-Type", "application/json")];
        post(&http, path, &headers, body)
    };
    assert_eq!(post(&http, failover, &[], b"").status, 401);
    assert_eq!(post_as(failover, &read, b"").status, 401, "the read token is not an admin token");
    assert_eq!(post_as(failover, "Bearer wrong", b"").status, 401);
    let bad_json = post_as(failover, &admin, b"{\"reason\": ");
    assert_eq!((bad_json.status, bad_json.error_code().as_str()), (400, "bad_json"));
    assert_eq!(post_as(failover, &admin, b"{\"nope\": 1}").error_code(), "bad_json");
    assert_eq!(post_as(failover, &admin, b"[1, 2]").status, 400);
    let huge = vec![b' '; 64 * 1024];
    let too_big = post_as(failover, &admin, &huge);
    assert_eq!((too_big.status, too_big.error_code().as_str()), (413, "body_too_large"));
    let declared = post(
        &http,
        failover,
        &[("Authorization", admin.as_str()), ("Content-Length", "1000000000")],
        b"",
    );
    assert_eq!((declared.status, declared.error_code().as_str()), (413, "body_too_large"));
    let unknown = post_as("/v1/masters/nope/failover", &admin, b"");
    assert_eq!((unknown.status, unknown.error_code().as_str()), (404, "no_such_master"));
    assert_eq!(request(&http, "GET", failover, &[], b"").unwrap().status, 405);

    // Reset, then a manual failover through HTTP: the replica becomes the master.
    wait_for("readyz", LONG, || get(&http, "/readyz").status == 200);
    let reset = post_as("/v1/masters/cache/reset", &admin, b"");
    assert_eq!((reset.status, reset.json()["reset"].as_u64()), (200, Some(1)), "{}", reset.text());
    let replica = group.replicas[0].addr();
    wait_for("the replica, healthy", LONG, || {
        get_as(&format!("/v1/masters/cache/is-replica?addr={replica}"), &read).status == 200
    });
    let started = post_as(failover, &admin, b"{\"reason\": \"maintenance\"}");
    assert_eq!(started.status, 202, "{}", started.text());
    assert_eq!(started.json()["failover"], "started");
    wait_for("the replica promoted", LONG, || {
        get_as(&format!("/v1/masters/cache/is-master?addr={replica}"), &read).status == 200
    });
    let history = wait_until("the failover in the history", LONG, || {
        let body = get_as("/v1/history?master=cache", &read).json();
        (body["failovers"][0]["outcome"] == "succeeded").then_some(body)
    });
    let failover_record = &history["failovers"][0];
    assert_eq!(failover_record["role"], "leader");
    assert_eq!(failover_record["new_master"], replica.as_str());
    assert_eq!(failover_record["epoch"], 1);
    let steps: Vec<&str> = failover_record["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    for step in ["started", "elected", "promoted", "done"] {
        assert!(steps.contains(&step), "{step} missing from {steps:?}");
    }
    let text = get(&http, "/metrics").text();
    for expected in [
        "picket_failovers_started_total{master=\"cache\"} 1",
        "picket_failovers_succeeded_total{master=\"cache\"} 1",
        "picket_master_switches_total{master=\"cache\"} 1",
        "picket_failover_duration_seconds_count{master=\"cache\"} 1",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
    check_metrics(&text);
    let body: Value = get_as("/v1/masters/cache", &read).json();
    assert_eq!(body["address"], replica.as_str());
    assert_eq!(body["config_epoch"], 1);
}

#[test]
fn promtool_accepts_the_example_alert_rules_and_their_unit_tests() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/config/alerts.yml");
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/config/alerts.test.yml");
    for args in [["check", "rules", rules], ["test", "rules", tests]] {
        match promtool(&args, None) {
            Some(Ok(())) => {}
            Some(Err(output)) => panic!("promtool {}:\n{output}", args.join(" ")),
            None => {
                eprintln!(
                    "SKIPPED: promtool is not installed (apt-get install prometheus): \
                     `promtool {}` not run",
                    args.join(" ")
                );
                return;
            }
        }
    }
}
