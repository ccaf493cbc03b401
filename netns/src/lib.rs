//! Real network partitions: hosts as network namespaces on a private bridge.
//!
//! Shared by Picket's partition tests (`tests/support/netns.rs`, which starts a picket in each
//! node namespace) and by `picket-bench`'s fencing suite (which starts redis-sentinel or Picket
//! there), so both cut the same network the same way.
//!
//! The bridge lives in a namespace of its own (a "switch"): the root namespace's firewall (on a
//! machine with Docker, a FORWARD policy of DROP applied to bridged traffic) never sees the test
//! traffic. The root namespace joins the switch through one more veth whose address
//! ([`Net::host_ip`]) reaches every namespace. Partitions are packet-filter rules inside one
//! namespace, so they cut exactly that namespace's traffic. Dropping the [`Net`] deletes the
//! namespaces (and with them their veths and rules), even when the caller failed. Everything
//! here needs root, `ip` (iproute2) and `iptables`.

use std::io;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

fn run(args: &[&str]) -> bool {
    Command::new(args[0]).args(&args[1..]).status().is_ok_and(|s| s.success())
}

fn must(args: &[&str]) -> io::Result<()> {
    if run(args) { Ok(()) } else { Err(io::Error::other(format!("failed: {}", args.join(" ")))) }
}

/// A network: a switch namespace with a bridge, and namespaces attached to it.
#[derive(Debug)]
pub struct Net {
    switch: String,
    /// The root namespace's end of its link to the switch.
    uplink: String,
    /// The root namespace's address on the network.
    pub host_ip: String,
    /// The node namespaces made by [`Net::create`]: (name, address).
    pub nodes: Vec<(String, String)>,
    /// Namespaces added later with [`Net::add_host`] (a Redis instance that must be cut off
    /// without any node): (name, address).
    pub hosts: Vec<(String, String)>,
    prefix: String,
    subnet: String,
}

impl Net {
    /// A network with `n` node namespaces. Names start with `stem` (two letters: interface
    /// names must stay under 16 bytes) and the subnet is `10.<octet + k>.<pid % 250>.0/24`, so
    /// two users (the tests and the benchmark) with different stems and octets never collide.
    /// Fails if namespaces cannot be made (not root, no iproute2).
    pub fn create(stem: &str, octet: u32, n: usize) -> io::Result<Self> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let c = COUNT.fetch_add(1, Ordering::SeqCst);
        let id = std::process::id() % 10_000;
        let prefix = format!("{stem}{id}{c}");
        let subnet = format!("10.{}.{}", octet + (c % 50), id % 250);
        let switch = format!("{prefix}s");
        must(&["ip", "netns", "add", &switch]).map_err(|e| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("cannot make network namespaces (root, iproute2 and iptables needed): {e}"),
            )
        })?;
        let uplink = format!("{prefix}h");
        let host_ip = format!("{subnet}.1");
        // From here on, Drop cleans up whatever was made.
        let mut net = Self {
            switch: switch.clone(),
            uplink: uplink.clone(),
            host_ip: host_ip.clone(),
            nodes: Vec::new(),
            hosts: Vec::new(),
            prefix: prefix.clone(),
            subnet,
        };
        must(&["ip", "-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        must(&["ip", "-n", &switch, "link", "set", "br0", "up"])?;
        net.attach(&uplink, &format!("{prefix}H"))?;
        must(&["ip", "addr", "add", &format!("{host_ip}/24"), "dev", &uplink])?;
        must(&["ip", "link", "set", &uplink, "up"])?;
        for i in 0..n {
            let node = net.namespace(&format!("n{i}"), 11 + i)?;
            net.nodes.push(node);
        }
        Ok(net)
    }

    /// Links a new veth into the switch's bridge: `outside` stays here, `inside` goes there.
    fn attach(&self, outside: &str, inside: &str) -> io::Result<()> {
        must(&["ip", "link", "add", outside, "type", "veth", "peer", "name", inside])?;
        must(&["ip", "link", "set", inside, "netns", &self.switch])?;
        must(&["ip", "-n", &self.switch, "link", "set", inside, "master", "br0"])?;
        must(&["ip", "-n", &self.switch, "link", "set", inside, "up"])
    }

    /// A new namespace `<prefix><tag>` on the network at `.<last>`.
    fn namespace(&self, tag: &str, last: usize) -> io::Result<(String, String)> {
        let ns = format!("{}{tag}", self.prefix);
        let ip = format!("{}.{last}", self.subnet);
        let end = format!("{}p{tag}", self.prefix);
        must(&["ip", "netns", "add", &ns])?;
        self.attach(&end, &format!("{}v{tag}", self.prefix))?;
        must(&["ip", "link", "set", &end, "netns", &ns])?;
        must(&["ip", "-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", &end])?;
        must(&["ip", "-n", &ns, "link", "set", &end, "up"])?;
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        Ok((ns, ip))
    }

    /// A host namespace of its own (see [`Net::hosts`]); returns its index.
    pub fn add_host(&mut self) -> io::Result<usize> {
        let index = self.hosts.len();
        let host = self.namespace(&format!("r{index}"), 50 + index)?;
        self.hosts.push(host);
        Ok(index)
    }

    fn iptables_in(ns: &str, args: &[&str]) -> io::Result<()> {
        let mut full = vec!["ip", "netns", "exec", ns, "iptables"];
        full.extend_from_slice(args);
        must(&full)
    }

    /// Cuts namespace `ns` off from everything on the network. What runs inside it still talks
    /// to itself: traffic to the namespace's own address goes over `lo`.
    fn isolate_ns(&self, ns: &str) -> io::Result<()> {
        let subnet = format!("{}/24", self.host_ip);
        Self::iptables_in(ns, &["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"])?;
        Self::iptables_in(ns, &["-A", "INPUT", "-i", "lo", "-j", "ACCEPT"])?;
        Self::iptables_in(ns, &["-A", "OUTPUT", "-d", &subnet, "-j", "DROP"])?;
        Self::iptables_in(ns, &["-A", "INPUT", "-s", &subnet, "-j", "DROP"])
    }

    /// Cuts node `node` off from everything on the network (see [`Net::isolate_host`]).
    pub fn isolate(&self, node: usize) -> io::Result<()> {
        self.isolate_ns(&self.nodes[node].0)
    }

    /// Cuts host `host` off from everything on the network; what runs inside it (a Redis
    /// instance and its client) still talks to itself.
    pub fn isolate_host(&self, host: usize) -> io::Result<()> {
        self.isolate_ns(&self.hosts[host].0)
    }

    /// Cuts host `host` off from address `ip` (a node, or the root namespace).
    pub fn cut_host_from(&self, host: usize, ip: &str) -> io::Result<()> {
        let ns = &self.hosts[host].0;
        Self::iptables_in(ns, &["-A", "OUTPUT", "-d", ip, "-j", "DROP"])?;
        Self::iptables_in(ns, &["-A", "INPUT", "-s", ip, "-j", "DROP"])
    }

    /// Cuts node `node` off from the TCP port `port` of the root namespace's address.
    pub fn cut_root_port(&self, node: usize, port: u16) -> io::Result<()> {
        let (ns, port) = (&self.nodes[node].0, port.to_string());
        let host = self.host_ip.as_str();
        let out = ["-A", "OUTPUT", "-d", host, "-p", "tcp", "--dport", &port, "-j", "DROP"];
        Self::iptables_in(ns, &out)?;
        Self::iptables_in(
            ns,
            &["-A", "INPUT", "-s", host, "-p", "tcp", "--sport", &port, "-j", "DROP"],
        )
    }

    /// Removes every rule in node `node`'s namespace.
    pub fn heal(&self, node: usize) -> io::Result<()> {
        Self::iptables_in(&self.nodes[node].0, &["-F"])
    }

    /// Removes every rule in host `host`'s namespace.
    pub fn heal_host(&self, host: usize) -> io::Result<()> {
        Self::iptables_in(&self.hosts[host].0, &["-F"])
    }

    /// Removes every rule everywhere.
    pub fn heal_all(&self) -> io::Result<()> {
        for (ns, _) in self.nodes.iter().chain(&self.hosts) {
            Self::iptables_in(ns, &["-F"])?;
        }
        Ok(())
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
