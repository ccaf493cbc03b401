//! Where each key of the operator's file is, so that every error can name its line and key.
//!
//! The toml crate gives byte spans: of the value a `toml::de::Error` is about, and of every key
//! and value in a parsed [`DeTable`]. [`Document`] keeps that table beside the typed parse and
//! answers the two questions errors need: "which key holds this span?" (for toml's own errors:
//! syntax, types, unknown keys) and "where is this key?" (for the checks in `validate`). Keys are
//! named by [`KeyPath`] and displayed as described on [`ConfigError`].

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, Deserializer};

use crate::config::error::{ConfigError, Origin, line_and_column};

/// Keys whose values are secrets: an error about one of them must not quote the value.
const SECRET_KEYS: [&str; 8] = [
    "peer_secret",
    "requirepass",
    "admin_token",
    "read_token",
    "secret",
    "auth_pass",
    "password",
    "sentinel_pass",
];

/// One step of a key path.
#[derive(Clone, Debug, Eq, PartialEq)]
enum Segment {
    /// A key of a table.
    Key(String),
    /// An element of an array (0-based).
    Index(usize),
}

/// A key in the document, from the root: `master[1].quorum` is
/// `KeyPath::root().key("master").index(1).key("quorum")`.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub(crate) struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The document itself.
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// This path extended by a table key.
    #[must_use]
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// This path extended by an array index.
    #[must_use]
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// The last table key of the path, if it ends with one.
    fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Segment::Key(key)) => Some(key),
            _ => None,
        }
    }
}

/// The operator's file, parsed into toml's spanned tree.
pub(crate) struct Document<'a> {
    path: &'a Path,
    text: &'a str,
    root: Spanned<DeTable<'a>>,
}

impl<'a> Document<'a> {
    /// Parses `text` as TOML.
    ///
    /// # Errors
    /// A syntax error, at the position toml gives; its key is the section around it and the key
    /// written on its line, as far as they can be made out (see `syntax_error_key`).
    pub(crate) fn parse(text: &'a str, path: &'a Path) -> Result<Self, ConfigError> {
        match DeTable::parse(text) {
            Ok(root) => Ok(Self { path, text, root }),
            Err(err) => {
                // The recovered tree is only used to name the section around the error.
                let (root, _) = DeTable::parse_recoverable(text);
                let partial = Self { path, text, root };
                let offset = err.span().map_or(0, |span| span.start);
                let key = partial.syntax_error_key(offset);
                Err(partial.error_at(offset, &key, format!("invalid TOML: {}", err.message())))
            }
        }
    }

    /// The file's path, as the caller named it.
    pub(crate) fn path(&self) -> &'a Path {
        self.path
    }

    /// Deserializes the document into `T`.
    ///
    /// # Errors
    /// toml's type, missing-key and unknown-key errors, located and named.
    pub(crate) fn deserialize<T: Deserialize<'a>>(&self) -> Result<T, ConfigError> {
        T::deserialize(Deserializer::from(self.root.clone())).map_err(|err| self.serde_error(&err))
    }

    /// An error about the key at `path`. When the key is not in the file (a required key is
    /// missing, a default is at fault), it points at the nearest enclosing key or header.
    pub(crate) fn error(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        self.error_at(self.offset_of(path), path, message.into())
    }

    /// Where the key at `path` is, for checks made after parsing.
    pub(crate) fn origin(&self, path: &KeyPath) -> Origin {
        let (line, column) = line_and_column(self.text, self.offset_of(path));
        Origin { line, column, key: self.describe(path) }
    }

    /// The 1-based line of the key at `path`.
    pub(crate) fn line_of(&self, path: &KeyPath) -> usize {
        line_and_column(self.text, self.offset_of(path)).0
    }

    fn error_at(&self, offset: usize, path: &KeyPath, message: String) -> ConfigError {
        let (line, column) = line_and_column(self.text, offset);
        ConfigError { path: self.path.to_owned(), line, column, key: self.describe(path), message }
    }

    /// Turns one of toml's deserialization errors into a [`ConfigError`].
    fn serde_error(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span().unwrap_or(0..0);
        let (mut path, at) = self.locate(&span);
        let raw = err.message();
        let message = if let Some(field) = quoted_after(raw, "missing field `") {
            // toml points at the table that lacks the key; name the key itself.
            path = path.key(field);
            if path.0.len() == 1 {
                "required section is missing"
            } else {
                "required key is missing"
            }
            .to_owned()
        } else if let Some(field) = quoted_after(raw, "unknown field `") {
            let expected = raw.split_once("`, ").map(|(_, rest)| rest);
            if path.last_key() != Some(field) {
                path = path.key(field);
            }
            expected.map_or_else(|| "unknown key".to_owned(), |e| format!("unknown key, {e}"))
        } else if raw.starts_with("invalid type: map, expected a sequence") && path.0.len() == 1 {
            // `[master]` where `[[master]]` was meant.
            let key = path.last_key().unwrap_or_default();
            format!("write [[{key}]] (one per entry), not [{key}]")
        } else if path.last_key().is_some_and(|k| SECRET_KEYS.contains(&k)) {
            // serde quotes the offending value; for a secret that would print it.
            "must be a string".to_owned()
        } else {
            humanize(raw)
        };
        self.error_at(at, &path, message)
    }

    /// The key a syntax error at `offset` is about, as far as it can be told: the last `[header]`
    /// table before it, plus the bare key written at the start of its line, if any.
    fn syntax_error_key(&self, offset: usize) -> KeyPath {
        let mut section = (0, KeyPath::root());
        visit_headers(self.root.get_ref(), &mut KeyPath::root(), self.text, offset, &mut section);
        let mut path = section.1;
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line =
            self.text.get(line_start..).unwrap_or_default().lines().next().unwrap_or_default();
        if let Some((key, _)) = line.split_once('=') {
            let parts: Vec<&str> = key.split('.').map(str::trim).collect();
            if parts.iter().all(|part| is_bare_key(part)) {
                for part in parts {
                    path = path.key(part);
                }
            }
        }
        path
    }

    /// The key that best explains `span`, and the offset to report: a key or element whose span
    /// is exactly `span` wins (toml's errors carry the span of the key or value they are about),
    /// else the innermost one containing its start. Keys are reported at the key, elements at the
    /// element, header tables at their header.
    fn locate(&self, span: &Range<usize>) -> (KeyPath, usize) {
        if self.root.span() == *span {
            return (KeyPath::root(), span.start);
        }
        let mut best = Match { path: KeyPath::root(), at: span.start, score: (false, 0) };
        visit_table(self.root.get_ref(), &mut KeyPath::root(), span, &mut best);
        (best.path, best.at)
    }

    /// Offset of the key at `path`, or of its deepest ancestor present in the file.
    fn offset_of(&self, path: &KeyPath) -> usize {
        let mut at = 0;
        let mut current: Option<&DeValue<'_>> = None;
        for segment in &path.0 {
            let next = match (segment, current) {
                (Segment::Key(key), None) => entry(self.root.get_ref(), key),
                (Segment::Key(key), Some(DeValue::Table(table))) => entry(table, key),
                (Segment::Index(i), Some(DeValue::Array(array))) => {
                    array.get(*i).map(|item| (item.span().start, item.get_ref()))
                }
                _ => None,
            };
            let Some((offset, value)) = next else { break };
            at = offset;
            current = Some(value);
        }
        at
    }

    /// Displays `path` as in [`ConfigError::key`].
    fn describe(&self, path: &KeyPath) -> String {
        let (head, rest) = match path.0.as_slice() {
            [Segment::Key(section), Segment::Index(i), rest @ ..] if section == "master" => {
                (self.master_label(*i), rest)
            }
            [Segment::Key(section), Segment::Index(i), rest @ ..] if section == "webhook" => {
                (format!("webhook #{}", i + 1), rest)
            }
            [Segment::Key(section), Segment::Index(i), rest @ ..] if section == "user" => {
                (self.user_label(*i), rest)
            }
            [Segment::Key(key), rest @ ..] => (display_key(key), rest),
            _ => return String::new(),
        };
        let mut tail = String::new();
        for segment in rest {
            match segment {
                Segment::Key(key) => {
                    if !tail.is_empty() {
                        tail.push('.');
                    }
                    tail.push_str(&display_key(key));
                }
                Segment::Index(i) => {
                    let _ = write!(tail, "[{i}]");
                }
            }
        }
        if tail.is_empty() { head } else { format!("{head}: {tail}") }
    }

    /// `master "cache"`, or `master #2` (1-based) when the entry has no usable name.
    fn master_label(&self, index: usize) -> String {
        self.entry_name("master", index)
            .map_or_else(|| format!("master #{}", index + 1), |name| format!("master {name:?}"))
    }

    /// `user "app"`, or `user #2` (1-based) when the entry has no usable name.
    fn user_label(&self, index: usize) -> String {
        self.entry_name("user", index)
            .map_or_else(|| format!("user #{}", index + 1), |name| format!("user {name:?}"))
    }

    /// The `name` of entry `index` of the array of tables `section`, if it has a non-empty one.
    fn entry_name(&self, section: &str, index: usize) -> Option<&str> {
        self.root
            .get_ref()
            .get(section)
            .and_then(|entries| entries.get_ref().as_array())
            .and_then(|entries| entries.get(index))
            .and_then(|entry| entry.get_ref().as_table())
            .and_then(|entry| entry.get("name"))
            .and_then(|name| name.get_ref().as_str())
            .filter(|name| !name.is_empty())
    }
}

/// The best candidate so far in [`Document::locate`].
struct Match {
    path: KeyPath,
    at: usize,
    /// (exact span, depth): an exact match beats a containing one, deeper beats shallower.
    score: (bool, usize),
}

impl Match {
    fn consider(&mut self, path: &KeyPath, at: usize, own: &Range<usize>, span: &Range<usize>) {
        let exact = own == span;
        let contains = own.start <= span.start && (span.start < own.end || own.start == span.start);
        let score = (exact, path.0.len());
        if (exact || contains) && score > self.score {
            *self = Self { path: path.clone(), at, score };
        }
    }
}

/// Visits every entry of `table`, whatever its span: a `[header]` table's span covers only its
/// header, not the keys below it.
fn visit_table(table: &DeTable<'_>, path: &mut KeyPath, span: &Range<usize>, best: &mut Match) {
    for (key, value) in table.iter() {
        path.0.push(Segment::Key(key.get_ref().to_string()));
        let at = key.span().start.min(value.span().start);
        best.consider(path, at, &key.span(), span);
        best.consider(path, at, &value.span(), span);
        visit_value(value.get_ref(), path, span, best);
        path.0.pop();
    }
}

fn visit_value(value: &DeValue<'_>, path: &mut KeyPath, span: &Range<usize>, best: &mut Match) {
    match value {
        DeValue::Table(table) => visit_table(table, path, span, best),
        DeValue::Array(array) => {
            for (i, item) in array.iter().enumerate() {
                path.0.push(Segment::Index(i));
                best.consider(path, item.span().start, &item.span(), span);
                visit_value(item.get_ref(), path, span, best);
                path.0.pop();
            }
        }
        _ => {}
    }
}

/// Finds the last `[header]` or `[[header]]` table starting at or before `offset`, deepest on
/// ties (`[a.b]` also starts table `a`). Inline tables do not count: they start with `{`.
fn visit_headers(
    table: &DeTable<'_>,
    path: &mut KeyPath,
    text: &str,
    offset: usize,
    best: &mut (usize, KeyPath),
) {
    // `key_start` guards against recovery oddities: after an unclosed `[node`, toml may give a
    // later header's table a span that starts at the broken one.
    let consider = |path: &KeyPath,
                    key_start: usize,
                    value: &Spanned<DeValue<'_>>,
                    best: &mut (usize, KeyPath)| {
        let start = value.span().start;
        let header = value.get_ref().is_table() && text.as_bytes().get(start) == Some(&b'[');
        let before = start <= offset && key_start <= offset;
        if header && before && (start, path.0.len()) >= (best.0, best.1.0.len()) {
            *best = (start, path.clone());
        }
    };
    for (key, value) in table.iter() {
        path.0.push(Segment::Key(key.get_ref().to_string()));
        consider(path, key.span().start, value, best);
        match value.get_ref() {
            DeValue::Table(inner) => visit_headers(inner, path, text, offset, best),
            DeValue::Array(array) => {
                for (i, item) in array.iter().enumerate() {
                    path.0.push(Segment::Index(i));
                    consider(path, item.span().start, item, best);
                    if let DeValue::Table(inner) = item.get_ref() {
                        visit_headers(inner, path, text, offset, best);
                    }
                    path.0.pop();
                }
            }
            _ => {}
        }
        path.0.pop();
    }
}

/// The offset to report for `key` in `table` (the key, or the `[header]` of a header table, which
/// starts before its key), and its value.
fn entry<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<(usize, &'t DeValue<'i>)> {
    table
        .get_key_value(key)
        .map(|(k, value)| (k.span().start.min(value.span().start), value.get_ref()))
}

/// A key as written in TOML: bare when it can be, quoted otherwise.
fn display_key(key: &str) -> String {
    if is_bare_key(key) { key.to_owned() } else { format!("{key:?}") }
}

/// Whether `key` can be written without quotes in TOML.
fn is_bare_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The text between `prefix` and the next backquote, when `message` starts with `prefix`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// serde names Rust types in its messages ("expected u32"); operators know ranges.
fn humanize(message: &str) -> String {
    message
        .replace("expected u16", "expected an integer from 0 to 65535")
        .replace("expected u32", "expected an integer from 0 to 4294967295")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected usize", "expected a non-negative integer")
}
