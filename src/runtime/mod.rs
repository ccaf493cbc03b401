//! The tokio runtime: the single owner of the engine.
//!
//! One task (the driver) owns the [`Supervisor`]. It waits for the next input (a link event, a
//! peer message, an admin command) or the engine's next deadline, hands it to the engine with the
//! current time, and performs the outputs strictly in order: `Persist` is awaited before anything
//! after it, so a vote or an epoch is on disk before any message that depends on it leaves. Then
//! it publishes the engine's view for the servers. No policy lives here: if a branch in this
//! module mentioned quorum or epochs, it would be in the wrong place.

pub mod budget;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::config::Config;
use crate::engine::{AdminAnswer, Event, Input, Level, Output, Supervisor, Ticket, View};
use crate::hub::{AdminRequest, EVENT_BUFFER, EventRecord, Failpoints, Hub, ServerStats, TlsStats};
use crate::link::{ConnectSpec, Links};
use crate::peer::{GossipTls, PeerTransport};
use crate::persist::{self, PersistError};
use crate::sentinel_peering::SentinelAsker;
use crate::sentinel_port::{self, Listeners, PortOptions};
use crate::wire::frame::FrameKey;

/// Inputs waiting for the driver. Senders wait when it is full, which slows readers of sockets
/// rather than dropping facts the engine must see.
const INPUT_QUEUE: usize = 16 * 1024;
/// Most inputs handled in one batch before outputs of other work get a turn and the view is
/// published.
const BATCH: usize = 256;
/// Changes readers need not see at once (reply times, offsets) are published at most this often;
/// changes of a master's address, health or failover state are published immediately. Every
/// PING reply makes its master's view stale, and republishing costs one snapshot per master: at
/// a thousand masters pinged every 100 ms, a 100 ms refresh was about a tenth of the daemon's
/// work per PING. Once a second keeps reply ages as fresh as Sentinel's (which pings once a
/// second) for a tenth of that.
const VIEW_REFRESH: Duration = Duration::from_millis(1000);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The state could not be loaded or written. Writing failures are fatal: a node that cannot
    /// make its votes durable must stop acting rather than risk voting twice.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// A listening address could not be bound.
    #[error("cannot listen on {what} address {addr}: {source}")]
    Bind {
        /// Which port (`gossip`, `listen`, `http`).
        what: &'static str,
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The operating system gave no randomness for the seed.
    #[error("cannot read OS randomness: {0}")]
    Entropy(String),
    /// A certificate, key or CA file could not be loaded at start.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Runs the daemon until `shutdown` completes or a fatal error occurs.
///
/// # Errors
/// See [`RuntimeError`].
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RuntimeError> {
    let clock = Clock::start();
    let budget = fd_budget(&config);
    let state_dir = config.node.state_dir.clone();
    persist::prepare(&state_dir)?;
    let key = config.node.peer_secret.as_ref().and_then(|s| s.value());
    let store = persist::Store {
        dir: state_dir.clone(),
        key: key.map(|secret| persist::StateKey::from_peer_secret(secret.as_bytes())),
    };
    let restored = store.load()?;
    let seed = getrandom::u64().map_err(|e| RuntimeError::Entropy(e.to_string()))?;
    let session = getrandom::u64().map_err(|e| RuntimeError::Entropy(e.to_string()))?;
    let fresh = restored.is_none();
    let settings = config.engine_settings();
    let stale_after = settings.node.stall_gap();
    let mut engine = Supervisor::new(settings, restored, seed, clock.now());
    tracing::info!(
        node_id = %engine.id(),
        seed,
        fresh,
        state_dir = %state_dir.display(),
        masters = config.masters.len(),
        peers = config.node.peers.len(),
        "picket starting"
    );

    let tls_stats = Arc::new(TlsStats::default());
    let (tls, reloader) = crate::tls::load(&config, &tls_stats).map_err(RuntimeError::Tls)?;
    tokio::spawn(Arc::new(reloader).run());
    let node = &config.node;
    let gossip = bind("gossip", &node.gossip).await?;
    let listen = bind_optional("listen", node.listen.as_ref()).await?;
    let tls_listen = bind_optional("tls_listen", node.tls_listen.as_ref()).await?;
    let http = bind_optional("http", node.http.as_ref()).await?;
    let tls_http = bind_optional("tls_http", node.tls_http.as_ref()).await?;
    let (inputs_tx, inputs) = mpsc::channel(INPUT_QUEUE);
    let key = match node.peer_secret.as_ref().and_then(|s| s.value()) {
        Some(secret) => FrameKey::new(secret.as_bytes()),
        // Without peers nothing is ever accepted; a random key makes sure of it.
        None => FrameKey::new(&seed.to_le_bytes()),
    };
    let gossip_tls = tls.peers.map(|configs| GossipTls { configs, stats: Arc::clone(&tls_stats) });
    let peers = PeerTransport::start(
        gossip,
        &node.peers,
        key,
        gossip_tls,
        session,
        clock,
        inputs_tx.clone(),
    );
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let (view_tx, view) = watch::channel(Arc::new(engine.view()));
    let (admin_tx, admin) = mpsc::channel(64);
    let failpoints = Arc::new(Failpoints::default());
    let stop = Arc::new(Notify::new());
    let hub = Hub {
        view,
        events: events.clone(),
        admin: admin_tx,
        clock,
        failpoints: Arc::clone(&failpoints),
        shutdown: Arc::clone(&stop),
        peer_stats: Arc::clone(&peers.stats),
        stats: Arc::new(ServerStats::default()),
        tls_stats: Arc::clone(&tls_stats),
    };
    // Every server subscribes to the events before the driver publishes its first. The TLS
    // listeners exist only with `[tls]`, which the configuration requires for them.
    let secure = |listener: Option<TcpListener>| listener.zip(tls.server.clone());
    let _http = crate::http::spawn(
        http,
        secure(tls_http),
        hub.clone(),
        &config.http,
        budget.http_connections,
    )
    .map_err(|source| {
        let addr = node.http.as_ref().or(node.tls_http.as_ref());
        let addr = addr.map(ToString::to_string).unwrap_or_default();
        RuntimeError::Bind { what: "http", addr, source }
    })?;
    crate::notify::start(hub.clone(), &config.webhooks);
    let port_options =
        PortOptions { max_clients: budget.sentinel_clients, ..PortOptions::from_config(&config) };
    let listeners = Listeners { plain: listen, tls: secure(tls_listen) };
    let _sentinel_port =
        sentinel_port::spawn(listeners, hub.clone(), port_options).map_err(|source| {
            let addr = node.listen.as_ref().or(node.tls_listen.as_ref());
            let addr = addr.map(ToString::to_string).unwrap_or_default();
            RuntimeError::Bind { what: "listen", addr, source }
        })?;
    let sentinel_auth = config.sentinel_credentials();
    crate::sentinel_peering::start(&hub, &config.engine_settings().masters, sentinel_auth.as_ref());
    let driver = Driver {
        clock,
        sentinels: SentinelAsker::new(inputs_tx.clone(), sentinel_auth),
        store,
        links: Links::new(inputs_tx, tls.redis, tls_stats, stale_after, clock),
        peers,
        events,
        next_event_id: 0,
        view: view_tx,
        tickets: BTreeMap::new(),
        next_ticket: 0,
        failpoints,
    };
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            () = stop.notified() => tracing::info!("shutdown requested by a client"),
        }
    };
    let result = driver.drive(&mut engine, inputs, admin, shutdown).await;
    tracing::info!("picket stopped");
    result
}

/// Raises the open file limit and shares it out between the client ports (see [`budget`]).
fn fd_budget(config: &Config) -> budget::Budget {
    let limit = budget::raise_nofile_limit();
    let budget = budget::Budget::new(
        limit,
        config.masters.len(),
        config.node.peers.len(),
        sentinel_port::MAX_CLIENTS,
        crate::http::MAX_CONNECTIONS,
    );
    if budget.is_comfortable() {
        tracing::info!(
            open_file_limit = limit,
            reserved = budget.reserved,
            sentinel_clients = budget.sentinel_clients,
            http_connections = budget.http_connections,
            "descriptor budget"
        );
    } else {
        tracing::warn!(
            open_file_limit = limit,
            reserved = budget.reserved,
            "the open file limit barely covers the descriptors this node reserves for its state, \
             Redis links and peers; raise it (ulimit -n, LimitNOFILE=)"
        );
    }
    budget
}

async fn bind(what: &'static str, addr: &crate::engine::Addr) -> Result<TcpListener, RuntimeError> {
    let text = format!("{}:{}", addr.host(), addr.port());
    TcpListener::bind(&text).await.map_err(|source| RuntimeError::Bind { what, addr: text, source })
}

/// Binds `addr` if it is configured.
async fn bind_optional(
    what: &'static str,
    addr: Option<&crate::engine::Addr>,
) -> Result<Option<TcpListener>, RuntimeError> {
    match addr {
        Some(addr) => bind(what, addr).await.map(Some),
        None => Ok(None),
    }
}

struct Driver {
    clock: Clock,
    sentinels: SentinelAsker,
    store: persist::Store,
    links: Links,
    peers: PeerTransport,
    events: broadcast::Sender<Arc<EventRecord>>,
    next_event_id: u64,
    view: watch::Sender<Arc<View>>,
    tickets: BTreeMap<Ticket, oneshot::Sender<AdminAnswer>>,
    next_ticket: u64,
    failpoints: Arc<Failpoints>,
}

impl Driver {
    async fn drive(
        mut self,
        engine: &mut Supervisor,
        mut inputs: mpsc::Receiver<Input>,
        mut admin: mpsc::Receiver<AdminRequest>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RuntimeError> {
        tokio::pin!(shutdown);
        self.perform_all(engine).await?;
        let mut view_due: Option<crate::engine::Instant> = None;
        loop {
            let next = [engine.poll_timeout(), view_due].into_iter().flatten().min();
            let deadline = next.map(|at| self.clock.deadline(at));
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let first = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(input) = inputs.recv() => input,
                Some(request) = admin.recv() => self.admin_input(request),
                () = sleep => Input::Tick,
            };
            self.handle(engine, first).await?;
            for _ in 1..BATCH {
                match inputs.try_recv() {
                    Ok(input) => self.handle(engine, input).await?,
                    Err(_) => break,
                }
            }
            let now = self.clock.now();
            let due = view_due.is_some_and(|at| now >= at);
            if engine.view_urgent() || (engine.view_changed() && due) {
                let _ = self.view.send(Arc::new(engine.view()));
                view_due = None;
            } else if engine.view_changed() && view_due.is_none() {
                view_due = Some(now + VIEW_REFRESH);
            }
        }
        self.links.close_all();
        Ok(())
    }

    fn admin_input(&mut self, request: AdminRequest) -> Input {
        self.next_ticket += 1;
        let ticket = Ticket(self.next_ticket);
        self.tickets.insert(ticket, request.reply);
        Input::Admin { ticket, command: request.command }
    }

    async fn handle(&mut self, engine: &mut Supervisor, input: Input) -> Result<(), RuntimeError> {
        engine.handle(self.clock.now(), input);
        self.perform_all(engine).await
    }

    async fn perform_all(&mut self, engine: &mut Supervisor) -> Result<(), RuntimeError> {
        while let Some(output) = engine.poll_output() {
            self.perform(output).await?;
        }
        Ok(())
    }

    async fn perform(&mut self, output: Output) -> Result<(), RuntimeError> {
        match output {
            Output::Connect { link, addr, auth, tls, client_name, timeout } => {
                self.links.connect(link, ConnectSpec { addr, auth, tls, client_name, timeout });
            }
            Output::Disconnect { link } => self.links.disconnect(link),
            Output::Send { link, request, command } => self.links.send(link, request, command),
            Output::Persist(state) => {
                let store = self.store.clone();
                let written = tokio::task::spawn_blocking(move || store.store(&state)).await;
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot persist state: stopping");
                        return Err(e.into());
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "persist task failed: stopping");
                        return Err(PersistError::Encode(e.to_string()).into());
                    }
                }
            }
            Output::SendPeer { to, message } => self.peers.send(to, message),
            ask @ Output::AskSentinel { .. } => self.sentinels.perform(ask),
            Output::Emit(event) => self.publish(event),
            Output::Answer { ticket, answer } => {
                if let Some(reply) = self.tickets.remove(&ticket) {
                    let _ = reply.send(answer);
                }
            }
        }
        Ok(())
    }

    fn publish(&mut self, event: Event) {
        if self.failpoints.crashes_at(event.kind) {
            tracing::warn!(target: "picket::event", "{event}");
            tracing::error!("simulated failure after {}: exiting", event.channel());
            std::process::exit(Failpoints::EXIT_STATUS);
        }
        match event.level() {
            Level::Warning => tracing::warn!(target: "picket::event", "{event}"),
            Level::Notice => tracing::info!(target: "picket::event", "{event}"),
            Level::Verbose => tracing::debug!(target: "picket::event", "{event}"),
        }
        self.next_event_id += 1;
        let record = EventRecord { id: self.next_event_id, unix_ms: self.clock.unix_ms(), event };
        let _ = self.events.send(Arc::new(record));
    }
}
