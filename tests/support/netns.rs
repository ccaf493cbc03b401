//! Real network partitions for the tests: `picket-netns`'s namespaces (shared with
//! `picket-bench`'s fencing suite), with a picket in each node namespace. A test calls these
//! wrappers, which turn a failed `ip`/`iptables` command into a panic; where namespaces are not
//! allowed at all, [`Net::create`] skips (or, under `CI=true`, fails).

use std::ops::Deref;

use super::{ClusterOptions, Group, NodeSpec, Picket, config_text, free_port};

/// A test network: [`picket_netns::Net`] (read its addresses through `Deref`).
pub struct Net(picket_netns::Net);

impl Deref for Net {
    type Target = picket_netns::Net;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Net {
    /// A network for `n` pickets, or `None` (with a message) where namespaces are not allowed.
    pub fn create(n: usize) -> Option<Self> {
        match picket_netns::Net::create("pk", 100, n) {
            Ok(net) => Some(Self(net)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                // Under CI=true a missing capability is a failure, never a skip.
                super::missing("network namespaces (root, iproute2 and iptables)", false);
                None
            }
            Err(e) => panic!("making the test network: {e}"),
        }
    }

    /// A namespace for a Redis instance that must be partitioned on its own; returns its index.
    pub fn add_host(&mut self) -> usize {
        self.0.add_host().expect("a host namespace")
    }

    /// Cuts Redis host `host` off from address `ip` (a picket, or the root namespace).
    pub fn cut_host_from(&self, host: usize, ip: &str) {
        self.0.cut_host_from(host, ip).expect("iptables");
    }

    /// Cuts picket `node` off from everything on the test network (peers and Redis). What runs
    /// inside its namespace (a Redis instance, a client on the same host) still talks to itself.
    pub fn isolate(&self, node: usize) {
        self.0.isolate(node).expect("iptables");
    }

    /// Cuts picket `node` off from the Redis instance listening on `port` (in the root
    /// namespace).
    pub fn cut_redis(&self, node: usize, port: u16) {
        self.0.cut_root_port(node, port).expect("iptables");
    }

    /// Removes every rule in picket `node`'s namespace.
    pub fn heal(&self, node: usize) {
        self.0.heal(node).expect("iptables");
    }

    /// Removes every rule everywhere.
    pub fn heal_all(&self) {
        self.0.heal_all().expect("iptables");
    }

    /// Node specs for the namespaces, sharing port numbers.
    pub fn specs(&self) -> Vec<NodeSpec> {
        let (listen, gossip, http) = (free_port(), free_port(), free_port());
        let (tls_listen, tls_http) = (free_port(), free_port());
        self.nodes
            .iter()
            .map(|(_, ip)| NodeSpec { ip: ip.clone(), listen, gossip, http, tls_listen, tls_http })
            .collect()
    }

    /// Starts one picket per namespace, supervising `groups`.
    pub fn start_pickets(&self, groups: &[&Group], options: &ClusterOptions) -> Vec<Picket> {
        let specs = self.specs();
        specs
            .iter()
            .zip(&self.nodes)
            .map(|(spec, (ns, _))| {
                Picket::start_in(ns, spec.clone(), |state| {
                    config_text(spec, &specs, groups, state, options)
                })
            })
            .collect()
    }
}
