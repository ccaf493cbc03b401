//! The one error type of the configuration: what is wrong, and exactly where.

use std::fmt;
use std::path::PathBuf;

/// A configuration problem, located in the operator's file.
///
/// Displays as `<file>:<line>:<column>: <key>: <message>`, for example
/// `config/picket.toml:14:1: master "cache": quorum: must be at least 1`, the form editors and
/// terminals turn into a link. Line and column are 1-based and point at the key that holds the
/// problem (or at the array element, or the `[table]` header, when that is more precise). The key
/// names its section the way an operator finds it: `node`, `http`, `tls`, `webhook #2` (1-based,
/// in file order), `user "app"` and `master "cache"` (or `user #1`, `master #3` when the name
/// itself is missing), then the key path inside it (`peers[1]`,
/// `replica_priority."10.0.0.3:6379"`). It is empty only for a syntax error outside any key.
/// Messages never contain secret values.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ConfigError {
    /// The configuration file, as the caller named it.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The section and key, e.g. `master "cache": quorum`; empty when no key applies.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.path.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Where a key was written, kept with values that are checked after parsing (secret files are
/// read later, by [`crate::config::Config::resolve_secrets`]).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub(crate) struct Origin {
    /// 1-based line.
    pub(crate) line: usize,
    /// 1-based column.
    pub(crate) column: usize,
    /// The section and key, as in [`ConfigError::key`].
    pub(crate) key: String,
}

impl Origin {
    /// An error about the key at this origin.
    pub(crate) fn error(&self, path: PathBuf, message: String) -> ConfigError {
        ConfigError { path, line: self.line, column: self.column, key: self.key.clone(), message }
    }
}

/// 1-based line and column of byte `offset` in `text`. Offsets past the end (toml reports the end
/// of input that way) clamp to it. toml's spans fall on character boundaries; any other offset
/// still gives a position rather than a panic.
pub(crate) fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.as_bytes().get(..offset.min(text.len())).unwrap_or_default();
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let in_line = before.get(line_start..).unwrap_or_default();
    (line, String::from_utf8_lossy(in_line).chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\r\nc";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 4), (1, 5));
        assert_eq!(line_and_column(text, 6), (2, 1));
        assert_eq!(line_and_column(text, 9), (2, 3), "é is one column");
        let _ = line_and_column(text, 8); // inside é: must not panic
        assert_eq!(line_and_column(text, 15), (3, 1));
        assert_eq!(line_and_column(text, 99), (3, 2));
        assert_eq!(line_and_column("", 3), (1, 1));
    }

    #[test]
    fn display_omits_an_empty_key() {
        let mut err = ConfigError {
            path: "c.toml".into(),
            line: 2,
            column: 7,
            key: "node: listen".to_owned(),
            message: "bad".to_owned(),
        };
        assert_eq!(err.to_string(), "c.toml:2:7: node: listen: bad");
        err.key.clear();
        assert_eq!(err.to_string(), "c.toml:2:7: bad");
    }
}
