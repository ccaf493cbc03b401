//! Pub/sub on the Sentinel port: every engine event on the channel of its name.
//!
//! The engine's events are the only messages: `+switch-master`, `+sdown`, `+odown`, ... with
//! Sentinel's payloads ([`crate::engine::Event::payload`]), so `PSUBSCRIBE *` tells a failover's
//! whole story and clients that `SUBSCRIBE +switch-master` reconnect at the right moment.
//! Subscription replies and messages have Redis's shapes: arrays in RESP2, push frames in RESP3.
//! `PUBLISH` is Sentinel's fake: only hellos on `__sentinel__:hello` are accepted (and ignored:
//! Picket's peers gossip on their own port).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use crate::hub::EventRecord;
use crate::wire::resp::ReplyWriter;

use super::MAX_SUBSCRIPTIONS;
use super::client::Session;
use super::command::Args;

/// A connection's channels and patterns.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeSet<Vec<u8>>,
}

impl Subscriptions {
    /// Channels plus patterns: the count Redis puts in subscription replies.
    pub(super) fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Whether nothing is subscribed.
    pub(super) fn is_empty(&self) -> bool {
        self.count() == 0
    }
}

/// How many clients subscribe to each channel and pattern, for `INFO stats`.
#[derive(Debug, Default)]
pub(super) struct Directory {
    inner: Mutex<DirectoryInner>,
}

#[derive(Debug, Default)]
struct DirectoryInner {
    channels: BTreeMap<Vec<u8>, u32>,
    patterns: BTreeMap<Vec<u8>, u32>,
}

impl Directory {
    fn update(&self, pattern: bool, name: &[u8], added: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let map = if pattern { &mut inner.patterns } else { &mut inner.channels };
        if added {
            *map.entry(name.to_vec()).or_default() += 1;
        } else if let Some(n) = map.get_mut(name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(name);
            }
        }
    }

    /// Distinct channels and patterns with at least one subscriber.
    pub(super) fn counts(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (inner.channels.len(), inner.patterns.len())
    }

    /// Forgets every subscription of a closing connection.
    pub(super) fn forget(&self, subscriptions: &Subscriptions) {
        for channel in &subscriptions.channels {
            self.update(false, channel, false);
        }
        for pattern in &subscriptions.patterns {
            self.update(true, pattern, false);
        }
    }
}

/// Updates the registry's counts after a (un)subscription.
fn sync_meta(session: &Session) {
    let mut meta = session.client.meta();
    meta.subs = session.subscriptions.channels.len();
    meta.psubs = session.subscriptions.patterns.len();
}

/// One subscription reply: `[kind, name, count]`, a push frame in RESP3.
fn confirm(w: &mut ReplyWriter<'_>, kind: &str, name: Option<&[u8]>, count: usize) {
    w.push(3);
    w.bulk_str(kind);
    match name {
        Some(name) => w.bulk(name),
        None => w.null_bulk(),
    }
    w.integer(i64::try_from(count).unwrap_or(i64::MAX));
}

/// `SUBSCRIBE channel...` or, with `pattern`, `PSUBSCRIBE pattern...`.
pub(super) fn subscribe(
    directory: &Directory,
    session: &mut Session,
    args: Args<'_>,
    pattern: bool,
    w: &mut ReplyWriter<'_>,
) {
    let kind = if pattern { "psubscribe" } else { "subscribe" };
    for name in args.from(1) {
        let subs = &mut session.subscriptions;
        let set = if pattern { &mut subs.patterns } else { &mut subs.channels };
        if !set.contains(name) {
            if subs.count() >= MAX_SUBSCRIPTIONS {
                w.error_fmt(format_args!(
                    "ERR too many subscriptions: at most {MAX_SUBSCRIPTIONS} channels and \
                     patterns per client"
                ));
                continue;
            }
            let set = if pattern { &mut subs.patterns } else { &mut subs.channels };
            set.insert(name.to_vec());
            directory.update(pattern, name, true);
        }
        confirm(w, kind, Some(name), session.subscriptions.count());
    }
    sync_meta(session);
}

/// `UNSUBSCRIBE [channel...]` or, with `pattern`, `PUNSUBSCRIBE [pattern...]`; without names,
/// from everything (one reply with a null name if there was nothing).
pub(super) fn unsubscribe(
    directory: &Directory,
    session: &mut Session,
    args: Args<'_>,
    pattern: bool,
    w: &mut ReplyWriter<'_>,
) {
    let kind = if pattern { "punsubscribe" } else { "unsubscribe" };
    let names: Vec<Vec<u8>> = if args.len() > 1 {
        args.from(1).map(<[u8]>::to_vec).collect()
    } else {
        let subs = &session.subscriptions;
        let set = if pattern { &subs.patterns } else { &subs.channels };
        set.iter().cloned().collect()
    };
    if names.is_empty() {
        confirm(w, kind, None, session.subscriptions.count());
    }
    for name in names {
        let subs = &mut session.subscriptions;
        let set = if pattern { &mut subs.patterns } else { &mut subs.channels };
        if set.remove(&name) {
            directory.update(pattern, &name, false);
        }
        confirm(w, kind, Some(&name), session.subscriptions.count());
    }
    sync_meta(session);
}

/// Writes the messages `record` makes for this connection: one `message` if it subscribes to
/// the event's channel, one `pmessage` per matching pattern. Returns whether it wrote any.
pub(super) fn deliver(
    subscriptions: &Subscriptions,
    record: &EventRecord,
    w: &mut ReplyWriter<'_>,
) -> bool {
    let channel = record.event.channel().as_bytes();
    let listening = subscriptions.channels.contains(channel);
    let mut patterns = subscriptions.patterns.iter().filter(|p| glob(p, channel)).peekable();
    if !listening && patterns.peek().is_none() {
        return false;
    }
    let payload = record.event.payload();
    if listening {
        w.push(3);
        w.bulk_str("message");
        w.bulk(channel);
        w.bulk_str(&payload);
    }
    for pattern in patterns {
        w.push(4);
        w.bulk_str("pmessage");
        w.bulk(pattern);
        w.bulk(channel);
        w.bulk_str(&payload);
    }
    true
}

/// Sentinel's `PUBLISH`: `:1` for a hello, the error otherwise.
pub(super) fn publish(args: Args<'_>, w: &mut ReplyWriter<'_>) {
    if args.get(1) == b"__sentinel__:hello" {
        w.integer(1);
    } else {
        w.error("ERR Only HELLO messages are accepted by Sentinel instances.");
    }
}

/// Redis's glob (`stringmatchlen`), case-sensitive: `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
///
/// Iterative, remembering only the last `*`: at most `pattern.len() * text.len()` steps, so a
/// hostile pattern cannot make an event's delivery expensive.
pub(super) fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: its pattern position and the text it has eaten up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let c = text[t];
        let step = match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => match class(pattern, p, c) {
                (true, next) => Some(next),
                (false, _) => None,
            },
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
            Some(&literal) => (literal == c).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((after_star, eaten))) => {
                p = after_star;
                t = eaten + 1;
                star = Some((after_star, eaten + 1));
            }
            (None, None) => return false,
        }
    }
    pattern.get(p..).unwrap_or_default().iter().all(|&b| b == b'*')
}

/// Matches `c` against the class opening at `pattern[open]` (`[`); returns the result and the
/// position after the class. An unterminated class is a literal `[`, as a shell would read it.
fn class(pattern: &[u8], open: usize, c: u8) -> (bool, usize) {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut hit = false;
    loop {
        match pattern.get(i) {
            None => return (c == b'[', open + 1),
            Some(b']') => return (hit != negate, i + 1),
            Some(b'\\') if i + 1 < pattern.len() => {
                hit |= pattern[i + 1] == c;
                i += 2;
            }
            Some(&low) if pattern.get(i + 1) == Some(&b'-') && i + 2 < pattern.len() => {
                let high = pattern[i + 2];
                let (a, b) = if low <= high { (low, high) } else { (high, low) };
                hit |= (a..=b).contains(&c);
                i += 3;
            }
            Some(&x) => {
                hit |= x == c;
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_redis() {
        let yes = [
            ("*", "+switch-master"),
            ("+*", "+sdown"),
            ("*-master", "+switch-master"),
            ("+?down", "+sdown"),
            ("+[os]down", "+odown"),
            ("+[^x]down", "+odown"),
            ("+[a-z]down", "+sdown"),
            ("+[z-a]down", "+sdown"),
            ("\\+sdown", "+sdown"),
            ("a*b*c", "aXXbYYc"),
            ("**", ""),
            ("[", "["),
            ("[ab", "[ab"),
            ("+[\\]]", "+]"),
        ];
        for (p, t) in yes {
            assert!(glob(p.as_bytes(), t.as_bytes()), "{p} should match {t}");
        }
        let no = [
            ("+sdown", "+SDOWN"),
            ("-*", "+sdown"),
            ("+?down", "+down"),
            ("+[^os]down", "+odown"),
            ("a*b*c", "aXXbYY"),
            ("?", ""),
            ("abc", "abcd"),
        ];
        for (p, t) in no {
            assert!(!glob(p.as_bytes(), t.as_bytes()), "{p} should not match {t}");
        }
    }

    #[test]
    fn hostile_patterns_stay_cheap() {
        let pattern = "*a".repeat(2000);
        let text = format!("{}b", "a".repeat(3999));
        // Quadratic at worst: this finishes instantly where naive backtracking would not.
        assert!(!glob(pattern.as_bytes(), text.as_bytes()));
    }
}
