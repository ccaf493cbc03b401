//! The discovery, event and admin HTTP API, and `/metrics`, on `node.http`.
//!
//! Owns the routes and their JSON shapes, token checks, the bounds on connections, bodies and
//! event watchers, the in-memory event history behind the event stream, and the failover
//! history. It reads the engine's latest view and the event broadcast from the [`Hub`] and sends
//! admin commands through it: it never locks, waits on or blocks the engine, and it calls no
//! other shell module ([`crate::metrics`] is only a formatter).
//!
//! # Routes
//!
//! * `GET /healthz`: the process is up.
//! * `GET /readyz`: 200 when a majority of the voters is reachable and every master answered at
//!   least once, else 503.
//! * `GET /metrics`: Prometheus metrics ([`crate::metrics`]).
//! * `GET /v1/masters`, `GET /v1/masters/{name}`: each master's address, epoch, status, replicas
//!   and peers' reports.
//! * `GET /v1/masters/{name}/is-master?addr=host:port`: 200 if `addr` is the current master,
//!   else 503; `.../is-replica?addr=host:port`: 200 if `addr` is a healthy replica, else 503.
//! * `GET /v1/events`: server-sent events, resumable with `Last-Event-ID`; with
//!   `?after=ID&wait=30s`, a JSON long poll.
//! * `GET /v1/history[?master=name]`: recent failovers with their timelines.
//! * `POST /v1/masters/{name}/failover`, `POST /v1/masters/{name}/reset`: admin token required;
//!   an optional JSON body `{"reason": "..."}` goes to the log.
//! * `POST /v1/masters/{name}/switchover` (body `{"reason": "...", "at": "<RFC 3339>"}`, both
//!   optional): a planned switchover that loses no acknowledged write, now or at `at`;
//!   `DELETE` cancels a scheduled one. `POST /v1/masters/{name}/pause` and `/resume`,
//!   `POST /v1/pause` and `/v1/resume` (every master): maintenance mode. Admin token required.
//!
//! Every error is JSON: `{"error": {"code": "...", "message": "..."}}` with a 4xx or 5xx status.
//! `GET /v1/*` needs `Authorization: Bearer <read_token>` when `http.read_token` is set (the admin
//! token is accepted too); the POST routes need the admin token and are disabled (403) without
//! one.

mod api;
mod events;
mod history;
mod safety;
mod slots;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{
    ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rustls::ServerConfig;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::server::TlsStream;

use crate::config::HttpConfig;
use crate::hub::{Hub, ServerStats, TlsEndpoint};
use crate::metrics::{self, EventMetrics, Sources};
use crate::tls::{self, Reloadable};

use self::events::EventLog;
pub use self::events::{KEEP_ALIVE, LIVE_BUFFER, MAX_POLL_EVENTS, MAX_WAIT};
use self::history::FailoverHistory;
pub use self::history::{FAILOVERS_PER_MASTER, MAX_STEPS};
pub use self::safety::MAX_SCHEDULE_AHEAD;
use self::slots::{Counted, Slots};

/// Largest request body accepted (the POST routes take a small optional JSON object).
pub const MAX_BODY: usize = 16 * 1024;
/// Most bytes of a body over [`MAX_BODY`] read and discarded before the `413` is sent: clients
/// write the whole body before reading the answer, and closing on unread bytes makes the kernel
/// reset the connection, so they would see a broken pipe instead of the `413`. A body declared
/// larger than this is answered at once (and the connection closed).
pub const MAX_DRAIN: u64 = 4 * 1024 * 1024;
/// Time allowed for a request body to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a request's headers to arrive, counted from the end of the previous response
/// on a kept-alive connection (or from the connection's start): a slowloris client, or an idle
/// connection, is closed after it.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a handler to produce its response once the request is read: above the
/// longest long poll ([`MAX_WAIT`]). Event streams answer at once and then stream.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(MAX_WAIT.as_secs() + 10);
/// Most connections open at once, at most: the node's descriptor budget may allow fewer. One
/// more takes the place of the oldest idle connection, or is answered 503 and closed when none
/// is idle.
pub const MAX_CONNECTIONS: usize = 4096;
/// Largest read buffer of one connection (request line and headers must fit): with
/// [`MAX_CONNECTIONS`] connections, 64 MiB at worst.
const MAX_READ_BUFFER: usize = 16 * 1024;
/// Most event watchers (event streams and long polls) at once; more are refused with 503.
pub const MAX_WATCHERS: usize = 256;

/// Starts serving on `plain` (HTTP) and `secure` (HTTPS, with the node's reloadable server
/// configuration), at most `max_connections` connections at once over both; a node may have
/// either listener or both.
///
/// The server runs on a thread of its own with a single-threaded tokio runtime, as the Sentinel
/// port does: a flood of HTTP clients never shares a worker with the engine's timers, and
/// `/healthz` never waits behind the engine. The event history subscribes to the event
/// broadcast before this returns, so that no event published after this call is missing from
/// it. The thread ends when the runtime stops publishing views.
///
/// # Errors
/// A listener cannot be moved to the server's runtime, or the runtime or thread cannot be
/// created.
pub fn spawn(
    plain: Option<TcpListener>,
    secure: Option<(TcpListener, Arc<Reloadable<ServerConfig>>)>,
    hub: Hub,
    config: &HttpConfig,
    max_connections: usize,
) -> io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let context = runtime.enter();
    let moved = |listener: TcpListener| TcpListener::from_std(listener.into_std()?);
    let plain = plain.map(moved).transpose()?;
    let secure = match secure {
        Some((listener, config)) => Some((moved(listener)?, config)),
        None => None,
    };
    let mut views = hub.view.clone();
    start(plain, secure, hub, config, max_connections);
    drop(context);
    std::thread::Builder::new().name("picket-http".to_owned()).spawn(move || {
        runtime.block_on(async move { while views.changed().await.is_ok() {} });
    })
}

/// Starts the servers' tasks on the current runtime.
fn start(
    plain: Option<TcpListener>,
    secure: Option<(TcpListener, Arc<Reloadable<ServerConfig>>)>,
    hub: Hub,
    config: &HttpConfig,
    max_connections: usize,
) {
    let token = |secret: &Option<crate::config::SecretSetting>| {
        secret.as_ref().and_then(|s| s.value()).map(|v| Sha256::digest(v.as_bytes()).into())
    };
    let state = Arc::new(AppState {
        admin_token: token(&config.admin_token),
        read_token: token(&config.read_token),
        log: Arc::new(EventLog::new(config.event_history)),
        history: Arc::new(Mutex::new(FailoverHistory::default())),
        metrics: Arc::new(EventMetrics::default()),
        watchers: Arc::new(Semaphore::new(MAX_WATCHERS)),
        schedule: safety::Schedule::default(),
        hub,
    });
    events::spawn_collector(&state);
    // One set of slots over both listeners: they serve the same clients. With HTTPS, a quarter
    // of the budget is kept for handshakes in progress.
    let handshakes = if secure.is_some() { (max_connections / 4).max(1) } else { 0 };
    let slots =
        Slots::new(max_connections.saturating_sub(handshakes), Arc::clone(&state.hub.stats));
    let app = router(Arc::clone(&state));
    if let Some(listener) = plain {
        let stats = Arc::clone(&state.hub.stats);
        tokio::spawn(serve(listener, app.clone(), Arc::clone(&slots), stats, refuse_plain));
    }
    if let Some((listener, config)) = secure {
        let stats = Arc::clone(&state.hub.stats);
        let handshakes = Arc::new(Semaphore::new(handshakes));
        let inner = TlsListener::start(listener, config, &state.hub, handshakes);
        // A TLS client past the limit is closed without an answer: a reply would need a
        // handshake, the very work the limit refuses.
        tokio::spawn(serve(inner, app, slots, stats, |_| {}));
    }
}

/// Tells a plain-HTTP client past the connection limit so, best effort and never waited for: the
/// socket is new, so its buffer has room.
fn refuse_plain(stream: &TcpStream) {
    let _ = stream.try_write(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 78\r\nconnection: close\r\n\r\n{\"error\":{\"code\":\"too_many_connections\",\"message\":\"connection limit reached\"}}",
    );
}

/// Accepts connections on `listener` and serves each on a task of its own, with the header,
/// idle and buffer bounds, in one of `slots` (see [`slots`]); when every slot holds a request in
/// flight the connection is refused (`refuse`) and closed at once rather than left waiting in
/// the accept queue.
async fn serve<L>(
    mut listener: L,
    app: Router,
    slots: Arc<Slots>,
    stats: Arc<ServerStats>,
    refuse: fn(&L::Io),
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    loop {
        // axum's accept retries (after a pause) on errors such as running out of files.
        let (io, _addr) = axum::serve::Listener::accept(&mut listener).await;
        let Some((slot, evicted)) = slots.take() else {
            stats.http_refused_connections.fetch_add(1, Ordering::Relaxed);
            refuse(&io);
            continue;
        };
        let service = Counted {
            inner: hyper_util::service::TowerToHyperService::new(app.clone()),
            in_flight: Arc::clone(&slot.in_flight),
        };
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_READ_BUFFER);
            let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    tracing::debug!(error = %e, "HTTP connection ended");
                },
                _ = evicted => tracing::debug!("HTTP connection closed to make room for a newer one"),
            }
            drop(slot);
        });
    }
}

/// The HTTPS listener: TCP connections are accepted and their handshakes run in tasks of their
/// own (a client that never finishes its handshake holds no one up), and finished ones are
/// handed to the server.
struct TlsListener {
    local: io::Result<SocketAddr>,
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `listener` with `config`'s current configuration; at most `permits`' worth
    /// of handshakes at once (more are closed).
    fn start(
        listener: TcpListener,
        config: Arc<Reloadable<ServerConfig>>,
        hub: &Hub,
        permits: Arc<Semaphore>,
    ) -> Self {
        let local = listener.local_addr();
        let (done, handshaken) = mpsc::channel(64);
        let stats = Arc::clone(&hub.tls_stats);
        let server_stats = Arc::clone(&hub.stats);
        tokio::spawn(async move {
            let mut listener = listener;
            loop {
                let (stream, addr) = axum::serve::Listener::accept(&mut listener).await;
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    server_stats.http_refused_connections.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let (config, done, stats) = (config.get(), done.clone(), Arc::clone(&stats));
                tokio::spawn(async move {
                    // `tls::accept` bounds the handshake's time.
                    match tls::accept(config, stream, TlsEndpoint::Http, &stats).await {
                        Ok(stream) => {
                            // The connection takes its own slot once served.
                            drop(permit);
                            let _ = done.send((stream, addr)).await;
                        }
                        Err(e) => tracing::info!(client = %addr, "HTTPS: {e}"),
                    }
                });
            }
        });
        Self { local, handshaken }
    }
}
impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accepting task only ends with the runtime.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// What every handler shares.
struct AppState {
    hub: Hub,
    /// SHA-256 of the admin token: compared in constant time, never kept in clear.
    admin_token: Option<[u8; 32]>,
    /// SHA-256 of the read token.
    read_token: Option<[u8; 32]>,
    log: Arc<EventLog>,
    history: Arc<Mutex<FailoverHistory>>,
    metrics: Arc<EventMetrics>,
    watchers: Arc<Semaphore>,
    /// Switchovers waiting for their time.
    schedule: safety::Schedule,
}

type Shared = Arc<AppState>;

/// What a request needs to be allowed.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Access {
    Read,
    Admin,
}

impl AppState {
    /// Checks the request's bearer token against what `access` requires.
    fn authorize(&self, headers: &HeaderMap, access: Access) -> Result<(), ApiError> {
        let accepted: &[Option<[u8; 32]>] = match access {
            Access::Read if self.read_token.is_none() => return Ok(()),
            Access::Read => &[self.read_token, self.admin_token],
            Access::Admin if self.admin_token.is_none() => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "admin_disabled",
                    "admin endpoints are disabled: no http.admin_token is configured",
                ));
            }
            Access::Admin => &[self.admin_token],
        };
        let Some(header) = headers.get(AUTHORIZATION) else {
            return Err(ApiError::unauthorized("missing Authorization: Bearer token"));
        };
        // The scheme is case-insensitive (RFC 9110).
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if accepted.iter().flatten().any(|t| same_digest(t, &digest)) {
            Ok(())
        } else {
            Err(ApiError::unauthorized("wrong token"))
        }
    }

    /// Takes one event-watcher slot, released when the guard drops.
    fn watcher(&self) -> Result<Watcher, ApiError> {
        let permit = Arc::clone(&self.watchers).try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_watchers",
                format!("at most {MAX_WATCHERS} event streams and long polls at once"),
            )
        })?;
        self.hub.stats.http_event_watchers.fetch_add(1, Ordering::Relaxed);
        Ok(Watcher { _permit: permit, stats: Arc::clone(&self.hub.stats) })
    }
}

/// Compares two digests in constant time.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An open event watcher: holds its slot and keeps the gauge right.
struct Watcher {
    _permit: OwnedSemaphorePermit,
    stats: Arc<ServerStats>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stats.http_event_watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/masters", get(api::masters))
        .route("/v1/masters/{name}", get(api::master))
        .route("/v1/masters/{name}/is-master", get(api::is_master))
        .route("/v1/masters/{name}/is-replica", get(api::is_replica))
        .route("/v1/masters/{name}/failover", post(api::failover))
        .route("/v1/masters/{name}/reset", post(api::reset))
        .route(
            "/v1/masters/{name}/switchover",
            post(safety::switchover).delete(safety::cancel_switchover),
        )
        .route("/v1/masters/{name}/pause", post(safety::pause_master))
        .route("/v1/masters/{name}/resume", post(safety::resume_master))
        .route("/v1/pause", post(safety::pause_all))
        .route("/v1/resume", post(safety::resume_all))
        .route("/v1/events", get(events::events))
        .route("/v1/history", get(history::history))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .with_state(state)
}

/// Counts the request, and reads its body before any handler runs: at most [`MAX_BODY`] bytes
/// within [`BODY_TIMEOUT`], so that no client can hold a handler by declaring a large body and
/// sending it slowly (or never).
async fn guard(State(state): State<Shared>, request: Request, next: Next) -> Response {
    state.hub.stats.http_requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are limited to {MAX_BODY} bytes"),
        )
    };
    let closing = |error: ApiError| {
        let mut response = error.into_response();
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        response
    };
    if declared.is_some_and(|n: u64| n > MAX_DRAIN) {
        return closing(too_large());
    }
    let body = match tokio::time::timeout(BODY_TIMEOUT, read_body(body)).await {
        Ok(Ok(Some(bytes))) => bytes,
        Ok(Ok(None)) => return closing(too_large()),
        // The client went away: nobody reads this answer.
        Ok(Err(())) => return closing(too_large()),
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the request body did not arrive within {}s", BODY_TIMEOUT.as_secs()),
            )
            .into_response();
        }
    };
    let handled = next.run(Request::from_parts(parts, Body::from(body)));
    match tokio::time::timeout(REQUEST_TIMEOUT, handled).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!("no response within {}s", REQUEST_TIMEOUT.as_secs()),
        )
        .into_response(),
    }
}

/// Reads a request body: `Some` if it is at most [`MAX_BODY`] bytes; `None` once it is known
/// to be larger, after reading and discarding up to [`MAX_DRAIN`] bytes of it (see there).
async fn read_body(body: Body) -> Result<Option<Bytes>, ()> {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ())?;
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > MAX_DRAIN {
            break;
        }
        if seen <= MAX_BODY as u64 {
            kept.extend_from_slice(&chunk);
        }
    }
    Ok((seen <= MAX_BODY as u64).then(|| Bytes::from(kept)))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `GET /readyz` body.
#[derive(Serialize)]
struct Readiness {
    ready: bool,
    voters: usize,
    majority: usize,
    /// Voters reachable: this node and its fresh peers.
    reachable_voters: usize,
    /// Masters that never answered this node.
    masters_without_reply: Vec<String>,
}

/// Ready when this node reaches a majority of the voters (itself included) and every master
/// answered it at least once: only then are its answers about masters worth routing clients by.
async fn readyz(State(state): State<Shared>) -> Response {
    let view = state.hub.view();
    let reachable_voters = 1 + view.fresh_peers();
    let masters_without_reply: Vec<String> = view
        .masters
        .iter()
        .filter(|m| m.master.last_reply_at.is_none())
        .map(|m| m.name.clone())
        .collect();
    let ready = reachable_voters >= view.majority && masters_without_reply.is_empty();
    let body = Readiness {
        ready,
        voters: view.voters,
        majority: view.majority,
        reachable_voters,
        masters_without_reply,
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(body)).into_response()
}

async fn metrics_text(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let format = metrics::Format::from_accept(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    let view = state.hub.view();
    let sources = Sources {
        view: &view,
        now: state.hub.clock.now(),
        stats: &state.hub.stats,
        peers: &state.hub.peer_stats,
        failpoints: &state.hub.failpoints,
        events: &state.metrics,
        tls: &state.hub.tls_stats,
    };
    let text = metrics::render(&sources, format);
    ([(CONTENT_TYPE, HeaderValue::from_static(format.content_type()))], text).into_response()
}

/// An error answer: a status and `{"error": {"code", "message"}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn no_such_master(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "no_such_master", format!("no master named {name:?}"))
    }

    /// The runtime did not answer: it is stopping.
    fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the daemon is shutting down")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A rejected extractor (bad path, query or body) as a JSON error with the extractor's status.
fn rejected(rejection: impl IntoResponse + std::fmt::Display, code: &'static str) -> ApiError {
    let message = rejection.to_string();
    let status = rejection.into_response().status();
    ApiError::new(status, code, message)
}

/// Milliseconds from `then` to `now` (engine time).
fn ms_since(now: crate::engine::Instant, then: crate::engine::Instant) -> u64 {
    crate::engine::time::duration_millis(now.saturating_since(then))
}

fn millis(d: Duration) -> u64 {
    crate::engine::time::duration_millis(d)
}
