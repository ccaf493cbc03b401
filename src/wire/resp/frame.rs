//! Any RESP2 or RESP3 value, decoded and encoded byte-exactly.

use super::{Header, Limits, Line, ProtocolError, line, parse_i64, sanitize_line, write_double};

/// One RESP2 or RESP3 value.
///
/// Every wire form has its own variant, so [`Frame::encode`] writes back exactly the bytes
/// [`Frame::parse`] read for any input in canonical form (integers and lengths without `+` or
/// leading zeros, as every Redis writes them). Double and big-number texts are kept as sent.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Frame {
    /// `+text`: a status reply such as `OK`.
    Simple(String),
    /// `-text`: an error reply; the text starts with its code (`ERR`, `NOAUTH`, ...).
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$len` and the bytes.
    Bulk(Vec<u8>),
    /// `$-1`: RESP2's null bulk string.
    NullBulk,
    /// `*-1`: RESP2's null array.
    NullArray,
    /// `_`: RESP3's null.
    Null,
    /// `*n` and `n` values.
    Array(Vec<Self>),
    /// `%n` and `n` key-value pairs (RESP3).
    Map(Vec<(Self, Self)>),
    /// `~n` and `n` values (RESP3).
    Set(Vec<Self>),
    /// `>n` and `n` values: out-of-band data such as pub/sub messages (RESP3).
    Push(Vec<Self>),
    /// `#t` or `#f` (RESP3).
    Boolean(bool),
    /// `,text` (RESP3): a decimal, `inf`, `-inf` or `nan`, as sent. See [`Frame::double`].
    Double(String),
    /// `(digits` (RESP3): an integer of any size, as sent.
    BigNumber(String),
    /// `!len` and the bytes (RESP3): an error with binary-safe text.
    BlobError(Vec<u8>),
    /// `=len`, a three-byte format such as `txt` or `mkd`, `:`, and the text (RESP3).
    Verbatim {
        /// The format, such as `txt`.
        format: [u8; 3],
        /// The text after `format:`.
        text: Vec<u8>,
    },
    /// `|n`, `n` key-value pairs describing the value that follows, and that value (RESP3).
    Attribute {
        /// The attribute pairs.
        attributes: Vec<(Self, Self)>,
        /// The value they describe.
        value: Box<Self>,
    },
}

/// An aggregate's wire type.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Kind {
    Array,
    Map,
    Set,
    Push,
    Attribute,
}

impl Kind {
    /// How many values follow a header declaring `count`, or `None` if that overflows.
    fn children(self, count: usize) -> Option<usize> {
        match self {
            Self::Array | Self::Set | Self::Push => Some(count),
            Self::Map => count.checked_mul(2),
            Self::Attribute => count.checked_mul(2)?.checked_add(1),
        }
    }

    /// Builds the frame from its children, which are complete and as many as declared.
    fn finish(self, mut items: Vec<Frame>) -> Frame {
        match self {
            Self::Array => Frame::Array(items),
            Self::Set => Frame::Set(items),
            Self::Push => Frame::Push(items),
            Self::Map => Frame::Map(pairs(items)),
            Self::Attribute => {
                // The value is the last child; an attribute always has one.
                let value = items.pop().unwrap_or(Frame::Null);
                Frame::Attribute { attributes: pairs(items), value: Box::new(value) }
            }
        }
    }
}

/// `[k1, v1, k2, v2, ...]` as `[(k1, v1), (k2, v2), ...]`.
fn pairs(items: Vec<Frame>) -> Vec<(Frame, Frame)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        out.push((k, v));
    }
    out
}

/// One header or scalar value, borrowing from the input.
#[derive(Debug)]
enum Token<'b> {
    /// A complete scalar.
    Scalar(Scalar<'b>),
    /// An aggregate header and its declared count.
    Aggregate(Kind, usize),
}

/// A scalar value as it sits in the input.
#[derive(Debug)]
enum Scalar<'b> {
    Simple(&'b str),
    Error(&'b str),
    Integer(i64),
    Bulk(&'b [u8]),
    NullBulk,
    NullArray,
    Null,
    Boolean(bool),
    Double(&'b str),
    BigNumber(&'b str),
    BlobError(&'b [u8]),
    Verbatim([u8; 3], &'b [u8]),
}

impl Scalar<'_> {
    fn to_frame(&self) -> Frame {
        match *self {
            Self::Simple(s) => Frame::Simple(s.to_owned()),
            Self::Error(s) => Frame::Error(s.to_owned()),
            Self::Integer(n) => Frame::Integer(n),
            Self::Bulk(b) => Frame::Bulk(b.to_vec()),
            Self::NullBulk => Frame::NullBulk,
            Self::NullArray => Frame::NullArray,
            Self::Null => Frame::Null,
            Self::Boolean(b) => Frame::Boolean(b),
            Self::Double(s) => Frame::Double(s.to_owned()),
            Self::BigNumber(s) => Frame::BigNumber(s.to_owned()),
            Self::BlobError(b) => Frame::BlobError(b.to_vec()),
            Self::Verbatim(format, text) => Frame::Verbatim { format, text: text.to_vec() },
        }
    }
}

/// Reads the token at `pos`: `Ok(None)` if it has not fully arrived.
fn token<'b>(
    buf: &'b [u8],
    pos: usize,
    limits: &Limits,
) -> Result<Option<(Token<'b>, usize)>, ProtocolError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let start = pos + 1;
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'(' | b'#' => {
            let (text, next) = match line(buf, start, limits.max_inline_len) {
                Line::Complete { end, next } => (buf.get(start..end).unwrap_or_default(), next),
                Line::Incomplete => return Ok(None),
                Line::TooLong => return Err(ProtocolError::TooBigLine),
                Line::BadTerminator => return Err(ProtocolError::BadLineTerminator),
            };
            Ok(Some((Token::Scalar(line_scalar(kind, text)?), next)))
        }
        b'$' | b'!' | b'=' => blob(buf, kind, start, limits),
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let (text, next) = match line(buf, start, limits.max_inline_len) {
                Line::Complete { end, next } => (buf.get(start..end).unwrap_or_default(), next),
                Line::Incomplete => return Ok(None),
                Line::TooLong => return Err(ProtocolError::TooBigMultibulkCount),
                Line::BadTerminator => return Err(ProtocolError::InvalidMultibulkLength),
            };
            if text == b"?" {
                return Err(ProtocolError::StreamedUnsupported);
            }
            let count = parse_i64(text).ok_or(ProtocolError::InvalidMultibulkLength)?;
            if kind == b'*' && count == -1 {
                return Ok(Some((Token::Scalar(Scalar::NullArray), next)));
            }
            let count = usize::try_from(count)
                .ok()
                .filter(|&n| n <= limits.max_array_len)
                .ok_or(ProtocolError::InvalidMultibulkLength)?;
            let kind = match kind {
                b'*' => Kind::Array,
                b'%' => Kind::Map,
                b'~' => Kind::Set,
                b'>' => Kind::Push,
                _ => Kind::Attribute,
            };
            Ok(Some((Token::Aggregate(kind, count), next)))
        }
        // Streamed chunks and their terminator only appear inside streamed types.
        b';' | b'.' => Err(ProtocolError::StreamedUnsupported),
        other => Err(ProtocolError::UnknownType(other)),
    }
}

/// The scalar on a one-line value of type `kind` whose text is `text`.
fn line_scalar(kind: u8, text: &[u8]) -> Result<Scalar<'_>, ProtocolError> {
    let utf8 = |text| std::str::from_utf8(text).map_err(|_| ProtocolError::InvalidUtf8);
    Ok(match kind {
        b'+' => Scalar::Simple(utf8(text)?),
        b'-' => Scalar::Error(utf8(text)?),
        b':' => Scalar::Integer(parse_i64(text).ok_or(ProtocolError::InvalidInteger)?),
        b'_' if text.is_empty() => Scalar::Null,
        b'_' => return Err(ProtocolError::InvalidNull),
        b'#' => match text {
            b"t" => Scalar::Boolean(true),
            b"f" => Scalar::Boolean(false),
            _ => return Err(ProtocolError::InvalidBoolean),
        },
        b',' => {
            let text = std::str::from_utf8(text).map_err(|_| ProtocolError::InvalidDouble)?;
            if text.parse::<f64>().is_err() {
                return Err(ProtocolError::InvalidDouble);
            }
            Scalar::Double(text)
        }
        _ => {
            let digits = text.strip_prefix(b"-").unwrap_or(text);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(ProtocolError::InvalidBigNumber);
            }
            // All ASCII, so this cannot fail.
            Scalar::BigNumber(std::str::from_utf8(text).map_err(|_| ProtocolError::InvalidUtf8)?)
        }
    })
}

/// A length-prefixed value (`$`, `!`, `=`) whose length line starts at `start`.
fn blob<'b>(
    buf: &'b [u8],
    kind: u8,
    start: usize,
    limits: &Limits,
) -> Result<Option<(Token<'b>, usize)>, ProtocolError> {
    let (text, body) = match line(buf, start, limits.max_inline_len) {
        Line::Complete { end, next } => (buf.get(start..end).unwrap_or_default(), next),
        Line::Incomplete => return Ok(None),
        Line::TooLong => return Err(ProtocolError::TooBigBulkCount),
        Line::BadTerminator => return Err(ProtocolError::InvalidBulkLength),
    };
    if text == b"?" {
        return Err(ProtocolError::StreamedUnsupported);
    }
    let len = parse_i64(text).ok_or(ProtocolError::InvalidBulkLength)?;
    if kind == b'$' && len == -1 {
        return Ok(Some((Token::Scalar(Scalar::NullBulk), body)));
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&n| n <= limits.max_bulk_len)
        .ok_or(ProtocolError::InvalidBulkLength)?;
    let end = body.checked_add(len).ok_or(ProtocolError::InvalidBulkLength)?;
    match buf.get(end..end.saturating_add(2)) {
        Some(b"\r\n") => {}
        Some(_) => return Err(ProtocolError::BadBulkTerminator),
        None => return Ok(None),
    }
    let bytes = buf.get(body..end).unwrap_or_default();
    let scalar = match kind {
        b'$' => Scalar::Bulk(bytes),
        b'!' => Scalar::BlobError(bytes),
        _ => match bytes {
            [a, b, c, b':', text @ ..] => Scalar::Verbatim([*a, *b, *c], text),
            _ => return Err(ProtocolError::InvalidVerbatim),
        },
    };
    Ok(Some((Token::Scalar(scalar), end + 2)))
}

/// An aggregate being built: its kind, how many children it still needs, and those it has.
struct Open {
    kind: Kind,
    remaining: usize,
    items: Vec<Frame>,
}

impl Frame {
    /// Parses one value from the front of `buf`.
    ///
    /// Returns the value and how many bytes it took, `Ok(None)` if `buf` does not yet hold a
    /// whole value (append more and call again; the answer does not depend on how the bytes were
    /// split), or the error that makes the stream unreadable. Lengths and counts are checked
    /// against `limits` as soon as their line is read; nesting deeper than
    /// [`Limits::max_depth`] is an error, found without recursion. Incomplete input allocates
    /// nothing: the value is first walked to its end, then built.
    ///
    /// Streamed RESP3 strings and aggregates (`$?`, `*?`) are refused: Redis never sends them.
    ///
    /// # Errors
    /// The [`ProtocolError`] describing the first malformed byte.
    pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Self, usize)>, ProtocolError> {
        let limits = Limits { max_depth: limits.max_depth.min(Limits::DEPTH_CEILING), ..*limits };
        let Some(end) = measure(buf, &limits)? else {
            return Ok(None);
        };
        build(buf.get(..end).unwrap_or_default(), &limits)
    }

    /// Appends the value's wire form to `out`.
    ///
    /// Each variant has one form, so a parsed frame is written back byte for byte. CR and LF in
    /// the text of `Simple`, `Error`, `Double` and `BigNumber` are written as spaces (trailing
    /// ones dropped) so the stream stays framed; such a frame does not parse back equal.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // An explicit stack, so a deep frame built by hand cannot overflow the call stack.
        let mut pending: Vec<&Self> = vec![self];
        while let Some(frame) = pending.pop() {
            match frame {
                Self::Simple(s) => line_out(out, b'+', s.as_bytes()),
                Self::Error(s) => line_out(out, b'-', s.as_bytes()),
                Self::Integer(n) => out.extend_from_slice(Header::signed(b':', *n).as_bytes()),
                Self::Bulk(b) => blob_out(out, b'$', b),
                Self::NullBulk => out.extend_from_slice(b"$-1\r\n"),
                Self::NullArray => out.extend_from_slice(b"*-1\r\n"),
                Self::Null => out.extend_from_slice(b"_\r\n"),
                Self::Array(items) | Self::Set(items) | Self::Push(items) => {
                    let prefix = match frame {
                        Self::Array(_) => b'*',
                        Self::Set(_) => b'~',
                        _ => b'>',
                    };
                    out.extend_from_slice(Header::len(prefix, items.len()).as_bytes());
                    pending.extend(items.iter().rev());
                }
                Self::Map(entries) => {
                    out.extend_from_slice(Header::len(b'%', entries.len()).as_bytes());
                    push_pairs(&mut pending, entries);
                }
                Self::Attribute { attributes, value } => {
                    out.extend_from_slice(Header::len(b'|', attributes.len()).as_bytes());
                    pending.push(value);
                    push_pairs(&mut pending, attributes);
                }
                Self::Boolean(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
                Self::Double(s) => line_out(out, b',', s.as_bytes()),
                Self::BigNumber(s) => line_out(out, b'(', s.as_bytes()),
                Self::BlobError(b) => blob_out(out, b'!', b),
                Self::Verbatim { format, text } => {
                    let len = text.len().saturating_add(4);
                    out.extend_from_slice(Header::len(b'=', len).as_bytes());
                    out.extend_from_slice(format);
                    out.push(b':');
                    out.extend_from_slice(text);
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }

    /// The wire form as a new vector.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// A [`Frame::Double`] holding `v` written as [`ReplyWriter::double`] writes it.
    ///
    /// [`ReplyWriter::double`]: super::ReplyWriter::double
    #[must_use]
    pub fn double(v: f64) -> Self {
        let mut text = Vec::new();
        write_double(&mut text, v);
        Self::Double(String::from_utf8_lossy(&text).into_owned())
    }
}

/// Queues `entries` so that the first key is written next.
fn push_pairs<'f>(pending: &mut Vec<&'f Frame>, entries: &'f [(Frame, Frame)]) {
    for (k, v) in entries.iter().rev() {
        pending.push(v);
        pending.push(k);
    }
}

/// `prefix`, the sanitized `text`, CRLF.
fn line_out(out: &mut Vec<u8>, prefix: u8, text: &[u8]) {
    out.push(prefix);
    let start = out.len();
    out.extend_from_slice(text);
    sanitize_line(out, start);
    out.extend_from_slice(b"\r\n");
}

/// `prefix`, the length, CRLF, the bytes, CRLF.
fn blob_out(out: &mut Vec<u8>, prefix: u8, bytes: &[u8]) {
    out.extend_from_slice(Header::len(prefix, bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Walks one value without building it: where it ends, or `None` if it has not all arrived.
fn measure(buf: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    // Children still needed by each open aggregate, innermost last.
    let mut open: Vec<usize> = Vec::new();
    let mut pos = 0;
    loop {
        let Some((token, next)) = token(buf, pos, limits)? else {
            return Ok(None);
        };
        pos = next;
        if let Token::Aggregate(kind, count) = token {
            if open.len() >= limits.max_depth {
                return Err(ProtocolError::TooDeep);
            }
            let children = kind.children(count).ok_or(ProtocolError::InvalidMultibulkLength)?;
            if children > 0 {
                open.push(children);
                continue;
            }
        }
        // A value is complete: it counts towards its parent, which may complete in turn.
        loop {
            let Some(remaining) = open.last_mut() else {
                return Ok(Some(pos));
            };
            *remaining -= 1;
            if *remaining > 0 {
                break;
            }
            open.pop();
        }
    }
}

/// Builds the value that [`measure`] found complete in `buf`.
fn build(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, ProtocolError> {
    let mut open: Vec<Open> = Vec::new();
    let mut pos = 0;
    loop {
        let Some((token, next)) = token(buf, pos, limits)? else {
            return Ok(None);
        };
        pos = next;
        let mut done = match token {
            Token::Scalar(scalar) => scalar.to_frame(),
            Token::Aggregate(kind, count) => {
                let children = kind.children(count).unwrap_or(0);
                if children == 0 {
                    kind.finish(Vec::new())
                } else {
                    // Every child takes at least three bytes, so the input bounds the capacity
                    // whatever the header claims.
                    let room = buf.len().saturating_sub(pos) / 3;
                    let items = Vec::with_capacity(children.min(room));
                    open.push(Open { kind, remaining: children, items });
                    continue;
                }
            }
        };
        loop {
            let Some(top) = open.last_mut() else {
                return Ok(Some((done, pos)));
            };
            top.items.push(done);
            top.remaining = top.remaining.saturating_sub(1);
            if top.remaining > 0 {
                break;
            }
            let Some(finished) = open.pop() else {
                return Ok(None);
            };
            done = finished.kind.finish(finished.items);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
        Frame::parse(buf, &Limits::DEFAULT)
    }

    /// `bytes` parses to `frame`, using all of it, and `frame` encodes back to `bytes`.
    fn exact(bytes: &[u8], frame: &Frame) {
        assert_eq!(
            parse(bytes),
            Ok(Some((frame.clone(), bytes.len()))),
            "{}",
            bytes.escape_ascii()
        );
        assert_eq!(frame.to_bytes(), bytes, "{frame:?}");
    }

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn every_type_round_trips_byte_for_byte() {
        exact(b"+OK\r\n", &Frame::Simple("OK".into()));
        exact(b"+\r\n", &Frame::Simple(String::new()));
        exact(b"-ERR unknown\r\n", &Frame::Error("ERR unknown".into()));
        exact(b":0\r\n", &Frame::Integer(0));
        exact(b":-9223372036854775808\r\n", &Frame::Integer(i64::MIN));
        exact(b"$5\r\nhello\r\n", &bulk("hello"));
        exact(b"$0\r\n\r\n", &bulk(""));
        exact(b"$2\r\n\r\n\r\n", &bulk("\r\n"));
        exact(b"$-1\r\n", &Frame::NullBulk);
        exact(b"*-1\r\n", &Frame::NullArray);
        exact(b"_\r\n", &Frame::Null);
        exact(b"*0\r\n", &Frame::Array(vec![]));
        exact(b"*2\r\n:1\r\n$1\r\na\r\n", &Frame::Array(vec![Frame::Integer(1), bulk("a")]));
        exact(
            b"%2\r\n+ip\r\n$9\r\n127.0.0.1\r\n+port\r\n:6379\r\n",
            &Frame::Map(vec![
                (Frame::Simple("ip".into()), bulk("127.0.0.1")),
                (Frame::Simple("port".into()), Frame::Integer(6379)),
            ]),
        );
        exact(b"~1\r\n#t\r\n", &Frame::Set(vec![Frame::Boolean(true)]));
        exact(
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n",
            &Frame::Push(vec![bulk("message"), bulk("ch"), bulk("x")]),
        );
        exact(b"#f\r\n", &Frame::Boolean(false));
        for d in ["1.5", "-0", "inf", "-inf", "nan", "1e300", "3"] {
            exact(format!(",{d}\r\n").as_bytes(), &Frame::Double(d.into()));
        }
        exact(
            b"(-12345678901234567890123\r\n",
            &Frame::BigNumber("-12345678901234567890123".into()),
        );
        exact(b"!11\r\nERR a\r\nbcde\r\n", &Frame::BlobError(b"ERR a\r\nbcde".to_vec()));
        exact(b"=8\r\ntxt:some\r\n", &Frame::Verbatim { format: *b"txt", text: b"some".to_vec() });
        exact(b"=4\r\nmkd:\r\n", &Frame::Verbatim { format: *b"mkd", text: vec![] });
        exact(
            b"|1\r\n+ttl\r\n:3600\r\n*1\r\n:2\r\n",
            &Frame::Attribute {
                attributes: vec![(Frame::Simple("ttl".into()), Frame::Integer(3600))],
                value: Box::new(Frame::Array(vec![Frame::Integer(2)])),
            },
        );
    }

    #[test]
    fn parse_takes_one_value_and_leaves_the_rest() {
        assert_eq!(parse(b"+OK\r\n:1\r\n"), Ok(Some((Frame::Simple("OK".into()), 5))));
        assert_eq!(parse(b""), Ok(None));
        let full = b"*2\r\n%1\r\n+a\r\n$3\r\nxyz\r\n=8\r\ntxt:abcd\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(matches!(parse(full), Ok(Some((_, n))) if n == full.len()));
    }

    #[test]
    fn malformed_values_are_refused() {
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"?\r\n", ProtocolError::UnknownType(b'?')),
            (b":1.5\r\n", ProtocolError::InvalidInteger),
            (b":01\r\n", ProtocolError::InvalidInteger),
            (b":\r\n", ProtocolError::InvalidInteger),
            (b"_x\r\n", ProtocolError::InvalidNull),
            (b"#x\r\n", ProtocolError::InvalidBoolean),
            (b",one\r\n", ProtocolError::InvalidDouble),
            (b",\r\n", ProtocolError::InvalidDouble),
            (b"(1a\r\n", ProtocolError::InvalidBigNumber),
            (b"(-\r\n", ProtocolError::InvalidBigNumber),
            (b"+\xff\r\n", ProtocolError::InvalidUtf8),
            (b"+OK\rX", ProtocolError::BadLineTerminator),
            (b"$-2\r\n", ProtocolError::InvalidBulkLength),
            (b"!-1\r\n", ProtocolError::InvalidBulkLength),
            (b"$1\r\nab\r\n", ProtocolError::BadBulkTerminator),
            (b"=3\r\ntxt\r\n", ProtocolError::InvalidVerbatim),
            (b"=4\r\ntxtx\r\n", ProtocolError::InvalidVerbatim),
            (b"%-1\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*65537\r\n", ProtocolError::InvalidMultibulkLength),
            (b"$1048577\r\n", ProtocolError::InvalidBulkLength),
            (b"$?\r\n", ProtocolError::StreamedUnsupported),
            (b"*?\r\n", ProtocolError::StreamedUnsupported),
            (b";4\r\n", ProtocolError::StreamedUnsupported),
        ];
        for (bytes, e) in cases {
            assert_eq!(parse(bytes), Err(*e), "{}", bytes.escape_ascii());
        }
        let long = Limits { max_inline_len: 4, ..Limits::DEFAULT };
        assert_eq!(Frame::parse(b"+hello", &long), Err(ProtocolError::TooBigLine));
        assert_eq!(Frame::parse(b"+hell", &long), Ok(None));
        assert_eq!(Frame::parse(b"*123456", &long), Err(ProtocolError::TooBigMultibulkCount));
        assert_eq!(Frame::parse(b"$123456", &long), Err(ProtocolError::TooBigBulkCount));
    }

    #[test]
    fn depth_is_limited_without_recursion() {
        let nested = |depth: usize| {
            let mut bytes = b"*1\r\n".repeat(depth);
            bytes.extend_from_slice(b":1\r\n");
            bytes
        };
        assert!(matches!(parse(&nested(8)), Ok(Some(_))));
        assert_eq!(parse(&nested(9)), Err(ProtocolError::TooDeep));
        assert_eq!(parse(&nested(100_000)), Err(ProtocolError::TooDeep));
        assert_eq!(parse(&b"*1\r\n".repeat(100_000)), Err(ProtocolError::TooDeep));
        // Empty aggregates count too, and maps and attributes are aggregates.
        assert_eq!(
            parse(&[b"*1\r\n".repeat(8), b"%0\r\n".to_vec()].concat()),
            Err(ProtocolError::TooDeep)
        );
        // A caller's huge max_depth is capped, so a parsed frame stays cheap to drop.
        let unbounded = Limits { max_depth: usize::MAX, ..Limits::DEFAULT };
        assert_eq!(Frame::parse(&nested(100_000), &unbounded), Err(ProtocolError::TooDeep));
        assert!(Frame::parse(&nested(Limits::DEPTH_CEILING), &unbounded).unwrap().is_some());
    }

    #[test]
    fn encode_keeps_lines_framed() {
        assert_eq!(Frame::Simple("a\r\nb\r\n".into()).to_bytes(), b"+a  b\r\n");
        assert_eq!(Frame::Error("ERR x\n".into()).to_bytes(), b"-ERR x\r\n");
        assert_eq!(Frame::double(0.25).to_bytes(), b",0.25\r\n");
        assert_eq!(Frame::double(f64::NEG_INFINITY), Frame::Double("-inf".into()));
    }

    /// Any frame whose text fields are valid on the wire.
    fn any_frame() -> impl Strategy<Value = Frame> {
        let text = "[ -~]{0,8}";
        let leaf = prop_oneof![
            text.prop_map(Frame::Simple),
            text.prop_map(Frame::Error),
            any::<i64>().prop_map(Frame::Integer),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Frame::Bulk),
            Just(Frame::NullBulk),
            Just(Frame::NullArray),
            Just(Frame::Null),
            any::<bool>().prop_map(Frame::Boolean),
            any::<f64>().prop_map(Frame::double),
            "-?[1-9][0-9]{0,40}".prop_map(Frame::BigNumber),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Frame::BlobError),
            (any::<[u8; 3]>(), proptest::collection::vec(any::<u8>(), 0..16))
                .prop_map(|(format, text)| Frame::Verbatim { format, text }),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            let list = proptest::collection::vec(inner.clone(), 0..6);
            let entries = proptest::collection::vec((inner.clone(), inner.clone()), 0..4);
            prop_oneof![
                list.clone().prop_map(Frame::Array),
                list.clone().prop_map(Frame::Set),
                list.prop_map(Frame::Push),
                entries.clone().prop_map(Frame::Map),
                (entries, inner).prop_map(|(attributes, value)| Frame::Attribute {
                    attributes,
                    value: Box::new(value)
                }),
            ]
        })
    }

    /// Bytes that look like RESP often enough to reach every branch.
    fn respish() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            proptest::sample::select(b"+-:$*_,#!=(%~>|;.".to_vec()).prop_map(|b| vec![b]),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"-1".to_vec()),
            Just(b"?".to_vec()),
            Just(b"txt:".to_vec()),
            Just(b"t".to_vec()),
            Just(b"inf".to_vec()),
            (0u8..10).prop_map(|n| n.to_string().into_bytes()),
            any::<u8>().prop_map(|b| vec![b]),
        ];
        proptest::collection::vec(piece, 0..48).prop_map(|v| v.concat())
    }

    /// Reads every frame from `stream` fed in chunks cut at `cuts`.
    fn feed(stream: &[u8], cuts: &[usize]) -> Vec<Frame> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(stream.len())).collect();
        bounds.sort_unstable();
        bounds.push(stream.len());
        let mut fed = 0;
        for bound in bounds {
            buf.extend_from_slice(&stream[fed..bound.max(fed)]);
            fed = bound.max(fed);
            while let Some((frame, n)) = Frame::parse(&buf, &Limits::DEFAULT).unwrap() {
                out.push(frame);
                buf.drain(..n);
            }
        }
        assert!(buf.is_empty());
        out
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Frame::parse(&bytes, &Limits::DEFAULT);
        }

        #[test]
        fn a_prefix_agrees_with_the_whole(bytes in respish()) {
            let limits = Limits { max_inline_len: 8, max_bulk_len: 8, max_array_len: 4, max_depth: 3 };
            let whole = Frame::parse(&bytes, &limits);
            for cut in 0..bytes.len() {
                let part = Frame::parse(&bytes[..cut], &limits);
                prop_assert!(part == Ok(None) || part == whole, "cut {} {:?} vs {:?}", cut, part, whole);
            }
        }

        #[test]
        fn encode_then_parse_is_identity(frame in any_frame()) {
            let bytes = frame.to_bytes();
            prop_assert_eq!(parse(&bytes), Ok(Some((frame.clone(), bytes.len()))));
            // And parse then encode gives back the very bytes.
            let (again, _) = parse(&bytes).unwrap().unwrap();
            prop_assert_eq!(again.to_bytes(), bytes);
        }

        #[test]
        fn split_points_do_not_change_the_frames(
            frames in proptest::collection::vec(any_frame(), 0..5),
            cuts in proptest::collection::vec(0usize..600, 0..8),
        ) {
            let stream: Vec<u8> = frames.iter().flat_map(Frame::to_bytes).collect();
            prop_assert_eq!(&feed(&stream, &[]), &frames);
            prop_assert_eq!(&feed(&stream, &cuts), &frames);
            let every_byte: Vec<usize> = (0..stream.len()).collect();
            prop_assert_eq!(&feed(&stream, &every_byte), &frames);
        }
    }
}
