//! RESP2/RESP3: the Redis serialization protocol, as bytes in and bytes out.
//!
//! This module owns the byte-level grammar of RESP and nothing above it:
//!
//! - [`parse_request`]: the server's hot path. It splits one client request (a multibulk array of
//!   bulk strings, or a Redis "inline" command line) off the front of a buffer into byte ranges,
//!   without copying or allocating, and rejects what Redis rejects with Redis's own error text.
//! - [`Frame`]: any RESP2 or RESP3 value, with an incremental [`Frame::parse`] and a byte-exact
//!   [`Frame::encode`]; used to decode replies and by test clients.
//! - [`ReplyWriter`]: writes replies in the shape the connection negotiated ([`Protocol`]), so
//!   command handlers never build `Frame`s on the hot path.
//!
//! It must not do I/O, keep per-connection state, or know any command: callers own the buffer,
//! decide what a request means, and write the bytes. Every parser here is a pure function of the
//! bytes it is given, takes [`Limits`] that bound memory *before* a body arrives, and never panics
//! on any input; a parse that needs more bytes says so (`Ok(None)`) and consumes nothing, so the
//! caller simply appends what it reads next and calls again.

mod frame;
mod request;
mod writer;

pub use frame::Frame;
pub use request::{REDIS_MAX_ARGS, REDIS_MAX_BULK_LEN, Skip, parse_request};
pub use writer::{Protocol, ReplyWriter};

/// Bounds on what the parsers accept, checked as soon as a header is read.
///
/// A declared length over a limit is an error at once, so a peer cannot make Picket wait for (or
/// allocate) a body it will refuse anyway.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Limits {
    /// Longest bulk string, in bytes.
    pub max_bulk_len: usize,
    /// Most elements in one array (for maps and attributes: most key-value pairs).
    pub max_array_len: usize,
    /// Most aggregates (arrays, maps, sets, pushes, attributes) open at once in a [`Frame`].
    ///
    /// Values above [`Limits::DEPTH_CEILING`] are treated as that ceiling: a parsed `Frame` is
    /// dropped, compared and printed recursively, so its depth must stay small whatever the
    /// caller configured.
    pub max_depth: usize,
    /// Longest line: an inline command, or a length, number or simple-string line.
    pub max_inline_len: usize,
}

impl Limits {
    /// 1 MiB: a Sentinel port's requests carry names, addresses, passwords and script paths;
    /// its clients' largest replies are `INFO` texts of tens of KiB. Redis's own default is
    /// 512 MiB ([`REDIS_MAX_BULK_LEN`]), a data store's figure, not a supervisor's; a request
    /// between the two is answered with an error (see [`Skip`]), as Redis would answer it.
    pub const DEFAULT_MAX_BULK_LEN: usize = 1024 * 1024;

    /// 65,536 elements: the longest Sentinel command (`SENTINEL SET` with many options) has tens
    /// of arguments, but Redis accepts millions (a request of 10,002 is answered, not refused);
    /// reply arrays list masters, replicas or peers, a few hundred at most.
    pub const DEFAULT_MAX_ARRAY_LEN: usize = 65_536;

    /// 8 levels: Sentinel and `HELLO` replies nest at most three deep (an array of maps of arrays);
    /// more is a confused or hostile peer.
    pub const DEFAULT_MAX_DEPTH: usize = 8;

    /// 64 KiB: Redis's `PROTO_INLINE_MAX_SIZE`, so an inline command Redis would take is taken.
    pub const DEFAULT_MAX_INLINE_LEN: usize = 64 * 1024;

    /// The hard ceiling on [`Limits::max_depth`] (see there).
    pub const DEPTH_CEILING: usize = 256;

    /// The limits for a Sentinel port.
    pub const DEFAULT: Self = Self {
        max_bulk_len: Self::DEFAULT_MAX_BULK_LEN,
        max_array_len: Self::DEFAULT_MAX_ARRAY_LEN,
        max_depth: Self::DEFAULT_MAX_DEPTH,
        max_inline_len: Self::DEFAULT_MAX_INLINE_LEN,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why bytes are not valid RESP. The connection cannot be resynchronised after any of these.
///
/// `Display` gives the text Redis replies with (Redis adds `ERR `: a server writes
/// `-ERR Protocol error: ...` and then closes the connection, as Redis does). The first group
/// are Redis's own messages; the rest are Picket's, in the same style, for things Redis does not
/// check or does not parse.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    /// An array count that is not a canonical integer, or is over [`Limits::max_array_len`]
    /// (for a request: over [`REDIS_MAX_ARGS`]).
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// A bulk length that is not a canonical integer, is negative, or is over
    /// [`Limits::max_bulk_len`] (for a request: over [`REDIS_MAX_BULK_LEN`]).
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A request over [`Limits::max_array_len`] arguments or [`Limits::max_bulk_len`] bytes in
    /// one argument that Redis would still accept. Unlike the others this error leaves the
    /// connection usable: discard the request with [`Skip`] and answer an error.
    #[error("request too large")]
    RequestTooLarge,
    /// A request array element that is not a bulk string; carries the byte found.
    #[error("Protocol error: expected '$', got '{}'", printable(*.0))]
    ExpectedBulk(u8),
    /// An inline command line longer than [`Limits::max_inline_len`].
    #[error("Protocol error: too big inline request")]
    TooBigInlineRequest,
    /// An inline command with an unterminated quote, or a closing quote not followed by a space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// An array count line longer than [`Limits::max_inline_len`].
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A bulk length line longer than [`Limits::max_inline_len`].
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An inline argument whose value is not a contiguous run of the request's bytes: a quoted
    /// part with backslash escapes, or text glued to a quoted part (`a"b"`). Redis unescapes
    /// these; [`parse_request`] returns ranges into the caller's buffer and cannot.
    #[error("Protocol error: escapes in inline requests are not supported, use RESP")]
    UnsupportedInlineQuoting,
    /// A bulk body not followed by CRLF (Redis skips two bytes unchecked; Picket refuses).
    #[error("Protocol error: bulk string not terminated by CRLF")]
    BadBulkTerminator,
    /// A CR not followed by LF at the end of a line.
    #[error("Protocol error: CR not followed by LF")]
    BadLineTerminator,
    /// A simple-string, error, number or null line longer than [`Limits::max_inline_len`].
    #[error("Protocol error: too big line")]
    TooBigLine,
    /// A value starting with a byte that is no RESP2 or RESP3 type.
    #[error("Protocol error: unknown type byte '{}'", printable(*.0))]
    UnknownType(u8),
    /// An integer that is not canonical decimal (`-`? digits, no leading zero) in `i64` range.
    #[error("Protocol error: invalid integer")]
    InvalidInteger,
    /// A double that is not a decimal, `inf`, `-inf` or `nan`.
    #[error("Protocol error: invalid double")]
    InvalidDouble,
    /// A big number that is not `-`? digits.
    #[error("Protocol error: invalid big number")]
    InvalidBigNumber,
    /// A boolean other than `#t` or `#f`.
    #[error("Protocol error: invalid boolean")]
    InvalidBoolean,
    /// A RESP3 null (`_`) with text after it.
    #[error("Protocol error: invalid null")]
    InvalidNull,
    /// A verbatim string shorter than its `xxx:` format prefix, or without the colon.
    #[error("Protocol error: invalid verbatim string")]
    InvalidVerbatim,
    /// A simple string or error that is not UTF-8.
    #[error("Protocol error: invalid UTF-8 in simple string")]
    InvalidUtf8,
    /// A RESP3 streamed string or aggregate (`$?`, `*?`, ...): Redis never sends them.
    #[error("Protocol error: streamed RESP3 types are not supported")]
    StreamedUnsupported,
    /// More aggregates open at once than [`Limits::max_depth`].
    #[error("Protocol error: nesting too deep")]
    TooDeep,
}

/// A byte as Redis's `%c` would show it, but with CR and LF as spaces, as Redis's error replies
/// do: the message must stay one line.
fn printable(b: u8) -> char {
    if matches!(b, b'\r' | b'\n') { ' ' } else { char::from(b) }
}

/// Where the CRLF-terminated line starting at some offset ends.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Line {
    /// The content ends at `end` (the CR); the next value starts at `next`.
    Complete { end: usize, next: usize },
    /// No CR yet, or a CR as the last byte: wait for more.
    Incomplete,
    /// More than the allowed content bytes and still no CR.
    TooLong,
    /// A CR followed by something other than LF.
    BadTerminator,
}

/// Finds the line starting at `start` whose content may be at most `max` bytes.
///
/// Only `max + 1` bytes are scanned, so a huge buffer without a CR costs no more than a short
/// one. A line is too long by its content length alone, whether or not its CR has arrived: that
/// keeps the answer the same however the bytes were split across reads.
fn line(buf: &[u8], start: usize, max: usize) -> Line {
    let rest = buf.get(start..).unwrap_or_default();
    let window = rest.get(..max.saturating_add(1)).unwrap_or(rest);
    match window.iter().position(|&b| b == b'\r') {
        Some(i) => {
            let cr = start + i;
            match buf.get(cr + 1) {
                None => Line::Incomplete,
                Some(b'\n') => Line::Complete { end: cr, next: cr + 2 },
                Some(_) => Line::BadTerminator,
            }
        }
        None if rest.len() > max => Line::TooLong,
        None => Line::Incomplete,
    }
}

/// Parses an integer the way Redis's `string2ll` does: optional `-`, then `0` alone or digits
/// without a leading zero, within `i64`. No `+`, spaces or empty text.
fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!negative).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut magnitude: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative { 0_i64.checked_sub_unsigned(magnitude) } else { i64::try_from(magnitude).ok() }
}

/// Room for a type byte, a sign, the 20 digits of `u64::MAX`, and CRLF.
const HEADER_CAP: usize = 1 + 1 + 20 + 2;

/// `prefix`, the decimal `value`, CRLF, formatted on the stack: integers and lengths are written
/// on every reply, so this must not allocate.
#[derive(Clone, Copy)]
struct Header {
    buf: [u8; HEADER_CAP],
    start: usize,
}

impl Header {
    /// `prefix` then `value` (negative when `negative`) then CRLF.
    fn new(prefix: u8, negative: bool, value: u64) -> Self {
        let mut buf = [0u8; HEADER_CAP];
        let mut rest = value;
        // Fill from the end: CRLF, the digits backwards, the sign, the prefix. The array has
        // room for the longest case, so the iterator never runs dry before `rest` reaches 0.
        let mut slots = buf.iter_mut().enumerate().rev();
        let mut start = 0;
        for byte in [b'\n', b'\r'] {
            if let Some((_, slot)) = slots.next() {
                *slot = byte;
            }
        }
        for (i, slot) in slots.by_ref() {
            // The remainder is below 10, so the cast cannot truncate.
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
            start = i;
            if rest == 0 {
                break;
            }
        }
        let tail = if negative { [Some(b'-'), Some(prefix)] } else { [Some(prefix), None] };
        for byte in tail.into_iter().flatten() {
            if let Some((i, slot)) = slots.next() {
                *slot = byte;
                start = i;
            }
        }
        Self { buf, start }
    }

    /// A length header such as `*3\r\n`.
    fn len(prefix: u8, len: usize) -> Self {
        Self::new(prefix, false, u64::try_from(len).unwrap_or(u64::MAX))
    }

    /// A signed header such as `:-5\r\n`.
    fn signed(prefix: u8, value: i64) -> Self {
        Self::new(prefix, value < 0, value.unsigned_abs())
    }

    /// The formatted bytes.
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

/// Appends formatted text to a byte vector.
struct VecWriter<'v>(&'v mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Makes the line text written at `out[start..]` safe to frame: trailing CRs and LFs are
/// dropped and inner ones become spaces, as Redis does for error replies. A CR or LF inside a
/// simple string or error would end the line early and desynchronise the reader.
fn sanitize_line(out: &mut Vec<u8>, start: usize) {
    while out.len() > start && matches!(out.last(), Some(b'\r' | b'\n')) {
        out.pop();
    }
    for b in out.get_mut(start..).unwrap_or_default() {
        if matches!(*b, b'\r' | b'\n') {
            *b = b' ';
        }
    }
}

/// Formats a double for RESP: `inf`, `-inf`, `nan`, plain decimal for everyday magnitudes, and
/// exponent form otherwise (so `1e300` is not 301 digits). Every form is what `strtod` reads.
fn write_double(out: &mut Vec<u8>, v: f64) {
    use std::fmt::Write as _;
    if v.is_nan() {
        out.extend_from_slice(b"nan");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
    } else {
        let magnitude = v.abs();
        // Writing to a Vec cannot fail.
        let _ = if magnitude == 0.0 || (1e-5..1e16).contains(&magnitude) {
            write!(VecWriter(out), "{v}")
        } else {
            write!(VecWriter(out), "{v:e}")
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"42"), Some(42));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn headers_format_without_allocating() {
        assert_eq!(Header::len(b'*', 0).as_bytes(), b"*0\r\n");
        assert_eq!(Header::len(b'$', 512).as_bytes(), b"$512\r\n");
        assert_eq!(Header::signed(b':', -7).as_bytes(), b":-7\r\n");
        assert_eq!(Header::signed(b':', i64::MIN).as_bytes(), b":-9223372036854775808\r\n");
        assert_eq!(Header::new(b':', false, u64::MAX).as_bytes(), b":18446744073709551615\r\n");
        let big = Header::new(b':', true, u64::MAX);
        assert_eq!(big.as_bytes(), b":-18446744073709551615\r\n");
    }

    #[test]
    fn lines_are_bounded_and_split_independent() {
        assert_eq!(line(b"*3\r\n", 1, 4), Line::Complete { end: 2, next: 4 });
        assert_eq!(line(b"*3\r", 1, 4), Line::Incomplete);
        assert_eq!(line(b"*3", 1, 4), Line::Incomplete);
        assert_eq!(line(b"*3\rx", 1, 4), Line::BadTerminator);
        assert_eq!(line(b"*1234", 1, 4), Line::Incomplete);
        assert_eq!(line(b"*12345", 1, 4), Line::TooLong);
        assert_eq!(line(b"*12345\r\n", 1, 4), Line::TooLong);
        assert_eq!(line(b"*1234\r\n", 1, 4), Line::Complete { end: 5, next: 7 });
    }

    #[test]
    fn error_text_is_redis_text() {
        assert_eq!(
            ProtocolError::ExpectedBulk(b'P').to_string(),
            "Protocol error: expected '$', got 'P'"
        );
        assert_eq!(
            ProtocolError::ExpectedBulk(b'\r').to_string(),
            "Protocol error: expected '$', got ' '"
        );
        assert_eq!(Limits::default(), Limits::DEFAULT);
    }
}
