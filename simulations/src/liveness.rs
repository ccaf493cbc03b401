//! What "the cluster converged" means once every fault has healed, and the readable account of
//! the cluster's state printed when it does not.

use std::fmt::Write as _;

use picket::engine::Addr;

use crate::cluster::Simulation;
use crate::redis::{Process, ReplLink, Role};

impl Simulation {
    /// Whether the cluster has converged; if not, the first reason why.
    ///
    /// Converged means, for every group: exactly one running instance reports `role:master`;
    /// every node runs and names that instance as the master, all with the same config epoch;
    /// every other instance of the group that some node knows runs, replicates from it, and has
    /// its link up.
    ///
    /// An instance no node knows is exempt: nodes learn replicas only from the configuration and
    /// from the master's `INFO`, as Sentinel does, so a replica that was following another
    /// replica (or a dead master) since before any node saw it is invisible to every supervisor,
    /// Sentinel's included. [`Self::describe`] lists such instances.
    ///
    /// # Errors
    /// The first reason the cluster has not converged.
    pub fn converged(&mut self) -> Result<(), String> {
        self.refresh_replication();
        for group in &self.groups {
            let masters: Vec<usize> = group
                .members
                .iter()
                .copied()
                .filter(|&r| self.redis[r].running() && self.redis[r].role == Role::Master)
                .collect();
            let [master] = masters[..] else {
                let labels: Vec<String> = masters.iter().map(|&r| self.redis_label(r)).collect();
                return Err(format!(
                    "group {}: {} instances report role:master {labels:?}",
                    group.name,
                    masters.len()
                ));
            };
            let addr = &self.redis[master].addr;
            let mut epoch = None;
            for (i, node) in self.nodes.iter().enumerate() {
                let Some(engine) = &node.engine else {
                    return Err(format!("n{i} is not running"));
                };
                let state = engine.durable();
                let Some(m) = state.masters.get(&group.name) else {
                    return Err(format!("n{i} does not know group {}", group.name));
                };
                if m.addr != *addr {
                    return Err(format!(
                        "group {}: n{i} believes the master is {} (epoch {}), but {} ({}) is",
                        group.name,
                        m.addr,
                        m.config_epoch,
                        addr,
                        self.redis_label(master)
                    ));
                }
                match epoch {
                    None => epoch = Some((i, m.config_epoch)),
                    Some((j, e)) if e != m.config_epoch => {
                        return Err(format!(
                            "group {}: n{j} has config epoch {e}, n{i} has {}",
                            group.name, m.config_epoch
                        ));
                    }
                    Some(_) => {}
                }
            }
            let known = self.known_instances(&group.name);
            for &r in &group.members {
                if r == master || !known.contains(&self.redis[r].addr) {
                    continue;
                }
                let redis = &self.redis[r];
                let ok = redis.running() && redis.role.master() == Some(addr) && redis.link_up();
                if !ok {
                    return Err(format!(
                        "group {}: {} is {} (should replicate from {} with its link up)",
                        group.name,
                        self.redis_label(r),
                        describe_redis(redis),
                        addr
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether every node runs, is out of TILT, leads no failover, and knows every running
    /// replica of each group. Nodes discover replicas from the master's INFO (every 10 s), so a
    /// replica repointed at the master just before it dies may be known only to the node that
    /// repointed it: the liveness bound holds for replicas every node has discovered (seed 355:
    /// the drill killed the master 3 s after its only replica was repointed at it).
    pub fn calm(&mut self) -> bool {
        let tilted = (0..self.nodes.len()).any(|i| self.checker.in_tilt(i));
        let replicas: Vec<(String, Vec<Addr>)> = self
            .groups
            .iter()
            .map(|g| {
                let running = g.members.iter().map(|&r| &self.redis[r]);
                let addrs = running
                    .filter(|r| r.running() && r.role != Role::Master)
                    .map(|r| r.addr.clone())
                    .collect();
                (g.name.clone(), addrs)
            })
            .collect();
        !tilted
            && self.nodes.iter_mut().all(|n| {
                n.engine.as_mut().is_some_and(|e| {
                    let view = e.view();
                    view.masters.iter().all(|m| m.failover.is_none())
                        && replicas.iter().all(|(name, addrs)| {
                            view.master(name).is_some_and(|m| {
                                addrs.iter().all(|a| m.replicas.iter().any(|i| i.addr == *a))
                            })
                        })
                })
            })
    }

    /// The one running instance of group `g` that reports `role:master`, if there is exactly one.
    #[must_use]
    pub fn sole_master(&self, g: usize) -> Option<usize> {
        let mut masters = self.groups[g]
            .members
            .iter()
            .copied()
            .filter(|&r| self.redis[r].running() && self.redis[r].role == Role::Master);
        let first = masters.next()?;
        masters.next().is_none().then_some(first)
    }

    /// Whether group `g` has a new master after the instances `old` died: exactly one running
    /// instance reports `role:master`, it is not one of `old`, and every node runs and names it
    /// with the same config epoch. If not, why.
    ///
    /// # Errors
    /// The reason, for the failure message.
    pub fn new_master_agreed(&self, g: usize, old: &[usize]) -> Result<(), String> {
        let group = &self.groups[g];
        let Some(master) = self.sole_master(g).filter(|m| !old.contains(m)) else {
            return Err(format!(
                "group {}: no single new instance reports role:master",
                group.name
            ));
        };
        let addr = &self.redis[master].addr;
        let mut epochs = std::collections::BTreeSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some((believed, epoch)) = self.belief(i, &group.name) else {
                return Err(format!("n{i} is not running or does not know {}", group.name));
            };
            if believed != *addr || node.engine.is_none() {
                return Err(format!(
                    "group {}: n{i} names {believed} (epoch {epoch}), but {} ({}) is the master",
                    group.name,
                    addr,
                    self.redis_label(master)
                ));
            }
            epochs.insert(epoch);
        }
        if epochs.len() > 1 {
            return Err(format!(
                "group {}: nodes name it with config epochs {epochs:?}",
                group.name
            ));
        }
        Ok(())
    }

    /// The highest current epoch any node has on its disk.
    #[must_use]
    pub fn max_epoch(&self) -> u64 {
        self.nodes
            .iter()
            .filter_map(|n| n.disk.as_ref())
            .map(|d| d.current_epoch)
            .max()
            .unwrap_or(0)
    }

    /// The instances of group `name` that some running node knows (its master or a replica).
    #[must_use]
    pub fn known_instances(&self, name: &str) -> std::collections::BTreeSet<Addr> {
        let mut known = std::collections::BTreeSet::new();
        for engine in self.nodes.iter().filter_map(|n| n.engine.as_ref()) {
            if let Some(m) = engine.durable().masters.get(name) {
                known.insert(m.addr.clone());
                known.extend(m.replicas.iter().cloned());
            }
        }
        known
    }

    /// A readable account of what every node believes and what every instance is.
    #[must_use]
    pub fn describe(&mut self) -> String {
        let mut out = String::new();
        let now = self.now;
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let clock = node.clock;
            let Some(engine) = node.engine.as_mut() else {
                let _ = writeln!(out, "  n{i}: crashed");
                continue;
            };
            let view = engine.view();
            let tilt = if view.tilt_since.is_some() { " TILT" } else { "" };
            let _ = writeln!(
                out,
                "  n{i} id={} epoch={} local={}ms fresh_peers={}{tilt}{}",
                view.node_id.short(),
                view.current_epoch,
                clock.local_ms(now),
                view.fresh_peers(),
                if view.awaiting_vote_floor { " awaiting-vote-floor" } else { "" }
            );
            for m in &view.masters {
                let failover = m.failover.as_ref().map_or_else(String::new, |f| {
                    format!(" failover(epoch {} {})", f.epoch, f.state)
                });
                let _ = writeln!(
                    out,
                    "      {}: master {} config_epoch={} status={} voted={}{failover}",
                    m.name,
                    m.addr,
                    m.config_epoch,
                    m.status.as_str(),
                    m.voted_epoch
                );
            }
        }
        for r in 0..self.redis.len() {
            let name = &self.groups[self.redis[r].group].name;
            let known = if self.known_instances(name).contains(&self.redis[r].addr) {
                ""
            } else {
                " (known to no node)"
            };
            let _ = writeln!(
                out,
                "  {} {}: {}{known}",
                self.redis_label(r),
                self.redis[r].addr,
                describe_redis(&self.redis[r])
            );
        }
        for p in self.network.partitions() {
            let _ = writeln!(out, "  partition #{}: {}", p.id, p.label);
        }
        out
    }
}

fn describe_redis(redis: &crate::redis::Redis) -> String {
    let process = match redis.process {
        Process::Running => "running",
        Process::Paused => "paused",
        Process::Dead => "dead",
    };
    let role = match &redis.role {
        Role::Master => "master".to_owned(),
        Role::Replica(m) => {
            let link = match redis.link {
                ReplLink::Up => "up",
                ReplLink::Syncing { .. } => "syncing",
                ReplLink::Down { .. } => "down",
            };
            format!("replica of {m} (link {link})")
        }
    };
    format!("{process} {role} offset={} priority={}", redis.offset, redis.priority)
}
