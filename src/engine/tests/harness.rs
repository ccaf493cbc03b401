//! A harness for engine scenario tests: virtual time, a recorded output log, and a minimal model
//! of Redis instances that answers the engine's link outputs.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::addr::Addr;
use crate::engine::durable::DurableState;
use crate::engine::gossip::{Body, PeerMessage};
use crate::engine::ids::LinkId;
use crate::engine::io::{Input, LinkFailure, Output, RedisCommand, Reply};
use crate::engine::report::{InfoReport, ListedReplica, ReportedRole};
use crate::engine::settings::{MasterSettings, NodeSettings, Settings};
use crate::engine::supervisor::Supervisor;
use crate::engine::time::Instant;

pub(crate) fn addr(s: &str) -> Addr {
    s.parse().unwrap()
}

/// A node at 127.0.0.1:26380 with `peers` and one master `mymaster` at 127.0.0.1:6379
/// (down_after 1000 ms, failover timeout 10 s, quorum `quorum`).
pub(crate) fn settings(peers: &[&str], quorum: u32) -> Settings {
    let mut master = MasterSettings::new("mymaster", addr("127.0.0.1:6379"), quorum);
    master.down_after = Duration::from_millis(1000);
    master.failover_timeout = Duration::from_millis(10_000);
    // Sentinel's behaviour, so that sequences compare with Sentinel's; fencing and the crash
    // rule have their own tests.
    master.fencing = crate::engine::fence::Fencing::Off;
    master.down_after_refused = None;
    Settings {
        node: NodeSettings::new(
            addr("127.0.0.1:26380"),
            addr("127.0.0.1:26379"),
            peers.iter().map(|p| addr(p)).collect(),
        ),
        masters: vec![master],
    }
}

/// The replication history the standard group's instances share.
pub(crate) const HISTORY: &str = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0";

/// A Redis instance as the harness models it.
#[derive(Clone, Debug)]
pub(crate) struct Fake {
    /// Accepts connections and answers.
    pub up: bool,
    /// Process stopped: accepts nothing new, answers nothing.
    pub hung: bool,
    pub run_id: String,
    /// `None` = master.
    pub master_of: Option<Addr>,
    pub priority: u32,
    pub offset: u64,
    /// `master_replid`: every instance of the standard group shares the master's history.
    pub replid: String,
    /// `master_replid2`: the history a promoted replica continued from.
    pub replid2: Option<String>,
    /// Acknowledges `REPLICAOF` but never changes role (a stuck or misbehaving server).
    pub ignores_replicaof: bool,
    /// Refuses `CONFIG` (renamed or denied, as managed services do): its lease can be neither
    /// read nor set.
    pub refuses_config: bool,
    /// `min-replicas-to-write` / `min-replicas-max-lag`.
    pub lease: crate::engine::fence::Lease,
    /// Writes paused (`CLIENT PAUSE ... WRITE`), until lifted.
    pub paused: bool,
    /// `master_link_down_since_seconds` while its link to its master is down, if Redis would
    /// print one.
    pub link_down_for: Option<Duration>,
}

impl Fake {
    pub(crate) fn master(run_id: &str) -> Self {
        Self {
            up: true,
            hung: false,
            run_id: run_id.into(),
            master_of: None,
            priority: 100,
            offset: 100,
            replid: HISTORY.into(),
            replid2: None,
            ignores_replicaof: false,
            refuses_config: false,
            lease: crate::engine::fence::Lease::NONE,
            paused: false,
            link_down_for: None,
        }
    }

    pub(crate) fn replica(run_id: &str, master: &str) -> Self {
        Self { master_of: Some(addr(master)), ..Self::master(run_id) }
    }

    /// `REPLICAOF NO ONE`: a new history, the old one kept as the second.
    pub(crate) fn promote(&mut self) {
        self.master_of = None;
        self.replid2 = Some(std::mem::replace(&mut self.replid, format!("{}-own", self.run_id)));
    }
}

pub(crate) struct Harness {
    pub sup: Supervisor,
    pub now: Instant,
    /// Outputs not yet taken by the test.
    pub log: Vec<Output>,
    /// The modelled instances, by address.
    pub redis: BTreeMap<Addr, Fake>,
    /// Open links: which instance each belongs to.
    links: BTreeMap<LinkId, Addr>,
    /// Every link ever opened, and its instance (for rendering outputs taken late).
    opened: BTreeMap<LinkId, Addr>,
    /// Whether link outputs are answered automatically.
    pub serve: bool,
    /// Outputs addressed to hung instances, answered when they resume.
    held: Vec<(Addr, Output)>,
}

impl Harness {
    /// An engine started at time 0 (seed 42) beside the modelled instances `redis`.
    pub(crate) fn new(
        settings: Settings,
        state: Option<DurableState>,
        redis: BTreeMap<Addr, Fake>,
    ) -> Self {
        let sup = Supervisor::new(settings, state, 42, Instant::ZERO);
        let mut h = Self {
            sup,
            now: Instant::ZERO,
            log: Vec::new(),
            redis,
            links: BTreeMap::new(),
            opened: BTreeMap::new(),
            serve: true,
            held: Vec::new(),
        };
        h.drain();
        h
    }

    /// The standard group: master 6379 with replicas 6380 and 6381.
    pub(crate) fn group() -> BTreeMap<Addr, Fake> {
        BTreeMap::from([
            (addr("127.0.0.1:6379"), Fake::master("m")),
            (addr("127.0.0.1:6380"), Fake::replica("r1", "127.0.0.1:6379")),
            (addr("127.0.0.1:6381"), Fake::replica("r2", "127.0.0.1:6379")),
        ])
    }

    /// An engine beside the standard group.
    pub(crate) fn with_group(settings: Settings) -> Self {
        Self::new(settings, None, Self::group())
    }

    pub(crate) fn handle(&mut self, input: Input) {
        self.sup.handle(self.now, input);
        self.drain();
    }

    fn drain(&mut self) {
        let mut pending: Vec<Output> = std::iter::from_fn(|| self.sup.poll_output()).collect();
        while !pending.is_empty() {
            let mut replies = Vec::new();
            for output in &pending {
                if self.serve {
                    replies.extend(self.answer(output));
                }
            }
            self.log.append(&mut pending);
            for input in replies {
                self.sup.handle(self.now, input);
                pending.extend(std::iter::from_fn(|| self.sup.poll_output()));
            }
        }
    }

    /// The modelled instance's answer to a link output, if it answers at once.
    fn answer(&mut self, output: &Output) -> Option<Input> {
        match output {
            Output::Connect { link, addr, .. } => {
                let fake = self.redis.get(addr);
                if fake.is_some_and(|f| f.up && f.hung) {
                    self.held.push((addr.clone(), output.clone()));
                    None
                } else if fake.is_some_and(|f| f.up) {
                    self.links.insert(*link, addr.clone());
                    self.opened.insert(*link, addr.clone());
                    Some(Input::LinkUp { link: *link, resolved: Some(addr.host().to_owned()) })
                } else {
                    Some(Input::LinkDown {
                        link: *link,
                        reason: "refused".into(),
                        failure: LinkFailure::Refused,
                    })
                }
            }
            Output::Disconnect { link } => {
                self.links.remove(link);
                self.held.retain(|(_, o)| !matches!(o, Output::Send { link: l, .. } if l == link));
                None
            }
            Output::Send { link, request, command } => {
                let addr = self.links.get(link)?.clone();
                let fake = self.redis.get_mut(&addr)?;
                if !fake.up {
                    self.links.remove(link);
                    return Some(Input::LinkDown {
                        link: *link,
                        reason: "closed".into(),
                        failure: LinkFailure::Other,
                    });
                }
                if fake.hung {
                    self.held.push((addr, output.clone()));
                    return None;
                }
                let reply = match command {
                    RedisCommand::Ping => Reply::Pong,
                    RedisCommand::Info => Reply::Info(Box::new(self.info_of(&addr))),
                    RedisCommand::Promote { lease, writes } => {
                        if !fake.ignores_replicaof && fake.master_of.is_some() {
                            fake.promote();
                        }
                        if let Some(lease) = lease {
                            fake.lease = *lease;
                        }
                        match writes {
                            crate::engine::io::PromotedWrites::Untouched => {}
                            crate::engine::io::PromotedWrites::Released => fake.paused = false,
                            crate::engine::io::PromotedWrites::Paused(_) => fake.paused = true,
                        }
                        Reply::Done
                    }
                    RedisCommand::ReadLease | RedisCommand::SetLease(_) if fake.refuses_config => {
                        Reply::Error("ERR unknown command 'CONFIG'".into())
                    }
                    RedisCommand::ReadLease => Reply::Lease(fake.lease),
                    RedisCommand::SetLease(lease) => {
                        fake.lease = *lease;
                        Reply::Done
                    }
                    RedisCommand::Fence { .. } | RedisCommand::PauseWrites { .. } => {
                        fake.paused = true;
                        Reply::Done
                    }
                    RedisCommand::UnpauseWrites => {
                        fake.paused = false;
                        Reply::Done
                    }
                    RedisCommand::ReplicaOf { master } => {
                        if !fake.ignores_replicaof {
                            fake.master_of = Some(master.clone());
                        }
                        Reply::Done
                    }
                };
                Some(Input::Replied { link: *link, request: *request, reply })
            }
            _ => None,
        }
    }

    fn info_of(&self, addr: &Addr) -> InfoReport {
        let fake = &self.redis[addr];
        let mut report = match &fake.master_of {
            None => {
                InfoReport { master_repl_offset: fake.offset, ..InfoReport::master(&fake.run_id) }
            }
            Some(m) => {
                let mut r = InfoReport::replica(&fake.run_id, m.clone(), fake.offset);
                if let ReportedRole::Replica(link) = &mut r.role {
                    link.link_up =
                        self.redis.get(m).is_some_and(|f| f.up && !f.hung && f.master_of.is_none());
                    if !link.link_up {
                        link.link_down_for = fake.link_down_for;
                    }
                }
                r
            }
        };
        report.replica_priority = fake.priority;
        report.raw = std::sync::Arc::from(format!("run_id:{}", fake.run_id));
        report.replid = Some(fake.replid.clone());
        report.replid2.clone_from(&fake.replid2);
        if fake.master_of.is_none() {
            report.replicas = self
                .redis
                .iter()
                .filter(|(_, f)| f.up && f.master_of.as_ref() == Some(addr))
                .map(|(a, f)| ListedReplica {
                    addr: a.clone(),
                    state: "online".into(),
                    offset: f.offset,
                    lag: Some(0),
                })
                .collect();
        }
        report
    }

    /// Stops the instance at `addr` (`SIGSTOP`): it answers nothing until resumed.
    pub(crate) fn hang(&mut self, addr_text: &str) {
        self.redis.get_mut(&addr(addr_text)).unwrap().hung = true;
    }

    /// Resumes the instance at `addr` (`SIGCONT`): everything sent to it meanwhile is answered.
    pub(crate) fn resume(&mut self, addr_text: &str) {
        let a = addr(addr_text);
        self.redis.get_mut(&a).unwrap().hung = false;
        let (mine, others): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.held).into_iter().partition(|(h, _)| *h == a);
        self.held = others;
        let replies: Vec<Input> = mine.iter().filter_map(|(_, o)| self.answer(o)).collect();
        for input in replies {
            self.handle(input);
        }
    }

    /// Kills the instance at `addr` (`SIGKILL`): open links are closed (the kernel sends FIN
    /// for the dead process), new connections are refused.
    pub(crate) fn kill(&mut self, addr_text: &str) {
        let a = addr(addr_text);
        self.redis.get_mut(&a).unwrap().up = false;
        self.held.retain(|(h, _)| *h != a);
        let broken: Vec<LinkId> =
            self.links.iter().filter(|(_, l)| **l == a).map(|(id, _)| *id).collect();
        for link in broken {
            self.links.remove(&link);
            self.handle(Input::LinkDown {
                link,
                reason: "connection closed".into(),
                failure: LinkFailure::Other,
            });
        }
    }

    /// Restarts the instance at `addr` with a new run id (and as a master, as a restarted Redis
    /// without `replicaof` in its configuration would be).
    pub(crate) fn restart(&mut self, addr_text: &str, run_id: &str, as_replica_of: Option<&str>) {
        let fake = self.redis.get_mut(&addr(addr_text)).unwrap();
        fake.up = true;
        fake.hung = false;
        fake.run_id = run_id.into();
        fake.master_of = as_replica_of.map(addr);
    }

    /// Advances virtual time to `ms`, handling every deadline on the way.
    pub(crate) fn advance_to(&mut self, ms: u64) {
        let target = Instant::from_millis(ms);
        while let Some(at) = self.sup.poll_timeout() {
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            self.handle(Input::Tick);
        }
        self.now = target;
    }

    /// Advances to `to` a millisecond at a time and returns when a PING went to the instance at
    /// `addr_text`; outputs not yet taken count as sent now (all outputs are taken).
    pub(crate) fn ping_times(&mut self, addr_text: &str, to: u64) -> Vec<u64> {
        let a = addr(addr_text);
        let mut times = Vec::new();
        for t in self.now.as_millis()..=to {
            self.advance_to(t);
            for output in self.take() {
                if let Output::Send { link, command: RedisCommand::Ping, .. } = output
                    && self.opened.get(&link) == Some(&a)
                {
                    times.push(t);
                }
            }
        }
        times
    }

    /// Advances by `ms`.
    pub(crate) fn advance(&mut self, ms: u64) {
        let to = self.now.as_millis() + ms;
        self.advance_to(to);
    }

    /// Takes the recorded outputs.
    pub(crate) fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.log)
    }

    /// Takes the recorded events, rendered as `channel payload`.
    pub(crate) fn events(&mut self) -> Vec<String> {
        self.take()
            .into_iter()
            .filter_map(|o| match o {
                Output::Emit(e) => Some(e.to_string()),
                _ => None,
            })
            .collect()
    }
}

/// A compact, readable rendering of an output, for exact-sequence assertions.
pub(crate) fn render(output: &Output) -> String {
    match output {
        Output::Persist(state) => {
            let votes: Vec<String> = state
                .masters
                .values()
                .map(|m| {
                    let who = m.voted_for.map_or_else(|| "-".to_owned(), |id| id.short());
                    format!("voted={who}@{} config={}@{}", m.voted_epoch, m.addr, m.config_epoch)
                })
                .collect();
            format!("persist epoch={} {}", state.current_epoch, votes.join(" "))
        }
        Output::Emit(event) => format!("emit {event}"),
        Output::SendPeer { to, message } => format!("peer{} {}", to.0, render_body(&message.body)),
        Output::Send { command, .. } => format!("redis {command:?}"),
        Output::Connect { addr, .. } => format!("connect {addr}"),
        Output::Disconnect { .. } => "disconnect".to_owned(),
        Output::Answer { answer, .. } => format!("answer {answer:?}"),
        Output::AskSentinel { sentinel, epoch, candidate, .. } => {
            let who = candidate.map_or_else(|| "*".to_owned(), |id| id.short());
            format!("ask-sentinel {sentinel} {epoch} {who}")
        }
    }
}

fn render_body(body: &Body) -> String {
    match body {
        Body::Heartbeat { .. } => "heartbeat".to_owned(),
        Body::State { base, masters, .. } => {
            let kind = if base.is_some() { "delta" } else { "full" };
            let reports: Vec<String> = masters
                .iter()
                .map(|r| {
                    format!(
                        "{} {} cfg={} sdown={} voted={} failover={}",
                        r.name,
                        r.addr,
                        r.config_epoch,
                        r.sdown,
                        r.voted_epoch,
                        r.failover.map_or_else(
                            || "-".to_owned(),
                            |f| format!("{}/{}", f.epoch, f.elected)
                        )
                    )
                })
                .collect();
            format!("state-{kind} [{}]", reports.join("; "))
        }
        Body::SyncRequest => "sync-request".to_owned(),
        Body::VoteRequest { master, epoch, config_epoch, manual } => {
            format!("vote-request {master} e={epoch} cfg={config_epoch} manual={manual}")
        }
        Body::VoteReply { master, epoch, voted_for } => format!(
            "vote-reply {master} e={epoch} for={}",
            voted_for.map_or_else(|| "-".to_owned(), |id| id.short())
        ),
    }
}

/// The id of fake peer `n` (its bytes are all `n`).
pub(crate) fn peer_id(n: u8) -> crate::engine::ids::NodeId {
    crate::engine::ids::NodeId::from_bytes([n; 20])
}

/// A message from fake peer `n` (slot `n - 1`, at 127.0.0.`n+1`) with `epoch` as its current epoch.
pub(crate) fn from_peer(n: u8, epoch: u64, body: Body) -> Input {
    Input::Peer(PeerMessage {
        from: crate::engine::gossip::Sender {
            node_id: peer_id(n),
            announce: addr(&format!("127.0.0.{}:26380", n + 1)),
            client_addr: addr(&format!("127.0.0.{}:26379", n + 1)),
            current_epoch: epoch,
        },
        body,
    })
}

/// A report about `mymaster` at `master`.
pub(crate) fn report(
    master: &str,
    config_epoch: u64,
    sdown: bool,
    voted_epoch: u64,
) -> crate::engine::gossip::MasterReport {
    crate::engine::gossip::MasterReport {
        name: "mymaster".into(),
        addr: addr(master),
        config_epoch,
        sdown,
        voted_epoch,
        failover: None,
        down_replicas: Vec::new(),
        maintenance: crate::engine::gossip::Maintenance::default(),
        lease_set: None,
    }
}

/// A complete state from peer `n`, version `seq` of incarnation `n`.
pub(crate) fn full_state(
    n: u8,
    epoch: u64,
    seq: u64,
    reports: Vec<crate::engine::gossip::MasterReport>,
) -> Input {
    let version = crate::engine::gossip::StateVersion { incarnation: u64::from(n), seq };
    from_peer(n, epoch, Body::State { base: None, version, masters: reports })
}

/// Restored state for a node that has run before (so it may vote at once).
pub(crate) fn known_node(id: u8) -> DurableState {
    DurableState {
        node_id: crate::engine::ids::NodeId::from_bytes([id; 20]),
        current_epoch: 0,
        vote_floor: 0,
        awaiting_vote_floor: false,
        masters: BTreeMap::new(),
        removed: BTreeMap::new(),
        known_peers: BTreeMap::new(),
    }
}

/// A node that has run before beside the standard group: its state knows `mymaster` at 6379
/// with replicas 6380 and 6381 (a node restarted from disk, which learns nothing from a master
/// that is dead or hung).
pub(crate) fn known_group_node(id: u8) -> DurableState {
    let mut state = known_node(id);
    state.masters.insert(
        "mymaster".into(),
        crate::engine::durable::DurableMaster {
            configured_addr: addr("127.0.0.1:6379"),
            addr: addr("127.0.0.1:6379"),
            config_epoch: 0,
            voted_epoch: 0,
            voted_for: None,
            replicas: vec![addr("127.0.0.1:6380"), addr("127.0.0.1:6381")],
            history: None,
            priorities: BTreeMap::new(),
            maintenance: crate::engine::gossip::Maintenance::default(),
            monitored_quorum: None,
            settings: BTreeMap::new(),
        },
    );
    state
}

/// Peer slot addresses used by the scenario tests (fake peers 1 and 2).
pub(crate) const PEERS: &[&str] = &["127.0.0.2:26380", "127.0.0.3:26380"];

impl Harness {
    /// Advances to `to`, with both fake peers sending `reports` (a complete state) every 250 ms so
    /// they stay fresh.
    pub(crate) fn advance_with_peers(
        &mut self,
        to: u64,
        reports: &[crate::engine::gossip::MasterReport],
    ) {
        self.advance_hearing(to, &[(1, reports), (2, reports)]);
    }

    /// Advances to `to` with fake peer `n` alone sending `reports` (a complete state) every
    /// 250 ms: the other peer is silent.
    pub(crate) fn advance_with_peer(
        &mut self,
        n: u8,
        to: u64,
        reports: &[crate::engine::gossip::MasterReport],
    ) {
        self.advance_hearing(to, &[(n, reports)]);
    }

    /// Advances to `to`, each fake peer listed sending its reports (a complete state) every
    /// 250 ms; a peer not listed is silent.
    pub(crate) fn advance_hearing(
        &mut self,
        to: u64,
        peers: &[(u8, &[crate::engine::gossip::MasterReport])],
    ) {
        let mut t = self.now.as_millis();
        while t < to {
            t = (t + 250).min(to);
            self.advance_to(t);
            for (peer, reports) in peers {
                let epoch = self.sup.view().current_epoch;
                self.handle(full_state(*peer, epoch, t + 1_000_000, reports.to_vec()));
            }
        }
    }

    /// Takes the recorded outputs and renders the pauses among them (`CLIENT PAUSE` with or
    /// without disconnecting clients, `CLIENT UNPAUSE`, a promotion) as `port command`.
    pub(crate) fn pauses(&mut self) -> Vec<String> {
        let outputs = self.take();
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Send { link, command, .. }
                    if matches!(
                        command,
                        RedisCommand::Fence { .. }
                            | RedisCommand::PauseWrites { .. }
                            | RedisCommand::UnpauseWrites
                            | RedisCommand::Promote { .. }
                    ) =>
                {
                    let port = self.opened.get(link).map_or(0, Addr::port);
                    Some(format!("{port} {command:?}"))
                }
                _ => None,
            })
            .collect()
    }

    /// The node's report about `mymaster` now, as it answers peer 2's request for its state
    /// (outputs recorded before are dropped).
    pub(crate) fn current_report(&mut self) -> crate::engine::gossip::MasterReport {
        self.take();
        let epoch = self.sup.view().current_epoch;
        self.handle(from_peer(2, epoch, Body::SyncRequest));
        last_report(&self.take()).expect("a state sent to peer 2")
    }

    /// Renders and takes the recorded outputs.
    pub(crate) fn rendered(&mut self) -> Vec<String> {
        self.take().iter().map(render).collect()
    }
}

/// The last report about `mymaster` among the states in `outputs` sent to peers.
fn last_report(outputs: &[Output]) -> Option<crate::engine::gossip::MasterReport> {
    outputs.iter().rev().find_map(|o| match o {
        Output::SendPeer { message, .. } => match &message.body {
            Body::State { masters, .. } => masters.iter().find(|r| r.name == "mymaster").cloned(),
            _ => None,
        },
        _ => None,
    })
}

/// A node that has run before (so it may vote), with both peers heard at t=0 seeing the master
/// up, and the master hung from 399 ms (before its PING of 400): SDOWN at 1401. Outputs so far
/// are taken.
pub(crate) fn master_hung(quorum: u32) -> Harness {
    master_hung_with(quorum, Harness::group())
}

/// [`master_hung`] beside the given instances.
pub(crate) fn master_hung_with(quorum: u32, redis: BTreeMap<Addr, Fake>) -> Harness {
    let mut h = Harness::new(settings(PEERS, quorum), Some(known_node(9)), redis);
    h.handle(full_state(1, 0, 1, vec![report("127.0.0.1:6379", 0, false, 0)]));
    h.handle(full_state(2, 0, 1, vec![report("127.0.0.1:6379", 0, false, 0)]));
    // Hung just before the PING of 400 reached it: down strictly after 1400.
    h.advance_to(399);
    h.hang("127.0.0.1:6379");
    h.advance_to(1401);
    h.take();
    h
}

/// A vote request from fake peer `peer`.
pub(crate) fn vote_request(peer: u8, epoch: u64, config_epoch: u64, manual: bool) -> Input {
    let body = Body::VoteRequest { master: "mymaster".into(), epoch, config_epoch, manual };
    from_peer(peer, epoch, body)
}

/// Fake peer `peer`'s vote for `candidate` in `epoch`.
pub(crate) fn vote_for(peer: u8, epoch: u64, candidate: crate::engine::ids::NodeId) -> Input {
    let body = Body::VoteReply { master: "mymaster".into(), epoch, voted_for: Some(candidate) };
    from_peer(peer, epoch, body)
}
