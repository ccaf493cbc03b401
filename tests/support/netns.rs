//! Real network partitions: each picket in its own network namespace on a test bridge.
//!
//! The bridge lives in a namespace of its own (a "switch"): the root namespace's firewall (on a
//! machine with Docker, a FORWARD policy of DROP applied to bridged traffic) never sees the test
//! traffic. The root namespace joins the switch through one more veth whose address is where the
//! Redis servers listen, so every picket names every instance the same way. Partitions are
//! packet-filter rules inside one picket's namespace, so they cut exactly that picket's traffic.
//! Dropping the [`Net`] deletes the namespaces (and with them their veths and rules), even when a
//! test fails.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{ClusterOptions, Group, NodeSpec, Picket, config_text, free_port};

fn run(args: &[&str]) -> bool {
    Command::new(args[0]).args(&args[1..]).status().is_ok_and(|s| s.success())
}

fn must(args: &[&str]) {
    assert!(run(args), "command failed: {}", args.join(" "));
}

/// A test network: a switch namespace with a bridge, and one namespace per picket.
pub struct Net {
    switch: String,
    /// The root namespace's end of its link to the switch.
    uplink: String,
    /// The root namespace's address on the test network: where Redis listens.
    pub host_ip: String,
    /// One namespace per picket: (name, address).
    pub nodes: Vec<(String, String)>,
    /// Namespaces for Redis instances that must be cut off on their own: (name, address).
    pub hosts: Vec<(String, String)>,
    prefix: String,
    subnet: String,
}

impl Net {
    /// A network for `n` pickets, or `None` (with a message) where namespaces are not allowed.
    pub fn create(n: usize) -> Option<Self> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let c = COUNT.fetch_add(1, Ordering::SeqCst);
        let id = std::process::id() % 10_000;
        let prefix = format!("pk{id}{c}");
        let subnet = format!("10.{}.{}", 100 + (c % 100), id % 250);
        let switch = format!("{prefix}s");
        if !run(&["ip", "netns", "add", &switch]) {
            // Under CI=true a missing capability is a failure, never a skip.
            super::missing("network namespaces (root, iproute2 and iptables)", false);
            return None;
        }
        let uplink = format!("{prefix}h");
        let host_ip = format!("{subnet}.1");
        let mut net = Self {
            switch: switch.clone(),
            uplink: uplink.clone(),
            host_ip: host_ip.clone(),
            nodes: Vec::new(),
            hosts: Vec::new(),
            prefix: prefix.clone(),
            subnet: subnet.clone(),
        };
        must(&["ip", "-n", &switch, "link", "add", "br0", "type", "bridge"]);
        must(&["ip", "-n", &switch, "link", "set", "br0", "up"]);
        net.attach(&uplink, &format!("{prefix}H"));
        must(&["ip", "addr", "add", &format!("{host_ip}/24"), "dev", &uplink]);
        must(&["ip", "link", "set", &uplink, "up"]);
        for i in 0..n {
            let node = net.namespace(&format!("n{i}"), 11 + i);
            net.nodes.push(node);
        }
        Some(net)
    }

    /// Links a new veth into the switch's bridge: `outside` stays here, `inside` goes there.
    fn attach(&self, outside: &str, inside: &str) {
        must(&["ip", "link", "add", outside, "type", "veth", "peer", "name", inside]);
        must(&["ip", "link", "set", inside, "netns", &self.switch]);
        must(&["ip", "-n", &self.switch, "link", "set", inside, "master", "br0"]);
        must(&["ip", "-n", &self.switch, "link", "set", inside, "up"]);
    }

    /// A new namespace `<prefix><tag>` on the test network at `.<last>`.
    fn namespace(&self, tag: &str, last: usize) -> (String, String) {
        let ns = format!("{}{tag}", self.prefix);
        let ip = format!("{}.{last}", self.subnet);
        let end = format!("{}p{tag}", self.prefix);
        must(&["ip", "netns", "add", &ns]);
        self.attach(&end, &format!("{}v{tag}", self.prefix));
        must(&["ip", "link", "set", &end, "netns", &ns]);
        must(&["ip", "-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", &end]);
        must(&["ip", "-n", &ns, "link", "set", &end, "up"]);
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        (ns, ip)
    }

    /// A namespace for a Redis instance that must be partitioned on its own; returns its index.
    pub fn add_host(&mut self) -> usize {
        let index = self.hosts.len();
        let host = self.namespace(&format!("r{index}"), 50 + index);
        self.hosts.push(host);
        index
    }

    fn iptables_in(ns: &str, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", ns, "iptables"];
        full.extend_from_slice(args);
        must(&full);
    }

    fn iptables(&self, node: usize, args: &[&str]) {
        Self::iptables_in(&self.nodes[node].0, args);
    }

    /// Cuts Redis host `host` off from address `ip` (a picket, or the root namespace).
    pub fn cut_host_from(&self, host: usize, ip: &str) {
        let ns = &self.hosts[host].0;
        Self::iptables_in(ns, &["-A", "OUTPUT", "-d", ip, "-j", "DROP"]);
        Self::iptables_in(ns, &["-A", "INPUT", "-s", ip, "-j", "DROP"]);
    }

    /// Cuts picket `node` off from everything on the test network (peers and Redis). What runs
    /// inside its namespace (a Redis instance, a client on the same host) still talks to itself:
    /// traffic to the namespace's own address goes over `lo`.
    pub fn isolate(&self, node: usize) {
        let subnet = format!("{}/24", self.host_ip);
        self.iptables(node, &["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"]);
        self.iptables(node, &["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"]);
        self.iptables(node, &["-A", "OUTPUT", "-d", &subnet, "-j", "DROP"]);
        self.iptables(node, &["-A", "INPUT", "-s", &subnet, "-j", "DROP"]);
    }

    /// Cuts picket `node` off from the Redis instance listening on `port`.
    pub fn cut_redis(&self, node: usize, port: u16) {
        let port = port.to_string();
        self.iptables(
            node,
            &["-A", "OUTPUT", "-d", &self.host_ip, "-p", "tcp", "--dport", &port, "-j", "DROP"],
        );
        self.iptables(
            node,
            &["-A", "INPUT", "-s", &self.host_ip, "-p", "tcp", "--sport", &port, "-j", "DROP"],
        );
    }

    /// Removes every rule in picket `node`'s namespace.
    pub fn heal(&self, node: usize) {
        self.iptables(node, &["-F"]);
    }

    /// Removes every rule everywhere.
    pub fn heal_all(&self) {
        for node in 0..self.nodes.len() {
            self.heal(node);
        }
        for (ns, _) in &self.hosts {
            Self::iptables_in(ns, &["-F"]);
        }
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

impl Drop for Net {
    fn drop(&mut self) {
        for (ns, _) in self.nodes.iter().chain(&self.hosts) {
            run(&["ip", "netns", "del", ns]);
        }
        run(&["ip", "netns", "del", &self.switch]);
        run(&["ip", "link", "del", &self.uplink]);
    }
}
