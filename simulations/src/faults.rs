//! Fault injection: which faults strike, when, and how they end.
//!
//! Every [`FAULT_TICK`] of simulation time, each enabled fault kind strikes with the probability
//! that gives it its configured mean interval (see [`crate::options::FaultOptions`]). A fault
//! schedules its own end (a [`Recovery`]) when it strikes; a recovery whose subject has moved on
//! (a process restarted meanwhile, a partition already healed) does nothing. [`Simulation::heal`]
//! ends everything at once for the liveness phase.
//!
//! Faults aimed at "the master" pick an instance that currently reports `role:master`, so they
//! follow failovers around.

use std::time::Duration;

use rand::RngExt;

use crate::cluster::{Recovery, Simulation, duration_us};
use crate::network::{Cut, Endpoint, Network};
use crate::redis::{Process, Role};

/// Faults start this long after they are switched on.
pub const WARM_UP: Duration = Duration::from_millis(2000);

/// How often faults are considered.
pub const FAULT_TICK: Duration = Duration::from_millis(250);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Simulation {
    /// Starts injecting faults (from now on) or stops.
    pub fn set_faults(&mut self, on: bool) {
        if on && !self.faults_on {
            // Let the nodes see the healthy deployment first (discover the replicas), as a real
            // deployment would before anything goes wrong.
            self.schedule_fault_tick(WARM_UP);
        }
        self.faults_on = on;
    }

    /// Whether `rate` (a mean interval) strikes this tick.
    fn strikes(&mut self, rate: Option<Duration>) -> bool {
        rate.is_some_and(|mean| {
            let p = (FAULT_TICK.as_secs_f64() / mean.as_secs_f64().max(0.001)).min(1.0);
            self.rng.random_bool(p)
        })
    }

    fn random_range_ms(&mut self, lo: u64, hi: u64) -> Duration {
        ms(self.rng.random_range(lo..=hi))
    }

    pub(crate) fn fault_tick(&mut self) {
        if !self.faults_on {
            return;
        }
        self.schedule_fault_tick(FAULT_TICK);
        self.check_progress();
        let f = self.options.faults.clone();
        if self.strikes(f.node_crash) {
            self.inject_node_crash();
        }
        if self.strikes(f.short_stall) {
            let i = self.rng.random_range(0..self.nodes.len());
            let d = self.random_range_ms(10, 500);
            self.stats.faults += 1;
            self.stall_node(i, d);
        }
        if self.strikes(f.mass_kill) {
            self.inject_mass_kill();
        }
        if self.strikes(f.node_stall) {
            let i = self.rng.random_range(0..self.nodes.len());
            let d = self.random_range_ms(2000, 5000);
            self.stats.faults += 1;
            self.stall_node(i, d);
        }
        if self.strikes(f.clock_jump) {
            let i = self.rng.random_range(0..self.nodes.len());
            let jump = if self.rng.random_bool(0.9) {
                self.rng.random_range(2000..=5000)
            } else {
                -self.rng.random_range(500..=2000)
            };
            self.stats.faults += 1;
            self.jump_clock(i, jump);
        }
        if self.strikes(f.redis_kill) {
            self.inject_redis_kill();
        }
        if self.strikes(f.redis_pause) {
            let r = self.pick_redis();
            let d = self.random_range_ms(500, 10_000);
            self.stats.faults += 1;
            let generation = self.redis[r].generation;
            self.pause_redis(r);
            self.schedule(d, Recovery::ResumeRedis { redis: r, generation });
        }
        if self.strikes(f.redis_flap) {
            let r = self.pick_redis();
            let remaining = self.rng.random_range(6..=12);
            self.stats.faults += 1;
            let label = self.redis_label(r);
            self.trace.line(self.now, &"fault", || format!("{label} starts flapping"));
            self.recover(Recovery::Flap { redis: r, remaining });
        }
        if self.strikes(f.partition_master) {
            self.inject_master_partition();
        }
        if self.strikes(f.partition_node) {
            self.inject_node_partition();
        }
        if self.nodes.len() >= 3 && self.strikes(f.partition_minority) {
            self.inject_minority_partition();
        }
        if self.strikes(f.partition_link) {
            self.inject_link_partition();
        }
        if self.strikes(f.manual_failover) {
            let i = self.rng.random_range(0..self.nodes.len());
            let g = self.rng.random_range(0..self.groups.len());
            let name = self.groups[g].name.clone();
            self.stats.faults += 1;
            self.admin_failover(i, &name);
        }
    }

    /// An instance to hurt: usually one reporting `role:master` (the current master, or one of
    /// several), else any.
    fn pick_redis(&mut self) -> usize {
        let g = self.rng.random_range(0..self.groups.len());
        let members = self.groups[g].members.clone();
        let masters: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&r| {
                self.redis[r].role == Role::Master && self.redis[r].process != Process::Dead
            })
            .collect();
        if !masters.is_empty() && self.rng.random_bool(0.7) {
            return masters[self.rng.random_range(0..masters.len())];
        }
        members[self.rng.random_range(0..members.len())]
    }

    /// Whether node `i` may lose its disk without losing what the cluster knows: another node's
    /// disk must hold every master's config epoch at least as high as its own, and know every
    /// instance it knows. (If every copy of the newest configuration were lost, no supervisor
    /// could know where the master is; if every copy of an instance's address were lost, an old
    /// master that comes back would be a master no supervisor can see, as for Sentinel: both are
    /// an operator's disaster, not a protocol bug. Seed 5002628 lost every node's disk in turn
    /// and left such a master behind.) Likewise another node's disk must hold an epoch at least
    /// as high as this one's: a node that lost its state learns its vote floor from the others'
    /// epochs, and if every copy of an epoch it voted in were lost (its candidate lost its disk
    /// too), no protocol could tell it had voted; durable votes on a majority are what any
    /// consensus rests on (seed 9336948: the voter and the candidate of epoch 3 both lost their
    /// disks, and the voter granted epoch 3 again).
    fn disk_loss_allowed(&self, i: usize) -> bool {
        let Some(mine) = &self.nodes[i].disk else { return true };
        let epoch_kept = self.nodes.iter().enumerate().any(|(j, other)| {
            j != i && other.disk.as_ref().is_some_and(|d| d.current_epoch >= mine.current_epoch)
        });
        epoch_kept
            && mine.masters.iter().all(|(name, m)| {
                let known = || std::iter::once(&m.addr).chain(&m.replicas);
                self.nodes.iter().enumerate().any(|(j, other)| {
                    let Some(o) = other.disk.as_ref().and_then(|d| d.masters.get(name)) else {
                        return false;
                    };
                    let theirs = |a: &picket::engine::Addr| o.addr == *a || o.replicas.contains(a);
                    j != i && o.config_epoch >= m.config_epoch && known().all(theirs)
                })
            })
    }

    fn inject_node_crash(&mut self) {
        let i = self.rng.random_range(0..self.nodes.len());
        if self.nodes[i].engine.is_none() {
            return;
        }
        self.stats.faults += 1;
        let f = &self.options.faults;
        let (disk_loss, mid_batch) = (f.disk_loss, f.crash_mid_batch);
        let keep_disk =
            !(disk_loss > 0.0 && self.rng.random_bool(disk_loss) && self.disk_loss_allowed(i));
        let restart_after = duration_us(self.random_range_ms(500, 10_000));
        if mid_batch > 0.0 && self.rng.random_bool(mid_batch) {
            let after = self.rng.random_range(0..6);
            self.trace.line(self.now, &"fault", || {
                format!("n{i} will crash after {after} outputs of its next batch")
            });
            self.arm_crash(i, after, keep_disk, Some(restart_after));
        } else {
            self.arm_crash(i, 0, keep_disk, Some(restart_after));
            self.crash_node(i, keep_disk);
        }
    }

    fn inject_redis_kill(&mut self) {
        let r = self.pick_redis();
        if self.redis[r].process == Process::Dead {
            return;
        }
        self.stats.faults += 1;
        let f = &self.options.faults;
        let (empty, as_master) = (f.restart_empty, f.restart_as_master);
        let keep_data = !(empty > 0.0 && self.rng.random_bool(empty));
        let keep_config = !(as_master > 0.0 && self.rng.random_bool(as_master));
        let d = self.random_range_ms(500, 15_000);
        self.kill_redis(r);
        let generation = self.redis[r].generation;
        self.schedule(d, Recovery::RestartRedis { redis: r, generation, keep_data, keep_config });
    }

    /// Every instance reporting `role:master`, in every group, dies in the same instant (the host
    /// that carried them died); each restarts later.
    fn inject_mass_kill(&mut self) {
        let masters: Vec<usize> = (0..self.redis.len())
            .filter(|&r| {
                self.redis[r].role == Role::Master && self.redis[r].process != Process::Dead
            })
            .collect();
        if masters.is_empty() {
            return;
        }
        self.stats.faults += 1;
        self.trace.line(self.now, &"fault", || format!("{} masters die at once", masters.len()));
        let f = &self.options.faults;
        let (empty, as_master) = (f.restart_empty, f.restart_as_master);
        let d = self.random_range_ms(2000, 15_000);
        for r in masters {
            let keep_data = !(empty > 0.0 && self.rng.random_bool(empty));
            let keep_config = !(as_master > 0.0 && self.rng.random_bool(as_master));
            self.kill_redis(r);
            let generation = self.redis[r].generation;
            self.schedule(
                d,
                Recovery::RestartRedis { redis: r, generation, keep_data, keep_config },
            );
        }
    }

    fn all_endpoints(&self) -> Vec<Endpoint> {
        (0..self.nodes.len())
            .map(Endpoint::Node)
            .chain((0..self.redis.len()).map(Endpoint::Redis))
            .collect()
    }

    fn cut(&mut self) -> Cut {
        if self.rng.random_bool(0.8) { Cut::Drop } else { Cut::Reject }
    }

    fn inject_master_partition(&mut self) {
        let r = self.pick_redis();
        let others: Vec<Endpoint> =
            self.all_endpoints().into_iter().filter(|e| *e != Endpoint::Redis(r)).collect();
        let cut = self.cut();
        let label = format!("isolate {} ({cut:?})", self.redis_label(r));
        let d = self.random_range_ms(1000, 15_000);
        self.add_partition(
            label,
            Network::paths_between(&[Endpoint::Redis(r)], &others, true),
            cut,
            d,
        );
    }

    fn inject_node_partition(&mut self) {
        let i = self.rng.random_range(0..self.nodes.len());
        let me = [Endpoint::Node(i)];
        let everyone: Vec<Endpoint> =
            self.all_endpoints().into_iter().filter(|e| *e != me[0]).collect();
        let peers: Vec<Endpoint> =
            (0..self.nodes.len()).filter(|j| *j != i).map(Endpoint::Node).collect();
        let (label, paths) = match self.rng.random_range(0..4) {
            0 => (format!("isolate n{i}"), Network::paths_between(&me, &everyone, true)),
            1 => (format!("cut n{i} from its peers"), Network::paths_between(&me, &peers, true)),
            2 => (format!("n{i} cannot send"), Network::paths_between(&me, &everyone, false)),
            _ => (format!("n{i} cannot receive"), Network::paths_between(&everyone, &me, false)),
        };
        let cut = self.cut();
        let d = self.random_range_ms(1000, 15_000);
        self.add_partition(format!("{label} ({cut:?})"), paths, cut, d);
    }

    fn inject_minority_partition(&mut self) {
        let n = self.nodes.len();
        let size = self.rng.random_range(1..=(n - 1) / 2);
        let mut order: Vec<usize> = (0..n).collect();
        for k in (1..n).rev() {
            order.swap(k, self.rng.random_range(0..=k));
        }
        let minority: Vec<usize> = order[..size].to_vec();
        let (side, label) = if self.rng.random_bool(0.5) {
            // The minority keeps the master; the majority keeps the replicas: the classic
            // split-brain setup.
            let g = self.rng.random_range(0..self.groups.len());
            let master = self.groups[g]
                .members
                .iter()
                .copied()
                .find(|&r| self.redis[r].role == Role::Master)
                .unwrap_or(self.groups[g].members[0]);
            let mut side: Vec<Endpoint> = minority.iter().map(|&i| Endpoint::Node(i)).collect();
            side.push(Endpoint::Redis(master));
            let label = format!("split {minority:?} + {} from the rest", self.redis_label(master));
            (side, label)
        } else {
            (
                minority.iter().map(|&i| Endpoint::Node(i)).collect(),
                format!("split {minority:?} from the other nodes"),
            )
        };
        let rest: Vec<Endpoint> = if side.iter().any(|e| matches!(e, Endpoint::Redis(_))) {
            self.all_endpoints().into_iter().filter(|e| !side.contains(e)).collect()
        } else {
            (0..n).filter(|i| !minority.contains(i)).map(Endpoint::Node).collect()
        };
        let cut = self.cut();
        let d = self.random_range_ms(2000, 20_000);
        self.add_partition(
            format!("{label} ({cut:?})"),
            Network::paths_between(&side, &rest, true),
            cut,
            d,
        );
    }

    fn inject_link_partition(&mut self) {
        let i = self.rng.random_range(0..self.nodes.len());
        let r = self.rng.random_range(0..self.redis.len());
        let both = self.rng.random_bool(0.7);
        let cut = self.cut();
        let label = format!(
            "cut n{i} {} {} ({cut:?})",
            if both { "<->" } else { "->" },
            self.redis_label(r)
        );
        let d = self.random_range_ms(500, 10_000);
        self.add_partition(
            label,
            Network::paths_between(&[Endpoint::Node(i)], &[Endpoint::Redis(r)], both),
            cut,
            d,
        );
    }

    fn add_partition(
        &mut self,
        label: String,
        paths: Vec<(Endpoint, Endpoint)>,
        cut: Cut,
        d: Duration,
    ) {
        self.stats.faults += 1;
        let id = self.partition(label, paths, cut);
        self.schedule(d, Recovery::Heal { partition: id });
    }

    /// Adds a partition now; returns its id (for [`Self::heal_partition`]).
    pub fn partition(&mut self, label: String, paths: Vec<(Endpoint, Endpoint)>, cut: Cut) -> u64 {
        let id = self.network.partition(label.clone(), paths, cut);
        self.trace.line(self.now, &"fault", || format!("partition #{id}: {label}"));
        if cut == Cut::Reject {
            self.reset_rejected();
        }
        self.refresh_replication();
        id
    }

    /// Ends partition `id`.
    pub fn heal_partition(&mut self, id: u64) {
        if self.network.heal(id) {
            self.trace.line(self.now, &"fault", || format!("heal #{id}"));
            self.flush_held();
            self.refresh_replication();
        }
    }

    /// Runs a fault's follow-up.
    pub(crate) fn recover(&mut self, recovery: Recovery) {
        match recovery {
            Recovery::ResumeRedis { redis, generation } => {
                if self.redis[redis].generation == generation {
                    self.resume_redis(redis);
                }
            }
            Recovery::RestartRedis { redis, generation, keep_data, keep_config } => {
                if self.redis[redis].generation == generation {
                    self.restart_redis(redis, keep_data, keep_config);
                }
            }
            Recovery::Flap { redis, remaining } => self.flap(redis, remaining),
            Recovery::Heal { partition } => self.heal_partition(partition),
            Recovery::RestartNode { node, generation } => {
                if self.nodes[node].generation == generation {
                    self.restart_node(node);
                }
            }
        }
    }

    /// One step of a flapping instance: alternately down (stopped or killed) and up, for a few
    /// hundred milliseconds each.
    fn flap(&mut self, r: usize, remaining: u32) {
        if !self.faults_on {
            return;
        }
        match self.redis[r].process {
            Process::Running if remaining > 0 => {
                if self.rng.random_bool(0.5) {
                    self.pause_redis(r);
                } else {
                    self.kill_redis(r);
                }
            }
            Process::Running => return,
            Process::Paused => self.resume_redis(r),
            Process::Dead => self.restart_redis(r, true, true),
        }
        let d = self.random_range_ms(200, 1500);
        self.schedule(d, Recovery::Flap { redis: r, remaining: remaining.saturating_sub(1) });
    }

    /// Ends every fault for the liveness phase: faults stop, partitions heal, stopped instances
    /// resume, killed ones restart (with their data and configuration), stalled nodes resume,
    /// crashed nodes restart from their disks, and the network stops losing and duplicating.
    pub fn heal(&mut self) {
        self.set_faults(false);
        self.trace.line(self.now, &"sim", || "--- heal everything: liveness phase ---".to_owned());
        self.network.options.peer_loss = 0.0;
        self.network.options.peer_duplication = 0.0;
        self.network.heal_all();
        self.flush_held();
        for r in 0..self.redis.len() {
            match self.redis[r].process {
                Process::Paused => self.resume_redis(r),
                Process::Dead => self.restart_redis(r, true, true),
                Process::Running => {}
            }
        }
        for i in 0..self.nodes.len() {
            self.nodes[i].crash_after = None;
            if self.nodes[i].engine.is_none() {
                self.restart_node(i);
            } else if self.nodes[i].stalled_until.is_some() {
                self.unstall_node(i);
            }
        }
        self.refresh_replication();
    }
}
