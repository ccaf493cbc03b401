//! The simulated network: the event queue every message travels through, delays, and partitions.
//!
//! Two kinds of traffic cross it. Peer messages are datagrams: the transport between Picket nodes
//! may lose, duplicate or reorder them (a TCP connection that breaks mid-stream does exactly
//! that), and a partition drops them. Redis links are TCP connections: ordered and never
//! duplicated; a partition *stalls* them (packets wait, and are delivered in order when it heals),
//! or, for a rejecting partition (a firewall answering with RST), resets them. The engine's own
//! watchdogs and timeouts must cope with a stalled link, as they must in production.
//!
//! Time is in microseconds of simulation time; delays are a minimum plus an exponential tail.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::options::NetworkOptions;

/// Something that sends or receives: a Picket node or a Redis instance, by index.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd)]
pub enum Endpoint {
    /// A Picket node.
    Node(usize),
    /// A Redis instance.
    Redis(usize),
}

/// How a partition treats the packets it blocks.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Cut {
    /// Packets are silently held (TCP retransmits until the path heals).
    Drop,
    /// Packets are refused at once: connections are refused or reset.
    Reject,
}

/// One active partition: the directed paths it blocks.
#[derive(Clone, Debug)]
pub struct Partition {
    /// Identifies it in the trace.
    pub id: u64,
    /// A short description for the trace.
    pub label: String,
    /// Blocked `(from, to)` paths.
    pub paths: Vec<(Endpoint, Endpoint)>,
    /// How it blocks.
    pub cut: Cut,
}

/// The network's state: its character, and the partitions in force.
#[derive(Debug)]
pub struct Network {
    /// Delays, loss and duplication.
    pub options: NetworkOptions,
    nodes: usize,
    endpoints: usize,
    /// Blocking mode per directed path (`None` = open), indexed by [`Self::index`].
    blocked: Vec<Option<Cut>>,
    partitions: Vec<Partition>,
    next_partition: u64,
}

impl Network {
    /// An unpartitioned network between `nodes` nodes and `redis` instances.
    #[must_use]
    pub fn new(options: NetworkOptions, nodes: usize, redis: usize) -> Self {
        let endpoints = nodes + redis;
        Self {
            options,
            nodes,
            endpoints,
            blocked: vec![None; endpoints * endpoints],
            partitions: Vec::new(),
            next_partition: 1,
        }
    }

    fn index(&self, from: Endpoint, to: Endpoint) -> usize {
        let flat = |e: Endpoint| match e {
            Endpoint::Node(i) => i,
            Endpoint::Redis(i) => self.nodes + i,
        };
        flat(from) * self.endpoints + flat(to)
    }

    /// How the path `from → to` is blocked, if it is.
    #[must_use]
    pub fn blocked(&self, from: Endpoint, to: Endpoint) -> Option<Cut> {
        self.blocked[self.index(from, to)]
    }

    /// Whether packets flow both ways between `a` and `b`.
    #[must_use]
    pub fn connected(&self, a: Endpoint, b: Endpoint) -> bool {
        self.blocked(a, b).is_none() && self.blocked(b, a).is_none()
    }

    /// Adds a partition; returns its id.
    pub fn partition(&mut self, label: String, paths: Vec<(Endpoint, Endpoint)>, cut: Cut) -> u64 {
        let id = self.next_partition;
        self.next_partition += 1;
        self.partitions.push(Partition { id, label, paths, cut });
        self.rebuild();
        id
    }

    /// Removes partition `id`; returns whether it was in force.
    pub fn heal(&mut self, id: u64) -> bool {
        let before = self.partitions.len();
        self.partitions.retain(|p| p.id != id);
        let healed = self.partitions.len() != before;
        if healed {
            self.rebuild();
        }
        healed
    }

    /// Removes every partition.
    pub fn heal_all(&mut self) {
        self.partitions.clear();
        self.rebuild();
    }

    /// The partitions in force.
    #[must_use]
    pub fn partitions(&self) -> &[Partition] {
        &self.partitions
    }

    fn rebuild(&mut self) {
        self.blocked.iter_mut().for_each(|b| *b = None);
        for p in &self.partitions {
            for &(from, to) in &p.paths {
                let i = self.index(from, to);
                // A rejecting cut is the louder of the two: it wins where both apply.
                if self.blocked[i] != Some(Cut::Reject) {
                    self.blocked[i] = Some(p.cut);
                }
            }
        }
    }

    /// A one-way delay, in microseconds.
    pub fn delay(&self, rng: &mut ChaCha8Rng) -> u64 {
        let mean = self.options.delay_mean_us as f64;
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        // Exponential tail, capped so that one unlucky draw cannot stall a run.
        let tail = (-u.ln() * mean).min(mean * 20.0);
        self.options.delay_min_us + tail as u64
    }

    /// Every path between the endpoints of `a` and those of `b`, both ways (or `a → b` only).
    #[must_use]
    pub fn paths_between(
        a: &[Endpoint],
        b: &[Endpoint],
        both_ways: bool,
    ) -> Vec<(Endpoint, Endpoint)> {
        let mut paths = Vec::new();
        for &x in a {
            for &y in b {
                if x != y {
                    paths.push((x, y));
                    if both_ways {
                        paths.push((y, x));
                    }
                }
            }
        }
        paths
    }
}

/// A priority queue of `(deliver_at, seq, item)`: the earliest first, and among items due at the
/// same instant, the one scheduled first. `seq` makes every tie deterministic.
#[derive(Debug)]
pub struct Queue<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    seq: u64,
}

#[derive(Debug)]
struct Entry<T> {
    at: u64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self { heap: BinaryHeap::new(), seq: 0 }
    }
}

impl<T> Queue<T> {
    /// Schedules `item` at `at`.
    pub fn push(&mut self, at: u64, item: T) {
        self.seq += 1;
        self.heap.push(Reverse(Entry { at, seq: self.seq, item }));
    }

    /// When the earliest item is due.
    #[must_use]
    pub fn peek_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Takes the earliest item.
    pub fn pop(&mut self) -> Option<(u64, T)> {
        self.heap.pop().map(|Reverse(e)| (e.at, e.item))
    }

    /// Number of items waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_orders_by_time_then_by_scheduling_order() {
        let mut q = Queue::default();
        q.push(5, "b");
        q.push(3, "a");
        q.push(5, "c");
        let order: Vec<&str> = std::iter::from_fn(|| q.pop()).map(|(_, x)| x).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn partitions_block_the_paths_they_name_until_healed() {
        let options = NetworkOptions {
            delay_min_us: 1,
            delay_mean_us: 1,
            peer_loss: 0.0,
            peer_duplication: 0.0,
            peer_reordering: false,
        };
        let mut net = Network::new(options, 3, 2);
        let (a, b, r) = (Endpoint::Node(0), Endpoint::Node(1), Endpoint::Redis(1));
        let id = net.partition("a -/-> r".into(), vec![(a, r)], Cut::Drop);
        let other = net.partition(
            "a <-/-> b".into(),
            Network::paths_between(&[a], &[b], true),
            Cut::Reject,
        );
        assert_eq!(net.blocked(a, r), Some(Cut::Drop));
        assert_eq!(net.blocked(r, a), None);
        assert_eq!(net.blocked(b, a), Some(Cut::Reject));
        assert!(net.heal(id));
        assert!(!net.heal(id));
        assert_eq!(net.blocked(a, r), None);
        assert!(!net.connected(a, b));
        net.heal(other);
        assert!(net.connected(a, b));
    }
}
