//! Connections to monitored Redis instances, through the `redis` crate.
//!
//! The engine decides when to connect, what to send and when to give up; this module only does
//! it. Each link is one task owning one multiplexed connection: commands are pipelined on it as
//! they arrive, and every reply (or the connection breaking) goes back to the runtime as an
//! engine input tagged with the link and request ids the engine chose. A hung instance simply
//! never answers: the engine's timers notice, not this module.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisError, RedisResult, Value,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::engine::{Addr, Credentials, Input, LinkId, RedisCommand, Reply, RequestId};
use crate::wire::info::parse_info;

/// How many commands may wait to be written on one link. The engine caps requests in flight per
/// link at 100, so this is never reached in practice; it bounds memory if it ever were.
const COMMAND_QUEUE: usize = 256;

/// What to connect to and how.
#[derive(Clone, Debug)]
pub struct ConnectSpec {
    /// The instance.
    pub addr: Addr,
    /// `AUTH` credentials.
    pub auth: Option<Credentials>,
    /// `CLIENT SETNAME` value.
    pub client_name: String,
    /// Limit for resolving, connecting and the handshake together.
    pub timeout: Duration,
}

/// The live links, keyed by the engine's link ids.
#[derive(Debug)]
pub struct Links {
    inputs: mpsc::Sender<Input>,
    open: BTreeMap<LinkId, OpenLink>,
}

#[derive(Debug)]
struct OpenLink {
    commands: mpsc::Sender<(RequestId, RedisCommand)>,
    task: JoinHandle<()>,
}

impl Links {
    /// Links that report to `inputs`.
    #[must_use]
    pub fn new(inputs: mpsc::Sender<Input>) -> Self {
        Self { inputs, open: BTreeMap::new() }
    }

    /// Opens link `id`; it reports `LinkUp` or `LinkDown` on its own.
    pub fn connect(&mut self, id: LinkId, spec: ConnectSpec) {
        let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
        let task = tokio::spawn(run_link(id, spec, queue, self.inputs.clone()));
        if let Some(old) = self.open.insert(id, OpenLink { commands, task }) {
            old.task.abort();
        }
    }

    /// Closes link `id`. Nothing more is reported for it.
    pub fn disconnect(&mut self, id: LinkId) {
        if let Some(link) = self.open.remove(&id) {
            link.task.abort();
        }
    }

    /// Queues a command on link `id`. A command for a link that is gone is dropped: the engine
    /// has been (or is being) told the link is down.
    pub fn send(&mut self, id: LinkId, request: RequestId, command: RedisCommand) {
        let Some(link) = self.open.get(&id) else { return };
        if link.commands.try_send((request, command)).is_err() {
            tracing::warn!(?id, "link command queue full; dropping command");
        }
        // Forget finished tasks so the map only holds live links.
        if link.task.is_finished() {
            self.open.remove(&id);
        }
    }

    /// Closes every link.
    pub fn close_all(&mut self) {
        for (_, link) in std::mem::take(&mut self.open) {
            link.task.abort();
        }
    }
}

async fn run_link(
    id: LinkId,
    spec: ConnectSpec,
    mut queue: mpsc::Receiver<(RequestId, RedisCommand)>,
    inputs: mpsc::Sender<Input>,
) {
    let connected = tokio::time::timeout(spec.timeout, open(&spec)).await;
    let (conn, resolved) = match connected {
        Ok(Ok(ok)) => ok,
        Ok(Err(e)) => {
            let _ = inputs.send(Input::LinkDown { link: id, reason: e }).await;
            return;
        }
        Err(_) => {
            let reason = format!("connect timed out after {:?}", spec.timeout);
            let _ = inputs.send(Input::LinkDown { link: id, reason }).await;
            return;
        }
    };
    let up = Input::LinkUp { link: id, resolved: Some(resolved.to_string()) };
    if inputs.send(up).await.is_err() {
        return;
    }
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            command = queue.recv() => {
                let Some((request, command)) = command else { return };
                let mut conn = conn.clone();
                in_flight.push(async move { (request, execute(&mut conn, &command).await) });
            }
            Some((request, result)) = in_flight.next(), if !in_flight.is_empty() => {
                let input = match result {
                    Ok(reply) => Input::Replied { link: id, request, reply },
                    Err(e) if is_fatal(&e) => Input::LinkDown { link: id, reason: e.to_string() },
                    Err(e) => Input::Replied { link: id, request, reply: Reply::Error(error_text(&e)) },
                };
                let broken = matches!(input, Input::LinkDown { .. });
                if inputs.send(input).await.is_err() || broken {
                    return;
                }
            }
        }
    }
}

/// Resolves the host now (so a name that moved is followed), connects to the first address,
/// authenticates and names the connection.
async fn open(spec: &ConnectSpec) -> Result<(MultiplexedConnection, IpAddr), String> {
    let target = format!("{}:{}", spec.addr.host(), spec.addr.port());
    let resolved = tokio::net::lookup_host(&target)
        .await
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .min_by_key(std::net::SocketAddr::is_ipv6)
        .ok_or_else(|| format!("{target} resolves to no address"))?;
    let mut redis_info = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
    if let Some(auth) = &spec.auth {
        if let Some(user) = &auth.user {
            redis_info = redis_info.set_username(user);
        }
        redis_info = redis_info.set_password(&auth.password);
    }
    let info = ConnectionAddr::Tcp(resolved.ip().to_string(), resolved.port())
        .into_connection_info()
        .map_err(|e| e.to_string())?
        .set_redis_settings(redis_info);
    let client = redis::Client::open(info).map_err(|e| e.to_string())?;
    let config =
        AsyncConnectionConfig::new().set_response_timeout(None).set_connection_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    // The name shows who is connected in CLIENT LIST; a refusal (renamed command) is harmless.
    let _: RedisResult<Value> =
        redis::cmd("CLIENT").arg("SETNAME").arg(&spec.client_name).query_async(&mut conn).await;
    Ok((conn, resolved.ip()))
}

async fn execute(conn: &mut MultiplexedConnection, command: &RedisCommand) -> RedisResult<Reply> {
    match command {
        RedisCommand::Ping => {
            let value: Value = redis::cmd("PING").query_async(conn).await?;
            Ok(match value {
                Value::SimpleString(s) if s.eq_ignore_ascii_case("PONG") => Reply::Pong,
                Value::BulkString(b) if b.eq_ignore_ascii_case(b"PONG") => Reply::Pong,
                other => Reply::Error(format!("unexpected PING reply {other:?}")),
            })
        }
        RedisCommand::Info => {
            let text: String = redis::cmd("INFO").query_async(conn).await?;
            Ok(match parse_info(&text) {
                Ok(report) => Reply::Info(Box::new(report)),
                Err(e) => Reply::Error(e.to_string()),
            })
        }
        RedisCommand::Promote => reconfigure(conn, None).await,
        RedisCommand::ReplicaOf { master } => reconfigure(conn, Some(master)).await,
    }
}

/// Sentinel's reconfiguration transaction: `REPLICAOF`, `CONFIG REWRITE` (so a restarted Redis
/// keeps its new role; it fails harmlessly on a Redis started without a config file), and killing
/// normal and pub/sub clients so they reconnect and ask where the master is now.
async fn reconfigure(
    conn: &mut MultiplexedConnection,
    master: Option<&Addr>,
) -> RedisResult<Reply> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    match master {
        None => pipe.cmd("REPLICAOF").arg("NO").arg("ONE"),
        Some(m) => pipe.cmd("REPLICAOF").arg(m.host()).arg(m.port()),
    };
    pipe.cmd("CONFIG").arg("REWRITE");
    pipe.cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal");
    pipe.cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub");
    match pipe.query_async::<Value>(conn).await {
        Ok(_) => Ok(Reply::Done),
        Err(e) if is_fatal(&e) => Err(e),
        // Errors inside the transaction (CONFIG REWRITE without a config file) do not undo the
        // REPLICAOF; the engine checks the outcome with INFO.
        Err(e) => Ok(Reply::Error(error_text(&e))),
    }
}

/// Whether the error means the connection is gone (as opposed to an error reply).
fn is_fatal(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// An error reply as Redis wrote it: `CODE detail`.
fn error_text(e: &RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_owned(),
        _ => e.to_string(),
    }
}
