//! One connection to a monitored Redis instance: commands written as RESP, replies read back in
//! order and decoded into the engine's [`Reply`].
//!
//! Why not the `redis` crate's multiplexed connection, which the first version used: each one
//! spawns a driver task, keeps two 8 KiB codec buffers and a channel of its own, and answers every
//! request through a oneshot. Picket keeps one connection per monitored instance and sends it a
//! PING every ping period, so at a thousand masters that design cost 25 MiB of the daemon's
//! 55 MiB and several task wake-ups per PING. Picket only ever sends four fixed commands, and
//! already owns a bounded, fuzzed RESP parser ([`Frame::parse`]), so this connection is one
//! socket, one small read buffer and a queue of what each pending request expects.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::engine::{
    Addr, Credentials, Lease, LinkFailure, PromotedWrites, RedisCommand, Reply, RequestId,
};
use crate::hub::{TlsEndpoint, TlsFailure, TlsStats};
use crate::tls;
use crate::wire::info::parse_info;
use crate::wire::resp::{Frame, Limits};

/// What replies may hold. `INFO` is the largest, a few KiB (more with many replicas listed).
const REPLY_LIMITS: Limits = Limits {
    max_bulk_len: 4 * 1024 * 1024,
    max_array_len: 64,
    max_depth: 4,
    max_inline_len: 64 * 1024,
};
/// Free space the read buffer is given before each read. Most replies (`+PONG`) are a few
/// bytes; an `INFO` reply takes a few reads.
const READ_CHUNK: usize = 1024;
/// Free space given before a read while an `INFO` reply is awaited: a whole reply of a master
/// with a few replicas (about 5 KiB) in one `recv` rather than five.
const INFO_READ_CHUNK: usize = 8 * READ_CHUNK;
/// A write buffer grown past this (by a transaction) is released once written.
const KEEP_BUFFER: usize = 2 * READ_CHUNK;

/// A request waiting for its reply.
#[derive(Debug)]
struct Pending {
    request: RequestId,
    kind: Expect,
    /// Frames still to read for this request.
    frames_left: usize,
    /// The first error reply among a transaction's frames.
    error: Option<String>,
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    Pong,
    Info,
    Transaction,
    /// `+OK` (or an error).
    Ok,
    /// `CONFIG GET min-replicas-*`'s name/value pairs.
    Lease,
}

/// Plain TCP, or TLS over it.
type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// How to secure a link: the client configuration and the name the instance's certificate must
/// carry.
pub(super) type LinkTls = (Arc<ClientConfig>, ServerName<'static>);

/// Why a link failed: the reason for the engine's log, and the kind of failure its crash rule
/// tells apart.
#[derive(Debug)]
pub(super) struct Failed {
    pub(super) reason: String,
    pub(super) failure: LinkFailure,
}

impl From<String> for Failed {
    fn from(reason: String) -> Self {
        Self { reason, failure: LinkFailure::Other }
    }
}

/// The engine's kind of a socket error: a refusal or a reset means nothing holds the port.
fn failure_of(error: &io::Error) -> LinkFailure {
    match error.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => LinkFailure::Refused,
        _ => LinkFailure::Other,
    }
}

/// Why opening a link failed, and the TLS failure behind it, if any (the caller counts and
/// reports those).
#[derive(Debug)]
pub(super) struct OpenError {
    pub(super) failed: Failed,
    pub(super) tls: Option<TlsFailure>,
}

impl From<Failed> for OpenError {
    fn from(failed: Failed) -> Self {
        Self { failed, tls: None }
    }
}

impl From<String> for OpenError {
    fn from(reason: String) -> Self {
        Failed::from(reason).into()
    }
}

/// Why reading a reply failed.
#[derive(Debug)]
enum ReadError {
    /// The socket (or TLS) failed.
    Io(io::Error),
    /// The instance closed the connection.
    Closed,
    /// The bytes are not valid RESP.
    Invalid(String),
}

impl From<ReadError> for Failed {
    fn from(error: ReadError) -> Self {
        let failure = match &error {
            ReadError::Io(e) => failure_of(e),
            ReadError::Closed | ReadError::Invalid(_) => LinkFailure::Other,
        };
        Self { reason: error.to_string(), failure }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "read failed: {e}"),
            Self::Closed => f.write_str("connection closed by the instance"),
            Self::Invalid(e) => write!(f, "instance sent invalid RESP: {e}"),
        }
    }
}

/// An open, authenticated connection.
#[derive(Debug)]
pub(super) struct InstanceConnection {
    stream: Stream,
    read: BytesMut,
    write: Vec<u8>,
    pending: VecDeque<Pending>,
}

impl InstanceConnection {
    /// Resolves `addr` now (so a name that moved is followed), connects to its first address
    /// (IPv4 first), completes the TLS handshake if `tls` is given, authenticates and names the
    /// connection. Returns the address connected to.
    pub(super) async fn open(
        addr: &Addr,
        tls: Option<LinkTls>,
        auth: Option<&Credentials>,
        client_name: &str,
        stats: &TlsStats,
    ) -> Result<(Self, IpAddr), OpenError> {
        let target = format!("{}:{}", addr.host(), addr.port());
        let resolved = tokio::net::lookup_host(&target)
            .await
            .map_err(|e| format!("cannot resolve {target}: {e}"))?
            .min_by_key(std::net::SocketAddr::is_ipv6)
            .ok_or_else(|| format!("{target} resolves to no address"))?;
        let tcp = TcpStream::connect(resolved).await.map_err(|e| Failed {
            reason: format!("cannot connect to {resolved}: {e}"),
            failure: failure_of(&e),
        })?;
        // PINGs are tiny and latency is what they measure.
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        // Closed with a reset: a link given up on (no reply in time) must not deliver its
        // unsent commands later. The kernel would retransmit them after a graceful close for as
        // long as a partition lasts, and a lease change landing minutes late would undo a
        // fence a failover counted on (simulator seed 9382244).
        tcp.set_zero_linger().map_err(|e| e.to_string())?;
        let stream = match tls {
            None => Either::Left(tcp),
            Some((config, name)) => {
                match tls::connect(config, name, tcp, TlsEndpoint::Redis, stats).await {
                    Ok(stream) => Either::Right(Box::new(stream)),
                    Err(e) => {
                        let failed = Failed::from(e.to_string());
                        return Err(OpenError { failed, tls: Some(e.failure) });
                    }
                }
            }
        };
        let mut conn =
            Self { stream, read: BytesMut::new(), write: Vec::new(), pending: VecDeque::new() };
        if let Some(auth) = auth {
            match &auth.user {
                Some(user) => {
                    encode(&mut conn.write, &[b"AUTH", user.as_bytes(), auth.password.as_bytes()])
                }
                None => encode(&mut conn.write, &[b"AUTH", auth.password.as_bytes()]),
            }
        }
        // The name shows who is connected in CLIENT LIST.
        encode(&mut conn.write, &[b"CLIENT", b"SETNAME", client_name.as_bytes()]);
        conn.flush().await?;
        if auth.is_some() {
            match conn.next_frame().await.map_err(|e| first_read_failed(e, stats))? {
                Frame::Simple(_) => {}
                Frame::Error(e) => return Err(format!("AUTH refused: {e}").into()),
                other => return Err(format!("unexpected AUTH reply {other:?}").into()),
            }
        }
        // A refusal (a renamed CLIENT command) is harmless.
        conn.next_frame().await.map_err(|e| first_read_failed(e, stats))?;
        Ok((conn, resolved.ip()))
    }

    /// Queues `command` for the next [`Self::flush`].
    pub(super) fn queue(&mut self, request: RequestId, command: &RedisCommand) {
        let (kind, frames_left) = encode_command(&mut self.write, command);
        self.pending.push_back(Pending { request, kind, frames_left, error: None });
    }

    /// Writes everything queued.
    pub(super) async fn flush(&mut self) -> Result<(), Failed> {
        if self.write.is_empty() {
            return Ok(());
        }
        // TLS may keep what the socket did not take in its own buffer until flushed; for plain
        // TCP the flush does nothing.
        let written = match self.stream.write_all(&self.write).await {
            Ok(()) => self.stream.flush().await,
            Err(e) => Err(e),
        };
        self.write.clear();
        if self.write.capacity() > KEEP_BUFFER {
            self.write = Vec::new();
        }
        written
            .map_err(|e| Failed { reason: format!("write failed: {e}"), failure: failure_of(&e) })
    }

    /// Reads until the oldest pending request is answered. Cancel-safe: bytes read before a
    /// cancellation stay in the buffer, and a request is only taken off the queue once its last
    /// frame is in.
    ///
    /// # Errors
    /// The connection closed or failed, or the instance sent something that is not a reply to
    /// a pending request. The link is unusable after an error.
    pub(super) async fn next_reply(&mut self) -> Result<(RequestId, Reply), Failed> {
        loop {
            if let Some(request) = self.take_pong() {
                return Ok((request, Reply::Pong));
            }
            let Some(frame) = self.parse_frame()? else {
                self.fill().await?;
                continue;
            };
            let Some(pending) = self.pending.front_mut() else {
                return Err(format!("unexpected frame with no request pending: {frame:?}").into());
            };
            pending.frames_left -= 1;
            if let Frame::Error(e) = &frame {
                pending.error.get_or_insert_with(|| e.clone());
            }
            if pending.frames_left > 0 {
                continue;
            }
            let done = self.pending.pop_front().expect("front exists");
            return Ok((done.request, decode(done.kind, frame, done.error)));
        }
    }

    /// Takes a `+PONG` answering the PING at the head of the queue straight from the read
    /// buffer: the reply nearly every round trip gets, so it costs no frame and no allocation.
    fn take_pong(&mut self) -> Option<RequestId> {
        const PONG: &[u8] = b"+PONG\r\n";
        let front = self.pending.front()?;
        if !matches!(front.kind, Expect::Pong) || !self.read.starts_with(PONG) {
            return None;
        }
        self.consume(PONG.len());
        self.pending.pop_front().map(|p| p.request)
    }

    /// The next frame, reading as needed.
    async fn next_frame(&mut self) -> Result<Frame, ReadError> {
        loop {
            if let Some(frame) = self.parse_frame()? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    /// The next complete frame in the read buffer, if there is one.
    fn parse_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        let parsed = Frame::parse(&self.read, &REPLY_LIMITS)
            .map_err(|e| ReadError::Invalid(e.to_string()))?;
        Ok(parsed.map(|(frame, used)| {
            self.consume(used);
            frame
        }))
    }

    /// Drops `used` bytes from the front of the read buffer, releasing it once empty: a link
    /// waiting for its next reply holds no buffer (see [`Self::fill`]).
    fn consume(&mut self, used: usize) {
        self.read.advance(used);
        if self.read.is_empty() {
            self.read = BytesMut::new();
        }
    }

    /// Reads more bytes from the instance. Over plain TCP the buffer is given room only once the
    /// socket is readable: a thousand links each waiting for an `INFO` reply (all of them at
    /// start-up, when every instance is asked at once) would otherwise hold a thousand 8 KiB
    /// buffers, which heaptrack found to be a quarter of the daemon's peak heap with 1,000
    /// masters, and the allocator keeps a peak's pages. Over TLS the stream's own buffer sits
    /// between the socket and this one, so room is given up front.
    async fn fill(&mut self) -> Result<(), ReadError> {
        if let Either::Left(tcp) = &self.stream {
            tcp.readable().await.map_err(ReadError::Io)?;
        }
        let info_awaited = self.pending.iter().any(|p| matches!(p.kind, Expect::Info));
        self.read.reserve(if info_awaited { INFO_READ_CHUNK } else { READ_CHUNK });
        match self.stream.read_buf(&mut self.read).await {
            Ok(0) => Err(ReadError::Closed),
            Ok(_) => Ok(()),
            Err(e) => Err(ReadError::Io(e)),
        }
    }
}

fn first_read_failed(error: ReadError, stats: &TlsStats) -> OpenError {
    let tls = match &error {
        ReadError::Io(e) => tls::classify(e),
        _ => None,
    };
    match tls {
        Some(failure) => {
            stats.failed(TlsEndpoint::Redis, failure);
            let hint = if failure == TlsFailure::NoClientCert {
                "; the instance requires a client certificate (tls-auth-clients): set \
                 tls_cert_file and tls_key_file"
            } else {
                "; the instance refused Picket's client certificate"
            };
            let reason = format!("TLS handshake failed ({}): {error}{hint}", failure.as_str());
            OpenError { failed: reason.into(), tls }
        }
        None => Failed::from(error).into(),
    }
}

/// Appends `command`'s requests; returns what its reply is and how many frames it takes.
fn encode_command(out: &mut Vec<u8>, command: &RedisCommand) -> (Expect, usize) {
    match command {
        RedisCommand::Ping => {
            // Sent every ping period on every link: written as the constant it is.
            out.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
            (Expect::Pong, 1)
        }
        RedisCommand::Info => {
            encode(out, &[b"INFO"]);
            (Expect::Info, 1)
        }
        RedisCommand::Promote { lease, writes } => {
            let mut before: Vec<Vec<Vec<u8>>> = Vec::new();
            match writes {
                PromotedWrites::Untouched => {}
                PromotedWrites::Released => before.push(args(&["CLIENT", "UNPAUSE"])),
                PromotedWrites::Paused(pause) => before.push(pause_writes(*pause)),
            }
            if let Some(lease) = lease {
                before.extend(set_lease(*lease));
            }
            let replicaof = args(&["REPLICAOF", "NO", "ONE"]);
            transaction(out, before.into_iter().chain(reconfiguration(replicaof)))
        }
        RedisCommand::ReplicaOf { master } => {
            let replicaof = args(&["REPLICAOF", master.host(), &master.port().to_string()]);
            transaction(out, reconfiguration(replicaof))
        }
        RedisCommand::ReadLease => {
            // One pattern: Redis 6.2 takes only one, and it matches both settings.
            encode(out, &[b"CONFIG", b"GET", b"min-replicas-*"]);
            (Expect::Lease, 1)
        }
        RedisCommand::SetLease(lease) => {
            let rewrite = args(&["CONFIG", "REWRITE"]);
            transaction(out, set_lease(*lease).into_iter().chain(std::iter::once(rewrite)))
        }
        RedisCommand::Fence { pause } => {
            let commands = std::iter::once(pause_writes(*pause)).chain(kill_clients());
            transaction(out, commands)
        }
        RedisCommand::PauseWrites { pause } => {
            encode_owned(out, &pause_writes(*pause));
            (Expect::Ok, 1)
        }
        RedisCommand::UnpauseWrites => {
            encode(out, &[b"CLIENT", b"UNPAUSE"]);
            (Expect::Ok, 1)
        }
    }
}

/// Sentinel's reconfiguration around `replicaof`: `CONFIG REWRITE` (so a restarted Redis keeps
/// its new role; it fails harmlessly on a Redis started without a config file), and killing
/// normal and pub/sub clients so they reconnect and ask where the master is now.
fn reconfiguration(replicaof: Vec<Vec<u8>>) -> impl Iterator<Item = Vec<Vec<u8>>> {
    [replicaof, args(&["CONFIG", "REWRITE"])].into_iter().chain(kill_clients())
}

/// `CLIENT KILL TYPE normal`, `CLIENT KILL TYPE pubsub` (never this connection: Redis skips
/// the caller).
fn kill_clients() -> [Vec<Vec<u8>>; 2] {
    [args(&["CLIENT", "KILL", "TYPE", "normal"]), args(&["CLIENT", "KILL", "TYPE", "pubsub"])]
}

/// `CLIENT PAUSE <ms> WRITE`: writes wait, reads go on, until it ends or is lifted.
fn pause_writes(pause: std::time::Duration) -> Vec<Vec<u8>> {
    args(&["CLIENT", "PAUSE", &pause.as_millis().to_string(), "WRITE"])
}

/// `CONFIG SET` of both lease settings.
fn set_lease(lease: Lease) -> [Vec<Vec<u8>>; 2] {
    [
        args(&["CONFIG", "SET", "min-replicas-to-write", &lease.min_replicas.to_string()]),
        args(&["CONFIG", "SET", "min-replicas-max-lag", &lease.max_lag_s.to_string()]),
    ]
}

fn args(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// `commands` between `MULTI` and `EXEC`; the reply takes `MULTI`'s `+OK`, one `+QUEUED` per
/// command, and `EXEC`'s array.
fn transaction(
    out: &mut Vec<u8>,
    commands: impl IntoIterator<Item = Vec<Vec<u8>>>,
) -> (Expect, usize) {
    encode(out, &[b"MULTI"]);
    let mut queued = 0;
    for command in commands {
        encode_owned(out, &command);
        queued += 1;
    }
    encode(out, &[b"EXEC"]);
    (Expect::Transaction, queued + 2)
}

fn encode_owned(out: &mut Vec<u8>, command: &[Vec<u8>]) {
    let words: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
    encode(out, &words);
}

/// Appends a command as a RESP array of bulk strings.
fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    use std::io::Write as _;
    // Straight into the buffer (writing to a Vec cannot fail): one PING per ping period per
    // instance should not cost a formatted String per word.
    let _ = write!(out, "*{}\r\n", args.len());
    for arg in args {
        let _ = write!(out, "${}\r\n", arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The lease in `CONFIG GET min-replicas-*`'s name/value pairs.
fn decode_lease(items: &[Frame]) -> Reply {
    let text = |f: &Frame| match f {
        Frame::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Frame::Simple(s) => Some(s.clone()),
        _ => None,
    };
    let mut lease = (None, None);
    for pair in items.chunks(2) {
        let [name, value] = pair else { continue };
        let value = text(value).and_then(|v| v.parse::<u32>().ok());
        match text(name).as_deref() {
            Some("min-replicas-to-write") => lease.0 = value,
            Some("min-replicas-max-lag") => lease.1 = value,
            _ => {}
        }
    }
    match lease {
        (Some(min_replicas), Some(max_lag_s)) => Reply::Lease(Lease { min_replicas, max_lag_s }),
        _ => Reply::Error(format!("CONFIG GET min-replicas-* answered {items:?}")),
    }
}

/// What the engine needs from a request's last frame (`error`: a transaction's first error).
fn decode(kind: Expect, last: Frame, error: Option<String>) -> Reply {
    match (kind, last) {
        (Expect::Pong | Expect::Info | Expect::Ok | Expect::Lease, Frame::Error(e)) => {
            Reply::Error(e)
        }
        (Expect::Ok, Frame::Simple(_)) => Reply::Done,
        (Expect::Ok, other) => Reply::Error(format!("unexpected reply {other:?}")),
        (Expect::Lease, Frame::Array(items)) => decode_lease(&items),
        (Expect::Lease, other) => Reply::Error(format!("unexpected CONFIG GET reply {other:?}")),
        (Expect::Pong, Frame::Simple(s)) if s.eq_ignore_ascii_case("PONG") => Reply::Pong,
        (Expect::Pong, other) => Reply::Error(format!("unexpected PING reply {other:?}")),
        (Expect::Info, Frame::Bulk(bytes)) => {
            // INFO is ASCII: the plain check is several times cheaper than the lossy scan, which
            // only a reply with invalid UTF-8 needs.
            let parsed = match std::str::from_utf8(&bytes) {
                Ok(text) => parse_info(text),
                Err(_) => parse_info(&String::from_utf8_lossy(&bytes)),
            };
            match parsed {
                Ok(report) => Reply::Info(Box::new(report)),
                Err(e) => Reply::Error(e.to_string()),
            }
        }
        (Expect::Info, other) => Reply::Error(format!("unexpected INFO reply {other:?}")),
        // Errors inside the transaction (CONFIG REWRITE without a config file) do not undo the
        // REPLICAOF; the engine checks the outcome with INFO.
        (Expect::Transaction, Frame::Array(results)) => {
            let inner = results.into_iter().find_map(|r| match r {
                Frame::Error(e) => Some(e),
                _ => None,
            });
            match error.or(inner) {
                Some(e) => Reply::Error(e),
                None => Reply::Done,
            }
        }
        // EXECABORT: a command was refused while queueing; the first error says which.
        (Expect::Transaction, Frame::Error(e)) => Reply::Error(error.unwrap_or(e)),
        (Expect::Transaction, other) => Reply::Error(format!("unexpected EXEC reply {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frames(bytes: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some((frame, used)) = Frame::parse(rest, &REPLY_LIMITS).unwrap() {
            out.push(frame);
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        out
    }

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&mut out, &[b"CLIENT", b"SETNAME", b"picket"]);
        assert_eq!(out, b"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$6\r\npicket\r\n");
    }

    #[test]
    fn ping_is_written_as_the_generic_encoding_would() {
        let (mut constant, mut generic) = (Vec::new(), Vec::new());
        encode_command(&mut constant, &RedisCommand::Ping);
        encode(&mut generic, &[b"PING"]);
        assert_eq!(constant, generic);
    }

    /// A connection over plain TCP to `addr`, without the handshake.
    async fn plain_connection(addr: std::net::SocketAddr) -> InstanceConnection {
        let stream = TcpStream::connect(addr).await.unwrap();
        InstanceConnection {
            stream: Either::Left(stream),
            read: BytesMut::new(),
            write: Vec::new(),
            pending: VecDeque::new(),
        }
    }

    /// `+PONG` is taken in place only for a PING at the head of the queue; other replies, and a
    /// PING answered otherwise, go through the parser, in order.
    #[tokio::test]
    async fn replies_come_back_in_order_with_pongs_taken_in_place() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let replies: &[u8] = b"+PONG\r\n-LOADING busy\r\n+PONG\r\n+OK\r\n";
            socket.write_all(replies).await.unwrap();
            socket
        });
        let mut conn = plain_connection(addr).await;
        conn.queue(RequestId(1), &RedisCommand::Ping);
        conn.queue(RequestId(2), &RedisCommand::Ping);
        conn.queue(RequestId(3), &RedisCommand::UnpauseWrites);
        // The third frame is an unsolicited +PONG for the CLIENT UNPAUSE: not a PING's.
        let _socket = server.await.unwrap();
        assert_eq!(conn.next_reply().await.unwrap(), (RequestId(1), Reply::Pong));
        assert_eq!(
            conn.next_reply().await.unwrap(),
            (RequestId(2), Reply::Error("LOADING busy".into()))
        );
        assert_eq!(conn.next_reply().await.unwrap(), (RequestId(3), Reply::Done));
    }

    /// A link waiting for a reply holds no read buffer, before the reply (every link waits for
    /// an `INFO` at once at start-up) and after it.
    #[tokio::test]
    async fn a_link_holds_no_read_buffer_while_it_waits() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (answer, answered) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            answered.await.unwrap();
            let info = "# Server\r\nrun_id:abc\r\n# Replication\r\nrole:master\r\n";
            let reply = format!("${}\r\n{info}\r\n+PONG\r\n", info.len());
            socket.write_all(reply.as_bytes()).await.unwrap();
            socket
        });
        let mut conn = plain_connection(addr).await;
        conn.queue(RequestId(1), &RedisCommand::Info);
        conn.queue(RequestId(2), &RedisCommand::Ping);
        let waited = tokio::time::timeout(Duration::from_millis(50), conn.next_reply()).await;
        assert!(waited.is_err(), "no reply yet");
        assert_eq!(conn.read.capacity(), 0, "a buffer reserved before any byte came");
        answer.send(()).unwrap();
        let _socket = server.await.unwrap();
        let (request, reply) = conn.next_reply().await.unwrap();
        assert_eq!(request, RequestId(1));
        assert!(matches!(reply, Reply::Info(_)));
        assert_eq!(conn.next_reply().await.unwrap(), (RequestId(2), Reply::Pong));
        assert_eq!(conn.read.capacity(), 0, "the buffer kept after the replies");
    }

    #[test]
    fn a_reconfiguration_is_one_transaction_of_six_commands() {
        let mut out = Vec::new();
        let master: Addr = "10.0.0.1:6379".parse().unwrap();
        let (kind, frames_left) = encode_command(&mut out, &RedisCommand::ReplicaOf { master });
        assert!(matches!(kind, Expect::Transaction));
        let sent = frames(&out);
        assert_eq!(sent.len(), frames_left);
        let bulk = |s: &str| Frame::Bulk(s.as_bytes().to_vec());
        assert_eq!(sent[0], Frame::Array(vec![bulk("MULTI")]));
        assert_eq!(sent[1], Frame::Array(vec![bulk("REPLICAOF"), bulk("10.0.0.1"), bulk("6379")]));
        assert_eq!(sent[5], Frame::Array(vec![bulk("EXEC")]));
    }

    #[test]
    fn replies_decode_as_the_engine_expects() {
        assert_eq!(decode(Expect::Pong, Frame::Simple("PONG".into()), None), Reply::Pong);
        assert_eq!(
            decode(Expect::Pong, Frame::Error("LOADING Redis is loading".into()), None),
            Reply::Error("LOADING Redis is loading".into())
        );
        assert_eq!(
            decode(Expect::Pong, Frame::Integer(1), None),
            Reply::Error("unexpected PING reply Integer(1)".into())
        );
        let info =
            b"# Server\r\nrun_id:abc\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n";
        assert!(matches!(decode(Expect::Info, Frame::Bulk(info.to_vec()), None), Reply::Info(_)));
        assert_eq!(
            decode(Expect::Transaction, Frame::Array(vec![Frame::Simple("OK".into()); 4]), None),
            Reply::Done
        );
        let no_config_file = Frame::Array(vec![
            Frame::Simple("OK".into()),
            Frame::Error("ERR The server is running without a config file".into()),
            Frame::Integer(0),
            Frame::Integer(0),
        ]);
        assert_eq!(
            decode(Expect::Transaction, no_config_file, None),
            Reply::Error("ERR The server is running without a config file".into())
        );
        // A command refused while queueing aborts the transaction; the first error says why.
        assert_eq!(
            decode(
                Expect::Transaction,
                Frame::Error("EXECABORT Transaction discarded".into()),
                Some("ERR unknown command 'REPLICAOF'".into())
            ),
            Reply::Error("ERR unknown command 'REPLICAOF'".into())
        );
    }
}
