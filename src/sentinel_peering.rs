//! The shell side of Sentinel-compatible peering (see [`crate::engine::sentinels`]): it talks
//! to the redis-sentinel processes and to the hello channels, and decides nothing.
//!
//! * [`SentinelAsker`] performs the engine's [`Output::AskSentinel`]: one worker per listed
//!   Sentinel keeps a connection to its port, sends `SENTINEL IS-MASTER-DOWN-BY-ADDR` and feeds
//!   the reply back as [`Input::SentinelAnswered`].
//! * For every master with listed Sentinels, a publisher sends this node's hello, rendered from
//!   the engine's view, on `__sentinel__:hello` of the master and its replicas and straight to
//!   each listed Sentinel (Sentinel's fake `PUBLISH`), every [`HELLO_PERIOD`] and at once when
//!   the master or its config epoch changes; and a listener subscribes to the master's hello
//!   channel and hands every hello to the engine, which keeps only listed Sentinels' ones.
//!
//! Sentinels are reached with `[node] sentinel_user` / `sentinel_pass` (Sentinel's
//! `sentinel-user` / `sentinel-pass`) when set. Plain TCP only: a master with `tls = true` gets no
//! hellos and is not listened to (logged at start).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value};
use tokio::sync::mpsc;

use crate::engine::sentinels::HELLO_PERIOD;
use crate::engine::view::MasterView;
use crate::engine::{Addr, AdminCommand, Credentials, DownAnswer, Input, NodeId, Output, View};
use crate::hub::Hub;
use crate::wire::hello::{format_hello, parse_hello};

/// How long connecting, and any one command, may take.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Questions waiting for one Sentinel's worker; more are dropped (they are repeated).
const ASK_QUEUE: usize = 16;
/// The channel Sentinels exchange hellos on.
const CHANNEL: &str = "__sentinel__:hello";

/// One question for a Sentinel.
struct Ask {
    master: String,
    master_addr: Addr,
    epoch: u64,
    candidate: Option<NodeId>,
}

/// Performs [`Output::AskSentinel`]: a worker per Sentinel address, started on first use.
pub struct SentinelAsker {
    workers: BTreeMap<Addr, mpsc::Sender<Ask>>,
    inputs: mpsc::Sender<Input>,
    auth: Option<Credentials>,
}

impl SentinelAsker {
    /// An asker that reports answers on `inputs` and authenticates with `auth`.
    #[must_use]
    pub const fn new(inputs: mpsc::Sender<Input>, auth: Option<Credentials>) -> Self {
        Self { workers: BTreeMap::new(), inputs, auth }
    }

    /// Performs an [`Output::AskSentinel`]; other outputs are ignored.
    pub fn perform(&mut self, output: Output) {
        let Output::AskSentinel { master, sentinel, master_addr, epoch, candidate } = output else {
            return;
        };
        let (inputs, auth) = (&self.inputs, &self.auth);
        let worker = self.workers.entry(sentinel.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(ASK_QUEUE);
            tokio::spawn(ask_worker(sentinel, auth.clone(), rx, inputs.clone()));
            tx
        });
        // A full queue means the Sentinel is slow: the engine asks again.
        let _ = worker.try_send(Ask { master, master_addr, epoch, candidate });
    }
}

async fn ask_worker(
    sentinel: Addr,
    auth: Option<Credentials>,
    mut asks: mpsc::Receiver<Ask>,
    inputs: mpsc::Sender<Input>,
) {
    let mut conn: Option<MultiplexedConnection> = None;
    while let Some(ask) = asks.recv().await {
        if conn.is_none() {
            conn = connect(&sentinel, auth.as_ref()).await;
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("is-master-down-by-addr")
            .arg(ask.master_addr.host())
            .arg(ask.master_addr.port())
            .arg(ask.epoch)
            .arg(ask.candidate.map_or_else(|| "*".to_owned(), |id| id.to_string()));
        let reply = tokio::time::timeout(TIMEOUT, cmd.query_async::<Value>(c)).await;
        let answer = match reply {
            Ok(Ok(value)) => parse_answer(&value),
            Ok(Err(e)) => {
                tracing::debug!(%sentinel, error = %e, "is-master-down-by-addr failed");
                conn = None;
                continue;
            }
            Err(_) => {
                conn = None;
                continue;
            }
        };
        match answer {
            Some(answer) => {
                let input = Input::SentinelAnswered {
                    master: ask.master,
                    sentinel: sentinel.clone(),
                    master_addr: ask.master_addr,
                    answer,
                };
                if inputs.send(input).await.is_err() {
                    return;
                }
            }
            None => tracing::debug!(%sentinel, "is-master-down-by-addr: unexpected reply shape"),
        }
    }
}

/// `[int down, bulk leader|*, int leader-epoch]`.
fn parse_answer(value: &Value) -> Option<DownAnswer> {
    let Value::Array(items) = value else { return None };
    let [Value::Int(down), leader, Value::Int(epoch)] = items.as_slice() else { return None };
    let leader = match leader {
        Value::BulkString(bytes) => bytes.clone(),
        Value::SimpleString(text) => text.clone().into_bytes(),
        _ => return None,
    };
    let leader = match leader.as_slice() {
        b"*" => None,
        id => Some(std::str::from_utf8(id).ok()?.to_ascii_lowercase().parse().ok()?),
    };
    Some(DownAnswer {
        master_down: *down == 1,
        leader,
        leader_epoch: u64::try_from(*epoch).unwrap_or(0),
    })
}

/// A client for `addr`, authenticating with `auth`.
fn client(addr: &Addr, auth: Option<&Credentials>) -> Option<redis::Client> {
    let mut redis_settings = RedisConnectionInfo::default();
    if let Some(auth) = auth {
        if let Some(user) = &auth.user {
            redis_settings = redis_settings.set_username(user);
        }
        redis_settings = redis_settings.set_password(&auth.password);
    }
    let info = ConnectionAddr::Tcp(addr.host().to_owned(), addr.port())
        .into_connection_info()
        .ok()?
        .set_redis_settings(redis_settings);
    redis::Client::open(info).ok()
}

async fn connect(addr: &Addr, auth: Option<&Credentials>) -> Option<MultiplexedConnection> {
    let client = client(addr, auth)?;
    let connect = client.get_multiplexed_async_connection();
    match tokio::time::timeout(TIMEOUT, connect).await {
        Ok(Ok(conn)) => Some(conn),
        Ok(Err(e)) => {
            tracing::debug!(%addr, error = %e, "cannot connect");
            None
        }
        Err(_) => None,
    }
}

/// Starts the publisher and the listener of every master with listed Sentinels (masters with
/// TLS are skipped, with a warning); `sentinel_auth` authenticates on the Sentinels' ports.
pub fn start(
    hub: &Hub,
    masters: &[crate::engine::MasterSettings],
    sentinel_auth: Option<&Credentials>,
) {
    for master in masters.iter().filter(|m| !m.sentinel_peers.is_empty()) {
        if master.tls.is_some() {
            tracing::warn!(master = %master.name, "sentinel_peers: hellos are not sent or read over TLS; this master's Sentinels will not see this node");
            continue;
        }
        let publisher = Publisher {
            hub: hub.clone(),
            master: master.name.clone(),
            auth: master.auth.clone(),
            sentinel_auth: sentinel_auth.cloned(),
            sentinels: master.sentinel_peers.clone(),
            conns: BTreeMap::new(),
        };
        tokio::spawn(publisher.run());
        tokio::spawn(listen(hub.clone(), master.name.clone(), master.auth.clone()));
    }
}

/// Publishes this node's hello about one master.
struct Publisher {
    hub: Hub,
    master: String,
    auth: Option<Credentials>,
    sentinel_auth: Option<Credentials>,
    sentinels: Vec<Addr>,
    conns: BTreeMap<Addr, MultiplexedConnection>,
}

impl Publisher {
    async fn run(mut self) {
        let mut view = self.hub.view.clone();
        let mut interval = tokio::time::interval(HELLO_PERIOD);
        let mut sent: Option<(Addr, u64)> = None;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                changed = view.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Only a new configuration is worth an early hello.
                    let now = Arc::clone(&view.borrow_and_update());
                    let config = now.master(&self.master).map(|m| (m.addr.clone(), m.config_epoch));
                    if config == sent {
                        continue;
                    }
                }
            }
            let snapshot = Arc::clone(&view.borrow());
            let Some(master) = snapshot.master(&self.master) else { continue };
            sent = Some((master.addr.clone(), master.config_epoch));
            self.publish(&snapshot, master).await;
        }
    }

    async fn publish(&mut self, view: &View, master: &MasterView) {
        let payload = format_hello(
            &view.client_addr,
            view.node_id,
            view.current_epoch,
            &master.name,
            &master.addr,
            master.config_epoch,
        );
        let instances =
            std::iter::once(&master.addr).chain(master.replicas.iter().map(|r| &r.addr));
        let targets: Vec<(Addr, Option<Credentials>)> = instances
            .map(|a| (a.clone(), self.auth.clone()))
            .chain(self.sentinels.iter().map(|a| (a.clone(), self.sentinel_auth.clone())))
            .collect();
        // All at once: a target that does not answer (a dead old master, a stopped Sentinel)
        // must not delay the others by its timeout. Connections to former targets are dropped.
        let mut open = std::mem::take(&mut self.conns);
        let sends = targets.into_iter().map(|(addr, auth)| {
            let conn = open.remove(&addr);
            let payload = payload.as_str();
            async move {
                let mut conn = match conn {
                    Some(conn) => conn,
                    None => connect(&addr, auth.as_ref()).await?,
                };
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(CHANNEL).arg(payload);
                let sent = tokio::time::timeout(TIMEOUT, cmd.query_async::<Value>(&mut conn)).await;
                matches!(sent, Ok(Ok(_))).then_some((addr, conn))
            }
        });
        self.conns = futures::future::join_all(sends).await.into_iter().flatten().collect();
    }
}

/// Subscribes to the current master's hello channel and hands every hello to the engine;
/// follows the master when it changes.
async fn listen(hub: Hub, master: String, auth: Option<Credentials>) {
    let mut view = hub.view.clone();
    loop {
        let Some(addr) = view.borrow().master(&master).map(|m| m.addr.clone()) else { return };
        let listened = listen_on(&hub, &addr, auth.as_ref(), &mut view, &master).await;
        if !listened {
            tokio::time::sleep(HELLO_PERIOD / 4).await;
        }
    }
}

/// Listens on `addr` until the master moves or the connection fails; `false` if it could not
/// subscribe.
async fn listen_on(
    hub: &Hub,
    addr: &Addr,
    auth: Option<&Credentials>,
    view: &mut tokio::sync::watch::Receiver<Arc<View>>,
    master: &str,
) -> bool {
    let Some(client) = client(addr, auth) else { return false };
    let Ok(Ok(mut pubsub)) = tokio::time::timeout(TIMEOUT, client.get_async_pubsub()).await else {
        return false;
    };
    if pubsub.subscribe(CHANNEL).await.is_err() {
        return false;
    }
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return true };
                if let Some(hello) = parse_hello(message.get_payload_bytes()) {
                    let _ = hub.admin(AdminCommand::SentinelHello(hello)).await;
                }
            }
            changed = view.changed() => {
                if changed.is_err() {
                    return true;
                }
                let moved = view.borrow_and_update().master(master).is_none_or(|m| m.addr != *addr);
                if moved {
                    return true;
                }
            }
        }
    }
}
