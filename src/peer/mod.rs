//! The gossip transport: authenticated frames between Picket nodes over TCP.
//!
//! Each node dials every configured peer (re-resolving its host name on every attempt, so a pod
//! that comes back with a new IP is found again) and sends its messages on that connection; it
//! receives its peers' messages on the connections they dial to its gossip port. Messages are
//! datagrams to the engine, so this module never retries a message: it drops what it cannot send
//! and the engine's heartbeats and resync requests repair the gap.
//!
//! Every inbound frame is checked by [`crate::wire::frame`] (size, magic, version, HMAC, decoding)
//! and by a replay guard before the engine sees it. Anything else is counted by kind and dropped;
//! a connection that sends something that is not Picket gossip, or fails authentication, is
//! closed. Nothing an unauthenticated sender does reaches the engine.
//!
//! With `[tls] peers = true` every connection is also mutually authenticated TLS (see
//! [`crate::tls`]): the dialer checks that the peer's certificate names the peer's configured
//! host, the acceptor that the dialer's names one of the configured peers. The HMAC frames stay:
//! TLS hides the traffic and keeps strangers out; the frames keep their own guarantees
//! (replay protection, a shared secret) whatever the transport.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::either::Either;

use crate::clock::Clock;
use crate::engine::{Addr, Input, PeerId, PeerMessage};
use crate::hub::{PeerStats, TlsEndpoint, TlsStats};
use crate::tls::{self, PeerTls};
use crate::wire::frame::{self, FrameError, FrameHeader, FrameKey, MAX_FRAME_LEN, ReplayGuard};

/// Messages waiting for one peer's connection. Heartbeats come every 100 ms, so a full queue
/// means the peer is unreachable and older messages are stale anyway.
const OUTBOX_LEN: usize = 1024;
/// Most inbound gossip connections at once; a flood of garbage connections cannot exhaust memory.
const MAX_INBOUND: usize = 64;
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

/// Seals outbound frames: one random session per process, one sequence across all peers.
#[derive(Debug)]
struct Sealer {
    key: FrameKey,
    session: u64,
    seq: AtomicU64,
    clock: Clock,
}

impl Sealer {
    fn seal(&self, message: &PeerMessage) -> Result<Bytes, FrameError> {
        let header = FrameHeader {
            session: self.session,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            sent_at_unix_ms: self.clock.unix_ms(),
        };
        let mut out = Vec::new();
        frame::seal(&self.key, &header, message, &mut out)?;
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
        let outboxes = peers
            .iter()
            .map(|addr| {
                let (tx, rx) = mpsc::channel(OUTBOX_LEN);
                let dialer = Dialer {
                    addr: addr.clone(),
                    sealer: Arc::clone(&sealer),
                    stats: Arc::clone(&stats),
                    tls: tls.clone(),
                };
                tokio::spawn(dialer.run(rx));
                tx
            })
            .collect();
        let guard = Arc::new(Mutex::new(ReplayGuard::default()));
        let acceptor = Acceptor { key, guard, clock, inputs, stats: Arc::clone(&stats), tls };
        tokio::spawn(acceptor.run(listener));
        Self { outboxes, stats }
    }

    /// Queues `message` for the peer in `slot`; dropped if its queue is full.
    pub fn send(&self, slot: PeerId, message: Arc<PeerMessage>) {
        if let Some(outbox) = self.outboxes.get(usize::from(slot.0)) {
            let _ = outbox.try_send(message);
        }
    }
}

/// Gossip's transport: TCP, or TLS over it.
type Stream = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// One peer's outbound connection, redialed whenever it breaks.
struct Dialer {
    addr: Addr,
    sealer: Arc<Sealer>,
    stats: Arc<PeerStats>,
    tls: Option<GossipTls>,
}

impl Dialer {
    async fn run(self, mut outbox: mpsc::Receiver<Arc<PeerMessage>>) {
        let mut backoff = Duration::from_millis(50);
        // The last failure logged, so that a peer that stays unreachable is reported once.
        let mut reported: Option<String> = None;
        loop {
            let stream = match tokio::time::timeout(CONNECT_TIMEOUT, self.connect()).await {
                Ok(Ok(stream)) => stream,
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
            let mut sink = FramedWrite::new(stream, codec());
            loop {
                let Some(message) = outbox.recv().await else { return };
                let body = match self.sealer.seal(&message) {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot seal a gossip message; dropping it");
                        continue;
                    }
                };
                let len = body.len() as u64 + 4;
                if let Err(e) = sink.send(body).await {
                    tracing::info!(peer = %self.addr, error = %e, "connection to peer lost");
                    break;
                }
                self.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_sent.fetch_add(len, Ordering::Relaxed);
            }
        }
    }

    /// Connects (and shakes hands, with TLS). An error says what went wrong and whether it is
    /// worth a warning: a TLS failure is a configuration problem, a refused connection is a
    /// peer that is down.
    async fn connect(&self) -> Result<Stream, (String, bool)> {
        let target = format!("{}:{}", self.addr.host(), self.addr.port());
        let stream = TcpStream::connect(&target).await.map_err(|e| (e.to_string(), false))?;
        let _ = stream.set_nodelay(true);
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(UNACKED_LIMIT)) {
            tracing::debug!(peer = %self.addr, error = %e, "cannot set TCP_USER_TIMEOUT");
        }
        let Some(tls) = &self.tls else { return Ok(Either::Left(stream)) };
        let name = tls::server_name(self.addr.host()).map_err(|e| (e, true))?;
        let config = tls.configs.client.get();
        tls::connect(config, name, stream, TlsEndpoint::Peer, &tls.stats)
            .await
            .map(Either::Right)
            .map_err(|e| (e.to_string(), true))
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

/// Accepts peers' connections and reads their frames.
struct Acceptor {
    key: FrameKey,
    guard: Arc<Mutex<ReplayGuard>>,
    clock: Clock,
    inputs: mpsc::Sender<Input>,
    stats: Arc<PeerStats>,
    tls: Option<GossipTls>,
}

impl Acceptor {
    async fn run(self, listener: TcpListener) {
        let slots = Arc::new(Semaphore::new(MAX_INBOUND));
        let this = Arc::new(self);
        loop {
            let (stream, from) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "gossip accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!(%from, "too many gossip connections; refusing one");
                continue;
            };
            let this = Arc::clone(&this);
            tokio::spawn(async move {
                match &this.tls {
                    None => this.receive(stream, from).await,
                    Some(tls) => {
                        let config = tls.configs.server.get();
                        match tls::accept(config, stream, TlsEndpoint::Peer, &tls.stats).await {
                            Ok(stream) => this.receive(stream, from).await,
                            Err(e) => tracing::warn!(%from,
                                "refused a gossip connection: {e} (peers must present a certificate signed by tls.ca_file that names their configured address)"),
                        }
                    }
                }
                drop(permit);
            });
        }
    }

    async fn receive<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S, from: SocketAddr) {
        let (key, guard, clock, inputs, stats) =
            (&self.key, &self.guard, self.clock, &self.inputs, &self.stats);
        let mut frames = FramedRead::new(stream, codec());
        loop {
            let next = match tokio::time::timeout(INBOUND_IDLE, frames.next()).await {
                Err(_) | Ok(None) => return,
                Ok(Some(next)) => next,
            };
            let body = match next {
                Ok(body) => body,
                Err(e) => {
                    stats.reject("codec");
                    tracing::warn!(%from, error = %e, "closing gossip connection: not a valid frame stream");
                    return;
                }
            };
            let opened = frame::open::<PeerMessage>(key, &body).and_then(|(header, message)| {
                let mut guard = guard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                guard.check(&header, clock.unix_ms()).map(|()| message)
            });
            match opened {
                Ok(message) => {
                    stats.frames_accepted.fetch_add(1, Ordering::Relaxed);
                    stats.bytes_accepted.fetch_add(body.len() as u64 + 4, Ordering::Relaxed);
                    if inputs.send(Input::Peer(message)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    stats.reject(e.kind());
                    match e {
                        FrameError::BadMagic
                        | FrameError::BadMac
                        | FrameError::UnsupportedVersion(_) => {
                            tracing::warn!(%from, error = %e, "closing gossip connection");
                            return;
                        }
                        _ => tracing::debug!(%from, error = %e, "dropped a gossip frame"),
                    }
                }
            }
        }
    }
}
