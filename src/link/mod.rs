//! Connections to monitored Redis instances.
//!
//! The engine decides when to connect, what to send and when to give up; this module only does
//! it. Each link is one task owning one connection (`conn.rs`): commands are pipelined on it as
//! they arrive, and every reply (or the connection breaking) goes back to the runtime as an
//! engine input tagged with the link and request ids the engine chose. A hung instance simply
//! never answers: the engine's timers notice, not this module. A connection refused or reset by
//! the instance's host is reported as such ([`crate::engine::LinkFailure::Refused`]): that is the
//! evidence of the engine's crash rule.
//!
//! A command that waited in its queue longer than the engine's stall gap is not written: the
//! process stalled after the engine decided it, on what it knew before the stall. It is answered
//! with an error instead, as a command that failed (see [`crate::engine::NodeSettings::stall_gap`]).
//!
//! Links of masters with a TLS profile connect over TLS with that profile's current
//! configuration (see [`crate::tls`]). A TLS failure is logged as a warning the first time it
//! happens for an instance (and again when its cause changes), not at every reconnection.

mod conn;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::engine::{
    Addr, Credentials, Input, Instant, LinkId, RedisCommand, Reply, RequestId, TlsProfile,
};
use crate::hub::TlsStats;
use crate::tls::RedisTls;
use conn::{Failed, InstanceConnection, LinkTls};

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
    /// The TLS profile; `None` for plain TCP.
    pub tls: Option<TlsProfile>,
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
    tls: Arc<RedisTls>,
    shared: Arc<Shared>,
}

/// A command waiting to be written, with when it was queued.
type Queued = (RequestId, RedisCommand, Instant);

/// The commands waiting to be written on one link: the driver queues them, the link's task takes
/// them all at once. A deque behind a mutex and a [`Notify`] rather than an `mpsc` channel: a
/// bounded channel allocates a block of 32 slots and a cache-padded state up front, about
/// 2.3 KiB per link (heaptrack, 1,000 masters), for a queue that rarely holds more than one
/// command; a node keeps a link per monitored instance.
#[derive(Debug, Default)]
struct CommandQueue {
    waiting: Mutex<VecDeque<Queued>>,
    ready: Notify,
}

impl CommandQueue {
    /// Queues `command`; false if [`COMMAND_QUEUE`] commands are already waiting.
    fn push(&self, command: Queued) -> bool {
        let mut waiting = lock(&self.waiting);
        if waiting.len() >= COMMAND_QUEUE {
            return false;
        }
        waiting.push_back(command);
        drop(waiting);
        self.ready.notify_one();
        true
    }

    /// Waits until a command is queued, then moves every waiting command into `batch` (empty on
    /// entry; the two deques swap, so neither allocates again). Cancel-safe: nothing is taken
    /// before the future completes, and a notification it was given is kept for the next wait.
    async fn take_into(&self, batch: &mut VecDeque<Queued>) {
        loop {
            {
                let mut waiting = lock(&self.waiting);
                if !waiting.is_empty() {
                    std::mem::swap(&mut *waiting, batch);
                    return;
                }
            }
            self.ready.notified().await;
        }
    }
}

/// Locks `mutex`; a panic elsewhere while it was held leaves nothing half-done that matters here.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every link task shares.
#[derive(Debug)]
struct Shared {
    stats: Arc<TlsStats>,
    /// Commands queued longer than this are not written.
    stale_after: Duration,
    clock: Clock,
    /// The cause of the last TLS failure reported for each instance, until a link to it comes up.
    complaints: Mutex<BTreeMap<Addr, String>>,
}

impl Shared {
    /// Logs a TLS failure of a link to `addr`: a warning when its `cause` (the failure's kind)
    /// is news, else at debug level. The cause, not the text, decides: some errors' text changes
    /// from one attempt to the next (an expired certificate's carries the current time).
    fn complain(&self, addr: &Addr, cause: &str, reason: &str) {
        let mut complaints = lock(&self.complaints);
        if complaints.get(addr).is_some_and(|last| last == cause) {
            tracing::debug!(instance = %addr, "{reason}");
        } else {
            tracing::warn!(instance = %addr, "{reason}");
            complaints.insert(addr.clone(), cause.to_owned());
        }
    }

    fn connected(&self, addr: &Addr) {
        let mut complaints = lock(&self.complaints);
        if complaints.remove(addr).is_some() {
            tracing::info!(instance = %addr, "TLS link established");
        }
    }
}

#[derive(Debug)]
struct OpenLink {
    commands: Arc<CommandQueue>,
    task: JoinHandle<()>,
}

impl Links {
    /// Links that report to `inputs`, securing those with a TLS profile with `tls`, and dropping
    /// commands queued longer than `stale_after`.
    #[must_use]
    pub fn new(
        inputs: mpsc::Sender<Input>,
        tls: RedisTls,
        stats: Arc<TlsStats>,
        stale_after: Duration,
        clock: Clock,
    ) -> Self {
        let complaints = Mutex::new(BTreeMap::new());
        let shared = Arc::new(Shared { stats, stale_after, clock, complaints });
        Self { inputs, open: BTreeMap::new(), tls: Arc::new(tls), shared }
    }

    /// Opens link `id`; it reports `LinkUp` or `LinkDown` on its own.
    pub fn connect(&mut self, id: LinkId, spec: ConnectSpec) {
        let commands = Arc::new(CommandQueue::default());
        let tls = spec.tls.as_ref().map(|profile| self.tls.for_link(profile, &spec.addr));
        let shared = Arc::clone(&self.shared);
        let queue = Arc::clone(&commands);
        let task = tokio::spawn(run_link(id, spec, tls, shared, queue, self.inputs.clone()));
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
        // Forget finished tasks so the map only holds live links.
        if link.task.is_finished() {
            self.open.remove(&id);
            return;
        }
        if !link.commands.push((request, command, self.shared.clock.now())) {
            tracing::warn!(?id, "link command queue full; dropping command");
        }
    }

    /// Closes every link.
    pub fn close_all(&mut self) {
        for (_, link) in std::mem::take(&mut self.open) {
            link.task.abort();
        }
    }
}

impl Drop for Links {
    /// A link task waits for commands until it is aborted: whatever stops the driver stops them.
    fn drop(&mut self) {
        self.close_all();
    }
}

async fn run_link(
    id: LinkId,
    spec: ConnectSpec,
    tls: Option<Result<LinkTls, String>>,
    shared: Arc<Shared>,
    queue: Arc<CommandQueue>,
    inputs: mpsc::Sender<Input>,
) {
    let tls = match tls.transpose() {
        Ok(tls) => tls,
        Err(reason) => {
            shared.complain(&spec.addr, &reason, &reason);
            let _ = inputs.send(link_down(id, reason.into())).await;
            return;
        }
    };
    let secure = tls.is_some();
    // Boxed: the handshakes' state is several times the size of everything else in this task,
    // and would otherwise stay allocated with it for as long as the link lives.
    let opened = Box::pin(InstanceConnection::open(
        &spec.addr,
        tls,
        spec.auth.as_ref(),
        &spec.client_name,
        &shared.stats,
    ));
    let (mut conn, resolved) = match tokio::time::timeout(spec.timeout, opened).await {
        Ok(Ok(ok)) => ok,
        Ok(Err(error)) => {
            if let Some(failure) = error.tls {
                shared.complain(&spec.addr, failure.as_str(), &error.failed.reason);
            }
            let _ = inputs.send(link_down(id, error.failed)).await;
            return;
        }
        Err(_) => {
            let reason = format!("connect timed out after {:?}", spec.timeout);
            let _ = inputs.send(link_down(id, reason.into())).await;
            return;
        }
    };
    if secure {
        shared.connected(&spec.addr);
    }
    let up = Input::LinkUp { link: id, resolved: Some(resolved.to_string()) };
    if inputs.send(up).await.is_err() {
        return;
    }
    let mut batch = VecDeque::new();
    loop {
        let input = tokio::select! {
            // Everything waiting goes out in one write.
            () = queue.take_into(&mut batch) => {
                while let Some((request, command, queued_at)) = batch.pop_front() {
                    let waited = shared.clock.now().saturating_since(queued_at);
                    if waited <= shared.stale_after {
                        conn.queue(request, &command);
                        continue;
                    }
                    let reply = Reply::Error(format!(
                        "ERR picket: not sent, queued for {} ms (the process stalled)",
                        waited.as_millis()
                    ));
                    if inputs.send(Input::Replied { link: id, request, reply }).await.is_err() {
                        return;
                    }
                }
                match conn.flush().await {
                    Ok(()) => continue,
                    Err(failed) => link_down(id, failed),
                }
            }
            reply = conn.next_reply() => match reply {
                Ok((request, reply)) => Input::Replied { link: id, request, reply },
                Err(failed) => link_down(id, failed),
            },
        };
        let broken = matches!(input, Input::LinkDown { .. });
        if inputs.send(input).await.is_err() || broken {
            return;
        }
    }
}

/// The engine's input for link `id` failing as `failed` says.
fn link_down(link: LinkId, failed: Failed) -> Input {
    Input::LinkDown { link, reason: failed.reason, failure: failed.failure }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(n: u64) -> Queued {
        (RequestId(n), RedisCommand::Ping, Clock::start().now())
    }

    #[tokio::test]
    async fn queued_commands_are_taken_together_in_order_and_a_full_queue_refuses() {
        let queue = CommandQueue::default();
        for n in 0..COMMAND_QUEUE as u64 {
            assert!(queue.push(queued(n)));
        }
        assert!(!queue.push(queued(999)), "past COMMAND_QUEUE commands");
        let mut batch = VecDeque::new();
        queue.take_into(&mut batch).await;
        let taken: Vec<u64> = batch.iter().map(|(r, _, _)| r.0).collect();
        assert_eq!(taken, (0..COMMAND_QUEUE as u64).collect::<Vec<_>>());
        assert!(lock(&queue.waiting).is_empty());
    }

    /// A node keeps one link task per monitored instance for as long as it runs, so the task's
    /// state is paid a thousand times at a thousand masters: the connection phase (resolving,
    /// TCP and TLS handshakes), which is far larger, lives in a box of its own while it runs.
    #[tokio::test]
    async fn a_link_task_stays_small() {
        let (inputs, _) = mpsc::channel(1);
        let queue = Arc::default();
        let spec = ConnectSpec {
            addr: "127.0.0.1:6379".parse().unwrap(),
            auth: None,
            tls: None,
            client_name: "picket".into(),
            timeout: Duration::from_secs(1),
        };
        let shared = Arc::new(Shared {
            stats: Arc::default(),
            stale_after: Duration::from_secs(1),
            clock: Clock::start(),
            complaints: Mutex::default(),
        });
        let task = run_link(LinkId(1), spec, None, shared, queue, inputs);
        let size = size_of_val(&task);
        // 5,840 bytes before the connection phase and the TLS stream were boxed; about 1,500 after.
        assert!(size <= 2048, "a link task's future is {size} bytes");
    }
}
