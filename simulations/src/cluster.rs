//! The simulated deployment and its event loop: Picket nodes running the real, unmodified
//! [`Supervisor`], simulated Redis instances, the links between them, and one clock.
//!
//! # Time
//!
//! The simulation's clock counts microseconds. Each node reads it through its own [`Clock`]
//! (an offset, a drift, and the jumps faults add) and hands the engine whole milliseconds, the
//! engine's unit. Each step takes the earliest of: the head of the event queue, and every
//! running node's next deadline (`poll_timeout`, converted back to simulation time). Ties go to
//! the queue, then to the lowest node index: every run is a pure function of its seed.
//!
//! # Performing outputs
//!
//! After each `handle` the node's outputs are drained and performed in order, and each is shown to
//! the [`Checker`] first. `Persist` writes the node's simulated disk before anything after it
//! happens (the barrier). A crash may be armed to strike halfway through a batch, after some
//! outputs were performed and before the rest: that is how the barrier is put to the test.
//!
//! # Redis links
//!
//! A `Connect` opens a simulated TCP connection. It is refused at once by a dead instance, left
//! unanswered by a stopped one or across a dropping partition (the engine then gets `LinkDown`
//! after the `timeout` the output carries, as from the real shell), and reset by a rejecting
//! partition. Packets on a connection are delivered in order; while a partition holds them they
//! wait, and on healing they go on in order. A connection the node closed still delivers what was
//! already on its way: a `REPLICAOF` sent just before a disconnect, or to a stopped instance,
//! still takes effect. What a partition held is dropped at the close: the shell closes its links
//! with a reset (zero linger), which ends the kernel's retransmissions (simulator seed 9382244: a
//! `min-replicas-to-write 0` held for 14 s on a closed link landed after the failover read the
//! lease it replaced).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use picket::engine::{
    Addr, AdminAnswer, AdminCommand, DurableState, Input, Instant, LinkFailure, LinkId,
    MasterSettings, NodeSettings, Output, PeerId, PeerMessage, PromotedWrites, RedisCommand, Reply,
    RequestId, Settings, Supervisor, Ticket,
};
use picket::wire::info::parse_info;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::checker::{Checker, Reconfiguration, Violation};
use crate::network::{Cut, Endpoint, Network, Queue};
use crate::options::Options;
use crate::redis::{Held, Process, Redis, ReplLink, Role};
use crate::trace::Trace;

/// Longest a node may keep waking at one instant before the run is declared a busy loop.
const MAX_WAKES_AT_ONE_INSTANT: u32 = 10_000;

/// A node's view of time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    /// Added to the simulation's clock, in microseconds (clock jumps change it).
    pub offset_us: i64,
    /// Rate error, in parts per million.
    pub drift_ppm: i64,
}

impl Clock {
    /// The node's time, in engine milliseconds, at simulation time `global_us`.
    #[must_use]
    pub fn local_ms(&self, global_us: u64) -> u64 {
        let scaled = i128::from(global_us) * i128::from(1_000_000 + self.drift_ppm) / 1_000_000;
        u64::try_from((scaled + i128::from(self.offset_us)).max(0) / 1000).unwrap_or(u64::MAX)
    }

    /// The earliest simulation time at which the node's clock reads at least `local_ms`.
    #[must_use]
    pub fn global_at(&self, local_ms: u64) -> u64 {
        let target = i128::from(local_ms) * 1000 - i128::from(self.offset_us);
        let rate = i128::from(1_000_000 + self.drift_ppm);
        let mut g =
            u64::try_from(((target * 1_000_000 + rate - 1) / rate).max(0)).unwrap_or(u64::MAX);
        while self.local_ms(g) < local_ms {
            g += 1;
        }
        while g > 0 && self.local_ms(g - 1) >= local_ms {
            g -= 1;
        }
        g
    }
}

/// One Picket node: its engine (while running), its disk, its clock.
#[derive(Debug)]
pub struct SimNode {
    /// Its settings (the same at every start).
    pub settings: Settings,
    /// The engine, while the process runs.
    pub engine: Option<Supervisor>,
    /// What it last persisted (`None`: never, or the disk was lost).
    pub disk: Option<DurableState>,
    /// Incremented at every start.
    pub generation: u32,
    /// Its clock.
    pub clock: Clock,
    /// Stalled (no `handle` calls) until then.
    pub stalled_until: Option<u64>,
    /// What reached it while stalled, delivered in order on resume.
    inbox: VecDeque<Event>,
    /// Engine link id → connection.
    links: BTreeMap<LinkId, u64>,
    /// Its next deadline, in simulation time.
    wake_at: Option<u64>,
    /// A crash armed for the next batch: after this many outputs were performed.
    pub(crate) crash_after: Option<usize>,
    /// Whether its disk survives its next crash.
    pub keep_disk: bool,
    /// When the next crash happens under faults, restart after this long (µs).
    restart_after: Option<u64>,
    /// Peer slot → node index.
    pub slots: Vec<usize>,
    /// Answers to admin commands, in order.
    pub answers: Vec<(Ticket, AdminAnswer)>,
    /// Wakes at the current instant (busy-loop guard).
    wakes_here: (u64, u32),
}

/// A master group as the simulator knows it.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    /// Its name.
    pub name: String,
    /// Its instances (indices into the Redis list); the first is the configured master.
    pub members: Vec<usize>,
    /// Quorum.
    pub quorum: u32,
    /// Master write load, bytes per millisecond.
    pub write_rate: u64,
}

/// A packet towards a Redis instance.
#[derive(Clone, Debug)]
pub enum Up {
    /// Connection attempt (and handshake).
    Syn,
    /// A command.
    Command {
        /// The engine's request id.
        request: RequestId,
        /// The command.
        command: RedisCommand,
    },
}

/// A packet towards a node.
#[derive(Clone, Debug)]
pub enum Down {
    /// Connected.
    Accept,
    /// Connection refused.
    Refuse,
    /// A reply.
    Reply {
        /// The request answered.
        request: RequestId,
        /// The reply.
        reply: Reply,
    },
    /// Connection reset.
    Reset,
}

/// A role change and what its transaction sets with it.
#[derive(Clone, Debug)]
pub struct RoleChange {
    /// The new role.
    pub role: Role,
    /// The lease set in the same transaction.
    pub lease: Option<picket::engine::Lease>,
    /// What the transaction does with its writes.
    pub writes: PromotedWrites,
}

/// A fault's scheduled follow-up.
#[derive(Clone, Debug)]
pub enum Recovery {
    /// Resume a stopped instance (if it is still the same process).
    ResumeRedis {
        /// The instance.
        redis: usize,
        /// Its process generation when stopped.
        generation: u32,
    },
    /// Restart a killed instance.
    RestartRedis {
        /// The instance.
        redis: usize,
        /// Its process generation when killed.
        generation: u32,
        /// Whether it keeps its data.
        keep_data: bool,
        /// Whether it keeps its saved `replicaof`.
        keep_config: bool,
    },
    /// The next step of a flapping instance.
    Flap {
        /// The instance.
        redis: usize,
        /// Steps left.
        remaining: u32,
    },
    /// End a partition.
    Heal {
        /// Its id.
        partition: u64,
    },
    /// Restart a crashed node.
    RestartNode {
        /// The node.
        node: usize,
        /// Its generation when it crashed.
        generation: u32,
    },
}

/// Something scheduled.
#[derive(Clone, Debug)]
pub enum Event {
    /// A peer message arrives.
    Peer {
        /// Sender.
        from: usize,
        /// Receiver.
        to: usize,
        /// The message.
        message: Arc<PeerMessage>,
    },
    /// A packet reaches a Redis instance.
    Up {
        /// Connection.
        conn: u64,
        /// Packet.
        packet: Up,
    },
    /// A packet reaches a node.
    Down {
        /// Connection.
        conn: u64,
        /// Packet.
        packet: Down,
    },
    /// A connection attempt's timeout.
    ConnectTimeout {
        /// Node.
        node: usize,
        /// Connection.
        conn: u64,
    },
    /// A delayed `REPLICAOF` takes effect.
    Apply {
        /// The instance.
        redis: usize,
        /// Its process generation when the command arrived.
        generation: u32,
        /// The connection to answer on.
        conn: u64,
        /// The request to answer.
        request: RequestId,
        /// The role change and what the transaction sets with it.
        change: RoleChange,
    },
    /// A stalled node resumes.
    Unstall {
        /// The node.
        node: usize,
        /// Its generation when stalled.
        generation: u32,
    },
    /// A fault's follow-up.
    Recover(Recovery),
    /// Time to consider injecting faults.
    FaultTick,
}

/// The state of a simulated TCP connection.
#[derive(Debug)]
struct Conn {
    node: usize,
    link: LinkId,
    redis: usize,
    /// The process generation that accepted it.
    accepted_by: Option<u32>,
    /// The node closed it (or crashed); packets already on their way are still delivered.
    closed: bool,
    established: bool,
    /// Last scheduled delivery per direction (TCP is FIFO).
    up_last: u64,
    down_last: u64,
    /// Packets held by a partition, per direction.
    up_held: VecDeque<Up>,
    down_held: VecDeque<Down>,
    /// Up packets in flight, held, or waiting in a stopped instance's inbox.
    up_pending: u32,
}

/// How a run ended badly.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Failure {
    /// A safety invariant was violated.
    Safety(Violation),
    /// The cluster did not converge after the faults healed.
    Liveness(String),
    /// The engine or the simulator panicked.
    Panic(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Safety(v) => write!(f, "safety violation: {v}"),
            Self::Liveness(reason) => write!(f, "liveness failure: {reason}"),
            Self::Panic(message) => write!(f, "panic: {message}"),
        }
    }
}

/// Counters for the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// `handle` calls.
    pub handles: u64,
    /// Events popped from the queue.
    pub events: u64,
    /// Faults injected.
    pub faults: u64,
}

/// The whole simulated deployment.
#[derive(Debug)]
pub struct Simulation {
    /// What the run is made of.
    pub options: Options,
    /// Simulation time, µs.
    pub now: u64,
    queue: Queue<Event>,
    /// The run's randomness (network, Redis, faults). Engines have their own seeds.
    pub(crate) rng: ChaCha8Rng,
    /// The nodes.
    pub nodes: Vec<SimNode>,
    /// The Redis instances.
    pub redis: Vec<Redis>,
    redis_by_addr: BTreeMap<Addr, usize>,
    /// The groups.
    pub groups: Vec<GroupSpec>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    /// The network.
    pub network: Network,
    peer_last: Vec<u64>,
    /// The safety invariants.
    pub checker: Checker,
    /// The trace.
    pub trace: Trace,
    /// Whether faults are being injected (and `REPLICAOF` may misbehave).
    pub(crate) faults_on: bool,
    /// The first failure.
    pub failure: Option<Failure>,
    next_ticket: u64,
    /// Counters.
    pub stats: Stats,
    /// Groups whose failover is due (see [`crate::progress`]).
    pub(crate) due: BTreeMap<String, crate::progress::Due>,
    /// The next node to send a promotion crashes right after it (disk kept), and restarts this
    /// long after (the drill's abandoned promotion).
    pub(crate) crash_next_promoter: Option<Duration>,
    /// Per group, since when two of its instances accept writes (see [`crate::split_brain`]).
    pub(crate) split_since: Vec<Option<u64>>,
    /// When each node last promoted a replica of each group (`+promoted-slave`): a
    /// `+fence-window` counts from there (see [`crate::split_brain`]).
    pub(crate) promoted_at: BTreeMap<(usize, String), u64>,
}

/// `nK`, for the trace.
pub(crate) struct Who(pub(crate) String);

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn addr(host: String, port: u16) -> Addr {
    Addr::new(&host, port).unwrap_or_else(|e| panic!("simulator address {host}:{port}: {e}"))
}

impl Simulation {
    /// Builds the deployment `options` describe and starts every node and instance at time 0.
    #[must_use]
    pub fn new(options: Options, trace: Trace) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let node_addr = |i: usize, port: u16| addr(format!("10.0.0.{}", i + 1), port);
        let mut redis = Vec::new();
        let mut groups = Vec::new();
        let mut masters = Vec::new();
        for (g, group) in options.groups.iter().enumerate() {
            let master_addr = addr(format!("10.0.{}.1", g + 1), 6379);
            let replid = rng.random::<u64>();
            let offset = rng.random_range(0..1_000_000);
            let mut members = Vec::new();
            for k in 0..=group.replicas {
                let (role, priority) = if k == 0 {
                    (Role::Master, 100)
                } else {
                    (Role::Replica(master_addr.clone()), group.priorities[k - 1])
                };
                let mut r = Redis::new(
                    addr(format!("10.0.{}.{}", g + 1, k + 1), 6379),
                    g,
                    role,
                    priority,
                    run_id(&mut rng),
                    replid,
                );
                r.offset = offset;
                if k > 0 {
                    // The deployment starts healthy: replicas are in sync.
                    r.link = ReplLink::Up;
                }
                members.push(redis.len());
                redis.push(r);
            }
            let mut settings = MasterSettings::new(&group.name, master_addr, group.quorum);
            settings.down_after = group.down_after;
            settings.down_after_refused = group.down_after_refused;
            settings.failover_timeout = group.failover_timeout;
            settings.parallel_syncs = group.parallel_syncs;
            settings.fencing = group.fencing;
            masters.push(settings);
            groups.push(GroupSpec {
                name: group.name.clone(),
                members,
                quorum: group.quorum,
                write_rate: group.write_rate,
            });
        }
        let n = options.nodes;
        let mut nodes = Vec::new();
        for i in 0..n {
            // Each node lists its peers in its own order, so slot numbers differ between nodes.
            let mut others: Vec<usize> = (0..n).filter(|j| *j != i).collect();
            let shift = rng.random_range(0..others.len().max(1));
            others.rotate_left(shift);
            let mut node = NodeSettings::new(
                node_addr(i, 26380),
                node_addr(i, 26379),
                others.iter().map(|j| node_addr(*j, 26380)).collect(),
            );
            node.heartbeat = options.heartbeat;
            node.peer_timeout = options.peer_timeout;
            node.tilt_trigger = options.tilt_trigger;
            node.tilt_period = options.tilt_period;
            nodes.push(SimNode {
                settings: Settings { node, masters: masters.clone() },
                engine: None,
                disk: None,
                generation: 0,
                clock: Clock {
                    offset_us: i64::try_from(options.clock_offsets_ms[i]).unwrap_or(0) * 1000,
                    drift_ppm: options.clock_drift_ppm[i],
                },
                stalled_until: None,
                inbox: VecDeque::new(),
                links: BTreeMap::new(),
                wake_at: None,
                crash_after: None,
                keep_disk: true,
                restart_after: None,
                slots: others,
                answers: Vec::new(),
                wakes_here: (0, 0),
            });
        }
        let redis_by_addr = redis.iter().enumerate().map(|(i, r)| (r.addr.clone(), i)).collect();
        let network = Network::new(options.network.clone(), n, redis.len());
        let mut checker = Checker::new(&options);
        for r in &redis {
            checker.add_instance(r.addr.clone(), &groups[r.group].name);
        }
        let mut sim = Self {
            now: 0,
            queue: Queue::default(),
            rng,
            nodes,
            redis_by_addr,
            groups,
            conns: BTreeMap::new(),
            next_conn: 1,
            network,
            peer_last: vec![0; n * n],
            checker,
            trace,
            faults_on: false,
            failure: None,
            next_ticket: 1,
            stats: Stats::default(),
            due: BTreeMap::new(),
            crash_next_promoter: None,
            split_since: Vec::new(),
            promoted_at: BTreeMap::new(),
            redis,
            options,
        };
        sim.split_since = vec![None; sim.groups.len()];
        sim.refresh_replication();
        for i in 0..n {
            sim.start_node(i);
        }
        sim
    }

    /// The trace label of Redis instance `r`: `rG.K`.
    #[must_use]
    pub fn redis_label(&self, r: usize) -> String {
        let g = self.redis[r].group;
        let k = self.groups[g].members.iter().position(|m| *m == r).unwrap_or(0);
        format!("r{g}.{k}")
    }

    /// The index of the instance at `addr`.
    #[must_use]
    pub fn redis_at(&self, addr: &Addr) -> Option<usize> {
        self.redis_by_addr.get(addr).copied()
    }

    pub(crate) fn fail(&mut self, failure: Failure) {
        if self.failure.is_none() {
            let text = failure.to_string();
            self.trace.line(self.now, &"sim", || format!("FAILED {text}"));
            self.failure = Some(failure);
        }
    }

    fn check(&mut self, result: Result<(), Violation>) {
        if let Err(v) = result {
            self.fail(Failure::Safety(v));
        }
    }

    // ---------------------------------------------------------------------------------------
    // The loop.

    fn next_node_wake(&self) -> Option<(u64, usize)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.engine.is_some() && n.stalled_until.is_none())
            .filter_map(|(i, n)| n.wake_at.map(|t| (t, i)))
            .min()
    }

    fn next_at(&self) -> Option<u64> {
        let node = self.next_node_wake().map(|(t, _)| t);
        match (node, self.queue.peek_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Performs the next step; returns false if there was nothing to do.
    pub fn step(&mut self) -> bool {
        let node = self.next_node_wake();
        let event = self.queue.peek_at();
        match (node, event) {
            (Some((t, i)), e) if e.is_none_or(|e| t < e) => {
                self.now = self.now.max(t);
                self.nodes[i].wake_at = None;
                let guard = &mut self.nodes[i].wakes_here;
                if guard.0 == self.now {
                    guard.1 += 1;
                    if guard.1 > MAX_WAKES_AT_ONE_INSTANT {
                        self.fail(Failure::Liveness(format!(
                            "n{i} keeps asking to be woken at the same instant"
                        )));
                        return false;
                    }
                } else {
                    *guard = (self.now, 0);
                }
                self.handle_node(i, Input::Tick);
                true
            }
            (_, Some(_)) => {
                let Some((at, event)) = self.queue.pop() else { return false };
                self.now = self.now.max(at);
                self.stats.events += 1;
                self.dispatch(event);
                true
            }
            _ => false,
        }
    }

    /// Runs until simulation time `until_us` (or the first failure).
    ///
    /// # Errors
    /// The first failure, if any happened (it stays recorded).
    pub fn run_until(&mut self, until_us: u64) -> Result<(), Failure> {
        while self.failure.is_none() {
            match self.next_at() {
                Some(t) if t <= until_us => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now = self.now.max(until_us);
        self.failure.clone().map_or(Ok(()), Err)
    }

    /// Runs for `d` of simulation time.
    ///
    /// # Errors
    /// The first failure, if any happened.
    pub fn run_for(&mut self, d: Duration) -> Result<(), Failure> {
        self.run_until(self.now + duration_us(d))
    }

    /// Runs until `done` holds (checked after every step) or `limit` has passed; returns
    /// whether `done` held.
    ///
    /// # Errors
    /// The first failure, if any happened.
    pub fn run_until_true(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<bool, Failure> {
        let until = self.now + duration_us(limit);
        while self.failure.is_none() {
            if done(self) {
                return Ok(true);
            }
            match self.next_at() {
                Some(t) if t <= until => {
                    self.step();
                }
                _ => break,
            }
        }
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        self.now = self.now.max(until);
        Ok(done(self))
    }

    /// The master address and config epoch node `i` holds for group `name` (if it runs).
    #[must_use]
    pub fn belief(&self, i: usize, name: &str) -> Option<(Addr, u64)> {
        let master = self.nodes[i].engine.as_ref()?.durable_master(name)?;
        Some((master.addr, master.config_epoch))
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Peer { from, to, .. } => {
                if self.network.blocked(Endpoint::Node(from), Endpoint::Node(to)).is_none() {
                    self.node_receive(to, event);
                }
            }
            Event::Up { conn, packet } => self.redis_receive(conn, packet, true),
            Event::Down { conn, packet } => self.down_arrives(conn, packet),
            Event::ConnectTimeout { node, .. } => self.node_receive(node, event),
            Event::Apply { redis, generation, conn, request, change } => {
                let r = &self.redis[redis];
                if r.generation != generation || r.process == Process::Dead {
                    return;
                }
                if r.process == Process::Paused {
                    // Finish once the process runs again (and keep later changes behind it).
                    let at = self.now + 100_000;
                    let busy = &mut self.redis[redis].reconf_busy_until;
                    *busy = (*busy).max(at);
                    self.queue.push(at, Event::Apply { redis, generation, conn, request, change });
                    return;
                }
                self.apply_role(redis, conn, change);
                self.send_down(conn, Down::Reply { request, reply: Reply::Done });
            }
            Event::Unstall { node, generation } => {
                if self.nodes[node].generation == generation {
                    self.unstall_node(node);
                }
            }
            Event::Recover(recovery) => self.recover(recovery),
            Event::FaultTick => self.fault_tick(),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Nodes.

    fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.generation += 1;
        node.stalled_until = None;
        node.inbox.clear();
        node.crash_after = None;
        node.wake_at = None;
        let seed = self.rng.random::<u64>();
        let restored = node.disk.clone();
        let local = node.clock.local_ms(self.now);
        let fresh = restored.is_none();
        let mut engine =
            Supervisor::new(node.settings.clone(), restored, seed, Instant::from_millis(local));
        let started = engine.durable();
        let id = engine.id();
        let _ = engine.view();
        self.nodes[i].engine = Some(engine);
        self.trace.line(self.now, &Who(format!("n{i}")), || {
            format!("start id={} {}", id.short(), if fresh { "fresh" } else { "from disk" })
        });
        let result = self.checker.on_start(i, &started);
        self.check(result);
        self.drain(i);
    }

    /// Crashes node `i`: its process is gone, its connections close, and its disk survives if
    /// `keep_disk`.
    pub fn crash_node(&mut self, i: usize, keep_disk: bool) {
        if self.nodes[i].engine.take().is_none() {
            return;
        }
        self.trace.line(self.now, &Who(format!("n{i}")), || {
            format!("crash ({})", if keep_disk { "disk kept" } else { "disk lost" })
        });
        let node = &mut self.nodes[i];
        node.inbox.clear();
        node.stalled_until = None;
        node.wake_at = None;
        node.crash_after = None;
        if !keep_disk {
            node.disk = None;
        }
        let links: Vec<u64> = std::mem::take(&mut node.links).into_values().collect();
        for conn in links {
            self.close_conn(conn);
        }
        if self.faults_on
            && let Some(after) = self.nodes[i].restart_after.take()
        {
            let generation = self.nodes[i].generation;
            self.queue.push(
                self.now + after,
                Event::Recover(Recovery::RestartNode { node: i, generation }),
            );
        }
    }

    /// Restarts crashed node `i` from its disk (or fresh, if it has none).
    pub fn restart_node(&mut self, i: usize) {
        if self.nodes[i].engine.is_none() {
            self.start_node(i);
        }
    }

    /// Arms a crash of node `i` in its next batch, after `after_outputs` outputs were performed.
    pub fn arm_crash(
        &mut self,
        i: usize,
        after_outputs: usize,
        keep_disk: bool,
        restart_after: Option<u64>,
    ) {
        let node = &mut self.nodes[i];
        node.crash_after = Some(after_outputs);
        node.keep_disk = keep_disk;
        node.restart_after = restart_after;
    }

    /// Stops node `i` from handling anything for `d` (a stalled process): what reaches it waits.
    pub fn stall_node(&mut self, i: usize, d: Duration) {
        if self.nodes[i].engine.is_none() || self.nodes[i].stalled_until.is_some() {
            return;
        }
        let until = self.now + duration_us(d);
        self.nodes[i].stalled_until = Some(until);
        self.trace
            .line(self.now, &Who(format!("n{i}")), || format!("stall for {:.1}s", d.as_secs_f64()));
        let generation = self.nodes[i].generation;
        self.queue.push(until, Event::Unstall { node: i, generation });
    }

    pub(crate) fn unstall_node(&mut self, i: usize) {
        if self.nodes[i].stalled_until.take().is_none() {
            return;
        }
        self.trace.line(self.now, &Who(format!("n{i}")), || "resume after stall".to_owned());
        let generation = self.nodes[i].generation;
        let inbox = std::mem::take(&mut self.nodes[i].inbox);
        for event in inbox {
            if self.nodes[i].generation != generation || self.failure.is_some() {
                break;
            }
            self.node_receive(i, event);
        }
    }

    /// Moves node `i`'s clock by `jump_ms` (forwards if positive).
    pub fn jump_clock(&mut self, i: usize, jump_ms: i64) {
        self.nodes[i].clock.offset_us += jump_ms * 1000;
        self.trace.line(self.now, &Who(format!("n{i}")), || format!("clock jumps {jump_ms:+}ms"));
        self.reschedule(i);
    }

    /// Asks node `i` for a manual failover of `master` (`SENTINEL FAILOVER`).
    pub fn admin_failover(&mut self, i: usize, master: &str) {
        if self.nodes[i].engine.is_none() || self.nodes[i].stalled_until.is_some() {
            return;
        }
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.trace.line(self.now, &Who(format!("n{i}")), || format!("admin FAILOVER {master}"));
        self.checker.operator_input = true;
        self.handle_node(
            i,
            Input::Admin { ticket, command: AdminCommand::Failover { master: master.to_owned() } },
        );
        self.checker.operator_input = false;
    }

    /// Something reaches node `i`: handled now, or queued while it is stalled.
    fn node_receive(&mut self, i: usize, event: Event) {
        let node = &mut self.nodes[i];
        if node.engine.is_none() {
            return;
        }
        if node.stalled_until.is_some() {
            node.inbox.push_back(event);
            return;
        }
        match event {
            Event::Peer { from, message, .. } => {
                let local = self.nodes[i].clock.local_ms(self.now);
                self.checker.on_peer_delivered(i, from, local, &message);
                let message = Arc::unwrap_or_clone(message);
                self.handle_node(i, Input::Peer(message));
            }
            Event::Down { conn, packet } => self.node_receives_down(i, conn, packet),
            Event::ConnectTimeout { conn, .. } => {
                let Some(c) = self.conns.get(&conn) else { return };
                if c.established || c.closed || c.node != i {
                    return;
                }
                let link = c.link;
                if let Some(addr) = self.conn_target(conn) {
                    let local = self.nodes[i].clock.local_ms(self.now);
                    self.checker.on_link_failed(i, &addr, local, LinkFailure::Other);
                }
                self.nodes[i].links.remove(&link);
                self.close_conn(conn);
                let reason = "connect timeout".to_owned();
                self.handle_node(i, Input::LinkDown { link, reason, failure: LinkFailure::Other });
            }
            _ => {}
        }
    }

    fn node_receives_down(&mut self, i: usize, conn: u64, packet: Down) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.closed {
            return;
        }
        let link = c.link;
        let target = self.redis.get(c.redis).map(|r| r.addr.clone());
        let local = self.nodes[i].clock.local_ms(self.now);
        match packet {
            Down::Accept => {
                if !c.established {
                    c.established = true;
                    let resolved = Some(self.redis[c.redis].addr.host().to_owned());
                    if let Some(addr) = &target {
                        self.checker.on_link(i, addr, true);
                    }
                    self.handle_node(i, Input::LinkUp { link, resolved });
                }
            }
            Down::Reply { request, reply } => {
                if c.established {
                    if let Some(addr) = &target {
                        self.checker.on_reply_delivered(i, addr, local, &reply);
                    }
                    self.handle_node(i, Input::Replied { link, request, reply });
                }
            }
            Down::Refuse | Down::Reset => {
                let reason = if matches!(packet, Down::Refuse) {
                    "connection refused"
                } else {
                    "connection reset"
                };
                if let Some(addr) = &target {
                    self.checker.on_link_failed(i, addr, local, LinkFailure::Refused);
                }
                self.nodes[i].links.remove(&link);
                self.close_conn(conn);
                let reason = reason.to_owned();
                self.handle_node(
                    i,
                    Input::LinkDown { link, reason, failure: LinkFailure::Refused },
                );
            }
        }
    }

    fn handle_node(&mut self, i: usize, input: Input) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let Some(engine) = node.engine.as_mut() else { return };
        engine.handle(Instant::from_millis(node.clock.local_ms(now)), input);
        self.stats.handles += 1;
        self.drain(i);
    }

    /// Performs node `i`'s outputs in order (or crashes it partway, if a crash is armed).
    fn drain(&mut self, i: usize) {
        let mut performed = 0;
        loop {
            let Some(engine) = self.nodes[i].engine.as_mut() else { return };
            let Some(output) = engine.poll_output() else { break };
            if self.nodes[i].crash_after == Some(performed) {
                let keep = self.nodes[i].keep_disk;
                self.crash_node(i, keep);
                return;
            }
            self.perform(i, output);
            performed += 1;
        }
        if self.nodes[i].crash_after.is_some() {
            let keep = self.nodes[i].keep_disk;
            self.crash_node(i, keep);
            return;
        }
        self.reschedule(i);
    }

    fn reschedule(&mut self, i: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        node.wake_at = node
            .engine
            .as_ref()
            .and_then(Supervisor::poll_timeout)
            .map(|deadline| node.clock.global_at(deadline.as_millis()).max(now));
    }

    fn perform(&mut self, i: usize, output: Output) {
        match output {
            Output::Persist(state) => {
                let result = self.checker.on_persist(i, &state);
                self.check(result);
                self.nodes[i].disk = Some(*state);
            }
            Output::Connect { link, addr, timeout, .. } => self.connect(i, link, &addr, timeout),
            Output::Disconnect { link } => {
                if let Some(conn) = self.nodes[i].links.remove(&link) {
                    if let Some(addr) = self.conn_target(conn) {
                        self.checker.on_link(i, &addr, false);
                    }
                    self.close_conn(conn);
                }
            }
            Output::Send { link, request, command } => self.send_command(i, link, request, command),
            Output::SendPeer { to, message } => self.send_peer(i, to, message),
            Output::Emit(event) => {
                let Some(id) = self.nodes[i].engine.as_ref().map(Supervisor::id) else { return };
                let local = self.nodes[i].clock.local_ms(self.now);
                let result = self.checker.on_event(i, id, local, &event);
                self.check(result);
                self.note_fence_window(i, &event);
                self.trace.line(self.now, &Who(format!("n{i}")), || event.to_string());
            }
            Output::Answer { ticket, answer } => {
                self.trace.line(self.now, &Who(format!("n{i}")), || format!("answer {answer:?}"));
                self.nodes[i].answers.push((ticket, answer));
            }
            // The simulator models Picket nodes only: no master lists Sentinels, so nothing asks
            // one. A question asked anyway goes unanswered, as one to a dead Sentinel would.
            Output::AskSentinel { sentinel, .. } => {
                self.trace.line(self.now, &Who(format!("n{i}")), || format!("ask {sentinel}"));
            }
        }
    }

    fn send_peer(&mut self, from: usize, slot: PeerId, message: Arc<PeerMessage>) {
        let disk = self.nodes[from].disk.as_ref();
        let result = self.checker.on_peer_send(from, disk, &message);
        self.check(result);
        let Some(&to) = self.nodes[from].slots.get(usize::from(slot.0)) else { return };
        if self.trace.enabled() {
            use picket::engine::Body;
            let text = match &message.body {
                Body::VoteRequest { master, epoch, manual, .. } => Some(format!(
                    "=> n{to} vote-request {master} epoch {epoch}{}",
                    if *manual { " (manual)" } else { "" }
                )),
                Body::VoteReply { master, epoch, voted_for } => Some(format!(
                    "=> n{to} vote-reply {master} epoch {epoch} for {}",
                    voted_for.map_or_else(|| "-".to_owned(), |id| id.short())
                )),
                _ => None,
            };
            if let Some(text) = text {
                self.trace.line(self.now, &Who(format!("n{from}")), || text);
            }
        }
        if self.network.blocked(Endpoint::Node(from), Endpoint::Node(to)).is_some() {
            return;
        }
        let options = &self.network.options;
        let (loss, dup, reorder) =
            (options.peer_loss, options.peer_duplication, options.peer_reordering);
        if loss > 0.0 && self.rng.random_bool(loss) {
            return;
        }
        let copies = if dup > 0.0 && self.rng.random_bool(dup) { 2 } else { 1 };
        for _ in 0..copies {
            let mut at = self.now + self.network.delay(&mut self.rng);
            if !reorder {
                let last = &mut self.peer_last[from * self.nodes.len() + to];
                at = at.max(*last);
                *last = at;
            }
            self.queue.push(at, Event::Peer { from, to, message: Arc::clone(&message) });
        }
    }

    // ---------------------------------------------------------------------------------------
    // Connections.

    fn connect(&mut self, i: usize, link: LinkId, addr: &Addr, timeout: Duration) {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.nodes[i].links.insert(link, conn);
        self.queue.push(self.now + duration_us(timeout), Event::ConnectTimeout { node: i, conn });
        let Some(redis) = self.redis_at(addr) else {
            // Nobody there: refused (as a closed port on a live host would).
            self.conns.insert(conn, Conn::new(i, link, usize::MAX));
            let at = self.now + self.network.delay(&mut self.rng);
            self.queue.push(at, Event::Down { conn, packet: Down::Refuse });
            return;
        };
        self.conns.insert(conn, Conn::new(i, link, redis));
        self.send_up(conn, Up::Syn);
    }

    fn send_command(&mut self, i: usize, link: LinkId, request: RequestId, command: RedisCommand) {
        let Some(&conn) = self.nodes[i].links.get(&link) else {
            self.fail(Failure::Safety(Violation {
                rule: "send-on-open-link",
                detail: format!("n{i} sent on unknown link {link:?}"),
            }));
            return;
        };
        let Some(c) = self.conns.get(&conn) else { return };
        let target = c.redis;
        if command.changes_instance() {
            let Some(id) = self.nodes[i].engine.as_ref().map(Supervisor::id) else { return };
            let r = &self.redis[target];
            let group = &self.groups[r.group];
            let reconfiguration = Reconfiguration {
                node: i,
                node_id: id,
                disk: self.nodes[i].disk.as_ref(),
                group: &group.name,
                target: &r.addr,
                target_priority: r.priority,
                command: &command,
            };
            let result = self.checker.on_reconfiguration(&reconfiguration);
            let label = self.redis_label(target);
            self.check(result);
            if matches!(command, RedisCommand::Promote { .. })
                && let Some(after) = self.crash_next_promoter.take()
            {
                self.trace.line(self.now, &"fault", || {
                    format!(
                        "n{i} will crash right after its promotion, back in {}ms",
                        after.as_millis()
                    )
                });
                self.arm_crash(i, 0, true, None);
                let generation = self.nodes[i].generation;
                self.schedule(after, Recovery::RestartNode { node: i, generation });
            }
            self.trace.line(self.now, &Who(format!("n{i}")), || format!("-> {label} {command:?}"));
        }
        self.send_up(conn, Up::Command { request, command });
    }

    /// The address of the instance connection `conn` goes to, if it goes to one.
    fn conn_target(&self, conn: u64) -> Option<Addr> {
        let c = self.conns.get(&conn)?;
        self.redis.get(c.redis).map(|r| r.addr.clone())
    }

    fn close_conn(&mut self, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.closed = true;
        c.down_held.clear();
        // The shell closes its links with a reset (zero linger): the kernel stops sending
        // what the instance has not received. What it did receive (in flight, or waiting in a
        // stopped instance's socket) is still read.
        let dropped = u32::try_from(c.up_held.len()).unwrap_or(0);
        c.up_held.clear();
        c.up_pending = c.up_pending.saturating_sub(dropped);
        if c.up_pending == 0 {
            self.conns.remove(&conn);
        }
    }

    fn send_up(&mut self, conn: u64, packet: Up) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.up_pending += 1;
        let path = (Endpoint::Node(c.node), Endpoint::Redis(c.redis));
        match self.network.blocked(path.0, path.1) {
            Some(Cut::Reject) => {
                c.up_pending -= 1;
                let answer = if matches!(packet, Up::Syn) { Down::Refuse } else { Down::Reset };
                let at = self.now + self.network.delay(&mut self.rng);
                self.queue.push(at, Event::Down { conn, packet: answer });
            }
            Some(Cut::Drop) => c.up_held.push_back(packet),
            None if !c.up_held.is_empty() => c.up_held.push_back(packet),
            None => {
                let at = (self.now + self.network.delay(&mut self.rng)).max(c.up_last + 1);
                c.up_last = at;
                self.queue.push(at, Event::Up { conn, packet });
            }
        }
    }

    fn send_down(&mut self, conn: u64, packet: Down) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.closed {
            return;
        }
        match self.network.blocked(Endpoint::Redis(c.redis), Endpoint::Node(c.node)) {
            Some(Cut::Reject) => {
                let at = self.now + self.network.delay(&mut self.rng);
                self.queue.push(at, Event::Down { conn, packet: Down::Reset });
            }
            Some(Cut::Drop) => c.down_held.push_back(packet),
            None if !c.down_held.is_empty() => c.down_held.push_back(packet),
            None => {
                let at = (self.now + self.network.delay(&mut self.rng)).max(c.down_last + 1);
                c.down_last = at;
                self.queue.push(at, Event::Down { conn, packet });
            }
        }
    }

    fn down_arrives(&mut self, conn: u64, packet: Down) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.closed {
            return;
        }
        let node = c.node;
        if c.redis != usize::MAX {
            match self.network.blocked(Endpoint::Redis(c.redis), Endpoint::Node(node)) {
                Some(Cut::Drop) => {
                    c.down_held.push_back(packet);
                    return;
                }
                None if !c.down_held.is_empty() => {
                    c.down_held.push_back(packet);
                    return;
                }
                _ => {}
            }
        }
        self.node_receive(node, Event::Down { conn, packet });
    }

    /// A packet reaches a Redis instance (`arriving`: from the network, else from its inbox).
    fn redis_receive(&mut self, conn: u64, packet: Up, arriving: bool) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let r = c.redis;
        if arriving {
            let path = (Endpoint::Node(c.node), Endpoint::Redis(r));
            match self.network.blocked(path.0, path.1) {
                Some(Cut::Drop) => {
                    c.up_held.push_back(packet);
                    return;
                }
                None if !c.up_held.is_empty() => {
                    c.up_held.push_back(packet);
                    return;
                }
                _ => {}
            }
        }
        match self.redis[r].process {
            Process::Paused => {
                let held = match packet {
                    Up::Syn => Held::Connect { conn },
                    Up::Command { request, command } => Held::Command { conn, request, command },
                };
                self.redis[r].inbox.push_back(held);
                return;
            }
            Process::Dead => {
                self.up_done(conn);
                let answer = if matches!(packet, Up::Syn) { Down::Refuse } else { Down::Reset };
                self.send_down(conn, answer);
                return;
            }
            Process::Running => {}
        }
        self.up_done(conn);
        match packet {
            Up::Syn => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.accepted_by = Some(self.redis[r].generation);
                }
                self.send_down(conn, Down::Accept);
            }
            Up::Command { request, command } => {
                let accepted_by = self.conns.get(&conn).and_then(|c| c.accepted_by);
                if accepted_by != Some(self.redis[r].generation) {
                    self.send_down(conn, Down::Reset);
                    return;
                }
                if let Some(reply) = self.execute(r, conn, request, command) {
                    self.send_down(conn, Down::Reply { request, reply });
                }
            }
        }
    }

    /// One up packet left the pipe; forget a closed connection once nothing is left in it.
    fn up_done(&mut self, conn: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.up_pending = c.up_pending.saturating_sub(1);
            if c.closed && c.up_pending == 0 {
                self.conns.remove(&conn);
            }
        }
    }

    /// Delivers packets that partitions held, in order, on paths that are open again.
    pub(crate) fn flush_held(&mut self) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for conn in ids {
            let Some(c) = self.conns.get_mut(&conn) else { continue };
            if c.redis == usize::MAX {
                continue;
            }
            let (node, redis) = (Endpoint::Node(c.node), Endpoint::Redis(c.redis));
            if self.network.blocked(node, redis).is_none() {
                while let Some(packet) = c.up_held.pop_front() {
                    let at = (self.now + self.network.delay(&mut self.rng)).max(c.up_last + 1);
                    c.up_last = at;
                    self.queue.push(at, Event::Up { conn, packet });
                }
            }
            if self.network.blocked(redis, node).is_none() {
                while let Some(packet) = c.down_held.pop_front() {
                    let at = (self.now + self.network.delay(&mut self.rng)).max(c.down_last + 1);
                    c.down_last = at;
                    self.queue.push(at, Event::Down { conn, packet });
                }
            }
        }
    }

    /// Resets every open connection on a path a rejecting partition now cuts.
    pub(crate) fn reset_rejected(&mut self) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for conn in ids {
            let Some(c) = self.conns.get_mut(&conn) else { continue };
            if c.closed || c.redis == usize::MAX {
                continue;
            }
            let (node, redis) = (Endpoint::Node(c.node), Endpoint::Redis(c.redis));
            let rejected = self.network.blocked(node, redis) == Some(Cut::Reject)
                || self.network.blocked(redis, node) == Some(Cut::Reject);
            if rejected {
                c.down_held.clear();
                let dropped = u32::try_from(c.up_held.len()).unwrap_or(0);
                c.up_held.clear();
                c.up_pending = c.up_pending.saturating_sub(dropped);
                let packet = if c.established { Down::Reset } else { Down::Refuse };
                let at = self.now + self.network.delay(&mut self.rng);
                self.queue.push(at, Event::Down { conn, packet });
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Redis.

    fn execute(
        &mut self,
        r: usize,
        conn: u64,
        request: RequestId,
        command: RedisCommand,
    ) -> Option<Reply> {
        let now = self.now;
        match command {
            RedisCommand::Ping => Some(if now < self.redis[r].loading_until {
                Reply::Error("LOADING Redis is loading the dataset in memory".to_owned())
            } else {
                Reply::Pong
            }),
            RedisCommand::Info => {
                self.refresh_group(self.redis[r].group);
                let me = &self.redis[r];
                let replicas: Vec<(Addr, u64)> = self.groups[me.group]
                    .members
                    .iter()
                    .map(|&k| &self.redis[k])
                    .filter(|k| k.running() && k.role.master() == Some(&me.addr) && k.link_up())
                    .map(|k| (k.addr.clone(), k.offset))
                    .collect();
                let text = me.render_info(now, &replicas);
                match parse_info(&text) {
                    Ok(report) => Some(Reply::Info(Box::new(report))),
                    Err(e) => panic!("the simulator's INFO does not parse ({e}):\n{text}"),
                }
            }
            RedisCommand::Promote { lease, writes } => {
                self.reconfigure(r, conn, request, RoleChange { role: Role::Master, lease, writes })
            }
            RedisCommand::ReplicaOf { master } => {
                if master == self.redis[r].addr {
                    return Some(Reply::Error("ERR Can't replicate myself".to_owned()));
                }
                let change = RoleChange {
                    role: Role::Replica(master),
                    lease: None,
                    writes: PromotedWrites::Untouched,
                };
                self.reconfigure(r, conn, request, change)
            }
            RedisCommand::ReadLease => Some(Reply::Lease(self.redis[r].lease)),
            RedisCommand::SetLease(lease) => {
                self.redis[r].set_lease(lease);
                Some(Reply::Done)
            }
            RedisCommand::Fence { pause } => {
                self.redis[r].pause_writes(now + duration_us(pause));
                self.trace.line(now, &Who(self.redis_label(r)), || "fenced".to_owned());
                self.kill_clients(r, conn);
                Some(Reply::Done)
            }
            RedisCommand::PauseWrites { pause } => {
                self.redis[r].pause_writes(now + duration_us(pause));
                Some(Reply::Done)
            }
            RedisCommand::UnpauseWrites => {
                self.redis[r].paused_until = 0;
                Some(Reply::Done)
            }
        }
    }

    /// A `REPLICAOF` transaction: applied at once, or (with faults on) delayed, refused, or
    /// acknowledged and ignored.
    fn reconfigure(
        &mut self,
        r: usize,
        conn: u64,
        request: RequestId,
        change: RoleChange,
    ) -> Option<Reply> {
        let busy_until = self.redis[r].reconf_busy_until;
        if self.now < busy_until {
            // An earlier, delayed role change is still pending: this one takes effect after it.
            let at = busy_until + 1;
            self.redis[r].reconf_busy_until = at;
            let generation = self.redis[r].generation;
            self.queue.push(at, Event::Apply { redis: r, generation, conn, request, change });
            return None;
        }
        if self.faults_on {
            let f = &self.options.faults;
            let (refuse, ignore, delay) = (f.reconf_refuse, f.reconf_ignore, f.reconf_delay);
            let lost = f.reconf_reply_lost;
            let label = self.redis_label(r);
            if lost > 0.0 && self.rng.random_bool(lost) {
                // The command runs, then the connection resets before the reply leaves.
                self.trace.line(self.now, &Who(label), || "REPLICAOF ran, reply lost".to_owned());
                self.apply_role(r, conn, change);
                self.send_down(conn, Down::Reset);
                return None;
            }
            let x: f64 = self.rng.random();
            if x < refuse {
                self.trace.line(self.now, &Who(label), || "refuses REPLICAOF".to_owned());
                return Some(Reply::Error("ERR simulated refusal".to_owned()));
            }
            if x < refuse + ignore {
                self.trace.line(self.now, &Who(label), || "ignores REPLICAOF".to_owned());
                return Some(Reply::Done);
            }
            if x < refuse + ignore + delay {
                let after = self.rng.random_range(100_000..3_000_000);
                self.trace.line(self.now, &Who(label), || {
                    format!("delays REPLICAOF by {}ms", after / 1000)
                });
                let generation = self.redis[r].generation;
                self.redis[r].reconf_busy_until = self.now + after;
                self.queue.push(
                    self.now + after,
                    Event::Apply { redis: r, generation, conn, request, change },
                );
                return None;
            }
        }
        self.apply_role(r, conn, change);
        Some(Reply::Done)
    }

    /// Applies a role change with what its transaction sets (a lease, a pause), and kills the
    /// other clients' connections, as the transaction's `CLIENT KILL TYPE normal` does.
    fn apply_role(&mut self, r: usize, conn: u64, change: RoleChange) {
        let replid = self.rng.random::<u64>();
        let label = self.redis_label(r);
        let now = self.now;
        let redis = &mut self.redis[r];
        // Reconfigured by a node: whatever a failover said of it as an old master is over.
        redis.promised_fenced_by = None;
        match change.writes {
            PromotedWrites::Untouched => {}
            PromotedWrites::Released => redis.paused_until = 0,
            PromotedWrites::Paused(pause) => redis.pause_writes(now + duration_us(pause)),
        }
        if let Some(lease) = change.lease {
            redis.set_lease(lease);
        }
        if redis.role != change.role {
            let text = match &change.role {
                Role::Master => "becomes master".to_owned(),
                Role::Replica(m) => format!("becomes replica of {m}"),
            };
            self.trace.line(now, &Who(label), || text);
        }
        redis.set_role(change.role, now, replid);
        self.kill_clients(r, conn);
        self.refresh_replication();
    }

    /// Resets every connection to instance `r` but `conn` (`CLIENT KILL TYPE normal`).
    fn kill_clients(&mut self, r: usize, conn: u64) {
        let generation = self.redis[r].generation;
        let others: Vec<u64> = self
            .conns
            .iter()
            .filter(|(id, c)| {
                **id != conn && c.redis == r && !c.closed && c.accepted_by == Some(generation)
            })
            .map(|(id, _)| *id)
            .collect();
        for other in others {
            self.send_down(other, Down::Reset);
        }
    }

    /// Makes the next node that sends a promotion crash right after it (its disk kept), and
    /// restart `after` later: a failover abandoned after its promotion went out.
    pub fn crash_next_promoter(&mut self, after: Duration) {
        self.crash_next_promoter = Some(after);
    }

    /// Changes instance `r`'s role by hand, as an operator running `REPLICAOF` in `redis-cli`
    /// would (or a supervisor acting on stale information): no node is told.
    pub fn replicaof_by_hand(&mut self, r: usize, role: Role) {
        if self.redis[r].running() {
            let writes = PromotedWrites::Untouched;
            self.apply_role(r, u64::MAX, RoleChange { role, lease: None, writes });
        }
    }

    /// Kills instance `r` (`SIGKILL`): connections reset, new ones refused.
    pub fn kill_redis(&mut self, r: usize) {
        if self.redis[r].process == Process::Dead {
            return;
        }
        let label = self.redis_label(r);
        self.trace.line(self.now, &Who(label), || "killed".to_owned());
        self.redis[r].process = Process::Dead;
        let inbox = std::mem::take(&mut self.redis[r].inbox);
        for held in inbox {
            let (conn, answer) = match held {
                Held::Connect { conn } => (conn, Down::Refuse),
                Held::Command { conn, .. } => (conn, Down::Reset),
            };
            self.up_done(conn);
            self.send_down(conn, answer);
        }
        let generation = self.redis[r].generation;
        let open: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.redis == r && c.accepted_by == Some(generation))
            .map(|(id, _)| *id)
            .collect();
        for conn in open {
            self.send_down(conn, Down::Reset);
        }
        self.refresh_replication();
    }

    /// Starts killed instance `r` again; see [`Redis::restart`].
    pub fn restart_redis(&mut self, r: usize, keep_data: bool, keep_config: bool) {
        if self.redis[r].process != Process::Dead {
            return;
        }
        let run_id = run_id(&mut self.rng);
        let replid = self.rng.random::<u64>();
        let loading = self.rng.random_range(0..300_000);
        let now = self.now;
        self.redis[r].restart(now, run_id, keep_data, keep_config, replid, loading);
        let label = self.redis_label(r);
        let role = match &self.redis[r].role {
            Role::Master => "master".to_owned(),
            Role::Replica(m) => format!("replica of {m}"),
        };
        self.trace.line(self.now, &Who(label), || {
            format!(
                "restarted as {role} ({}, {})",
                if keep_data { "with data" } else { "empty" },
                if keep_config { "config kept" } else { "config lost" }
            )
        });
        self.refresh_replication();
    }

    /// Stops instance `r` (`SIGSTOP`).
    pub fn pause_redis(&mut self, r: usize) {
        if self.redis[r].process != Process::Running {
            return;
        }
        let label = self.redis_label(r);
        self.trace.line(self.now, &Who(label), || "paused".to_owned());
        self.redis[r].process = Process::Paused;
        self.refresh_replication();
    }

    /// Resumes stopped instance `r` (`SIGCONT`): everything that reached it meanwhile is served,
    /// in order.
    pub fn resume_redis(&mut self, r: usize) {
        if self.redis[r].process != Process::Paused {
            return;
        }
        let label = self.redis_label(r);
        self.trace.line(self.now, &Who(label), || "resumed".to_owned());
        self.redis[r].process = Process::Running;
        self.redis[r].offset_at = self.now;
        let inbox = std::mem::take(&mut self.redis[r].inbox);
        for held in inbox {
            match held {
                Held::Connect { conn } => self.redis_receive(conn, Up::Syn, false),
                Held::Command { conn, request, command } => {
                    self.redis_receive(conn, Up::Command { request, command }, false);
                }
            }
        }
        self.refresh_replication();
    }

    /// Brings every instance's offset and replication link up to date.
    pub fn refresh_replication(&mut self) {
        for g in 0..self.groups.len() {
            self.refresh_group(g);
        }
    }

    /// Brings the offsets and replication links of group `g`'s instances up to date (replication
    /// never crosses groups, so an INFO needs only its own group refreshed).
    pub fn refresh_group(&mut self, g: usize) {
        let now = self.now;
        let group = &self.groups[g];
        for &m in &group.members {
            self.redis[m].take_writes(now, group.write_rate);
        }
        for k in 0..self.groups[g].members.len() {
            let r = self.groups[g].members[k];
            if self.redis[r].process != Process::Running {
                if self.redis[r].process == Process::Dead {
                    self.redis[r].link = ReplLink::Down { since: None };
                }
                continue;
            }
            let Role::Replica(master) = &self.redis[r].role else { continue };
            let source = self.redis_by_addr.get(master).copied().filter(|&m| {
                let m_redis = &self.redis[m];
                m_redis.running()
                    && m_redis.role == Role::Master
                    && self.network.connected(Endpoint::Redis(r), Endpoint::Redis(m))
            });
            let link = self.redis[r].link;
            let next = match (link, source) {
                (ReplLink::Down { since }, Some(_)) => {
                    let delay = self.rng.random_range(10_000..300_000);
                    ReplLink::Syncing { up_at: now + delay, down_since: since }
                }
                (ReplLink::Syncing { down_since, .. }, None) => {
                    ReplLink::Down { since: down_since }
                }
                (ReplLink::Syncing { up_at, .. }, Some(_)) if now >= up_at => ReplLink::Up,
                (ReplLink::Up, None) => ReplLink::Down { since: Some(now) },
                (other, _) => other,
            };
            self.redis[r].link = next;
            if let (ReplLink::Up, Some(m)) = (next, source) {
                self.redis[m].acks.insert(r, now);
                let (m_replid, m_offset) = (self.redis[m].replid, self.redis[m].offset);
                // A replica trails a master taking writes by a few milliseconds of them, and
                // catches up once the master takes none.
                let rate = if self.redis[m].writable(now) {
                    self.groups[self.redis[r].group].write_rate
                } else {
                    0
                };
                let me = &mut self.redis[r];
                if me.replid != m_replid || me.offset > m_offset {
                    // A different history, or ahead of it: full resynchronisation, which
                    // replaces the history and forgets the previous one.
                    me.replid = m_replid;
                    me.replid2 = 0;
                    me.second_offset = None;
                    me.offset = m_offset;
                } else {
                    me.offset = me.offset.max(m_offset.saturating_sub(rate * 5));
                }
            }
        }
        self.check_split_brain(g);
    }

    /// Schedules a fault follow-up.
    pub(crate) fn schedule(&mut self, after: Duration, recovery: Recovery) {
        self.queue.push(self.now + duration_us(after), Event::Recover(recovery));
    }

    /// Schedules the first fault tick.
    pub(crate) fn schedule_fault_tick(&mut self, after: Duration) {
        self.queue.push(self.now + duration_us(after), Event::FaultTick);
    }
}

impl Conn {
    fn new(node: usize, link: LinkId, redis: usize) -> Self {
        Self {
            node,
            link,
            redis,
            accepted_by: None,
            closed: false,
            established: false,
            up_last: 0,
            down_last: 0,
            up_held: VecDeque::new(),
            down_held: VecDeque::new(),
            up_pending: 0,
        }
    }
}

/// `d` in microseconds.
#[must_use]
pub fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A Redis run id: 40 hex characters.
fn run_id(rng: &mut ChaCha8Rng) -> String {
    let (a, b, c): (u64, u64, u32) = (rng.random(), rng.random(), rng.random());
    format!("{a:016x}{b:016x}{c:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_converts_both_ways() {
        for clock in [
            Clock { offset_us: 0, drift_ppm: 0 },
            Clock { offset_us: 123_456_789, drift_ppm: 250 },
            Clock { offset_us: 5_000, drift_ppm: -500 },
        ] {
            for local in [0, 1, 999, 12_345, 987_654_321] {
                let g = clock.global_at(local);
                assert!(clock.local_ms(g) >= local);
                assert!(g == 0 || clock.local_ms(g - 1) < local);
            }
        }
    }
}
