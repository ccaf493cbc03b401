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

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rustls::ServerConfig;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

/// Largest request body accepted (the POST routes take a small optional JSON object).
pub const MAX_BODY: usize = 16 * 1024;
/// Time allowed for a request body to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections open at once; further clients wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most event watchers (event streams and long polls) at once; more are refused with 503.
pub const MAX_WATCHERS: usize = 256;

/// Starts serving on `plain` (HTTP) and `secure` (HTTPS, with the node's reloadable server
/// configuration); a node may have either or both. Subscribes to the event broadcast before
/// returning, so that no event published after this call is missing from the event history.
pub fn start(
    plain: Option<TcpListener>,
    secure: Option<(TcpListener, Arc<Reloadable<ServerConfig>>)>,
    hub: Hub,
    config: &HttpConfig,
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
    // One limit over both listeners: they serve the same clients.
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let app = router(Arc::clone(&state));
    if let Some(listener) = plain {
        let stats = Arc::clone(&state.hub.stats);
        let listener = Limited { inner: listener, permits: Arc::clone(&permits), stats };
        let app = app.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
    }
    if let Some((listener, config)) = secure {
        let stats = Arc::clone(&state.hub.stats);
        let inner = TlsListener::start(listener, config, &state.hub, Arc::clone(&permits));
        let listener = Limited { inner, permits, stats };
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "HTTPS server stopped");
            }
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
    /// of handshakes at once.
    fn start(
        listener: TcpListener,
        config: Arc<Reloadable<ServerConfig>>,
        hub: &Hub,
        permits: Arc<Semaphore>,
    ) -> Self {
        let local = listener.local_addr();
        let (done, handshaken) = mpsc::channel(64);
        let stats = Arc::clone(&hub.tls_stats);
        tokio::spawn(async move {
            let mut listener = listener;
            loop {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
                // axum's accept retries (after a pause) on errors such as running out of files.
                let (stream, addr) = axum::serve::Listener::accept(&mut listener).await;
                let (config, done, stats) = (config.get(), done.clone(), Arc::clone(&stats));
                tokio::spawn(async move {
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
    if declared.is_some_and(|n: u64| n > MAX_BODY as u64) {
        return too_large().into_response();
    }
    let body = match tokio::time::timeout(BODY_TIMEOUT, to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => bytes,
        // Over the limit (or the client went away, and nobody reads this answer).
        Ok(Err(_)) => return too_large().into_response(),
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the request body did not arrive within {}s", BODY_TIMEOUT.as_secs()),
            )
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(body))).await
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

/// An HTTP listener, admitting at most [`MAX_CONNECTIONS`] connections at once.
struct Limited<L> {
    inner: L,
    permits: Arc<Semaphore>,
    stats: Arc<ServerStats>,
}

impl<L: axum::serve::Listener<Addr = SocketAddr>> axum::serve::Listener for Limited<L> {
    type Io = LimitedStream<L::Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // The semaphore is never closed; the error branch only satisfies the type.
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else { continue };
            let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            self.stats.http_connections.fetch_add(1, Ordering::Relaxed);
            let stats = Arc::clone(&self.stats);
            return (LimitedStream { io, _permit: permit, stats }, addr);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection holding one of the listener's slots until it closes.
struct LimitedStream<S> {
    io: S,
    _permit: OwnedSemaphorePermit,
    stats: Arc<ServerStats>,
}

impl<S> Drop for LimitedStream<S> {
    fn drop(&mut self) {
        self.stats.http_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LimitedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LimitedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
