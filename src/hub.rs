//! The handles through which shell servers reach the runtime, and nothing else.
//!
//! Servers (the Sentinel port, HTTP, notifications) never touch the engine or each other. They
//! read the latest [`View`] from a watch channel, subscribe to the event stream, and send admin
//! commands to the runtime, which feeds them to the engine and routes the answer back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::engine::{AdminAnswer, AdminCommand, Detail, Event, Level, Subject, View};

/// How many events the broadcast channel buffers for slow subscribers before they lag.
pub const EVENT_BUFFER: usize = 4096;

/// An event as published: numbered and timestamped.
#[derive(Clone, Debug, Serialize)]
pub struct EventRecord {
    /// Increases by one with every event this process publishes, from 1.
    pub id: u64,
    /// Wall-clock time of the event, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The event.
    pub event: Event,
}

/// An operator's command on its way to the engine.
#[derive(Debug)]
pub struct AdminRequest {
    /// The command.
    pub command: AdminCommand,
    /// Where the answer goes.
    pub reply: oneshot::Sender<AdminAnswer>,
}

/// What a server gets from the runtime.
#[derive(Clone, Debug)]
pub struct Hub {
    /// The engine's latest published view.
    pub view: watch::Receiver<Arc<View>>,
    /// Every event, as it is published.
    pub events: broadcast::Sender<Arc<EventRecord>>,
    /// Admin commands to the engine.
    pub admin: mpsc::Sender<AdminRequest>,
    /// The process clock (for "milliseconds ago" from engine instants).
    pub clock: Clock,
    /// Crash points armed by `SENTINEL SIMULATE-FAILURE`.
    pub failpoints: Arc<Failpoints>,
    /// Notified to stop the daemon cleanly (an authorized `SHUTDOWN`).
    pub shutdown: Arc<Notify>,
    /// Gossip traffic counters.
    pub peer_stats: Arc<PeerStats>,
    /// Counters the servers keep, for metrics.
    pub stats: Arc<ServerStats>,
    /// TLS handshake failures, certificate reloads and the certificates in use.
    pub tls_stats: Arc<TlsStats>,
}

/// Counters kept by the servers (the Sentinel port and HTTP), read by `/metrics`.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Clients connected to the Sentinel port now.
    pub resp_clients: AtomicU64,
    /// Connections accepted on the Sentinel port since start.
    pub resp_connections: AtomicU64,
    /// Commands executed on the Sentinel port.
    pub resp_commands: AtomicU64,
    /// Requests refused on the Sentinel port for a protocol error (the client was disconnected).
    pub resp_protocol_errors: AtomicU64,
    /// Clients disconnected for not reading their replies fast enough.
    pub resp_slow_clients: AtomicU64,
    /// HTTP requests served.
    pub http_requests: AtomicU64,
    /// HTTP connections open now.
    pub http_connections: AtomicU64,
    /// HTTP connections refused because every slot held a request in flight.
    pub http_refused_connections: AtomicU64,
    /// Idle HTTP connections closed to make room for a newer one.
    pub http_evicted_connections: AtomicU64,
    /// HTTP event watchers (server-sent event streams and long polls) open now.
    pub http_event_watchers: AtomicU64,
    /// Event streams ended because their client read too slowly.
    pub http_slow_watchers: AtomicU64,
    /// Scripts running now.
    pub scripts_running: AtomicU64,
    /// Scripts waiting to run (queued or waiting for a retry).
    pub scripts_queued: AtomicU64,
    /// Script runs that ended, by outcome (see [`ScriptOutcome`]).
    pub script_runs: [AtomicU64; ScriptOutcome::ALL.len()],
    /// Scripts dropped from a full queue.
    pub scripts_dropped: AtomicU64,
    /// Webhook deliveries waiting, over every endpoint.
    pub webhooks_queued: AtomicU64,
    /// Webhook deliveries that the endpoint accepted.
    pub webhooks_delivered: AtomicU64,
    /// Webhook attempts that failed and were retried.
    pub webhook_retries: AtomicU64,
    /// Webhook deliveries abandoned (out of retries, or refused with a 4xx).
    pub webhooks_failed: AtomicU64,
    /// Webhook deliveries dropped from a full queue.
    pub webhooks_dropped: AtomicU64,
    /// Events a notifier missed because it fell behind the event broadcast.
    pub notify_events_missed: AtomicU64,
}

/// How a script run ended, for metrics.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ScriptOutcome {
    /// Exit status 0.
    Ok,
    /// Exit status 1 or killed by a signal: retried while retries remain (Sentinel's rule).
    Retry,
    /// Exit status 2 or more, or the program could not be started: not retried.
    Error,
    /// Ran past the time limit and was killed (then retried, as any death by signal).
    Timeout,
}

impl ScriptOutcome {
    /// Every outcome, in the order of [`ServerStats::script_runs`].
    pub const ALL: [Self; 4] = [Self::Ok, Self::Retry, Self::Error, Self::Timeout];

    /// The metric label.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Retry => "retry",
            Self::Error => "error",
            Self::Timeout => "timeout",
        }
    }
}

/// Crash points for tests, as Sentinel's `SIMULATE-FAILURE`: when armed, the runtime exits with
/// status 99 the moment this node publishes the matching event, before performing any later
/// output, so a test can kill a leader at an exact step of a failover.
#[derive(Debug, Default)]
pub struct Failpoints {
    /// Exit right after `+elected-leader`.
    pub crash_after_election: AtomicBool,
    /// Exit right after `+promoted-slave`.
    pub crash_after_promotion: AtomicBool,
}

impl Failpoints {
    /// The exit status of a simulated crash (Sentinel's).
    pub const EXIT_STATUS: i32 = 99;

    /// Whether publishing an event of `kind` must crash the process now.
    #[must_use]
    pub fn crashes_at(&self, kind: crate::engine::EventKind) -> bool {
        use crate::engine::EventKind;
        match kind {
            EventKind::ElectedLeader => self.crash_after_election.load(Ordering::SeqCst),
            EventKind::PromotedReplica => self.crash_after_promotion.load(Ordering::SeqCst),
            _ => false,
        }
    }
}

impl EventRecord {
    /// The record as clients of the HTTP event stream and webhooks see it: the event's name, its
    /// level, the master it concerns, Sentinel's payload text, and the parsed subject and details.
    #[must_use]
    pub fn json(&self) -> EventJson<'_> {
        EventJson {
            id: self.id,
            unix_ms: self.unix_ms,
            event: self.event.channel(),
            level: self.event.level(),
            master: self.event.master_name(),
            payload: self.event.payload(),
            subject: self.event.subject.as_ref(),
            detail: &self.event.detail,
        }
    }
}

/// The JSON form of an [`EventRecord`] (see [`EventRecord::json`]).
#[derive(Debug, Serialize)]
pub struct EventJson<'a> {
    /// [`EventRecord::id`].
    pub id: u64,
    /// [`EventRecord::unix_ms`].
    pub unix_ms: u64,
    /// The Sentinel event name (`+switch-master`).
    pub event: &'static str,
    /// `warning`, `notice` or `verbose`.
    pub level: Level,
    /// The master group concerned, if any.
    pub master: Option<&'a str>,
    /// The Sentinel pub/sub message, byte for byte.
    pub payload: String,
    /// The instance concerned.
    pub subject: Option<&'a Subject>,
    /// Kind-specific fields, flattened: `"detail": "quorum", "votes": 2, "quorum": 2`.
    #[serde(flatten)]
    pub detail: &'a Detail,
}

impl Hub {
    /// The latest view.
    #[must_use]
    pub fn view(&self) -> Arc<View> {
        Arc::clone(&self.view.borrow())
    }

    /// Sends `command` to the engine and waits for its answer; `None` if the runtime stopped.
    pub async fn admin(&self, command: AdminCommand) -> Option<AdminAnswer> {
        let (reply, answer) = oneshot::channel();
        self.admin.send(AdminRequest { command, reply }).await.ok()?;
        answer.await.ok()
    }
}

/// Counters of gossip traffic, for metrics.
#[derive(Debug, Default)]
pub struct PeerStats {
    /// Frames sent.
    pub frames_sent: AtomicU64,
    /// Bytes sent (frame bodies plus length prefixes).
    pub bytes_sent: AtomicU64,
    /// Frames received and accepted.
    pub frames_accepted: AtomicU64,
    /// Bytes received in accepted frames.
    pub bytes_accepted: AtomicU64,
    rejected: [AtomicU64; REJECTION_KINDS.len()],
}

/// Labels of rejected inbound frames, as the gossip frame decoder's `FrameError::kind` names
/// them, plus `codec` for a length prefix above the limit or a broken stream.
///
/// Refused connections are counted here too: `no_slot` (every slot for its kind of sender was
/// taken) and `unauthenticated` (no valid frame within the authentication deadline).
pub const REJECTION_KINDS: [&str; 11] = [
    "too_short",
    "too_large",
    "bad_magic",
    "unsupported_version",
    "bad_mac",
    "malformed",
    "replayed",
    "stale",
    "codec",
    "no_slot",
    "unauthenticated",
];

impl PeerStats {
    /// Rejected frames of each kind.
    pub fn rejected(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        REJECTION_KINDS.iter().zip(&self.rejected).map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
    }

    /// Counts a rejected inbound frame of `kind` (one of [`REJECTION_KINDS`]).
    pub fn reject(&self, kind: &str) {
        if let Some(i) = REJECTION_KINDS.iter().position(|k| *k == kind) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Lets a repeated warning through at most once per interval, counting the ones it held back,
/// so that a flood of refused connections costs one log line per interval instead of one each.
///
/// The first occurrence is logged at once; later ones within the interval are only counted, and
/// the next one logged after the interval says how many were suppressed in between.
#[derive(Debug)]
pub struct LogLimiter {
    interval: std::time::Duration,
    state: Mutex<LimiterState>,
}

#[derive(Debug, Default)]
struct LimiterState {
    last_logged: Option<crate::engine::Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// A limiter letting one line through per `interval`.
    #[must_use]
    pub fn new(interval: std::time::Duration) -> Self {
        Self { interval, state: Mutex::new(LimiterState::default()) }
    }

    /// `Some(suppressed)` if a line may be logged at `now`, with how many occurrences were held
    /// back since the last line; `None` if this one is only counted.
    pub fn admit(&self, now: crate::engine::Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let due = state.last_logged.is_none_or(|last| now.saturating_since(last) >= self.interval);
        if due {
            state.last_logged = Some(now);
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed = state.suppressed.saturating_add(1);
            None
        }
    }
}

/// Where a TLS handshake happened, for metrics and logs.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum TlsEndpoint {
    /// A link to a monitored Redis instance.
    Redis,
    /// Gossip, in either direction.
    Peer,
    /// The Sentinel port's `tls_listen`.
    Sentinel,
    /// The HTTP API's `tls_http`.
    Http,
}

impl TlsEndpoint {
    /// Every endpoint, in the order of [`TlsStats`]'s counters.
    pub const ALL: [Self; 4] = [Self::Redis, Self::Peer, Self::Sentinel, Self::Http];

    /// The metric label.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Peer => "peer",
            Self::Sentinel => "sentinel",
            Self::Http => "http",
        }
    }
}

/// Why a TLS handshake failed, as far as the error tells.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum TlsFailure {
    /// The other side's certificate is not signed by a trusted CA.
    UnknownCa,
    /// The other side's certificate has expired.
    Expired,
    /// The other side's certificate is not valid yet.
    NotYetValid,
    /// The other side's certificate is not valid for the name it was reached by (or, for a
    /// gossip client, for any configured peer).
    NameMismatch,
    /// A client certificate was required and none was given (by either side).
    NoClientCert,
    /// Any other problem with the other side's certificate.
    BadCertificate,
    /// The other side refused this side's certificate, or the handshake, with an alert.
    RefusedByPeer,
    /// The handshake did not finish in time.
    Timeout,
    /// Not TLS, no common protocol version or cipher suite, or the connection broke.
    Protocol,
}

impl TlsFailure {
    /// Every reason, in the order of [`TlsStats`]'s counters.
    pub const ALL: [Self; 9] = [
        Self::UnknownCa,
        Self::Expired,
        Self::NotYetValid,
        Self::NameMismatch,
        Self::NoClientCert,
        Self::BadCertificate,
        Self::RefusedByPeer,
        Self::Timeout,
        Self::Protocol,
    ];

    /// The metric label.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownCa => "unknown_ca",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::NameMismatch => "name_mismatch",
            Self::NoClientCert => "no_client_cert",
            Self::BadCertificate => "bad_certificate",
            Self::RefusedByPeer => "refused_by_peer",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
        }
    }
}

/// TLS counters and the certificates in use, read by `/metrics`.
#[derive(Debug, Default)]
pub struct TlsStats {
    failures: [[AtomicU64; TlsFailure::ALL.len()]; TlsEndpoint::ALL.len()],
    /// Per certificate set (`node`, `master <name>`): reloads that worked and that failed, and
    /// the SHA-256 fingerprint of the leaf certificate in use (none for a master without a
    /// client certificate).
    certificates: Mutex<BTreeMap<String, CertificateState>>,
}

/// One certificate set's reloads and current leaf certificate.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct CertificateState {
    /// Successful reloads since start (the first load not counted).
    pub reloads: u64,
    /// Reloads that failed (the previous certificates stayed in use).
    pub reload_failures: u64,
    /// Hex SHA-256 of the leaf certificate in use (public: it identifies, never authorizes).
    pub fingerprint: Option<String>,
}

impl TlsStats {
    /// Counts a failed handshake.
    pub fn failed(&self, endpoint: TlsEndpoint, failure: TlsFailure) {
        let e = TlsEndpoint::ALL.iter().position(|x| *x == endpoint).unwrap_or(0);
        let f = TlsFailure::ALL.iter().position(|x| *x == failure).unwrap_or(0);
        self.failures[e][f].fetch_add(1, Ordering::Relaxed);
    }

    /// Failed handshakes by endpoint and reason, zeros included.
    pub fn failures(&self) -> impl Iterator<Item = (TlsEndpoint, TlsFailure, u64)> + '_ {
        TlsEndpoint::ALL.iter().zip(&self.failures).flat_map(|(endpoint, row)| {
            TlsFailure::ALL
                .iter()
                .zip(row)
                .map(|(failure, n)| (*endpoint, *failure, n.load(Ordering::Relaxed)))
        })
    }

    /// Records that certificate set `name` was loaded (`first` at start), with its leaf's
    /// fingerprint.
    pub fn loaded(&self, name: &str, fingerprint: Option<String>, first: bool) {
        let mut sets = self.certificates.lock().unwrap_or_else(PoisonError::into_inner);
        let state = sets.entry(name.to_owned()).or_default();
        state.fingerprint = fingerprint;
        if !first {
            state.reloads += 1;
        }
    }

    /// Records that reloading certificate set `name` failed.
    pub fn reload_failed(&self, name: &str) {
        let mut sets = self.certificates.lock().unwrap_or_else(PoisonError::into_inner);
        sets.entry(name.to_owned()).or_default().reload_failures += 1;
    }

    /// Every certificate set, by name.
    pub fn certificates(&self) -> BTreeMap<String, CertificateState> {
        self.certificates.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::Instant;

    #[test]
    fn the_log_limiter_lets_one_line_through_per_interval_with_the_count_held_back() {
        let limiter = LogLimiter::new(Duration::from_secs(1));
        let at = Instant::from_millis;
        assert_eq!(limiter.admit(at(10_000)), Some(0));
        assert_eq!(limiter.admit(at(10_001)), None);
        assert_eq!(limiter.admit(at(10_999)), None);
        assert_eq!(limiter.admit(at(11_000)), Some(2));
        assert_eq!(limiter.admit(at(11_500)), None);
        assert_eq!(limiter.admit(at(15_000)), Some(1));
        assert_eq!(limiter.admit(at(16_000)), Some(0));
    }
}
