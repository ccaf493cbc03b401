//! Client requests as a server reads them: Redis's `processMultibulkBuffer` and
//! `processInlineBuffer`, minus the copying.

use std::ops::Range;

use super::{Limits, Line, ProtocolError, line, parse_i64};

/// Redis's `proto-max-bulk-len` default: a longer request argument is a protocol error.
pub const REDIS_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;

/// Redis's ceiling on a request's argument count (`INT_MAX`).
pub const REDIS_MAX_ARGS: i64 = i32::MAX as i64;

/// At most this many argument slots are reserved up front from a declared count; more grow as
/// arguments actually arrive, so a header alone cannot make us allocate much.
const RESERVE_ARGS: usize = 64;

/// Parses one client request from the front of `buf`.
///
/// A request is a multibulk array of bulk strings (`*2\r\n$4\r\nPING\r\n$3\r\nabc\r\n`) when
/// `buf` starts with `*`, and otherwise an inline command: one line ended by LF or CRLF, split
/// into words on spaces and tabs, with Redis's quoting (`"hello world"`, `'it is'`).
///
/// Returns `Ok(Some(consumed))` with `args` holding the range in `buf` of each argument,
/// `Ok(None)` when `buf` holds no complete request yet (nothing is consumed: append more bytes
/// and call again), or the error Redis would reply with before closing the connection. `args`
/// is cleared first, and is empty unless a request was parsed. A request with no arguments (an
/// empty line, `*0\r\n`, or, as Redis allows, a negative count such as `*-1\r\n`) is consumed
/// with `args` empty; a server ignores it, as Redis does.
///
/// The result is the same however the bytes were split across calls. Declared counts and
/// lengths are checked against `limits` as soon as their line is read, before any body arrives.
/// Apart from growing `args`, it does not allocate.
///
/// Differences from Redis, all stricter: a bulk body must be followed by CRLF, a length line's
/// CR must be followed by LF, an inline line is too long by its length even once its LF has
/// arrived, NUL is an ordinary byte in inline commands, and an inline argument whose value
/// needs unescaping (`"a\n"`, `'it\'s'`) or glues text to a quoted part (`a"b c"`) is
/// [`ProtocolError::UnsupportedInlineQuoting`], because `args` can only point into `buf`.
///
/// # Errors
/// The [`ProtocolError`] to reply with (after `ERR `); the connection cannot continue.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    args.clear();
    let result = match buf.first() {
        None => Ok(None),
        Some(b'*') => multibulk(buf, limits, args),
        Some(_) => inline(buf, limits, args),
    };
    if !matches!(result, Ok(Some(_))) {
        args.clear();
    }
    result
}

/// `*<count>\r\n` then `count` times `$<len>\r\n<bytes>\r\n`.
fn multibulk(
    buf: &[u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let (count, mut pos) = match line(buf, 1, limits.max_inline_len) {
        Line::Complete { end, next } => (buf.get(1..end).and_then(parse_i64), next),
        Line::Incomplete => return Ok(None),
        Line::TooLong => return Err(ProtocolError::TooBigMultibulkCount),
        Line::BadTerminator => return Err(ProtocolError::InvalidMultibulkLength),
    };
    let count = count.ok_or(ProtocolError::InvalidMultibulkLength)?;
    // Redis treats a count of zero or below as an empty command and skips it.
    let Ok(count) = usize::try_from(count) else {
        return Ok(Some(pos));
    };
    if count > limits.max_array_len {
        return Err(if i64::try_from(count).is_ok_and(|c| c <= REDIS_MAX_ARGS) {
            ProtocolError::RequestTooLarge
        } else {
            ProtocolError::InvalidMultibulkLength
        });
    }
    args.reserve(count.min(RESERVE_ARGS));
    for _ in 0..count {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&other) => return Err(ProtocolError::ExpectedBulk(other)),
        }
        let (len, body) = match line(buf, pos + 1, limits.max_inline_len) {
            Line::Complete { end, next } => (buf.get(pos + 1..end).and_then(parse_i64), next),
            Line::Incomplete => return Ok(None),
            Line::TooLong => return Err(ProtocolError::TooBigBulkCount),
            Line::BadTerminator => return Err(ProtocolError::InvalidBulkLength),
        };
        let len =
            len.and_then(|n| usize::try_from(n).ok()).ok_or(ProtocolError::InvalidBulkLength)?;
        if len > limits.max_bulk_len {
            return Err(if u64::try_from(len).is_ok_and(|n| n <= REDIS_MAX_BULK_LEN) {
                ProtocolError::RequestTooLarge
            } else {
                ProtocolError::InvalidBulkLength
            });
        }
        let end = body.checked_add(len).ok_or(ProtocolError::InvalidBulkLength)?;
        match buf.get(end..end.saturating_add(2)) {
            Some(b"\r\n") => {}
            Some(_) => return Err(ProtocolError::BadBulkTerminator),
            None => return Ok(None),
        }
        args.push(body..end);
        pos = end + 2;
    }
    Ok(Some(pos))
}

/// Discards a multibulk request as its bytes arrive, without keeping them: what a server does
/// with a request over its [`Limits`] that Redis would accept ([`ProtocolError::RequestTooLarge`]
/// or a request bigger than its query buffer), so that it can answer an error and go on
/// instead of closing the connection. Start it at the request's first byte.
#[derive(Debug, Default)]
pub struct Skip {
    /// Arguments still to skip; `None` before the count line.
    args_left: Option<u64>,
    /// Bytes of the current argument (with its CRLF) still to skip.
    body_left: u64,
}

impl Skip {
    /// Skips what it can from the front of `buf`: the bytes consumed, and whether the request
    /// has ended. Lines are bounded by `limits`; counts and lengths by Redis's own ceilings.
    ///
    /// # Errors
    /// The request is not valid RESP even for Redis: the connection cannot continue.
    pub fn advance(&mut self, buf: &[u8], limits: &Limits) -> Result<(usize, bool), ProtocolError> {
        let mut pos = 0;
        loop {
            let available = buf.len().saturating_sub(pos);
            let take = usize::try_from(self.body_left).map_or(available, |n| n.min(available));
            pos += take;
            self.body_left -= take as u64;
            if self.body_left > 0 {
                return Ok((pos, false));
            }
            let expected = match self.args_left {
                Some(0) => return Ok((pos, true)),
                Some(_) => b'$',
                None => b'*',
            };
            match buf.get(pos) {
                None => return Ok((pos, false)),
                Some(&b) if b == expected => {}
                Some(&other) if expected == b'$' => return Err(ProtocolError::ExpectedBulk(other)),
                Some(_) => return Err(ProtocolError::InvalidMultibulkLength),
            }
            let (number, next) = match line(buf, pos + 1, limits.max_inline_len) {
                Line::Complete { end, next } => (buf.get(pos + 1..end).and_then(parse_i64), next),
                Line::Incomplete => return Ok((pos, false)),
                Line::TooLong => return Err(ProtocolError::TooBigBulkCount),
                Line::BadTerminator => return Err(ProtocolError::BadLineTerminator),
            };
            match self.args_left {
                None => {
                    let count = number
                        .filter(|&n| n <= REDIS_MAX_ARGS)
                        .ok_or(ProtocolError::InvalidMultibulkLength)?;
                    self.args_left = Some(u64::try_from(count).unwrap_or(0));
                }
                Some(left) => {
                    let len = number
                        .and_then(|n| u64::try_from(n).ok())
                        .filter(|&n| n <= REDIS_MAX_BULK_LEN)
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    self.body_left = len + 2;
                    self.args_left = Some(left - 1);
                }
            }
            pos = next;
        }
    }
}

/// One line ended by LF (an optional CR before it is dropped), split into arguments.
fn inline(
    buf: &[u8],
    limits: &Limits,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let max = limits.max_inline_len;
    let window = buf.get(..max.saturating_add(1)).unwrap_or(buf);
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() > max { Err(ProtocolError::TooBigInlineRequest) } else { Ok(None) };
    };
    let end = if lf > 0 && buf.get(lf - 1) == Some(&b'\r') { lf - 1 } else { lf };
    split_args(buf, end, args)?;
    Ok(Some(lf + 1))
}

/// Whitespace between arguments: C's `isspace`, as `sdssplitargs` skips.
const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// What ends an unquoted argument in `sdssplitargs` (NUL aside, see [`parse_request`]).
const fn ends_word(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Splits `buf[..end]` into arguments following Redis's `sdssplitargs`.
///
/// An argument is an unquoted prefix optionally followed by one quoted part (a closing quote
/// must be followed by a space or the end of the line). Inside double quotes `\xHH` and `\c`
/// are escapes; inside single quotes only `\'` is. The whole line is checked for balance before
/// an argument that needs unescaping is reported, so the error is the one Redis would give
/// whenever Redis would give one.
fn split_args(buf: &[u8], end: usize, args: &mut Vec<Range<usize>>) -> Result<(), ProtocolError> {
    let line = buf.get(..end).unwrap_or_default();
    let mut unsupported = false;
    let mut pos = 0;
    loop {
        while line.get(pos).is_some_and(|&b| is_space(b)) {
            pos += 1;
        }
        if pos >= line.len() {
            break;
        }
        let start = pos;
        while line.get(pos).is_some_and(|&b| !ends_word(b) && b != b'"' && b != b'\'') {
            pos += 1;
        }
        let Some(&quote @ (b'"' | b'\'')) = line.get(pos) else {
            args.push(start..pos);
            continue;
        };
        let open = pos + 1;
        let (close, escaped) = closing_quote(line, open, quote)?;
        pos = close + 1;
        if line.get(pos).is_some_and(|&b| !is_space(b)) {
            return Err(ProtocolError::UnbalancedQuotes);
        }
        // The value is `line[start..open - 1]` followed by the unescaped `line[open..close]`;
        // it is a range of `buf` only if one of the two is empty and nothing was escaped.
        if escaped || (open - 1 > start && close > open) {
            unsupported = true;
        } else if close > open {
            args.push(open..close);
        } else {
            args.push(start..open - 1);
        }
    }
    if unsupported { Err(ProtocolError::UnsupportedInlineQuoting) } else { Ok(()) }
}

/// Finds the quote closing one opened just before `open`; also says whether anything in
/// between was an escape.
fn closing_quote(line: &[u8], open: usize, quote: u8) -> Result<(usize, bool), ProtocolError> {
    let mut escaped = false;
    let mut pos = open;
    loop {
        let Some(&b) = line.get(pos) else {
            return Err(ProtocolError::UnbalancedQuotes);
        };
        let next = line.get(pos + 1).copied();
        if b == quote {
            return Ok((pos, escaped));
        }
        if b == b'\\' && quote == b'"' && next.is_some() {
            let hex = next == Some(b'x')
                && line.get(pos + 2).is_some_and(u8::is_ascii_hexdigit)
                && line.get(pos + 3).is_some_and(u8::is_ascii_hexdigit);
            escaped = true;
            pos += if hex { 4 } else { 2 };
        } else if b == b'\\' && quote == b'\'' && next == Some(b'\'') {
            escaped = true;
            pos += 2;
        } else {
            pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The consumed length and the arguments, copied out.
    type Parsed = Result<Option<(usize, Vec<Vec<u8>>)>, ProtocolError>;

    /// Parses with the default limits.
    fn parse(buf: &[u8]) -> Parsed {
        parse_with(buf, &Limits::DEFAULT)
    }

    fn parse_with(buf: &[u8], limits: &Limits) -> Parsed {
        let mut args = Vec::new();
        let consumed = parse_request(buf, limits, &mut args)?;
        Ok(consumed.map(|n| (n, args.iter().map(|r| buf[r.clone()].to_vec()).collect())))
    }

    fn words(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn ok(buf: &[u8], list: &[&str]) {
        assert_eq!(parse(buf), Ok(Some((buf.len(), words(list)))), "{:?}", buf.escape_ascii());
    }

    fn err(buf: &[u8], e: ProtocolError) {
        assert_eq!(parse(buf), Err(e), "{:?}", buf.escape_ascii().to_string());
    }

    #[test]
    fn multibulk_requests() {
        ok(b"*1\r\n$4\r\nPING\r\n", &["PING"]);
        ok(b"*2\r\n$4\r\nPING\r\n$3\r\nabc\r\n", &["PING", "abc"]);
        ok(b"*3\r\n$8\r\nSENTINEL\r\n$0\r\n\r\n$4\r\na\r\nb\r\n", &["SENTINEL", "", "a\r\nb"]);
        ok(b"*0\r\n", &[]);
        ok(b"*-1\r\n", &[]);
        ok(b"*-7\r\n", &[]);
        let binary = b"*1\r\n$3\r\n\x00\xff*\r\n";
        assert_eq!(parse(binary), Ok(Some((binary.len(), vec![b"\x00\xff*".to_vec()]))));
    }

    #[test]
    fn inline_requests() {
        ok(b"PING\r\n", &["PING"]);
        ok(b"SENTINEL masters\n", &["SENTINEL", "masters"]);
        ok(
            b"  SENTINEL \t get-master-addr-by-name   mymaster  \r\n",
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        );
        ok(b"\r\n", &[]);
        ok(b"\n", &[]);
        ok(b"   \r\n", &[]);
        ok(b"a\rb\n", &["a", "b"]);
        // Like Redis: any `isspace` byte separates, but only space, tab, CR and LF end a word.
        ok(b"\x0bPING\x0c\n", &["PING\x0c"]);
        ok(b"set \"hello world\" 'it is' \"\" ''\r\n", &["set", "hello world", "it is", "", ""]);
        ok(b"echo 'a\\b' \"x'y\" 'x\"y'\n", &["echo", "a\\b", "x'y", "x\"y"]);
        ok(b"echo abc\"\" ''\n", &["echo", "abc", ""]);
        // A '$' line is just a word to the inline parser, as in Redis.
        ok(b"$3\r\n", &["$3"]);
    }

    #[test]
    fn inline_quoting_errors() {
        err(b"set \"abc\n", ProtocolError::UnbalancedQuotes);
        err(b"set 'abc\n", ProtocolError::UnbalancedQuotes);
        err(b"set \"a\"b\n", ProtocolError::UnbalancedQuotes);
        err(b"set 'a'b\n", ProtocolError::UnbalancedQuotes);
        err(b"set \"a\\\"\n", ProtocolError::UnbalancedQuotes);
        err(b"set 'it\\'s\n", ProtocolError::UnbalancedQuotes);
        err(b"set \"a\\n\" b\n", ProtocolError::UnsupportedInlineQuoting);
        err(b"set \"\\x41\"\n", ProtocolError::UnsupportedInlineQuoting);
        err(b"set 'it\\'s'\n", ProtocolError::UnsupportedInlineQuoting);
        err(b"set a\"b c\"\n", ProtocolError::UnsupportedInlineQuoting);
        // Unbalanced anywhere on the line wins, as Redis reports it for the whole line.
        err(b"set \"a\\n\" \"b\n", ProtocolError::UnbalancedQuotes);
    }

    #[test]
    fn pipelines_parse_one_request_at_a_time() {
        let stream =
            b"*1\r\n$4\r\nPING\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n\r\n*0\r\nINFO\n";
        let mut rest = &stream[..];
        let mut got = Vec::new();
        while let Some((n, args)) = parse(rest).unwrap() {
            got.push(args);
            rest = &rest[n..];
        }
        assert!(rest.is_empty());
        assert_eq!(
            got,
            vec![
                words(&["PING"]),
                words(&["PING"]),
                words(&["ECHO", "hi"]),
                vec![],
                vec![],
                words(&["INFO"]),
            ]
        );
    }

    #[test]
    fn incomplete_requests_consume_nothing() {
        let full = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(b"PING"), Ok(None));
        assert_eq!(parse(b"PING\r"), Ok(None));
        let mut args = vec![0..1, 2..3];
        assert_eq!(parse_request(b"*1\r\n$4\r\nPI", &Limits::DEFAULT, &mut args), Ok(None));
        assert!(args.is_empty());
    }

    #[test]
    fn multibulk_errors_use_redis_text() {
        err(b"*\r\n", ProtocolError::InvalidMultibulkLength);
        err(b"*x\r\n", ProtocolError::InvalidMultibulkLength);
        err(b"*01\r\n", ProtocolError::InvalidMultibulkLength);
        err(b"*+1\r\n", ProtocolError::InvalidMultibulkLength);
        err(b"*1 \r\n", ProtocolError::InvalidMultibulkLength);
        err(b"*1\rX", ProtocolError::InvalidMultibulkLength);
        err(b"*2147483648\r\n", ProtocolError::InvalidMultibulkLength);
        err(b"*99999999999\r\n", ProtocolError::InvalidMultibulkLength);
        err(b"*99999999999999999999999\r\n", ProtocolError::InvalidMultibulkLength);
        err(b"*1\r\nPING\r\n", ProtocolError::ExpectedBulk(b'P'));
        err(b"*1\r\n*1\r\n", ProtocolError::ExpectedBulk(b'*'));
        err(b"*2\r\n$1\r\na\r\n:1\r\n", ProtocolError::ExpectedBulk(b':'));
        err(b"*1\r\n$\r\n", ProtocolError::InvalidBulkLength);
        err(b"*1\r\n$-1\r\n", ProtocolError::InvalidBulkLength);
        err(b"*1\r\n$-2\r\n", ProtocolError::InvalidBulkLength);
        err(b"*1\r\n$01\r\n", ProtocolError::InvalidBulkLength);
        err(b"*1\r\n$1\rX", ProtocolError::InvalidBulkLength);
        err(b"*1\r\n$3\r\nabcXY", ProtocolError::BadBulkTerminator);
        err(b"*1\r\n$3\r\nabc\n\r", ProtocolError::BadBulkTerminator);
        assert_eq!(
            ProtocolError::InvalidMultibulkLength.to_string(),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            ProtocolError::InvalidBulkLength.to_string(),
            "Protocol error: invalid bulk length"
        );
    }

    #[test]
    fn oversize_declarations_fail_before_the_body() {
        // Exactly at the limit waits for the body; one over fails on the header alone: to be
        // skipped and answered while Redis would accept it, for good past Redis's ceiling.
        let at = format!("*1\r\n${}\r\n", Limits::DEFAULT_MAX_BULK_LEN);
        assert_eq!(parse(at.as_bytes()), Ok(None));
        let over = format!("*1\r\n${}\r\n", Limits::DEFAULT_MAX_BULK_LEN + 1);
        err(over.as_bytes(), ProtocolError::RequestTooLarge);
        err(b"*1\r\n$536870912\r\n", ProtocolError::RequestTooLarge);
        err(b"*1\r\n$536870913\r\n", ProtocolError::InvalidBulkLength);
        err(b"*1\r\n$9223372036854775807\r\n", ProtocolError::InvalidBulkLength);
        err(b"*65537\r\n", ProtocolError::RequestTooLarge);
        err(b"*2147483647\r\n", ProtocolError::RequestTooLarge);
        assert_eq!(parse(b"*65536\r\n"), Ok(None));
        // With no bulk limit at all, the largest length is refused or awaited, never indexed.
        let open = Limits { max_bulk_len: usize::MAX, ..Limits::DEFAULT };
        let huge = parse_with(b"*1\r\n$9223372036854775807\r\n", &open);
        assert!(matches!(huge, Ok(None) | Err(ProtocolError::InvalidBulkLength)), "{huge:?}");
    }

    #[test]
    fn overlong_lines_are_refused() {
        let limits = Limits { max_inline_len: 16, ..Limits::DEFAULT };
        let run = |text: &str| parse_with(text.as_bytes(), &limits);
        assert_eq!(run(&format!("PING {}", "a".repeat(11))), Ok(None));
        assert_eq!(
            run(&format!("PING {}", "a".repeat(12))),
            Err(ProtocolError::TooBigInlineRequest)
        );
        assert_eq!(
            run(&format!("PING {}\r\n", "a".repeat(12))),
            Err(ProtocolError::TooBigInlineRequest)
        );
        assert_eq!(run(&format!("PING {}\n", "a".repeat(11))).map(|r| r.is_some()), Ok(true));
        assert_eq!(run(&format!("*{}", "1".repeat(17))), Err(ProtocolError::TooBigMultibulkCount));
        assert_eq!(run(&format!("*1\r\n${}", "1".repeat(17))), Err(ProtocolError::TooBigBulkCount));
        assert_eq!(
            ProtocolError::TooBigInlineRequest.to_string(),
            "Protocol error: too big inline request"
        );
        assert_eq!(
            ProtocolError::TooBigMultibulkCount.to_string(),
            "Protocol error: too big mbulk count string"
        );
        assert_eq!(
            ProtocolError::TooBigBulkCount.to_string(),
            "Protocol error: too big bulk count string"
        );
        assert_eq!(
            ProtocolError::UnbalancedQuotes.to_string(),
            "Protocol error: unbalanced quotes in request"
        );
    }

    /// Feeds `stream` to a connection-like loop in chunks cut at `cuts`, collecting every
    /// request (or the first error) in order.
    fn feed(stream: &[u8], cuts: &[usize], limits: &Limits) -> Vec<Result<Vec<Vec<u8>>, ()>> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut args = Vec::new();
        let mut fed = 0;
        let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(stream.len())).collect();
        bounds.sort_unstable();
        bounds.push(stream.len());
        for bound in bounds {
            buf.extend_from_slice(&stream[fed..bound.max(fed)]);
            fed = bound.max(fed);
            loop {
                match parse_request(&buf, limits, &mut args) {
                    Ok(Some(n)) => {
                        out.push(Ok(args.iter().map(|r| buf[r.clone()].to_vec()).collect()));
                        buf.drain(..n);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        out.push(Err(()));
                        return out;
                    }
                }
            }
        }
        out
    }

    /// Bytes that look like requests often enough to reach every branch.
    fn requestish() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"*".to_vec()),
            Just(b"$".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\n".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"'".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"x4".to_vec()),
            Just(b"-1".to_vec()),
            (0u8..5).prop_map(|n| n.to_string().into_bytes()),
            Just(b"PING".to_vec()),
            any::<u8>().prop_map(|b| vec![b]),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    /// A valid stream of requests in both syntaxes.
    fn valid_stream() -> impl Strategy<Value = Vec<u8>> {
        let arg = proptest::collection::vec(any::<u8>(), 0..12);
        let multibulk = proptest::collection::vec(arg, 0..5).prop_map(|args| {
            let mut out = format!("*{}\r\n", args.len()).into_bytes();
            for a in args {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(&a);
                out.extend_from_slice(b"\r\n");
            }
            out
        });
        let inline = "[a-zA-Z0-9 ]{0,20}( \"[a-z ]*\")?\r?\n".prop_map(String::into_bytes);
        proptest::collection::vec(prop_oneof![multibulk, inline], 0..6).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut args = Vec::new();
            let _ = parse_request(&bytes, &Limits::DEFAULT, &mut args);
        }

        #[test]
        fn a_prefix_agrees_with_the_whole(bytes in requestish()) {
            let limits = Limits { max_inline_len: 8, max_bulk_len: 8, ..Limits::DEFAULT };
            let whole = parse_with(&bytes, &limits);
            for cut in 0..bytes.len() {
                let part = parse_with(&bytes[..cut], &limits);
                prop_assert!(part == Ok(None) || part == whole, "cut {} {:?} vs {:?}", cut, part, whole);
            }
            if let Ok(Some((n, _))) = whole {
                prop_assert!(n <= bytes.len());
            }
        }

        #[test]
        fn split_points_do_not_change_the_requests(
            stream in valid_stream(),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let whole = feed(&stream, &[], &Limits::DEFAULT);
            prop_assert!(whole.iter().all(Result::is_ok));
            prop_assert_eq!(feed(&stream, &cuts, &Limits::DEFAULT), whole);
            let one_byte_at_a_time: Vec<usize> = (0..stream.len()).collect();
            prop_assert_eq!(feed(&stream, &one_byte_at_a_time, &Limits::DEFAULT), feed(&stream, &[], &Limits::DEFAULT));
        }
    }

    /// A skipped request is consumed exactly, however its bytes are split, and what follows it
    /// is left for the parser; what Redis refuses is still an error.
    #[test]
    fn skip_consumes_exactly_one_request() {
        let mut request = b"*3\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n$0\r\n\r\n".to_vec();
        let len = request.len();
        request.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        for split in 1..len {
            let mut skip = Skip::default();
            let mut pos = 0;
            let mut end = split;
            loop {
                let (n, done) = skip.advance(&request[pos..end], &Limits::DEFAULT).unwrap();
                pos += n;
                if done {
                    break;
                }
                assert!(end < request.len(), "split at {split}: never finished");
                end = request.len();
            }
            assert_eq!(pos, len, "split at {split}");
        }
        let refused = [
            (&b"*1\r\n$536870913\r\n"[..], ProtocolError::InvalidBulkLength),
            (b"*2147483648\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*1\r\n:1\r\n", ProtocolError::ExpectedBulk(b':')),
            (b"PING\r\n", ProtocolError::InvalidMultibulkLength),
        ];
        for (bytes, e) in refused {
            assert_eq!(Skip::default().advance(bytes, &Limits::DEFAULT), Err(e));
        }
    }
}
