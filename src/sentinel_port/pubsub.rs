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

use crate::engine::{AdminCommand, EventKind, glob};
use crate::hub::EventRecord;
use crate::wire::hello::parse_hello;
use crate::wire::resp::ReplyWriter;

use super::MAX_SUBSCRIPTIONS;
use super::client::Session;
use super::command::{AdminPlan, Args, Step};

/// Longest channel name accepted by `SUBSCRIBE`, the same bound as a pattern's: every channel
/// that carries messages is an event name of under 40 bytes, and a subscriber's memory must
/// stay small.
const MAX_CHANNEL_LEN: usize = glob::MAX_PATTERN_LEN;

/// The event kinds (channels) a pattern matches, one bit per [`EventKind`].
///
/// Channels are a closed set, so a pattern is matched against each once, when it is
/// subscribed: delivering an event then costs one bit test per pattern, however hostile the
/// patterns.
#[derive(Clone, Copy, Debug, Default)]
struct Kinds(u128);

const _: () = assert!(EventKind::ALL.len() <= 128, "Kinds holds one bit per event kind");

impl Kinds {
    fn matching(pattern: &[u8]) -> Self {
        let bits = EventKind::ALL
            .iter()
            .filter(|kind| glob::matches(pattern, kind.channel().as_bytes()))
            .fold(0u128, |bits, &kind| bits | Self::bit(kind));
        Self(bits)
    }

    const fn bit(kind: EventKind) -> u128 {
        1 << kind as u32
    }

    const fn contains(self, kind: EventKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }
}

/// A connection's channels and patterns.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    channels: BTreeSet<Vec<u8>>,
    /// Each pattern with the channels it matches.
    patterns: BTreeMap<Vec<u8>, Kinds>,
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

    fn has(&self, pattern: bool, name: &[u8]) -> bool {
        if pattern { self.patterns.contains_key(name) } else { self.channels.contains(name) }
    }

    fn remove(&mut self, pattern: bool, name: &[u8]) -> bool {
        if pattern { self.patterns.remove(name).is_some() } else { self.channels.remove(name) }
    }
}

/// Why a new channel or pattern is refused: the error reply, or `None` to subscribe it.
fn refusal(subs: &Subscriptions, pattern: bool, name: &[u8]) -> Option<String> {
    if pattern && let Err(too_long) = glob::check(name) {
        return Some(too_long.to_string());
    }
    if !pattern && name.len() > MAX_CHANNEL_LEN {
        return Some(format!(
            "ERR channel name too long ({} bytes): at most {MAX_CHANNEL_LEN} bytes",
            name.len()
        ));
    }
    (subs.count() >= MAX_SUBSCRIPTIONS).then(|| {
        format!(
            "ERR too many subscriptions: at most {MAX_SUBSCRIPTIONS} channels and patterns per \
             client"
        )
    })
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
        for pattern in subscriptions.patterns.keys() {
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
        if !subs.has(pattern, name) {
            if let Some(error) = refusal(subs, pattern, name) {
                w.error(&error);
                continue;
            }
            if pattern {
                subs.patterns.insert(name.to_vec(), Kinds::matching(name));
            } else {
                subs.channels.insert(name.to_vec());
            }
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
        if pattern {
            subs.patterns.keys().cloned().collect()
        } else {
            subs.channels.iter().cloned().collect()
        }
    };
    if names.is_empty() {
        confirm(w, kind, None, session.subscriptions.count());
    }
    for name in names {
        if session.subscriptions.remove(pattern, &name) {
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
    let kind = record.event.kind;
    let channel = kind.channel().as_bytes();
    let listening = subscriptions.channels.contains(channel);
    let mut patterns = subscriptions
        .patterns
        .iter()
        .filter(|(_, kinds)| kinds.contains(kind))
        .map(|(pattern, _)| pattern)
        .peekable();
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

/// Sentinel's `PUBLISH`: `:1` for a hello, the error otherwise. A well-formed hello goes to the
/// engine, which takes it into account only from a Sentinel listed for that master (Sentinels
/// push their hellos to every Sentinel they know this way).
pub(super) fn publish(args: Args<'_>, w: &mut ReplyWriter<'_>) -> Step {
    if args.get(1) != b"__sentinel__:hello" {
        w.error("ERR Only HELLO messages are accepted by Sentinel instances.");
        return Step::Next;
    }
    match parse_hello(args.get(2)) {
        Some(hello) => Step::Admin(AdminPlan {
            ok_integer: Some(1),
            ..AdminPlan::one(AdminCommand::SentinelHello(hello))
        }),
        None => {
            w.integer(1);
            Step::Next
        }
    }
}
