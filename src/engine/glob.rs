//! Redis's glob patterns, matched in linear space and `O(pattern × text)` time: the one matcher
//! behind every pattern Picket accepts (`SENTINEL RESET`, `PSUBSCRIBE`, `SENTINEL CONFIG GET`,
//! `COMMAND LIST FILTERBY PATTERN`, webhook event filters).
//!
//! The semantics are Redis's `stringmatchlen`, byte by byte and case-sensitively: `*` matches any
//! run of bytes, `?` one byte, `[abc]` / `[^abc]` one byte in (or not in) the set, `[a-z]` a
//! range (`[z-a]` is the same range), `\x` the byte `x` (also inside a set); an unterminated set
//! (`[ab`) takes the rest of the pattern as its members, and a trailing `\` is a literal `\`.
//!
//! Redis matches `*` by recursion, which backtracks exponentially on patterns of many stars
//! (`*a*a*a...`): patterns arrive from clients that need no password, so that would let anyone
//! freeze the engine. Here every token other than `*` matches exactly one byte, so remembering
//! only the last `*` is enough (a later star can absorb anything an earlier one would have): each
//! restart moves the text position of the last star one byte further, which bounds the work by
//! the product of the lengths. [`check`] bounds the pattern's length, so the work for one text
//! is bounded too.

use std::fmt;

/// Longest pattern accepted, in bytes. Event names are under 40 bytes and master names are
/// short; a longer pattern has no use, only a cost (it is matched against every name).
pub const MAX_PATTERN_LEN: usize = 256;

/// A pattern over [`MAX_PATTERN_LEN`]: its `Display` is the error reply's text.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct PatternTooLong {
    /// The pattern's length in bytes.
    pub len: usize,
}

impl fmt::Display for PatternTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERR pattern too long ({} bytes): at most {MAX_PATTERN_LEN} bytes", self.len)
    }
}

/// Whether `pattern` may be accepted from a client.
///
/// # Errors
/// It is longer than [`MAX_PATTERN_LEN`].
pub const fn check(pattern: &[u8]) -> Result<(), PatternTooLong> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(PatternTooLong { len: pattern.len() });
    }
    Ok(())
}

/// Whether `text` matches the glob `pattern` (see the module documentation), in at most
/// `pattern.len() * (text.len() + 1)` steps.
#[must_use]
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // After the last `*`: its pattern position and the text position it resumes from.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        let next = match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => set(pattern, p, c),
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
            Some(&literal) => (literal == c).then_some(p + 1),
            None => None,
        };
        match (next, star) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((after, from))) => {
                // The star eats one more byte; the rest of the pattern starts over after it.
                p = after;
                t = from + 1;
                star = Some((after, from + 1));
            }
            (None, None) => return false,
        }
    }
    pattern.get(p..).unwrap_or_default().iter().all(|&b| b == b'*')
}

/// Matches `c` against the set opening at `pattern[open]` (`[`): the position after the set if
/// `c` is (or, negated, is not) a member.
fn set(pattern: &[u8], open: usize, c: u8) -> Option<usize> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut hit = false;
    let end = loop {
        match pattern.get(i) {
            Some(b'\\') if i + 1 < pattern.len() => {
                hit |= pattern[i + 1] == c;
                i += 2;
            }
            Some(b']') => break i + 1,
            // Unterminated: Redis takes the rest of the pattern as the set.
            None => break i,
            Some(&low) if i + 2 < pattern.len() && pattern[i + 1] == b'-' => {
                let high = pattern[i + 2];
                hit |= (low.min(high)..=low.max(high)).contains(&c);
                i += 3;
            }
            Some(&member) => {
                hit |= member == c;
                i += 1;
            }
        }
    };
    (hit != negate).then_some(end)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn glob(p: &str, t: &str) -> bool {
        matches(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn matches_like_redis_stringmatchlen() {
        let yes = [
            ("*", ""),
            ("*", "+switch-master"),
            ("**", ""),
            ("+*", "+sdown"),
            ("*-master", "+switch-master"),
            ("+?down", "+sdown"),
            ("+[os]down", "+odown"),
            ("+[^x]down", "+odown"),
            ("+[a-z]down", "+sdown"),
            ("+[z-a]down", "+sdown"),
            ("\\+sdown", "+sdown"),
            ("\\*x", "*x"),
            ("a*b*c", "aXXbYYc"),
            ("a*b*c", "abbbc"),
            ("*a*a*b", "aaaab"),
            ("[\\]]", "]"),
            ("[\\-]", "-"),
            ("[^]", "x"),
            // Unterminated sets take the rest of the pattern, as Redis does.
            ("[ab", "a"),
            ("x[ab", "xb"),
            ("[a-]", "^"),
            // A trailing backslash is a literal backslash.
            ("a\\", "a\\"),
            ("sess*", "session"),
            ("s?ssion", "session"),
        ];
        for (p, t) in yes {
            assert!(glob(p, t), "{p:?} should match {t:?}");
        }
        let no = [
            ("+sdown", "+SDOWN"),
            ("-*", "+sdown"),
            ("+?down", "+down"),
            ("+[^os]down", "+odown"),
            ("a*b*c", "aXXbYY"),
            ("?", ""),
            ("[a]", ""),
            ("abc", "abcd"),
            ("abcd", "abc"),
            ("\\*x", "ax"),
            ("[]a]", "a"),
            ("[ab", "[ab"),
            ("[", "["),
            ("[", "x"),
            // `a-]` is a range from `]` to `a` and leaves the set unterminated, as in Redis.
            ("[a-]", "-"),
            ("*a*a*b", "aaaa"),
            ("cache", "cache2"),
            ("[^c]ache", "cache"),
        ];
        for (p, t) in no {
            assert!(!glob(p, t), "{p:?} should not match {t:?}");
        }
    }

    #[test]
    fn works_on_bytes_not_characters() {
        assert!(matches(b"?\xa9", "é".as_bytes()));
        assert!(!matches(b"?", "é".as_bytes()));
        assert!(matches(b"[\x00-\xff]", b"\x80"));
    }

    #[test]
    fn checks_the_length_with_an_error_reply() {
        assert_eq!(check(&[b'*'; MAX_PATTERN_LEN]), Ok(()));
        let err = check(&[b'*'; MAX_PATTERN_LEN + 1]).unwrap_err();
        assert_eq!(err.to_string(), "ERR pattern too long (257 bytes): at most 256 bytes");
    }

    /// The patterns that make a backtracking matcher exponential, at the longest length
    /// accepted, against long texts. Redis's recursive matcher (and the one this replaced) does
    /// not finish these in a human lifetime; this one takes under a millisecond each (debug
    /// build). The bound is generous: it checks the complexity, not the speed.
    #[test]
    #[expect(clippy::disallowed_methods, reason = "a test timing the matcher, not engine code")]
    fn hostile_patterns_take_bounded_time() {
        let name = format!("{}b", "a".repeat(4095));
        let cases = [
            ("*".repeat(255), name.clone(), true),
            (format!("{}c", "*".repeat(255)), name.clone(), false),
            ("*a".repeat(MAX_PATTERN_LEN / 2), name.clone(), false),
            (format!("{}b", "*a".repeat(MAX_PATTERN_LEN / 2 - 1)), name.clone(), true),
            ("*?".repeat(MAX_PATTERN_LEN / 2), "a".repeat(100), false),
            ("*[a-z]".repeat(MAX_PATTERN_LEN / 6), format!("{}!", "a".repeat(4095)), false),
        ];
        for (pattern, text, expected) in cases {
            assert!(check(pattern.as_bytes()).is_ok());
            let started = Instant::now();
            assert_eq!(matches(pattern.as_bytes(), text.as_bytes()), expected, "{pattern:.20}");
            let took = started.elapsed();
            assert!(took < Duration::from_millis(50), "{pattern:.20}... took {took:?}");
        }
    }
}
