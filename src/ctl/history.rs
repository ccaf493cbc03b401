//! `picket ctl history [NAME]`: recent failovers as timelines, from `GET /v1/history`.

use std::fmt::Write as _;

use serde_json::Value;

use super::localtime::Zone;
use super::text::{Cell, Colour, Style, items, millis, s, table};

/// Every failover in the answer, most recent first as the node lists them.
pub(super) fn render(body: &Value, zone: &Zone, style: Style) -> String {
    let failovers = items(&body["failovers"]);
    if failovers.is_empty() {
        return "no failovers recorded by this node since it started\n".to_owned();
    }
    let mut out = String::new();
    for (i, f) in failovers.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        failover(&mut out, f, zone, style);
    }
    out
}

fn failover(out: &mut String, f: &Value, zone: &Zone, style: Style) {
    let outcome = s(&f["outcome"]);
    let colour = match outcome {
        "succeeded" => Colour::Green,
        "aborted" => Colour::Red,
        _ => Colour::Yellow,
    };
    let mut outcome = outcome.replace('_', " ");
    if let Some(reason) = f["reason"].as_str() {
        let _ = write!(outcome, " ({})", reason.replace('_', " "));
    }
    let epoch = f["epoch"].as_u64().map(|e| format!("  epoch {e}")).unwrap_or_default();
    let took = f["duration_ms"].as_u64().map(|ms| format!("  took {}", millis(ms)));
    let _ = writeln!(
        out,
        "{}  {}  as {}{epoch}  {}{}",
        style.paint(s(&f["master"]), Some(Colour::Bold)),
        f["started_unix_ms"].as_u64().map(|ms| zone.datetime(ms)).unwrap_or_default(),
        s(&f["role"]),
        style.paint(&outcome, Some(colour)),
        took.unwrap_or_default(),
    );
    let _ = writeln!(
        out,
        "  old master {} -> promoted {}",
        f["old_master"].as_str().unwrap_or("?"),
        f["new_master"].as_str().unwrap_or("-"),
    );
    if let Some(lost) = f["bytes_possibly_lost"].as_u64() {
        let _ = writeln!(out, "  bytes possibly lost: {lost}");
    }
    let mut rows = vec![["AT", "+PHASE", "STEP", "EVENT", "INSTANCE"].map(Cell::plain).into()];
    for step in items(&f["timeline"]) {
        rows.push(vec![
            Cell::plain(format!("+{}", millis(step["since_start_ms"].as_u64().unwrap_or(0)))),
            Cell::plain(millis(step["since_previous_ms"].as_u64().unwrap_or(0))),
            Cell::plain(s(&step["step"])),
            Cell::plain(s(&step["event"])),
            Cell::plain(step["instance"].as_str().unwrap_or("")),
        ]);
    }
    table(out, style, "  ", &rows);
}
