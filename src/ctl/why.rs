//! `picket ctl why NAME`: what stands between the master and a failover, in words.
//!
//! Every reason is one the engine computed and the node's view carries (the authorisation, each
//! replica's eligibility, TILT, pause, the failover in progress, each peer's freshness): this
//! module only puts them into sentences, so it can never disagree with what the node will do.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::status::state;
use super::text::{Colour, Style, items, millis, n, s, short_id};

/// The answer, also printed as JSON with `--json`.
#[derive(Serialize)]
pub(super) struct Why {
    master: String,
    address: String,
    /// `ok`, `sdown`, `odown`, `failing over` or `paused`.
    state: &'static str,
    /// Whether anything below would stop a failover now.
    blocked: bool,
    /// What stops a failover now (empty if nothing does).
    blockers: Vec<Reason>,
    /// Voters this node has not heard from recently: they cannot vote.
    stale_voters: Vec<Reason>,
    /// Each replica and whether it could be promoted.
    replicas: Vec<Reason>,
}

/// One reason: a stable code (the API's) and its sentence.
#[derive(Serialize)]
struct Reason {
    code: String,
    /// The instance or node concerned.
    subject: Option<String>,
    text: String,
}

impl Reason {
    fn new(code: &str, subject: Option<&str>, text: String) -> Self {
        Self { code: code.to_owned(), subject: subject.map(str::to_owned), text }
    }
}

/// Builds the answer from `/v1/masters`' `node` and one of its `masters`.
pub(super) fn explain(node: &Value, m: &Value) -> Why {
    let mut blockers = Vec::new();
    if node["tilt"] == true {
        let text = "this node is in TILT mode (its clock or event loop jumped): it takes no \
                    action until TILT ends"
            .to_owned();
        blockers.push(Reason::new("tilt", None, text));
    }
    if let Some(text) = in_progress(&m["failover"]) {
        blockers.push(Reason::new("failover_in_progress", None, text));
    }
    if m["maintenance"]["paused"] == true {
        let text = "automatic failovers of this master are paused (maintenance)".to_owned();
        blockers.push(Reason::new("paused", None, text));
    }
    let auth = &m["authorisation"];
    if let Some(code) = auth["blocked"].as_str() {
        // The master's voters: the Picket nodes and its listed Sentinels (`sentinel_peers`).
        let sentinels = u64::try_from(items(&m["sentinels"]).len()).unwrap_or(u64::MAX);
        let voters = node["voters"].as_u64().unwrap_or(0) + sentinels;
        blockers.push(Reason::new(code, None, unauthorised(code, auth, voters)));
    }
    let replicas: Vec<Reason> = items(&m["replicas"]).iter().map(replica).collect();
    if !replicas.iter().any(|r| r.code == "promotable") {
        let text = if replicas.is_empty() {
            "the master has no known replica to promote".to_owned()
        } else {
            "no replica can be promoted (see below)".to_owned()
        };
        blockers.push(Reason::new("no_good_replica", None, text));
    }
    let stale_peers = items(&m["peers"]).iter().filter(|p| p["fresh"] != true).map(stale);
    let stale_sentinels =
        items(&m["sentinels"]).iter().filter(|v| v["fresh"] != true).map(stale_sentinel);
    let stale_voters = stale_peers.chain(stale_sentinels).collect();
    Why {
        master: s(&m["name"]).to_owned(),
        address: s(&m["address"]).to_owned(),
        state: state(m).0,
        blocked: !blockers.is_empty(),
        blockers,
        stale_voters,
        replicas,
    }
}

fn in_progress(f: &Value) -> Option<String> {
    if f.is_null() {
        return None;
    }
    let leader = match s(&f["leader"]) {
        "self" => "this node".to_owned(),
        _ => format!("node {}", short_id(&f["leader"])),
    };
    let since = f["started_ms_ago"].as_u64().map(|ms| format!(", started {} ago", millis(ms)));
    Some(format!(
        "a failover is already in progress (epoch {}, led by {leader}{})",
        n(&f["epoch"]),
        since.unwrap_or_default()
    ))
}

/// The engine's `authorisation.blocked`, in words.
fn unauthorised(code: &str, auth: &Value, voters: u64) -> String {
    let usable = n(&auth["usable_voters"]);
    match code {
        "awaiting_vote_floor" => "this node lost its state and has not yet learned the epoch it \
                                  last voted in (its vote floor): it cannot vote until it has"
            .to_owned(),
        "no_quorum" => format!(
            "only {usable} of {voters} voters are reachable, fewer than the quorum of {}: they \
             cannot agree that the master is down",
            n(&auth["quorum"])
        ),
        "no_majority" => format!(
            "a leader needs {} votes but only {usable} of {voters} voters are reachable",
            n(&auth["votes_needed"])
        ),
        other => format!("the engine does not authorise a failover ({other})"),
    }
}

fn stale(p: &Value) -> Reason {
    let address = p["address"].as_str().unwrap_or("?");
    let heard = p["last_heard_ms_ago"].as_u64().map_or_else(
        || "never heard from".to_owned(),
        |ms| format!("last heard {} ago", millis(ms)),
    );
    let text = format!("voter {address} (node {}) is stale: {heard}", short_id(&p["node_id"]));
    Reason::new("stale_voter", Some(address), text)
}

/// A listed redis-sentinel voter not heard within an answer's validity.
fn stale_sentinel(v: &Value) -> Reason {
    let address = s(&v["address"]);
    let heard = v["last_heard_ms_ago"].as_u64().map_or_else(
        || "never heard from".to_owned(),
        |ms| format!("last heard {} ago", millis(ms)),
    );
    let text = format!("voter {address} (redis-sentinel) is stale: {heard}");
    Reason::new("stale_voter", Some(address), text)
}

/// A replica's eligibility (the engine's `ineligible` reason), in words.
fn replica(r: &Value) -> Reason {
    let address = s(&r["address"]);
    let ago = |field: &str| r[field].as_u64().map(millis);
    let Some(code) = r["ineligible"].as_str() else {
        let text = format!("replica {address} could be promoted (priority {})", n(&r["priority"]));
        return Reason::new("promotable", Some(address), text);
    };
    let why = match code {
        "priority_zero" => "its replica-priority is 0 (never promote)".to_owned(),
        "sdown" => match ago("sdown_ms") {
            Some(d) => format!("it is subjectively down, for {d}"),
            None => "it is subjectively down".to_owned(),
        },
        "link_down" => "this node's connection to it is down".to_owned(),
        "no_recent_reply" => match ago("last_ok_ping_ms_ago") {
            Some(d) => format!("no good PING reply for {d}"),
            None => "no good PING reply recently".to_owned(),
        },
        "stale_info" => match ago("info_ms_ago") {
            Some(d) => format!("no INFO from it for {d}"),
            None => "no INFO from it recently".to_owned(),
        },
        "not_a_replica" => match r["info_ms_ago"].as_u64() {
            None => "no INFO from it yet".to_owned(),
            Some(_) => "it reports role:master without the master's data".to_owned(),
        },
        "replication_link_down" => match r["replication"]["link_down_seconds"].as_u64() {
            Some(secs) => {
                format!("its replication link has been down for {secs}s: its data is too old")
            }
            None => "its replication link is down: its data is too old".to_owned(),
        },
        "too_far_behind" => format!(
            "it is {} bytes behind the master (over max_lag_on_failover_bytes)",
            n(&r["lag_bytes"])
        ),
        other => other.replace('_', " "),
    };
    Reason::new(code, Some(address), format!("replica {address} cannot be promoted: {why}"))
}

/// The answer as text.
pub(super) fn render(why: &Why, style: Style) -> String {
    let mut out = String::new();
    let verdict = if why.blocked {
        style.paint("a failover would not happen now", Some(Colour::Red))
    } else {
        style.paint("nothing blocks a failover", Some(Colour::Green))
    };
    let _ = writeln!(out, "{}: {verdict}", why.master);
    let _ = writeln!(out, "master {} is {}", why.address, why.state);
    let sections = [
        ("blocked by", &why.blockers, Colour::Red),
        ("stale voters", &why.stale_voters, Colour::Yellow),
        ("replicas", &why.replicas, Colour::Yellow),
    ];
    for (title, reasons, colour) in sections {
        if reasons.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{title}:");
        for r in reasons {
            let colour = if r.code == "promotable" { Colour::Green } else { colour };
            let _ = writeln!(out, "  - {}", style.paint(&r.text, Some(colour)));
        }
    }
    out
}

/// Checks that `m`'s fields `why` relies on are present, so that an older node's answer gives
/// an error instead of a wrong reason.
pub(super) fn supported(m: &Value) -> bool {
    m["authorisation"].is_object()
        && items(&m["replicas"]).iter().all(|r| r.get("ineligible").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_from_the_view_not_from_rules() {
        let node = serde_json::json!({ "tilt": false, "voters": 3 });
        let master = serde_json::json!({
            "name": "cache", "address": "10.0.0.1:6379", "health": "ok", "failover": null,
            "authorisation": { "usable_voters": 1, "quorum": 2, "votes_needed": 2, "blocked": "no_quorum" },
            "replicas": [
                { "address": "10.0.0.2:6379", "ineligible": "priority_zero", "priority": 0 },
                { "address": "10.0.0.3:6379", "ineligible": null, "priority": 100 }
            ],
            "peers": [
                { "address": "10.0.0.9:26379", "node_id": "abcdef0123", "fresh": false, "last_heard_ms_ago": 12_345 },
                { "address": "10.0.0.8:26379", "node_id": "0123abcdef", "fresh": true }
            ]
        });
        let text = render(&explain(&node, &master), Style { colour: false });
        assert_eq!(
            text,
            "cache: a failover would not happen now\n\
             master 10.0.0.1:6379 is ok\n\
             blocked by:\n  \
             - only 1 of 3 voters are reachable, fewer than the quorum of 2: they cannot agree that the master is down\n\
             stale voters:\n  \
             - voter 10.0.0.9:26379 (node abcdef01) is stale: last heard 12.3s ago\n\
             replicas:\n  \
             - replica 10.0.0.2:6379 cannot be promoted: its replica-priority is 0 (never promote)\n  \
             - replica 10.0.0.3:6379 could be promoted (priority 100)\n"
        );
    }

    #[test]
    fn listed_sentinels_are_voters_of_their_master() {
        let node = serde_json::json!({ "tilt": false, "voters": 1 });
        let master = serde_json::json!({
            "name": "cache", "address": "10.0.0.1:6379", "health": "sdown", "failover": null,
            "authorisation": { "usable_voters": 1, "quorum": 2, "votes_needed": 2, "blocked": "no_quorum" },
            "replicas": [{ "address": "10.0.0.3:6379", "ineligible": null, "priority": 100 }],
            "peers": [],
            "sentinels": [
                { "address": "10.0.0.21:26379", "fresh": false, "last_heard_ms_ago": 9_000 },
                { "address": "10.0.0.22:26379", "fresh": false }
            ]
        });
        let text = render(&explain(&node, &master), Style { colour: false });
        assert!(text.contains("only 1 of 3 voters are reachable"), "{text}");
        assert!(
            text.contains("voter 10.0.0.21:26379 (redis-sentinel) is stale: last heard 9.0s ago"),
            "{text}"
        );
        assert!(text.contains("voter 10.0.0.22:26379 (redis-sentinel) is stale: never heard from"));
    }
}
