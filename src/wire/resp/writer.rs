//! Replies as a server writes them, in the protocol the connection negotiated.

use std::fmt;

use super::{Header, VecWriter, sanitize_line, write_double};

/// The reply protocol of a connection: RESP2 until the client sends `HELLO 3`.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum Protocol {
    /// RESP2: maps are flat arrays, nulls are `$-1`/`*-1`, booleans are integers, doubles are
    /// bulk strings.
    #[default]
    Resp2,
    /// RESP3: typed maps, sets, pushes, nulls, booleans, doubles and verbatim strings.
    Resp3,
}

/// Writes replies into a caller's buffer in the shape [`Protocol`] calls for, as Redis's
/// `addReply*` functions do.
///
/// Aggregates are written as a header (`array(n)`, `map(n)`, ...) followed by their elements
/// written with further calls: `n` elements, or `n` key-value pairs (2n calls) for `map`. The
/// writer does not check the count; the caller writes what it declared. Integers and lengths are
/// formatted on the stack: no method allocates beyond growing `out`.
#[derive(Debug)]
pub struct ReplyWriter<'a> {
    out: &'a mut Vec<u8>,
    proto: Protocol,
}

impl<'a> ReplyWriter<'a> {
    /// A writer appending to `out` in protocol `proto`.
    pub const fn new(out: &'a mut Vec<u8>, proto: Protocol) -> Self {
        Self { out, proto }
    }

    /// The protocol replies are written in.
    #[must_use]
    pub const fn protocol(&self) -> Protocol {
        self.proto
    }

    /// How many bytes the buffer holds (what was there before plus what was written).
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.out.len()
    }

    /// Switches the protocol for what is written next (a `HELLO 3` reply is already RESP3).
    pub const fn set_protocol(&mut self, proto: Protocol) {
        self.proto = proto;
    }

    /// Appends `bytes`, which must already be one or more complete RESP values in this
    /// writer's protocol: for replies prepared once and served many times.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// `+text`: a status reply. CR and LF in `text` would end the line early, so trailing ones
    /// are dropped and inner ones become spaces.
    pub fn simple(&mut self, text: &str) {
        self.line(b'+', text.as_bytes());
    }

    /// `-text`: an error reply. `text` is the whole message including its code, such as
    /// `ERR unknown command 'x'` or `NOAUTH Authentication required.`; CR and LF are handled as
    /// in [`ReplyWriter::simple`], as Redis does.
    pub fn error(&mut self, text: &str) {
        self.line(b'-', text.as_bytes());
    }

    /// Like [`ReplyWriter::error`] with formatted text, without an intermediate `String`:
    /// `w.error_fmt(format_args!("ERR {e}"))`.
    pub fn error_fmt(&mut self, text: fmt::Arguments<'_>) {
        self.out.push(b'-');
        let start = self.out.len();
        // Writing to a Vec cannot fail; a Display impl that fails leaves what it wrote.
        let _ = fmt::write(&mut VecWriter(self.out), text);
        sanitize_line(self.out, start);
        self.out.extend_from_slice(b"\r\n");
    }

    /// `:n`.
    pub fn integer(&mut self, n: i64) {
        self.out.extend_from_slice(Header::signed(b':', n).as_bytes());
    }

    /// `$len` and `data`. The room for all of it is reserved at once, so that a large bulk
    /// (an `ECHO` of a megabyte) does not double the buffer for its last two bytes.
    pub fn bulk(&mut self, data: &[u8]) {
        let header = Header::len(b'$', data.len());
        self.out.reserve(header.as_bytes().len() + data.len() + 2);
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\r\n");
    }

    /// `$len` and the UTF-8 of `text`.
    pub fn bulk_str(&mut self, text: &str) {
        self.bulk(text.as_bytes());
    }

    /// `n` in decimal as a bulk string, as Sentinel writes every number in its instance maps.
    pub fn bulk_u64(&mut self, n: u64) {
        let digits = Header::new(b'$', false, n);
        self.bulk_digits(&digits);
    }

    /// `n` in decimal as a bulk string.
    pub fn bulk_i64(&mut self, n: i64) {
        let digits = Header::signed(b'$', n);
        self.bulk_digits(&digits);
    }

    /// `value`'s `Display` text as a bulk string (addresses, ids, flags, ...).
    pub fn bulk_display(&mut self, value: &dyn fmt::Display) {
        let start = self.out.len();
        // Writing to a Vec cannot fail; a Display impl that fails leaves what it wrote, and the
        // length below counts exactly that, so the stream stays framed.
        let _ = fmt::write(&mut VecWriter(self.out), format_args!("{value}"));
        self.frame_tail_as_bulk(start);
    }

    /// A null bulk string: `$-1` in RESP2, `_` in RESP3.
    pub fn null_bulk(&mut self) {
        self.out.extend_from_slice(match self.proto {
            Protocol::Resp2 => b"$-1\r\n",
            Protocol::Resp3 => b"_\r\n",
        });
    }

    /// A null array: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        self.out.extend_from_slice(match self.proto {
            Protocol::Resp2 => b"*-1\r\n",
            Protocol::Resp3 => b"_\r\n",
        });
    }

    /// A null where the type does not matter: `$-1` in RESP2 (as Redis's `addReplyNull`),
    /// `_` in RESP3.
    pub fn null(&mut self) {
        self.null_bulk();
    }

    /// `*len`: an array of `len` elements follows.
    pub fn array(&mut self, len: usize) {
        self.out.extend_from_slice(Header::len(b'*', len).as_bytes());
    }

    /// A map of `len` key-value pairs follows: `%len` in RESP3, an array of `2 * len` elements
    /// (key, value, key, value, ...) in RESP2.
    pub fn map(&mut self, len: usize) {
        let header = match self.proto {
            Protocol::Resp2 => Header::len(b'*', len.saturating_mul(2)),
            Protocol::Resp3 => Header::len(b'%', len),
        };
        self.out.extend_from_slice(header.as_bytes());
    }

    /// A set of `len` elements follows: `~len` in RESP3, `*len` in RESP2.
    pub fn set(&mut self, len: usize) {
        self.aggregate(b'~', len);
    }

    /// A push message of `len` elements follows (pub/sub): `>len` in RESP3, `*len` in RESP2.
    pub fn push(&mut self, len: usize) {
        self.aggregate(b'>', len);
    }

    /// `#t`/`#f` in RESP3; `:1`/`:0` in RESP2, as Redis does.
    pub fn boolean(&mut self, value: bool) {
        self.out.extend_from_slice(match (self.proto, value) {
            (Protocol::Resp2, true) => b":1\r\n",
            (Protocol::Resp2, false) => b":0\r\n",
            (Protocol::Resp3, true) => b"#t\r\n",
            (Protocol::Resp3, false) => b"#f\r\n",
        });
    }

    /// `,text` in RESP3; the same text as a bulk string in RESP2. The text is `inf`, `-inf`,
    /// `nan`, a plain decimal for magnitudes in `[1e-5, 1e16)` and zero, or exponent form.
    pub fn double(&mut self, value: f64) {
        match self.proto {
            Protocol::Resp2 => {
                let start = self.out.len();
                write_double(self.out, value);
                self.frame_tail_as_bulk(start);
            }
            Protocol::Resp3 => {
                self.out.push(b',');
                write_double(self.out, value);
                self.out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// `(digits` in RESP3; a bulk string of `digits` in RESP2, as Redis does. `digits` must be
    /// `-`? and decimal digits.
    pub fn big_number(&mut self, digits: &str) {
        match self.proto {
            Protocol::Resp2 => self.bulk_str(digits),
            Protocol::Resp3 => self.line(b'(', digits.as_bytes()),
        }
    }

    /// `=len` and `format:text` in RESP3 (`format` is `txt` for plain text, `mkd` for
    /// markdown); in RESP2 a bulk string of `text` alone, as Redis does.
    pub fn verbatim(&mut self, format: [u8; 3], text: &[u8]) {
        match self.proto {
            Protocol::Resp2 => self.bulk(text),
            Protocol::Resp3 => {
                let len = text.len().saturating_add(4);
                self.out.extend_from_slice(Header::len(b'=', len).as_bytes());
                self.out.extend_from_slice(&format);
                self.out.push(b':');
                self.out.extend_from_slice(text);
                self.out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// `prefix` then `len` in RESP3, `*len` in RESP2.
    fn aggregate(&mut self, prefix: u8, len: usize) {
        let prefix = match self.proto {
            Protocol::Resp2 => b'*',
            Protocol::Resp3 => prefix,
        };
        self.out.extend_from_slice(Header::len(prefix, len).as_bytes());
    }

    /// `prefix`, the sanitized `text`, CRLF.
    fn line(&mut self, prefix: u8, text: &[u8]) {
        self.out.push(prefix);
        let start = self.out.len();
        self.out.extend_from_slice(text);
        sanitize_line(self.out, start);
        self.out.extend_from_slice(b"\r\n");
    }

    /// A bulk string of the digits in `formatted` (a header whose prefix and CRLF are dropped).
    fn bulk_digits(&mut self, formatted: &Header) {
        let bytes = formatted.as_bytes();
        let digits = bytes.get(1..bytes.len().saturating_sub(2)).unwrap_or_default();
        self.bulk(digits);
    }

    /// Turns the bytes written since `start` into a bulk string: the length is only known once
    /// the text is written, so the header is appended and rotated in front of the text, which
    /// moves bytes but allocates nothing.
    fn frame_tail_as_bulk(&mut self, start: usize) {
        let len = self.out.len().saturating_sub(start);
        let header = Header::len(b'$', len);
        self.out.extend_from_slice(header.as_bytes());
        if let Some(tail) = self.out.get_mut(start..) {
            tail.rotate_right(header.as_bytes().len());
        }
        self.out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `write` produces in RESP2 and in RESP3.
    fn both(write: impl Fn(&mut ReplyWriter<'_>)) -> (Vec<u8>, Vec<u8>) {
        let run = |proto| {
            let mut out = Vec::new();
            write(&mut ReplyWriter::new(&mut out, proto));
            out
        };
        (run(Protocol::Resp2), run(Protocol::Resp3))
    }

    /// `write` gives `resp2` and `resp3` bytes respectively.
    fn check(write: impl Fn(&mut ReplyWriter<'_>), resp2: &[u8], resp3: &[u8]) {
        let (two, three) = both(write);
        assert_eq!(two.escape_ascii().to_string(), resp2.escape_ascii().to_string(), "RESP2");
        assert_eq!(three.escape_ascii().to_string(), resp3.escape_ascii().to_string(), "RESP3");
    }

    /// Same bytes in both protocols.
    fn same(write: impl Fn(&mut ReplyWriter<'_>), bytes: &[u8]) {
        check(write, bytes, bytes);
    }

    #[test]
    fn scalars() {
        same(|w| w.simple("OK"), b"+OK\r\n");
        same(|w| w.simple("a\r\nb\n"), b"+a  b\r\n");
        same(|w| w.error("ERR unknown command 'x'"), b"-ERR unknown command 'x'\r\n");
        same(|w| w.error("ERR bad\r\nthing\r\n"), b"-ERR bad  thing\r\n");
        same(|w| w.error_fmt(format_args!("ERR {} {}", "no\nsuch", 7)), b"-ERR no such 7\r\n");
        // How a server answers a request it cannot parse, before closing the connection.
        same(
            |w| {
                w.error_fmt(format_args!("ERR {}", super::super::ProtocolError::ExpectedBulk(b'P')))
            },
            b"-ERR Protocol error: expected '$', got 'P'\r\n",
        );
        same(|w| w.integer(0), b":0\r\n");
        same(|w| w.integer(-42), b":-42\r\n");
        same(|w| w.integer(i64::MAX), b":9223372036854775807\r\n");
        same(|w| w.bulk(b"\x00\r\n"), b"$3\r\n\x00\r\n\r\n");
        same(|w| w.bulk(b""), b"$0\r\n\r\n");
        same(|w| w.bulk_str("mymaster"), b"$8\r\nmymaster\r\n");
        same(|w| w.bulk_u64(0), b"$1\r\n0\r\n");
        same(|w| w.bulk_u64(u64::MAX), b"$20\r\n18446744073709551615\r\n");
        same(|w| w.bulk_i64(-1), b"$2\r\n-1\r\n");
        same(|w| w.bulk_i64(i64::MIN), b"$20\r\n-9223372036854775808\r\n");
        same(|w| w.bulk_display(&"127.0.0.1:6379"), b"$14\r\n127.0.0.1:6379\r\n");
        same(|w| w.bulk_display(&""), b"$0\r\n\r\n");
    }

    #[test]
    fn protocol_dependent_shapes() {
        check(|w| w.null_bulk(), b"$-1\r\n", b"_\r\n");
        check(|w| w.null_array(), b"*-1\r\n", b"_\r\n");
        check(|w| w.null(), b"$-1\r\n", b"_\r\n");
        same(|w| w.array(3), b"*3\r\n");
        same(|w| w.array(0), b"*0\r\n");
        check(|w| w.map(2), b"*4\r\n", b"%2\r\n");
        check(|w| w.map(0), b"*0\r\n", b"%0\r\n");
        check(|w| w.set(5), b"*5\r\n", b"~5\r\n");
        check(|w| w.push(3), b"*3\r\n", b">3\r\n");
        check(|w| w.boolean(true), b":1\r\n", b"#t\r\n");
        check(|w| w.boolean(false), b":0\r\n", b"#f\r\n");
        check(|w| w.double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n");
        check(|w| w.double(-0.0), b"$2\r\n-0\r\n", b",-0\r\n");
        check(|w| w.double(3.0), b"$1\r\n3\r\n", b",3\r\n");
        check(|w| w.double(1e300), b"$5\r\n1e300\r\n", b",1e300\r\n");
        check(|w| w.double(1.5e-7), b"$6\r\n1.5e-7\r\n", b",1.5e-7\r\n");
        check(|w| w.double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n");
        check(|w| w.double(f64::NEG_INFINITY), b"$4\r\n-inf\r\n", b",-inf\r\n");
        check(|w| w.double(f64::NAN), b"$3\r\nnan\r\n", b",nan\r\n");
        check(|w| w.big_number("-123"), b"$4\r\n-123\r\n", b"(-123\r\n");
        check(|w| w.verbatim(*b"txt", b"a\r\nb"), b"$4\r\na\r\nb\r\n", b"=8\r\ntxt:a\r\nb\r\n");
        assert_eq!(ReplyWriter::new(&mut Vec::new(), Protocol::Resp3).protocol(), Protocol::Resp3);
        assert_eq!(Protocol::default(), Protocol::Resp2);
    }

    #[test]
    fn a_sentinel_style_reply_in_both_protocols() {
        let (two, three) = both(|w| {
            w.array(1);
            w.map(2);
            w.bulk_str("name");
            w.bulk_str("mymaster");
            w.bulk_str("port");
            w.bulk_u64(6379);
        });
        assert_eq!(
            two,
            b"*1\r\n*4\r\n$4\r\nname\r\n$8\r\nmymaster\r\n$4\r\nport\r\n$4\r\n6379\r\n"
        );
        assert_eq!(
            three,
            b"*1\r\n%2\r\n$4\r\nname\r\n$8\r\nmymaster\r\n$4\r\nport\r\n$4\r\n6379\r\n"
        );
        // What the writer produces is what the frame parser reads.
        let parsed = crate::wire::resp::Frame::parse(&three, &crate::wire::resp::Limits::DEFAULT);
        assert!(matches!(parsed, Ok(Some((_, n))) if n == three.len()));
    }

    #[test]
    fn appends_after_existing_bytes() {
        let mut out = b"+OK\r\n".to_vec();
        let mut w = ReplyWriter::new(&mut out, Protocol::Resp2);
        w.bulk_display(&12.5);
        w.double(2.0);
        assert_eq!(out, b"+OK\r\n$4\r\n12.5\r\n$1\r\n2\r\n");
    }

    #[test]
    fn raw_bytes_and_a_protocol_switch() {
        let mut out = Vec::new();
        let mut w = ReplyWriter::new(&mut out, Protocol::Resp2);
        w.map(1);
        w.raw(b"$1\r\na\r\n:1\r\n");
        w.set_protocol(Protocol::Resp3);
        assert_eq!(w.protocol(), Protocol::Resp3);
        w.map(0);
        assert_eq!(out, b"*2\r\n$1\r\na\r\n:1\r\n%0\r\n");
    }
}
