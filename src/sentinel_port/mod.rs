//! The Sentinel-compatible RESP port: what Redis clients in Sentinel mode talk to.
//!
//! Applications find their master through the Sentinel support of their Redis client library
//! (redis-py, ioredis, Jedis, go-redis, redis-rs, ...). This module answers those libraries
//! exactly as `redis-sentinel` does, so that switching to Picket means changing the sentinel
//! addresses and nothing else: RESP2 and RESP3 (`HELLO 3`), the `SENTINEL` subcommands with
//! Sentinel's field names, field order and flags, `INFO`, `ROLE`, `CLIENT`, `COMMAND`, `AUTH`,
//! and pub/sub of every engine event on the channel of the same name.
//!
//! It owns the listening socket, one task per client connection, the client registry
//! (`CLIENT LIST/KILL`), subscriptions, and the rendering of replies from the engine's published
//! [`View`](crate::engine::View). It must not touch the engine or block it: every read is
//! answered from the latest published view (cached per connection and refreshed only when the
//! watch channel says it changed), and every change goes to the runtime as an
//! [`AdminCommand`](crate::engine::AdminCommand) through [`Hub::admin`]. It never decides
//! anything Sentinel's state machine decides.
//!
//! Layout: `conn` is the per-connection loop (buffers, pipelining, backpressure, slow
//! subscribers); `command` resolves a request to a command and applies Redis's checks (arity,
//! authentication, subscribed mode); `sentinel` answers `SENTINEL` subcommands, using
//! `instance` for the instance maps; `client` answers `AUTH`, `HELLO`, `CLIENT` and keeps the
//! registry; `info` answers `INFO`, `ROLE` and `COMMAND`; `pubsub` keeps subscriptions and
//! renders messages; `snapshot` indexes each published view once for all connections.
//!
//! The port runs on a thread of its own with a single-threaded runtime, as Redis serves clients
//! from one thread: it answers a request in microseconds, and the engine's runtime never shares
//! its workers with client connections.
//!
//! Every buffer is bounded (the constants below): a client that sends garbage gets Redis's
//! protocol error and is disconnected, a client that stops reading its replies stops being read,
//! and a subscriber that stops reading its messages is disconnected. None of them can slow the
//! engine or the other clients.

mod client;
mod command;
mod conn;
mod info;
mod instance;
mod pubsub;
mod sentinel;
mod snapshot;

#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::Config;
use crate::engine::Instant;
use crate::hub::{Hub, TlsEndpoint};
use crate::tls::{self, Reloadable};
use crate::wire::resp::Limits;

use self::client::Registry;
pub use self::client::{Password, PortUser};
use self::pubsub::Directory;
use self::snapshot::Snapshot;

/// Most clients connected at once, as Redis's default `maxclients`. One more is told
/// `-ERR max number of clients reached` and disconnected.
pub const MAX_CLIENTS: usize = 10_000;

/// Most bytes of unparsed requests kept for one client: the largest argument the codec accepts
/// ([`Limits::DEFAULT_MAX_BULK_LEN`]) plus 64 KiB for the other arguments and headers. A bigger
/// request is discarded as it arrives and answered with [`REQUEST_TOO_LARGE`], as are requests
/// over the codec's limits that Redis would accept; the connection stays usable.
pub const MAX_QUERY_BUFFER: usize = Limits::DEFAULT_MAX_BULK_LEN + 64 * 1024;

/// The reply to a request over [`MAX_QUERY_BUFFER`] or the codec's [`Limits`].
pub const REQUEST_TOO_LARGE: &str = "ERR request too large: at most 65536 arguments of at most \
                                     1048576 bytes, 1114112 bytes in all";

/// Replies pending for one client above which no further request is processed until the client
/// reads: a client that pipelines without reading stalls itself, and its memory stays bounded.
pub const OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// Most bytes of replies pending for one (non-subscribed) client, Redis's
/// `client-output-buffer-limit` hard limit: a client past it is disconnected and counted in
/// [`ServerStats::resp_slow_clients`](crate::hub::ServerStats::resp_slow_clients) (`INFO`'s
/// `client_output_buffer_limit_disconnections`). Requests stop being
/// processed at [`OUTPUT_HIGH_WATER`], so only a single large reply (`COMMAND DOCS` with
/// thousands of names) gets here; the largest ordinary replies are an `ECHO` of the largest
/// argument ([`Limits::DEFAULT_MAX_BULK_LEN`]) and `SENTINEL MASTERS`, about 700 bytes per
/// master.
pub const OUTPUT_HARD_LIMIT: usize = 2 * Limits::DEFAULT_MAX_BULK_LEN;

/// Most bytes of memory held for pending replies and messages, all clients together (the
/// output buffers that hold bytes the sockets did not take): a client whose buffer grows while
/// the total is past this is disconnected and counted like a client past its own limits.
/// Without it, each of [`MAX_CLIENTS`] clients could hold just under [`OUTPUT_SOFT_LIMIT`] for
/// ever (measured: 1,000 clients not reading 250 KB replies took the process from 22 MB to
/// 283 MB), or up to [`OUTPUT_HARD_LIMIT`] for [`OUTPUT_SOFT_TIME`]. 64 MiB is 32 hard limits,
/// or 256 clients at the soft limit: clients that read leave nothing pending (the kernel's
/// socket buffers take their replies).
pub const OUTPUT_BUDGET: usize = 32 * OUTPUT_HARD_LIMIT;

/// Replies pending above this for longer than [`OUTPUT_SOFT_TIME`] also disconnect a client
/// (Redis's soft limit): a client that stopped reading cannot hold up to the hard limit for
/// ever.
pub const OUTPUT_SOFT_LIMIT: usize = 256 * 1024;

/// See [`OUTPUT_SOFT_LIMIT`].
pub const OUTPUT_SOFT_TIME: Duration = Duration::from_secs(5);

/// Default most bytes of pub/sub messages pending for one subscriber. A subscriber that lets
/// more pile up (it stopped reading) is disconnected and counted in
/// [`ServerStats::resp_slow_clients`](crate::hub::ServerStats::resp_slow_clients), as Redis's
/// `client-output-buffer-limit pubsub` does. Events are about a hundred bytes, so this holds the
/// story of thousands of failovers.
pub const DEFAULT_PUBSUB_OUTPUT_LIMIT: usize = 1024 * 1024;

/// Most channels plus patterns one client may subscribe to.
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// How long an admin command (`SENTINEL FAILOVER`, `SET`, ...) may wait for the engine's answer.
/// The engine answers within one batch; this only guards against a runtime that stopped.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes requested from the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Pause after a failed `accept` (out of file descriptors, say) before trying again, so the
/// accept loop never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The version `HELLO` and `INFO` report. Picket answers with the reply shapes of Redis 7.0 and
/// 7.2 Sentinel and accepts what 7.2 added that clients send (`CLIENT SETINFO`, several
/// `SENTINEL CONFIG GET` patterns), so it says 7.2.
pub const REDIS_VERSION: &str = "7.2.4";

/// What the port needs from the configuration, beside the [`Hub`].
#[derive(Clone, Debug)]
pub struct PortOptions {
    /// The `default` user's password (`node.requirepass`). Without it the `default` user needs
    /// no password, unless there are other users, which disables it.
    pub requirepass: Option<Password>,
    /// The other users (`[[user]]`).
    pub users: Vec<PortUser>,
    /// The configuration file, for `INFO server`.
    pub config_file: PathBuf,
    /// Most clients at once (default [`MAX_CLIENTS`]).
    pub max_clients: usize,
    /// Most bytes of messages pending for one subscriber (default
    /// [`DEFAULT_PUBSUB_OUTPUT_LIMIT`]).
    pub pubsub_output_limit: usize,
    /// How long a peer's reports stay valid (`node.peer_timeout_ms`): a peer not heard from for
    /// longer is shown `s_down,disconnected` in `SENTINEL SENTINELS`.
    pub peer_timeout: Duration,
    /// `node.heartbeat_ms`, shown by `SENTINEL DEBUG`.
    pub heartbeat: Duration,
    /// `node.tilt_trigger_ms`, shown by `SENTINEL DEBUG`.
    pub tilt_trigger: Duration,
    /// `node.tilt_period_ms`, shown by `SENTINEL DEBUG`.
    pub tilt_period: Duration,
}

impl Default for PortOptions {
    fn default() -> Self {
        Self {
            requirepass: None,
            users: Vec::new(),
            config_file: PathBuf::new(),
            max_clients: MAX_CLIENTS,
            pubsub_output_limit: DEFAULT_PUBSUB_OUTPUT_LIMIT,
            peer_timeout: Duration::from_millis(1500),
            heartbeat: Duration::from_millis(100),
            tilt_trigger: Duration::from_millis(2000),
            tilt_period: Duration::from_millis(30_000),
        }
    }
}

impl PortOptions {
    /// The options `config` sets (its secrets must be resolved already).
    #[must_use]
    pub fn from_config(config: &Config) -> Self {
        let node = &config.node;
        Self {
            requirepass: node.requirepass.as_ref().and_then(|s| s.value()).map(Password::new),
            users: config
                .users
                .iter()
                .filter_map(|user| {
                    let password = Password::new(user.password.value()?);
                    Some(PortUser { name: user.name.clone(), password, role: user.role })
                })
                .collect(),
            config_file: config.path.clone(),
            peer_timeout: node.peer_timeout,
            heartbeat: node.heartbeat,
            tilt_trigger: node.tilt_trigger,
            tilt_period: node.tilt_period,
            ..Self::default()
        }
    }
}

/// Counters the port keeps beside [`crate::hub::ServerStats`], for `INFO stats`.
#[derive(Debug, Default)]
struct PortStats {
    /// Connections refused because [`PortOptions::max_clients`] were connected.
    rejected_connections: AtomicU64,
    /// TLS handshakes in progress: their connections hold descriptors before they are clients,
    /// so they count against [`PortOptions::max_clients`] too.
    handshakes: AtomicUsize,
    /// Bytes held by the output buffers of every client with replies or messages pending
    /// (after what the sockets took), kept under [`OUTPUT_BUDGET`].
    pending_output: AtomicUsize,
}

/// State shared by the accept loop and every connection.
#[derive(Debug)]
struct Port {
    hub: Hub,
    options: PortOptions,
    /// The listening address (`INFO server` `tcp_port`).
    local: SocketAddr,
    /// This process's run id (`INFO server` `run_id`): new at every start, unlike the node id.
    run_id: String,
    /// When the port started, for `uptime_in_seconds`.
    started_at: Instant,
    registry: Registry,
    directory: Directory,
    stats: PortStats,
    /// The latest view, indexed.
    snapshots: watch::Receiver<Arc<Snapshot>>,
}

/// The port's listening sockets: plain TCP (`listen`), TLS (`tls_listen`), or both side by side
/// while clients move to TLS.
#[derive(Debug)]
pub struct Listeners {
    /// `listen`.
    pub plain: Option<TcpListener>,
    /// `tls_listen`, with the node's reloadable server configuration.
    pub tls: Option<(TcpListener, Arc<Reloadable<ServerConfig>>)>,
}

/// Starts serving clients on `listeners`, on a thread of its own.
///
/// The port runs a single-threaded tokio runtime, as Redis serves clients from one thread: the
/// replies are cheap, so one core answers a million requests a second, and the engine's runtime
/// never shares its workers with thousands of client connections (a flood of clients cannot
/// delay the engine's ticks). The thread ends, closing every connection, when the runtime stops
/// publishing views (the hub's view sender is dropped).
///
/// # Errors
/// A listener cannot be moved to the port's runtime, or the runtime or thread cannot be
/// created.
pub fn spawn(
    listeners: Listeners,
    hub: Hub,
    options: PortOptions,
) -> io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Register the sockets and start the view indexer on the port's runtime.
    let context = runtime.enter();
    let moved = |listener: TcpListener| TcpListener::from_std(listener.into_std()?);
    let plain = listeners.plain.map(moved).transpose()?;
    let secure = match listeners.tls {
        Some((listener, config)) => Some((moved(listener)?, config)),
        None => None,
    };
    // `INFO server` shows the plain port when there is one, as clients know it best.
    let local = plain
        .as_ref()
        .or_else(|| secure.as_ref().map(|(l, _)| l))
        .and_then(|l| l.local_addr().ok())
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (snapshots, refresher) = snapshot::spawn_refresher(hub.view.clone());
    drop(context);
    let port = Arc::new(Port {
        started_at: hub.clock.now(),
        hub,
        options,
        local,
        run_id: run_id(),
        registry: Registry::default(),
        directory: Directory::default(),
        stats: PortStats::default(),
        snapshots,
    });
    std::thread::Builder::new().name("picket-sentinel-port".to_owned()).spawn(move || {
        runtime.block_on(async move {
            let plain = async {
                match plain {
                    Some(listener) => accept_loop(listener, None, Arc::clone(&port)).await,
                    None => std::future::pending().await,
                }
            };
            let secure = async {
                match secure {
                    Some((listener, config)) => {
                        accept_loop(listener, Some(config), Arc::clone(&port)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = plain => {}
                () = secure => {}
                _ = refresher => {}
            }
        });
    })
}

/// Accepts clients on `listener`, over TLS with `tls`'s current configuration when given.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<Reloadable<ServerConfig>>>,
    port: Arc<Port>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "sentinel port: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        port.hub.stats.resp_connections.fetch_add(1, Ordering::Relaxed);
        let handshaking = port.stats.handshakes.load(Ordering::Relaxed);
        if port.registry.len() + handshaking >= port.options.max_clients {
            port.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
            if tls.is_none() {
                // Best effort, never waited for: the socket is new, so its buffer has room.
                let _ = stream.try_write(b"-ERR max number of clients reached\r\n");
            }
            continue;
        }
        // Replies are written once per batch of requests; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        let port = Arc::clone(&port);
        match &tls {
            None => {
                let client = register(&port, &stream, peer);
                tokio::spawn(conn::serve(stream, port, client));
            }
            Some(config) => {
                let config = config.get();
                port.stats.handshakes.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let stats = &port.hub.tls_stats;
                    let handshake = tls::accept(config, stream, TlsEndpoint::Sentinel, stats).await;
                    port.stats.handshakes.fetch_sub(1, Ordering::Relaxed);
                    match handshake {
                        Ok(stream) => {
                            let client = register(&port, stream.get_ref().0, peer);
                            conn::serve(stream, port, client).await;
                        }
                        Err(e) => tracing::info!(client = %peer, "sentinel port: {e}"),
                    }
                });
            }
        }
    }
}

/// Registers the client of a new connection.
fn register(port: &Port, stream: &TcpStream, peer: SocketAddr) -> Arc<client::ClientShared> {
    let laddr = stream.local_addr().unwrap_or(port.local);
    let client = port.registry.register(peer, laddr, port.hub.clock.now());
    port.hub.stats.resp_clients.fetch_add(1, Ordering::Relaxed);
    client
}

/// 40 hex characters from the OS's randomness, like a Redis run id; zeros if there is none
/// (the run id is informational).
fn run_id() -> String {
    let mut bytes = [0u8; 20];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().fold(String::with_capacity(40), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    })
}
