//! One client connection: read requests, answer them in order, deliver pub/sub messages.
//!
//! Requests are parsed in place in the input buffer (argument ranges, no copies) and every
//! complete request in a read is answered before the replies are written with one system call,
//! so a pipeline of sixteen requests costs one read and one write. The view snapshot is kept
//! per connection and swapped only when the watch channel has a newer one.
//!
//! Bounds: the input buffer holds at most [`MAX_QUERY_BUFFER`] bytes without a complete request
//! (then the connection is closed); requests stop being processed while
//! [`OUTPUT_HIGH_WATER`] bytes of replies wait for the client to read them, so a client that
//! does not read only stalls itself; a client whose pending replies exceed
//! [`OUTPUT_HARD_LIMIT`] (one huge reply), or stay above [`OUTPUT_SOFT_LIMIT`] for
//! [`OUTPUT_SOFT_TIME`], and a subscriber whose pending messages exceed
//! [`PortOptions::pubsub_output_limit`](super::PortOptions::pubsub_output_limit), or who falls
//! behind the event channel, is disconnected and counted as a slow client; so is a client whose
//! output buffer grows while the buffers holding pending output, all clients together, are past
//! [`OUTPUT_BUDGET`].

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_util::io::poll_read_buf;

use crate::config::UserRole;
use crate::engine::{AdminAnswer, Instant};
use crate::hub::EventRecord;
use crate::wire::resp::{Limits, Protocol, ProtocolError, ReplyWriter, Skip, parse_request};

use super::client::{self, ClientShared, NOAUTH, Session, no_permission};
use super::command::{self, AdminPlan, Args, Op, Resolved, Spec, Step};
use super::snapshot::Snapshot;
use super::{
    ADMIN_TIMEOUT, MAX_QUERY_BUFFER, OUTPUT_BUDGET, OUTPUT_HARD_LIMIT, OUTPUT_HIGH_WATER,
    OUTPUT_SOFT_LIMIT, OUTPUT_SOFT_TIME, Port, READ_CHUNK, REQUEST_TOO_LARGE, info, pubsub,
    sentinel,
};

/// How long the replies pending at close (after `QUIT`, a protocol error) may take to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Most bytes of input discarded at close (see [`linger`]).
const LINGER_BYTES: usize = 1024 * 1024;
/// Most events taken from the channel per wake-up before replies are written.
const EVENT_BATCH: usize = 64;
/// Most bytes of output buffer kept once its replies are written, for the next ones (the
/// usual replies fit). A larger buffer is given back: idle clients that once asked for large
/// replies must not hold their size (10,000 clients keeping 128 KiB each would be 1.2 GB that
/// [`OUTPUT_BUDGET`] does not see, as nothing is pending).
const OUTPUT_KEPT: usize = 4 * 1024;

/// A client's connection: plain TCP or TLS.
pub(super) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Reads what is there into `input`. An idle plain connection holds no read buffer: the
    /// buffer is only reserved once the socket is readable. (A TLS connection keeps buffers of
    /// its own anyway, and may hold decrypted bytes the socket no longer shows.)
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        input: &mut Vec<u8>,
    ) -> Poll<io::Result<usize>>;
}

impl ClientStream for TcpStream {
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        input: &mut Vec<u8>,
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_read_ready(cx))?;
        input.reserve(READ_CHUNK);
        // A short read tells tokio the socket is drained, sparing a system call per request.
        poll_read_buf(Pin::new(self), cx, input)
    }
}

impl ClientStream for TlsStream<TcpStream> {
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        input: &mut Vec<u8>,
    ) -> Poll<io::Result<usize>> {
        input.reserve(READ_CHUNK);
        poll_read_buf(Pin::new(self), cx, input)
    }
}

/// Serves one accepted connection until it closes; then forgets it.
pub(super) async fn serve<S: ClientStream>(
    mut stream: S,
    port: Arc<Port>,
    client: Arc<ClientShared>,
) {
    let snap = Arc::clone(&port.snapshots.borrow());
    let mut conn = Conn {
        session: Session::new(Arc::clone(&client), &port),
        snap,
        snapshots: port.snapshots.clone(),
        port,
        input: Vec::new(),
        out: Vec::new(),
        unflushed: false,
        args: Vec::new(),
        events: None,
        closing: false,
        over_limit: false,
        soft_deadline: None,
        skip: None,
        counted: 0,
    };
    conn.run(&mut stream).await;
    let port = &conn.port;
    port.directory.forget(&conn.session.subscriptions);
    port.registry.unregister(client.id);
    port.hub.stats.resp_clients.fetch_sub(1, Ordering::Relaxed);
}

/// What one wake-up of the socket did.
enum Io {
    Read(usize),
    Wrote(usize),
    Flushed,
}

/// Writes `out` if there is something to write (else flushes what TLS still holds), and reads
/// into `input` if `want_read`; ready as soon as one of them made progress.
fn poll_io<S: ClientStream>(
    cx: &mut Context<'_>,
    stream: &mut S,
    input: &mut Vec<u8>,
    out: &[u8],
    unflushed: bool,
    want_read: bool,
) -> Poll<io::Result<Io>> {
    if !out.is_empty() {
        if let Poll::Ready(written) = Pin::new(&mut *stream).poll_write(cx, out) {
            return Poll::Ready(match written {
                Ok(0) => Err(io::ErrorKind::WriteZero.into()),
                other => other.map(Io::Wrote),
            });
        }
    } else if unflushed && let Poll::Ready(flushed) = Pin::new(&mut *stream).poll_flush(cx) {
        return Poll::Ready(flushed.map(|()| Io::Flushed));
    }
    if want_read && let Poll::Ready(read) = stream.poll_read_into(cx, input) {
        return Poll::Ready(read.map(Io::Read));
    }
    Poll::Pending
}

/// Why the loop ended.
enum End {
    /// The client closed, or the socket failed.
    Gone,
    /// Write what is pending, then close.
    Close,
}

struct Conn {
    port: Arc<Port>,
    session: Session,
    /// Bytes read and not yet consumed by a complete request.
    input: Vec<u8>,
    /// Replies and messages not yet written.
    out: Vec<u8>,
    /// Bytes were written that TLS may still hold in its own buffer (always false for TCP
    /// once flushed, which does nothing).
    unflushed: bool,
    /// Argument ranges of the request being run (reused: no allocation per request).
    args: Vec<Range<usize>>,
    /// The view this connection answers from.
    snap: Arc<Snapshot>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Engine events, while subscribed to anything.
    events: Option<broadcast::Receiver<Arc<EventRecord>>>,
    /// No further request is run; the connection closes once `out` is written.
    closing: bool,
    /// A reply took the output past [`OUTPUT_HARD_LIMIT`]: the client is disconnected.
    over_limit: bool,
    /// While the output is above [`OUTPUT_SOFT_LIMIT`]: when the client is disconnected if
    /// it still is.
    soft_deadline: Option<tokio::time::Instant>,
    /// A request too large to run is being discarded; [`REQUEST_TOO_LARGE`] answers it.
    skip: Option<Skip>,
    /// The bytes of `out`'s buffer counted in the port's total of pending output (given back
    /// when the connection ends).
    counted: usize,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.port.stats.pending_output.fetch_sub(self.counted, Ordering::Relaxed);
    }
}

impl Conn {
    async fn run<S: ClientStream>(&mut self, stream: &mut S) {
        // One registration for the connection's life, rather than one per wake-up.
        let client = Arc::clone(&self.session.client);
        let killed = client.kill.notified();
        tokio::pin!(killed);
        let end = loop {
            if let Some(plan) = self.process() {
                self.admin(plan).await;
                continue;
            }
            if self.over_limit {
                break self.slow("a reply exceeded the output hard limit");
            }
            if self.write_now(stream).is_err() {
                break End::Gone;
            }
            if let Err(reason) = self.check_output() {
                break self.slow(reason);
            }
            if self.closing {
                break End::Close;
            }
            if !self.session.subscriptions.is_empty()
                && self.out.len() > self.port.options.pubsub_output_limit
            {
                break self.slow("its pending messages exceeded the limit");
            }
            self.sync_events();
            let want_read =
                self.out.len() < OUTPUT_HIGH_WATER && self.input.len() < MAX_QUERY_BUFFER;
            let unflushed = self.unflushed;
            let soft_deadline = self.soft_deadline;
            tokio::select! {
                biased;
                () = &mut killed => break End::Gone,
                () = sleep_until(soft_deadline) => {
                    break self.slow("its pending replies stayed over the soft limit");
                }
                io = std::future::poll_fn(|cx| {
                    poll_io(cx, stream, &mut self.input, &self.out, unflushed, want_read)
                }) => match io {
                    Ok(Io::Read(0)) | Err(_) => break End::Gone,
                    Ok(Io::Read(_)) => {}
                    Ok(Io::Wrote(n)) => self.wrote(n),
                    Ok(Io::Flushed) => self.unflushed = false,
                },
                event = next_event(&mut self.events) => {
                    if let Err(reason) = self.on_event(event) {
                        break self.slow(reason);
                    }
                }
            }
        };
        if matches!(end, End::Close) {
            let out = std::mem::take(&mut self.out);
            let _ = tokio::time::timeout(CLOSE_GRACE, linger(stream, &out)).await;
        }
    }

    /// Counts a slow client and ends the connection.
    fn slow(&self, reason: &str) -> End {
        self.port.hub.stats.resp_slow_clients.fetch_add(1, Ordering::Relaxed);
        tracing::info!(client = self.session.client.id, addr = %self.session.client.addr, reason,
            "sentinel port: disconnecting a client that does not read");
        End::Gone
    }

    /// Redis's `client-output-buffer-limit` for ordinary clients: the hard limit at once, the
    /// soft one after [`OUTPUT_SOFT_TIME`] (armed here, fired by the loop's timer); and the
    /// port's [`OUTPUT_BUDGET`] for all clients together: a client whose output buffer grew
    /// while the total is past it is the one disconnected.
    fn check_output(&mut self) -> Result<(), &'static str> {
        if self.out.len() > OUTPUT_HARD_LIMIT {
            return Err("its pending replies exceeded the hard limit");
        }
        if self.count_output() > OUTPUT_BUDGET {
            return Err("the replies pending for all clients exceeded their budget");
        }
        if self.out.len() <= OUTPUT_SOFT_LIMIT {
            self.soft_deadline = None;
        } else if self.soft_deadline.is_none() {
            let clock = &self.port.hub.clock;
            self.soft_deadline = Some(clock.deadline(clock.now() + OUTPUT_SOFT_TIME));
        }
        Ok(())
    }

    /// Brings the port's total of pending output up to date with `out`: its buffer's size
    /// while it holds bytes the socket did not take, else nothing. Returns the total if this
    /// client's share grew, else 0.
    fn count_output(&mut self) -> usize {
        let total = &self.port.stats.pending_output;
        let now = if self.out.is_empty() { 0 } else { self.out.capacity() };
        let before = std::mem::replace(&mut self.counted, now);
        if now > before {
            total.fetch_add(now - before, Ordering::Relaxed) + (now - before)
        } else {
            total.fetch_sub(before - now, Ordering::Relaxed);
            0
        }
    }

    /// Runs every complete request in the input, until the replies reach the high-water mark.
    /// Returns an admin plan to carry out before anything else (the requests after it wait).
    fn process(&mut self) -> Option<AdminPlan> {
        if self.input.is_empty() || self.closing {
            return None;
        }
        if self.snapshots.has_changed().unwrap_or(false) {
            self.snap = Arc::clone(&self.snapshots.borrow_and_update());
        }
        let port = &*self.port;
        let now = port.hub.clock.now();
        let mut w = ReplyWriter::new(&mut self.out, self.session.proto);
        let mut consumed = 0;
        let mut executed = 0u64;
        let mut last: Option<&'static str> = None;
        let mut plan = None;
        let mut broken = false;
        while w.buffered() < OUTPUT_HIGH_WATER {
            let rest = self.input.get(consumed..).unwrap_or_default();
            if let Some(skip) = &mut self.skip {
                match skip.advance(rest, &Limits::DEFAULT) {
                    Ok((n, true)) => {
                        consumed += n;
                        self.skip = None;
                        w.error(REQUEST_TOO_LARGE);
                        continue;
                    }
                    Ok((n, false)) => {
                        consumed += n;
                        break;
                    }
                    Err(e) => {
                        w.error_fmt(format_args!("ERR {e}"));
                        broken = true;
                        break;
                    }
                }
            }
            match parse_request(rest, &Limits::DEFAULT, &mut self.args) {
                Ok(Some(n)) => {
                    consumed += n;
                    if self.args.is_empty() {
                        continue;
                    }
                    let args = Args::new(rest, &self.args);
                    let Some(spec) = admit(&self.session, args, &mut w) else { continue };
                    executed += 1;
                    last = Some(spec.full_name);
                    let step =
                        execute(port, &self.snap, &mut self.session, spec, args, now, &mut w);
                    if w.buffered() > OUTPUT_HARD_LIMIT {
                        // The reply may be cut short (see `info::command`): nothing more is
                        // run or written.
                        self.over_limit = true;
                        break;
                    }
                    // HELLO may have switched the protocol for the next replies.
                    w.set_protocol(self.session.proto);
                    match step {
                        Step::Next => {}
                        Step::Close => {
                            self.closing = true;
                            break;
                        }
                        Step::Admin(p) => {
                            plan = Some(p);
                            break;
                        }
                    }
                }
                Ok(None) if rest.len() >= MAX_QUERY_BUFFER && rest.first() == Some(&b'*') => {
                    self.skip = Some(Skip::default());
                }
                Ok(None) => {
                    if rest.len() >= MAX_QUERY_BUFFER {
                        w.error("ERR Protocol error: query buffer limit exceeded");
                        broken = true;
                    }
                    break;
                }
                Err(ProtocolError::RequestTooLarge) => self.skip = Some(Skip::default()),
                Err(e) => {
                    w.error_fmt(format_args!("ERR {e}"));
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            self.closing = true;
            port.hub.stats.resp_protocol_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.input.drain(..consumed);
        if self.input.is_empty() {
            // An idle connection holds no read buffer (the next read reserves one), whatever
            // size its last requests made it.
            self.input = Vec::new();
        }
        if self.args.capacity() > 1024 {
            self.args = Vec::new();
        }
        if executed > 0 {
            port.hub.stats.resp_commands.fetch_add(executed, Ordering::Relaxed);
            let mut meta = self.session.client.meta();
            meta.last_active = now;
            if let Some(name) = last {
                meta.last_cmd = name;
            }
        }
        plan
    }

    /// Sends an admin plan's commands to the engine in order and writes the one reply.
    async fn admin(&mut self, plan: AdminPlan) {
        let mut error = None;
        let mut count = plan.ok_integer.and_then(|n| u64::try_from(n).ok());
        let mut down = None;
        let mut cached = None;
        if let Some(host) = &plan.resolve {
            let found = tokio::time::timeout(ADMIN_TIMEOUT, tokio::net::lookup_host((&**host, 0)));
            let resolved = match found.await {
                Ok(Ok(addrs)) => addrs.count() > 0,
                _ => false,
            };
            if !resolved {
                error = Some(command::INVALID_HOST.to_owned());
            }
        }
        for command in plan.commands.into_iter().take_while(|_| error.is_none()) {
            match tokio::time::timeout(ADMIN_TIMEOUT, self.port.hub.admin(command)).await {
                Ok(Some(AdminAnswer::Ok)) => {}
                Ok(Some(AdminAnswer::Count(n))) => count = Some(n),
                Ok(Some(AdminAnswer::Down(answer))) => down = Some(answer),
                Ok(Some(AdminAnswer::InfoCache(entries))) => cached = Some(entries),
                Ok(Some(AdminAnswer::Refused(refusal))) => {
                    error = Some(refusal.to_string());
                    break;
                }
                Ok(None) => {
                    error = Some("ERR Picket is shutting down".to_owned());
                    break;
                }
                Err(_) => {
                    error = Some("ERR the engine did not answer in time".to_owned());
                    break;
                }
            }
        }
        let mut w = ReplyWriter::new(&mut self.out, self.session.proto);
        match (error.or(plan.then_error), down, cached, count) {
            (Some(e), ..) => w.error(&e),
            (None, Some(answer), ..) => sentinel::write_down_answer(&mut w, &answer),
            (None, None, Some(entries), _) => sentinel::write_info_cache(&mut w, &entries),
            (None, None, None, Some(n)) => w.integer(i64::try_from(n).unwrap_or(i64::MAX)),
            (None, None, None, None) => w.simple("OK"),
        }
    }

    /// Writes what the socket takes now, without waiting.
    fn write_now<S: ClientStream>(&mut self, stream: &mut S) -> io::Result<()> {
        let mut cx = Context::from_waker(Waker::noop());
        while !self.out.is_empty() {
            match Pin::new(&mut *stream).poll_write(&mut cx, &self.out) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => self.wrote(n),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        if self.out.is_empty() && self.unflushed {
            match Pin::new(&mut *stream).poll_flush(&mut cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Drops the first `n` bytes of the output, written.
    fn wrote(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
        self.unflushed = true;
        if self.out.is_empty() && self.out.capacity() > OUTPUT_KEPT {
            self.out = Vec::new();
        }
    }

    /// Holds an event receiver exactly while subscribed to something.
    fn sync_events(&mut self) {
        match (self.session.subscriptions.is_empty(), self.events.is_some()) {
            (false, false) => self.events = Some(self.port.hub.events.subscribe()),
            (true, true) => self.events = None,
            _ => {}
        }
    }

    /// Writes the messages for `first` and for the events queued behind it.
    fn on_event(&mut self, first: Result<Arc<EventRecord>, RecvError>) -> Result<(), &'static str> {
        let mut w = ReplyWriter::new(&mut self.out, self.session.proto);
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(event) = next.take() {
            match event {
                Ok(record) => {
                    pubsub::deliver(&self.session.subscriptions, &record, &mut w);
                }
                Err(RecvError::Lagged(_)) => return Err("it fell behind the event stream"),
                Err(RecvError::Closed) => {
                    self.events = None;
                    return Ok(());
                }
            }
            taken += 1;
            if taken < EVENT_BATCH {
                next = self.events.as_mut().and_then(|rx| match rx.try_recv() {
                    Ok(record) => Some(Ok(record)),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        Some(Err(RecvError::Lagged(n)))
                    }
                    Err(_) => None,
                });
            }
        }
        Ok(())
    }
}

/// Writes the last replies and ends the stream, then discards what the client is still sending
/// (up to [`LINGER_BYTES`]): closing a socket with unread input makes the kernel send a reset,
/// which can destroy the error reply before the client reads it.
async fn linger<S: ClientStream>(stream: &mut S, out: &[u8]) -> io::Result<()> {
    stream.write_all(out).await?;
    stream.shutdown().await?;
    let mut sink = vec![0u8; READ_CHUNK];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        match stream.read(&mut sink).await? {
            0 => break,
            n => drained += n,
        }
    }
    Ok(())
}

/// Fires at `deadline`, or never without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next event, or never while not subscribed.
async fn next_event(
    events: &mut Option<broadcast::Receiver<Arc<EventRecord>>>,
) -> Result<Arc<EventRecord>, RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Redis's checks before running a request, in its order: known command and arity,
/// authentication, the user's permissions, the RESP2 subscribed-mode restriction. Writes the
/// error and returns `None` when one fails.
fn admit(session: &Session, args: Args<'_>, w: &mut ReplyWriter<'_>) -> Option<&'static Spec> {
    let Resolved::Run(spec) = command::resolve(args, w) else { return None };
    let exempt = matches!(spec.op, Op::Auth | Op::Hello | Op::Quit);
    match &session.user {
        None if !exempt => {
            w.error(NOAUTH);
            return None;
        }
        Some(user) if user.role == UserRole::Read && command::needs_admin(spec.op, args) => {
            no_permission(spec.full_name, w);
            return None;
        }
        _ => {}
    }
    let pubsub_ok = matches!(
        spec.op,
        Op::Subscribe | Op::PSubscribe | Op::Unsubscribe | Op::PUnsubscribe | Op::Ping | Op::Quit
    );
    if session.proto == Protocol::Resp2 && !session.subscriptions.is_empty() && !pubsub_ok {
        w.error_fmt(format_args!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
             RESET are allowed in this context",
            spec.full_name
        ));
        return None;
    }
    Some(spec)
}

/// Runs an admitted command.
fn execute(
    port: &Port,
    snap: &Snapshot,
    session: &mut Session,
    spec: &'static Spec,
    args: Args<'_>,
    now: Instant,
    w: &mut ReplyWriter<'_>,
) -> Step {
    match spec.op {
        Op::SentinelGetMasterAddr
        | Op::SentinelMasters
        | Op::SentinelMaster
        | Op::SentinelReplicas
        | Op::SentinelSentinels
        | Op::SentinelCkQuorum
        | Op::SentinelConfig
        | Op::SentinelDebug
        | Op::SentinelFailover
        | Op::SentinelFlushConfig
        | Op::SentinelHelp
        | Op::SentinelInfoCache
        | Op::SentinelIsMasterDown
        | Op::SentinelMonitor
        | Op::SentinelMyId
        | Op::SentinelPause
        | Op::SentinelPendingScripts
        | Op::SentinelRemove
        | Op::SentinelReset
        | Op::SentinelResume
        | Op::SentinelSet
        | Op::SentinelSimulateFailure => return sentinel::run(port, snap, spec.op, args, now, w),
        Op::Ping => ping(session, args, w),
        Op::Echo => w.bulk(args.get(1)),
        Op::Quit => {
            w.simple("OK");
            return Step::Close;
        }
        Op::Auth => client::auth(port, session, args, w),
        Op::Hello => client::hello(port, session, args, w),
        Op::ClientGetName
        | Op::ClientHelp
        | Op::ClientId
        | Op::ClientInfo
        | Op::ClientKill
        | Op::ClientList
        | Op::ClientSetInfo
        | Op::ClientSetName => return client::client(port, session, spec.op, args, now, w),
        Op::Info => info::info(port, snap, args, now, w),
        Op::Role => info::role(snap, w),
        Op::Command
        | Op::CommandCount
        | Op::CommandDocs
        | Op::CommandGetKeys
        | Op::CommandHelp
        | Op::CommandInfo
        | Op::CommandList => info::command(spec.op, args, w),
        Op::Subscribe => pubsub::subscribe(&port.directory, session, args, false, w),
        Op::PSubscribe => pubsub::subscribe(&port.directory, session, args, true, w),
        Op::Unsubscribe => pubsub::unsubscribe(&port.directory, session, args, false, w),
        Op::PUnsubscribe => pubsub::unsubscribe(&port.directory, session, args, true, w),
        Op::Publish => return pubsub::publish(args, w),
        Op::Shutdown => return shutdown(port, session, args, w),
        Op::Container => command::wrong_arity(spec, w),
    }
    Step::Next
}

/// `PING [message]`: `+PONG` or the message; in RESP2 subscribed mode `["pong", message]`.
fn ping(session: &Session, args: Args<'_>, w: &mut ReplyWriter<'_>) {
    if args.len() > 2 {
        return w.error("ERR wrong number of arguments for 'ping' command");
    }
    if session.proto == Protocol::Resp2 && !session.subscriptions.is_empty() {
        w.array(2);
        w.bulk_str("pong");
        w.bulk(args.get(1));
    } else if args.len() == 2 {
        w.bulk(args.get(1));
    } else {
        w.simple("PONG");
    }
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]`: stops the daemon, without a reply (as Redis), but
/// only when a password protects the port: otherwise any client could stop it.
fn shutdown(port: &Port, session: &Session, args: Args<'_>, w: &mut ReplyWriter<'_>) -> Step {
    for arg in args.from(1) {
        let known = ["nosave", "save", "now", "force", "abort"];
        if !known.iter().any(|k| arg.eq_ignore_ascii_case(k.as_bytes())) {
            w.error("ERR syntax error");
            return Step::Next;
        }
        if arg.eq_ignore_ascii_case(b"abort") {
            w.error("ERR No shutdown in progress.");
            return Step::Next;
        }
    }
    if port.options.requirepass.is_none() && port.options.users.is_empty() {
        w.error(
            "ERR SHUTDOWN is refused: the Sentinel port has no password, so any client could \
             stop Picket. Set node.requirepass (or an admin [[user]]) to allow it, or stop the \
             process with SIGTERM",
        );
        return Step::Next;
    }
    tracing::warn!(client = session.client.id, addr = %session.client.addr,
        "SHUTDOWN requested on the Sentinel port");
    port.hub.shutdown.notify_one();
    Step::Close
}
