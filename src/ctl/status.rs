//! `picket ctl status`: one table per master, from `GET /v1/masters` as the node answered it.

use std::fmt::Write as _;

use serde_json::Value;

use super::text::{Cell, Colour, Style, items, millis, n, s, short_id, table};

/// The whole status screen.
pub(super) fn render(body: &Value, style: Style) -> String {
    let mut out = String::new();
    let node = &body["node"];
    let tilt =
        if node["tilt"] == true { style.paint("  TILT", Some(Colour::Red)) } else { "".into() };
    let _ = writeln!(
        out,
        "node {} ({})  epoch {}  voters {}, majority {}, fresh peers {}{tilt}",
        s(&node["address"]),
        short_id(&node["id"]),
        n(&node["current_epoch"]),
        n(&node["voters"]),
        n(&node["majority"]),
        n(&node["fresh_peers"]),
    );
    for master in items(&body["masters"]) {
        out.push('\n');
        render_master(&mut out, master, style);
    }
    if items(&body["masters"]).is_empty() {
        out.push_str("\nno masters are monitored\n");
    }
    out
}

/// The master's state as `status` shows it: `ok`, `sdown`, `odown`, `failing over`, `paused`.
pub(super) fn state(master: &Value) -> (&'static str, Option<Colour>) {
    if !master["failover"].is_null() {
        ("failing over", Some(Colour::Red))
    } else if master["maintenance"]["paused"] == true {
        ("paused", Some(Colour::Yellow))
    } else {
        match s(&master["health"]) {
            "ok" => ("ok", Some(Colour::Green)),
            "sdown" => ("sdown", Some(Colour::Yellow)),
            "odown" => ("odown", Some(Colour::Red)),
            _ => ("unknown", Some(Colour::Yellow)),
        }
    }
}

fn render_master(out: &mut String, m: &Value, style: Style) {
    let (state, colour) = state(m);
    let _ = writeln!(
        out,
        "{}  master {}  config epoch {}  {}  quorum {}{}",
        style.paint(s(&m["name"]), Some(Colour::Bold)),
        s(&m["address"]),
        n(&m["config_epoch"]),
        style.paint(state, colour),
        n(&m["quorum"]),
        mixed_voters(m),
    );
    if let Some(line) = failover_line(&m["failover"]) {
        let _ = writeln!(out, "  {}", style.paint(&line, Some(Colour::Red)));
    }
    let mut rows = vec![
        ["ADDRESS", "ROLE", "LINK", "LAG", "LAG(S)", "PRIORITY", "PROMOTABLE"]
            .map(Cell::plain)
            .into(),
    ];
    rows.push(instance_row(&m["master"], "master"));
    rows.extend(items(&m["replicas"]).iter().map(|r| instance_row(r, "replica")));
    table(out, style, "  ", &rows);
    let mut nodes = vec![["NODE", "KIND", "ID", "VIEW"].map(Cell::plain).into()];
    let me = ["(this node)", "picket", "", "answering"];
    nodes.push(me.map(Cell::plain).into());
    nodes.extend(items(&m["peers"]).iter().map(peer_row));
    nodes.extend(items(&m["sentinels"]).iter().map(sentinel_row));
    table(out, style, "  ", &nodes);
}

/// For a master with listed redis-sentinel voters (`sentinel_peers`), its voters of each kind
/// and the votes a leader needs over all of them (the node's line counts Pickets only); nothing
/// otherwise.
fn mixed_voters(m: &Value) -> String {
    let sentinels = items(&m["sentinels"]).len();
    if sentinels == 0 {
        return String::new();
    }
    let pickets = 1 + items(&m["peers"]).len();
    let plural =
        |count: usize, kind: &str| format!("{count} {kind}{}", if count == 1 { "" } else { "s" });
    format!(
        "  voters {} ({}, {}), votes needed {}",
        pickets + sentinels,
        plural(pickets, "picket"),
        plural(sentinels, "sentinel"),
        n(&m["authorisation"]["votes_needed"]),
    )
}

/// The failover in progress, in one line.
fn failover_line(f: &Value) -> Option<String> {
    if f.is_null() {
        return None;
    }
    let leader = match s(&f["leader"]) {
        "self" => "this node".to_owned(),
        id => format!("node {}", id.chars().take(8).collect::<String>()),
    };
    let mut line = format!("failover in progress: epoch {}, led by {leader}", n(&f["epoch"]));
    if let Some(state) = f["state"].as_str() {
        let _ = write!(line, ", state {state}");
    }
    if let Some(ms) = f["started_ms_ago"].as_u64() {
        let _ = write!(line, ", started {} ago", millis(ms));
    }
    if let Some(promoted) = f["promoted"].as_str() {
        let _ = write!(line, ", promoting {promoted}");
    }
    Some(line)
}

fn instance_row(i: &Value, kind: &str) -> Vec<Cell> {
    let role = match i["role"].as_str() {
        Some("slave") => "replica",
        Some(role) => role,
        None => "?",
    };
    let role = if role == kind { role.to_owned() } else { format!("{role} (listed as {kind})") };
    let link = match (s(&i["status"]), s(&i["link"])) {
        ("sdown", _) => Cell::coloured("sdown", Some(Colour::Red)),
        (_, "up") => Cell::coloured("up", Some(Colour::Green)),
        (_, link) => Cell::coloured(link, Some(Colour::Red)),
    };
    let promotable = match (kind, i["ineligible"].as_str()) {
        ("master", _) => Cell::plain("-"),
        (_, None) => Cell::coloured("yes", Some(Colour::Green)),
        (_, Some(reason)) => {
            Cell::coloured(format!("no: {}", reason.replace('_', " ")), Some(Colour::Yellow))
        }
    };
    let lag = i["lag_bytes"].as_u64().map_or_else(|| "-".to_owned(), |b| format!("{b}B"));
    vec![
        Cell::plain(s(&i["address"])),
        Cell::plain(role),
        link,
        Cell::plain(lag),
        Cell::plain(n(&i["lag_seconds"])),
        Cell::plain(if kind == "master" { "-".to_owned() } else { n(&i["priority"]) }),
        promotable,
    ]
}

fn peer_row(p: &Value) -> Vec<Cell> {
    let report = &p["report"];
    let (mut view, colour) = if p["fresh"] != true {
        let heard = p["last_heard_ms_ago"].as_u64().map_or_else(
            || "never heard".to_owned(),
            |ms| format!("last heard {} ago", millis(ms)),
        );
        (format!("stale ({heard})"), Colour::Red)
    } else if p["agrees"] == true {
        ("agrees".to_owned(), Colour::Green)
    } else if report.is_null() {
        ("no report".to_owned(), Colour::Yellow)
    } else {
        let seen = format!("{} at config epoch {}", s(&report["addr"]), n(&report["config_epoch"]));
        (format!("disagrees: {seen}"), Colour::Yellow)
    };
    if p["fresh"] == true && report["sdown"] == true {
        view.push_str(", sees the master down");
    }
    vec![
        Cell::plain(p["address"].as_str().unwrap_or("?")),
        Cell::plain("picket"),
        Cell::plain(short_id(&p["node_id"])),
        Cell::coloured(view, Some(colour)),
    ]
}

/// A listed redis-sentinel voter (`sentinel_peers`): whether it is heard, whether it sees the
/// master down, its last vote.
fn sentinel_row(v: &Value) -> Vec<Cell> {
    let (mut view, colour) = if v["fresh"] == true {
        ("heard".to_owned(), Colour::Green)
    } else {
        let heard = v["last_heard_ms_ago"].as_u64().map_or_else(
            || "never heard".to_owned(),
            |ms| format!("last heard {} ago", millis(ms)),
        );
        (format!("stale ({heard})"), Colour::Red)
    };
    if v["master_down"] == true {
        view.push_str(", sees the master down");
    }
    if !v["voted_for"].is_null() {
        let _ = write!(
            view,
            ", voted for {} in epoch {}",
            short_id(&v["voted_for"]),
            n(&v["voted_epoch"])
        );
    }
    vec![
        Cell::plain(s(&v["address"])),
        Cell::plain("sentinel"),
        Cell::plain(short_id(&v["run_id"])),
        Cell::coloured(view, Some(colour)),
    ]
}
