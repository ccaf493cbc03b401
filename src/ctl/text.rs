//! Plain-text building blocks for `picket ctl`: colours (on a terminal only), aligned tables,
//! durations and JSON field access that never panics.

use std::fmt::Write as _;

use serde_json::Value;

/// A colour for a cell or a line.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum Colour {
    Green,
    Yellow,
    Red,
    /// Faint: verbose events, notes.
    Dim,
    Bold,
}

impl Colour {
    const fn code(self) -> &'static str {
        match self {
            Self::Green => "32",
            Self::Yellow => "33",
            Self::Red => "31",
            Self::Dim => "2",
            Self::Bold => "1",
        }
    }
}

/// Whether to colour the output: only on a terminal, and not with `NO_COLOR` set.
#[derive(Clone, Copy, Debug)]
pub(super) struct Style {
    pub(super) colour: bool,
}

impl Style {
    /// `text` in `colour`, or as is.
    pub(super) fn paint(self, text: &str, colour: Option<Colour>) -> String {
        match colour {
            Some(c) if self.colour => format!("\x1b[{}m{text}\x1b[0m", c.code()),
            _ => text.to_owned(),
        }
    }
}

/// One table cell: its text and colour.
pub(super) struct Cell {
    text: String,
    colour: Option<Colour>,
}

impl Cell {
    pub(super) fn plain(text: impl Into<String>) -> Self {
        Self { text: text.into(), colour: None }
    }

    pub(super) fn coloured(text: impl Into<String>, colour: Option<Colour>) -> Self {
        Self { text: text.into(), colour }
    }
}

/// Rows rendered as aligned columns (two spaces apart), each line indented by `indent`; the
/// first row is the header.
pub(super) fn table(out: &mut String, style: Style, indent: &str, rows: &[Vec<Cell>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(move |r| r.get(c)).map(|cell| cell.text.chars().count()))
        .map(|w| w.max().unwrap_or(0))
        .collect();
    for (n, row) in rows.iter().enumerate() {
        let mut line = String::from(indent);
        for (c, cell) in row.iter().enumerate() {
            let last = c + 1 == row.len();
            let padded = if last {
                cell.text.clone()
            } else {
                format!("{:<width$}  ", cell.text, width = widths[c])
            };
            let colour = if n == 0 { Some(Colour::Bold) } else { cell.colour };
            // Padding stays outside the colour codes so that columns line up either way.
            let trimmed = padded.trim_end();
            line.push_str(&style.paint(trimmed, colour));
            line.push_str(&padded[trimmed.len()..]);
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// A duration in milliseconds as an operator reads it: `850ms`, `12.3s`, `4m05s`, `2h10m`.
pub(super) fn millis(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}.{}s", ms / 1_000, ms % 1_000 / 100),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1_000),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// A string field, or `""`.
pub(super) fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A number field shown as is, or `-`.
pub(super) fn n(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// A JSON array's items (none if it is not an array).
pub(super) fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A node id, shortened as in logs (its first 8 hex digits).
pub(super) fn short_id(v: &Value) -> String {
    s(v).chars().take(8).collect()
}

/// Calendar date and time of a Unix time in seconds (proleptic Gregorian, Howard Hinnant's
/// `civil_from_days`): `(year, month, day, hour, minute, second)`.
pub(super) fn civil(unix_s: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix_s.div_euclid(86_400);
    let secs = unix_s.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let part = |x: i64| u32::try_from(x).unwrap_or(0);
    (year, part(month), part(day), part(secs / 3_600), part(secs % 3_600 / 60), part(secs % 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_796_517_045), (2026, 12, 6, 0, 30, 45));
    }

    #[test]
    fn durations() {
        assert_eq!(millis(850), "850ms");
        assert_eq!(millis(12_345), "12.3s");
        assert_eq!(millis(245_000), "4m05s");
        assert_eq!(millis(7_800_000), "2h10m");
    }

    #[test]
    fn tables_align_without_counting_colour_codes() {
        let mut out = String::new();
        let style = Style { colour: true };
        let rows = vec![
            vec![Cell::plain("A"), Cell::plain("B")],
            vec![Cell::coloured("long", Some(Colour::Red)), Cell::plain("x")],
        ];
        table(&mut out, style, "", &rows);
        assert_eq!(out, "\x1b[1mA\x1b[0m     \x1b[1mB\x1b[0m\n\x1b[31mlong\x1b[0m  x\n");
    }
}
