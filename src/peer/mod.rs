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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::clock::Clock;
use crate::engine::{Addr, Input, PeerId, PeerMessage};
use crate::hub::PeerStats;
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

/// The running transport: where the runtime hands outbound messages.
#[derive(Debug)]
pub struct PeerTransport {
    outboxes: Vec<mpsc::Sender<Arc<PeerMessage>>>,
    /// Traffic counters.
    pub stats: Arc<PeerStats>,
}

impl PeerTransport {
    /// Starts accepting on `listener` and dialing `peers` (slot order), authenticating with
    /// `key`; accepted messages are sent to `inputs`. `session` must come from real entropy.
    #[must_use]
    pub fn start(
        listener: TcpListener,
        peers: &[Addr],
        key: FrameKey,
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
                tokio::spawn(dial(addr.clone(), rx, Arc::clone(&sealer), Arc::clone(&stats)));
                tx
            })
            .collect();
        let guard = Arc::new(Mutex::new(ReplayGuard::default()));
        tokio::spawn(accept(listener, key, guard, clock, inputs, Arc::clone(&stats)));
        Self { outboxes, stats }
    }

    /// Queues `message` for the peer in `slot`; dropped if its queue is full.
    pub fn send(&self, slot: PeerId, message: Arc<PeerMessage>) {
        if let Some(outbox) = self.outboxes.get(usize::from(slot.0)) {
            let _ = outbox.try_send(message);
        }
    }
}

async fn dial(
    addr: Addr,
    mut outbox: mpsc::Receiver<Arc<PeerMessage>>,
    sealer: Arc<Sealer>,
    stats: Arc<PeerStats>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let target = format!("{}:{}", addr.host(), addr.port());
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&target)).await;
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(peer = %addr, error = %e, "cannot connect to peer");
                if !discard_for(&mut outbox, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(_) => {
                tracing::debug!(peer = %addr, "connecting to peer timed out");
                if !discard_for(&mut outbox, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let _ = stream.set_nodelay(true);
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(UNACKED_LIMIT)) {
            tracing::debug!(peer = %addr, error = %e, "cannot set TCP_USER_TIMEOUT");
        }
        tracing::info!(peer = %addr, "connected to peer");
        let mut sink = FramedWrite::new(stream, codec());
        loop {
            let Some(message) = outbox.recv().await else { return };
            let body = match sealer.seal(&message) {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!(error = %e, "cannot seal a gossip message; dropping it");
                    continue;
                }
            };
            let len = body.len() as u64 + 4;
            if let Err(e) = sink.send(body).await {
                tracing::info!(peer = %addr, error = %e, "connection to peer lost");
                break;
            }
            stats.frames_sent.fetch_add(1, Ordering::Relaxed);
            stats.bytes_sent.fetch_add(len, Ordering::Relaxed);
        }
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

async fn accept(
    listener: TcpListener,
    key: FrameKey,
    guard: Arc<Mutex<ReplayGuard>>,
    clock: Clock,
    inputs: mpsc::Sender<Input>,
    stats: Arc<PeerStats>,
) {
    let slots = Arc::new(Semaphore::new(MAX_INBOUND));
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
        let (key, guard, inputs, stats) =
            (key.clone(), Arc::clone(&guard), inputs.clone(), Arc::clone(&stats));
        tokio::spawn(async move {
            receive(stream, from, &key, &guard, clock, &inputs, &stats).await;
            drop(permit);
        });
    }
}

async fn receive(
    stream: TcpStream,
    from: SocketAddr,
    key: &FrameKey,
    guard: &Mutex<ReplayGuard>,
    clock: Clock,
    inputs: &mpsc::Sender<Input>,
    stats: &PeerStats,
) {
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
