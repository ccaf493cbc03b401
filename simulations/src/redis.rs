//! A simulated Redis server: just enough of one for a supervisor to be fooled.
//!
//! It owns one instance's process state (running, stopped with `SIGSTOP`, or dead), its role, its
//! run id (new at every start), its replication history id and offset, and its view of its
//! replication link. It renders `INFO` as real Redis text, which the simulator parses back with
//! Picket's own parser, so every INFO reply exercises `wire::info`.
//!
//! What it does not own: whether its master is reachable (the cluster decides, from the network
//! and the other instances), and its connections (the cluster's links).

use std::collections::VecDeque;
use std::fmt::Write as _;

use std::collections::BTreeMap;

use picket::engine::{Addr, Lease, RedisCommand};

/// The process.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Process {
    /// Serving.
    Running,
    /// Stopped (`SIGSTOP`): connections stay open, nothing is answered until it resumes.
    Paused,
    /// Not running: connections are refused.
    Dead,
}

/// The replication role.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Role {
    /// A master.
    Master,
    /// A replica of the instance at this address.
    Replica(Addr),
}

impl Role {
    /// The master followed, for a replica.
    #[must_use]
    pub const fn master(&self) -> Option<&Addr> {
        match self {
            Self::Master => None,
            Self::Replica(addr) => Some(addr),
        }
    }
}

/// A replica's link to its master.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ReplLink {
    /// Down since then (µs), or never up since the replica was last pointed somewhere.
    Down {
        /// Since when, if it was ever up since the last `REPLICAOF`.
        since: Option<u64>,
    },
    /// Connected and synchronising; up at that instant (µs).
    Syncing {
        /// When the sync completes.
        up_at: u64,
        /// Since when the link was down before (kept for `master_link_down_since_seconds`).
        down_since: Option<u64>,
    },
    /// Up.
    Up,
}

/// A request that arrived while the process was stopped, answered on resume.
#[derive(Clone, Debug)]
pub enum Held {
    /// A connection attempt.
    Connect {
        /// The connection.
        conn: u64,
    },
    /// A command.
    Command {
        /// The connection.
        conn: u64,
        /// The engine's request id.
        request: picket::engine::RequestId,
        /// The command.
        command: RedisCommand,
    },
}

/// One simulated Redis instance.
#[derive(Clone, Debug)]
pub struct Redis {
    /// Its address.
    pub addr: Addr,
    /// Its group (index).
    pub group: usize,
    /// The process state.
    pub process: Process,
    /// Incremented at every start: connections accepted by an earlier process are dead.
    pub generation: u32,
    /// `run_id`, new at every start.
    pub run_id: String,
    /// The role now.
    pub role: Role,
    /// The role as `CONFIG REWRITE` last saved it (what a restart with its config comes back as).
    pub saved_role: Role,
    /// `replica-priority`.
    pub priority: u32,
    /// The replication history id (`master_replid`).
    pub replid: u64,
    /// The history it continued from when it was promoted (`master_replid2`; 0 = none), as
    /// Redis keeps it so that the replicas of its old master can partially resynchronise.
    pub replid2: u64,
    /// The offset at which `replid2` ended, plus one (`second_repl_offset`; -1 in INFO = none).
    pub second_offset: Option<u64>,
    /// The replication offset.
    pub offset: u64,
    /// When `offset` was last brought up to date (µs).
    pub offset_at: u64,
    /// The replication link (replicas only).
    pub link: ReplLink,
    /// Loading its dataset until then (µs): PING answers `-LOADING`.
    pub loading_until: u64,
    /// Requests that arrived while stopped.
    pub inbox: VecDeque<Held>,
    /// A delayed role change is pending until then (µs): later ones queue behind it, because
    /// Redis executes commands in the order they arrive.
    pub reconf_busy_until: u64,
    /// `min-replicas-to-write` / `min-replicas-max-lag` in force.
    pub lease: Lease,
    /// The lease as `CONFIG REWRITE` last saved it (what a restart with its config comes back
    /// with).
    pub saved_lease: Lease,
    /// Writes paused (`CLIENT PAUSE ... WRITE`) until then (µs).
    pub paused_until: u64,
    /// When each replica (by index) last acknowledged it as its master (µs).
    pub acks: BTreeMap<usize, u64>,
    /// It came back from its last restart as a master without a lease (its configuration was
    /// lost, or its lease had been relaxed to nothing because its replicas were gone) and no node
    /// has reconfigured it since: no fence can hold it, and the checker does not count the
    /// second writable master it makes (a node pauses it as soon as it sees it).
    pub came_back_unfenced: bool,
    /// A failover said (`+fence-window`) that, as the old master, it accepts no write after this
    /// instant (µs), until its role next changes.
    pub promised_fenced_by: Option<u64>,
}

impl Redis {
    /// A running instance.
    #[must_use]
    pub fn new(
        addr: Addr,
        group: usize,
        role: Role,
        priority: u32,
        run_id: String,
        replid: u64,
    ) -> Self {
        Self {
            addr,
            group,
            process: Process::Running,
            generation: 1,
            run_id,
            saved_role: role.clone(),
            role,
            priority,
            replid,
            replid2: 0,
            second_offset: None,
            offset: 0,
            offset_at: 0,
            link: ReplLink::Down { since: None },
            loading_until: 0,
            inbox: VecDeque::new(),
            reconf_busy_until: 0,
            lease: Lease::NONE,
            saved_lease: Lease::NONE,
            paused_until: 0,
            acks: BTreeMap::new(),
            came_back_unfenced: false,
            promised_fenced_by: None,
        }
    }

    /// Whether it accepts a write at `now` (µs): a running master, not paused, whose lease (if
    /// any) enough replicas keep. A replica counts while its last acknowledgement is within the
    /// lease's expiry: the longest Redis can take to notice (the worst case, so that the checker
    /// never credits a fence sooner than Redis would close it).
    #[must_use]
    pub fn writable(&self, now: u64) -> bool {
        if !self.running() || self.role != Role::Master || now < self.paused_until {
            return false;
        }
        let needed = usize::try_from(self.lease.min_replicas).unwrap_or(usize::MAX);
        let window = u64::try_from(self.lease.expiry().as_micros()).unwrap_or(u64::MAX);
        needed == 0
            || self.acks.values().filter(|at| now.saturating_sub(**at) <= window).count() >= needed
    }

    /// `CLIENT PAUSE ... WRITE` until `until` (µs): like Redis, a pause never shortens one
    /// already in force (only `CLIENT UNPAUSE` lifts it early).
    pub fn pause_writes(&mut self, until: u64) {
        self.paused_until = self.paused_until.max(until);
    }

    /// Whether it is serving.
    #[must_use]
    pub fn running(&self) -> bool {
        self.process == Process::Running
    }

    /// Whether its replication link is up.
    #[must_use]
    pub const fn link_up(&self) -> bool {
        matches!(self.link, ReplLink::Up)
    }

    /// Applies the write load to a writable master up to `now` (µs): a fenced master refuses
    /// writes, so its offset stands still.
    pub fn take_writes(&mut self, now: u64, rate_per_ms: u64) {
        if self.writable(now) {
            let elapsed_ms = now.saturating_sub(self.offset_at) / 1000;
            self.offset += elapsed_ms * rate_per_ms;
            self.offset_at += elapsed_ms * 1000;
        } else {
            self.offset_at = now;
        }
    }

    /// Becomes a replica of `master` (or a master with `None`), saving it as `CONFIG REWRITE`
    /// would.
    pub fn set_role(&mut self, role: Role, now: u64, new_replid: u64) {
        if role == Role::Master && self.role != Role::Master {
            // A promoted replica starts a new history and remembers the one it continues (it
            // keeps its data and offset), as `REPLICAOF NO ONE` does.
            self.replid2 = self.replid;
            self.second_offset = Some(self.offset + 1);
            self.replid = new_replid;
            self.offset_at = now;
        }
        if role != self.role {
            self.link = ReplLink::Down { since: None };
        }
        self.saved_role = role.clone();
        self.role = role;
        self.saved_lease = self.lease;
        self.came_back_unfenced = false;
        self.promised_fenced_by = None;
        self.acks.clear();
    }

    /// Sets the lease and saves it (the transaction's `CONFIG REWRITE`).
    pub fn set_lease(&mut self, lease: Lease) {
        self.lease = lease;
        self.saved_lease = lease;
    }

    /// Starts the process again: a new run id; with its data (offset and history kept) or
    /// without (offset 0, a new history); with its saved role, or as a master if its
    /// configuration was lost.
    pub fn restart(
        &mut self,
        now: u64,
        run_id: String,
        keep_data: bool,
        keep_config: bool,
        replid: u64,
        loading: u64,
    ) {
        self.process = Process::Running;
        self.generation += 1;
        self.run_id = run_id;
        if !keep_data {
            self.offset = 0;
            self.replid = replid;
        }
        // The previous history is not kept across a restart.
        self.replid2 = 0;
        self.second_offset = None;
        self.offset_at = now;
        self.role = if keep_config { self.saved_role.clone() } else { Role::Master };
        self.saved_role = self.role.clone();
        self.lease = if keep_config { self.saved_lease } else { Lease::NONE };
        self.came_back_unfenced = self.role == Role::Master && self.lease.min_replicas == 0;
        // What a failover promised (`+fence-window`) was about the process it fenced, which was
        // dead meanwhile, so the promise was kept. A restarted process lost any pause: if it
        // comes back writable beside the new master, that is a second master like any other,
        // held to the mode's general bound (a node pauses it as soon as it sees it), not to
        // the window stated for its predecessor (seed 567).
        self.promised_fenced_by = None;
        self.paused_until = 0;
        self.acks.clear();
        self.link = ReplLink::Down { since: None };
        self.loading_until = if keep_data { now + loading } else { now };
        self.inbox.clear();
        self.reconf_busy_until = 0;
    }

    /// The `INFO` text, as Redis 7 prints the sections the engine reads. `replicas` are the
    /// replicas connected to it (address and offset), listed as `slaveN:` lines.
    #[must_use]
    pub fn render_info(&self, now: u64, replicas: &[(Addr, u64)]) -> String {
        let mut s = String::with_capacity(1024);
        let _ = write!(
            s,
            "# Server\r\nredis_version:7.2.4\r\nredis_mode:standalone\r\nrun_id:{}\r\ntcp_port:{}\r\n\
             uptime_in_seconds:{}\r\n\r\n# Persistence\r\nloading:{}\r\n\r\n# Replication\r\n",
            self.run_id,
            self.addr.port(),
            now / 1_000_000,
            u8::from(now < self.loading_until),
        );
        match &self.role {
            Role::Master => {
                let _ = write!(s, "role:master\r\nconnected_slaves:{}\r\n", replicas.len());
                if self.lease.min_replicas > 0 {
                    let window = u64::try_from(self.lease.expiry().as_micros()).unwrap_or(u64::MAX);
                    let good =
                        self.acks.values().filter(|at| now.saturating_sub(**at) <= window).count();
                    let _ = write!(s, "min_slaves_good_slaves:{good}\r\n");
                }
                for (i, (addr, offset)) in replicas.iter().enumerate() {
                    let _ = write!(
                        s,
                        "slave{i}:ip={},port={},state=online,offset={offset},lag=0\r\n",
                        addr.host(),
                        addr.port()
                    );
                }
            }
            Role::Replica(master) => {
                let status = if self.link_up() { "up" } else { "down" };
                let _ = write!(
                    s,
                    "role:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{status}\r\n\
                     master_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\n\
                     slave_read_repl_offset:{}\r\nslave_repl_offset:{}\r\n",
                    master.host(),
                    master.port(),
                    if self.link_up() { 0 } else { -1 },
                    u8::from(matches!(self.link, ReplLink::Syncing { .. })),
                    self.offset,
                    self.offset,
                );
                let down_since = match self.link {
                    ReplLink::Up => None,
                    ReplLink::Down { since } | ReplLink::Syncing { down_since: since, .. } => {
                        Some(since)
                    }
                };
                match down_since {
                    None => {}
                    Some(None) => s.push_str("master_link_down_since_seconds:-1\r\n"),
                    Some(Some(at)) => {
                        let _ = write!(
                            s,
                            "master_link_down_since_seconds:{}\r\n",
                            now.saturating_sub(at) / 1_000_000
                        );
                    }
                }
                let _ = write!(
                    s,
                    "slave_priority:{}\r\nslave_read_only:1\r\nreplica_announced:1\r\nconnected_slaves:0\r\n",
                    self.priority
                );
            }
        }
        let _ = write!(
            s,
            "master_failover_state:no-failover\r\nmaster_replid:{:040x}\r\n\
             master_replid2:{:040x}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\n\
             repl_backlog_active:1\r\n",
            self.replid,
            self.replid2,
            self.offset,
            self.second_offset.map_or(-1, |o| i64::try_from(o).unwrap_or(i64::MAX)),
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use picket::engine::ReportedRole;
    use picket::wire::info::parse_info;

    use super::*;

    fn addr(s: &str) -> Addr {
        s.parse().unwrap()
    }

    #[test]
    fn rendered_info_parses_back_to_what_the_model_holds() {
        let mut m = Redis::new(addr("10.0.1.1:6379"), 0, Role::Master, 100, "a".repeat(40), 1);
        m.offset = 4200;
        let report =
            parse_info(&m.render_info(5_000_000, &[(addr("10.0.1.2:6379"), 4100)])).unwrap();
        assert_eq!(report.role, ReportedRole::Master);
        assert_eq!(report.run_id.as_deref(), Some(&*"a".repeat(40)));
        assert_eq!(report.master_repl_offset, 4200);
        assert_eq!(report.replicas.len(), 1);
        assert_eq!(report.replicas[0].addr, addr("10.0.1.2:6379"));

        let mut r = Redis::new(
            addr("10.0.1.2:6379"),
            0,
            Role::Replica(addr("10.0.1.1:6379")),
            0,
            "b".repeat(40),
            1,
        );
        r.offset = 4100;
        r.link = ReplLink::Down { since: Some(1_000_000) };
        let report = parse_info(&r.render_info(4_000_000, &[])).unwrap();
        assert_eq!(report.replica_priority, 0);
        let ReportedRole::Replica(link) = report.role else { panic!("not a replica") };
        assert_eq!(link.master, Some(addr("10.0.1.1:6379")));
        assert!(!link.link_up);
        assert_eq!(link.link_down_for, Some(std::time::Duration::from_secs(3)));
        assert_eq!(link.repl_offset, 4100);
    }
}
