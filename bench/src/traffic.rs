//! Peer traffic: the bytes supervisors exchange to coordinate, counted by the kernel.
//!
//! An iptables chain of our own, jumped to from `OUTPUT -o lo` (every loopback packet passes
//! OUTPUT exactly once), holds one counting rule per supervisor peer port and direction, plus one
//! matching packets that contain `__sentinel__:hello`: Sentinel's hello messages travel through
//! the monitored Redis servers (PUBLISH to each master and replica, fanned out to every
//! subscribed Sentinel, replicated to replicas), so they never touch a Sentinel port. Every rule
//! RETURNs, so a packet is counted once, by the first rule it matches: a hello sent directly to
//! another Sentinel counts under the Sentinel ports, not twice. Counts are whole IP packets
//! (headers and bare ACKs included) for both supervisors alike; this needs no packet capture, so
//! nothing is dropped at 1,000 masters and the measurement adds no load of its own.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};

use crate::procs;

/// The payload marker of Sentinel's hello messages.
const HELLO: &str = "__sentinel__:hello";

/// Bytes counted so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bytes {
    /// To and from the supervisors' peer ports (Sentinel's port, Picket's gossip port).
    pub links: u64,
    /// Packets elsewhere carrying `__sentinel__:hello` (Sentinel's hellos through Redis).
    pub hello: u64,
}

/// An installed counting chain; removed on drop (and by the signal handler).
pub struct Counter {
    chain: String,
    /// How many port rules precede the hello rule.
    port_rules: usize,
}

impl Counter {
    /// Installs the chain counting traffic on `ports` and hello messages.
    pub fn install(ports: &[u16]) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let chain =
            format!("PBENCH-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        iptables(&["-N", &chain])?;
        procs::register_chain(&chain)?;
        let counter = Self { chain, port_rules: ports.len() * 2 };
        for port in ports {
            for dir in ["--dport", "--sport"] {
                counter.append(&["-p", "tcp", dir, &port.to_string(), "-j", "RETURN"])?;
            }
        }
        counter.append(&[
            "-p", "tcp", "-m", "string", "--string", HELLO, "--algo", "bm", "-j", "RETURN",
        ])?;
        iptables(&["-I", "OUTPUT", "-o", "lo", "-j", &counter.chain])?;
        Ok(counter)
    }

    fn append(&self, rule: &[&str]) -> Result<()> {
        let mut args = vec!["-A", self.chain.as_str()];
        args.extend_from_slice(rule);
        iptables(&args).map(drop)
    }

    /// The counters now.
    pub fn read(&self) -> Result<Bytes> {
        let listing = iptables(&["-L", &self.chain, "-v", "-n", "-x"])?;
        let bytes = parse_listing(&listing)?;
        if bytes.len() != self.port_rules + 1 {
            bail!(
                "chain {} has {} rules, expected {}",
                self.chain,
                bytes.len(),
                self.port_rules + 1
            );
        }
        Ok(Bytes { links: bytes[..self.port_rules].iter().sum(), hello: bytes[self.port_rules] })
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        remove_chain(&self.chain);
        procs::unregister_chain(&self.chain);
    }
}

/// The byte counter of each rule of an `iptables -L CHAIN -v -n -x` listing, in order.
fn parse_listing(listing: &str) -> Result<Vec<u64>> {
    listing
        .lines()
        .skip(2) // "Chain X (1 references)" and the column titles
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let field = l.split_whitespace().nth(1).context("short rule line")?;
            field.parse().with_context(|| format!("bytes in {l:?}"))
        })
        .collect()
}

/// Detaches and deletes `chain`; errors are ignored (it may be half-installed or gone).
pub fn remove_chain(chain: &str) {
    let _ = iptables(&["-D", "OUTPUT", "-o", "lo", "-j", chain]);
    let _ = iptables(&["-F", chain]);
    let _ = iptables(&["-X", chain]);
}

/// Removes the chains of earlier runs that were killed before they could clean up.
pub fn sweep_stale_chains() {
    let Ok(rules) = iptables(&["-S"]) else { return };
    for line in rules.lines() {
        let Some(chain) = line.strip_prefix("-N ") else { continue };
        let pid = chain.strip_prefix("PBENCH-").and_then(|r| r.split('-').next());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            remove_chain(chain);
        }
    }
}

/// Runs iptables (waiting for the xtables lock) and returns its output.
fn iptables(args: &[&str]) -> Result<String> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .context("running iptables (apt-get install iptables; needs root)")?;
    if !out.status.success() {
        bail!("iptables {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listing() {
        let listing = "Chain PBENCH-1-0 (1 references)\n    pkts      bytes target     prot opt in     out     source               destination\n       6      371 RETURN     6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:39999\n       1      103 RETURN     6    --  *      *       0.0.0.0/0            0.0.0.0/0            STRING match  \"__sentinel__:hello\" ALGO name bm\n";
        assert_eq!(parse_listing(listing).unwrap(), vec![371, 103]);
    }
}
