//! The one table a run prints, and the files it keeps (`<out>/<stamp>.json` with every raw
//! sample, `<out>/<stamp>.txt` with the table).
//!
//! The table is the whole point of the suite, so its rendering is pure and tested exactly: given
//! these samples, this text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::stats::{Summary, ratio, summarize};

/// Which direction is good for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Times, CPU, memory, bytes: less is better.
    Lower,
    /// Throughput: more is better.
    Higher,
}

/// One metric measured on both supervisors.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// What was measured, with the conditions that matter (e.g. "100 masters").
    pub metric: String,
    /// Unit of every sample.
    pub unit: &'static str,
    /// Whether lower or higher is better.
    pub better: Better,
    /// redis-sentinel's samples; `None` where the metric does not apply to it (no HTTP API).
    /// An empty list means every attempt failed (the errors are listed under the table).
    pub sentinel: Option<Vec<f64>>,
    /// Picket's samples, likewise.
    pub picket: Option<Vec<f64>>,
}

impl Row {
    /// A row measured on both.
    pub fn both(
        metric: impl Into<String>,
        unit: &'static str,
        better: Better,
        sentinel: Vec<f64>,
        picket: Vec<f64>,
    ) -> Self {
        Self { metric: metric.into(), unit, better, sentinel: Some(sentinel), picket: Some(picket) }
    }
}

/// What one suite produced.
#[derive(Debug, Default)]
pub struct Section {
    /// Its rows of the table.
    pub rows: Vec<Row>,
    /// Its raw record, kept in the JSON file.
    pub raw: serde_json::Value,
    /// How it measured, printed under the table.
    pub notes: Vec<String>,
    /// What failed in it.
    pub errors: Vec<String>,
}

/// The machine a run measured on, for the header: numbers from a 2-core laptop and a 64-core
/// server are not comparable, and the load average says how busy it was.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs this process may use (what `nproc` prints).
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// The kernel release.
    pub kernel: String,
    /// /proc/loadavg's 1, 5 and 15 minute averages when the run started.
    pub load_start: String,
    /// The same when it ended.
    pub load_end: String,
}

impl Machine {
    /// Reads the machine's description and the current load.
    pub fn probe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
            .map_or_else(|| "unknown CPU".to_owned(), |(_, model)| model.trim().to_owned());
        Self {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            cpu,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned()),
            load_start: load_average(),
            load_end: String::new(),
        }
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Everything a run produced: written as JSON after every suite (so an interrupted run keeps
/// what it measured) and rendered as the table at the end.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The command as the user typed it.
    pub command: String,
    /// UTC start time, `YYYYMMDDTHHMMSSZ`; also the file names.
    pub started: String,
    /// UTC end time, once finished.
    pub finished: Option<String>,
    /// Versions of the two supervisors.
    pub versions: BTreeMap<&'static str, String>,
    /// The machine.
    pub machine: Machine,
    /// The table's rows, raw samples included.
    pub rows: Vec<Row>,
    /// Each suite's raw record: every trial, window and run, with its parameters.
    pub suites: BTreeMap<&'static str, serde_json::Value>,
    /// How things were measured, printed under the table.
    pub notes: Vec<String>,
    /// What failed (a trial, a run or a whole suite), printed under the table.
    pub errors: Vec<String>,
}

impl Report {
    /// The header, the table, the legend, the notes and the errors.
    pub fn render(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(out, "picket-bench, started {}", self.started);
        let _ = writeln!(out, "command: {}", self.command);
        let _ = writeln!(
            out,
            "machine: nproc {}, {}, kernel {}, load average {} at start, {} at end",
            m.nproc, m.cpu, m.kernel, m.load_start, m.load_end
        );
        let versions: Vec<String> = self.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "versions: {}", versions.join(", "));
        out.push('\n');
        out.push_str(&table(&self.rows));
        out.push_str(
            "\nS = redis-sentinel, P = Picket; n = samples per side; p90 is nearest-rank; P/S = \
             Picket's median / Sentinel's median\n(better lower: P/S < 1 means Picket is better; \
             better higher: P/S > 1 means Picket is better; n/a: does not apply; failed: every \
             attempt failed, see ERRORS)\n",
        );
        for note in &self.notes {
            out.push_str(&wrap(note, 100));
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\nERRORS ({}):", self.errors.len());
            for error in &self.errors {
                let _ = writeln!(out, "- {error}");
            }
        }
        out
    }

    /// Writes `<dir>/<started>.json` (and, once finished, `<dir>/<started>.txt`); returns the
    /// paths written.
    pub fn save(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = dir.join(format!("{}.json", self.started));
        let text = serde_json::to_string_pretty(self)?;
        fs::write(&json, text + "\n").with_context(|| format!("writing {}", json.display()))?;
        let mut written = vec![json];
        if self.finished.is_some() {
            let txt = dir.join(format!("{}.txt", self.started));
            fs::write(&txt, self.render()).with_context(|| format!("writing {}", txt.display()))?;
            written.push(txt);
        }
        Ok(written)
    }
}

/// The aligned table of `rows`.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "metric", "unit", "better", "n", "S min", "S med", "S p90", "S max", "P min", "P med",
        "P p90", "P max", "P/S",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for row in rows {
        let s = row.sentinel.as_deref().and_then(summarize);
        let p = row.picket.as_deref().and_then(summarize);
        let mut line = vec![
            row.metric.clone(),
            row.unit.to_owned(),
            match row.better {
                Better::Lower => "lower".to_owned(),
                Better::Higher => "higher".to_owned(),
            },
            format!("{}/{}", count(row.sentinel.as_deref()), count(row.picket.as_deref())),
        ];
        line.extend(side(row.sentinel.as_deref(), s.as_ref()));
        line.extend(side(row.picket.as_deref(), p.as_ref()));
        line.push(
            ratio(p.as_ref(), s.as_ref()).map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
        );
        cells.push(line);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| cells.iter().map(|line| line[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for line in &cells {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            if c > 0 {
                text.push_str("  ");
            }
            // Text columns left-aligned, numbers right-aligned.
            if c < 3 {
                let _ = write!(text, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(text, "{cell:>w$}", w = widths[c]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// `text` as a "- " item, wrapped at `width` columns with continuation lines indented.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from("-");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > width && line.trim() != "-" {
            out.push_str(&line);
            out.push('\n');
            line = String::from(" ");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The sample count of one side: `-` for not applicable.
fn count(samples: Option<&[f64]>) -> String {
    samples.map_or_else(|| "-".to_owned(), |s| s.len().to_string())
}

/// The four statistics of one side, or why there are none.
fn side(samples: Option<&[f64]>, summary: Option<&Summary>) -> [String; 4] {
    match (samples, summary) {
        (None, _) => ["n/a", "", "", ""].map(str::to_owned),
        (Some(_), None) => ["failed", "", "", ""].map(str::to_owned),
        (Some(_), Some(s)) => [s.min, s.median, s.p90, s.max].map(number),
    }
}

/// A value with as many digits as the noise of these measurements justifies: three or four
/// significant ones, with thousands separators from 10,000 up.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        // Whole numbers this large fit an i64 exactly.
        #[allow(clippy::cast_possible_truncation)]
        let whole = v.round() as i64;
        let digits = whole.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        if whole < 0 { format!("-{grouped}") } else { grouped }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `time` as `YYYYMMDDTHHMMSSZ` (UTC), for file names that sort by time.
pub fn utc_stamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_table_of_known_samples() {
        let rows = vec![
            Row::both(
                "failover SIGKILL: +switch-master",
                "ms",
                Better::Lower,
                vec![2100.0, 1900.0, 2500.0, 3100.0, 2000.0],
                vec![1010.0, 1020.0, 1005.0, 1100.0, 1030.0],
            ),
            Row::both(
                "PING -P 16",
                "req/s",
                Better::Higher,
                vec![450_000.0, 470_000.0],
                vec![550_000.5, 540_000.0, 560_000.0],
            ),
            Row {
                metric: "HTTP GET /v1/masters/{name}".to_owned(),
                unit: "req/s",
                better: Better::Higher,
                sentinel: None,
                picket: Some(vec![12_345.0]),
            },
            Row::both("idle CPU, 1 master", "% core", Better::Lower, vec![0.25], vec![]),
        ];
        let expected = "\
metric                            unit    better    n    S min    S med    S p90    S max    P min    P med    P p90    P max   P/S
failover SIGKILL: +switch-master  ms      lower   5/5     1900     2100     3100     3100     1005     1020     1100     1100  0.49
PING -P 16                        req/s   higher  2/3  450,000  460,000  470,000  470,000  540,000  550,001  560,000  560,000  1.20
HTTP GET /v1/masters/{name}       req/s   higher  -/1      n/a                              12,345   12,345   12,345   12,345     -
idle CPU, 1 master                % core  lower   1/0     0.25     0.25     0.25     0.25   failed                                -
";
        assert_eq!(table(&rows), expected);
    }

    #[test]
    fn numbers() {
        assert_eq!(number(0.0), "0.00");
        assert_eq!(number(1.234_56), "1.23");
        assert_eq!(number(42.26), "42.3");
        assert_eq!(number(992.4), "992");
        assert_eq!(number(9_999.4), "9999");
        assert_eq!(number(42_301.0), "42,301");
        assert_eq!(number(1_234_567.0), "1,234,567");
        assert_eq!(number(-12_345.0), "-12,345");
    }

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // 2024-02-29 12:34:56 UTC
        assert_eq!(utc_stamp(t), "20240229T123456Z");
    }

    #[test]
    fn the_report_names_machine_command_notes_and_errors() {
        let report = Report {
            command: "scripts/bench --quick".to_owned(),
            started: "20240229T123456Z".to_owned(),
            finished: Some("20240229T124000Z".to_owned()),
            versions: BTreeMap::from([("picket", "0.1.0".to_owned())]),
            machine: Machine {
                nproc: 2,
                cpu: "Some CPU".to_owned(),
                kernel: "6.1.0".to_owned(),
                load_start: "0.10 0.20 0.30".to_owned(),
                load_end: "1.00 0.50 0.40".to_owned(),
            },
            rows: vec![],
            suites: BTreeMap::new(),
            notes: vec!["a note".to_owned()],
            errors: vec!["a failure".to_owned()],
        };
        let text = report.render();
        assert!(text.starts_with(
            "picket-bench, started 20240229T123456Z\ncommand: scripts/bench --quick\nmachine: \
             nproc 2, Some CPU, kernel 6.1.0, load average 0.10 0.20 0.30 at start, 1.00 0.50 \
             0.40 at end\nversions: picket 0.1.0\n"
        ));
        assert!(text.contains("\n- a note\n"));
        assert_eq!(wrap("aaa bbb ccc ddd", 9), "- aaa bbb\n  ccc ddd\n");
        assert!(text.ends_with("\nERRORS (1):\n- a failure\n"));
    }
}
