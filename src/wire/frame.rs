//! Authenticated frames of the peer (gossip) protocol: a typed message to a frame body and back,
//! and the receiver's replay guard.
//!
//! The shell splits the TCP stream into frame bodies with a 4-byte big-endian length prefix
//! (tokio-util's `LengthDelimitedCodec`, `max_frame_length` = [`MAX_FRAME_LEN`]); this module owns
//! what is inside a body. It must not do I/O, read a clock (the caller passes wall-clock times
//! in), draw random numbers (the caller draws the session id) or panic on any input: every way a
//! body can be wrong is a [`FrameError`], which the shell counts by [`FrameError::kind`] before
//! dropping the frame or closing the connection.
//!
//! # Layout
//!
//! | offset  | size | field                                                          |
//! |---------|------|----------------------------------------------------------------|
//! | 0       | 4    | [`MAGIC`]: `P` `K` `T` `0xA7`                                  |
//! | 4       | 1    | protocol version, [`PROTOCOL_VERSION`]                         |
//! | 5       | 8    | [`FrameHeader::session`], u64 big-endian                       |
//! | 13      | 8    | [`FrameHeader::seq`], u64 big-endian                           |
//! | 21      | 8    | [`FrameHeader::sent_at_unix_ms`], u64 big-endian               |
//! | 29      | n    | the message, postcard-encoded                                  |
//! | 29 + n  | 32   | HMAC-SHA256 keyed with the cluster's `peer_secret`, over [`DIRECTION`], the connection's [`Channel`] and bytes `0 .. 29 + n` |
//!
//! A body is therefore at least [`MIN_FRAME_LEN`] (61) bytes and at most [`MAX_FRAME_LEN`].
//!
//! # Channel binding: one receiver, one direction, once
//!
//! Frames flow one way on a connection, from the node that dialed to the node that accepted. The
//! acceptor opens every connection by sending a [`challenge`]: its magic, version and a random
//! 16-byte [`Channel`] it draws for this connection alone. The dialer seals every frame of the
//! connection over that channel (and over [`DIRECTION`]), which is not sent again but is
//! authenticated by the tag. A frame is therefore valid on exactly one connection to exactly one
//! receiver:
//!
//! - replayed **to another node**, or to the same node on a new connection, it is checked against
//!   another channel and fails authentication ([`FrameError::BadMac`]);
//! - reflected **back to its sender** it fails the same way: the sender's own connections carry
//!   channels the sender drew, never the one its peer drew;
//! - replayed **on its own connection** it is refused by the receiver's [`ReplayGuard`] (one
//!   sender session's sequence numbers, a sliding window, and a time bound).
//!
//! The challenge itself is not authenticated: whoever can alter it can only make the dialer's
//! frames fail, which they could do by dropping them.
//!
//! # Checks, in order
//!
//! [`open`] checks the length bounds, the magic and the version, then verifies the tag in constant
//! time, and only then parses the header and deserialises the payload: postcard never sees a byte
//! that is not authenticated. The version is checked before the tag because a future version may
//! lay the frame out differently; the version byte is covered by the tag all the same. What
//! `open` cannot tell is whether an authentic frame is fresh: the receiver feeds the header of
//! every opened frame to its [`ReplayGuard`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::engine::time::duration_millis;

/// The protocol version this build speaks. A frame of any other version is refused with
/// [`FrameError::UnsupportedVersion`]; a new version means a new layout or message schema.
///
/// Version 2 binds every frame to the receiver's [`Channel`]; version 1 frames named no receiver.
pub const PROTOCOL_VERSION: u8 = 2;

/// The largest frame body accepted or produced, tag included: 1 MiB.
///
/// The largest message is a node's full state, which stays well under 100 KiB even for 1000
/// masters; the limit is an order of magnitude above that so that it only ever stops garbage or a
/// bug, and small enough that a peer cannot make the receiver buffer much. The shell gives the
/// same value to `LengthDelimitedCodec::max_frame_length`.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// The first four bytes of every frame.
///
/// `0xA7` is a UTF-8 continuation byte and cannot follow an ASCII letter in valid text, so nothing
/// a text protocol sends (RESP, HTTP, a line typed into `nc`) starts with these bytes: a wrong
/// client is recognised on its first frame, before any cryptography runs.
pub const MAGIC: [u8; 4] = [b'P', b'K', b'T', 0xA7];

/// Size of the fixed part before the payload: magic, version and the three header fields.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + 3 * 8;

/// Size of the HMAC-SHA256 tag that ends every frame.
pub const TAG_LEN: usize = 32;

/// The shortest possible frame: header and tag around an empty payload.
pub const MIN_FRAME_LEN: usize = HEADER_LEN + TAG_LEN;

/// How many sequence numbers below the highest one accepted a session may still deliver
/// (out of order) before they count as replays. See [`ReplayGuard`].
pub const REPLAY_WINDOW: u64 = 64;

/// Domain separation for the tag: frames go from the dialing node to the accepting node, and a
/// future message in the other direction would use another label.
pub const DIRECTION: &[u8] = b"picket gossip: dialer to acceptor";

/// Size of a [`Channel`].
pub const CHANNEL_LEN: usize = 16;

/// Size of the acceptor's [`challenge`] body: magic, version and the channel.
pub const CHALLENGE_LEN: usize = MAGIC.len() + 1 + CHANNEL_LEN;

/// Default bound on the difference between a frame's `sent_at_unix_ms` and the receiver's clock.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(30);

/// Default bound on the number of sessions a [`ReplayGuard`] tracks.
///
/// A cluster has a handful of peers, each with one session per process start, and a session is
/// forgotten about a minute after its last frame: legitimate traffic never comes close.
pub const DEFAULT_MAX_SESSIONS: usize = 1024;

type HmacSha256 = Hmac<Sha256>;

/// The cluster's shared `peer_secret`, ready to authenticate frames.
///
/// Keeps the HMAC state already keyed with the secret (not the secret itself), so sealing and
/// opening a frame start from a copy instead of hashing the key again. `Debug` prints nothing of it.
#[derive(Clone)]
pub struct FrameKey {
    mac: HmacSha256,
}

impl FrameKey {
    /// Builds the key from the secret's bytes. Any length is accepted (HMAC hashes keys longer than
    /// a block); rejecting empty or weak secrets is the configuration's job.
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        // HMAC's own key preparation (RFC 2104 §2): a key longer than the hash's 64-byte block is
        // replaced by its digest, then zero-padded to a block. Doing it here rather than through
        // `new_from_slice` leaves no "invalid length" error to handle, and gives the same MAC
        // (checked against RFC 4231 in the tests).
        let mut block = hmac::digest::Key::<HmacSha256>::default();
        if secret.len() <= block.len() {
            block.iter_mut().zip(secret).for_each(|(b, s)| *b = *s);
        } else {
            block.iter_mut().zip(Sha256::digest(secret).iter()).for_each(|(b, s)| *b = *s);
        }
        Self { mac: <HmacSha256 as KeyInit>::new(&block) }
    }

    /// A fresh MAC computation keyed with the secret.
    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

impl fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameKey(<redacted>)")
    }
}

/// The random value an accepting node draws for one inbound connection; every frame on that
/// connection is authenticated over it (see [Channel binding](self#channel-binding-one-receiver-one-direction-once)).
/// It must come from real entropy, fresh for each connection.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Channel(pub [u8; CHANNEL_LEN]);

/// The body of the challenge an acceptor sends first on every connection: [`MAGIC`], the
/// version, and `channel`. It goes through the same length-prefixed framing as frames.
#[must_use]
pub fn challenge(channel: &Channel) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHALLENGE_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&channel.0);
    out
}

/// Reads the channel out of an acceptor's challenge body.
///
/// # Errors
/// [`FrameError::TooShort`] or [`FrameError::TooLarge`] for a body of the wrong size,
/// [`FrameError::BadMagic`], [`FrameError::UnsupportedVersion`].
pub fn read_challenge(body: &[u8]) -> Result<Channel, FrameError> {
    if body.len() > CHALLENGE_LEN {
        return Err(FrameError::TooLarge { len: body.len() });
    }
    let (magic, rest) = body.split_first_chunk::<4>().ok_or(FrameError::TooShort)?;
    if *magic != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let (&[version], rest) = rest.split_first_chunk::<1>().ok_or(FrameError::TooShort)?;
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    let channel = rest.first_chunk::<CHANNEL_LEN>().ok_or(FrameError::TooShort)?;
    Ok(Channel(*channel))
}

/// The MAC state for a frame on `channel`, before the frame's bytes.
fn bound_mac(key: &FrameKey, channel: &Channel) -> HmacSha256 {
    key.mac().chain_update(DIRECTION).chain_update(channel.0)
}

/// The authenticated header of a frame: who sent it, in what order, and when.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct FrameHeader {
    /// A random id the sender draws at process start. It must come from real entropy, not from
    /// the engine's replayable seed: a restart that reused a session would start its `seq` again
    /// from the bottom, and receivers would refuse its frames as replays until they forget it.
    pub session: u64,
    /// Increases by one for every frame the session sends, across all its connections.
    pub seq: u64,
    /// The sender's wall clock when it sealed the frame, in milliseconds since the Unix epoch.
    pub sent_at_unix_ms: u64,
}

/// Why a frame body was refused.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than [`MIN_FRAME_LEN`]: it cannot even hold a header and a tag.
    #[error("frame too short")]
    TooShort,
    /// Longer than [`MAX_FRAME_LEN`] (received, or as it would be sealed).
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_LEN}")]
    TooLarge {
        /// The length of the frame.
        len: usize,
    },
    /// Does not start with [`MAGIC`]: whoever sent it does not speak this protocol.
    #[error("not a picket frame (bad magic)")]
    BadMagic,
    /// A picket frame of a protocol version this build does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The tag does not match: a different `peer_secret`, or the frame was altered.
    #[error("frame authentication failed")]
    BadMac,
    /// Authentic, but the payload is not a valid message (or, when sealing, the message could not
    /// be encoded): a peer running a different schema, or a bug.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The session already delivered this sequence number, or it is too far below the highest one
    /// accepted to tell.
    #[error("replayed frame")]
    Replayed,
    /// `sent_at_unix_ms` is further than the allowed skew from the receiver's clock.
    #[error("frame timestamp off by {skew_ms} ms")]
    Stale {
        /// The sender's timestamp minus the receiver's clock (negative: the frame is old).
        skew_ms: i64,
    },
}

impl FrameError {
    /// A short, stable label for metrics and logs.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLarge { .. } => "too_large",
            Self::BadMagic => "bad_magic",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::BadMac => "bad_mac",
            Self::Malformed(_) => "malformed",
            Self::Replayed => "replayed",
            Self::Stale { .. } => "stale",
        }
    }
}

/// Appends a sealed frame carrying `message` to `out`, valid only on the connection whose
/// acceptor drew `channel`.
///
/// `out` may already hold data (earlier frames, a length prefix): the frame is appended after it,
/// and on error `out` is left as it was.
///
/// # Errors
/// [`FrameError::TooLarge`] if the frame would exceed [`MAX_FRAME_LEN`] (the payload is then never
/// buffered beyond the limit); [`FrameError::Malformed`] if postcard cannot encode the message
/// (e.g. a sequence of unknown length).
pub fn seal<T: Serialize + ?Sized>(
    key: &FrameKey,
    channel: &Channel,
    header: &FrameHeader,
    message: &T,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&header.session.to_be_bytes());
    out.extend_from_slice(&header.seq.to_be_bytes());
    out.extend_from_slice(&header.sent_at_unix_ms.to_be_bytes());
    let room = MAX_FRAME_LEN - MIN_FRAME_LEN;
    let encoded = postcard::serialize_with_flavor::<T, _, usize>(
        message,
        BoundedAppend { out: &mut *out, room, len: 0 },
    );
    let payload_len = match encoded {
        Ok(len) => len,
        Err(e) => {
            out.truncate(start);
            return Err(FrameError::Malformed(e.to_string()));
        }
    };
    if payload_len > room {
        out.truncate(start);
        return Err(FrameError::TooLarge { len: MIN_FRAME_LEN.saturating_add(payload_len) });
    }
    let tag = bound_mac(key, channel)
        .chain_update(out.get(start..).unwrap_or_default())
        .finalize()
        .into_bytes();
    out.extend_from_slice(&tag);
    Ok(())
}

/// Authenticates a frame body received on the connection for which this node drew `channel`,
/// and decodes its header and message.
///
/// Only authenticity is checked here; freshness is the [`ReplayGuard`]'s job, and the caller must
/// run it on the returned header before acting on the message.
///
/// # Errors
/// In the order checked: [`FrameError::TooLarge`], [`FrameError::TooShort`],
/// [`FrameError::BadMagic`], [`FrameError::UnsupportedVersion`], [`FrameError::BadMac`], and
/// [`FrameError::Malformed`] for an authentic payload that is not exactly one `T` (trailing bytes
/// included).
pub fn open<T: DeserializeOwned>(
    key: &FrameKey,
    channel: &Channel,
    body: &[u8],
) -> Result<(FrameHeader, T), FrameError> {
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len: body.len() });
    }
    if body.len() < MIN_FRAME_LEN {
        return Err(FrameError::TooShort);
    }
    let (signed, tag) = body.split_last_chunk::<TAG_LEN>().ok_or(FrameError::TooShort)?;
    let (magic, rest) = signed.split_first_chunk::<4>().ok_or(FrameError::TooShort)?;
    if *magic != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let (&[version], rest) = rest.split_first_chunk::<1>().ok_or(FrameError::TooShort)?;
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    // Constant-time comparison (`verify_slice`), and before anything else reads the frame.
    bound_mac(key, channel)
        .chain_update(signed)
        .verify_slice(tag)
        .map_err(|_| FrameError::BadMac)?;

    let (session, rest) = rest.split_first_chunk::<8>().ok_or(FrameError::TooShort)?;
    let (seq, rest) = rest.split_first_chunk::<8>().ok_or(FrameError::TooShort)?;
    let (sent_at, payload) = rest.split_first_chunk::<8>().ok_or(FrameError::TooShort)?;
    let header = FrameHeader {
        session: u64::from_be_bytes(*session),
        seq: u64::from_be_bytes(*seq),
        sent_at_unix_ms: u64::from_be_bytes(*sent_at),
    };
    let (message, trailing) = postcard::take_from_bytes::<T>(payload)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !trailing.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes after the message",
            trailing.len()
        )));
    }
    Ok((header, message))
}

/// A postcard output that appends to a `Vec` up to `room` bytes and past that only counts: an
/// oversize message costs no memory beyond the frame limit, yet its true size is reported.
struct BoundedAppend<'a> {
    out: &'a mut Vec<u8>,
    room: usize,
    len: usize,
}

impl postcard::ser_flavors::Flavor for BoundedAppend<'_> {
    type Output = usize;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.len = self.len.saturating_add(data.len());
        if self.len <= self.room {
            self.out.extend_from_slice(data);
        }
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

/// The receiver's memory of which frames it has accepted, so that a captured frame cannot be
/// delivered twice.
///
/// One guard serves all inbound connections of a node, because a sender's sequence numbers are
/// shared by all its connections. **Only headers returned by a successful [`open`] may be
/// checked**: an unauthenticated header would let anyone advance a session's window (making its
/// real frames look like replays) or fill the table with invented sessions.
///
/// # Rules
///
/// - **Time.** A frame whose `sent_at_unix_ms` is more than `max_skew` away from the receiver's
///   clock is [`FrameError::Stale`]. This bounds how old a captured frame can be and still be
///   replayed, and lets the guard forget sessions (below). Peers' clocks must therefore agree to
///   within `max_skew` (NTP).
/// - **Order.** Per session, the guard keeps the highest `seq` accepted and a bitmap of the
///   [`REPLAY_WINDOW`] sequence numbers below it, like IPsec's and WireGuard's anti-replay window.
///   A `seq` above the highest is accepted and slides the window; one inside the window is
///   accepted once; one below it is [`FrameError::Replayed`]. Strict monotonicity would be
///   simpler, but a sender that reconnects can briefly have frames in flight on two connections,
///   and they arrive interleaved: the window accepts each of them exactly once instead of dropping
///   whichever lost the race.
///
/// # Memory
///
/// A session not seen (no frame accepted) for `2 × max_skew` is forgotten: any frame it sent
/// earlier carried a timestamp at most `max_skew` after it was accepted, so it is now more than
/// `max_skew` old and would be refused as stale anyway. At most `max_sessions` sessions are
/// tracked; beyond that the least recently seen is evicted. Evicting a session whose frames are
/// still within the skew window would let them be replayed, but it takes that many authentic
/// sessions within two minutes to get there, that is, a holder of the secret.
///
/// "Seen" is measured on the highest `now_unix_ms` passed so far, so a receiver clock stepping
/// backwards does not reorder or forget sessions. A step backwards of more than `max_skew` does
/// reopen the time window for sessions already forgotten; a slewing clock never steps.
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    max_skew_ms: u64,
    max_sessions: usize,
    /// The highest `now_unix_ms` seen: the guard's own clock, which never goes backwards.
    clock_ms: u64,
    sessions: BTreeMap<u64, SessionWindow>,
    /// `(last_seen_ms, session)` for every tracked session: the least recently seen comes first,
    /// which is the order of both expiry and eviction.
    by_last_seen: BTreeSet<(u64, u64)>,
}

/// What the guard remembers of one session.
#[derive(Clone, Copy, Debug)]
struct SessionWindow {
    /// The highest `seq` accepted.
    highest: u64,
    /// Bit `i` is set when `highest - i` has been accepted (bit 0, `highest` itself, always is).
    accepted: u64,
    /// The guard's clock when a frame of this session was last accepted.
    last_seen_ms: u64,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_SKEW, DEFAULT_MAX_SESSIONS)
    }
}

impl ReplayGuard {
    /// A guard allowing `max_skew` between a frame's timestamp and the receiver's clock, and
    /// tracking at most `max_sessions` sessions (at least one).
    #[must_use]
    pub fn new(max_skew: Duration, max_sessions: usize) -> Self {
        Self {
            max_skew_ms: duration_millis(max_skew),
            max_sessions: max_sessions.max(1),
            clock_ms: 0,
            sessions: BTreeMap::new(),
            by_last_seen: BTreeSet::new(),
        }
    }

    /// The allowed difference between a frame's timestamp and the receiver's clock.
    #[must_use]
    pub const fn max_skew(&self) -> Duration {
        Duration::from_millis(self.max_skew_ms)
    }

    /// The most sessions tracked at once.
    #[must_use]
    pub const fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// How many sessions are tracked now.
    #[must_use]
    pub fn tracked_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Accepts the header of an authenticated frame once, or says why not. `now_unix_ms` is the
    /// receiver's wall clock. A refused header leaves the guard's memory of its session unchanged.
    ///
    /// # Errors
    /// [`FrameError::Stale`] if the timestamp is outside `now ± max_skew`;
    /// [`FrameError::Replayed`] if the session already delivered this `seq`, or the `seq` is
    /// [`REPLAY_WINDOW`] or more below the highest one accepted.
    pub fn check(&mut self, header: &FrameHeader, now_unix_ms: u64) -> Result<(), FrameError> {
        self.clock_ms = self.clock_ms.max(now_unix_ms);
        self.forget_expired();

        let skew = i128::from(header.sent_at_unix_ms) - i128::from(now_unix_ms);
        if skew.unsigned_abs() > u128::from(self.max_skew_ms) {
            let skew_ms = i64::try_from(skew).unwrap_or(if skew > 0 { i64::MAX } else { i64::MIN });
            return Err(FrameError::Stale { skew_ms });
        }

        let now = self.clock_ms;
        let window = match self.sessions.get(&header.session) {
            Some(known) => {
                let updated = known.accept(header.seq, now)?;
                self.by_last_seen.remove(&(known.last_seen_ms, header.session));
                updated
            }
            None => {
                if self.sessions.len() >= self.max_sessions
                    && let Some((_, evicted)) = self.by_last_seen.pop_first()
                {
                    self.sessions.remove(&evicted);
                }
                SessionWindow { highest: header.seq, accepted: 1, last_seen_ms: now }
            }
        };
        self.sessions.insert(header.session, window);
        self.by_last_seen.insert((now, header.session));
        Ok(())
    }

    /// Drops every session not seen for more than twice the skew (see the type's docs).
    fn forget_expired(&mut self) {
        let horizon = self.max_skew_ms.saturating_mul(2);
        while let Some(&(last_seen_ms, session)) = self.by_last_seen.first() {
            if last_seen_ms.saturating_add(horizon) >= self.clock_ms {
                break;
            }
            self.by_last_seen.pop_first();
            self.sessions.remove(&session);
        }
    }
}

impl SessionWindow {
    /// The window after accepting `seq` at `now_ms`, or why `seq` is refused.
    fn accept(self, seq: u64, now_ms: u64) -> Result<Self, FrameError> {
        let accepted = if seq > self.highest {
            // Slide the window up: bits of sequence numbers that fall out of it are dropped, and
            // `checked_shl` yields `None` (an empty window) for a jump of 64 or more.
            let shift = u32::try_from(seq - self.highest).unwrap_or(u32::MAX);
            self.accepted.checked_shl(shift).unwrap_or(0) | 1
        } else {
            let age = self.highest - seq;
            if age >= REPLAY_WINDOW {
                return Err(FrameError::Replayed);
            }
            let bit = 1u64 << age;
            if self.accepted & bit != 0 {
                return Err(FrameError::Replayed);
            }
            self.accepted | bit
        };
        Ok(Self { highest: self.highest.max(seq), accepted, last_seen_ms: now_ms })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Vote {
        Abstain,
        For { epoch: u64, candidate: String },
        Against(u32),
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        epochs: Vec<u64>,
        leader: Option<String>,
        missing: Option<u32>,
        votes: Vec<Vote>,
        flags: (bool, u8, i64),
    }

    fn sample() -> Sample {
        Sample {
            name: "session-cache".to_owned(),
            epochs: vec![0, 1, u64::MAX],
            leader: Some("10.0.0.7:26379".to_owned()),
            missing: None,
            votes: vec![
                Vote::Abstain,
                Vote::For { epoch: 42, candidate: "picket-1a2b3c4d".to_owned() },
                Vote::Against(7),
            ],
            flags: (true, 200, -5),
        }
    }

    const NOW: u64 = 1_700_000_000_000;

    /// The channel most tests' frames are bound to.
    const CH: Channel = Channel([0x42; CHANNEL_LEN]);

    fn key() -> FrameKey {
        FrameKey::new(b"correct horse battery staple")
    }

    fn header(seq: u64) -> FrameHeader {
        FrameHeader { session: 0x0123_4567_89ab_cdef, seq, sent_at_unix_ms: NOW }
    }

    fn sealed(message: &impl Serialize) -> Vec<u8> {
        let mut out = Vec::new();
        seal(&key(), &CH, &header(9), message, &mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_a_message_and_lays_out_the_header() {
        let frame = sealed(&sample());
        let (h, message) = open::<Sample>(&key(), &CH, &frame).unwrap();
        assert_eq!(h, header(9));
        assert_eq!(message, sample());

        let payload_len = postcard::to_stdvec(&sample()).unwrap().len();
        assert_eq!(frame.len(), MIN_FRAME_LEN + payload_len);
        assert_eq!(frame[..4], MAGIC);
        assert_eq!(frame[4], PROTOCOL_VERSION);
        assert_eq!(frame[5..13], 0x0123_4567_89ab_cdef_u64.to_be_bytes());
        assert_eq!(frame[13..21], 9u64.to_be_bytes());
        assert_eq!(frame[21..29], NOW.to_be_bytes());
    }

    #[test]
    fn appends_to_the_buffer_and_seals_an_empty_payload() {
        let mut out = b"prefix".to_vec();
        seal(&key(), &CH, &header(1), &(), &mut out).unwrap();
        assert_eq!(out.len(), 6 + MIN_FRAME_LEN);
        assert_eq!(out[..6], *b"prefix");
        let (h, ()) = open::<()>(&key(), &CH, &out[6..]).unwrap();
        assert_eq!(h, header(1));
    }

    #[test]
    fn the_wrong_key_fails_authentication() {
        let frame = sealed(&sample());
        let other = FrameKey::new(b"correct horse battery stapler");
        assert_eq!(open::<Sample>(&other, &CH, &frame), Err(FrameError::BadMac));
    }

    #[test]
    fn the_key_is_standard_hmac_sha256_and_is_not_printed() {
        // RFC 4231 test cases 1 (short key) and 6 (key longer than a block).
        let short = FrameKey::new(&[0x0b; 20]).mac().chain_update(b"Hi There").finalize();
        assert_eq!(
            short.into_bytes()[..],
            hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        );
        let long = FrameKey::new(&[0xaa; 131])
            .mac()
            .chain_update(b"Test Using Larger Than Block-Size Key - Hash Key First")
            .finalize();
        assert_eq!(
            long.into_bytes()[..],
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
        // And the same as the library's own key handling at the block-size boundary.
        for len in [0, 1, 63, 64, 65, 200] {
            let secret = vec![0x5c; len];
            let ours = FrameKey::new(&secret).mac().chain_update(b"x").finalize().into_bytes();
            let theirs = HmacSha256::new_from_slice(&secret)
                .unwrap()
                .chain_update(b"x")
                .finalize()
                .into_bytes();
            assert_eq!(ours, theirs, "secret of {len} bytes");
        }
        let printed = format!("{:?}", FrameKey::new(b"hunter2-secret"));
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn every_truncation_is_an_error() {
        let frame = sealed(&sample());
        for len in 0..frame.len() {
            let err = open::<Sample>(&key(), &CH, &frame[..len]).unwrap_err();
            let expected =
                if len < MIN_FRAME_LEN { FrameError::TooShort } else { FrameError::BadMac };
            assert_eq!(err, expected, "truncated to {len}");
        }
    }

    #[test]
    fn oversize_messages_are_refused_when_sealing() {
        let mut out = b"kept".to_vec();
        let big = vec![7u8; MAX_FRAME_LEN];
        // A byte vector is its varint length (3 bytes here) and its bytes.
        let expected = MIN_FRAME_LEN + 3 + MAX_FRAME_LEN;
        assert_eq!(
            seal(&key(), &CH, &header(1), &big, &mut out),
            Err(FrameError::TooLarge { len: expected })
        );
        assert_eq!(out, b"kept");

        // The largest payload that fits is accepted, and one byte more is not.
        let room = MAX_FRAME_LEN - MIN_FRAME_LEN - 3;
        seal(&key(), &CH, &header(1), &vec![0u8; room], &mut out).unwrap();
        assert_eq!(out.len(), 4 + MAX_FRAME_LEN);
        assert!(open::<Vec<u8>>(&key(), &CH, &out[4..]).is_ok());
        assert_eq!(
            seal(&key(), &CH, &header(1), &vec![0u8; room + 1], &mut Vec::new()),
            Err(FrameError::TooLarge { len: MAX_FRAME_LEN + 1 })
        );
    }

    #[test]
    fn oversize_and_foreign_bodies_are_refused_when_opening() {
        let huge = vec![0u8; MAX_FRAME_LEN + 1];
        assert_eq!(
            open::<Sample>(&key(), &CH, &huge),
            Err(FrameError::TooLarge { len: MAX_FRAME_LEN + 1 })
        );
        let mut resp = b"*2\r\n$4\r\nPING\r\n".repeat(8);
        assert_eq!(open::<Sample>(&key(), &CH, &resp), Err(FrameError::BadMagic));
        resp.truncate(10);
        assert_eq!(open::<Sample>(&key(), &CH, &resp), Err(FrameError::TooShort));
        let http =
            b"GET /metrics HTTP/1.1\r\nHost: picket:26379\r\nUser-Agent: curl/8.5\r\n\r\n".to_vec();
        assert_eq!(open::<Sample>(&key(), &CH, &http), Err(FrameError::BadMagic));
    }

    #[test]
    fn other_versions_are_refused_before_authentication() {
        let mut frame = sealed(&sample());
        frame[4] = 1;
        assert_eq!(open::<Sample>(&key(), &CH, &frame), Err(FrameError::UnsupportedVersion(1)));
    }

    #[test]
    fn an_authentic_payload_must_be_exactly_one_message() {
        let two_bytes = sealed(&(1u8, 2u8));
        assert_eq!(
            open::<u8>(&key(), &CH, &two_bytes),
            Err(FrameError::Malformed("1 trailing bytes after the message".to_owned()))
        );
        let garbage = sealed(&[0xffu8; 12]);
        assert_eq!(open::<Sample>(&key(), &CH, &garbage).unwrap_err().kind(), "malformed");
        let empty = sealed(&());
        assert_eq!(open::<Sample>(&key(), &CH, &empty).unwrap_err().kind(), "malformed");
    }

    #[test]
    fn error_kinds_are_distinct_labels() {
        let all = [
            FrameError::TooShort,
            FrameError::TooLarge { len: 0 },
            FrameError::BadMagic,
            FrameError::UnsupportedVersion(0),
            FrameError::BadMac,
            FrameError::Malformed(String::new()),
            FrameError::Replayed,
            FrameError::Stale { skew_ms: 0 },
        ];
        let kinds: BTreeSet<_> = all.iter().map(FrameError::kind).collect();
        assert_eq!(kinds.len(), all.len());
        assert!(kinds.contains("too_large") && kinds.contains("bad_mac"));
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_is_detected(position in 0usize..10_000, bit in 0u8..8) {
            let mut frame = sealed(&sample());
            let position = position % frame.len();
            frame[position] ^= 1 << bit;
            let err = open::<Sample>(&key(), &CH, &frame).unwrap_err();
            let expected = match position {
                0..4 => "bad_magic",
                4 => "unsupported_version",
                _ => "bad_mac",
            };
            prop_assert_eq!(err.kind(), expected);
        }

        #[test]
        fn arbitrary_bytes_are_an_error(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            prop_assert!(open::<Sample>(&key(), &CH, &body).is_err());
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_prefix_fail_authentication(
            rest in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut body = MAGIC.to_vec();
            body.push(PROTOCOL_VERSION);
            body.extend_from_slice(&rest);
            let err = open::<Sample>(&key(), &CH, &body).unwrap_err();
            let expected = if body.len() < MIN_FRAME_LEN { "too_short" } else { "bad_mac" };
            prop_assert_eq!(err.kind(), expected);
        }

        #[test]
        fn messages_round_trip(
            name in ".{0,40}",
            epochs in proptest::collection::vec(any::<u64>(), 0..20),
            leader in proptest::option::of(".{0,20}"),
            session in any::<u64>(),
            seq in any::<u64>(),
        ) {
            let message = Sample { name, epochs, leader, ..sample() };
            let h = FrameHeader { session, seq, sent_at_unix_ms: NOW };
            let mut frame = Vec::new();
            seal(&key(), &CH, &h, &message, &mut frame).unwrap();
            prop_assert_eq!(open::<Sample>(&key(), &CH, &frame).unwrap(), (h, message));
        }
    }

    fn at(session: u64, seq: u64, sent_at_unix_ms: u64) -> FrameHeader {
        FrameHeader { session, seq, sent_at_unix_ms }
    }

    #[test]
    fn a_frame_is_accepted_once() {
        let mut guard = ReplayGuard::default();
        let (h, _) = open::<Sample>(&key(), &CH, &sealed(&sample())).unwrap();
        assert_eq!(guard.check(&h, NOW), Ok(()));
        assert_eq!(guard.check(&h, NOW), Err(FrameError::Replayed));
        assert_eq!(guard.check(&h, NOW + 1000), Err(FrameError::Replayed));
        // The same seq from another session is another frame.
        assert_eq!(guard.check(&FrameHeader { session: 1, ..h }, NOW), Ok(()));
    }

    #[test]
    fn out_of_order_frames_within_the_window_are_accepted_once_each() {
        let mut guard = ReplayGuard::default();
        for seq in [100, 98, 101, 99, 97, 103, 102] {
            assert_eq!(guard.check(&at(7, seq, NOW), NOW), Ok(()), "seq {seq}");
        }
        for seq in 97..=103 {
            assert_eq!(guard.check(&at(7, seq, NOW), NOW), Err(FrameError::Replayed), "seq {seq}");
        }
        // The window reaches 63 below the highest (103); 40 is below it.
        assert_eq!(guard.check(&at(7, 103 - 63, NOW), NOW), Ok(()));
        assert_eq!(guard.check(&at(7, 103 - 64, NOW), NOW), Err(FrameError::Replayed));
        // A jump past the window's width leaves only the new highest marked.
        assert_eq!(guard.check(&at(7, 1000, NOW), NOW), Ok(()));
        assert_eq!(guard.check(&at(7, 999, NOW), NOW), Ok(()));
        assert_eq!(guard.check(&at(7, 1000 - 63, NOW), NOW), Ok(()));
        assert_eq!(guard.check(&at(7, 1000, NOW), NOW), Err(FrameError::Replayed));
        // Extremes of the sequence space do not overflow.
        assert_eq!(guard.check(&at(8, 0, NOW), NOW), Ok(()));
        assert_eq!(guard.check(&at(8, u64::MAX, NOW), NOW), Ok(()));
        assert_eq!(guard.check(&at(8, 0, NOW), NOW), Err(FrameError::Replayed));
        assert_eq!(guard.check(&at(8, u64::MAX - 1, NOW), NOW), Ok(()));
    }

    #[test]
    fn frames_outside_the_skew_are_stale() {
        let mut guard = ReplayGuard::new(Duration::from_secs(30), 16);
        assert_eq!(
            guard.check(&at(1, 1, NOW - 30_001), NOW),
            Err(FrameError::Stale { skew_ms: -30_001 })
        );
        assert_eq!(
            guard.check(&at(1, 1, NOW + 30_001), NOW),
            Err(FrameError::Stale { skew_ms: 30_001 })
        );
        assert_eq!(
            guard.check(&at(1, 1, 0), u64::MAX),
            Err(FrameError::Stale { skew_ms: i64::MIN })
        );
        // A refused frame left no trace: the same seq is still accepted once fresh.
        assert_eq!(guard.tracked_sessions(), 0);
        assert_eq!(guard.check(&at(1, 1, NOW - 30_000), NOW), Ok(()));
        assert_eq!(guard.check(&at(1, 2, NOW + 30_000), NOW), Ok(()));
    }

    #[test]
    fn idle_sessions_are_forgotten_and_their_frames_stay_refused() {
        let mut guard = ReplayGuard::new(Duration::from_secs(30), 16);
        let old = at(1, 5, NOW + 30_000);
        assert_eq!(guard.check(&old, NOW), Ok(()));
        assert_eq!(guard.check(&at(2, 1, NOW + 50_000), NOW + 50_000), Ok(()));
        assert_eq!(guard.tracked_sessions(), 2);
        // Session 1 was last seen at NOW; it is kept until NOW + 60 s...
        assert_eq!(guard.check(&old, NOW + 60_000), Err(FrameError::Replayed));
        assert_eq!(guard.tracked_sessions(), 2);
        // ... and then forgotten, when its frames can no longer pass the time check.
        assert_eq!(guard.check(&old, NOW + 60_001), Err(FrameError::Stale { skew_ms: -30_001 }));
        assert_eq!(guard.tracked_sessions(), 1);
    }

    #[test]
    fn a_clock_stepping_back_does_not_forget_or_reorder() {
        let mut guard = ReplayGuard::new(Duration::from_secs(30), 16);
        assert_eq!(guard.check(&at(1, 1, NOW), NOW), Ok(()));
        assert_eq!(guard.check(&at(2, 1, NOW - 10_000), NOW - 10_000), Ok(()));
        // Session 2 was seen after session 1 even though the clock read less.
        assert_eq!(guard.by_last_seen.last(), Some(&(NOW, 2)));
        assert_eq!(guard.check(&at(1, 1, NOW), NOW), Err(FrameError::Replayed));
    }

    #[test]
    fn a_flood_of_sessions_keeps_memory_bounded_and_the_active_peer_tracked() {
        let cap = 32;
        let mut guard = ReplayGuard::new(Duration::from_secs(30), cap);
        let mut peer_seq = 0;
        for i in 0..10_000u64 {
            let now = NOW + i;
            assert_eq!(guard.check(&at(1_000_000 + i, 0, now), now), Ok(()));
            assert!(guard.tracked_sessions() <= cap);
            assert_eq!(guard.sessions.len(), guard.by_last_seen.len());
            if i % 8 == 0 {
                peer_seq += 1;
                assert_eq!(guard.check(&at(1, peer_seq, now), now), Ok(()));
            }
        }
        assert_eq!(guard.tracked_sessions(), cap);
        // The peer that kept talking was never the least recently seen.
        assert_eq!(
            guard.check(&at(1, peer_seq, NOW + 10_000), NOW + 10_000),
            Err(FrameError::Replayed)
        );
        // The guard needs at least one slot.
        let mut tiny = ReplayGuard::new(Duration::from_secs(30), 0);
        assert_eq!(tiny.max_sessions(), 1);
        assert_eq!(tiny.check(&at(1, 1, NOW), NOW), Ok(()));
        assert_eq!(tiny.check(&at(2, 1, NOW), NOW), Ok(()));
        assert_eq!(tiny.tracked_sessions(), 1);
    }

    /// Node A dials B and C, and B dials A: each acceptor drew its own channel.
    const A_TO_B: Channel = Channel([0xb0; CHANNEL_LEN]);
    const A_TO_C: Channel = Channel([0xc0; CHANNEL_LEN]);
    const B_TO_A: Channel = Channel([0xa0; CHANNEL_LEN]);

    /// A frame A sealed for B, as an eavesdropper captures it.
    fn captured_from_a_to_b() -> Vec<u8> {
        let mut out = Vec::new();
        seal(&key(), &A_TO_B, &header(5), &sample(), &mut out).unwrap();
        out
    }

    #[test]
    fn a_frame_replayed_to_another_node_is_refused() {
        let frame = captured_from_a_to_b();
        assert_eq!(open::<Sample>(&key(), &A_TO_C, &frame), Err(FrameError::BadMac));
        // Nor does B accept it on another connection than the one it was sent on.
        let other_connection_to_b = Channel([0xb1; CHANNEL_LEN]);
        assert_eq!(open::<Sample>(&key(), &other_connection_to_b, &frame), Err(FrameError::BadMac));
    }

    #[test]
    fn a_frame_reflected_to_its_sender_is_refused() {
        let frame = captured_from_a_to_b();
        assert_eq!(open::<Sample>(&key(), &B_TO_A, &frame), Err(FrameError::BadMac));
    }

    #[test]
    fn a_frame_replayed_on_its_own_connection_is_refused() {
        let frame = captured_from_a_to_b();
        let mut guard = ReplayGuard::default();
        let (h, message) = open::<Sample>(&key(), &A_TO_B, &frame).unwrap();
        assert_eq!(message, sample());
        assert_eq!(guard.check(&h, NOW), Ok(()));
        let (again, _) = open::<Sample>(&key(), &A_TO_B, &frame).unwrap();
        assert_eq!(guard.check(&again, NOW), Err(FrameError::Replayed));
    }

    #[test]
    fn the_challenge_carries_the_channel_and_nothing_else() {
        let body = challenge(&A_TO_B);
        assert_eq!(body.len(), CHALLENGE_LEN);
        assert_eq!(read_challenge(&body), Ok(A_TO_B));
        assert_eq!(read_challenge(&body[..CHALLENGE_LEN - 1]), Err(FrameError::TooShort));
        let mut long = body.clone();
        long.push(0);
        assert_eq!(read_challenge(&long), Err(FrameError::TooLarge { len: CHALLENGE_LEN + 1 }));
        let mut old = body.clone();
        old[4] = 1;
        assert_eq!(read_challenge(&old), Err(FrameError::UnsupportedVersion(1)));
        assert_eq!(read_challenge(b"+OK\r\n"), Err(FrameError::BadMagic));
        assert_eq!(read_challenge(b"+OK"), Err(FrameError::TooShort));
        assert_eq!(
            read_challenge(b"-ERR unknown command\r\n"),
            Err(FrameError::TooLarge { len: 22 })
        );
        assert_eq!(read_challenge(b"HTTP/1.1 400 Bad\r\n"), Err(FrameError::BadMagic));
    }
}
