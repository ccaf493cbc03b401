//! The gossip transport: authenticated frames between Picket nodes over TCP.
//!
//! Each node dials every configured peer (re-resolving its host name on every attempt, so a pod
//! that comes back with a new IP is found again) and sends its messages on that connection; it
//! receives its peers' messages on the connections they dial to its gossip port. Messages are
//! datagrams to the engine, so this module never retries a message: it drops what it cannot send
//! and the engine's heartbeats and resync requests repair the gap.
//!
//! Every inbound connection starts with the acceptor's challenge: a random channel drawn for that
//! connection, over which the dialer authenticates every frame it sends on it (see
//! [`crate::wire::frame`]), so a frame is valid for one receiver, in one direction, on one
//! connection. Every inbound frame is checked (size, magic, version, HMAC, decoding) and by a
//! replay guard before the engine sees it. Anything else is counted by kind and dropped; a
//! connection that sends something that is not Picket gossip, or fails authentication, is closed.
//! Nothing an unauthenticated sender does reaches the engine.
//!
//! # Slots
//!
//! Strangers cannot hold the port. A connection is *unauthenticated* until its first valid frame,
//! and must deliver it within [`AUTH_TIMEOUT`] (TLS handshake included) or be closed. At most
//! [`PENDING_PER_ADDRESS`] unauthenticated connections are held per source address, and at most
//! [`STRANGER_PENDING`] in all from addresses the configured peers do not resolve to; more are
//! closed at once. A flood from a few addresses therefore holds a few slots for a second each,
//! and a peer connecting from any other address (or from its own) still finds room. An
//! authenticated connection leaves those slots and takes its sender's own: one per announced peer
//! address, and a new authenticated connection from a peer replaces its old one, so a restarted
//! peer always gets back in. Refusals are counted by kind and logged at most once per
//! [`REFUSAL_LOG_INTERVAL`], with the number held back.
//!
//! With `[tls] peers = true` every connection is also mutually authenticated TLS (see
//! [`crate::tls`]): the dialer checks that the peer's certificate names the peer's configured
//! host, the acceptor that the dialer's names one of the configured peers. The HMAC frames stay:
//! TLS hides the traffic and keeps strangers out; the frames keep their own guarantees
//! (replay protection, a shared secret) whatever the transport.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::either::Either;

use crate::clock::Clock;
use crate::engine::{Addr, Input, PeerId, PeerMessage};
use crate::hub::{LogLimiter, PeerStats, TlsEndpoint, TlsStats};
use crate::tls::{self, PeerTls};
use crate::wire::frame::{
    self, CHANNEL_LEN, Channel, FrameError, FrameHeader, FrameKey, MAX_FRAME_LEN, ReplayGuard,
};

/// Messages waiting for one peer's connection. Heartbeats come every 100 ms, so a full queue
/// means the peer is unreachable and older messages are stale anyway.
const OUTBOX_LEN: usize = 1024;
/// Most unauthenticated inbound connections at once from one source address. A peer opens one at
/// a time (a second one at most across a reconnection).
pub const PENDING_PER_ADDRESS: usize = 4;
/// Most unauthenticated inbound connections at once, over all addresses the configured peers do
/// not resolve to (connections from the peers' own addresses are bounded by
/// [`PENDING_PER_ADDRESS`] each). A peer whose address this node has not resolved yet, or which
/// connects from another address than it is dialed at (NAT, loopback), is one of these.
pub const STRANGER_PENDING: usize = 32;
/// An inbound connection that has not delivered a valid frame this long after it was accepted is
/// closed. Peers send a frame at once and a heartbeat every 100 ms.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Authenticated connections from senders announcing an address that is not among the
/// configured peers (a node this one does not list, but which lists it), beyond one per peer.
const UNLISTED_SENDERS: usize = 4;
/// Repeated refusals of inbound connections are logged at most once per this interval.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// An inbound connection that delivers no valid frame for this long is closed.
const INBOUND_IDLE: Duration = Duration::from_secs(30);
/// Limit for resolving and connecting to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest pause between two connection attempts to a peer.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Unacknowledged data older than this aborts an outbound connection (`TCP_USER_TIMEOUT`).
/// Heartbeats are tiny, so a partition never fills the socket buffer and writes never fail:
/// without this, a connection across a healed partition waits for TCP's exponential
/// retransmission timer (over ten seconds after a long partition) instead of reconnecting.
const UNACKED_LIMIT: Duration = Duration::from_secs(3);

/// Seals outbound frames: one random session per process, one sequence across all peers, each
/// frame bound to the channel its connection's acceptor drew.
#[derive(Debug)]
struct Sealer {
    key: FrameKey,
    session: u64,
    seq: AtomicU64,
    clock: Clock,
}

impl Sealer {
    fn seal(&self, channel: &Channel, message: &PeerMessage) -> Result<Bytes, FrameError> {
        let header = FrameHeader {
            session: self.session,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            sent_at_unix_ms: self.clock.unix_ms(),
        };
        let mut out = Vec::new();
        frame::seal(&self.key, channel, &header, message, &mut out)?;
        Ok(Bytes::from(out))
    }
}

/// TLS for gossip, and where its failures are counted.
#[derive(Clone, Debug)]
pub struct GossipTls {
    /// The node's configurations.
    pub configs: PeerTls,
    /// Handshake failure counters.
    pub stats: Arc<TlsStats>,
}

/// The running transport: where the runtime hands outbound messages.
#[derive(Debug)]
pub struct PeerTransport {
    outboxes: Vec<mpsc::Sender<Arc<PeerMessage>>>,
    /// Traffic counters.
    pub stats: Arc<PeerStats>,
}

impl PeerTransport {
    /// Starts accepting on `listener` and dialing `peers` (slot order), authenticating with
    /// `key` (and `tls`, when given); accepted messages are sent to `inputs`. `session` must
    /// come from real entropy.
    #[must_use]
    pub fn start(
        listener: TcpListener,
        peers: &[Addr],
        key: FrameKey,
        tls: Option<GossipTls>,
        session: u64,
        clock: Clock,
        inputs: mpsc::Sender<Input>,
    ) -> Self {
        let stats = Arc::new(PeerStats::default());
        let sealer = Arc::new(Sealer { key: key.clone(), session, seq: AtomicU64::new(0), clock });
        let known = Arc::new(KnownAddrs::default());
        let outboxes = peers
            .iter()
            .enumerate()
            .map(|(slot, addr)| {
                let (tx, rx) = mpsc::channel(OUTBOX_LEN);
                let dialer = Dialer {
                    slot,
                    addr: addr.clone(),
                    sealer: Arc::clone(&sealer),
                    stats: Arc::clone(&stats),
                    tls: tls.clone(),
                    known: Arc::clone(&known),
                };
                tokio::spawn(dialer.run(rx));
                tx
            })
            .collect();
        let acceptor = Acceptor {
            key,
            guard: Mutex::new(ReplayGuard::default()),
            clock,
            inputs,
            stats: Arc::clone(&stats),
            tls,
            known,
            pending: Mutex::new(Pending::default()),
            senders: Mutex::new(Senders::new(peers, peers.len() + UNLISTED_SENDERS)),
            refusals: LogLimiter::new(REFUSAL_LOG_INTERVAL),
        };
        tokio::spawn(Arc::new(acceptor).run(listener));
        Self { outboxes, stats }
    }

    /// Queues `message` for the peer in `slot`; dropped if its queue is full.
    pub fn send(&self, slot: PeerId, message: Arc<PeerMessage>) {
        if let Some(outbox) = self.outboxes.get(usize::from(slot.0)) {
            let _ = outbox.try_send(message);
        }
    }
}

/// The addresses the configured peers resolved to when this node last dialed them: inbound
/// connections from them get the larger share of unauthenticated slots.
#[derive(Debug, Default)]
struct KnownAddrs {
    by_slot: Mutex<BTreeMap<usize, IpAddr>>,
}

impl KnownAddrs {
    fn set(&self, slot: usize, ip: IpAddr) {
        self.by_slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(slot, ip);
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let by_slot = self.by_slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        by_slot.values().any(|known| known.to_canonical() == ip)
    }
}

/// Gossip's transport: TCP, or TLS over it.
type Stream = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// One peer's outbound connection, redialed whenever it breaks.
struct Dialer {
    slot: usize,
    addr: Addr,
    sealer: Arc<Sealer>,
    stats: Arc<PeerStats>,
    tls: Option<GossipTls>,
    known: Arc<KnownAddrs>,
}

impl Dialer {
    async fn run(self, mut outbox: mpsc::Receiver<Arc<PeerMessage>>) {
        let mut backoff = Duration::from_millis(50);
        // The last failure logged, so that a peer that stays unreachable is reported once.
        let mut reported: Option<String> = None;
        loop {
            let (mut framed, channel) =
                match tokio::time::timeout(CONNECT_TIMEOUT, self.connect()).await {
                    Ok(Ok(connected)) => connected,
                    Ok(Err((error, loud))) => {
                        if loud && reported.as_ref() != Some(&error) {
                            tracing::warn!(peer = %self.addr, "cannot connect to peer: {error}");
                            reported = Some(error);
                        } else {
                            tracing::debug!(peer = %self.addr, "cannot connect to peer: {error}");
                        }
                        if !discard_for(&mut outbox, backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                    Err(_) => {
                        tracing::debug!(peer = %self.addr, "connecting to peer timed out");
                        if !discard_for(&mut outbox, backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                };
            backoff = Duration::from_millis(50);
            reported = None;
            tracing::info!(peer = %self.addr, tls = self.tls.is_some(), "connected to peer");
            loop {
                let Some(message) = outbox.recv().await else { return };
                let body = match self.sealer.seal(&channel, &message) {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot seal a gossip message; dropping it");
                        continue;
                    }
                };
                let len = body.len() as u64 + 4;
                if let Err(e) = framed.send(body).await {
                    tracing::info!(peer = %self.addr, error = %e, "connection to peer lost");
                    break;
                }
                self.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_sent.fetch_add(len, Ordering::Relaxed);
            }
        }
    }

    /// Connects (and shakes hands, with TLS) and reads the acceptor's challenge. An error says
    /// what went wrong and whether it is worth a warning: a TLS failure or a peer speaking
    /// something else is a configuration problem, a refused connection is a peer that is down.
    async fn connect(
        &self,
    ) -> Result<(Framed<Stream, LengthDelimitedCodec>, Channel), (String, bool)> {
        let target = format!("{}:{}", self.addr.host(), self.addr.port());
        let stream = TcpStream::connect(&target).await.map_err(|e| (e.to_string(), false))?;
        if let Ok(remote) = stream.peer_addr() {
            self.known.set(self.slot, remote.ip());
        }
        let _ = stream.set_nodelay(true);
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(UNACKED_LIMIT)) {
            tracing::debug!(peer = %self.addr, error = %e, "cannot set TCP_USER_TIMEOUT");
        }
        let stream = match &self.tls {
            None => Either::Left(stream),
            Some(tls) => {
                let name = tls::server_name(self.addr.host()).map_err(|e| (e, true))?;
                let config = tls.configs.client.get();
                tls::connect(config, name, stream, TlsEndpoint::Peer, &tls.stats)
                    .await
                    .map(Either::Right)
                    .map_err(|e| (e.to_string(), true))?
            }
        };
        let mut framed = Framed::new(stream, codec());
        let challenge = match framed.next().await {
            Some(Ok(body)) => body,
            Some(Err(e)) => return Err((format!("no challenge from the peer: {e}"), true)),
            // Closed before its challenge: a peer whose slots are full, or one stopping.
            None => return Err(("the peer closed the connection".to_owned(), false)),
        };
        let channel = frame::read_challenge(&challenge)
            .map_err(|e| (format!("the peer's challenge is not Picket gossip: {e}"), true))?;
        Ok((framed, channel))
    }
}

/// Throws away queued messages for `period` (they would be stale by the time the peer is back;
/// the engine resends what matters). Returns false if the runtime is gone.
async fn discard_for(outbox: &mut mpsc::Receiver<Arc<PeerMessage>>, period: Duration) -> bool {
    let deadline = tokio::time::sleep(period);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return true,
            message = outbox.recv() => if message.is_none() { return false },
        }
    }
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME_LEN).new_codec()
}

/// The authenticated connection of each sender, by the gossip address it announces: a newer
/// connection replaces the older, which is told to close.
#[derive(Debug)]
struct Senders {
    listed: BTreeSet<Addr>,
    max: usize,
    next_id: u64,
    open: BTreeMap<Addr, (u64, watch::Sender<bool>)>,
}

impl Senders {
    fn new(peers: &[Addr], max: usize) -> Self {
        Self { listed: peers.iter().cloned().collect(), max, next_id: 0, open: BTreeMap::new() }
    }

    /// Makes a new connection from `announce` its only one; returns its id and the signal that
    /// closes it, or `None` if there is no room (too many unlisted senders).
    fn admit(&mut self, announce: &Addr) -> Option<(u64, watch::Receiver<bool>)> {
        let replacing = self.open.contains_key(announce);
        if !replacing && !self.listed.contains(announce) && self.open.len() >= self.max {
            return None;
        }
        self.next_id += 1;
        let (close, closed) = watch::channel(false);
        if let Some((_, old)) = self.open.insert(announce.clone(), (self.next_id, close)) {
            let _ = old.send(true);
        }
        Some((self.next_id, closed))
    }

    /// Forgets connection `id` of `announce`, unless a newer one replaced it already.
    fn remove(&mut self, announce: &Addr, id: u64) {
        if self.open.get(announce).is_some_and(|(open, _)| *open == id) {
            self.open.remove(announce);
        }
    }
}

/// Accepts peers' connections and reads their frames.
struct Acceptor {
    key: FrameKey,
    guard: Mutex<ReplayGuard>,
    clock: Clock,
    inputs: mpsc::Sender<Input>,
    stats: Arc<PeerStats>,
    tls: Option<GossipTls>,
    known: Arc<KnownAddrs>,
    pending: Mutex<Pending>,
    senders: Mutex<Senders>,
    refusals: LogLimiter,
}

/// The unauthenticated connections held now.
#[derive(Debug, Default)]
struct Pending {
    by_address: BTreeMap<IpAddr, usize>,
    strangers: usize,
}

/// One unauthenticated connection's slot, given back when dropped.
struct PendingSlot {
    acceptor: Arc<Acceptor>,
    ip: IpAddr,
    stranger: bool,
}

impl PendingSlot {
    /// A slot for a connection from `ip`, if its address and (for a stranger) all strangers
    /// together are below their limits.
    fn take(acceptor: &Arc<Acceptor>, ip: IpAddr) -> Option<Self> {
        let ip = ip.to_canonical();
        let stranger = !acceptor.known.contains(ip);
        let mut pending =
            acceptor.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = pending.by_address.get(&ip).copied().unwrap_or(0);
        if held >= PENDING_PER_ADDRESS || (stranger && pending.strangers >= STRANGER_PENDING) {
            return None;
        }
        pending.by_address.insert(ip, held + 1);
        pending.strangers += usize::from(stranger);
        Some(Self { acceptor: Arc::clone(acceptor), ip, stranger })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut pending =
            self.acceptor.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = pending.by_address.get_mut(&self.ip) {
            *held -= 1;
            if *held == 0 {
                pending.by_address.remove(&self.ip);
            }
        }
        pending.strangers -= usize::from(self.stranger);
    }
}

/// Why an inbound connection was closed before it authenticated.
type Refusal = (&'static str, String);

impl Acceptor {
    async fn run(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, from) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "gossip accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(slot) = PendingSlot::take(&self, from.ip()) else {
                self.refuse(from, ("no_slot", "too many unauthenticated connections from its address, or from unknown addresses".to_owned()));
                continue;
            };
            tokio::spawn(Arc::clone(&self).serve(stream, from, slot));
        }
    }

    /// Logs a refused connection (rate-limited) and counts it.
    fn refuse(&self, from: SocketAddr, (kind, reason): Refusal) {
        self.stats.reject(kind);
        if let Some(suppressed) = self.refusals.admit(self.clock.now()) {
            tracing::warn!(%from, suppressed, "refused a gossip connection: {reason}");
        }
    }

    /// Serves one inbound connection: shakes hands (TLS, challenge), waits for its first valid
    /// frame within [`AUTH_TIMEOUT`], then gives it its sender's slot and reads on.
    async fn serve(self: Arc<Self>, stream: TcpStream, from: SocketAddr, slot: PendingSlot) {
        let mut channel = [0u8; CHANNEL_LEN];
        if getrandom::fill(&mut channel).is_err() {
            // Without randomness a channel would be predictable; refuse rather than weaken.
            tracing::error!(%from, "no OS randomness for a gossip channel; closing the connection");
            return;
        }
        let channel = Channel(channel);
        let authenticated =
            tokio::time::timeout(AUTH_TIMEOUT, self.authenticate(stream, from, &channel)).await;
        let (frames, first) = match authenticated {
            Ok(Ok(authenticated)) => authenticated,
            Ok(Err(refusal)) => return self.refuse(from, refusal),
            Err(_) => {
                return self.refuse(
                    from,
                    (
                        "unauthenticated",
                        format!("no valid frame within {} ms", AUTH_TIMEOUT.as_millis()),
                    ),
                );
            }
        };
        drop(slot);
        let announce = first.from.announce.clone();
        let admitted =
            self.senders.lock().unwrap_or_else(std::sync::PoisonError::into_inner).admit(&announce);
        let Some((id, closed)) = admitted else {
            return self.refuse(
                from,
                (
                    "no_slot",
                    format!("too many senders not among the configured peers ({announce})"),
                ),
            );
        };
        tracing::debug!(%from, %announce, "gossip connection authenticated");
        if self.deliver(first).await {
            self.receive(frames, from, &channel, closed).await;
        }
        self.senders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&announce, id);
    }

    /// The TLS handshake (if any), the challenge, and the first valid frame.
    async fn authenticate(
        &self,
        stream: TcpStream,
        from: SocketAddr,
        channel: &Channel,
    ) -> Result<(Framed<InboundStream, LengthDelimitedCodec>, PeerMessage), Refusal> {
        let stream = match &self.tls {
            None => Either::Left(stream),
            Some(tls) => {
                let config = tls.configs.server.get();
                let stream = tls::accept(config, stream, TlsEndpoint::Peer, &tls.stats).await.map_err(|e| {
                    ("tls", format!("{e} (peers must present a certificate signed by tls.ca_file that names their configured address)"))
                })?;
                Either::Right(stream)
            }
        };
        let mut frames = Framed::new(stream, codec());
        frames
            .send(Bytes::from(frame::challenge(channel)))
            .await
            .map_err(|e| ("codec", format!("cannot send the challenge: {e}")))?;
        loop {
            let body = match frames.next().await {
                None => return Err(("codec", "closed before authenticating".to_owned())),
                Some(Err(e)) => return Err(("codec", format!("not a valid frame stream: {e}"))),
                Some(Ok(body)) => body,
            };
            match self.open(&body, channel) {
                Ok(message) => return Ok((frames, message)),
                Err(e) if closes(&e) => return Err((e.kind(), e.to_string())),
                Err(e) => tracing::debug!(%from, error = %e, "dropped a gossip frame"),
            }
        }
    }

    /// Opens and checks one frame body, counting it.
    fn open(&self, body: &[u8], channel: &Channel) -> Result<PeerMessage, FrameError> {
        let opened =
            frame::open::<PeerMessage>(&self.key, channel, body).and_then(|(header, message)| {
                let mut guard =
                    self.guard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                guard.check(&header, self.clock.unix_ms()).map(|()| message)
            });
        match &opened {
            Ok(_) => {
                self.stats.frames_accepted.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_accepted.fetch_add(body.len() as u64 + 4, Ordering::Relaxed);
            }
            // Counted by `refuse` when it closes the connection.
            Err(e) if closes(e) => {}
            Err(e) => self.stats.reject(e.kind()),
        }
        opened
    }

    /// Hands a message to the engine; false if the runtime is gone.
    async fn deliver(&self, message: PeerMessage) -> bool {
        self.inputs.send(Input::Peer(message)).await.is_ok()
    }

    /// Reads an authenticated connection until it breaks, idles, sends something that is not
    /// Picket gossip, or is replaced by a newer connection of the same sender.
    async fn receive(
        &self,
        mut frames: Framed<InboundStream, LengthDelimitedCodec>,
        from: SocketAddr,
        channel: &Channel,
        mut closed: watch::Receiver<bool>,
    ) {
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(INBOUND_IDLE, frames.next()) => next,
                _ = closed.changed() => {
                    tracing::debug!(%from, "gossip connection replaced by a newer one from the same peer");
                    return;
                }
            };
            let body = match next {
                Err(_) | Ok(None) => return,
                Ok(Some(Ok(body))) => body,
                Ok(Some(Err(e))) => {
                    return self.refuse(from, ("codec", format!("not a valid frame stream: {e}")));
                }
            };
            match self.open(&body, channel) {
                Ok(message) => {
                    if !self.deliver(message).await {
                        return;
                    }
                }
                Err(e) if closes(&e) => return self.refuse(from, (e.kind(), e.to_string())),
                Err(e) => tracing::debug!(%from, error = %e, "dropped a gossip frame"),
            }
        }
    }
}

/// An inbound connection: TCP, or TLS over it.
type InboundStream = Either<TcpStream, tokio_rustls::server::TlsStream<TcpStream>>;

/// Whether a frame error closes its connection: the sender does not speak this protocol or
/// does not hold the secret. Other errors (a replay, a stale or malformed frame) drop the frame.
const fn closes(e: &FrameError) -> bool {
    matches!(e, FrameError::BadMagic | FrameError::BadMac | FrameError::UnsupportedVersion(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Addr {
        text.parse().unwrap()
    }

    #[test]
    fn a_newer_connection_from_a_peer_replaces_the_older_and_unlisted_senders_are_capped() {
        let peer = addr("10.0.0.2:26380");
        let mut senders = Senders::new(std::slice::from_ref(&peer), 2);
        let (first, first_closed) = senders.admit(&peer).unwrap();
        assert!(!*first_closed.borrow());
        let (second, second_closed) = senders.admit(&peer).unwrap();
        assert!(*first_closed.borrow(), "the older connection is told to close");
        assert!(!*second_closed.borrow());
        // The older one ending does not forget the newer one.
        senders.remove(&peer, first);
        assert_eq!(senders.open.len(), 1);

        // One sender that is not a configured peer fits under the cap; a second does not, but a
        // configured peer (or the first unlisted one) always gets back in.
        let stranger = addr("10.0.0.9:26380");
        let (unlisted, _) = senders.admit(&stranger).unwrap();
        assert!(senders.admit(&addr("10.0.0.10:26380")).is_none());
        assert!(senders.admit(&peer).is_some());
        assert!(senders.admit(&stranger).is_some());
        senders.remove(&stranger, unlisted);
        senders.remove(&peer, second);
        assert_eq!(senders.open.len(), 2, "only the newest connections remain");
    }
}
