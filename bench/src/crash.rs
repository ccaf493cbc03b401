//! Crash detection: SIGKILL of the master until a client's `SET` succeeds on its replacement,
//! with `down-after-milliseconds` 1000 and 5000. A killed Redis refuses connections at once:
//! Sentinel still waits out `down-after`, Picket's crash rule (`down_after_refused_ms`, default
//! 300 ms) does not. Each trial is the failover suite's (fresh servers and supervisors, times
//! from the signal, polled every 5 ms); only the clock (c) is reported.

use std::collections::BTreeMap;

use serde_json::json;

use crate::Plan;
use crate::failover::{Fault, single_master_trial};
use crate::report::{Better, Row, Section};
use crate::topology::Kind;

/// The `down-after-milliseconds` values compared.
const DOWN_AFTERS_MS: [u64; 2] = [1000, 5000];

/// The suite: `plan.trials` trials for each `down-after` and kind, alternating.
pub fn run(plan: &Plan) -> Section {
    let mut section = Section::default();
    let mut raw = Vec::new();
    let mut samples: BTreeMap<(u64, Kind), Vec<f64>> = BTreeMap::new();
    for trial in 0..plan.trials {
        for down_after_ms in DOWN_AFTERS_MS {
            for kind in Kind::order(trial) {
                let label = format!(
                    "trial {}/{} down-after {down_after_ms} {kind}",
                    trial + 1,
                    plan.trials
                );
                match single_master_trial(kind, Fault::Kill, down_after_ms, plan, |_| Ok(())) {
                    Ok(t) => {
                        eprintln!("crash {label}: SET ok {:.0} ms", t.writable_ms);
                        samples.entry((down_after_ms, kind)).or_default().push(t.writable_ms);
                        raw.push(json!({"trial": trial, "down_after_ms": down_after_ms, "kind": kind, "timings": t}));
                    }
                    Err(e) => {
                        let message = format!("crash {label}: {e:#}");
                        eprintln!("{message}");
                        raw.push(json!({"trial": trial, "down_after_ms": down_after_ms, "kind": kind, "error": format!("{e:#}")}));
                        section.errors.push(message);
                    }
                }
            }
        }
    }
    let get =
        |down_after_ms, kind| samples.get(&(down_after_ms, kind)).cloned().unwrap_or_default();
    for down_after_ms in DOWN_AFTERS_MS {
        section.rows.push(Row::both(
            format!("crash SIGKILL, down-after {down_after_ms}: SET ok on new master"),
            "ms",
            Better::Lower,
            get(down_after_ms, Kind::Sentinel),
            get(down_after_ms, Kind::Picket),
        ));
    }
    section.notes.push(
        "crash: the failover suite's SIGKILL trial with down-after 1000 and 5000 ms; Picket with \
         its default down_after_refused_ms = 300"
            .to_owned(),
    );
    section.raw = json!({"trials": raw});
    section
}
